// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for user/export/prom_text.c and prom_http.c: Prometheus names, the
 * text exposition format, the /metrics server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "export/prom_http.h"
#include "export/prom_text.h"
#include "lib/clock.h"
#include "lib/util.h"
#include "model/metrics.h"
#include "unit.h"

static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* prom_render into a malloc'ed string */
static char *render(const struct metrics *m, const char *const *const_labels)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(prom_render(m, const_labels, f), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static const char *name_of(enum instr_id id)
{
	static char buf[128];

	prom_metric_name(metric_instrument(id), buf, sizeof(buf));
	return buf;
}

static bool valid_metric_name(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
			return false;
	return true;
}

static bool valid_label_name(const char *s)
{
	return valid_metric_name(s) && !strchr(s, ':') && strncmp(s, "__", 2);
}

/* ---- names ---- */

static void test_name_examples(void **state)
{
	static const struct {
		enum instr_id id;
		const char *name;
	} cases[] = {
		{ M_INF_REQUESTS, "llmtap_inference_requests_total" },
		{ M_HTTP_DURATION, "http_server_request_duration_seconds" },
		{ M_PROCESS_MEMORY, "process_memory_usage_bytes" },
		{ M_KV_RATIO, "llmtap_kv_cache_usage_ratio" },
		{ M_CACHE_BYTES, "llmtap_prompt_cache_bytes_total" },
		{ M_GENAI_TTFT, "gen_ai_server_time_to_first_token_seconds" },
		{ M_GENAI_TOKENS, "gen_ai_client_token_usage" },
		{ M_HTTP_ACTIVE, "http_server_active_requests" },
		{ M_INF_TOKENS_PER_S, "llmtap_inference_tokens_per_second" },
		{ M_STEPS, "llmtap_engine_steps_total" },
		{ M_EVENTS_LOST, "llmtap_events_lost_total" },
		{ M_KV_CELLS, "llmtap_kv_cache_cells_used" },
		{ M_KV_BYTES_USED, "llmtap_kv_cache_memory_usage_bytes" },
		{ M_KV_BYTES_CAPACITY, "llmtap_kv_cache_memory_capacity_bytes" },
		{ M_STEP_DURATION, "llmtap_engine_step_duration_seconds" },
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_string_equal(name_of(cases[i].id), cases[i].name);
}

static void test_name_every_instrument(void **state)
{
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
	char names[M_INSTR_MAX][128];
	(void)state;

	for (int id = 0; id < M_INSTR_MAX; id++) {
		const struct instrument *in = metric_instrument(id);

		prom_metric_name(in, names[id], sizeof(names[id]));
		if (!valid_metric_name(names[id]))
			fail_msg("%s -> invalid name \"%s\"", in->name, names[id]);
		if (strstr(names[id], "__"))
			fail_msg("%s -> \"%s\" has a double underscore", in->name, names[id]);
		if (in->kind == INSTR_COUNTER)
			assert_non_null(strstr(names[id], "_total"));
		if (!strcmp(in->unit, "s"))
			assert_non_null(strstr(names[id], "_seconds"));
	}
	/* no two instruments share a name, nor a histogram's series name */
	for (int a = 0; a < M_INSTR_MAX; a++) {
		for (int b = 0; b < M_INSTR_MAX; b++) {
			if (a != b && !strcmp(names[a], names[b]))
				fail_msg("%s and %s are both %s", metric_instrument(a)->name,
					 metric_instrument(b)->name, names[a]);
			if (metric_instrument(a)->kind != INSTR_HISTOGRAM)
				continue;
			for (size_t s = 0; s < ARRAY_SIZE(suffixes); s++) {
				size_t len = strlen(names[a]);

				if (!strncmp(names[b], names[a], len) &&
				    !strcmp(names[b] + len, suffixes[s]))
					fail_msg("%s collides with %s's series", names[b], names[a]);
			}
		}
	}
}

static void test_name_rules(void **state)
{
	static const struct {
		struct instrument in;
		const char *name;
	} cases[] = {
		{ { "a.b-c/d  e", "", "", INSTR_GAUGE, NULL, 0 }, "a_b_c_d_e" },
		{ { "a..b__c_", "{x}", "", INSTR_GAUGE, NULL, 0 }, "a_b_c" },
		{ { "_a:b", "", "", INSTR_GAUGE, NULL, 0 }, "a:b" },
		{ { "9lives", "", "", INSTR_GAUGE, NULL, 0 }, "_9lives" },
		{ { "x.latency", "ms", "", INSTR_HISTOGRAM, NULL, 0 }, "x_latency_milliseconds" },
		{ { "x.mem", "KiBy", "", INSTR_GAUGE, NULL, 0 }, "x_mem_kibibytes" },
		{ { "x.temp", "Cel", "", INSTR_GAUGE, NULL, 0 }, "x_temp_celsius" },
		{ { "x.pressure", "Pa", "", INSTR_GAUGE, NULL, 0 }, "x_pressure_Pa" },
		{ { "x.rate", "{token}/s", "", INSTR_GAUGE, NULL, 0 }, "x_rate_per_second" },
		{ { "x.io", "By/s", "", INSTR_COUNTER, NULL, 0 }, "x_io_bytes_per_second_total" },
		{ { "x.io.bytes_per_second", "By/s", "", INSTR_GAUGE, NULL, 0 },
		  "x_io_bytes_per_second" },
		{ { "x.wait.seconds", "s", "", INSTR_HISTOGRAM, NULL, 0 }, "x_wait_seconds" },
		{ { "x.usage", "1", "", INSTR_GAUGE, NULL, 0 }, "x_usage_ratio" },
		{ { "x.ratio.used", "1", "", INSTR_GAUGE, NULL, 0 }, "x_used_ratio" },
		{ { "x.hits", "1", "", INSTR_COUNTER, NULL, 0 }, "x_hits_total" },
		{ { "x.total.hits", "{hit}", "", INSTR_COUNTER, NULL, 0 }, "x_hits_total" },
		{ { "x.hits_total", "", "", INSTR_COUNTER, NULL, 0 }, "x_hits_total" },
		{ { "x.busy", "%", "", INSTR_GAUGE, NULL, 0 }, "x_busy_percent" },
		{ { "x.y", " s ", "", INSTR_GAUGE, NULL, 0 }, "x_y_seconds" },
	};
	char buf[128], small[8];
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		prom_metric_name(&cases[i].in, buf, sizeof(buf));
		if (strcmp(buf, cases[i].name))
			fail_msg("%s [%s] -> \"%s\", want \"%s\"", cases[i].in.name, cases[i].in.unit,
				 buf, cases[i].name);
	}
	/* truncated, still terminated */
	prom_metric_name(metric_instrument(M_HTTP_DURATION), small, sizeof(small));
	assert_string_equal(small, "http_se");
}

static void test_label_names(void **state)
{
	static const struct {
		const char *key, *name;
	} cases[] = {
		{ "endpoint", "endpoint" },
		{ "gen_ai.token.type", "gen_ai_token_type" },
		{ "http.response.status_code", "http_response_status_code" },
		{ "a..b", "a_b" },
		{ "a:b", "a_b" },
		{ "1st", "key_1st" },
		{ "_x", "key_x" },
		{ "__x", "key_x" },
		{ "caf\xc3\xa9", "caf_" },
	};
	char buf[128];
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		prom_label_name(cases[i].key, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].name);
		assert_true(valid_label_name(buf));
	}
}

