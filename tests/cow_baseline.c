// SPDX-License-Identifier: GPL-2.0
/*
 * cow_baseline: fork() and copy-on-write with nothing pinned (S4).
 *
 * The same fork / write-order matrix as pin_fork, on every backing, with
 * no engine: the baseline every pin test departs from.  Two things are
 * checked in every case:
 *
 *   isolation  after the fork each process sees only its own writes
 *              (a MAP_SHARED backing shares them);
 *   copies     the kernel's copy decisions, seen in the PFNs of
 *              /proc/self/pagemap (root): right after fork() the child's
 *              pages are the parent's (nothing pinned: no copy at fork);
 *              a write while the other process still maps the page gives
 *              the writer a new page; the last owner's write reuses an
 *              anonymous page (and /proc/vmstat pgreuse rises) where the
 *              kernel documents it (base pages, a PMD-mapped THP,
 *              hugetlb), and takes a new page where it cannot reuse (the
 *              zero pages, the page cache behind a private mapping).
 *
 *   [prefork-]fork-<exit|exec|alive>-<parent|child|nobody>-writes
 *
 * Controls: control-pinned-copies/<backing>/<engine>: the same fork with
 * an engine holding a R/W long-term pin: the kernel copies the pinned
 * pages at fork, and the "not copied at fork" check must report it.
 * control-extra-ref-copies/anon/none: the last owner writes while a pipe
 * holds a reference on each page: the kernel copies, and the "page
 * reused" check must report it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pincheck.h"
#include "pfnview.h"

enum child_fate { CHILD_EXITS, CHILD_EXECS, CHILD_ALIVE };
enum writer { PARENT_WRITES, CHILD_WRITES, NOBODY_WRITES };

struct cow_scenario {
	char name[64];
	int prefork;
	enum child_fate fate;
	enum writer writer;
};

static const char *const fate_names[] = { "exit", "exec", "alive" };
static const char *const writer_names[] = { "parent", "child", "nobody" };

static struct cow_scenario scenarios[2 * 3 * 3];

/* What the write of the last process mapping a page does to it. */
enum last_write {
	LW_SHARED,	/* MAP_SHARED: the page itself is written */
	LW_REUSE,	/* the anonymous page is reused, no copy */
	LW_NEW_PAGE,	/* a new page: zero page, page cache, nothing mapped */
	LW_SWAPIN,	/* the swapped-out page comes back: nothing to compare */
	LW_EITHER,	/* a PTE-mapped large folio: reuse depends on the kernel */
};

static enum last_write last_owner_write(const struct pc_backing *bk)
{
	if (bk->flags & PC_BK_SHARED)
		return LW_SHARED;
	if (bk->flags & PC_BK_SWAPPED)
		return LW_SWAPIN;
	if (bk->flags & (PC_BK_ZERO | PC_BK_FILE))
		return LW_NEW_PAGE;
	if ((bk->flags & PC_BK_HUGETLB) || !strcmp(bk->name, "anon") ||
	    !strcmp(bk->name, "thp-pmd"))
		return LW_REUSE;
	return LW_EITHER;
}

/* One case's region and the views of it taken along the way. */
struct cow_run {
	struct pc_region r;
	size_t n;		/* base pages */
	uint64_t *parent0;	/* parent, before fork */
	uint64_t *child0;	/* child, right after fork */
	uint64_t *child1;	/* child, after its own write */
	uint64_t *parent1;	/* parent, once the child did its part */
	uint64_t *parent2;	/* parent, after its own write */
	uint64_t *child2;	/* live child, at the end */
};

static void need_pfns(void)
{
	if (!pc_pfn_readable())
		pc_skip("the copy checks need PFNs from /proc/self/pagemap: run as root (CAP_SYS_ADMIN)");
}

static void run_init(struct cow_run *run, const struct pc_backing *bk)
{
	size_t sz;

	memset(run, 0, sizeof(*run));
	pc_region_create_or_skip(&run->r, bk, PC_GEN_INIT);
	run->n = run->r.len / pc_page_size;
	sz = run->n * sizeof(uint64_t);
	run->parent0 = pc_xmalloc(sz);
	run->child0 = pc_xmalloc(sz);
	run->child1 = pc_xmalloc(sz);
	run->parent1 = pc_xmalloc(sz);
	run->parent2 = pc_xmalloc(sz);
	run->child2 = pc_xmalloc(sz);
}

