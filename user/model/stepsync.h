/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A step's compute time on an asynchronous backend: llama_decode returns once
 * the work is submitted (the step's submit time, start_ns..end_ns), and the
 * work is over when the context next synchronizes. This pairs each step with
 * the first synchronizing call on its context after it (LLMTAP_EV_SYNC, BPF
 * sends at most one per step) and sets the step's compute_end_ns:
 *
 *   the sync waited (it took more than STEPSYNC_WAIT_NS):  the sync's return
 *   it did not:       the step's own return (end_ns), where the call began within
 *                     STEPSYNC_WAIT_NS of it (on a GPU the work ended in that
 *                     window: a lower bound off by less than it) or every backend
 *                     is the host's (the work is over at the return); a later
 *                     call that did not wait tells nothing: unknown
 *   unknown (0):      the sync waited but its thread was preempted inside it;
 *                     another step on the context came first; no sync came
 *                     within STEPSYNC_GRACE_NS before a tick; the step failed
 *
 * A step is held until then and handed on with compute_end_ns filled in.
 * Steps are held only once a sync record has come (the target's sync probes
 * work): before, and in a target without them, they go on at once, unknown.
 */
#ifndef LLMTAP_STEPSYNC_H
#define LLMTAP_STEPSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "probe/event.h"

/*
 * A synchronizing call that took longer waited for the backend. On the CPU
 * backend synchronize() has nothing to wait for: 1873 such calls on
 * llama-server de3ff815ea7d (this 2-core VM, loaded) took 0.7 us at least,
 * 1.8 us median, 3.3 us p99, 21 us p99.9 and 32 us at most, return probe
 * included: three times that maximum. A GPU wait shorter than this counts as
 * none (compute = submit, a lower bound off by less than this).
 */
#define STEPSYNC_WAIT_NS 100000ull
/* At a tick, a step whose sync has not come although it ended this long ago is
 * handed on with its compute unknown; a younger one waits for the next tick. */
#define STEPSYNC_GRACE_NS 100000000ull
/* contexts with a step held at once; one more hands the oldest on, unknown */
#define STEPSYNC_MAX_HELD 16

struct stepsync_stats {
	uint64_t paired;     /* steps a sync record ended */
	uint64_t waited;     /* of those, the sync waited */
	uint64_t preempted;  /* of those, unknown: preempted while waiting */
	uint64_t unknown;    /* steps handed on with their compute unknown */
	uint64_t orphans;    /* sync records without their step */
};

struct stepsync;
/* Where whole steps go, in the order their compute became known. */
typedef void (*stepsync_emit_fn)(void *arg, const struct step *s);

struct stepsync *stepsync_new(stepsync_emit_fn emit, void *arg);
/* Every backend of the target is the host's (target_device_backend): a step's work
 * is over when llama_decode returns, whenever its sync comes. */
void stepsync_set_host_only(struct stepsync *ss, bool host_only);
/* A step (its request_ids filled in): held for its sync, or handed on now. */
void stepsync_step(struct stepsync *ss, const struct step *s);
/* A sync record: hands its step on with the compute end it tells. */
void stepsync_sync(struct stepsync *ss, const struct llmtap_sync_event *e);
/* Time passes: hands on the steps that waited longer than STEPSYNC_GRACE_NS. */
void stepsync_tick(struct stepsync *ss, uint64_t now_ns);
/* Hands on every held step (tracing ends). */
void stepsync_flush(struct stepsync *ss);
const struct stepsync_stats *stepsync_stats(const struct stepsync *ss);
void stepsync_free(struct stepsync *ss);

#endif