/* ---- rendering ---- */

static void test_render_counter_gauge(void **state)
{
	struct metrics *m = new_metrics();
	char want[1024];
	char *out;
	(void)state;

	/* out of name order on purpose: families come out sorted */
	metrics_set(m, M_PROCESS_MEMORY, 1048576, 1, NULL);
	metrics_add(m, M_INF_REQUESTS, 1, 1, "endpoint", "chat", NULL);
	metrics_add(m, M_INF_REQUESTS, 2, 2, "endpoint", "chat", NULL);
	metrics_set(m, M_KV_RATIO, 0.25, 1, NULL);
	out = render(m, NULL);
	snprintf(want, sizeof(want),
		 "# HELP llmtap_inference_requests_total %s\n"
		 "# TYPE llmtap_inference_requests_total counter\n"
		 "llmtap_inference_requests_total{endpoint=\"chat\"} 3\n"
		 "# HELP llmtap_kv_cache_usage_ratio %s\n"
		 "# TYPE llmtap_kv_cache_usage_ratio gauge\n"
		 "llmtap_kv_cache_usage_ratio 0.25\n"
		 "# HELP process_memory_usage_bytes %s\n"
		 "# TYPE process_memory_usage_bytes gauge\n"
		 "process_memory_usage_bytes 1048576\n",
		 metric_instrument(M_INF_REQUESTS)->description,
		 metric_instrument(M_KV_RATIO)->description,
		 metric_instrument(M_PROCESS_MEMORY)->description);
	assert_string_equal(out, want);
	free(out);

	/* nothing recorded: nothing written */
	memset(m, 0, sizeof(*m));
	out = render(m, NULL);
	assert_string_equal(out, "");
	free(out);
	free(m);
}

