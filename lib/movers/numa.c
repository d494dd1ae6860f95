// SPDX-License-Identifier: GPL-2.0
/* NUMA: two nodes, placement of new pages and of a region's pages: see numa_nodes.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBNUMA
#include <numa.h>
#include <numaif.h>
#endif

#include "knob.h"
#include "clock.h"
#include "harness.h"
#include "numa_nodes.h"
#include "report.h"
#include "sysprobe.h"
#include "util.h"

/* Nodes listed in sysfs (works without libnuma). */
static int sysfs_node_count(void)
{
	DIR *d = opendir("/sys/devices/system/node");
	struct dirent *de;
	int n = 0, id;
	char tail;

	if (!d)
		return 1;
	while ((de = readdir(d)))
		n += sscanf(de->d_name, "node%d%c", &id, &tail) == 1;
	closedir(d);
	return n ? n : 1;
}

#ifdef HAVE_LIBNUMA

/* A node with memory and at least one CPU. */
static int node_usable(int node)
{
	struct bitmask *cpus = numa_allocate_cpumask();
	int ok = numa_node_size64(node, NULL) > 0 &&
		 !numa_node_to_cpus(node, cpus) &&
		 numa_bitmask_weight(cpus) > 0;

	numa_free_cpumask(cpus);
	return ok;
}

const char *pc_numa_two_nodes(int *home, int *away)
{
	static char why[256];
	int n = sysfs_node_count(), node, found = 0;

	if (n < 2 || numa_available() < 0) {
		snprintf(why, sizeof(why),
			 "needs 2 NUMA nodes (this machine has %d): run it in the two-node guest, ./run_tests.sh --kernel debian:6.12",
			 n);
		return why;
	}
	for (node = 0; node <= numa_max_node() && found < 2; node++) {
		if (!node_usable(node))
			continue;
		if (!found++)
			*home = node;
		else
			*away = node;
	}
	if (found < 2) {
		snprintf(why, sizeof(why),
			 "needs 2 NUMA nodes with memory and CPUs (%d node(s) here, %d usable)",
			 n, found);
		return why;
	}
	return NULL;
}

int pc_numa_alloc_on(int node)
{
	unsigned long mask[16] = { 0 };

	if (node < 0)
		return set_mempolicy(MPOL_DEFAULT, NULL, 0) ? -errno : 0;
	if (node >= (int)(8 * sizeof(mask)))
		return -EINVAL;
	mask[node / (8 * sizeof(long))] |= 1UL << (node % (8 * sizeof(long)));
	return set_mempolicy(MPOL_BIND, mask, 8 * sizeof(mask)) ? -errno : 0;
}

int pc_numa_run_on(int node)
{
	return numa_run_on_node(node) ? -errno : 0;
}

int pc_numa_page_nodes(const void *addr, size_t pages, int *nodes)
{
	void **v = pc_xmalloc(pages * sizeof(*v));
	size_t i;
	long rc;

	for (i = 0; i < pages; i++) {
		v[i] = (char *)addr + i * pc_page_size;
		nodes[i] = -EFAULT;
	}
	rc = move_pages(0, pages, v, NULL, nodes, 0);
	free(v);
	return rc < 0 ? -errno : 0;
}

#else /* !HAVE_LIBNUMA */

const char *pc_numa_two_nodes(int *home, int *away)
{
	static char why[256];
	int n = sysfs_node_count();

	(void)home;
	(void)away;
	if (n < 2)
		snprintf(why, sizeof(why),
			 "needs 2 NUMA nodes (this machine has %d): run it in the two-node guest, ./run_tests.sh --kernel debian:6.12",
			 n);
	else
		snprintf(why, sizeof(why),
			 "built without libnuma: apt-get install libnuma-dev, then make");
	return why;
}

int pc_numa_alloc_on(int node)
{
	(void)node;
	return -ENOSYS;
}

int pc_numa_run_on(int node)
{
	(void)node;
	return -ENOSYS;
}

int pc_numa_page_nodes(const void *addr, size_t pages, int *nodes)
{
	size_t i;

	(void)addr;
	for (i = 0; i < pages; i++)
		nodes[i] = -ENOSYS;
	return -ENOSYS;
}

#endif /* HAVE_LIBNUMA */

/* How many of @n pages are on @node; -1 if any page has no node now. */
static long count_pages_on(const int *nodes, size_t n, int node)
{
	size_t i, on = 0;

	for (i = 0; i < n; i++) {
		if (nodes[i] < 0)
			return -1;
		on += nodes[i] == node;
	}
	return on;
}

/*
 * Read one byte of each page that has no node, through the kernel's GUP
 * (process_vm_readv on ourselves: a real PROT_NONE mapping gives EFAULT
 * instead of a SIGSEGV).  On 6.1 move_pages() reported pages that NUMA
 * balancing had made PROT_NONE as absent (-ENOENT, for good: a twin moved
 * 24 rounds before, a pinned PMD); the read takes the hinting fault, as
 * the program's next access would, and the page has its node again.
 */
static void touch_pages_without_node(const char *addr, const int *nodes,
				     size_t n)
{
	struct iovec local, remote;
	char byte;
	size_t i;

	for (i = 0; i < n; i++) {
		if (nodes[i] >= 0)
			continue;
		local.iov_base = &byte;
		local.iov_len = 1;
		remote.iov_base = (void *)(addr + i * pc_page_size);
		remote.iov_len = 1;
		process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	}
}

/*
 * A page the kernel holds in transit (a migration entry, a THP being
 * migrated or put back) has no node for that moment either: ask again,
 * for up to NODE_QUERY_TRIES * 10 ms, before counting.
 */
#define NODE_QUERY_TRIES 20

size_t pc_numa_pages_on(const struct pc_region *r, int node)
{
	size_t n = r->len / pc_page_size;
	int *nodes = pc_xmalloc(n * sizeof(*nodes));
	long on = -1;
	int tries;

	for (tries = 0; tries < NODE_QUERY_TRIES && on < 0; tries++) {
		if (tries)
			pc_sleep_ms(10);
		if (pc_numa_page_nodes(r->mem, n, nodes))
			break;
		on = count_pages_on(nodes, n, node);
		if (on < 0)
			touch_pages_without_node(r->mem, nodes, n);
	}
	free(nodes);
	return on < 0 ? 0 : on;
}

#define NUMA_BALANCING_KNOB "/proc/sys/kernel/numa_balancing"

/*
 * Automatic NUMA balancing is another mover (on by default on multi-node
 * machines): it would move the twin, and it may PROT_NONE pinned pages of
 * shared mappings, so a case that tests another mover pauses it.  The
 * harness puts the knob back after the case.
 */
void pc_numa_balancing_pause(void)
{
	const char *knob = NUMA_BALANCING_KNOB;
	char val[16];

	if (pc_knob_read(knob, val, sizeof(val)) || !strcmp(val, "0"))
		return;
	if (pc_knob_set(knob, "0"))
		pc_fail("cannot pause NUMA balancing through %s", knob);
	pc_diag("automatic NUMA balancing paused for the case (kernel.numa_balancing %s -> 0)",
		val);
}

/*
 * Each write of the knob flips a static key, which patches the kernel's
 * text; under QEMU's TCG that throws away translated code: 4-5 ms of a
 * case that pauses and gets it back.  So a binary nearly all of whose cases
 * pause it pauses it once, before its first case.
 */
void pc_cases_pause_numa_balancing(void)
{
	pc_cases_hold_knob(NUMA_BALANCING_KNOB, "0",
			   "automatic NUMA balancing paused");
}
