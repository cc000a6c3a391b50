/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The sinks llmtap has, each made into a struct sink (sink/sink.h) for
 * telemetry_add_sink: console, JSON lines, top, trace-event file, tail
 * capture, OTLP.
 */
#ifndef LLMTAP_SINKS_H
#define LLMTAP_SINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sink/sink.h"

struct metrics;
struct otlp_config;

/*
 * Every constructor fills *s and returns 0, or returns -errno with err saying why.
 */

/* Live one-line-per-interval view and a summary block, for people. */
int sink_console_new(FILE *out, struct sink *s, char *err, size_t errlen);
/* One JSON object per line: attach, step (when steps), interval, summary. */
int sink_json_new(FILE *out, bool steps, struct sink *s, char *err, size_t errlen);

/* `llmtap top`: a full-screen ANSI view redrawn each interval; keys via sink_top_key. */
enum top_sort { TOP_SORT_SLOT = 0, TOP_SORT_ELAPSED, TOP_SORT_KV, TOP_SORT_MAX };
int sink_top_new(FILE *out, struct sink *s, char *err, size_t errlen);
/* 'p' pauses or resumes the redraws, 's' cycles the slot order. */
void sink_top_key(struct sink *s, int key);

/* A Chrome / Perfetto trace-event file at path (written to path.tmp, renamed when done). */
int sink_trace_new(const char *path, struct sink *s, char *err, size_t errlen);

/*
 * Tail capture: the same events kept in memory for the last window_ns (and at
 * most max_bytes), written to DIR/llmtap-tail-PID-TIME-N.json by sink_tail_dump()
 * or when a request's time to first token exceeds ttft_ns (0: no threshold),
 * at most once per window for the threshold.
 */
int sink_tail_new(const char *dir, uint64_t window_ns, uint64_t ttft_ns, size_t max_bytes,
		  struct sink *s, char *err, size_t errlen);
void sink_tail_dump(struct sink *s, const char *reason);

struct otlp_exporter;
/*
 * OTLP/HTTP export of request spans, engine events and the metrics (see
 * otlp_config.h for where to); the final flush happens in the summary. With
 * shared, the sink queues on that sender (several sinks may), which its owner
 * shuts down; NULL: the sink starts and stops its own.
 */
int sink_otlp_new(const struct otlp_config *c, struct otlp_exporter *shared, struct sink *s,
		  char *err, size_t errlen);
/* The exporter's own health (otel.sdk.* and llmtap.otlp.*) into m. */
void sink_otlp_health(struct sink *s, struct metrics *m, uint64_t now_ns);
struct otlp_stats;
/* The same from a sender's counts st; reported: what m holds already (updated);
 * batched: spans not yet handed to the sender. */
void otlp_health_record(struct metrics *m, const struct otlp_config *cfg,
			const struct otlp_stats *st, struct otlp_stats *reported, uint64_t batched,
			uint64_t now_ns);

#endif
