// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers for the page-mover tests (see mm.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBNUMA
#include <numa.h>
#include <numaif.h>
#endif

#include "knob.h"
#include "mm.h"
#include "harness.h"
#include "pattern.h"
#include "scenario.h"
#include "sysprobe.h"
#include "util.h"

/* ---- counters ------------------------------------------------------------- */

/* "mm->numa_scan_seq      :     3" in /proc/self/sched. */
static long long sched_field(const char *field)
{
	FILE *f = fopen("/proc/self/sched", "re");
	size_t n = strlen(field);
	long long val = -1;
	char line[256], *p;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, n) || (line[n] != ' ' && line[n] != ':'))
			continue;
		p = strchr(line + n, ':');
		if (p && sscanf(p + 1, "%lld", &val) != 1)
			val = -1;
		break;
	}
	fclose(f);
	return val;
}

long long pc_counter_read(const char *name)
{
	char buf[64];

	if (name[0] == '/')
		return pc_read_line(name, buf, sizeof(buf)) ? -1 :
		       strtoll(buf, NULL, 10);
	if (!strncmp(name, "sched:", 6))
		return sched_field(name + 6);
	return pc_vmstat(name);
}

void pc_counters_start(struct pc_counters *c, const char *const *names)
{
	memset(c, 0, sizeof(*c));
	for (; *names && c->n < PC_COUNTERS_MAX; names++) {
		c->name[c->n] = *names;
		c->before[c->n] = pc_counter_read(*names);
		c->after[c->n] = c->before[c->n];
		c->n++;
	}
}

void pc_counters_stop(struct pc_counters *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		c->after[i] = pc_counter_read(c->name[i]);
}

long long pc_counters_delta(const struct pc_counters *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		if (strcmp(c->name[i], name))
			continue;
		if (c->before[i] < 0 || c->after[i] < 0)
			return -1;
		return c->after[i] - c->before[i];
	}
	return -1;
}

/* The short form of a counter name: the last path component. */
static const char *counter_label(const char *name)
{
	const char *slash = strrchr(name, '/');

	if (name[0] == '/' && slash)
		return slash + 1;
	if (!strncmp(name, "sched:", 6))
		return name + 6;
	return name;
}

void pc_counters_print(const struct pc_counters *c, const char *label)
{
	char line[1024];
	size_t i, used = 0;

	used += snprintf(line, sizeof(line), "%s:", label);
	for (i = 0; i < c->n && used < sizeof(line); i++) {
		if (c->before[i] < 0 || c->after[i] < 0)
			used += snprintf(line + used, sizeof(line) - used,
					 "%s %s n/a", i ? "," : "",
					 counter_label(c->name[i]));
		else
			used += snprintf(line + used, sizeof(line) - used,
					 "%s %s %lld -> %lld (%+lld)",
					 i ? "," : "",
					 counter_label(c->name[i]),
					 c->before[i], c->after[i],
					 c->after[i] - c->before[i]);
	}
	pc_diag("%s", line);
}

/* ---- page census ------------------------------------------------------------ */

static void census_page(struct pc_page_census *pc, const struct pc_region *r,
			size_t i, uint64_t pm)
{
	uint64_t pfn = pm & PC_PM_PFN_MASK, before, flags;

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
	if (pfn && !pc_kpageflags(pfn, &flags))
		pc->thp += (flags >> PC_KPF_THP) & 1;
}

void pc_page_census(const struct pc_region *r, struct pc_page_census *pc)
{
	size_t i, n = r->len / pc_page_size;
	uint64_t *pm = pc_xmalloc(n * sizeof(*pm));

	memset(pc, 0, sizeof(*pc));
	pc->first_moved = -1;
	pc->pages = n;
	if (pc_pagemap_range(r->mem, n, pm))
		pc_fail("read /proc/self/pagemap: %s", strerror(errno));
	for (i = 0; i < n; i++)
		census_page(pc, r, i, pm[i]);
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

/* ---- faults ------------------------------------------------------------------ */

#define FAULT_RING_PAGES 16

static long perf_event_open(struct perf_event_attr *attr)
{
	return syscall(__NR_perf_event_open, attr, 0, -1, -1,
		       PERF_FLAG_FD_CLOEXEC);
}

static void faults_add(struct pc_faults *f, uint64_t addr)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 256;
		uint64_t *a = realloc(f->addr, cap * sizeof(*a));

		if (!a) {
			f->lost++;
			return;
		}
		f->addr = a;
		f->cap = cap;
	}
	f->addr[f->n++] = addr;
}

