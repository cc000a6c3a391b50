// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/model/metrics.c: instruments, attribute sets, the JSON export. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/metrics.h"
#include "unit.h"

static void test_instrument_table(void **state)
{
	(void)state;

	/* every instrument is named, and histograms have increasing bounds that fit */
	for (int id = 0; id < M_INSTR_MAX; id++) {
		const struct instrument *in = metric_instrument(id);

		assert_non_null(in);
		assert_non_null(in->name);
		assert_non_null(in->unit);
		assert_non_null(in->description);
		if (in->kind != INSTR_HISTOGRAM) {
			assert_int_equal(in->n_bounds, 0);
			continue;
		}
		assert_non_null(in->bounds);
		assert_true(in->n_bounds > 0);
		assert_true(in->n_bounds <= METRIC_MAX_BOUNDS);
		for (int b = 1; b < in->n_bounds; b++)
			assert_true(in->bounds[b - 1] < in->bounds[b]);
	}
	assert_null(metric_instrument(M_INSTR_MAX));
	assert_string_equal(metric_instrument(M_HTTP_DURATION)->name, "http.server.request.duration");
	assert_string_equal(metric_instrument(M_HTTP_DURATION)->unit, "s");
	assert_int_equal(metric_instrument(M_HTTP_DURATION)->kind, INSTR_HISTOGRAM);
	assert_int_equal(metric_instrument(M_HTTP_DURATION)->n_bounds, 14);
	assert_int_equal(metric_instrument(M_INF_REQUESTS)->kind, INSTR_COUNTER);
	assert_int_equal(metric_instrument(M_SLOTS_BUSY)->kind, INSTR_GAUGE);
}

static void test_counter(void **state)
{
	struct metrics *m = new_metrics();
	const struct metric_point *p;
	(void)state;

	metrics_add(m, M_INF_REQUESTS, 1, 100, "endpoint", "chat", NULL);
	metrics_add(m, M_INF_REQUESTS, 2.5, 200, "endpoint", "chat", NULL);
	p = metrics_find(m, M_INF_REQUESTS, "endpoint", "chat", NULL);
	assert_non_null(p);
	assert_true(p->value == 3.5);
	assert_int_equal(p->start_ns, 100); /* when first recorded, not updated */
	assert_int_equal(p->count, 0);

	/* a counter is monotonic: negative adds are refused */
	metrics_add(m, M_INF_REQUESTS, -2, 300, "endpoint", "chat", NULL);
	assert_true(p->value == 3.5);
	/* ... and do not create a point either */
	metrics_add(m, M_INF_REQUESTS, -1, 300, "endpoint", "rerank", NULL);
	assert_null(metrics_find(m, M_INF_REQUESTS, "endpoint", "rerank", NULL));
	assert_int_equal(m->n_points, 1);

	/* adding zero is allowed */
	metrics_add(m, M_INF_REQUESTS, 0, 400, "endpoint", "chat", NULL);
	assert_true(p->value == 3.5);

	/* set and record do not apply to a counter */
	metrics_set(m, M_INF_REQUESTS, 42, 500, "endpoint", "chat", NULL);
	metrics_record(m, M_INF_REQUESTS, 42, 500, "endpoint", "chat", NULL);
	assert_true(p->value == 3.5);
	assert_int_equal(p->count, 0);
	assert_int_equal(m->n_points, 1);
	assert_int_equal(m->dropped, 0);

	/* an id out of range is ignored */
	metrics_add(m, M_INSTR_MAX, 1, 600, NULL);
	metrics_add(m, (enum instr_id)(M_INSTR_MAX + 100), 1, 600, NULL);
	assert_int_equal(m->n_points, 1);
	free(m);
}

static void test_gauge(void **state)
{
	struct metrics *m = new_metrics();
	const struct metric_point *p;
	(void)state;

	metrics_set(m, M_SLOTS_BUSY, 5, 10, NULL);
	metrics_set(m, M_SLOTS_BUSY, 2, 20, NULL);
	metrics_set(m, M_SLOTS_BUSY, 3, 30, NULL);
	p = metrics_find(m, M_SLOTS_BUSY, NULL);
	assert_non_null(p);
	assert_true(p->value == 3);
	assert_int_equal(p->start_ns, 10);

	/* a gauge may go negative or to zero: it is the last value */
	metrics_set(m, M_SLOTS_BUSY, 0, 40, NULL);
	assert_true(p->value == 0);
	metrics_set(m, M_SLOTS_BUSY, -1.5, 50, NULL);
	assert_true(p->value == -1.5);

	/* add and record do not apply to a gauge */
	metrics_add(m, M_SLOTS_BUSY, 7, 60, NULL);
	metrics_record(m, M_SLOTS_BUSY, 7, 60, NULL);
	assert_true(p->value == -1.5);
	assert_int_equal(p->count, 0);
	assert_int_equal(m->n_points, 1);
	free(m);
}

