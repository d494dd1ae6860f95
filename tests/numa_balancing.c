// SPDX-License-Identifier: GPL-2.0
/*
 * numa_balancing: automatic NUMA balancing over a pinned range (S8).
 *
 * A region pinned R/W long-term and an unpinned twin of it are placed on
 * NUMA node "home".  NUMA balancing is switched on with a fast scanner
 * (kernel.numa_balancing=1; debugfs sched/numa_balancing/scan_* or the
 * older kernel.numa_balancing_scan_* sysctls; all restored by the harness
 * after the case).  A CPU thread bound to node "away" keeps reading both
 * ranges and, in turns with the device, writes and checks the pinned one:
 * the thread writes, the device must read it; the device writes, the
 * thread must read it.  The rounds go on until the twin has moved to node
 * away and the scanner made further passes, for at most NUMA_WAIT_MS, or
 * until NUMA_IDLE_PASSES scanner passes left the whole twin where it was.
 *
 * Must hold: no mismatch in any round, the pinned pages stay on node home
 * with the same PFNs, and, where the kernel promises to skip pinned pages
 * (PTE-mapped pages of private mappings: change_prot_numa() since
 * 80d47f5de5e3, v5.17), no NUMA hinting fault on the pinned range (faults
 * are counted by address with a perf software event; the twin's own
 * hinting faults show the counter sees them).
 *
 * The evidence that the scanner ran is printed with each case: vmstat
 * numa_* and pgmigrate_* before/after, the process's mm->numa_scan_seq,
 * the twin's move.  A twin that did not move means the scanner did not run
 * here: SKIP with those counters, never PASS.
 *
 * Control: "control-mover-ignores-pin" runs the same rounds and, midway,
 * plays a migration that ignores the pin (the CPU's pages copied to node
 * away, mapped in place): the rounds must report the mismatch.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pincheck.h"

#define NUMA_WAIT_MS 12000	/* the twin must move within this, */
#define NUMA_IDLE_PASSES 20	/* or within this many scanner passes */
#define NUMA_SETTLE_MS 600	/* rounds after the twin moved */
#define NUMA_SCAN_PASSES 2	/* full scanner passes after the pin */
#define ROUND_PAUSE_MS 20
#define CONTROL_MOVE_ROUND 3
#define CASE_TIMEOUT_S 40

#define KNOB_NUMA "/proc/sys/kernel/numa_balancing"
#define DEBUGFS_NUMA "/sys/kernel/debug/sched/numa_balancing"
#define SYSCTL_NUMA "/proc/sys/kernel/numa_balancing"

/*
 * The thread alternates two generations, so that a device that cannot
 * write (gup_test) still holds an older one than the CPU after a loss.
 */
enum { GEN_THREAD = 8, GEN_DEVICE = 9, GEN_THREAD_ALT = 10 };

static const char *const counters[] = {
	"numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults",
	"numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_fail",
	"sched:mm->numa_scan_seq", NULL,
};

enum cmd { CMD_NONE, CMD_WRITE, CMD_CHECK, CMD_STOP };

/* The CPU side: a thread on node away. */
struct toucher {
	pthread_t tid;
	struct pc_region *r, *t;
	int node;
	int cmd;		/* enum cmd, set by main, cleared by the thread */
	unsigned int gen;
	const uint64_t *sample;	/* words the last device write moved */
	int bad;		/* the last CMD_CHECK found a mismatch */
	char summary[PC_REASON_MAX];
	int counting;		/* the fault counter works */
	char why[160];
	size_t faults_pinned, faults_twin;
};

struct numa_run {
	struct pc_mover_setup s;
	struct toucher th;
	int home, away;
	unsigned int rounds;
	unsigned int mismatch_round;	/* 0: none */
	unsigned int held;		/* generation the memory holds now */
	unsigned int held_before;	/* ... and before the last round */
	long long twin_moved_ms;	/* since the start; -1: not yet */
	unsigned int twin_moved_round;
	long long waited_ms;		/* the rounds took this long */
	long long passes;		/* scanner passes in them; -1: unknown */
	long pmd_kb_before;		/* the pinned range's PMD mappings */
	char mismatch[PC_REASON_MAX + 32];
};

/* ---- knobs ---------------------------------------------------------------- */

