// SPDX-License-Identifier: GPL-2.0
/*
 * iouring_fixed: io_uring fixed buffers (FOLL_WRITE | FOLL_PIN |
 * FOLL_LONGTERM) through the PTE write-protection events a process
 * causes itself, and the accounting of pinned memory (S19, S22).
 *
 *   mprotect-ro-rw        register, mprotect(PROT_READ), clear the
 *                         soft-dirty bits, mprotect(RW), CPU write: the
 *                         device must see it (S19).  The clearing (as the
 *                         kernel's cow.c "R/O-mapping a page registered as
 *                         iouring fixed buffer" does) keeps mprotect(RW)
 *                         from mapping exclusive pages writable at once
 *   softdirty-mprotect    register, clear soft-dirty, mprotect(PROT_READ),
 *                         mprotect(RW), CPU write
 *   softdirty-clear       register, clear soft-dirty (write-protects the
 *                         PTEs), CPU write
 *   control-mprotect-remap  the mprotect-ro-rw steps, then fresh pages
 *                         mapped over the registered range: the checks
 *                         must report that the device lost the CPU's view
 *   register-after-fork   a live child shares the pages when they are
 *                         registered: the pin must break COW so that the
 *                         parent keeps the pinned page and the child its
 *                         own data
 *   memlock-accounting    without CAP_IPC_LOCK: registering more than
 *                         RLIMIT_MEMLOCK fails cleanly with ENOMEM and
 *                         pins nothing; within the limit VmPin counts the
 *                         range, and drops to 0 after unregister; memory
 *                         left registered at exit is given back (a second
 *                         process of the same user can register it again)
 *
 * Evidence: the first three PASS only when the CPU write took a fault on
 * the range (perf page-fault samples, lib/memory/faults.h pc_faults): a write that
 * takes none went to PTEs that were writable all along, and the case
 * SKIPs "no event" with the counts.  The softdirty-* cases first check
 * that clear_refs clears pagemap's soft-dirty bit of a probe page and a
 * write sets it again (else CONFIG_MEM_SOFT_DIRTY is missing).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pincheck.h"
#include "evidence.h"

/*
 * Unprivileged uids of our own for the accounting cases.  The kernel gives
 * back an exited ring's charge from a workqueue, so a probe that must not
 * see an earlier child's leftovers runs under a uid not used before.
 */
#define PC_ACCOUNTING_UID 2934471
#define PC_ACCOUNTING_UIDS 4096

enum wp_event { WP_MPROTECT, WP_SOFTDIRTY_MPROTECT, WP_SOFTDIRTY,
		WP_CONTROL_REMAP };

struct wp_scenario {
	const char *name;
	enum wp_event event;
};

static const struct wp_scenario wp_scenarios[] = {
	{ "mprotect-ro-rw", WP_MPROTECT },
	{ "softdirty-mprotect", WP_SOFTDIRTY_MPROTECT },
	{ "softdirty-clear", WP_SOFTDIRTY },
};

static const struct wp_scenario wp_control = {
	"control-mprotect-remap", WP_CONTROL_REMAP,
};

static void clear_soft_dirty(void)
{
	int rc = pc_soft_dirty_clear();

	if (rc)
		pc_skip("cannot clear soft-dirty bits: writing 4 to /proc/self/clear_refs: %s",
			strerror(-rc));
}

static void protect(struct pc_region *r, int prot)
{
	if (mprotect(r->mem, r->len, prot))
		pc_fail_errno(prot & PROT_WRITE ? "mprotect(PROT_READ | PROT_WRITE)" :
						  "mprotect(PROT_READ)");
}

/*
 * Write-protect the registered pages' PTEs; returns how many of its pages
 * pagemap still reports soft-dirty right after the clearing.
 */
static size_t write_protect(const struct wp_scenario *s, struct pc_region *r)
{
	size_t dirty;

	if (s->event == WP_MPROTECT || s->event == WP_CONTROL_REMAP) {
		protect(r, PROT_READ);
		clear_soft_dirty();
		dirty = pc_soft_dirty_pages(r->mem, r->len);
		protect(r, PROT_READ | PROT_WRITE);
		return dirty;
	}
	clear_soft_dirty();
	dirty = pc_soft_dirty_pages(r->mem, r->len);
	if (s->event == WP_SOFTDIRTY_MPROTECT) {
		protect(r, PROT_READ);
		protect(r, PROT_READ | PROT_WRITE);
	}
	return dirty;
}

