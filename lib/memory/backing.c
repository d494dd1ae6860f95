// SPDX-License-Identifier: GPL-2.0
/*
 * Backings: the table of kinds of memory this kernel offers, regions made
 * of them, and the helpers every backing uses to look at its pages.
 *
 * The create functions live in backing_anon.c (base pages, zero pages,
 * swap, hugetlb), backing_thp.c (PMD THP, mTHP, huge zero page) and
 * backing_file.c (memfd and files).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backing_internal.h"
#include "report.h"
#include "pattern.h"
#include "sysprobe.h"
#include "util.h"

#define BK_MAX 64
#define BK_NAME_MAX 32

static struct pc_backing table[BK_MAX];
static const struct pc_backing *table_ptrs[BK_MAX];
static char table_names[BK_MAX][BK_NAME_MAX];
static size_t table_len;

/* ---- reporting ---- */

static int vreason(int ret, char *why, size_t whylen, const char *fmt,
		   va_list ap)
{
	if (why && whylen)
		vsnprintf(why, whylen, fmt, ap);
	return ret;
}

int bk_skip(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vreason(1, why, whylen, fmt, ap);
	va_end(ap);
	return ret;
}

int bk_error(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vreason(-1, why, whylen, fmt, ap);
	va_end(ap);
	return ret;
}

int bk_errno(char *why, size_t whylen, const char *what)
{
	return bk_error(why, whylen, "%s: %s", what, strerror(errno));
}

/* ---- looking at pages ---- */

/* kpageflags of every present page; 1 when all could be read. */
static int kpageflags_range(struct bk_pages *p)
{
	uint64_t *pfn = pc_xmalloc(p->n * sizeof(*pfn));
	size_t i;
	int ok = 1;

	for (i = 0; i < p->n; i++) {
		pfn[i] = p->pm[i] & PC_PM_PRESENT ? p->pm[i] & PC_PM_PFN_MASK : 0;
		ok &= pfn[i] || !(p->pm[i] & PC_PM_PRESENT);
	}
	ok = ok && !pc_kpageflags_pfns(pfn, p->n, p->kpf);
	free(pfn);
	return ok;
}

int bk_pages_read(struct bk_pages *p, const void *addr, size_t n,
		  char *why, size_t whylen)
{
	memset(p, 0, sizeof(*p));
	p->n = n;
	p->pm = calloc(n, sizeof(*p->pm));
	p->kpf = calloc(n, sizeof(*p->kpf));
	if (!p->pm || !p->kpf) {
		bk_pages_free(p);
		return bk_error(why, whylen, "out of memory for %zu pages", n);
	}
	if (pc_pagemap_range(addr, n, p->pm)) {
		bk_pages_free(p);
		return bk_errno(why, whylen, "read /proc/self/pagemap");
	}
	p->have_kpf = pc_pfn_readable() && kpageflags_range(p);
	return 0;
}

void bk_pages_free(struct bk_pages *p)
{
	free(p->pm);
	free(p->kpf);
	p->pm = p->kpf = NULL;
}

int bk_need_kpf(const struct bk_pages *p, const char *what, char *why,
		size_t whylen)
{
	if (p->have_kpf)
		return 0;
	return bk_skip(why, whylen,
		       "cannot verify %s without /proc/kpageflags: run as root",
		       what);
}

/* ---- mapping ---- */

int bk_map_anon_aligned(struct pc_region *r, size_t len, size_t align,
			char *why, size_t whylen)
{
	size_t extra = align > pc_page_size ? align : 0;
	char *p, *start;

	p = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return bk_errno(why, whylen, "mmap");
	start = extra ? (char *)pc_align_up((uintptr_t)p, align) : p;
	if (start > p)
		munmap(p, start - p);
	if (p + len + extra > start + len)
		munmap(start + len, p + len + extra - (start + len));
	r->map = r->mem = start;
	r->map_len = r->len = len;
	return 0;
}

void bk_read_fault(const void *addr, size_t len)
{
	const volatile char *p = addr;
	size_t off;

	for (off = 0; off < len; off += pc_page_size)
		(void)p[off];
}

/* ---- THP knobs ---- */

size_t bk_pmd_size(void)
{
	static size_t pmd;
	char buf[64];

	if (pmd)
		return pmd;
	if (!pc_read_line(BK_THP_DIR "/hpage_pmd_size", buf, sizeof(buf)))
		pmd = strtoull(buf, NULL, 10);
	if (!pmd)	/* no THP: one page table's worth of base pages */
		pmd = pc_page_size * (pc_page_size / sizeof(uint64_t));
	return pmd;
}

