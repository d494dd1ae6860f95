// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the engines and their wrappers, on plain buffers:
 *
 *   roundtrip[-thp|-hugetlb]/<engine>
 *	the device reads what the CPU wrote, the CPU reads what the device
 *	wrote, partial ranges land at the right offsets, for every pin kind
 *	the engine offers;
 *   lost-page/<engine>
 *	the control that every scenario test relies on: after pinning, the
 *	range is replaced by fresh pages (mmap MAP_FIXED) and rewritten by
 *	the CPU.  An engine that holds its pin must keep seeing the old pages
 *	(the mismatch is detected); odirect, which pins only per I/O, must
 *	see the new ones;
 *   forced/<engine>
 *	an engine with forced access (PC_CAP_FORCED) writes a PROT_READ
 *	range, whose CPU view then shows the data, and reads a PROT_NONE one;
 *   wrappers
 *	the registry and the argument checks of the wrappers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pincheck.h"

#define HPAGE_PMD_SIZE (2UL << 20)
#define HUGETLB_DIR "/sys/kernel/mm/hugepages/hugepages-2048kB"
#define THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

struct test_buf {
	char *mem;		/* page (or huge page) aligned */
	size_t len;
	char *map;		/* for munmap */
	size_t map_len;
};

struct buf_kind {
	const char *name;	/* in case ids */
	/* 0, or 1 with a skip reason in @why (filled with gen @gen) */
	int (*alloc)(struct test_buf *b, unsigned int gen, char *why,
		     size_t len);
};

/* ---- buffers ---------------------------------------------------------- */

static int alloc_anon(struct test_buf *b, unsigned int gen, char *why,
		      size_t len)
{
	(void)why;
	(void)len;
	b->len = b->map_len = 8 * pc_page_size;
	b->map = mmap(NULL, b->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->map == MAP_FAILED)
		pc_fail_errno("mmap anon");
	b->mem = b->map;
	pc_fill(b->mem, 0, b->len, gen);
	return 0;
}

static int alloc_thp(struct test_buf *b, unsigned int gen, char *why,
		     size_t len)
{
	char mode[32];

	if (!pc_sysfs_selected(THP_ENABLED, mode, sizeof(mode)) &&
	    !strcmp(mode, "never")) {
		snprintf(why, len, "THP disabled: %s is [never]", THP_ENABLED);
		return 1;
	}
	b->map_len = 2 * HPAGE_PMD_SIZE;
	b->map = mmap(NULL, b->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->map == MAP_FAILED)
		pc_fail_errno("mmap for THP");
	b->mem = (char *)pc_align_up((size_t)b->map, HPAGE_PMD_SIZE);
	b->len = HPAGE_PMD_SIZE;
	if (madvise(b->mem, b->len, MADV_HUGEPAGE))
		pc_fail_errno("madvise(MADV_HUGEPAGE)");
	pc_fill(b->mem, 0, b->len, gen);
	switch (pc_page_flag(b->mem, PC_KPF_THP)) {
	case 0:
		snprintf(why, len, "no THP for a MADV_HUGEPAGE range (memory fragmented?)");
		return 1;
	case 1:
		break;
	default:
		pc_diag("cannot confirm the buffer is a THP (kpageflags unreadable)");
	}
	return 0;
}

/* nr_hugepages += 1 when no 2 MB page is free; returns the old count. */
static long grow_hugetlb_pool(char *why, size_t len)
{
	char val[32];
	long nr, free_pages;

	if (pc_read_line(HUGETLB_DIR "/nr_hugepages", val, sizeof(val))) {
		snprintf(why, len, "no 2048kB hugetlb pages on this kernel");
		return -1;
	}
	nr = atol(val);
	if (pc_read_line(HUGETLB_DIR "/free_hugepages", val, sizeof(val))) {
		snprintf(why, len, "cannot read %s/free_hugepages", HUGETLB_DIR);
		return -1;
	}
	free_pages = atol(val);
	if (free_pages)
		return nr;
	snprintf(val, sizeof(val), "%ld", nr + 1);
	if (pc_write_str(HUGETLB_DIR "/nr_hugepages", val)) {
		snprintf(why, len, "cannot reserve a 2048kB hugetlb page (needs root)");
		return -1;
	}
	return nr;
}

/*
 * Map one 2 MB hugetlb page, reserving it in the pool only for as long as
 * it takes to fault it in: the pool size is restored at once, and the page
 * in use becomes a surplus page that the kernel frees at munmap or exit.
 */
