// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/json.h"
#include "lib/text.h"
#include "lib/util.h"

/* bucket boundaries the OpenTelemetry semantic conventions advise */
static const double http_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
				      0.75, 1, 2.5, 5, 7.5, 10 };
static const double genai_duration_bounds[] = { 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64,
						1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92 };
static const double ttft_bounds[] = { 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
				      0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0 };
static const double tpot_bounds[] = { 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
				      0.5, 0.75, 1.0, 2.5 };
static const double token_bounds[] = { 1, 4, 16, 64, 256, 1024, 4096, 16384, 65536,
				       262144, 1048576, 4194304, 16777216, 67108864 };
/* ours: engine steps run from tens of microseconds to seconds */
static const double step_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				      0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };
static const double batch_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048,
				       4096, 8192 };
static const double rate_bounds[] = { 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
				      10000 };

#define H(b) b, (int)ARRAY_SIZE(b)

static const struct instrument instruments[M_INSTR_MAX] = {
	[M_HTTP_DURATION] = { "http.server.request.duration", "s",
		"Duration of HTTP server requests", INSTR_HISTOGRAM, H(http_bounds) },
	[M_HTTP_ACTIVE] = { "http.server.active_requests", "{request}",
		"Number of active HTTP server requests", INSTR_GAUGE, NULL, 0 },
	[M_GENAI_DURATION] = { "gen_ai.server.request.duration", "s",
		"Generative AI server request duration", INSTR_HISTOGRAM, H(genai_duration_bounds) },
	[M_GENAI_TTFT] = { "gen_ai.server.time_to_first_token", "s",
		"Time to generate the first token", INSTR_HISTOGRAM, H(ttft_bounds) },
	[M_GENAI_TPOT] = { "gen_ai.server.time_per_output_token", "s",
		"Time per output token after the first", INSTR_HISTOGRAM, H(tpot_bounds) },
	[M_GENAI_TOKENS] = { "gen_ai.client.token.usage", "{token}",
		"Tokens per request, by gen_ai.token.type", INSTR_HISTOGRAM, H(token_bounds) },
	[M_INF_REQUESTS] = { "llmtap.inference.requests", "{request}",
		"Inference requests", INSTR_COUNTER, NULL, 0 },
	[M_INF_DURATION] = { "llmtap.inference.request.duration", "s",
		"Inference request duration, first byte to last", INSTR_HISTOGRAM, H(genai_duration_bounds) },
	[M_INF_CONCURRENT] = { "llmtap.inference.concurrent_requests", "{request}",
		"Inference requests in flight", INSTR_GAUGE, NULL, 0 },
	[M_INF_TOKENS_PER_S] = { "llmtap.inference.tokens_per_second", "{token}/s",
		"Output tokens per second of generation, per request", INSTR_HISTOGRAM, H(rate_bounds) },
	[M_INF_ENGINE_DURATION] = { "llmtap.inference.duration", "s",
		"Time a request spent on its slot, prefill and generation", INSTR_HISTOGRAM,
		H(genai_duration_bounds) },
	[M_INF_TTFT] = { "llmtap.inference.time_to_first_token", "s",
		"Time from the request's first byte to its first token", INSTR_HISTOGRAM, H(ttft_bounds) },
	[M_QUEUE_DURATION] = { "llmtap.request.queue.duration", "s",
		"Time a request waited for a free slot", INSTR_HISTOGRAM, H(genai_duration_bounds) },
	[M_PREFILL_DURATION] = { "llmtap.request.prefill.duration", "s",
		"Prompt processing time per request", INSTR_HISTOGRAM, H(genai_duration_bounds) },
	[M_GENERATION_DURATION] = { "llmtap.request.generation.duration", "s",
		"Generation time per request, first token to last", INSTR_HISTOGRAM,
		H(genai_duration_bounds) },
	[M_STEP_DURATION] = { "llmtap.engine.step.duration", "s",
		"Duration of one llama_decode / llama_encode call, entry to return: the step's submit "
		"time (on an asynchronous backend the work may go on after it)", INSTR_HISTOGRAM,
		H(step_bounds) },
	[M_STEP_COMPUTE] = { "llmtap.engine.step.compute.duration", "s",
		"Compute time of one engine step: from its llama_decode / llama_encode entry to the "
		"return of its context's first synchronizing call when that call waited, else to the "
		"step's own return (CPU: the same as llmtap.engine.step.duration); steps whose "
		"compute time is unknown record no point", INSTR_HISTOGRAM, H(step_bounds) },
	[M_STEP_TOKENS] = { "llmtap.engine.batch.size", "{token}",
		"Tokens in one engine step's batch", INSTR_HISTOGRAM, H(batch_bounds) },
	[M_STEPS] = { "llmtap.engine.steps", "{step}", "Engine steps", INSTR_COUNTER, NULL, 0 },
	[M_SAMPLE_DURATION] = { "llmtap.engine.sample.duration", "s",
		"Duration of one common_sampler_sample call: one token chosen from the logits "
		"(grammars and long sampler chains show here)", INSTR_HISTOGRAM, H(step_bounds) },
	[M_KV_CELLS] = { "llmtap.kv_cache.cells_used", "{cell}",
		"KV-cache positions held by the sequences llmtap followed", INSTR_GAUGE, NULL, 0 },
	[M_KV_RATIO] = { "llmtap.kv_cache.usage_ratio", "1",
		"KV-cache cells used over the context size", INSTR_GAUGE, NULL, 0 },
	[M_KV_BYTES_USED] = { "llmtap.kv_cache.memory.usage", "By",
		"KV-cache bytes held by the sequences llmtap followed: cells used times the bytes "
		"of K and V per cell over all layers", INSTR_GAUGE, NULL, 0 },
	[M_KV_BYTES_CAPACITY] = { "llmtap.kv_cache.memory.capacity", "By",
		"KV-cache bytes llama.cpp allocated for the context", INSTR_GAUGE, NULL, 0 },
	[M_QUEUED_TASKS] = { "llmtap.queue.tasks", "{task}",
		"Tasks waiting for a slot", INSTR_GAUGE, NULL, 0 },
	[M_SLOTS_BUSY] = { "llmtap.slots.busy", "{slot}", "Slots running a task", INSTR_GAUGE, NULL, 0 },
	[M_CONTEXT_SHIFTS] = { "llmtap.context.shifts", "{shift}",
		"Context shifts (tokens discarded to continue a sequence)", INSTR_COUNTER, NULL, 0 },
	[M_CACHE_OPS] = { "llmtap.prompt_cache.operations", "{operation}",
		"Sequence state saves and loads", INSTR_COUNTER, NULL, 0 },
	[M_CACHE_BYTES] = { "llmtap.prompt_cache.bytes", "By",
		"Bytes of sequence state saved and loaded", INSTR_COUNTER, NULL, 0 },
	[M_MODEL_LOAD] = { "llmtap.model.load.duration", "s",
		"Model load time", INSTR_HISTOGRAM, H(genai_duration_bounds) },
	[M_PROCESS_MEMORY] = { "process.memory.usage", "By",
		"The traced process's resident memory", INSTR_GAUGE, NULL, 0 },
	[M_OTLP_SPANS] = { "otel.sdk.exporter.span.exported", "{span}",
		"Spans the OTLP exporter finished with; error.type says why one was dropped",
		INSTR_COUNTER, NULL, 0 },
	[M_OTLP_POINTS] = { "otel.sdk.exporter.metric_data_point.exported", "{data_point}",
		"Metric data points the OTLP exporter finished with; error.type says why one was dropped",
		INSTR_COUNTER, NULL, 0 },
	[M_OTLP_QUEUE_SIZE] = { "otel.sdk.processor.span.queue.size", "{span}",
		"Spans waiting to be exported", INSTR_GAUGE, NULL, 0 },
	[M_OTLP_QUEUE_CAPACITY] = { "otel.sdk.processor.span.queue.capacity", "{span}",
		"Spans the export queue holds at most", INSTR_GAUGE, NULL, 0 },
	[M_OTLP_FAILURES] = { "llmtap.otlp.export.failures", "{request}",
		"OTLP export requests that failed, retried or not", INSTR_COUNTER, NULL, 0 },
	[M_DAEMON_TARGETS] = { "llmtap.daemon.targets", "{process}",
		"Processes the daemon traces now", INSTR_GAUGE, NULL, 0 },
	[M_DAEMON_ATTACHES] = { "llmtap.daemon.attaches", "{process}",
		"Processes the daemon attached to (outcome attached) or could not (outcome failed)",
		INSTR_COUNTER, NULL, 0 },
	[M_DAEMON_DETACHES] = { "llmtap.daemon.detaches", "{process}",
		"Processes the daemon detached from", INSTR_COUNTER, NULL, 0 },
	[M_DAEMON_EXECS_LOST] = { "llmtap.daemon.exec_events.lost", "{event}",
		"Execs the daemon's watcher could not report (found by the next rescan instead)",
		INSTR_COUNTER, NULL, 0 },
	[M_EVENTS_LOST] = { "llmtap.events.lost", "{event}",
		"Probe events lost (ring buffer full)", INSTR_COUNTER, NULL, 0 },
};

