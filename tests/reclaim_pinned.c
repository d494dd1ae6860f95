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
 *
 * All three need swap (run_tests.sh sets up a zram swap device; by hand:
 * swapon a device) and skip with that reason without it.  The cgroup is
 * made below this process's own one and removed after the case (cgroup2
 * is mounted for the case when no memory hierarchy is).
 *
 * Control: "control-mover-ignores-pin" plays a swap-out and swap-in that
 * ignore the pin (the CPU's data on fresh pages, mapped in place): the
 * same checks must report the loss.  It needs no swap.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

enum kind { PAGEOUT, MEMCG_PRESSURE, SWAPIN_PIN };

struct reclaim_scenario {
	const char *name;
	enum kind kind;
	const char *backings;
};

static const struct reclaim_scenario scenarios[] = {
	{ "pageout", PAGEOUT, "anon thp-pmd memfd-shared" },
	{ "memcg-pressure", MEMCG_PRESSURE, "anon memfd-shared" },
	{ "swapin-pin", SWAPIN_PIN, "anon thp-pmd memfd-shared" },
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
		pc_skip("%s evicted no page of the unpinned twin (pswpout %+lld): reclaim did not run over it",
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

static void memcg_case_setup(const struct pc_case *c,
			     struct pc_mover_setup *s, struct pc_memcg *m)
{
	char why[PC_REASON_MAX];
	long long cur;
	int rc;

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
		pc_skip("MADV_PAGEOUT did not swap the whole range out (%s)",
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

static void control_case(const struct pc_case *c)
{
	struct pc_mover_setup s;

	pc_mover_setup(c, &s, -1, 0, "the pin-ignoring swap-out");
	pc_move_ignoring_pin(&s.r, -1);
	pc_expect_lost_pin_detected(&s.e, &s.r, PC_GEN_INIT);
	pc_mover_teardown(&s);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD | PC_CAP_DEV_READ;
	size_t i;

	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
		pc_add_matrix_on(scenarios[i].kind == SWAPIN_PIN ?
				 swapin_pin_case : reclaim_case,
				 &scenarios[i], scenarios[i].name,
				 scenarios[i].backings, need, PC_CAP_GET_REF,
				 CASE_TIMEOUT_S);
	pc_add_matrix_on(control_case, NULL, "control-mover-ignores-pin",
			 "anon", need, PC_CAP_GET_REF, 0);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "reclaim_pinned", add_cases);
}
