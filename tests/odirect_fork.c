// SPDX-License-Identifier: GPL-2.0
/*
 * odirect_fork: fork() while an O_DIRECT request is in flight (S7).
 *
 * One private buffer; an O_DIRECT read from a file into part of a page is
 * submitted asynchronously (Linux AIO, io_uring, or a second thread doing
 * pread); while the kernel holds the page for that request the process
 * forks, and the parent then writes to another part of the same page.
 * After completion the parent's buffer must hold the file data.  Kernels
 * whose direct I/O takes plain FOLL_GET references lose it: fork cannot
 * tell the page is under I/O, the parent's write COWs it away, and the
 * data lands in the page the parent no longer maps (the child's, when the
 * child lives on).  The write direction checks that the device receives
 * exactly the pre-fork data.
 *
 *   <read|write>-<512|2k|page>-<exit|exec|alive>-<ext4|xfs|blk>
 *
 *   512, 2k   the request covers the start of a page, the parent writes
 *             the second half of that page
 *   page      the request covers a whole page, the parent writes the next
 *   exit      the child _exit()s and is reaped before the parent's write
 *   exec      the child execs /bin/true (waited for: its mm is gone)
 *   alive     the child lives through the write and the completion, then
 *             reports whether the request's data landed in its copy
 *   ext4, xfs a file on that file system (1 KiB blocks, so 2 KiB writes
 *             are block aligned and stay asynchronous); blk: the raw device
 *
 * Holding the request in flight: the file system sits on a device-mapper
 * "delay" target over a loop device over a tmpfs file, all made by this
 * binary.  By default the dm device is suspended (without flush or
 * freeze) before each submission and resumed after the parent's write,
 * so the request waits inside device-mapper for exactly that window.
 * Without device-mapper (PINCHECK_ODF_HOLD=fuse, the default there) the
 * loop device sits over a file of a FUSE mount served by a child of this
 * binary (lib/fixtures/fusedev.c), which takes no request while held: the
 * request waits in the FUSE queue, its data unmoved, and the server says
 * it is there (at_device).  PINCHECK_ODF_HOLD=delay uses dm-delay's fixed delay
 * (PINCHECK_ODF_DELAY_MS, default 50); with no hold (=none, the default
 * without dm and FUSE) the case runs fast iterations for
 * PINCHECK_ODF_BUDGET_MS (default 300): a loss FAILs, but it never
 * PASSes, since in flight by chance differs from run to run.  Each
 * iteration records whether the request had taken the pages before fork
 * (the block layer counted its bytes in /proc/self/io) and was still
 * pending after the parent's write; only those count, and a PASS needs
 * them in every iteration run or PINCHECK_ODF_ITERS (8) of them, and in
 * at least MIN_INFLIGHT_PCT (half) of the iterations, else SKIP with the
 * count.
 *
 * Control: control-remap-read-2k-alive-ext4 maps a fresh page over the buffer
 * while the read is in flight; the check must report the loss.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "async_dio.h"
#include "blockdev.h"
#include "pincheck.h"

#define BINARY "odirect_fork"
#define TAG "odf"

#define ODF_GEN_FILE 8		/* the file's data, what a read must deliver */
#define ODF_GEN_INIT2 9		/* pre-fork data, odd rounds of the write slots */

#define READ_DATA "read-data"	/* what every read case reads */
#define BLK_WRITE_BASE (1 << 20)	/* raw device: write slots start here */
#define WRITE_SLOTS 64
#define SLOT_SIZE 4096
#define ISSUE_TIMEOUT_MS 2000
#define GUARD_MS 5000
#define COMPLETE_TIMEOUT_MS 10000
#define MAX_FALLBACK_ITERS 4000
/*
 * A PASS needs the request in flight across fork and the parent's write
 * in at least this share of the iterations: the median iteration must
 * have held it.  Held by device-mapper or FUSE every iteration is (100%
 * in the Debian guests and on the host, and 6.1 lost the data in every
 * one).  See docs/odirect_fork.md.
 */
#define MIN_INFLIGHT_PCT 50

#define KNOWN_FIX "a7e689dd1c06 (\"block: Convert bio_iov_iter_get_pages to use iov_iter_extract_pages\", v6.5)"

enum odf_dir { ODF_READ, ODF_WRITE };
enum odf_size { SZ_512, SZ_2K, SZ_PAGE };
enum odf_fate { FATE_EXIT, FATE_EXEC, FATE_ALIVE };
enum odf_fs { FS_EXT4, FS_XFS, FS_BLK, FS_NR };

/* backing lists (pc_backing_next()) */
#define BK_ANON "anon"
#define BK_ALL "anon thp-pmd hugetlb-2048kB"
#define SUB_AIO (1u << PC_ADIO_AIO)
#define SUB_URING (1u << PC_ADIO_URING)
#define SUB_THREAD (1u << PC_ADIO_THREAD)
#define SUB_ALL (SUB_AIO | SUB_URING | SUB_THREAD)

struct odf_row {
	enum odf_dir dir;
	enum odf_size size;
	enum odf_fate fate;
	enum odf_fs fs;
	const char *backings;
	unsigned int submitters;
	int control_remap;
};

