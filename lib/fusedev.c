// SPDX-License-Identifier: GPL-2.0
/*
 * A one-file FUSE server in a child process (see fusedev.h).  Speaks just enough
 * of the protocol for a loop device over the file: INIT, LOOKUP, GETATTR,
 * SETATTR, OPEN, READ, WRITE, FLUSH, FSYNC, RELEASE, STATFS; ENOSYS for
 * the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fusedev.h"

#define GUARD_MS 5000		/* a hold never lasts longer */
#define MAX_IO (128 * 1024)	/* max_read and max_write */
#define IN_BUF (MAX_IO + 4096)
#define ROOT_INO FUSE_ROOT_ID
#define FILE_INO 2
#define FOREVER 86400		/* entry and attribute validity, s */

struct pc_fusedev_shared {
	int held;
	int queued;		/* a request waited while held */
	int guard_fired;
	int stop;
	long long held_since;	/* CLOCK_MONOTONIC ms */
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int load(const int *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void store(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static void wake(const struct pc_fusedev *d)
{
	uint64_t one = 1;

	if (write(d->wake_fd, &one, sizeof(one)) != sizeof(one))
		return;		/* counter full: a wake-up is pending anyway */
}

static void drain_wake(const struct pc_fusedev *d)
{
	uint64_t n;

	if (read(d->wake_fd, &n, sizeof(n)) != sizeof(n))
		return;
}

int pc_fusedev_probe(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* ---- replies ---- */

static void reply(const struct pc_fusedev *d, uint64_t unique, int error,
		  const void *arg, size_t len)
{
	struct fuse_out_header out = {
		.len = sizeof(out) + (error ? 0 : len),
		.error = error, .unique = unique,
	};
	struct iovec iov[2] = {
		{ &out, sizeof(out) }, { (void *)arg, error ? 0 : len },
	};

	/* ENOENT: the request was interrupted meanwhile; nothing to do */
	if (writev(d->fuse_fd, iov, 2) < 0)
		return;
}

static void fill_attr(const struct pc_fusedev *d, uint64_t ino,
		      struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->blksize = 4096;
	if (ino == ROOT_INO) {
		a->mode = S_IFDIR | 0700;
		a->nlink = 2;
		return;
	}
	a->mode = S_IFREG | 0600;
	a->nlink = 1;
	a->size = d->size;
	a->blocks = d->size / 512;
}

static void do_init(const struct pc_fusedev *d, const struct fuse_in_header *in,
		    const struct fuse_init_in *arg)
{
	struct fuse_init_out out = {
		.major = FUSE_KERNEL_VERSION,
		.minor = FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = arg->max_readahead,
		.max_background = 16, .congestion_threshold = 12,
		.max_write = MAX_IO, .time_gran = 1,
	};

	if (arg->major != FUSE_KERNEL_VERSION) {
		reply(d, in->unique, -EPROTO, NULL, 0);
		return;
	}
	reply(d, in->unique, 0, &out, sizeof(out));
}

static void do_lookup(const struct pc_fusedev *d,
		      const struct fuse_in_header *in, const char *name)
{
	struct fuse_entry_out e;

	if (in->nodeid != ROOT_INO || strcmp(name, d->name)) {
		reply(d, in->unique, -ENOENT, NULL, 0);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.nodeid = FILE_INO;
	e.generation = 1;
	e.entry_valid = FOREVER;
	e.attr_valid = FOREVER;
	fill_attr(d, FILE_INO, &e.attr);
	reply(d, in->unique, 0, &e, sizeof(e));
}

static void do_getattr(const struct pc_fusedev *d,
		       const struct fuse_in_header *in)
{
	struct fuse_attr_out a;

	memset(&a, 0, sizeof(a));
	a.attr_valid = FOREVER;
	fill_attr(d, in->nodeid, &a.attr);
	reply(d, in->unique, 0, &a, sizeof(a));
}

static void do_open(const struct pc_fusedev *d, const struct fuse_in_header *in)
{
	struct fuse_open_out o = { .fh = 1 };

	if (in->opcode == FUSE_OPEN)
		o.open_flags = FOPEN_DIRECT_IO;	/* every byte reaches us */
	reply(d, in->unique, 0, &o, sizeof(o));
}

static void do_read(const struct pc_fusedev *d, const struct fuse_in_header *in,
		    const struct fuse_read_in *arg, char *out)
{
	size_t len = arg->size > MAX_IO ? MAX_IO : arg->size;
	ssize_t n = pread(d->img_fd, out, len, (off_t)arg->offset);

	reply(d, in->unique, n < 0 ? -errno : 0, out, n < 0 ? 0 : (size_t)n);
}

static void do_write(const struct pc_fusedev *d, const struct fuse_in_header *in,
		     const struct fuse_write_in *arg)
{
	struct fuse_write_out o = { 0 };
	ssize_t n = pwrite(d->img_fd, arg + 1, arg->size, (off_t)arg->offset);

	o.size = n < 0 ? 0 : (uint32_t)n;
	reply(d, in->unique, n < 0 ? -errno : 0, &o, sizeof(o));
}

static void do_statfs(const struct pc_fusedev *d,
		      const struct fuse_in_header *in)
{
	struct fuse_statfs_out s;

	memset(&s, 0, sizeof(s));
	s.st.bsize = 4096;
	s.st.frsize = 4096;
	s.st.namelen = 255;
	s.st.files = 2;
	reply(d, in->unique, 0, &s, sizeof(s));
}

static void handle(const struct pc_fusedev *d, char *buf, char *out)
{
	const struct fuse_in_header *in = (const void *)buf;
	const void *arg = in + 1;

	switch (in->opcode) {
	case FUSE_INIT:
		do_init(d, in, arg);
		break;
	case FUSE_LOOKUP:
		do_lookup(d, in, arg);
		break;
	case FUSE_GETATTR:
	case FUSE_SETATTR:	/* the size is fixed: report it */
		do_getattr(d, in);
		break;
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		do_open(d, in);
		break;
	case FUSE_READ:
		do_read(d, in, arg, out);
		break;
	case FUSE_WRITE:
		do_write(d, in, arg);
		break;
	case FUSE_STATFS:
		do_statfs(d, in);
		break;
	case FUSE_FLUSH:
	case FUSE_FSYNC:
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_FSYNCDIR:
		reply(d, in->unique, 0, NULL, 0);
		break;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		break;		/* no reply */
	default:
		reply(d, in->unique, -ENOSYS, NULL, 0);
	}
}

/* ---- the server process ---- */

/* While held: note a waiting request, take none; the guard ends it. */
static void wait_while_held(struct pc_fusedev *d)
{
	struct pc_fusedev_shared *sh = d->sh;
	int seen = 0;

	while (load(&sh->held) && !load(&sh->stop)) {
		struct pollfd p[2] = {
			{ .fd = d->wake_fd, .events = POLLIN },
			{ .fd = d->fuse_fd, .events = POLLIN },
		};
		long long left = sh->held_since + GUARD_MS - mono_ms();

		if (left <= 0) {
			store(&sh->guard_fired, 1);
			store(&sh->held, 0);
			break;
		}
		if (poll(p, seen ? 1 : 2, (int)left) < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN)
			drain_wake(d);
		if (!seen && (p[1].revents & POLLIN)) {
			seen = 1;
			store(&sh->queued, 1);
		}
	}
}

/* Wait for a request; 1: one is ready to read, 0: look again, -1: end. */
static int wait_request(struct pc_fusedev *d)
{
	struct pollfd p[2] = {
		{ .fd = d->wake_fd, .events = POLLIN },
		{ .fd = d->fuse_fd, .events = POLLIN },
	};

	if (poll(p, 2, -1) < 0)
		return errno == EINTR ? 0 : -1;
	if (p[0].revents & POLLIN)
		drain_wake(d);
	if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))
		return -1;
	/* held meanwhile: the request stays queued */
	return (p[1].revents & POLLIN) && !load(&d->sh->held);
}

static void serve(struct pc_fusedev *d)
{
	char *buf = malloc(IN_BUF), *out = malloc(MAX_IO);
	ssize_t n;
	int rc;

	while (buf && out && !load(&d->sh->stop)) {
		if (load(&d->sh->held)) {
			wait_while_held(d);
			continue;
		}
		rc = wait_request(d);
		if (rc < 0)
			break;
		if (!rc)
			continue;
		n = read(d->fuse_fd, buf, IN_BUF);
		if (n < 0 && errno == ENODEV)
			break;		/* unmounted */
		if (n >= (ssize_t)sizeof(struct fuse_in_header))
			handle(d, buf, out);
	}
	free(buf);
	free(out);
}

/*
 * The server is the only holder of /dev/fuse: when it dies, with its
 * parent or alone, the connection is aborted and every waiting request
 * ends with an error instead of blocking the loop device for good.
 */
static int start_server(struct pc_fusedev *d)
{
	pid_t parent = getpid();

	d->server = fork();
	if (d->server < 0)
		return -1;
	if (d->server) {
		close(d->fuse_fd);	/* the server's alone */
		d->fuse_fd = -1;
		return 0;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	/* ended by pc_fusedev_stop() or with its parent, not by ^C */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	serve(d);
	_exit(0);
}

/* ---- start and stop ---- */

static int fail(char *why, size_t len, const char *what, int err)
{
	snprintf(why, len, "FUSE hold: %s: %s", what, strerror(err));
	return -1;
}

static int mount_fuse(struct pc_fusedev *d, char *why, size_t whylen)
{
	char opts[160];

	d->fuse_fd = open("/dev/fuse", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (d->fuse_fd < 0)
		return fail(why, whylen, "open /dev/fuse", errno);
	if (mkdir(d->mnt, 0700) && errno != EEXIST)
		return fail(why, whylen, "mkdir", errno);
	snprintf(opts, sizeof(opts),
		 "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,max_read=%d",
		 d->fuse_fd, MAX_IO);
	if (mount("pincheck", d->mnt, "fuse", MS_NOSUID | MS_NODEV, opts)) {
		int err = errno;

		rmdir(d->mnt);
		close(d->fuse_fd);
		d->fuse_fd = -1;
		return fail(why, whylen, "mount", err);
	}
	return 0;
}

int pc_fusedev_start(struct pc_fusedev *d, const char *mnt, const char *name,
		     int img_fd, size_t size, char *why, size_t whylen)
{
	memset(d, 0, sizeof(*d));
	d->server = -1;
	d->fuse_fd = -1;
	d->wake_fd = -1;
	d->img_fd = img_fd;
	d->size = size;
	d->name = name;
	snprintf(d->mnt, sizeof(d->mnt), "%s", mnt);
	snprintf(d->path, sizeof(d->path), "%s/%s", mnt, name);
	d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->wake_fd < 0) {
		int err = errno;

		pc_fusedev_stop(d);
		return fail(why, whylen, "eventfd", err);
	}
	d->sh = mmap(NULL, sizeof(*d->sh), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (d->sh == MAP_FAILED) {
		int err = errno;

		d->sh = NULL;
		pc_fusedev_stop(d);
		return fail(why, whylen, "mmap", err);
	}
	memset(d->sh, 0, sizeof(*d->sh));
	if (mount_fuse(d, why, whylen)) {
		pc_fusedev_stop(d);
		return -1;
	}
	d->mounted = 1;
	if (start_server(d)) {
		int err = errno;

		pc_fusedev_stop(d);
		return fail(why, whylen, "fork the server", err);
	}
	return 0;
}

void pc_fusedev_hold(struct pc_fusedev *d)
{
	if (!d->sh)
		return;
	store(&d->sh->queued, 0);
	store(&d->sh->guard_fired, 0);
	d->sh->held_since = mono_ms();
	store(&d->sh->held, 1);
	wake(d);
}

int pc_fusedev_release(struct pc_fusedev *d)
{
	if (!d->sh)
		return 0;
	store(&d->sh->held, 0);
	wake(d);
	return load(&d->sh->guard_fired);
}

int pc_fusedev_queued(const struct pc_fusedev *d)
{
	return d->sh && load(&d->sh->queued);
}

void pc_fusedev_stop(struct pc_fusedev *d)
{
	if (d->sh) {
		store(&d->sh->held, 0);
		store(&d->sh->stop, 1);
		wake(d);
	}
	if (d->server > 0)
		while (waitpid(d->server, NULL, 0) < 0 && errno == EINTR)
			;
	d->server = -1;
	if (d->mounted) {
		if (umount2(d->mnt, 0))
			umount2(d->mnt, MNT_DETACH);
		rmdir(d->mnt);
	}
	d->mounted = 0;
	if (d->fuse_fd >= 0)
		close(d->fuse_fd);
	d->fuse_fd = -1;
	if (d->img_fd >= 0)
		close(d->img_fd);
	d->img_fd = -1;
	if (d->wake_fd >= 0)
		close(d->wake_fd);
	d->wake_fd = -1;
	if (d->sh)
		munmap(d->sh, sizeof(*d->sh));
	d->sh = NULL;
}
