// SPDX-License-Identifier: GPL-2.0
/*
 * Backings made of base pages and hugetlb pages: anon, untouched,
 * zeropage, swapped, hugetlb-<N>kB.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backing_internal.h"
#include "pattern.h"
#include "sysprobe.h"

/* BK_SMALL_PAGES private anonymous pages that never become a THP. */
static int map_small_anon(struct pc_region *r, char *why, size_t whylen)
{
	size_t len = BK_SMALL_PAGES * pc_page_size;
	int ret = bk_map_anon_aligned(r, len, pc_page_size, why, whylen);

	if (ret)
		return ret;
	if (madvise(r->map, len, MADV_NOHUGEPAGE) && errno != EINVAL)
		return bk_errno(why, whylen, "madvise(MADV_NOHUGEPAGE)");
	return 0;
}

/* Every page present, anonymous, and not part of a THP. */
static int check_anon_pages(const struct bk_pages *p, char *why,
			    size_t whylen)
{
	size_t i;
	int ret;

	for (i = 0; i < p->n; i++)
		if (!(p->pm[i] & PC_PM_PRESENT))
			return bk_error(why, whylen,
					"page %zu not present after CPU fill",
					i);
	ret = bk_need_kpf(p, "anonymous base pages", why, whylen);
	if (ret)
		return ret;
	for (i = 0; i < p->n; i++) {
		if (!bk_kpf(p, i, PC_KPF_ANON))
			return bk_error(why, whylen,
					"page %zu is not anonymous (kpageflags %#llx)",
					i, (unsigned long long)p->kpf[i]);
		if (bk_kpf(p, i, PC_KPF_THP))
			return bk_error(why, whylen,
					"page %zu is part of a THP despite MADV_NOHUGEPAGE",
					i);
	}
	return 0;
}

int bk_anon_create(const struct pc_backing *bk, struct pc_region *r,
		   unsigned int gen, char *why, size_t whylen)
{
	struct bk_pages p;
	int ret = map_small_anon(r, why, whylen);

	(void)bk;
	if (ret)
		return ret;
	pc_region_cpu_write(r, 0, r->len, gen);
	ret = bk_pages_read(&p, r->mem, BK_SMALL_PAGES, why, whylen);
	if (ret)
		return ret;
	ret = check_anon_pages(&p, why, whylen);
	bk_pages_free(&p);
	return ret;
}

int bk_untouched_create(const struct pc_backing *bk, struct pc_region *r,
			unsigned int gen, char *why, size_t whylen)
{
	struct bk_pages p;
	size_t i;
	int ret = map_small_anon(r, why, whylen);

	(void)bk;
	(void)gen;
	if (ret)
		return ret;
	ret = bk_pages_read(&p, r->mem, BK_SMALL_PAGES, why, whylen);
	if (ret)
		return ret;
	for (i = 0; i < p.n && !ret; i++)
		if (p.pm[i] & (PC_PM_PRESENT | PC_PM_SWAPPED))
			ret = bk_error(why, whylen,
				       "page %zu of never-touched memory is populated (pagemap %#llx)",
				       i, (unsigned long long)p.pm[i]);
	bk_pages_free(&p);
	return ret;
}

int bk_zeropage_create(const struct pc_backing *bk, struct pc_region *r,
		       unsigned int gen, char *why, size_t whylen)
{
	struct bk_pages p;
	size_t i;
	int ret = map_small_anon(r, why, whylen);

	(void)bk;
	(void)gen;
	if (ret)
		return ret;
	bk_read_fault(r->mem, r->len);
	ret = bk_pages_read(&p, r->mem, BK_SMALL_PAGES, why, whylen);
	if (ret)
		return ret;
	ret = bk_need_kpf(&p, "the shared zero page", why, whylen);
	for (i = 0; i < p.n && !ret; i++) {
		if (!(p.pm[i] & PC_PM_PRESENT))
			ret = bk_error(why, whylen,
				       "page %zu not present after a read fault",
				       i);
		else if (!bk_kpf(&p, i, PC_KPF_ZERO_PAGE))
			ret = bk_skip(why, whylen,
				      "kernel maps no shared zero page here (mm_forbids_zeropage / pvm_no_zero_page)");
	}
	bk_pages_free(&p);
	return ret;
}

