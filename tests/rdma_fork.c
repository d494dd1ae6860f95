// SPDX-License-Identifier: GPL-2.0
/*
 * rdma_fork: RDMA memory regions across fork(), with and without the fork
 * protection of libibverbs (S1, S1b, S1c; S2 as libibverbs applies it).
 *
 * The Sep-2020 regression was found by RDMA tests: an MR registered
 * without MADV_DONTFORK, a fork, a parent write, and the device's writes
 * went to the child's page.  rdma-core's answer is ibv_fork_init() (or
 * RDMAV_FORK_SAFE=1): MADV_DONTFORK on every registration.  Since the
 * kernel copies pinned pages at fork, ibv_is_fork_initialized() says
 * IBV_FORK_UNNEEDED, and a program that skips ibv_fork_init() relies on
 * that copy.  Both promises are checked against what the kernel does.
 *
 *   <mode>-<sequence>/<backing>/rdma
 *
 *   mode       plain          no fork protection from the library
 *              fork-init      ibv_fork_init() before any other verb
 *              fork-safe-env  RDMAV_FORK_SAFE=1 when libibverbs starts
 *   sequence   exit-parent-writes          S1: the child _exit()s, the
 *                                          parent waits, then writes
 *              exec-parent-writes          S1: the child execs /bin/true
 *              alive-parent-writes         S1b: the child lives on and
 *                                          keeps its pre-fork data
 *              alive-child-writes          S1c: the child writes first
 *              prefork-exit-parent-writes  the MR is registered after an
 *                                          earlier fork + exit
 *
 * With MADV_DONTFORK on the MR range (VmFlags "dc"), a live child must
 * fault on its first access.  Backings: anon, thp-pmd, thp-pte and every
 * hugetlb size.  On one anon page each:
 *
 *   fork-status           ibv_is_fork_initialized() before and after
 *                         ibv_fork_init(), and whether MRs then really
 *                         are MADV_DONTFORK
 *   fork-init-after-mr    ibv_fork_init() once an MR exists: EINVAL, as
 *                         documented (or 0 where the library skips fork
 *                         protection because the kernel copies; then the
 *                         fork must be coherent)
 *
 * Control (every backing): control-remap-after-fork.  After the fork the
 * parent maps a fresh page over the MR range (MAP_FIXED) and writes it:
 * the device must keep the pinned page, so the engine must report the
 * lost write.  An engine that cannot see this cannot see anything.
 *
 * Every case is a fresh program as far as libibverbs goes: its cases are
 * registered without an engine, so the harness never initializes the
 * library in the parent (RDMAV_FORK_SAFE is read once, at that moment).
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

#ifdef HAVE_LIBIBVERBS
#include <infiniband/verbs.h>

static int lib_fork_init(void)
{
	return ibv_fork_init();
}

static int lib_fork_status(void)
{
	return ibv_is_fork_initialized();
}

static const char *fork_status_name(int st)
{
	switch (st) {
	case IBV_FORK_DISABLED:
		return "IBV_FORK_DISABLED";
	case IBV_FORK_ENABLED:
		return "IBV_FORK_ENABLED";
	case IBV_FORK_UNNEEDED:
		return "IBV_FORK_UNNEEDED";
	}
	return "unknown";
}

#define FORK_DISABLED IBV_FORK_DISABLED
#define FORK_ENABLED IBV_FORK_ENABLED
#define FORK_UNNEEDED IBV_FORK_UNNEEDED

#else /* the engine's probe skips every case before these are used */

static int lib_fork_init(void)
{
	return ENOSYS;
}

static int lib_fork_status(void)
{
	return -1;
}

static const char *fork_status_name(int st)
{
	(void)st;
	return "unknown (built without libibverbs)";
}

#define FORK_DISABLED 0
#define FORK_ENABLED 1
#define FORK_UNNEEDED 2

#endif

enum fork_mode { MODE_PLAIN, MODE_FORK_INIT, MODE_ENV };
enum sequence { SEQ_EXIT, SEQ_EXEC, SEQ_ALIVE, SEQ_CHILD_WRITES, SEQ_PREFORK };

