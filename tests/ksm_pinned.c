// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_pinned: KSM and pinned pages (S11).
 *
 * Regions filled with the same pattern have identical pages, so KSM can
 * merge them once they are MADV_MERGEABLE.  ksmd runs for the case
 * (/sys/kernel/mm/ksm/run=1 with a short sleep and a larger batch; the
 * harness puts every KSM knob back after the case).  Two pages are merged
 * when they are the same physical page (same PFN): kpageflags' KSM bit
 * cannot be trusted (6.12 sets it on every anonymous page).
 *
 *   pinned-not-merged       a region pinned R/W and two unpinned twins:
 *                           the twins must merge (else ksmd did not run:
 *                           SKIP), the pinned pages must not (same PFNs,
 *                           none shared), and stay coherent
 *   merged-then-pinned      a region merged with its twin, then pinned
 *                           R/W: the pin must unshare it (no page shared
 *                           with the twin any more), device writes must not
 *                           reach the twin, CPU and device stay coherent
 *   merged-then-pinned-ro   the same with a R/O pin (engines that can):
 *                           a later CPU write must reach the device, i.e.
 *                           the R/O pin unshared the KSM page as well
 *
 * Control: "control-getref-merged" takes a FOLL_GET reference (vmsplice)
 * on a merged page, which nothing unshares: the CPU's next write copies
 * the KSM page away and the device side must be seen stale.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pincheck.h"

#define KSM_DIR "/sys/kernel/mm/ksm/"
#define KSM_WAIT_MS 30000
#define KSM_EXTRA_SCANS 2	/* full scans after the twins merged */
#define CASE_TIMEOUT_S 50

static const char *const counters[] = {
	KSM_DIR "pages_shared", KSM_DIR "pages_sharing", KSM_DIR "full_scans",
	NULL,
};

/* ---- KSM ---------------------------------------------------------------- */

static void ksm_start(void)
{
	int err;

	if (access(KSM_DIR "run", W_OK))
		pc_skip("no " KSM_DIR "run: kernel without CONFIG_KSM");
	err = pc_knob_set_num(KSM_DIR "sleep_millisecs", 10);
	if (!err)
		err = pc_knob_set_num(KSM_DIR "pages_to_scan", 8000);
	if (!err)
		err = pc_knob_set(KSM_DIR "run", "1");
	if (err)
		pc_fail("cannot start ksmd through " KSM_DIR ": %s",
			strerror(-err));
}

static void mergeable(struct pc_region *x)
{
	if (!madvise(x->mem, x->len, MADV_MERGEABLE))
		return;
	if (errno == EINVAL)
		pc_skip("MADV_MERGEABLE refused: kernel without CONFIG_KSM");
	pc_fail_errno("madvise(MADV_MERGEABLE)");
}

/* Pages of @a that are the same physical page as in @b. */
static size_t shared_pages(const struct pc_region *a,
			   const struct pc_region *b)
{
	size_t i, n = a->len / pc_page_size, same = 0;
	uint64_t *pa = pc_pagemap_alloc(a->mem, n, 1);
	uint64_t *pb = pc_pagemap_alloc(b->mem, n, 1);

	for (i = 0; i < n; i++)
		same += pa[i] && pa[i] == pb[i];
	free(pa);
	free(pb);
	return same;
}

/*
 * Wait until @a and @b share every page and ksmd made KSM_EXTRA_SCANS
 * more full scans (with @extra), or KSM_WAIT_MS.  Returns the ms waited
 * for the merge, -1 if it never came.
 */
static long long wait_merged(const struct pc_region *a,
			     const struct pc_region *b, int extra)
{
	long long t0 = pc_now_ms(), merged = -1, scans = 0;
	size_t n = a->len / pc_page_size;

	while (pc_now_ms() - t0 < KSM_WAIT_MS) {
		if (merged < 0 && shared_pages(a, b) == n) {
			merged = pc_now_ms() - t0;
			scans = pc_counter_read(KSM_DIR "full_scans");
			if (!extra)
				break;
		}
		if (merged >= 0 && pc_counter_read(KSM_DIR "full_scans") >=
				   scans + KSM_EXTRA_SCANS)
			break;
		pc_sleep_ms(50);
	}
	return merged;
}

static void skip_not_merged(const char *what, const struct pc_counters *c)
{
	pc_skip("no event: ksmd did not merge %s within %d s (full_scans %+lld, pages_sharing %+lld): KSM did not run over them",
		what, KSM_WAIT_MS / 1000,
		pc_counters_delta(c, KSM_DIR "full_scans"),
		pc_counters_delta(c, KSM_DIR "pages_sharing"));
}

/* ---- cases ---------------------------------------------------------------- */

static void pinned_not_merged_case(const struct pc_case *c)
{
	struct pc_mover_setup s;
	struct pc_region t2;
	struct pc_counters cnt;
	long long ms;

	pc_mover_setup(c, &s, -1, 1, "KSM");
	pc_region_create_or_skip(&t2, c->backing, PC_GEN_INIT);
	mergeable(&s.r);
	mergeable(&s.t);
	mergeable(&t2);
	pc_counters_start(&cnt, counters);
	ksm_start();
	ms = wait_merged(&s.t, &t2, 1);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	pc_diag("evidence: twins share %zu of %zu pages (merged after %lld ms); pinned region shares %zu with them",
		shared_pages(&s.t, &t2), s.t.len / pc_page_size, ms,
		shared_pages(&s.r, &s.t));
	if (ms < 0)
		skip_not_merged("the two unpinned twins", &cnt);
	if (shared_pages(&s.r, &s.t))
		pc_fail("KSM merged %zu pinned page(s) with the twins: the device keeps the old page",
			shared_pages(&s.r, &s.t));
	pc_expect_pinned_pages_stayed(&s.r, "KSM");
	pc_coherence_round(&s.e, &s.r, PC_GEN_INIT, "after KSM");
	pc_region_destroy(&t2);
	pc_mover_teardown(&s);
	pc_pass();
}