static void skip_without_soft_dirty(const struct wp_scenario *s)
{
	const char *why;

	if (s->event == WP_MPROTECT || s->event == WP_CONTROL_REMAP)
		return;
	why = pc_soft_dirty_probe();
	if (why)
		pc_skip("%s", why);
}

/* PASS needs a write fault on the range: the PTEs were write-protected. */
static void expect_write_faults(const struct wp_scenario *s,
				const struct pc_region *r, long faults,
				size_t dirty, const char *why)
{
	size_t pages = r->len / pc_page_size;
	const char *no_sd;

	if (faults < 0)
		pc_skip("no evidence: cannot count the write faults that prove the PTEs were write-protected (%s)",
			why);
	if (faults)
		return;
	if (dirty)
		pc_skip("no event: the CPU write took 0 faults on the %zu registered pages after %s: clear_refs left %zu of them soft-dirty and writable (it leaves writable pinned PTEs of private mappings alone: 9348b73c2e1b \"mm: don't play games with pinned pages in clear_page_refs\"), nothing was tested",
			pages, s->name, dirty);
	no_sd = s->event == WP_MPROTECT ? pc_soft_dirty_probe() : NULL;
	if (no_sd)
		pc_skip("no event: the CPU write took 0 faults on the %zu registered pages after %s: mprotect(PROT_READ | PROT_WRITE) mapped them writable again, and clearing soft-dirty cannot keep them R/O here (%s), nothing was tested",
			pages, s->name, no_sd);
	pc_skip("no event: the CPU write took 0 faults on the %zu registered pages after %s (none soft-dirty after clear_refs): the PTEs stayed writable, nothing was tested",
		pages, s->name);
}

static void wp_case(const struct pc_case *c)
{
	const struct wp_scenario *s = c->scenario;
	char when[64], why[160] = "";
	struct pc_engine e;
	struct pc_region r;
	size_t dirty;
	long faults;

	skip_without_soft_dirty(s);
	pc_numa_balancing_pause();
	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_region_snap(&r, s->name);
	dirty = write_protect(s, &r);
	faults = pc_cpu_write_counting_faults(&r, PC_GEN_CPU_LATE, why,
					      sizeof(why));
	pc_diag("after %s: %zu of %zu pages soft-dirty after clear_refs, the CPU write took %ld fault(s) on the range",
		s->name, dirty, r.len / pc_page_size, faults);
	snprintf(when, sizeof(when), "after %s", s->name);
	pc_coherence_round(&e, &r, PC_GEN_CPU_LATE, when);
	expect_write_faults(s, &r, faults, dirty, why);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/*
 * Control: the mprotect-ro-rw steps, then a loss on purpose (fresh pages
 * mapped over the registered range).  The coherence checks must see it.
 */
static void wp_control_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct pc_region r;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_region_snap(&r, "the remap after mprotect-ro-rw");
	write_protect(&wp_control, &r);
	pc_move_ignoring_pin(&r, -1);
	pc_expect_lost_pin_detected(&e, &r, PC_GEN_INIT);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

static void __attribute__((noreturn))
run_sharing_child(struct pc_child *ch, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "child's view after the parent registered and wrote",
		.r = r, .len = r->len, .side = PC_CHECK_CHILD, .cpu = r->mem,
	};
	char token;

	pc_child_tell(ch->to_parent, 'r');
	if (pc_child_await(ch->to_child, &token))
		_exit(3);
	chk.gen = (r->bk->flags & PC_BK_SHARED) ? (unsigned int)token : r->gen;
	pc_child_verify_or_exit(ch, &chk);
	_exit(0);
}

