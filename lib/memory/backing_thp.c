// SPDX-License-Identifier: GPL-2.0
/*
 * Large-folio backings: a PMD-size THP mapped by a PMD (thp-pmd), the same
 * folio mapped by PTEs (thp-pte), one subpage of it left mapped
 * (thp-single), each anonymous mTHP size (mthp-<N>kB) and the huge zero
 * page (huge-zeropage).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backing_internal.h"
#include "pattern.h"
#include "sysprobe.h"

/* Pages [0, n) are one present, physically contiguous large folio. */
static int check_one_folio(const struct bk_pages *p, size_t n,
			   const char *what, char *why, size_t whylen)
{
	uint64_t pfn0 = p->pm[0] & PC_PM_PFN_MASK;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!(p->pm[i] & PC_PM_PRESENT))
			return bk_error(why, whylen,
					"page %zu of the %s is not present",
					i, what);
		if ((p->pm[i] & PC_PM_PFN_MASK) != pfn0 + i)
			return bk_error(why, whylen,
					"page %zu of the %s is not physically contiguous with page 0",
					i, what);
		if (!bk_kpf(p, i, PC_KPF_THP))
			return bk_error(why, whylen,
					"page %zu of the %s is not part of a THP (kpageflags %#llx)",
					i, what, (unsigned long long)p->kpf[i]);
		if (!bk_kpf(p, i, i ? PC_KPF_COMPOUND_TAIL :
				      PC_KPF_COMPOUND_HEAD))
			return bk_error(why, whylen,
					"page %zu of the %s is not a compound %s",
					i, what, i ? "tail" : "head");
	}
	return 0;
}

static int madvise_hugepage(struct pc_region *r, char *why, size_t whylen)
{
	if (!madvise(r->map, r->map_len, MADV_HUGEPAGE))
		return 0;
	if (errno == EINVAL)
		return bk_skip(why, whylen,
			       "MADV_HUGEPAGE not supported by this kernel");
	return bk_errno(why, whylen, "madvise(MADV_HUGEPAGE)");
}

/* Map one PMD-size THP, fill it with @gen, check smaps saw it. */
static int map_pmd_thp(const struct pc_backing *bk, struct pc_region *r,
		       unsigned int gen, char *why, size_t whylen)
{
	size_t size = bk->size;
	long kb;
	int ret;

	ret = bk_thp_size_allowed(size, 0, why, whylen);
	if (!ret)
		ret = bk_map_anon_aligned(r, size, size, why, whylen);
	if (!ret)
		ret = madvise_hugepage(r, why, whylen);
	if (ret)
		return ret;
	pc_region_cpu_write(r, 0, size, gen);
	kb = pc_smaps_kb(r->mem, "AnonHugePages");
	if (kb < (long)(size / 1024))
		return bk_skip(why, whylen,
			       "no THP allocated: memory fragmented?");
	return 0;
}

/* The whole folio behind r->map is still one THP. */
static int check_pmd_folio(const struct pc_backing *bk, struct pc_region *r,
			   const char *what, char *why, size_t whylen)
{
	size_t n = bk->size / pc_page_size;
	struct bk_pages p;
	int ret = bk_pages_read(&p, r->map, n, why, whylen);

	if (ret)
		return ret;
	ret = bk_need_kpf(&p, what, why, whylen);
	if (!ret)
		ret = check_one_folio(&p, n, what, why, whylen);
	bk_pages_free(&p);
	return ret;
}

int bk_thp_pmd_create(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen)
{
	int ret = map_pmd_thp(bk, r, gen, why, whylen);

	if (ret)
		return ret;
	return check_pmd_folio(bk, r, "PMD-mapped THP", why, whylen);
}

/*
 * mprotect() on one subpage splits the VMA and with it the PMD mapping;
 * the folio stays whole and is now mapped by PTEs.
 */
static int split_pmd_mapping(struct pc_region *r, char *why, size_t whylen)
{
	char *sub = r->map + pc_page_size;
	long kb;

	if (mprotect(sub, pc_page_size, PROT_READ))
		return bk_errno(why, whylen, "mprotect(PROT_READ)");
	if (mprotect(sub, pc_page_size, PROT_READ | PROT_WRITE))
		return bk_errno(why, whylen, "mprotect(PROT_READ|PROT_WRITE)");
	kb = pc_smaps_kb(r->map, "AnonHugePages");
	if (kb != 0)
		return bk_error(why, whylen,
				"mprotect did not split the PMD mapping (AnonHugePages %ld kB)",
				kb);
	return 0;
}

/*
 * khugepaged would collapse a PTE-mapped THP (or one subpage left of it,
 * max_ptes_none permitting) into a new PMD-mapped THP behind the test's
 * back: seen in a guest as "subpage 1 still mapped after MADV_DONTNEED".
 * MADV_NOHUGEPAGE keeps it away and leaves the folio as it is.
 */
static int keep_khugepaged_away(struct pc_region *r, char *why, size_t whylen)
{
	if (madvise(r->map, r->map_len, MADV_NOHUGEPAGE))
		return bk_errno(why, whylen, "madvise(MADV_NOHUGEPAGE)");
	return 0;
}

int bk_thp_pte_create(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen)
{
	int ret = map_pmd_thp(bk, r, gen, why, whylen);

	if (!ret)
		ret = keep_khugepaged_away(r, why, whylen);
	if (!ret)
		ret = split_pmd_mapping(r, why, whylen);
	if (ret)
		return ret;
	return check_pmd_folio(bk, r, "PTE-mapped THP", why, whylen);
}

