// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the verification library: patterns decode, reports name
 * the right page and generation, and deliberately broken engines are
 * caught.
 *
 * The broken engines are real io_uring pins pointed at the wrong memory:
 * "stale-copy" pins a private copy taken at pin time, so the device reads
 * stale data and its writes land in a page the process never sees.  The
 * same sequence with the honest io_uring engine must pass, so a failure
 * cannot come from the check itself.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pincheck.h"

static void expect(int cond, const char *what)
{
	if (!cond)
		pc_fail("%s", what);
}

static void pattern_roundtrip_case(const struct pc_case *c)
{
	static const unsigned int gens[] = { 1, 2, 7, 255 };
	static const size_t offs[] = { 0, 8, 4096, 2u << 20, 1ull << 35 };
	unsigned int g;
	size_t i, j, off;

	(void)c;
	for (i = 0; i < PC_ARRAY_SIZE(gens); i++) {
		for (j = 0; j < PC_ARRAY_SIZE(offs); j++) {
			uint64_t w = pc_word(gens[i], offs[j]);

			expect(pc_decode(w, &g, &off) == 1, "pattern word not decoded");
			expect(g == gens[i] && off == offs[j],
			       "decoded generation or offset differs");
		}
	}
	expect(pc_decode(0, &g, &off) == 0 && g == 0, "zero word is not gen 0");
	expect(pc_decode(0xdeadbeefULL, &g, &off) == -1,
	       "foreign word decoded as a pattern");
	expect(pc_word(1, 0) != pc_word(2, 0) && pc_word(1, 0) != pc_word(1, 8),
	       "words of different generations or offsets collide");
	pc_pass();
}

/*
 * The fill steps one word to the next and the check compares the whole
 * range at once: every word must still be the one pc_word composes, at
 * any offset, and one wrong word anywhere (the last one here) must count.
 */
static void fill_and_check_case(const struct pc_case *c)
{
	static const size_t offs[] = { 0, 8, 4096, 1ull << 35 };
	size_t len = 2 * pc_page_size, n = len / 8, i, j;
	uint64_t *mem = pc_xmalloc(len);
	struct pc_check chk = {
		.what = "unit: a stepped fill", .len = len,
		.side = PC_CHECK_CPU, .cpu = mem,
	};

	(void)c;
	for (j = 0; j < PC_ARRAY_SIZE(offs); j++) {
		chk.off = offs[j];
		chk.gen = PC_GEN_CHILD;
		pc_fill(mem, offs[j], len, PC_GEN_CHILD);
		for (i = 0; i < n; i++)
			expect(mem[i] == pc_word(PC_GEN_CHILD, offs[j] + i * 8),
			       "a filled word is not the composed one");
		expect(pc_verify(&chk) == 0, "a fresh fill did not check");
		mem[n - 1] ^= 1;
		expect(pc_verify(&chk) == 8, "the one wrong last word was not counted");
	}
	chk.gen = PC_GEN_ZERO;
	pc_fill(mem, 0, len, PC_GEN_ZERO);
	expect(pc_verify(&chk) == 0 && !mem[n / 2], "a generation-0 fill is not zeros");
	free(mem);
	pc_pass();
}

/*
 * The CPUs the case process may run on (unit/runner_test.sh: one with
 * PINCHECK_ONE_CPU=1, all of them for a binary whose cases race).
 */
static void affinity_case(const struct pc_case *c)
{
	cpu_set_t allowed;

	(void)c;
	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		pc_fail_errno("sched_getaffinity");
	pc_diag("affinity: %d CPU(s)", CPU_COUNT(&allowed));
	pc_pass();
}

/*
 * A knob the binary holds (PINCHECK_UNIT_HELD_KNOB, a plain file of
 * unit/runner_test.sh's): each case must find the held value, not what a
 * case before it wrote nor what the knob held before the binary, and then
 * changes it as a case may.
 */
static void held_knob_case(const struct pc_case *c)
{
	const char *path = getenv("PINCHECK_UNIT_HELD_KNOB");
	char val[32];

	(void)c;
	if (!path || pc_knob_read(path, val, sizeof(val)))
		pc_fail("cannot read the held knob %s", path ? path : "(unset)");
	pc_diag("held knob: %s", val);
	if (strcmp(val, "0"))
		pc_fail("the held knob reads %s, not 0", val);
	if (pc_knob_set(path, "5"))
		pc_fail("cannot change the held knob");
	pc_pass();
}