static const char *const mode_names[] = { "plain", "fork-init",
					  "fork-safe-env" };
static const char *const seq_names[] = {
	"exit-parent-writes", "exec-parent-writes", "alive-parent-writes",
	"alive-child-writes", "prefork-exit-parent-writes",
};

struct rf_scenario {
	char name[64];
	enum fork_mode mode;
	enum sequence seq;
};

static struct rf_scenario scenarios[3 * 5];

/* What the case knows about fork protection, named in every failure. */
struct fork_facts {
	int status;		/* ibv_is_fork_initialized() */
	int dontfork;		/* VM_DONTCOPY on the MR range: 1, 0, -1 */
	char text[240];
};

/* ---- library and mapping state ---------------------------------------- */

/* Does the VMA holding @addr carry VM_DONTCOPY ("dc" in VmFlags)? */
static int vma_dontcopy(const void *addr)
{
	unsigned long start, end, a = (unsigned long)addr;
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	int in = 0, ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = a >= start && a < end;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			ret = strstr(line, " dc") != NULL;
			break;
		}
	}
	fclose(f);
	return ret;
}

/* Before any verb: the environment and ibv_fork_init() of @mode. */
static void set_up_library(enum fork_mode mode)
{
	int rc;

	unsetenv("IBV_FORK_SAFE");
	if (mode == MODE_ENV)
		setenv("RDMAV_FORK_SAFE", "1", 1);
	else
		unsetenv("RDMAV_FORK_SAFE");
	if (mode != MODE_FORK_INIT)
		return;
	rc = lib_fork_init();
	if (rc && pc_engine_rdma.probe())
		pc_skip("%s", pc_engine_rdma.probe());
	if (rc)
		pc_fail("ibv_fork_init() before any other verb: %s",
			strerror(rc));
}

static void describe_facts(struct fork_facts *f)
{
	const char *meaning = "";

	if (f->status == FORK_UNNEEDED)
		meaning = " (the kernel copies DMA-pinned pages at fork)";
	else if (f->status == FORK_DISABLED)
		meaning = " (no fork protection: ibv_fork_init() needed)";
	snprintf(f->text, sizeof(f->text),
		 "libibverbs says %s%s and the MR range is %sMADV_DONTFORK",
		 fork_status_name(f->status), meaning,
		 f->dontfork == 1 ? "" : f->dontfork ? "maybe " : "not ");
}

static void gather_facts(struct fork_facts *f, struct pc_region *r)
{
	f->status = lib_fork_status();
	f->dontfork = vma_dontcopy(r->mem);
	describe_facts(f);
}

/* What ibv_is_fork_initialized() claims must match the MR's mapping. */
static void check_library(enum fork_mode mode, const struct fork_facts *f)
{
	if (f->dontfork < 0)
		pc_fail("cannot read VmFlags of the MR range in /proc/self/smaps");
	if (mode == MODE_PLAIN) {
		if (f->status == FORK_ENABLED || f->dontfork)
			pc_fail("fork protection without ibv_fork_init(): %s",
				f->text);
		return;
	}
	if (f->status == FORK_DISABLED)
		pc_fail("%s succeeded, yet %s", mode_names[mode], f->text);
	if (f->status == FORK_ENABLED && !f->dontfork)
		pc_fail("%s: IBV_FORK_ENABLED, yet the MR range is not MADV_DONTFORK (VmFlags without dc)",
			mode_names[mode]);
}

/* ---- checks that name the facts --------------------------------------- */

static void verify_or_fail_with(const struct pc_check *chk,
				const struct fork_facts *f)
{
	if (pc_verify(chk))
		pc_fail("%s, yet %s", f->text, pc_mismatch_summary());
}

static void expect_device(struct pc_engine *e, struct pc_region *r,
			  unsigned int gen, const char *what,
			  const struct fork_facts *f)
{
	void *dev = pc_dev_read_alloc(e, 0, r->len);
	struct pc_check chk = {
		.what = what, .r = r, .len = r->len, .gen = gen,
		.side = PC_CHECK_DEVICE, .dev = dev, .cpu = r->mem,
	};

	verify_or_fail_with(&chk, f);
	free(dev);
}