static int alloc_hugetlb(struct test_buf *b, unsigned int gen, char *why,
			 size_t len)
{
	char val[32];
	long old = grow_hugetlb_pool(why, len);

	if (old < 0)
		return 1;
	b->len = b->map_len = HPAGE_PMD_SIZE;
	b->map = mmap(NULL, b->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
		      (21 << MAP_HUGE_SHIFT), -1, 0);
	if (b->map != MAP_FAILED)
		pc_fill(b->map, 0, b->len, gen);
	snprintf(val, sizeof(val), "%ld", old);
	if (pc_write_str(HUGETLB_DIR "/nr_hugepages", val))
		pc_diag("could not restore %s/nr_hugepages to %ld", HUGETLB_DIR,
			old);
	if (b->map == MAP_FAILED) {
		snprintf(why, len, "no free 2048kB hugetlb page: %s",
			 strerror(errno));
		return 1;
	}
	b->mem = b->map;
	return 0;
}

static const struct buf_kind buf_anon = { "anon", alloc_anon };
static const struct buf_kind buf_thp = { "thp", alloc_thp };
static const struct buf_kind buf_hugetlb = { "hugetlb", alloc_hugetlb };

static void buf_create_or_skip(struct test_buf *b, const struct buf_kind *k,
			       unsigned int gen)
{
	char why[PC_REASON_MAX];

	memset(b, 0, sizeof(*b));
	if (k->alloc(b, gen, why, sizeof(why)))
		pc_skip("%s", why);
}

/* ---- checks ----------------------------------------------------------- */

/* @sample: the engine's (pc_engine.sample) for what its device moved. */
static void expect_view(const char *what, enum pc_side side, const void *view,
			size_t off, size_t len, unsigned int gen,
			const uint64_t *sample)
{
	struct pc_check chk = {
		.what = what, .off = off, .len = len, .gen = gen,
		.side = side, .sample = sample,
	};

	if (side == PC_CHECK_DEVICE)
		chk.dev = view;
	else
		chk.cpu = view;
	pc_verify_or_fail(&chk);
}

static void expect_device(struct pc_engine *e, size_t off, size_t len,
			  unsigned int gen, const char *what)
{
	void *dev = pc_dev_read_alloc(e, off, len);

	expect_view(what, PC_CHECK_DEVICE, dev, off, len, gen, e->sample);
	free(dev);
}

static void expect_cpu(struct test_buf *b, size_t off, size_t len,
		       unsigned int gen, const char *what)
{
	expect_view(what, PC_CHECK_CPU, b->mem + off, off, len, gen, NULL);
}

/* The CPU's view of what a (possibly sampling) device wrote. */
static void expect_cpu_dev_written(struct pc_engine *e, struct test_buf *b,
				   size_t off, size_t len, unsigned int gen,
				   const char *what)
{
	expect_view(what, PC_CHECK_CPU, b->mem + off, off, len, gen,
		    e->sample);
}

static void pin_or_fail(struct pc_engine *e, struct test_buf *b,
			unsigned int flags)
{
	if (pc_engine_pin(e, b->mem, b->len, flags))
		pc_fail("pin %s: %s", flags == PC_PIN_RW ? "R/W" : "R/O",
			e->err);
}

static void unpin_or_fail(struct pc_engine *e)
{
	if (pc_engine_unpin(e))
		pc_fail("unpin: %s", e->err);
}

/* ---- roundtrip -------------------------------------------------------- */

static void roundtrip_pin(struct pc_engine *e, struct test_buf *b,
			  unsigned int flags)
{
	size_t page = pc_page_size, woff = b->len / 4, wlen = b->len / 4;
	const struct pc_engine_ops *ops = e->ops;

	pc_fill(b->mem, 0, b->len, PC_GEN_INIT);
	pin_or_fail(e, b, flags);
	if (pc_engine_can(ops, PC_CAP_DEV_READ)) {
		if (!pc_engine_can(ops, PC_CAP_READ_ONCE)) {
			expect_device(e, 0, b->len, PC_GEN_INIT,
				      "device read of the CPU's pattern");
			expect_device(e, page, 2 * page, PC_GEN_INIT,
				      "device read at an offset");
		}
		/* The CPU writes the pinned pages: the device sees it. */
		pc_fill(b->mem, 0, b->len, PC_GEN_PARENT);
		expect_device(e, 0, b->len, PC_GEN_PARENT,
			      "device read after a CPU write to pinned pages");
		expect_device(e, page, page, PC_GEN_PARENT,
			      "second device read at an offset");
	} else {
		pc_fill(b->mem, 0, b->len, PC_GEN_PARENT);
	}
	if ((flags & PC_PIN_RW) && pc_engine_can(ops, PC_CAP_DEV_WRITE)) {
		pc_dev_write_gen(e, woff, wlen, PC_GEN_DEVICE);
		expect_cpu(b, 0, woff, PC_GEN_PARENT,
			   "CPU read before the device-written range");
		expect_cpu_dev_written(e, b, woff, wlen, PC_GEN_DEVICE,
				       "CPU read of the device-written range");
		expect_cpu(b, woff + wlen, b->len - woff - wlen, PC_GEN_PARENT,
			   "CPU read after the device-written range");
		if (pc_engine_can(ops, PC_CAP_DEV_READ)) {
			expect_device(e, woff, wlen, PC_GEN_DEVICE,
				      "device read of its own write");
			pc_fill(b->mem, 0, b->len, PC_GEN_CPU_LATE);
			expect_device(e, 0, b->len, PC_GEN_CPU_LATE,
				      "device read after the CPU overwrote its write");
		}
	}
	unpin_or_fail(e);
}

