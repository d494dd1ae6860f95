// SPDX-License-Identifier: GPL-2.0
/*
 * A pageblock laid out so that a full compaction of its node must walk
 * over it (see mm.h, "a pageblock laid out for compaction").
 *
 * What compaction does (mm/compaction.c, compact_node() -> compact_zone()
 * with whole_zone, MIGRATE_SYNC, skip hints ignored): the migrate scanner
 * walks the zone's pageblocks upwards from its first PFN and isolates the
 * movable pages it meets; the free scanner walks downwards from the zone's
 * last pageblock and takes migration targets only from pageblocks whose
 * first page is not a free block of pageblock order (suitable_migration_
 * target()): wholly free pageblocks give no room.  The free scanner moves
 * down only as far as it needs room, and compaction ends where the two
 * meet.  So the migrate scanner reaches a pageblock when the partly used
 * pageblocks above it hold at least as many free pages as there are
 * movable pages below it.  This file makes that true and checks it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "report.h"
#include "knob.h"
#include "numa_nodes.h"
#include "pageblock.h"
#include "sysprobe.h"
#include "util.h"

#define SPLIT_DEBUGFS "/sys/kernel/debug/split_huge_pages"
#define KPF_LRU 5
#define CANDIDATE_BLOCKS 8	/* THPs the home block is chosen from */
#define ROOM_BATCH 16		/* THPs made into room per round */
#define ROOM_MAX_BLOCKS 256	/* 512 MiB of room with 2 MiB blocks */
/*
 * Room blocks are split into folios of this order where the kernel can
 * (debugfs "pid,start,end,order", 6.10+; older kernels split into base
 * pages), and only the last folio stays mapped.  The freed part starts the
 * pageblock as one free block of order pageblock_order - 1: the free
 * scanner, which checks every stride-th page of a pageblock and widens its
 * stride to 32 over empty pageblocks, finds at least that block at the
 * pageblock's first page.  So each room block counts for half a pageblock.
 */
#define ROOM_ORDER 4
/*
 * Freed base pages wait on per-CPU lists (up to the zone's low watermark
 * each, thousands of pages with THP's min_free_kbytes), where the free
 * scanner never looks: this knob, restored after the case, makes those
 * lists short so that the room reaches the buddy allocator.
 */
#define PCP_FRACTION "/proc/sys/vm/percpu_pagelist_high_fraction"
#define PCP_FRACTION_SHORT "1000000"

static size_t block_bytes(void)
{
	char buf[32];

	if (pc_read_line("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
			 buf, sizeof(buf)))
		return 0;
	return strtoull(buf, NULL, 10);
}

/*
 * @n PMD-aligned MADV_HUGEPAGE blocks, a word written in each page (a
 * split since 6.12 frees zero-filled subpages and maps the zero page
 * instead); NULL on error.
 */
static char *map_thp_blocks(size_t n, size_t bytes)
{
	size_t len = n * bytes;
	char *p = mmap(NULL, len + bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *start;
	size_t i;

	if (p == MAP_FAILED)
		return NULL;
	start = (char *)pc_align_up((uintptr_t)p, bytes);
	if (start > p)
		munmap(p, start - p);
	munmap(start + len, p + bytes - start);
	madvise(start, len, MADV_HUGEPAGE);
	for (i = 0; i < len; i += pc_page_size)
		start[i] = 1;
	return start;
}

/* Is the block at @addr one THP starting at a pageblock-aligned PFN? */
static int is_whole_thp(const char *addr, size_t pages)
{
	uint64_t pfn = pc_pfn(addr);

	return pfn && pfn % pages == 0 && pc_page_flag(addr, PC_KPF_THP) == 1;
}

/*
 * Split every THP of [addr, addr + len) into folios of @order (kernels
 * before 6.10 ignore it and split into base pages); 0 or -errno.
 */
static int split_thps(const char *addr, size_t len, int order)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "%d,0x%lx,0x%lx,%d", (int)getpid(),
		 (unsigned long)addr, (unsigned long)addr + len, order);
	return pc_write_str(SPLIT_DEBUGFS, cmd);
}