static void expect_cpu(struct pc_region *r, unsigned int gen,
		       const char *what, const struct fork_facts *f)
{
	struct pc_check chk = {
		.what = what, .r = r, .len = r->len, .gen = gen,
		.side = PC_CHECK_CPU, .cpu = r->mem,
	};

	verify_or_fail_with(&chk, f);
}

/* pc_coherence_round(), with the library's facts in every failure. */
static unsigned int coherence_round(struct pc_engine *e, struct pc_region *r,
				    unsigned int model,
				    const struct fork_facts *f)
{
	expect_device(e, r, model, "device read after fork", f);
	pc_dev_write_gen(e, 0, r->len, PC_GEN_DEVICE);
	expect_cpu(r, PC_GEN_DEVICE, "CPU read of a device write after fork",
		   f);
	pc_region_cpu_write(r, 0, r->len, PC_GEN_CPU_LATE);
	expect_device(e, r, PC_GEN_CPU_LATE,
		      "device read of a CPU write after fork", f);
	return PC_GEN_CPU_LATE;
}

/* ---- the child -------------------------------------------------------- */

static int is_alive_seq(enum sequence seq)
{
	return seq == SEQ_ALIVE || seq == SEQ_CHILD_WRITES;
}

/* Never touches a verbs object: memory, pipes, _exit. */
static void __attribute__((noreturn))
run_child(const struct rf_scenario *s, struct pc_child *ch,
	  struct pc_region *r, int dontfork)
{
	struct pc_check chk = {
		.what = "child's view after the parent's checks", .r = r,
		.len = r->len, .gen = r->gen, .side = PC_CHECK_CHILD,
		.cpu = r->mem,
	};

	if (s->seq == SEQ_EXEC)
		pc_exec_exit0();
	if (!is_alive_seq(s->seq))
		_exit(0);
	if (s->seq == SEQ_CHILD_WRITES) {
		pc_region_cpu_write(r, 0, r->len, PC_GEN_CHILD);
		chk.gen = PC_GEN_CHILD;
	} else if (dontfork) {
		(void)*(volatile char *)r->mem;	/* must fault */
	}
	pc_child_tell(ch->to_parent, 'r');
	if (pc_child_await(ch->to_child, NULL))
		_exit(3);
	pc_child_verify_or_exit(ch, &chk);
	_exit(0);
}

/* A child of a MADV_DONTFORK range must die on its first access. */
static void expect_child_fault(struct pc_child *ch)
{
	char how[64];
	int status;

	if (!pc_child_await(ch->to_parent, NULL)) {
		pc_child_kill(ch);
		pc_fail("the child still has the MR range mapped although it is MADV_DONTFORK");
	}
	status = pc_child_reap(ch);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
		pc_fail("child of a MADV_DONTFORK MR range: %s, expected SIGSEGV on its first access",
			pc_wait_describe(status, how, sizeof(how)));
}

/* Wait until the child is where the parent goes on. */
static void wait_child(const struct rf_scenario *s, struct pc_child *ch,
		       int dontfork)
{
	if (is_alive_seq(s->seq) && dontfork)
		expect_child_fault(ch);
	else
		pc_child_wait_ready(ch, is_alive_seq(s->seq));
}

static void finish_live_child(struct pc_child *ch)
{
	char summary[PC_REASON_MAX] = "", how[64];
	int status;

	status = pc_child_collect(ch, 'c', summary, sizeof(summary));
	if (summary[0])
		pc_fail("child isolation: %s", summary);
	if (status != 0)
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
}

/* ---- cases ------------------------------------------------------------ */

static void open_and_pin(struct pc_engine *e, struct pc_region *r,
			 const struct pc_backing *bk)
{
	pc_engine_open_or_skip(e, &pc_engine_rdma);
	pc_region_create_or_skip(r, bk, PC_GEN_INIT);
}

