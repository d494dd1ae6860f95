// SPDX-License-Identifier: GPL-2.0
/* The one clock (clock.h). */
#include <errno.h>
#include <time.h>

#include "clock.h"

long long pc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long long pc_now_ms(void)
{
	return pc_now_ns() / 1000000;
}

void pc_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}
