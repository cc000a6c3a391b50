/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The sink interface: what the telemetry model (model/telemetry.h) hands on as
 * it goes. A sink is a table of callbacks, any of them NULL when it does not
 * care, and its own state, passed back as self. Sinks read the model's types
 * only and never see probes; the constructors are in sink/sinks.h.
 */
#ifndef LLMTAP_SINK_H
#define LLMTAP_SINK_H

#include <stdint.h>

struct engine_event;
struct req_span;
struct step;
struct tm_snapshot;
struct tm_target;

struct sink_ops {
	void (*attached)(void *self, const struct tm_target *t);
	void (*step)(void *self, const struct step *s, int64_t realtime_offset_ns);
	void (*request)(void *self, const struct req_span *r, int64_t realtime_offset_ns);
	void (*engine_event)(void *self, const struct engine_event *e, int64_t realtime_offset_ns);
	void (*interval)(void *self, const struct tm_snapshot *snap);
	void (*summary)(void *self, const struct tm_snapshot *snap);
	/*
	 * A layer turned off while tracing: its records did not fit the traced build
	 * (model/layercheck.h). layer: "server"; why: what failed; t->layers: the
	 * layers left, t->llama_version: the build.
	 */
	void (*layer_off)(void *self, const struct tm_target *t, const char *layer, const char *why);
	void (*destroy)(void *self);
};

struct sink {
	const struct sink_ops *ops;
	void *self;
};

#endif
