// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/telemetry.h"
#include "sink/sink.h"

#include <stdio.h>
#include <string.h>

#include "lib/clock.h"

bool tm_tick_due(uint64_t now_ns, uint64_t *next_ns, uint64_t interval_ns)
{
	if (now_ns < *next_ns)
		return false;
	*next_ns += interval_ns;
	if (*next_ns <= now_ns)
		*next_ns = now_ns + interval_ns;
	return true;
}

int batch_class(int32_t n)
{
	if (n <= 1)
		return BATCH_1;
	if (n <= 4)
		return BATCH_2_4;
	if (n <= 16)
		return BATCH_5_16;
	if (n <= 64)
		return BATCH_17_64;
	if (n <= 512)
		return BATCH_65_512;
	return BATCH_513_UP;
}

const char *batch_class_name(int c)
{
	static const char *const names[BATCH_CLASSES] = {
		"1", "2-4", "5-16", "17-64", "65-512", "513+",
	};
	return c >= 0 && c < BATCH_CLASSES ? names[c] : "?";
}

static void window_reset(struct tm_window *w, uint64_t now_ns)
{
	memset(w, 0, sizeof(*w)); /* an all-zero hist is an empty one */
	w->start_ns = w->end_ns = now_ns;
}

bool req_has_queue(const struct req_span *r)
{
	/* only llama-server's own records tell when a task was queued */
	return r->attribution == REQ_ATTR_SERVER && r->launch_ns;
}

uint64_t req_queue_ns(const struct req_span *r)
{
	/* only a task that waited for a free slot was queued; dispatch is not queueing */
	if (!r->deferred || !r->launch_ns || r->launch_ns < r->enqueue_ns)
		return 0;
	return r->launch_ns - r->enqueue_ns;
}

uint64_t req_ttft_ns(const struct req_span *r)
{
	return r->first_token_ns > r->start_ns ? r->first_token_ns - r->start_ns : 0;
}

uint64_t req_tpot_ns(const struct req_span *r)
{
	if (!req_knows(r, REQ_KNOWN_OUTPUT) || r->output_tokens < 2 ||
	    r->final_ns <= r->first_token_ns || !r->first_token_ns)
		return 0;
	return (r->final_ns - r->first_token_ns) / (r->output_tokens - 1);
}

const char *req_kind_name(enum req_kind k)
{
	switch (k) {
	case REQ_GENERATION: return "generation";
	case REQ_PROXY: return "proxy";
	default: return "http";
	}
}

const char *req_attribution_name(enum req_attribution a)
{
	switch (a) {
	case REQ_ATTR_SERVER: return "server";
	case REQ_ATTR_ENGINE: return "engine";
	case REQ_ATTR_UNATTRIBUTED: return "unattributed";
	default: return "none";
	}
}

const char *finish_reason_name(enum finish_reason f)
{
	static const char *const names[FINISH_MAX] = {
		[FINISH_STOP] = "stop",
		[FINISH_LENGTH] = "length",
		[FINISH_CANCELLED] = "cancelled",
		[FINISH_ERROR] = "error",
	};

	return f < FINISH_MAX ? names[f] : NULL;
}

enum finish_reason req_finish(const struct req_span *r)
{
	if (!r->n_finish || r->n_finish > REQ_FINISH_MAX)
		return FINISH_UNKNOWN;
	for (int i = 1; i < r->n_finish; i++)
		if (r->finish[i] != r->finish[0])
			return FINISH_UNKNOWN;
	return r->finish[0] < FINISH_MAX ? (enum finish_reason)r->finish[0] : FINISH_UNKNOWN;
}

/* gen_ai.response.finish_reasons, when every choice's is known */
static void visit_finish(const struct req_span *r, const struct req_attr_visitor *v, void *arg)
{
	const char *names[REQ_FINISH_MAX];
	int n = r->n_finish <= REQ_FINISH_MAX ? r->n_finish : 0;

	for (int i = 0; i < n; i++)
		if (!(names[i] = finish_reason_name(r->finish[i])))
			return;
	if (n)
		v->on_strs(arg, "gen_ai.response.finish_reasons", names, n);
}

const char *req_operation(const struct req_span *r)
{
	return r->kind == REQ_GENERATION ? "text_completion" : route_operation(r->route.kind);
}

