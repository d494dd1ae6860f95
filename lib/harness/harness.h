/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kselftest-style harness: every case runs in its own process under a
 * watchdog, results are printed as TAP 13.
 *
 * A test binary builds its list of cases up front (pc_add_case), then
 * pc_main() prints the plan and runs them.  Inside a case, exactly one of
 * pc_pass/pc_fail/pc_skip/pc_xfail ends the case process.
 *
 * Binary command line (the runner relies on it):
 *   -l          list case ids, one per line, and exit 0
 *   -t GLOB     run only the cases whose id matches GLOB (fnmatch, repeatable)
 *   -T SECONDS  per-case watchdog (default 20, env PINCHECK_CASE_TIMEOUT)
 *   -h          usage
 * Exit: 0 no failure, 1 a failure or timeout, 4 everything skipped,
 *       2 bad usage or no case matched.
 */
#ifndef PINCHECK_HARNESS_H
#define PINCHECK_HARNESS_H

#include <stddef.h>

#include "fixture.h"
#include "report.h"

/*
 * The backings (fnmatch patterns, space separated) on which a slow engine
 * (PC_CAP_SLOW, engine.h) runs the cases registered from now on; the
 * others skip with the reason.  "anon" unless a test sets it, in its
 * add_cases() before the scenarios it applies to.
 */
extern const char *pc_slow_engine_backings;

/* Register a case; the id is built from the format. Aborts on duplicates. */
struct pc_case *pc_add_case(pc_case_fn run, const void *scenario,
			    const struct pc_backing *backing,
			    const struct pc_engine_ops *engine,
			    const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/*
 * The binary's cases race threads or processes on different CPUs (one in
 * an interrupts-off section while another changes the mapping), so they
 * need every CPU.  Call it from add_cases.  Other binaries keep to one CPU
 * when PINCHECK_ONE_CPU=1 (pincheck's VM: TCG runs all vCPUs on one host
 * thread, and a case whose processes share one vCPU runs faster).
 */
void pc_cases_race_across_cpus(void);

/*
 * Write @val to the knob at @path once, before the binary's first case,
 * and put the old value back when the binary ends (or is interrupted; the
 * runner's knob journal after a SIGKILL): for a setting that nearly every
 * case of the binary would otherwise change and have restored.  @what
 * names it in the header.  Call it from add_cases.  A knob that cannot be
 * read or written is left alone (each case does what it did before).
 */
void pc_cases_hold_knob(const char *path, const char *val, const char *what);

/*
 * Run the binary: parse argv, call add_cases() to register the cases, print
 * the plan and run every selected case.  Returns the exit code.
 */
int pc_main(int argc, char **argv, const char *binary,
	    void (*add_cases)(void));

/*
 * pc_main() with a fixture: the cases run in a child of this process
 * (SIGINT, SIGTERM and SIGHUP are forwarded to it), which exits as they
 * did once @fx->teardown has run (lib/harness/fixture.c).
 */
int pc_main_fixture(int argc, char **argv, const char *binary,
		    void (*add_cases)(void), const struct pc_fixture *fx);

#endif
