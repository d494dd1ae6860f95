/* SPDX-License-Identifier: GPL-2.0 */
/* Named counters read before and after an event (the proof a mover ran). */
#ifndef PINCHECK_COUNTERS_H
#define PINCHECK_COUNTERS_H

#include <stddef.h>

#define PC_COUNTERS_MAX 12

/*
 * Named counters read before and after an event.  A name is a
 * /proc/vmstat field ("numa_hint_faults"), an absolute path holding a
 * number ("/sys/kernel/mm/ksm/full_scans"), or "sched:<field>" of
 * /proc/self/sched ("sched:mm->numa_scan_seq").  Absent ones read -1.
 */
struct pc_counters {
	size_t n;
	const char *name[PC_COUNTERS_MAX];
	long long before[PC_COUNTERS_MAX];
	long long after[PC_COUNTERS_MAX];
};

/* @names ends with NULL. */
void pc_counters_start(struct pc_counters *c, const char *const *names);
void pc_counters_stop(struct pc_counters *c);
long long pc_counter_read(const char *name);
/* after - before of @name, or -1 when it could not be read. */
long long pc_counters_delta(const struct pc_counters *c, const char *name);
/* "# counters: numa_hint_faults 10 -> 42 (+32), ..." */
void pc_counters_print(const struct pc_counters *c, const char *label);

#endif