static void test_render_histogram(void **state)
{
	struct metrics *m = new_metrics();
	char *out;
	(void)state;

	metrics_record(m, M_HTTP_DURATION, 0.003, 1, "http.request.method", "GET", NULL);
	metrics_record(m, M_HTTP_DURATION, 0.005, 2, "http.request.method", "GET", NULL);
	metrics_record(m, M_HTTP_DURATION, 0.2, 3, "http.request.method", "GET", NULL);
	metrics_record(m, M_HTTP_DURATION, 20, 4, "http.request.method", "GET", NULL);
	out = render(m, NULL);

	assert_int_equal(count_of(out, "# HELP http_server_request_duration_seconds "), 1);
	assert_contains(out, "# TYPE http_server_request_duration_seconds histogram\n");
#define B(le, n) "http_server_request_duration_seconds_bucket{http_request_method=\"GET\",le=\"" \
		 le "\"} " #n "\n"
	assert_contains(out, B("0.005", 2) B("0.01", 2) B("0.025", 2) B("0.05", 2) B("0.075", 2)
			     B("0.1", 2) B("0.25", 3) B("0.5", 3) B("0.75", 3) B("1", 3)
			     B("2.5", 3) B("5", 3) B("7.5", 3) B("10", 3) B("+Inf", 4)
			     "http_server_request_duration_seconds_sum{http_request_method=\"GET\"} 20.208\n"
			     "http_server_request_duration_seconds_count{http_request_method=\"GET\"} 4\n");
#undef B
	/* one line per bound, plus +Inf, _sum and _count, plus HELP and TYPE */
	assert_int_equal(count_of(out, "\n"), 14 + 1 + 2 + 2);
	free(out);

	/* bounds print short, and the largest without an exponent */
	metrics_record(m, M_GENAI_TOKENS, 100, 5, NULL);
	metrics_record(m, M_STEP_DURATION, 0.0003, 5, NULL);
	out = render(m, NULL);
	assert_contains(out, "gen_ai_client_token_usage_bucket{le=\"67108864\"} 1\n");
	assert_contains(out, "gen_ai_client_token_usage_bucket{le=\"64\"} 0\n");
	assert_contains(out, "gen_ai_client_token_usage_sum 100\n");
	assert_contains(out, "llmtap_engine_step_duration_seconds_bucket{le=\"0.0001\"} 0\n");
	assert_contains(out, "llmtap_engine_step_duration_seconds_bucket{le=\"0.0005\"} 1\n");
	assert_contains(out, "llmtap_engine_step_duration_seconds_sum 0.0003\n");
	free(out);
	free(m);
}

static void test_render_numbers(void **state)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{ 0, "0" },
		{ -0.5, "-0.5" },
		{ 0.1, "0.1" },
		{ 1.0 / 3, "0.3333333333333333" },
		{ 123456789, "123456789" },
		{ 1e21, "1e+21" },
		{ 1e-7, "1e-07" },
		/* NaN and infinities never get in: metrics_set rejects them (below) */
	};
	struct metrics *m = new_metrics();
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char want[128], *out;

		metrics_set(m, M_SLOTS_BUSY, cases[i].v, 1, NULL);
		out = render(m, NULL);
		snprintf(want, sizeof(want), "\nllmtap_slots_busy %s\n", cases[i].text);
		assert_contains(out, want);
		if (isfinite(cases[i].v))
			assert_true(strtod(strstr(out, want) + strlen("\nllmtap_slots_busy "), NULL) ==
				    cases[i].v);
		free(out);
	}
	/* a non-finite value leaves the last finite one in place */
	metrics_set(m, M_SLOTS_BUSY, NAN, 1, NULL);
	metrics_set(m, M_SLOTS_BUSY, INFINITY, 1, NULL);
	{
		char *out = render(m, NULL);

		assert_contains(out, "\nllmtap_slots_busy 1e-07\n");
		free(out);
	}
	free(m);
}

