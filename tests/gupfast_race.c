// SPDX-License-Identifier: GPL-2.0
/*
 * gupfast_race: a GUP-fast pin racing with the address space changing
 * under it (S17, S18).
 *
 * GUP-fast walks the page tables without the mmap_lock, so it runs at the
 * same time as an mmap(MAP_FIXED), a munmap() or a fork() of another
 * thread.  The promises under test:
 *
 *   pin-vs-remap, pin-vs-unmap-remap (S17)
 *     Thread A pins the range again and again; thread B maps fresh private
 *     anonymous pages over it (mmap(MAP_FIXED), or munmap() then mmap()),
 *     then writes its own generation into them.  Each page of a pin holds
 *     either the old mapping's page (orphaned: the device's writes must
 *     stay invisible in the new mapping, which holds exactly B's data) or
 *     the new mapping's page (coherent: the CPU sees the device's writes).
 *     A page holding anything else, a device that loses its own write, or
 *     a refused pin other than EFAULT in the munmap hole fails the case;
 *     so does memory that is not given back after the unpin (VmPin, and
 *     the case's memory cgroup when there is one).  GUP-fast pins the
 *     pages in address order and hands what it did not get to the slow
 *     path, so a pin may hold old pages at the front and new ones behind:
 *     such a "split" round is counted, not failed.
 *
 *   first-pin-vs-fork (S18)
 *     In a fresh process per round (a helper forked by the case process;
 *     MMF_HAS_PINNED is not inherited), thread A takes the process's first
 *     pin while thread B forks in a loop (each child reports through a pipe
 *     whether it got the parent's page or a copy, then _exits).  After the
 *     pin, a CPU write must reach the device and a device write the CPU:
 *     upstream 57efa1fe5957 (v5.11) closed the window where fork
 *     write-protected a page GUP-fast was pinning.
 *
 * Evidence: the wall-clock span of each pin call and of each remap or fork
 * call; a round counts as a race when they overlap.  No overlap in a case:
 * SKIP with the counts.
 *
 * Controls (PASS only when the check sees the loss):
 *   control-pin-vs-remap-lost       fresh pages mapped over the range after
 *                                   the pin: every page must be judged
 *                                   "old" (device and CPU disagree); mapped
 *                                   before the pin: every page "new"
 *   control-first-pin-vs-fork-lost  the S18 round with the parent's pages
 *                                   replaced after the pin: the CPU write
 *                                   must not reach the device
 *
 * Engines: the ones that pin through pin_user_pages_fast() and hold the
 * pin (io_uring on kernels whose io_pin_pages() uses it, rdma's
 * ib_umem_get(), gup_test_fast).  Backings: anon (4 KiB PTEs: GUP-fast
 * pins page by page, so the race has many steps) and thp-pmd (one PMD
 * pinned and replaced as a whole).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pincheck.h"

#define RACE_MS			2000	/* a race case stops after this */
#define ENOUGH_OVERLAPS		10	/* ... or once it raced this often */
#define RACE_MS_NO_EVENT	6000	/* ... but goes on to this while it never raced */
/* Far below the mmap base: no mmap(NULL) of the engine lands in a hole. */
#define RACE_AREA_HINT		((void *)0x100000000000ULL)
#define REMAP_ROUNDS_MAX	3000
#define FORK_ROUNDS_MAX		300
#define FORKS_PER_ROUND_MAX	48
#define ANON_RACE_PAGES		128	/* 512 KiB of base pages */
#define START_SLACK_NS		20000LL	/* both threads start after this */
#define SPIN_NS			2000000LL	/* spin this long, then yield */
#define LEAK_SLACK		(1u << 20)	/* memcg noise, over one range */
#define LEAK_SETTLE_STEPS	20	/* of 50 ms */
#define GEN_FIRST		16	/* round generations: 16..252 */

#define FORK_FIX "57efa1fe5957 (\"mm/gup: prevent gup_fast from racing with COW during fork\", v5.11)"

/* ---- time ---------------------------------------------------------------- */

struct span {
	long long t0, t1;
};

static void spin_until_ns(long long t)
{
	while (pc_now_ns() < t)
		;
}

static int spans_overlap(const struct span *a, const struct span *b)
{
	return a->t0 < b->t1 && b->t0 < a->t1;
}

/*
 * Wait until *v differs from @old; 0 when *quit became set first.  Spins
 * for @spin_ns (to be on a CPU when the other thread moves), then sleeps
 * in short steps (leaving the CPU to the kernel's own work: rxe, kworkers).
 */
static unsigned long wait_past(atomic_ulong *v, unsigned long old,
			       atomic_int *quit, long long spin_ns)
{
	long long sleep_after = pc_now_ns() + spin_ns;
	unsigned long n;

	while ((n = atomic_load(v)) == old) {
		if (quit && atomic_load(quit))
			return 0;
		if (pc_now_ns() > sleep_after)
			usleep(10);
	}
	return n;
}

/*
 * Put the calling thread on the @nth CPU it may run on (0 or 1), so that
 * the two racing threads sit on different run queues and run at the same
 * time whenever both get their CPU.  No-op on a one-CPU machine.
 */
static void run_on_nth_cpu(int nth)
{
	cpu_set_t allowed, one;
	int cpu, seen = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) ||
	    CPU_COUNT(&allowed) < 2)
		return;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed) || seen++ != nth)
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		sched_setaffinity(0, sizeof(one), &one);
		return;
	}
}

/* ---- generations and page judgement -------------------------------------- */

