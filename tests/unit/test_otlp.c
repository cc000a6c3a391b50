// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for the OTLP modules: the OTEL_* contract, the protobuf encoder, gzip, Retry-After. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "export/otlp_config.h"
#include "export/otlp_encode.h"
#include "export/otlp_export.h"
#include "lib/util.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

/* ---- a fake environment ---- */

static const char *const *fake_env;

static const char *fake_getenv(const char *name)
{
	for (int i = 0; fake_env && fake_env[i]; i += 2)
		if (!strcmp(fake_env[i], name))
			return fake_env[i + 1];
	return NULL;
}

static int load(const char *const *env, const struct otlp_cli *cli, struct otlp_config *c,
		char *err)
{
	fake_env = env;
	return otlp_config_load(c, cli, fake_getenv, err, 256);
}

static void test_config_off_by_default(void **state)
{
	static const char *const env[] = { "OTEL_SERVICE_NAME", "x", NULL };
	struct otlp_config c;
	char err[256];

	(void)state;
	assert_int_equal(load(env, NULL, &c, err), 0);
	assert_false(c.enabled);
}

static void test_config_endpoint_and_defaults(void **state)
{
	static const char *const env[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318", NULL };
	struct otlp_config c;
	char err[256];

	(void)state;
	assert_int_equal(load(env, NULL, &c, err), 0);
	assert_true(c.enabled);
	assert_string_equal(c.signal[OTLP_TRACES].url, "http://col:4318/v1/traces");
	assert_string_equal(c.signal[OTLP_METRICS].url, "http://col:4318/v1/metrics");
	assert_int_equal(c.signal[OTLP_TRACES].timeout_ms, 10000);
	assert_false(c.signal[OTLP_TRACES].gzip);
	assert_int_equal(c.metric_interval_ms, 60000);
	assert_int_equal(c.max_queue_size, 2048);
	assert_int_equal(c.max_export_batch, 512);
	assert_int_equal(c.schedule_delay_ms, 5000);
	assert_int_equal(c.sampler, OTLP_SAMPLE_ALWAYS_ON);
	assert_false(c.delta);
}

static void test_config_signal_overrides(void **state)
{
	static const char *const env[] = {
		"OTEL_EXPORTER_OTLP_ENDPOINT", "https://col:4318/base/",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/custom",
		"OTEL_EXPORTER_OTLP_HEADERS", "a=1, b = two%20words ,c=%3D",
		"OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=metrics",
		"OTEL_EXPORTER_OTLP_TIMEOUT", "2500",
		"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700",
		"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip",
		"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none",
		"OTEL_METRIC_EXPORT_INTERVAL", "1500",
		"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta",
		"OTEL_TRACES_SAMPLER", "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG", "0.25",
		"OTEL_BSP_MAX_QUEUE_SIZE", "10",
		"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50",
		"OTEL_BSP_SCHEDULE_DELAY", "100",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf",
		NULL,
	};
	const struct otlp_signal_config *t, *m;
	struct otlp_config c;
	char err[256];

	(void)state;
	assert_int_equal(load(env, NULL, &c, err), 0);
	t = &c.signal[OTLP_TRACES];
	m = &c.signal[OTLP_METRICS];
	assert_string_equal(t->url, "http://traces:9999/custom"); /* used as it is */
	assert_string_equal(m->url, "https://col:4318/base/v1/metrics");
	assert_int_equal(t->n_headers, 3);
	assert_string_equal(t->headers[1].key, "b");
	assert_string_equal(t->headers[1].value, "two words");
	assert_string_equal(t->headers[2].value, "=");
	assert_string_equal(t->headers[0].value, "1");
	assert_string_equal(m->headers[0].value, "metrics"); /* the signal's replaces */
	assert_int_equal(t->timeout_ms, 2500);
	assert_int_equal(m->timeout_ms, 700);
	assert_false(t->gzip);
	assert_true(m->gzip);
	assert_int_equal(c.metric_interval_ms, 1500);
	assert_true(c.delta);
	assert_int_equal(c.sampler, OTLP_SAMPLE_RATIO);
	assert_true(c.sampler_ratio == 0.25);
	assert_int_equal(c.max_queue_size, 10);
	assert_int_equal(c.max_export_batch, 10); /* never more than the queue */
	assert_int_equal(c.schedule_delay_ms, 100);
}

static void test_config_cli_wins(void **state)
{
	static const char *const env[] = {
		"OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318",
		"OTEL_EXPORTER_OTLP_HEADERS", "k=env",
		"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip",
		"OTEL_TRACES_SAMPLER", "always_off",
		"OTEL_SDK_DISABLED", "true",
		NULL,
	};
	struct otlp_cli cli = { .endpoint = "http://cli:1234", .headers = { "k=cli" }, .n_headers = 1,
				.compression = "none", .sampler = "traceidratio=0.5",
				.timeout_ms = 42, .interval_ms = 3000, .temporality = "cumulative" };
	struct otlp_config c;
	char err[256];

	(void)state;
	assert_int_equal(load(env, &cli, &c, err), 0);
	assert_true(c.enabled); /* a flag asked for it: OTEL_SDK_DISABLED is the environment's */
	assert_string_equal(c.signal[OTLP_TRACES].url, "http://cli:1234/v1/traces");
	assert_string_equal(c.signal[OTLP_TRACES].headers[0].value, "cli");
	assert_false(c.signal[OTLP_METRICS].gzip);
	assert_int_equal(c.sampler, OTLP_SAMPLE_RATIO);
	assert_true(c.sampler_ratio == 0.5);
	assert_int_equal(c.signal[OTLP_METRICS].timeout_ms, 42);
	assert_int_equal(c.metric_interval_ms, 3000);
}

static void test_config_disabled_and_none(void **state)
{
	static const char *const off[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:1",
					   "OTEL_SDK_DISABLED", "TRUE", NULL };
	static const char *const none[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:1",
					    "OTEL_TRACES_EXPORTER", "none", NULL };
	static const char *const empty[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", "", NULL };
	struct otlp_config c;
	char err[256];

	(void)state;
	assert_int_equal(load(off, NULL, &c, err), 0);
	assert_false(c.enabled);
	assert_int_equal(load(none, NULL, &c, err), 0);
	assert_true(c.enabled);
	assert_false(c.signal[OTLP_TRACES].enabled);
	assert_true(c.signal[OTLP_METRICS].enabled);
	assert_int_equal(load(empty, NULL, &c, err), 0); /* empty is unset */
	assert_false(c.enabled);
}

static void test_config_errors(void **state)
{
	static const struct {
		const char *var, *value, *says;
	} cases[] = {
		{ "OTEL_EXPORTER_OTLP_ENDPOINT", "col:4318", "not an http:// or https:// URL" },
		{ "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "not supported" },
		{ "OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon", "unknown protocol" },
		{ "OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "not gzip or none" },
		{ "OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds" },
		{ "OTEL_EXPORTER_OTLP_HEADERS", "novalue", "key=value" },
		{ "OTEL_EXPORTER_OTLP_HEADERS", "k=%zz", "key=value" },
		{ "OTEL_TRACES_SAMPLER", "jaeger_remote", "unknown sampler" },
		{ "OTEL_TRACES_SAMPLER_ARG", "1.5", "from 0 to 1" },
		{ "OTEL_METRIC_EXPORT_INTERVAL", "-1", "positive integer" },
		{ "OTEL_METRICS_EXPORTER", "prometheus", "--prometheus" },
		{ "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes", "cumulative or delta" },
		{ "OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem", "needs its key" },
	};
	struct otlp_config c;
	char err[256];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		/* the case's variable first: the fake environment takes the first match */
		const char *env[] = { cases[i].var, cases[i].value, "OTEL_EXPORTER_OTLP_ENDPOINT",
				      "http://x:1", "OTEL_TRACES_SAMPLER", "traceidratio", NULL };

		err[0] = '\0';
		assert_int_equal(load(env, NULL, &c, err), -EINVAL);
		if (!strstr(err, cases[i].says))
			fail_msg("%s=%s: '%s' does not say '%s'", cases[i].var, cases[i].value, err,
				 cases[i].says);
	}
	{
		struct otlp_cli cli = { .compression = "gzip" };

		assert_int_equal(load(NULL, &cli, &c, err), -EINVAL);
		assert_non_null(strstr(err, "--otlp-endpoint"));
	}
	{
		/* a malformed header line is named, its secret never echoed */
		const char *env[] = { "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
				      "authorization=Bearer%20s3cret,broken%zz",
				      "OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:1", NULL };
		struct otlp_cli cli = { .headers = { "x-api-key" }, .n_headers = 1 };

		assert_int_equal(load(env, NULL, &c, err), -EINVAL);
		assert_non_null(strstr(err, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"));
		assert_null(strstr(err, "s3cret"));
		assert_int_equal(load(env + 2, &cli, &c, err), -EINVAL);
		assert_non_null(strstr(err, "--otlp-header number 1"));
		assert_null(strstr(err, "x-api-key"));
	}
}

/* ---- the encoder ---- */

static struct req_span sample_request(uint64_t id)
{
	struct req_span r = {
		.id = id, .start_ns = 1000, .end_ns = 9000, .method = "POST",
		.path = "/v1/chat/completions", .client = "10.0.0.1", .client_port = 5555,
		.server_port = 8080, .status = 200, .complete = true, .n_tasks = 1, .slot = 1,
		.deferred = true, .enqueue_ns = 1100, .launch_ns = 2000, .first_token_ns = 3000,
		.final_ns = 8000, .cached_tokens = 4, .prompt_tokens = 26, .output_tokens = 12,
		.has_sampling = true, .seed = 7, .top_k = 40, .top_p = 0.95f, .temperature = 0.5f,
		.err_type = -1, .kind = REQ_HTTP, .attribution = REQ_ATTR_SERVER,
		.known = REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT,
	};

	r.route.kind = ROUTE_CHAT;
	r.route.template = "/v1/chat/completions";
	return r;
}

static const Opentelemetry__Proto__Common__V1__AnyValue *
find_attr(Opentelemetry__Proto__Common__V1__KeyValue **kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(kv[i]->key, key))
			return kv[i]->value;
	return NULL;
}

static void test_encode_request_spans(void **state)
{
	struct resource res = { .n = 1 };
	struct otlp_idgen ids = { { 1, 2 } };
	struct otlp_encode_ctx ctx = { &res, "tiny", &ids, 1000000 };
	struct otlp_item items[2] = { { .is_request = true }, { .is_request = false } };
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
	Opentelemetry__Proto__Trace__V1__ScopeSpans *ss;
	Opentelemetry__Proto__Trace__V1__Span *srv, *child;
	uint8_t *buf;
	size_t len;

	(void)state;
	strcpy(res.attrs[0].key, "service.name");
	strcpy(res.attrs[0].value, "llama-server");
	items[0].req = sample_request(5);
	items[1].engine.ev = (struct engine_event){ .kind = EE_CACHE_LOAD, .ts_ns = 2500,
						    .duration_ns = 100, .seq = 1, .request_id = 5,
						    .value = 4096, .ok = true };
	items[1].engine.number = 1;
	assert_int_equal(otlp_item_spans(&items[0]), 4);
	assert_int_equal(otlp_encode_traces(&ctx, items, 2, &buf, &len), 0);
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len, buf);
	assert_non_null(req);
	assert_int_equal(req->n_resource_spans, 1);
	assert_string_equal(req->resource_spans[0]->resource->attributes[0]->value->string_value,
			    "llama-server");
	ss = req->resource_spans[0]->scope_spans[0];
	assert_string_equal(ss->scope->name, "llmtap");
	assert_int_equal(ss->n_spans, 5);
	srv = ss->spans[0];
	assert_string_equal(srv->name, "POST /v1/chat/completions");
	assert_int_equal(srv->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
	assert_int_equal(srv->start_time_unix_nano, 1001000);
	assert_int_equal(srv->end_time_unix_nano, 1009000);
	assert_int_equal(srv->trace_id.len, 16);
	assert_int_equal(srv->span_id.len, 8);
	assert_int_equal(srv->parent_span_id.len, 0);
	assert_int_equal(find_attr(srv->attributes, srv->n_attributes, "gen_ai.usage.input_tokens")->int_value, 30);
	assert_int_equal(find_attr(srv->attributes, srv->n_attributes, "gen_ai.usage.output_tokens")->int_value, 12);
	assert_int_equal(find_attr(srv->attributes, srv->n_attributes, "http.response.status_code")->int_value, 200);
	assert_string_equal(find_attr(srv->attributes, srv->n_attributes, "gen_ai.request.model")->string_value, "tiny");
	assert_true(find_attr(srv->attributes, srv->n_attributes, "gen_ai.request.top_p")->double_value == 0.95);
	assert_null(find_attr(srv->attributes, srv->n_attributes, "error.type"));
	for (int i = 1; i < 5; i++) { /* children and the event share the trace, parented by the server span */
		child = ss->spans[i];
		assert_memory_equal(child->trace_id.data, srv->trace_id.data, 16);
		assert_int_equal(child->parent_span_id.len, 8);
		assert_memory_equal(child->parent_span_id.data, srv->span_id.data, 8);
		assert_memory_not_equal(child->span_id.data, srv->span_id.data, 8);
	}
	assert_string_equal(ss->spans[1]->name, "queue");
	assert_int_equal(ss->spans[1]->start_time_unix_nano, 1001100);
	assert_int_equal(ss->spans[1]->end_time_unix_nano, 1002000);
	assert_string_equal(ss->spans[2]->name, "prefill");
	assert_string_equal(ss->spans[3]->name, "generation");
	assert_string_equal(ss->spans[4]->name, "llama.cache_load");
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
	free(buf);
}

static void test_encode_failed_request_status(void **state)
{
	struct otlp_idgen ids = { { 3, 4 } };
	struct otlp_encode_ctx ctx = { NULL, "", &ids, 0 };
	struct otlp_item items[2] = { { .is_request = true }, { .is_request = true } };
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
	Opentelemetry__Proto__Trace__V1__Span *a, *b;
	uint8_t *buf;
	size_t len;

	(void)state;
	items[0].req = sample_request(1);
	items[0].req.status = 400;
	items[0].req.err_type = 1;
	strcpy(items[0].req.err_msg, "bad prompt");
	items[1].req = sample_request(2);
	items[1].req.status = 500;
	strcpy(items[1].req.err_msg, "boom");
	assert_int_equal(otlp_encode_traces(&ctx, items, 2, &buf, &len), 0);
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len, buf);
	assert_non_null(req);
	a = req->resource_spans[0]->scope_spans[0]->spans[0];
	b = req->resource_spans[0]->scope_spans[0]->spans[4];
	assert_string_equal(find_attr(a->attributes, a->n_attributes, "error.type")->string_value, "400");
	/* a 4xx is the client's error: the server span's status stays unset */
	assert_int_equal(a->status->code, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_UNSET);
	assert_int_equal(b->status->code, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
	assert_string_equal(b->status->message, "boom");
	assert_memory_not_equal(a->trace_id.data, b->trace_id.data, 16);
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
	free(buf);
}

/* A span's attributes as "key=value" lines, in order; "s:" strings, "i:" ints, "d:", "b:". */
static void attrs_text(const Opentelemetry__Proto__Trace__V1__Span *s, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < s->n_attributes && o < len; i++) {
		const Opentelemetry__Proto__Common__V1__AnyValue *v = s->attributes[i]->value;
		const char *k = s->attributes[i]->key;

		switch (v->value_case) {
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
			o += (size_t)snprintf(buf + o, len - o, "%s=s:%s\n", k, v->string_value);
			break;
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
			o += (size_t)snprintf(buf + o, len - o, "%s=i:%lld\n", k, (long long)v->int_value);
			break;
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
			o += (size_t)snprintf(buf + o, len - o, "%s=d:%.17g\n", k, v->double_value);
			break;
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
			o += (size_t)snprintf(buf + o, len - o, "%s=b:%d\n", k, (int)v->bool_value);
			break;
		default:
			o += (size_t)snprintf(buf + o, len - o, "%s=?\n", k);
			break;
		}
	}
}

/* The server span's whole attribute set, in order and with its types. */
static void test_encode_request_attributes(void **state)
{
	struct otlp_idgen ids = { { 5, 6 } };
	struct otlp_encode_ctx ctx = { NULL, "tiny", &ids, 0 };
	struct otlp_item items[2] = { { .is_request = true }, { .is_request = true } };
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
	Opentelemetry__Proto__Trace__V1__ScopeSpans *ss;
	struct req_span *r;
	char text[2048];
	uint8_t *buf;
	size_t len;

	(void)state;
	r = &items[0].req;
	*r = sample_request(1);
	r->stream = true;
	r->n_tasks = 2;
	r->route.kind = ROUTE_COMPLETION;
	r->route.template = "/completion";
	r->status = 503;
	r->err_type = 5;
	r->seed = 4000000000u;
	r->context_shifts = 1;
	r->cache_loads = 1;
	r->cache_bytes_loaded = 4096;
	strcpy(r->err_msg, "no slot");
	r = &items[1].req;
	*r = sample_request(2);
	r->route.kind = ROUTE_OTHER;
	r->route.template = "other";
	r->status = 0;
	r->complete = false;
	r->slot = -1;
	r->deferred = false;
	r->first_token_ns = 0;
	assert_int_equal(otlp_encode_traces(&ctx, items, 2, &buf, &len), 0);
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len, buf);
	assert_non_null(req);
	ss = req->resource_spans[0]->scope_spans[0];
	/* OTLP only: gen_ai.request.model and the llmtap.* timings; the message is the status's */
	attrs_text(ss->spans[0], text, sizeof(text));
	assert_string_equal(text,
			    "http.request.method=s:POST\n"
			    "url.path=s:/v1/chat/completions\n"
			    "http.route=s:/completion\n"
			    "http.response.status_code=i:503\n"
			    "client.address=s:10.0.0.1\n"
			    "client.port=i:5555\n"
			    "server.port=i:8080\n"
			    "gen_ai.operation.name=s:text_completion\n"
			    "gen_ai.provider.name=s:llama.cpp\n"
			    "gen_ai.request.model=s:tiny\n"
			    "gen_ai.request.stream=b:1\n"
			    "gen_ai.usage.input_tokens=i:30\n"
			    "gen_ai.usage.output_tokens=i:12\n"
			    "gen_ai.usage.cache_read.input_tokens=i:4\n"
			    "gen_ai.request.seed=i:4000000000\n"
			    "gen_ai.request.top_k=i:40\n"
			    "gen_ai.request.top_p=d:0.94999999999999996\n"
			    "gen_ai.request.temperature=d:0.5\n"
			    "gen_ai.request.choice.count=i:2\n"
			    "llmtap.attribution=s:server\n"
			    "error.type=s:503\n"
			    "llmtap.slot=i:1\n"
			    "llmtap.queue.duration=d:8.9999999999999996e-07\n"
			    "gen_ai.server.time_to_first_token=d:1.9999999999999999e-06\n"
			    "llmtap.context.shifts=i:1\n"
			    "llmtap.prompt_cache.bytes_loaded=i:4096\n");
	attrs_text(ss->spans[4], text, sizeof(text));
	assert_string_equal(text,
			    "http.request.method=s:POST\n"
			    "url.path=s:/v1/chat/completions\n"
			    "http.route=s:other\n"
			    "client.address=s:10.0.0.1\n"
			    "client.port=i:5555\n"
			    "server.port=i:8080\n"
			    "llmtap.attribution=s:server\n"
			    "error.type=s:incomplete\n"
			    "llmtap.incomplete=b:1\n");
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
	free(buf);
}

static Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *
encode_one(const struct otlp_encode_ctx *ctx, const struct req_span *r, size_t *n_spans)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
	struct otlp_item it = { .is_request = true, .req = *r };
	uint8_t *buf;
	size_t len;

	assert_int_equal(otlp_encode_traces(ctx, &it, 1, &buf, &len), 0);
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(req);
	*n_spans = req->resource_spans[0]->scope_spans[0]->n_spans;
	assert_int_equal(*n_spans, otlp_item_spans(&it));
	return req;
}

/* Counts llmtap did not measure are left out of every span, never sent as 0. */
static void test_encode_unknown_counts(void **state)
{
	struct otlp_idgen ids = { { 7, 8 } };
	struct otlp_encode_ctx ctx = { NULL, "tiny", &ids, 0 };
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
	Opentelemetry__Proto__Trace__V1__Span **sp;
	struct req_span r = sample_request(3);
	char text[2048];
	size_t n;

	(void)state;
	r.known = 0;
	r.attribution = REQ_ATTR_UNATTRIBUTED;
	req = encode_one(&ctx, &r, &n);
	sp = req->resource_spans[0]->scope_spans[0]->spans;
	assert_int_equal(n, 4); /* queue, prefill, generation: their times were seen */
	attrs_text(sp[0], text, sizeof(text));
	assert_null(strstr(text, "gen_ai.usage."));
	assert_non_null(strstr(text, "gen_ai.operation.name=s:chat\n"));
	assert_non_null(strstr(text, "llmtap.attribution=s:unattributed\n"));
	for (size_t i = 1; i < n; i++)
		assert_int_equal(sp[i]->n_attributes, 0);
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);

	/* the prompt measured, the output not: only the input counts */
	r.known = REQ_KNOWN_PROMPT;
	req = encode_one(&ctx, &r, &n);
	sp = req->resource_spans[0]->scope_spans[0]->spans;
	attrs_text(sp[0], text, sizeof(text));
	assert_non_null(strstr(text, "gen_ai.usage.input_tokens=i:30\n"
				     "gen_ai.usage.cache_read.input_tokens=i:4\n"));
	assert_null(strstr(text, "gen_ai.usage.output_tokens"));
	attrs_text(sp[2], text, sizeof(text)); /* prefill */
	assert_string_equal(text, "gen_ai.usage.input_tokens=i:30\n"
				  "gen_ai.usage.cache_read.input_tokens=i:4\n");
	assert_int_equal(sp[3]->n_attributes, 0); /* generation */
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
}

