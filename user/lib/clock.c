// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "lib/clock.h"

#include <time.h>

uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t realtime_offset_ns(void)
{
	struct timespec rt;
	uint64_t mono = monotonic_ns();

	clock_gettime(CLOCK_REALTIME, &rt);
	return (int64_t)((uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec) -
	       (int64_t)mono;
}
