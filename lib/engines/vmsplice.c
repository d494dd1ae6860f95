// SPDX-License-Identifier: GPL-2.0
/*
 * vmsplice: splicing user memory into a pipe makes the pipe buffers hold
 * references on the pages themselves (FOLL_GET, read-only, short-term in
 * intent but held for as long as the data sits in the pipe).  Reading the
 * pipe is the "device" reading those pages.
 *
 * A pipe holds one page reference per slot and an unprivileged pipe is at
 * most fs.pipe-max-size (1 MB by default), so a large range is spliced
 * into several pipes, in address order.
 *
 * The pipes can be read only once: the first dev_read drains the whole
 * pinned range into a shadow copy (which drops the references), and that
 * and every later dev_read are served from the shadow.  So the device's
 * view is the content of the referenced pages at the time of the first
 * dev_read after pin.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "sysprobe.h"
#include "util.h"

#define DRAIN_TIMEOUT_MS 5000
#define PIPE_MAX_SIZE_PATH "/proc/sys/fs/pipe-max-size"

/* One pipe holds one buffer (one page reference) per slot. */
struct splice_pipe {
	int rd, wr;
	size_t len;		/* bytes spliced into it */
};

struct vmsplice_priv {
	struct splice_pipe *pipes;	/* in address order */
	size_t nr_pipes;
	char *shadow;		/* what the pipes held, once drained */
};

static void close_pipes(struct vmsplice_priv *p)
{
	size_t i;

	for (i = 0; i < p->nr_pipes; i++) {
		close(p->pipes[i].rd);
		close(p->pipes[i].wr);
	}
	free(p->pipes);
	p->pipes = NULL;
	p->nr_pipes = 0;
}

static int vmsplice_open(struct pc_engine *e)
{
	struct vmsplice_priv *p = calloc(1, sizeof(*p));

	if (!p)
		return pc_engine_err(e, -ENOMEM, "vmsplice: out of memory");
	e->priv = p;
	return 0;
}

/* The largest pipe an unprivileged process may ask for. */
static size_t pipe_max_size(void)
{
	char val[32];
	long v;

	if (pc_read_line(PIPE_MAX_SIZE_PATH, val, sizeof(val)))
		return 1 << 20;
	v = atol(val);
	return v > 0 ? (size_t)v : 1 << 20;
}

/*
 * Grow the pipe towards @want bytes (a pipe above fs.pipe-max-size needs
 * CAP_SYS_RESOURCE, so the range may take several pipes).  Returns the
 * pipe's size in bytes, or -errno.
 */
static long size_pipe(int fd, size_t want)
{
	size_t max = pipe_max_size();
	long got;

	if (want > max)
		want = max;
	if (want > (size_t)0x40000000)
		want = 0x40000000;
	got = fcntl(fd, F_SETPIPE_SZ, (int)want);
	if (got < 0)
		got = fcntl(fd, F_GETPIPE_SZ);	/* over a user limit */
	return got < 0 ? -errno : got;
}

static int splice_range(struct pc_engine *e, int fd, char *addr, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct iovec iov = {
			.iov_base = addr + done,
			.iov_len = len - done,
		};
		ssize_t n = vmsplice(fd, &iov, 1, SPLICE_F_NONBLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pc_engine_err(e, -errno,
					     "vmsplice %p+0x%zx at 0x%zx: %s%s",
					     addr, len, done, strerror(errno),
					     errno == EAGAIN ? " (pipe full)" : "");
		if (!n)
			return pc_engine_err(e, -EIO,
					     "vmsplice %p+0x%zx at 0x%zx: no progress",
					     addr, len, done);
		done += n;
	}
	return 0;
}

/* Open one more pipe and splice as much of [addr, addr + len) as fits. */
static long splice_into_new_pipe(struct pc_engine *e, char *addr, size_t len)
{
	struct vmsplice_priv *p = e->priv;
	size_t page = sysconf(_SC_PAGESIZE);
	size_t head = (unsigned long)addr & (page - 1);
	struct splice_pipe *pp, *grown;
	int fds[2], rc;
	long size;

	grown = realloc(p->pipes, (p->nr_pipes + 1) * sizeof(*grown));
	if (!grown)
		return pc_engine_err(e, -ENOMEM, "vmsplice: out of memory");
	p->pipes = grown;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK))
		return pc_engine_err(e, -errno, "vmsplice: pipe2: %s%s",
				     strerror(errno),
				     errno == EMFILE ? " (range too large for RLIMIT_NOFILE)" : "");
	pp = &p->pipes[p->nr_pipes++];
	pp->rd = fds[0];
	pp->wr = fds[1];
	size = size_pipe(pp->wr, pc_align_up(head + len, page));
	if (size < (long)page)
		return pc_engine_err(e, size < 0 ? (int)size : -EIO,
				     "vmsplice: pipe size %ld", size);
	/* One slot per page touched. */
	pp->len = (size_t)size / page * page - head;
	if (pp->len > len)
		pp->len = len;
	rc = splice_range(e, pp->wr, addr, pp->len);
	return rc ? rc : (long)pp->len;
}