/*
 * The variants: the full submitter x backing cross where it tells most
 * (2 KiB reads with a live child, on ext4), one axis at a time elsewhere,
 * so the binary stays well under a minute in a TCG guest.
 */
static const struct odf_row rows[] = {
	{ ODF_READ, SZ_2K, FATE_ALIVE, FS_EXT4, BK_ALL, SUB_ALL, 0 },
	{ ODF_READ, SZ_2K, FATE_EXIT, FS_EXT4, BK_ALL, SUB_AIO, 0 },
	{ ODF_READ, SZ_2K, FATE_EXIT, FS_EXT4, BK_ANON, SUB_URING | SUB_THREAD, 0 },
	{ ODF_READ, SZ_2K, FATE_EXEC, FS_EXT4, BK_ALL, SUB_AIO, 0 },
	{ ODF_READ, SZ_512, FATE_ALIVE, FS_EXT4, BK_ALL, SUB_AIO, 0 },
	{ ODF_READ, SZ_PAGE, FATE_ALIVE, FS_EXT4, BK_ALL, SUB_AIO, 0 },
	{ ODF_READ, SZ_2K, FATE_ALIVE, FS_XFS, BK_ALL, SUB_AIO, 0 },
	{ ODF_READ, SZ_2K, FATE_ALIVE, FS_XFS, BK_ANON, SUB_URING | SUB_THREAD, 0 },
	{ ODF_READ, SZ_512, FATE_ALIVE, FS_BLK, BK_ANON, SUB_AIO, 0 },
	{ ODF_WRITE, SZ_2K, FATE_ALIVE, FS_EXT4, BK_ALL, SUB_AIO, 0 },
	{ ODF_WRITE, SZ_2K, FATE_ALIVE, FS_EXT4, BK_ANON, SUB_URING | SUB_THREAD, 0 },
	{ ODF_WRITE, SZ_2K, FATE_EXIT, FS_EXT4, BK_ANON, SUB_AIO, 0 },
	{ ODF_WRITE, SZ_2K, FATE_EXEC, FS_EXT4, BK_ANON, SUB_AIO, 0 },
	{ ODF_WRITE, SZ_PAGE, FATE_ALIVE, FS_EXT4, BK_ANON, SUB_AIO, 0 },
	{ ODF_WRITE, SZ_2K, FATE_ALIVE, FS_XFS, BK_ANON, SUB_AIO, 0 },
	{ ODF_WRITE, SZ_512, FATE_ALIVE, FS_BLK, BK_ANON, SUB_AIO, 0 },
	{ ODF_READ, SZ_2K, FATE_ALIVE, FS_EXT4, BK_ANON, SUB_AIO, 1 },
};

static const char *const dir_names[] = { "read", "write" };
static const char *const size_names[] = { "512", "2k", "page" };
static const char *const fate_names[] = { "exit", "exec", "alive" };

struct fs_spec {
	const char *name;
	const char *fstype;
	const char *const *mkfs_args;
	size_t size;
};

/* inode tables and journal zeroed now, not by a kernel thread during the cases */
static const char *const ext4_args[] = {
	"-b", "1024", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
	NULL
};
static const char *const xfs_args[] = { "-b", "size=1024", "-K", NULL };

static const struct fs_spec fs_specs[FS_NR] = {
	[FS_EXT4] = { "ext4", "ext4", ext4_args, 32 << 20 },
	[FS_XFS] = { "xfs", "xfs", xfs_args, 320 << 20 },	/* mkfs.xfs: >= 300 MiB */
	[FS_BLK] = { "blk", "", NULL, 8 << 20 },
};

struct odf_scenario {
	char name[64];
	const struct odf_row *row;
	enum pc_adio_kind sub;
};

static struct odf_scenario scenarios[128];
static size_t nr_scenarios;

/* Set up by main() before the harness runs; read-only in the cases. */
static struct pc_bdev devs[FS_NR];
static enum pc_bdev_hold hold_mode;
static const char *hold_names[] = { "none", "suspend", "delay", "fuse" };
static char setup_skip[256];	/* every case skips with this, if set */
static long long setup_ms[FS_NR];	/* how long each stack took to build */

/* ---- what one case measures ---- */

struct odf_stats {
	unsigned int iters;		/* iterations run */
	unsigned int issued;		/* pages taken before fork */
	unsigned int at_fork;		/* ... and not complete at fork */
	unsigned int after_write;	/* ... nor after the parent's write */
	unsigned int at_device;		/* held: the request reached the device */
	unsigned int lost;		/* data lost, request in flight */
	unsigned int lost_idle;		/* data lost, request not in flight */
	unsigned int child_got;		/* lost bytes found in the child */
	unsigned int guard_fired;	/* the hold had to be broken */
	long long first_loss_ms;	/* -1: none */
	long long prep_ms;		/* case start to the first iteration */
	uint64_t pfn_before, pfn_after;	/* of the first loss */
	char first_report[PC_REASON_MAX];
};

struct odf_ctx {
	const struct odf_scenario *s;
	const struct pc_backing *bk;
	struct pc_bdev *dev;
	struct pc_adio *adio;
	int fd;			/* O_DIRECT data file or device */
	off_t data_base;	/* where the write slots start */
	size_t io_off, io_len;	/* the request, in the region */
	size_t pw_off, pw_len;	/* the parent's write */
	void *bounce;		/* aligned scratch buffer */
	long long t0_ms;
	unsigned int want;	/* in-flight iterations wanted */
	unsigned int max_iters;
	long long budget_ms;
	struct odf_stats st;
};