static void test_render_grouping(void **state)
{
	struct metrics *m = new_metrics();
	char *out;
	(void)state;

	metrics_add(m, M_STEPS, 1, 1, "llmtap.step.op", "decode", NULL);
	metrics_set(m, M_SLOTS_BUSY, 2, 1, NULL);
	metrics_add(m, M_EVENTS_LOST, 4, 1, NULL);
	metrics_add(m, M_STEPS, 5, 1, "llmtap.step.op", "encode", NULL);
	metrics_record(m, M_HTTP_DURATION, 1, 1, "http.request.method", "GET", NULL);
	metrics_add(m, M_STEPS, 1, 1, "llmtap.step.op", "decode", NULL);
	metrics_record(m, M_HTTP_DURATION, 1, 1, "http.request.method", "POST", NULL);
	out = render(m, NULL);

	assert_int_equal(count_of(out, "# HELP llmtap_engine_steps_total "), 1);
	assert_int_equal(count_of(out, "# TYPE llmtap_engine_steps_total counter\n"), 1);
	assert_contains(out, "# TYPE llmtap_engine_steps_total counter\n"
			     "llmtap_engine_steps_total{llmtap_step_op=\"decode\"} 2\n"
			     "llmtap_engine_steps_total{llmtap_step_op=\"encode\"} 5\n");
	assert_int_equal(count_of(out, "# TYPE http_server_request_duration_seconds histogram\n"), 1);
	assert_int_equal(count_of(out, "http_server_request_duration_seconds_count{"), 2);
	assert_contains(out, "llmtap_events_lost_total 4\n");
	assert_int_equal(count_of(out, "# HELP "), 4);
	assert_int_equal(count_of(out, "# TYPE "), 4);
	free(out);
	free(m);
}

static void test_render_escaping(void **state)
{
	struct metrics *m = new_metrics();
	char *out;
	(void)state;

	metrics_add(m, M_CACHE_OPS, 1, 1, "llmtap.cache.operation", "a\"b\\c\nd", NULL);
	out = render(m, NULL);
	assert_contains(out,
			"llmtap_prompt_cache_operations_total{llmtap_cache_operation=\"a\\\"b\\\\c\\nd\"} 1\n");
	free(out);
	free(m);
}

static void test_render_const_labels(void **state)
{
	static const char *const consts[] = { "job", "llmtap", "service.instance.id", "host:1",
					      "skipped", NULL, NULL };
	struct metrics *m = new_metrics();
	int series = 0;
	char *out, *line, *save;
	(void)state;

	metrics_add(m, M_INF_REQUESTS, 1, 1, "endpoint", "chat", NULL);
	metrics_set(m, M_HTTP_ACTIVE, 1, 1, NULL);
	metrics_record(m, M_GENAI_TTFT, 0.05, 1, "gen_ai.operation.name", "chat", NULL);
	out = render(m, consts);

	/* sorted by label name, le last */
	assert_contains(out, "llmtap_inference_requests_total{endpoint=\"chat\",job=\"llmtap\","
			     "service_instance_id=\"host:1\"} 1\n");
	assert_contains(out, "http_server_active_requests{job=\"llmtap\","
			     "service_instance_id=\"host:1\"} 1\n");
	assert_contains(out, "gen_ai_server_time_to_first_token_seconds_bucket{"
			     "gen_ai_operation_name=\"chat\",job=\"llmtap\","
			     "service_instance_id=\"host:1\",le=\"0.06\"} 1\n");
	assert_null(strstr(out, "skipped"));
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		series++;
		if (!strstr(line, "job=\"llmtap\"") || !strstr(line, "service_instance_id=\"host:1\""))
			fail_msg("no constant labels: %s", line);
	}
	assert_int_equal(series, 1 + 1 + 17 + 2);
	free(out);
	free(m);
}

static void test_render_label_collision(void **state)
{
	struct metrics *m = new_metrics();
	char *out;
	(void)state;

	/* two keys that sanitise alike: one label, values joined by ';' in key order */
	metrics_add(m, M_CACHE_OPS, 1, 1, "x_y", "second", "x.y", "first", NULL);
	out = render(m, NULL);
	assert_contains(out, "llmtap_prompt_cache_operations_total{x_y=\"first;second\"} 1\n");
	free(out);
	free(m);
}

