// SPDX-License-Identifier: GPL-2.0
/*
 * memcg_fork: who pays for the pages fork() copies because they are pinned
 * (S20), and who is charged for the pin itself (pinned_vm / locked_vm).
 *
 * A pinned anonymous page cannot be shared copy-on-write: fork() copies it
 * into the child at once (copy_present_page()).  The kernel allocates the
 * copy with folio_prealloc() / page_copy_prealloc(), which charges it with
 * mem_cgroup_charge(folio, src_mm, GFP_KERNEL): to the memory cgroup of
 * the PARENT's mm, also when clone3(CLONE_INTO_CGROUP) puts the child into
 * another cgroup.  When that charge fails, copy_pte_range() returns
 * -ENOMEM and fork() fails with ENOMEM; before that the charge path runs
 * the memcg OOM killer, which can only pick tasks already in the cgroup
 * (the child is not in it yet).
 *
 *   fork-copy-charged        fork() with a live child: memory.current of
 *                            the parent's cgroup rises by ~N pages (the
 *                            child's PFNs differ from the parent's) and
 *                            falls back when the child exits
 *   clone3-copy-charged      clone3(CLONE_INTO_CGROUP) into a second
 *                            cgroup: the parent's cgroup pays, the child's
 *                            does not, the sum rises by ~N, not 2N
 *   fork-copy-over-limit     memory.max leaves room for the fork but not
 *                            for the copies: fork() fails with ENOMEM (the
 *                            parent is out of the OOM killer's reach,
 *                            oom_score_adj -1000), nothing is shared and
 *                            the parent stays coherent with the device
 *   dontfork-no-charge       MADV_DONTFORK: no copy, no charge
 *   pin-accounting           VmPin / VmLck of the pinning process after
 *                            the pin, of its child (none: the child holds
 *                            no pin), after the unpin, and the child's
 *                            after the pinning process exits
 *
 *   fork-copy-over-limit-swap    the same with swap: fork() may also fit
 *                            by swapping the child's copies out
 *   fork-copy-over-limit-oom-kill  a forking process the OOM killer may
 *                            take: it is killed, fork() never returns
 *
 * Controls: control-charge-seen (the child allocates N pages itself: the
 * charge check must see them), control-dontfork-removed (the
 * dontfork-no-charge steps without MADV_DONTFORK: its "no charge" check
 * must report the copy), control-unpinned-shared (no pin: the child's
 * pages are COW-shared and the "shares pinned pages" check must see it)
 * and control-child-locked (the child mlock()s its copy: the "child holds
 * nothing" check of pin-accounting must report its VmLck).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pincheck.h"

#define NPAGES		2048	/* pages pinned and copied: 8 MiB */
/*
 * memory.current is a page counter charged in per-CPU batches of
 * MEMCG_CHARGE_BATCH (64) pages: a reading may be off by up to that much
 * per CPU either way.  A fork also charges the child's page tables,
 * kernel stack, task and mm structures: FORK_SLACK_PAGES covers them.
 */
#define CHARGE_BATCH	64
#define FORK_SLACK_PAGES 128

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

enum kind {
	COPY_CHARGED,
	CLONE3_CHARGED,
	OVER_LIMIT,
	OVER_LIMIT_SWAP,
	OVER_LIMIT_OOM_KILL,
	DONTFORK,
	DONTFORK_REMOVED,
	CHARGE_SEEN,
	UNPINNED_SHARED,
	CHILD_LOCKED,
	PIN_ACCOUNTING,
};

struct memcg_scenario {
	const char *name;
	enum kind kind;
	const char *backings;
};

static const struct memcg_scenario scenarios[] = {
	{ "fork-copy-charged", COPY_CHARGED, "anon thp-pmd" },
	{ "clone3-copy-charged", CLONE3_CHARGED, "anon thp-pmd" },
	{ "fork-copy-over-limit", OVER_LIMIT, "anon thp-pmd" },
	{ "fork-copy-over-limit-swap", OVER_LIMIT_SWAP, "anon" },
	{ "fork-copy-over-limit-oom-kill", OVER_LIMIT_OOM_KILL, "anon" },
	{ "dontfork-no-charge", DONTFORK, "anon thp-pmd" },
	{ "control-dontfork-removed", DONTFORK_REMOVED, "anon" },
	{ "pin-accounting", PIN_ACCOUNTING, "anon thp-pmd" },
};

static const struct memcg_scenario charge_seen = {
	"control-charge-seen", CHARGE_SEEN, "anon"
};
static const struct memcg_scenario unpinned_shared = {
	"control-unpinned-shared", UNPINNED_SHARED, "anon"
};
static const struct memcg_scenario child_locked = {
	"control-child-locked", CHILD_LOCKED, "anon"
};

/* ---- the pinned buffer ------------------------------------------------- */

static size_t buf_len(void)
{
	return (size_t)NPAGES * pc_page_size;
}

/*
 * Unmap the alignment slack around the buffer.  Left there, an engine's
 * own mapping made later (rdma's MADV_DONTFORK staging buffer) can merge
 * with it, fault a THP across the boundary and, once that THP is split by
 * MADV_DONTFORK and partly pinned, make fork() copy the slack's subpages
 * too (a pin is tracked per folio): seen on 6.1 as ~500 extra pages.
 */
static void trim_to_buffer(struct pc_region *r)
{
	char *end = r->mem + r->len, *map_end = r->map + r->map_len;

	if (r->mem > r->map)
		munmap(r->map, (size_t)(r->mem - r->map));
	if (map_end > end)
		munmap(end, (size_t)(map_end - end));
	r->map = r->mem;
	r->map_len = r->len;
}

