// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/model/telemetry.c and the sinks that read it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include "lib/clock.h"
#include "lib/util.h"
#include "model/telemetry.h"
#include "report/report.h"
#include "sink/sinks.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define MAX_SNAPS 4

/* A sink that keeps copies of everything it is handed. */
struct fake_sink {
	int attached;
	int attached_pid;
	int steps;
	struct step last_step;
	int64_t step_offset;
	int n_intervals;
	struct tm_window intervals[MAX_SNAPS];
	struct tm_window interval_totals[MAX_SNAPS];
	int summaries;
	bool summary_had_interval;
	struct tm_window summary_total;
	char reason[32];
	int destroyed;
};

static void fake_attached(void *self, const struct tm_target *t)
{
	struct fake_sink *f = self;

	f->attached++;
	f->attached_pid = t->pid;
}

static void fake_step(void *self, const struct step *s, int64_t off)
{
	struct fake_sink *f = self;

	f->steps++;
	f->last_step = *s;
	f->step_offset = off;
}

static void fake_interval(void *self, const struct tm_snapshot *snap)
{
	struct fake_sink *f = self;

	assert_non_null(snap->interval);
	assert_non_null(snap->total);
	assert_null(snap->end_reason);
	assert_true(f->n_intervals < MAX_SNAPS);
	f->intervals[f->n_intervals] = *snap->interval;
	f->interval_totals[f->n_intervals] = *snap->total;
	f->n_intervals++;
}

static void fake_summary(void *self, const struct tm_snapshot *snap)
{
	struct fake_sink *f = self;

	f->summaries++;
	f->summary_had_interval = snap->interval != NULL;
	f->summary_total = *snap->total;
	snprintf(f->reason, sizeof(f->reason), "%s", snap->end_reason ? snap->end_reason : "(null)");
}

static void fake_destroy(void *self)
{
	struct fake_sink *f = self;

	f->destroyed++;
}

static const struct sink_ops fake_ops = {
	.attached = fake_attached,
	.step = fake_step,
	.interval = fake_interval,
	.summary = fake_summary,
	.destroy = fake_destroy,
};

static const struct tm_target target = {
	.pid = 4242,
	.comm = "llama-server",
	.library = "/usr/lib/libllama.so",
	.in_executable = false,
	.layers = "engine,sampling",
};

static struct step mkstep(uint64_t start_ns, uint64_t dur_ns, int32_t n_tokens,
			  uint32_t n_outputs, enum step_kind kind, int32_t ret)
{
	struct step s;

	memset(&s, 0, sizeof(s));
	s.pid = 4242;
	s.tid = 4243;
	s.ctx = 0xabc0;
	s.start_ns = start_ns;
	s.end_ns = start_ns + dur_ns;
	s.n_tokens = n_tokens;
	s.n_outputs = n_outputs;
	s.n_seqs = 1;
	s.kind = kind;
	s.ret = ret;
	s.n_runs = 1;
	s.runs[0].n_tokens = n_tokens > 0 ? (uint32_t)n_tokens : 0;
	s.runs[0].pos_last = n_tokens - 1;
	s.runs[0].n_outputs = n_outputs;
	return s;
}

static void feed(struct telemetry *tm, uint64_t t0, struct step *s)
{
	s->start_ns += t0;
	s->end_ns += t0;
	telemetry_step(tm, s);
}

static void test_batch_class(void **state)
{
	static const struct {
		int32_t n;
		int c;
	} cases[] = {
		{ -5, BATCH_1 }, { 0, BATCH_1 }, { 1, BATCH_1 },
		{ 2, BATCH_2_4 }, { 4, BATCH_2_4 },
		{ 5, BATCH_5_16 }, { 16, BATCH_5_16 },
		{ 17, BATCH_17_64 }, { 64, BATCH_17_64 },
		{ 65, BATCH_65_512 }, { 512, BATCH_65_512 },
		{ 513, BATCH_513_UP }, { 1 << 30, BATCH_513_UP },
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (batch_class(cases[i].n) != cases[i].c)
			fail_msg("batch_class(%d) = %d, want %d", cases[i].n,
				 batch_class(cases[i].n), cases[i].c);
	}
	assert_string_equal(batch_class_name(BATCH_1), "1");
	assert_string_equal(batch_class_name(BATCH_2_4), "2-4");
	assert_string_equal(batch_class_name(BATCH_17_64), "17-64");
	assert_string_equal(batch_class_name(BATCH_513_UP), "513+");
	assert_string_equal(batch_class_name(BATCH_CLASSES), "?");
	assert_string_equal(batch_class_name(-1), "?");
}

static void test_sinks_called(void **state)
{
	struct telemetry *tm = calloc(1, sizeof(*tm));
	struct fake_sink *f = calloc(1, sizeof(*f)), *g = calloc(1, sizeof(*g));
	struct step s = mkstep(10 * MS, 2 * MS, 30, 1, STEP_PREFILL, 0);
	struct sink extra = { .ops = &fake_ops, .self = g };
	(void)state;

	assert_non_null(tm);
	assert_non_null(f);
	assert_non_null(g);
	telemetry_init(tm, &target, 0);
	assert_int_equal(tm->target.pid, 4242);
	assert_string_equal(tm->target.layers, "engine,sampling");
	assert_int_equal(telemetry_add_sink(tm, (struct sink){ .ops = &fake_ops, .self = f }), 0);
	for (int i = 1; i < TM_MAX_SINKS; i++)
		assert_int_equal(telemetry_add_sink(tm, extra), 0);
	assert_int_equal(telemetry_add_sink(tm, extra), -1);
	assert_int_equal(tm->n_sinks, TM_MAX_SINKS);

	telemetry_attached(tm);
	assert_int_equal(f->attached, 1);
	assert_int_equal(f->attached_pid, 4242);
	assert_int_equal(g->attached, TM_MAX_SINKS - 1);

	telemetry_step(tm, &s);
	assert_int_equal(f->steps, 1);
	assert_int_equal(f->last_step.n_tokens, 30);
	assert_true(f->step_offset == tm->realtime_offset_ns);
	assert_int_equal(g->steps, TM_MAX_SINKS - 1);

	telemetry_destroy(tm);
	assert_int_equal(f->destroyed, 1);
	assert_int_equal(g->destroyed, TM_MAX_SINKS - 1);
	assert_int_equal(tm->n_sinks, 0);
	free(g);
	free(f);
	free(tm);
}