/* Copy @len bytes at ring offset @pos (wrapping) into @dst. */
static void ring_copy(struct pc_faults *f, uint64_t pos, void *dst,
		      size_t len)
{
	size_t size = f->ring_len - pc_page_size, i;
	const char *data = (const char *)f->ring + pc_page_size;

	for (i = 0; i < len; i++)
		((char *)dst)[i] = data[(pos + i) % size];
}

static void faults_drain(struct pc_faults *f)
{
	struct perf_event_mmap_page *meta = f->ring;
	struct perf_event_header h;
	uint64_t head, tail, v[2];

	if (f->fd < 0)
		return;
	head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
	tail = meta->data_tail;
	while (tail + sizeof(h) <= head) {
		ring_copy(f, tail, &h, sizeof(h));
		if (!h.size)
			break;
		if (h.type == PERF_RECORD_SAMPLE && h.size >= sizeof(h) + 8) {
			ring_copy(f, tail + sizeof(h), v, 8);
			faults_add(f, v[0]);
		} else if (h.type == PERF_RECORD_LOST &&
			   h.size >= sizeof(h) + 16) {
			ring_copy(f, tail + sizeof(h), v, 16);
			f->lost += v[1];
		}
		tail += h.size;
	}
	__atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
}

/*
 * The first per-task perf event of the system, and the last one's close,
 * patch the scheduler's context-switch code (static key
 * perf_sched_events).  Under QEMU's TCG a vCPU has been seen executing
 * that code half-patched: a guest panic in __schedule, with RIP inside a
 * jump that had just replaced a NOP.  Every case opens and closes a fault
 * counter, so the test process holds one event for its whole life and the
 * key never changes while its cases run.
 */
void pc_faults_hold_sched_hooks(void)
{
	static int fd = -1;
	struct perf_event_attr attr;

	if (fd >= 0)
		return;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_DUMMY;
	attr.disabled = 1;
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	fd = perf_event_open(&attr);
}

/* A write to a fresh page must show up, or the counter is useless. */
static int faults_self_check(struct pc_faults *f)
{
	volatile char *page = mmap(NULL, pc_page_size, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t seen;

	if (page == MAP_FAILED)
		return 0;
	page[0] = 1;
	seen = pc_faults_in(f, (const void *)page, pc_page_size);
	munmap((void *)page, pc_page_size);
	return seen > 0;
}

int pc_faults_open(struct pc_faults *f)
{
	struct perf_event_attr attr;

	memset(f, 0, sizeof(*f));
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_PAGE_FAULTS;
	attr.sample_period = 1;
	attr.sample_type = PERF_SAMPLE_ADDR;
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	f->fd = perf_event_open(&attr);
	if (f->fd < 0) {
		snprintf(f->why, sizeof(f->why),
			 "perf_event_open(page-faults): %s (kernel without CONFIG_PERF_EVENTS, or kernel.perf_event_paranoid)",
			 strerror(errno));
		return -1;
	}
	f->ring_len = (1 + FAULT_RING_PAGES) * pc_page_size;
	f->ring = mmap(NULL, f->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       f->fd, 0);
	if (f->ring == MAP_FAILED) {
		snprintf(f->why, sizeof(f->why), "mmap of the perf ring: %s",
			 strerror(errno));
		close(f->fd);
		f->fd = -1;
		f->ring = NULL;
		return -1;
	}
	if (!faults_self_check(f)) {
		pc_faults_close(f);
		snprintf(f->why, sizeof(f->why),
			 "perf saw no fault for a write to a fresh page");
		return -1;
	}
	f->n = 0;
	return 0;
}

size_t pc_faults_in(struct pc_faults *f, const void *addr, size_t len)
{
	uint64_t lo = (uintptr_t)addr, hi = lo + len;
	size_t i, n = 0;

	faults_drain(f);
	for (i = 0; i < f->n; i++)
		n += f->addr[i] >= lo && f->addr[i] < hi;
	return n;
}

void pc_faults_close(struct pc_faults *f)
{
	if (f->ring)
		munmap(f->ring, f->ring_len);
	if (f->fd >= 0)
		close(f->fd);
	free(f->addr);
	f->ring = NULL;
	f->addr = NULL;
	f->fd = -1;
	f->n = f->cap = 0;
}

/* ---- NUMA --------------------------------------------------------------------- */

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

size_t pc_numa_pages_on(const struct pc_region *r, int node)
{
	size_t i, n = r->len / pc_page_size, on = 0;
	int *nodes = pc_xmalloc(n * sizeof(*nodes));

	if (!pc_numa_page_nodes(r->mem, n, nodes))
		for (i = 0; i < n; i++)
			on += nodes[i] == node;
	free(nodes);
	return on;
}

/* ---- controls ------------------------------------------------------------------ */

/* Skip unless every page of @r is on @node. */
static void expect_placed(const struct pc_region *r, int node,
			  const char *what)
{
	size_t on = pc_numa_pages_on(r, node), n = r->len / pc_page_size;

	if (on != n)
		pc_skip("could not place the %s %s region on node %d (%zu of %zu pages there)",
			what, r->bk->name, node, on, n);
}

/*
 * New pages wait in a per-CPU batch before they reach the LRU lists, and
 * a page that is not on an LRU list cannot be isolated: NUMA balancing,
 * migration and reclaim then leave it where it is.  MADV_COLD starts by
 * draining this CPU's batches, so the regions are made on one CPU and
 * that CPU's batches drained afterwards.
 */
static int stay_on_this_cpu(cpu_set_t *saved)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (cpu < 0 || sched_getaffinity(0, sizeof(*saved), saved))
		return 0;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return !sched_setaffinity(0, sizeof(one), &one);
}

