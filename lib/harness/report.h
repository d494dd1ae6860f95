/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a case reports: its verdict (exactly one of pc_pass/pc_fail/
 * pc_skip/pc_xfail ends the case process) and "# ..." diagnostics.  The
 * bottom layer of lib/: it includes nothing of pincheck, so any module may
 * end a case without depending on the case runner (harness.h).
 */
#ifndef PINCHECK_REPORT_H
#define PINCHECK_REPORT_H

#include <stddef.h>

#define PC_ID_MAX 192
#define PC_REASON_MAX 512

enum pc_result {
	PC_PASS,
	PC_FAIL,
	PC_SKIP,
	PC_XFAIL,
	PC_TIMEOUT,
};

struct pc_backing;
struct pc_engine_ops;
struct pc_case;

typedef void (*pc_case_fn)(const struct pc_case *c);

struct pc_case {
	char id[PC_ID_MAX];		/* <binary>/<scenario>/<backing>/<engine> */
	pc_case_fn run;
	const struct pc_backing *backing;	/* NULL when not used */
	const struct pc_engine_ops *engine;	/* NULL when not used */
	const void *scenario;		/* test-private description */
	unsigned int timeout_s;		/* 0: the default */
	/* Backings a slow engine (PC_CAP_SLOW) runs this case on. */
	const char *slow_backings;
};

/* The binary's name as given to pc_main() (for case ids). */
const char *pc_binary(void);

/* The case currently running (inside a case process). */
const struct pc_case *pc_current(void);

/* End the current case.  Never return. */
void pc_pass(void) __attribute__((noreturn));
void pc_fail(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
void pc_skip(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
void pc_xfail(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
/*
 * The case's own watchdog saw a kernel call that cannot end (another
 * thread of the case is stuck in it): the harness reports TIMEOUT with
 * this reason and SIGKILLs the case process, as at its own deadline.
 */
void pc_timeout(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* A diagnostic line ("# ...") in the TAP stream; flushed at once. */
void pc_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fail the case with "<what>: <strerror(errno)>" (errno taken on entry). */
void pc_fail_errno(const char *what) __attribute__((noreturn));

/*
 * For the case runner (harness.c) and pc_child_fork() (util.c): the
 * binary's name; this process is now case @c, whose verdict goes to @fd;
 * this process is a scenario's child (its exit status is its verdict).
 */
void pc_report_set_binary(const char *binary);
void pc_report_enter_case(const struct pc_case *c, int fd);
void pc_report_forked_child(void);

/*
 * Run @fn in the case process when it ends (any verdict), before the
 * verdict is written; NULL: nothing.  One at a time.
 */
void pc_on_case_end(void (*fn)(void));

#endif