/* A sink with only some callbacks must not be called through NULL. */
static void test_partial_sink(void **state)
{
	static const struct sink_ops ops = { .summary = fake_summary };
	struct telemetry *tm = calloc(1, sizeof(*tm));
	struct fake_sink *f = calloc(1, sizeof(*f));
	struct step s = mkstep(0, MS, 1, 1, STEP_GENERATE, 0);
	(void)state;

	assert_non_null(tm);
	assert_non_null(f);
	telemetry_init(tm, &target, 0);
	assert_int_equal(telemetry_add_sink(tm, (struct sink){ .ops = &ops, .self = f }), 0);
	telemetry_attached(tm);
	telemetry_step(tm, &s);
	telemetry_tick(tm, SEC, 0);
	telemetry_finish(tm, 2 * SEC, 0, "done");
	telemetry_destroy(tm);
	assert_int_equal(f->summaries, 1);
	assert_int_equal(f->summary_total.steps, 1);
	assert_int_equal(f->steps, 0);
	free(f);
	free(tm);
}

static void test_intervals(void **state)
{
	struct telemetry *tm = calloc(1, sizeof(*tm));
	struct fake_sink *f = calloc(1, sizeof(*f));
	const uint64_t t0 = 1000 * SEC;
	const struct tm_window *w, *tot;
	struct step s;
	(void)state;

	assert_non_null(tm);
	assert_non_null(f);
	telemetry_init(tm, &target, t0);
	assert_int_equal(telemetry_add_sink(tm, (struct sink){ .ops = &fake_ops, .self = f }), 0);

	/* interval 1: a prompt, two generate steps, one failing, a 600-token prompt */
	s = mkstep(10 * MS, 40 * MS, 30, 1, STEP_PREFILL, 0);
	feed(tm, t0, &s);
	s = mkstep(60 * MS, 5 * MS, 1, 1, STEP_GENERATE, 0);
	feed(tm, t0, &s);
	s = mkstep(70 * MS, 7 * MS, 1, 1, STEP_GENERATE, -1);
	feed(tm, t0, &s);
	s = mkstep(80 * MS, 90 * MS, 600, 1, STEP_PREFILL, 0);
	feed(tm, t0, &s);
	telemetry_tick(tm, t0 + SEC, 5);

	assert_int_equal(f->n_intervals, 1);
	w = &f->intervals[0];
	assert_true(w->start_ns == t0);
	assert_true(w->end_ns == t0 + SEC);
	assert_int_equal(w->steps, 4);
	assert_int_equal(w->step_errors, 1);
	assert_int_equal(w->tokens, 632);
	assert_int_equal(w->outputs, 4);
	assert_int_equal(w->by_kind[STEP_PREFILL], 2);
	assert_int_equal(w->by_kind[STEP_GENERATE], 2);
	assert_int_equal(w->by_kind[STEP_MIXED], 0);
	assert_int_equal(w->batch_mix[BATCH_1], 2);
	assert_int_equal(w->batch_mix[BATCH_17_64], 1);
	assert_int_equal(w->batch_mix[BATCH_513_UP], 1);
	assert_int_equal(w->batch_mix[BATCH_2_4] + w->batch_mix[BATCH_5_16] +
			 w->batch_mix[BATCH_65_512], 0);
	assert_int_equal(w->lost, 5);
	assert_int_equal(w->duration_ns.count, 4);
	assert_true(w->duration_ns.sum == 142 * MS);
	assert_true(w->duration_ns.min == 5 * MS);
	assert_true(w->duration_ns.max == 90 * MS);
	assert_int_equal(w->batch_tokens.count, 4);
	assert_int_equal(w->batch_tokens.sum, 632);
	assert_int_equal(w->batch_tokens.max, 600);
	assert_int_equal(f->interval_totals[0].lost, 5);
	assert_int_equal(f->interval_totals[0].steps, 4);

	/* the interval window starts over at the tick */
	assert_int_equal(tm->interval.steps, 0);
	assert_int_equal(tm->interval.tokens, 0);
	assert_int_equal(tm->interval.lost, 0);
	assert_int_equal(tm->interval.duration_ns.count, 0);
	assert_true(tm->interval.start_ns == t0 + SEC);
	assert_int_equal(tm->total.steps, 4);

	/* interval 2: a mixed step; 3 more lost */
	s = mkstep(SEC + 10 * MS, 20 * MS, 9, 3, STEP_MIXED, 0);
	feed(tm, t0, &s);
	telemetry_tick(tm, t0 + 2 * SEC, 8);

	assert_int_equal(f->n_intervals, 2);
	w = &f->intervals[1];
	assert_true(w->start_ns == t0 + SEC);
	assert_true(w->end_ns == t0 + 2 * SEC);
	assert_int_equal(w->steps, 1);
	assert_int_equal(w->step_errors, 0);
	assert_int_equal(w->tokens, 9);
	assert_int_equal(w->outputs, 3);
	assert_int_equal(w->by_kind[STEP_MIXED], 1);
	assert_int_equal(w->by_kind[STEP_PREFILL], 0);
	assert_int_equal(w->batch_mix[BATCH_5_16], 1);
	assert_int_equal(w->batch_mix[BATCH_1], 0);
	assert_int_equal(w->lost, 3);
	assert_true(w->duration_ns.min == 20 * MS);
	tot = &f->interval_totals[1];
	assert_int_equal(tot->lost, 8);
	assert_int_equal(tot->steps, 5);
	assert_int_equal(tot->tokens, 641);
	assert_true(tot->start_ns == t0);
	assert_true(tot->end_ns == t0 + 2 * SEC);

	/* interval 3: nothing happened */
	telemetry_tick(tm, t0 + 3 * SEC, 8);
	assert_int_equal(f->n_intervals, 3);
	assert_int_equal(f->intervals[2].steps, 0);
	assert_int_equal(f->intervals[2].lost, 0);
	assert_int_equal(f->intervals[2].duration_ns.count, 0);

	/* the end: 2 more lost, reason passed through, no interval window */
	telemetry_finish(tm, t0 + 3 * SEC + 500 * MS, 10, "test");
	assert_int_equal(f->summaries, 1);
	assert_false(f->summary_had_interval);
	assert_string_equal(f->reason, "test");
	tot = &f->summary_total;
	assert_int_equal(tot->steps, 5);
	assert_int_equal(tot->step_errors, 1);
	assert_int_equal(tot->tokens, 641);
	assert_int_equal(tot->outputs, 7);
	assert_int_equal(tot->lost, 10);
	assert_int_equal(tot->by_kind[STEP_PREFILL], 2);
	assert_int_equal(tot->by_kind[STEP_GENERATE], 2);
	assert_int_equal(tot->by_kind[STEP_MIXED], 1);
	assert_int_equal(tot->batch_mix[BATCH_1], 2);
	assert_int_equal(tot->duration_ns.count, 5);
	assert_true(tot->duration_ns.sum == 162 * MS);
	assert_true(tot->start_ns == t0);
	assert_true(tot->end_ns == t0 + 3 * SEC + 500 * MS);

	telemetry_destroy(tm);
	free(f);
	free(tm);
}