static void drain_lru_batches(void)
{
	char *p = mmap(NULL, pc_page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	p[0] = 1;
	madvise(p, pc_page_size, MADV_COLD);
	munmap(p, pc_page_size);
}

/*
 * Automatic NUMA balancing is another mover (on by default on multi-node
 * machines): it would move the twin, and it may PROT_NONE pinned pages of
 * shared mappings, so a case that tests another mover pauses it.  The
 * harness puts the knob back after the case.
 */
void pc_numa_balancing_pause(void)
{
	const char *knob = "/proc/sys/kernel/numa_balancing";
	char val[16];

	if (pc_knob_read(knob, val, sizeof(val)) || !strcmp(val, "0"))
		return;
	if (pc_knob_set(knob, "0"))
		pc_fail("cannot pause NUMA balancing through %s", knob);
	pc_diag("automatic NUMA balancing paused for the case (kernel.numa_balancing %s -> 0)",
		val);
}

void pc_mover_open(const struct pc_case *c, struct pc_mover_setup *s)
{
	memset(s, 0, sizeof(*s));
	s->r.fd = s->t.fd = -1;
	pc_gen_name(PC_GEN_INIT, "written before the mover ran");
	pc_engine_open_or_skip(&s->e, c->engine);
	pc_numa_balancing_pause();
}

void pc_mover_pin_and_snap(struct pc_mover_setup *s, const char *event)
{
	pc_pin_region_or_skip(&s->e, &s->r, PC_PIN_RW);
	pc_region_snap(&s->r, event);
	if (s->has_twin)
		pc_region_snap(&s->t, event);
}

void pc_mover_setup(const struct pc_case *c, struct pc_mover_setup *s,
		    int node, int twin, const char *event)
{
	cpu_set_t saved;
	int err, pinned_cpu;

	pc_mover_open(c, s);
	if (node >= 0 && (err = pc_numa_alloc_on(node)))
		pc_fail("set_mempolicy(MPOL_BIND, node %d): %s", node,
			strerror(-err));
	pinned_cpu = stay_on_this_cpu(&saved);
	pc_region_create_or_skip(&s->r, c->backing, PC_GEN_INIT);
	if (twin)
		pc_region_create_or_skip(&s->t, c->backing, PC_GEN_INIT);
	s->has_twin = twin;
	drain_lru_batches();
	if (pinned_cpu)
		sched_setaffinity(0, sizeof(saved), &saved);
	if (node >= 0)
		pc_numa_alloc_on(-1);
	pc_pin_region_or_skip(&s->e, &s->r, PC_PIN_RW);
	if (node >= 0) {
		expect_placed(&s->r, node, "pinned");
		if (twin)
			expect_placed(&s->t, node, "unpinned");
	}
	pc_region_snap(&s->r, event);
	if (twin)
		pc_region_snap(&s->t, event);
}

void pc_mover_teardown(struct pc_mover_setup *s)
{
	pc_engine_close(&s->e);
	pc_region_destroy(&s->r);
	if (s->has_twin)
		pc_region_destroy(&s->t);
}

void pc_move_ignoring_pin(struct pc_region *r, int node)
{
	char *fresh = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (fresh == MAP_FAILED)
		pc_fail_errno("mmap for the pin-ignoring mover");
	if (node >= 0)
		pc_numa_alloc_on(node);
	memcpy(fresh, r->mem, r->len);
	if (node >= 0)
		pc_numa_alloc_on(-1);
	if (mremap(fresh, r->len, r->len, MREMAP_MAYMOVE | MREMAP_FIXED,
		   r->mem) == MAP_FAILED)
		pc_fail_errno("mremap over the pinned range");
}

void pc_expect_lost_pin_detected(struct pc_engine *e, struct pc_region *r,
				 unsigned int held)
{
	struct pc_check chk = {
		.what = "device read after a mover that ignored the pin",
		.r = r, .len = r->len, .gen = PC_GEN_OTHER,
		.side = PC_CHECK_DEVICE, .cpu = r->mem,
	};
	struct pc_page_census pc;
	char desc[256];
	void *dev;

	pc_page_census(r, &pc);
	if (!pc.moved && pc_pfn_readable())
		pc_fail("PFN check is blind: the CPU's pages were replaced, yet no page counts as moved (%s)",
			pc_page_census_str(&pc, desc, sizeof(desc)));
	pc_region_cpu_write(r, 0, r->len, PC_GEN_OTHER);
	dev = pc_dev_read_alloc(e, 0, r->len);
	chk.dev = dev;
	chk.sample = e->sample;
	if (!pc_verify(&chk))
		pc_fail("engine is blind: the device read data written to pages it never pinned");
	chk.gen = held;
	chk.what = "device read of the pages it pinned";
	pc_verify_or_fail(&chk);
	free(dev);
	pc_diag("loss detected as it must be: the device kept the pinned pages, the CPU's moved (%s)",
		pc_page_census_str(&pc, desc, sizeof(desc)));
}

/* ---- memory cgroup ----------------------------------------------------------- */

/*
 * A mount of the cgroup hierarchy that has the memory controller: cgroup2
 * (with "memory" in cgroup.controllers) or v1 "memory".  Sets @mnt and
 * @root (the mount's root within the hierarchy).
 */
static int find_memcg_mount(char *mnt, size_t mlen, char *root, size_t rlen,
			    int *v2)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024], r[256], m[256], type[64], opts[512], ctl[256];
	const char *sep;
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %255s %255s", r, m) != 2 ||
		    sscanf(sep + 3, "%63s %*s %511s", type, opts) != 2)
			continue;
		if (!strcmp(type, "cgroup2")) {
			char path[512];

			snprintf(path, sizeof(path), "%s/cgroup.controllers", m);
			if (pc_read_line(path, ctl, sizeof(ctl)) ||
			    !strstr(ctl, "memory"))
				continue;
			*v2 = 1;
			found = 1;
		} else if (!strcmp(type, "cgroup") && strstr(opts, "memory")) {
			*v2 = 0;
			found = 1;
		}
		if (found) {
			snprintf(mnt, mlen, "%s", m);
			snprintf(root, rlen, "%s", r);
		}
	}
	fclose(f);
	return found;
}