/* The zone holding @pfn, from /proc/zoneinfo; 0 or -1. */
static int find_zone(struct pc_pageblock *b, uint64_t pfn)
{
	FILE *f = fopen("/proc/zoneinfo", "re");
	unsigned long long spanned = 0, start;
	char line[256], zone[16] = "";
	int node = -1, found = 0;

	if (!f)
		return -1;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Node %d, zone %15s", &node, zone) == 2)
			continue;
		if (sscanf(line, " spanned %llu", &spanned) == 1)
			continue;
		if (sscanf(line, " start_pfn: %llu", &start) != 1 ||
		    pfn < start || pfn >= start + spanned)
			continue;
		b->node = node;
		snprintf(b->zone, sizeof(b->zone), "%s", zone);
		b->zone_start = start;
		b->zone_end = start + spanned;
		found = 1;
	}
	fclose(f);
	return found ? 0 : -1;
}

/* Pages on an LRU list (movable user pages) in [from, to); -1 on error. */
static long long count_lru_pages(uint64_t from, uint64_t to)
{
	enum { CHUNK = 8192 };
	uint64_t *flags = pc_xmalloc(CHUNK * sizeof(*flags)), pfn;
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	long long n = 0;
	ssize_t got;
	size_t i;

	for (pfn = from; fd >= 0 && n >= 0 && pfn < to; pfn += CHUNK) {
		size_t want = to - pfn < CHUNK ? to - pfn : CHUNK;

		got = pread(fd, flags, want * sizeof(*flags),
			    pfn * sizeof(*flags));
		if (got < 0) {
			n = -1;
			break;
		}
		for (i = 0; i < (size_t)got / sizeof(*flags); i++)
			n += flags[i] >> KPF_LRU & 1;
	}
	if (fd < 0)
		n = -1;
	else
		close(fd);
	free(flags);
	return n;
}

/* Keep the last folio of a room block; the rest goes back to the kernel. */
static void keep_last_folio(struct pc_pageblock *b, char *addr, size_t bytes)
{
	size_t keep = pc_page_size << ROOM_ORDER;

	char **kept = realloc(b->kept, (b->nkept + 1) * sizeof(*kept));

	if (!kept) {
		munmap(addr, bytes);
		return;
	}
	b->kept = kept;
	b->kept[b->nkept++] = addr + bytes - keep;
	munmap(addr, bytes - keep);
	b->room += b->pages / 2;
	b->room_blocks++;
}

/*
 * Turn each whole THP of the @n blocks at @blocks that lies above home in
 * its zone into room; unmap the others.
 */
static void make_room(struct pc_pageblock *b, char *blocks, size_t n,
		      size_t bytes)
{
	char *room = pc_xmalloc(n);
	size_t i;
	uint64_t pfn;

	for (i = 0; i < n; i++) {
		pfn = pc_pfn(blocks + i * bytes);
		room[i] = is_whole_thp(blocks + i * bytes, b->pages) &&
			  pfn > b->pfn && pfn < b->zone_end;
	}
	split_thps(blocks, n * bytes, ROOM_ORDER);
	for (i = 0; i < n; i++) {
		/* split: the last folio's first page is no tail page */
		if (room[i] && pc_page_flag(blocks + (i + 1) * bytes -
					    (pc_page_size << ROOM_ORDER),
					    PC_KPF_COMPOUND_TAIL) == 0)
			keep_last_folio(b, blocks + i * bytes, bytes);
		else
			munmap(blocks + i * bytes, bytes);
	}
	free(room);
}

/* The room the free scanner needs to carry the migrate scanner to home. */
static size_t room_wanted(const struct pc_pageblock *b)
{
	return b->movable_below + b->movable_below / 2 + b->pages;
}