const struct instrument *metric_instrument(enum instr_id id)
{
	return id < M_INSTR_MAX ? &instruments[id] : NULL;
}

/*
 * Collect (key, value) pairs until a NULL key; NULL values are left out. Sorted
 * by key, so the same attributes in another order are the same point.
 */
static int collect_attrs(va_list ap, struct metric_attr *attrs)
{
	const char *key, *value;
	int n = 0;

	while ((key = va_arg(ap, const char *))) {
		int i;

		value = va_arg(ap, const char *);
		if (!value || n >= METRIC_MAX_ATTRS)
			continue;
		for (i = n; i > 0 && strcmp(attrs[i - 1].key, key) > 0; i--)
			attrs[i] = attrs[i - 1];
		attrs[i].key = key;
		/* cut on a character boundary, invalid bytes replaced: a label must be UTF-8 */
		utf8_sanitize(attrs[i].value, sizeof(attrs[i].value), value, strlen(value));
		n++;
	}
	return n;
}

bool metric_attrs_equal(const struct metric_attr *a, int n_a, const struct metric_attr *b, int n_b)
{
	if (n_a != n_b)
		return false;
	for (int i = 0; i < n_a; i++)
		if (strcmp(a[i].key, b[i].key) || strcmp(a[i].value, b[i].value))
			return false;
	return true;
}

