/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Parsing command-line values. */
#ifndef LLMTAP_UTIL_H
#define LLMTAP_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* "90", "90s", "250ms", "1.5m", "2h" -> nanoseconds (a bare number is seconds). 0 or -EINVAL. */
int parse_duration(const char *s, uint64_t *ns);
/* "4096", "64k", "8M" (powers of 1024) -> bytes. 0 or -EINVAL. */
int parse_size(const char *s, size_t *bytes);
/* A positive decimal PID. 0 or -EINVAL. */
int parse_pid(const char *s, int *pid);

#endif