struct round_gens {
	unsigned int old;	/* the mapping the round starts with */
	unsigned int fresh;	/* what B writes into its new mapping */
	unsigned int dev;	/* the device's write */
};

static struct round_gens gens_of_round(unsigned long round)
{
	unsigned int base = GEN_FIRST + (round * 3) % 237;

	pc_gen_name(base, "the old mapping's, before the remap");
	pc_gen_name(base + 1, "the new mapping's own data");
	pc_gen_name(base + 2, "the device's write");
	return (struct round_gens){ base, base + 1, base + 2 };
}

static int word_judged(const uint64_t *sample, size_t w)
{
	return !sample || (sample[w / 64] >> (w % 64) & 1);
}

/* Does page @pg of @view hold generation @gen?  Else *bad is a bad word. */
static int page_holds(const uint64_t *view, size_t pg, const uint64_t *sample,
		      unsigned int gen, size_t *bad)
{
	size_t wpp = pc_page_size / 8, i, w;
	/* A pattern word is its generation's first word plus its index. */
	uint64_t first = pc_word(gen, pg * pc_page_size), step = gen ? 1 : 0;

	for (i = 0; i < wpp; i++) {
		w = pg * wpp + i;
		if (!word_judged(sample, w))
			continue;
		if (view[w] != first + i * step) {
			*bad = w;
			return 0;
		}
	}
	return 1;
}

/* "gen 17 @0x2000" for word @w of @view. */
static const char *describe_word(const uint64_t *view, size_t w)
{
	static char buf[160];

	pc_word_describe(view[w], buf, sizeof(buf));
	return buf;
}

/* ---- the remap race (S17) ------------------------------------------------ */

enum remap_how { REMAP_FIXED, UNMAP_THEN_MAP };

struct remap_scenario {
	const char *name;
	enum remap_how how;
};

static const struct remap_scenario remap_fixed = {
	"pin-vs-remap", REMAP_FIXED
};
static const struct remap_scenario unmap_remap = {
	"pin-vs-unmap-remap", UNMAP_THEN_MAP
};

enum { PAGE_OLD, PAGE_NEW };

struct remap_tally {
	unsigned long rounds, overlaps, checked;
	unsigned long old_won, new_won, split, pin_failed;
	unsigned long ov_old, ov_new, ov_split, ov_failed;
	unsigned long thp_old;	/* rounds whose old mapping was a PMD THP */
	unsigned long zero_pages;	/* R/O: the new mapping's zero page */
};

struct remap_race {
	const struct remap_scenario *s;
	struct pc_engine e;
	unsigned int pin_flags;	/* R/W when the engine can, else R/O */
	char *addr;
	size_t len, pages;
	int thp;
	uint64_t *dev;		/* the device's view of the range */
	void *wbuf;		/* what the device writes */
	unsigned char *cls;	/* PAGE_OLD / PAGE_NEW per page */
	/* the remapper thread and its round */
	pthread_t tid;
	atomic_ulong arm, ready, go, done;
	atomic_int quit;
	long long start_ns, remap_delay_ns;
	struct span remap;
	unsigned int fresh_gen;
	int remap_err;
	long long pin_ema, remap_ema;	/* ns, to place the two calls */
	unsigned int seed;
	struct remap_tally t;
};

/* Fresh private anonymous pages of the race's kind at rr->addr. */
static int map_fresh(struct remap_race *rr, int noreplace)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS |
		    (noreplace ? MAP_FIXED_NOREPLACE : MAP_FIXED);
	void *p = mmap(rr->addr, rr->len, PROT_READ | PROT_WRITE, flags, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (p != rr->addr) {
		munmap(p, rr->len);
		return -EEXIST;
	}
	if (madvise(p, rr->len, rr->thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) &&
	    errno != EINVAL)
		return -errno;
	return 0;
}

/* B's step: replace the mapping, then write its own generation. */
static void remap_once(struct remap_race *rr)
{
	int rc = 0;

	rr->remap.t0 = pc_now_ns();
	if (rr->s->how == UNMAP_THEN_MAP && munmap(rr->addr, rr->len))
		rc = -errno;
	if (!rc)
		rc = map_fresh(rr, rr->s->how == UNMAP_THEN_MAP);
	rr->remap.t1 = pc_now_ns();
	rr->remap_err = rc;
	if (!rc)
		pc_fill(rr->addr, 0, rr->len, rr->fresh_gen);
}

static void *remapper_main(void *arg)
{
	struct remap_race *rr = arg;
	unsigned long seen = 0;

	run_on_nth_cpu(1);
	for (;;) {
		seen = wait_past(&rr->arm, seen, &rr->quit, 0);
		if (!seen)
			return NULL;
		atomic_store(&rr->ready, seen);
		wait_past(&rr->go, seen - 1, NULL, SPIN_NS);
		spin_until_ns(rr->start_ns + rr->remap_delay_ns);
		remap_once(rr);
		atomic_store(&rr->done, seen);
	}
}