static void run_roundtrip(const struct pc_case *c)
{
	const unsigned int pins[] = { PC_PIN_RW, PC_PIN_RO };
	struct pc_engine e;
	struct test_buf b;
	size_t i;

	pc_gen_name(PC_GEN_INIT, "CPU write before pin");
	pc_gen_name(PC_GEN_PARENT, "CPU write after pin");
	pc_gen_name(PC_GEN_DEVICE, "device write");
	pc_engine_open_or_skip(&e, c->engine);
	buf_create_or_skip(&b, c->scenario, PC_GEN_INIT);
	for (i = 0; i < PC_ARRAY_SIZE(pins); i++) {
		unsigned int cap = pins[i] == PC_PIN_RW ? PC_CAP_PIN_RW :
							  PC_CAP_PIN_RO;

		if (pc_engine_can(c->engine, cap))
			roundtrip_pin(&e, &b, pins[i]);
	}
	pc_engine_close(&e);
	munmap(b.map, b.map_len);
	pc_pass();
}

/* ---- lost page -------------------------------------------------------- */

/* Replace the range with fresh anonymous pages and write @gen into them. */
static void replace_pages(struct test_buf *b, unsigned int gen)
{
	if (pc_map_fresh(b->mem, b->len))
		pc_fail_errno("mmap(MAP_FIXED) over the pinned range");
	pc_fill(b->mem, 0, b->len, gen);
}

static void lost_page_read(struct pc_engine *e, struct test_buf *b, int held)
{
	void *dev = pc_dev_read_alloc(e, 0, b->len);

	if (held) {
		expect_view("device read after MAP_FIXED replaced the pinned pages (a held pin must keep the old pages)",
			    PC_CHECK_DEVICE, dev, 0, b->len, PC_GEN_INIT,
			    e->sample);
		pc_diag("%s: device still sees the replaced pages (gen %u): the lost page is detected",
			e->ops->name, PC_GEN_INIT);
	} else {
		expect_view("device read after MAP_FIXED replaced the pages (no held pin: the device follows the mapping)",
			    PC_CHECK_DEVICE, dev, 0, b->len, PC_GEN_PARENT,
			    e->sample);
		pc_diag("%s: device sees the new pages (gen %u): it holds no pin",
			e->ops->name, PC_GEN_PARENT);
	}
	free(dev);
}

static void lost_page_write(struct pc_engine *e, struct test_buf *b, int held)
{
	pc_dev_write_gen(e, 0, b->len, PC_GEN_DEVICE);
	if (held)
		expect_cpu(b, 0, b->len, PC_GEN_PARENT,
			   "CPU read after a device write to the replaced pages (must not land in the new ones)");
	else
		expect_cpu_dev_written(e, b, 0, b->len, PC_GEN_DEVICE,
				       "CPU read after a device write (no held pin: lands in the new pages)");
}

static void run_lost_page(const struct pc_case *c)
{
	const struct pc_engine_ops *ops = c->engine;
	int held = pc_engine_can(ops, PC_CAP_HELD);
	unsigned int flags = pc_engine_can(ops, PC_CAP_PIN_RW) ? PC_PIN_RW :
								 PC_PIN_RO;
	struct pc_engine e;
	struct test_buf b;

	pc_gen_name(PC_GEN_INIT, "CPU write to the pinned pages");
	pc_gen_name(PC_GEN_PARENT, "CPU write to the fresh pages after MAP_FIXED");
	pc_gen_name(PC_GEN_DEVICE, "device write after MAP_FIXED");
	pc_engine_open_or_skip(&e, ops);
	buf_create_or_skip(&b, &buf_anon, PC_GEN_INIT);
	pin_or_fail(&e, &b, flags);
	if (!pc_engine_can(ops, PC_CAP_READ_ONCE))
		expect_device(&e, 0, b.len, PC_GEN_INIT,
			      "device read before the replacement");
	replace_pages(&b, PC_GEN_PARENT);
	lost_page_read(&e, &b, held);
	if ((flags & PC_PIN_RW) && pc_engine_can(ops, PC_CAP_DEV_WRITE))
		lost_page_write(&e, &b, held);
	unpin_or_fail(&e);
	pc_engine_close(&e);
	munmap(b.map, b.map_len);
	pc_pass();
}

