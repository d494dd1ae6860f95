// SPDX-License-Identifier: GPL-2.0
/*
 * thp_pinned: THP collapse and split around pinned pages (S12).
 *
 *   collapse       a PMD-size range of base pages, part of it pinned R/W,
 *                  and an unpinned twin: MADV_COLLAPSE on both.  The twin
 *                  must become one THP (else the collapse did not run:
 *                  SKIP); the pinned subpages must keep their PFNs (a
 *                  collapse copies into a new THP and frees the old pages,
 *                  which would leave the device on them) and stay coherent
 *   split-mprotect a pinned PMD-mapped THP and a twin; mprotect() of one
 *                  subpage R/O and back splits the PMD mapping: the twin's
 *                  split is the proof, the pinned pages keep their PFNs
 *   split-munmap   the first half of a THP pinned, the second half unmapped
 *                  (PMD split, folio queued for a deferred split), then a
 *                  split of the range requested through debugfs
 *                  split_huge_pages where it exists: the twin's folio splits,
 *                  the pinned half keeps its pages and stays coherent.
 *                  PASSes only with evidence of the split: the pinned
 *                  THP's VMA lost its AnonHugePages (its PMD mapping was
 *                  split; thp_split_pmd where smaps cannot tell) and, after
 *                  a split_huge_pages request, the twin's pages are no
 *                  longer THP (kpageflags) with thp_split_page up
 *   fork-split     fork() with a pinned PMD-mapped THP: the kernel splits the
 *                  parent's PMD and copies the pinned subpages for the child
 *                  (AnonHugePages before/after is printed, with the twin's,
 *                  which stays COW-shared); the parent and the device stay
 *                  coherent and the live child keeps its pre-fork data
 *
 * Control: "control-mover-ignores-pin" plays a collapse that ignores the
 * pin (the CPU's data on fresh pages mapped in place): the checks must
 * report it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pincheck.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PIN_SUBPAGES 16		/* pinned part of the collapse range */
#define PIN_OFFSET_PAGES 64	/* where it starts */
#define SPLIT_DEBUGFS "/sys/kernel/debug/split_huge_pages"
#define THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"

static const char *const counters[] = {
	"thp_collapse_alloc", "thp_split_pmd", "thp_split_page",
	"thp_split_page_failed", "thp_deferred_split_page", NULL,
};

static size_t pmd_size(void)
{
	char buf[32];

	if (!pc_read_line("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
			  buf, sizeof(buf)))
		return strtoull(buf, NULL, 10);
	return 2UL << 20;
}

static long thp_kb(const void *addr)
{
	long kb = pc_smaps_kb(addr, "AnonHugePages");

	return kb < 0 ? 0 : kb;
}

/* A view of part of @whole as a region of its own (own pattern offsets). */
static void region_view(struct pc_region *v, const struct pc_region *whole,
			size_t off, size_t len)
{
	memset(v, 0, sizeof(*v));
	v->bk = whole->bk;
	v->mem = whole->mem + off;
	v->len = len;
	v->gen = PC_GEN_INIT;
	v->fd = -1;
	pc_fill(v->mem, 0, len, PC_GEN_INIT);
}

static void view_done(struct pc_region *v)
{
	free(v->pfn_before);
	v->pfn_before = NULL;
}

/* ---- collapse ------------------------------------------------------------- */

/* PMD-aligned, PMD-size base pages filled with PC_GEN_INIT. */
static void make_base_range(struct pc_region *x, const struct pc_backing *bk)
{
	size_t len = pmd_size(), extra = len;
	char *p = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *start;

	if (p == MAP_FAILED)
		pc_fail_errno("mmap");
	start = (char *)pc_align_up((uintptr_t)p, len);
	if (start > p)
		munmap(p, start - p);
	munmap(start + len, p + extra - start);
	memset(x, 0, sizeof(*x));
	x->bk = bk;
	x->fd = -1;
	x->map = x->mem = start;
	x->map_len = x->len = len;
	madvise(start, len, MADV_NOHUGEPAGE);
	pc_fill(start, 0, len, PC_GEN_INIT);
	x->gen = PC_GEN_INIT;
	if (thp_kb(start))
		pc_skip("could not get base pages under MADV_NOHUGEPAGE");
}

static int collapse(struct pc_region *x)
{
	if (madvise(x->mem, x->len, MADV_HUGEPAGE))
		pc_skip("MADV_HUGEPAGE refused (%s): kernel without THP",
			strerror(errno));
	return madvise(x->mem, x->len, MADV_COLLAPSE) ? -errno : 0;
}

