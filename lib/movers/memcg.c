// SPDX-License-Identifier: GPL-2.0
/* A memory cgroup for the case: see memcg.h. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "knob.h"
#include "memcg.h"
#include "sysprobe.h"

/*
 * A mount of the cgroup hierarchy that has the memory controller: cgroup2
 * (with "memory" in cgroup.controllers) or v1 "memory".  Sets @mnt and
 * @root (the mount's root within the hierarchy).
 */
static int find_memcg_mount(char *mnt, size_t mlen, char *root, size_t rlen,
			    int *v2)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024], r[256], m[256], type[64], opts[512], ctl[256];
	const char *sep;
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %255s %255s", r, m) != 2 ||
		    sscanf(sep + 3, "%63s %*s %511s", type, opts) != 2)
			continue;
		if (!strcmp(type, "cgroup2")) {
			char path[512];

			snprintf(path, sizeof(path), "%s/cgroup.controllers", m);
			if (pc_read_line(path, ctl, sizeof(ctl)) ||
			    !strstr(ctl, "memory"))
				continue;
			*v2 = 1;
			found = 1;
		} else if (!strcmp(type, "cgroup") && strstr(opts, "memory")) {
			*v2 = 0;
			found = 1;
		}
		if (found) {
			snprintf(mnt, mlen, "%s", m);
			snprintf(root, rlen, "%s", r);
		}
	}
	fclose(f);
	return found;
}

/* This process's cgroup path in the hierarchy (v2 "0::", v1 "memory"). */
static int own_cgroup(int v2, char *path, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[512], *ctl, *p;
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		ctl = strchr(line, ':');
		if (!ctl)
			continue;
		*ctl++ = '\0';
		p = strchr(ctl, ':');
		if (!p)
			continue;
		*p++ = '\0';
		if (v2 ? !strcmp(line, "0") && !*ctl :
			 !!strstr(ctl, "memory")) {
			snprintf(path, len, "%s", p);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/* Mount cgroup2 for the case when no memory hierarchy is mounted. */
static int mount_cgroup2(char *mnt, size_t mlen, char *root, size_t rlen,
			 char *why, size_t len)
{
	char ctl[256], path[400];
	int err;

	snprintf(mnt, mlen, "/run/pincheck-cgroup2-%d", (int)getpid());
	snprintf(root, rlen, "/");
	err = pc_knob_mount(mnt, "cgroup2");
	if (err) {
		snprintf(why, len,
			 "no memory cgroup mounted and mount -t cgroup2 on %s failed: %s",
			 mnt, strerror(-err));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt);
	if (pc_read_line(path, ctl, sizeof(ctl)) || !strstr(ctl, "memory")) {
		snprintf(why, len,
			 "the memory controller is not available in cgroup2 (bound to a v1 hierarchy, or a kernel without CONFIG_MEMCG)");
		return 1;
	}
	return 0;
}

/* v2: the parent must hand the memory controller to its children. */
static int delegate_memory(const char *parent, char *why, size_t len)
{
	char path[700], ctl[256];
	int err;

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", parent);
	if (!pc_read_line(path, ctl, sizeof(ctl)) && strstr(ctl, "memory"))
		return 0;
	err = pc_knob_write_undo(path, "+memory", "-memory");
	if (err) {
		snprintf(why, len,
			 "cannot enable the memory controller for the children of %s: %s (a cgroup v2 with processes in it cannot delegate it; run from the root cgroup or one with memory delegated)",
			 parent, strerror(-err));
		return 1;
	}
	return 0;
}

int pc_memcg_enter(struct pc_memcg *m, char *why, size_t len)
{
	char mnt[256], root[256], own[256], parent[600], procs[800], pid[16];
	size_t rl;
	int err;

	memset(m, 0, sizeof(*m));
	if (!find_memcg_mount(mnt, sizeof(mnt), root, sizeof(root), &m->v2)) {
		m->v2 = 1;
		if (mount_cgroup2(mnt, sizeof(mnt), root, sizeof(root), why,
				  len))
			return 1;
	}
	if (!own_cgroup(m->v2, own, sizeof(own))) {
		snprintf(why, len, "cannot find this process's %s cgroup in /proc/self/cgroup",
			 m->v2 ? "v2" : "memory");
		return -1;
	}
	rl = strlen(root);
	if (strcmp(root, "/") && !strncmp(own, root, rl))
		memmove(own, own + rl, strlen(own + rl) + 1);
	snprintf(parent, sizeof(parent), "%s%s", mnt,
		 strcmp(own, "/") ? own : "");
	if (m->v2 && delegate_memory(parent, why, len))
		return 1;
	if (snprintf(m->dir, sizeof(m->dir), "%s/pincheck-%d", parent,
		     (int)getpid()) >= (int)sizeof(m->dir)) {
		snprintf(why, len, "cgroup path too long under %s", parent);
		return -1;
	}
	err = pc_knob_mkdir(m->dir);
	if (err) {
		snprintf(why, len, "mkdir %s: %s", m->dir, strerror(-err));
		return err == -EACCES || err == -EROFS || err == -EPERM ? 1 : -1;
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", m->dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	err = pc_write_str(procs, pid);
	if (err) {
		snprintf(why, len, "cannot move into %s: %s", m->dir,
			 strerror(-err));
		return 1;
	}
	return 0;
}

int pc_memcg_set_max(struct pc_memcg *m, long long bytes)
{
	char path[800], val[32];

	snprintf(path, sizeof(path), "%s/%s", m->dir,
		 m->v2 ? "memory.max" : "memory.limit_in_bytes");
	if (bytes < 0)
		snprintf(val, sizeof(val), "%s", m->v2 ? "max" : "-1");
	else
		snprintf(val, sizeof(val), "%lld", bytes);
	return pc_write_str(path, val);
}

long long pc_memcg_current(struct pc_memcg *m)
{
	char path[800];

	snprintf(path, sizeof(path), "%s/%s", m->dir,
		 m->v2 ? "memory.current" : "memory.usage_in_bytes");
	return pc_counter_read(path);
}
