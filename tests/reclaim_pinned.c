// SPDX-License-Identifier: GPL-2.0
/*
 * reclaim_pinned: reclaim and swap around a pinned range (S10).
 *
 *   pageout         MADV_PAGEOUT on a range pinned R/W long-term and on an
 *                   unpinned twin: the twin must be swapped out (else the
 *                   mover did not run: SKIP), the pinned pages must stay
 *                   present with the same PFNs (pagemap) and coherent
 *   memcg-pressure  the same under a memory cgroup whose memory.max (v1:
 *                   memory.limit_in_bytes) leaves a few MiB of headroom,
 *                   filled by a pressure buffer: reclaim must take the twin
 *                   and leave the pinned pages alone
 *   swapin-pin      a range swapped out first (every page a swap entry),
 *                   then pinned: the pin swaps it in, the device and the
 *                   CPU both see the data written before the swap-out
 *   pin-pageout-race  S10 sequence B: a thread pages the range out with
 *                   MADV_PAGEOUT in a loop while the case pins it (io_uring:
 *                   pin_user_pages_fast, GUP-fast), writes it from the CPU,
 *                   has the device read it and write it, and unpins, round
 *                   after round.  A pin racing with the unmap of reclaim
 *                   must never end up on a page the CPU no longer maps (a
 *                   wrong COW on the next write fault).  Evidence: both
 *                   threads log CLOCK_MONOTONIC intervals, the case one
 *                   per pin call, the pager one per MADV_PAGEOUT pass that
 *                   unmapped pages of the range (present in pagemap before
 *                   the pass, a swap entry after it); a round raced when
 *                   its pin interval intersects such a pass.  PASS needs
 *                   one raced round; none: SKIP with the counts
 *
 * All three need swap (run_tests.sh sets up a zram swap device; by hand:
 * swapon a device) and skip with that reason without it.  The cgroup is
 * made below this process's own one and removed after the case (cgroup2
 * is mounted for the case when no memory hierarchy is).
 *
 * Control: "control-mover-ignores-pin" plays a swap-out and swap-in that
 * ignore the pin (the CPU's data on fresh pages, mapped in place): the
 * same checks must report the loss.  It needs no swap.
 * "control-pageout-race-remap" runs the race rounds and, in round
 * RACE_CONTROL_ROUND, maps fresh pages over the pinned ones right after
 * the pin: that round, and no earlier one, must report the mismatch.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "pincheck.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PAGEOUT_TRIES 5
#define MEMCG_HEADROOM (4LL << 20)
#define PRESSURE_BYTES (48UL << 20)
#define PRESSURE_PASSES 2
#define CASE_TIMEOUT_S 40
#define RACE_MS 3000		/* race at least this long, */
#define RACE_MIN_ROUNDS 8	/* and at least this many rounds, */
#define RACE_MAX_MS 15000	/* but no longer than this */
#define RACE_CONTROL_ROUND 3
#define RACE_GAP_MS 1		/* unpinned between rounds */
#define RACE_LOG_MAX (1u << 16)	/* intervals logged per side */
#define RACE_EVAL_MS 100	/* look for evidence at most this often */

/*
 * The CPU alternates two generations from round to round, so that pages a
 * device cannot write (gup_test) hold an older one than the CPU after a
 * loss, and a lost pin shows in the next device read.
 */
enum { GEN_RACE_CPU = 8, GEN_RACE_DEVICE = 9, GEN_RACE_CPU_ALT = 10 };

enum kind { PAGEOUT, MEMCG_PRESSURE, SWAPIN_PIN, PAGEOUT_RACE };

struct reclaim_scenario {
	const char *name;
	enum kind kind;
	const char *backings;
};