static int vmsplice_pin(struct pc_engine *e, void *addr, size_t len,
			unsigned int flags)
{
	size_t done = 0;
	long n;

	if (flags & PC_PIN_RW)
		return pc_engine_err(e, -EOPNOTSUPP,
				     "vmsplice takes read-only references: no R/W pin");
	while (done < len) {
		n = splice_into_new_pipe(e, (char *)addr + done, len - done);
		if (n < 0) {
			close_pipes(e->priv);
			return n;
		}
		done += n;
	}
	return 0;
}

/* Read exactly @len bytes from the non-blocking pipe, or time out. */
static int drain_pipe(struct pc_engine *e, int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n = read(fd, buf + got, len - got);
		int rc;

		if (n > 0) {
			got += n;
			continue;
		}
		if (!n)
			return pc_engine_err(e, -EIO,
					     "vmsplice: pipe ended after 0x%zx of 0x%zx bytes",
					     got, len);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return pc_engine_err(e, -errno, "vmsplice: pipe read: %s",
					     strerror(errno));
		rc = poll(&pfd, 1, DRAIN_TIMEOUT_MS);
		if (!rc)
			return pc_engine_err(e, -ETIMEDOUT,
					     "vmsplice: pipe stalled after 0x%zx of 0x%zx bytes for %d ms",
					     got, len, DRAIN_TIMEOUT_MS);
		if (rc < 0 && errno != EINTR)
			return pc_engine_err(e, -errno, "vmsplice: poll: %s",
					     strerror(errno));
	}
	return 0;
}

/* Drain every pipe, in address order, into the shadow. */
static int drain_pipes(struct pc_engine *e, char *shadow)
{
	struct vmsplice_priv *p = e->priv;
	size_t i, at = 0;
	int rc;

	for (i = 0; i < p->nr_pipes; i++) {
		rc = drain_pipe(e, p->pipes[i].rd, shadow + at,
				p->pipes[i].len);
		if (rc)
			return rc;
		at += p->pipes[i].len;
	}
	if (at != e->len)
		return pc_engine_err(e, -EIO,
				     "vmsplice: pipes held 0x%zx of 0x%zx bytes",
				     at, e->len);
	return 0;
}

static int vmsplice_dev_read(struct pc_engine *e, size_t off, size_t len,
			     void *out)
{
	struct vmsplice_priv *p = e->priv;
	int rc;

	if (!p->shadow && !p->nr_pipes)
		return pc_engine_err(e, -EIO,
				     "vmsplice: the pipes were lost by an earlier failed read");
	if (!p->shadow) {
		p->shadow = malloc(e->len);
		if (!p->shadow)
			return pc_engine_err(e, -ENOMEM,
					     "vmsplice: no memory for a 0x%zx shadow",
					     e->len);
		rc = drain_pipes(e, p->shadow);
		/* Drained pipes hold no references any more. */
		close_pipes(p);
		if (rc) {
			free(p->shadow);
			p->shadow = NULL;
			return rc;
		}
	}
	memcpy(out, p->shadow + off, len);
	return 0;
}

static int vmsplice_unpin(struct pc_engine *e)
{
	struct vmsplice_priv *p = e->priv;

	close_pipes(p);
	free(p->shadow);
	p->shadow = NULL;
	return 0;
}

static void vmsplice_close(struct pc_engine *e)
{
	struct vmsplice_priv *p = e->priv;

	if (!p)
		return;
	vmsplice_unpin(e);
	free(p);
}

const struct pc_engine_ops pc_engine_vmsplice = {
	.name = "vmsplice",
	.caps = PC_CAP_DEV_READ | PC_CAP_GET_REF | PC_CAP_HELD |
		PC_CAP_READ_ONCE | PC_CAP_PIN_RO,
	.probe = NULL,
	.open = vmsplice_open,
	.pin = vmsplice_pin,
	.dev_read = vmsplice_dev_read,
	.unpin = vmsplice_unpin,
	.close = vmsplice_close,
};