#define REPORT_PAGES 4

static void report_case(const struct pc_case *c)
{
	size_t len = REPORT_PAGES * pc_page_size, bad_page = 2;
	char *dev = pc_xmalloc(len), *cpu = pc_xmalloc(len);
	struct pc_check chk = {
		.what = "unit: device read after parent write", .len = len,
		.gen = PC_GEN_PARENT, .side = PC_CHECK_DEVICE,
		.dev = dev, .cpu = cpu,
	};
	const char *s;
	char want[64];

	(void)c;
	pc_fill(dev, 0, len, PC_GEN_PARENT);
	pc_fill(cpu, 0, len, PC_GEN_PARENT);
	expect(pc_verify(&chk) == 0, "matching views reported as a mismatch");
	pc_fill(dev + bad_page * pc_page_size, bad_page * pc_page_size,
		pc_page_size, PC_GEN_INIT);
	expect(pc_verify(&chk) == pc_page_size, "bad byte count is wrong");
	s = pc_mismatch_summary();
	snprintf(want, sizeof(want), "at page %zu", bad_page);
	expect(strstr(s, want) != NULL, "report does not name the bad page");
	expect(strstr(s, "device sees gen 1 (written before fork)") != NULL,
	       "report does not name the device's generation");
	expect(strstr(s, "expected gen 2 (parent CPU write after fork)") != NULL,
	       "report does not name the expected generation");
	snprintf(want, sizeof(want), "%zu bad bytes", pc_page_size);
	expect(strstr(s, want) != NULL, "report does not count bad bytes");
	free(dev);
	free(cpu);
	pc_pass();
}

/*
 * A sampling engine's checks (pc_engine.sample): words outside the sample
 * are not judged, words inside are, a view that still holds the
 * "not transferred" filler fails without the sample, and a range the
 * sample misses entirely is never a pass.
 */
static void sample_case(const struct pc_case *c)
{
	size_t len = REPORT_PAGES * pc_page_size, words = len / 8, w;
	uint64_t *dev = pc_xmalloc(len), *cpu = pc_xmalloc(len);
	uint64_t *sample = calloc((words + 63) / 64, sizeof(uint64_t));
	struct pc_check chk = {
		.what = "unit: sampled device read", .len = len,
		.gen = PC_GEN_PARENT, .side = PC_CHECK_DEVICE,
		.dev = dev, .cpu = cpu, .sample = sample,
	};

	(void)c;
	expect(sample != NULL, "out of memory");
	pc_fill(cpu, 0, len, PC_GEN_PARENT);
	/* The device moved words 8..15 of each page: the rest is filler. */
	for (w = 0; w < words; w++) {
		int in = w % (pc_page_size / 8) >= 8 &&
			 w % (pc_page_size / 8) < 16;

		dev[w] = in ? pc_word(PC_GEN_PARENT, w * 8) : PC_WORD_UNSAMPLED;
		if (in)
			sample[w / 64] |= 1ULL << (w % 64);
	}
	expect(pc_verify(&chk) == 0, "unsampled words were judged");
	dev[pc_page_size / 8 + 9] = pc_word(PC_GEN_INIT, pc_page_size + 72);
	expect(pc_verify(&chk) == 8, "a bad sampled word was not caught");
	expect(strstr(pc_mismatch_summary(), "at page 1") != NULL,
	       "sampled mismatch report does not name the page");
	dev[pc_page_size / 8 + 9] = pc_word(PC_GEN_PARENT, pc_page_size + 72);
	chk.sample = NULL;
	expect(pc_verify(&chk) != 0, "filler words passed a check without the sample");
	expect(strstr(pc_mismatch_summary(), "not transferred") != NULL,
	       "filler words not described as not transferred");
	chk.sample = sample;
	chk.off = 0;
	chk.len = 64;	/* words 0..7: outside the sample */
	expect(pc_verify(&chk) != 0, "a range outside the sample passed");
	expect(strstr(pc_mismatch_summary(), "nothing judged") != NULL,
	       "an unsampled range is not reported as unjudged");
	free(sample);
	free(dev);
	free(cpu);
	pc_pass();
}

