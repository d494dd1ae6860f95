// SPDX-License-Identifier: GPL-2.0
/*
 * file_pin: pinned MAP_SHARED file pages vs writeback and fsync (S16).
 *
 * A page-cache page that a device may write at any time needs dirty
 * tracking the device cannot give: writeback cleans and write-protects
 * the page, the device writes it behind the kernel's back, and fsync()
 * then has nothing to write.  Since 8ac268436e6d / a6e79df92e4a ("mm/gup:
 * disallow FOLL_LONGTERM GUP-nonfast / GUP-fast writing to file-backed
 * mappings", v6.5) the kernel refuses R/W FOLL_LONGTERM pins of shared
 * file mappings whose file system needs dirty tracking (ext4, xfs, btrfs)
 * and accepts them on tmpfs, memfd (shmem) and hugetlbfs; R/O long-term
 * pins are accepted everywhere (the expectations of the kernel's
 * tools/testing/selftests/mm/gup_longterm.c).  Short-term pins (O_DIRECT)
 * dirty the pages when the I/O completes and must reach the file.
 *
 *   file_pin/<scenario>/<fs>/<engine>
 *
 *   fs         testdir (pc_test_dir(): /var/tmp), ext4 and xfs (made by
 *              this binary on a loop device), tmpfs (/dev/shm), memfd
 *              (shmem), hugetlbfs (memfd_create(MFD_HUGETLB), 2 MiB)
 *   longterm-rw      R/W long-term pin of the MAP_SHARED mapping: refused
 *                    on ext4/xfs, accepted (and coherent with the file)
 *                    on tmpfs/memfd/hugetlbfs.  A kernel that accepts it
 *                    on ext4/xfs predates the policy: the case runs the
 *                    writeback rounds on that pin, then FAILs naming the
 *                    commits (configs/known-fixes) and what the rounds saw
 *   longterm-ro      R/O long-term pin: accepted everywhere; the device
 *                    sees CPU writes before and after writeback cleaned
 *                    the pinned page, and they reach the file
 *   dio-writeback    odirect: O_DIRECT reads INTO the MAP_SHARED mapping
 *                    (the device writes it), the CPU dirties other pages,
 *                    msync(MS_SYNC) / fsync / sync_file_range in turn; an
 *                    O_DIRECT re-read of the file after each sync must
 *                    hold the device's and the CPU's data
 *
 * Controls (PASS only when the check reports what it must):
 *   control-private-no-writeback  the same device write into a MAP_PRIVATE
 *                    mapping of the file: the O_DIRECT re-read must NOT
 *                    show it (the write went to an anonymous copy)
 *   control-policy-private  the same R/W long-term pin of a MAP_PRIVATE
 *                    mapping of the same file must be accepted: the
 *                    refusals seen on MAP_SHARED are the file-mapping
 *                    policy, not an engine that cannot pin that memory
 *
 * Every case also watches the kernel log (/dev/kmsg) for WARNING/BUG
 * lines while it runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blockdev.h"
#include "pincheck.h"

#define BINARY "file_pin"
#define TAG "fp"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif
#define FP_HUGE_SIZE (2UL << 20)
#define FP_PAGES 4		/* base pages of a region on other file systems */
#define FP_ROUNDS 6		/* device + CPU write + sync rounds */

#define TMPFS_MAGIC_NR 0x01021994
#define HUGETLBFS_MAGIC_NR 0x958458f6
#define EXT4_MAGIC_NR 0xef53
#define XFS_MAGIC_NR 0x58465342
#define BTRFS_MAGIC_NR 0x9123683e

#define KPF_DIRTY_BIT 4
#define FP_MAX_FOLIO_PAGES 512	/* a PMD of base pages */

/* The policy's commits (first release v6.5), for reports. */
#define POLICY_FIX \
	"8ac268436e6d / a6e79df92e4a (\"mm/gup: disallow FOLL_LONGTERM GUP-nonfast / GUP-fast writing to file-backed mappings\", v6.5)"
#define IOURING_FIX \
	"34ed8d0dcd69 (\"io_uring: rsrc: delegate VMA file-backed check to GUP\", v6.5)"

/* Generations of this test. */
enum {
	FP_GEN_INIT = PC_GEN_INIT,
	FP_GEN_DEV_FINAL = 30,
	FP_GEN_DEV_PIN = 31,
	FP_GEN_DEV_ROUND = 40,		/* + round */
	FP_GEN_CPU_ROUND = 50,		/* + round */
	FP_GEN_CPU_PINNED = 60,
	FP_GEN_CPU_CLEANED = 61,
};

/* ---- the file systems ---- */

enum fp_kind { FK_TESTDIR, FK_EXT4, FK_XFS, FK_TMPFS, FK_MEMFD, FK_HUGETLBFS,
	       FK_NR };

#define FK_DISK_MASK ((1u << FK_TESTDIR) | (1u << FK_EXT4) | (1u << FK_XFS))
#define FK_ALL_MASK ((1u << FK_NR) - 1)

/* Case ids carry these names; flags tell the harness what to wait for. */
static struct pc_backing kinds[FK_NR] = {
	[FK_TESTDIR] = { "testdir", PC_BK_FILE | PC_BK_SHARED, 0, NULL },
	[FK_EXT4] = { "ext4", PC_BK_FILE | PC_BK_SHARED, 0, NULL },
	[FK_XFS] = { "xfs", PC_BK_FILE | PC_BK_SHARED, 0, NULL },
	[FK_TMPFS] = { "tmpfs", PC_BK_FILE | PC_BK_SHARED, 0, NULL },
	[FK_MEMFD] = { "memfd", PC_BK_FILE | PC_BK_SHARED, 0, NULL },
	[FK_HUGETLBFS] = { "hugetlbfs",
			   PC_BK_FILE | PC_BK_SHARED | PC_BK_HUGETLB,
			   FP_HUGE_SIZE, NULL },
};

