/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Asynchronous direct I/O: one request at a time, submitted so that the
 * caller goes on while the kernel holds the buffer's pages, then polled
 * or waited for.  Three submitters, three kernel paths to the same bio:
 *
 *   aio       Linux AIO through the raw syscalls (io_setup, io_submit,
 *             io_getevents): the bio is built inside io_submit
 *   io_uring  one SQE (liburing); the kernel may hand it to an io-wq
 *             worker thread of this process
 *   thread    a second thread doing a plain pread/pwrite
 *
 * The names are part of case ids and never change.
 */
#ifndef PINCHECK_ASYNC_DIO_H
#define PINCHECK_ASYNC_DIO_H

#include <stddef.h>
#include <sys/types.h>

enum pc_adio_kind {
	PC_ADIO_AIO,
	PC_ADIO_URING,
	PC_ADIO_THREAD,
	PC_ADIO_NR,
};

struct pc_adio;

const char *pc_adio_name(enum pc_adio_kind kind);

/* NULL when usable here, else a one-line skip reason. */
const char *pc_adio_probe(enum pc_adio_kind kind);

/* 0, or -errno with a message in @err. */
int pc_adio_open(struct pc_adio **out, enum pc_adio_kind kind, char *err,
		 size_t errlen);
void pc_adio_close(struct pc_adio *a);

/* Start one O_DIRECT read (@write 0) or write of @len bytes; 0 or -errno. */
int pc_adio_submit(struct pc_adio *a, int fd, int write, void *buf,
		   size_t len, off_t off);

/*
 * 1 done (*res = bytes or -errno; asked again, the same answer until the
 * next submission), 0 still pending, -errno on error.
 */
int pc_adio_poll(struct pc_adio *a, long *res);

/* As pc_adio_poll, waiting up to @timeout_ms for completion. */
int pc_adio_wait(struct pc_adio *a, unsigned int timeout_ms, long *res);

/*
 * Bytes this process (all its threads, io_uring workers included) has
 * submitted to the block layer for reading (@write 0) or writing, from
 * /proc/self/io.  The kernel counts a bio there when it is submitted,
 * that is after the user pages were taken: a count that grew by the
 * request's length proves the request holds the pages.  0 or -errno.
 */
int pc_io_submitted_bytes(int write, unsigned long long *out);

#endif