/* ---- the broken engine: an honest io_uring pin of a private copy ---- */

struct stale_priv {
	struct pc_engine inner;
	void *copy;
	size_t len;
};

static const char *stale_probe(void)
{
	return pc_engine_io_uring.probe ? pc_engine_io_uring.probe() : NULL;
}

static int stale_open(struct pc_engine *e)
{
	struct stale_priv *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	rc = pc_engine_open(&p->inner, &pc_engine_io_uring);
	if (rc) {
		free(p);
		return rc;
	}
	e->priv = p;
	return 0;
}

static int stale_pin(struct pc_engine *e, void *addr, size_t len,
		     unsigned int flags)
{
	struct stale_priv *p = e->priv;

	p->copy = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->copy == MAP_FAILED)
		return -errno;
	p->len = len;
	memcpy(p->copy, addr, len);
	return pc_engine_pin(&p->inner, p->copy, len, flags);
}

static int stale_dev_read(struct pc_engine *e, size_t off, size_t len,
			  void *out)
{
	struct stale_priv *p = e->priv;

	return pc_engine_dev_read(&p->inner, off, len, out);
}

static int stale_dev_write(struct pc_engine *e, size_t off, size_t len,
			   const void *data)
{
	struct stale_priv *p = e->priv;

	return pc_engine_dev_write(&p->inner, off, len, data);
}

static int stale_unpin(struct pc_engine *e)
{
	struct stale_priv *p = e->priv;
	int rc = pc_engine_unpin(&p->inner);

	munmap(p->copy, p->len);
	return rc;
}

static void stale_close(struct pc_engine *e)
{
	struct stale_priv *p = e->priv;

	pc_engine_close(&p->inner);
	free(p);
	e->priv = NULL;
}

static const struct pc_engine_ops stale_engine = {
	.name = "io_uring-stale-copy",
	.caps = PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RW |
		PC_CAP_LONGTERM | PC_CAP_HELD,
	.probe = stale_probe,
	.open = stale_open,
	.pin = stale_pin,
	.dev_read = stale_dev_read,
	.dev_write = stale_dev_write,
	.unpin = stale_unpin,
	.close = stale_close,
};

/* Device read after a CPU write: the broken engine must be caught. */
static size_t check_stale_read(struct pc_engine *e, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "unit: device read after CPU write", .r = r,
		.len = r->len, .gen = PC_GEN_CPU_LATE, .side = PC_CHECK_DEVICE,
		.cpu = r->mem,
	};
	size_t bad;
	void *dev;

	pc_region_cpu_write(r, 0, r->len, PC_GEN_CPU_LATE);
	dev = pc_dev_read_alloc(e, 0, r->len);
	chk.dev = dev;
	bad = pc_verify(&chk);
	free(dev);
	return bad;
}

/* CPU read after a device write: the broken engine must be caught. */
static size_t check_private_write(struct pc_engine *e, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "unit: CPU read after device write", .r = r,
		.len = r->len, .gen = PC_GEN_DEVICE, .side = PC_CHECK_CPU,
		.cpu = r->mem,
	};

	pc_dev_write_gen(e, 0, r->len, PC_GEN_DEVICE);
	return pc_verify(&chk);
}

static void broken_engine_case(const struct pc_case *c)
{
	int broken = c->scenario != NULL;
	struct pc_engine e;
	struct pc_region r;
	size_t bad_read, bad_write, len;

	pc_engine_open_or_skip(&e, broken ? &stale_engine : &pc_engine_io_uring);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	bad_read = check_stale_read(&e, &r);
	bad_write = check_private_write(&e, &r);
	len = r.len;
	pc_engine_close(&e);
	pc_region_destroy(&r);	/* clears r */
	if (!broken && (bad_read || bad_write))
		pc_fail("the honest engine was reported incoherent: %s",
			pc_mismatch_summary());
	if (broken && bad_read != len)
		pc_fail("stale device read not caught (%zu of %zu bytes bad)",
			bad_read, len);
	if (broken && bad_write != len)
		pc_fail("device write to a private page not caught (%zu of %zu bytes bad)",
			bad_write, len);
	pc_pass();
}

/* Sleeps in the kernel until the watchdog kills it (PINCHECK_UNIT_HANG). */
static void hang_case(const struct pc_case *c)
{
	(void)c;
	for (;;)
		pause();
}