struct fs_spec {
	const char *fstype;
	const char *const *mkfs_args;
	size_t size;
};

/* inode tables and journal zeroed now, not by a kernel thread later */
static const char *const ext4_args[] = {
	"-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", NULL
};
static const char *const xfs_args[] = { "-K", NULL };

static const struct fs_spec fs_specs[FK_NR] = {
	[FK_EXT4] = { "ext4", ext4_args, 64 << 20 },
	[FK_XFS] = { "xfs", xfs_args, 320 << 20 },	/* mkfs.xfs: >= 300 MiB */
};

/* Made by main() before the harness runs; read-only in the cases. */
static struct pc_bdev devs[FK_NR];
static char setup_skip[256];

enum fs_class { FS_DIRTY_TRACKED, FS_NO_WRITEBACK, FS_UNKNOWN };

static enum fs_class classify(unsigned long magic)
{
	switch (magic) {
	case EXT4_MAGIC_NR:
	case XFS_MAGIC_NR:
	case BTRFS_MAGIC_NR:
		return FS_DIRTY_TRACKED;
	case TMPFS_MAGIC_NR:
	case HUGETLBFS_MAGIC_NR:
		return FS_NO_WRITEBACK;
	default:
		return FS_UNKNOWN;
	}
}

static const char *magic_name(unsigned long magic)
{
	switch (magic) {
	case EXT4_MAGIC_NR:
		return "ext2/3/4";
	case XFS_MAGIC_NR:
		return "xfs";
	case BTRFS_MAGIC_NR:
		return "btrfs";
	case TMPFS_MAGIC_NR:
		return "tmpfs";
	case HUGETLBFS_MAGIC_NR:
		return "hugetlbfs";
	default:
		return "unknown";
	}
}

/* ---- the kernel log ---- */

static int kmsg_fd = -1;

/* Start watching /dev/kmsg from its end; best effort. */
static void kmsg_watch(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd < 0) {
		pc_diag("kernel log not watched: /dev/kmsg: %s",
			strerror(errno));
		return;
	}
	lseek(kmsg_fd, 0, SEEK_END);
}

static int kmsg_bad(const char *rec)
{
	static const char *const bad[] = {
		"WARNING:", "BUG:", "Oops", "general protection",
		"list_del corruption", "refcount_t:", "Call Trace",
	};
	size_t i;

	for (i = 0; i < PC_ARRAY_SIZE(bad); i++)
		if (strstr(rec, bad[i]))
			return 1;
	return 0;
}

/* Fail the case when the kernel logged a warning or bug since kmsg_watch. */
static void kmsg_expect_clean(void)
{
	char rec[1024];
	const char *text;
	ssize_t n;

	if (kmsg_fd < 0)
		return;
	for (;;) {
		n = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)	/* overwritten records */
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		rec[strcspn(rec, "\n")] = '\0';
		text = strchr(rec, ';');
		text = text ? text + 1 : rec;
		if (kmsg_bad(text))
			pc_fail("kernel log during this case: %s", text);
	}
	close(kmsg_fd);
	kmsg_fd = -1;
	pc_diag("kernel log: no WARNING/BUG line during the case");
}

static void __attribute__((noreturn)) pass_clean(void)
{
	kmsg_expect_clean();
	pc_pass();
}

/* ---- the file and its mapping ---- */

struct fp_file {
	struct pc_region r;	/* the mapping and r.fd */
	enum fp_kind kind;
	char name[PATH_MAX];	/* what the file was created as (unlinked) */
	char reopen[64];	/* /proc/self/fd/N, for the re-reads */
	unsigned long magic;
	enum fs_class cls;
	int shared;
};

static const char *kind_dir(enum fp_kind k)
{
	switch (k) {
	case FK_TESTDIR:
		return pc_test_dir();
	case FK_EXT4:
	case FK_XFS:
		if (setup_skip[0])
			pc_skip("%s", setup_skip);
		if (!devs[k].ready)
			pc_skip("%s: %s", kinds[k].name, devs[k].why);
		return devs[k].mnt;
	case FK_TMPFS:
		return "/dev/shm";
	default:
		return NULL;
	}
}

static void open_memfd(struct fp_file *f)
{
	unsigned int flags = MFD_CLOEXEC;

	if (f->kind == FK_HUGETLBFS)
		flags |= MFD_HUGETLB | (21u << MFD_HUGE_SHIFT);
	f->r.fd = memfd_create("pincheck-file_pin", flags);
	if (f->r.fd < 0 && f->kind == FK_HUGETLBFS)
		pc_skip("memfd_create(MFD_HUGETLB, 2 MiB): %s (kernel without hugetlbfs or 2 MiB pages?)",
			strerror(errno));
	if (f->r.fd < 0)
		pc_fail_errno("memfd_create");
	snprintf(f->name, sizeof(f->name), "memfd");
}

static void open_dir_file(struct fp_file *f, const char *dir)
{
	struct statfs sfs;

	if (snprintf(f->name, sizeof(f->name), "%s/pincheck-file_pin-XXXXXX",
		     dir) >= (int)sizeof(f->name))
		pc_fail("path too long in %s", dir);
	f->r.fd = mkostemp(f->name, O_CLOEXEC);
	if (f->r.fd < 0)
		pc_skip("cannot create a file in %s: %s", dir, strerror(errno));
	unlink(f->name);	/* nothing left behind, however the case ends */
	if (f->kind == FK_TMPFS && !fstatfs(f->r.fd, &sfs) &&
	    sfs.f_type != TMPFS_MAGIC_NR)
		pc_skip("/dev/shm is not tmpfs here (magic 0x%lx): mount -t tmpfs shm /dev/shm",
			(unsigned long)sfs.f_type);
}