static void test_render_errors(void **state)
{
	const char *many[2 * 17 + 1];
	struct metrics *m = new_metrics();
	FILE *f;
	(void)state;

	assert_int_equal(prom_render(NULL, NULL, stdout), -EINVAL);
	assert_int_equal(prom_render(m, NULL, NULL), -EINVAL);
	for (int i = 0; i < 2 * 17; i++)
		many[i] = "k";
	many[2 * 17] = NULL;
	assert_int_equal(prom_render(m, many, stdout), -EINVAL);

	/* a failed write is reported */
	metrics_add(m, M_INF_REQUESTS, 1, 1, NULL);
	f = fopen("/dev/full", "w");
	if (f) {
		assert_int_equal(prom_render(m, NULL, f), -ENOSPC);
		fclose(f);
	}
	free(m);
}

/* Every line is a comment or "name[{labels}] value" of the family its TYPE line declared. */
static void check_exposition(char *text)
{
	char family[128] = "", type[16] = "", *line, *save;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[160], *end;
		size_t n = strcspn(line, "{ ");

		if (!strncmp(line, "# TYPE ", 7)) {
			assert_int_equal(sscanf(line, "# TYPE %127s %15s", family, type), 2);
			assert_true(valid_metric_name(family));
			continue;
		}
		if (line[0] == '#')
			continue;
		assert_true(n < sizeof(name));
		snprintf(name, sizeof(name), "%.*s", (int)n, line);
		assert_true(valid_metric_name(name));
		if (strcmp(type, "histogram")) {
			assert_string_equal(name, family);
		} else if (strncmp(name, family, strlen(family)) ||
			   (strcmp(name + strlen(family), "_bucket") &&
			    strcmp(name + strlen(family), "_sum") &&
			    strcmp(name + strlen(family), "_count"))) {
			fail_msg("%s in family %s", name, family);
		}
		end = strrchr(line, ' ');
		assert_non_null(end);
		if (strcmp(end + 1, "NaN") && strcmp(end + 1, "+Inf") && strcmp(end + 1, "-Inf")) {
			char *stop;

			strtod(end + 1, &stop);
			if (*stop || stop == end + 1)
				fail_msg("bad value in %s", line);
		}
	}
}

static void test_render_every_instrument(void **state)
{
	struct metrics *m = new_metrics();
	char *out;
	(void)state;

	for (int id = 0; id < M_INSTR_MAX; id++) {
		metrics_add(m, id, 1, 1, "service.name", "x", NULL);
		metrics_set(m, id, 1, 1, "service.name", "x", NULL);
		metrics_record(m, id, 1, 1, "service.name", "x", NULL);
	}
	assert_int_equal(m->n_points, M_INSTR_MAX);
	out = render(m, NULL);
	assert_int_equal(count_of(out, "# TYPE "), M_INSTR_MAX);
	check_exposition(out);
	free(out);
	free(m);
}

/* ---- the server ---- */

/* A server on a free high port of 127.0.0.1 (or addr_fmt with the port). */
static struct prom_server *start_on_free_port(const char *addr_fmt, int *port)
{
	char addr[64], err[256];

	for (int tries = 0; tries < 50; tries++) {
		struct prom_server *s;

		*port = 20000 + rand() % 40000;
		snprintf(addr, sizeof(addr), addr_fmt, *port);
		s = prom_server_start(addr, err, sizeof(err));
		if (s)
			return s;
		if (!strstr(err, "already in use"))
			fail_msg("%s: %s", addr, err);
	}
	fail_msg("no free port");
	return NULL;
}

static int connect_to(int family, int port)
{
	struct sockaddr_storage ss = { 0 };
	struct timeval tv = { .tv_sec = 10 };
	socklen_t len;
	int fd;

	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	return fd;
}