/* NPAGES private anonymous pages of the case's kind, holding INIT. */
static void buffer_create(const struct pc_case *c, struct pc_region *r)
{
	int thp = !!(c->backing->flags & PC_BK_THP);
	size_t pmd = c->backing->size;
	long kb;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->bk = c->backing;
	r->len = buf_len();
	r->map_len = r->len + (thp ? pmd : 0);
	r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->map == MAP_FAILED)
		pc_fail_errno("mmap of the buffer");
	r->mem = thp ? (char *)pc_align_up((uintptr_t)r->map, pmd) : r->map;
	trim_to_buffer(r);
	if (madvise(r->mem, r->len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) &&
	    thp)
		pc_skip("madvise(MADV_HUGEPAGE): %s", strerror(errno));
	pc_region_cpu_write(r, 0, r->len, PC_GEN_INIT);
	r->gen = PC_GEN_INIT;
	kb = thp ? pc_smaps_kb(r->mem, "AnonHugePages") : 0;
	if (thp && kb < (long)(r->len >> 10))
		pc_skip("only %ld of %zu kB became THPs (THP disabled in /sys/kernel/mm/transparent_hugepage/enabled, or memory fragmented)",
			kb, r->len >> 10);
}

/* Open the case's engine, make the buffer, pin it R/W, snap its PFNs. */
static void pinned_buffer(const struct pc_case *c, struct pc_engine *e,
			  struct pc_region *r)
{
	pc_engine_open_or_skip(e, c->engine);
	buffer_create(c, r);
	pc_pin_region_or_skip(e, r, PC_PIN_RW);
	pc_region_snap(r, "fork");
	if (!pc_pfn_readable())
		pc_skip("PFNs are hidden in /proc/self/pagemap (needs CAP_SYS_ADMIN): the copy cannot be proven");
}

/* ---- what the child got ------------------------------------------------ */

struct child_view {
	size_t present;		/* pages of the range mapped in the child */
	size_t copied;		/* ... on a PFN other than the parent's */
	size_t shared;		/* ... on the parent's PFN */
	size_t swapped;		/* swap entries in the child */
};

/* Read the child's pagemap over the parent's buffer. */
static void child_view(pid_t pid, const struct pc_region *r,
		       struct child_view *v)
{
	size_t i, n = r->len / pc_page_size;
	uint64_t *pm = pc_xmalloc(n * sizeof(*pm));
	char path[64];
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		pc_fail_errno(path);
	got = pread(fd, pm, n * sizeof(*pm),
		    (off_t)((uintptr_t)r->mem / pc_page_size * sizeof(*pm)));
	close(fd);
	if (got != (ssize_t)(n * sizeof(*pm)))
		pc_fail("short read of %s", path);
	memset(v, 0, sizeof(*v));
	for (i = 0; i < n; i++) {
		if (pm[i] & PC_PM_SWAPPED)
			v->swapped++;
		if (!(pm[i] & PC_PM_PRESENT))
			continue;
		v->present++;
		if ((pm[i] & PC_PM_PFN_MASK) != r->pfn_before[i])
			v->copied++;
		else
			v->shared++;
	}
	free(pm);
}

/* The copy happened: every page is in the child on a page of its own. */
static void expect_copied(const struct child_view *v)
{
	pc_diag("child: %zu of %d pages present, %zu on PFNs other than the parent's",
		v->present, NPAGES, v->copied);
	if (v->copied != NPAGES)
		pc_fail("fork copied %zu of %d pinned pages (%zu present in the child): the child shares pinned pages (pin_fork's bug, not an accounting one)",
			v->copied, NPAGES, v->present);
}

/* ---- memory cgroups ------------------------------------------------------ */

static void memcg_enter_or_skip(struct pc_memcg *m)
{
	char why[PC_REASON_MAX];
	int rc = pc_memcg_enter(m, why, sizeof(why));

	if (rc > 0)
		pc_skip("%s", why);
	if (rc < 0)
		pc_fail("%s", why);
	if (pc_memcg_current(m) < 0)
		pc_skip("cannot read the usage of %s", m->dir);
	pc_diag("memory cgroup %s (%s)", m->dir,
		m->v2 ? "v2 memory.current" : "v1 memory.usage_in_bytes");
}

/* A sibling v2 cgroup of @a with the memory controller, for clone3. */
static void memcg_sibling(const struct pc_memcg *a, struct pc_memcg *b)
{
	int err;

	if (!a->v2)
		pc_skip("clone3(CLONE_INTO_CGROUP) needs the memory controller on cgroup v2; here it is bound to a v1 hierarchy (boot with systemd.unified_cgroup_hierarchy=1 or cgroup_no_v1=memory)");
	memset(b, 0, sizeof(*b));
	b->v2 = 1;
	if (snprintf(b->dir, sizeof(b->dir), "%.690s-into", a->dir) >=
	    (int)sizeof(b->dir))
		pc_fail("cgroup path too long: %s", a->dir);
	err = pc_knob_mkdir(b->dir);
	if (err)
		pc_fail("mkdir %s: %s", b->dir, strerror(-err));
}

static long long pages_of(long long bytes)
{
	return bytes / (long long)pc_page_size;
}

/* How far a memory.current difference may be off (pages). */
static long long batch_pages(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_CONF);

	return CHARGE_BATCH * (cpus > 0 ? cpus : 1);
}

