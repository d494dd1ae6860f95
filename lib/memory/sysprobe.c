// SPDX-License-Identifier: GPL-2.0
/*
 * What the kernel says about memory: pagemap, kpageflags, smaps, status,
 * vmstat and sysfs.  Nothing here changes system state (pc_write_str is
 * there for the callers that own a knob).
 *
 * /proc/self/pagemap is opened on every call on purpose: an fd opened
 * before fork() would keep describing the parent's address space.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sysprobe.h"
#include "util.h"

size_t pc_page_size = 4096;

void pc_sys_init(void)
{
	long sz = sysconf(_SC_PAGESIZE);

	if (sz > 0)
		pc_page_size = sz;
}

int pc_pagemap_read(int fd, const void *addr, size_t n, uint64_t *out)
{
	size_t bytes = n * sizeof(*out);
	off_t off = (uintptr_t)addr / pc_page_size * sizeof(*out);
	ssize_t got = pread(fd, out, bytes, off);

	if (got < 0)
		return -errno;
	if (got != (ssize_t)bytes) {
		errno = EIO;
		return -EIO;
	}
	return 0;
}

int pc_pagemap_range(const void *addr, size_t n, uint64_t *out)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int rc, err;

	if (fd < 0)
		return -errno;
	rc = pc_pagemap_read(fd, addr, n, out);
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

uint64_t pc_pagemap(const void *addr)
{
	uint64_t ent;

	return pc_pagemap_range(addr, 1, &ent) ? 0 : ent;
}

uint64_t pc_pfn(const void *addr)
{
	uint64_t ent = pc_pagemap(addr);

	if (!(ent & PC_PM_PRESENT))
		return 0;
	return ent & PC_PM_PFN_MASK;
}

uint64_t *pc_pagemap_alloc(const void *addr, size_t n, int pfns)
{
	uint64_t *pm = pc_xmalloc(n * sizeof(*pm));
	size_t i;

	if (pc_pagemap_range(addr, n, pm))
		memset(pm, 0, n * sizeof(*pm));
	for (i = 0; pfns && i < n; i++)
		pm[i] = pm[i] & PC_PM_PRESENT ? pm[i] & PC_PM_PFN_MASK : 0;
	return pm;
}

/*
 * Without CAP_SYS_ADMIN the kernel reports PFN 0 for present pages, and
 * /proc/kpageflags is root-only.  Probe once with a page we touch.
 */
int pc_pfn_readable(void)
{
	static int readable = -1;
	static volatile char probe[64];
	uint64_t flags;

	if (readable >= 0)
		return readable;
	probe[0] = 1;
	readable = pc_pfn((const void *)probe) != 0 &&
		   pc_kpageflags(pc_pfn((const void *)probe), &flags) == 0;
	return readable;
}

int pc_kpageflags_pfns(const uint64_t *pfn, size_t n, uint64_t *flags)
{
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	size_t i, run, len;
	int ret = 0;

	memset(flags, 0, n * sizeof(*flags));
	if (fd < 0)
		return -1;
	for (i = 0; i < n && !ret; i += run) {
		run = 1;
		if (!pfn[i])
			continue;
		while (i + run < n && pfn[i + run] == pfn[i] + run)
			run++;
		len = run * sizeof(*flags);
		if (pread(fd, flags + i, len, pfn[i] * sizeof(*flags)) !=
		    (ssize_t)len)
			ret = -1;
	}
	close(fd);
	return ret;
}

int pc_kpageflags(uint64_t pfn, uint64_t *flags)
{
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	int ret = -1;

	if (fd < 0)
		return -1;
	if (pread(fd, flags, sizeof(*flags), pfn * sizeof(*flags)) ==
	    sizeof(*flags))
		ret = 0;
	close(fd);
	return ret;
}

size_t pc_pages_flagged(const void *addr, size_t n, int bit)
{
	uint64_t *pfn = pc_pagemap_alloc(addr, n, 1);
	uint64_t *kpf = pc_xmalloc(n * sizeof(*kpf));
	size_t i, hits = 0;

	pc_kpageflags_pfns(pfn, n, kpf);
	for (i = 0; i < n; i++)
		hits += pfn[i] && (kpf[i] >> bit & 1);
	free(kpf);
	free(pfn);
	return hits;
}

