// SPDX-License-Identifier: GPL-2.0
/* Evidence that a case's event happened: see evidence.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "evidence.h"
#include "report.h"
#include "faults.h"
#include "sysprobe.h"

int pc_soft_dirty_clear(void)
{
	return pc_write_str("/proc/self/clear_refs", "4");
}

static int soft_dirty(const volatile char *p)
{
	return !!(pc_pagemap((const void *)p) & PC_PM_SOFTDIRTY);
}

const char *pc_soft_dirty_probe(void)
{
	static char why[256];
	volatile char *p = mmap(NULL, pc_page_size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fresh, cleared, again, rc;

	if (p == MAP_FAILED) {
		snprintf(why, sizeof(why), "mmap of a probe page: %s",
			 strerror(errno));
		return why;
	}
	p[0] = 1;
	fresh = soft_dirty(p);
	rc = pc_soft_dirty_clear();
	cleared = soft_dirty(p);
	p[0] = 2;
	again = soft_dirty(p);
	munmap((void *)p, pc_page_size);
	if (rc)
		snprintf(why, sizeof(why), "cannot clear soft-dirty bits: writing 4 to /proc/self/clear_refs: %s",
			 strerror(-rc));
	else if (!fresh || cleared || !again)
		snprintf(why, sizeof(why), "kernel lacks CONFIG_MEM_SOFT_DIRTY: a probe page's pagemap soft-dirty bit (55) read %d after a write, %d after clear_refs 4, %d after the next write (want 1, 0, 1)",
			 fresh, cleared, again);
	else
		return NULL;
	return why;
}

size_t pc_soft_dirty_pages(const void *addr, size_t len)
{
	size_t i, pages = (len + pc_page_size - 1) / pc_page_size, n = 0;
	uint64_t *pm = pc_pagemap_alloc(addr, pages, 0);

	for (i = 0; i < pages; i++)
		n += !!(pm[i] & PC_PM_SOFTDIRTY);
	free(pm);
	return n;
}

long pc_cpu_write_counting_faults(struct pc_region *r, unsigned int gen,
				  char *why, size_t len)
{
	struct pc_faults f;
	long n;

	if (pc_faults_open(&f)) {
		snprintf(why, len, "%s", f.why);
		pc_region_cpu_write(r, 0, r->len, gen);
		return -1;
	}
	pc_region_cpu_write(r, 0, r->len, gen);
	n = (long)pc_faults_in(&f, r->mem, r->len);
	if (f.lost) {
		snprintf(why, len, "perf lost %llu fault samples",
			 (unsigned long long)f.lost);
		n = n ? n : -1;
	}
	pc_faults_close(&f);
	return n;
}