/*
 * @rise (pages) is the charge of the NPAGES copies: within the per-CPU
 * batches below, and within the batches plus the fork's own allocations
 * above.  0, or -1 with the reason in @why.
 */
static int check_copy_charge(long long rise, char *why, size_t len)
{
	long long lo = NPAGES - batch_pages();
	long long hi = NPAGES + batch_pages() + FORK_SLACK_PAGES;

	if (rise >= lo && rise <= hi)
		return 0;
	snprintf(why, len, "rose by %lld pages, want %d (the copies) within [%lld, %lld]%s",
		 rise, NPAGES, lo, hi,
		 rise >= 2 * NPAGES - batch_pages() ? ": charged twice" :
		 rise < lo ? ": the copies were not charged here" : "");
	return -1;
}

/* @rise (pages): only the fork's own allocations, no copies. */
static int check_no_copy_charge(long long rise, char *why, size_t len)
{
	long long hi = batch_pages() + FORK_SLACK_PAGES;

	if (rise <= hi)
		return 0;
	snprintf(why, len, "rose by %lld pages (more than the fork's own %lld): %s",
		 rise, hi, rise >= NPAGES - batch_pages() ?
		 "the pinned range was copied and charged" : "unexplained charge");
	return -1;
}

/* After the child exited its copies must be uncharged again. */
static void expect_uncharged(const char *cg, long long during,
			     long long after)
{
	long long fall = pages_of(during - after);

	pc_diag("%s: %lld pages uncharged when the child exited", cg, fall);
	if (fall < NPAGES - batch_pages())
		pc_fail("%s: only %lld pages uncharged after the child exited, want ~%d: the copies' charge leaked",
			cg, fall, NPAGES);
}

/* ---- children ------------------------------------------------------------ */

/* A live child: tell the parent it runs, wait, exit 0. */
static void __attribute__((noreturn)) child_idle(struct pc_child *ch)
{
	pc_child_tell(ch->to_parent, 'r');
	pc_child_await(ch->to_child, NULL);
	_exit(0);
}

/* A child that allocates and touches NPAGES pages of its own. */
static void __attribute__((noreturn)) child_allocates(struct pc_child *ch)
{
	size_t len = buf_len(), off;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(2);
	madvise(p, len, MADV_NOHUGEPAGE);
	for (off = 0; off < len; off += pc_page_size)
		p[off] = 1;
	child_idle(ch);
}

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
	uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* fork(), or clone3(CLONE_INTO_CGROUP) into @cgroup_fd when >= 0. */
static pid_t spawn(struct pc_child *ch, int cgroup_fd)
{
	struct clone_args_v2 args = { .exit_signal = SIGCHLD };
	int down[2], up[2];
	long pid;

	if (cgroup_fd < 0)
		return pc_child_fork(ch);
	if (pipe(down) || pipe(up))
		pc_fail_errno("pipe");
	args.flags = CLONE_INTO_CGROUP;
	args.cgroup = (uint64_t)cgroup_fd;
	fflush(stdout);
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0 && (errno == ENOSYS || errno == EINVAL || errno == E2BIG))
		pc_skip("clone3(CLONE_INTO_CGROUP): %s (needs Linux 5.7+)",
			strerror(errno));
	if (pid < 0)
		pc_fail_errno("clone3(CLONE_INTO_CGROUP)");
	ch->pid = (pid_t)pid;
	ch->to_child = pid ? down[1] : down[0];
	ch->to_parent = pid ? up[0] : up[1];
	close(pid ? down[0] : down[1]);
	close(pid ? up[1] : up[0]);
	return ch->pid;
}

/* ---- fork-copy-charged, clone3-copy-charged, control-charge-seen ------- */

struct charge_run {
	struct pc_memcg a, b;	/* the parent's cgroup; the child's (clone3) */
	int two;
	long long a0, a1, a2, b0, b1, b2;	/* before, child alive, after */
	struct child_view v;
};

static void read_usage(struct charge_run *cr, long long *a, long long *b)
{
	*a = pc_memcg_current(&cr->a);
	*b = cr->two ? pc_memcg_current(&cr->b) : 0;
	if (*a < 0 || *b < 0)
		pc_fail("memory.current became unreadable");
}