static void open_file(struct fp_file *f)
{
	const char *dir = kind_dir(f->kind);

	if (!dir)
		open_memfd(f);
	else
		open_dir_file(f, dir);
	/* re-opened through /proc: the O_DIRECT re-read's own descriptor */
	snprintf(f->reopen, sizeof(f->reopen), "/proc/self/fd/%d", f->r.fd);
}

/* Size the file; hugetlbfs reserves its huge page now or never. */
static void size_file(struct fp_file *f)
{
	if (f->kind == FK_HUGETLBFS) {
		if (fallocate(f->r.fd, 0, 0, f->r.len))
			pc_skip("no free 2 MiB huge page for a hugetlbfs file (%s): echo 8 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
				strerror(errno));
		return;
	}
	if (ftruncate(f->r.fd, f->r.len))
		pc_fail_errno("ftruncate");
}

/* Put FP_GEN_INIT in the file and on its storage, through a shared map. */
static void fill_file(struct fp_file *f)
{
	char *p = mmap(NULL, f->r.len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       f->r.fd, 0);

	if (p == MAP_FAILED)
		pc_fail_errno("mmap the file to fill it");
	pc_fill(p, 0, f->r.len, FP_GEN_INIT);
	if (msync(p, f->r.len, MS_SYNC))
		pc_fail_errno("msync after filling the file");
	munmap(p, f->r.len);
	if (fsync(f->r.fd))
		pc_fail_errno("fsync after filling the file");
}