static void collapse_case(const struct pc_case *c)
{
	struct pc_region whole, view, twin;
	struct pc_counters cnt;
	struct pc_engine e;
	int rc_pinned, rc_twin;

	pc_engine_open_or_skip(&e, c->engine);
	pc_gen_name(PC_GEN_INIT, "written before the collapse");
	make_base_range(&whole, c->backing);
	make_base_range(&twin, c->backing);
	region_view(&view, &whole, PIN_OFFSET_PAGES * pc_page_size,
		    PIN_SUBPAGES * pc_page_size);
	pc_pin_region_or_skip(&e, &view, PC_PIN_RW);
	pc_region_snap(&view, "MADV_COLLAPSE");
	pc_counters_start(&cnt, counters);
	rc_pinned = collapse(&whole);
	rc_twin = collapse(&twin);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	pc_diag("MADV_COLLAPSE: range with %d pinned subpages %s (AnonHugePages %ld kB), unpinned twin %s (AnonHugePages %ld kB)",
		PIN_SUBPAGES, rc_pinned ? strerror(-rc_pinned) : "collapsed",
		thp_kb(whole.mem), rc_twin ? strerror(-rc_twin) : "collapsed",
		thp_kb(twin.mem));
	if (rc_twin == -EINVAL)
		pc_skip("MADV_COLLAPSE not supported here (kernel < 6.1, or THP disabled: %s)",
			THP_ENABLED);
	if (rc_twin || thp_kb(twin.mem) < (long)(twin.len >> 10))
		pc_skip("no event: MADV_COLLAPSE did not collapse the unpinned twin (%s): the collapse did not run",
			rc_twin ? strerror(-rc_twin) : "still base pages");
	pc_expect_pinned_pages_stayed(&view, "MADV_COLLAPSE");
	pc_coherence_round(&e, &view, PC_GEN_INIT, "after MADV_COLLAPSE");
	pc_engine_close(&e);
	view_done(&view);
	pc_region_destroy(&whole);
	pc_region_destroy(&twin);
	pc_pass();
}

/* ---- splits --------------------------------------------------------------- */

static void split_by_mprotect(struct pc_region *x)
{
	char *sub = x->mem + pc_page_size;

	if (mprotect(sub, pc_page_size, PROT_READ) ||
	    mprotect(sub, pc_page_size, PROT_READ | PROT_WRITE))
		pc_fail_errno("mprotect of one subpage");
}

static void split_mprotect_case(const struct pc_case *c)
{
	struct pc_mover_setup s;
	struct pc_counters cnt;
	long r_before, t_before;

	pc_mover_setup(c, &s, -1, 1, "the split");
	r_before = thp_kb(s.r.mem);
	t_before = thp_kb(s.t.mem);
	pc_counters_start(&cnt, counters);
	split_by_mprotect(&s.r);
	split_by_mprotect(&s.t);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	pc_diag("AnonHugePages: pinned %ld -> %ld kB, unpinned twin %ld -> %ld kB",
		r_before, thp_kb(s.r.mem), t_before, thp_kb(s.t.mem));
	if (thp_kb(s.t.mem) >= t_before)
		pc_skip("no event: mprotect() of a subpage did not split the twin's PMD mapping");
	pc_expect_pinned_pages_stayed(&s.r, "the split");
	pc_coherence_round(&s.e, &s.r, PC_GEN_INIT, "after the PMD split");
	pc_mover_teardown(&s);
	pc_pass();
}

/* Ask debugfs to split the THPs of [addr, addr + len); 0 or -errno. */
static int request_split(const void *addr, size_t len)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "%d,0x%lx,0x%lx", (int)getpid(),
		 (unsigned long)addr, (unsigned long)addr + len);
	return pc_write_str(SPLIT_DEBUGFS, cmd);
}

/* Pages of [addr, addr + len) still part of a THP. */
static size_t thp_pages(const void *addr, size_t len)
{
	return pc_pages_flagged(addr, (len + pc_page_size - 1) / pc_page_size,
				PC_KPF_THP);
}

/*
 * The partial munmap must have split the pinned THP's PMD mapping: its
 * VMA's AnonHugePages drops from the THP to 0 (smaps counts PMD-mapped
 * THPs only), or, where smaps cannot tell, thp_split_pmd rose for both
 * regions.  Else the case tested nothing: SKIP with the counts.
 */
static void expect_pmd_split(const struct pc_counters *cnt, long kb_before,
			     long kb_after)
{
	long long pmd = pc_counters_delta(cnt, "thp_split_pmd");

	if (kb_before > 0 && kb_after == 0)
		return;
	if (kb_before < 0 && pmd >= 2)
		return;
	pc_skip("no event: the partial munmap left the pinned THP PMD-mapped (AnonHugePages of its VMA %ld -> %ld kB, thp_split_pmd %+lld)",
		kb_before, kb_after, pmd);
}

/*
 * Where split_huge_pages took the request, the twin's folio must have
 * split (its pages no longer THP, thp_split_page up): else SKIP.
 */
static void expect_folio_split(const struct pc_counters *cnt,
			       const struct pc_region *t, size_t half)
{
	long long pages = pc_counters_delta(cnt, "thp_split_page");
	size_t left = thp_pages(t->mem, half);

	if (!left && pages != 0)
		return;
	pc_skip("no event: split_huge_pages did not split the twin's folio (%zu of its %zu pages still THP, thp_split_page %+lld)",
		left, half / pc_page_size, pages);
}