const char *req_route(const struct req_span *r)
{
	return r->route.template ? r->route.template : "other";
}

void req_span_name(const struct req_span *r, const char *model, char *buf, size_t len)
{
	const char *method = r->method[0] ? r->method : "HTTP";

	if (r->kind == REQ_GENERATION)
		snprintf(buf, len, "%s%s%s", req_operation(r), model && model[0] ? " " : "",
			 model ? model : "");
	else
		snprintf(buf, len, "%s%s %s", r->kind == REQ_PROXY ? "proxy " : "", method,
			 req_route(r));
}

void req_visit_attrs(const struct req_span *r, const char *model, unsigned int extras,
		     const struct req_attr_visitor *v, void *arg)
{
	const char *op = req_operation(r);
	bool http = r->kind != REQ_GENERATION; /* a generation has no HTTP request */
	bool prompt = req_knows(r, REQ_KNOWN_PROMPT), output = req_knows(r, REQ_KNOWN_OUTPUT);
	char type[32];

	if (http) {
		v->on_str(arg, "http.request.method", r->method);
		v->on_str(arg, "url.path", r->path);
		v->on_str(arg, "http.route", req_route(r));
		if (r->status)
			v->on_int(arg, "http.response.status_code", r->status);
		v->on_str(arg, "client.address", r->client);
		v->on_int(arg, "client.port", r->client_port);
		v->on_int(arg, "server.port", r->server_port);
	}
	if (op) {
		v->on_str(arg, "gen_ai.operation.name", op);
		v->on_str(arg, "gen_ai.provider.name", "llama.cpp");
		if (model && model[0])
			v->on_str(arg, "gen_ai.request.model", model);
		if (http)
			v->on_bool(arg, "gen_ai.request.stream", r->stream);
		if (r->max_tokens > 0)
			v->on_int(arg, "gen_ai.request.max_tokens", r->max_tokens);
		visit_finish(r, v, arg);
		/* an unknown count is left out, never 0 */
		if (prompt)
			v->on_int(arg, "gen_ai.usage.input_tokens",
				  (int64_t)r->cached_tokens + r->prompt_tokens);
		if (output)
			v->on_int(arg, "gen_ai.usage.output_tokens", r->output_tokens);
		if (prompt)
			v->on_int(arg, "gen_ai.usage.cache_read.input_tokens", r->cached_tokens);
		if (r->has_sampling) {
			v->on_int(arg, "gen_ai.request.seed", r->seed);
			v->on_int(arg, "gen_ai.request.top_k", r->top_k);
			v->on_float(arg, "gen_ai.request.top_p", r->top_p);
			v->on_float(arg, "gen_ai.request.temperature", r->temperature);
		}
		if (http && r->n_tasks > 1 &&
		    (r->route.kind == ROUTE_CHAT || r->route.kind == ROUTE_COMPLETION))
			v->on_int(arg, "gen_ai.request.choice.count", r->n_tasks);
	}
	v->on_str(arg, "llmtap.attribution", req_attribution_name(r->attribution));
	req_error_type(r, type, sizeof(type));
	if (type[0])
		v->on_str(arg, "error.type", type);
	if ((extras & REQ_ATTRS_ERROR_MESSAGE) && r->err_msg[0])
		v->on_str(arg, "llmtap.error.message", r->err_msg);
	if (!(extras & REQ_ATTRS_TIMINGS))
		return;
	if (r->slot >= 0)
		v->on_int(arg, "llmtap.slot", r->slot);
	if (r->kind == REQ_GENERATION && r->seq >= 0)
		v->on_int(arg, "llmtap.sequence", r->seq);
	if (r->deferred && r->launch_ns) /* queued, and its wait ended: a wait never seen is left out */
		v->on_double(arg, "llmtap.queue.duration", (double)req_queue_ns(r) / 1e9);
	if (req_ttft_ns(r))
		v->on_double(arg, "gen_ai.server.time_to_first_token", (double)req_ttft_ns(r) / 1e9);
	if (r->context_shifts)
		v->on_int(arg, "llmtap.context.shifts", r->context_shifts);
	if (r->cache_loads)
		v->on_int(arg, "llmtap.prompt_cache.bytes_loaded", (int64_t)r->cache_bytes_loaded);
	if (!r->complete)
		v->on_bool(arg, "llmtap.incomplete", true);
}

