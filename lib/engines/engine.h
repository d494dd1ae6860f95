/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Engines: real kernel paths that pin user memory and then read or write it
 * on a device's behalf.  All behind one small ops table.
 *
 * An engine instance lives inside one case process: open, pin a range,
 * any number of dev_read/dev_write at offsets within the pinned range,
 * unpin, close.  A child created by fork() never touches the instance.
 */
#ifndef PINCHECK_ENGINE_H
#define PINCHECK_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/* pc_engine_ops.caps */
#define PC_CAP_DEV_READ		(1u << 0)	/* device can read pinned memory */
#define PC_CAP_DEV_WRITE	(1u << 1)	/* device can write pinned memory */
#define PC_CAP_PIN_RO		(1u << 2)	/* can pin without FOLL_WRITE */
#define PC_CAP_PIN_RW		(1u << 3)	/* can pin with FOLL_WRITE */
#define PC_CAP_LONGTERM		(1u << 4)	/* FOLL_LONGTERM pin */
#define PC_CAP_HELD		(1u << 5)	/* the pin is held from pin() to unpin() */
#define PC_CAP_GET_REF		(1u << 6)	/* FOLL_GET reference, not FOLL_PIN */
#define PC_CAP_READ_ONCE	(1u << 7)	/* one dev_read per pin (a pipe) */
/*
 * FOLL_FORCE access (a debugger's /proc/<pid>/mem): reads PROT_NONE and
 * writes PROT_READ ranges.  Such an engine joins only the matrices whose
 * @need asks for PC_CAP_FORCED (pc_engine_joins()).
 */
#define PC_CAP_FORCED		(1u << 8)
/*
 * May be too slow for every backing of a matrix (ops->slow says whether
 * it is, with the device in use, and why): such an engine runs a case
 * only on the backings its test lists for slow engines
 * (pc_slow_engine_backings, harness.h) and skips the others with the
 * reason; PINCHECK_VFIO_ALL_BACKINGS=1 (named after the only such engine)
 * runs them all.
 */
#define PC_CAP_SLOW		(1u << 9)
#define PC_ENV_SLOW_ALL		"PINCHECK_VFIO_ALL_BACKINGS"

/* pin flags */
#define PC_PIN_RO	(1u << 0)
#define PC_PIN_RW	(1u << 1)

#define PC_ENGINE_ERR_MAX 256

struct pc_engine;
struct pc_case;

struct pc_engine_ops {
	const char *name;		/* stable, used in case ids */
	unsigned int caps;
	/* NULL when usable here, else a one-line actionable skip reason. */
	const char *(*probe)(void);
	/*
	 * Optional, once in the test process before its first case with
	 * this engine: load what every case process would load again
	 * (libraries, their configuration).  Opens no device, pins nothing.
	 */
	void (*prepare)(void);
	/*
	 * Optional, in the test process before and after each case with
	 * this engine: hold what its case processes share (they inherit
	 * it), and drop what a case left behind.
	 */
	void (*before_case)(void);
	void (*after_case)(void);
	/* Allocate e->priv; 0 or -errno (message in e->err). */
	int (*open)(struct pc_engine *e);
	/* Pin [addr, addr + len); 0 or -errno. */
	int (*pin)(struct pc_engine *e, void *addr, size_t len,
		   unsigned int flags);
	/* The device reads [off, off + len) of the pinned range into @out. */
	int (*dev_read)(struct pc_engine *e, size_t off, size_t len, void *out);
	/* The device writes @data into [off, off + len) of the pinned range. */
	int (*dev_write)(struct pc_engine *e, size_t off, size_t len,
			 const void *data);
	int (*unpin)(struct pc_engine *e);
	void (*close)(struct pc_engine *e);
	/*
	 * Optional: NULL when the engine takes part in case @c, else why
	 * not (e.g. a slow DMA device runs a subset of a matrix).  Called
	 * by pc_engine_open_or_skip() after probe.
	 */
	const char *(*case_skip)(const struct pc_case *c);
	/*
	 * With PC_CAP_SLOW: why it is slow here ("its DMA device needs
	 * ..."), or NULL when it is not (a fast device); NULL: always slow.
	 */
	const char *(*slow)(void);
};