static void *report_own_timeout(void *arg)
{
	(void)arg;
	pc_sleep_ms(100);
	pc_timeout("livelock after 100 ms: the unit's own watch");
}

/* Its main thread sleeps for good; a second thread reports the TIMEOUT. */
static void self_timeout_case(const struct pc_case *c)
{
	pthread_t tid;

	(void)c;
	if (pthread_create(&tid, NULL, report_own_timeout, NULL))
		pc_fail("pthread_create failed");
	for (;;)
		pause();
}

/* This binary again with @env set and @args, its output to read; or skip. */
static FILE *popen_self(const char *env, const char *args)
{
	char self[256], cmd[400];
	ssize_t n;
	FILE *p;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || n >= (ssize_t)sizeof(self) - 1)
		pc_skip("cannot read /proc/self/exe");
	self[n] = '\0';
	snprintf(cmd, sizeof(cmd), "%s '%s' %s 2>&1", env, self, args);
	p = popen(cmd, "r");
	if (!p)
		pc_fail("popen: %s", strerror(errno));
	return p;
}

/* Run this binary again (popen_self); did a line of its output hold @a, @b? */
static void self_output_has(const char *env, const char *args, const char *a,
			    const char *b, int *has_a, int *has_b)
{
	char line[512];
	FILE *p = popen_self(env, args);

	*has_a = *has_b = 0;
	while (fgets(line, sizeof(line), p)) {
		*has_a |= strstr(line, a) != NULL;
		*has_b |= strstr(line, b) != NULL;
	}
	pclose(p);
}

/*
 * The watchdog's TIMEOUT says where the case process waited: run this
 * binary's hanging case under a 1 s watchdog and read its TAP stream.
 */
static void timeout_diag_case(const struct pc_case *c)
{
	int timeout, state;

	(void)c;
	self_output_has("PINCHECK_UNIT_HANG=1", "-T 1",
			"not ok 1 unit_verify/hang/pause/-/- # TIMEOUT",
			"at the timeout: state S,", &timeout, &state);
	expect(timeout, "the hanging case was not reported as a TIMEOUT");
	expect(state, "the TIMEOUT does not say the case process slept (state S)");
	pc_pass();
}

/*
 * A case's own TIMEOUT (pc_timeout from a second thread while the first
 * sleeps): reported with its reason, not the watchdog's, and the binary
 * goes on to its totals.
 */
static void self_timeout_reported_case(const struct pc_case *c)
{
	int own, totals;

	(void)c;
	self_output_has("PINCHECK_UNIT_HANG=1",
			"-T 20 -t 'unit_verify/hang/self-timeout/*'",
			"not ok 1 unit_verify/hang/self-timeout/-/- # TIMEOUT livelock after 100 ms: the unit's own watch",
			"# Totals: pass:0 fail:1 ", &own, &totals);
	expect(own, "the case's own TIMEOUT was not reported with its reason");
	expect(totals, "the binary did not reach its totals after the case's own TIMEOUT");
	pc_pass();
}

/*
 * Run by oom_skip_case in a child binary: a memory cgroup limited to its
 * usage plus 4 MiB, then 64 MiB of mlocked (unswappable) memory touched
 * page by page, so that the memcg OOM killer ends the case process.
 */
static void oom_victim_case(const struct pc_case *c)
{
	const size_t len = 64UL << 20;
	char why[PC_REASON_MAX];
	struct pc_memcg m;
	long long cur;
	size_t off;
	char *p;
	int rc;

	(void)c;
	rc = pc_memcg_enter(&m, why, sizeof(why));
	if (rc)
		pc_skip("%s", why);
	cur = pc_memcg_current(&m);
	if (cur < 0 || pc_memcg_set_max(&m, cur + (4LL << 20)))
		pc_skip("cannot limit %s", m.dir);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mlock2(p, len, MLOCK_ONFAULT))
		pc_skip("mmap/mlock2: %s", strerror(errno));
	for (off = 0; off < len; off += pc_page_size)
		p[off] = 1;
	pc_fail("64 MiB of mlocked memory fit under a limit of usage + 4 MiB");
}

