// SPDX-License-Identifier: GPL-2.0
/*
 * ro_pin: read-only long-term pins (S5, S15).
 *
 * A R/O pin (FOLL_PIN without FOLL_WRITE: VFIO maps without
 * VFIO_DMA_MAP_FLAG_WRITE, gup_test without USE_WRITE) must be taken on
 * the page the process will keep using.  If the PTE is write-protected at
 * pin time (zero page, COW-shared, previously shared, mprotect'ed), the
 * next CPU write used to COW away from the pinned page: the device then
 * reads stale data forever.  Fixed for anonymous pages in 5.19 (unshare on
 * R/O pin, a7f226604170) and for the zero page and page cache in COW
 * mappings in 6.2 (84209e87c696 with 8d6a0ac09a16): a failure where the
 * pinned page is a zero page says so and names the fix.
 *
 *   cpu-write          pin R/O as the backing comes, then CPU write
 *   prev-shared-write  an earlier fork + child exit left the PTE R/O
 *   mprotect-write     mprotect(PROT_READ) before the pin; after it the
 *                      soft-dirty bits are cleared and the range made R/W
 *                      again (as the kernel's cow.c RO_EXCLUSIVE case
 *                      does: else mprotect maps an exclusive page writable
 *                      at once).  PASSes only when the CPU write took a
 *                      write fault on the range (lib/memory/faults.h pc_faults);
 *                      none: SKIP "no event" with the count
 *   shared-write       a live child shares the page at pin time; the
 *                      child must keep its own data
 *
 *   control-mprotect-remap  the mprotect-write steps, then fresh pages
 *                      mapped over the pinned range: the checks must see
 *                      the device keep the old data
 *
 * Every check: the device reads what the CPU holds right after the pin,
 * then the CPU writes, then the device must read the CPU's data.  The
 * harness watchdog turns a pin that never returns (the 2022 zero-pfn
 * livelock) into a TIMEOUT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pincheck.h"
#include "evidence.h"

enum ro_prep { PREP_NONE, PREP_PREV_SHARED, PREP_MPROTECT, PREP_SHARED };

struct ro_scenario {
	const char *name;
	enum ro_prep prep;
};

static const struct ro_scenario scenarios[] = {
	{ "cpu-write", PREP_NONE },
	{ "prev-shared-write", PREP_PREV_SHARED },
	{ "mprotect-write", PREP_MPROTECT },
	{ "shared-write", PREP_SHARED },
};

static const struct ro_scenario control_steps = {
	"control-mprotect-remap", PREP_MPROTECT,
};

static void __attribute__((noreturn))
run_sharing_child(struct pc_child *ch, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "child's view after the parent's write", .r = r,
		.len = r->len, .gen = r->gen, .side = PC_CHECK_CHILD,
		.cpu = r->mem,
	};

	pc_child_tell(ch->to_parent, 'r');
	if (pc_child_await(ch->to_child, NULL))
		_exit(3);
	if (!(r->bk->flags & PC_BK_SHARED))
		pc_child_verify_or_exit(ch, &chk);
	_exit(0);
}

static void prepare(const struct ro_scenario *s, struct pc_region *r,
		    struct pc_child *ch)
{
	switch (s->prep) {
	case PREP_PREV_SHARED:
		pc_fork_and_reap();
		break;
	case PREP_MPROTECT:
		if (mprotect(r->mem, r->len, PROT_READ))
			pc_fail_errno("mprotect(PROT_READ)");
		break;
	case PREP_SHARED:
		if (!pc_child_fork(ch))
			run_sharing_child(ch, r);
		if (pc_child_await(ch->to_parent, NULL))
			pc_fail("sharing child died");
		break;
	default:
		break;
	}
}

static void finish_sharing_child(struct pc_child *ch)
{
	char summary[PC_REASON_MAX] = "", how[64];
	int status;

	status = pc_child_collect(ch, 'c', summary, sizeof(summary));
	if (summary[0])
		pc_fail("child isolation: %s", summary);
	if (status)
		pc_fail("sharing child %s",
			pc_wait_describe(status, how, sizeof(how)));
}

/* mprotect-write: clear soft-dirty, then R/W again (cow.c's RO_EXCLUSIVE). */
static void unprotect(const struct ro_scenario *s, struct pc_region *r)
{
	int rc;

	if (s->prep != PREP_MPROTECT)
		return;
	rc = pc_soft_dirty_clear();
	if (rc)
		pc_diag("soft-dirty bits not cleared (/proc/self/clear_refs: %s): mprotect may map the pages writable at once",
			strerror(-rc));
	if (mprotect(r->mem, r->len, PROT_READ | PROT_WRITE))
		pc_fail_errno("mprotect(PROT_READ | PROT_WRITE)");
}

