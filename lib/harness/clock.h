/* SPDX-License-Identifier: GPL-2.0 */
/* The one clock of lib/ and the tests: CLOCK_MONOTONIC. */
#ifndef PINCHECK_CLOCK_H
#define PINCHECK_CLOCK_H

/* Nanoseconds and milliseconds of CLOCK_MONOTONIC. */
long long pc_now_ns(void);
long long pc_now_ms(void);

/* Sleep @ms milliseconds (through signals). */
void pc_sleep_ms(long ms);

#endif
