/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the kernel says about memory: pagemap, kpageflags, smaps, status,
 * sysfs.  Nothing here changes system state.
 */
#ifndef PINCHECK_SYSPROBE_H
#define PINCHECK_SYSPROBE_H

#include <stddef.h>
#include <stdint.h>

/* /proc/self/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PC_PM_PRESENT	(1ULL << 63)
#define PC_PM_SWAPPED	(1ULL << 62)
#define PC_PM_FILE	(1ULL << 61)	/* file-page or shared-anon */
#define PC_PM_EXCLUSIVE	(1ULL << 56)
#define PC_PM_SOFTDIRTY	(1ULL << 55)
#define PC_PM_PFN_MASK	((1ULL << 55) - 1)

/* /proc/kpageflags bits */
#define PC_KPF_ANON		12
#define PC_KPF_COMPOUND_HEAD	15
#define PC_KPF_COMPOUND_TAIL	16
#define PC_KPF_HUGE		17
#define PC_KPF_THP		22
#define PC_KPF_ZERO_PAGE	24

extern size_t pc_page_size;	/* base page size, set by pc_sys_init() */

void pc_sys_init(void);

/* Raw pagemap entry for @addr; 0 when unreadable. */
uint64_t pc_pagemap(const void *addr);

/*
 * The raw pagemap entries of the @n pages from @addr on (the one reader of
 * /proc/self/pagemap); 0, or -errno (errno set; -EIO for a short read).
 */
int pc_pagemap_range(const void *addr, size_t n, uint64_t *out);
/* The same through an open /proc/self/pagemap (a loop that reads often). */
int pc_pagemap_read(int fd, const void *addr, size_t n, uint64_t *out);

/* PFN behind @addr, 0 when not present or not readable (needs root). */
uint64_t pc_pfn(const void *addr);
/*
 * The raw pagemap entries (or, @pfns, what pc_pfn says) of the @n pages
 * from @addr in one read, in a new array (all 0 where it cannot be read).
 */
uint64_t *pc_pagemap_alloc(const void *addr, size_t n, int pfns);

/* 1 when PFNs can be read (CAP_SYS_ADMIN), 0 otherwise. */
int pc_pfn_readable(void);

/*
 * The shared zero page's PFN, from pagemap of a read-faulted page of a
 * fresh private anonymous mapping (0 when there is none or PFNs are
 * hidden); the huge zero page's first PFN likewise, from a read-faulted
 * MADV_HUGEPAGE range of @pmd_size bytes.
 */
uint64_t pc_zero_pfn(void);
uint64_t pc_huge_zero_pfn(size_t pmd_size);

/*
 * "the shared zero page", "the huge zero page" or NULL for @pfn; sets
 * *first_pfn (may be NULL) to that zero page's (first) PFN.
 */
const char *pc_zero_page_name(uint64_t pfn, uint64_t *first_pfn);

/* kpageflags of @pfn; returns -1 when unreadable. */
int pc_kpageflags(uint64_t pfn, uint64_t *flags);
/*
 * kpageflags of @n pages by PFN (0: no page, flags 0), one read per run
 * of consecutive PFNs (a THP is one); -1 when some could not be read.
 */
int pc_kpageflags_pfns(const uint64_t *pfn, size_t n, uint64_t *flags);

/* Is kpageflags bit @bit set for the page behind @addr (1/0, -1 unknown). */
int pc_page_flag(const void *addr, int bit);
/* How many of the @n pages from @addr have kpageflags bit @bit (known set). */
size_t pc_pages_flagged(const void *addr, size_t n, int bit);

/* smaps field (in kB) of the VMA containing @addr, e.g. "AnonHugePages". */
long pc_smaps_kb(const void *addr, const char *field);

/* Number of VMAs in /proc/self/maps. */
int pc_vma_count(void);

/* /proc/<pid>/status field in kB ("VmPin"); pid 0 = self. -1 if absent. */
long pc_status_kb(int pid, const char *field);

/* /proc/vmstat counter, -1 if absent. */
long long pc_vmstat(const char *name);
/* /proc/meminfo field in kB ("SwapFree"), -1 if absent. */
long long pc_meminfo_kb(const char *name);

/* Read the first line of a file into @buf (newline stripped); -errno. */
int pc_read_line(const char *path, char *buf, size_t len);

/*
 * A task's state letter and CPU time in ms, user and system, from its
 * stat file @path (/proc/PID/stat, /proc/self/task/TID/stat); 0, or -1
 * when it cannot be read.
 */
int pc_task_times(const char *path, char *state, long long *user_ms,
		  long long *system_ms);

/* Write @val to a file; 0 or -errno. */
int pc_write_str(const char *path, const char *val);

/* The bracketed word of a sysfs selector ("always [madvise] never"). */
int pc_sysfs_selected(const char *path, char *buf, size_t len);

/* Does the kernel have swap space enabled (SwapTotal > 0)? */
int pc_swap_enabled(void);

/*
 * In pincheck's VM the modules, swap, soft-RoCE and the VFIO binding come
 * up in the background while the first tests run (PINCHECK_VM_HW names the
 * directory where the guest reports them).  Wait for them: NULL when they
 * are there (or outside such a VM), else why not.
 */
const char *pc_vm_hw_wait(void);

/* Can a file be created and opened with O_DIRECT in @dir? 1 or 0. */
int pc_dir_supports_odirect(const char *dir);

/* Directory for test files that supports O_DIRECT (PINCHECK_TMPDIR). */
const char *pc_test_dir(void);

#endif
