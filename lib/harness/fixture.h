/* SPDX-License-Identifier: GPL-2.0 */
/* A binary's fixture, and running its cases under it (fixture.c). */
#ifndef PINCHECK_FIXTURE_H
#define PINCHECK_FIXTURE_H

#include <stddef.h>

#include "report.h"

/*
 * A binary's once-per-run fixture (devices, file systems) that must go
 * away however its cases end.  Both run in the process that called
 * pc_main_fixture(), only when cases run (not for -l, -h, bad usage or
 * no match): @setup before the first, told which cases were selected
 * (registered order); @teardown after the last, after a crash or a
 * signal too.
 */
struct pc_fixture {
	void (*setup)(const struct pc_case *const *selected, size_t n);
	void (*teardown)(void);
};

/*
 * For pc_main_fixture() (harness.h): set @fx up for the @n @selected
 * cases (the array is the fixture's to keep), run @run in a child,
 * forward SIGINT, SIGTERM and SIGHUP to it, tear @fx down and return (or
 * die) as the child ended.
 */
int pc_fixture_run(const struct pc_fixture *fx,
		   const struct pc_case **selected, size_t n,
		   int (*run)(void));

#endif