static void rdma_fork_case(const struct pc_case *c)
{
	const struct rf_scenario *s = c->scenario;
	struct fork_facts f;
	struct pc_engine e;
	struct pc_region r;
	struct pc_child ch;
	unsigned int model;

	set_up_library(s->mode);
	open_and_pin(&e, &r, c->backing);
	if (s->seq == SEQ_PREFORK)
		pc_fork_and_reap();
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	gather_facts(&f, &r);
	check_library(s->mode, &f);
	pc_region_snap(&r, "fork");
	model = r.gen;
	if (!pc_child_fork(&ch))
		run_child(s, &ch, &r, f.dontfork);
	wait_child(s, &ch, f.dontfork);
	if (s->seq != SEQ_CHILD_WRITES) {
		pc_region_cpu_write(&r, 0, r.len, PC_GEN_PARENT);
		model = PC_GEN_PARENT;
	}
	coherence_round(&e, &r, model, &f);
	if (is_alive_seq(s->seq) && !f.dontfork)
		finish_live_child(&ch);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ibv_is_fork_initialized() around ibv_fork_init(), and what it means. */
static void fork_status_case(const struct pc_case *c)
{
	struct fork_facts f;
	struct pc_engine e;
	struct pc_region r;
	int before, rc;

	set_up_library(MODE_PLAIN);
	before = lib_fork_status();
	rc = lib_fork_init();
	open_and_pin(&e, &r, c->backing);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	gather_facts(&f, &r);
	pc_diag("ibv_is_fork_initialized(): %s before ibv_fork_init(), %s after it (returned %d: %s)",
		fork_status_name(before), fork_status_name(f.status), rc,
		rc ? strerror(rc) : "ok");
	pc_diag("MR registered after ibv_fork_init(): %s", f.text);
	if (before == FORK_ENABLED)
		pc_fail("ibv_is_fork_initialized() says IBV_FORK_ENABLED before ibv_fork_init()");
	if (rc)
		pc_fail("ibv_fork_init() before any MR: %s", strerror(rc));
	check_library(MODE_FORK_INIT, &f);
	if (f.status == FORK_UNNEEDED)
		pc_diag("%s", f.dontfork ?
			"the library protects MRs although it says the kernel copies: IBV_FORK_UNNEEDED does not tell whether MRs are MADV_DONTFORK" :
			"the library relies on the kernel's copy at fork: ibv_fork_init() left the MR forkable");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* S1 on the MR in place: fork, child exits, parent writes, round. */
static void fork_exit_round(struct pc_engine *e, struct pc_region *r,
			    const struct fork_facts *f)
{
	char how[64];
	int status;
	struct pc_child ch;

	pc_region_snap(r, "fork");
	if (!pc_child_fork(&ch))
		_exit(0);
	status = pc_child_reap(&ch);
	if (status != 0)
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
	pc_region_cpu_write(r, 0, r->len, PC_GEN_PARENT);
	coherence_round(e, r, PC_GEN_PARENT, f);
}

/* The man page: EINVAL when MRs were registered before ibv_fork_init(). */
static void fork_init_after_mr_case(const struct pc_case *c)
{
	struct fork_facts f;
	struct pc_engine e;
	struct pc_region r;
	int rc;

	set_up_library(MODE_PLAIN);
	open_and_pin(&e, &r, c->backing);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	rc = lib_fork_init();
	gather_facts(&f, &r);
	if (rc == EINVAL) {
		pc_diag("ibv_fork_init() after an MR: EINVAL, as documented; %s",
			f.text);
	} else if (!rc && f.status == FORK_UNNEEDED && !f.dontfork) {
		pc_diag("ibv_fork_init() after an MR: 0, the library relies on the kernel's copy at fork (%s)",
			f.text);
	} else {
		pc_fail("ibv_fork_init() after an MR returned %d (%s), expected EINVAL: %s",
			rc, rc ? strerror(rc) : "ok", f.text);
	}
	/* Either way nothing protects this MR: the kernel's copy must. */
	fork_exit_round(&e, &r, &f);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* Replace the MR range by a fresh page and write it: a lost write. */
static void remap_and_write(struct pc_region *r)
{
	if (pc_map_fresh(r->mem, r->len))
		pc_fail_errno("mmap(MAP_FIXED) over the MR range");
	pc_region_cpu_write(r, 0, r->len, PC_GEN_OTHER);
}

/* The device must still see the pinned page, not the CPU's new one. */
static void expect_lost_write_seen(struct pc_engine *e, struct pc_region *r,
				   unsigned int held)
{
	void *dev = pc_dev_read_alloc(e, 0, r->len);
	struct pc_check chk = {
		.what = "device read after the parent remapped the MR range",
		.r = r, .len = r->len, .gen = PC_GEN_OTHER,
		.side = PC_CHECK_DEVICE, .dev = dev, .cpu = r->mem,
	};

	if (!pc_verify(&chk))
		pc_fail("engine is blind: the device read a write to a page it never registered");
	chk.what = "device read of the page it registered";
	chk.gen = held;
	pc_verify_or_fail(&chk);
	free(dev);
}

/* Control: a lost write must be reported (proves the engine's power). */
static void control_remap_case(const struct pc_case *c)
{
	struct pc_check chk = {
		.what = "CPU read after a device write to the remapped range",
		.gen = PC_GEN_DEVICE, .side = PC_CHECK_CPU,
	};
	struct pc_engine e;
	struct pc_region r;
	struct pc_child ch;

	set_up_library(MODE_PLAIN);
	open_and_pin(&e, &r, c->backing);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_region_snap(&r, "fork and remap");
	if (!pc_child_fork(&ch))
		_exit(0);
	if (pc_child_reap(&ch) != 0)
		pc_fail("child did not exit 0");
	remap_and_write(&r);
	expect_lost_write_seen(&e, &r, r.gen);
	pc_dev_write_gen(&e, 0, r.len, PC_GEN_DEVICE);
	chk.r = &r;
	chk.len = r.len;
	chk.cpu = r.mem;
	if (!pc_verify(&chk))
		pc_fail("engine is blind: its write reached a page it never registered");
	pc_diag("lost writes detected both ways, as they must be: the MR kept the pinned page");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* ---- the case list ---------------------------------------------------- */

static int is_rdma_fork_backing(const struct pc_backing *bk)
{
	return !strcmp(bk->name, "anon") || !strcmp(bk->name, "thp-pmd") ||
	       !strcmp(bk->name, "thp-pte") || (bk->flags & PC_BK_HUGETLB);
}

/* No engine in the case: the harness must not prepare libibverbs. */
static void add_rdma_case(pc_case_fn fn, const void *s, const char *name,
			  const struct pc_backing *bk)
{
	pc_add_case(fn, s, bk, NULL, "%s/%s/%s/%s", pc_binary(), name,
		    bk->name, pc_engine_rdma.name);
}

static void init_scenarios(void)
{
	size_t n = 0;
	int m, q;

	for (m = MODE_PLAIN; m <= MODE_ENV; m++) {
		for (q = SEQ_EXIT; q <= SEQ_PREFORK; q++) {
			struct rf_scenario *s = &scenarios[n++];

			s->mode = m;
			s->seq = q;
			snprintf(s->name, sizeof(s->name), "%s-%s",
				 mode_names[m], seq_names[q]);
		}
	}
}

static void add_cases(void)
{
	const struct pc_backing *const *bks;
	const struct pc_backing *anon = pc_backing_find("anon");
	size_t nb = pc_backings(&bks), b, i;

	init_scenarios();
	pc_gen_name(PC_GEN_OTHER, "parent write to the fresh page over the MR range");
	add_rdma_case(fork_status_case, NULL, "fork-status", anon);
	add_rdma_case(fork_init_after_mr_case, NULL, "fork-init-after-mr",
		      anon);
	for (b = 0; b < nb; b++) {
		if (!is_rdma_fork_backing(bks[b]))
			continue;
		add_rdma_case(control_remap_case, NULL,
			      "control-remap-after-fork", bks[b]);
		for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
			add_rdma_case(rdma_fork_case, &scenarios[i],
				      scenarios[i].name, bks[b]);
	}
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "rdma_fork", add_cases);
}