/* One iteration's facts. */
struct odf_iter {
	unsigned int gen_pre;	/* what the I/O range held before fork */
	off_t file_off;
	int issued, at_device, at_fork, after_write;
	uint64_t pfn_before, pfn_after;
	long res;
	unsigned int child_words;	/* words of file data in the child */
	size_t bad_bytes;
};

/* ---- the hold guard: never leave the device suspended ---- */

/* Does this run hold each request (an event, not a delay)? */
static int holding(void)
{
	return hold_mode == PC_BDEV_HOLD_SUSPEND ||
	       hold_mode == PC_BDEV_HOLD_FUSE;
}

static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t guard_cond = PTHREAD_COND_INITIALIZER;
static struct pc_bdev *guard_dev;
static long long guard_deadline;
static int guard_fired, guard_started;

static void *guard_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&guard_lock);
	for (;;) {
		struct timespec ts;

		if (!guard_dev) {
			pthread_cond_wait(&guard_cond, &guard_lock);
			continue;
		}
		if (pc_now_ms() >= guard_deadline) {
			pc_bdev_release(guard_dev);
			guard_dev = NULL;
			guard_fired = 1;
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&guard_cond, &guard_lock, &ts);
	}
	return NULL;
}

/* Hold the device's I/O; the guard releases it after GUARD_MS. */
static void hold_begin(struct pc_bdev *dev)
{
	pthread_t t;
	int rc;

	pthread_mutex_lock(&guard_lock);
	if (!guard_started && !pthread_create(&t, NULL, guard_main, NULL))
		guard_started = 1;
	guard_fired = 0;
	pthread_mutex_unlock(&guard_lock);
	rc = pc_bdev_hold(dev);
	if (rc)
		pc_fail("hold %s (%s): %s", dev->name, hold_names[hold_mode],
			strerror(-rc));
	pthread_mutex_lock(&guard_lock);
	guard_dev = dev;
	guard_deadline = pc_now_ms() + GUARD_MS;
	pthread_cond_broadcast(&guard_cond);
	pthread_mutex_unlock(&guard_lock);
}

/* End the case from inside a held window: resume the device first. */
static void __attribute__((noreturn, format(printf, 2, 3)))
fail_held(struct pc_bdev *dev, const char *fmt, ...)
{
	char msg[PC_REASON_MAX];
	va_list ap;

	pc_bdev_release(dev);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pc_fail("%s", msg);
}

/* Release; returns 1 when the guard had to do it already. */
static int hold_end(struct pc_bdev *dev)
{
	int fired;

	pthread_mutex_lock(&guard_lock);
	guard_dev = NULL;
	fired = guard_fired;
	pthread_mutex_unlock(&guard_lock);
	/* the FUSE server has a guard of its own */
	return pc_bdev_release(dev) > 0 || fired;
}

/* ---- case setup ---- */

static void geometry(struct odf_ctx *x)
{
	size_t page = pc_page_size;

	x->io_off = 0;
	switch (x->s->row->size) {
	case SZ_512:
		x->io_len = 512;
		break;
	case SZ_2K:
		x->io_len = 2048;
		break;
	default:
		x->io_len = page;
	}
	if (x->io_len < page) {
		x->pw_off = page / 2;
		x->pw_len = page / 2;
	} else {
		x->pw_off = page;
		x->pw_len = page;
	}
}

/* O_DIRECT write of @len bytes from the bounce buffer at @off. */
static void dio_write_bounce(struct odf_ctx *x, off_t off, size_t len)
{
	ssize_t n = pwrite(x->fd, x->bounce, len, off);

	if (n != (ssize_t)len)
		pc_fail("prepare the data: O_DIRECT pwrite at 0x%llx: %s",
			(unsigned long long)off,
			n < 0 ? strerror(errno) : "short write");
}

/*
 * Reads use the file (or the raw device's first slot) written once when
 * the device was built; writes get a file of their own, or slots 1 MiB
 * into the raw device.
 */
static void open_data(struct odf_ctx *x)
{
	const char *what = x->dev->node;
	char path[256];
	int flags = O_RDWR | O_DIRECT | O_CLOEXEC;

	if (x->dev->mnt[0] && x->s->row->dir == ODF_READ) {
		snprintf(path, sizeof(path), "%s/%s", x->dev->mnt, READ_DATA);
		what = path;
	} else if (x->dev->mnt[0]) {
		snprintf(path, sizeof(path), "%s/case.%d", x->dev->mnt,
			 (int)getpid());
		what = path;
		flags |= O_CREAT | O_TRUNC;
	} else if (x->s->row->dir == ODF_WRITE) {
		x->data_base = BLK_WRITE_BASE;
	}
	x->fd = open(what, flags, 0600);
	if (x->fd < 0)
		pc_fail("open %s O_DIRECT: %s", what, strerror(errno));
	if (flags & O_CREAT)
		unlink(path);
}

/*
 * Writes: zeroed slots.  Then one read of everything, so that no
 * metadata read has to reach the device while it is held.
 */