static void read_view_or_fail(const struct cow_run *run, uint64_t *keys)
{
	int rc = pc_view_read(run->r.mem, run->n, keys);

	if (rc)
		pc_fail("read /proc/self/pagemap: %s", strerror(-rc));
}

/*
 * Compare two views page by page.  @copied: a page is expected to be a
 * copy (@a present and not @b's page), else the same page.  Returns the
 * pages that are not as expected, each named in a diagnostic.
 */
static size_t compare_views(const char *what, const uint64_t *a,
			    const char *an, const uint64_t *b, const char *bn,
			    size_t n, int copied)
{
	char da[96], db[96];
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		int same = a[i] == b[i];

		if (copied ? (!same && pc_view_present(a[i])) : same)
			continue;
		if (bad++ < 8)
			pc_diag("%s: page %zu %s: %s %s, %s %s", what, i,
				copied ? "not copied" : "copied", an,
				pc_view_describe(a[i], da, sizeof(da)), bn,
				pc_view_describe(b[i], db, sizeof(db)));
	}
	return bad;
}

/* The same, failing the case on any page that is not as expected. */
static void expect_views(const char *what, const uint64_t *a, const char *an,
			 const uint64_t *b, const char *bn, size_t n,
			 int copied)
{
	size_t bad = compare_views(what, a, an, b, bn, n, copied);
	char da[96], db[96];

	if (bad)
		pc_fail("%s: %zu of %zu pages %s (PFNs above)", what, bad, n,
			copied ? "NOT copied where a copy is due" :
				 "copied unexpectedly");
	pc_diag("%s: %zu of %zu pages %s, page 0: %s %s, %s %s", what, n, n,
		copied ? "copied" : "shared", an,
		pc_view_describe(a[0], da, sizeof(da)), bn,
		pc_view_describe(b[0], db, sizeof(db)));
}

/* ---- the child ------------------------------------------------------- */

static void child_send_view(struct pc_child *ch, struct cow_run *run,
			    uint64_t *keys)
{
	if (pc_view_read(run->r.mem, run->n, keys) ||
	    pc_view_send(ch->to_parent, keys, run->n))
		_exit(2);
}

/*
 * fork() copies no page table entries of a VMA without anonymous pages
 * (vma_needs_copy(): a file mapping only read so far, a range that maps
 * only the shared zero page): the child maps the same pages on its first
 * access.  Read-fault those (present in the parent, absent here), then
 * send how many there were and the view.
 */
static void child_send_fork_view(struct pc_child *ch, struct cow_run *run)
{
	const volatile char *p = run->r.mem;
	uint64_t lazy = 0;
	size_t i;

	if (pc_view_read(run->r.mem, run->n, run->child0))
		_exit(2);
	for (i = 0; i < run->n; i++) {
		if (!pc_view_present(run->parent0[i]) ||
		    run->child0[i] != 0)
			continue;
		(void)p[i * pc_page_size];
		lazy++;
	}
	if (pc_view_send(ch->to_parent, &lazy, 1))
		_exit(2);
	child_send_view(ch, run, run->child0);
}

static void __attribute__((noreturn))
run_child(const struct cow_scenario *s, struct pc_child *ch,
	  struct cow_run *run)
{
	unsigned int own = run->r.gen;
	struct pc_check chk = {
		.what = "child's view after the parent's checks",
		.r = &run->r, .len = run->r.len, .side = PC_CHECK_CHILD,
		.cpu = run->r.mem,
	};
	char token;

	child_send_fork_view(ch, run);
	if (s->writer == CHILD_WRITES) {
		pc_region_cpu_write(&run->r, 0, run->r.len, PC_GEN_CHILD);
		own = PC_GEN_CHILD;
		child_send_view(ch, run, run->child1);
	}
	if (s->fate == CHILD_EXECS)
		pc_exec_exit0();
	if (s->fate == CHILD_EXITS)
		_exit(0);
	pc_child_tell(ch->to_parent, 'r');
	if (pc_child_await(ch->to_child, &token))
		_exit(3);
	/* Read before the checks below read-fault anything in. */
	child_send_view(ch, run, run->child2);
	chk.gen = (run->r.bk->flags & PC_BK_SHARED) ? (unsigned int)token :
						      own;
	pc_child_verify_or_exit(ch, &chk);
	_exit(0);
}

/* ---- the parent ------------------------------------------------------ */

static void recv_keys(struct pc_child *ch, uint64_t *keys, size_t n,
		      const char *when)
{
	char how[64];

	if (!pc_view_recv(ch->to_parent, keys, n))
		return;
	pc_fail("child died before it sent its PFNs %s: %s", when,
		pc_wait_describe(pc_child_reap(ch), how, sizeof(how)));
}

