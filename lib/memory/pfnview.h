/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A PFN view of a range: what backs each base page, as one comparable key
 * per page (the PFN of a present page, the swap entry of a swapped one,
 * 0 for neither), read from /proc/self/pagemap.  Two processes compare
 * their views to tell whether fork() or a write fault copied a page: a
 * forked child reads its own view and sends it to the parent over a pipe.
 */
#ifndef PINCHECK_PFNVIEW_H
#define PINCHECK_PFNVIEW_H

#include <stddef.h>
#include <stdint.h>

#define PC_VIEW_PRESENT	(1ULL << 63)
#define PC_VIEW_SWAPPED	(1ULL << 62)

/* Keys of @pages base pages from @addr on.  0, or -errno. */
int pc_view_read(const void *addr, size_t pages, uint64_t *keys);

/* The same over a pipe: 0, or -1 on a short transfer. */
int pc_view_send(int fd, const uint64_t *keys, size_t pages);
int pc_view_recv(int fd, uint64_t *keys, size_t pages);

static inline int pc_view_present(uint64_t key)
{
	return !!(key & PC_VIEW_PRESENT);
}

/* "pfn 0x1234", "pfn 0x5 (the shared zero page)", "swap entry 0x..". */
const char *pc_view_describe(uint64_t key, char *buf, size_t len);

/*
 * For a case that compares PFNs over time: keep the case process (and the
 * children it forks) on the CPU it runs on, so that a write fault's
 * lru_add_drain() empties the batch holding an extra reference on a new
 * page; and pause automatic NUMA balancing (restored by the harness), which
 * would move pages behind the comparison.
 */
void pc_view_quiet_case(void);

#endif