static void prepare_data(struct odf_ctx *x)
{
	size_t total = x->s->row->dir == ODF_READ ? SLOT_SIZE :
						    WRITE_SLOTS * SLOT_SIZE;

	if (posix_memalign(&x->bounce, pc_page_size, total))
		pc_fail("out of memory for the bounce buffer");
	memset(x->bounce, 0, total);
	if (x->s->row->dir == ODF_WRITE) {
		dio_write_bounce(x, x->data_base, total);
		if (fsync(x->fd))
			pc_fail_errno("fsync the data file");
	}
	if (pread(x->fd, x->bounce, total, x->data_base) != (ssize_t)total)
		pc_fail_errno("warm-up O_DIRECT read");
}

static void describe_device(enum odf_fs fs)
{
	const struct pc_bdev *d = &devs[fs];
	char what[64], under[160] = "";

	if (d->fstype[0])
		snprintf(what, sizeof(what), "%s (1 KiB blocks)", d->fstype);
	else
		snprintf(what, sizeof(what), "raw block device");
	if (d->dm_name[0])
		snprintf(under, sizeof(under), "dm-delay %s (%u ms) over ",
			 d->dm_name, d->delay_ms);
	pc_diag("device: %s on %s/dev/loop%d over %stmpfs, hold %s, built in %lld ms",
		what, under, d->loop_nr,
		hold_mode == PC_BDEV_HOLD_FUSE ? "a FUSE file of this process over " : "",
		hold_names[hold_mode], setup_ms[fs]);
}

static void open_ctx(struct odf_ctx *x, const struct pc_case *c)
{
	const char *why;
	char err[160];

	memset(x, 0, sizeof(*x));
	x->t0_ms = pc_now_ms();
	x->s = c->scenario;
	x->bk = c->backing;
	x->dev = &devs[x->s->row->fs];
	x->st.first_loss_ms = -1;
	if (setup_skip[0])
		pc_skip("%s", setup_skip);
	if (!x->dev->ready)
		pc_skip("%s: %s", fs_specs[x->s->row->fs].name, x->dev->why);
	describe_device(x->s->row->fs);
	/* a case killed inside its window (timeout) may have left it held */
	pc_bdev_release(x->dev);
	why = pc_adio_probe(x->s->sub);
	if (why)
		pc_skip("%s", why);
	if (pc_adio_open(&x->adio, x->s->sub, err, sizeof(err)))
		pc_fail("%s", err);
	geometry(x);
	open_data(x);
	prepare_data(x);
	x->want = pc_env_uint("PINCHECK_ODF_ITERS", 8);
	x->max_iters = hold_mode == PC_BDEV_HOLD_NONE ? MAX_FALLBACK_ITERS :
							2 * x->want;
	x->budget_ms = pc_env_uint("PINCHECK_ODF_BUDGET_MS", 300);
}

/* ---- one iteration ---- */

/* Wait until the block layer counted the request's bytes. */
static int wait_issued(const struct odf_ctx *x, unsigned long long before)
{
	long long deadline = pc_now_ms() + ISSUE_TIMEOUT_MS;
	int write = x->s->row->dir == ODF_WRITE;
	unsigned long long now;

	do {
		if (pc_io_submitted_bytes(write, &now))
			return 0;
		if (now >= before + x->io_len)
			return 1;
		if (hold_mode == PC_BDEV_HOLD_NONE)
			sched_yield();
		else
			usleep(200);
	} while (pc_now_ms() < deadline);
	return 0;
}

/*
 * FUSE hold: wait until the request reached the held device (the server
 * sees it queued, data unmoved).  0 if it did not within the timeout.
 */
static int wait_at_device(const struct odf_ctx *x)
{
	long long deadline = pc_now_ms() + ISSUE_TIMEOUT_MS;

	if (hold_mode != PC_BDEV_HOLD_FUSE)
		return 0;
	while (!pc_bdev_queued(x->dev)) {
		if (pc_now_ms() >= deadline)
			return 0;
		usleep(200);
	}
	return 1;
}

static unsigned int count_file_words(const void *buf, size_t off, size_t len)
{
	const uint64_t *w = buf;
	unsigned int n = 0;
	size_t i;

	for (i = 0; i < len / 8; i++)
		n += w[i] == pc_word(ODF_GEN_FILE, off + i * 8);
	return n;
}

/* The child: only async-signal-safe calls from here on. */
static void __attribute__((noreturn))
run_child(const struct odf_ctx *x, struct pc_child *ch, int exec_fd,
	  const char *buf)
{
	unsigned int words;
	char go;

	(void)exec_fd;		/* close-on-exec: EOF tells the parent */
	switch (x->s->row->fate) {
	case FATE_EXIT:
		_exit(0);
	case FATE_EXEC:
		pc_exec_exit0();
	default:
		break;
	}
	if (pc_child_await(ch->to_child, &go))
		_exit(3);
	words = count_file_words(buf, x->io_off, x->io_len);
	if (write(ch->to_parent, &words, sizeof(words)) != sizeof(words))
		_exit(4);
	_exit(0);
}