/* r and its twin t merged by KSM before any pin; SKIP if they never are. */
static void merge_first(const struct pc_case *c, struct pc_engine *e,
			struct pc_region *r, struct pc_region *t)
{
	struct pc_counters cnt;
	long long ms;

	pc_engine_open_or_skip(e, c->engine);
	pc_region_create_or_skip(r, c->backing, PC_GEN_INIT);
	pc_region_create_or_skip(t, c->backing, PC_GEN_INIT);
	pc_gen_name(PC_GEN_INIT, "written before the merge");
	mergeable(r);
	mergeable(t);
	pc_counters_start(&cnt, counters);
	ksm_start();
	ms = wait_merged(r, t, 0);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	if (ms < 0)
		skip_not_merged("the region and its twin", &cnt);
	pc_diag("evidence: region and twin share %zu of %zu pages (merged after %lld ms)",
		shared_pages(r, t), r->len / pc_page_size, ms);
	pc_region_snap(r, "the pin");
}

static void merged_then_pinned_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct pc_region r, t;
	size_t still;

	merge_first(c, &e, &r, &t);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	still = shared_pages(&r, &t);
	pc_diag("after the R/W pin: %zu page(s) still shared with the twin",
		still);
	if (still)
		pc_fail("a R/W pin left %zu page(s) shared with the twin (KSM page): device writes would reach the twin",
			still);
	pc_region_snap(&r, "the checks");
	pc_coherence_round(&e, &r, PC_GEN_INIT, "after unsharing");
	pc_expect_cpu_sees(&t, PC_GEN_INIT,
			   "the twin after device writes to the unshared region");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_region_destroy(&t);
	pc_pass();
}

static void merged_then_pinned_ro_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct pc_region r, t;

	merge_first(c, &e, &r, &t);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RO);
	pc_diag("after the R/O pin: %zu page(s) still shared with the twin",
		shared_pages(&r, &t));
	pc_expect_device_sees(&e, &r, PC_GEN_INIT, "device read after the R/O pin");
	pc_gen_name(PC_GEN_PARENT, "CPU write after the R/O pin");
	pc_region_cpu_write(&r, 0, r.len, PC_GEN_PARENT);
	pc_expect_device_sees(&e, &r, PC_GEN_PARENT,
			      "device read of a CPU write to a R/O-pinned KSM page");
	pc_expect_cpu_sees(&t, PC_GEN_INIT, "the twin after the CPU write");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_region_destroy(&t);
	pc_pass();
}

static void control_case(const struct pc_case *c)
{
	struct pc_check chk = { .what = "pipe read after a CPU write to a merged page",
				.gen = PC_GEN_PARENT, .side = PC_CHECK_DEVICE };
	struct pc_engine e;
	struct pc_region r, t;
	void *dev;

	merge_first(c, &e, &r, &t);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RO);
	pc_gen_name(PC_GEN_PARENT, "CPU write after the reference");
	pc_region_cpu_write(&r, 0, r.len, PC_GEN_PARENT);
	dev = pc_dev_read_alloc(&e, 0, r.len);
	chk.r = &r;
	chk.len = r.len;
	chk.dev = dev;
	chk.cpu = r.mem;
	if (!pc_verify(&chk))
		pc_skip("the kernel unshared the KSM page for a FOLL_GET reference: nothing stale to detect here");
	chk.gen = PC_GEN_INIT;
	chk.what = "pipe read of the merged page it referenced";
	pc_verify_or_fail(&chk);
	pc_diag("stale reference detected as it must be: the pipe kept the KSM page, the CPU wrote a copy");
	free(dev);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_region_destroy(&t);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int held = PC_CAP_HELD | PC_CAP_DEV_READ;

	/* the page movers pick their own few backings */
	pc_slow_engine_backings = "*";
	pc_add_matrix_on(pinned_not_merged_case, NULL, "pinned-not-merged",
			 "anon thp-pmd", held | PC_CAP_PIN_RW, PC_CAP_GET_REF,
			 CASE_TIMEOUT_S);
	pc_add_matrix_on(merged_then_pinned_case, NULL, "merged-then-pinned",
			 "anon thp-pmd", held | PC_CAP_PIN_RW, PC_CAP_GET_REF,
			 CASE_TIMEOUT_S);
	pc_add_matrix_on(merged_then_pinned_ro_case, NULL,
			 "merged-then-pinned-ro", "anon",
			 held | PC_CAP_PIN_RO, PC_CAP_GET_REF, CASE_TIMEOUT_S);
	pc_add_matrix_on(control_case, NULL, "control-getref-merged", "anon",
			 held | PC_CAP_GET_REF | PC_CAP_PIN_RO, 0,
			 CASE_TIMEOUT_S);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "ksm_pinned", add_cases);
}