double tm_window_rate(const struct tm_window *w, uint64_t n)
{
	double secs = (double)(w->end_ns - w->start_ns) / 1e9;

	return secs > 0 ? (double)n / secs : 0;
}

bool req_failed(const struct req_span *r)
{
	return !r->complete || r->status >= 400 || r->err_type >= 0;
}

static void window_add_request(struct tm_window *w, const struct req_span *r)
{
	bool inference = req_operation(r) != NULL;

	if (r->kind == REQ_PROXY) { /* the child that served it counts it */
		w->proxied++;
		return;
	}
	if (r->kind == REQ_GENERATION) {
		w->generations++;
	} else {
		w->requests++;
		w->requests_failed += req_failed(r);
		w->by_route[r->route.kind < ROUTE_KIND_MAX ? r->route.kind : ROUTE_OTHER]++;
		if (r->end_ns > r->start_ns)
			hist_add(&w->req_duration_ns, r->end_ns - r->start_ns);
	}
	/* token sums over what was measured; an unknown count is in none */
	if (req_knows(r, REQ_KNOWN_PROMPT)) {
		w->input_tokens += (uint64_t)r->cached_tokens + r->prompt_tokens;
		w->cached_tokens += r->cached_tokens;
		w->input_known++;
	} else if (inference) {
		w->input_unknown++;
	}
	if (req_knows(r, REQ_KNOWN_OUTPUT)) {
		w->output_tokens += r->output_tokens;
		w->output_known++;
	} else if (inference) {
		w->output_unknown++;
	}
	if (r->kind == REQ_GENERATION || route_generates(r->route.kind))
		w->finish[req_finish(r)]++;
	if (!inference)
		return; /* the GenAI instruments count inference only */
	if (req_ttft_ns(r))
		hist_add(&w->ttft_ns, req_ttft_ns(r));
	if (req_tpot_ns(r))
		hist_add(&w->tpot_ns, req_tpot_ns(r));
	if (req_has_queue(r))
		hist_add(&w->queue_ns, req_queue_ns(r));
}

static void window_add(struct tm_window *w, const struct step *s)
{
	uint64_t n = s->n_tokens > 0 ? (uint64_t)s->n_tokens : 0;

	w->steps++;
	if (s->ret != 0)
		w->step_errors++;
	w->tokens += n;
	w->outputs += s->n_outputs;
	if (s->kind < STEP_KIND_MAX)
		w->by_kind[s->kind]++;
	w->batch_mix[batch_class(s->n_tokens)]++;
	hist_add(&w->duration_ns, s->end_ns - s->start_ns);
	if (step_compute_known(s))
		hist_add(&w->compute_ns, step_compute_ns(s));
	else
		w->compute_unknown++;
	hist_add(&w->batch_tokens, n);
}

void telemetry_init(struct telemetry *tm, const struct tm_target *t, uint64_t now_ns)
{
	memset(tm, 0, sizeof(*tm));
	tm->target = *t;
	tm->realtime_offset_ns = realtime_offset_ns();
	window_reset(&tm->interval, now_ns);
	window_reset(&tm->total, now_ns);
}

int telemetry_add_sink(struct telemetry *tm, struct sink s)
{
	if (tm->n_sinks >= TM_MAX_SINKS)
		return -1;
	tm->sinks[tm->n_sinks++] = s;
	return 0;
}

#define FOR_EACH_SINK(tm, fn, ...)                                             \
	for (int i_ = 0; i_ < (tm)->n_sinks; i_++)                             \
		if ((tm)->sinks[i_].ops->fn)                                   \
			(tm)->sinks[i_].ops->fn((tm)->sinks[i_].self, __VA_ARGS__)

void telemetry_attached(struct telemetry *tm)
{
	FOR_EACH_SINK(tm, attached, &tm->target);
}

