/* SPDX-License-Identifier: GPL-2.0 */
/* NUMA: two nodes, placement of new pages and of a region's pages. */
#ifndef PINCHECK_NUMA_NODES_H
#define PINCHECK_NUMA_NODES_H

#include <stddef.h>

#include "backing.h"

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

/*
 * From add_cases: pause it once for all of the binary's cases, before the
 * first (the harness puts it back when the binary ends): for binaries
 * nearly all of whose cases pause it anyway.
 */
void pc_cases_pause_numa_balancing(void);

/* Run the calling thread on @node's CPUs only. 0 or -errno. */
int pc_numa_run_on(int node);

/* Node of each base page of [addr, addr + pages pages) (-errno if none). */
int pc_numa_page_nodes(const void *addr, size_t pages, int *nodes);

/* How many base pages of @r are on @node. */
size_t pc_numa_pages_on(const struct pc_region *r, int node);

#endif