/* An embedder's generation: an INTERNAL span named by the GenAI conventions, no HTTP;
 * a router's proxy copy: a SERVER span named "proxy {method} {route}". */
static void test_encode_generation_and_proxy(void **state)
{
	struct otlp_idgen ids = { { 9, 10 } };
	struct otlp_encode_ctx ctx = { NULL, "tiny", &ids, 0 };
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
	Opentelemetry__Proto__Trace__V1__Span *s;
	struct req_span g = {
		.id = 4, .kind = REQ_GENERATION, .attribution = REQ_ATTR_ENGINE,
		.known = REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT, .seq = 1, .slot = -1, .start_ns = 1000,
		.end_ns = 9000, .complete = true, .first_token_ns = 3000, .final_ns = 8000,
		.prompt_tokens = 9, .output_tokens = 5, .err_type = -1,
	};
	struct req_span p = sample_request(5);
	char text[2048];
	size_t n;

	(void)state;
	req = encode_one(&ctx, &g, &n);
	s = req->resource_spans[0]->scope_spans[0]->spans[0];
	assert_int_equal(n, 2); /* the span and its generation phase */
	assert_string_equal(s->name, "text_completion tiny");
	assert_int_equal(s->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL);
	assert_int_equal(s->status->code, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_UNSET);
	attrs_text(s, text, sizeof(text));
	assert_string_equal(text,
			    "gen_ai.operation.name=s:text_completion\n"
			    "gen_ai.provider.name=s:llama.cpp\n"
			    "gen_ai.request.model=s:tiny\n"
			    "gen_ai.usage.input_tokens=i:9\n"
			    "gen_ai.usage.output_tokens=i:5\n"
			    "gen_ai.usage.cache_read.input_tokens=i:0\n"
			    "llmtap.attribution=s:engine\n"
			    "llmtap.sequence=i:1\n"
			    "gen_ai.server.time_to_first_token=d:1.9999999999999999e-06\n");
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);

	ctx.model = ""; /* without a model: the operation alone */
	req = encode_one(&ctx, &g, &n);
	assert_string_equal(req->resource_spans[0]->scope_spans[0]->spans[0]->name, "text_completion");
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);

	p.kind = REQ_PROXY;
	p.known = 0;
	p.attribution = REQ_ATTR_NONE;
	p.slot = -1;
	p.deferred = false;
	p.launch_ns = p.first_token_ns = p.final_ns = 0;
	req = encode_one(&ctx, &p, &n);
	s = req->resource_spans[0]->scope_spans[0]->spans[0];
	assert_int_equal(n, 1);
	assert_string_equal(s->name, "proxy POST /v1/chat/completions");
	assert_int_equal(s->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
	attrs_text(s, text, sizeof(text));
	assert_non_null(strstr(text, "http.route=s:/v1/chat/completions\n"));
	assert_non_null(strstr(text, "llmtap.attribution=s:none\n"));
	assert_null(strstr(text, "gen_ai.usage."));
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
}

