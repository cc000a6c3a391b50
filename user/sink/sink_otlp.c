// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * OTLP sink: request spans (with queue / prefill / generation children) and
 * engine events go out in batches like the SDK's batch span processor does;
 * the metric instruments every OTEL_METRIC_EXPORT_INTERVAL and at the end.
 */
#include "model/telemetry.h"
#include "sink/sink.h"
#include "sink/sinks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "export/otlp_encode.h"
#include "export/otlp_export.h"

struct otlp_sink {
	struct otlp_config cfg;
	struct otlp_exporter *exp;
	bool shared;           /* exp belongs to the caller (the daemon's sessions share one) */
	struct otlp_idgen ids;
	struct otlp_encode_ctx ctx;
	/* the batch being filled */
	struct otlp_item *batch;
	uint32_t n_batch;
	uint32_t batch_spans;
	uint64_t batch_since_ns;
	uint64_t engine_events;
	/* metrics */
	struct otlp_metric_export mx; /* mx.prev: allocated for delta temporality */
	struct otlp_stats reported; /* health already added to the metric model */
	struct otlp_stats final;    /* the exporter's counts when it stopped */
	bool finished;
};

static uint64_t ms_ns(uint64_t ms)
{
	return ms * 1000000ull;
}

static void flush_spans(struct otlp_sink *o)
{
	uint8_t *buf;
	size_t len;

	if (!o->n_batch)
		return;
	if (otlp_encode_traces(&o->ctx, o->batch, (int)o->n_batch, &buf, &len))
		otlp_exporter_count_drop(o->exp, OTLP_TRACES, OTLP_DROP_FAILED, o->batch_spans);
	else
		otlp_exporter_submit(o->exp, OTLP_TRACES, buf, len, o->batch_spans, false,
				     (uintptr_t)o);
	o->n_batch = 0;
	o->batch_spans = 0;
}

/* Take an item into the batch if the sampler keeps it and the queue has room. */
static void add_item(struct otlp_sink *o, const struct otlp_item *it, uint64_t trace_key,
		     uint64_t now_ns)
{
	uint8_t trace[16];
	uint32_t spans = (uint32_t)otlp_item_spans(it);

	if (o->finished || !o->cfg.signal[OTLP_TRACES].enabled ||
	    o->cfg.sampler == OTLP_SAMPLE_ALWAYS_OFF)
		return;
	otlp_trace_id(&o->ids, trace_key, trace);
	if (o->cfg.sampler == OTLP_SAMPLE_RATIO && !otlp_sample(trace, o->cfg.sampler_ratio))
		return;
	if (!otlp_exporter_has_room(o->exp, OTLP_TRACES, o->batch_spans + spans)) {
		otlp_exporter_count_drop(o->exp, OTLP_TRACES, OTLP_DROP_QUEUE_FULL, spans);
		return;
	}
	if (!o->n_batch)
		o->batch_since_ns = now_ns;
	o->batch[o->n_batch++] = *it;
	o->batch_spans += spans;
	if (o->n_batch >= o->cfg.max_export_batch || o->batch_spans >= o->cfg.max_export_batch ||
	    now_ns - o->batch_since_ns >= ms_ns(o->cfg.schedule_delay_ms))
		flush_spans(o);
}

static void otlp_attached(void *self, const struct tm_target *t)
{
	struct otlp_sink *o = self;

	o->ctx.resource = t->resource;
	o->ctx.model = t->model ? t->model : "";
}

static void otlp_request(void *self, const struct req_span *r, int64_t off)
{
	struct otlp_sink *o = self;
	struct otlp_item it = { .is_request = true, .req = *r };

	o->ctx.realtime_offset_ns = off;
	add_item(o, &it, r->id, r->end_ns);
}

static void otlp_engine_event(void *self, const struct engine_event *e, int64_t off)
{
	struct otlp_sink *o = self;
	struct otlp_item it = { .is_request = false };

	o->ctx.realtime_offset_ns = off;
	it.engine.ev = *e;
	it.engine.number = ++o->engine_events;
	snprintf(it.engine.text, sizeof(it.engine.text), "%s", e->text ? e->text : "");
	it.engine.ev.text = NULL;
	/* the sampler decides by the trace the span belongs to */
	add_item(o, &it, e->request_id ? e->request_id : (1ull << 63) | it.engine.number,
		 e->ts_ns + e->duration_ns);
}

static void export_metrics(struct otlp_sink *o, const struct tm_snapshot *snap, bool final)
{
	if (!snap->metrics)
		return;
	o->ctx.realtime_offset_ns = snap->realtime_offset_ns;
	otlp_export_metrics(o->exp, &o->cfg, &o->ctx, snap->metrics, &o->mx, snap->now_ns, final,
			    (uintptr_t)o);
}