static void recv_child_view(struct pc_child *ch, struct cow_run *run,
			    uint64_t *keys, const char *when)
{
	recv_keys(ch, keys, run->n, when);
}

/* The child's view right after fork (see child_send_fork_view()). */
static void recv_fork_view(struct pc_child *ch, struct cow_run *run)
{
	uint64_t lazy;

	recv_keys(ch, &lazy, 1, "after fork");
	recv_child_view(ch, run, run->child0, "after fork");
	if (lazy)
		pc_diag("fork copied no page table entries for %llu of %zu pages (a VMA without anonymous pages); the child's read faults mapped them",
			(unsigned long long)lazy, run->n);
}

static void check_child_write(struct cow_run *run)
{
	if (run->r.bk->flags & PC_BK_SHARED)
		expect_views("child's write to the shared mapping",
			     run->child1, "child", run->parent0, "parent",
			     run->n, 0);
	else
		expect_views("child's write while the parent maps the pages",
			     run->child1, "child", run->parent1, "parent",
			     run->n, 1);
}

/* pgreuse must have counted every page the last owner reused. */
static void expect_pgreuse(const struct cow_run *run, long long before,
			   long long after)
{
	if (before < 0 || after < 0) {
		pc_diag("no pgreuse in /proc/vmstat (added by 798a6b87ecd7, v5.9): reuse judged by PFNs alone");
		return;
	}
	if (strcmp(run->r.bk->name, "anon")) {
		pc_diag("pgreuse %lld -> %lld (+%lld; counted for base pages only)",
			before, after, after - before);
		return;
	}
	if (after - before < (long long)run->n)
		pc_fail("last owner's write reused %zu pages (same PFNs) but pgreuse rose by %lld only",
			run->n, after - before);
	pc_diag("pgreuse %lld -> %lld (+%lld >= %zu pages reused)", before,
		after, after - before, run->n);
}

static void report_either(const struct cow_run *run)
{
	size_t i, reused = 0;

	for (i = 0; i < run->n; i++)
		reused += run->parent2[i] == run->parent0[i];
	pc_diag("last owner's write to a PTE-mapped large folio: %zu of %zu pages reused, %zu copied (either is correct; newer kernels reuse exclusive large folios)",
		reused, run->n, run->n - reused);
}

static void check_swapin(const struct cow_run *run)
{
	size_t i;

	for (i = 0; i < run->n; i++)
		if (!pc_view_present(run->parent2[i]))
			pc_fail("page %zu not present after the parent's write",
				i);
	pc_diag("last owner's write swapped in all %zu pages", run->n);
}

/* The parent is the only process left mapping the pages. */
static void check_last_owner_write(struct cow_run *run, long long before,
				   long long after)
{
	switch (last_owner_write(run->r.bk)) {
	case LW_SHARED:
		expect_views("parent's write to the shared mapping",
			     run->parent2, "after", run->parent0, "before",
			     run->n, 0);
		break;
	case LW_REUSE:
		expect_views("last owner's write (child gone): page reused",
			     run->parent2, "after", run->parent0, "before",
			     run->n, 0);
		expect_pgreuse(run, before, after);
		break;
	case LW_NEW_PAGE:
		expect_views("last owner's write to a zero page, an unpopulated page or a private file page",
			     run->parent2, "after", run->parent0, "before",
			     run->n, 1);
		break;
	case LW_SWAPIN:
		check_swapin(run);
		break;
	case LW_EITHER:
		report_either(run);
		break;
	}
}

static void parent_write(const struct cow_scenario *s, struct cow_run *run)
{
	const uint64_t *child = s->writer == CHILD_WRITES ? run->child1 :
							   run->child0;
	long long before = pc_vmstat("pgreuse"), after;

	pc_region_cpu_write(&run->r, 0, run->r.len, PC_GEN_PARENT);
	after = pc_vmstat("pgreuse");
	read_view_or_fail(run, run->parent2);
	if (s->fate != CHILD_ALIVE)
		check_last_owner_write(run, before, after);
	else if (run->r.bk->flags & PC_BK_SHARED)
		expect_views("parent's write to the shared mapping",
			     run->parent2, "parent", child, "child", run->n, 0);
	else
		expect_views("parent's write while the child maps the pages",
			     run->parent2, "parent", child, "child", run->n, 1);
}

