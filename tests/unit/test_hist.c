// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/model/hist.c: the log-linear histogram. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "model/hist.h"

/* Bucket b holds [hist_bucket_low(b), hist_bucket_low(b + 1)). */
static void check_bucket(uint64_t v)
{
	unsigned int b = hist_bucket(v);
	uint64_t lo = hist_bucket_low(b), hi = hist_bucket_low(b + 1);

	if (b >= HIST_BUCKETS)
		fail_msg("v=%llu: bucket %u out of range", (unsigned long long)v, b);
	if (lo > v)
		fail_msg("v=%llu: bucket %u starts at %llu", (unsigned long long)v, b,
			 (unsigned long long)lo);
	/* the bucket after the last one used would start at 2^64 */
	if (hi <= v && !(hi == 0 && v >= (31ull << 59)))
		fail_msg("v=%llu: bucket %u ends at %llu", (unsigned long long)v, b,
			 (unsigned long long)hi);
}

static void test_bucket_roundtrip(void **state)
{
	uint64_t v;
	(void)state;

	for (v = 0; v < 100000; v++)
		check_bucket(v);
	for (int bit = 4; bit < 64; bit++) {
		uint64_t p = 1ull << bit;

		check_bucket(p - 1);
		check_bucket(p);
		check_bucket(p + 1);
		check_bucket(p + p / 3);
		check_bucket(p | (p - 1));
	}
	check_bucket(UINT64_MAX);
	srand(1);
	for (int i = 0; i < 200000; i++) {
		v = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
		check_bucket(v >> (rand() % 64));
	}
}

static void test_bucket_layout(void **state)
{
	(void)state;

	/* values below 16 get a bucket each */
	for (unsigned int v = 0; v < HIST_SUB; v++) {
		assert_int_equal(hist_bucket(v), v);
		assert_int_equal(hist_bucket_low(v), v);
	}
	assert_int_equal(hist_bucket(16), 16);
	assert_int_equal(hist_bucket(31), 31);
	assert_int_equal(hist_bucket(32), 32);
	assert_int_equal(hist_bucket(33), 32); /* width 2 from 32 on */
	assert_int_equal(hist_bucket(34), 33);
	/* bucket boundaries are increasing, and widths at most 1/16 of the value */
	for (unsigned int b = 1; b < 976; b++) {
		uint64_t lo = hist_bucket_low(b - 1), hi = hist_bucket_low(b);

		assert_true(lo < hi);
		assert_true(hi - lo <= (lo > HIST_SUB ? lo / HIST_SUB : 1));
		assert_int_equal(hist_bucket(hi), b);
		assert_int_equal(hist_bucket(hi - 1), b - 1);
	}
	assert_true(hist_bucket(UINT64_MAX) < HIST_BUCKETS);
}

static void test_exact_stats(void **state)
{
	static const uint64_t vals[] = { 700, 3, 1000000007, 42, 42, 0, 123456789 };
	struct hist h;
	uint64_t sum = 0, total = 0;
	(void)state;

	hist_reset(&h);
	for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
		hist_add(&h, vals[i]);
		sum += vals[i];
	}
	assert_int_equal(h.count, 7);
	assert_true(h.sum == sum);
	assert_int_equal(h.min, 0);
	assert_true(h.max == 1000000007ull);

	/* min is right even when the first value is not the smallest */
	hist_reset(&h);
	hist_add(&h, 500);
	hist_add(&h, 900);
	hist_add(&h, 20);
	assert_int_equal(h.min, 20);
	assert_int_equal(h.max, 900);
	assert_int_equal(h.sum, 1420);
	for (unsigned int i = 0; i < HIST_BUCKETS; i++)
		total += h.buckets[i];
	assert_int_equal(total, 3);
}

static uint64_t rel_err_pct(uint64_t got, uint64_t want)
{
	uint64_t d = got > want ? got - want : want - got;

	return d * 100 / want;
}

static void test_quantiles_uniform(void **state)
{
	static const double qs[] = { 0.5, 0.9, 0.99, 0.25, 0.75, 0.999 };
	struct hist h;
	(void)state;

	hist_reset(&h);
	for (uint64_t v = 1; v <= 100000; v++)
		hist_add(&h, v);
	assert_int_equal(h.count, 100000);
	assert_true(h.sum == 100000ull * 100001 / 2);

	for (size_t i = 0; i < ARRAY_SIZE(qs); i++) {
		uint64_t want = (uint64_t)(qs[i] * 100000);
		uint64_t got = hist_quantile(&h, qs[i]);

		if (got * 100 < want * 93 || got * 100 > want * 107)
			fail_msg("q=%g: got %llu, want %llu +-7%%", qs[i],
				 (unsigned long long)got, (unsigned long long)want);
		/* the header promises ~3% */
		assert_true(rel_err_pct(got, want) <= 4);
	}
	assert_int_equal(hist_quantile(&h, 0), 1);
	assert_int_equal(hist_quantile(&h, 1), 100000);
	assert_int_equal(hist_quantile(&h, -0.5), 1);
	assert_int_equal(hist_quantile(&h, 2), 100000);
	/* monotonic in q */
	for (double q = 0.01, prev = 0; q < 1; q += 0.01) {
		uint64_t v = hist_quantile(&h, q);

		assert_true((double)v >= prev);
		prev = (double)v;
	}
}

