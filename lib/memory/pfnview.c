// SPDX-License-Identifier: GPL-2.0
/* PFN views of a range, compared across fork(): see pfnview.h. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "report.h"
#include "numa_nodes.h"
#include "pfnview.h"
#include "sysprobe.h"

int pc_view_read(const void *addr, size_t pages, uint64_t *keys)
{
	int rc = pc_pagemap_range(addr, pages, keys);
	size_t i;

	if (rc)
		return rc;
	for (i = 0; i < pages; i++) {
		uint64_t pm = keys[i];

		if (pm & PC_PM_PRESENT)
			keys[i] = PC_VIEW_PRESENT | (pm & PC_PM_PFN_MASK);
		else if (pm & PC_PM_SWAPPED)
			keys[i] = PC_VIEW_SWAPPED | (pm & PC_PM_PFN_MASK);
		else
			keys[i] = 0;
	}
	return 0;
}

static int xfer(int fd, void *buf, size_t len, int out)
{
	char *p = buf;
	ssize_t n;

	while (len) {
		n = out ? write(fd, p, len) : read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int pc_view_send(int fd, const uint64_t *keys, size_t pages)
{
	return xfer(fd, (void *)keys, pages * sizeof(*keys), 1);
}

int pc_view_recv(int fd, uint64_t *keys, size_t pages)
{
	return xfer(fd, keys, pages * sizeof(*keys), 0);
}

const char *pc_view_describe(uint64_t key, char *buf, size_t len)
{
	uint64_t val = key & PC_PM_PFN_MASK;
	const char *zero;

	if (key & PC_VIEW_SWAPPED) {
		snprintf(buf, len, "swap entry %#llx", (unsigned long long)val);
	} else if (!(key & PC_VIEW_PRESENT)) {
		snprintf(buf, len, "no page");
	} else {
		zero = pc_zero_page_name(val, NULL);
		snprintf(buf, len, "pfn %#llx%s%s%s", (unsigned long long)val,
			 zero ? " (" : "", zero ? zero : "", zero ? ")" : "");
	}
	return buf;
}

void pc_view_quiet_case(void)
{
	int cpu = sched_getcpu();
	cpu_set_t one;

	if (cpu >= 0) {
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		sched_setaffinity(0, sizeof(one), &one);
	}
	pc_numa_balancing_pause();
}