/* Make sure the child no longer maps the buffer (exit, exec) or is alive. */
static void wait_child_gone(const struct odf_ctx *x, struct pc_child *ch,
			    int exec_fd)
{
	char how[64], c;
	int status;

	if (x->s->row->fate == FATE_EXEC) {
		/* EOF: the exec replaced the child's memory (or it died) */
		while (read(exec_fd, &c, 1) < 0 && errno == EINTR)
			;
	} else if (x->s->row->fate == FATE_EXIT) {
		status = pc_child_reap(ch);
		if (status)
			fail_held(x->dev, "child %s",
				  pc_wait_describe(status, how, sizeof(how)));
	}
	close(exec_fd);
}

/* A live child says how much of the file data its copy holds. */
static void ask_child(const struct odf_ctx *x, struct pc_child *ch,
		      struct odf_iter *it)
{
	if (x->s->row->fate != FATE_ALIVE)
		return;
	pc_child_tell(ch->to_child, 'g');
	if (read(ch->to_parent, &it->child_words, sizeof(it->child_words)) !=
	    sizeof(it->child_words))
		it->child_words = 0;
}

/* After the verdict: an exec'ed /bin/true takes its time over 9p. */
static void reap_child(const struct odf_ctx *x, struct pc_child *ch)
{
	char how[64];
	int status;

	if (x->s->row->fate == FATE_EXIT)
		return;
	status = pc_child_reap(ch);
	if (status && !(x->s->row->fate == FATE_EXEC && WIFEXITED(status) &&
			!WEXITSTATUS(status)))
		pc_fail("child %s", pc_wait_describe(status, how, sizeof(how)));
}

/* Control: a fresh page over the buffer while the read is in flight. */
static void remap_buffer(const struct odf_ctx *x, struct pc_region *r)
{
	if (pc_map_fresh(r->mem, pc_page_size))
		fail_held(x->dev, "control: mmap(MAP_FIXED) over the buffer: %s",
			  strerror(errno));
	pc_fill(r->mem, 0, pc_page_size, PC_GEN_INIT);
}

/*
 * Submit, fork, let the child go its way, write the other part: the
 * window in which the request must still hold the page.
 */
static void fork_during_io(struct odf_ctx *x, struct pc_region *r,
			   struct odf_iter *it, struct pc_child *ch)
{
	int write = x->s->row->dir == ODF_WRITE, exec_pipe[2], rc;
	char *buf = r->mem + x->io_off;
	unsigned long long before = 0;
	long res;

	if (pc_io_submitted_bytes(write, &before))
		pc_skip("no /proc/self/io (CONFIG_TASK_IO_ACCOUNTING): cannot tell whether a request is in flight");
	if (pipe2(exec_pipe, O_CLOEXEC))
		pc_fail_errno("pipe2");
	if (holding())
		hold_begin(x->dev);
	rc = pc_adio_submit(x->adio, x->fd, write, buf, x->io_len, it->file_off);
	if (rc)
		fail_held(x->dev, "%s submit: %s", pc_adio_name(x->s->sub),
			  strerror(-rc));
	it->issued = wait_issued(x, before);
	it->at_device = it->issued && wait_at_device(x);
	it->at_fork = it->issued && !pc_adio_poll(x->adio, &res);
	if (!pc_child_fork(ch)) {
		close(exec_pipe[0]);
		run_child(x, ch, exec_pipe[1], buf);
	}
	close(exec_pipe[1]);
	wait_child_gone(x, ch, exec_pipe[0]);
	if (x->s->row->control_remap)
		remap_buffer(x, r);
	pc_region_cpu_write(r, x->pw_off, x->pw_len, PC_GEN_PARENT);
	it->pfn_after = pc_pfn(buf);
	it->after_write = it->at_fork && !pc_adio_poll(x->adio, &res);
	if (holding() && hold_end(x->dev))
		x->st.guard_fired++;
}

static void complete_io(struct odf_ctx *x, struct odf_iter *it)
{
	int rc = pc_adio_wait(x->adio, COMPLETE_TIMEOUT_MS, &it->res);

	if (rc == 0)
		pc_fail("the O_DIRECT %s did not complete within %d s after the device was released",
			dir_names[x->s->row->dir], COMPLETE_TIMEOUT_MS / 1000);
	if (rc < 0)
		pc_fail("%s completion: %s", pc_adio_name(x->s->sub),
			strerror(-rc));
	if (it->res != (long)x->io_len)
		pc_fail("O_DIRECT %s of %zu bytes returned %ld%s%s",
			dir_names[x->s->row->dir], x->io_len, it->res,
			it->res < 0 ? ": " : "",
			it->res < 0 ? strerror((int)-it->res) : "");
}

/* The parent's other part must hold exactly its own write. */
static void check_parent_write(struct odf_ctx *x, struct pc_region *r)
{
	struct pc_check chk = {
		.what = "parent's write next to the request", .r = r,
		.off = x->pw_off, .len = x->pw_len, .gen = PC_GEN_PARENT,
		.side = PC_CHECK_CPU, .cpu = r->mem + x->pw_off,
	};

	pc_verify_or_fail(&chk);
}

/* Bytes of the request the parent or the device got wrong; quiet. */
static size_t judge_iteration(struct odf_ctx *x, struct pc_region *r,
			      struct odf_iter *it, struct pc_check *chk)
{
	const uint64_t *view;
	size_t i, bad = 0;

