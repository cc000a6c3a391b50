/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Metric instruments with attributes, cumulative since the start: the part
 * of the telemetry model that exporters (JSON now, OTLP and Prometheus later)
 * read. Names follow OpenTelemetry's conventions where one exists; the rest
 * live under "llmtap.". Attribute values must be bounded (no ids, no text).
 */
#ifndef LLMTAP_METRICS_H
#define LLMTAP_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum instr_kind {
	INSTR_COUNTER = 0, /* monotonic sum */
	INSTR_GAUGE,       /* last value */
	INSTR_HISTOGRAM,   /* explicit buckets */
};

enum instr_id {
	M_HTTP_DURATION = 0,   /* http.server.request.duration */
	M_HTTP_ACTIVE,         /* http.server.active_requests */
	M_GENAI_DURATION,      /* gen_ai.server.request.duration */
	M_GENAI_TTFT,          /* gen_ai.server.time_to_first_token */
	M_GENAI_TPOT,          /* gen_ai.server.time_per_output_token */
	M_GENAI_TOKENS,        /* gen_ai.client.token.usage (by gen_ai.token.type) */
	M_INF_REQUESTS,        /* llmtap.inference.requests */
	M_INF_DURATION,        /* llmtap.inference.request.duration */
	M_INF_CONCURRENT,      /* llmtap.inference.concurrent_requests */
	M_INF_TOKENS_PER_S,    /* llmtap.inference.tokens_per_second */
	M_INF_ENGINE_DURATION, /* llmtap.inference.duration */
	M_INF_TTFT,            /* llmtap.inference.time_to_first_token */
	M_QUEUE_DURATION,      /* llmtap.request.queue.duration */
	M_PREFILL_DURATION,    /* llmtap.request.prefill.duration */
	M_GENERATION_DURATION, /* llmtap.request.generation.duration */
	M_STEP_DURATION,       /* llmtap.engine.step.duration */
	M_STEP_COMPUTE,        /* llmtap.engine.step.compute.duration */
	M_STEP_TOKENS,         /* llmtap.engine.batch.size */
	M_STEPS,               /* llmtap.engine.steps */
	M_SAMPLE_DURATION,     /* llmtap.engine.sample.duration */
	M_KV_CELLS,            /* llmtap.kv_cache.cells_used */
	M_KV_RATIO,            /* llmtap.kv_cache.usage_ratio */
	M_KV_BYTES_USED,       /* llmtap.kv_cache.memory.usage */
	M_KV_BYTES_CAPACITY,   /* llmtap.kv_cache.memory.capacity */
	M_QUEUED_TASKS,        /* llmtap.queue.tasks */
	M_SLOTS_BUSY,          /* llmtap.slots.busy */
	M_CONTEXT_SHIFTS,      /* llmtap.context.shifts */
	M_CACHE_OPS,           /* llmtap.prompt_cache.operations */
	M_CACHE_BYTES,         /* llmtap.prompt_cache.bytes */
	M_MODEL_LOAD,          /* llmtap.model.load.duration */
	M_EVENTS_LOST,         /* llmtap.events.lost */
	M_PROCESS_MEMORY,      /* process.memory.usage (the target's resident memory) */
	M_OTLP_SPANS,          /* otel.sdk.exporter.span.exported (error.type: why dropped) */
	M_OTLP_POINTS,         /* otel.sdk.exporter.metric_data_point.exported */
	M_OTLP_QUEUE_SIZE,     /* otel.sdk.processor.span.queue.size */
	M_OTLP_QUEUE_CAPACITY, /* otel.sdk.processor.span.queue.capacity */
	M_OTLP_FAILURES,       /* llmtap.otlp.export.failures (attempts, by signal) */
	M_DAEMON_TARGETS,      /* llmtap.daemon.targets */
	M_DAEMON_ATTACHES,     /* llmtap.daemon.attaches (outcome: attached, failed) */
	M_DAEMON_DETACHES,     /* llmtap.daemon.detaches */
	M_DAEMON_EXECS_LOST,   /* llmtap.daemon.exec_events.lost */
	M_INSTR_MAX,
};

struct instrument {
	const char *name;
	const char *unit;
	const char *description;
	enum instr_kind kind;
	const double *bounds; /* histogram bucket upper bounds */
	int n_bounds;
};

#define METRIC_MAX_ATTRS 6
#define METRIC_MAX_BOUNDS 16
#define METRIC_MAX_POINTS 512

struct metric_attr {
	const char *key;   /* static */
	char value[64];
};

struct metric_point {
	enum instr_id id;
	int n_attrs;
	struct metric_attr attrs[METRIC_MAX_ATTRS];
	uint64_t start_ns; /* CLOCK_MONOTONIC, when the point was first recorded */
	double value;      /* counter sum or gauge value */
	uint64_t count;    /* histogram */
	double sum, min, max;
	uint64_t buckets[METRIC_MAX_BOUNDS + 1];
};

struct metrics {
	struct metric_point points[METRIC_MAX_POINTS];
	int n_points;
	uint64_t dropped; /* measurements with no room for a new attribute set */
};

const struct instrument *metric_instrument(enum instr_id id);

/* Attributes: pairs of (key, value) strings, NULL-terminated; a NULL value skips the key. */
void metrics_add(struct metrics *m, enum instr_id id, double v, uint64_t now_ns, ...);
void metrics_set(struct metrics *m, enum instr_id id, double v, uint64_t now_ns, ...);
void metrics_record(struct metrics *m, enum instr_id id, double v, uint64_t now_ns, ...);
/* A counter kept elsewhere as a running total: add what it grew by since *reported
 * (0 creates the point), then remember it. */
void metrics_add_total(struct metrics *m, enum instr_id id, uint64_t total, uint64_t *reported,
		       uint64_t now_ns, ...);

/* Two attribute sets, each sorted by key as a point holds them, are the same. */
bool metric_attrs_equal(const struct metric_attr *a, int n_a, const struct metric_attr *b, int n_b);

/* The point of an instrument with exactly these attributes, or NULL (for tests). */
const struct metric_point *metrics_find(const struct metrics *m, enum instr_id id, ...);

/* Write every point as a JSON array. */
void metrics_write_json(const struct metrics *m, FILE *out, int64_t realtime_offset_ns,
			uint64_t now_ns);

#endif