/* ---- forced access ------------------------------------------------------ */

/*
 * An engine with PC_CAP_FORCED writes a PROT_READ range (the CPU then
 * reads the data through it) and reads a PROT_NONE one.
 */
static void run_forced(const struct pc_case *c)
{
	size_t half;
	struct pc_engine e;
	struct test_buf b;
	void *dev;

	pc_gen_name(PC_GEN_INIT, "CPU write before mprotect");
	pc_gen_name(PC_GEN_DEVICE, "forced device write");
	pc_engine_open_or_skip(&e, c->engine);
	buf_create_or_skip(&b, &buf_anon, PC_GEN_INIT);
	half = b.len / 2;
	if (mprotect(b.mem, b.len, PROT_READ))
		pc_fail_errno("mprotect(PROT_READ)");
	pin_or_fail(&e, &b, PC_PIN_RW);
	pc_dev_write_gen(&e, 0, half, PC_GEN_DEVICE);
	expect_cpu(&b, 0, half, PC_GEN_DEVICE,
		   "CPU read through PROT_READ of a forced device write");
	expect_cpu(&b, half, b.len - half, PC_GEN_INIT,
		   "CPU read of the range the device did not write");
	if (mprotect(b.mem, b.len, PROT_NONE))
		pc_fail_errno("mprotect(PROT_NONE)");
	dev = pc_dev_read_alloc(&e, 0, b.len);
	expect_view("forced device read of a PROT_NONE range", PC_CHECK_DEVICE,
		    dev, 0, half, PC_GEN_DEVICE, e.sample);
	free(dev);
	unpin_or_fail(&e);
	pc_engine_close(&e);
	munmap(b.map, b.map_len);
	pc_pass();
}

/* ---- wrappers --------------------------------------------------------- */

static void expect_rc(struct pc_engine *e, int rc, int want, const char *what)
{
	if (rc != want)
		pc_fail("%s: returned %d (%s), expected %d (%s)", what, rc,
			rc ? strerror(-rc) : "success", want,
			want ? strerror(-want) : "success");
	if (rc && !e->err[0])
		pc_fail("%s: no message in e->err", what);
}

static void check_registry(void)
{
	const struct pc_engine_ops *const *list;
	size_t n = pc_engines(&list), i, j;

	if (n != PC_NR_ENGINES)
		pc_fail("pc_engines() lists %zu engines, PC_ENGINE_TABLE names %d",
			n, PC_NR_ENGINES);
	for (i = 0; i < n; i++) {
		if (pc_engine_find(list[i]->name) != list[i])
			pc_fail("pc_engine_find(\"%s\") does not find it",
				list[i]->name);
		for (j = 0; j < i; j++)
			if (list[j] == list[i])
				pc_fail("pc_engines() lists \"%s\" twice",
					list[i]->name);
	}
	if (pc_engine_find("no-such-engine"))
		pc_fail("pc_engine_find() finds an unknown engine");
}

static const char *slow_now;	/* what the slow engine's ops->slow says */

static const char *slow_reason(void)
{
	return slow_now;
}

/*
 * A slow engine (PC_CAP_SLOW) runs a case only on the backings the case's
 * test listed, unless PC_ENV_SLOW_ALL=1 or its ops->slow says it is not
 * slow with its device.
 */
static void check_slow_backings(void)
{
	static const struct pc_engine_ops slow = {
		.name = "slow-engine", .caps = PC_CAP_SLOW, .slow = slow_reason,
	};
	struct pc_case c = { .backing = pc_backing_find("anon"),
			     .engine = &slow };
	const char *why;

	slow_now = "it is slow";

	if (!c.backing)
		pc_fail("no anon backing");
	c.slow_backings = "thp-* anon";
	if ((why = pc_engine_skip_reason(&slow, &c)))
		pc_fail("slow engine on a listed backing skips: %s", why);
	c.slow_backings = "thp-*";
	why = pc_engine_skip_reason(&slow, &c);
	if (!why || !strstr(why, "not run on slow-engine: it is slow"))
		pc_fail("slow engine on an unlisted backing: %s",
			why ? why : "no skip reason");
	setenv(PC_ENV_SLOW_ALL, "1", 1);
	why = pc_engine_skip_reason(&slow, &c);
	unsetenv(PC_ENV_SLOW_ALL);
	if (why)
		pc_fail("%s=1 still skips: %s", PC_ENV_SLOW_ALL, why);
	slow_now = NULL;
	why = pc_engine_skip_reason(&slow, &c);
	if (why)
		pc_fail("an engine whose ops->slow says it is fast skips: %s",
			why);
}

