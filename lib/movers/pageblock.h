/* SPDX-License-Identifier: GPL-2.0 */
/* A pageblock laid out for compaction (pageblock.c). */
#ifndef PINCHECK_PAGEBLOCK_H
#define PINCHECK_PAGEBLOCK_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "backing.h"

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

#endif