static struct metric_point *lookup(struct metrics *m, enum instr_id id,
				   const struct metric_attr *attrs, int n, uint64_t now_ns,
				   bool create)
{
	struct metric_point *p;

	for (int i = 0; i < m->n_points; i++) {
		p = &m->points[i];
		if (p->id == id && metric_attrs_equal(p->attrs, p->n_attrs, attrs, n))
			return p;
	}
	if (!create)
		return NULL;
	if (m->n_points >= METRIC_MAX_POINTS) {
		m->dropped++;
		return NULL;
	}
	p = &m->points[m->n_points++];
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->n_attrs = n;
	memcpy(p->attrs, attrs, sizeof(attrs[0]) * (size_t)n);
	p->start_ns = now_ns;
	return p;
}

static void update(struct metrics *m, enum instr_id id, double v, uint64_t now_ns, va_list ap)
{
	struct metric_attr attrs[METRIC_MAX_ATTRS];
	const struct instrument *in = &instruments[id];
	int n = collect_attrs(ap, attrs);
	struct metric_point *p;
	int b;

	if (!isfinite(v))
		return; /* a NaN or an infinity would poison the point for good */
	p = lookup(m, id, attrs, n, now_ns, true);
	if (!p)
		return;
	switch (in->kind) {
	case INSTR_COUNTER:
		p->value += v;
		break;
	case INSTR_GAUGE:
		p->value = v;
		break;
	case INSTR_HISTOGRAM:
		for (b = 0; b < in->n_bounds && v > in->bounds[b]; b++)
			;
		p->buckets[b]++;
		if (!p->count || v < p->min)
			p->min = v;
		if (!p->count || v > p->max)
			p->max = v;
		p->count++;
		p->sum += v;
		break;
	}
}

