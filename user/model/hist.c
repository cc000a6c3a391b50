// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/hist.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

unsigned int hist_bucket(uint64_t v)
{
	unsigned int msb;

	if (v < HIST_SUB)
		return (unsigned int)v;
	msb = 63u - (unsigned int)__builtin_clzll(v);
	/* exponent group (msb - SUB_BITS + 1), then the SUB_BITS bits below the msb */
	return (msb - HIST_SUB_BITS + 1) * HIST_SUB +
	       (unsigned int)((v >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

uint64_t hist_bucket_low(unsigned int b)
{
	unsigned int group = b / HIST_SUB, sub = b % HIST_SUB;

	if (group == 0)
		return sub;
	return (uint64_t)(HIST_SUB + sub) << (group - 1);
}

void hist_add(struct hist *h, uint64_t v)
{
	unsigned int b = hist_bucket(v);

	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += v;
	if (b < HIST_BUCKETS)
		h->buckets[b]++;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned int i;

	if (!src->count)
		return;
	if (!dst->count || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, lo, hi, v;
	unsigned int i;

	if (!h->count)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	/* nearest-rank: the smallest value with at least q*count values <= it */
	/* the tolerance keeps 0.07 * 100 = 7.000000000000001 at rank 7 */
	rank = (uint64_t)ceil(q * (double)h->count - 1e-9);
	if (rank == 0)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			break;
	}
	if (i >= HIST_BUCKETS)
		return h->max;
	lo = hist_bucket_low(i);
	hi = i + 1 < HIST_BUCKETS ? hist_bucket_low(i + 1) : lo;
	v = lo + (hi - lo) / 2;
	if (v < h->min)
		v = h->min;
	if (v > h->max)
		v = h->max;
	return v;
}

const char *hist_format_quantile(char *buf, size_t len, const struct hist *h, double q, double div,
				 int decimals, const char *unit)
{
	if (!h->count)
		return "-";
	snprintf(buf, len, "%.*f%s", decimals, (double)hist_quantile(h, q) / div, unit);
	return buf;
}
