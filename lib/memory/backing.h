/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Backings: the kinds of memory a pinned buffer can live in.  Each one
 * allocates itself, fills itself with a pattern the way that kind of memory
 * is normally populated, and checks that it really got what it asked for
 * (pagemap, kpageflags, smaps), or gives a skip reason.
 *
 * Names are part of case ids and never change:
 *   anon, thp-pmd, thp-pte, thp-single, mthp-<N>kB, hugetlb-<N>kB,
 *   untouched, zeropage, huge-zeropage, memfd-private, memfd-shared,
 *   file-private, file-shared, swapped
 */
#ifndef PINCHECK_BACKING_H
#define PINCHECK_BACKING_H

#include <stddef.h>
#include <stdint.h>

#include "region.h"

/* pc_backing.flags */
#define PC_BK_SHARED	(1u << 0)	/* MAP_SHARED: a child shares the pages */
#define PC_BK_ZERO	(1u << 1)	/* content is zeros (gen 0), no prefill */
#define PC_BK_FILE	(1u << 2)	/* backed by a file or memfd */
#define PC_BK_HUGETLB	(1u << 3)
#define PC_BK_THP	(1u << 4)	/* a large folio (PMD or mTHP) */
#define PC_BK_ANON	(1u << 5)	/* private anonymous memory */
#define PC_BK_SWAPPED	(1u << 6)	/* pages swapped out: needs swap */

struct pc_backing {
	const char *name;		/* stable, used in case ids */
	unsigned int flags;
	size_t size;			/* folio/huge page size where it matters */
	/*
	 * Map and populate @r with generation @gen (ignored for PC_BK_ZERO),
	 * then verify the memory is of this kind.  Returns 0, or 1 with a
	 * skip reason in @why, or -1 with an error in @why.
	 */
	int (*create)(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen);
};

/* All backings this kernel offers (mTHP and hugetlb sizes from sysfs). */
size_t pc_backings(const struct pc_backing *const **list);

/* Find a backing by name, NULL if unknown here. */
const struct pc_backing *pc_backing_find(const char *name);

/*
 * The next backing named in *@names (space separated; names this build
 * does not offer are passed over), moving *@names past it; NULL at the
 * end.  for (bk = pc_backing_next(&l); bk; bk = pc_backing_next(&l))
 */
const struct pc_backing *pc_backing_next(const char **names);

/*
 * Create a region of backing @bk filled with @gen.  Returns 0, or 1 with a
 * skip reason, or -1 with an error (both in @why).
 */
int pc_region_create(struct pc_region *r, const struct pc_backing *bk,
		     unsigned int gen, char *why, size_t whylen);

/* Create or end the current case: skip on 1, fail on -1. */
void pc_region_create_or_skip(struct pc_region *r,
			      const struct pc_backing *bk, unsigned int gen);

/* CPU write of generation @gen over [off, off + len) of the region. */
void pc_region_cpu_write(struct pc_region *r, size_t off, size_t len,
			 unsigned int gen);

/*
 * Map fresh anonymous pages (private, read-write, not yet faulted) over
 * [addr, addr + len) with MAP_FIXED: the control that takes a range's
 * pages away from the process while a device may still hold them.  0 or
 * -errno (errno set).
 */
int pc_map_fresh(void *addr, size_t len);

/* Remember the PFN of every base page, labelled with the @event to come. */
void pc_region_snap(struct pc_region *r, const char *event);

/* Unmap, close, unlink. */
void pc_region_destroy(struct pc_region *r);

#endif
