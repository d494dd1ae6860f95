// SPDX-License-Identifier: GPL-2.0
/* Asynchronous direct I/O submitters: Linux AIO, io_uring, a thread. */
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "async_dio.h"
#include "sysprobe.h"

#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

struct adio_job {
	int fd;
	int write;
	void *buf;
	size_t len;
	off_t off;
};

struct pc_adio {
	enum pc_adio_kind kind;
	int pending;		/* submitted, completion not reaped */
	int reaped;		/* completion reaped, result in res */
	long res;
	/* aio */
	aio_context_t ctx;
	struct iocb cb;
#ifdef HAVE_LIBURING
	struct io_uring ring;
	int ring_ok;
#endif
	/* thread */
	pthread_t thread;
	int thread_ok;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct adio_job job;
	int have_job;
	int stop;
	atomic_int done;
	long result;
};

static const char *const names[PC_ADIO_NR] = {
	[PC_ADIO_AIO] = "aio",
	[PC_ADIO_URING] = "io_uring",
	[PC_ADIO_THREAD] = "thread",
};

const char *pc_adio_name(enum pc_adio_kind kind)
{
	return kind < PC_ADIO_NR ? names[kind] : "?";
}

/* ---- time ---- */

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* ---- Linux AIO ---- */

static int aio_setup(struct pc_adio *a)
{
	if (syscall(SYS_io_setup, 4, &a->ctx))
		return -errno;
	return 0;
}

static int aio_start(struct pc_adio *a, const struct adio_job *j)
{
	struct iocb *list[1] = { &a->cb };
	long rc;

	memset(&a->cb, 0, sizeof(a->cb));
	a->cb.aio_lio_opcode = j->write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
	a->cb.aio_fildes = j->fd;
	a->cb.aio_buf = (uintptr_t)j->buf;
	a->cb.aio_nbytes = j->len;
	a->cb.aio_offset = j->off;
	rc = syscall(SYS_io_submit, a->ctx, 1, list);
	if (rc == 1)
		return 0;
	return rc < 0 ? -errno : -EAGAIN;
}

static int aio_reap(struct pc_adio *a, unsigned int timeout_ms, long *res)
{
	struct timespec ts = { timeout_ms / 1000,
			       (timeout_ms % 1000) * 1000000L };
	struct io_event ev;
	long n;

	do {
		n = syscall(SYS_io_getevents, a->ctx, timeout_ms ? 1 : 0, 1,
			    &ev, &ts);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (!n)
		return 0;
	*res = ev.res;
	return 1;
}

/* ---- io_uring ---- */

#ifdef HAVE_LIBURING
static const char *uring_probe(void)
{
	static char why[160];
	struct io_uring ring;
	int rc = io_uring_queue_init(2, &ring, 0);

	if (!rc) {
		io_uring_queue_exit(&ring);
		return NULL;
	}
	snprintf(why, sizeof(why),
		 "io_uring unavailable: io_uring_setup: %s (CONFIG_IO_URING, sysctl kernel.io_uring_disabled)",
		 strerror(-rc));
	return why;
}

static int uring_setup(struct pc_adio *a)
{
	int rc = io_uring_queue_init(4, &a->ring, 0);

	a->ring_ok = !rc;
	return rc;
}

static int uring_start(struct pc_adio *a, const struct adio_job *j)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);
	int rc;

	if (!sqe)
		return -EBUSY;
	if (j->write)
		io_uring_prep_write(sqe, j->fd, j->buf, j->len, j->off);
	else
		io_uring_prep_read(sqe, j->fd, j->buf, j->len, j->off);
	rc = io_uring_submit(&a->ring);
	return rc == 1 ? 0 : rc < 0 ? rc : -EAGAIN;
}

static int uring_reap(struct pc_adio *a, unsigned int timeout_ms, long *res)
{
	struct __kernel_timespec ts = { timeout_ms / 1000,
					(timeout_ms % 1000) * 1000000L };
	struct io_uring_cqe *cqe;
	int rc;

	if (timeout_ms)
		rc = io_uring_wait_cqe_timeout(&a->ring, &cqe, &ts);
	else
		rc = io_uring_peek_cqe(&a->ring, &cqe);
	if (rc == -ETIME || rc == -EAGAIN || rc == -EINTR)
		return 0;
	if (rc)
		return rc;
	*res = cqe->res;
	io_uring_cqe_seen(&a->ring, cqe);
	return 1;
}
#else
static const char *uring_probe(void)
{
	return "built without liburing: install liburing-dev and rebuild";
}

static int uring_setup(struct pc_adio *a)
{
	(void)a;
	return -ENOSYS;
}

static int uring_start(struct pc_adio *a, const struct adio_job *j)
{
	(void)a;
	(void)j;
	return -ENOSYS;
}

static int uring_reap(struct pc_adio *a, unsigned int timeout_ms, long *res)
{
	(void)a;
	(void)timeout_ms;
	(void)res;
	return -ENOSYS;
}
#endif

/* ---- a second thread ---- */

static long thread_do_io(const struct adio_job *j)
{
	ssize_t n = j->write ? pwrite(j->fd, j->buf, j->len, j->off) :
			       pread(j->fd, j->buf, j->len, j->off);

	return n < 0 ? -errno : n;
}