/* A device write into a range pinned read-only is refused. */
static void check_ro_pin_write(struct test_buf *b)
{
	struct pc_engine e;
	char data[512] = { 0 };

	if (pc_engine_odirect.probe() || pc_engine_open(&e, &pc_engine_odirect))
		return;
	expect_rc(&e, pc_engine_pin(&e, b->mem, b->len, PC_PIN_RO), 0,
		  "odirect R/O pin");
	expect_rc(&e, pc_engine_dev_write(&e, 0, sizeof(data), data), -EPERM,
		  "dev_write into a range pinned read-only");
	pc_engine_close(&e);
}

/* vmsplice needs nothing from the system, so it carries these checks. */
static void run_wrappers(const struct pc_case *c)
{
	struct pc_engine e;
	struct test_buf b;
	char out[16];

	(void)c;
	pc_gen_name(PC_GEN_INIT, "CPU write before pin");
	check_registry();
	check_slow_backings();
	pc_engine_open_or_skip(&e, &pc_engine_vmsplice);
	buf_create_or_skip(&b, &buf_anon, PC_GEN_INIT);
	expect_rc(&e, pc_engine_dev_read(&e, 0, 8, out), -EINVAL,
		  "dev_read before pin");
	expect_rc(&e, pc_engine_pin(&e, b.mem, b.len, PC_PIN_RW), -EOPNOTSUPP,
		  "R/W pin on an engine without PC_CAP_PIN_RW");
	expect_rc(&e, pc_engine_pin(&e, b.mem, b.len, 0), -EINVAL,
		  "pin without flags");
	expect_rc(&e, pc_engine_pin(&e, b.mem, b.len, PC_PIN_RO), 0, "pin");
	expect_rc(&e, pc_engine_pin(&e, b.mem, b.len, PC_PIN_RO), -EBUSY,
		  "second pin");
	expect_rc(&e, pc_engine_dev_write(&e, 0, 8, out), -EOPNOTSUPP,
		  "dev_write on an engine without it");
	expect_rc(&e, pc_engine_dev_read(&e, b.len - 8, 16, out), -ERANGE,
		  "dev_read past the pinned range");
	expect_rc(&e, pc_engine_dev_read(&e, (size_t)-8, 16, out), -ERANGE,
		  "dev_read with a wrapping offset");
	expect_rc(&e, pc_engine_dev_read(&e, b.len - 16, 16, out), 0,
		  "dev_read of the last 16 bytes");
	expect_view("device read of the last 16 bytes", PC_CHECK_DEVICE, out,
		    b.len - 16, 16, PC_GEN_INIT, NULL);
	expect_rc(&e, pc_engine_unpin(&e), 0, "unpin");
	expect_rc(&e, pc_engine_unpin(&e), -EINVAL, "second unpin");
	pc_engine_close(&e);
	check_ro_pin_write(&b);
	munmap(b.map, b.map_len);
	pc_pass();
}

static void add_cases(void)
{
	const struct pc_engine_ops *const *list;
	size_t n = pc_engines(&list), i;

	pc_add_case(run_wrappers, NULL, NULL, NULL, "%s/wrappers",
		    pc_binary());
	for (i = 0; i < n; i++) {
		pc_add_case(run_roundtrip, &buf_anon, NULL, list[i],
			    "%s/roundtrip/%s", pc_binary(), list[i]->name);
		pc_add_case(run_roundtrip, &buf_thp, NULL, list[i],
			    "%s/roundtrip-thp/%s", pc_binary(), list[i]->name);
		pc_add_case(run_roundtrip, &buf_hugetlb, NULL, list[i],
			    "%s/roundtrip-hugetlb/%s", pc_binary(),
			    list[i]->name);
		pc_add_case(run_lost_page, NULL, NULL, list[i],
			    "%s/lost-page/%s", pc_binary(), list[i]->name);
		if (pc_engine_can(list[i], PC_CAP_FORCED))
			pc_add_case(run_forced, NULL, NULL, list[i],
				    "%s/forced/%s", pc_binary(),
				    list[i]->name);
	}
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "unit_engines", add_cases);
}
