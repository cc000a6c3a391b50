// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/report/report.c: `llmtap report`, a trace file as one HTML page. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "report/report.h"
#include "sink/trace_schema.h"

/* The budget for a busy minute's report; sanitizers slow everything several times. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BIG_TRACE_SECONDS 10.0
#else
#define BIG_TRACE_SECONDS 2.0
#endif

/* the names are trace_schema.h's, the layout sink_trace.c's */
#define K TRACE_KEY
#define S TRACE_STR
#define THREAD(tid, name)                                                                 \
	"{\"ph\":\"M\",\"pid\":7,\"tid\":" #tid ",\"name\":\"thread_name\",\"args\":{\"name\":"   \
	S(name) "}}"
#define HEAD                                                                              \
	"{\"displayTimeUnit\":\"ms\",\"otherData\":{" K(TRACE_PRODUCER) S("llmtap 0.1.0") ","    \
	K(TRACE_START_UNIX_NANO) "1795332002950247540," K(TRACE_LIBRARY)                      \
	S("/opt/llama/libllama.so") "," K(TRACE_MODEL) S("tiny & <b>model</b>")               \
	"},\"traceEvents\":[\n"                                                               \
	"{\"ph\":\"M\",\"pid\":7,\"name\":\"process_name\",\"args\":{\"name\":\"llama-server (PID 7)\"}},\n" \
	THREAD(1, TRACE_TRACK_ENGINE) ",\n" THREAD(2, TRACE_TRACK_HTTP) ",\n"                  \
	THREAD(1000, TRACE_TRACK_SLOT "0") ",\n" THREAD(1001, TRACE_TRACK_SLOT "1")

/* A temporary directory for the traces and reports of every test. */
struct dir {
	char path[64];
	char file[64][128];
	int n;
};

static const char *dir_file(struct dir *d, const char *name)
{
	char path[sizeof(d->file[0])];

	assert_true(d->n < 64);
	snprintf(path, sizeof(path), "%s/%s", d->path, name);
	memcpy(d->file[d->n], path, sizeof(path));
	return d->file[d->n++];
}

static int setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	strcpy(d->path, "/tmp/llmtap-report-XXXXXX");
	if (!mkdtemp(d->path)) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct dir *d = *state;

	for (int i = 0; i < d->n; i++)
		unlink(d->file[i]);
	rmdir(d->path);
	free(d);
	return 0;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("missing \"%s\" in the report", needle);
}

/* Well-formed enough: the doctype first, the end last, every <svg> closed. */
static void assert_page(const char *html)
{
	assert_true(!strncmp(html, "<!DOCTYPE html>\n", 16));
	assert_non_null(strstr(html, "</html>\n"));
	assert_int_equal(count(html, "<svg"), count(html, "</svg>"));
	assert_int_equal(count(html, "<section"), count(html, "</section>"));
	assert_int_equal(count(html, "<table"), count(html, "</table>"));
	assert_true(count(html, "<svg") >= 8);
	/* self-contained: nothing to run, nothing to fetch */
	assert_null(strstr(html, "<script"));
	assert_null(strstr(html, "src="));
	assert_null(strstr(html, "<link"));
	assert_null(strstr(html, "url("));
	assert_null(strstr(html, "@import"));
}

/* The report of a trace given as text; the HTML, to free. */
static char *report_of(struct dir *d, const char *name, const char *trace)
{
	char html_name[64], err[256] = "";
	const char *in = dir_file(d, name), *out;
	int ret;

	snprintf(html_name, sizeof(html_name), "%s.html", name);
	out = dir_file(d, html_name);
	write_text(in, trace);
	ret = report_write(in, out, err, sizeof(err));
	if (ret)
		fail_msg("report_write: %d: %s", ret, err);
	return read_text(out);
}

