// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_ro_pin: VFIO maps, where read-only long-term pins come from in real
 * life (QEMU with a vIOMMU maps guest memory without
 * VFIO_DMA_MAP_FLAG_WRITE), with a real DMA device (S5, S15, S1, S2).
 *
 * Read-only maps, then the CPU writes and the device must read the CPU's
 * data:
 *   ro-map-cpu-write      memory as it comes: anon (control), never
 *                         touched, read-faulted (the zero page in the
 *                         PTE), the huge zero page
 *   prev-shared-cpu-write an earlier fork + child exit left the PTE R/O
 *   mprotect-cpu-write    mprotect(PROT_READ) before the map, R/W after
 * A R/O map that pins the shared zero page never sees the CPU's write
 * (Debian 6.1; fixed upstream by 84209e87c696, v6.2): the failure says
 * the device reads the zero page, with the PFNs.
 *
 * Read-write maps:
 *   rw-map-fork-parent-writes / rw-map-fork-child-writes
 *                         a live child; parent and child write in both
 *                         orders: the device sees the parent's data, the
 *                         parent the device's, the child only its own
 *   rw-map-dontfork       MADV_DONTFORK: the child has no mapping
 *   munmap-while-mapped   the range is unmapped while the IOMMU still maps
 *                         it: device writes must not appear anywhere in
 *                         the process, yet the device reads them back
 *
 * And: map-zeropage-bounded (R/O and R/W maps of zero pages return; the
 * harness watchdog turns a pin loop that never ends into a TIMEOUT), and
 * iommu-fault-control (a device read of an unmapped IOVA must be reported
 * as an IOMMU fault, not pass for stale zeros).
 *
 * The device transfers a sample of each region (edu: 100 ms per DMA; see
 * lib/engines/vfio/engine.c); every check judges the words it really moved.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pincheck.h"
#include "vfio_dev.h"

#define GEN_AFTER_MUNMAP 8	/* device write after the munmap */
#define BOUNDED_ROUNDS 3

enum prep { PREP_NONE, PREP_PREV_SHARED, PREP_MPROTECT };
enum order { PARENT_FIRST, CHILD_FIRST };

struct vfio_scenario {
	const char *name;
	void (*run)(const struct pc_case *c);
	const char *const *backings;	/* NULL: no backing ("-") */
	int prep;			/* enum prep or enum order */
};

/* ---- read-only maps ---------------------------------------------------- */

static void ro_map_case(const struct pc_case *c)
{
	const struct vfio_scenario *s = c->scenario;
	struct pc_engine e;
	struct pc_region r;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	if (s->prep == PREP_PREV_SHARED)
		pc_fork_and_reap();
	if (s->prep == PREP_MPROTECT && mprotect(r.mem, r.len, PROT_READ))
		pc_fail_errno("mprotect(PROT_READ)");
	pc_pin_region_or_skip(&e, &r, PC_PIN_RO);
	/* Right after the map the PTEs show the pages the IOMMU maps. */
	pc_region_snap(&r, "the CPU write (right after the R/O map)");
	if (s->prep == PREP_MPROTECT &&
	    mprotect(r.mem, r.len, PROT_READ | PROT_WRITE))
		pc_fail_errno("mprotect(PROT_READ | PROT_WRITE)");
	pc_expect_device_sees(&e, &r, r.gen,
			      "device read right after the R/O map");
	pc_region_cpu_write(&r, 0, r.len, PC_GEN_CPU_LATE);
	pc_expect_device_sees_ro_pinned(&e, &r, PC_GEN_CPU_LATE,
					"device read of a CPU write after the R/O map");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- read-write map, then fork ----------------------------------------- */

static void __attribute__((noreturn))
fork_child(enum order o, struct pc_child *ch, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "child's view at the end", .r = r, .len = r->len,
		.gen = PC_GEN_CHILD, .side = PC_CHECK_CHILD, .cpu = r->mem,
	};

	if (o == PARENT_FIRST && pc_child_await(ch->to_child, NULL))
		_exit(3);
	pc_region_cpu_write(r, 0, r->len, PC_GEN_CHILD);
	pc_child_tell(ch->to_parent, 'w');
	if (pc_child_await(ch->to_child, NULL))
		_exit(3);
	pc_child_verify_or_exit(ch, &chk);
	_exit(0);
}

static void judge_child(struct pc_child *ch)
{
	char summary[PC_REASON_MAX] = "", how[64];
	int status;

	status = pc_child_collect(ch, 'c', summary, sizeof(summary));
	if (summary[0])
		pc_fail("child isolation: %s", summary);
	if (status)
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
}

