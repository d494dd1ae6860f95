// SPDX-License-Identifier: GPL-2.0
/*
 * io_uring fixed buffers: io_uring_register_buffers() pins the range with
 * FOLL_WRITE | FOLL_PIN | FOLL_LONGTERM and keeps the pages until the
 * buffers are unregistered.  The "device" is the kernel doing I/O on those
 * pages against a scratch memfd:
 *
 *   dev_write: data -> memfd (pwrite), then READ_FIXED memfd -> pinned pages
 *   dev_read:  WRITE_FIXED pinned pages -> memfd, then memfd -> out (pread)
 *
 * READ_FIXED/WRITE_FIXED use the pages registered at pin time, never the
 * process's current mapping, so a page the mapping lost is still what the
 * device reads and writes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "sysprobe.h"

#define IO_URING_DISABLED_PATH "/proc/sys/kernel/io_uring_disabled"

#ifdef HAVE_LIBURING
#include <liburing.h>

#define RING_DEPTH 4
#define WAIT_TIMEOUT_S 5

struct uring_priv {
	struct io_uring ring;
	int memfd;		/* the file the device reads from / writes to */
	int registered;
	unsigned long long seq;	/* user_data of the last submission */
};

static const char *io_uring_disabled_reason(int err)
{
	static char why[128];
	char val[32];

	if (pc_read_line(IO_URING_DISABLED_PATH, val, sizeof(val)) < 0)
		snprintf(val, sizeof(val), "?");
	if (err == -ENOSYS)
		snprintf(why, sizeof(why),
			 "io_uring disabled: io_uring_setup() is ENOSYS (kernel without CONFIG_IO_URING)");
	else
		snprintf(why, sizeof(why),
			 "io_uring disabled: sysctl kernel.io_uring_disabled=%s",
			 val);
	return why;
}

static const char *uring_probe(void)
{
	struct io_uring ring;
	char val[32];
	int rc;

	if (pc_read_line(IO_URING_DISABLED_PATH, val, sizeof(val)) >= 0 &&
	    strcmp(val, "0"))
		return io_uring_disabled_reason(0);
	rc = io_uring_queue_init(1, &ring, 0);
	if (rc == -EPERM || rc == -ENOSYS)
		return io_uring_disabled_reason(rc);
	if (!rc)
		io_uring_queue_exit(&ring);
	/* Any other error shows up, with its message, at open. */
	return NULL;
}

static int uring_open(struct pc_engine *e)
{
	struct uring_priv *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return pc_engine_err(e, -ENOMEM, "io_uring: out of memory");
	p->memfd = memfd_create("pincheck-io_uring", MFD_CLOEXEC);
	if (p->memfd < 0) {
		rc = -errno;
		free(p);
		return pc_engine_err(e, rc, "io_uring: memfd_create: %s",
				     strerror(-rc));
	}
	rc = io_uring_queue_init(RING_DEPTH, &p->ring, 0);
	if (rc) {
		close(p->memfd);
		free(p);
		return pc_engine_err(e, rc, "io_uring_queue_init: %s",
				     strerror(-rc));
	}
	e->priv = p;
	return 0;
}

static int uring_pin(struct pc_engine *e, void *addr, size_t len,
		     unsigned int flags)
{
	struct uring_priv *p = e->priv;
	struct iovec iov = { .iov_base = addr, .iov_len = len };
	int rc;

	if (flags & PC_PIN_RO)
		return pc_engine_err(e, -EOPNOTSUPP,
				     "io_uring fixed buffers are always pinned writable: no R/O pin");
	if (ftruncate(p->memfd, len))
		return pc_engine_err(e, -errno, "io_uring: memfd ftruncate 0x%zx: %s",
				     len, strerror(errno));
	rc = io_uring_register_buffers(&p->ring, &iov, 1);
	if (rc)
		return pc_engine_err(e, rc,
				     "io_uring_register_buffers(%p, 0x%zx): %s",
				     addr, len, strerror(-rc));
	p->registered = 1;
	return 0;
}

/* Wait for the completion of submission @seq, skipping stale ones. */
static int uring_wait(struct pc_engine *e, const char *op, int *res)
{
	struct uring_priv *p = e->priv;
	struct __kernel_timespec ts = { .tv_sec = WAIT_TIMEOUT_S };
	struct io_uring_cqe *cqe;
	unsigned long long data;
	int rc;

	for (;;) {
		rc = io_uring_wait_cqe_timeout(&p->ring, &cqe, &ts);
		if (rc == -EINTR)
			continue;
		if (rc == -ETIME || rc == -ETIMEDOUT)
			return pc_engine_err(e, -ETIMEDOUT,
					     "io_uring %s: no completion within %d s",
					     op, WAIT_TIMEOUT_S);
		if (rc)
			return pc_engine_err(e, rc, "io_uring %s: wait: %s",
					     op, strerror(-rc));
		data = cqe->user_data;
		*res = cqe->res;
		io_uring_cqe_seen(&p->ring, cqe);
		if (data == p->seq)
			return 0;
	}
}