/* Everything until EOF, malloc'ed. */
static char *read_all(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	for (;;) {
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	assert_int_equal(n, 0); /* EOF, not a timeout or a reset */
	buf[len] = '\0';
	return buf;
}

static char *http(int family, int port, const char *request)
{
	int fd = connect_to(family, port);
	char *reply;

	assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
	reply = read_all(fd);
	close(fd);
	return reply;
}

static const char *body_of(const char *reply)
{
	const char *p = strstr(reply, "\r\n\r\n");

	assert_non_null(p);
	return p + 4;
}

static void assert_content_length(const char *reply)
{
	const char *h = strstr(reply, "\r\nContent-Length: ");

	assert_non_null(h);
	assert_int_equal(strtoul(h + 18, NULL, 10), strlen(body_of(reply)));
}

static void test_server_routes(void **state)
{
	struct metrics *m = new_metrics();
	struct prom_server *s;
	char *reply;
	int port;
	(void)state;

	s = start_on_free_port("127.0.0.1:%d", &port);

	/* before the first snapshot: a valid, empty exposition */
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_contains(reply, "HTTP/1.1 200 OK\r\n");
	assert_string_equal(body_of(reply), "");
	free(reply);

	metrics_add(m, M_INF_REQUESTS, 7, 1, "endpoint", "chat", NULL);
	metrics_record(m, M_HTTP_DURATION, 0.2, 1, NULL);
	prom_server_publish(s, m);
	memset(m, 0, sizeof(*m)); /* the server has its own copy */

	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	assert_contains(reply, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
	assert_contains(reply, "\r\nConnection: close\r\n");
	assert_content_length(reply);
	assert_contains(body_of(reply), "llmtap_inference_requests_total{endpoint=\"chat\"} 7\n");
	assert_contains(body_of(reply), "http_server_request_duration_seconds_bucket{le=\"0.25\"} 1\n");
	free(reply);

	/* a query string and an HTTP/1.0 client are fine */
	reply = http(AF_INET, port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	free(reply);

	/* HEAD: the headers alone */
	reply = http(AF_INET, port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	assert_string_equal(body_of(reply), "");
	free(reply);

	reply = http(AF_INET, port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 404 Not Found\r\n", 24), 0);
	assert_content_length(reply);
	free(reply);

	reply = http(AF_INET, port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 404 Not Found\r\n", 24), 0);
	free(reply);

	reply = http(AF_INET, port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 405 Method Not Allowed\r\n", 33), 0);
	assert_contains(reply, "\r\nAllow: GET, HEAD\r\n");
	free(reply);

	reply = http(AF_INET, port, "nonsense\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 400 Bad Request\r\n", 26), 0);
	free(reply);

	/* a second snapshot replaces the first */
	metrics_add(m, M_EVENTS_LOST, 3, 1, NULL);
	prom_server_publish(s, m);
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_contains(body_of(reply), "llmtap_events_lost_total 3\n");
	assert_null(strstr(reply, "llmtap_inference_requests_total"));
	free(reply);

	/* NULL: no points */
	prom_server_publish(s, NULL);
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_string_equal(body_of(reply), "");
	free(reply);

	prom_server_stop(s);
	prom_server_stop(NULL);
	free(m);
}

static void test_server_big_snapshot(void **state)
{
	struct metrics *m = new_metrics();
	struct prom_server *s;
	char value[32], *reply, *want;
	int port;
	(void)state;

	/* every point taken, a body of some hundreds of kilobytes */
	for (int i = 0; m->n_points < METRIC_MAX_POINTS; i++) {
		snprintf(value, sizeof(value), "v%d", i);
		metrics_record(m, M_GENAI_TTFT, 0.01 * i, 1, "a", value, "b", "some value", NULL);
	}
	want = render(m, NULL);
	s = start_on_free_port("127.0.0.1:%d", &port);
	prom_server_publish(s, m);
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(strlen(want) > 200000);
	assert_string_equal(body_of(reply), want);
	free(reply);
	free(want);
	prom_server_stop(s);
	free(m);
}

static void test_server_oversized_request(void **state)
{
	struct prom_server *s;
	char *request, *reply;
	int port;
	(void)state;

	request = malloc(20000);
	assert_non_null(request);
	memset(request, 'a', 19999);
	request[19999] = '\0';
	memcpy(request, "GET /metrics HTTP/1.1\r\nX: ", 26);
	s = start_on_free_port("127.0.0.1:%d", &port);
	reply = http(AF_INET, port, request);
	assert_int_equal(strncmp(reply, "HTTP/1.1 431 ", 13), 0);
	free(reply);
	free(request);
	prom_server_stop(s);
}

static double elapsed_s(uint64_t t0_ns)
{
	return (double)(monotonic_ns() - t0_ns) / 1e9;
}

/* Slowloris: idle and byte-a-second clients do not delay a scrape. */
static void test_server_slowloris(void **state)
{
	struct metrics *m = new_metrics();
	int idle[40], slow[4], port;
	struct prom_server *s;
	uint64_t t0;
	char *reply;
	double t;
	(void)state;

	s = start_on_free_port("127.0.0.1:%d", &port);
	metrics_add(m, M_INF_REQUESTS, 3, 1, "endpoint", "chat", NULL);
	prom_server_publish(s, m);
	for (size_t i = 0; i < ARRAY_SIZE(idle); i++)
		idle[i] = connect_to(AF_INET, port); /* more than the server keeps */
	for (size_t i = 0; i < ARRAY_SIZE(slow); i++) {
		slow[i] = connect_to(AF_INET, port);
		assert_int_equal(send(slow[i], "GET /met", 8, 0), 8);
	}
	usleep(200000);
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < ARRAY_SIZE(slow); i++)
			send(slow[i], "r", 1, MSG_NOSIGNAL); /* a byte at a time, never done */
		t0 = monotonic_ns();
		reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
		t = elapsed_s(t0);
		assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
		assert_contains(body_of(reply), "llmtap_inference_requests_total{endpoint=\"chat\"} 3\n");
		if (t >= 1.0)
			fail_msg("a scrape under slowloris took %.2f s", t);
		free(reply);
	}
	for (size_t i = 0; i < ARRAY_SIZE(idle); i++)
		close(idle[i]);
	for (size_t i = 0; i < ARRAY_SIZE(slow); i++)
		close(slow[i]);
	/* clients that ask and never read their answer hold no slot a scraper needs */
	for (size_t i = 0; i < ARRAY_SIZE(idle); i++) {
		idle[i] = connect_to(AF_INET, port);
		assert_int_equal(send(idle[i], "GET /metrics HTTP/1.1\r\n\r\n", 26, 0), 26);
	}
	usleep(100000);
	t0 = monotonic_ns();
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	t = elapsed_s(t0);
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	if (t >= 1.0)
		fail_msg("a scrape beside clients that never read took %.2f s", t);
	free(reply);
	for (size_t i = 0; i < ARRAY_SIZE(idle); i++)
		close(idle[i]);
	prom_server_stop(s);
	free(m);
}

/* /healthz tells whether the main loop still publishes. */
static void test_server_healthz(void **state)
{
	struct prom_server *s;
	char *reply;
	int port;
	(void)state;

	s = start_on_free_port("127.0.0.1:%d", &port);
	prom_server_set_stale_ms(s, 300);
	prom_server_publish(s, NULL);
	reply = http(AF_INET, port, "GET /healthz HTTP/1.1\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	assert_string_equal(body_of(reply), "ok\n");
	assert_contains(reply, "\r\nContent-Type: text/plain; charset=utf-8\r\n");
	free(reply);
	usleep(600000); /* no publish: the loop is stuck */
	reply = http(AF_INET, port, "GET /healthz HTTP/1.1\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 503 ", 13), 0);
	assert_contains(body_of(reply), "has not made progress");
	free(reply);
	/* /metrics is still served meanwhile */
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	free(reply);
	prom_server_publish(s, NULL);
	reply = http(AF_INET, port, "HEAD /healthz HTTP/1.1\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	free(reply);
	prom_server_stop(s);
}

static void test_server_silent_client(void **state)
{
	struct prom_server *s;
	uint64_t t0;
	char *reply;
	int port, fd;
	double t;
	(void)state;

	s = start_on_free_port("127.0.0.1:%d", &port);

	/* a client that sends nothing is dropped after 2 s, then others are served */
	fd = connect_to(AF_INET, port);
	t0 = monotonic_ns();
	reply = read_all(fd);
	t = elapsed_s(t0);
	assert_string_equal(reply, "");
	assert_true(t > 1.5 && t < 4);
	free(reply);
	close(fd);
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	free(reply);

	/* stopping does not wait for a silent client */
	fd = connect_to(AF_INET, port);
	usleep(100 * 1000);
	t0 = monotonic_ns();
	prom_server_stop(s);
	assert_true(elapsed_s(t0) < 1);
	close(fd);
}

static void test_server_addresses(void **state)
{
	struct prom_server *s, *s2;
	char addr[64], err[256], *reply;
	int port, fd;
	(void)state;

	/* the same port twice: an error that names the address */
	s = start_on_free_port("127.0.0.1:%d", &port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	err[0] = '\0';
	s2 = prom_server_start(addr, err, sizeof(err));
	assert_null(s2);
	assert_contains(err, addr);
	assert_contains(err, "already in use");
	assert_null(strchr(err, '\n'));
	prom_server_stop(s);

	/* the port is free again once stopped */
	s = prom_server_start(addr, err, sizeof(err));
	if (!s)
		fail_msg("%s", err);
	prom_server_stop(s);

	/* ":PORT": every interface, IPv4 included */
	s = start_on_free_port(":%d", &port);
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	free(reply);
	prom_server_stop(s);

	s = start_on_free_port("0.0.0.0:%d", &port);
	reply = http(AF_INET, port, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
	free(reply);
	prom_server_stop(s);

	/* IPv6 loopback, when the host has IPv6 */
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd >= 0) {
		close(fd);
		snprintf(addr, sizeof(addr), "[::1]:%d", 20000 + rand() % 40000);
		s = prom_server_start(addr, err, sizeof(err));
		if (s) {
			reply = http(AF_INET6, atoi(strrchr(addr, ':') + 1),
				     "GET /metrics HTTP/1.1\r\n\r\n");
			assert_int_equal(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17), 0);
			free(reply);
			prom_server_stop(s);
		} else {
			print_message("[::1] skipped: %s\n", err);
		}
	}
}

static void test_server_bad_addresses(void **state)
{
	static const char *const bad[] = {
		"",
		"9464",
		"127.0.0.1",
		"127.0.0.1:",
		"127.0.0.1:0",
		"127.0.0.1:65536",
		"127.0.0.1:99999999999999999999",
		"127.0.0.1:-1",
		"127.0.0.1:94x",
		":http",
		"1.2.3:9464",
		"256.0.0.1:9464",
		"localhost:9464",
		"::1:9464",
		"[::1]",
		"[::1]9464",
		"[::1:9464",
		"[127.0.0.1]:9464",
		"[]:9464",
	};
	char err[256];
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		if (prom_server_start(bad[i], err, sizeof(err)))
			fail_msg("\"%s\" accepted", bad[i]);
		assert_contains(err, "invalid listen address");
		assert_null(strchr(err, '\n'));
		if (bad[i][0]) {
			char quoted[80];

			snprintf(quoted, sizeof(quoted), "\"%s\"", bad[i]);
			assert_contains(err, quoted);
		}
	}
	assert_null(prom_server_start(NULL, err, sizeof(err)));
	assert_null(prom_server_start("nonsense", NULL, 0));
	/* an address no interface has */
	assert_null(prom_server_start("192.0.2.1:9464", err, sizeof(err)));
	assert_contains(err, "192.0.2.1:9464");
}

static void test_render_info(void **state)
{
	static const char *const labels[] = { "service.name", "llama-server", "container.id", "ab\"c",
					      "host.name", NULL, NULL };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	(void)state;

	assert_non_null(f);
	assert_int_equal(prom_render_info(labels, f), 0);
	assert_int_equal(prom_render_info(NULL, f), 0); /* nothing for no labels */
	assert_int_equal(fclose(f), 0);
	assert_string_equal(buf, "# HELP target_info Target metadata\n# TYPE target_info gauge\n"
				 "target_info{container_id=\"ab\\\"c\",service_name=\"llama-server\"} 1\n");
	free(buf);
	assert_int_equal(prom_render_info(labels, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_examples),
		cmocka_unit_test(test_name_every_instrument),
		cmocka_unit_test(test_name_rules),
		cmocka_unit_test(test_label_names),
		cmocka_unit_test(test_render_counter_gauge),
		cmocka_unit_test(test_render_histogram),
		cmocka_unit_test(test_render_numbers),
		cmocka_unit_test(test_render_info),
		cmocka_unit_test(test_render_grouping),
		cmocka_unit_test(test_render_escaping),
		cmocka_unit_test(test_render_const_labels),
		cmocka_unit_test(test_render_label_collision),
		cmocka_unit_test(test_render_errors),
		cmocka_unit_test(test_render_every_instrument),
		cmocka_unit_test(test_server_routes),
		cmocka_unit_test(test_server_big_snapshot),
		cmocka_unit_test(test_server_oversized_request),
		cmocka_unit_test(test_server_silent_client),
		cmocka_unit_test(test_server_slowloris),
		cmocka_unit_test(test_server_healthz),
		cmocka_unit_test(test_server_addresses),
		cmocka_unit_test(test_server_bad_addresses),
	};

	srand((unsigned int)(getpid() ^ time(NULL)));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