static const struct reclaim_scenario scenarios[] = {
	{ "pageout", PAGEOUT, "anon thp-pmd memfd-shared" },
	{ "memcg-pressure", MEMCG_PRESSURE, "anon memfd-shared" },
	{ "swapin-pin", SWAPIN_PIN, "anon thp-pmd memfd-shared" },
	{ "pin-pageout-race", PAGEOUT_RACE, "anon" },
};

static const char *const counters[] = {
	"pswpout", "pswpin", "pgsteal_anon", "pgsteal_file", "thp_swpout",
	"thp_split_page", NULL,
};

static void need_swap(void)
{
	if (!pc_swap_enabled())
		pc_skip("needs swap: none configured (run_tests.sh sets up a zram swap device; by hand: swapon a device)");
}

static void pageout(struct pc_region *x)
{
	if (!madvise(x->mem, x->len, MADV_PAGEOUT))
		return;
	if (errno == EINVAL)
		pc_skip("MADV_PAGEOUT not supported by this kernel (< 5.4)");
	pc_fail_errno("madvise(MADV_PAGEOUT)");
}

static void read_each_page(const struct pc_region *x)
{
	const volatile char *p = x->mem;
	size_t off;

	for (off = 0; off < x->len; off += pc_page_size)
		(void)p[off];
}

static size_t evicted(const struct pc_region *x, char *desc, size_t len)
{
	struct pc_page_census pc;

	pc_page_census(x, &pc);
	pc_page_census_str(&pc, desc, len);
	return pc.pages - pc.present;
}

/* The twin must be out of memory now, or reclaim did not run: SKIP. */
static void expect_twin_evicted(struct pc_mover_setup *s, const char *what,
				const struct pc_counters *cnt)
{
	char desc[256];
	size_t out = evicted(&s->t, desc, sizeof(desc));

	pc_diag("unpinned twin after %s: %s", what, desc);
	if (!out)
		pc_skip("no event: %s evicted no page of the unpinned twin (pswpout %+lld): reclaim did not run over it",
			what, pc_counters_delta(cnt, "pswpout"));
}

/*
 * No pinned page may be swapped out.  A shared mapping may lose its PTEs
 * to reclaim (the page cache keeps the pinned page): the next access must
 * then map the same pages again.
 */
static void expect_pinned_resident(struct pc_mover_setup *s, const char *what)
{
	struct pc_page_census pc;
	char desc[256];

	pc_page_census(&s->r, &pc);
	pc_diag("pinned region after %s: %s", what,
		pc_page_census_str(&pc, desc, sizeof(desc)));
	if (pc.swapped)
		pc_fail("%s swapped out %zu pinned page(s): %s", what,
			pc.swapped, desc);
	if (pc.present != pc.pages) {
		if (!(s->r.bk->flags & PC_BK_SHARED))
			pc_fail("%s unmapped %zu pinned page(s) of a private mapping: %s",
				what, pc.pages - pc.present, desc);
		read_each_page(&s->r);
		pc_page_census(&s->r, &pc);
		pc_diag("pinned pages were unmapped (shared mapping); after a read fault: %s",
			pc_page_census_str(&pc, desc, sizeof(desc)));
	}
	pc_expect_pinned_pages_stayed(&s->r, what);
}

static void pageout_both(struct pc_mover_setup *s)
{
	char desc[256];
	int i;

	for (i = 0; i < PAGEOUT_TRIES; i++) {
		pageout(&s->r);
		pageout(&s->t);
		if (evicted(&s->t, desc, sizeof(desc)) == s->t.len / pc_page_size)
			break;
		pc_sleep_ms(20);
	}
}