static void register_after_fork_case(const struct pc_case *c)
{
	char summary[PC_REASON_MAX] = "", how[64];
	struct pc_engine e;
	struct pc_region r;
	struct pc_child ch;
	unsigned int model;
	int status;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	if (!pc_child_fork(&ch))
		run_sharing_child(&ch, &r);
	if (pc_child_await(ch.to_parent, NULL))
		pc_fail("sharing child died");
	pc_region_snap(&r, "the registration");
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_region_cpu_write(&r, 0, r.len, PC_GEN_PARENT);
	model = pc_coherence_round(&e, &r, PC_GEN_PARENT,
				   "after registering COW-shared pages");
	status = pc_child_collect(&ch, (char)model, summary, sizeof(summary));
	if (summary[0])
		pc_fail("child isolation: %s", summary);
	if (status)
		pc_fail("sharing child %s", pc_wait_describe(status, how, sizeof(how)));
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- accounting: runs as an unprivileged user in child processes ---- */

static uid_t fresh_uid(void)
{
	static unsigned int next;

	next = (next + 1 + (unsigned int)getpid()) % PC_ACCOUNTING_UIDS;
	return PC_ACCOUNTING_UID + next;
}

/*
 * The limit is set while still root: raising the hard limit above the
 * one inherited needs CAP_SYS_RESOURCE, and kernels before 5.16 start
 * init with a hard RLIMIT_MEMLOCK of 64 KiB (later ones with 8 MiB).
 */
static void become_unprivileged(uid_t uid, rlim_t memlock)
{
	struct rlimit rl = { .rlim_cur = memlock, .rlim_max = memlock };

	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		pc_fail_errno("setrlimit(RLIMIT_MEMLOCK)");
	if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
		pc_fail_errno("setresuid (needs root)");
}

/*
 * What a child did with the limit it was given.  The ring's own pages
 * count against RLIMIT_MEMLOCK too (they are charged when it is created),
 * so "no room for the ring" and "no room for the buffer" are told apart.
 */
enum acct_step { ACCT_COUNT, ACCT_LEAVE_PINNED };
#define ACCT_NO_ROOM_BUFFER 10
#define ACCT_NO_ROOM_RING 11

static void register_child(const struct pc_case *c, struct pc_region *r,
			   enum acct_step step)
{
	struct pc_engine e;
	long pin_kb;
	int rc;

	if (pc_engine_open(&e, c->engine))
		_exit(ACCT_NO_ROOM_RING);
	rc = pc_engine_pin(&e, r->mem, r->len, PC_PIN_RW);
	pin_kb = pc_status_kb(0, "VmPin");
	if (rc == -ENOMEM) {
		if (pin_kb > 0)
			pc_fail("failed registration left VmPin at %ld kB", pin_kb);
		_exit(ACCT_NO_ROOM_BUFFER);
	}
	if (rc)
		pc_fail("registering %zu bytes: %s", r->len, e.err);
	if (pin_kb >= 0 && (size_t)pin_kb * 1024 < r->len)
		pc_fail("VmPin %ld kB after registering %zu bytes", pin_kb, r->len);
	if (step == ACCT_LEAVE_PINNED)
		_exit(0);	/* exit with the buffer registered */
	pc_engine_unpin(&e);
	pin_kb = pc_status_kb(0, "VmPin");
	if (pin_kb > 0)
		pc_fail("VmPin %ld kB after unregister, want 0", pin_kb);
	pc_engine_close(&e);
	_exit(0);
}

/* Register @r as the unprivileged user under @limit: the child's code. */
static int register_as_user(const struct pc_case *c, struct pc_region *r,
			    uid_t uid, rlim_t limit, enum acct_step step)
{
	struct pc_child ch;
	int status;

	if (!pc_child_fork(&ch)) {
		become_unprivileged(uid, limit);
		register_child(c, r, step);
	}
	status = pc_child_reap(&ch);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 1;
}

/*
 * The same, retried for up to 2 s while the limit is short: the kernel
 * gives back the charge of an exited process's ring from a workqueue.
 */
static int register_as_user_settled(const struct pc_case *c,
				    struct pc_region *r, uid_t uid, rlim_t limit,
				    enum acct_step step)
{
	int rc, tries;

	for (tries = 0; tries < 100; tries++) {
		rc = register_as_user(c, r, uid, limit, step);
		if (rc != ACCT_NO_ROOM_BUFFER && rc != ACCT_NO_ROOM_RING)
			return rc;
		usleep(20000);
	}
	return rc;
}

/* What register_as_user()'s exit code @rc says, for a failure line. */
static const char *child_outcome(int rc)
{
	switch (rc) {
	case ACCT_NO_ROOM_BUFFER:
		return "the registration failed with ENOMEM";
	case ACCT_NO_ROOM_RING:
		return "no room for the ring (io_uring_setup failed)";
	default:
		return "the unprivileged child failed (its '# child' line above says why)";
	}
}

/* The smallest RLIMIT_MEMLOCK (in pages) under which @r registers. */
static rlim_t smallest_memlock(const struct pc_case *c, struct pc_region *r,
			       rlim_t most)
{
	rlim_t lo = 0, hi = most / pc_page_size, mid;
	int rc;

	rc = register_as_user(c, r, fresh_uid(), hi * pc_page_size, ACCT_COUNT);
	if (rc)
		pc_fail("registering %zu bytes within RLIMIT_MEMLOCK %llu: %s",
			r->len, (unsigned long long)most, child_outcome(rc));
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		rc = register_as_user(c, r, fresh_uid(), mid * pc_page_size,
				      ACCT_COUNT);
		if (rc == 0)
			hi = mid;
		else if (rc == ACCT_NO_ROOM_BUFFER || rc == ACCT_NO_ROOM_RING)
			lo = mid;
		else
			pc_fail("registering under RLIMIT_MEMLOCK %llu: child failed (see above)",
				(unsigned long long)(mid * pc_page_size));
	}
	return hi * pc_page_size;
}

