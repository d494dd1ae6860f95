// SPDX-License-Identifier: GPL-2.0
/*
 * A binary's fixture that must be torn down however its cases end (loop
 * devices, file systems, mounts; pc_main_fixture()): this process sets it
 * up, runs the cases in a child, waits for it, forwards the signals that
 * should stop it, tears the fixture down and leaves the way the child
 * left.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

static volatile sig_atomic_t harness_pid;

static void forward_signal(int sig)
{
	if (harness_pid > 0)
		kill(harness_pid, sig);
}

/* Leave as @status says the harness left: its exit code or its signal. */
static int leave_like(int status)
{
	int sig;

	if (WIFSIGNALED(status)) {
		sig = WTERMSIG(status);
		signal(sig, SIG_DFL);
		raise(sig);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int pc_fixture_run(const struct pc_fixture *fx,
		   const struct pc_case **selected, size_t n,
		   int (*run)(void))
{
	int status;
	pid_t pid;

	if (fx->setup)
		fx->setup(selected, n);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork: %m\n", pc_binary());
		if (fx->teardown)
			fx->teardown();
		return 2;
	}
	if (!pid)
		exit(run());
	harness_pid = pid;
	signal(SIGINT, forward_signal);
	signal(SIGTERM, forward_signal);
	signal(SIGHUP, forward_signal);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (fx->teardown)
		fx->teardown();
	return leave_like(status);
}
