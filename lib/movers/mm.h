/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the tests of the kernel's page movers (NUMA balancing,
 * migration, compaction, reclaim, KSM, THP collapse and split): what a
 * mover did to a region (census.h: PFNs, nodes, swap), the counters that
 * prove it ran (counters.h), faults taken on a range (faults.h), NUMA
 * placement (numa_nodes.h), a memory cgroup (memcg.h), a pageblock laid out for
 * compaction (pageblock.h), and the setup of a mover case with a mover
 * that ignores pins, the control every such test needs (mover.h).
 */
#ifndef PINCHECK_MM_H
#define PINCHECK_MM_H

#include "census.h"
#include "clock.h"
#include "counters.h"
#include "faults.h"
#include "memcg.h"
#include "mover.h"
#include "numa_nodes.h"
#include "pageblock.h"

#endif