/* Map the file (shared or private) and read-fault every page. */
static void map_file(struct fp_file *f)
{
	volatile const char *p;
	size_t i;

	p = mmap(NULL, f->r.len, PROT_READ | PROT_WRITE,
		 f->shared ? MAP_SHARED : MAP_PRIVATE, f->r.fd, 0);
	if (p == MAP_FAILED && f->kind == FK_HUGETLBFS && errno == ENOMEM)
		pc_skip("MAP_PRIVATE of a hugetlbfs file: no free 2 MiB huge page to reserve for its copies: echo 8 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
	if (p == MAP_FAILED)
		pc_fail_errno("mmap the file");
	f->r.map = f->r.mem = (char *)p;
	f->r.map_len = f->r.len;
	for (i = 0; i < f->r.len; i += pc_page_size)
		(void)p[i];
	f->r.gen = FP_GEN_INIT;
}

/* Base pages of the folio that starts the mapping (0: unknown). */
static size_t first_folio_pages(const struct fp_file *f)
{
	uint64_t flags, pfn = pc_pfn(f->r.mem);
	size_t n = 1;

	if (!pfn || pc_kpageflags(pfn, &flags))
		return 0;
	if (!(flags >> PC_KPF_COMPOUND_HEAD & 1))
		return 1;
	while (n < FP_MAX_FOLIO_PAGES && !pc_kpageflags(pfn + n, &flags) &&
	       (flags >> PC_KPF_COMPOUND_TAIL & 1))
		n++;
	return n;
}

static void file_create(struct fp_file *f, const struct pc_case *c,
			int shared)
{
	struct statfs sfs;

	memset(f, 0, sizeof(*f));
	f->r.fd = -1;
	f->r.bk = c->backing;
	f->kind = (enum fp_kind)(c->backing - kinds);
	f->shared = shared;
	f->r.len = f->kind == FK_HUGETLBFS ? FP_HUGE_SIZE :
					     FP_PAGES * pc_page_size;
	open_file(f);
	if (fstatfs(f->r.fd, &sfs))
		pc_fail_errno("fstatfs");
	f->magic = (unsigned long)sfs.f_type;
	f->cls = classify(f->magic);
	size_file(f);
	fill_file(f);
	map_file(f);
	pc_diag("file: %s on %s (magic 0x%lx), %zu KiB, mapped %s; its first folio: %zu page(s)",
		f->name, magic_name(f->magic),
		f->magic, f->r.len / 1024,
		shared ? "MAP_SHARED" : "MAP_PRIVATE", first_folio_pages(f));
}

static void file_destroy(struct fp_file *f)
{
	pc_region_destroy(&f->r);
}

/* The re-read must bypass the page cache: only where there is storage. */
static void need_storage_or_skip(const struct fp_file *f)
{
	if (f->cls == FS_NO_WRITEBACK)
		pc_skip("not applicable: %s has no backing store (the page cache is the file), so no O_DIRECT re-read can bypass it",
			magic_name(f->magic));
	if (f->cls == FS_UNKNOWN)
		pc_skip("%s: unknown file system (magic 0x%lx): set PINCHECK_TMPDIR to a directory on ext4/xfs/btrfs",
			f->name, f->magic);
}

/*
 * Read [off, off + len) of the file with O_DIRECT into @out (page
 * aligned).  Skips when the file system has no O_DIRECT.
 */
static void reread_direct(const struct fp_file *f, size_t off, size_t len,
			  void *out)
{
	size_t done = 0;
	ssize_t n;
	int fd = open(f->reopen, O_RDONLY | O_DIRECT | O_CLOEXEC);

	if (fd < 0 && errno == EINVAL)
		pc_skip("%s (%s) has no O_DIRECT: the re-read cannot bypass the page cache",
			f->name, magic_name(f->magic));
	if (fd < 0)
		pc_fail_errno("open the file O_DIRECT for the re-read");
	while (done < len) {
		n = pread(fd, (char *)out + done, len - done, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			if (n < 0)
				pc_fail_errno("O_DIRECT re-read of the file");
			pc_fail("O_DIRECT re-read: short read at 0x%zx",
				off + done);
		}
		done += n;
	}
	close(fd);
}

static void *aligned_buf(size_t len)
{
	void *p;

	if (posix_memalign(&p, pc_page_size, len))
		pc_fail("out of memory for a 0x%zx byte buffer", len);
	return p;
}

/* Does the engine's sample hold a word in [off, off + len)? */
static int sampled_in(const uint64_t *sample, size_t off, size_t len)
{
	size_t w;

	if (!sample)
		return 1;
	for (w = off / 8; w < (off + len) / 8; w++)
		if (sample[w / 64] >> (w % 64) & 1)
			return 1;
	return 0;
}

/*
 * Compare the file's content of [off, off + len), read with O_DIRECT, with
 * @gen (judging only @sample's words).  Returns the bad bytes.
 */
static size_t file_verify(const struct fp_file *f, size_t off, size_t len,
			  unsigned int gen, const uint64_t *sample,
			  const char *what)
{
	void *buf = aligned_buf(len);
	struct pc_check chk = {
		.what = what, .r = &f->r, .off = off, .len = len, .gen = gen,
		.side = PC_CHECK_FILE, .cpu = buf, .sample = sample,
	};
	size_t bad;

	reread_direct(f, off, len, buf);
	bad = pc_verify(&chk);
	free(buf);
	return bad;
}

/* The file's content through a fresh buffered descriptor. */
static size_t file_verify_buffered(const struct fp_file *f, unsigned int gen,
				   const uint64_t *sample, const char *what)
{
	void *buf = aligned_buf(f->r.len);
	struct pc_check chk = {
		.what = what, .r = &f->r, .len = f->r.len, .gen = gen,
		.side = PC_CHECK_FILE, .cpu = buf, .sample = sample,
	};
	int fd = open(f->reopen, O_RDONLY | O_CLOEXEC);
	size_t bad;

	if (fd < 0)
		pc_fail_errno("open the file for a buffered read");
	/* hugetlbfs has no read_iter on old kernels: map it instead */
	if (pread(fd, buf, f->r.len, 0) != (ssize_t)f->r.len) {
		void *p = mmap(NULL, f->r.len, PROT_READ, MAP_SHARED, fd, 0);

		if (p == MAP_FAILED)
			pc_fail_errno("read the file back");
		memcpy(buf, p, f->r.len);
		munmap(p, f->r.len);
	}
	close(fd);
	bad = pc_verify(&chk);
	free(buf);
	return bad;
}

/*
 * kpageflags dirty bit of the folio holding the page at @off of the
 * mapping (-1 unknown).  A large folio (xfs) keeps the bit in its head:
 * a tail page's own flags do not say.
 */
static int page_dirty(const struct fp_file *f, size_t off)
{
	uint64_t flags, pfn = pc_pfn(f->r.mem + off);
	unsigned int steps = 0;

	if (!pfn || pc_kpageflags(pfn, &flags))
		return -1;
	while (flags >> PC_KPF_COMPOUND_TAIL & 1) {
		if (++steps > FP_MAX_FOLIO_PAGES || !--pfn ||
		    pc_kpageflags(pfn, &flags))
			return -1;
	}
	return (int)(flags >> KPF_DIRTY_BIT & 1);
}

/* Sectors written to the block device under the file (-1 unknown). */
static long long dev_sectors_written(const struct fp_file *f)
{
	unsigned long long v[7];
	char path[96], line[256];
	struct stat st;

	if (fstat(f->r.fd, &st))
		return -1;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/stat",
		 major(st.st_dev), minor(st.st_dev));
	if (pc_read_line(path, line, sizeof(line)) < 0 ||
	    sscanf(line, "%llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		   &v[2], &v[3], &v[4], &v[5], &v[6]) != 7)
		return -1;
	return (long long)v[6];
}

/* ---- syncs ---- */

enum fp_sync { SYNC_MSYNC, SYNC_FSYNC, SYNC_RANGE, SYNC_NR };

static const char *const sync_names[SYNC_NR] = {
	"msync(MS_SYNC)", "fsync", "sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER)",
};

static void sync_file(const struct fp_file *f, enum fp_sync how)
{
	int rc;

	switch (how) {
	case SYNC_MSYNC:
		rc = msync(f->r.mem, f->r.len, MS_SYNC);
		break;
	case SYNC_FSYNC:
		rc = fsync(f->r.fd);
		break;
	default:
		rc = sync_file_range(f->r.fd, 0, f->r.len,
				     SYNC_FILE_RANGE_WAIT_BEFORE |
				     SYNC_FILE_RANGE_WRITE |
				     SYNC_FILE_RANGE_WAIT_AFTER);
	}
	if (rc)
		pc_fail("%s: %s", sync_names[how], strerror(errno));
}

/* ---- the writeback rounds on a pin ---- */

struct fp_rounds {
	unsigned int checks, bad;	/* O_DIRECT re-reads judged, failed */
	unsigned int dev_dirty, dev_clean, dev_unknown;	/* after dev writes */
	long long sectors;		/* written by the syncs, -1 unknown */
	char first[PC_REASON_MAX];	/* first mismatch */
	char first_what[160];
};

static void note_dirty(struct fp_rounds *res, int dirty)
{
	if (dirty > 0)
		res->dev_dirty++;
	else if (!dirty)
		res->dev_clean++;
	else
		res->dev_unknown++;
}

static void judge(struct fp_rounds *res, size_t bad, const char *what)
{
	res->checks++;
	if (!bad)
		return;
	if (!res->bad++) {
		snprintf(res->first, sizeof(res->first), "%s",
			 pc_mismatch_summary());
		snprintf(res->first_what, sizeof(res->first_what), "%s", what);
	}
}

/* Round @k: device writes page p, the CPU page q, one kind of sync. */
static void one_round(struct fp_file *f, struct pc_engine *e,
		      unsigned int k, struct fp_rounds *res)
{
	size_t pages = f->r.len / pc_page_size, ps = pc_page_size;
	size_t p = k % pages, q = (k + 1) % pages;
	enum fp_sync how = (enum fp_sync)(k % SYNC_NR);
	unsigned int dgen = FP_GEN_DEV_ROUND + k, cgen = FP_GEN_CPU_ROUND + k;
	char what[160];

	pc_dev_write_gen(e, p * ps, ps, dgen);
	note_dirty(res, page_dirty(f, p * ps));
	pc_region_cpu_write(&f->r, q * ps, ps, cgen);
	sync_file(f, how);
	if (sampled_in(e->sample, p * ps, ps)) {
		snprintf(what, sizeof(what),
			 "round %u: device write to page %zu, then %s, O_DIRECT re-read",
			 k, p, sync_names[how]);
		judge(res, file_verify(f, p * ps, ps, dgen, e->sample, what),
		      what);
	}
	snprintf(what, sizeof(what),
		 "round %u: CPU write to page %zu, then %s, O_DIRECT re-read",
		 k, q, sync_names[how]);
	judge(res, file_verify(f, q * ps, ps, cgen, NULL, what), what);
}

/*
 * On a R/W pin of @f: FP_ROUNDS rounds of device write + CPU write + sync
 * + O_DIRECT re-read, then a device write over everything, fsync and a
 * last re-read.  Collects the outcome in @res, never fails the case on a
 * mismatch.
 */
static void writeback_rounds(struct fp_file *f, struct pc_engine *e,
			     struct fp_rounds *res)
{
	long long s0 = dev_sectors_written(f), s1;
	size_t off;
	unsigned int k;

	memset(res, 0, sizeof(*res));
	for (k = 0; k < FP_ROUNDS; k++)
		one_round(f, e, k, res);
	pc_dev_write_gen(e, 0, f->r.len, FP_GEN_DEV_FINAL);
	for (off = 0; off < f->r.len; off += pc_page_size)
		note_dirty(res, page_dirty(f, off));
	sync_file(f, SYNC_FSYNC);
	judge(res, file_verify(f, 0, f->r.len, FP_GEN_DEV_FINAL, e->sample,
			       "last device write over the file, fsync, O_DIRECT re-read"),
	      "the last device write");
	s1 = dev_sectors_written(f);
	res->sectors = s0 >= 0 && s1 >= 0 ? s1 - s0 : -1;
}

static void print_rounds(const struct fp_rounds *res)
{
	pc_diag("writeback rounds: %u O_DIRECT re-reads judged, %u bad; page dirty after a device write: %u yes, %u no, %u unknown; %lld sectors written to the device meanwhile",
		res->checks, res->bad, res->dev_dirty, res->dev_clean,
		res->dev_unknown, res->sectors);
}

/* ---- pins and their refusal ---- */

/* Errors by which a kernel refuses a long-term pin of file memory. */
static int is_refusal(int rc)
{
	return rc == -EFAULT || rc == -EOPNOTSUPP || rc == -ENOSPC;
}

/* Pin; returns 0 or the refusal; any other error ends the case. */
static int pin_or_refusal(struct pc_engine *e, struct fp_file *f,
			  unsigned int flags)
{
	int rc = pc_engine_pin(e, f->r.mem, f->r.len, flags);

	if (!rc || is_refusal(rc))
		return rc;
	if (rc == -EINVAL && (e->ops == &pc_engine_gup_test ||
			      e->ops == &pc_engine_gup_test_fast))
		pc_skip("%s", e->err);
	if (rc == -ENOMEM || rc == -EPERM)
		pc_skip("pin: %s (RLIMIT_MEMLOCK too low? ulimit -l unlimited)",
			e->err);
	pc_fail("pin %s: %s", kinds[f->kind].name, e->err);
}

static const char *gup_path(const struct pc_engine_ops *ops)
{
	if (ops == &pc_engine_gup_test)
		return "pin_user_pages (GUP)";
	if (ops == &pc_engine_gup_test_fast)
		return "pin_user_pages_fast (GUP-fast)";
	if (ops == &pc_engine_rdma)
		return "ib_umem_get: pin_user_pages_fast (GUP-fast)";
	if (ops == &pc_engine_vfio || ops == &pc_engine_vfio_iommufd)
		return "pin_user_pages_remote (GUP)";
	return "io_uring buffer registration";
}

/* Unknown file systems are not asserted (as in gup_longterm.c). */
static void need_known_fs_or_skip(const struct fp_file *f)
{
	if (f->cls == FS_UNKNOWN)
		pc_skip("%s: file system with magic 0x%lx: the long-term pin policy is asserted on ext4, xfs, btrfs, tmpfs and hugetlbfs only",
			kinds[f->kind].name, f->magic);
}

/* An accepted R/W pin where the policy allows it: device data in the file. */
static void check_accepted_pin(struct fp_file *f, struct pc_engine *e)
{
	struct pc_check chk = {
		.what = "CPU read after a device write through the long-term pin",
		.r = &f->r, .len = f->r.len, .gen = FP_GEN_DEV_PIN,
		.side = PC_CHECK_CPU, .cpu = f->r.mem, .sample = e->sample,
	};
	uint64_t pfn0 = pc_pfn(f->r.mem);

	if (!pc_engine_can(e->ops, PC_CAP_DEV_WRITE)) {
		pc_region_cpu_write(&f->r, 0, f->r.len, FP_GEN_CPU_PINNED);
		pc_expect_device_sees(e, &f->r, FP_GEN_CPU_PINNED,
				      "device read of the long-term pinned file pages after a CPU write");
		pc_diag("accepted as expected on %s; the device reads the file's pages",
			magic_name(f->magic));
		return;
	}
	pc_dev_write_gen(e, 0, f->r.len, FP_GEN_DEV_PIN);
	pc_verify_or_fail(&chk);
	if (file_verify_buffered(f, FP_GEN_DEV_PIN, e->sample,
				 "read(2) of the file after a device write through the long-term pin"))
		pc_fail("%s", pc_mismatch_summary());
	pc_diag("accepted as expected on %s; the device's write is the file's content (page-cache page PFN 0x%llx%s)",
		magic_name(f->magic), (unsigned long long)pfn0,
		pc_pfn(f->r.mem) == pfn0 ? ", unchanged" : ", CHANGED");
}

/* The engine's sample outlives the pin (NULL: every word). */
static uint64_t *copy_sample(const struct pc_engine *e, size_t len)
{
	size_t bytes = (len / 8 + 63) / 64 * sizeof(uint64_t);
	uint64_t *copy;

	if (!e->sample)
		return NULL;
	copy = pc_xmalloc(bytes);
	memcpy(copy, e->sample, bytes);
	return copy;
}

/*
 * A R/W long-term pin of a dirty-tracked shared file mapping was accepted:
 * the kernel predates the policy.  Run the writeback rounds on the pin,
 * say what they saw, and fail naming the policy's commits.
 */
static void __attribute__((noreturn))
known_change(struct fp_file *f, struct pc_engine *e)
{
	struct fp_rounds res;
	uint64_t *sample;
	size_t after;

	pc_diag("kernel ACCEPTED a R/W FOLL_LONGTERM pin (%s) of a MAP_SHARED %s file: it predates %s",
		gup_path(e->ops), magic_name(f->magic), POLICY_FIX);
	if (!pc_engine_can(e->ops, PC_CAP_DEV_WRITE)) {
		kmsg_expect_clean();
		pc_fail("R/W long-term pin of MAP_SHARED %s accepted (kernel predates the v6.5 policy); %s cannot write, no writeback rounds",
			magic_name(f->magic), e->ops->name);
	}
	writeback_rounds(f, e, &res);
	print_rounds(&res);
	sample = copy_sample(e, f->r.len);
	if (pc_engine_unpin(e))
		pc_fail("unpin: %s", e->err);
	sync_file(f, SYNC_FSYNC);
	after = file_verify(f, 0, f->r.len, FP_GEN_DEV_FINAL, sample,
			    "after unpin (pages dirtied at unpin) and fsync");
	free(sample);
	pc_diag("after unpin and fsync the file %s the device's last write",
		after ? "still lacks" : "holds");
	kmsg_expect_clean();
	if (res.bad)
		pc_fail("R/W long-term pin of MAP_SHARED %s accepted (kernel predates the v6.5 policy) and data was lost while pinned: %u of %u O_DIRECT re-reads after a sync missed the pinned page's data (%u of %u device writes left the page clean: nothing for the sync to write); first: %s",
			magic_name(f->magic), res.bad, res.checks,
			res.dev_clean,
			res.dev_clean + res.dev_dirty + res.dev_unknown,
			res.first);
	pc_fail("R/W long-term pin of MAP_SHARED %s accepted (kernel predates the v6.5 policy); the %u O_DIRECT re-reads after syncs held the data",
		magic_name(f->magic), res.checks);
}

/* ---- the cases ---- */

static void longterm_rw_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct fp_file f;
	int rc;

	kmsg_watch();
	pc_engine_open_or_skip(&e, c->engine);
	file_create(&f, c, 1);
	need_known_fs_or_skip(&f);
	rc = pin_or_refusal(&e, &f, PC_PIN_RW);
	if (rc && f.cls == FS_NO_WRITEBACK)
		pc_fail("kernel refused a R/W long-term pin (%s) of MAP_SHARED %s: %s; gup_longterm expects it to work there",
			gup_path(e.ops), magic_name(f.magic), e.err);
	if (rc) {
		pc_diag("refused as expected: %s (%s)", e.err,
			rc == -EOPNOTSUPP && e.ops == &pc_engine_io_uring ?
			"io_uring's own check of file-backed buffers" :
			"the v6.5 GUP policy");
		pc_engine_close(&e);
		file_destroy(&f);
		pass_clean();
	}
	if (f.cls == FS_DIRTY_TRACKED)
		known_change(&f, &e);
	check_accepted_pin(&f, &e);
	pc_engine_close(&e);
	file_destroy(&f);
	pass_clean();
}

/* After a R/O pin: CPU writes before and after writeback reach both. */
static void ro_pin_writeback(struct fp_file *f, struct pc_engine *e)
{
	int dirty;

	pc_region_cpu_write(&f->r, 0, f->r.len, FP_GEN_CPU_PINNED);
	pc_expect_device_sees(e, &f->r, FP_GEN_CPU_PINNED,
			   "device read after a CPU write to the R/O-pinned page");
	sync_file(f, SYNC_MSYNC);
	dirty = page_dirty(f, 0);
	if (file_verify(f, 0, f->r.len, FP_GEN_CPU_PINNED, NULL,
			"O_DIRECT re-read after msync of the R/O-pinned pages"))
		pc_fail("%s", pc_mismatch_summary());
	/* writeback cleaned and write-protected the pinned page */
	pc_region_cpu_write(&f->r, 0, f->r.len, FP_GEN_CPU_CLEANED);
	pc_expect_device_sees(e, &f->r, FP_GEN_CPU_CLEANED,
			   "device read after a CPU write to the pinned page that writeback had cleaned");
	sync_file(f, SYNC_FSYNC);
	if (file_verify(f, 0, f->r.len, FP_GEN_CPU_CLEANED, NULL,
			"O_DIRECT re-read after fsync of the rewritten R/O-pinned pages"))
		pc_fail("%s", pc_mismatch_summary());
	pc_diag("page 0 dirty after msync: %s; CPU writes before and after writeback reached the device and the file",
		dirty < 0 ? "unknown" : dirty ? "yes (still)" : "no (cleaned)");
}

static void longterm_ro_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct fp_file f;
	int rc;

	kmsg_watch();
	pc_engine_open_or_skip(&e, c->engine);
	file_create(&f, c, 1);
	rc = pin_or_refusal(&e, &f, PC_PIN_RO);
	if (rc)
		pc_fail("kernel refused a R/O long-term pin (%s) of MAP_SHARED %s: %s; R/O long-term pins must work everywhere",
			gup_path(e.ops), magic_name(f.magic), e.err);
	pc_region_snap(&f.r, "the pin");
	pc_expect_device_sees(&e, &f.r, FP_GEN_INIT,
			   "device read of the R/O-pinned file pages");
	if (f.cls == FS_DIRTY_TRACKED)
		ro_pin_writeback(&f, &e);
	else
		pc_diag("%s: no writeback to check, the pin and the device read are the check",
			magic_name(f.magic));
	pc_expect_pinned_pages_stayed(&f.r, "the writes and syncs");
	pc_engine_close(&e);
	file_destroy(&f);
	pass_clean();
}