static int set_if_present(const char *dir, const char *name, long long val)
{
	char path[160];

	snprintf(path, sizeof(path), "%s%s", dir, name);
	if (access(path, W_OK))
		return 0;
	return pc_knob_set_num(path, val) ? -1 : 1;
}

/* Switch NUMA balancing on with a fast scanner; say how. */
static void enable_balancing(void)
{
	const char *dir = DEBUGFS_NUMA "/", *how = "debugfs sched/numa_balancing";
	int err, set;

	if (access(KNOB_NUMA, W_OK))
		pc_skip("no %s: kernel without CONFIG_NUMA_BALANCING", KNOB_NUMA);
	err = pc_knob_set(KNOB_NUMA, "1");
	if (err)
		pc_fail("write 1 to %s: %s", KNOB_NUMA, strerror(-err));
	if (access(DEBUGFS_NUMA, F_OK)) {
		dir = SYSCTL_NUMA "_";
		how = "sysctl kernel.numa_balancing_scan_*";
	}
	/*
	 * The kernel never scans more often than 1000 ms / (2560 / scan_size_mb):
	 * 100 ms at the default 256 MB, 6 ms at 16 MB, so the 10 ms period holds.
	 */
	set = set_if_present(dir, "scan_delay_ms", 0);
	set |= set_if_present(dir, "scan_size_mb", 16);
	set |= set_if_present(dir, "scan_period_min_ms", 10);
	set |= set_if_present(dir, "scan_period_max_ms", 50);
	if (set < 0)
		pc_fail("could not speed up the NUMA scanner through %s", how);
	pc_diag("NUMA balancing on, scanner %s", set ? how :
		"at its default speed (mount debugfs for the fast knobs)");
}

/* ---- the CPU thread ----------------------------------------------------- */

static void read_each_page(const struct pc_region *x)
{
	const volatile uint64_t *w;
	size_t off;

	for (off = 0; off < x->len; off += pc_page_size) {
		w = (const volatile uint64_t *)(x->mem + off);
		(void)*w;
	}
}

static void write_each_page(struct pc_region *x)
{
	volatile uint64_t *w;
	size_t off;

	for (off = 0; off < x->len; off += pc_page_size) {
		w = (volatile uint64_t *)(x->mem + off);
		*w = *w;
	}
}

static void run_command(struct toucher *th, int cmd)
{
	struct pc_check chk = {
		.what = "thread on node away reads the device write",
		.r = th->r, .len = th->r->len, .gen = th->gen,
		.side = PC_CHECK_CPU, .cpu = th->r->mem, .sample = th->sample,
	};

	if (cmd == CMD_WRITE) {
		pc_region_cpu_write(th->r, 0, th->r->len, th->gen);
	} else if (cmd == CMD_CHECK) {
		th->bad = pc_verify(&chk) != 0;
		if (th->bad)
			snprintf(th->summary, sizeof(th->summary), "%s",
				 pc_mismatch_summary());
	}
}

static void *toucher_main(void *arg)
{
	struct toucher *th = arg;
	struct pc_faults f;
	int cmd;

	pc_numa_run_on(th->node);
	th->counting = !pc_faults_open(&f);
	if (!th->counting)
		snprintf(th->why, sizeof(th->why), "%s", f.why);
	for (;;) {
		read_each_page(th->r);
		write_each_page(th->t);
		cmd = __atomic_load_n(&th->cmd, __ATOMIC_ACQUIRE);
		if (cmd == CMD_STOP)
			break;
		if (cmd == CMD_NONE)
			continue;
		run_command(th, cmd);
		__atomic_store_n(&th->cmd, CMD_NONE, __ATOMIC_RELEASE);
	}
	if (th->counting) {
		th->faults_pinned = pc_faults_in(&f, th->r->mem, th->r->len);
		th->faults_twin = pc_faults_in(&f, th->t->mem, th->t->len);
		pc_faults_close(&f);
	}
	return NULL;
}

/*
 * Hand @cmd to the thread and wait until it is done.  A check judges the
 * words of the region that @sample names (NULL: all).
 */
static void command(struct toucher *th, int cmd, unsigned int gen,
		    const uint64_t *sample)
{
	th->gen = gen;
	th->sample = sample;
	__atomic_store_n(&th->cmd, cmd, __ATOMIC_RELEASE);
	while (__atomic_load_n(&th->cmd, __ATOMIC_ACQUIRE) != CMD_NONE)
		pc_sleep_ms(1);
}

