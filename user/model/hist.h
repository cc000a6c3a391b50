/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A log-linear histogram of non-negative integers (nanoseconds, token counts):
 * 16 sub-buckets per power of two, so a percentile is within ~3% of the truth;
 * count, sum, min and max are exact.
 */
#ifndef LLMTAP_HIST_H
#define LLMTAP_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 4
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (64 * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint32_t buckets[HIST_BUCKETS];
};

void hist_reset(struct hist *h);
void hist_add(struct hist *h, uint64_t v);
void hist_merge(struct hist *dst, const struct hist *src);
/* The q-quantile (0 <= q <= 1), clamped to [min, max]; 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);
/* The q-quantile divided by div, then unit ("%.*f%s"), in buf; "-" when the histogram
 * is empty (nothing measured, not 0). */
const char *hist_format_quantile(char *buf, size_t len, const struct hist *h, double q, double div,
				 int decimals, const char *unit);
/* Bucket index of v and the smallest value of a bucket (exposed for tests). */
unsigned int hist_bucket(uint64_t v);
uint64_t hist_bucket_low(unsigned int b);

#endif
