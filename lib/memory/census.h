/* SPDX-License-Identifier: GPL-2.0 */
/* What happened to the pages of a region: present, swapped, moved, THP. */
#ifndef PINCHECK_CENSUS_H
#define PINCHECK_CENSUS_H

#include <stddef.h>
#include <stdint.h>

#include "backing.h"

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

#endif