static void test_sampler(void **state)
{
	struct otlp_idgen ids;
	uint8_t id[16];
	int kept = 0;

	(void)state;
	otlp_idgen_init(&ids);
	for (uint64_t i = 1; i <= 10000; i++) {
		otlp_trace_id(&ids, i, id);
		assert_true(otlp_sample(id, 1.0));
		assert_false(otlp_sample(id, 0.0));
		kept += otlp_sample(id, 0.25);
		assert_true(otlp_sample(id, 0.25) == otlp_sample(id, 0.25)); /* deterministic */
	}
	assert_in_range(kept, 2300, 2700);
}

static Opentelemetry__Proto__Metrics__V1__Metric *
find_metric(Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *req,
	    const char *name)
{
	Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = req->resource_metrics[0]->scope_metrics[0];

	for (size_t i = 0; i < sm->n_metrics; i++)
		if (!strcmp(sm->metrics[i]->name, name))
			return sm->metrics[i];
	return NULL;
}

static void test_encode_metrics_cumulative_and_delta(void **state)
{
	struct otlp_idgen ids = { { 1, 2 } };
	struct otlp_encode_ctx ctx = { NULL, "", &ids, 0 };
	struct metrics *m = calloc(1, sizeof(*m)), *prev = calloc(1, sizeof(*prev));
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *req;
	Opentelemetry__Proto__Metrics__V1__Metric *mt;
	Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hp;
	uint8_t *buf;
	size_t len;
	uint32_t n;

	(void)state;
	assert_non_null(m);
	assert_non_null(prev);
	metrics_add(m, M_INF_REQUESTS, 3, 100, "status", "ok", NULL);
	metrics_record(m, M_GENAI_TTFT, 0.003, 100, NULL);
	metrics_record(m, M_GENAI_TTFT, 0.2, 100, NULL);
	metrics_set(m, M_SLOTS_BUSY, 2, 100, NULL);
	assert_int_equal(otlp_encode_metrics(&ctx, m, NULL, 0, 500, &buf, &len, &n), 0);
	assert_int_equal(n, 3);
	req = opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(NULL, len, buf);
	assert_non_null(req);
	mt = find_metric(req, "llmtap.inference.requests");
	assert_non_null(mt);
	assert_int_equal(mt->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
	assert_true(mt->sum->is_monotonic);
	assert_int_equal(mt->sum->aggregation_temporality,
			 OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE);
	assert_true(mt->sum->data_points[0]->as_double == 3);
	assert_int_equal(mt->sum->data_points[0]->start_time_unix_nano, 100);
	assert_int_equal(mt->sum->data_points[0]->time_unix_nano, 500);
	assert_string_equal(mt->sum->data_points[0]->attributes[0]->key, "status");
	mt = find_metric(req, "gen_ai.server.time_to_first_token");
	hp = mt->histogram->data_points[0];
	assert_int_equal(hp->count, 2);
	assert_int_equal(hp->n_bucket_counts, hp->n_explicit_bounds + 1);
	assert_int_equal(hp->bucket_counts[1], 1); /* (0.001, 0.005] */
	assert_true(hp->min == 0.003 && hp->max == 0.2);
	mt = find_metric(req, "llmtap.slots.busy");
	assert_int_equal(mt->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(req, NULL);
	free(buf);

	/* delta: only what changed since prev, from prev's time */
	*prev = *m;
	metrics_add(m, M_INF_REQUESTS, 2, 600, "status", "ok", NULL);
	metrics_record(m, M_GENAI_TTFT, 0.004, 600, NULL);
	assert_int_equal(otlp_encode_metrics(&ctx, m, prev, 500, 900, &buf, &len, &n), 0);
	assert_int_equal(n, 3); /* requests, ttft, and the gauge */
	req = opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(NULL, len, buf);
	mt = find_metric(req, "llmtap.inference.requests");
	assert_int_equal(mt->sum->aggregation_temporality,
			 OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA);
	assert_true(mt->sum->data_points[0]->as_double == 2);
	assert_int_equal(mt->sum->data_points[0]->start_time_unix_nano, 500);
	hp = find_metric(req, "gen_ai.server.time_to_first_token")->histogram->data_points[0];
	assert_int_equal(hp->count, 1);
	assert_int_equal(hp->bucket_counts[1], 1);
	assert_true(hp->sum > 0.0039 && hp->sum < 0.0041);
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(req, NULL);
	free(buf);
	free(m);
	free(prev);
}

static void test_gzip_round_trip(void **state)
{
	uint8_t in[4096], back[4096], *gz;
	size_t gz_len;
	uLongf back_len = sizeof(back);
	z_stream z = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i % 7);
	assert_int_equal(otlp_gzip(in, sizeof(in), &gz, &gz_len), 0);
	assert_true(gz_len < sizeof(in));
	assert_int_equal(gz[0], 0x1f); /* the gzip magic */
	assert_int_equal(gz[1], 0x8b);
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = gz;
	z.avail_in = (uInt)gz_len;
	z.next_out = back;
	z.avail_out = (uInt)back_len;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, sizeof(in));
	inflateEnd(&z);
	assert_memory_equal(in, back, sizeof(in));
	free(gz);
}

static void test_retry_after(void **state)
{
	(void)state;
	assert_int_equal(otlp_retry_after("3", 0), 3);
	assert_int_equal(otlp_retry_after(" 120 ", 0), 120);
	assert_int_equal(otlp_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10);
	assert_int_equal(otlp_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0);
	assert_int_equal(otlp_retry_after("soon", 0), -1);
	assert_int_equal(otlp_retry_after("5s", 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_off_by_default),
		cmocka_unit_test(test_config_endpoint_and_defaults),
		cmocka_unit_test(test_config_signal_overrides),
		cmocka_unit_test(test_config_cli_wins),
		cmocka_unit_test(test_config_disabled_and_none),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_encode_request_spans),
		cmocka_unit_test(test_encode_failed_request_status),
		cmocka_unit_test(test_encode_request_attributes),
		cmocka_unit_test(test_encode_unknown_counts),
		cmocka_unit_test(test_encode_generation_and_proxy),
		cmocka_unit_test(test_sampler),
		cmocka_unit_test(test_encode_metrics_cumulative_and_delta),
		cmocka_unit_test(test_gzip_round_trip),
		cmocka_unit_test(test_retry_after),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