#define UPDATE(kind_check)                      \
	va_list ap;                             \
	if (id >= M_INSTR_MAX || (kind_check))  \
		return;                         \
	va_start(ap, now_ns);                   \
	update(m, id, v, now_ns, ap);           \
	va_end(ap)

void metrics_add(struct metrics *m, enum instr_id id, double v, uint64_t now_ns, ...)
{
	UPDATE(instruments[id].kind != INSTR_COUNTER || v < 0);
}

void metrics_set(struct metrics *m, enum instr_id id, double v, uint64_t now_ns, ...)
{
	UPDATE(instruments[id].kind != INSTR_GAUGE);
}

void metrics_record(struct metrics *m, enum instr_id id, double v, uint64_t now_ns, ...)
{
	UPDATE(instruments[id].kind != INSTR_HISTOGRAM);
}

void metrics_add_total(struct metrics *m, enum instr_id id, uint64_t total, uint64_t *reported,
		       uint64_t now_ns, ...)
{
	double v = total > *reported ? (double)(total - *reported) : 0;

	*reported = total;
	UPDATE(instruments[id].kind != INSTR_COUNTER);
}

const struct metric_point *metrics_find(const struct metrics *m, enum instr_id id, ...)
{
	struct metric_attr attrs[METRIC_MAX_ATTRS];
	va_list ap;
	int n;

	va_start(ap, id);
	n = collect_attrs(ap, attrs);
	va_end(ap);
	return lookup((struct metrics *)m, id, attrs, n, 0, false);
}

void metrics_write_json(const struct metrics *m, FILE *out, int64_t off, uint64_t now_ns)
{
	static const char *const kinds[] = { "counter", "gauge", "histogram" };

	fputc('[', out);
	for (int i = 0; i < m->n_points; i++) {
		const struct metric_point *p = &m->points[i];
		const struct instrument *in = &instruments[p->id];

		fprintf(out, "%s{\"name\":\"%s\",\"unit\":\"%s\",\"type\":\"%s\",\"attributes\":{",
			i ? "," : "", in->name, in->unit, kinds[in->kind]);
		for (int a = 0; a < p->n_attrs; a++) {
			fprintf(out, "%s\"%s\":", a ? "," : "", p->attrs[a].key);
			json_write_string(out, p->attrs[a].value);
		}
		fprintf(out, "},\"start_unix_nano\":%lld,\"time_unix_nano\":%lld",
			mono_to_unix_ns(p->start_ns, off), mono_to_unix_ns(now_ns, off));
		if (in->kind != INSTR_HISTOGRAM) {
			fprintf(out, ",\"value\":%.15g}", p->value);
			continue;
		}
		fprintf(out, ",\"count\":%llu,\"sum\":%.15g,\"min\":%.15g,\"max\":%.15g,\"bounds\":[",
			(unsigned long long)p->count, p->sum, p->min, p->max);
		for (int b = 0; b < in->n_bounds; b++)
			fprintf(out, "%s%.15g", b ? "," : "", in->bounds[b]);
		fputs("],\"bucket_counts\":[", out);
		for (int b = 0; b <= in->n_bounds; b++)
			fprintf(out, "%s%llu", b ? "," : "", (unsigned long long)p->buckets[b]);
		fputs("]}", out);
	}
	fputc(']', out);
}