/* Fill memory in the cgroup until reclaim had to make room. */
static void press(void)
{
	char *p = mmap(NULL, PRESSURE_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t off;
	int pass;

	if (p == MAP_FAILED)
		pc_fail_errno("mmap of the pressure buffer");
	madvise(p, PRESSURE_BYTES, MADV_NOHUGEPAGE);
	for (pass = 0; pass < PRESSURE_PASSES; pass++)
		for (off = 0; off < PRESSURE_BYTES; off += pc_page_size)
			p[off] = (char)pass + 1;
	munmap(p, PRESSURE_BYTES);
}

/*
 * The cgroup's pressure pushes PRESSURE_BYTES through a limit of the
 * usage plus MEMCG_HEADROOM: nearly all of it must go to swap, or the
 * memcg OOM killer ends the case.  Too little free swap is a setup
 * problem, not a verdict.
 */
static void need_free_swap_for_pressure(void)
{
	long long free_kb = pc_meminfo_kb("SwapFree");
	long long need_kb = (long long)(PRESSURE_BYTES + 2 * MEMCG_HEADROOM) >> 10;

	if (free_kb >= 0 && free_kb < need_kb)
		pc_skip("needs %lld MiB of free swap for the cgroup's pressure, SwapFree is %lld MiB: free swap or swapon more (run_tests.sh sets up a zram swap device)",
			need_kb >> 10, free_kb >> 10);
}

static void memcg_case_setup(const struct pc_case *c,
			     struct pc_mover_setup *s, struct pc_memcg *m)
{
	char why[PC_REASON_MAX];
	long long cur;
	int rc;

	need_free_swap_for_pressure();
	rc = pc_memcg_enter(m, why, sizeof(why));
	if (rc > 0)
		pc_skip("%s", why);
	if (rc < 0)
		pc_fail("%s", why);
	pc_mover_setup(c, s, -1, 1, "memcg reclaim");
	cur = pc_memcg_current(m);
	if (cur < 0)
		pc_fail("cannot read the usage of %s", m->dir);
	if (pc_memcg_set_max(m, cur + MEMCG_HEADROOM))
		pc_fail("cannot set the limit of %s", m->dir);
	pc_diag("memory cgroup %s (%s): limit %lld kB = usage %lld kB + %lld kB",
		m->dir, m->v2 ? "v2 memory.max" : "v1 memory.limit_in_bytes",
		(cur + MEMCG_HEADROOM) >> 10, cur >> 10, MEMCG_HEADROOM >> 10);
}

static void reclaim_case(const struct pc_case *c)
{
	const struct reclaim_scenario *sc = c->scenario;
	struct pc_mover_setup s;
	struct pc_counters cnt;
	struct pc_memcg m;

	need_swap();
	pc_gen_name(PC_GEN_PARENT, "CPU write after reclaim");
	if (sc->kind == MEMCG_PRESSURE)
		memcg_case_setup(c, &s, &m);
	else
		pc_mover_setup(c, &s, -1, 1, sc->name);
	pc_counters_start(&cnt, counters);
	if (sc->kind == MEMCG_PRESSURE)
		press();
	else
		pageout_both(&s);
	pc_counters_stop(&cnt);
	if (sc->kind == MEMCG_PRESSURE)
		pc_memcg_set_max(&m, -1);
	pc_counters_print(&cnt, "counters");
	expect_twin_evicted(&s, sc->name, &cnt);
	expect_pinned_resident(&s, sc->name);
	pc_region_cpu_write(&s.r, 0, s.r.len, PC_GEN_PARENT);
	pc_coherence_round(&s.e, &s.r, PC_GEN_PARENT, "after reclaim");
	pc_mover_teardown(&s);
	pc_pass();
}

/* Swap the range out (unpinned); SKIP when MADV_PAGEOUT does not. */
static void swap_out_all(struct pc_region *r)
{
	char desc[256];
	size_t n = r->len / pc_page_size;
	int i;

	for (i = 0; i < PAGEOUT_TRIES; i++) {
		pageout(r);
		if (evicted(r, desc, sizeof(desc)) == n)
			break;
		pc_sleep_ms(20);
	}
	pc_diag("before the pin: %s", desc);
	if (evicted(r, desc, sizeof(desc)) != n)
		pc_skip("no event: MADV_PAGEOUT did not swap the whole range out (%s)",
			desc);
}

static void swapin_pin_case(const struct pc_case *c)
{
	struct pc_page_census pc;
	struct pc_counters cnt;
	struct pc_engine e;
	struct pc_region r;
	char desc[256];

	need_swap();
	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_gen_name(PC_GEN_INIT, "written before the swap-out");
	swap_out_all(&r);
	pc_counters_start(&cnt, counters);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters around the pin");
	pc_region_snap(&r, "the checks");
	pc_page_census(&r, &pc);
	pc_diag("after the pin: %s", pc_page_census_str(&pc, desc, sizeof(desc)));
	if (pc.present != pc.pages)
		pc_fail("pinning left pages swapped out: %s", desc);
	pc_expect_cpu_sees(&r, PC_GEN_INIT, "CPU read of swapped-in data");
	pc_expect_device_sees(&e, &r, PC_GEN_INIT,
			      "device read of swapped-in data");
	pc_coherence_round(&e, &r, PC_GEN_INIT, "after the swap-in by the pin");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- S10 sequence B: pins racing with MADV_PAGEOUT ------------------------ */

/*
 * The evidence that the race ran: a time interval on CLOCK_MONOTONIC,
 * one per pin call (the case) and one per MADV_PAGEOUT pass that took
 * pages of the range out of the page tables (the pager).  A round counts
 * as raced when its pin interval intersects such a pass.
 */
struct span_ns {
	long long t0, t1;
	unsigned int unmapped;	/* pages the pass unmapped (pager only) */
};

struct span_log {
	struct span_ns *v;
	unsigned int n;		/* published entries (release/acquire) */
	unsigned int cap;
	unsigned int dropped;	/* not logged: the log was full */
};

struct pager {
	pthread_t tid;
	struct pc_region *r;
	int pagemap;		/* /proc/self/pagemap, -1: passes not logged */
	int stop;
	unsigned long passes;
	unsigned long unmapping;	/* passes that unmapped pages */
	unsigned long failed;	/* madvise() errors, the last in @err */
	int err;
	struct span_log log;	/* the unmapping passes, in completion order */
};

struct race {
	struct pc_engine e;
	struct pc_region r;
	struct pager pg;
	unsigned int rounds;
	unsigned int swapped_rounds;	/* the pin found pages swapped out */
	unsigned int raced_rounds;	/* the pin overlapped an unmapping pass */
	unsigned int mismatch_round;	/* 0: none */
	long long eval_ms;		/* when race_done() last swept the logs */
	struct span_log pins;		/* one entry per round */
	char mismatch[PC_REASON_MAX + 32];
};

static void span_log_init(struct span_log *l, unsigned int cap)
{
	memset(l, 0, sizeof(*l));
	l->v = calloc(cap, sizeof(*l->v));
	if (!l->v)
		pc_fail("out of memory for the race's interval log");
	l->cap = cap;
}

/* Append (single writer); readers see it once n is published. */
static void span_log_add(struct span_log *l, long long t0, long long t1,
			 unsigned int unmapped)
{
	unsigned int n = l->n;

	if (n == l->cap) {
		l->dropped++;
		return;
	}
	l->v[n].t0 = t0;
	l->v[n].t1 = t1;
	l->v[n].unmapped = unmapped;
	__atomic_store_n(&l->n, n + 1, __ATOMIC_RELEASE);
}

/*
 * Bit i set: page i (of the first 64) is present, or swapped out, by
 * pagemap.  0 and 0 when pagemap cannot be read.
 */
static void page_states(struct pager *pg, uint64_t *present,
			uint64_t *swapped)
{
	uint64_t pm[64];
	size_t i, n = pg->r->len / pc_page_size;

	*present = *swapped = 0;
	if (n > 64)
		n = 64;
	if (pc_pagemap_read(pg->pagemap, pg->r->mem, n, pm))
		return;
	for (i = 0; i < n; i++) {
		*present |= (uint64_t)!!(pm[i] & PC_PM_PRESENT) << i;
		*swapped |= (uint64_t)!!(pm[i] & PC_PM_SWAPPED) << i;
	}
}

/*
 * One pass: pages present before it and swapped out after it were
 * unmapped by it (only the pager takes pages away; a pin that swapped
 * such a page in again before the second look hides it: undercounted,
 * never overcounted).  Logged with its interval when it unmapped any.
 */
static void pageout_pass(struct pager *pg)
{
	uint64_t before, after, dummy;
	long long t0 = pc_now_ns();
	unsigned int unmapped;

	page_states(pg, &before, &dummy);
	if (madvise(pg->r->mem, pg->r->len, MADV_PAGEOUT)) {
		pg->failed++;
		pg->err = errno;
	}
	page_states(pg, &dummy, &after);
	pg->passes++;
	unmapped = __builtin_popcountll(before & after);
	if (!unmapped)
		return;
	pg->unmapping++;
	span_log_add(&pg->log, t0, pc_now_ns(), unmapped);
}

/* Page the range out, again and again, until told to stop. */
static void *pager_main(void *arg)
{
	struct pager *pg = arg;

	while (!__atomic_load_n(&pg->stop, __ATOMIC_ACQUIRE))
		pageout_pass(pg);
	return NULL;
}

/*
 * Rounds whose pin interval intersects an unmapping pass.  Both logs
 * are in time order (the passes by completion, so by t1): one sweep.
 */
static unsigned int count_raced_rounds(const struct race *rc)
{
	const struct span_log *pl = &rc->pg.log;
	unsigned int np = __atomic_load_n(&pl->n, __ATOMIC_ACQUIRE);
	unsigned int i, j = 0, k, raced = 0;

	for (i = 0; i < rc->pins.n; i++) {
		const struct span_ns *pin = &rc->pins.v[i];

		/* passes that ended before this pin began miss later pins too */
		while (j < np && pl->v[j].t1 < pin->t0)
			j++;
		for (k = j; k < np && pl->v[k].t0 <= pin->t1; k++)
			if (pl->v[k].t1 >= pin->t0) {
				raced++;
				break;
			}
	}
	return raced;
}

/*
 * Pages faulted in (or swapped in by the pin) wait in this CPU's LRU batch
 * and MADV_PAGEOUT skips a page that is not on an LRU list: MADV_COLD
 * drains this CPU's batch first (and marks the range cold).
 */
static void lru_drain_here(struct pc_region *r)
{
	madvise(r->mem, r->len, MADV_COLD);
}

/* Verify @chk; on a mismatch keep it for round @round and return -1. */
static int race_verify(struct race *rc, const struct pc_check *chk)
{
	if (!pc_verify(chk))
		return 0;
	rc->mismatch_round = rc->rounds;
	snprintf(rc->mismatch, sizeof(rc->mismatch), "round %u: %s",
		 rc->rounds, pc_mismatch_summary());
	return -1;
}

/* The pin of one round, its interval logged. */
static void race_pin(struct race *rc)
{
	struct pc_page_census pc;
	long long t0;

	pc_page_census(&rc->r, &pc);
	t0 = pc_now_ns();
	pc_pin_region_or_skip(&rc->e, &rc->r, PC_PIN_RW);
	span_log_add(&rc->pins, t0, pc_now_ns(), 0);
	rc->swapped_rounds += pc.swapped > 0;
}

/*
 * One round: pin (swapping in what the pager swapped out), CPU write that
 * the device must read, device write that the CPU must read, unpin.
 */
static int race_round(struct race *rc, int control)
{
	struct pc_region *r = &rc->r;
	struct pc_check chk = {
		.what = "device read of a CPU write after a pin racing with MADV_PAGEOUT",
		.r = r, .len = r->len, .gen = GEN_RACE_CPU,
		.side = PC_CHECK_DEVICE, .cpu = r->mem,
	};
	void *dev;
	int bad;

	rc->rounds++;
	chk.gen = rc->rounds & 1 ? GEN_RACE_CPU : GEN_RACE_CPU_ALT;
	race_pin(rc);
	pc_region_snap(r, "the pin");
	if (control && rc->rounds == RACE_CONTROL_ROUND)
		pc_move_ignoring_pin(r, -1);
	pc_region_cpu_write(r, 0, r->len, chk.gen);
	dev = pc_dev_read_alloc(&rc->e, 0, r->len);
	chk.dev = dev;
	chk.sample = rc->e.sample;
	bad = race_verify(rc, &chk);
	free(dev);
	if (!bad && pc_engine_can(rc->e.ops, PC_CAP_DEV_WRITE)) {
		pc_dev_write_gen(&rc->e, 0, r->len, GEN_RACE_DEVICE);
		chk.what = "CPU read of a device write after a pin racing with MADV_PAGEOUT";
		chk.gen = GEN_RACE_DEVICE;
		chk.side = PC_CHECK_CPU;
		chk.sample = rc->e.sample;
		bad = race_verify(rc, &chk);
	}
	if (pc_engine_unpin(&rc->e))
		pc_fail("unpin: %s", rc->e.err);
	lru_drain_here(r);
	/* Unpinned for a moment: the pager gets its chance. */
	pc_sleep_ms(RACE_GAP_MS);
	return bad;
}

/*
 * Enough rounds ran: the time, the rounds, and (not a control) evidence.
 * The evidence sweep is linear in the logs: at most every RACE_EVAL_MS.
 */
static int race_done(struct race *rc, int control, long long ms)
{
	if (rc->pins.n == rc->pins.cap)
		return 1;
	if (ms < RACE_MS || rc->rounds < RACE_MIN_ROUNDS)
		return 0;
	if (control)
		return rc->rounds > RACE_CONTROL_ROUND;
	if (rc->eval_ms && ms - rc->eval_ms < RACE_EVAL_MS)
		return 0;
	rc->eval_ms = ms;
	return count_raced_rounds(rc) > 0;
}

/* Rounds until enough ran (or a mismatch); the pager runs meanwhile. */
static int race_rounds(struct race *rc, int control)
{
	long long t0 = pc_now_ms(), t;

	rc->pg.r = &rc->r;
	if (pthread_create(&rc->pg.tid, NULL, pager_main, &rc->pg))
		pc_fail("pthread_create failed");
	for (t = t0; t - t0 < RACE_MAX_MS; t = pc_now_ms()) {
		if (race_round(rc, control))
			break;
		if (race_done(rc, control, t - t0))
			break;
	}
	__atomic_store_n(&rc->pg.stop, 1, __ATOMIC_RELEASE);
	pthread_join(rc->pg.tid, NULL);
	rc->raced_rounds = count_raced_rounds(rc);
	return rc->mismatch_round ? -1 : 0;
}

static void race_setup(const struct pc_case *c, struct race *rc)
{
	memset(rc, 0, sizeof(*rc));
	need_swap();
	pc_gen_name(GEN_RACE_CPU, "CPU write after the pin");
	pc_gen_name(GEN_RACE_CPU_ALT, "CPU write after the pin, next round");
	pc_gen_name(GEN_RACE_DEVICE, "device write after the pin");
	pc_engine_open_or_skip(&rc->e, c->engine);
	pc_region_create_or_skip(&rc->r, c->backing, PC_GEN_INIT);
	rc->pg.pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (rc->pg.pagemap < 0)
		pc_skip("cannot read /proc/self/pagemap (%s): no evidence of which pass unmapped pages",
			strerror(errno));
	span_log_init(&rc->pins, RACE_LOG_MAX);
	span_log_init(&rc->pg.log, RACE_LOG_MAX);
	lru_drain_here(&rc->r);
}

static void race_teardown(struct race *rc)
{
	close(rc->pg.pagemap);
	free(rc->pins.v);
	free(rc->pg.log.v);
	pc_engine_close(&rc->e);
	pc_region_destroy(&rc->r);
}

static void race_case(const struct pc_case *c)
{
	static struct race rc;
	struct pc_counters cnt;
	int bad;

	race_setup(c, &rc);
	pc_counters_start(&cnt, counters);
	bad = race_rounds(&rc, 0);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	pc_diag("evidence: %u rounds, %u of them with the pin overlapping in time a MADV_PAGEOUT pass that unmapped pages of the range; %lu passes, %lu of them unmapped pages (%u not logged), %lu failed%s%s; %u pins found pages swapped out",
		rc.rounds, rc.raced_rounds, rc.pg.passes, rc.pg.unmapping,
		rc.pg.log.dropped, rc.pg.failed,
		rc.pg.failed ? ": " : "",
		rc.pg.failed ? strerror(rc.pg.err) : "", rc.swapped_rounds);
	if (bad)
		pc_fail("%s", rc.mismatch);
	if (!rc.raced_rounds)
		pc_skip("no event: no pin overlapped a MADV_PAGEOUT pass that unmapped pages (0 of %u rounds; %lu of %lu passes unmapped pages, %u pins found pages swapped out, pswpout %+lld): the race did not run",
			rc.rounds, rc.pg.unmapping, rc.pg.passes,
			rc.swapped_rounds, pc_counters_delta(&cnt, "pswpout"));
	race_teardown(&rc);
	pc_pass();
}

static void race_control_case(const struct pc_case *c)
{
	static struct race rc;

	race_setup(c, &rc);
	if (!race_rounds(&rc, 1))
		pc_fail("the rounds are blind: fresh pages were mapped over the pinned ones in round %d, yet %u rounds saw no mismatch",
			RACE_CONTROL_ROUND, rc.rounds);
	if (rc.mismatch_round != RACE_CONTROL_ROUND)
		pc_fail("the rounds failed in round %u, not in round %d where the pages were replaced: %s",
			rc.mismatch_round, RACE_CONTROL_ROUND, rc.mismatch);
	pc_diag("mismatch detected as it must be: %s", rc.mismatch);
	race_teardown(&rc);
	pc_pass();
}

static void control_case(const struct pc_case *c)
{
	struct pc_mover_setup s;

	pc_mover_setup(c, &s, -1, 0, "the pin-ignoring swap-out");
	pc_move_ignoring_pin(&s.r, -1);
	pc_expect_lost_pin_detected(&s.e, &s.r, PC_GEN_INIT);
	pc_mover_teardown(&s);
	pc_pass();
}

static pc_case_fn case_fn(enum kind kind)
{
	switch (kind) {
	case SWAPIN_PIN:
		return swapin_pin_case;
	case PAGEOUT_RACE:
		return race_case;
	default:
		return reclaim_case;
	}
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD | PC_CAP_DEV_READ;
	size_t i;

	/* every CPU: a pin on one CPU while reclaim runs on another */
	pc_cases_race_across_cpus();

	/* the page movers pick their own few backings */
	pc_slow_engine_backings = "*";
	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
		pc_add_matrix_on(case_fn(scenarios[i].kind), &scenarios[i],
				 scenarios[i].name, scenarios[i].backings, need,
				 PC_CAP_GET_REF, CASE_TIMEOUT_S);
	pc_add_matrix_on(control_case, NULL, "control-mover-ignores-pin",
			 "anon", need, PC_CAP_GET_REF, 0);
	pc_add_matrix_on(race_control_case, NULL, "control-pageout-race-remap",
			 "anon", need, PC_CAP_GET_REF, CASE_TIMEOUT_S);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "reclaim_pinned", add_cases);
}