static void rw_fork_case(const struct pc_case *c)
{
	const struct vfio_scenario *s = c->scenario;
	struct pc_engine e;
	struct pc_region r;
	struct pc_child ch;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_region_snap(&r, "fork");
	if (!pc_child_fork(&ch))
		fork_child(s->prep, &ch, &r);
	if (s->prep == CHILD_FIRST && pc_child_await(ch.to_parent, NULL))
		pc_fail("child died before its write");
	pc_region_cpu_write(&r, 0, r.len, PC_GEN_PARENT);
	if (s->prep == PARENT_FIRST) {
		pc_child_tell(ch.to_child, 'p');
		if (pc_child_await(ch.to_parent, NULL))
			pc_fail("child died before its write");
	}
	pc_coherence_round(&e, &r, PC_GEN_PARENT, "after fork and both writes");
	judge_child(&ch);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

static void rw_dontfork_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct pc_region r;
	struct pc_child ch;
	char how[64];
	int status;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	if (madvise(r.mem, r.len, MADV_DONTFORK))
		pc_fail_errno("madvise(MADV_DONTFORK)");
	pc_region_snap(&r, "fork");
	if (!pc_child_fork(&ch)) {
		*(volatile char *)r.mem;	/* must fault: not mapped */
		_exit(2);
	}
	status = pc_child_reap(&ch);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
		pc_fail("child still had the MADV_DONTFORK range: child %s",
			pc_wait_describe(status, how, sizeof(how)));
	pc_region_cpu_write(&r, 0, r.len, PC_GEN_PARENT);
	pc_coherence_round(&e, &r, PC_GEN_PARENT, "after a MADV_DONTFORK fork");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- munmap while the IOMMU maps the range ------------------------------ */

/*
 * Does a readable mapping of this process hold a word of generation @gen?
 * The dead part of the stack (below this frame) is left out: the copies
 * the test and the engine made of the data went through it.
 */
static int process_holds_gen(unsigned int gen, char *where, size_t len)
{
	/* Magic and generation (bits 63..40), never a whole pattern word. */
	uint64_t want = PC_MAGIC << 8 | gen, *buf;
	unsigned long start, end, a;
	char line[512], perms[8], name[256];
	FILE *maps = fopen("/proc/self/maps", "re");
	int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC), found = 0;
	size_t chunk = 1 << 16, i;
	ssize_t n;

	buf = pc_xmalloc(chunk);
	if (!maps || mem < 0)
		pc_fail_errno("open /proc/self/maps or /proc/self/mem");
	while (!found && fgets(line, sizeof(line), maps)) {
		name[0] = '\0';
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &start, &end,
			   perms, name) < 3 || perms[0] != 'r' ||
		    !strncmp(name, "[v", 2))
			continue;
		/* Below this frame the stack is dead scratch of our copies. */
		if (!strcmp(name, "[stack]"))
			start = (unsigned long)&line & ~7UL;
		for (a = start; !found && a < end; a += chunk) {
			n = pread(mem, buf, end - a < chunk ? end - a : chunk,
				  a);
			for (i = 0; n > 0 && i < (size_t)n / 8; i++) {
				if (buf[i] >> 40 != want)
					continue;
				snprintf(where, len, "0x%lx in %s", a + i * 8,
					 name[0] ? name : "an anonymous mapping");
				found = 1;
				break;
			}
		}
	}
	memset(buf, 0, chunk);
	free(buf);
	fclose(maps);
	close(mem);
	return found;
}

/* The device writes @gen over the range; no copy of the data stays here. */
static void device_write_leaving_no_copy(struct pc_engine *e, size_t len,
					 unsigned int gen)
{
	void *buf = pc_xmalloc(len);
	int rc;

	pc_fill(buf, 0, len, gen);
	rc = pc_engine_dev_write(e, 0, len, buf);
	memset(buf, 0, len);
	free(buf);
	if (rc)
		pc_fail("device write after munmap: %s", e->err);
}