/* Tell the live child what the pages hold; it kept its own pages. */
static void finish_alive_child(const struct cow_scenario *s,
			       struct pc_child *ch, struct cow_run *run,
			       unsigned int model)
{
	const uint64_t *last = s->writer == CHILD_WRITES ? run->child1 :
							  run->child0;
	char summary[PC_REASON_MAX], how[64];
	ssize_t n;
	int status;

	pc_child_tell(ch->to_child, (char)model);
	recv_child_view(ch, run, run->child2, "at the end");
	n = read(ch->to_parent, summary, sizeof(summary) - 1);
	summary[n > 0 ? n : 0] = '\0';
	status = pc_child_reap(ch);
	if (status && summary[0])
		pc_fail("child isolation: %s", summary);
	if (status)
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
	expect_views("child's pages through the parent's steps", run->child2,
		     "child at the end", last, "child before", run->n, 0);
}

static unsigned int parent_model(const struct cow_scenario *s,
				 const struct cow_run *run)
{
	if (s->writer == PARENT_WRITES)
		return PC_GEN_PARENT;
	if (s->writer == CHILD_WRITES && (run->r.bk->flags & PC_BK_SHARED))
		return PC_GEN_CHILD;
	return run->r.gen;
}

static void cow_case(const struct pc_case *c)
{
	const struct cow_scenario *s = c->scenario;
	struct pc_check chk = { .what = "parent's view after the fork",
				.side = PC_CHECK_CPU };
	struct cow_run run;
	struct pc_child ch;

	need_pfns();
	pc_view_quiet_case();
	run_init(&run, c->backing);
	if (s->prefork)
		pc_fork_and_reap();
	read_view_or_fail(&run, run.parent0);
	if (!pc_child_fork(&ch))
		run_child(s, &ch, &run);
	recv_fork_view(&ch, &run);
	expect_views("fork, nothing pinned: child maps the parent's pages",
		     run.child0, "child", run.parent0, "parent", run.n, 0);
	if (s->writer == CHILD_WRITES)
		recv_child_view(&ch, &run, run.child1, "after its write");
	pc_child_wait_ready(&ch, s->fate == CHILD_ALIVE);
	read_view_or_fail(&run, run.parent1);
	expect_views("parent's pages through the child's part", run.parent1,
		     "parent now", run.parent0, "parent before", run.n, 0);
	if (s->writer == CHILD_WRITES)
		check_child_write(&run);
	if (s->writer == PARENT_WRITES)
		parent_write(s, &run);
	chk.r = &run.r;
	chk.len = run.r.len;
	chk.cpu = run.r.mem;
	chk.gen = parent_model(s, &run);
	pc_verify_or_fail(&chk);
	if (s->fate == CHILD_ALIVE)
		finish_alive_child(s, &ch, &run, chk.gen);
	pc_region_destroy(&run.r);
	pc_pass();
}

/*
 * Control: the same fork with the pages pinned R/W long-term.  The kernel
 * copies pinned pages at fork (70e806e4e645, v5.9), so the check that
 * finds "no copy at fork" in every case above must report every page.
 */
static void control_pinned_copies_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct cow_run run;
	struct pc_child ch;
	char how[64];
	size_t bad;
	int status;

	need_pfns();
	pc_view_quiet_case();
	pc_engine_open_or_skip(&e, c->engine);
	run_init(&run, c->backing);
	pc_pin_region_or_skip(&e, &run.r, PC_PIN_RW);
	read_view_or_fail(&run, run.parent0);
	if (!pc_child_fork(&ch)) {
		child_send_fork_view(&ch, &run);
		_exit(0);
	}
	recv_fork_view(&ch, &run);
	status = pc_child_reap(&ch);
	if (status)
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
	bad = compare_views("fork with the pages pinned", run.child0, "child",
			    run.parent0, "parent", run.n, 0);
	if (!bad)
		pc_fail("blind: the \"no copy at fork\" check found the child on the parent's %zu pinned pages (kernel without early COW of pinned pages, 70e806e4e645 v5.9, or a PFN check that cannot see a copy)",
			run.n);
	if (bad < run.n)
		pc_fail("only %zu of %zu pinned pages were copied at fork (PFNs above)",
			bad, run.n);
	pc_diag("the fork check reports the copy as it must: %zu of %zu pinned pages copied at fork",
		bad, run.n);
	pc_engine_close(&e);
	pc_region_destroy(&run.r);
	pc_pass();
}