	memset(chk, 0, sizeof(*chk));
	chk->r = r;
	chk->off = x->io_off;
	chk->len = x->io_len;
	if (x->s->row->dir == ODF_READ) {
		chk->what = "parent's buffer after an O_DIRECT read in flight across fork";
		chk->gen = ODF_GEN_FILE;
		chk->side = PC_CHECK_CPU;
		chk->cpu = r->mem + x->io_off;
		view = chk->cpu;
	} else {
		if (pread(x->fd, x->bounce, x->io_len, it->file_off) !=
		    (ssize_t)x->io_len)
			pc_fail_errno("read back the written slot");
		chk->what = "device's copy after an O_DIRECT write in flight across fork";
		chk->gen = it->gen_pre;
		chk->side = PC_CHECK_DEVICE;
		chk->dev = x->bounce;
		chk->cpu = r->mem + x->io_off;
		view = chk->dev;
	}
	for (i = 0; i < x->io_len / 8; i++)
		bad += view[i] != pc_word(chk->gen, x->io_off + i * 8) ? 8 : 0;
	return bad;
}

static void record_loss(struct odf_ctx *x, struct pc_check *chk,
			const struct odf_iter *it)
{
	struct odf_stats *st = &x->st;

	if (it->after_write)
		st->lost++;
	else
		st->lost_idle++;
	if (it->child_words)
		st->child_got++;
	if (st->first_loss_ms >= 0)
		return;
	st->first_loss_ms = pc_now_ms() - x->t0_ms;
	st->pfn_before = it->pfn_before;
	st->pfn_after = it->pfn_after;
	pc_verify(chk);		/* the uniform report, once */
	snprintf(st->first_report, sizeof(st->first_report), "%s",
		 pc_mismatch_summary());
}

/*
 * A fresh buffer per iteration (fork and COW change what the last one
 * is made of).  A huge page freed a moment ago may not be available
 * again at once: try a few times.
 */
static int create_region(const struct odf_ctx *x, struct pc_region *r,
			 char *why, size_t len)
{
	int tries;

	for (tries = 0; tries < 5; tries++) {
		if (!pc_region_create(r, x->bk, PC_GEN_INIT, why, len))
			return 0;
		usleep(20000);
	}
	return -1;
}

/* 1: ran; 0: the backing could not be made again (stop iterating). */
static int run_iteration(struct odf_ctx *x, unsigned int i)
{
	struct pc_region r;
	struct pc_child ch;
	struct odf_iter it = { .gen_pre = PC_GEN_INIT };
	struct pc_check chk;
	char why[PC_REASON_MAX];

	if (create_region(x, &r, why, sizeof(why))) {
		if (!i)
			pc_skip("%s", why);
		pc_diag("iteration %u: %s; judging the %u iterations run", i,
			why, i);
		return 0;
	}
	if (x->s->row->dir == ODF_WRITE) {
		it.file_off = x->data_base + (off_t)(i % WRITE_SLOTS) * SLOT_SIZE;
		if ((i / WRITE_SLOTS) % 2) {
			it.gen_pre = ODF_GEN_INIT2;
			pc_region_cpu_write(&r, x->io_off, x->io_len,
					    it.gen_pre);
		}
	}
	pc_region_snap(&r, "fork");
	it.pfn_before = r.pfn_before[x->io_off / pc_page_size];
	fork_during_io(x, &r, &it, &ch);
	complete_io(x, &it);
	ask_child(x, &ch, &it);
	check_parent_write(x, &r);
	x->st.iters++;
	x->st.issued += it.issued;
	x->st.at_device += it.at_device;
	x->st.at_fork += it.at_fork;
	x->st.after_write += it.after_write;
	if (judge_iteration(x, &r, &it, &chk))
		record_loss(x, &chk, &it);
	reap_child(x, &ch);
	pc_region_destroy(&r);
	return 1;
}

static int want_more(const struct odf_ctx *x)
{
	const struct odf_stats *st = &x->st;

	if (!st->iters)
		return 1;
	if (st->iters >= x->max_iters)
		return 0;
	/* the budget starts at the first iteration: preparing took 1 s under load */
	if (hold_mode == PC_BDEV_HOLD_NONE)
		return pc_now_ms() - x->t0_ms - st->prep_ms < x->budget_ms;
	return st->after_write < x->want;
}

/* ---- verdict ---- */

static void print_stats(const struct odf_ctx *x)
{
	const struct odf_stats *st = &x->st;

	pc_diag("%s on %s, hold %s: %u iterations; pages taken before fork %u, pending at fork %u, pending after the parent's write %u",
		pc_adio_name(x->s->sub), x->dev->name, hold_names[hold_mode],
		st->iters, st->issued, st->at_fork, st->after_write);
	pc_diag("odf-stats iters=%u issued=%u at_device=%u at_fork=%u after_write=%u lost=%u lost_idle=%u child_got=%u first_loss_ms=%lld prep_ms=%lld guard=%u hold=%s elapsed_ms=%lld",
		st->iters, st->issued, st->at_device, st->at_fork,
		st->after_write, st->lost,
		st->lost_idle, st->child_got, st->first_loss_ms,
		st->prep_ms, st->guard_fired, hold_names[hold_mode], pc_now_ms() - x->t0_ms);
}

