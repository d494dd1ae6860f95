/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by lib/backing*.c only: helpers to map memory, look at it through
 * pagemap/kpageflags, and report skip reasons.  Not part of the API.
 */
#ifndef PINCHECK_BACKING_INTERNAL_H
#define PINCHECK_BACKING_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "backing.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

#define BK_THP_DIR "/sys/kernel/mm/transparent_hugepage"
#define BK_HUGETLB_DIR "/sys/kernel/mm/hugepages"
#define BK_SMALL_PAGES 4	/* base pages in the small backings */

/* What the kernel reports for each base page of a range. */
struct bk_pages {
	size_t n;
	uint64_t *pm;		/* pagemap entries */
	uint64_t *kpf;		/* kpageflags, 0 where not present */
	int have_kpf;		/* PFNs and kpageflags were readable */
};

/* Read pagemap (and kpageflags when readable); 0 or -1 with @why. */
int bk_pages_read(struct bk_pages *p, const void *addr, size_t n,
		  char *why, size_t whylen);
void bk_pages_free(struct bk_pages *p);

static inline int bk_kpf(const struct bk_pages *p, size_t i, int bit)
{
	return (p->kpf[i] >> bit) & 1;
}

/* Fill @why; return 1 (skip) or -1 (error). */
int bk_skip(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int bk_error(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* -1 with "@what: strerror(errno)". */
int bk_errno(char *why, size_t whylen, const char *what);
/* Skip unless kpageflags were read: "cannot verify @what without ...". */
int bk_need_kpf(const struct bk_pages *p, const char *what, char *why,
		size_t whylen);

/* Map @len bytes of private anonymous memory aligned to @align into @r. */
int bk_map_anon_aligned(struct pc_region *r, size_t len, size_t align,
			char *why, size_t whylen);
/* Read one byte of every base page of [addr, addr + len). */
void bk_read_fault(const void *addr, size_t len);

/* PMD size of this kernel (hpage_pmd_size, or a guess from the page size). */
size_t bk_pmd_size(void);
/*
 * Is anonymous THP of @size allowed in MADV_HUGEPAGE regions (the per-size
 * knob, "inherit" meaning the top-level one)?  0, or 1 with a skip reason
 * naming the command that enables it (@mthp: word it for an mTHP size).
 */
int bk_thp_size_allowed(size_t size, int mthp, char *why, size_t whylen);

/* The create functions, one per kind of backing. */
int bk_anon_create(const struct pc_backing *bk, struct pc_region *r,
		   unsigned int gen, char *why, size_t whylen);
int bk_untouched_create(const struct pc_backing *bk, struct pc_region *r,
			unsigned int gen, char *why, size_t whylen);
int bk_zeropage_create(const struct pc_backing *bk, struct pc_region *r,
		       unsigned int gen, char *why, size_t whylen);
int bk_swapped_create(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen);
int bk_hugetlb_create(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen);
int bk_thp_pmd_create(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen);
int bk_thp_pte_create(const struct pc_backing *bk, struct pc_region *r,
		      unsigned int gen, char *why, size_t whylen);
int bk_thp_single_create(const struct pc_backing *bk, struct pc_region *r,
			 unsigned int gen, char *why, size_t whylen);
int bk_mthp_create(const struct pc_backing *bk, struct pc_region *r,
		   unsigned int gen, char *why, size_t whylen);
int bk_huge_zeropage_create(const struct pc_backing *bk, struct pc_region *r,
			    unsigned int gen, char *why, size_t whylen);
int bk_memfd_create(const struct pc_backing *bk, struct pc_region *r,
		    unsigned int gen, char *why, size_t whylen);
int bk_file_create(const struct pc_backing *bk, struct pc_region *r,
		   unsigned int gen, char *why, size_t whylen);

#endif