/* Choose home among fresh THPs: the lowest one; unmap the others. */
static int choose_home(struct pc_pageblock *b, size_t bytes, char *why,
		       size_t len)
{
	char *blocks = map_thp_blocks(CANDIDATE_BLOCKS, bytes);
	size_t i, best = CANDIDATE_BLOCKS;
	uint64_t pfn, best_pfn = 0;

	if (!blocks) {
		snprintf(why, len, "mmap of %d candidate THPs failed: %s",
			 CANDIDATE_BLOCKS, strerror(errno));
		return 1;
	}
	for (i = 0; i < CANDIDATE_BLOCKS; i++) {
		pfn = pc_pfn(blocks + i * bytes);
		if (!is_whole_thp(blocks + i * bytes, b->pages) ||
		    (best_pfn && pfn > best_pfn))
			continue;
		best = i;
		best_pfn = pfn;
	}
	for (i = 0; i < CANDIDATE_BLOCKS; i++)
		if (i != best)
			munmap(blocks + i * bytes, bytes);
	if (best == CANDIDATE_BLOCKS) {
		snprintf(why, len,
			 "no THP among %d MADV_HUGEPAGE blocks: a pageblock cannot be laid out (THP disabled, or no free pageblock)",
			 CANDIDATE_BLOCKS);
		return 1;
	}
	b->home = blocks + best * bytes;
	b->pfn = best_pfn;
	return 0;
}

static int split_home(struct pc_pageblock *b, size_t bytes, char *why,
		      size_t len)
{
	int err = split_thps(b->home, bytes, 0);

	if (!err && pc_page_flag(b->home, PC_KPF_THP) == 0)
		return 0;
	snprintf(why, len,
		 "cannot split a THP into base pages through %s (%s): %s",
		 SPLIT_DEBUGFS, err ? strerror(-err) : "still a THP",
		 err == -ENOENT ? "mount debugfs on /sys/kernel/debug (run_tests.sh does)" :
		 "needs a kernel with CONFIG_DEBUG_FS whose debugfs root may write");
	return 1;
}

/* Room above home until it can take every movable page below home. */
static int grow_room(struct pc_pageblock *b, size_t bytes, char *why,
		     size_t len)
{
	size_t made = 0;
	char *blocks;

	while (b->room < room_wanted(b) && made < ROOM_MAX_BLOCKS) {
		blocks = map_thp_blocks(ROOM_BATCH, bytes);
		if (!blocks)
			break;
		make_room(b, blocks, ROOM_BATCH, bytes);
		made += ROOM_BATCH;
	}
	if (b->room >= room_wanted(b))
		return 0;
	snprintf(why, len,
		 "compaction could not be made to reach a pageblock: %zu movable pages below it (PFN 0x%llx, zone %s of node %d) want %zu free pages of room above it, %zu THPs gave %zu",
		 b->movable_below, (unsigned long long)b->pfn, b->zone,
		 b->node, room_wanted(b), made, b->room);
	return 1;
}

/*
 * Free home's pages from the top down, one at a time: a freed page goes to
 * the head of this CPU's list of free pages and the allocator takes from
 * the head, so the next pages this CPU allocates are home's, lowest first.
 */
static void free_home_pages(struct pc_pageblock *b)
{
	size_t i;

	for (i = b->pages; i-- > 0;)
		munmap(b->home + i * pc_page_size, pc_page_size);
	b->home = NULL;
}

static void stay_on_one_cpu(struct pc_pageblock *b)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	b->on_one_cpu = 0;
	if (cpu < 0 || sched_getaffinity(0, sizeof(b->saved), &b->saved))
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	b->on_one_cpu = !sched_setaffinity(0, sizeof(one), &one);
}

static int lay_out(struct pc_pageblock *b, char *why, size_t len)
{
	size_t bytes = block_bytes();
	long long lru;

	if (!bytes || bytes % pc_page_size) {
		snprintf(why, len, "no THP size in /sys/kernel/mm/transparent_hugepage/hpage_pmd_size: kernel without THP");
		return 1;
	}
	b->pages = bytes / pc_page_size;
	if (choose_home(b, bytes, why, len))
		return 1;
	if (find_zone(b, b->pfn)) {
		snprintf(why, len, "PFN 0x%llx is in no zone of /proc/zoneinfo",
			 (unsigned long long)b->pfn);
		return -1;
	}
	if (split_home(b, bytes, why, len))
		return 1;
	lru = count_lru_pages(b->zone_start, b->pfn);
	if (lru < 0) {
		snprintf(why, len, "cannot read /proc/kpageflags: %s",
			 strerror(errno));
		return 1;
	}
	b->movable_below = lru;
	if (!access(PCP_FRACTION, W_OK) &&
	    pc_knob_set(PCP_FRACTION, PCP_FRACTION_SHORT)) {
		snprintf(why, len, "cannot write %s", PCP_FRACTION);
		return -1;
	}
	if (grow_room(b, bytes, why, len))
		return 1;
	free_home_pages(b);
	return 0;
}