/* A PMD-aligned (for thp-pmd) range of the race's size, mapped fresh. */
static void remap_area_create(struct remap_race *rr, const struct pc_case *c)
{
	char *res, *end;
	int rc;

	rr->thp = !!(c->backing->flags & PC_BK_THP);
	rr->len = rr->thp ? c->backing->size : ANON_RACE_PAGES * pc_page_size;
	rr->pages = rr->len / pc_page_size;
	res = mmap(RACE_AREA_HINT, 2 * rr->len, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		pc_fail_errno("mmap of the race area");
	rr->addr = (char *)pc_align_up((size_t)res, rr->len);
	end = res + 2 * rr->len;
	if (rr->addr > res)
		munmap(res, rr->addr - res);
	if (end > rr->addr + rr->len)
		munmap(rr->addr + rr->len, end - (rr->addr + rr->len));
	rc = map_fresh(rr, 0);
	if (rc)
		pc_fail("mapping the race area: %s", strerror(-rc));
	rr->dev = pc_xmalloc(rr->len);
	rr->wbuf = pc_xmalloc(rr->len);
	rr->cls = pc_xmalloc(rr->pages);
}

/* The thp-pmd race needs the old mapping to be one PMD THP. */
static int old_mapping_is_thp(struct remap_race *rr)
{
	return rr->thp && pc_page_flag(rr->addr, PC_KPF_THP) == 1 &&
	       pc_page_flag(rr->addr + rr->len - pc_page_size,
			    PC_KPF_THP) == 1;
}

/* Where B's remap starts relative to A's pin: before, inside, after. */
static long long pick_offset(struct remap_race *rr)
{
	long long lo = -rr->remap_ema, hi = rr->pin_ema + rr->pin_ema / 4;

	return lo + (long long)(rand_r(&rr->seed) % 1000) * (hi - lo) / 1000;
}

static void ema_update(long long *ema, long long x)
{
	*ema = (*ema * 7 + x) / 8;
}

/*
 * Another round?  For RACE_MS or until ENOUGH_OVERLAPS; a race not hit yet
 * gets up to RACE_MS_NO_EVENT (under TCG on a busy host the two vCPUs of
 * the guest overlap less often).
 */
static int race_goes_on(long long start_ns, unsigned long overlaps)
{
	long long ms = (pc_now_ns() - start_ns) / 1000000;

	if (!overlaps)
		return ms < RACE_MS_NO_EVENT;
	return ms < RACE_MS && overlaps < ENOUGH_OVERLAPS;
}

/*
 * One round, A's side: the old mapping gets generation g.old, both calls
 * start at the chosen offset from each other, and A waits for B to have
 * written its new mapping.  Returns the pin's result.
 */
static int remap_round_run(struct remap_race *rr, unsigned long n,
			   struct span *pin)
{
	struct round_gens g = gens_of_round(n);
	long long off = pick_offset(rr);
	int rc;

	pc_fill(rr->addr, 0, rr->len, g.old);
	if (old_mapping_is_thp(rr))
		rr->t.thp_old++;
	rr->fresh_gen = g.fresh;
	rr->remap_delay_ns = off > 0 ? off : 0;
	/* Once B spins for the start signal, both calls start on time. */
	atomic_store(&rr->arm, n);
	wait_past(&rr->ready, n - 1, NULL, SPIN_NS);
	rr->start_ns = pc_now_ns() + START_SLACK_NS;
	atomic_store(&rr->go, n);
	spin_until_ns(rr->start_ns + (off < 0 ? -off : 0));
	pin->t0 = pc_now_ns();
	rc = pc_engine_pin(&rr->e, rr->addr, rr->len, rr->pin_flags);
	pin->t1 = pc_now_ns();
	wait_past(&rr->done, n - 1, NULL, 0);
	ema_update(&rr->pin_ema, pin->t1 - pin->t0);
	ema_update(&rr->remap_ema, rr->remap.t1 - rr->remap.t0);
	return rc;
}

static void device_read_all(struct remap_race *rr, unsigned long n,
			    const char *when)
{
	if (pc_engine_dev_read(&rr->e, 0, rr->len, rr->dev))
		pc_fail("round %lu: device read %s: %s", n, when, rr->e.err);
}

/*
 * A R/O reference (vmsplice's FOLL_GET) taken on the new mapping before B
 * wrote it gets the shared zero page; B's write then COWs away from it.
 * Legitimate: the reference holds the new mapping's content at its time.
 */
static int new_zero_page(struct remap_race *rr, size_t pg)
{
	size_t bad;

	return (rr->pin_flags & PC_PIN_RO) &&
	       page_holds(rr->dev, pg, rr->e.sample, PC_GEN_ZERO, &bad);
}

/*
 * Which page did the pin take, old or new?  The device reads the pinned
 * pages: each must hold the old mapping's generation or B's, wholly.
 * Fills rr->cls; returns the number of old pages.
 */
static size_t classify_by_device(struct remap_race *rr, unsigned long n)
{
	struct round_gens g = gens_of_round(n);
	size_t pg, old = 0, bad = 0, bad2 = 0;

	device_read_all(rr, n, "after the race");
	for (pg = 0; pg < rr->pages; pg++) {
		if (page_holds(rr->dev, pg, rr->e.sample, g.old, &bad)) {
			rr->cls[pg] = PAGE_OLD;
			old++;
		} else if (page_holds(rr->dev, pg, rr->e.sample, g.fresh,
				      &bad2)) {
			rr->cls[pg] = PAGE_NEW;
		} else if (new_zero_page(rr, pg)) {
			rr->cls[pg] = PAGE_NEW;
			rr->t.zero_pages++;
		} else {
			pc_fail("round %lu: pinned page %zu holds %s: neither the old mapping's gen %u nor the new mapping's gen %u",
				n, pg, describe_word(rr->dev, bad), g.old,
				g.fresh);
		}
	}
	return old;
}

/*
 * The write leg: the device writes g.dev.  A new page shows it to the
 * CPU, an old page keeps it from the CPU (which still reads B's data);
 * the device reads its own write back from every page.
 */
static void check_device_write(struct remap_race *rr, unsigned long n)
{
	struct round_gens g = gens_of_round(n);
	const uint64_t *cpu = (const uint64_t *)rr->addr;
	size_t pg, bad = 0;

	pc_fill(rr->wbuf, 0, rr->len, g.dev);
	if (pc_engine_dev_write(&rr->e, 0, rr->len, rr->wbuf))
		pc_fail("round %lu: device write: %s", n, rr->e.err);
	for (pg = 0; pg < rr->pages; pg++) {
		unsigned int want = rr->cls[pg] == PAGE_NEW ? g.dev : g.fresh;

		if (!page_holds(cpu, pg, NULL, want, &bad))
			pc_fail("round %lu: CPU reads %s on %s page %zu after the device wrote gen %u; expected gen %u",
				n, describe_word(cpu, bad),
				rr->cls[pg] == PAGE_NEW ? "new (pinned)" :
				"new (unpinned, the pin kept the old)", pg,
				g.dev, want);
	}
	device_read_all(rr, n, "after its write");
	for (pg = 0; pg < rr->pages; pg++)
		if (!page_holds(rr->dev, pg, rr->e.sample, g.dev, &bad))
			pc_fail("round %lu: device lost its own write on %s page %zu: reads %s",
				n, rr->cls[pg] == PAGE_NEW ? "new" : "old", pg,
				describe_word(rr->dev, bad));
}

static void check_device_write_if_can(struct remap_race *rr, unsigned long n)
{
	if (pc_engine_can(rr->e.ops, PC_CAP_DEV_WRITE) &&
	    (rr->pin_flags & PC_PIN_RW))
		check_device_write(rr, n);
}

static void unpin_or_fail(struct pc_engine *e, unsigned long n)
{
	if (pc_engine_unpin(e))
		pc_fail("round %lu: unpin: %s", n, e->err);
}

static void tally_round(struct remap_tally *t, size_t old, size_t pages,
			int overlapped)
{
	unsigned long *won, *ov_won;

	if (old == pages) {
		won = &t->old_won;
		ov_won = &t->ov_old;
	} else if (!old) {
		won = &t->new_won;
		ov_won = &t->ov_new;
	} else {
		won = &t->split;
		ov_won = &t->ov_split;
	}
	(*won)++;
	if (overlapped)
		(*ov_won)++;
}

/* A refused pin: only EFAULT, only while the range may be a hole. */
static void pin_refused(struct remap_race *rr, unsigned long n, int rc,
			int overlapped)
{
	if (rr->s->how != UNMAP_THEN_MAP || rc != -EFAULT)
		pc_fail("round %lu: pin %s the remap: %s", n,
			overlapped ? "overlapping" : "next to", rr->e.err);
	rr->t.pin_failed++;
	if (overlapped)
		rr->t.ov_failed++;
}

static void remap_judge(struct remap_race *rr, unsigned long n, int pin_rc,
			const struct span *pin)
{
	int overlapped = spans_overlap(pin, &rr->remap);
	size_t old;

	if (rr->remap_err)
		pc_fail("round %lu: remapping the range: %s", n,
			strerror(-rr->remap_err));
	rr->t.rounds++;
	rr->t.overlaps += overlapped;
	if (pin_rc) {
		pin_refused(rr, n, pin_rc, overlapped);
		return;
	}
	old = classify_by_device(rr, n);
	check_device_write_if_can(rr, n);
	unpin_or_fail(&rr->e, n);
	rr->t.checked++;
	tally_round(&rr->t, old, rr->pages, overlapped);
}

/* ---- memory given back --------------------------------------------------- */

struct leak_watch {
	struct pc_memcg m;
	int memcg;
	long long base;
	long vmpin_base;
	int based;
};

static void leak_watch_enter(struct leak_watch *w)
{
	char why[PC_REASON_MAX];

	memset(w, 0, sizeof(*w));
	/* Large buffers (an engine's per-pin copies) go back at free(). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	w->memcg = pc_memcg_enter(&w->m, why, sizeof(why)) == 0;
	if (!w->memcg)
		pc_diag("no memory cgroup for the leak check (%s): VmPin only",
			why);
}

/* Taken once the first round went through every step (buffers in use). */
static void leak_watch_base(struct leak_watch *w)
{
	w->based = 1;
	w->vmpin_base = pc_status_kb(0, "VmPin");
	w->base = w->memcg ? pc_memcg_current(&w->m) : -1;
}

/* After the last unpin: VmPin and the cgroup's memory are back. */
static void expect_memory_given_back(struct leak_watch *w, size_t len)
{
	long vmpin = pc_status_kb(0, "VmPin");
	long long now = 0;
	int i;

	if (w->based && vmpin != w->vmpin_base)
		pc_fail("VmPin %ld kB after the last unpin (%ld kB before the rounds): pinned memory not given back",
			vmpin, w->vmpin_base);
	if (!w->memcg || !w->based || w->base < 0)
		return;
	/* Some releases are deferred (an MR's umem, pipe buffers): settle. */
	for (i = 0; i < LEAK_SETTLE_STEPS; i++) {
		now = pc_memcg_current(&w->m);
		if (now <= w->base + (long long)(len + LEAK_SLACK))
			break;
		pc_sleep_ms(50);
	}
	if (i == LEAK_SETTLE_STEPS)
		pc_fail("memory not given back: the case's cgroup holds %lld kB, %lld kB before the rounds (orphaned pinned pages kept?)",
			now / 1024, w->base / 1024);
	pc_diag("memory given back: VmPin %ld kB, cgroup %lld kB (%lld kB before the rounds)",
		vmpin, now / 1024, w->base / 1024);
}

/* ---- the remap race: cases ----------------------------------------------- */

/* THP for thp-pmd, the engine: skip like every other binary does. */
static void remap_setup(struct remap_race *rr, const struct pc_case *c)
{
	struct pc_region probe;

	memset(rr, 0, sizeof(*rr));
	rr->s = c->scenario;
	rr->seed = (unsigned int)getpid();
	rr->pin_ema = 50000;
	rr->remap_ema = 20000;
	pc_engine_open_or_skip(&rr->e, c->engine);
	rr->pin_flags = pc_engine_can(c->engine, PC_CAP_PIN_RW) ? PC_PIN_RW :
			PC_PIN_RO;
	pc_region_create_or_skip(&probe, c->backing, PC_GEN_INIT);
	pc_region_destroy(&probe);
	remap_area_create(rr, c);
}

static void remap_report(const struct remap_race *rr)
{
	const struct remap_tally *t = &rr->t;

	pc_diag("%lu rounds, %lu with the remap overlapping the pin call: old pages won %lu (%lu overlapping), new pages won %lu (%lu), split old+new %lu (%lu), pin refused in the hole %lu (%lu)",
		t->rounds, t->overlaps, t->old_won, t->ov_old, t->new_won,
		t->ov_new, t->split, t->ov_split, t->pin_failed, t->ov_failed);
	if (rr->thp)
		pc_diag("the old mapping was a PMD THP in %lu of %lu rounds",
			t->thp_old, t->rounds);
	if (t->zero_pages)
		pc_diag("%lu pages referenced the new mapping's zero page, taken R/O before B wrote it (B's write COWed away from it)",
			t->zero_pages);
}

static void remap_race_case(const struct pc_case *c)
{
	struct remap_race *rr = pc_xmalloc(sizeof(*rr));
	struct leak_watch w;
	long long start;
	unsigned long n;
	struct span pin;

	leak_watch_enter(&w);
	remap_setup(rr, c);
	if (pthread_create(&rr->tid, NULL, remapper_main, rr))
		pc_fail("pthread_create failed");
	run_on_nth_cpu(0);
	start = pc_now_ns();
	for (n = 1; n <= REMAP_ROUNDS_MAX &&
	     (n < 3 || race_goes_on(start, rr->t.overlaps)); n++) {
		remap_judge(rr, n, remap_round_run(rr, n, &pin), &pin);
		if (!w.based && rr->t.checked)
			leak_watch_base(&w);
	}
	atomic_store(&rr->quit, 1);
	pthread_join(rr->tid, NULL);
	remap_report(rr);
	expect_memory_given_back(&w, rr->len);
	if (rr->thp && !rr->t.thp_old)
		pc_skip("not applicable: the old mapping was never a PMD THP in %lu rounds (THP allocation failed?)",
			rr->t.rounds);
	if (!rr->t.overlaps)
		pc_skip("no event: the race was not hit: 0 of %lu rounds had the remap overlap the pin call",
			rr->t.rounds);
	pc_engine_close(&rr->e);
	pc_pass();
}

/* Control round: remap before (@after 0) or after (1) a plain pin. */
static size_t remap_control_round(struct remap_race *rr, unsigned long n,
				  int after)
{
	struct round_gens g = gens_of_round(n);

	pc_fill(rr->addr, 0, rr->len, g.old);
	rr->fresh_gen = g.fresh;
	if (!after)
		remap_once(rr);
	if (pc_engine_pin(&rr->e, rr->addr, rr->len, rr->pin_flags))
		pc_fail("pin: %s", rr->e.err);
	if (after)
		remap_once(rr);
	if (rr->remap_err)
		pc_fail("remap: %s", strerror(-rr->remap_err));
	return classify_by_device(rr, n);
}

/* The strict check every other test makes: device and CPU agree. */
static size_t strict_device_check(struct remap_race *rr, unsigned int gen)
{
	struct pc_check chk = {
		.what = "device read after fresh pages were mapped over the pin",
		.off = 0, .len = rr->len, .gen = gen, .side = PC_CHECK_DEVICE,
		.dev = rr->dev, .cpu = rr->addr, .sample = rr->e.sample,
	};

	return pc_verify(&chk);
}

static void control_remap_lost_case(const struct pc_case *c)
{
	struct remap_race *rr = pc_xmalloc(sizeof(*rr));
	size_t old;

	remap_setup(rr, c);
	old = remap_control_round(rr, 1, 0);
	if (old)
		pc_fail("classifier wrong: %zu of %zu pages judged old although the remap came before the pin",
			old, rr->pages);
	check_device_write_if_can(rr, 1);
	unpin_or_fail(&rr->e, 1);
	old = remap_control_round(rr, 2, 1);
	if (old != rr->pages)
		pc_fail("engine is blind: %zu of %zu pages judged new although fresh pages were mapped over the pin",
			rr->pages - old, rr->pages);
	/* rr->dev holds the device's read of the pinned (old) pages */
	if (!strict_device_check(rr, gens_of_round(2).fresh))
		pc_fail("engine is blind: the device reads what the CPU wrote into pages it never pinned");
	check_device_write_if_can(rr, 2);
	pc_diag("mismatch detected as it must be: all %zu pages stayed with the device after the remap, none before it",
		rr->pages);
	unpin_or_fail(&rr->e, 2);
	pc_engine_close(&rr->e);
	pc_pass();
}

/* ---- the fork race (S18) ------------------------------------------------- */

struct child_report {		/* a grandchild's view of the region */
	unsigned int shared;	/* pages with the parent's pre-pin PFN */
	unsigned int copied;	/* pages with another PFN */
	unsigned int unknown;	/* PFN not readable */
};

struct fork_result {		/* a helper's round, to the case process */
	char verdict;		/* 'P', 'F', 'S' */
	int first_pin;		/* nothing accounted as pinned before */
	unsigned int forks, forks_overlapping;
	unsigned int ov_shared, ov_copied, ov_unknown;
	unsigned int pin_moved;	/* pages the pin moved (it broke a COW) */
	long long fork_ns;	/* mean fork() duration */
	char msg[400];
};

struct fork_race {		/* inside one helper */
	struct pc_engine e;
	struct pc_region r;
	pthread_t tid;
	atomic_int stop, forking;
	struct span forks[FORKS_PER_ROUND_MAX];
	struct child_report rep[FORKS_PER_ROUND_MAX];
	unsigned int nforks;
	int pipe[2];		/* grandchildren -> forker (non-blocking) */
	int result_fd;		/* helper -> case process */
	int fork_err;
	long long pin_delay_ns;
	int lose;		/* control: replace the pages after the pin */
	struct fork_result res;
};

/* In a grandchild: compare its PFNs with the parent's before the pin. */
static void __attribute__((noreturn)) child_report_exit(struct fork_race *fr)
{
	struct child_report rep = { 0, 0, 0 };
	size_t n = fr->r.len / pc_page_size, i, done, k;
	uint64_t pm[512], pfn;

	for (done = 0; done < n; done += k) {
		k = n - done < 512 ? n - done : 512;
		if (pc_pagemap_range(fr->r.mem + done * pc_page_size, k, pm)) {
			rep.unknown += k;
			continue;
		}
		for (i = 0; i < k; i++) {
			pfn = pm[i] & PC_PM_PRESENT ? pm[i] & PC_PM_PFN_MASK : 0;
			if (!pfn || !fr->r.pfn_before[done + i])
				rep.unknown++;
			else if (pfn == fr->r.pfn_before[done + i])
				rep.shared++;
			else
				rep.copied++;
		}
	}
	if (write(fr->pipe[1], &rep, sizeof(rep)) != sizeof(rep))
		_exit(2);
	_exit(0);
}

static void *forker_main(void *arg)
{
	struct fork_race *fr = arg;
	unsigned int n;
	pid_t pid;

	run_on_nth_cpu(1);
	for (n = 0; n < FORKS_PER_ROUND_MAX && !atomic_load(&fr->stop); n++) {
		atomic_store(&fr->forking, 1);
		fr->forks[n].t0 = pc_now_ns();
		pid = fork();
		if (!pid)
			child_report_exit(fr);
		fr->forks[n].t1 = pc_now_ns();
		if (pid < 0) {
			fr->fork_err = errno;
			break;
		}
		waitpid(pid, NULL, 0);
		if (read(fr->pipe[0], &fr->rep[n], sizeof(fr->rep[n])) !=
		    sizeof(fr->rep[n]))
			fr->rep[n] = (struct child_report){ 0, 0, 1 };
	}
	fr->nforks = n;
	return NULL;
}

static void __attribute__((noreturn, format(printf, 3, 4)))
helper_end(struct fork_race *fr, char verdict, const char *fmt, ...)
{
	va_list ap;

	fr->res.verdict = verdict;
	va_start(ap, fmt);
	vsnprintf(fr->res.msg, sizeof(fr->res.msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	if (write(fr->result_fd, &fr->res, sizeof(fr->res)) !=
	    sizeof(fr->res))
		_exit(3);
	_exit(0);
}

/* How the forks went, next to the pin. */
static void fork_outcome(struct fork_race *fr, const struct span *pin)
{
	struct fork_result *res = &fr->res;
	long long sum = 0;
	unsigned int i;

	res->forks = fr->nforks;
	for (i = 0; i < fr->nforks; i++) {
		sum += fr->forks[i].t1 - fr->forks[i].t0;
		if (!spans_overlap(&fr->forks[i], pin))
			continue;
		res->forks_overlapping++;
		res->ov_shared += fr->rep[i].shared;
		res->ov_copied += fr->rep[i].copied;
		res->ov_unknown += fr->rep[i].unknown;
	}
	res->fork_ns = fr->nforks ? sum / fr->nforks : 0;
}

static unsigned int pages_moved(const struct pc_region *r)
{
	size_t i, n = r->len / pc_page_size;
	uint64_t *now = pc_pagemap_alloc(r->mem, n, 1);
	unsigned int moved = 0;

	for (i = 0; i < n; i++)
		moved += r->pfn_before[i] && now[i] != r->pfn_before[i];
	free(now);
	return moved;
}

/* Thread B forks while A takes the first pin; 0 or -errno. */
static int race_first_pin(struct fork_race *fr, struct span *pin)
{
	int rc;

	if (pthread_create(&fr->tid, NULL, forker_main, fr))
		return -EAGAIN;
	run_on_nth_cpu(0);
	/* B is about to enter fork(): aim the pin inside it. */
	while (!atomic_load(&fr->forking))
		sched_yield();
	spin_until_ns(pc_now_ns() + fr->pin_delay_ns);
	pin->t0 = pc_now_ns();
	rc = pc_engine_pin(&fr->e, fr->r.mem, fr->r.len, PC_PIN_RW);
	pin->t1 = pc_now_ns();
	atomic_store(&fr->stop, 1);
	pthread_join(fr->tid, NULL);
	return rc;
}

/* Control: the parent's pages replaced after the pin (a lost pin). */
static void replace_parent_pages(struct fork_race *fr)
{
	if (pc_map_fresh(fr->r.mem, fr->r.len))
		helper_end(fr, 'F', "mmap(MAP_FIXED) over the pinned range: %s",
			   strerror(errno));
}

/* CPU write -> device read; device write -> CPU read.  0: coherent. */
static size_t fork_coherence(struct fork_race *fr, char *why, size_t len)
{
	struct pc_check chk = {
		.what = "device read after the CPU wrote (first pin raced with fork)",
		.r = &fr->r, .len = fr->r.len, .gen = PC_GEN_PARENT,
		.side = PC_CHECK_DEVICE, .cpu = fr->r.mem,
	};
	size_t bad;

	pc_region_cpu_write(&fr->r, 0, fr->r.len, PC_GEN_PARENT);
	chk.dev = pc_dev_read_alloc(&fr->e, 0, fr->r.len);
	chk.sample = fr->e.sample;
	bad = pc_verify(&chk);
	free((void *)chk.dev);
	if (bad || !pc_engine_can(fr->e.ops, PC_CAP_DEV_WRITE)) {
		snprintf(why, len, "%s", bad ? pc_mismatch_summary() : "");
		return bad;
	}
	pc_dev_write_gen(&fr->e, 0, fr->r.len, PC_GEN_DEVICE);
	chk.what = "CPU read after the device wrote (first pin raced with fork)";
	chk.side = PC_CHECK_CPU;
	chk.gen = PC_GEN_DEVICE;
	chk.dev = NULL;
	chk.sample = NULL;
	bad = pc_verify(&chk);
	snprintf(why, len, "%s", bad ? pc_mismatch_summary() : "");
	return bad;
}

static void helper_judge(struct fork_race *fr)
{
	char why[300];
	size_t bad = fork_coherence(fr, why, sizeof(why));

	if (fr->lose && !bad)
		helper_end(fr, 'F', "engine is blind: the device read the CPU's write to pages mapped over the pinned ones");
	if (fr->lose)
		helper_end(fr, 'P', "%s", why);
	if (bad)
		helper_end(fr, 'F', "%s (%u of %u forks overlapped the pin; their children saw %u pages shared, %u copied; the pin moved %u pages)",
			   why, fr->res.forks_overlapping, fr->res.forks,
			   fr->res.ov_shared, fr->res.ov_copied,
			   fr->res.pin_moved);
}

/* VmPin must fall back to what it was before the pin. */
static void helper_unpin(struct fork_race *fr, long vmpin_before)
{
	long vmpin;

	if (pc_engine_unpin(&fr->e))
		helper_end(fr, 'F', "unpin: %s", fr->e.err);
	vmpin = pc_status_kb(0, "VmPin");
	if (vmpin > 0 && vmpin != vmpin_before)
		helper_end(fr, 'F', "VmPin %ld kB after the unpin, %ld kB before the pin",
			   vmpin, vmpin_before);
}

/* The helper: a fresh process that has never pinned.  Never returns. */
static void __attribute__((noreturn))
fork_helper(const struct pc_case *c, struct fork_race *fr)
{
	char why[PC_REASON_MAX];
	struct span pin;
	long vmpin;
	int rc;

	rc = pc_region_create(&fr->r, c->backing, PC_GEN_INIT, why,
			      sizeof(why));
	if (rc)
		helper_end(fr, rc > 0 ? 'S' : 'F', "%s", why);
	pc_region_snap(&fr->r, "fork");
	if (pc_engine_open(&fr->e, c->engine))
		helper_end(fr, 'F', "%s", fr->e.err);
	vmpin = pc_status_kb(0, "VmPin");
	fr->res.first_pin = vmpin <= 0;
	rc = race_first_pin(fr, &pin);
	if (rc)
		helper_end(fr, 'F', "first pin: %s", rc == -EAGAIN ?
			   "pthread_create failed" : fr->e.err);
	if (fr->fork_err)
		helper_end(fr, 'F', "fork: %s", strerror(fr->fork_err));
	fork_outcome(fr, &pin);
	fr->res.pin_moved = pages_moved(&fr->r);
	if (fr->lose)
		replace_parent_pages(fr);
	helper_judge(fr);
	helper_unpin(fr, vmpin);
	helper_end(fr, 'P', "coherent");
}

struct fork_tally {
	unsigned long rounds, overlaps, first, forks, forks_ov;
	unsigned long ov_shared, ov_copied, ov_unknown, pin_moved;
	long long fork_ns;
};

/* Run one helper round; its result in *res. */
static void fork_round(const struct pc_case *c, long long delay, int lose,
		       struct fork_result *res)
{
	struct fork_race *fr = pc_xmalloc(sizeof(*fr));
	char how[64];
	struct pc_child ch;
	ssize_t got;
	int status;

	memset(fr, 0, sizeof(*fr));
	fr->pin_delay_ns = delay;
	fr->lose = lose;
	if (!pc_child_fork(&ch)) {
		fr->result_fd = ch.to_parent;
		if (pipe2(fr->pipe, O_NONBLOCK))
			helper_end(fr, 'F', "pipe2: %s", strerror(errno));
		fork_helper(c, fr);
	}
	got = read(ch.to_parent, res, sizeof(*res));
	status = pc_child_reap(&ch);
	free(fr);
	if (got != (ssize_t)sizeof(*res))
		pc_fail("helper process %s before reporting its round",
			pc_wait_describe(status, how, sizeof(how)));
}

static void fork_tally_add(struct fork_tally *t, const struct fork_result *r)
{
	t->rounds++;
	t->overlaps += r->forks_overlapping > 0;
	t->first += r->first_pin;
	t->forks += r->forks;
	t->forks_ov += r->forks_overlapping;
	t->ov_shared += r->ov_shared;
	t->ov_copied += r->ov_copied;
	t->ov_unknown += r->ov_unknown;
	t->pin_moved += r->pin_moved > 0;
	if (r->fork_ns)
		t->fork_ns = r->fork_ns;
}

/* Skip before any helper when the engine cannot run here. */
static void fork_case_probe(const struct pc_case *c)
{
	const char *why = pc_engine_skip_reason(c->engine, c);
	long vmpin = pc_status_kb(0, "VmPin");

	if (why)
		pc_skip("%s", why);
	if (vmpin > 0)
		pc_fail("the case process holds %ld kB pinned before its first round: its helpers would not be fresh",
			vmpin);
}

static void fork_report(const struct fork_tally *t)
{
	pc_diag("%lu rounds (a fresh process each; the first pin in %lu), %lu with a fork overlapping the pin call; %lu forks, %lu overlapping: their children saw %lu pages shared with the parent, %lu copied (%lu unknown); the pin moved the parent's pages in %lu rounds",
		t->rounds, t->first, t->overlaps, t->forks, t->forks_ov,
		t->ov_shared, t->ov_copied, t->ov_unknown, t->pin_moved);
}

static void first_pin_fork_case(const struct pc_case *c)
{
	struct fork_tally t = { .fork_ns = 200000 };
	struct fork_result res;
	long long start = pc_now_ns(), delay;

	fork_case_probe(c);
	while (t.rounds < FORK_ROUNDS_MAX &&
	       (t.rounds < 2 || race_goes_on(start, t.overlaps))) {
		delay = (long long)(t.rounds * 37 % 100) * t.fork_ns / 100;
		fork_round(c, delay, 0, &res);
		if (res.verdict == 'S')
			pc_skip("%s", res.msg);
		if (res.verdict != 'P')
			pc_fail("round %lu: %s%s%s", t.rounds + 1, res.msg,
				res.forks_overlapping ? "; known bug, fixed by " : "",
				res.forks_overlapping ? FORK_FIX : "");
		fork_tally_add(&t, &res);
	}
	fork_report(&t);
	if (!t.overlaps)
		pc_skip("no event: the race was not hit: 0 of %lu rounds had a fork overlap the first pin",
			t.rounds);
	pc_pass();
}

static void control_fork_lost_case(const struct pc_case *c)
{
	struct fork_result res;

	fork_case_probe(c);
	fork_round(c, 50000, 1, &res);
	if (res.verdict == 'S')
		pc_skip("%s", res.msg);
	if (res.verdict != 'P')
		pc_fail("%s", res.msg);
	pc_diag("mismatch detected as it must be: %s", res.msg);
	pc_pass();
}

/* ---- cases --------------------------------------------------------------- */

/*
 * The engines whose pin goes through GUP-fast and is held: pin_user_pages_
 * fast() (io_uring where io_pin_pages() uses it, rdma's ib_umem_get(),
 * gup_test_fast) and, for the remap race only, vmsplice's FOLL_GET
 * references (get_user_pages_fast() through iov_iter_get_pages()), which
 * fork does not treat as pins.
 */
static const char *const pin_engines[] = {
	"io_uring", "rdma", "gup_test_fast", NULL,
};
static const char *const remap_engines[] = {
	"io_uring", "rdma", "gup_test_fast", "vmsplice", NULL,
};
static const char *const race_backings[] = { "anon", "thp-pmd" };

static void add_race(pc_case_fn run, const void *scenario, const char *name,
		     const char *const *engines)
{
	const struct pc_engine_ops *ops;
	const struct pc_backing *bk;
	size_t b, e;

	for (b = 0; b < PC_ARRAY_SIZE(race_backings); b++) {
		bk = pc_backing_find(race_backings[b]);
		if (!bk)
			continue;
		for (e = 0; engines[e]; e++) {
			ops = pc_engine_find(engines[e]);
			if (!ops || !pc_engine_can(ops, PC_CAP_DEV_READ |
						   PC_CAP_HELD))
				continue;
			pc_add_case(run, scenario, bk, ops, "%s/%s/%s/%s",
				    pc_binary(), name, bk->name, ops->name);
		}
	}
}

static void add_cases(void)
{
	/* every CPU: the pin and the remap on two CPUs at once */
	pc_cases_race_across_cpus();
	add_race(remap_race_case, &remap_fixed, remap_fixed.name,
		 remap_engines);
	add_race(remap_race_case, &unmap_remap, unmap_remap.name,
		 remap_engines);
	add_race(control_remap_lost_case, &remap_fixed,
		 "control-pin-vs-remap-lost", remap_engines);
	add_race(first_pin_fork_case, NULL, "first-pin-vs-fork", pin_engines);
	add_race(control_fork_lost_case, NULL,
		 "control-first-pin-vs-fork-lost", pin_engines);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "gupfast_race", add_cases);
}