static void test_quantiles_small_exact(void **state)
{
	struct hist h;
	(void)state;

	/* below 16 buckets are exact, so nearest-rank is exact too */
	hist_reset(&h);
	for (uint64_t v = 1; v <= 10; v++)
		hist_add(&h, v);
	assert_int_equal(hist_quantile(&h, 0.1), 1);
	assert_int_equal(hist_quantile(&h, 0.15), 2);
	assert_int_equal(hist_quantile(&h, 0.5), 5);
	assert_int_equal(hist_quantile(&h, 0.51), 6);
	assert_int_equal(hist_quantile(&h, 0.9), 9);
	assert_int_equal(hist_quantile(&h, 0.95), 10);
	assert_int_equal(hist_quantile(&h, 0.001), 1);

	/* skewed: 90 zeros and 10 sevens */
	hist_reset(&h);
	for (int i = 0; i < 90; i++)
		hist_add(&h, 0);
	for (int i = 0; i < 10; i++)
		hist_add(&h, 7);
	assert_int_equal(hist_quantile(&h, 0.5), 0);
	assert_int_equal(hist_quantile(&h, 0.9), 0);
	assert_int_equal(hist_quantile(&h, 0.91), 7);
	assert_int_equal(hist_quantile(&h, 0.99), 7);

	/* q * count is not exact in floating point: 0.07 * 100 > 7 */
	hist_reset(&h);
	for (int i = 0; i < 7; i++)
		hist_add(&h, 1);
	for (int i = 0; i < 93; i++)
		hist_add(&h, 2);
	assert_int_equal(hist_quantile(&h, 0.07), 1);
	assert_int_equal(hist_quantile(&h, 0.08), 2);
}

static void test_quantile_clamped(void **state)
{
	struct hist h;
	(void)state;

	/* all values in one wide bucket: the midpoint is clamped to [min, max] */
	hist_reset(&h);
	hist_add(&h, 1000000);
	hist_add(&h, 1000001);
	assert_true(hist_quantile(&h, 0.5) >= 1000000);
	assert_true(hist_quantile(&h, 0.5) <= 1000001);

	hist_reset(&h);
	hist_add(&h, UINT64_MAX);
	assert_true(hist_quantile(&h, 0.5) == UINT64_MAX);
	assert_true(hist_quantile(&h, 0.99) == UINT64_MAX);
}

static void test_empty_and_single(void **state)
{
	static const uint64_t singles[] = { 0, 1, 15, 16, 17, 999, 123456789, 1ull << 40 };
	struct hist h;
	(void)state;

	hist_reset(&h);
	assert_int_equal(h.count, 0);
	assert_int_equal(hist_quantile(&h, 0), 0);
	assert_int_equal(hist_quantile(&h, 0.5), 0);
	assert_int_equal(hist_quantile(&h, 1), 0);

	for (size_t i = 0; i < ARRAY_SIZE(singles); i++) {
		hist_reset(&h);
		hist_add(&h, singles[i]);
		assert_true(h.min == singles[i]);
		assert_true(h.max == singles[i]);
		assert_true(hist_quantile(&h, 0) == singles[i]);
		assert_true(hist_quantile(&h, 0.5) == singles[i]);
		assert_true(hist_quantile(&h, 0.99) == singles[i]);
		assert_true(hist_quantile(&h, 1) == singles[i]);
	}
}

static void test_merge(void **state)
{
	struct hist *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct hist *all = calloc(1, sizeof(*all)), *empty = calloc(1, sizeof(*empty));
	(void)state;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(all);
	assert_non_null(empty);
	for (uint64_t v = 0; v < 5000; v++) {
		uint64_t x = v * v * 37 + 11;

		hist_add(v % 3 ? a : b, x);
		hist_add(all, x);
	}
	/* min comes from b only (v = 0 lands in b) */
	hist_merge(a, b);
	assert_memory_equal(a, all, sizeof(*a));

	/* merging an empty histogram changes nothing */
	hist_merge(a, empty);
	assert_memory_equal(a, all, sizeof(*a));

	/* merging into an empty histogram copies */
	hist_merge(empty, all);
	assert_memory_equal(empty, all, sizeof(*all));
	assert_true(hist_quantile(empty, 0.5) == hist_quantile(all, 0.5));

	free(a);
	free(b);
	free(all);
	free(empty);
}

static void test_merge_min_from_src(void **state)
{
	struct hist a, b;
	(void)state;

	hist_reset(&a);
	hist_reset(&b);
	hist_add(&a, 100);
	hist_add(&a, 200);
	hist_add(&b, 5);
	hist_add(&b, 7);
	hist_merge(&a, &b);
	assert_int_equal(a.min, 5);
	assert_int_equal(a.max, 200);
	assert_int_equal(a.count, 4);
	assert_int_equal(a.sum, 312);

	/* a destination whose only value is 0 keeps min 0 */
	hist_reset(&a);
	hist_add(&a, 0);
	hist_merge(&a, &b);
	assert_int_equal(a.min, 0);
	assert_int_equal(a.max, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_roundtrip),
		cmocka_unit_test(test_bucket_layout),
		cmocka_unit_test(test_exact_stats),
		cmocka_unit_test(test_quantiles_uniform),
		cmocka_unit_test(test_quantiles_small_exact),
		cmocka_unit_test(test_quantile_clamped),
		cmocka_unit_test(test_empty_and_single),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_merge_min_from_src),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
