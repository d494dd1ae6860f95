/* SPDX-License-Identifier: GPL-2.0 */
/* A memory cgroup for the case. */
#ifndef PINCHECK_MEMCG_H
#define PINCHECK_MEMCG_H

struct pc_memcg {
	char dir[700];		/* the cgroup directory */
	int v2;			/* cgroup v2 (memory.max) or v1 */
};

/*
 * Make a child memory cgroup of this process's one and move the process
 * into it (removed by the harness when the case ends).  0, or 1 with a
 * skip reason, or -1 with an error, in @why.
 */
int pc_memcg_enter(struct pc_memcg *m, char *why, size_t len);
/* The cgroup's memory limit in bytes (< 0: no limit); 0 or -errno. */
int pc_memcg_set_max(struct pc_memcg *m, long long bytes);
long long pc_memcg_current(struct pc_memcg *m);

#endif
