/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The telemetry model: engine-step spans and the metric instruments derived
 * from them. Probes feed it decoded steps; sinks (console, JSON, later OTLP
 * and Prometheus) read it through struct sink and never see probes.
 */
#ifndef LLMTAP_TELEMETRY_H
#define LLMTAP_TELEMETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "event.h"
#include "hist.h"

/* batch-size classes for the live "batch mix" */
enum { BATCH_1 = 0, BATCH_2_4, BATCH_5_16, BATCH_17_64, BATCH_65_512, BATCH_513_UP, BATCH_CLASSES };

/* Aggregates over one interval or the whole session. */
struct tm_window {
	uint64_t start_ns; /* CLOCK_MONOTONIC */
	uint64_t end_ns;
	uint64_t steps;          /* llmtap.engine.steps */
	uint64_t step_errors;    /* steps with ret != 0 */
	uint64_t tokens;         /* llmtap.engine.batch.tokens (sum) */
	uint64_t outputs;
	uint64_t by_kind[STEP_KIND_MAX];
	uint64_t batch_mix[BATCH_CLASSES];
	uint64_t lost;           /* events lost (ring buffer full, missed entries) */
	struct hist duration_ns; /* llmtap.engine.step.duration */
	struct hist batch_tokens;/* llmtap.engine.batch.size */
};

struct tm_target {
	int pid;
	const char *comm;
	const char *library;
	bool in_executable;
	const char *probes; /* "llama_decode,llama_encode" */
};

struct tm_snapshot {
	const struct tm_target *target;
	const struct tm_window *interval; /* NULL in a summary */
	const struct tm_window *total;
	int64_t realtime_offset_ns; /* add to CLOCK_MONOTONIC to get the Unix time */
	const char *end_reason;     /* summary only */
};

struct sink_ops {
	void (*attached)(void *self, const struct tm_target *t);
	void (*step)(void *self, const struct step *s, int64_t realtime_offset_ns);
	void (*interval)(void *self, const struct tm_snapshot *snap);
	void (*summary)(void *self, const struct tm_snapshot *snap);
	void (*destroy)(void *self);
};

struct sink {
	const struct sink_ops *ops;
	void *self;
};

#define TM_MAX_SINKS 4

struct telemetry {
	struct tm_target target;
	struct tm_window interval;
	struct tm_window total;
	uint64_t lost_seen; /* cumulative lost count at the last tick */
	int64_t realtime_offset_ns;
	struct sink sinks[TM_MAX_SINKS];
	int n_sinks;
};

void telemetry_init(struct telemetry *tm, const struct tm_target *t, uint64_t now_ns);
int telemetry_add_sink(struct telemetry *tm, struct sink s);
void telemetry_attached(struct telemetry *tm);
void telemetry_step(struct telemetry *tm, const struct step *s);
/* lost_total: the probes' cumulative lost-event count. */
void telemetry_tick(struct telemetry *tm, uint64_t now_ns, uint64_t lost_total);
void telemetry_finish(struct telemetry *tm, uint64_t now_ns, uint64_t lost_total,
		      const char *reason);
void telemetry_destroy(struct telemetry *tm);

int batch_class(int32_t n_tokens);
const char *batch_class_name(int c);
uint64_t monotonic_ns(void);
int64_t realtime_offset_ns(void);

#endif
