// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/stepsync.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct held {
	bool used;
	struct step *s; /* allocated once, reused */
};

struct stepsync {
	stepsync_emit_fn emit;
	void *arg;
	bool armed; /* a sync record came: the target's sync probes work */
	bool host_only; /* every backend is the host's: a step's work is over at its return */
	struct held held[STEPSYNC_MAX_HELD];
	struct stepsync_stats stats;
};

struct stepsync *stepsync_new(stepsync_emit_fn emit, void *arg)
{
	struct stepsync *ss = calloc(1, sizeof(*ss));

	if (ss) {
		ss->emit = emit;
		ss->arg = arg;
	}
	return ss;
}

/* Copy a step: its head and the runs it has, not the whole arrays. */
static void step_copy(struct step *dst, const struct step *src)
{
	uint32_t n = src->n_runs < STEP_MAX_RUNS ? src->n_runs : STEP_MAX_RUNS;

	memcpy(dst, src, offsetof(struct step, runs));
	memcpy(dst->runs, src->runs, n * sizeof(dst->runs[0]));
	memcpy(dst->request_ids, src->request_ids, n * sizeof(dst->request_ids[0]));
	dst->n_runs = n;
	dst->compute_end_ns = src->compute_end_ns;
}

static void hand_on(struct stepsync *ss, struct held *h, uint64_t compute_end_ns)
{
	h->used = false;
	h->s->compute_end_ns = compute_end_ns;
	if (!compute_end_ns)
		ss->stats.unknown++;
	ss->emit(ss->arg, h->s);
}

static struct held *held_of(struct stepsync *ss, uint32_t pid, uint64_t ctx)
{
	for (int i = 0; i < STEPSYNC_MAX_HELD; i++) {
		struct held *h = &ss->held[i];

		if (h->used && h->s->pid == pid && h->s->ctx == ctx)
			return h;
	}
	return NULL;
}

/* A free place, or the oldest step's, handed on unknown. NULL: out of memory. */
static struct held *held_free(struct stepsync *ss)
{
	struct held *oldest = NULL;

	for (int i = 0; i < STEPSYNC_MAX_HELD; i++) {
		struct held *h = &ss->held[i];

		if (!h->used) {
			if (!h->s)
				h->s = malloc(sizeof(*h->s));
			return h->s ? h : NULL;
		}
		if (!oldest || h->s->end_ns < oldest->s->end_ns)
			oldest = h;
	}
	hand_on(ss, oldest, 0);
	return oldest;
}

void stepsync_set_host_only(struct stepsync *ss, bool host_only)
{
	ss->host_only = host_only;
}

void stepsync_step(struct stepsync *ss, const struct step *s)
{
	struct held *h = held_of(ss, s->pid, s->ctx);
	struct step copy;

	if (h) /* another step on its context before any sync */
		hand_on(ss, h, 0);
	h = ss->armed && s->ret == 0 ? held_free(ss) : NULL;
	if (!h) { /* not armed; failed: no work to wait for; or no memory to hold it */
		step_copy(&copy, s);
		copy.compute_end_ns = 0;
		ss->stats.unknown++;
		ss->emit(ss->arg, &copy);
		return;
	}
	step_copy(h->s, s);
	h->s->compute_end_ns = 0;
	h->used = true;
}

void stepsync_sync(struct stepsync *ss, const struct llmtap_sync_event *e)
{
	struct held *h = held_of(ss, e->pid, e->ctx);
	uint64_t took = e->end_ns > e->start_ns ? e->end_ns - e->start_ns : 0;

	ss->armed = true;
	if (!h || h->s->end_ns != e->step_end_ns) {
		ss->stats.orphans++; /* its step was handed on, or lost */
		return;
	}
	ss->stats.paired++;
	if (took <= STEPSYNC_WAIT_NS) {
		/* no wait: the work was over by the call's entry. That is the step's own
		 * return only when the call came right after it (the host backend's work is
		 * over at the return, whenever the call comes) */
		if (ss->host_only || e->start_ns <= h->s->end_ns + STEPSYNC_WAIT_NS)
			hand_on(ss, h, h->s->end_ns);
		else
			hand_on(ss, h, 0);
		return;
	}
	ss->stats.waited++;
	if (e->flags & LLMTAP_SYNC_PREEMPTED) { /* a wait, or the scheduler's: cannot tell */
		ss->stats.preempted++;
		hand_on(ss, h, 0);
		return;
	}
	hand_on(ss, h, e->end_ns);
}

void stepsync_tick(struct stepsync *ss, uint64_t now_ns)
{
	for (int i = 0; i < STEPSYNC_MAX_HELD; i++) {
		struct held *h = &ss->held[i];

		if (h->used && h->s->end_ns + STEPSYNC_GRACE_NS <= now_ns)
			hand_on(ss, h, 0);
	}
}

void stepsync_flush(struct stepsync *ss)
{
	for (int i = 0; i < STEPSYNC_MAX_HELD; i++)
		if (ss->held[i].used)
			hand_on(ss, &ss->held[i], 0);
}

const struct stepsync_stats *stepsync_stats(const struct stepsync *ss)
{
	return &ss->stats;
}

void stepsync_free(struct stepsync *ss)
{
	if (!ss)
		return;
	for (int i = 0; i < STEPSYNC_MAX_HELD; i++)
		free(ss->held[i].s);
	free(ss);
}