static void dio_writeback_case(const struct pc_case *c)
{
	struct fp_rounds res;
	struct pc_engine e;
	struct fp_file f;

	kmsg_watch();
	pc_engine_open_or_skip(&e, c->engine);
	file_create(&f, c, 1);
	need_storage_or_skip(&f);
	if (pc_engine_pin(&e, f.r.mem, f.r.len, PC_PIN_RW))
		pc_fail("%s", e.err);
	writeback_rounds(&f, &e, &res);
	print_rounds(&res);
	if (res.bad)
		pc_fail("%u of %u O_DIRECT re-reads after a sync missed data; first (%s): %s",
			res.bad, res.checks, res.first_what, res.first);
	if (!res.dev_dirty && !res.dev_unknown)
		pc_fail("no evidence: the device writes never left a page dirty, yet the file holds them");
	pc_engine_close(&e);
	file_destroy(&f);
	pass_clean();
}

/* io_uring before 34ed8d0dcd69 refused every file mapping but shmem/hugetlb. */
static void skip_if_old_iouring(const struct pc_engine *e, int rc)
{
	if (rc == -EOPNOTSUPP && e->ops == &pc_engine_io_uring)
		pc_skip("not applicable: io_uring refuses buffers in any file mapping but shmem/hugetlbfs itself (EOPNOTSUPP), private ones too: io_uring without %s",
			IOURING_FIX);
}