static void start_toucher(struct numa_run *nr)
{
	nr->th.r = &nr->s.r;
	nr->th.t = &nr->s.t;
	nr->th.node = nr->away;
	if (pthread_create(&nr->th.tid, NULL, toucher_main, &nr->th))
		pc_fail("pthread_create failed");
}

static void stop_toucher(struct numa_run *nr)
{
	__atomic_store_n(&nr->th.cmd, CMD_STOP, __ATOMIC_RELEASE);
	pthread_join(nr->th.tid, NULL);
}

/* ---- rounds ------------------------------------------------------------------ */

/* The generation the thread writes in round @round. */
static unsigned int thread_gen(unsigned int round)
{
	return round & 1 ? GEN_THREAD : GEN_THREAD_ALT;
}

/* One round; 0, or -1 with nr->mismatch set. */
static int round_trip(struct numa_run *nr)
{
	struct pc_region *r = &nr->s.r;
	struct pc_check chk = {
		.what = "device reads the write of the thread on node away",
		.r = r, .len = r->len, .gen = thread_gen(nr->rounds),
		.side = PC_CHECK_DEVICE, .cpu = r->mem,
	};
	void *dev;
	int bad;

	nr->held_before = nr->held;
	command(&nr->th, CMD_WRITE, chk.gen, NULL);
	nr->held = chk.gen;
	dev = pc_dev_read_alloc(&nr->s.e, 0, r->len);
	chk.dev = dev;
	chk.sample = nr->s.e.sample;
	bad = pc_verify(&chk) != 0;
	free(dev);
	if (bad) {
		snprintf(nr->mismatch, sizeof(nr->mismatch), "round %u: %s",
			 nr->rounds, pc_mismatch_summary());
		return -1;
	}
	if (!pc_engine_can(nr->s.e.ops, PC_CAP_DEV_WRITE))
		return 0;
	pc_dev_write_gen(&nr->s.e, 0, r->len, GEN_DEVICE);
	nr->held = GEN_DEVICE;
	/* A sampling device wrote its sample only: the thread judges that. */
	command(&nr->th, CMD_CHECK, GEN_DEVICE, nr->s.e.sample);
	if (nr->th.bad) {
		snprintf(nr->mismatch, sizeof(nr->mismatch), "round %u: %s",
			 nr->rounds, nr->th.summary);
		return -1;
	}
	return 0;
}

/*
 * Has the scanner passed NUMA_IDLE_PASSES times over the process since
 * @seq0 without moving a page of the twin?  Where the twin moves, it does
 * so within 1-4 passes (5.10 to 7.3-rc); a kernel that never scans the
 * twin's mapping (memfd-shared on 5.10 and 6.1: 190 passes in 12 s, no
 * hinting fault on the twin) is told in about a second.
 */
static int scanner_passed_twin_by(struct numa_run *nr, long long seq0)
{
	long long seq;

	if (seq0 < 0 || pc_numa_pages_on(&nr->s.t, nr->away))
		return 0;
	seq = pc_counter_read("sched:mm->numa_scan_seq");
	return seq >= seq0 + NUMA_IDLE_PASSES;
}

/* Is the twin all on node away, and since when? */
static void note_twin_moved(struct numa_run *nr, long long ms,
			    long long *seq_moved)
{
	if (nr->twin_moved_ms >= 0 ||
	    pc_numa_pages_on(&nr->s.t, nr->away) != nr->s.t.len / pc_page_size)
		return;
	nr->twin_moved_ms = ms;
	nr->twin_moved_round = nr->rounds;
	*seq_moved = pc_counter_read("sched:mm->numa_scan_seq");
}

/*
 * Rounds until the twin moved and the scanner made NUMA_SCAN_PASSES more
 * passes (and NUMA_SETTLE_MS went by), or NUMA_WAIT_MS, or (twin never
 * touched) NUMA_IDLE_PASSES passes.  With @control, the pin-ignoring
 * mover runs before round CONTROL_MOVE_ROUND.
 * Returns 0, or -1 at the first mismatch.
 */