static void metrics_step(struct telemetry *tm, const struct step *s)
{
	const char *op = step_op_name(s->op), *kind = step_kind_name(s->kind);
	char err[32];

	snprintf(err, sizeof(err), "llama_decode_%d", s->ret);
	metrics_record(&tm->metrics, M_STEP_DURATION, (double)(s->end_ns - s->start_ns) / 1e9,
		       s->end_ns, "llmtap.step.op", op, "llmtap.step.kind", kind, NULL);
	if (step_compute_known(s))
		metrics_record(&tm->metrics, M_STEP_COMPUTE, (double)step_compute_ns(s) / 1e9,
			       s->end_ns, "llmtap.step.op", op, "llmtap.step.kind", kind, NULL);
	metrics_record(&tm->metrics, M_STEP_TOKENS, s->n_tokens > 0 ? s->n_tokens : 0, s->end_ns,
		       "llmtap.step.op", op, NULL);
	metrics_add(&tm->metrics, M_STEPS, 1, s->end_ns, "llmtap.step.op", op, "llmtap.step.kind",
		    kind, "error.type", s->ret ? err : NULL, NULL);
}

void telemetry_step(struct telemetry *tm, const struct step *s)
{
	window_add(&tm->interval, s);
	window_add(&tm->total, s);
	metrics_step(tm, s);
	FOR_EACH_SINK(tm, step, s, tm->realtime_offset_ns);
}

void req_error_type(const struct req_span *r, char *buf, size_t len)
{
	if (!req_failed(r))
		buf[0] = '\0';
	else if (!r->complete)
		snprintf(buf, len, "incomplete");
	else if (r->status >= 400)
		snprintf(buf, len, "%d", r->status);
	else
		snprintf(buf, len, "server_error_%d", r->err_type);
}

/*
 * A request's metric points: an HTTP request's http.server.* and, for inference, the
 * gen_ai.* and llmtap.inference.* ones; a generation's the same but http.server.*;
 * a router's proxy copy none (the child that served it records them). A count or
 * time llmtap did not measure records no point.
 */
static void metrics_request(struct telemetry *tm, const struct req_span *r)
{
	const char *op = req_operation(r);
	const char *endpoint = r->kind == REQ_GENERATION ? "generation" : route_kind_name(r->route.kind);
	const char *model = tm->target.model && tm->target.model[0] ? tm->target.model : NULL;
	const char *stream = r->kind == REQ_GENERATION ? NULL : r->stream ? "true" : "false";
	uint64_t t = r->end_ns, ttft = req_ttft_ns(r), tpot = req_tpot_ns(r);
	bool has_dur = r->start_ns && r->end_ns && r->end_ns >= r->start_ns;
	double dur = has_dur ? (double)(r->end_ns - r->start_ns) / 1e9 : 0;
	char status[16], err[32];
	struct metrics *m = &tm->metrics;

	if (r->kind == REQ_PROXY)
		return;
	snprintf(status, sizeof(status), "%d", r->status);
	req_error_type(r, err, sizeof(err));
	if (r->kind == REQ_HTTP && has_dur)
		metrics_record(m, M_HTTP_DURATION, dur, t,
			       "http.request.method", r->method[0] ? r->method : "_OTHER", "http.route",
			       req_route(r), "http.response.status_code", r->status ? status : NULL,
			       "error.type", err[0] ? err : NULL, NULL);
	if (!op)
		return;
#define GENAI "gen_ai.operation.name", op, "gen_ai.provider.name", "llama.cpp", \
	"gen_ai.request.model", model, "error.type", err[0] ? err : NULL
	if (has_dur)
		metrics_record(m, M_GENAI_DURATION, dur, t, GENAI, NULL);
	if (ttft)
		metrics_record(m, M_GENAI_TTFT, (double)ttft / 1e9, t, GENAI, NULL);
	if (tpot)
		metrics_record(m, M_GENAI_TPOT, (double)tpot / 1e9, t, GENAI, NULL);
	if (req_knows(r, REQ_KNOWN_PROMPT))
		metrics_record(m, M_GENAI_TOKENS, (double)r->cached_tokens + r->prompt_tokens, t,
			       GENAI, "gen_ai.token.type", "input", NULL);
	if (strcmp(op, "embeddings") && req_knows(r, REQ_KNOWN_OUTPUT))
		metrics_record(m, M_GENAI_TOKENS, r->output_tokens, t, GENAI,
			       "gen_ai.token.type", "output", NULL);
#undef GENAI
	/* the inference set: model, provider, endpoint type, stream, status */
#define INF "model", model, "provider", "llama.cpp", "endpoint", endpoint, "stream", stream, \
	"status", r->status ? status : "none"
	metrics_add(m, M_INF_REQUESTS, 1, t, INF, "finish_reason", finish_reason_name(req_finish(r)),
		    NULL);
	if (has_dur)
		metrics_record(m, M_INF_DURATION, dur, t, INF, NULL);
	if (ttft)
		metrics_record(m, M_INF_TTFT, (double)ttft / 1e9, t, INF, NULL);
	if (r->launch_ns && r->final_ns > r->launch_ns)
		metrics_record(m, M_INF_ENGINE_DURATION, (double)(r->final_ns - r->launch_ns) / 1e9,
			       t, INF, NULL);
	if (req_knows(r, REQ_KNOWN_OUTPUT) && r->output_tokens && r->first_token_ns &&
	    r->final_ns > r->first_token_ns)
		metrics_record(m, M_INF_TOKENS_PER_S,
			       r->output_tokens / ((double)(r->final_ns - r->first_token_ns) / 1e9),
			       t, INF, NULL);
#undef INF
	if (req_has_queue(r))
		metrics_record(m, M_QUEUE_DURATION, (double)req_queue_ns(r) / 1e9, t, "endpoint",
			       endpoint, NULL);
	if (r->launch_ns && r->first_token_ns > r->launch_ns)
		metrics_record(m, M_PREFILL_DURATION, (double)(r->first_token_ns - r->launch_ns) / 1e9,
			       t, "endpoint", endpoint, NULL);
	if (r->first_token_ns && r->final_ns > r->first_token_ns)
		metrics_record(m, M_GENERATION_DURATION,
			       (double)(r->final_ns - r->first_token_ns) / 1e9, t, "endpoint",
			       endpoint, NULL);
}

