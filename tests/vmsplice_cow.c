// SPDX-License-Identifier: GPL-2.0
/*
 * vmsplice_cow: a R/O GUP reference must not leak data across fork (S6).
 *
 * vmsplice() hands the pipe references to the pages (FOLL_GET, read-only,
 * short-term).  Whatever the pipe delivers later must be the data as it
 * was when it was spliced, never a later write of the other process:
 *
 *   child-splices          the child vmsplices and unmaps, the parent
 *                          writes: the child must read the old data
 *                          (CVE-2020-29374)
 *   child-splices-mprotect the same, the parent does mprotect(PROT_READ)
 *                          and back before its write
 *   parent-splices-before-fork / parent-splices-after-fork
 *                          the parent vmsplices (before or after fork),
 *                          unmaps, the child writes: the parent must read
 *                          the old data
 *
 * hugetlb still leaks here (vmsplice uses FOLL_GET and hugetlb has no
 * unsharing): a leak on hugetlb is reported as XFAIL with that reason,
 * as the kernel's own cow selftest does; everywhere else it is a FAIL.
 *
 *   control-no-fork        no fork: a write after the splice must show
 *                          through the pipe on exclusive anonymous memory
 *                          and on MAP_SHARED memory (no COW in either), or
 *                          the leak checks could never fail
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pincheck.h"

enum splicer {
	CHILD_SPLICES,
	PARENT_SPLICES_BEFORE,
	PARENT_SPLICES_AFTER,
	NOBODY_FORKS,
};

struct splice_scenario {
	const char *name;
	enum splicer who;
	int mprotect;
};

static const struct splice_scenario scenarios[] = {
	{ "child-splices", CHILD_SPLICES, 0 },
	{ "child-splices-mprotect", CHILD_SPLICES, 1 },
	{ "parent-splices-before-fork", PARENT_SPLICES_BEFORE, 0 },
	{ "parent-splices-after-fork", PARENT_SPLICES_AFTER, 0 },
	{ "control-no-fork", NOBODY_FORKS, 0 },
};

static void __attribute__((noreturn)) judge_leak(struct pc_region *r,
						 const char *summary)
{
	if (r->bk->flags & PC_BK_HUGETLB)
		pc_xfail("known: hugetlb leaks through vmsplice (FOLL_GET, no unsharing; documented in 7dad331be781): %s",
			 summary);
	pc_fail("leak: %s", summary);
}

static void pin_or_fail(struct pc_engine *e, struct pc_region *r)
{
	if (pc_engine_pin(e, r->mem, r->len, PC_PIN_RO))
		pc_fail("vmsplice: %s", e->err);
}

static void __attribute__((noreturn))
run_splicing_child(const struct pc_case *c, struct pc_child *ch,
		   struct pc_region *r)
{
	struct pc_check chk = {
		.what = "child's pipe read after the parent's write", .r = r,
		.len = r->len, .gen = r->gen, .side = PC_CHECK_DEVICE,
	};
	struct pc_engine e;
	void *seen;

	if (pc_engine_open(&e, c->engine))
		_exit(3);
	pin_or_fail(&e, r);
	munmap(r->mem, r->len);
	pc_child_tell(ch->to_parent, 'r');
	if (pc_child_await(ch->to_child, NULL))
		_exit(3);
	seen = pc_dev_read_alloc(&e, 0, r->len);
	chk.dev = seen;
	if (pc_verify(&chk)) {
		dprintf(ch->to_parent, "%s", pc_mismatch_summary());
		_exit(1);
	}
	_exit(0);
}

/* A fork scenario has nothing to check where the child shares the pages. */
static void skip_shared_with_child(const struct pc_region *r)
{
	if (r->bk->flags & PC_BK_SHARED)
		pc_skip("not applicable: MAP_SHARED memory is shared with the child by design");
}

static void child_splices_case(const struct pc_case *c,
			       const struct splice_scenario *s,
			       struct pc_region *r)
{
	char summary[PC_REASON_MAX] = "", how[64];
	struct pc_child ch;
	int status;
	ssize_t n;

	skip_shared_with_child(r);
	if (!pc_child_fork(&ch))
		run_splicing_child(c, &ch, r);
	if (pc_child_await(ch.to_parent, NULL))
		pc_fail("splicing child died: %s",
			pc_wait_describe(pc_child_reap(&ch), how, sizeof(how)));
	if (s->mprotect && (mprotect(r->mem, r->len, PROT_READ) ||
			    mprotect(r->mem, r->len, PROT_READ | PROT_WRITE)))
		pc_fail_errno("mprotect");
	pc_region_cpu_write(r, 0, r->len, PC_GEN_PARENT);
	pc_child_tell(ch.to_child, 'c');
	n = read(ch.to_parent, summary, sizeof(summary) - 1);
	summary[n > 0 ? n : 0] = '\0';
	status = pc_child_reap(&ch);
	if (summary[0])
		judge_leak(r, summary);
	if (status)
		pc_fail("splicing child %s",
			pc_wait_describe(status, how, sizeof(how)));
}

