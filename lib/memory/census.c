// SPDX-License-Identifier: GPL-2.0
/* What happened to the pages of a region: present, swapped, moved, THP: see census.h. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "census.h"
#include "report.h"
#include "sysprobe.h"
#include "util.h"

static void census_page(struct pc_page_census *pc, const struct pc_region *r,
			size_t i, uint64_t pm, uint64_t flags)
{
	uint64_t pfn = pm & PC_PM_PFN_MASK, before;

	if (pm & PC_PM_SWAPPED)
		pc->swapped++;
	if (!(pm & PC_PM_PRESENT))
		return;
	pc->present++;
	before = r->pfn_before ? r->pfn_before[i] : 0;
	if (before && pfn && pfn != before) {
		if (!pc->moved) {
			pc->first_moved = i;
			pc->pfn_before = before;
			pc->pfn_now = pfn;
		}
		pc->moved++;
	}
	pc->thp += (flags >> PC_KPF_THP) & 1;
}

void pc_page_census(const struct pc_region *r, struct pc_page_census *pc)
{
	size_t i, n = r->len / pc_page_size;
	uint64_t *pm = pc_xmalloc(n * sizeof(*pm));
	uint64_t *pfn = pc_xmalloc(n * sizeof(*pfn));
	uint64_t *kpf = pc_xmalloc(n * sizeof(*kpf));

	memset(pc, 0, sizeof(*pc));
	pc->first_moved = -1;
	pc->pages = n;
	if (pc_pagemap_range(r->mem, n, pm))
		pc_fail("read /proc/self/pagemap: %s", strerror(errno));
	for (i = 0; i < n; i++)
		pfn[i] = pm[i] & PC_PM_PRESENT ? pm[i] & PC_PM_PFN_MASK : 0;
	pc_kpageflags_pfns(pfn, n, kpf);	/* unreadable: counted as no THP */
	for (i = 0; i < n; i++)
		census_page(pc, r, i, pm[i], kpf[i]);
	free(kpf);
	free(pfn);
	free(pm);
}

const char *pc_page_census_str(const struct pc_page_census *pc, char *buf,
			       size_t len)
{
	int n = snprintf(buf, len,
			 "%zu pages: %zu present, %zu swapped, %zu moved, %zu THP",
			 pc->pages, pc->present, pc->swapped, pc->moved,
			 pc->thp);

	if (pc->moved && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - n, " (page %ld: PFN 0x%llx -> 0x%llx)",
			 pc->first_moved,
			 (unsigned long long)pc->pfn_before,
			 (unsigned long long)pc->pfn_now);
	return buf;
}

void pc_expect_pinned_pages_stayed(const struct pc_region *r,
				   const char *event)
{
	struct pc_page_census pc;
	char desc[256];

	pc_page_census(r, &pc);
	pc_page_census_str(&pc, desc, sizeof(desc));
	if (pc.present != pc.pages)
		pc_fail("%s took pinned pages away from the mapping: %s",
			event, desc);
	if (pc.moved)
		pc_fail("%s moved a pinned page: %s", event, desc);
}