int pc_page_flag(const void *addr, int bit)
{
	uint64_t pfn = pc_pfn(addr), flags;

	if (!pfn || pc_kpageflags(pfn, &flags))
		return -1;
	return (flags >> bit) & 1;
}

/*
 * PFN of the page a read fault maps into a fresh private anonymous range
 * of @len bytes aligned to @len (MADV_HUGEPAGE when @len is a PMD), if
 * kpageflags says it is a zero page; 0 otherwise.
 */
static uint64_t read_faulted_zero_pfn(size_t len)
{
	char *map, *p;
	uint64_t pfn = 0, flags;

	map = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return 0;
	p = (char *)(((uintptr_t)map + len - 1) & ~(uintptr_t)(len - 1));
	if (len > pc_page_size)
		madvise(p, len, MADV_HUGEPAGE);
	(void)*(volatile char *)p;
	pfn = pc_pfn(p);
	if (pfn && (pc_kpageflags(pfn, &flags) ||
		    !(flags >> PC_KPF_ZERO_PAGE & 1)))
		pfn = 0;
	munmap(map, 2 * len);
	return pfn;
}

uint64_t pc_zero_pfn(void)
{
	static uint64_t pfn = -1;

	if (pfn == (uint64_t)-1)
		pfn = read_faulted_zero_pfn(pc_page_size);
	return pfn;
}

uint64_t pc_huge_zero_pfn(size_t pmd_size)
{
	static uint64_t pfn = -1;

	if (pfn == (uint64_t)-1)
		pfn = read_faulted_zero_pfn(pmd_size);
	return pfn;
}

const char *pc_zero_page_name(uint64_t pfn, uint64_t *first_pfn)
{
	size_t pmd = pc_page_size * (pc_page_size / sizeof(uint64_t));
	uint64_t huge, dummy;

	if (!first_pfn)
		first_pfn = &dummy;
	if (!pfn)
		return NULL;
	*first_pfn = pc_zero_pfn();
	if (pfn == *first_pfn)
		return "the shared zero page";
	huge = pc_huge_zero_pfn(pmd);
	*first_pfn = huge;
	if (huge && pfn >= huge && pfn < huge + pmd / pc_page_size)
		return "the huge zero page";
	return NULL;
}

/* "55a0c0000000-55a0c0021000 rw-p ..." starts a VMA in smaps. */
static int smaps_vma_header(const char *line, uintptr_t *start,
			    uintptr_t *end)
{
	unsigned long s, e;

	if (sscanf(line, "%lx-%lx ", &s, &e) != 2)
		return 0;
	*start = s;
	*end = e;
	return 1;
}

/* "Name:   123 kB" -> 123 when the name is @field. */
static int smaps_field_kb(const char *line, const char *field, long *kb)
{
	size_t n = strlen(field);

	if (strncmp(line, field, n) || line[n] != ':')
		return 0;
	return sscanf(line + n + 1, "%ld", kb) == 1;
}

long pc_smaps_kb(const void *addr, const char *field)
{
	uintptr_t a = (uintptr_t)addr, start, end;
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	int inside = 0;
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (smaps_vma_header(line, &start, &end)) {
			if (inside)
				break;
			inside = a >= start && a < end;
			continue;
		}
		if (inside && smaps_field_kb(line, field, &kb))
			break;
	}
	fclose(f);
	return kb;
}

int pc_vma_count(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	int n = 0, c;

	if (!f)
		return -1;
	while ((c = getc(f)) != EOF)
		if (c == '\n')
			n++;
	fclose(f);
	return n;
}

/* Find "name: value" in a /proc file and return the number after it. */
static long long proc_field(const char *path, const char *name, char sep)
{
	size_t n = strlen(name);
	long long val = -1;
	char line[256];
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, n) || line[n] != sep)
			continue;
		if (sscanf(line + n + 1, "%lld", &val) != 1)
			val = -1;
		break;
	}
	fclose(f);
	return val;
}

long pc_status_kb(int pid, const char *field)
{
	char path[64];

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	return proc_field(path, field, ':');
}

