/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Decoding ring-buffer records into the loader's own engine-step model. */
#ifndef LLMTAP_EVENT_H
#define LLMTAP_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "llmtap_events.h"

enum step_kind {
	STEP_PREFILL = 0,   /* every sequence feeds prompt tokens */
	STEP_GENERATE,      /* every sequence feeds one sampled token */
	STEP_MIXED,
	STEP_KIND_MAX,
};

/* a step's runs over all its records: bounded by the sequences and their splits */
#define STEP_MAX_RUNS (2 * LLMTAP_MAX_SEQ)

struct step {
	uint32_t pid;
	uint32_t tid;
	uint64_t ctx;
	uint64_t start_ns; /* CLOCK_MONOTONIC */
	uint64_t end_ns;
	int32_t ret;
	uint32_t op; /* enum llmtap_step_op */
	int32_t n_tokens;
	uint32_t n_outputs;
	uint32_t n_seqs;
	uint32_t flags;
	enum step_kind kind;
	uint32_t n_runs;
	struct llmtap_run runs[STEP_MAX_RUNS];  /* all the step's runs, over its records */
	uint64_t request_ids[STEP_MAX_RUNS]; /* the request each run served, 0 = none (correlator) */
	/*
	 * When the step's work was done (model/stepsync.h): end_ns (the submit's
	 * return) when its first synchronizing call did not wait, that call's return
	 * when it did; 0 = unknown (no sync before its context's next step or the
	 * next tick, or the sync was preempted). Filled before telemetry sees the step.
	 */
	uint64_t compute_end_ns;
};

/*
 * A step with more runs than one record holds (LLMTAP_MAX_RUNS: more slots in
 * one batch) arrives as records flagged LLMTAP_STEP_MORE followed by its last
 * record; the assembler joins them per thread.
 */
#define STEP_ASSEMBLERS 4

struct step_assembler {
	struct {
		bool active;
		uint32_t tid;
		struct step acc;
	} parts[STEP_ASSEMBLERS];
	uint64_t dropped; /* partial steps abandoned (their thread's last record never came) */
};

/* Whether a step's compute time is known, and that time (model/stepsync.h). */
static inline bool step_compute_known(const struct step *s)
{
	return s->compute_end_ns && s->compute_end_ns >= s->end_ns;
}

static inline uint64_t step_compute_ns(const struct step *s)
{
	return step_compute_known(s) ? s->compute_end_ns - s->start_ns : 0;
}

/* Feed one decoded record: 1 with *out the whole step, 0 when more records follow. */
int step_assemble(struct step_assembler *a, const struct step *rec, struct step *out);

/* One decoded ring-buffer record. The small records keep their wire layout. */
struct event {
	uint32_t kind; /* enum llmtap_event_kind */
	union {
		struct step step;
		struct llmtap_sample_event sample;
		struct llmtap_kv_event kv;
		struct llmtap_srv_event srv;
		struct llmtap_http_event http;
		struct llmtap_call_event call;
		struct llmtap_sync_event sync;
	};
};

/* Decode one record. Returns 0, or -EINVAL for a short/unknown/bad-version record. */
int event_decode(const void *data, size_t size, struct event *out);
/* Decode a step record only (the step part of event_decode). */
int event_decode_step(const void *data, size_t size, struct step *out);

/* One line describing a record, for --debug-events. */
void event_print(FILE *out, const struct event *ev);
const char *step_kind_name(enum step_kind k);
const char *step_op_name(uint32_t op);

#endif