void telemetry_sampled(struct telemetry *tm, uint64_t end_ns, uint64_t duration_ns)
{
	tm->interval.sampled++;
	tm->total.sampled++;
	if (duration_ns)
		metrics_record(&tm->metrics, M_SAMPLE_DURATION, (double)duration_ns / 1e9, end_ns,
			       NULL);
}

void telemetry_request(struct telemetry *tm, const struct req_span *r)
{
	window_add_request(&tm->interval, r);
	window_add_request(&tm->total, r);
	metrics_request(tm, r);
	FOR_EACH_SINK(tm, request, r, tm->realtime_offset_ns);
}

const char *engine_event_name(enum engine_event_kind k)
{
	static const char *const names[EE_KIND_MAX] = {
		"context_shift", "cache_save", "cache_load", "model_load", "context_init",
	};
	return k < EE_KIND_MAX ? names[k] : "?";
}

static void window_add_engine_event(struct tm_window *w, const struct engine_event *e)
{
	switch (e->kind) {
	case EE_CONTEXT_SHIFT:
		w->context_shifts++;
		break;
	case EE_CACHE_SAVE:
		w->cache_saves++;
		w->cache_bytes_saved += e->value > 0 ? (uint64_t)e->value : 0;
		break;
	case EE_CACHE_LOAD:
		w->cache_loads++;
		w->cache_bytes_loaded += e->value > 0 ? (uint64_t)e->value : 0;
		break;
	default:
		break;
	}
}

static void metrics_engine_event(struct metrics *m, const struct engine_event *e)
{
	const char *target = e->to_file ? "file" : "memory";
	const char *op = e->kind == EE_CACHE_SAVE ? "save" : "load";
	uint64_t t = e->ts_ns + e->duration_ns;

	switch (e->kind) {
	case EE_CONTEXT_SHIFT:
		metrics_add(m, M_CONTEXT_SHIFTS, 1, t, NULL);
		break;
	case EE_CACHE_SAVE:
	case EE_CACHE_LOAD:
		metrics_add(m, M_CACHE_OPS, 1, t, "llmtap.cache.operation", op, "llmtap.cache.target",
			    target, NULL);
		if (e->value > 0)
			metrics_add(m, M_CACHE_BYTES, (double)e->value, t, "llmtap.cache.operation", op,
				    "llmtap.cache.target", target, NULL);
		break;
	case EE_MODEL_LOAD:
		metrics_record(m, M_MODEL_LOAD, (double)e->duration_ns / 1e9, t, "error.type",
			       e->ok ? NULL : "load_failed", NULL);
		break;
	default:
		break;
	}
}