long long pc_vmstat(const char *name)
{
	return proc_field("/proc/vmstat", name, ' ');
}

long long pc_meminfo_kb(const char *name)
{
	return proc_field("/proc/meminfo", name, ':');
}

int pc_task_times(const char *path, char *state, long long *user_ms,
		  long long *system_ms)
{
	unsigned long long utime, stime;
	long hz = sysconf(_SC_CLK_TCK);
	char stat[512];
	const char *p;

	/* the name in parentheses may hold spaces: parse after its ')' */
	if (pc_read_line(path, stat, sizeof(stat)) || !(p = strrchr(stat, ')')) ||
	    sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   state, &utime, &stime) != 3 || hz <= 0)
		return -1;
	*user_ms = (long long)(utime * 1000 / hz);
	*system_ms = (long long)(stime * 1000 / hz);
	return 0;
}

int pc_read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!len)
		return -EINVAL;
	buf[0] = '\0';
	if (!f)
		return -errno;
	if (!fgets(buf, len, f)) {
		int err = ferror(f) ? -EIO : 0;

		fclose(f);
		buf[0] = '\0';
		return err;
	}
	fclose(f);
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

int pc_write_str(const char *path, const char *val)
{
	size_t len = strlen(val);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	err = n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
	close(fd);
	return err;
}

int pc_sysfs_selected(const char *path, char *buf, size_t len)
{
	char line[256], *open_br, *close_br;
	size_t n;
	int err = pc_read_line(path, line, sizeof(line));

	if (err)
		return err;
	open_br = strchr(line, '[');
	close_br = open_br ? strchr(open_br, ']') : NULL;
	if (!close_br)
		return -EINVAL;
	n = close_br - open_br - 1;
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, open_br + 1, n);
	buf[n] = '\0';
	return 0;
}

int pc_swap_enabled(void)
{
	pc_vm_hw_wait();
	return pc_meminfo_kb("SwapTotal") > 0;
}

#define VM_HW_ENV "PINCHECK_VM_HW"
#define VM_HW_WAIT_S 300	/* at nice 19 behind busy tests: generous */

const char *pc_vm_hw_wait(void)
{
	static char why[PATH_MAX + 96];
	const char *dir = getenv(VM_HW_ENV);
	char path[PATH_MAX];
	unsigned int ms;

	if (!dir || !*dir)
		return NULL;
	if (why[0])
		return why;	/* waited in vain once: do not wait again */
	snprintf(path, sizeof(path), "%s/ready", dir);
	for (ms = 0; ms < VM_HW_WAIT_S * 1000; ms += 20) {
		if (!access(path, F_OK))
			return NULL;
		usleep(20 * 1000);
	}
	snprintf(why, sizeof(why),
		 "the VM's hardware setup did not finish within %d s (%s missing; see hw.log and console.log)",
		 VM_HW_WAIT_S, path);
	return why;
}

int pc_dir_supports_odirect(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/.pincheck-probe-%d", dir,
		     (int)getpid()) >= (int)sizeof(path))
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return 0;
	close(fd);
	unlink(path);
	return 1;
}

/*
 * The directory for file backings: $PINCHECK_TMPDIR (default /var/tmp)
 * when it takes O_DIRECT files, else the current directory if that does,
 * else $PINCHECK_TMPDIR anyway (the O_DIRECT engine then skips by itself).
 */
const char *pc_test_dir(void)
{
	static char dir[PATH_MAX];
	const char *want = getenv("PINCHECK_TMPDIR");
	char cwd[PATH_MAX];

	if (dir[0])
		return dir;
	if (!want || !*want)
		want = "/var/tmp";
	snprintf(dir, sizeof(dir), "%s", want);
	if (pc_dir_supports_odirect(want))
		return dir;
	if (getcwd(cwd, sizeof(cwd)) && pc_dir_supports_odirect(cwd)) {
		snprintf(dir, sizeof(dir), "%s", cwd);
		if (getenv("PINCHECK_TMPDIR"))
			fprintf(stderr,
				"pincheck: PINCHECK_TMPDIR=%s does not support O_DIRECT files, using %s\n",
				want, dir);
	}
	return dir;
}