static void __attribute__((noreturn))
run_writing_child(struct pc_child *ch, struct pc_region *r)
{
	if (pc_child_await(ch->to_child, NULL))
		_exit(3);
	pc_region_cpu_write(r, 0, r->len, PC_GEN_CHILD);
	_exit(0);
}

static void parent_splices_case(const struct pc_case *c,
				const struct splice_scenario *s,
				struct pc_region *r)
{
	struct pc_check chk = {
		.what = "parent's pipe read after the child's write", .r = r,
		.len = r->len, .gen = r->gen, .side = PC_CHECK_DEVICE,
	};
	struct pc_engine e;
	struct pc_child ch;
	char how[64];
	void *seen;
	int status;

	skip_shared_with_child(r);
	pc_engine_open_or_skip(&e, c->engine);
	if (s->who == PARENT_SPLICES_BEFORE)
		pin_or_fail(&e, r);
	if (!pc_child_fork(&ch))
		run_writing_child(&ch, r);
	if (s->who == PARENT_SPLICES_AFTER)
		pin_or_fail(&e, r);
	munmap(r->mem, r->len);
	pc_child_tell(ch.to_child, 'w');
	status = pc_child_reap(&ch);
	if (status)
		pc_fail("writing child %s",
			pc_wait_describe(status, how, sizeof(how)));
	seen = pc_dev_read_alloc(&e, 0, r->len);
	chk.dev = seen;
	if (pc_verify(&chk))
		judge_leak(r, pc_mismatch_summary());
	free(seen);
	pc_engine_close(&e);
}

/*
 * A later write lands in place: in MAP_SHARED memory (no COW), and in
 * exclusive, writable anonymous memory.
 */
static int writes_in_place(const struct pc_region *r)
{
	unsigned int flags = r->bk->flags;

	if (flags & PC_BK_SHARED)
		return 1;
	return (flags & (PC_BK_ANON | PC_BK_HUGETLB)) &&
	       !(flags & PC_BK_ZERO) && strcmp(r->bk->name, "swapped");
}

/*
 * Control: no fork.  The pipe refers to the page itself, so a later write
 * to an exclusive writable page shows through it.  This proves the leak
 * checks above can fail: the pipe is no snapshot.
 */
static void control_no_fork_case(const struct pc_case *c, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "pipe read of a write after the splice, no fork",
		.r = r, .len = r->len, .gen = PC_GEN_PARENT,
		.side = PC_CHECK_DEVICE,
	};
	struct pc_engine e;
	void *seen;

	pc_engine_open_or_skip(&e, c->engine);
	pin_or_fail(&e, r);
	pc_region_cpu_write(r, 0, r->len, PC_GEN_PARENT);
	seen = pc_dev_read_alloc(&e, 0, r->len);
	chk.dev = seen;
	if (pc_verify(&chk)) {
		if (writes_in_place(r))
			pc_fail("the pipe kept a snapshot, so a leak could never show: %s",
				pc_mismatch_summary());
		pc_skip("not applicable: the write COWs away from a read-only mapped %s page",
			r->bk->name);
	}
	pc_diag("the pipe delivers later writes: the leak checks can fail");
	free(seen);
	pc_engine_close(&e);
}

static void vmsplice_case(const struct pc_case *c)
{
	const struct splice_scenario *s = c->scenario;
	const char *why = c->engine->probe ? c->engine->probe() : NULL;
	struct pc_region r;

	if (why)
		pc_skip("%s", why);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	if (s->who == CHILD_SPLICES)
		child_splices_case(c, s, &r);
	else if (s->who == NOBODY_FORKS)
		control_no_fork_case(c, &r);
	else
		parent_splices_case(c, s, &r);
	pc_region_destroy(&r);
	pc_pass();
}

static void add_cases(void)
{
	size_t i;

	pc_gen_name(PC_GEN_PARENT, "parent CPU write after the splice");
	pc_gen_name(PC_GEN_CHILD, "child CPU write after the splice");
	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
		pc_add_matrix(vmsplice_case, &scenarios[i], scenarios[i].name,
			      PC_CAP_GET_REF | PC_CAP_DEV_READ, 0);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "vmsplice_cow", add_cases);
}