/* A request as sink_trace.c writes it, launched on its slot at ts_s; its number of events. */
static unsigned request(FILE *f, int tid, unsigned id, const char *name, double ts_s, int status,
			double ttft, double queue, double http, unsigned output, double gen_ms)
{
	double prefill_us = (ttft - queue) * 1e3, gen_us = gen_ms * 1e3, ts = ts_s * 1e6;

	if (queue > 0)
		fprintf(f, ",\n{\"ph\":\"b\",\"pid\":7,\"tid\":%d,\"cat\":" S(TRACE_CAT_QUEUE) ",\"name\":"
			S(TRACE_QUEUED) ",\"id\":%u,\"ts\":%.3f},\n{\"ph\":\"e\",\"pid\":7,\"tid\":%d,"
			"\"cat\":" S(TRACE_CAT_QUEUE) ",\"name\":" S(TRACE_QUEUED) ",\"id\":%u,\"ts\":%.3f}",
			tid, id, ts - queue * 1e3, tid, id, ts);
	fprintf(f, ",\n{\"ph\":\"X\",\"pid\":7,\"tid\":%d,\"cat\":" S(TRACE_CAT_REQUEST)
		",\"name\":\"%s\",\"ts\":%.3f,\"dur\":%.3f,\"args\":{" K(TRACE_ARG_REQUEST) "%u,"
		K(TRACE_ARG_STATUS) "%d," K(TRACE_ARG_STREAM) "%s," K(TRACE_ARG_CLIENT_PORT) "%u,"
		K(TRACE_ARG_PROMPT_TOKENS) "7," K(TRACE_ARG_CACHED_TOKENS) "3,"
		K(TRACE_ARG_OUTPUT_TOKENS) "%u," K(TRACE_ARG_TTFT_MS) "%.3f," K(TRACE_ARG_QUEUE_MS)
		"%.3f," K(TRACE_ARG_HTTP_MS) "%.3f}}", tid, name, ts,
		prefill_us + gen_us, id, status, id % 2 ? "true" : "false", 40000 + id, output, ttft,
		queue, http);
	if (prefill_us > 0)
		fprintf(f, ",\n{\"ph\":\"X\",\"pid\":7,\"tid\":%d,\"cat\":" S(TRACE_CAT_PHASE) ",\"name\":"
			S(TRACE_PREFILL) ",\"ts\":%.3f,\"dur\":%.3f}", tid, ts, prefill_us);
	if (gen_us > 0)
		fprintf(f, ",\n{\"ph\":\"X\",\"pid\":7,\"tid\":%d,\"cat\":" S(TRACE_CAT_PHASE) ",\"name\":"
			S(TRACE_GENERATION) ",\"ts\":%.3f,\"dur\":%.3f}", tid, ts + prefill_us, gen_us);
	return 1 + 2 * (queue > 0) + (prefill_us > 0) + (gen_us > 0);
}

static void instant(FILE *f, int tid, const char *name, double ts_us)
{
	fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"t\",\"pid\":7,\"tid\":%d,\"name\":\"%s\",\"ts\":%.3f,"
		"\"args\":{" K(TRACE_ARG_VALUE) "1}}", tid, name, ts_us);
}

static void step(FILE *f, double ts_s, const char *kind, int n_tokens, int ret)
{
	fprintf(f, ",\n{\"ph\":\"X\",\"pid\":7,\"tid\":1,\"cat\":" S(TRACE_CAT_STEP)
		",\"name\":\"decode\",\"ts\":%.3f,\"dur\":2000.000,\"args\":{" K(TRACE_ARG_KIND) "\"%s\","
		K(TRACE_ARG_N_TOKENS) "%d," K(TRACE_ARG_N_SEQS) "1," K(TRACE_ARG_N_OUTPUTS) "1,"
		K(TRACE_ARG_RET) "%d}},\n"
		"{\"ph\":\"C\",\"pid\":7,\"name\":" S(TRACE_BATCH_TOKENS) ",\"ts\":%.3f,\"args\":{"
		K(TRACE_ARG_TOKENS) "%d}}", ts_s * 1e6, kind, n_tokens, ret, ts_s * 1e6, n_tokens);
}

static void counters(FILE *f, double ts_s, int cells, int active, int queued)
{
	fprintf(f, ",\n{\"ph\":\"C\",\"pid\":7,\"name\":" S(TRACE_KV_CELLS) ",\"ts\":%.3f,\"args\":{"
		K(TRACE_ARG_CELLS) "%d}},\n{\"ph\":\"C\",\"pid\":7,\"name\":" S(TRACE_REQUESTS)
		",\"ts\":%.3f,\"args\":{" K(TRACE_ARG_ACTIVE) "%d," K(TRACE_ARG_QUEUED) "%d}}",
		ts_s * 1e6, cells, ts_s * 1e6, active, queued);
}

