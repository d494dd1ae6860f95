// SPDX-License-Identifier: GPL-2.0
/*
 * exit0: what a test's child execs when the case is "the child execs"
 * (lib/harness/util.c, pc_exec_true).  Linked statically: under TCG the
 * dynamic loader of /bin/true costs more than the rest of the exec.
 */
int main(void)
{
	return 0;
}