/* The CPU write, with the faults it took on the range (-1: not counted). */
static long cpu_write(const struct ro_scenario *s, struct pc_region *r,
		      char *why, size_t len)
{
	long faults;

	if (s->prep != PREP_MPROTECT) {
		pc_region_cpu_write(r, 0, r->len, PC_GEN_CPU_LATE);
		return 0;
	}
	faults = pc_cpu_write_counting_faults(r, PC_GEN_CPU_LATE, why, len);
	pc_diag("the CPU write after mprotect(PROT_READ | PROT_WRITE) took %ld fault(s) on the %zu pages",
		faults, r->len / pc_page_size);
	return faults;
}

/* mprotect-write PASSes only when the write met a write-protected PTE. */
static void expect_write_fault(const struct ro_scenario *s,
			       const struct pc_region *r, long faults,
			       const char *why)
{
	if (s->prep != PREP_MPROTECT)
		return;
	if (faults < 0)
		pc_skip("no evidence: cannot count the write faults that prove the PTEs were write-protected (%s)",
			why);
	if (!faults)
		pc_skip("no event: the CPU write took 0 faults on the %zu pinned pages: mprotect(PROT_READ | PROT_WRITE) mapped them writable (soft-dirty: %s), nothing was tested",
			r->len / pc_page_size,
			pc_soft_dirty_probe() ?: "cleared, yet no fault");
}

static void ro_pin_case(const struct pc_case *c)
{
	const struct ro_scenario *s = c->scenario;
	struct pc_child ch = { .pid = 0 };
	struct pc_engine e;
	struct pc_region r;
	char why[160] = "";
	long faults;

	if (s->prep == PREP_MPROTECT)
		pc_numa_balancing_pause();
	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	prepare(s, &r, &ch);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RO);
	/* Right after the pin the PTEs map the pages the device holds. */
	pc_region_snap(&r, "the CPU write (right after the R/O pin)");
	unprotect(s, &r);
	pc_expect_device_sees(&e, &r, r.gen, "device read right after the R/O pin");
	faults = cpu_write(s, &r, why, sizeof(why));
	pc_expect_device_sees_ro_pinned(&e, &r, PC_GEN_CPU_LATE,
					"device read of a CPU write after the R/O pin");
	if (s->prep == PREP_SHARED)
		finish_sharing_child(&ch);
	expect_write_fault(s, &r, faults, why);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/*
 * Control: the mprotect-write steps, then a loss on purpose (fresh pages
 * mapped over the pinned range).  The checks must report it.
 */
static void control_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct pc_region r;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	prepare(&control_steps, &r, NULL);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RO);
	pc_region_snap(&r, "the remap after the R/O pin");
	unprotect(&control_steps, &r);
	pc_move_ignoring_pin(&r, -1);
	pc_expect_lost_pin_detected(&e, &r, r.gen);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RO | PC_CAP_HELD | PC_CAP_LONGTERM |
			    PC_CAP_DEV_READ;
	size_t i;

	pc_slow_engine_backings = "anon thp-pmd untouched zeropage huge-zeropage memfd-private file-private";
	pc_faults_hold_sched_hooks();
	pc_gen_name(PC_GEN_INIT, "CPU write before the pin");
	pc_gen_name(PC_GEN_CPU_LATE, "CPU write after the R/O pin");
	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
		pc_add_matrix(ro_pin_case, &scenarios[i], scenarios[i].name,
			      need, PC_CAP_GET_REF);
	pc_add_matrix_on(control_case, NULL, "control-mprotect-remap", "anon",
			 need, PC_CAP_GET_REF, 0);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "ro_pin", add_cases);
}
