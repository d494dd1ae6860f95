/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the tests of the kernel's page movers (NUMA balancing,
 * migration, compaction, reclaim, KSM, THP collapse and split): what a
 * mover did to a region (PFNs, nodes, swap, KSM), the counters that prove
 * it ran, faults taken on a range, NUMA placement, a memory cgroup, and a
 * mover that ignores pins (the control every such test needs).
 */
#ifndef PINCHECK_MM_H
#define PINCHECK_MM_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "backing.h"
#include "clock.h"
#include "engine.h"
#include "report.h"

/* ---- counters that prove a mover ran ------------------------------------ */

#define PC_COUNTERS_MAX 12

/*
 * Named counters read before and after an event.  A name is a
 * /proc/vmstat field ("numa_hint_faults"), an absolute path holding a
 * number ("/sys/kernel/mm/ksm/full_scans"), or "sched:<field>" of
 * /proc/self/sched ("sched:mm->numa_scan_seq").  Absent ones read -1.
 */
struct pc_counters {
	size_t n;
	const char *name[PC_COUNTERS_MAX];
	long long before[PC_COUNTERS_MAX];
	long long after[PC_COUNTERS_MAX];
};

/* @names ends with NULL. */
void pc_counters_start(struct pc_counters *c, const char *const *names);
void pc_counters_stop(struct pc_counters *c);
long long pc_counter_read(const char *name);
/* after - before of @name, or -1 when it could not be read. */
long long pc_counters_delta(const struct pc_counters *c, const char *name);
/* "# counters: numa_hint_faults 10 -> 42 (+32), ..." */
void pc_counters_print(const struct pc_counters *c, const char *label);

/* ---- what happened to the pages of a region ----------------------------- */

struct pc_page_census {
	size_t pages;		/* base pages looked at */
	size_t present;
	size_t swapped;		/* swap entries in pagemap */
	size_t moved;		/* present with a PFN other than the snapshot's */
	size_t thp;		/* KPF_THP */
	long first_moved;	/* page index, -1 if none */
	uint64_t pfn_before;	/* of first_moved */
	uint64_t pfn_now;
};

/* Look at every base page of @r against its pc_region_snap() snapshot. */
void pc_page_census(const struct pc_region *r, struct pc_page_census *pc);

/* "4 pages: 4 present, 0 swapped, 0 moved, 0 THP" into @buf. */
const char *pc_page_census_str(const struct pc_page_census *pc, char *buf,
			       size_t len);

/* Fail the case when a page of pinned @r moved (PFN) or left memory. */
void pc_expect_pinned_pages_stayed(const struct pc_region *r,
				   const char *event);

/* ---- faults taken on a range (perf software events) ---------------------- */

/*
 * Counts the page faults the calling thread takes, by address: a NUMA
 * hinting fault, a write to a write-protected PTE, a refault after an
 * unmap.  Opened and read by the same thread.
 */
struct pc_faults {
	int fd;
	void *ring;
	size_t ring_len;
	uint64_t *addr;		/* fault addresses seen so far */
	size_t n, cap;
	uint64_t lost;		/* samples the kernel dropped */
	char why[160];		/* why it cannot count, when fd < 0 */
};

/* 0, or -1 with f->why (and the counter unusable). */
int pc_faults_open(struct pc_faults *f);
/* Faults seen in [addr, addr + len) since open. */
size_t pc_faults_in(struct pc_faults *f, const void *addr, size_t len);
void pc_faults_close(struct pc_faults *f);
/*
 * Called once by the test process before its cases: hold a perf event for
 * the process's life, so that the cases' counters never switch the
 * kernel's perf scheduling hooks on and off (code patching that QEMU's TCG
 * has been seen to run half-done).  Best effort.
 */
void pc_faults_hold_sched_hooks(void);

/* ---- NUMA --------------------------------------------------------------- */

/*
 * NULL when this machine has two NUMA nodes with memory and CPUs (set
 * *home and *away), else the skip reason ("needs 2 NUMA nodes ...").
 */
const char *pc_numa_two_nodes(int *home, int *away);

/* Allocate the calling thread's new pages on @node; -1 back to default. */
int pc_numa_alloc_on(int node);

/*
 * Pause automatic NUMA balancing for the case (the harness puts the knob
 * back): it is a mover of its own, and its hinting faults would pass for
 * the faults a case counts as evidence.  Fails the case if it cannot.
 */
void pc_numa_balancing_pause(void);

/* Run the calling thread on @node's CPUs only. 0 or -errno. */
int pc_numa_run_on(int node);

/* Node of each base page of [addr, addr + pages pages) (-errno if none). */
int pc_numa_page_nodes(const void *addr, size_t pages, int *nodes);

/* How many base pages of @r are on @node. */
size_t pc_numa_pages_on(const struct pc_region *r, int node);