/* 1 when every page of @r is a swap entry in pagemap, -1 on error. */
static int all_swapped(const struct pc_region *r, char *why, size_t whylen)
{
	struct bk_pages p;
	size_t i;
	int ret = bk_pages_read(&p, r->mem, r->len / pc_page_size, why,
				whylen);

	if (ret)
		return ret;
	ret = 1;
	for (i = 0; i < p.n; i++)
		if (!(p.pm[i] & PC_PM_SWAPPED))
			ret = 0;
	bk_pages_free(&p);
	return ret;
}

int bk_swapped_create(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen)
{
	const struct timespec pause = { 0, 20 * 1000 * 1000 };
	int ret, tries;

	(void)bk;
	if (!pc_swap_enabled())
		return bk_skip(why, whylen,
			       "no swap: run_tests.sh sets up zram swap, or swapon a device");
	ret = map_small_anon(r, why, whylen);
	if (ret)
		return ret;
	pc_region_cpu_write(r, 0, r->len, gen);
	for (tries = 0; tries < 5; tries++) {
		if (madvise(r->mem, r->len, MADV_PAGEOUT)) {
			if (errno == EINVAL)
				return bk_skip(why, whylen,
					       "MADV_PAGEOUT not supported by this kernel");
			return bk_errno(why, whylen, "madvise(MADV_PAGEOUT)");
		}
		ret = all_swapped(r, why, whylen);
		if (ret)
			return ret < 0 ? ret : 0;
		nanosleep(&pause, NULL);
	}
	return bk_skip(why, whylen,
		       "MADV_PAGEOUT did not swap the pages out");
}

static int hugetlb_free_pages(size_t size, long *nr, long *free_pages)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), BK_HUGETLB_DIR "/hugepages-%zukB/%s",
		 size / 1024, "free_hugepages");
	if (pc_read_line(path, buf, sizeof(buf)))
		return -1;
	*free_pages = atol(buf);
	snprintf(path, sizeof(path), BK_HUGETLB_DIR "/hugepages-%zukB/%s",
		 size / 1024, "nr_hugepages");
	if (pc_read_line(path, buf, sizeof(buf)))
		return -1;
	*nr = atol(buf);
	return 0;
}

static int map_hugetlb(struct pc_region *r, size_t size, char *why,
		       size_t whylen)
{
	unsigned int shift = __builtin_ctzll(size);
	char *p;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
		 (int)(shift << MAP_HUGE_SHIFT), -1, 0);
	if (p == MAP_FAILED) {
		if (errno == ENOMEM || errno == EINVAL)
			return bk_skip(why, whylen,
				       "could not map a %zukB huge page: %s",
				       size / 1024, strerror(errno));
		return bk_errno(why, whylen, "mmap(MAP_HUGETLB)");
	}
	r->map = r->mem = p;
	r->map_len = r->len = size;
	return 0;
}

int bk_hugetlb_create(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen)
{
	size_t size = bk->size;
	long nr, free_pages;
	struct bk_pages p;
	int ret;

	if (hugetlb_free_pages(size, &nr, &free_pages))
		return bk_skip(why, whylen, "no hugetlb %zukB pool here",
			       size / 1024);
	if (free_pages < 2)
		return bk_skip(why, whylen,
			       "%ld free %zukB huge pages, need 2: echo %ld > "
			       BK_HUGETLB_DIR "/hugepages-%zukB/nr_hugepages (run_tests.sh does this)",
			       free_pages, size / 1024, nr + 2 - free_pages,
			       size / 1024);
	ret = map_hugetlb(r, size, why, whylen);
	if (ret)
		return ret;
	pc_region_cpu_write(r, 0, r->len, gen);
	ret = bk_pages_read(&p, r->mem, 1, why, whylen);
	if (ret)
		return ret;
	if (!(p.pm[0] & PC_PM_PRESENT))
		ret = bk_error(why, whylen, "huge page not present after fill");
	if (!ret)
		ret = bk_need_kpf(&p, "hugetlb pages", why, whylen);
	if (!ret && !bk_kpf(&p, 0, PC_KPF_HUGE))
		ret = bk_error(why, whylen,
			       "MAP_HUGETLB page lacks KPF_HUGE (kpageflags %#llx)",
			       (unsigned long long)p.kpf[0]);
	bk_pages_free(&p);
	return ret;
}