/* Page 0 still mapped and part of a large folio, the rest unmapped. */
static int check_single_subpage(const struct pc_backing *bk,
				struct pc_region *r, char *why, size_t whylen)
{
	size_t i, n = bk->size / pc_page_size;
	struct bk_pages p;
	int ret = bk_pages_read(&p, r->map, n, why, whylen);

	if (ret)
		return ret;
	if (!(p.pm[0] & PC_PM_PRESENT))
		ret = bk_error(why, whylen, "the kept subpage is not present");
	for (i = 1; i < n && !ret; i++)
		if (p.pm[i] & PC_PM_PRESENT)
			ret = bk_error(why, whylen,
				       "subpage %zu still mapped after MADV_DONTNEED",
				       i);
	if (!ret)
		ret = bk_need_kpf(&p, "a THP subpage", why, whylen);
	if (!ret && !bk_kpf(&p, 0, PC_KPF_THP) &&
	    !bk_kpf(&p, 0, PC_KPF_COMPOUND_HEAD) &&
	    !bk_kpf(&p, 0, PC_KPF_COMPOUND_TAIL))
		ret = bk_skip(why, whylen,
			      "the THP was split after MADV_DONTNEED of its other subpages");
	bk_pages_free(&p);
	return ret;
}

int bk_thp_single_create(const struct pc_backing *bk, struct pc_region *r,
			 unsigned int gen, char *why, size_t whylen)
{
	int ret = bk_thp_pte_create(bk, r, gen, why, whylen);

	if (ret)
		return ret;
	if (madvise(r->map + pc_page_size, r->map_len - pc_page_size,
		    MADV_DONTNEED))
		return bk_errno(why, whylen, "madvise(MADV_DONTNEED)");
	r->len = pc_page_size;
	return check_single_subpage(bk, r, why, whylen);
}

int bk_mthp_create(const struct pc_backing *bk, struct pc_region *r,
		   unsigned int gen, char *why, size_t whylen)
{
	size_t size = bk->size, n = size / pc_page_size;
	char detail[256];
	struct bk_pages p;
	int ret;

	ret = bk_thp_size_allowed(size, 1, why, whylen);
	if (!ret)
		ret = bk_map_anon_aligned(r, size, size, why, whylen);
	if (!ret)
		ret = madvise_hugepage(r, why, whylen);
	if (ret)
		return ret;
	pc_region_cpu_write(r, 0, size, gen);
	ret = bk_pages_read(&p, r->mem, n, why, whylen);
	if (ret)
		return ret;
	ret = bk_need_kpf(&p, "mTHP folios", why, whylen);
	if (!ret && check_one_folio(&p, n, "mTHP range", detail,
				    sizeof(detail)))
		ret = bk_skip(why, whylen,
			      "no %zukB mTHP allocated (%s): memory fragmented?",
			      size / 1024, detail);
	bk_pages_free(&p);
	return ret;
}

/* What a read fault mapped instead of the huge zero page. */
static const char *describe_not_huge_zero(const struct bk_pages *p)
{
	if (bk_kpf(p, 0, PC_KPF_ZERO_PAGE))
		return "the small zero page";
	if (bk_kpf(p, 0, PC_KPF_THP))
		return "an anonymous THP";
	if (bk_kpf(p, 0, PC_KPF_ANON))
		return "anonymous base pages";
	return "something else";
}

static int check_huge_zero(const struct pc_region *r, char *why,
			   size_t whylen)
{
	size_t i, n = r->map_len / pc_page_size;
	uint64_t pfn0;
	struct bk_pages p;
	int ret = bk_pages_read(&p, r->map, n, why, whylen);

	if (ret)
		return ret;
	ret = bk_need_kpf(&p, "the huge zero page", why, whylen);
	if (!ret && (!(p.pm[0] & PC_PM_PRESENT) ||
		     !bk_kpf(&p, 0, PC_KPF_ZERO_PAGE) ||
		     !bk_kpf(&p, 0, PC_KPF_THP)))
		ret = bk_skip(why, whylen,
			      "kernel gave no huge zero page: a read fault mapped %s (mm_forbids_zeropage / pvm_no_zero_page?)",
			      describe_not_huge_zero(&p));
	pfn0 = p.pm[0] & PC_PM_PFN_MASK;
	for (i = 1; i < n && !ret; i++)
		if (!bk_kpf(&p, i, PC_KPF_ZERO_PAGE) ||
		    (p.pm[i] & PC_PM_PFN_MASK) != pfn0 + i)
			ret = bk_error(why, whylen,
				       "page %zu is not part of the huge zero page mapped at page 0",
				       i);
	bk_pages_free(&p);
	return ret;
}

int bk_huge_zeropage_create(const struct pc_backing *bk,
			    struct pc_region *r, unsigned int gen, char *why,
			    size_t whylen)
{
	size_t size = bk->size;
	char buf[16];
	int ret;

	(void)gen;
	if (!pc_read_line(BK_THP_DIR "/use_zero_page", buf, sizeof(buf)) &&
	    !strcmp(buf, "0"))
		return bk_skip(why, whylen,
			       "huge zero page disabled: echo 1 > %s",
			       BK_THP_DIR "/use_zero_page");
	ret = bk_thp_size_allowed(size, 0, why, whylen);
	if (!ret)
		ret = bk_map_anon_aligned(r, size, size, why, whylen);
	if (!ret)
		ret = madvise_hugepage(r, why, whylen);
	if (ret)
		return ret;
	bk_read_fault(r->mem, r->len);
	return check_huge_zero(r, why, whylen);
}
