/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Engine-first accounting: each sequence's generations rebuilt from the exported
 * C API alone (decode batches and KV edits), with no sampler or server probe.
 *
 * A generation of a sequence is its prompt (batches up to and including the one
 * that asks for an output) followed by one single-token batch per sampled token,
 * each at the next position and each asking for one output. The output that the
 * application samples last is never decoded, so a generation's output tokens are
 * the outputs it asked for. Positions before its first decoded one were reused
 * from the cache. A KV edit that cuts a sequence's tail, or a batch that is not
 * the next step of what came before, begins a new generation.
 */
#ifndef LLMTAP_GENERATION_H
#define LLMTAP_GENERATION_H

#include <stdbool.h>
#include <stdint.h>

#include "llmtap_events.h"
#include "probe/event.h"

enum gen_phase { GEN_PROMPT = 0, GEN_OUTPUT };

struct gen {
	uint64_t id;           /* the tracker's own sequence number, from 1 */
	uint64_t ctx;          /* struct llama_context * */
	int seq;
	enum gen_phase phase;
	uint64_t start_ns;        /* its first batch began */
	uint64_t first_output_ns; /* the batch with its first output returned: the first token's logits exist */
	uint64_t last_ns;         /* its last batch returned */
	uint32_t prompt_tokens;   /* decoded before its first output */
	uint32_t cached_tokens;   /* positions before its first decoded one */
	uint32_t outputs;         /* outputs asked for: tokens the application can sample */
	uint32_t sampled;         /* outputs read by a sampler (at most one per batch) */
	uint32_t steps;
	int32_t last_token;       /* the token sampled from its last read output, -1 when not
	                           * seen (a sampler recorded at entry, or a logits read) */
	uint64_t recent_ns[3];    /* the starts of its last three steps, newest first */
	bool cached_known;  /* its first batch gave positions (or they were tracked) */
	bool embedding;     /* its prompt asked for outputs on several tokens: not a generation */
	bool uncertain;     /* a batch llmtap could not read whole, or outputs that are not
	                     * one token each (speculative verification) */
};

struct gen_tracker;

/* Called once for each generation that ends, with the tracker's copy. */
typedef void (*gen_closed_fn)(void *arg, const struct gen *g);

struct gen_tracker *gen_tracker_new(gen_closed_fn fn, void *arg);
/* One decode step (llama_decode: encode steps are not generations). */
void gen_tracker_step(struct gen_tracker *gt, const struct step *s);
/*
 * A sampler read output idx of ctx's last batch (seq: its sequence, -1 when the
 * reading thread did not decode that batch: found from the batch's outputs) and
 * chose token (-1 when not seen).
 */
void gen_tracker_sampled(struct gen_tracker *gt, uint64_t ctx, int seq, int idx, int32_t token);
/* The sequence of token idx of ctx's last batch (idx < 0: the -idx-th output from its
 * end), -1 when that token asked for no output or is not in the batch. */
int gen_tracker_seq_of(const struct gen_tracker *gt, uint64_t ctx, int idx);
/* One KV edit: a tail cut ends the sequence's generation at its next batch. */
void gen_tracker_kv(struct gen_tracker *gt, const struct llmtap_kv_event *k);
/*
 * Close generations that are over: those whose context decoded without them for
 * idle_ns (llama-server decodes every generating slot in every step), and any with
 * no batch for quiet_ns. Returns how many closed.
 */
int gen_tracker_expire(struct gen_tracker *gt, uint64_t now_ns, uint64_t idle_ns, uint64_t quiet_ns);
/* Close every open generation (tracing ends). */
void gen_tracker_flush(struct gen_tracker *gt);
/* The open generations, for joining: calls fn for each. */
void gen_tracker_each_open(const struct gen_tracker *gt, void (*fn)(void *arg, const struct gen *g),
			   void *arg);
/* The start of the last step of ctx (0: none seen). */
uint64_t gen_tracker_ctx_last_step(const struct gen_tracker *gt, uint64_t ctx);
/* Whether g's sequence was left out of a step of its context that began after t. */
bool gen_tracker_skipped_after(const struct gen_tracker *gt, const struct gen *g, uint64_t t);
/* Events were lost: every open generation may miss some of its batches. */
void gen_tracker_taint(struct gen_tracker *gt);
/* How many contexts decoded (a draft model's is a second one). */
int gen_tracker_contexts(const struct gen_tracker *gt);
/* The context when exactly one ever decoded (and is still followed), else 0. */
uint64_t gen_tracker_only_context(const struct gen_tracker *gt);
/* The first context seen decoding (0: none yet). */
uint64_t gen_tracker_first_context(const struct gen_tracker *gt);
void gen_tracker_free(struct gen_tracker *gt);

#endif