/* ---- the setup of a mover case --------------------------------------------- */

struct pc_mover_setup {
	struct pc_engine e;
	struct pc_region r;	/* pinned R/W by e */
	struct pc_region t;	/* its unpinned twin (same backing, same data) */
	int has_twin;
};

/*
 * Open the case's engine, create a region of the case's backing and (with
 * @twin) an unpinned twin of it, both holding PC_GEN_INIT and allocated on
 * NUMA node @node (-1: anywhere), pin the region R/W and snap the PFNs of
 * both for @event.  Skips when a page did not land on @node.  Automatic
 * NUMA balancing is paused for the case (the harness restores it).
 */
void pc_mover_setup(const struct pc_case *c, struct pc_mover_setup *s,
		    int node, int twin, const char *event);
void pc_mover_teardown(struct pc_mover_setup *s);

/*
 * The same in two steps, for a case that makes its regions itself (into
 * s->r and s->t, setting s->has_twin): open the engine and pause NUMA
 * balancing; then pin s->r R/W and snap the PFNs of both.
 */
void pc_mover_open(const struct pc_case *c, struct pc_mover_setup *s);
void pc_mover_pin_and_snap(struct pc_mover_setup *s, const char *event);

/* ---- controls ----------------------------------------------------------- */

/*
 * Play a page mover that ignores the pin: copy the CPU's view of @r to
 * fresh pages (on NUMA node @node, -1: anywhere) and map them at the same
 * address.  The device keeps the pinned pages.  The same checks as after
 * a real mover must now fail.
 */
void pc_move_ignoring_pin(struct pc_region *r, int node);

/*
 * After pc_move_ignoring_pin(): a CPU write must not reach the device,
 * which keeps seeing @held; the check must report it, and the PFN check
 * must see the pages moved.  Fails the case when a check stays blind.
 */
void pc_expect_lost_pin_detected(struct pc_engine *e, struct pc_region *r,
				 unsigned int held);

/* ---- a pageblock laid out for compaction (pageblock.c) --------------- */

/*
 * Compaction cannot be aimed at a page from user space: its migrate
 * scanner walks a zone upwards, its free scanner downwards, and it stops
 * where they meet.  pc_pageblock_prepare() makes it reach one pageblock,
 * "home": the lowest of a few fresh THPs (on NUMA node @node, -1: any),
 * split into base pages, with free room made above it (split THPs of which
 * only the last folio stays: partly used pageblocks, where the free
 * scanner takes its targets; vm.percpu_pagelist_high_fraction is set for
 * the case so that freed pages reach them) for every movable page below
 * it in its zone (counted in /proc/kpageflags) and half as many again.  Home's pages are
 * then freed from the top down: the next base pages this thread allocates
 * are home's, lowest first.  Create the pinned region and then its twin
 * at once, then call pc_pageblock_placed().  0, or 1 with a skip reason
 * (-1: error), in @why.
 */
struct pc_pageblock {
	int node;
	uint64_t pfn;		/* home's first PFN */
	size_t pages;		/* base pages in a pageblock (a PMD) */
	char zone[16];
	uint64_t zone_start, zone_end;
	size_t movable_below;	/* LRU pages in [zone_start, pfn) */
	size_t room;		/* free pages in the room blocks above home */
	size_t room_blocks;
	char *home;
	char **kept;		/* each room block's last folio */
	size_t nkept;
	cpu_set_t saved;
	int on_one_cpu;
};

int pc_pageblock_prepare(struct pc_pageblock *b, int node, char *why,
			 size_t len);
/* The regions are made: back to every CPU and the default policy. */
void pc_pageblock_placed(struct pc_pageblock *b);
/*
 * 0 when every page of @low and of @high is in home and @high lies above
 * @low, with the layout described in @why; else 1 with the reason.
 */
int pc_pageblock_holds(const struct pc_pageblock *b,
		       const struct pc_region *low, const struct pc_region *high,
		       char *why, size_t len);
/* Unmap the room. */
void pc_pageblock_release(struct pc_pageblock *b);

/* ---- memory cgroup ------------------------------------------------------ */

struct pc_memcg {
	char dir[700];		/* the cgroup directory */
	int v2;			/* cgroup v2 (memory.max) or v1 */
};

/*
 * Make a child memory cgroup of this process's one and move the process
 * into it (removed by the harness when the case ends).  0, or 1 with a
 * skip reason, or -1 with an error, in @why.
 */
int pc_memcg_enter(struct pc_memcg *m, char *why, size_t len);
/* The cgroup's memory limit in bytes (< 0: no limit); 0 or -errno. */
int pc_memcg_set_max(struct pc_memcg *m, long long bytes);
long long pc_memcg_current(struct pc_memcg *m);

#endif
