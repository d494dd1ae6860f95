// SPDX-License-Identifier: GPL-2.0
/* The page faults a thread takes on a range (perf software events): see faults.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "faults.h"
#include "sysprobe.h"

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
 * jump that had just replaced a NOP.  The first and last page-fault
 * software event patch the fault path the same way
 * (perf_swevent_enabled[], seen in a tracing of the guest: twice for each
 * case that counts).  Every case opens and closes a fault counter, so the
 * test process holds one such event, never enabled, for its whole life,
 * and neither key changes while its cases run.
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
	attr.config = PERF_COUNT_SW_PAGE_FAULTS;
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
