/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The clocks: CLOCK_MONOTONIC (the probes' bpf_ktime_get_ns) and its offset to Unix time. */
#ifndef LLMTAP_CLOCK_H
#define LLMTAP_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t monotonic_ns(void);
/* Add to a CLOCK_MONOTONIC time to get the Unix time (ns), as of now. */
int64_t realtime_offset_ns(void);

/* A CLOCK_MONOTONIC time as Unix time with off added: the times come from records
 * and may be anything, so the sum wraps (two's complement) rather than overflow. */
static inline long long mono_to_unix_ns(uint64_t mono_ns, int64_t off)
{
	return (long long)(mono_ns + (uint64_t)off);
}

#endif