/* This process's cgroup path in the hierarchy (v2 "0::", v1 "memory"). */
static int own_cgroup(int v2, char *path, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[512], *ctl, *p;
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		ctl = strchr(line, ':');
		if (!ctl)
			continue;
		*ctl++ = '\0';
		p = strchr(ctl, ':');
		if (!p)
			continue;
		*p++ = '\0';
		if (v2 ? !strcmp(line, "0") && !*ctl :
			 !!strstr(ctl, "memory")) {
			snprintf(path, len, "%s", p);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/* Mount cgroup2 for the case when no memory hierarchy is mounted. */
static int mount_cgroup2(char *mnt, size_t mlen, char *root, size_t rlen,
			 char *why, size_t len)
{
	char ctl[256], path[400];
	int err;

	snprintf(mnt, mlen, "/run/pincheck-cgroup2-%d", (int)getpid());
	snprintf(root, rlen, "/");
	err = pc_knob_mount(mnt, "cgroup2");
	if (err) {
		snprintf(why, len,
			 "no memory cgroup mounted and mount -t cgroup2 on %s failed: %s",
			 mnt, strerror(-err));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt);
	if (pc_read_line(path, ctl, sizeof(ctl)) || !strstr(ctl, "memory")) {
		snprintf(why, len,
			 "the memory controller is not available in cgroup2 (bound to a v1 hierarchy, or a kernel without CONFIG_MEMCG)");
		return 1;
	}
	return 0;
}

/* v2: the parent must hand the memory controller to its children. */
static int delegate_memory(const char *parent, char *why, size_t len)
{
	char path[700], ctl[256];
	int err;

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", parent);
	if (!pc_read_line(path, ctl, sizeof(ctl)) && strstr(ctl, "memory"))
		return 0;
	err = pc_knob_write_undo(path, "+memory", "-memory");
	if (err) {
		snprintf(why, len,
			 "cannot enable the memory controller for the children of %s: %s (a cgroup v2 with processes in it cannot delegate it; run from the root cgroup or one with memory delegated)",
			 parent, strerror(-err));
		return 1;
	}
	return 0;
}

int pc_memcg_enter(struct pc_memcg *m, char *why, size_t len)
{
	char mnt[256], root[256], own[256], parent[600], procs[800], pid[16];
	size_t rl;
	int err;

	memset(m, 0, sizeof(*m));
	if (!find_memcg_mount(mnt, sizeof(mnt), root, sizeof(root), &m->v2)) {
		m->v2 = 1;
		if (mount_cgroup2(mnt, sizeof(mnt), root, sizeof(root), why,
				  len))
			return 1;
	}
	if (!own_cgroup(m->v2, own, sizeof(own))) {
		snprintf(why, len, "cannot find this process's %s cgroup in /proc/self/cgroup",
			 m->v2 ? "v2" : "memory");
		return -1;
	}
	rl = strlen(root);
	if (strcmp(root, "/") && !strncmp(own, root, rl))
		memmove(own, own + rl, strlen(own + rl) + 1);
	snprintf(parent, sizeof(parent), "%s%s", mnt,
		 strcmp(own, "/") ? own : "");
	if (m->v2 && delegate_memory(parent, why, len))
		return 1;
	if (snprintf(m->dir, sizeof(m->dir), "%s/pincheck-%d", parent,
		     (int)getpid()) >= (int)sizeof(m->dir)) {
		snprintf(why, len, "cgroup path too long under %s", parent);
		return -1;
	}
	err = pc_knob_mkdir(m->dir);
	if (err) {
		snprintf(why, len, "mkdir %s: %s", m->dir, strerror(-err));
		return err == -EACCES || err == -EROFS || err == -EPERM ? 1 : -1;
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", m->dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	err = pc_write_str(procs, pid);
	if (err) {
		snprintf(why, len, "cannot move into %s: %s", m->dir,
			 strerror(-err));
		return 1;
	}
	return 0;
}

int pc_memcg_set_max(struct pc_memcg *m, long long bytes)
{
	char path[800], val[32];

	snprintf(path, sizeof(path), "%s/%s", m->dir,
		 m->v2 ? "memory.max" : "memory.limit_in_bytes");
	if (bytes < 0)
		snprintf(val, sizeof(val), "%s", m->v2 ? "max" : "-1");
	else
		snprintf(val, sizeof(val), "%lld", bytes);
	return pc_write_str(path, val);
}

long long pc_memcg_current(struct pc_memcg *m)
{
	char path[800];

	snprintf(path, sizeof(path), "%s/%s", m->dir,
		 m->v2 ? "memory.current" : "memory.usage_in_bytes");
	return pc_counter_read(path);
}