static void control_private_no_writeback_case(const struct pc_case *c)
{
	struct pc_check chk = {
		.what = "CPU read after the device write into the private mapping",
		.gen = FP_GEN_DEV_FINAL, .side = PC_CHECK_CPU,
	};
	struct pc_engine e;
	struct fp_file f;
	int rc;

	kmsg_watch();
	pc_engine_open_or_skip(&e, c->engine);
	file_create(&f, c, 0);
	need_storage_or_skip(&f);
	rc = pin_or_refusal(&e, &f, PC_PIN_RW);
	skip_if_old_iouring(&e, rc);
	if (rc)
		pc_fail("R/W pin of a MAP_PRIVATE %s mapping refused: %s",
			magic_name(f.magic), e.err);
	pc_dev_write_gen(&e, 0, f.r.len, FP_GEN_DEV_FINAL);
	chk.r = &f.r;
	chk.len = f.r.len;
	chk.cpu = f.r.mem;
	chk.sample = e.sample;
	pc_verify_or_fail(&chk);	/* evidence: the device did write */
	sync_file(&f, SYNC_MSYNC);
	sync_file(&f, SYNC_FSYNC);
	if (!file_verify(&f, 0, f.r.len, FP_GEN_DEV_FINAL, e.sample,
			 "O_DIRECT re-read after a device write into a MAP_PRIVATE mapping and msync"))
		pc_fail("check is blind: the file holds a device write made into a MAP_PRIVATE mapping");
	if (file_verify(&f, 0, f.r.len, FP_GEN_INIT, e.sample,
			"O_DIRECT re-read: the file keeps its content"))
		pc_fail("%s", pc_mismatch_summary());
	pc_diag("mismatch detected as it must be: the device wrote the private copy (the CPU sees it), the file kept gen %u",
		FP_GEN_INIT);
	pc_engine_close(&e);
	file_destroy(&f);
	pass_clean();
}