static void munmap_case(const struct pc_case *c)
{
	struct pc_check chk = {
		.what = "device read of its own write after munmap",
		.off = 0, .gen = GEN_AFTER_MUNMAP, .side = PC_CHECK_DEVICE,
	};
	char where[320];
	struct pc_engine e;
	struct pc_region r;
	void *dev;

	pc_gen_name(GEN_AFTER_MUNMAP, "device write after munmap");
	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	if (munmap(r.mem, r.len))
		pc_fail_errno("munmap of the mapped range");
	if (pc_map_fresh(r.mem, r.len))
		pc_fail_errno("mmap over the unmapped range");
	pc_fill(r.mem, 0, r.len, PC_GEN_OTHER);
	if (!process_holds_gen(PC_GEN_OTHER, where, sizeof(where)))
		pc_fail("the process scan is blind: it misses the new mapping's own data");
	device_write_leaving_no_copy(&e, r.len, GEN_AFTER_MUNMAP);
	if (process_holds_gen(GEN_AFTER_MUNMAP, where, sizeof(where)))
		pc_fail("a device write to unmapped memory appeared in the process at %s",
			where);
	pc_expect_cpu_sees(&r, PC_GEN_OTHER,
			   "CPU read of the new mapping after the device write");
	dev = pc_dev_read_alloc(&e, 0, r.len);
	chk.len = r.len;
	chk.dev = dev;
	chk.sample = e.sample;
	pc_verify_or_fail(&chk);
	pc_diag("the device wrote and read back its data in the unmapped pages; none of it reached the process");
	free(dev);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- bounded maps of zero pages, and the fault control ------------------ */

static void bounded_case(const struct pc_case *c)
{
	const unsigned int pins[] = { PC_PIN_RO, PC_PIN_RW };
	struct pc_engine e;
	struct pc_region r;
	size_t i, round;

	pc_engine_open_or_skip(&e, c->engine);
	for (round = 0; round < BOUNDED_ROUNDS; round++) {
		for (i = 0; i < PC_ARRAY_SIZE(pins); i++) {
			pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
			pc_pin_region_or_skip(&e, &r, pins[i]);
			if (pc_engine_unpin(&e))
				pc_fail("unmap: %s", e.err);
			pc_region_destroy(&r);
		}
	}
	pc_diag("%d R/O and %d R/W maps of %s returned", BOUNDED_ROUNDS,
		BOUNDED_ROUNDS, c->backing->name);
	pc_engine_close(&e);
	pc_pass();
}

static void fault_control_case(const struct pc_case *c)
{
	struct pc_engine e;
	int rc;

	pc_engine_open_or_skip(&e, c->engine);
	rc = pc_vfio_read_unmapped(&e, 64);
	if (rc == -ENOENT)
		pc_skip("%s", e.err);
	if (!rc)
		pc_fail("the device read an unmapped IOVA and no IOMMU fault was seen: a faulting read would pass for stale zeros");
	if (rc != -EFAULT)
		pc_fail("device read of an unmapped IOVA: %s", e.err);
	pc_diag("told apart: %s", e.err);
	pc_engine_close(&e);
	pc_pass();
}

/* ---- the cases ---------------------------------------------------------- */

static const char *const ro_backings[] = {
	"anon", "untouched", "zeropage", "huge-zeropage", NULL
};
static const char *const anon_only[] = { "anon", NULL };
static const char *const zero_backings[] = {
	"zeropage", "huge-zeropage", NULL
};

static const struct vfio_scenario scenarios[] = {
	{ "ro-map-cpu-write", ro_map_case, ro_backings, PREP_NONE },
	{ "prev-shared-cpu-write", ro_map_case, anon_only, PREP_PREV_SHARED },
	{ "mprotect-cpu-write", ro_map_case, anon_only, PREP_MPROTECT },
	{ "rw-map-fork-parent-writes", rw_fork_case, anon_only, PARENT_FIRST },
	{ "rw-map-fork-child-writes", rw_fork_case, anon_only, CHILD_FIRST },
	{ "rw-map-dontfork", rw_dontfork_case, anon_only, 0 },
	{ "munmap-while-mapped", munmap_case, anon_only, 0 },
	{ "map-zeropage-bounded", bounded_case, zero_backings, 0 },
	{ "iommu-fault-control", fault_control_case, NULL, 0 },
};

static void add_scenario(const struct vfio_scenario *s,
			 const struct pc_engine_ops *eng)
{
	const struct pc_backing *bk;
	size_t i;

	if (!s->backings) {
		pc_add_case(s->run, s, NULL, eng, "%s/%s/-/%s", pc_binary(),
			    s->name, eng->name);
		return;
	}
	for (i = 0; s->backings[i]; i++) {
		bk = pc_backing_find(s->backings[i]);
		if (bk)
			pc_add_case(s->run, s, bk, eng, "%s/%s/%s/%s",
				    pc_binary(), s->name, bk->name, eng->name);
	}
}

static void add_cases(void)
{
	const struct pc_engine_ops *const engines[] = {
		&pc_engine_vfio, &pc_engine_vfio_iommufd,
	};
	size_t i, j;

	pc_slow_engine_backings = "*";
	pc_gen_name(PC_GEN_INIT, "CPU write before the map (or fork)");
	pc_gen_name(PC_GEN_CPU_LATE, "CPU write after the map");
	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
		for (j = 0; j < PC_ARRAY_SIZE(engines); j++)
			add_scenario(&scenarios[i], engines[j]);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "vfio_ro_pin", add_cases);
}