/* The loss has the FOLL_GET signature: the parent COWed off the page. */
static int known_bug_signature(const struct odf_ctx *x)
{
	const struct odf_stats *st = &x->st;

	return x->s->row->dir == ODF_READ && !x->s->row->control_remap &&
	       st->pfn_before && st->pfn_after &&
	       st->pfn_before != st->pfn_after;
}

static void __attribute__((noreturn)) fail_lost(const struct odf_ctx *x)
{
	const struct odf_stats *st = &x->st;
	char child[96] = "", known[256] = "";

	if (x->s->row->fate == FATE_ALIVE && x->s->row->dir == ODF_READ)
		snprintf(child, sizeof(child),
			 "; the child's page got the data in %u/%u", st->child_got,
			 st->lost + st->lost_idle);
	if (known_bug_signature(x))
		snprintf(known, sizeof(known),
			 "; known bug (direct I/O held the page with a FOLL_GET reference fork cannot see), fixed by %s",
			 KNOWN_FIX);
	pc_diag("lost: %u of %u iterations with the request in flight (%u more not in flight); first after %lld ms; PFN 0x%llx before fork, 0x%llx after the parent's write%s",
		st->lost, st->after_write, st->lost_idle, st->first_loss_ms,
		(unsigned long long)st->pfn_before,
		(unsigned long long)st->pfn_after, child);
	pc_fail("O_DIRECT %s lost in %u/%u in-flight iterations: PFN 0x%llx before fork, 0x%llx after%s%s",
		dir_names[x->s->row->dir], st->lost, st->after_write,
		(unsigned long long)st->pfn_before,
		(unsigned long long)st->pfn_after, child, known);
}

static const char *no_hold_hint(void)
{
	if (hold_mode != PC_BDEV_HOLD_NONE)
		return "the hold did not keep the request";
	return "needs device-mapper (modprobe dm-delay) or FUSE (/dev/fuse, CONFIG_FUSE_FS), or ./run_tests.sh --kernel debian:6.12";
}

static void __attribute__((noreturn)) judge_case(const struct odf_ctx *x)
{
	const struct odf_stats *st = &x->st;

	print_stats(x);
	if (x->s->row->control_remap) {
		if (!st->lost && !st->lost_idle)
			pc_fail("control is blind: a read into a page the buffer no longer maps was not reported (%u in flight)",
				st->after_write);
		pc_diag("loss detected as it must be: %s", st->first_report);
		pc_pass();
	}
	if (st->lost || st->lost_idle)
		fail_lost(x);
	/* by chance is not evidence: it would pass in one run, skip in the next */
	if (hold_mode == PC_BDEV_HOLD_NONE)
		pc_skip("no event: nothing holds the request (hold none); it was in flight across fork and the parent's write in %u of %u iterations by chance, a PASS needs it held: %s",
			st->after_write, st->iters, no_hold_hint());
	if (!st->after_write)
		pc_skip("no event: the request was never in flight across fork and the parent's write (0/%u iterations, hold %s): %s",
			st->iters, hold_names[hold_mode], no_hold_hint());
	/* held: every iteration run, or at least the number asked for */
	if (st->after_write < st->iters && st->after_write < x->want)
		pc_skip("no event: only %u of %u iterations had the request in flight (hold %s, guard fired %u times)",
			st->after_write, st->iters, hold_names[hold_mode],
			st->guard_fired);
	if (st->after_write * 100 < st->iters * MIN_INFLIGHT_PCT)
		pc_skip("no event: only %u of %u iterations (%u%%) had the request in flight across fork and the parent's write; a PASS needs %d%% (hold %s): the hold did not keep the request",
			st->after_write, st->iters,
			st->after_write * 100 / st->iters, MIN_INFLIGHT_PCT,
			hold_names[hold_mode]);
	pc_pass();
}

static void odf_case(const struct pc_case *c)
{
	struct odf_ctx x;
	unsigned int i = 0;

	open_ctx(&x, c);
	x.st.prep_ms = pc_now_ms() - x.t0_ms;
	while (want_more(&x) && run_iteration(&x, i))
		i++;
	pc_adio_close(x.adio);
	close(x.fd);
	judge_case(&x);
}

/* ---- the case list ---- */

static void scenario_name(char *buf, size_t len, const struct odf_row *row)
{
	snprintf(buf, len, "%s%s-%s-%s-%s",
		 row->control_remap ? "control-remap-" : "",
		 dir_names[row->dir], size_names[row->size],
		 fate_names[row->fate], fs_specs[row->fs].name);
}

/* The scenarios of one row: one per submitter it names. */
static void build_row(const struct odf_row *row)
{
	int k;

	for (k = 0; k < PC_ADIO_NR; k++) {
		struct odf_scenario *s;

		if (!(row->submitters & (1u << k)) ||
		    nr_scenarios == PC_ARRAY_SIZE(scenarios))
			continue;
		s = &scenarios[nr_scenarios++];
		s->row = row;
		s->sub = k;
		scenario_name(s->name, sizeof(s->name), row);
	}
}

