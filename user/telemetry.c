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
	memset(w, 0, sizeof(*w));
	hist_reset(&w->duration_ns);
	hist_reset(&w->batch_tokens);
	w->start_ns = w->end_ns = now_ns;
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