int bk_thp_size_allowed(size_t size, int mthp, char *why, size_t whylen)
{
	char knob[128], mode[32];
	size_t kb = size / 1024;

	snprintf(knob, sizeof(knob), BK_THP_DIR "/hugepages-%zukB/enabled",
		 kb);
	if (!pc_sysfs_selected(knob, mode, sizeof(mode)) &&
	    strcmp(mode, "inherit")) {
		if (strcmp(mode, "never"))
			return 0;
		if (mthp)
			return bk_skip(why, whylen,
				       "mTHP %zukB disabled: echo madvise > %s (run_tests.sh does this)",
				       kb, knob);
		return bk_skip(why, whylen, "THP disabled: echo madvise > %s",
			       knob);
	}
	if (pc_sysfs_selected(BK_THP_DIR "/enabled", mode, sizeof(mode)))
		return bk_skip(why, whylen,
			       "THP not supported by this kernel (no %s)",
			       BK_THP_DIR "/enabled");
	if (strcmp(mode, "never"))
		return 0;
	if (mthp)
		return bk_skip(why, whylen,
			       "mTHP %zukB disabled (inherits THP never): echo madvise > %s (run_tests.sh does this)",
			       kb, knob);
	return bk_skip(why, whylen, "THP disabled: echo madvise > %s",
		       BK_THP_DIR "/enabled");
}

/* ---- the table ---- */

static void add_backing(const char *name, unsigned int flags, size_t size,
			int (*create)(const struct pc_backing *,
				      struct pc_region *, unsigned int,
				      char *, size_t))
{
	struct pc_backing *bk;

	if (table_len >= BK_MAX)
		return;
	bk = &table[table_len];
	snprintf(table_names[table_len], BK_NAME_MAX, "%s", name);
	bk->name = table_names[table_len];
	bk->flags = flags;
	bk->size = size;
	bk->create = create;
	table_ptrs[table_len++] = bk;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Sizes (bytes) of the "hugepages-<N>kB" directories under @dir, ascending.
 * With @need set, only directories holding that file count.
 */
static size_t sysfs_page_sizes(const char *dir, const char *need,
			       size_t *sizes, size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];
	size_t n = 0, kb;
	char tail;

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		if (sscanf(de->d_name, "hugepages-%zukB%c", &kb, &tail) != 1)
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", dir, de->d_name,
			 need ? need : "");
		if (need && access(path, F_OK))
			continue;
		sizes[n++] = kb * 1024;
	}
	closedir(d);
	qsort(sizes, n, sizeof(*sizes), cmp_size);
	return n;
}

static void add_mthp_backings(size_t pmd)
{
	size_t sizes[32], n, i;
	char name[BK_NAME_MAX];

	/* anonymous mTHP sizes have an "enabled" knob (order 1 does not) */
	n = sysfs_page_sizes(BK_THP_DIR, "enabled", sizes,
			     PC_ARRAY_SIZE(sizes));
	for (i = 0; i < n; i++) {
		if (sizes[i] >= pmd || sizes[i] <= pc_page_size)
			continue;
		snprintf(name, sizeof(name), "mthp-%zukB", sizes[i] / 1024);
		add_backing(name, PC_BK_ANON | PC_BK_THP, sizes[i],
			    bk_mthp_create);
	}
}

static void add_hugetlb_backings(void)
{
	size_t sizes[16], n, i;
	char name[BK_NAME_MAX];

	n = sysfs_page_sizes(BK_HUGETLB_DIR, NULL, sizes,
			     PC_ARRAY_SIZE(sizes));
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "hugetlb-%zukB", sizes[i] / 1024);
		add_backing(name, PC_BK_ANON | PC_BK_HUGETLB, sizes[i],
			    bk_hugetlb_create);
	}
}