static int run_rounds(struct numa_run *nr, int control)
{
	long long t0 = pc_now_ms(), now, seq0, seq_moved = -1;
	int rc = 0;

	nr->twin_moved_ms = -1;
	nr->pmd_kb_before = pc_smaps_kb(nr->s.r.mem, "AnonHugePages");
	seq0 = pc_counter_read("sched:mm->numa_scan_seq");
	for (now = t0; now - t0 < NUMA_WAIT_MS; now = pc_now_ms()) {
		nr->rounds++;
		if (control && nr->rounds == CONTROL_MOVE_ROUND)
			pc_move_ignoring_pin(&nr->s.r, nr->away);
		if (round_trip(nr)) {
			nr->mismatch_round = nr->rounds;
			rc = -1;
			break;
		}
		note_twin_moved(nr, now - t0, &seq_moved);
		if (nr->twin_moved_ms >= 0 &&
		    now - t0 - nr->twin_moved_ms >= NUMA_SETTLE_MS &&
		    (seq0 < 0 || pc_counter_read("sched:mm->numa_scan_seq") >=
				 seq_moved + NUMA_SCAN_PASSES) &&
		    (!control || nr->rounds > CONTROL_MOVE_ROUND))
			break;
		if (!control && scanner_passed_twin_by(nr, seq0))
			break;
		pc_sleep_ms(ROUND_PAUSE_MS);
	}
	nr->waited_ms = pc_now_ms() - t0;
	nr->passes = seq0 < 0 ? -1 :
		     pc_counter_read("sched:mm->numa_scan_seq") - seq0;
	return rc;
}

/* ---- judging ------------------------------------------------------------------ */

/*
 * Does the kernel promise not to PROT_NONE these pinned pages?  Only if
 * they were PTE-mapped all along: a PMD split during the rounds (seen on
 * 6.1's thp-pmd) leaves PTEs at the end, yet the faults taken while the
 * PMD stood were allowed.
 */
static int skip_promised(const struct numa_run *nr)
{
	const struct pc_region *r = &nr->s.r;
	long thp_kb = pc_smaps_kb(r->mem, "AnonHugePages");

	if (nr->pmd_kb_before > 0 && thp_kb <= 0)
		pc_diag("the pinned range was PMD-mapped (%ld kB) before the rounds, PTE-mapped after them",
			nr->pmd_kb_before);
	return !(r->bk->flags & (PC_BK_SHARED | PC_BK_FILE)) &&
	       thp_kb <= 0 && nr->pmd_kb_before <= 0;
}

static void print_evidence(struct numa_run *nr)
{
	size_t tn = nr->s.t.len / pc_page_size, rn = nr->s.r.len / pc_page_size;
	char t_moved[64] = "never";

	if (nr->twin_moved_ms >= 0)
		snprintf(t_moved, sizeof(t_moved), "by round %u, %lld ms in",
			 nr->twin_moved_round, nr->twin_moved_ms);
	pc_diag("evidence: unpinned twin %zu/%zu pages on node %d (all there %s); pinned %zu/%zu pages on node %d; %u rounds",
		pc_numa_pages_on(&nr->s.t, nr->away), tn, nr->away, t_moved,
		pc_numa_pages_on(&nr->s.r, nr->home), rn, nr->home,
		nr->rounds);
	if (nr->th.counting)
		pc_diag("evidence: hinting faults of the thread on node %d: pinned range %zu, twin %zu",
			nr->away, nr->th.faults_pinned, nr->th.faults_twin);
	else
		pc_diag("evidence: hinting faults not counted (%s)", nr->th.why);
}

static void expect_twin_moved(struct numa_run *nr,
			      const struct pc_counters *cnt)
{
	size_t i, n = nr->s.t.len / pc_page_size;
	int nodes[64];

	if (pc_numa_pages_on(&nr->s.t, nr->away))
		return;
	if (n <= 64 && !pc_numa_page_nodes(nr->s.t.mem, n, nodes))
		for (i = 0; i < n; i++)
			pc_diag("twin page %zu: node %d, PFN 0x%llx", i, nodes[i],
				(unsigned long long)pc_pfn(nr->s.t.mem + i * pc_page_size));
	pc_skip("no event: NUMA balancing moved no page of the unpinned twin to node %d in %lld ms and %lld scanner passes over the process (numa_pte_updates %+lld, numa_hint_faults %+lld, numa_pages_migrated %+lld): nothing proves it ran over these pages",
		nr->away, nr->waited_ms, nr->passes,
		pc_counters_delta(cnt, "numa_pte_updates"),
		pc_counters_delta(cnt, "numa_hint_faults"),
		pc_counters_delta(cnt, "numa_pages_migrated"));
}