int pc_pageblock_prepare(struct pc_pageblock *b, int node, char *why,
			 size_t len)
{
	int rc;

	memset(b, 0, sizeof(*b));
	b->node = -1;
	if (!pc_pfn_readable()) {
		snprintf(why, len, "needs PFNs from /proc/self/pagemap and /proc/kpageflags: run as root");
		return 1;
	}
	stay_on_one_cpu(b);
	if (node >= 0)
		pc_numa_alloc_on(node);
	rc = lay_out(b, why, len);
	if (rc)
		pc_pageblock_placed(b);
	return rc;
}

void pc_pageblock_placed(struct pc_pageblock *b)
{
	pc_numa_alloc_on(-1);
	if (b->on_one_cpu)
		sched_setaffinity(0, sizeof(b->saved), &b->saved);
	b->on_one_cpu = 0;
}

/* [lo, hi] PFNs of @r's pages inside home; -1 when one is elsewhere. */
static int region_pfns(const struct pc_pageblock *b, const struct pc_region *r,
		       uint64_t *lo, uint64_t *hi)
{
	size_t i;
	size_t n = r->len / pc_page_size;
	uint64_t *pfn = pc_pagemap_alloc(r->mem, n, 1);
	int ret = 0;

	*lo = UINT64_MAX;
	*hi = 0;
	for (i = 0; i < n && !ret; i++) {
		if (pfn[i] < b->pfn || pfn[i] >= b->pfn + b->pages)
			ret = -1;
		if (pfn[i] < *lo)
			*lo = pfn[i];
		if (pfn[i] > *hi)
			*hi = pfn[i];
	}
	free(pfn);
	return ret;
}

int pc_pageblock_holds(const struct pc_pageblock *b,
		       const struct pc_region *low, const struct pc_region *high,
		       char *why, size_t len)
{
	uint64_t llo, lhi, hlo, hhi;

	if (region_pfns(b, low, &llo, &lhi) || region_pfns(b, high, &hlo, &hhi)) {
		snprintf(why, len,
			 "the page allocator did not hand the freed pageblock (PFN 0x%llx) back to the regions: pinned at PFN 0x%llx, twin at 0x%llx",
			 (unsigned long long)b->pfn,
			 (unsigned long long)pc_pfn(low->mem),
			 (unsigned long long)pc_pfn(high->mem));
		return 1;
	}
	if (hlo <= lhi) {
		snprintf(why, len,
			 "the twin (PFN 0x%llx-0x%llx) is not above the pinned pages (PFN 0x%llx-0x%llx) in the pageblock",
			 (unsigned long long)hlo, (unsigned long long)hhi,
			 (unsigned long long)llo, (unsigned long long)lhi);
		return 1;
	}
	snprintf(why, len,
		 "pageblock PFN 0x%llx-0x%llx in zone %s of node %d (PFN 0x%llx-0x%llx): pinned pages at PFN 0x%llx-0x%llx, twin above them at 0x%llx-0x%llx; %zu movable pages below the pageblock, %zu free pages of room in %zu partly used pageblocks above it",
		 (unsigned long long)b->pfn,
		 (unsigned long long)(b->pfn + b->pages - 1), b->zone, b->node,
		 (unsigned long long)b->zone_start,
		 (unsigned long long)(b->zone_end - 1),
		 (unsigned long long)llo, (unsigned long long)lhi,
		 (unsigned long long)hlo, (unsigned long long)hhi,
		 b->movable_below, b->room, b->room_blocks);
	return 0;
}

void pc_pageblock_release(struct pc_pageblock *b)
{
	size_t i;

	for (i = 0; i < b->nkept; i++)
		munmap(b->kept[i], pc_page_size << ROOM_ORDER);
	free(b->kept);
	b->kept = NULL;
	b->nkept = 0;
}