static void build_table(void)
{
	size_t page = pc_page_size, pmd = bk_pmd_size();

	add_backing("anon", PC_BK_ANON, page, bk_anon_create);
	add_backing("thp-pmd", PC_BK_ANON | PC_BK_THP, pmd,
		    bk_thp_pmd_create);
	add_backing("thp-pte", PC_BK_ANON | PC_BK_THP, pmd,
		    bk_thp_pte_create);
	add_backing("thp-single", PC_BK_ANON | PC_BK_THP, pmd,
		    bk_thp_single_create);
	add_mthp_backings(pmd);
	add_hugetlb_backings();
	add_backing("untouched", PC_BK_ANON | PC_BK_ZERO, page,
		    bk_untouched_create);
	add_backing("zeropage", PC_BK_ANON | PC_BK_ZERO, page,
		    bk_zeropage_create);
	add_backing("huge-zeropage", PC_BK_ANON | PC_BK_ZERO, pmd,
		    bk_huge_zeropage_create);
	add_backing("memfd-private", PC_BK_FILE, page, bk_memfd_create);
	add_backing("memfd-shared", PC_BK_FILE | PC_BK_SHARED, page,
		    bk_memfd_create);
	add_backing("file-private", PC_BK_FILE, page, bk_file_create);
	add_backing("file-shared", PC_BK_FILE | PC_BK_SHARED, page,
		    bk_file_create);
	add_backing("swapped", PC_BK_ANON | PC_BK_SWAPPED, page,
		    bk_swapped_create);
}

size_t pc_backings(const struct pc_backing *const **list)
{
	static int built;

	if (!built) {
		pc_sys_init();
		build_table();
		built = 1;
	}
	if (list)
		*list = table_ptrs;
	return table_len;
}

const struct pc_backing *pc_backing_find(const char *name)
{
	const struct pc_backing *const *list;
	size_t i, n = pc_backings(&list);

	for (i = 0; i < n; i++)
		if (!strcmp(list[i]->name, name))
			return list[i];
	return NULL;
}

const struct pc_backing *pc_backing_next(const char **names)
{
	const struct pc_backing *bk;
	char name[64];
	size_t len;

	for (;;) {
		*names += strspn(*names, " ");
		len = strcspn(*names, " ");
		if (!len)
			return NULL;
		snprintf(name, sizeof(name), "%.*s", (int)len, *names);
		*names += len;
		bk = pc_backing_find(name);
		if (bk)
			return bk;
	}
}

/* ---- regions ---- */

int pc_region_create(struct pc_region *r, const struct pc_backing *bk,
		     unsigned int gen, char *why, size_t whylen)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (why && whylen)
		why[0] = '\0';
	if (!bk)
		return bk_error(why, whylen, "no backing");
	r->bk = bk;
	if (bk->flags & PC_BK_ZERO)
		gen = PC_GEN_ZERO;
	ret = bk->create(bk, r, gen, why, whylen);
	if (ret) {
		pc_region_destroy(r);
		if (why && whylen && !why[0])
			snprintf(why, whylen, "%s: %s", bk->name,
				 ret > 0 ? "not available" : "failed");
		return ret > 0 ? 1 : -1;
	}
	r->gen = gen;
	return 0;
}

void pc_region_create_or_skip(struct pc_region *r,
			      const struct pc_backing *bk, unsigned int gen)
{
	char why[PC_REASON_MAX];

	switch (pc_region_create(r, bk, gen, why, sizeof(why))) {
	case 0:
		return;
	case 1:
		pc_skip("%s", why);
	default:
		pc_fail("backing %s: %s", bk ? bk->name : "(none)", why);
	}
}

void pc_region_cpu_write(struct pc_region *r, size_t off, size_t len,
			 unsigned int gen)
{
	pc_fill(r->mem + off, off, len, gen);
}

int pc_map_fresh(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

void pc_region_snap(struct pc_region *r, const char *event)
{
	size_t i, n = r->len / pc_page_size;
	uint64_t *pm = r->pfn_before;

	if (!pm)
		pm = r->pfn_before = pc_xmalloc(n * sizeof(*pm));
	r->snap_event = event;
	if (!pc_pfn_readable() || pc_pagemap_range(r->mem, n, pm)) {
		memset(pm, 0, n * sizeof(*pm));
		return;
	}
	for (i = 0; i < n; i++)
		pm[i] = pm[i] & PC_PM_PRESENT ? pm[i] & PC_PM_PFN_MASK : 0;
}

void pc_region_destroy(struct pc_region *r)
{
	int owns_fd = r->fd > 0 ||
		      (r->fd == 0 && r->bk && (r->bk->flags & PC_BK_FILE));

	if (r->map && r->map_len)
		munmap(r->map, r->map_len);
	if (owns_fd)
		close(r->fd);
	if (r->path[0])
		unlink(r->path);
	free(r->pfn_before);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}
