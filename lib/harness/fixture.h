/* SPDX-License-Identifier: GPL-2.0 */
/* Inside the harness: running the cases under a fixture (fixture.c). */
#ifndef PINCHECK_FIXTURE_H
#define PINCHECK_FIXTURE_H

#include <stddef.h>

#include "harness.h"

/*
 * Set @fx up for the @n @selected cases (the array is the fixture's to
 * keep), run @run in a child, forward SIGINT, SIGTERM and SIGHUP to it,
 * tear @fx down and return (or die) as the child ended.
 */
int pc_fixture_run(const struct pc_fixture *fx,
		   const struct pc_case **selected, size_t n,
		   int (*run)(void));

#endif