static void control_policy_private_case(const struct pc_case *c)
{
	struct pc_engine e;
	struct fp_file f;
	uint64_t pm;
	int rc;

	kmsg_watch();
	pc_engine_open_or_skip(&e, c->engine);
	file_create(&f, c, 0);
	need_known_fs_or_skip(&f);
	rc = pin_or_refusal(&e, &f, PC_PIN_RW);
	skip_if_old_iouring(&e, rc);
	if (rc)
		pc_fail("control blind: the same R/W long-term pin (%s) of a MAP_PRIVATE %s mapping was refused too (%s): a refusal cannot be told from an engine that cannot pin this memory",
			gup_path(e.ops), magic_name(f.magic), e.err);
	pm = pc_pagemap(f.r.mem);
	pc_diag("accepted, as it must be: the refusal check reports no refusal for MAP_PRIVATE (page 0 %s)",
		!pm ? "state unknown" :
		pm & PC_PM_FILE ? "still the page-cache page" :
				  "now an anonymous copy");
	pc_engine_close(&e);
	file_destroy(&f);
	pass_clean();
}

/* ---- the case list ---- */

struct fp_scenario {
	const char *name;
	pc_case_fn run;
	unsigned int kinds;	/* FK_* bits */
	unsigned int need, refuse;
	int odirect;		/* the odirect engine takes part */
};

#define LT_RW (PC_CAP_LONGTERM | PC_CAP_PIN_RW | PC_CAP_HELD)

