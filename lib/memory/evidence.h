/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Evidence that a case's event happened: the PTE write-protection a case
 * arranges (mprotect, soft-dirty clearing) shows as write faults on the
 * next CPU write, and soft-dirty clearing shows in pagemap.  A case whose
 * event left no trace SKIPs with the counts ("no event: ...").
 */
#ifndef PINCHECK_EVIDENCE_H
#define PINCHECK_EVIDENCE_H

#include <stddef.h>

#include "backing.h"

/* Write "4" to /proc/self/clear_refs (clear soft-dirty); 0 or -errno. */
int pc_soft_dirty_clear(void);

/*
 * Does soft-dirty tracking work here?  On a fresh page of its own: a
 * write sets pagemap's soft-dirty bit, writing "4" to clear_refs clears
 * it, the next write sets it again.  Without CONFIG_MEM_SOFT_DIRTY the
 * write of "4" succeeds and does nothing.  NULL, or the skip reason.
 * Clears the soft-dirty bits of the whole process.
 */
const char *pc_soft_dirty_probe(void);

/* Base pages of [addr, addr + len) that pagemap reports soft-dirty. */
size_t pc_soft_dirty_pages(const void *addr, size_t len);

/*
 * CPU write of @gen over all of @r, counting the page faults it takes on
 * @r: the count, or -1 with the reason in @why when faults cannot be
 * counted (the region is written either way).  Every fault counts: call
 * pc_numa_balancing_pause() (lib/movers/numa_nodes.h) at the start of the case, so that no NUMA
 * hinting fault passes for a write fault.
 */
long pc_cpu_write_counting_faults(struct pc_region *r, unsigned int gen,
				  char *why, size_t len);

#endif
