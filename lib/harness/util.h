/* SPDX-License-Identifier: GPL-2.0 */
/* Small helpers for cases: allocation, child processes, synchronisation. */
#ifndef PINCHECK_UTIL_H
#define PINCHECK_UTIL_H

#include <stddef.h>
#include <sys/types.h>

#define PC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* malloc that fails the case instead of returning NULL. */
void *pc_xmalloc(size_t len);

/*
 * A child process of a case, with a pipe each way to step it through a
 * scenario.  pc_child_fork() returns 0 in the child, the pid in the parent.
 */
struct pc_child {
	pid_t pid;
	int to_child;	/* parent writes, child reads */
	int to_parent;	/* child writes, parent reads */
};

pid_t pc_child_fork(struct pc_child *ch);

/* Send / wait for one token byte; return 0, or -1 on EOF or error. */
int pc_child_tell(int fd, char token);
int pc_child_await(int fd, char *token);

/*
 * Wait for the child to end; returns its wait status, or -1.  Closes the
 * pipes.  pc_child_kill() kills it first.
 */
int pc_child_reap(struct pc_child *ch);
int pc_child_kill(struct pc_child *ch);

/* "exited 0", "killed by SIGSEGV", ... */
const char *pc_wait_describe(int status, char *buf, size_t len);

/*
 * The "child execs" variant: exec build/helpers/exit0 (static, next to the
 * binary's folder), else /bin/true; _exit(127) if neither runs.
 */
void pc_exec_exit0(void) __attribute__((noreturn));

/* $@name as a positive number, or @def when unset, empty or not one. */
unsigned int pc_env_uint(const char *name, unsigned int def);

/* Round @x up to a multiple of @align (a power of two). */
static inline size_t pc_align_up(size_t x, size_t align)
{
	return (x + align - 1) & ~(align - 1);
}

#endif