static void memlock_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct pc_region r;
	rlim_t most, need;
	uid_t uid;
	int rc;

	if (geteuid())
		pc_skip("needs root to switch to an unprivileged user");
	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_engine_close(&e);
	/* Accounting counts whole folios: leave room for the largest. */
	most = pc_align_up(r.len, 4u << 20) + (4u << 20);
	need = smallest_memlock(c, &r, most);
	pc_diag("registering %zu kB needs RLIMIT_MEMLOCK >= %llu kB (ring included)",
		r.len >> 10, (unsigned long long)need >> 10);
	if (need < r.len)
		pc_fail("%zu bytes registered under RLIMIT_MEMLOCK %llu: not charged",
			r.len, (unsigned long long)need);
	rc = register_as_user(c, &r, fresh_uid(), need - pc_page_size,
			      ACCT_COUNT);
	if (rc != ACCT_NO_ROOM_BUFFER)
		pc_fail("one page under the smallest limit (%llu): want ENOMEM from the registration, got %s",
			(unsigned long long)need - pc_page_size,
			rc == ACCT_NO_ROOM_RING ? "no room for the ring" : "success or a failure above");
	uid = fresh_uid();
	if (register_as_user(c, &r, uid, need, ACCT_LEAVE_PINNED))
		pc_fail("registering under RLIMIT_MEMLOCK %llu failed the second time",
			(unsigned long long)need);
	rc = register_as_user_settled(c, &r, uid, need, ACCT_COUNT);
	if (rc)
		pc_fail("%zu bytes left registered at exit are still charged 2 s later: a second process cannot register them under the same RLIMIT_MEMLOCK %llu",
			r.len, (unsigned long long)need);
	pc_region_destroy(&r);
	pc_pass();
}

static void add_cases(void)
{
	const struct pc_engine_ops *io = &pc_engine_io_uring;
	const struct pc_backing *const *bks;
	size_t nb = pc_backings(&bks), b, i;

	pc_faults_hold_sched_hooks();
	for (b = 0; b < nb; b++) {
		for (i = 0; i < PC_ARRAY_SIZE(wp_scenarios); i++)
			pc_add_case(wp_case, &wp_scenarios[i], bks[b], io,
				    "iouring_fixed/%s/%s/io_uring",
				    wp_scenarios[i].name, bks[b]->name);
		if (!strcmp(bks[b]->name, "anon"))
			pc_add_case(wp_control_case, &wp_control, bks[b], io,
				    "iouring_fixed/%s/%s/io_uring",
				    wp_control.name, bks[b]->name);
		pc_add_case(register_after_fork_case, NULL, bks[b], io,
			    "iouring_fixed/register-after-fork/%s/io_uring",
			    bks[b]->name);
		pc_add_case(memlock_case, NULL, bks[b], io,
			    "iouring_fixed/memlock-accounting/%s/io_uring",
			    bks[b]->name);
	}
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "iouring_fixed", add_cases);
}