static void test_histogram_buckets(void **state)
{
	struct metrics *m = new_metrics();
	const struct instrument *in = metric_instrument(M_HTTP_DURATION);
	const struct metric_point *p;
	uint64_t expect[METRIC_MAX_BOUNDS + 1] = { 0 };
	(void)state;

	assert_int_equal(in->n_bounds, 14);
	assert_true(in->bounds[0] == 0.005);
	assert_true(in->bounds[13] == 10);

	/* (-inf, 0.005] is bucket 0 */
	metrics_record(m, M_HTTP_DURATION, 0, 1, NULL);
	expect[0]++;
	metrics_record(m, M_HTTP_DURATION, 0.001, 1, NULL);
	expect[0]++;
	/* a value equal to a bound goes in that bound's bucket */
	metrics_record(m, M_HTTP_DURATION, 0.005, 1, NULL);
	expect[0]++;
	/* just above: the next */
	metrics_record(m, M_HTTP_DURATION, 0.0050001, 1, NULL);
	expect[1]++;
	metrics_record(m, M_HTTP_DURATION, 0.01, 1, NULL);
	expect[1]++;
	metrics_record(m, M_HTTP_DURATION, 0.3, 1, NULL); /* (0.25, 0.5] */
	expect[7]++;
	metrics_record(m, M_HTTP_DURATION, 1, 1, NULL); /* (0.75, 1] */
	expect[9]++;
	metrics_record(m, M_HTTP_DURATION, 10, 1, NULL); /* the last bound */
	expect[13]++;
	/* above the last bound: the overflow bucket */
	metrics_record(m, M_HTTP_DURATION, 10.5, 1, NULL);
	expect[14]++;
	metrics_record(m, M_HTTP_DURATION, 1e9, 1, NULL);
	expect[14]++;

	p = metrics_find(m, M_HTTP_DURATION, NULL);
	assert_non_null(p);
	for (int b = 0; b <= in->n_bounds; b++)
		if (p->buckets[b] != expect[b])
			fail_msg("bucket %d: %llu, expected %llu", b,
				 (unsigned long long)p->buckets[b], (unsigned long long)expect[b]);
	for (int b = in->n_bounds + 1; b <= METRIC_MAX_BOUNDS; b++)
		assert_int_equal(p->buckets[b], 0);
	assert_int_equal(p->count, 10);
	assert_true(p->min == 0);
	assert_true(p->max == 1e9);
	assert_float_equal(p->sum, 0 + 0.001 + 0.005 + 0.0050001 + 0.01 + 0.3 + 1 + 10 + 10.5 + 1e9,
			   1e-6);

	/* wrong kind: add and set on a histogram change nothing */
	metrics_add(m, M_HTTP_DURATION, 1, 2, NULL);
	metrics_set(m, M_HTTP_DURATION, 1, 2, NULL);
	assert_int_equal(p->count, 10);
	assert_true(p->value == 0);
	assert_int_equal(p->buckets[9], 1);
	assert_int_equal(m->n_points, 1);
	free(m);
}

static void test_histogram_min_max(void **state)
{
	struct metrics *m = new_metrics();
	const struct metric_point *p;
	(void)state;

	/* min/max start from the first value, not from zero */
	metrics_record(m, M_HTTP_DURATION, 2, 1, NULL);
	p = metrics_find(m, M_HTTP_DURATION, NULL);
	assert_non_null(p);
	assert_true(p->min == 2);
	assert_true(p->max == 2);
	metrics_record(m, M_HTTP_DURATION, 3, 2, NULL);
	metrics_record(m, M_HTTP_DURATION, 0.5, 3, NULL);
	assert_true(p->min == 0.5);
	assert_true(p->max == 3);
	assert_true(p->sum == 5.5);
	assert_int_equal(p->count, 3);

	/* a histogram with 16 bounds (the most there may be): the overflow bucket fits */
	assert_int_equal(metric_instrument(M_GENAI_TTFT)->n_bounds, METRIC_MAX_BOUNDS);
	metrics_record(m, M_GENAI_TTFT, 11, 4, NULL);
	metrics_record(m, M_GENAI_TTFT, 10, 4, NULL);
	p = metrics_find(m, M_GENAI_TTFT, NULL);
	assert_non_null(p);
	assert_int_equal(p->buckets[METRIC_MAX_BOUNDS], 1);
	assert_int_equal(p->buckets[METRIC_MAX_BOUNDS - 1], 1);
	free(m);
}