static void expect_no_hinting_faults(struct numa_run *nr)
{
	const struct pc_region *r = &nr->s.r;

	if (!nr->th.counting || !nr->th.faults_pinned)
		return;
	if (!skip_promised(nr)) {
		pc_diag("%zu hinting fault(s) on the pinned range: allowed here (%s: the kernel skips pinned pages only when PTE-mapped in a private mapping)",
			nr->th.faults_pinned, r->bk->name);
		return;
	}
	if (!nr->th.faults_twin) {
		pc_diag("%zu fault(s) on the pinned range, none on the twin: counter not trusted",
			nr->th.faults_pinned);
		return;
	}
	pc_fail("%zu NUMA hinting fault(s) on the pinned range: change_prot_numa() must skip pinned pages of a private mapping, not PROT_NONE them",
		nr->th.faults_pinned);
}

/* ---- cases --------------------------------------------------------------------- */

static void setup_run(const struct pc_case *c, struct numa_run *nr)
{
	const char *why = pc_numa_two_nodes(&nr->home, &nr->away);

	if (why)
		pc_skip("%s", why);
	pc_gen_name(GEN_THREAD, "CPU write by the thread on node away");
	pc_gen_name(GEN_THREAD_ALT,
		    "CPU write by the thread on node away, next round");
	pc_gen_name(GEN_DEVICE, "device write during NUMA balancing");
	nr->held = PC_GEN_INIT;
	pc_mover_setup(c, &nr->s, nr->home, 1, "NUMA balancing");
	pc_numa_run_on(nr->away);
	enable_balancing();
}

static void numa_case(const struct pc_case *c)
{
	static struct numa_run nr;
	struct pc_counters cnt;
	int rc;

	setup_run(c, &nr);
	pc_counters_start(&cnt, counters);
	start_toucher(&nr);
	rc = run_rounds(&nr, 0);
	stop_toucher(&nr);
	pc_counters_stop(&cnt);
	pc_counters_print(&cnt, "counters");
	print_evidence(&nr);
	if (rc)
		pc_fail("%s", nr.mismatch);
	expect_twin_moved(&nr, &cnt);
	if (pc_numa_pages_on(&nr.s.r, nr.home) != nr.s.r.len / pc_page_size)
		pc_fail("NUMA balancing moved pinned pages off node %d", nr.home);
	pc_expect_pinned_pages_stayed(&nr.s.r, "NUMA balancing");
	expect_no_hinting_faults(&nr);
	pc_coherence_round(&nr.s.e, &nr.s.r, nr.held, "after NUMA balancing");
	pc_mover_teardown(&nr.s);
	pc_pass();
}

static void control_case(const struct pc_case *c)
{
	static struct numa_run nr;
	int rc;

	setup_run(c, &nr);
	start_toucher(&nr);
	rc = run_rounds(&nr, 1);
	stop_toucher(&nr);
	print_evidence(&nr);
	if (!rc)
		pc_fail("the rounds are blind: the CPU's pages were moved to node %d while the device kept the pinned ones, yet %u rounds saw no mismatch",
			nr.away, nr.rounds);
	/* A mismatch before the move is a broken round, not a detection. */
	if (nr.mismatch_round < CONTROL_MOVE_ROUND)
		pc_fail("the rounds failed before the pin-ignoring mover ran (%s): they cannot tell a loss from their own error",
			nr.mismatch);
	pc_diag("mismatch detected as it must be: %s", nr.mismatch);
	/* The pinned pages keep what round CONTROL_MOVE_ROUND - 1 left. */
	pc_expect_lost_pin_detected(&nr.s.e, &nr.s.r, nr.held_before);
	pc_mover_teardown(&nr.s);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD | PC_CAP_DEV_READ;

	/* every CPU: the toucher thread runs on the other node's CPU */
	pc_cases_race_across_cpus();

	/* the page movers pick their own few backings */
	pc_slow_engine_backings = "*";
	pc_faults_hold_sched_hooks();
	pc_add_matrix_on(numa_case, NULL, "balancing-rounds",
			 "anon thp-pmd memfd-shared", need, PC_CAP_GET_REF,
			 CASE_TIMEOUT_S);
	pc_add_matrix_on(control_case, NULL, "control-mover-ignores-pin",
			 "anon", need, PC_CAP_GET_REF, CASE_TIMEOUT_S);
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "numa_balancing", add_cases);
}
