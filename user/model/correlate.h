/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Correlation: turns the probes' events into requests. Per HTTP thread it
 * follows a request from its first byte to its last, collects the task ids the
 * thread creates, follows each task onto its slot (slot id == sequence id), and
 * charges that sequence's decoded and sampled tokens to the request.
 */
#ifndef LLMTAP_CORRELATE_H
#define LLMTAP_CORRELATE_H

#include <stdint.h>

#include "probe/event.h"
#include "model/telemetry.h"

struct correlator;

/* Gauges derived from the state the correlator tracks. */
struct corr_gauges {
	int n_slots;              /* slots busy or holding KV cells, by id */
	struct tm_slot slots[TM_MAX_SLOTS];
	uint32_t active_requests; /* HTTP requests between first and last byte */
	uint32_t active_inference; /* of which inference (chat, completion, embeddings...) */
	uint32_t queued_tasks;    /* tasks created, not yet on a slot */
	uint32_t busy_slots;
	uint64_t kv_cells;        /* positions held by the sequences llmtap saw */
	uint32_t n_ctx;           /* context size, when llmtap saw the context created */
};

/* Completed requests and annotated steps go to tm. */
struct correlator *correlator_new(struct telemetry *tm);
/* Consumes one event; a step's request_ids are filled in on the way. */
void correlator_event(struct correlator *c, struct event *ev);
/* Emit the requests still open (as incomplete), e.g. when tracing ends. */
void correlator_flush(struct correlator *c, uint64_t now_ns);
void correlator_gauges(const struct correlator *c, struct corr_gauges *g);
void correlator_free(struct correlator *c);

#endif