static void test_wrong_kind_creates_nothing(void **state)
{
	struct metrics *m = new_metrics();
	(void)state;

	metrics_add(m, M_HTTP_DURATION, 1, 1, "http.route", "/health", NULL);
	metrics_set(m, M_INF_REQUESTS, 1, 1, NULL);
	metrics_record(m, M_SLOTS_BUSY, 1, 1, NULL);
	assert_int_equal(m->n_points, 0);
	assert_int_equal(m->dropped, 0);
	assert_null(metrics_find(m, M_HTTP_DURATION, "http.route", "/health", NULL));
	free(m);
}

static void test_attribute_sets(void **state)
{
	struct metrics *m = new_metrics();
	const struct metric_point *a, *b, *c, *d;
	(void)state;

	metrics_add(m, M_CACHE_OPS, 1, 1, "llmtap.cache.operation", "save",
		    "llmtap.cache.target", "file", NULL);
	metrics_add(m, M_CACHE_OPS, 1, 2, "llmtap.cache.operation", "save",
		    "llmtap.cache.target", "file", NULL);
	assert_int_equal(m->n_points, 1);
	/* another value: another point */
	metrics_add(m, M_CACHE_OPS, 5, 3, "llmtap.cache.operation", "save",
		    "llmtap.cache.target", "memory", NULL);
	metrics_add(m, M_CACHE_OPS, 7, 4, "llmtap.cache.operation", "load",
		    "llmtap.cache.target", "memory", NULL);
	assert_int_equal(m->n_points, 3);
	/* the same attributes on another instrument: another point */
	metrics_add(m, M_CACHE_BYTES, 100, 5, "llmtap.cache.operation", "save",
		    "llmtap.cache.target", "file", NULL);
	assert_int_equal(m->n_points, 4);

	a = metrics_find(m, M_CACHE_OPS, "llmtap.cache.operation", "save", "llmtap.cache.target",
			 "file", NULL);
	b = metrics_find(m, M_CACHE_OPS, "llmtap.cache.operation", "save", "llmtap.cache.target",
			 "memory", NULL);
	c = metrics_find(m, M_CACHE_OPS, "llmtap.cache.operation", "load", "llmtap.cache.target",
			 "memory", NULL);
	d = metrics_find(m, M_CACHE_BYTES, "llmtap.cache.operation", "save", "llmtap.cache.target",
			 "file", NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_non_null(d);
	assert_true(a != b && b != c && a != c);
	assert_true(a->value == 2);
	assert_true(b->value == 5);
	assert_true(c->value == 7);
	assert_true(d->value == 100);
	assert_int_equal(a->n_attrs, 2);
	assert_string_equal(a->attrs[0].key, "llmtap.cache.operation");
	assert_string_equal(a->attrs[0].value, "save");
	assert_string_equal(a->attrs[1].key, "llmtap.cache.target");
	assert_string_equal(a->attrs[1].value, "file");

	/* a subset or superset of the attributes is not the same point */
	assert_null(metrics_find(m, M_CACHE_OPS, "llmtap.cache.operation", "save", NULL));
	assert_null(metrics_find(m, M_CACHE_OPS, NULL));
	assert_null(metrics_find(m, M_CACHE_OPS, "llmtap.cache.operation", "save",
				 "llmtap.cache.target", "file", "x", "y", NULL));
	/* nor is another key with the same value */
	assert_null(metrics_find(m, M_CACHE_OPS, "llmtap.cache.op", "save", "llmtap.cache.target",
				 "file", NULL));
	free(m);
}

static void test_null_value_skips_key(void **state)
{
	struct metrics *m = new_metrics();
	const struct metric_point *p;
	(void)state;

	metrics_add(m, M_STEPS, 1, 1, "llmtap.step.op", "decode", "error.type", NULL, NULL);
	p = metrics_find(m, M_STEPS, "llmtap.step.op", "decode", NULL);
	assert_non_null(p);
	assert_int_equal(p->n_attrs, 1);
	assert_string_equal(p->attrs[0].key, "llmtap.step.op");
	assert_true(p->value == 1);

	/* the NULL-valued key in the middle is skipped, the rest kept in order */
	metrics_add(m, M_STEPS, 1, 2, "error.type", NULL, "llmtap.step.op", "decode", NULL);
	assert_int_equal(m->n_points, 1);
	assert_true(p->value == 2);

	metrics_add(m, M_STEPS, 1, 3, "llmtap.step.op", "decode", "error.type", "llama_decode_1",
		    NULL);
	assert_int_equal(m->n_points, 2);
	assert_true(p->value == 2);
	p = metrics_find(m, M_STEPS, "llmtap.step.op", "decode", "error.type", "llama_decode_1",
			 NULL);
	assert_non_null(p);
	assert_int_equal(p->n_attrs, 2);
	/* metrics_find skips NULL values the same way */
	assert_ptr_equal(metrics_find(m, M_STEPS, "llmtap.step.op", "decode", "error.type", NULL,
				      NULL),
			 metrics_find(m, M_STEPS, "llmtap.step.op", "decode", NULL));
	free(m);
}

static void test_long_value_truncated(void **state)
{
	struct metrics *m = new_metrics();
	char longv[200];
	const struct metric_point *p;
	(void)state;

	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	metrics_set(m, M_SLOTS_BUSY, 1, 1, "k", longv, NULL);
	assert_int_equal(m->n_points, 1);
	p = &m->points[0];
	assert_int_equal(strlen(p->attrs[0].value), sizeof(p->attrs[0].value) - 1);
	assert_int_equal(strncmp(p->attrs[0].value, longv, sizeof(p->attrs[0].value) - 1), 0);
	free(m);
}

static void test_point_limit(void **state)
{
	struct metrics *m = new_metrics();
	const struct metric_point *p;
	char v[32];
	(void)state;

	for (int i = 0; i < METRIC_MAX_POINTS; i++) {
		snprintf(v, sizeof(v), "%d", i);
		metrics_add(m, M_INF_REQUESTS, 1, (uint64_t)i, "status", v, NULL);
	}
	assert_int_equal(m->n_points, METRIC_MAX_POINTS);
	assert_int_equal(m->dropped, 0);

	/* no room for a new attribute set: counted, not stored */
	metrics_add(m, M_INF_REQUESTS, 1, 1000, "status", "new", NULL);
	metrics_record(m, M_HTTP_DURATION, 0.1, 1000, NULL);
	metrics_set(m, M_SLOTS_BUSY, 1, 1000, NULL);
	assert_int_equal(m->n_points, METRIC_MAX_POINTS);
	assert_int_equal(m->dropped, 3);
	assert_null(metrics_find(m, M_INF_REQUESTS, "status", "new", NULL));
	assert_null(metrics_find(m, M_HTTP_DURATION, NULL));

	/* the attribute sets already there still update */
	metrics_add(m, M_INF_REQUESTS, 4, 1001, "status", "7", NULL);
	p = metrics_find(m, M_INF_REQUESTS, "status", "7", NULL);
	assert_non_null(p);
	assert_true(p->value == 5);
	p = metrics_find(m, M_INF_REQUESTS, "status", "511", NULL);
	assert_non_null(p);
	assert_true(p->value == 1);
	assert_int_equal(m->dropped, 3);
	free(m);
}

/* The text of a JSON array that follows key in s, without the brackets. */
static int json_array_len(const char *s, const char *key, char *buf, size_t len)
{
	char k[64];
	const char *p, *end;
	int n;

	snprintf(k, sizeof(k), "\"%s\":[", key);
	p = strstr(s, k);
	if (!p)
		fail_msg("missing %s in: %s", k, s);
	p += strlen(k);
	end = strchr(p, ']');
	assert_non_null(end);
	assert_true((size_t)(end - p) < len);
	memcpy(buf, p, (size_t)(end - p));
	buf[end - p] = '\0';
	if (!buf[0])
		return 0;
	n = 1;
	for (const char *q = buf; *q; q++)
		n += *q == ',';
	return n;
}

static void test_write_json(void **state)
{
	struct metrics *m = new_metrics();
	const struct instrument *in = metric_instrument(M_HTTP_DURATION);
	char *buf = NULL, arr[512];
	size_t len = 0;
	FILE *f;
	(void)state;

	metrics_record(m, M_HTTP_DURATION, 0.005, 1000, "http.request.method", "POST",
		       "http.route", "/completion", NULL);
	metrics_record(m, M_HTTP_DURATION, 12, 2000, "http.request.method", "POST",
		       "http.route", "/completion", NULL);
	metrics_add(m, M_INF_REQUESTS, 3, 1500, "endpoint", "a\"b\\c", NULL);
	metrics_set(m, M_SLOTS_BUSY, 2, 1700, NULL);

	f = open_memstream(&buf, &len);
	assert_non_null(f);
	metrics_write_json(m, f, 1000000, 5000);
	assert_int_equal(fclose(f), 0);
	assert_non_null(buf);

	assert_true(buf[0] == '[');
	assert_true(buf[len - 1] == ']');
	assert_contains(buf, "{\"name\":\"http.server.request.duration\",\"unit\":\"s\","
			     "\"type\":\"histogram\",\"attributes\":{\"http.request.method\":\"POST\","
			     "\"http.route\":\"/completion\"}");
	assert_contains(buf, "\"start_unix_nano\":1001000,\"time_unix_nano\":1005000");
	assert_contains(buf, "\"count\":2,\"sum\":12.005,\"min\":0.005,\"max\":12,");
	assert_int_equal(json_array_len(buf, "bounds", arr, sizeof(arr)), in->n_bounds);
	assert_true(!strncmp(arr, "0.005,0.01,0.025,", 17));
	assert_true(strlen(arr) >= 3 && !strcmp(arr + strlen(arr) - 3, ",10"));
	assert_int_equal(json_array_len(buf, "bucket_counts", arr, sizeof(arr)), in->n_bounds + 1);
	assert_string_equal(arr, "1,0,0,0,0,0,0,0,0,0,0,0,0,0,1");

	/* the counter, its attribute value escaped */
	assert_contains(buf, "{\"name\":\"llmtap.inference.requests\",\"unit\":\"{request}\","
			     "\"type\":\"counter\",\"attributes\":{\"endpoint\":\"a\\\"b\\\\c\"},"
			     "\"start_unix_nano\":1001500,\"time_unix_nano\":1005000,\"value\":3}");
	/* the gauge, no attributes */
	assert_contains(buf, "{\"name\":\"llmtap.slots.busy\",\"unit\":\"{slot}\","
			     "\"type\":\"gauge\",\"attributes\":{},"
			     "\"start_unix_nano\":1001700,\"time_unix_nano\":1005000,\"value\":2}");
	free(buf);

	/* nothing recorded: an empty array */
	memset(m, 0, sizeof(*m));
	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	metrics_write_json(m, f, 0, 0);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(buf, "[]");
	free(buf);
	free(m);
}

static void test_add_total(void **state)
{
	struct metrics *m = calloc(1, sizeof(*m));
	const struct metric_point *p;
	uint64_t reported = 0;

	(void)state;
	assert_non_null(m);
	metrics_add_total(m, M_EVENTS_LOST, 0, &reported, 1, NULL); /* 0 creates the point */
	p = metrics_find(m, M_EVENTS_LOST, NULL);
	assert_non_null(p);
	assert_true(p->value == 0);
	metrics_add_total(m, M_EVENTS_LOST, 5, &reported, 2, NULL);
	metrics_add_total(m, M_EVENTS_LOST, 5, &reported, 3, NULL);
	metrics_add_total(m, M_EVENTS_LOST, 9, &reported, 4, NULL);
	assert_true(p->value == 9);
	assert_int_equal(reported, 9);
	metrics_add_total(m, M_SLOTS_BUSY, 3, &reported, 5, NULL); /* a gauge: not a counter */
	assert_null(metrics_find(m, M_SLOTS_BUSY, NULL));
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_total),
		cmocka_unit_test(test_instrument_table),
		cmocka_unit_test(test_counter),
		cmocka_unit_test(test_gauge),
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_histogram_min_max),
		cmocka_unit_test(test_wrong_kind_creates_nothing),
		cmocka_unit_test(test_attribute_sets),
		cmocka_unit_test(test_null_value_skips_key),
		cmocka_unit_test(test_long_value_truncated),
		cmocka_unit_test(test_point_limit),
		cmocka_unit_test(test_write_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
