/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The telemetry model as OTLP protobuf request bodies (ExportTraceServiceRequest,
 * ExportMetricsServiceRequest), packed with the protobuf-c code protoc-c generates
 * from proto/. Pure: no I/O, no clocks.
 */
#ifndef LLMTAP_OTLP_ENCODE_H
#define LLMTAP_OTLP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "model/telemetry.h"

/* A request's trace and span ids, derived from a per-session key and llmtap's
 * request id, so that engine events charged to a request find its span. */
struct otlp_idgen {
	uint64_t key[2];
};

enum otlp_span_role { OTLP_ROLE_SERVER = 0, OTLP_ROLE_QUEUE, OTLP_ROLE_PREFILL,
		      OTLP_ROLE_GENERATION, OTLP_ROLE_EVENT0 };

/* key from getrandom (a fixed key if that fails) */
void otlp_idgen_init(struct otlp_idgen *g);
void otlp_trace_id(const struct otlp_idgen *g, uint64_t request_id, uint8_t id[16]);
/* role >= OTLP_ROLE_EVENT0: role - OTLP_ROLE_EVENT0 is an event's number */
void otlp_span_id(const struct otlp_idgen *g, uint64_t request_id, uint64_t role, uint8_t id[8]);

/* The traceidratio sampler's decision for a trace id (deterministic). */
bool otlp_sample(const uint8_t trace_id[16], double ratio);

/* What a trace request carries: requests and engine events. */
struct otlp_item {
	bool is_request;
	union {
		struct req_span req;
		struct {
			struct engine_event ev;
			uint64_t number;  /* distinct per session: its span id */
			char text[LLMTAP_PATH_LEN];
		} engine;
	};
};

struct otlp_encode_ctx {
	const struct resource *resource;
	const char *model;           /* gen_ai.request.model, "" unknown */
	const struct otlp_idgen *ids;
	int64_t realtime_offset_ns;  /* CLOCK_MONOTONIC -> Unix time */
};

/* Spans an item becomes (a request: itself and its queue/prefill/generation children). */
int otlp_item_spans(const struct otlp_item *it);

/*
 * Pack items into an ExportTraceServiceRequest. *buf is malloc'ed (free it).
 * Returns 0 or -ENOMEM.
 */
int otlp_encode_traces(const struct otlp_encode_ctx *ctx, const struct otlp_item *items, int n,
		       uint8_t **buf, size_t *len);

/*
 * Pack every point of m into an ExportMetricsServiceRequest at now_ns. With
 * prev (delta temporality), sums and histograms are the change since prev,
 * taken at prev_ns, and unchanged ones are left out. *n_points: how many went in.
 */
int otlp_encode_metrics(const struct otlp_encode_ctx *ctx, const struct metrics *m,
			const struct metrics *prev, uint64_t prev_ns, uint64_t now_ns,
			uint8_t **buf, size_t *len, uint32_t *n_points);

#endif
