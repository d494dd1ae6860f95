// SPDX-License-Identifier: GPL-2.0
/*
 * pin_fork: a range pinned R/W long-term, then fork() (S1, S1b, S1c).
 *
 * The promise under test: once a process pinned a page, the physical page
 * stays with the process; a fork()ed child gets the copy.  So after the
 * fork, in every write order, the parent and the device keep seeing the
 * same memory, and the child never sees what the parent or the device
 * wrote after the fork.
 *
 *   <pin|prefork-pin>-fork-<exit|exec|alive>-<parent|child|nobody>-writes
 *
 *   prefork-pin   the range went through an earlier fork + child exit
 *                 before the pin (write-protected, COW-shared history)
 *   exit/exec     the child _exit()s or execs /bin/true; the parent waits
 *   alive         the child lives on while the parent checks, then checks
 *                 that its own copy still holds the pre-fork data
 *   <w>-writes    who writes first after the fork
 *
 * Controls: "pin-only" (no fork: must always pass) and "control-remap"
 * (a fresh page is mapped over the pinned range: the device keeps the old
 * page, so the engine must report the mismatch; proves it can see a loss).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pincheck.h"

enum child_fate { CHILD_EXITS, CHILD_EXECS, CHILD_ALIVE };
enum writer { PARENT_WRITES, CHILD_WRITES, NOBODY_WRITES };

struct fork_scenario {
	char name[64];
	int prefork;
	enum child_fate fate;
	enum writer writer;
};

static const char *const fate_names[] = { "exit", "exec", "alive" };
static const char *const writer_names[] = { "parent", "child", "nobody" };

static struct fork_scenario scenarios[2 * 3 * 3];

/* The child's side of an "alive" or child-writes scenario. */
static void __attribute__((noreturn))
run_child(const struct fork_scenario *s, struct pc_child *ch,
	  struct pc_region *r)
{
	unsigned int own = r->gen;
	struct pc_check chk = {
		.what = "child's view after the parent's checks",
		.r = r, .len = r->len, .side = PC_CHECK_CHILD, .cpu = r->mem,
	};
	char token;

	if (s->writer == CHILD_WRITES) {
		pc_region_cpu_write(r, 0, r->len, PC_GEN_CHILD);
		own = PC_GEN_CHILD;
	}
	if (s->fate == CHILD_EXECS)
		pc_exec_exit0();
	if (s->fate == CHILD_EXITS)
		_exit(0);
	pc_child_tell(ch->to_parent, 'r');
	if (pc_child_await(ch->to_child, &token))
		_exit(3);
	/* A shared mapping is one page for both: the child sees it all. */
	chk.gen = (r->bk->flags & PC_BK_SHARED) ? (unsigned int)token : own;
	pc_child_verify_or_exit(ch, &chk);
	_exit(0);
}

/* Tell the live child what the shared pages hold; judge its verdict. */
static void finish_alive_child(struct pc_child *ch, unsigned int model)
{
	char summary[PC_REASON_MAX] = "", how[64];
	int status;

	status = pc_child_collect(ch, (char)model, summary, sizeof(summary));
	if (status == 0)
		return;
	if (summary[0])
		pc_fail("child isolation: %s", summary);
	pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
}

static void pin_fork_case(const struct pc_case *c)
{
	const struct fork_scenario *s = c->scenario;
	struct pc_engine e;
	struct pc_region r;
	struct pc_child ch;
	unsigned int model;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	if (s->prefork)
		pc_fork_and_reap();
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_region_snap(&r, "fork");
	model = r.gen;
	if (!pc_child_fork(&ch))
		run_child(s, &ch, &r);
	pc_child_wait_ready(&ch, s->fate == CHILD_ALIVE);
	if (s->writer == CHILD_WRITES && (r.bk->flags & PC_BK_SHARED))
		model = PC_GEN_CHILD;
	if (s->writer == PARENT_WRITES) {
		pc_region_cpu_write(&r, 0, r.len, PC_GEN_PARENT);
		model = PC_GEN_PARENT;
	}
	model = pc_coherence_round(&e, &r, model, "after fork");
	if (s->fate == CHILD_ALIVE)
		finish_alive_child(&ch, model);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* Control: no fork at all.  Must pass on every kernel. */
static void pin_only_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct pc_region r;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	pc_region_snap(&r, "the checks");
	pc_coherence_round(&e, &r, r.gen, "without fork");
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

/* Replace the pinned range by a fresh anonymous mapping. */
static void remap_fresh_page(struct pc_region *r)
{
	if (pc_map_fresh(r->mem, r->len))
		pc_fail_errno("mmap(MAP_FIXED) over the pinned range");
	pc_fill(r->mem, 0, r->len, PC_GEN_OTHER);
}

/*
 * Control: the device keeps the page it pinned, the CPU now writes a
 * different one.  An engine that reports no mismatch here cannot see a
 * lost page, and every verdict it gives elsewhere is worthless.
 */
static void control_remap_case(const struct pc_case *c)
{
	struct pc_check chk = { .what = "device read after MAP_FIXED remap",
				.off = 0, .gen = PC_GEN_OTHER,
				.side = PC_CHECK_DEVICE };
	unsigned int held;
	struct pc_engine e;
	struct pc_region r;
	void *dev;

	pc_engine_open_or_skip(&e, c->engine);
	pc_region_create_or_skip(&r, c->backing, PC_GEN_INIT);
	pc_pin_region_or_skip(&e, &r, PC_PIN_RW);
	held = r.gen;
	remap_fresh_page(&r);
	dev = pc_dev_read_alloc(&e, 0, r.len);
	chk.r = &r;
	chk.len = r.len;
	chk.dev = dev;
	chk.cpu = r.mem;
	chk.sample = e.sample;
	if (!pc_verify(&chk))
		pc_fail("engine is blind: the device read data written to a page it never pinned");
	chk.gen = held;
	chk.what = "device read of the page it pinned";
	pc_verify_or_fail(&chk);
	pc_diag("mismatch detected as it must be: the device kept the pinned page");
	free(dev);
	pc_engine_close(&e);
	pc_region_destroy(&r);
	pc_pass();
}

static void add_cases(void)
{
	unsigned int need = PC_CAP_PIN_RW | PC_CAP_HELD | PC_CAP_DEV_READ;
	size_t n = 0;
	int pre, f, w;

	pc_add_matrix(pin_only_case, NULL, "pin-only", need, PC_CAP_GET_REF);
	pc_add_matrix(control_remap_case, NULL, "control-remap", need,
		      PC_CAP_GET_REF);
	for (pre = 0; pre < 2; pre++) {
		for (f = CHILD_EXITS; f <= CHILD_ALIVE; f++) {
			for (w = PARENT_WRITES; w <= NOBODY_WRITES; w++) {
				struct fork_scenario *s = &scenarios[n++];

				s->prefork = pre;
				s->fate = f;
				s->writer = w;
				snprintf(s->name, sizeof(s->name),
					 "%spin-fork-%s-%s-writes",
					 pre ? "prefork-" : "", fate_names[f],
					 writer_names[w]);
				pc_add_matrix(pin_fork_case, s, s->name, need,
					      PC_CAP_GET_REF);
			}
		}
	}
}

int main(int argc, char **argv)
{
	return pc_main(argc, argv, "pin_fork", add_cases);
}