/*
 * Five requests on two slots with TTFT 10..50 ms, TPOT 1..5 ms, queue 0..20 ms,
 * the slowest (900 ms) fourth, the fifth named with a <script> and failed by a
 * marker only; a request without a slot; three steps (one failed); counters.
 */
static char *known_trace(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fputs(HEAD, f);
	request(f, 1000, 1, "POST /completion", 0.5, 200, 10, 0, 100, 11, 10);
	request(f, 1001, 2, "POST /completion", 0.6, 200, 20, 5, 200, 11, 20);
	request(f, 1000, 3, "POST /v1/chat/completions", 1.5, 200, 30, 10, 300, 11, 30);
	request(f, 1001, 4, "POST /completion", 1.6, 200, 40, 15, 900, 11, 40);
	request(f, 1000, 5, "POST /<script>alert(1)</script>", 2.5, 200, 50, 20, 400, 11, 50);
	instant(f, 1000, TRACE_FAILED, 2.5e6 + 30e3 + 50e3); /* at the fifth's end */
	request(f, 2, 6, "GET /health", 2.7, 200, 0, 0, 1, 0, 0);
	step(f, 0.51, TRACE_KIND_PREFILL, 7, 0);
	step(f, 0.52, TRACE_KIND_GENERATE, 2, 0);
	step(f, 1.52, TRACE_KIND_MIXED, 9, -3);
	counters(f, 1, 40, 2, 1);
	counters(f, 2, 64, 2, 0);
	counters(f, 3, 12, 0, 0);
	instant(f, 1001, TRACE_CONTEXT_SHIFT, 1.7e6);
	instant(f, 1000, TRACE_CACHE_SAVE, 0.7e6);
	instant(f, 1001, TRACE_CACHE_SAVE, 1.8e6);
	instant(f, 1000, TRACE_CACHE_LOAD, 1.4e6);
	fputs("\n]}\n", f);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void test_summary_numbers(void **state)
{
	char *trace = known_trace(), *html = report_of(*state, "known.json", trace);

	assert_page(html);
	assert_contains(html, "id=\"sum-requests\">6<");
	assert_contains(html, "id=\"sum-ok\">5<");
	assert_contains(html, ">1</span> failed)"); /* the marker failed a 200 */
	assert_contains(html, "id=\"sum-output-tokens\">55<");
	assert_contains(html, "id=\"sum-prompt-tokens\">42<");
	assert_contains(html, "id=\"sum-cached-tokens\">18<");
	assert_contains(html, "id=\"sum-steps\">3<");
	assert_contains(html, "18 batch tokens");
	assert_contains(html, "id=\"sum-context-shifts\" class=\"bad\">1<");
	assert_contains(html, "id=\"sum-cache-saves\">2<");
	assert_contains(html, "id=\"sum-cache-loads\">1<");
	assert_contains(html, "id=\"sum-length\">3.0 s<");
	/* percentiles, nearest rank: TTFT and TPOT of the five inference requests */
	assert_contains(html, "id=\"ttft-n\">5<");
	assert_contains(html, "id=\"ttft-p50\">30.0 ms<");
	assert_contains(html, "id=\"ttft-p90\">50.0 ms<");
	assert_contains(html, "id=\"ttft-p99\">50.0 ms<");
	assert_contains(html, "id=\"tpot-p50\">3.00 ms<"); /* 30 ms of generation / 10 tokens */
	assert_contains(html, "id=\"tpot-max\">5.00 ms<");
	assert_contains(html, "id=\"queue-n\">5<"); /* the /health request had no slot */
	assert_contains(html, "id=\"queue-p50\">10.0 ms<");
	assert_contains(html, "id=\"duration-n\">6<");
	assert_contains(html, "id=\"duration-p50\">200 ms<");
	assert_contains(html, "id=\"duration-p90\">900 ms<");
	/* p50/p90/p99 marked on the charts */
	assert_contains(html, ">p50 30.0 ms</text>");
	assert_contains(html, ">p99 900 ms</text>");
	/* otherData */
	assert_contains(html, "id=\"sum-library\">/opt/llama/libllama.so<");
	assert_contains(html, "id=\"sum-process\">llama-server (PID 7)<");
	assert_contains(html, "recorded 2026-11-22 07:20:02 UTC");
	free(html);
	free(trace);
}

static void test_slowest_first(void **state)
{
	char *trace = known_trace(), *html = report_of(*state, "slow.json", trace);
	const char *table = strstr(html, "<section id=\"slowest\">");
	const char *r1, *r2, *r6;

	assert_non_null(table);
	r1 = strstr(table, "<tr><td class=\"num\">1</td><td class=\"num\">4</td>");
	r2 = strstr(table, "<tr><td class=\"num\">2</td><td class=\"num\">5</td>");
	r6 = strstr(table, "<tr><td class=\"num\">6</td><td class=\"num\">6</td>");
	assert_non_null(r1);
	assert_non_null(r2);
	assert_non_null(r6);
	assert_true(r1 < r2 && r2 < r6);
	assert_contains(r1, "900 ms");
	assert_contains(r2, "200 failed"); /* failed by its marker */
	/* the breakdown: queue, prefill and generation of the slowest */
	assert_contains(r1, "<title>queue 15.0 ms</title>");
	assert_contains(r1, "<title>prefill 25.0 ms</title>");
	assert_contains(r1, "<title>generation 40.0 ms</title>");
	free(html);
	free(trace);
}

static void test_escaping(void **state)
{
	char *trace = known_trace(), *html = report_of(*state, "esc.json", trace);

	assert_null(strstr(html, "<script"));
	assert_null(strstr(html, "<b>model"));
	assert_contains(html, "POST /&lt;script&gt;alert(1)&lt;/script&gt;");
	assert_contains(html, "<title>llmtap report: tiny &amp; &lt;b&gt;model&lt;/b&gt;</title>");
	assert_contains(html, "id=\"sum-model\">tiny &amp; &lt;b&gt;model&lt;/b&gt;<");
	free(html);
	free(trace);
}

/* An idle server: counters only. Every chart still drawn, with "no data". */
static void test_no_requests(void **state)
{
	char *text = NULL, *html;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fputs(HEAD, f);
	counters(f, 1, 0, 0, 0);
	counters(f, 2, 0, 0, 0);
	fputs("\n]}\n", f);
	assert_int_equal(fclose(f), 0);
	html = report_of(*state, "idle.json", text);
	assert_page(html);
	assert_contains(html, "id=\"sum-requests\">0<");
	assert_contains(html, "id=\"ttft-p50\">–<");
	assert_true(count(html, ">no data</text>") >= 5);
	assert_contains(html, "No requests were recorded.");
	free(html);
	free(text);
}

static void expect_error(struct dir *d, const char *name, const char *text, int want,
			 const char *reason)
{
	char err[256] = "";
	const char *in = dir_file(d, name), *out = dir_file(d, "error.html");
	int ret;

	if (text)
		write_text(in, text);
	ret = report_write(in, out, err, sizeof(err));
	if (ret != want)
		fail_msg("%s: got %d (%s), want %d", name, ret, err, want);
	if (!strstr(err, reason) || !strstr(err, in))
		fail_msg("%s: reason \"%s\", want \"%s\" and the file's name", name, err, reason);
	assert_null(strchr(err, '\n'));
	assert_int_equal(access(out, F_OK), -1); /* no report written */
}

static void test_errors(void **state)
{
	struct dir *d = *state;

	expect_error(d, "missing.json", NULL, -ENOENT, "cannot read");
	expect_error(d, "text.json", "this is not JSON\n", -EINVAL, "is not JSON");
	expect_error(d, "empty.json", "", -EINVAL, "is empty");
	expect_error(d, "cut.json", HEAD ",\n{\"ph\":\"C\",\"name\":\"kv ce", -EINVAL, "is not JSON");
	expect_error(d, "tail.json", "{\"traceEvents\":[]} x", -EINVAL, "data after the end");
	expect_error(d, "array.json", "[{\"ph\":\"X\",\"cat\":" S(TRACE_CAT_STEP) ",\"ts\":1,\"dur\":1}]",
		     -EINVAL, "not a trace-event JSON object");
	expect_error(d, "number.json", "42", -EINVAL, "not a trace-event JSON object");
	expect_error(d, "events.json", "{\"traceEvents\":{}}", -EINVAL,
		     "not a trace-event JSON object");
	expect_error(d, "foreign.json",
		     "{\"traceEvents\":[{\"ph\":\"X\",\"cat\":\"v8\",\"name\":\"GC\",\"ts\":1,\"dur\":2},"
		     "{\"ph\":\"C\",\"name\":\"heap\",\"ts\":3,\"args\":{\"bytes\":1}}]}\n",
		     -EINVAL, "has no llmtap events");
	expect_error(d, "meta.json", HEAD "\n]}\n", -EINVAL, "has no llmtap events");
}

static void test_unwritable_output(void **state)
{
	struct dir *d = *state;
	char *trace = known_trace(), err[256] = "";
	const char *in = dir_file(d, "ok.json");

	write_text(in, trace);
	assert_int_equal(report_write(in, "/nonexistent-dir/r.html", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot create /nonexistent-dir/r.html"));
	/* a failed write is reported, and only a regular file is removed after it */
	if (access("/dev/full", W_OK) == 0) {
		assert_int_equal(report_write(in, "/dev/full", err, sizeof(err)), -ENOSPC);
		assert_non_null(strstr(err, "cannot write /dev/full"));
		assert_int_equal(access("/dev/full", F_OK), 0);
	}
	free(trace);
}

/*
 * A busy 60 s recording, over 100k events: 8000 requests on 2 slots (most with
 * a queue wait, prefill and generation), 35000 steps (2 events each), counters.
 */
static void write_big_trace(const char *path, unsigned *n_events)
{
	FILE *f = fopen(path, "w");
	unsigned n = 5;

	assert_non_null(f);
	fputs(HEAD, f);
	for (unsigned i = 0; i < 8000; i++) {
		int tid = 1000 + (int)(i % 2);
		double ts = (double)(i / 2) * 0.015 + 0.01;

		n += request(f, tid, i + 1, i % 3 ? "POST /completion" : "POST /v1/chat/completions",
			     ts, 200, 4 + i % 7, i % 3, 13 + i % 11, 1 + i % 40, 0.2 * (i % 40));
	}
	for (unsigned i = 0; i < 35000; i++, n += 2)
		step(f, (double)i * 0.0017, i % 10 ? TRACE_KIND_GENERATE : TRACE_KIND_PREFILL, 1 + (int)(i % 10), 0);
	for (unsigned i = 1; i <= 60; i++, n += 2)
		counters(f, i, 100 * (int)(i % 20), (int)(i % 3), (int)(i % 5));
	fputs("\n]}\n", f);
	assert_int_equal(fclose(f), 0);
	*n_events = n;
}

static void test_big_trace(void **state)
{
	struct dir *d = *state;
	const char *in = dir_file(d, "big.json"), *out = dir_file(d, "big.html");
	uint64_t t0;
	char err[256] = "", *html, buf[64];
	unsigned n_events;
	double secs;

	write_big_trace(in, &n_events);
	assert_true(n_events >= 100000);
	t0 = monotonic_ns();
	assert_int_equal(report_write(in, out, err, sizeof(err)), 0);
	secs = (double)(monotonic_ns() - t0) / 1e9;
	print_message("      %u events rendered in %.2f s\n", n_events, secs);
	assert_true(secs < BIG_TRACE_SECONDS);
	html = read_text(out);
	assert_page(html);
	assert_contains(html, "id=\"sum-requests\">8000<");
	assert_contains(html, "id=\"sum-steps\">35000<");
	assert_contains(html, "id=\"sum-length\">60.0 s<");
	snprintf(buf, sizeof(buf), "id=\"tpot-n\">%d<", 8000 - 8000 / 40); /* output >= 2 */
	assert_contains(html, buf);
	assert_true(strlen(html) < 2u << 20); /* the page stays small */
	free(html);
}

/* A recording that says it began at an absurd time: no date, no undefined cast. */
static void test_absurd_start_time(void **state)
{
	static const char *const starts[] = { "1e300", "-1e300", "9.3e27", "-9.3e27" };

	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		char *text = NULL, *html, name[32];
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		assert_non_null(f);
		fprintf(f, "{\"otherData\":{" K(TRACE_START_UNIX_NANO) "%s," K(TRACE_MODEL) S("m")
			"},\"traceEvents\":[" THREAD(1, TRACE_TRACK_ENGINE), starts[i]);
		step(f, 0.5, TRACE_KIND_PREFILL, 7, 0);
		fputs("\n]}\n", f);
		assert_int_equal(fclose(f), 0);
		snprintf(name, sizeof(name), "start%zu.json", i);
		html = report_of(*state, name, text);
		assert_page(html);
		assert_null(strstr(html, "· recorded"));
		free(html);
		free(text);
	}
}

/* Token counts near the largest a file may give, over many requests and steps: the
 * totals stop at the largest count instead of wrapping around. */
static void test_token_sums_saturate(void **state)
{
	char *text = NULL, *html, expect[64];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fputs(HEAD, f);
	for (int i = 0; i < 2000; i++) {
		fprintf(f, ",\n{\"ph\":\"X\",\"pid\":7,\"tid\":1000,\"cat\":" S(TRACE_CAT_REQUEST)
			",\"name\":\"POST /completion\",\"ts\":%d,\"dur\":10,\"args\":{"
			K(TRACE_ARG_REQUEST) "%d," K(TRACE_ARG_STATUS) "200," K(TRACE_ARG_PROMPT_TOKENS)
			"8.9e15," K(TRACE_ARG_CACHED_TOKENS) "8.9e15," K(TRACE_ARG_OUTPUT_TOKENS)
			"8.9e15}}", i * 100, i + 1);
		fprintf(f, ",\n{\"ph\":\"X\",\"pid\":7,\"tid\":1,\"cat\":" S(TRACE_CAT_STEP)
			",\"name\":\"decode\",\"ts\":%d,\"dur\":10,\"args\":{" K(TRACE_ARG_KIND)
			"\"%s\"," K(TRACE_ARG_N_TOKENS) "8.9e15}}", i * 100,
			i % 2 ? TRACE_KIND_UNKNOWN : TRACE_KIND_PREFILL);
	}
	fputs("\n]}\n", f);
	assert_int_equal(fclose(f), 0);
	html = report_of(*state, "sums.json", text);
	assert_page(html);
	snprintf(expect, sizeof(expect), "id=\"sum-output-tokens\">%lld<", LLONG_MAX);
	assert_contains(html, expect);
	snprintf(expect, sizeof(expect), "id=\"sum-prompt-tokens\">%lld<", LLONG_MAX);
	assert_contains(html, expect);
	snprintf(expect, sizeof(expect), "%lld batch tokens", LLONG_MAX);
	assert_contains(html, expect);
	free(html);
	free(text);
}

/* Requests far shorter than the counters' interval, which sampled none of them: the
 * chart of requests in flight counts them from their own times. */
static void test_short_requests_in_flight(void **state)
{
	char *text = NULL, *html;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fputs(HEAD, f);
	counters(f, 1, 0, 0, 0);
	/* 40 requests of 10 ms one after another on slot 0 between the samples at 1 and 2 s */
	for (int i = 0; i < 40; i++)
		request(f, 1000, (unsigned)i + 1, "POST /completion", 1.1 + i * 0.02, 200, 5, 0, 10, 3,
			5);
	counters(f, 2, 0, 0, 0);
	/* two at once at 2.5 s, the second queued 5 ms behind the first */
	request(f, 1000, 41, "POST /completion", 2.5, 200, 5, 0, 10, 3, 5);
	request(f, 1001, 42, "POST /completion", 2.505, 200, 10, 5, 15, 3, 5);
	counters(f, 3, 0, 0, 0);
	fputs("\n]}\n", f);
	assert_int_equal(fclose(f), 0);
	html = report_of(*state, "short.json", text);
	assert_page(html);
	assert_contains(html, "<figure id=\"in-flight\" data-most=\"2\" data-most-queued=\"1\">");
	free(html);
	free(text);
}

/* A request event with the args given (as sink_trace.c writes them, without the braces). */
static void request_with(FILE *f, int tid, const char *name, double ts_s, double dur_ms,
			 const char *args)
{
	fprintf(f, ",\n{\"ph\":\"X\",\"pid\":7,\"tid\":%d,\"cat\":" S(TRACE_CAT_REQUEST)
		",\"name\":\"%s\",\"ts\":%.3f,\"dur\":%.3f,\"args\":{%s}}", tid, name, ts_s * 1e6,
		dur_ms * 1e3, args);
}

#define KNOWN_ARGS(id, prompt, cached, output)                                              \
	K(TRACE_ARG_REQUEST) #id "," K(TRACE_ARG_REQ_KIND) S(TRACE_REQ_HTTP) ","           \
	K(TRACE_ARG_ATTRIBUTION) "\"server\"," K(TRACE_ARG_OPERATION) "\"text_completion\"," \
	K(TRACE_ARG_STATUS) "200," K(TRACE_ARG_PROMPT_TOKENS) #prompt ","                     \
	K(TRACE_ARG_CACHED_TOKENS) #cached "," K(TRACE_ARG_OUTPUT_TOKENS) #output ","          \
	K(TRACE_ARG_TTFT_MS) "10," K(TRACE_ARG_QUEUE_MS) "2," K(TRACE_ARG_HTTP_MS) "40"

/*
 * Counts llmtap did not measure are absent from the file: in no sum and said; an
 * embedder's generation is no HTTP request but has latencies; a router's proxy copy
 * is counted apart and nowhere else; a time that is absent is no sample.
 */
static void test_unknown_and_kinds(void **state)
{
	char *text = NULL, *html;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fputs(HEAD "," THREAD(2000, TRACE_TRACK_SEQ "1"), f);
	request_with(f, 1000, "POST /completion", 0.5, 30, KNOWN_ARGS(1, 7, 3, 11));
	/* counts unknown, a token seen */
	request_with(f, 1001, "POST /completion", 0.6, 30,
		     K(TRACE_ARG_REQUEST) "2," K(TRACE_ARG_REQ_KIND) S(TRACE_REQ_HTTP) ","
		     K(TRACE_ARG_ATTRIBUTION) "\"unattributed\"," K(TRACE_ARG_OPERATION) "\"chat\","
		     K(TRACE_ARG_STATUS) "200," K(TRACE_ARG_TTFT_MS) "20," K(TRACE_ARG_QUEUE_MS) "4,"
		     K(TRACE_ARG_HTTP_MS) "50");
	/* the output unknown only, and a null count (as another writer might put it) */
	request_with(f, 1000, "POST /completion", 1.5, 30,
		     K(TRACE_ARG_REQUEST) "3," K(TRACE_ARG_OPERATION) "\"text_completion\","
		     K(TRACE_ARG_STATUS) "200," K(TRACE_ARG_PROMPT_TOKENS) "5,"
		     K(TRACE_ARG_CACHED_TOKENS) "1," K(TRACE_ARG_OUTPUT_TOKENS) "null,"
		     K(TRACE_ARG_TTFT_MS) "30," K(TRACE_ARG_QUEUE_MS) "6," K(TRACE_ARG_HTTP_MS) "60");
	/* not inference, no counts: nothing unknown about it; no slot, no queue */
	request_with(f, 2, "GET /health", 1.6, 1,
		     K(TRACE_ARG_REQUEST) "4," K(TRACE_ARG_STATUS) "200," K(TRACE_ARG_HTTP_MS) "1");
	/* an embedder's generation on its sequence's track */
	request_with(f, 2000, "text_completion tiny", 2.0, 100,
		     K(TRACE_ARG_REQUEST) "5," K(TRACE_ARG_REQ_KIND) S(TRACE_REQ_GENERATION) ","
		     K(TRACE_ARG_ATTRIBUTION) "\"engine\"," K(TRACE_ARG_OPERATION)
		     "\"text_completion\"," K(TRACE_ARG_STATUS) "0," K(TRACE_ARG_PROMPT_TOKENS) "9,"
		     K(TRACE_ARG_CACHED_TOKENS) "0," K(TRACE_ARG_OUTPUT_TOKENS) "4,"
		     K(TRACE_ARG_TTFT_MS) "40," K(TRACE_ARG_FINISH) "\"stop\"," K(TRACE_ARG_HTTP_MS) "100");
	/* a router's copies: counted apart, their counts in no sum, failed or not */
	request_with(f, 2, "proxy POST /completion", 2.5, 300,
		     K(TRACE_ARG_REQUEST) "6," K(TRACE_ARG_REQ_KIND) S(TRACE_REQ_PROXY) ","
		     K(TRACE_ARG_STATUS) "500," K(TRACE_ARG_PROMPT_TOKENS) "1000,"
		     K(TRACE_ARG_CACHED_TOKENS) "1000," K(TRACE_ARG_OUTPUT_TOKENS) "1000,"
		     K(TRACE_ARG_TTFT_MS) "900," K(TRACE_ARG_HTTP_MS) "300");
	request_with(f, 2, "proxy POST /completion", 2.6, 300,
		     K(TRACE_ARG_REQUEST) "7," K(TRACE_ARG_REQ_KIND) S(TRACE_REQ_PROXY) ","
		     K(TRACE_ARG_STATUS) "200," K(TRACE_ARG_HTTP_MS) "300");
	step(f, 0.51, TRACE_KIND_PREFILL, 7, 0);
	fputs("\n]}\n", f);
	assert_int_equal(fclose(f), 0);
	html = report_of(*state, "kinds.json", text);
	assert_page(html);
	assert_contains(html, "id=\"sum-requests\">4<");
	assert_contains(html, "id=\"sum-ok\">4<");
	assert_contains(html, "id=\"sum-generations\">1<");
	assert_contains(html, "id=\"sum-proxied\">2<");
	/* prompt: requests 1, 3 and the generation; output: 1 and the generation */
	assert_contains(html, "id=\"sum-prompt-tokens\">21<");
	assert_contains(html, "id=\"sum-cached-tokens\">4<");
	assert_contains(html, "id=\"sum-output-tokens\">15<");
	assert_contains(html, "id=\"sum-tokens-unknown\" class=\"bad\">2<");
	/* why they ended, where told: the generation's */
	assert_contains(html, "stop <span id=\"sum-finish-stop\">1</span> · length "
			      "<span id=\"sum-finish-length\">0</span>");
	/* TTFT of the four with one (the proxies' is the child's); TPOT needs an output count;
	 * the queue wait only where the request reached a slot and its wait was measured */
	assert_contains(html, "id=\"ttft-n\">4<");
	assert_contains(html, "id=\"ttft-max\">40.0 ms<");
	assert_contains(html, "id=\"queue-n\">3<");
	assert_contains(html, "id=\"queue-max\">6.00 ms<");
	assert_contains(html, "id=\"duration-n\">5<");
	assert_contains(html, "id=\"duration-max\">100 ms<");
	/* the slowest table: unknown counts as "?", a request without counts "–" */
	assert_contains(html, "<td class=\"num\">? / ? / ?</td>");
	assert_contains(html, "<td class=\"num\">5 / 1 / ?</td>");
	assert_contains(html, "<td class=\"num\">– / – / –</td>");
	assert_contains(html, ">sequence 1</td>");
	assert_null(strstr(html, "proxy POST"));
	free(html);
	free(text);

	/* every count unknown: the sums say so instead of 0 */
	text = NULL;
	f = open_memstream(&text, &len);
	assert_non_null(f);
	fputs(HEAD, f);
	request_with(f, 1000, "POST /completion", 0.5, 30,
		     K(TRACE_ARG_REQUEST) "1," K(TRACE_ARG_OPERATION) "\"text_completion\","
		     K(TRACE_ARG_STATUS) "200," K(TRACE_ARG_HTTP_MS) "40");
	fputs("\n]}\n", f);
	assert_int_equal(fclose(f), 0);
	html = report_of(*state, "blind.json", text);
	assert_contains(html, "id=\"sum-prompt-tokens\">unknown<");
	assert_contains(html, "id=\"sum-cached-tokens\">unknown<");
	assert_contains(html, "id=\"sum-output-tokens\">unknown<");
	assert_contains(html, "id=\"sum-tokens-unknown\" class=\"bad\">1<");
	assert_contains(html, "id=\"ttft-n\">0<");
	assert_null(strstr(html, "sum-finish")); /* none told: no row */
	assert_contains(html, "id=\"queue-n\">0<");
	free(html);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_summary_numbers),
		cmocka_unit_test(test_slowest_first),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_no_requests),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_unwritable_output),
		cmocka_unit_test(test_big_trace),
		cmocka_unit_test(test_absurd_start_time),
		cmocka_unit_test(test_token_sums_saturate),
		cmocka_unit_test(test_short_requests_in_flight),
		cmocka_unit_test(test_unknown_and_kinds),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