static void split_munmap_case(const struct pc_case *c)
{
	struct pc_region r, t, view;
	struct pc_counters cnt;
	struct pc_engine e;
	size_t half;
	long kb_before;
	int split_rc = -ENOENT;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_region_create_or_skip(&t, c->backing, PC_GEN_INIT);
	pc_gen_name(PC_GEN_INIT, "written before the split");
	half = r.len / 2;
	region_view(&view, &r, 0, half);
	pc_pin_region_or_skip(&e, &view, PC_PIN_RW);
	pc_region_snap(&view, "the split");
	kb_before = pc_smaps_kb(r.mem, "AnonHugePages");
	pc_counters_start(&cnt, counters);
	if (munmap(r.mem + half, half) || munmap(t.mem + half, half))
		pc_fail_errno("munmap of the second half");
	if (!access(SPLIT_DEBUGFS, W_OK)) {
		split_rc = request_split(r.mem, half);
		if (!split_rc)
			split_rc = request_split(t.mem, half);
	}
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	pc_diag("after munmap of the second half%s: THP pages left: pinned half %zu, twin %zu; AnonHugePages pinned %ld -> %ld kB, twin %ld kB",
		split_rc ? " (no debugfs split_huge_pages)" :
			   " and a split_huge_pages request",
		thp_pages(r.mem, half), thp_pages(t.mem, half),
		kb_before, pc_smaps_kb(r.mem, "AnonHugePages"), thp_kb(t.mem));
	pc_expect_pinned_pages_stayed(&view, "the split");
	pc_coherence_round(&e, &view, PC_GEN_INIT, "after the partial munmap");
	expect_pmd_split(&cnt, kb_before, pc_smaps_kb(r.mem, "AnonHugePages"));
	if (!split_rc)
		expect_folio_split(&cnt, &t, half);
	pc_engine_close(&e);
	view_done(&view);
	pc_region_destroy(&r);
	pc_region_destroy(&t);
	pc_pass();
}

/* ---- fork ------------------------------------------------------------------ */

static void __attribute__((noreturn))
child_keeps_its_copy(struct pc_child *ch, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "child's copy after the parent's checks",
		.r = r, .len = r->len, .gen = PC_GEN_INIT,
		.side = PC_CHECK_CHILD, .cpu = r->mem,
	};

	pc_child_tell(ch->to_parent, 'r');
	if (pc_child_await(ch->to_child, NULL))
		_exit(3);
	_exit(pc_verify(&chk) ? 1 : 0);
}

static void fork_split_case(const struct pc_case *c)
{
	struct pc_mover_setup s;
	struct pc_counters cnt;
	struct pc_child ch;
	long r_before, t_before;
	char how[64];
	int status;

	pc_mover_setup(c, &s, -1, 1, "fork");
	pc_gen_name(PC_GEN_INIT, "written before fork");
	r_before = thp_kb(s.r.mem);
	t_before = thp_kb(s.t.mem);
	pc_counters_start(&cnt, counters);
	if (!pc_child_fork(&ch))
		child_keeps_its_copy(&ch, &s.r);
	if (pc_child_await(ch.to_parent, NULL))
		pc_fail("child died before the parent's checks");
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	pc_diag("AnonHugePages in the parent: pinned %ld -> %ld kB (split at fork), unpinned twin %ld -> %ld kB",
		r_before, thp_kb(s.r.mem), t_before, thp_kb(s.t.mem));
	pc_expect_pinned_pages_stayed(&s.r, "fork");
	pc_region_cpu_write(&s.r, 0, s.r.len, PC_GEN_PARENT);
	pc_coherence_round(&s.e, &s.r, PC_GEN_PARENT, "after fork");
	pc_child_tell(ch.to_child, 'c');
	status = pc_child_reap(&ch);
	if (status)
		pc_fail("child's copy of the pinned THP: %s",
			pc_wait_describe(status, how, sizeof(how)));
	pc_mover_teardown(&s);
	pc_pass();
}

static void control_case(const struct pc_case *c)
{
	struct pc_mover_setup s;

	pc_mover_setup(c, &s, -1, 0, "the pin-ignoring collapse");
	pc_move_ignoring_pin(&s.r, -1);
	pc_expect_lost_pin_detected(&s.e, &s.r, PC_GEN_INIT);
	pc_mover_teardown(&s);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD | PC_CAP_DEV_READ;

	/* the page movers pick their own few backings */
	pc_slow_engine_backings = "*";
	pc_add_matrix_on(collapse_case, NULL, "collapse", "anon", need,
			 PC_CAP_GET_REF, 0);
	pc_add_matrix_on(split_mprotect_case, NULL, "split-mprotect",
			 "thp-pmd", need, PC_CAP_GET_REF, 0);
	pc_add_matrix_on(split_munmap_case, NULL, "split-munmap", "thp-pmd",
			 need, PC_CAP_GET_REF, 0);
	pc_add_matrix_on(fork_split_case, NULL, "fork-split", "thp-pmd", need,
			 PC_CAP_GET_REF, 0);
	pc_add_matrix_on(control_case, NULL, "control-mover-ignores-pin",
			 "thp-pmd", need, PC_CAP_GET_REF, 0);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "thp_pinned", add_cases);
}
