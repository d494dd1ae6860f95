// SPDX-License-Identifier: GPL-2.0
/*
 * madv_dontfork: the opt-outs from fork's copy on pinned ranges (S2, S3).
 *
 *   dontfork-before-pin   MADV_DONTFORK, pin, fork: the child has no
 *                         mapping (SIGSEGV on access), the parent stays
 *                         coherent with the device
 *   dontfork-after-pin    the same, madvise after the pin
 *   dontfork-half         MADV_DONTFORK on the second half only: the VMA
 *                         (and a THP) is split; the child keeps its copy
 *                         of the first half and faults on the second
 *   dofork                MADV_DONTFORK then MADV_DOFORK: back to a normal
 *                         fork, the child keeps a pre-fork snapshot
 *   wipeonfork            MADV_WIPEONFORK: the child reads zeros
 *
 * The parent's check after every fork is the coherence round of pin_fork.
 * VMA and THP splits caused by the advice are reported as diagnostics.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pincheck.h"

enum child_view {
	CHILD_SEGV,		/* no mapping in the child */
	CHILD_SNAPSHOT,		/* the pre-fork data */
	CHILD_ZEROS,		/* wiped */
};

struct madv_scenario {
	const char *name;
	int advice;
	int undo;		/* second advice, 0 if none */
	int after_pin;
	int half;		/* advice on the second half only */
	enum child_view view;
};

static const struct madv_scenario scenarios[] = {
	{ "dontfork-before-pin", MADV_DONTFORK, 0, 0, 0, CHILD_SEGV },
	{ "dontfork-after-pin", MADV_DONTFORK, 0, 1, 0, CHILD_SEGV },
	{ "dontfork-half", MADV_DONTFORK, 0, 0, 1, CHILD_SEGV },
	{ "dofork", MADV_DONTFORK, MADV_DOFORK, 0, 0, CHILD_SNAPSHOT },
	{ "wipeonfork", MADV_WIPEONFORK, 0, 0, 0, CHILD_ZEROS },
};

struct layout {
	int vmas;
	long thp_kb;
};

static void snap_layout(struct pc_region *r, struct layout *l)
{
	l->vmas = pc_vma_count();
	l->thp_kb = pc_smaps_kb(r->mem, "AnonHugePages");
}

static void report_splits(const struct madv_scenario *s,
			  const struct layout *before,
			  const struct layout *after)
{
	if (after->vmas != before->vmas)
		pc_diag("%s split the VMA: %d -> %d VMAs", s->name,
			before->vmas, after->vmas);
	if (before->thp_kb > 0 && after->thp_kb < before->thp_kb)
		pc_diag("%s split the THP: AnonHugePages %ld -> %ld kB",
			s->name, before->thp_kb, after->thp_kb);
}

static size_t advised_offset(const struct madv_scenario *s,
			     const struct pc_region *r)
{
	if (!s->half)
		return 0;
	if (r->len < 2 * pc_page_size)
		pc_skip("not applicable: a one-page region has no half to advise");
	return pc_align_up(r->len / 2, pc_page_size);
}

static void advise_or_skip(const struct madv_scenario *s, struct pc_region *r)
{
	size_t off = advised_offset(s, r);
	struct layout before, after;

	snap_layout(r, &before);
	if (madvise(r->mem + off, r->len - off, s->advice)) {
		if (errno == EINVAL)
			pc_skip("not applicable: madvise(%s) on %s memory gives EINVAL",
				s->name, r->bk->name);
		pc_fail_errno("madvise");
	}
	if (s->undo && madvise(r->mem + off, r->len - off, s->undo))
		pc_fail_errno("madvise(MADV_DOFORK)");
	snap_layout(r, &after);
	report_splits(s, &before, &after);
}

static unsigned int child_expected_gen(const struct madv_scenario *s,
				       const struct pc_region *r,
				       unsigned int model)
{
	if (s->view == CHILD_ZEROS)
		return PC_GEN_ZERO;
	return (r->bk->flags & PC_BK_SHARED) ? model : r->gen;
}

/* Check the child's copy of [0, len); exit 1 with the summary on mismatch. */
static void child_check(struct pc_child *ch, struct pc_region *r, size_t len,
			unsigned int gen)
{
	struct pc_check chk = {
		.what = "child's view of the range after fork", .r = r,
		.len = len, .gen = gen, .side = PC_CHECK_CHILD, .cpu = r->mem,
	};

	if (len)
		pc_child_verify_or_exit(ch, &chk);
}

static void __attribute__((noreturn))
run_child(const struct madv_scenario *s, struct pc_child *ch,
	  struct pc_region *r)
{
	size_t off = s->half ? pc_align_up(r->len / 2, pc_page_size) : 0;
	char token;

	if (pc_child_await(ch->to_child, &token))
		_exit(3);
	if (s->view != CHILD_SEGV) {
		child_check(ch, r, r->len, child_expected_gen(s, r, token));
		_exit(0);
	}
	child_check(ch, r, off, child_expected_gen(s, r, token));
	*(volatile char *)(r->mem + off);	/* must fault */
	_exit(2);
}

static void judge_child(const struct madv_scenario *s, struct pc_child *ch)
{
	char summary[PC_REASON_MAX] = "", how[64];
	int status;
	ssize_t n;

	n = read(ch->to_parent, summary, sizeof(summary) - 1);
	summary[n > 0 ? n : 0] = '\0';
	status = pc_child_reap(ch);
	pc_wait_describe(status, how, sizeof(how));
	if (summary[0])
		pc_fail("child: %s", summary);
	if (s->view == CHILD_SEGV) {
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
			pc_fail("child still had the MADV_DONTFORK range mapped: child %s",
				how);
		return;
	}
	if (status != 0)
		pc_fail("child %s", how);
}

static void madv_case(const struct pc_case *c)
{
	const struct madv_scenario *s = c->scenario;
	struct pc_engine e;
	struct pc_region r;
	struct pc_child ch;
	unsigned int model;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	if (!s->after_pin)
		advise_or_skip(s, &r);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	if (s->after_pin)
		advise_or_skip(s, &r);
	pc_region_snap(&r, "fork");
	if (!pc_child_fork(&ch))
		run_child(s, &ch, &r);
	pc_region_cpu_write(&r, 0, r.len, PC_GEN_PARENT);
	model = pc_coherence_round(&e, &r, PC_GEN_PARENT, "after fork");
	pc_child_tell(ch.to_child, (char)model);
	judge_child(s, &ch);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD | PC_CAP_DEV_READ;
	size_t i;

	pc_slow_engine_backings = "anon thp-pmd";
	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
		pc_add_matrix(madv_case, &scenarios[i], scenarios[i].name,
			      need, PC_CAP_GET_REF);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "madv_dontfork", add_cases);
}
