/* SPDX-License-Identifier: GPL-2.0 */
/* The page faults a thread takes on a range (perf software events). */
#ifndef PINCHECK_FAULTS_H
#define PINCHECK_FAULTS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Counts the page faults the calling thread takes, by address: a NUMA
 * hinting fault, a write to a write-protected PTE, a refault after an
 * unmap.  Opened and read by the same thread.
 */
struct pc_faults {
	int fd;
	void *ring;
	size_t ring_len;
	uint64_t *addr;		/* fault addresses seen so far */
	size_t n, cap;
	uint64_t lost;		/* samples the kernel dropped */
	char why[160];		/* why it cannot count, when fd < 0 */
};

/* 0, or -1 with f->why (and the counter unusable). */
int pc_faults_open(struct pc_faults *f);
/* Faults seen in [addr, addr + len) since open. */
size_t pc_faults_in(struct pc_faults *f, const void *addr, size_t len);
void pc_faults_close(struct pc_faults *f);
/*
 * Called once by the test process before its cases: hold a page-fault
 * perf event (never enabled) for the process's life, so that the cases'
 * counters never switch the kernel's perf scheduling and fault hooks on
 * and off (code patching that QEMU's TCG has been seen to run half-done,
 * and that throws away its translated code).  Best effort.
 */
void pc_faults_hold_sched_hooks(void);

#endif
