// SPDX-License-Identifier: GPL-2.0
/* The setup of a page-mover case, and the control that ignores the pin: see mover.h. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "census.h"
#include "knob.h"
#include "mover.h"
#include "numa_nodes.h"
#include "pattern.h"
#include "report.h"
#include "scenario.h"
#include "sysprobe.h"
#include "util.h"

/* Skip unless every page of @r is on @node. */
static void expect_placed(const struct pc_region *r, int node,
			  const char *what)
{
	size_t on = pc_numa_pages_on(r, node), n = r->len / pc_page_size;

	if (on != n)
		pc_skip("could not place the %s %s region on node %d (%zu of %zu pages there)",
			what, r->bk->name, node, on, n);
}

/*
 * New pages wait in a per-CPU batch before they reach the LRU lists, and
 * a page that is not on an LRU list cannot be isolated: NUMA balancing,
 * migration and reclaim then leave it where it is.  MADV_COLD starts by
 * draining this CPU's batches, so the regions are made on one CPU and
 * that CPU's batches drained afterwards.
 */
static int stay_on_this_cpu(cpu_set_t *saved)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (cpu < 0 || sched_getaffinity(0, sizeof(*saved), saved))
		return 0;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return !sched_setaffinity(0, sizeof(one), &one);
}

static void drain_lru_batches(void)
{
	char *p = mmap(NULL, pc_page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	p[0] = 1;
	madvise(p, pc_page_size, MADV_COLD);
	munmap(p, pc_page_size);
}

void pc_mover_open(const struct pc_case *c, struct pc_mover_setup *s)
{
	memset(s, 0, sizeof(*s));
	s->r.fd = s->t.fd = -1;
	pc_gen_name(PC_GEN_INIT, "written before the mover ran");
	pc_engine_open_or_skip(&s->e, c->engine);
	pc_numa_balancing_pause();
}

void pc_mover_pin_and_snap(struct pc_mover_setup *s, const char *event)
{
	pc_pin_region_or_skip(&s->e, &s->r, PC_PIN_RW);
	pc_region_snap(&s->r, event);
	if (s->has_twin)
		pc_region_snap(&s->t, event);
}

void pc_mover_setup(const struct pc_case *c, struct pc_mover_setup *s,
		    int node, int twin, const char *event)
{
	cpu_set_t saved;
	int err, pinned_cpu;

	pc_mover_open(c, s);
	if (node >= 0 && (err = pc_numa_alloc_on(node)))
		pc_fail("set_mempolicy(MPOL_BIND, node %d): %s", node,
			strerror(-err));
	pinned_cpu = stay_on_this_cpu(&saved);
	pc_region_create_or_skip(&s->r, c->backing, PC_GEN_INIT);
	if (twin)
		pc_region_create_or_skip(&s->t, c->backing, PC_GEN_INIT);
	s->has_twin = twin;
	drain_lru_batches();
	if (pinned_cpu)
		sched_setaffinity(0, sizeof(saved), &saved);
	if (node >= 0)
		pc_numa_alloc_on(-1);
	pc_pin_region_or_skip(&s->e, &s->r, PC_PIN_RW);
	if (node >= 0) {
		expect_placed(&s->r, node, "pinned");
		if (twin)
			expect_placed(&s->t, node, "unpinned");
	}
	pc_region_snap(&s->r, event);
	if (twin)
		pc_region_snap(&s->t, event);
}

void pc_mover_teardown(struct pc_mover_setup *s)
{
	pc_engine_close(&s->e);
	pc_region_destroy(&s->r);
	if (s->has_twin)
		pc_region_destroy(&s->t);
}

void pc_move_ignoring_pin(struct pc_region *r, int node)
{
	char *fresh = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (fresh == MAP_FAILED)
		pc_fail_errno("mmap for the pin-ignoring mover");
	if (node >= 0)
		pc_numa_alloc_on(node);
	memcpy(fresh, r->mem, r->len);
	if (node >= 0)
		pc_numa_alloc_on(-1);
	if (mremap(fresh, r->len, r->len, MREMAP_MAYMOVE | MREMAP_FIXED,
		   r->mem) == MAP_FAILED)
		pc_fail_errno("mremap over the pinned range");
}

void pc_expect_lost_pin_detected(struct pc_engine *e, struct pc_region *r,
				 unsigned int held)
{
	struct pc_check chk = {
		.what = "device read after a mover that ignored the pin",
		.r = r, .len = r->len, .gen = PC_GEN_OTHER,
		.side = PC_CHECK_DEVICE, .cpu = r->mem,
	};
	struct pc_page_census pc;
	char desc[256];
	void *dev;

	pc_page_census(r, &pc);
	if (!pc.moved && pc_pfn_readable())
		pc_fail("PFN check is blind: the CPU's pages were replaced, yet no page counts as moved (%s)",
			pc_page_census_str(&pc, desc, sizeof(desc)));
	pc_region_cpu_write(r, 0, r->len, PC_GEN_OTHER);
	dev = pc_dev_read_alloc(e, 0, r->len);
	chk.dev = dev;
	chk.sample = e->sample;
	if (!pc_verify(&chk))
		pc_fail("engine is blind: the device read data written to pages it never pinned");
	chk.gen = held;
	chk.what = "device read of the pages it pinned";
	pc_verify_or_fail(&chk);
	free(dev);
	pc_diag("loss detected as it must be: the device kept the pinned pages, the CPU's moved (%s)",
		pc_page_census_str(&pc, desc, sizeof(desc)));
}