static void build_scenarios(void)
{
	size_t i;

	for (i = 0; i < PC_ARRAY_SIZE(rows); i++)
		build_row(&rows[i]);
}

static void add_cases(void)
{
	const struct pc_backing *bk;
	const char *list;
	size_t i;

	/* every CPU: the fork on one CPU while the O_DIRECT I/O completes */
	pc_cases_race_across_cpus();

	pc_gen_name(ODF_GEN_FILE, "file data the O_DIRECT read delivers");
	pc_gen_name(ODF_GEN_INIT2, "written before fork (odd round)");
	for (i = 0; i < nr_scenarios; i++) {
		const struct odf_scenario *s = &scenarios[i];

		list = s->row->backings;
		while ((bk = pc_backing_next(&list)))
			pc_add_case(odf_case, s, bk, NULL, "%s/%s/%s/%s",
				    BINARY, s->name, bk->name,
				    pc_adio_name(s->sub));
	}
}

/* ---- devices, made once for the whole run by the wrapper process ---- */

static enum pc_bdev_hold pick_hold(void)
{
	const char *want = getenv("PINCHECK_ODF_HOLD");
	int have_dm = !pc_bdev_dm_probe();

	if (want && !strcmp(want, "none"))
		return PC_BDEV_HOLD_NONE;
	if (want && !strcmp(want, "fuse")) {
		if (pc_bdev_fuse_probe())
			snprintf(setup_skip, sizeof(setup_skip),
				 "PINCHECK_ODF_HOLD=fuse needs FUSE: modprobe fuse (/dev/fuse)");
		return PC_BDEV_HOLD_FUSE;
	}
	if (want && (!strcmp(want, "suspend") || !strcmp(want, "delay"))) {
		if (!have_dm)
			snprintf(setup_skip, sizeof(setup_skip),
				 "PINCHECK_ODF_HOLD=%s needs device-mapper: modprobe dm-delay",
				 want);
		return !strcmp(want, "delay") ? PC_BDEV_HOLD_DELAY :
						PC_BDEV_HOLD_SUSPEND;
	}
	if (want && *want && strcmp(want, "auto")) {
		fprintf(stderr, "%s: bad PINCHECK_ODF_HOLD '%s' (auto, suspend, fuse, delay, none)\n",
			BINARY, want);
		exit(2);
	}
	if (have_dm)
		return PC_BDEV_HOLD_SUSPEND;
	return pc_bdev_fuse_probe() ? PC_BDEV_HOLD_NONE : PC_BDEV_HOLD_FUSE;
}

/* The data every read case must receive, written once per device. */
static int write_read_data(struct pc_bdev *d)
{
	char path[256];
	const char *what = d->node;
	void *buf;
	int fd, rc = -1;

	if (d->mnt[0]) {
		snprintf(path, sizeof(path), "%s/%s", d->mnt, READ_DATA);
		what = path;
	}
	if (posix_memalign(&buf, pc_page_size, SLOT_SIZE))
		return -1;
	pc_fill(buf, 0, SLOT_SIZE, ODF_GEN_FILE);
	fd = open(what, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
	if (fd >= 0 && pwrite(fd, buf, SLOT_SIZE, 0) == SLOT_SIZE &&
	    !fsync(fd))
		rc = 0;
	if (rc)
		snprintf(d->why, sizeof(d->why), "write the read data to %.160s: %s",
			 what, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static void setup_devices(const int *need)
{
	unsigned int delay = pc_env_uint("PINCHECK_ODF_DELAY_MS", 50);
	int f;

	if (geteuid()) {
		snprintf(setup_skip, sizeof(setup_skip),
			 "needs root: builds loop and device-mapper devices and mounts file systems");
		return;
	}
	hold_mode = pick_hold();
	if (setup_skip[0])
		return;
	pc_bdev_reap_stale(TAG);
	for (f = 0; f < FS_NR; f++) {
		if (!need[f]) {
			snprintf(devs[f].why, sizeof(devs[f].why), "not set up");
			continue;
		}
		setup_ms[f] = pc_now_ms();
		pc_bdev_create(&devs[f], TAG, fs_specs[f].name,
			       fs_specs[f].fstype, fs_specs[f].mkfs_args,
			       fs_specs[f].size, hold_mode, delay);
		if (devs[f].ready && write_read_data(&devs[f]))
			devs[f].ready = 0;
		setup_ms[f] = pc_now_ms() - setup_ms[f];
	}
}

static void teardown_devices(void)
{
	int f;

	for (f = 0; f < FS_NR; f++)
		pc_bdev_destroy(&devs[f]);
	rmdir(pc_bdev_base_dir(TAG));
}

/* Build the devices the selected cases use, once for the whole run. */
static void setup_fixture(const struct pc_case *const *selected, size_t n)
{
	int need[FS_NR] = { 0 };
	size_t i;

	for (i = 0; i < n; i++) {
		const struct odf_scenario *s = selected[i]->scenario;

		need[s->row->fs] = 1;
	}
	setup_devices(need);
}

static const struct pc_fixture fixture = {
	.setup = setup_fixture,
	.teardown = teardown_devices,
};

int main(int argc, char **argv)
{
	build_scenarios();
	return pc_main_fixture(argc, argv, BINARY, add_cases, &fixture);
}