static void test_lost_counter_reset(void **state)
{
	struct telemetry *tm = calloc(1, sizeof(*tm));
	struct fake_sink *f = calloc(1, sizeof(*f));
	(void)state;

	assert_non_null(tm);
	assert_non_null(f);
	telemetry_init(tm, &target, 0);
	assert_int_equal(telemetry_add_sink(tm, (struct sink){ .ops = &fake_ops, .self = f }), 0);
	telemetry_tick(tm, SEC, 6);
	/* the cumulative count went backwards: no negative delta */
	telemetry_tick(tm, 2 * SEC, 2);
	telemetry_tick(tm, 3 * SEC, 4);
	assert_int_equal(f->n_intervals, 3);
	assert_int_equal(f->intervals[0].lost, 6);
	assert_int_equal(f->intervals[1].lost, 0);
	assert_int_equal(f->intervals[2].lost, 2);
	assert_int_equal(f->interval_totals[2].lost, 8);

	/* finish without a tick in between still counts the last delta */
	telemetry_finish(tm, 4 * SEC, 9, NULL);
	assert_int_equal(f->summary_total.lost, 13);
	assert_string_equal(f->reason, "(null)");
	free(f);
	free(tm);
}

static void test_negative_tokens(void **state)
{
	struct telemetry *tm = calloc(1, sizeof(*tm));
	struct step s = mkstep(0, MS, -7, 0, STEP_PREFILL, -1);
	(void)state;

	/* a garbage negative n_tokens counts as a step, not as 2^64 tokens */
	assert_non_null(tm);
	telemetry_init(tm, &target, 0);
	telemetry_step(tm, &s);
	assert_int_equal(tm->total.steps, 1);
	assert_int_equal(tm->total.tokens, 0);
	assert_int_equal(tm->total.batch_tokens.max, 0);
	assert_int_equal(tm->total.batch_mix[BATCH_1], 1);
	assert_int_equal(tm->total.step_errors, 1);
	free(tm);
}

/* ---- a small JSON syntax checker, enough for one JSON-lines record ---- */

static const char *json_value(const char *p);

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

static const char *json_str(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL; /* also catches the end of the string */
		if (*p != '\\')
			continue;
		p++;
		if (*p == 'u') {
			for (int i = 1; i <= 4; i++)
				if (!isxdigit((unsigned char)p[i]))
					return NULL;
			p += 4;
		} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
			return NULL;
		}
	}
	return p + 1;
}

static const char *json_num(const char *p)
{
	const char *d;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (isdigit((unsigned char)*p))
			p++;
	else
		return NULL;
	if (*p == '.') {
		d = ++p;
		while (isdigit((unsigned char)*p))
			p++;
		if (p == d)
			return NULL;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		d = p;
		while (isdigit((unsigned char)*p))
			p++;
		if (p == d)
			return NULL;
	}
	return p;
}

