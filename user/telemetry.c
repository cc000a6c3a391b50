// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "telemetry.h"

#include <string.h>
#include <time.h>

uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t realtime_offset_ns(void)
{
	struct timespec rt;
	uint64_t mono = monotonic_ns();

	clock_gettime(CLOCK_REALTIME, &rt);
	return (int64_t)((uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec) -
	       (int64_t)mono;
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
	if (r->output_tokens < 2 || r->final_ns <= r->first_token_ns || !r->first_token_ns)
		return 0;
	return (r->final_ns - r->first_token_ns) / (r->output_tokens - 1);
}

bool req_failed(const struct req_span *r)
{
	return !r->complete || r->status >= 400 || r->err_type >= 0;
}

static void window_add_request(struct tm_window *w, const struct req_span *r)
{
	w->requests++;
	w->requests_failed += req_failed(r);
	w->by_route[r->route.kind < ROUTE_KIND_MAX ? r->route.kind : ROUTE_OTHER]++;
	w->input_tokens += r->cached_tokens + r->prompt_tokens;
	w->cached_tokens += r->cached_tokens;
	w->output_tokens += r->output_tokens;
	if (r->end_ns > r->start_ns)
		hist_add(&w->req_duration_ns, r->end_ns - r->start_ns);
	if (!route_operation(r->route.kind))
		return; /* the GenAI instruments count inference only */
	if (req_ttft_ns(r))
		hist_add(&w->ttft_ns, req_ttft_ns(r));
	if (req_tpot_ns(r))
		hist_add(&w->tpot_ns, req_tpot_ns(r));
	if (r->launch_ns)
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

void telemetry_step(struct telemetry *tm, const struct step *s)
{
	window_add(&tm->interval, s);
	window_add(&tm->total, s);
	FOR_EACH_SINK(tm, step, s, tm->realtime_offset_ns);
}

void telemetry_request(struct telemetry *tm, const struct req_span *r)
{
	window_add_request(&tm->interval, r);
	window_add_request(&tm->total, r);
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

void telemetry_engine_event(struct telemetry *tm, const struct engine_event *e)
{
	window_add_engine_event(&tm->interval, e);
	window_add_engine_event(&tm->total, e);
	FOR_EACH_SINK(tm, engine_event, e, tm->realtime_offset_ns);
}

void telemetry_set_gauges(struct telemetry *tm, const struct tm_gauges *g)
{
	tm->gauges = *g;
}

static void account_lost(struct telemetry *tm, uint64_t now_ns, uint64_t lost_total)
{
	uint64_t d = lost_total >= tm->lost_seen ? lost_total - tm->lost_seen : 0;

	tm->interval.lost += d;
	tm->total.lost += d;
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