void telemetry_engine_event(struct telemetry *tm, const struct engine_event *e)
{
	window_add_engine_event(&tm->interval, e);
	window_add_engine_event(&tm->total, e);
	metrics_engine_event(&tm->metrics, e);
	FOR_EACH_SINK(tm, engine_event, e, tm->realtime_offset_ns);
}

/* KV bytes where known, with where they are and of which types (left out when unknown). */
static void kv_memory_gauges(struct metrics *m, const struct tm_kv_mem *kv, uint64_t cells,
			     uint64_t now)
{
	if (!kv->bytes_per_cell)
		return;
	metrics_set(m, M_KV_BYTES_USED, (double)(cells * kv->bytes_per_cell), now,
		    "llmtap.kv_cache.device", kv->device, "llmtap.kv_cache.type_k", kv->type_k,
		    "llmtap.kv_cache.type_v", kv->type_v, NULL);
	if (kv->cells_capacity)
		metrics_set(m, M_KV_BYTES_CAPACITY,
			    (double)(kv->cells_capacity * kv->bytes_per_cell), now,
			    "llmtap.kv_cache.device", kv->device, "llmtap.kv_cache.type_k",
			    kv->type_k, "llmtap.kv_cache.type_v", kv->type_v, NULL);
}

void telemetry_set_gauges(struct telemetry *tm, const struct tm_gauges *g)
{
	uint64_t now = monotonic_ns();
	struct metrics *m = &tm->metrics;

	tm->gauges = *g;
	metrics_set(m, M_HTTP_ACTIVE, g->active_requests, now, NULL);
	metrics_set(m, M_INF_CONCURRENT, g->active_inference, now, "provider", "llama.cpp", NULL);
	metrics_set(m, M_KV_CELLS, (double)g->kv_cells, now, NULL);
	if (g->n_ctx)
		metrics_set(m, M_KV_RATIO, (double)g->kv_cells / g->n_ctx, now, NULL);
	if (g->queue_known)
		metrics_set(m, M_QUEUED_TASKS, g->queued_tasks, now, NULL);
	metrics_set(m, M_SLOTS_BUSY, g->busy_slots, now, NULL);
	if (g->rss_bytes)
		metrics_set(m, M_PROCESS_MEMORY, (double)g->rss_bytes, now, NULL);
	kv_memory_gauges(m, &g->kv_mem, g->kv_cells, now);
}

static void account_lost(struct telemetry *tm, uint64_t now_ns, uint64_t lost_total)
{
	uint64_t d = lost_total >= tm->lost_seen ? lost_total - tm->lost_seen : 0;

	tm->interval.lost += d;
	tm->total.lost += d;
	if (d)
		metrics_add(&tm->metrics, M_EVENTS_LOST, (double)d, now_ns, NULL);
	tm->lost_seen = lost_total;
	tm->interval.end_ns = tm->total.end_ns = now_ns;
}

void telemetry_tick(struct telemetry *tm, uint64_t now_ns, uint64_t lost_total)
{
	struct tm_snapshot snap = {
		.target = &tm->target,
		.interval = &tm->interval,
		.total = &tm->total,
		.realtime_offset_ns = tm->realtime_offset_ns,
		.gauges = &tm->gauges,
		.metrics = &tm->metrics,
		.now_ns = now_ns,
	};

	account_lost(tm, now_ns, lost_total);
	FOR_EACH_SINK(tm, interval, &snap);
	window_reset(&tm->interval, now_ns);
}

void telemetry_finish(struct telemetry *tm, uint64_t now_ns, uint64_t lost_total,
		      const char *reason)
{
	struct tm_snapshot snap = {
		.target = &tm->target,
		.total = &tm->total,
		.realtime_offset_ns = tm->realtime_offset_ns,
		.end_reason = reason,
		.gauges = &tm->gauges,
		.metrics = &tm->metrics,
		.now_ns = now_ns,
	};

	account_lost(tm, now_ns, lost_total);
	FOR_EACH_SINK(tm, summary, &snap);
}

void telemetry_destroy(struct telemetry *tm)
{
	for (int i = 0; i < tm->n_sinks; i++)
		if (tm->sinks[i].ops->destroy)
			tm->sinks[i].ops->destroy(tm->sinks[i].self);
	tm->n_sinks = 0;
}
