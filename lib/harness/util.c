// SPDX-License-Identifier: GPL-2.0
/* Helpers for cases: allocation and scenario child processes. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"
#include "util.h"

void *pc_xmalloc(size_t len)
{
	void *p = malloc(len ? len : 1);

	if (!p)
		pc_fail("out of memory allocating %zu bytes", len);
	return p;
}

pid_t pc_child_fork(struct pc_child *ch)
{
	int down[2], up[2];

	if (pipe(down) || pipe(up))
		pc_fail_errno("pipe");
	fflush(stdout);
	ch->pid = fork();
	if (ch->pid < 0)
		pc_fail_errno("fork");
	if (!ch->pid) {
		pc_report_forked_child();
		close(down[1]);
		close(up[0]);
		ch->to_child = down[0];
		ch->to_parent = up[1];
		return 0;
	}
	close(down[0]);
	close(up[1]);
	ch->to_child = down[1];
	ch->to_parent = up[0];
	return ch->pid;
}

int pc_child_tell(int fd, char token)
{
	ssize_t n;

	do {
		n = write(fd, &token, 1);
	} while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

int pc_child_await(int fd, char *token)
{
	char c;
	ssize_t n;

	do {
		n = read(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		return -1;
	if (token)
		*token = c;
	return 0;
}

static void close_child_pipes(struct pc_child *ch)
{
	if (ch->to_child >= 0)
		close(ch->to_child);
	if (ch->to_parent >= 0)
		close(ch->to_parent);
	ch->to_child = -1;
	ch->to_parent = -1;
}

int pc_child_reap(struct pc_child *ch)
{
	int status;
	pid_t rc;

	close_child_pipes(ch);
	do {
		rc = waitpid(ch->pid, &status, 0);
	} while (rc < 0 && errno == EINTR);
	ch->pid = 0;
	return rc < 0 ? -1 : status;
}

int pc_child_kill(struct pc_child *ch)
{
	if (ch->pid > 0)
		kill(ch->pid, SIGKILL);
	return pc_child_reap(ch);
}

const char *pc_wait_describe(int status, char *buf, size_t len)
{
	if (status == -1)
		snprintf(buf, len, "lost (waitpid failed)");
	else if (WIFEXITED(status))
		snprintf(buf, len, "exited %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by SIG%s",
			 sigabbrev_np(WTERMSIG(status)) ?: "?");
	else
		snprintf(buf, len, "status 0x%x", status);
	return buf;
}

unsigned int pc_env_uint(const char *name, unsigned int def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return def;
	n = strtoul(v, &end, 10);
	return *end || !n ? def : (unsigned int)n;
}

void pc_exec_exit0(void)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	char *slash;

	if (n > 0) {
		path[n] = '\0';
		slash = strrchr(path, '/');
		if (slash && (size_t)(slash - path) + sizeof("/../helpers/exit0") <=
			     sizeof(path)) {
			strcpy(slash, "/../helpers/exit0");
			execl(path, "exit0", (char *)NULL);
		}
	}
	execl("/bin/true", "true", (char *)NULL);
	_exit(127);
}