/* Start a child (idle, or allocating), measure while it lives and after. */
static void measure_fork(struct charge_run *cr, const struct pc_region *r,
			 int allocate)
{
	struct pc_child ch;
	int fd = -1, status;
	char how[64];

	if (cr->two) {
		fd = open(cr->b.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			pc_fail_errno(cr->b.dir);
	}
	read_usage(cr, &cr->a0, &cr->b0);
	if (!spawn(&ch, fd)) {
		if (allocate)
			child_allocates(&ch);
		child_idle(&ch);
	}
	if (pc_child_await(ch.to_parent, NULL))
		pc_fail("the child died before the measurement");
	read_usage(cr, &cr->a1, &cr->b1);
	if (r)
		child_view(ch.pid, r, &cr->v);
	pc_child_tell(ch.to_child, 'x');
	status = pc_child_reap(&ch);
	if (status)
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
	read_usage(cr, &cr->a2, &cr->b2);
	if (fd >= 0)
		close(fd);
	pc_diag("parent's cgroup: %lld kB before, %lld kB with the child, %lld kB after",
		cr->a0 >> 10, cr->a1 >> 10, cr->a2 >> 10);
	if (cr->two)
		pc_diag("child's cgroup:  %lld kB before, %lld kB with the child, %lld kB after",
			cr->b0 >> 10, cr->b1 >> 10, cr->b2 >> 10);
}

static void expect_charged(const char *what, long long rise)
{
	char why[PC_REASON_MAX];

	if (check_copy_charge(rise, why, sizeof(why)))
		pc_fail("%s %s", what, why);
}

/* The parent's cgroup pays for all copies, the child's for none. */
static void judge_clone3(const struct charge_run *cr)
{
	long long ra = pages_of(cr->a1 - cr->a0);
	long long rb = pages_of(cr->b1 - cr->b0);
	char why[PC_REASON_MAX];

	pc_diag("rise: parent's cgroup %lld pages, child's %lld, sum %lld (copies: %d)",
		ra, rb, ra + rb, NPAGES);
	if (check_no_copy_charge(rb, why, sizeof(why)))
		pc_fail("the child's cgroup (CLONE_INTO_CGROUP) %s; the kernel charges fork's copies to the parent's mm (mem_cgroup_charge(.., src_mm, ..))",
			why);
	expect_charged("the sum over both cgroups", ra + rb);
	expect_charged("the parent's cgroup", ra);
}

static void copy_charged_case(const struct pc_case *c)
{
	const struct memcg_scenario *s = c->scenario;
	struct charge_run cr = { .two = s->kind == CLONE3_CHARGED };
	struct pc_engine e;
	struct pc_region r;

	memcg_enter_or_skip(&cr.a);
	if (cr.two)
		memcg_sibling(&cr.a, &cr.b);
	pinned_buffer(c, &e, &r);
	measure_fork(&cr, &r, 0);
	expect_copied(&cr.v);
	if (cr.two)
		judge_clone3(&cr);
	else
		expect_charged("the parent's cgroup (the child's too)",
			       pages_of(cr.a1 - cr.a0));
	expect_uncharged("the parent's cgroup", cr.a1, cr.a2);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/*
 * Control: no pin, no copy; the child allocates NPAGES pages itself.  The
 * same check must see them, else it cannot see a charge at all.
 */
static void control_charge_seen_case(const struct pc_case *c)
{
	struct charge_run cr = { .two = 0 };
	char why[PC_REASON_MAX];
	long long rise;

	(void)c;
	memcg_enter_or_skip(&cr.a);
	measure_fork(&cr, NULL, 1);
	rise = pages_of(cr.a1 - cr.a0);
	if (check_copy_charge(rise, why, sizeof(why)))
		pc_fail("blind: the child allocated %d pages, memory.current %s",
			NPAGES, why);
	if (!check_no_copy_charge(rise, why, sizeof(why)))
		pc_fail("blind: the \"no charge\" check accepts a rise of %lld pages",
			rise);
	expect_uncharged("the cgroup", cr.a1, cr.a2);
	pc_diag("charge seen as it must be: %lld pages for the child's %d, and the \"no charge\" check reports them",
		rise, NPAGES);
	pc_pass();
}

/* ---- dontfork-no-charge and its control --------------------------------- */

static void dontfork_case(const struct pc_case *c)
{
	const struct memcg_scenario *s = c->scenario;
	int control = s->kind == DONTFORK_REMOVED;
	struct charge_run cr = { .two = 0 };
	char why[PC_REASON_MAX];
	struct pc_engine e;
	struct pc_region r;
	int bad;

	memcg_enter_or_skip(&cr.a);
	pinned_buffer(c, &e, &r);
	if (!control && madvise(r.mem, r.len, MADV_DONTFORK))
		pc_fail_errno("madvise(MADV_DONTFORK)");
	measure_fork(&cr, &r, 0);
	pc_diag("child: %zu of %d pages of the range present, %zu copied",
		cr.v.present, NPAGES, cr.v.copied);
	bad = check_no_copy_charge(pages_of(cr.a1 - cr.a0), why, sizeof(why));
	if (control) {
		expect_copied(&cr.v);
		if (!bad)
			pc_fail("blind: without MADV_DONTFORK the child got %zu copies and the \"no charge\" check saw nothing",
				cr.v.copied);
		pc_diag("copy reported as it must be: memory.current %s", why);
	} else {
		if (cr.v.present)
			pc_fail("MADV_DONTFORK: the child maps %zu pages of the range",
				cr.v.present);
		if (bad)
			pc_fail("MADV_DONTFORK, nothing copied, yet memory.current %s",
				why);
	}
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- fork-copy-over-limit ---------------------------------------------- */

/*
 * Out of the memcg OOM killer's reach, so that a failed charge returns
 * -ENOMEM: oom_score_adj -1000 (needs CAP_SYS_RESOURCE), else on cgroup
 * v1 the cgroup's oom_kill_disable (a charge outside a user page fault
 * then fails at once, memcg1_oom_prepare()).
 */
static void oom_protect(const struct pc_memcg *m)
{
	char path[800];

	if (!pc_write_str("/proc/self/oom_score_adj", "-1000")) {
		pc_diag("out of the OOM killer's reach: oom_score_adj -1000");
		return;
	}
	snprintf(path, sizeof(path), "%s/memory.oom_control", m->dir);
	if (!m->v2 && !pc_write_str(path, "1")) {
		pc_diag("out of the OOM killer's reach: %s = 1 (no CAP_SYS_RESOURCE for oom_score_adj -1000)",
			path);
		return;
	}
	pc_skip("cannot keep the memcg OOM killer off this process: oom_score_adj -1000 needs CAP_SYS_RESOURCE%s",
		m->v2 ? "" : ", and memory.oom_control refused oom_kill_disable");
}

static long long memcg_events(const struct pc_memcg *m, const char *field)
{
	char path[800];
	FILE *f;
	char line[128];
	long long v = -1;
	size_t n = strlen(field);

	snprintf(path, sizeof(path), "%s/memory.events", m->dir);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ' ')
			v = atoll(line + n + 1);
	fclose(f);
	return v;
}

/*
 * Set memory.max to the usage plus room for a fork without copies (the
 * fork's own cost measured with the range MADV_DONTFORK, plus the charge
 * batches) and prove that such a fork still fits.  Returns the room in
 * pages.
 */
static long long limit_above_fork_cost(struct charge_run *cr,
				       struct pc_region *r)
{
	long long cost, room, cur;
	struct pc_child ch;
	int status;

	if (madvise(r->mem, r->len, MADV_DONTFORK))
		pc_fail_errno("madvise(MADV_DONTFORK)");
	measure_fork(cr, NULL, 0);
	cost = pages_of(cr->a1 - cr->a0);
	room = (cost > 0 ? cost : 0) + 2 * batch_pages() + FORK_SLACK_PAGES;
	if (room > NPAGES / 2)
		pc_skip("a fork without copies costs %lld pages here: no limit separates it from %d copies",
			cost, NPAGES);
	cur = pc_memcg_current(&cr->a);
	if (pc_memcg_set_max(&cr->a, cur + room * (long long)pc_page_size))
		pc_fail("cannot set the limit of %s", cr->a.dir);
	pc_diag("a fork without copies charges %lld pages; limit = usage %lld kB + %lld pages",
		cost, cur >> 10, room);
	if (!pc_child_fork(&ch))
		_exit(0);
	status = pc_child_reap(&ch);
	if (status)
		pc_fail("a fork without copies failed under the limit (status %d): the limit is too tight to judge",
			status);
	if (madvise(r->mem, r->len, MADV_DOFORK))
		pc_fail_errno("madvise(MADV_DOFORK)");
	return room;
}

/*
 * Keep reclaim from making room by swapping the child's fresh copies out
 * (they are ordinary anonymous pages): no swap for the cgroup.  Returns
 * 0, or the skip reason.
 */
static const char *forbid_swap(const struct pc_memcg *m)
{
	char path[800], val[32] = "0";

	if (!pc_swap_enabled())
		return NULL;
	/* v1: memory+swap limited to the memory limit (never below it) */
	snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", m->dir);
	if (!m->v2 && pc_read_line(path, val, sizeof(val)))
		return "cannot read memory.limit_in_bytes back";
	snprintf(path, sizeof(path), "%s/%s", m->dir,
		 m->v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes");
	if (pc_write_str(path, val))
		return "swap is on and this kernel does not limit a cgroup's swap (no memory.swap.max / memory.memsw.limit_in_bytes: boot with swapaccount=1)";
	pc_diag("no swap for the cgroup: %s = %s", path, val);
	return NULL;
}

/* Lift the limits (v1: memsw first, it must stay >= the memory limit). */
static void lift_limits(struct pc_memcg *m)
{
	char path[800];

	if (!m->v2) {
		snprintf(path, sizeof(path), "%s/memory.memsw.limit_in_bytes",
			 m->dir);
		pc_write_str(path, "-1");
	}
	pc_memcg_set_max(m, -1);
}

/* fork() with the child held until the parent wrote *hold (or -1). */
static pid_t fork_held(int *hold)
{
	int p[2];
	pid_t pid;
	char t;

	if (pipe(p))
		pc_fail_errno("pipe");
	fflush(stdout);
	pid = fork();
	if (!pid) {
		close(p[1]);
		if (read(p[0], &t, 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(p[0]);
	*hold = p[1];
	if (pid < 0)
		close(p[1]);
	return pid;
}

/*
 * fork() succeeded under the limit.  Never by sharing a pinned page; with
 * no swap for the cgroup not at all; with swap only by pushing copies out.
 */
static void judge_fork_that_fit(struct pc_region *r, pid_t pid, int hold,
				long long room, int swap)
{
	struct child_view v;

	child_view(pid, r, &v);
	close(hold);
	waitpid(pid, NULL, 0);
	pc_diag("child: %zu of %d pages copied, %zu swapped out, %zu on the parent's PFN",
		v.copied, NPAGES, v.swapped, v.shared);
	if (v.shared)
		pc_fail("fork() under memory.max succeeded and SHARES %zu pinned pages with the child: the copy's failed charge was not reported",
			v.shared);
	if (!swap)
		pc_fail("fork() made %zu copies (%zu swapped) with room for %lld pages and no swap: the copies were not held to memory.max",
			v.copied, v.swapped, room);
	if (v.copied + v.swapped != NPAGES)
		pc_fail("the child lacks %zu pages of the range",
			NPAGES - v.copied - v.swapped);
	if (!v.swapped)
		pc_fail("all %d copies resident with room for %lld pages: the copies were not held to memory.max",
			NPAGES, room);
	pc_diag("fork() fit under memory.max by swapping %zu of the child's copies out, sharing none",
		v.swapped);
}

static void over_limit_case(const struct pc_case *c)
{
	const struct memcg_scenario *s = c->scenario;
	int swap = s->kind == OVER_LIMIT_SWAP;
	struct charge_run cr = { .two = 0 };
	long long room, oom0, oom1, cur;
	const char *why = NULL;
	struct pc_engine e;
	struct pc_region r;
	int err, hold;
	pid_t pid;

	if (swap && !pc_swap_enabled())
		pc_skip("needs swap (pincheck's VM has zram swap): here the copies have nowhere to go but ENOMEM");
	memcg_enter_or_skip(&cr.a);
	oom_protect(&cr.a);
	pinned_buffer(c, &e, &r);
	room = limit_above_fork_cost(&cr, &r);
	if (!swap)
		why = forbid_swap(&cr.a);
	if (why)
		pc_skip("%s", why);
	oom0 = memcg_events(&cr.a, "oom");
	pid = fork_held(&hold);
	err = errno;
	cur = pc_memcg_current(&cr.a);
	lift_limits(&cr.a);	/* no fault of ours may wait on it now */
	if (pid > 0)
		judge_fork_that_fit(&r, pid, hold, room, swap);
	if (pid < 0 && err != ENOMEM)
		pc_fail("fork() over memory.max failed with %s, want ENOMEM",
			strerror(err));
	oom1 = memcg_events(&cr.a, "oom");
	if (pid < 0)
		pc_diag("fork() failed with ENOMEM as it must (memory.events oom %lld -> %lld, -1: v1); usage then %lld kB",
			oom0, oom1, cur >> 10);
	pc_expect_pinned_pages_stayed(&r, "the fork under memory.max");
	pc_coherence_round(&e, &r, r.gen, "after the fork under memory.max");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/*
 * fork-copy-over-limit-oom-kill: the same fork by a process the OOM
 * killer may take.  The charge path (try_charge_memcg()) runs the memcg
 * OOM killer before it gives up; the only task in the cgroup is the
 * forking one (the child is not in any cgroup's task list yet), so it is
 * killed, and fork() fails with -ENOMEM to a dying task: no child.
 */
struct oom_worker {
	struct pc_memcg m;	/* the worker's cgroup, for the judge */
	int ready;
};

static void __attribute__((noreturn))
oom_worker_main(const struct pc_case *c, struct pc_child *ch,
		struct oom_worker *w)
{
	struct charge_run cr = { .two = 0 };
	struct pc_engine e;
	struct pc_region r;
	const char *why;
	pid_t pid;

	memcg_enter_or_skip(&cr.a);
	w->m = cr.a;
	pinned_buffer(c, &e, &r);
	limit_above_fork_cost(&cr, &r);
	why = forbid_swap(&cr.a);
	if (why)
		pc_skip("%s", why);
	w->ready = 1;
	pc_child_tell(ch->to_parent, 'f');
	fflush(stdout);
	pid = fork();
	if (!pid)
		_exit(0);
	pc_child_tell(ch->to_parent, pid > 0 ? 's' : 'e');
	_exit(0);
}

/* memory.events oom_kill (v2) or memory.oom_control oom_kill (v1). */
static long long oom_kills(const struct pc_memcg *m)
{
	char path[800], line[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", m->dir,
		 m->v2 ? "memory.events" : "memory.oom_control");
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "oom_kill ", 9))
			v = atoll(line + 9);
	fclose(f);
	return v;
}

static void oom_kill_case(const struct pc_case *c)
{
	struct oom_worker *w;
	struct pc_child ch;
	struct pc_engine e;
	char how[64], t = 0;
	long long kills;
	int status, got;

	pc_engine_open_or_skip(&e, c->engine);	/* probe and skip here */
	pc_engine_close(&e);
	w = mmap(NULL, sizeof(*w), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED)
		pc_fail_errno("mmap(MAP_SHARED)");
	if (!pc_child_fork(&ch))
		oom_worker_main(c, &ch, w);
	got = !pc_child_await(ch.to_parent, &t);
	if (got && t == 'f')
		got = !pc_child_await(ch.to_parent, &t);
	status = pc_child_reap(&ch);
	if (!w->ready && WIFEXITED(status) && WEXITSTATUS(status) == 4)
		pc_skip("the worker skipped (its reason is in the diagnostic above)");
	if (!w->ready)
		pc_fail("the worker %s before its fork",
			pc_wait_describe(status, how, sizeof(how)));
	kills = oom_kills(&w->m);
	pc_diag("the forking worker %s; oom_kill in its cgroup: %lld",
		pc_wait_describe(status, how, sizeof(how)), kills);
	if (got)
		pc_fail("fork() returned to the worker (%s) although the memcg OOM killer had only it to kill",
			t == 's' ? "a child was made" : "ENOMEM, not killed");
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		pc_fail("the worker %s, want killed by SIGKILL (the memcg OOM killer)",
			how);
	if (kills < 1)
		pc_fail("the worker died by SIGKILL but its cgroup counts %lld OOM kills",
			kills);
	pc_pass();
}

/* ---- pin-accounting ------------------------------------------------------ */

/* Which counter of /proc/<pid>/status an engine's pin is charged to. */
enum pin_counter { ACCT_PINNED, ACCT_LOCKED, ACCT_NONE };

/*
 * From the kernel sources: io_uring's buffer registration adds to
 * mm->pinned_vm (io_account_mem(), ctx->mm_account, even for root);
 * ib_umem_get() adds to mm->pinned_vm; VFIO type1 (vfio_lock_acct())
 * to mm->locked_vm; iommufd (IOPT_PAGES_ACCOUNT_USER) to mm->pinned_vm;
 * gup_test's debugfs pins account nothing.
 */
static enum pin_counter engine_counter(const struct pc_engine_ops *ops)
{
	if (!strcmp(ops->name, "vfio"))
		return ACCT_LOCKED;
	if (!strncmp(ops->name, "gup_test", 8))
		return ACCT_NONE;
	return ACCT_PINNED;
}

static const char *const counter_field[] = { "VmPin", "VmLck", "-" };

struct acct {
	long pin, lck;	/* kB */
};

static void read_acct(pid_t pid, struct acct *a, const char *who)
{
	a->pin = pc_status_kb(pid, "VmPin");
	a->lck = pc_status_kb(pid, "VmLck");
	if (a->pin < 0 || a->lck < 0)
		pc_fail("no VmPin/VmLck in /proc/%d/status (%s)", (int)pid, who);
	pc_diag("%-34s VmPin %6ld kB  VmLck %6ld kB", who, a->pin, a->lck);
}

/* The pinner: one step per token from the judge. */
struct pinner {
	struct pc_child ch;	/* the pinning process */
	int hold[2];		/* its child waits on hold[0] */
	pid_t *shared;		/* its child's pid (a shared page) */
};

static void __attribute__((noreturn)) pinners_child(struct pinner *p,
						    struct pc_region *r)
{
	struct pc_check chk = {
		.what = "the child's copy after the pinner exited",
		.r = r, .len = r->len, .gen = PC_GEN_INIT,
		.side = PC_CHECK_CHILD, .cpu = r->mem,
	};
	char t;

	close(p->hold[1]);
	if (read(p->hold[0], &t, 1) < 0)
		_exit(3);
	_exit(pc_verify(&chk) ? 1 : 0);
}

/* Runs in the pinning process: never returns. */
static void __attribute__((noreturn)) pinner_main(const struct pc_case *c,
						  struct pinner *p)
{
	struct pc_engine e;
	struct pc_region r;
	char t;
	pid_t pid;

	if (pc_engine_open(&e, c->engine)) {
		fprintf(stderr, "# pinner: %s\n", e.err);
		_exit(7);
	}
	buffer_create(c, &r);
	while (!pc_child_await(p->ch.to_child, &t)) {
		if (t == 'p' && pc_engine_pin(&e, r.mem, r.len, PC_PIN_RW)) {
			fprintf(stderr, "# pinner: %s\n", e.err);
			_exit(4);
		}
		if (t == 'u' && pc_engine_unpin(&e))
			_exit(5);
		if (t == 'f') {
			pid = fork();
			if (!pid)
				pinners_child(p, &r);
			*p->shared = pid;
		}
		if (t == 'x')
			_exit(0);	/* still pinned: the exit drops it */
		pc_child_tell(p->ch.to_parent, t);
	}
	_exit(6);
}

static void step(struct pinner *p, char t, const char *what)
{
	char got;

	if (pc_child_tell(p->ch.to_child, t) ||
	    pc_child_await(p->ch.to_parent, &got) || got != t)
		pc_fail("the pinning process failed to %s", what);
}

static int acct_differs(const struct acct *a, long pin, long lck)
{
	return a->pin != pin || a->lck != lck;
}

static void expect_acct(const char *who, const struct acct *a, long pin,
			long lck)
{
	if (acct_differs(a, pin, lck))
		pc_fail("%s: VmPin %ld kB VmLck %ld kB, want VmPin %ld kB VmLck %ld kB",
			who, a->pin, a->lck, pin, lck);
}

/* After the pin: the engine's counter rose by at least the range. */
static void judge_pin(const struct pc_case *c, const struct acct *base,
		      const struct acct *now)
{
	enum pin_counter want = engine_counter(c->engine);
	long len_kb = (long)(buf_len() >> 10);
	long dpin = now->pin - base->pin, dlck = now->lck - base->lck;
	long rose = want == ACCT_LOCKED ? dlck : dpin;
	long other = want == ACCT_LOCKED ? dpin : dlck;

	if (want == ACCT_NONE) {
		if (dpin || dlck)
			pc_fail("%s accounts nothing, yet VmPin +%ld kB VmLck +%ld kB",
				c->engine->name, dpin, dlck);
		return;
	}
	pc_diag("%s charges its pin to %s: +%ld kB for a %ld kB range%s",
		c->engine->name, counter_field[want], rose, len_kb,
		rose > len_kb ? " (plus the engine's own buffers)" : "");
	if (rose < len_kb)
		pc_fail("%s pinned %ld kB but %s rose by %ld kB",
			c->engine->name, len_kb, counter_field[want], rose);
	if (other)
		pc_fail("%s pin also moved %s by %ld kB",
			c->engine->name, counter_field[!want], other);
}

static void pin_accounting_steps(const struct pc_case *c, struct pinner *p)
{
	struct acct base, pinned, now;
	pid_t w = p->ch.pid;

	step(p, 'o', "open the engine");
	read_acct(w, &base, "pinner, engine open, not pinned:");
	step(p, 'p', "pin");
	read_acct(w, &pinned, "pinner, pinned:");
	judge_pin(c, &base, &pinned);
	step(p, 'f', "fork");
	read_acct(*p->shared, &now, "its child after fork:");
	expect_acct("the child (it holds no pin)", &now, 0, 0);
	read_acct(w, &now, "pinner after fork:");
	expect_acct("the pinner after fork", &now, pinned.pin, pinned.lck);
	step(p, 'u', "unpin");
	read_acct(w, &now, "pinner, unpinned:");
	expect_acct("the pinner after unpin", &now, base.pin, base.lck);
	read_acct(*p->shared, &now, "its child after the unpin:");
	expect_acct("the child after the unpin", &now, 0, 0);
}

static void pin_accounting_case(const struct pc_case *c)
{
	struct pinner p = { .shared = NULL };
	struct pc_engine e;
	struct acct kid;
	char how[64];
	int status;

	pc_engine_open_or_skip(&e, c->engine);	/* probe and skip here */
	pc_engine_close(&e);

	p.shared = mmap(NULL, sizeof(*p.shared), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p.shared == MAP_FAILED)
		pc_fail_errno("mmap(MAP_SHARED)");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) || pipe(p.hold))
		pc_fail_errno("PR_SET_CHILD_SUBREAPER / pipe");
	if (!pc_child_fork(&p.ch))
		pinner_main(c, &p);
	close(p.hold[0]);
	pin_accounting_steps(c, &p);
	step(&p, 'p', "pin again");
	if (pc_child_tell(p.ch.to_child, 'x'))
		pc_fail("the pinning process died early");
	status = pc_child_reap(&p.ch);
	if (status)
		pc_fail("pinner %s", pc_wait_describe(status, how, sizeof(how)));
	read_acct(*p.shared, &kid, "the child after the pinner exited:");
	expect_acct("the child after the pinner's exit", &kid, 0, 0);
	if (write(p.hold[1], "x", 1) != 1)
		pc_fail_errno("release the child");
	if (waitpid(*p.shared, &status, 0) != *p.shared || status)
		pc_fail("the child's copy after the pinner's exit: %s",
			pc_wait_describe(status, how, sizeof(how)));
	pc_pass();
}

/* ---- controls of the sharing and accounting checks ------------------- */

/*
 * Control: no pin, so fork() shares the pages copy-on-write.  The check
 * that fails an over-limit fork for sharing pinned pages must see them.
 */
static void control_unpinned_shared_case(const struct pc_case *c)
{
	struct child_view v;
	struct pc_region r;
	int hold;
	pid_t pid;

	buffer_create(c, &r);
	pc_region_snap(&r, "fork");
	if (!pc_pfn_readable())
		pc_skip("PFNs are hidden in /proc/self/pagemap (needs CAP_SYS_ADMIN)");
	pid = fork_held(&hold);
	if (pid < 0)
		pc_fail_errno("fork");
	child_view(pid, &r, &v);
	close(hold);
	waitpid(pid, NULL, 0);
	if (v.shared != NPAGES)
		pc_fail("blind: an unpinned range after fork shows %zu of %d pages on the parent's PFN",
			v.shared, NPAGES);
	pc_diag("sharing seen as it must be: %zu of %d pages on the parent's PFN",
		v.shared, NPAGES);
	pc_region_destroy(&r);
	pc_pass();
}

/* A child that mlock()s its copy: 'r' when locked, 'e' when it cannot. */
static void __attribute__((noreturn)) child_locks(struct pc_child *ch,
						  struct pc_region *r)
{
	pc_child_tell(ch->to_parent, mlock(r->mem, r->len) ? 'e' : 'r');
	pc_child_await(ch->to_child, NULL);
	_exit(0);
}

/*
 * Control: the child locks its copy.  The check that the child holds no
 * pin must report its VmLck, else it cannot see a child's charge.
 */
static void control_child_locked_case(const struct pc_case *c)
{
	struct pc_region r;
	struct pc_child ch;
	struct acct a;
	char t = 0;

	buffer_create(c, &r);
	if (!pc_child_fork(&ch))
		child_locks(&ch, &r);
	if (pc_child_await(ch.to_parent, &t))
		pc_fail("the child died before locking");
	if (t == 'e') {
		pc_child_kill(&ch);
		pc_skip("mlock() of %zu kB refused (RLIMIT_MEMLOCK without CAP_IPC_LOCK)",
			r.len >> 10);
	}
	read_acct(ch.pid, &a, "the child, its copy mlock()ed:");
	pc_child_tell(ch.to_child, 'x');
	pc_child_reap(&ch);
	if (!acct_differs(&a, 0, 0))
		pc_fail("blind: a child with %zu kB mlock()ed passes the \"holds nothing\" check",
			r.len >> 10);
	pc_diag("child's charge seen as it must be: VmLck %ld kB", a.lck);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- cases --------------------------------------------------------------- */

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_LONGTERM | PC_CAP_HELD;
	const struct pc_backing *anon = pc_backing_find("anon");
	pc_case_fn fn;
	size_t i;

	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++) {
		const struct memcg_scenario *s = &scenarios[i];

		switch (s->kind) {
		case COPY_CHARGED:
		case CLONE3_CHARGED:
			fn = copy_charged_case;
			break;
		case OVER_LIMIT:
		case OVER_LIMIT_SWAP:
			fn = over_limit_case;
			break;
		case OVER_LIMIT_OOM_KILL:
			fn = oom_kill_case;
			break;
		case PIN_ACCOUNTING:
			fn = pin_accounting_case;
			break;
		default:
			fn = dontfork_case;
			break;
		}
		pc_add_matrix_on(fn, s, s->name, s->backings, need,
				 PC_CAP_GET_REF, 60);
	}
	if (!anon)
		return;
	pc_add_case(control_charge_seen_case, &charge_seen, anon, NULL,
		    "%s/%s/anon/-", pc_binary(), charge_seen.name);
	pc_add_case(control_unpinned_shared_case, &unpinned_shared, anon, NULL,
		    "%s/%s/anon/-", pc_binary(), unpinned_shared.name);
	pc_add_case(control_child_locked_case, &child_locked, anon, NULL,
		    "%s/%s/anon/-", pc_binary(), child_locked.name);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "memcg_fork", add_cases);
}
