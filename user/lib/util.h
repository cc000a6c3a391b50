/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Parsing command-line values and environment variables. */
#ifndef LLMTAP_UTIL_H
#define LLMTAP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* "90", "90s", "250ms", "1.5m", "2h" -> nanoseconds (a bare number is seconds). 0 or -EINVAL. */
int parse_duration(const char *s, uint64_t *ns);
/* "4096", "64k", "8M" (powers of 1024) -> bytes. 0 or -EINVAL. */
int parse_size(const char *s, size_t *bytes);
/* A positive decimal PID. 0 or -EINVAL. */
int parse_pid(const char *s, int *pid);
/*
 * Percent-decode s[0..n) into out, NUL-terminated; what does not fit in len - 1 bytes is
 * cut off. The decoded length (compare it with len to see a cut), or -EINVAL on a '%'
 * not followed by two hex digits.
 */
ssize_t pct_decode(const char *s, size_t n, char *out, size_t len);

#endif