static void otlp_interval(void *self, const struct tm_snapshot *snap)
{
	struct otlp_sink *o = self;

	if (o->n_batch && snap->now_ns - o->batch_since_ns >= ms_ns(o->cfg.schedule_delay_ms))
		flush_spans(o);
	export_metrics(o, snap, false);
}

/* The final flush: what is batched, the metrics as they end, then the queue until the deadline. */
static void otlp_summary(void *self, const struct tm_snapshot *snap)
{
	struct otlp_sink *o = self;
	struct otlp_stats st;

	if (o->finished)
		return;
	flush_spans(o);
	export_metrics(o, snap, true);
	o->finished = true;
	if (o->shared)
		return; /* the owner flushes the sender */
	otlp_exporter_shutdown(o->exp, o->cfg.flush_timeout_ms, &st);
	o->exp = NULL;
	o->final = st;
	otlp_print_stats(stderr, &st);
}

static void otlp_destroy(void *self)
{
	struct otlp_sink *o = self;

	if (!o->shared)
		otlp_exporter_shutdown(o->exp, 0, NULL);
	free(o->batch);
	free(o->mx.prev);
	free(o);
}

static const struct sink_ops otlp_ops = {
	.attached = otlp_attached,
	.request = otlp_request,
	.engine_event = otlp_engine_event,
	.interval = otlp_interval,
	.summary = otlp_summary,
	.destroy = otlp_destroy,
};

int sink_otlp_new(const struct otlp_config *c, struct otlp_exporter *shared, struct sink *s,
		  char *err, size_t errlen)
{
	struct otlp_sink *o = calloc(1, sizeof(*o));

	if (!o || !(o->batch = calloc(c->max_export_batch ? c->max_export_batch : 1,
				      sizeof(*o->batch))) ||
	    (c->delta && !(o->mx.prev = calloc(1, sizeof(*o->mx.prev))))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	o->cfg = *c;
	otlp_idgen_init(&o->ids);
	o->ctx.ids = &o->ids;
	o->ctx.model = "";
	o->shared = shared != NULL;
	o->exp = shared ? shared : otlp_exporter_start(c, err, errlen);
	if (!o->exp)
		goto fail;
	*s = (struct sink){ &otlp_ops, o };
	return 0;
fail:
	if (o) {
		free(o->batch);
		free(o->mx.prev);
	}
	free(o);
	return -ENOMEM;
}

void otlp_health_record(struct metrics *m, const struct otlp_config *cfg,
			const struct otlp_stats *st, struct otlp_stats *reported, uint64_t batched,
			uint64_t now_ns)
{
	static const enum instr_id exported_id[OTLP_SIGNALS] = { M_OTLP_SPANS, M_OTLP_POINTS };

	for (int sig = 0; sig < OTLP_SIGNALS; sig++) {
		const struct otlp_signal_stats *cur = &st->signal[sig];
		struct otlp_signal_stats *last = &reported->signal[sig];
		const char *name = otlp_signal_name((enum otlp_signal)sig);

		if (!cfg->signal[sig].enabled)
			continue;
		/* exported and failures exist from the start; a drop reason once it happens */
		metrics_add_total(m, exported_id[sig], cur->exported, &last->exported, now_ns, NULL);
		for (int why = 0; why < OTLP_DROP_MAX; why++)
			if (cur->dropped[why] > last->dropped[why])
				metrics_add_total(m, exported_id[sig], cur->dropped[why],
						  &last->dropped[why], now_ns, "error.type",
						  otlp_drop_name((enum otlp_drop)why), NULL);
		metrics_add_total(m, M_OTLP_FAILURES, cur->failures, &last->failures, now_ns, "signal",
				  name, NULL);
	}
	if (cfg->signal[OTLP_TRACES].enabled) {
		metrics_set(m, M_OTLP_QUEUE_SIZE, (double)(st->signal[OTLP_TRACES].queued + batched),
			    now_ns, NULL);
		metrics_set(m, M_OTLP_QUEUE_CAPACITY, cfg->max_queue_size, now_ns, NULL);
	}
}

void sink_otlp_health(struct sink *s, struct metrics *m, uint64_t now_ns)
{
	struct otlp_sink *o = s->self;
	struct otlp_stats st;

	if (o->shared)
		return; /* a shared sender's health is its owner's */
	if (o->exp)
		otlp_exporter_stats(o->exp, &st);
	else
		st = o->final;
	otlp_health_record(m, &o->cfg, &st, &o->reported, o->batch_spans, now_ns);
}