/* One plain reference on each page of @r (a vmsplice()d pipe buffer). */
static int hold_page_refs(struct cow_run *run, int *pfd)
{
	struct iovec iov[16];
	size_t i, n = run->n < 16 ? run->n : 16;

	if (pipe(pfd))
		return -1;
	for (i = 0; i < n; i++) {
		iov[i].iov_base = run->r.mem + i * pc_page_size;
		iov[i].iov_len = pc_page_size;
	}
	return vmsplice(pfd[1], iov, n, SPLICE_F_NONBLOCK) ==
	       (ssize_t)(n * pc_page_size) ? 0 : -1;
}

/*
 * Control: the last owner's write with one more reference on each page
 * (a pipe buffer).  The kernel cannot tell that reference from another
 * mapping and copies, so the "page reused" check must report every page.
 */
static void control_extra_ref_case(const struct pc_case *c)
{
	struct cow_run run;
	struct pc_child ch;
	char how[64];
	int pfd[2], status;
	size_t bad;

	need_pfns();
	pc_view_quiet_case();
	run_init(&run, c->backing);
	read_view_or_fail(&run, run.parent0);
	if (!pc_child_fork(&ch)) {
		child_send_fork_view(&ch, &run);
		_exit(0);
	}
	recv_fork_view(&ch, &run);
	status = pc_child_reap(&ch);
	if (status)
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
	if (hold_page_refs(&run, pfd))
		pc_fail_errno("vmsplice one reference on each page");
	pc_region_cpu_write(&run.r, 0, run.r.len, PC_GEN_PARENT);
	read_view_or_fail(&run, run.parent2);
	bad = compare_views("last owner's write (child gone): page reused",
			    run.parent2, "after", run.parent0, "before", run.n,
			    0);
	if (bad < run.n)
		pc_fail("blind: the reuse check found %zu of %zu pages reused although a pipe holds an extra reference on each",
			run.n - bad, run.n);
	pc_diag("the reuse check reports the copy as it must: %zu of %zu pages copied, an extra reference on each",
		bad, run.n);
	close(pfd[0]);
	close(pfd[1]);
	pc_region_destroy(&run.r);
	pc_pass();
}

static void add_engine_less(pc_case_fn fn, const void *s, const char *name)
{
	const struct pc_backing *const *bks;
	size_t nb = pc_backings(&bks), b;

	for (b = 0; b < nb; b++)
		pc_add_case(fn, s, bks[b], NULL, "%s/%s/%s/none", pc_binary(),
			    name, bks[b]->name);
}

/* Shared backings are never copied at fork, pinned or not. */
static void add_control(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD;
	const struct pc_engine_ops *const *engs;
	const struct pc_backing *const *bks;
	size_t nb = pc_backings(&bks), ne = pc_engines(&engs), b, i;

	for (b = 0; b < nb; b++) {
		if (bks[b]->flags & PC_BK_SHARED)
			continue;
		for (i = 0; i < ne; i++) {
			if (!pc_engine_can(engs[i], need) ||
			    (engs[i]->caps & PC_CAP_GET_REF))
				continue;
			pc_add_case(control_pinned_copies_case, NULL, bks[b],
				    engs[i], "%s/control-pinned-copies/%s/%s",
				    pc_binary(), bks[b]->name, engs[i]->name);
		}
	}
}

static void add_cases(void)
{
	size_t n = 0;
	int pre, f, w;

	pc_gen_name(PC_GEN_INIT, "written before fork");
	pc_gen_name(PC_GEN_PARENT, "parent write after fork");
	pc_gen_name(PC_GEN_CHILD, "child write after fork");
	pc_cases_pause_numa_balancing();
	add_control();
	pc_add_case(control_extra_ref_case, NULL, pc_backing_find("anon"), NULL,
		    "%s/control-extra-ref-copies/anon/none", pc_binary());
	for (pre = 0; pre < 2; pre++) {
		for (f = CHILD_EXITS; f <= CHILD_ALIVE; f++) {
			for (w = PARENT_WRITES; w <= NOBODY_WRITES; w++) {
				struct cow_scenario *s = &scenarios[n++];

				s->prefork = pre;
				s->fate = f;
				s->writer = w;
				snprintf(s->name, sizeof(s->name),
					 "%sfork-%s-%s-writes",
					 pre ? "prefork-" : "", fate_names[f],
					 writer_names[w]);
				add_engine_less(cow_case, s, s->name);
			}
		}
	}
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "cow_baseline", add_cases);
}
