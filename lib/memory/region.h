/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A region of memory of one backing (backing.h makes them), on its own so
 * that the checks (pattern.h) can name a page's PFNs without depending on
 * the backings.
 */
#ifndef PINCHECK_REGION_H
#define PINCHECK_REGION_H

#include <stddef.h>
#include <stdint.h>

struct pc_backing;

struct pc_region {
	const struct pc_backing *bk;
	char *mem;		/* what the test uses */
	size_t len;
	unsigned int gen;	/* generation it holds after create */
	char *map;		/* whole mapping, for munmap */
	size_t map_len;
	int fd;			/* file or memfd, -1 for anonymous memory */
	char path[256];		/* file path while it has one (unlinked at destroy) */
	uint64_t *pfn_before;	/* snapshot per base page, see pc_region_snap */
	const char *snap_event;	/* "fork", "pin", ... */
};

#endif