static void *thread_main(void *arg)
{
	struct pc_adio *a = arg;
	struct adio_job j;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (!a->have_job && !a->stop)
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->stop)
			break;
		j = a->job;
		a->have_job = 0;
		pthread_mutex_unlock(&a->lock);
		a->result = thread_do_io(&j);
		pthread_mutex_lock(&a->lock);
		atomic_store(&a->done, 1);
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static int thread_setup(struct pc_adio *a)
{
	int rc;

	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	rc = pthread_create(&a->thread, NULL, thread_main, a);
	a->thread_ok = !rc;
	return -rc;
}

static int thread_start(struct pc_adio *a, const struct adio_job *j)
{
	pthread_mutex_lock(&a->lock);
	a->job = *j;
	a->have_job = 1;
	atomic_store(&a->done, 0);
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

static int thread_reap(struct pc_adio *a, unsigned int timeout_ms, long *res)
{
	long long deadline = now_us() + timeout_ms * 1000LL;
	struct timespec ts;
	int done;

	pthread_mutex_lock(&a->lock);
	while (!(done = atomic_load(&a->done)) && timeout_ms) {
		long long left = deadline - now_us();

		if (left <= 0)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (ts.tv_nsec / 1000 + left) / 1000000;
		ts.tv_nsec = ((ts.tv_nsec / 1000 + left) % 1000000) * 1000;
		pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	}
	if (done)
		*res = a->result;
	pthread_mutex_unlock(&a->lock);
	return done;
}

/* ---- the interface ---- */

const char *pc_adio_probe(enum pc_adio_kind kind)
{
	static char why[160];
	aio_context_t ctx = 0;

	switch (kind) {
	case PC_ADIO_AIO:
		if (syscall(SYS_io_setup, 1, &ctx)) {
			snprintf(why, sizeof(why),
				 "Linux AIO unavailable: io_setup: %s (CONFIG_AIO, sysctl fs.aio-max-nr)",
				 strerror(errno));
			return why;
		}
		syscall(SYS_io_destroy, ctx);
		return NULL;
	case PC_ADIO_URING:
		return uring_probe();
	case PC_ADIO_THREAD:
		return NULL;
	default:
		return "unknown submitter";
	}
}

int pc_adio_open(struct pc_adio **out, enum pc_adio_kind kind, char *err,
		 size_t errlen)
{
	struct pc_adio *a = calloc(1, sizeof(*a));
	int rc;

	if (!a)
		return -ENOMEM;
	a->kind = kind;
	switch (kind) {
	case PC_ADIO_AIO:
		rc = aio_setup(a);
		break;
	case PC_ADIO_URING:
		rc = uring_setup(a);
		break;
	case PC_ADIO_THREAD:
		rc = thread_setup(a);
		break;
	default:
		rc = -EINVAL;
	}
	if (rc) {
		snprintf(err, errlen, "%s setup: %s", pc_adio_name(kind),
			 strerror(-rc));
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void pc_adio_close(struct pc_adio *a)
{
	long res;

	if (!a)
		return;
	if (a->pending)
		pc_adio_wait(a, 10000, &res);
	if (a->kind == PC_ADIO_AIO)
		syscall(SYS_io_destroy, a->ctx);
#ifdef HAVE_LIBURING
	if (a->kind == PC_ADIO_URING && a->ring_ok)
		io_uring_queue_exit(&a->ring);
#endif
	if (a->kind == PC_ADIO_THREAD && a->thread_ok) {
		pthread_mutex_lock(&a->lock);
		a->stop = 1;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	}
	free(a);
}

int pc_adio_submit(struct pc_adio *a, int fd, int write, void *buf,
		   size_t len, off_t off)
{
	struct adio_job j = { fd, write, buf, len, off };
	int rc;

	if (a->pending)
		return -EBUSY;
	switch (a->kind) {
	case PC_ADIO_AIO:
		rc = aio_start(a, &j);
		break;
	case PC_ADIO_URING:
		rc = uring_start(a, &j);
		break;
	default:
		rc = thread_start(a, &j);
	}
	a->pending = !rc;
	a->reaped = 0;
	return rc;
}

int pc_adio_wait(struct pc_adio *a, unsigned int timeout_ms, long *res)
{
	int rc;

	if (a->reaped) {
		*res = a->res;
		return 1;
	}
	if (!a->pending)
		return -EINVAL;
	switch (a->kind) {
	case PC_ADIO_AIO:
		rc = aio_reap(a, timeout_ms, res);
		break;
	case PC_ADIO_URING:
		rc = uring_reap(a, timeout_ms, res);
		break;
	default:
		rc = thread_reap(a, timeout_ms, res);
	}
	if (rc == 1) {
		a->pending = 0;
		a->reaped = 1;
		a->res = *res;
	}
	return rc;
}

int pc_adio_poll(struct pc_adio *a, long *res)
{
	return pc_adio_wait(a, 0, res);
}

int pc_io_submitted_bytes(int write, unsigned long long *out)
{
	const char *key = write ? "write_bytes:" : "read_bytes:";
	size_t klen = strlen(key);
	char buf[512], *line;
	ssize_t n;
	int fd = open("/proc/self/io", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* whole lines: "write_bytes:" also ends "cancelled_write_bytes:" */
	for (line = buf; line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (!strncmp(line, key, klen)) {
			*out = strtoull(line + klen, NULL, 10);
			return 0;
		}
	}
	return -ENOENT;
}