/* An OOM-killed case process is a setup SKIP that says so, not a FAIL. */
static void oom_skip_case(const struct pc_case *c)
{
	char line[512], other[512] = "";
	int oom = 0;
	FILE *p;

	(void)c;
	p = popen_self("PINCHECK_UNIT_OOM=1", "-T 60");
	while (fgets(line, sizeof(line), p)) {
		if (strstr(line, "ok 1 unit_verify/oom/victim/-/- # SKIP setup: the case process was OOM-killed"))
			oom = 1;
		else if (!strncmp(line, "ok 1 ", 5) || !strncmp(line, "not ok 1 ", 9))
			snprintf(other, sizeof(other), "%s", line);
	}
	pclose(p);
	if (!oom && strstr(other, "# SKIP "))
		pc_skip("the OOM victim could not run: %s", strstr(other, "# SKIP ") + 7);
	expect(oom, "the OOM-killed case was not reported as a setup SKIP");
	pc_pass();
}

static void add_cases(void)
{
	static const char *const backings[] = { "anon", "thp-pmd",
						"hugetlb-2048kB", "memfd-shared" };
	size_t i;

	/* unit/runner_test.sh: a knob held from the first case to the end */
	if (getenv("PINCHECK_UNIT_HELD_KNOB"))
		pc_cases_hold_knob(getenv("PINCHECK_UNIT_HELD_KNOB"), "0",
				   "a knob held");
	if (getenv("PINCHECK_UNIT_OOM")) {
		pc_add_case(oom_victim_case, NULL, NULL, NULL,
			    "unit_verify/oom/victim/-/-");
		return;
	}
	if (getenv("PINCHECK_UNIT_HANG")) {
		pc_add_case(hang_case, NULL, NULL, NULL,
			    "unit_verify/hang/pause/-/-");
		pc_add_case(self_timeout_case, NULL, NULL, NULL,
			    "unit_verify/hang/self-timeout/-/-");
		return;
	}
	pc_add_case(pattern_roundtrip_case, NULL, NULL, NULL,
		    "unit_verify/pattern/roundtrip/-/-");
	pc_add_case(fill_and_check_case, NULL, NULL, NULL,
		    "unit_verify/pattern/fill-and-check/-/-");
	pc_add_case(report_case, NULL, NULL, NULL,
		    "unit_verify/report/names-page-and-gen/-/-");
	pc_add_case(sample_case, NULL, NULL, NULL,
		    "unit_verify/report/sampled-device/-/-");
	for (i = 0; i < PC_ARRAY_SIZE(backings); i++) {
		const struct pc_backing *bk = pc_backing_find(backings[i]);

		if (!bk)
			continue;
		pc_add_case(broken_engine_case, &stale_engine, bk,
			    &stale_engine, "unit_verify/broken-engine/%s/%s",
			    bk->name, stale_engine.name);
		pc_add_case(broken_engine_case, NULL, bk, &pc_engine_io_uring,
			    "unit_verify/honest-engine/%s/io_uring", bk->name);
	}
	pc_add_case(timeout_diag_case, NULL, NULL, NULL,
		    "unit_verify/harness/timeout-says-where/-/-");
	pc_add_case(self_timeout_reported_case, NULL, NULL, NULL,
		    "unit_verify/harness/own-timeout-reported/-/-");
	pc_add_case(oom_skip_case, NULL, NULL, NULL,
		    "unit_verify/harness/oom-kill-is-setup-skip/-/-");
	pc_add_case(affinity_case, NULL, NULL, NULL,
		    "unit_verify/harness/affinity/-/-");
	if (getenv("PINCHECK_UNIT_HELD_KNOB")) {
		pc_add_case(held_knob_case, NULL, NULL, NULL,
			    "unit_verify/harness/held-knob/first/-");
		pc_add_case(held_knob_case, NULL, NULL, NULL,
			    "unit_verify/harness/held-knob/second/-");
	}
	/* unit/runner_test.sh: a binary whose cases race keeps every CPU */
	if (getenv("PINCHECK_UNIT_RACES"))
		pc_cases_race_across_cpus();
	/* unit/runner_test.sh: the harness must refuse a repeated id. */
	if (getenv("PINCHECK_UNIT_DUPLICATE_ID"))
		pc_add_case(pattern_roundtrip_case, NULL, NULL, NULL,
			    "unit_verify/pattern/roundtrip/-/-");
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "unit_verify", add_cases);
}