static const struct fp_scenario scenarios[] = {
	{ "longterm-rw", longterm_rw_case, FK_ALL_MASK, LT_RW, 0, 0 },
	{ "longterm-ro", longterm_ro_case, FK_ALL_MASK,
	  PC_CAP_LONGTERM | PC_CAP_PIN_RO | PC_CAP_HELD | PC_CAP_DEV_READ, 0,
	  0 },
	{ "dio-writeback", dio_writeback_case, FK_DISK_MASK, ~0u, 0, 1 },
	{ "control-private-no-writeback", control_private_no_writeback_case,
	  FK_DISK_MASK, LT_RW | PC_CAP_DEV_WRITE, 0, 1 },
	{ "control-policy-private", control_policy_private_case, FK_ALL_MASK,
	  LT_RW, 0, 0 },
};

static int takes_part(const struct fp_scenario *s,
		      const struct pc_engine_ops *ops)
{
	if (s->odirect && ops == &pc_engine_odirect)
		return 1;
	return pc_engine_can(ops, s->need) && !(ops->caps & s->refuse);
}

/* Call @fn for every case: scenario, kind, engine. */
static void for_each_case(void (*fn)(const struct fp_scenario *s,
				     enum fp_kind k,
				     const struct pc_engine_ops *ops,
				     void *arg), void *arg)
{
	const struct pc_engine_ops *const *engs;
	size_t ne = pc_engines(&engs), i, j;
	int k;

	for (i = 0; i < PC_ARRAY_SIZE(scenarios); i++)
		for (k = 0; k < FK_NR; k++)
			for (j = 0; j < ne; j++)
				if ((scenarios[i].kinds >> k & 1) &&
				    takes_part(&scenarios[i], engs[j]))
					fn(&scenarios[i], (enum fp_kind)k,
					   engs[j], arg);
}

static void add_one(const struct fp_scenario *s, enum fp_kind k,
		    const struct pc_engine_ops *ops, void *arg)
{
	(void)arg;
	pc_add_case(s->run, s, &kinds[k], ops, "%s/%s/%s/%s", BINARY, s->name,
		    kinds[k].name, ops->name);
}

static void add_cases(void)
{
	unsigned int k;

	/* few cases per file system, each a handful of transfers */
	pc_slow_engine_backings = "*";
	pc_gen_name(FP_GEN_INIT, "the file's content before the pin (written and synced)");
	pc_gen_name(FP_GEN_DEV_FINAL, "the device's last write");
	pc_gen_name(FP_GEN_DEV_PIN, "device write through the long-term pin");
	pc_gen_name(FP_GEN_CPU_PINNED, "CPU write to the R/O-pinned page");
	pc_gen_name(FP_GEN_CPU_CLEANED, "CPU write after writeback cleaned the pinned page");
	for (k = 0; k < FP_ROUNDS; k++) {
		pc_gen_name(FP_GEN_DEV_ROUND + k, "device write in a sync round");
		pc_gen_name(FP_GEN_CPU_ROUND + k, "CPU write in a sync round");
	}
	for_each_case(add_one, NULL);
}

/* ---- the file systems, made once for the whole run ---- */

/* Is @dir on a file system with storage, where O_DIRECT opens? */
static int dir_is_disk(const char *dir)
{
	struct statfs sfs;

	return !statfs(dir, &sfs) &&
	       classify((unsigned long)sfs.f_type) == FS_DIRTY_TRACKED &&
	       pc_dir_supports_odirect(dir);
}

/* Build the file systems the selected cases use (pc_fixture.setup). */
static void setup_devices(const struct pc_case *const *selected, size_t n)
{
	int need[FK_NR] = { 0 };
	size_t i;
	enum pc_bdev_hold hold;
	const char *tmpdir = getenv("PINCHECK_TMPDIR");
	int k;

	for (i = 0; i < n; i++)
		need[selected[i]->backing - kinds] = 1;
	if (!(need[FK_EXT4] || need[FK_XFS] || need[FK_TESTDIR]))
		return;

	if (geteuid()) {
		snprintf(setup_skip, sizeof(setup_skip),
			 "needs root: builds loop devices and mounts file systems");
		return;
	}
	/* with device-mapper the image lives in tmpfs (the VM) */
	hold = pc_bdev_dm_probe() ? PC_BDEV_HOLD_NONE : PC_BDEV_HOLD_SUSPEND;
	pc_bdev_reap_stale(TAG);
	for (k = FK_EXT4; k <= FK_XFS; k++) {
		if (!need[k] && !(k == FK_EXT4 && need[FK_TESTDIR])) {
			snprintf(devs[k].why, sizeof(devs[k].why), "not set up");
			continue;
		}
		pc_bdev_create(&devs[k], TAG, kinds[k].name, fs_specs[k].fstype,
			       fs_specs[k].mkfs_args, fs_specs[k].size, hold, 0);
	}
	/*
	 * Where the default test directory is tmpfs (the VM), the file
	 * backings and the odirect engine's scratch file go to ext4.
	 */
	if (devs[FK_EXT4].ready && hold != PC_BDEV_HOLD_NONE &&
	    !(tmpdir && *tmpdir) && !dir_is_disk("/var/tmp"))
		setenv("PINCHECK_TMPDIR", devs[FK_EXT4].mnt, 1);
}

static void teardown_devices(void)
{
	int k;

	for (k = 0; k < FK_NR; k++)
		pc_bdev_destroy(&devs[k]);
	rmdir(pc_bdev_base_dir(TAG));
}

static const struct pc_fixture fixture = {
	.setup = setup_devices,
	.teardown = teardown_devices,
};

int main(int argc, char **argv)
{
	return pc_main_fixture(argc, argv, BINARY, add_cases, &fixture);
}