/*
 * One fixed-buffer transfer between pinned [off, off + len) and the memfd
 * at the same offset: READ_FIXED fills the pinned pages, WRITE_FIXED
 * drains them.
 */
static int uring_fixed_io(struct pc_engine *e, int to_pages, size_t off,
			  size_t len)
{
	struct uring_priv *p = e->priv;
	const char *op = to_pages ? "READ_FIXED" : "WRITE_FIXED";
	char *buf = (char *)e->addr + off;
	struct io_uring_sqe *sqe;
	int rc, res = 0;

	sqe = io_uring_get_sqe(&p->ring);
	if (!sqe)
		return pc_engine_err(e, -EBUSY, "io_uring %s: no free SQE", op);
	if (to_pages)
		io_uring_prep_read_fixed(sqe, p->memfd, buf, len, off, 0);
	else
		io_uring_prep_write_fixed(sqe, p->memfd, buf, len, off, 0);
	sqe->user_data = ++p->seq;
	rc = io_uring_submit(&p->ring);
	if (rc != 1)
		return pc_engine_err(e, rc < 0 ? rc : -EIO,
				     "io_uring %s: submit returned %d", op, rc);
	rc = uring_wait(e, op, &res);
	if (rc)
		return rc;
	if (res < 0)
		return pc_engine_err(e, res, "io_uring %s [0x%zx, 0x%zx): %s",
				     op, off, off + len, strerror(-res));
	if ((size_t)res != len)
		return pc_engine_err(e, -EIO,
				     "io_uring %s [0x%zx, 0x%zx): short, %d bytes",
				     op, off, off + len, res);
	return 0;
}

static int uring_dev_write(struct pc_engine *e, size_t off, size_t len,
			   const void *data)
{
	struct uring_priv *p = e->priv;
	ssize_t n = pwrite(p->memfd, data, len, off);

	if (n < 0 || (size_t)n != len)
		return pc_engine_err(e, n < 0 ? -errno : -EIO,
				     "io_uring: memfd pwrite 0x%zx bytes: %s",
				     len, n < 0 ? strerror(errno) : "short");
	return uring_fixed_io(e, 1, off, len);
}

static int uring_dev_read(struct pc_engine *e, size_t off, size_t len,
			  void *out)
{
	struct uring_priv *p = e->priv;
	ssize_t n;
	int rc;

	rc = uring_fixed_io(e, 0, off, len);
	if (rc)
		return rc;
	n = pread(p->memfd, out, len, off);
	if (n < 0 || (size_t)n != len)
		return pc_engine_err(e, n < 0 ? -errno : -EIO,
				     "io_uring: memfd pread 0x%zx bytes: %s",
				     len, n < 0 ? strerror(errno) : "short");
	return 0;
}

static int uring_unpin(struct pc_engine *e)
{
	struct uring_priv *p = e->priv;
	int rc;

	if (!p->registered)
		return 0;
	p->registered = 0;
	rc = io_uring_unregister_buffers(&p->ring);
	if (rc)
		return pc_engine_err(e, rc, "io_uring_unregister_buffers: %s",
				     strerror(-rc));
	return 0;
}

static void uring_close(struct pc_engine *e)
{
	struct uring_priv *p = e->priv;

	if (!p)
		return;
	io_uring_queue_exit(&p->ring);
	close(p->memfd);
	free(p);
}

const struct pc_engine_ops pc_engine_io_uring = {
	.name = "io_uring",
	.caps = PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RW |
		PC_CAP_LONGTERM | PC_CAP_HELD,
	.probe = uring_probe,
	.open = uring_open,
	.pin = uring_pin,
	.dev_read = uring_dev_read,
	.dev_write = uring_dev_write,
	.unpin = uring_unpin,
	.close = uring_close,
};

#else /* !HAVE_LIBURING */

static const char *uring_probe(void)
{
	return "built without liburing: apt-get install liburing-dev, then make";
}

static int uring_open(struct pc_engine *e)
{
	return pc_engine_err(e, -EOPNOTSUPP, "%s", uring_probe());
}

const struct pc_engine_ops pc_engine_io_uring = {
	.name = "io_uring",
	.caps = PC_CAP_DEV_READ | PC_CAP_DEV_WRITE | PC_CAP_PIN_RW |
		PC_CAP_LONGTERM | PC_CAP_HELD,
	.probe = uring_probe,
	.open = uring_open,
};

#endif /* HAVE_LIBURING */