static const char *json_seq(const char *p, char close, bool keys)
{
	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keys) {
			p = json_str(json_ws(p));
			if (!p)
				return NULL;
			p = json_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = json_value(p);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p)
{
	p = json_ws(p);
	switch (*p) {
	case '{':
		return json_seq(p, '}', true);
	case '[':
		return json_seq(p, ']', false);
	case '"':
		return json_str(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return json_num(p);
	}
}

static bool json_valid_object(const char *line)
{
	const char *end;

	if (*line != '{')
		return false;
	end = json_value(line);
	return end && !*json_ws(end);
}

static void test_json_checker(void **state)
{
	(void)state;

	/* make sure the checker itself rejects what it should */
	assert_true(json_valid_object("{\"a\":1,\"b\":[1,-2.5e3,\"x\\\"y\",true,null],\"c\":{}}"));
	assert_false(json_valid_object("{\"a\":nan}"));
	assert_false(json_valid_object("{\"a\":inf}"));
	assert_false(json_valid_object("{\"a\":1,}"));
	assert_false(json_valid_object("{\"a\":\"x\"y\"}"));
	assert_false(json_valid_object("{\"a\":\"\n\"}"));
	assert_false(json_valid_object("{\"a\":1"));
	assert_false(json_valid_object("{\"a\":01}"));
	assert_false(json_valid_object("[1]"));
}

/* Lines of a memstream buffer, split in place. */
static int split_lines(char *buf, char **lines, int max)
{
	int n = 0;

	for (char *p = buf; *p && n < max;) {
		char *nl = strchr(p, '\n');

		assert_non_null(nl); /* every record ends with a newline */
		*nl = '\0';
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("missing %s in: %s", needle, hay);
}

static long long json_ll(const char *line, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(line, k);
	if (!p)
		fail_msg("missing %s in: %s", k, line);
	return strtoll(p + strlen(k), NULL, 10);
}

static void run_json_session(bool steps, char **buf, size_t *len)
{
	static const struct tm_target odd = {
		.pid = 77,
		.comm = "llama\"srv\\x\n",
		.library = "/opt/my models/libllama.so",
		.in_executable = true,
		.layers = "engine",
	};
	struct telemetry *tm = calloc(1, sizeof(*tm));
	uint64_t t0 = monotonic_ns();
	struct sink s;
	struct step st;
	char err[128];
	FILE *f;

	assert_non_null(tm);
	f = open_memstream(buf, len);
	assert_non_null(f);
	assert_int_equal(sink_json_new(f, steps, &s, err, sizeof(err)), 0);
	telemetry_init(tm, &odd, t0);
	assert_int_equal(telemetry_add_sink(tm, s), 0);
	telemetry_attached(tm);

	st = mkstep(10 * MS, 250000, 30, 1, STEP_PREFILL, 0);
	st.runs[0].seq_id = 3;
	st.runs[0].pos_first = 0;
	feed(tm, t0, &st);
	st = mkstep(20 * MS, 4 * MS, 1, 1, STEP_GENERATE, -2);
	st.op = LLMTAP_OP_ENCODE;
	feed(tm, t0, &st);
	telemetry_tick(tm, t0 + SEC, 5);
	telemetry_finish(tm, t0 + 2 * SEC, 8, "test");
	telemetry_destroy(tm);
	assert_int_equal(fclose(f), 0);
	free(tm);
}

static void test_json_sink(void **state)
{
	char *buf = NULL, *lines[16];
	size_t len = 0;
	long long now = (long long)time(NULL) * (long long)SEC, t;
	int n;
	(void)state;

	run_json_session(true, &buf, &len);
	assert_non_null(buf);
	assert_int_equal(strlen(buf), len);
	n = split_lines(buf, lines, 16);
	assert_int_equal(n, 5);
	for (int i = 0; i < n; i++)
		if (!json_valid_object(lines[i]))
			fail_msg("line %d is not a JSON object: %s", i, lines[i]);

	/* attach: the comm's quote, backslash and newline are escaped */
	assert_contains(lines[0], "\"type\":\"attach\"");
	assert_contains(lines[0], "\"pid\":77");
	assert_contains(lines[0], "\"comm\":\"llama\\\"srv\\\\x\\u000a\"");
	assert_contains(lines[0], "\"library\":\"/opt/my models/libllama.so\"");
	assert_contains(lines[0], "\"in_executable\":true");
	assert_contains(lines[0], "\"layers\":\"engine\"");

	/* the two steps */
	assert_contains(lines[1], "\"type\":\"step\"");
	assert_contains(lines[1], "\"op\":\"decode\"");
	assert_contains(lines[1], "\"kind\":\"prefill\"");
	assert_contains(lines[1], "\"n_tokens\":30");
	assert_contains(lines[1], "\"duration_ns\":250000");
	assert_contains(lines[1], "\"ret\":0");
	assert_contains(lines[1], "\"pid\":4242");
	assert_contains(lines[1], "\"ctx\":\"0xabc0\"");
	assert_contains(lines[1],
			"\"seqs\":[{\"seq\":3,\"n_tokens\":30,\"pos_first\":0,\"pos_last\":29,\"n_outputs\":1}]");
	t = json_ll(lines[1], "start_unix_nano");
	assert_true(t > now - 60 * (long long)SEC && t < now + 60 * (long long)SEC);
	assert_contains(lines[2], "\"op\":\"encode\"");
	assert_contains(lines[2], "\"kind\":\"generate\"");
	assert_contains(lines[2], "\"ret\":-2");
	assert_true(json_ll(lines[2], "start_unix_nano") - json_ll(lines[1], "start_unix_nano") ==
		    (long long)(10 * MS));

	/* the interval */
	assert_contains(lines[3], "\"type\":\"interval\"");
	assert_contains(lines[3], "\"steps\":2");
	assert_contains(lines[3], "\"failed_steps\":1");
	assert_contains(lines[3], "\"tokens\":31");
	assert_contains(lines[3], "\"lost_events\":5");
	assert_contains(lines[3], "\"steps_by_kind\":{\"prefill\":1,\"generate\":1,\"mixed\":0}");
	assert_contains(lines[3],
			"\"batch_mix\":{\"1\":1,\"2-4\":0,\"5-16\":0,\"17-64\":1,\"65-512\":0,\"513+\":0}");
	assert_contains(lines[3], "\"batch_tokens\":{\"count\":2,\"sum\":31,\"min\":1,\"max\":30");
	assert_true(json_ll(lines[3], "end_unix_nano") - json_ll(lines[3], "start_unix_nano") ==
		    (long long)SEC);

	/* the summary */
	assert_contains(lines[4], "\"type\":\"summary\"");
	assert_contains(lines[4], "\"end_reason\":\"test\"");
	assert_contains(lines[4], "\"lost_events\":8");
	assert_contains(lines[4], "\"steps\":2");
	assert_contains(lines[4], "\"step_duration_s\":{\"count\":2,");
	assert_true(json_ll(lines[4], "end_unix_nano") - json_ll(lines[4], "start_unix_nano") ==
		    2 * (long long)SEC);
	free(buf);

	/* without steps: attach, interval, summary */
	buf = NULL;
	run_json_session(false, &buf, &len);
	n = split_lines(buf, lines, 16);
	assert_int_equal(n, 3);
	assert_contains(lines[0], "\"type\":\"attach\"");
	assert_contains(lines[1], "\"type\":\"interval\"");
	assert_contains(lines[2], "\"type\":\"summary\"");
	free(buf);
}

static void test_json_empty_session(void **state)
{
	struct telemetry *tm = calloc(1, sizeof(*tm));
	char *buf = NULL, *lines[4];
	size_t len = 0;
	struct sink s;
	char err[128];
	FILE *f;
	int n;
	(void)state;

	/* no steps at all: empty histograms must still print as valid JSON */
	assert_non_null(tm);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(sink_json_new(f, true, &s, err, sizeof(err)), 0);
	telemetry_init(tm, &target, 5 * SEC);
	assert_int_equal(telemetry_add_sink(tm, s), 0);
	telemetry_tick(tm, 6 * SEC, 0);
	telemetry_finish(tm, 6 * SEC, 0, NULL);
	telemetry_destroy(tm);
	assert_int_equal(fclose(f), 0);

	n = split_lines(buf, lines, 4);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++)
		if (!json_valid_object(lines[i]))
			fail_msg("line %d is not a JSON object: %s", i, lines[i]);
	assert_contains(lines[1], "\"end_reason\":\"\"");
	assert_contains(lines[1], "\"steps\":0");
	/* nothing measured: no minimum, maximum or percentile, not 0 */
	assert_contains(lines[1], "\"step_duration_s\":{\"count\":0,\"sum\":0,\"min\":null,"
			"\"max\":null,\"p50\":null,\"p90\":null,\"p99\":null}");
	assert_contains(lines[1], "\"requests\":0,");
	assert_contains(lines[1], "\"generations\":0,\"proxied\":0,\"finish_reasons\":{\"stop\":0,"
			"\"length\":0,\"cancelled\":0,\"error\":0,\"unknown\":0},\"input_tokens\":0,"
			"\"cached_tokens\":0,\"output_tokens\":0,\"input_tokens_unknown\":0,"
			"\"output_tokens_unknown\":0");
	free(buf);
	free(tm);
}

/* A request with every attribute set; inference says whether its route is a GenAI one. */
static struct req_span full_request(bool inference)
{
	struct req_span r = {
		.id = 9, .start_ns = 1000, .end_ns = 9000, .method = "POST", .path = "/x\"y",
		.client = "10.0.0.1", .client_port = 5555, .server_port = 8080, .status = 503,
		.stream = true, .complete = true, .n_tasks = 2, .slot = 1, .deferred = true,
		.enqueue_ns = 1100, .launch_ns = 2000, .first_token_ns = 3000, .final_ns = 8000,
		.cached_tokens = 4, .prompt_tokens = 26, .output_tokens = 12, .context_shifts = 1,
		.cache_loads = 1, .cache_bytes_loaded = 4096, .tokenize_calls = 1,
		.sampling_ns = 700, .draft_tokens = 3, .has_sampling = true, .seed = 4000000000u,
		.top_k = 40, .top_p = 0.95f, .temperature = 0.5f, .err_type = 5,
		.err_msg = "no \"slot\"", .kind = REQ_HTTP, .attribution = REQ_ATTR_SERVER,
		.known = REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT,
	};

	r.route.kind = inference ? ROUTE_COMPLETION : ROUTE_OTHER;
	r.route.template = inference ? "/completion" : "other";
	return r;
}

static void test_json_request(void **state)
{
	struct req_span r = full_request(true);
	char *buf = NULL;
	size_t len = 0;
	struct sink s;
	char err[128];
	FILE *f;
	(void)state;

	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(sink_json_new(f, false, &s, err, sizeof(err)), 0);
	s.ops->request(s.self, &r, 1000000);
	r.finish[0] = FINISH_LENGTH; /* two choices: an array in choice order */
	r.finish[1] = FINISH_STOP;
	r.n_finish = 2;
	r.max_tokens = 16;
	s.ops->request(s.self, &r, 1000000);
	r = full_request(false);
	r.status = 0;
	r.complete = false;
	r.err_msg[0] = '\0';
	s.ops->request(s.self, &r, 1000000);
	s.ops->destroy(s.self);
	assert_int_equal(fclose(f), 0);
	/* the attributes, as the OpenTelemetry names them; JSON only: llmtap.error.message */
	assert_contains(buf, "\"attributes\":{\"http.request.method\":\"POST\",\"url.path\":\"/x\\\"y\","
		"\"http.route\":\"/completion\",\"http.response.status_code\":503,"
		"\"client.address\":\"10.0.0.1\",\"client.port\":5555,\"server.port\":8080,"
		"\"gen_ai.operation.name\":\"text_completion\",\"gen_ai.provider.name\":\"llama.cpp\","
		"\"gen_ai.request.stream\":true,\"gen_ai.usage.input_tokens\":30,"
		"\"gen_ai.usage.output_tokens\":12,\"gen_ai.usage.cache_read.input_tokens\":4,"
		"\"gen_ai.request.seed\":4000000000,\"gen_ai.request.top_k\":40,"
		"\"gen_ai.request.top_p\":0.949999988,\"gen_ai.request.temperature\":0.5,"
		"\"gen_ai.request.choice.count\":2,\"llmtap.attribution\":\"server\","
		"\"error.type\":\"503\",\"llmtap.error.message\":\"no \\\"slot\\\"\"},\"children\":[");
	assert_contains(buf, "\"gen_ai.request.stream\":true,\"gen_ai.request.max_tokens\":16,"
		"\"gen_ai.response.finish_reasons\":[\"length\",\"stop\"],\"gen_ai.usage.input_tokens\":30,");
	/* the record's own fields: kind, attribution, the route's endpoint, counts, times */
	assert_contains(buf, "{\"type\":\"request\",\"pid\":0,\"id\":9,\"kind\":\"http\","
		"\"attribution\":\"server\",\"name\":\"POST /completion\",");
	assert_contains(buf, "\"endpoint\":\"completion\",\"stream\":true,\"tasks\":2,\"slot\":1,"
		"\"queued\":true,\"queue_ns\":900,\"ttft_ns\":2000,\"tpot_ns\":454,"
		"\"prompt_tokens\":26,\"cached_tokens\":4,\"output_tokens\":12,");
	/* no GenAI attributes for other routes, no status when none was seen */
	assert_contains(buf, "\"attributes\":{\"http.request.method\":\"POST\",\"url.path\":\"/x\\\"y\","
		"\"http.route\":\"other\",\"client.address\":\"10.0.0.1\",\"client.port\":5555,"
		"\"server.port\":8080,\"llmtap.attribution\":\"server\",\"error.type\":\"incomplete\"},"
		"\"children\":[");
	free(buf);
}


/* Metric points of one instrument, whatever their attributes. */
static int points_of(const struct metrics *m, enum instr_id id)
{
	int n = 0;

	for (int i = 0; i < m->n_points; i++)
		n += m->points[i].id == id;
	return n;
}

static uint64_t hist_count_of(const struct metrics *m, enum instr_id id)
{
	uint64_t n = 0;

	for (int i = 0; i < m->n_points; i++)
		if (m->points[i].id == id)
			n += m->points[i].count;
	return n;
}

static const struct tm_target tiny_target = {
	.pid = 4242,
	.comm = "llama-server",
	.library = "/usr/lib/libllama.so",
	.layers = "engine,sampling,server,http",
	.model = "tiny",
};

/* A completion request whose counts llmtap did not measure: garbage in the fields. */
static struct req_span unknown_request(uint64_t id)
{
	struct req_span r = full_request(true);

	r.id = id;
	r.known = 0;
	r.attribution = REQ_ATTR_UNATTRIBUTED;
	r.status = 200;
	r.err_type = -1;
	r.err_msg[0] = '\0';
	r.prompt_tokens = 999;
	r.cached_tokens = 888;
	r.output_tokens = 777;
	return r;
}

/* A telemetry model with a JSON and a console sink writing into memory. */
struct two_sinks {
	struct telemetry *tm;
	FILE *json, *console;
	char *json_buf, *console_buf;
	size_t json_len, console_len;
};

static void two_sinks_start(struct two_sinks *t)
{
	struct sink s;
	char err[128];

	memset(t, 0, sizeof(*t));
	t->tm = calloc(1, sizeof(*t->tm));
	assert_non_null(t->tm);
	t->json = open_memstream(&t->json_buf, &t->json_len);
	t->console = open_memstream(&t->console_buf, &t->console_len);
	assert_non_null(t->json);
	assert_non_null(t->console);
	telemetry_init(t->tm, &tiny_target, 0);
	assert_int_equal(sink_json_new(t->json, false, &s, err, sizeof(err)), 0);
	assert_int_equal(telemetry_add_sink(t->tm, s), 0);
	assert_int_equal(sink_console_new(t->console, &s, err, sizeof(err)), 0);
	assert_int_equal(telemetry_add_sink(t->tm, s), 0);
	telemetry_attached(t->tm);
}

static void two_sinks_finish(struct two_sinks *t)
{
	telemetry_finish(t->tm, 10 * SEC, 0, "test");
	telemetry_destroy(t->tm);
	assert_int_equal(fclose(t->json), 0);
	assert_int_equal(fclose(t->console), 0);
}

static void two_sinks_free(struct two_sinks *t)
{
	free(t->json_buf);
	free(t->console_buf);
	free(t->tm);
}

/* The line of buf that holds needle (cut at its end in place); fails when none does. */
static char *line_with(char *buf, const char *needle)
{
	char *p = strstr(buf, needle), *start, *end;

	if (!p)
		fail_msg("no line with %s in: %s", needle, buf);
	for (start = p; start > buf && start[-1] != '\n'; start--)
		;
	end = strchr(p, '\n');
	if (end)
		*end = '\0';
	return start;
}

/* An unknown count is absent from every output: JSON null, no attribute, no metric
 * point, in no window sum; the counts that are known still add up. */
static void test_unknown_counts(void **state)
{
	struct req_span u = unknown_request(1), k = full_request(true), h = full_request(false);
	const struct metrics *m;
	const struct tm_window *w;
	struct two_sinks t;
	char *line;
	(void)state;

	k.id = 2;
	k.status = 200;
	k.err_type = -1;
	h.id = 3;
	h.known = 0; /* not inference: its counts unknown, but not missing */
	h.status = 200;
	h.err_type = -1;
	two_sinks_start(&t);
	telemetry_request(t.tm, &u);
	m = &t.tm->metrics;
	/* times are known, counts not: no token usage, no time per output token or rate */
	assert_int_equal(points_of(m, M_GENAI_TOKENS), 0);
	assert_int_equal(points_of(m, M_GENAI_TPOT), 0);
	assert_int_equal(points_of(m, M_INF_TOKENS_PER_S), 0);
	assert_int_equal(hist_count_of(m, M_GENAI_TTFT), 1);
	assert_int_equal(hist_count_of(m, M_GENAI_DURATION), 1);
	assert_int_equal(hist_count_of(m, M_HTTP_DURATION), 1);
	w = &t.tm->total;
	assert_int_equal(w->requests, 1);
	assert_int_equal(w->input_tokens + w->cached_tokens + w->output_tokens, 0);
	assert_int_equal(w->input_known + w->output_known, 0);
	assert_int_equal(w->input_unknown, 1);
	assert_int_equal(w->output_unknown, 1);
	assert_int_equal(w->tpot_ns.count, 0);
	assert_int_equal(w->ttft_ns.count, 1);

	telemetry_request(t.tm, &k);
	telemetry_request(t.tm, &h);
	assert_int_equal(hist_count_of(m, M_GENAI_TOKENS), 2); /* k's input and output */
	assert_non_null(metrics_find(m, M_GENAI_TOKENS, "gen_ai.operation.name", "text_completion",
				     "gen_ai.provider.name", "llama.cpp", "gen_ai.request.model", "tiny",
				     "gen_ai.token.type", "output", NULL));
	assert_int_equal(hist_count_of(m, M_GENAI_TPOT), 1);
	assert_int_equal(w->requests, 3);
	assert_int_equal(w->input_tokens, 30);
	assert_int_equal(w->cached_tokens, 4);
	assert_int_equal(w->output_tokens, 12);
	assert_int_equal(w->input_unknown, 1); /* h is not inference */
	assert_int_equal(w->output_unknown, 1);
	two_sinks_finish(&t);

	line = line_with(t.json_buf, "\"id\":1,");
	assert_true(json_valid_object(line));
	assert_contains(line, "\"kind\":\"http\",\"attribution\":\"unattributed\",");
	assert_contains(line, "\"ttft_ns\":2000,\"tpot_ns\":null,\"prompt_tokens\":null,"
			"\"cached_tokens\":null,\"output_tokens\":null,");
	assert_null(strstr(line, "gen_ai.usage."));
	assert_contains(line, "\"llmtap.attribution\":\"unattributed\"");
	line = line_with(line + strlen(line) + 1, "\"type\":\"summary\"");
	assert_true(json_valid_object(line));
	assert_contains(line, "\"input_tokens\":30,\"cached_tokens\":4,\"output_tokens\":12,"
			"\"input_tokens_unknown\":1,\"output_tokens_unknown\":1,");
	assert_contains(t.console_buf, "  requests    3 (failed 0), tokens in 30 (cached 4), out 12 "
			"(unknown for 1), context shifts 0\n");
	two_sinks_free(&t);

	/* nothing known at all: the sums are unknown, not 0 */
	two_sinks_start(&t);
	u.first_token_ns = 0;
	telemetry_request(t.tm, &u);
	two_sinks_finish(&t);
	line = line_with(t.json_buf, "\"type\":\"summary\"");
	assert_contains(line, "\"input_tokens\":null,\"cached_tokens\":null,\"output_tokens\":null,"
			"\"input_tokens_unknown\":1,\"output_tokens_unknown\":1,");
	assert_contains(t.console_buf, "tokens in ? (cached ?), out ? (unknown for 1),");
	two_sinks_free(&t);
}

/* A time llmtap did not see is left out (null, "-"), never 0. */
static void test_unseen_times(void **state)
{
	struct req_span r = full_request(true);
	struct two_sinks t;
	char *line;
	(void)state;

	r.status = 200;
	r.err_type = -1;
	r.deferred = false;
	r.enqueue_ns = r.launch_ns = r.first_token_ns = r.final_ns = 0;
	two_sinks_start(&t);
	telemetry_request(t.tm, &r);
	assert_int_equal(points_of(&t.tm->metrics, M_GENAI_TTFT), 0);
	assert_int_equal(points_of(&t.tm->metrics, M_INF_TTFT), 0);
	assert_int_equal(points_of(&t.tm->metrics, M_QUEUE_DURATION), 0);
	assert_int_equal(points_of(&t.tm->metrics, M_GENERATION_DURATION), 0);
	assert_int_equal(t.tm->total.queue_ns.count, 0);
	telemetry_tick(t.tm, SEC, 0);
	two_sinks_finish(&t);
	line = line_with(t.json_buf, "\"type\":\"request\"");
	assert_contains(line, "\"queue_ns\":null,\"ttft_ns\":null,\"tpot_ns\":null,");
	assert_contains(line, "\"children\":[]");
	assert_null(strstr(line, "time_to_first_token"));
	assert_contains(t.console_buf, "ttft p50 - p99 -  tpot p50 -  tokens in 30 out 12  failed 0\n");
	assert_contains(t.console_buf, "  duration    p50 0.000 s  p99 0.000 s;  ttft p50 -  p99 -;  "
			"tpot p50 -\n");
	two_sinks_free(&t);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;

	assert_non_null(f);
	assert_true(getdelim(&buf, &cap, '\0', f) > 0);
	fclose(f);
	return buf;
}

/* Times from now on (the trace file counts from its start). */
static void shift(struct req_span *r, uint64_t by)
{
	uint64_t *t[] = { &r->start_ns, &r->end_ns, &r->enqueue_ns, &r->launch_ns,
			  &r->first_token_ns, &r->final_ns };

	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		if (*t[i])
			*t[i] += by;
}

/* An embedder's generation and a router's proxy copy through every sink: JSON,
 * console, the trace file and the report made from it, and the metrics. */
static void test_generation_and_proxy(void **state)
{
	struct req_span http = full_request(true), gen, proxy = full_request(true);
	struct req_span blind = unknown_request(4);
	char tpath[64], hpath[80], err[256];
	const struct metrics *m;
	const struct tm_window *w;
	struct two_sinks t;
	char *line, *trace, *html;
	struct sink s;
	uint64_t now;
	int fd;
	(void)state;

	http.status = 200;
	http.err_type = -1;
	gen = (struct req_span){
		.id = 2, .kind = REQ_GENERATION, .attribution = REQ_ATTR_ENGINE,
		.known = REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT, .seq = 1, .slot = -1,
		.start_ns = 2000, .end_ns = 12000, .complete = true, .first_token_ns = 5000,
		.final_ns = 12000, .prompt_tokens = 9, .output_tokens = 5, .err_type = -1,
	};
	proxy.id = 3;
	proxy.kind = REQ_PROXY;
	proxy.status = 200;
	proxy.err_type = -1;
	proxy.route = (struct route){ ROUTE_CHAT, "/v1/chat/completions" };
	proxy.slot = -1;
	blind.start_ns += 20000;
	blind.end_ns += 20000;
	blind.enqueue_ns += 20000;
	blind.launch_ns += 20000;
	blind.first_token_ns += 20000;
	blind.final_ns += 20000;
	blind.slot = 0;
	strcpy(tpath, "/tmp/llmtap-test-trace-XXXXXX");
	fd = mkstemp(tpath);
	assert_true(fd >= 0);
	close(fd);
	snprintf(hpath, sizeof(hpath), "%s.html", tpath);

	two_sinks_start(&t);
	assert_int_equal(sink_trace_new(tpath, &s, err, sizeof(err)), 0);
	assert_int_equal(telemetry_add_sink(t.tm, s), 0);
	s.ops->attached(s.self, &t.tm->target);
	now = monotonic_ns();
	shift(&http, now);
	shift(&gen, now);
	shift(&proxy, now);
	shift(&blind, now);
	telemetry_request(t.tm, &http);
	telemetry_request(t.tm, &gen);
	telemetry_request(t.tm, &proxy);
	telemetry_request(t.tm, &blind);

	/* the window: a generation is not an HTTP request, a proxy copy is no request */
	w = &t.tm->total;
	assert_int_equal(w->requests, 2);
	assert_int_equal(w->by_route[ROUTE_COMPLETION], 2);
	assert_int_equal(w->by_route[ROUTE_CHAT], 0);
	assert_int_equal(w->generations, 1);
	assert_int_equal(w->proxied, 1);
	assert_int_equal(w->input_tokens, 30 + 9);
	assert_int_equal(w->output_tokens, 12 + 5);
	assert_int_equal(w->input_known, 2);
	assert_int_equal(w->input_unknown, 1);
	assert_int_equal(w->req_duration_ns.count, 2);
	assert_int_equal(w->ttft_ns.count, 3);
	/* metrics: the generation's gen_ai.* and inference points, none of http.server.*;
	 * nothing of the proxy */
	m = &t.tm->metrics;
	assert_int_equal(hist_count_of(m, M_HTTP_DURATION), 2);
	assert_int_equal(hist_count_of(m, M_GENAI_DURATION), 3);
	assert_int_equal(hist_count_of(m, M_GENAI_TTFT), 3);
	assert_int_equal(hist_count_of(m, M_GENAI_TPOT), 2);
	assert_non_null(metrics_find(m, M_GENAI_TOKENS, "gen_ai.operation.name", "text_completion",
				     "gen_ai.provider.name", "llama.cpp", "gen_ai.request.model", "tiny",
				     "gen_ai.token.type", "output", NULL));
	assert_non_null(metrics_find(m, M_INF_REQUESTS, "model", "tiny", "provider", "llama.cpp",
				     "endpoint", "generation", "status", "none", NULL));
	for (int i = 0; i < m->n_points; i++)
		for (int a = 0; a < m->points[i].n_attrs; a++)
			if (!strcmp(m->points[i].attrs[a].value, "chat") ||
			    !strcmp(m->points[i].attrs[a].value, "/v1/chat/completions"))
				fail_msg("a metric point of the proxy copy: %s",
					 metric_instrument(m->points[i].id)->name);
	two_sinks_finish(&t);

	line = line_with(t.json_buf, "\"id\":2,");
	assert_true(json_valid_object(line));
	assert_contains(line, "\"kind\":\"generation\",\"attribution\":\"engine\","
			"\"name\":\"text_completion tiny\",");
	assert_contains(line, "\"endpoint\":\"generation\",\"stream\":false,\"tasks\":0,\"slot\":-1,"
			"\"seq\":1,\"queued\":false,\"queue_ns\":null,\"ttft_ns\":3000,\"tpot_ns\":1750,"
			"\"prompt_tokens\":9,\"cached_tokens\":0,\"output_tokens\":5,");
	assert_contains(line, "\"attributes\":{\"gen_ai.operation.name\":\"text_completion\","
			"\"gen_ai.provider.name\":\"llama.cpp\",\"gen_ai.usage.input_tokens\":9,"
			"\"gen_ai.usage.output_tokens\":5,\"gen_ai.usage.cache_read.input_tokens\":0,"
			"\"llmtap.attribution\":\"engine\"},");
	line = line_with(line + strlen(line) + 1, "\"id\":3,");
	assert_true(json_valid_object(line));
	assert_contains(line, "\"kind\":\"proxy\",\"attribution\":\"server\","
			"\"name\":\"proxy POST /v1/chat/completions\",");
	line = line_with(line + strlen(line) + 1, "\"type\":\"summary\"");
	assert_contains(line, "\"requests\":2,\"failed_requests\":0,\"requests_by_route\":"
			"{\"completion\":2},\"generations\":1,\"proxied\":1,\"finish_reasons\":"
			"{\"stop\":0,\"length\":0,\"cancelled\":0,\"error\":0,\"unknown\":3},"
			"\"input_tokens\":39,");
	assert_contains(t.console_buf, "  requests    2 (failed 0), generations 1, tokens in 39 "
			"(cached 4), out 17 (unknown for 1), context shifts 0\n");
	assert_contains(t.console_buf, "  proxied     1 requests (each counted by the server it was "
			"passed to)\n");

	/* the trace file: kinds, attribution, a sequence track, no counts llmtap lacks */
	trace = read_file(tpath);
	assert_contains(trace, "\"args\":{\"name\":\"sequence 1\"}");
	assert_contains(trace, "\"name\":\"text_completion tiny\"");
	assert_contains(trace, "\"request\":2,\"kind\":\"generation\",\"attribution\":\"engine\","
			"\"operation\":\"text_completion\",\"status\":0,");
	assert_contains(trace, "\"name\":\"proxy POST /v1/chat/completions\"");
	assert_contains(trace, "\"request\":3,\"kind\":\"proxy\",");
	line = line_with(trace, "\"request\":4,");
	assert_contains(line, "\"kind\":\"http\",\"attribution\":\"unattributed\","
			"\"operation\":\"text_completion\",");
	assert_null(strstr(line, "_tokens"));
	free(trace);

	/* and the report made from it */
	if (report_write(tpath, hpath, err, sizeof(err)))
		fail_msg("report_write: %s", err);
	html = read_file(hpath);
	assert_contains(html, "id=\"sum-requests\">2<");
	assert_contains(html, "id=\"sum-generations\">1<");
	assert_contains(html, "id=\"sum-proxied\">1<");
	assert_contains(html, "id=\"sum-prompt-tokens\">35<");
	assert_contains(html, "id=\"sum-cached-tokens\">4<");
	assert_contains(html, "id=\"sum-output-tokens\">17<");
	assert_contains(html, "id=\"sum-tokens-unknown\" class=\"bad\">1<");
	assert_contains(html, "id=\"ttft-n\">3<");
	assert_contains(html, "id=\"tpot-n\">2<");
	assert_contains(html, "<td class=\"num\">? / ? / ?</td>");
	free(html);
	unlink(hpath);
	unlink(tpath);
	two_sinks_free(&t);
}

/* top's slot table: "-" for a count llmtap does not know, or a slot without a request. */
static void test_top_slots(void **state)
{
	struct telemetry *tm = calloc(1, sizeof(*tm));
	struct tm_gauges g = { .active_requests = 2, .busy_slots = 2, .n_slots = 3 };
	char *buf = NULL, err[128], want[128];
	size_t len = 0;
	struct sink s;
	FILE *f;
	(void)state;

	assert_non_null(tm);
	g.slots[0] = (struct tm_slot){ .slot = 0, .phase = 2, .request_id = 7, .route = "/completion",
				       .known = REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT,
				       .prompt_tokens = 26, .cached_tokens = 4, .output_tokens = 12 };
	g.slots[1] = (struct tm_slot){ .slot = 1, .phase = 1, .request_id = 8, .route = "/completion",
				       .known = 0, .prompt_tokens = 99, .output_tokens = 99 };
	g.slots[2] = (struct tm_slot){ .slot = 2, .route = "", .kv_cells = 30 };
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(sink_top_new(f, &s, err, sizeof(err)), 0);
	telemetry_init(tm, &tiny_target, 0);
	assert_int_equal(telemetry_add_sink(tm, s), 0);
	telemetry_attached(tm);
	telemetry_set_gauges(tm, &g);
	telemetry_tick(tm, SEC, 0);
	telemetry_destroy(tm);
	assert_int_equal(fclose(f), 0);

	snprintf(want, sizeof(want), "%-22s %7s %7s %6s", "/completion", "26", "4", "12");
	assert_contains(buf, want);
	snprintf(want, sizeof(want), "%-22s %7s %7s %6s", "/completion", "-", "-", "-");
	assert_contains(buf, want);
	snprintf(want, sizeof(want), "%5d %-11s %8s  %-22s %7s %7s %6s", 1, "prefill", "8",
		 "/completion", "-", "-", "-");
	assert_contains(buf, want);
	snprintf(want, sizeof(want), "%5d %-11s %8s  %-22s %7s %7s %6s", 2, "idle", "", "", "-", "-",
		 "-");
	assert_contains(buf, want);
	/* no request ended: no latency, and no memory reading, rather than 0 */
	assert_contains(buf, "latency   ttft p50 - p99 -   tpot p50 - p99 -   queue p99 -");
	assert_contains(buf, "target rss ?");
	free(buf);
	free(tm);
}

static void test_console_sink(void **state)
{
	struct telemetry *tm = calloc(1, sizeof(*tm));
	char *buf = NULL;
	size_t len = 0;
	struct sink s;
	struct step st;
	char err[128];
	FILE *f;
	(void)state;

	assert_non_null(tm);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(sink_console_new(f, &s, err, sizeof(err)), 0);
	telemetry_init(tm, &target, 0);
	assert_int_equal(telemetry_add_sink(tm, s), 0);
	telemetry_attached(tm);
	st = mkstep(0, 2 * MS, 1, 1, STEP_GENERATE, 0);
	telemetry_step(tm, &st);
	st = mkstep(0, 4 * MS, 100, 1, STEP_PREFILL, 1);
	telemetry_step(tm, &st);
	telemetry_tick(tm, 2 * SEC, 3);
	telemetry_finish(tm, 4 * SEC, 3, "target exited");
	telemetry_destroy(tm);
	assert_int_equal(fclose(f), 0);

	assert_contains(buf, "tracing PID 4242 (llama-server): llama.cpp in /usr/lib/libllama.so; layers: engine,sampling\n");
	assert_contains(buf, "decode    1.0/s");
	assert_contains(buf, "tokens    50.5/s");
	assert_contains(buf, "batch 1:1 65-512:1  errors 1  lost 3\n");
	assert_contains(buf, "PID 4242 (llama-server), 4.0 s traced, ended: target exited\n");
	assert_contains(buf, "steps       2 (prefill 1, generate 1, mixed 0), failed 1\n");
	assert_contains(buf, "tokens      101 in batches, 2 outputs\n");
	assert_contains(buf, "lost events 3\n");
	free(buf);
	free(tm);
}

static void test_tick_due(void **state)
{
	uint64_t next = 1000;

	(void)state;
	assert_false(tm_tick_due(999, &next, 100));
	assert_int_equal(next, 1000);
	assert_true(tm_tick_due(1000, &next, 100)); /* on time: the next one interval on */
	assert_int_equal(next, 1100);
	assert_true(tm_tick_due(1150, &next, 100)); /* a little late: the cadence holds */
	assert_int_equal(next, 1200);
	assert_true(tm_tick_due(1500, &next, 100)); /* far behind: no burst of catch-up ticks */
	assert_int_equal(next, 1600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tick_due),
		cmocka_unit_test(test_batch_class),
		cmocka_unit_test(test_sinks_called),
		cmocka_unit_test(test_partial_sink),
		cmocka_unit_test(test_intervals),
		cmocka_unit_test(test_lost_counter_reset),
		cmocka_unit_test(test_negative_tokens),
		cmocka_unit_test(test_json_checker),
		cmocka_unit_test(test_json_sink),
		cmocka_unit_test(test_json_empty_session),
		cmocka_unit_test(test_json_request),
		cmocka_unit_test(test_console_sink),
		cmocka_unit_test(test_unknown_counts),
		cmocka_unit_test(test_unseen_times),
		cmocka_unit_test(test_generation_and_proxy),
		cmocka_unit_test(test_top_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