struct pc_engine {
	const struct pc_engine_ops *ops;
	void *addr;			/* pinned range */
	size_t len;
	unsigned int pin_flags;
	int pinned;
	/*
	 * NULL: dev_read and dev_write move every byte asked for.  Else a
	 * bitmap over the pinned range's 8-byte words (bit i: bytes
	 * [8i, 8i + 8)), set by pin(): the only words a device transfer
	 * moves.  A dev_read leaves PC_WORD_UNSAMPLED in the others, a
	 * dev_write leaves them untouched; checks judge only sampled words.
	 * The engine may rewrite the bitmap (same array until unpin) right
	 * before a transfer, never so that a later dev_read misses words
	 * a dev_write since the pin moved: judge a transfer's result before
	 * the next transfer.
	 */
	const uint64_t *sample;
	void *priv;
	char err[PC_ENGINE_ERR_MAX];	/* last error, for reports */
};

/* All engines compiled in (stubs report the package to install). */
size_t pc_engines(const struct pc_engine_ops *const **list);
const struct pc_engine_ops *pc_engine_find(const char *name);

/* Call ops->prepare once per process (the harness does, before a case). */
void pc_engine_prepare(const struct pc_engine_ops *ops);
/* The test process's before_case/after_case of @ops (may be NULL). */
void pc_engine_before_case(const struct pc_engine_ops *ops);
void pc_engine_after_case(const struct pc_engine_ops *ops);

/* Wrappers: check arguments, keep state, fill e->err, return 0 or -errno. */
int pc_engine_open(struct pc_engine *e, const struct pc_engine_ops *ops);
int pc_engine_pin(struct pc_engine *e, void *addr, size_t len,
		  unsigned int flags);
int pc_engine_dev_read(struct pc_engine *e, size_t off, size_t len, void *out);
int pc_engine_dev_write(struct pc_engine *e, size_t off, size_t len,
			const void *data);
int pc_engine_unpin(struct pc_engine *e);
void pc_engine_close(struct pc_engine *e);

/*
 * Helpers for cases (end the case on error): open the case's engine or
 * skip with its probe reason; device-write generation @gen into
 * [off, off + len); device-read [off, off + len) into a new buffer.
 */
void pc_engine_open_or_skip(struct pc_engine *e,
			    const struct pc_engine_ops *ops);

/*
 * Why case @c (NULL: none) cannot use @ops: its probe, its case_skip,
 * a slow engine on a backing its test left out (PC_CAP_SLOW); NULL when
 * it can.  pc_engine_open_or_skip() skips with it.
 */
const char *pc_engine_skip_reason(const struct pc_engine_ops *ops,
				  const struct pc_case *c);
void pc_dev_write_gen(struct pc_engine *e, size_t off, size_t len,
		      unsigned int gen);
void *pc_dev_read_alloc(struct pc_engine *e, size_t off, size_t len);

/* Set e->err from a format; returns @rc for "return pc_engine_err(...)". */
int pc_engine_err(struct pc_engine *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The engines, in the order of pc_engines(): X(name) stands for
 * pc_engine_<name>, defined in lib/engines/ (a new engine is its file
 * there and its line here, plus its library in the Makefile if it needs
 * one).
 */
#define PC_ENGINE_TABLE(X)	\
	X(io_uring)		\
	X(vmsplice)		\
	X(odirect)		\
	X(gup_test)		\
	X(gup_test_fast)	\
	X(vfio)			\
	X(vfio_iommufd)		\
	X(rdma)			\
	X(procmem)

#define PC_ENGINE_DECLARE(name) extern const struct pc_engine_ops pc_engine_##name;
PC_ENGINE_TABLE(PC_ENGINE_DECLARE)
#undef PC_ENGINE_DECLARE

/* How many engines the table names. */
#define PC_ENGINE_ONE(name) + 1
#define PC_NR_ENGINES (0 PC_ENGINE_TABLE(PC_ENGINE_ONE))

#endif
