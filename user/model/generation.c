// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/generation.h"

#include <stdlib.h>
#include <string.h>

/*
 * Contexts followed at once. A target that makes more (or lies about its
 * context pointers) costs no more: the least recently stepped one is dropped
 * and its generations closed as uncertain.
 */
#define MAX_CTX 8

/* What llmtap knows of one sequence of one context. */
struct seq_state {
	struct gen g;
	bool open;          /* g is growing */
	bool cut;           /* a KV edit cut the tail: the next batch begins anew */
	bool last_output;   /* its last batch asked for an output */
	int64_t next_pos;   /* the position its next token takes, -1 unknown */
	uint64_t last_step_ns; /* start of the last step it took part in */
	uint64_t skipped_ns;   /* start of the last step of its context without it */
	bool read;             /* an output of its last batch was read */
	bool expired;          /* its last generation was closed for being idle, not cut */
};

/* Which sequence each token of a context's last batch belongs to, as runs. */
struct last_run {
	int seq;
	uint32_t n_tokens;
	uint32_t n_outputs;
};

struct ctx_state {
	uint64_t ctx; /* 0: unused */
	uint64_t last_step_ns;
	struct seq_state *seqs; /* LLMTAP_MAX_SEQ of them */
	uint64_t open[LLMTAP_SEQ_WORDS]; /* which have an open generation */
	struct last_run runs[STEP_MAX_RUNS]; /* its last batch */
	uint32_t n_runs;
};

struct gen_tracker {
	gen_closed_fn fn;
	void *arg;
	uint64_t next_id;
	struct ctx_state ctxs[MAX_CTX];
	int n_contexts; /* contexts seen decoding, ever */
	uint64_t first_ctx; /* the first of them */
};

struct gen_tracker *gen_tracker_new(gen_closed_fn fn, void *arg)
{
	struct gen_tracker *gt = calloc(1, sizeof(*gt));

	if (gt) {
		gt->fn = fn;
		gt->arg = arg;
	}
	return gt;
}

static void gen_close(struct gen_tracker *gt, struct ctx_state *cs, struct seq_state *ss)
{
	if (!ss->open)
		return;
	ss->open = false;
	cs->open[ss->g.seq / 64] &= ~(1ull << (ss->g.seq % 64));
	if (gt->fn)
		gt->fn(gt->arg, &ss->g);
}

static void ctx_drop(struct gen_tracker *gt, struct ctx_state *cs)
{
	if (cs->seqs)
		for (int s = 0; s < LLMTAP_MAX_SEQ; s++) {
			cs->seqs[s].g.uncertain = true;
			gen_close(gt, cs, &cs->seqs[s]);
		}
	free(cs->seqs);
	memset(cs, 0, sizeof(*cs));
}

static struct ctx_state *ctx_find(const struct gen_tracker *gt, uint64_t ctx)
{
	for (int i = 0; i < MAX_CTX; i++)
		if (gt->ctxs[i].ctx == ctx && gt->ctxs[i].seqs)
			return (struct ctx_state *)&gt->ctxs[i];
	return NULL;
}

static struct ctx_state *ctx_get(struct gen_tracker *gt, uint64_t ctx)
{
	struct ctx_state *cs = ctx_find(gt, ctx), *lru = &gt->ctxs[0];

	if (cs)
		return cs;
	for (int i = 0; i < MAX_CTX; i++) {
		if (!gt->ctxs[i].seqs) {
			lru = &gt->ctxs[i];
			break;
		}
		if (gt->ctxs[i].last_step_ns < lru->last_step_ns)
			lru = &gt->ctxs[i];
	}
	ctx_drop(gt, lru);
	lru->seqs = calloc(LLMTAP_MAX_SEQ, sizeof(*lru->seqs));
	if (!lru->seqs)
		return NULL;
	if (!gt->n_contexts)
		gt->first_ctx = ctx;
	if (gt->n_contexts < MAX_CTX + 1)
		gt->n_contexts++;
	lru->ctx = ctx;
	for (int s = 0; s < LLMTAP_MAX_SEQ; s++)
		lru->seqs[s].next_pos = -1;
	return lru;
}

static void gen_begin(struct gen_tracker *gt, struct ctx_state *cs, struct seq_state *ss, int seq,
		      const struct step *s, int64_t pos)
{
	gen_close(gt, cs, ss);
	memset(&ss->g, 0, sizeof(ss->g));
	ss->g.id = ++gt->next_id;
	ss->g.last_token = -1;
	ss->g.ctx = cs->ctx;
	ss->g.seq = seq;
	ss->g.phase = GEN_PROMPT;
	ss->g.start_ns = s->start_ns;
	if (pos >= 0) {
		ss->g.cached_known = true;
		ss->g.cached_tokens = pos > UINT32_MAX ? UINT32_MAX : (uint32_t)pos;
	}
	ss->open = true;
	cs->open[seq / 64] |= 1ull << (seq % 64);
}

static void on_run(struct gen_tracker *gt, struct ctx_state *cs, const struct step *s,
		   const struct llmtap_run *run)
{
	struct seq_state *ss = &cs->seqs[run->seq_id];
	bool pos_known = run->pos_first >= 0;
	/* without positions (llama_batch_get_one) a batch follows what came before */
	int64_t pos = pos_known ? run->pos_first : ss->next_pos;
	bool follows = ss->open && !ss->cut && (!pos_known || pos == ss->next_pos);
	struct gen *g = &ss->g;

	bool same_step = ss->open && ss->last_step_ns == s->start_ns;
	bool resumed = !ss->open && ss->expired && !ss->cut && pos_known && pos == ss->next_pos;

	if (follows && g->phase == GEN_OUTPUT && run->n_tokens == 1) {
		/* the next token of its output */
	} else if (follows && g->phase == GEN_PROMPT) {
		/* the next chunk of its prompt */
	} else if (follows && g->phase == GEN_OUTPUT && ss->last_output &&
		   run->n_outputs == run->n_tokens) {
		g->uncertain = true; /* drafted tokens verified at once: not one token per output */
	} else if (ss->open && !ss->cut &&
		   (same_step || (g->phase == GEN_PROMPT && pos > ss->next_pos))) {
		/* positions that jump inside one prompt (M-RoPE: an image's tokens share one
		 * position): one generation, whose counts are not positions */
		g->uncertain = true;
	} else {
		gen_begin(gt, cs, ss, run->seq_id, s, pos);
		if (resumed) /* it carries on one closed for being idle: where it began is unknown */
			g->uncertain = true;
	}
	if (s->flags & LLMTAP_STEP_EMBD)
		g->uncertain = true; /* embeddings (an image): not tokens at positions */

	if (g->phase == GEN_PROMPT) {
		g->prompt_tokens += run->n_tokens;
		if (run->n_outputs) {
			g->phase = GEN_OUTPUT;
			g->first_output_ns = s->end_ns;
			g->embedding = run->n_outputs > 1;
		}
	}
	g->outputs += run->n_outputs;
	if (ss->last_step_ns != s->start_ns || g->steps == 0) {
		g->steps++;
		g->recent_ns[2] = g->recent_ns[1];
		g->recent_ns[1] = g->recent_ns[0];
		g->recent_ns[0] = s->start_ns;
	}
	g->last_ns = s->end_ns;
	ss->last_step_ns = s->start_ns;
	ss->last_output = run->n_outputs > 0;
	ss->read = false;
	ss->cut = false;
	ss->expired = false;
	if (run->pos_last >= 0)
		ss->next_pos = (int64_t)run->pos_last + 1;
	else if (ss->next_pos >= 0)
		ss->next_pos += run->n_tokens;
}

void gen_tracker_step(struct gen_tracker *gt, const struct step *s)
{
	uint64_t present[LLMTAP_SEQ_WORDS] = { 0 };
	bool partial = s->flags & (LLMTAP_STEP_RUNS_TRUNC | LLMTAP_STEP_SCAN_TRUNC |
				   LLMTAP_STEP_READ_ERR | LLMTAP_STEP_MULTI_SEQ);
	struct ctx_state *cs;

	/* a failed decode leaves the memory as it was (llama_decode restores it) */
	if (s->op != LLMTAP_OP_DECODE || s->ret != 0)
		return;
	cs = ctx_get(gt, s->ctx);
	if (!cs)
		return;
	cs->n_runs = 0;
	for (uint32_t i = 0; i < s->n_runs && i < STEP_MAX_RUNS; i++) {
		const struct llmtap_run *run = &s->runs[i];

		cs->runs[cs->n_runs++] = (struct last_run){ run->seq_id, run->n_tokens, run->n_outputs };

		if (run->seq_id < 0 || run->seq_id >= LLMTAP_MAX_SEQ || !run->n_tokens)
			continue;
		present[run->seq_id / 64] |= 1ull << (run->seq_id % 64);
		on_run(gt, cs, s, run);
	}
	for (int w = 0; w < LLMTAP_SEQ_WORDS; w++) {
		for (uint64_t m = cs->open[w]; m; m &= m - 1) {
			int q = w * 64 + __builtin_ctzll(m);

			/* some of the batch's tokens were not read: any open generation may miss them */
			if (partial)
				cs->seqs[q].g.uncertain = true;
			if (!(present[w] & (1ull << (q % 64))))
				cs->seqs[q].skipped_ns = s->start_ns;
		}
	}
	cs->last_step_ns = s->start_ns;
}

/* The sequence of token idx of the context's last batch (negative: from its last output). */
static int seq_of_idx(const struct ctx_state *cs, int idx)
{
	uint32_t at = 0;

	if (idx < 0) { /* -1: the last output, -2 the one before, ... */
		uint32_t back = (uint32_t)-(int64_t)idx;

		for (uint32_t i = cs->n_runs; i-- > 0;) {
			if (back <= cs->runs[i].n_outputs)
				return cs->runs[i].seq;
			back -= cs->runs[i].n_outputs;
		}
		return -1;
	}
	for (uint32_t i = 0; i < cs->n_runs; i++) {
		at += cs->runs[i].n_tokens;
		if ((uint32_t)idx < at)
			return cs->runs[i].n_outputs ? cs->runs[i].seq : -1;
	}
	return -1;
}

int gen_tracker_seq_of(const struct gen_tracker *gt, uint64_t ctx, int idx)
{
	const struct ctx_state *cs = ctx_find(gt, ctx);

	return cs ? seq_of_idx(cs, idx) : -1;
}

void gen_tracker_sampled(struct gen_tracker *gt, uint64_t ctx, int seq, int idx, int32_t token)
{
	struct ctx_state *cs = ctx_find(gt, ctx);
	struct seq_state *ss;

	if (!cs)
		return;
	if (seq < 0)
		seq = seq_of_idx(cs, idx);
	if (seq < 0 || seq >= LLMTAP_MAX_SEQ)
		return;
	ss = &cs->seqs[seq];
	if (!ss->open || ss->read || !ss->last_output)
		return; /* read again, or nothing to read */
	ss->read = true;
	ss->g.sampled++;
	ss->g.last_token = token;
}

/* The seq states a KV edit applies to: its context's (the older llama_kv_* calls
 * pass the context), else every context's (llama_memory_t is not a context). */
static void kv_apply(struct gen_tracker *gt, const struct llmtap_kv_event *k, int seq,
		     void (*fn)(struct seq_state *ss, const struct llmtap_kv_event *k))
{
	struct ctx_state *only = ctx_find(gt, k->mem);

	for (int i = 0; i < MAX_CTX; i++) {
		struct ctx_state *cs = &gt->ctxs[i];

		if (!cs->seqs || (only && cs != only))
			continue;
		for (int q = 0; q < LLMTAP_MAX_SEQ; q++)
			if (seq < 0 || q == seq)
				fn(&cs->seqs[q], k);
	}
}

static void kv_rm(struct seq_state *ss, const struct llmtap_kv_event *k)
{
	int64_t p0 = k->args[1] < 0 ? 0 : k->args[1], p1 = k->args[2];

	if (p1 >= 0 && ss->next_pos >= 0 && p1 < ss->next_pos)
		return; /* a hole in the middle (a context shift): the shift moves the tail */
	ss->cut = true;
	if (ss->next_pos < 0 || p0 < ss->next_pos)
		ss->next_pos = p0;
}

static void kv_add(struct seq_state *ss, const struct llmtap_kv_event *k)
{
	int64_t p1 = k->args[2];

	if (ss->next_pos >= 0 && (p1 < 0 || p1 >= ss->next_pos)) {
		ss->next_pos += k->args[3];
		if (ss->next_pos < 0)
			ss->next_pos = 0;
	}
}

static void kv_unknown(struct seq_state *ss, const struct llmtap_kv_event *k)
{
	(void)k;
	ss->next_pos = -1;
	if (ss->open)
		ss->g.uncertain = true;
}

static void kv_cleared(struct seq_state *ss, const struct llmtap_kv_event *k)
{
	(void)k;
	ss->cut = true;
	ss->next_pos = 0;
}

static void kv_copied_into(struct seq_state *ss, const struct llmtap_kv_event *k)
{
	(void)k;
	ss->cut = true;
	ss->next_pos = -1; /* the batch that follows tells */
}

void gen_tracker_kv(struct gen_tracker *gt, const struct llmtap_kv_event *k)
{
	int seq = k->args[0];

	switch (k->op) {
	case LLMTAP_KV_SEQ_RM:
		kv_apply(gt, k, seq, kv_rm);
		break;
	case LLMTAP_KV_SEQ_ADD:
		kv_apply(gt, k, seq, kv_add);
		break;
	case LLMTAP_KV_SEQ_DIV:
		kv_apply(gt, k, seq, kv_unknown);
		break;
	case LLMTAP_KV_SEQ_CP: /* (src, dst, p0, p1): dst now holds what src held */
		kv_apply(gt, k, k->args[1], kv_copied_into);
		break;
	case LLMTAP_KV_SEQ_KEEP:
		for (int i = 0; i < MAX_CTX; i++)
			if (gt->ctxs[i].seqs)
				for (int q = 0; q < LLMTAP_MAX_SEQ; q++)
					if (q != seq)
						kv_cleared(&gt->ctxs[i].seqs[q], k);
		break;
	case LLMTAP_KV_CLEAR:
		kv_apply(gt, k, -1, kv_cleared);
		break;
	}
}

int gen_tracker_expire(struct gen_tracker *gt, uint64_t now_ns, uint64_t idle_ns, uint64_t quiet_ns)
{
	int n = 0;

	for (int i = 0; i < MAX_CTX; i++) {
		struct ctx_state *cs = &gt->ctxs[i];

		if (!cs->seqs)
			continue;
		for (int q = 0; q < LLMTAP_MAX_SEQ; q++) {
			struct seq_state *ss = &cs->seqs[q];
			uint64_t since = now_ns > ss->g.last_ns ? now_ns - ss->g.last_ns : 0;

			if (!ss->open)
				continue;
			if ((ss->skipped_ns > ss->last_step_ns && since >= idle_ns) || since >= quiet_ns) {
				gen_close(gt, cs, ss);
				ss->expired = true;
				n++;
			}
		}
	}
	return n;
}

void gen_tracker_flush(struct gen_tracker *gt)
{
	for (int i = 0; i < MAX_CTX; i++)
		if (gt->ctxs[i].seqs)
			for (int q = 0; q < LLMTAP_MAX_SEQ; q++)
				gen_close(gt, &gt->ctxs[i], &gt->ctxs[i].seqs[q]);
}

void gen_tracker_each_open(const struct gen_tracker *gt, void (*fn)(void *arg, const struct gen *g),
			   void *arg)
{
	for (int i = 0; i < MAX_CTX; i++)
		if (gt->ctxs[i].seqs)
			for (int q = 0; q < LLMTAP_MAX_SEQ; q++)
				if (gt->ctxs[i].seqs[q].open)
					fn(arg, &gt->ctxs[i].seqs[q].g);
}

uint64_t gen_tracker_ctx_last_step(const struct gen_tracker *gt, uint64_t ctx)
{
	const struct ctx_state *cs = ctx_find(gt, ctx);

	return cs ? cs->last_step_ns : 0;
}

bool gen_tracker_skipped_after(const struct gen_tracker *gt, const struct gen *g, uint64_t t)
{
	const struct ctx_state *cs = ctx_find(gt, g->ctx);
	const struct seq_state *ss;

	if (!cs || g->seq < 0 || g->seq >= LLMTAP_MAX_SEQ)
		return false;
	ss = &cs->seqs[g->seq];
	return ss->open && ss->g.id == g->id && ss->skipped_ns > t && ss->skipped_ns > ss->last_step_ns;
}

void gen_tracker_taint(struct gen_tracker *gt)
{
	for (int i = 0; i < MAX_CTX; i++)
		if (gt->ctxs[i].seqs)
			for (int q = 0; q < LLMTAP_MAX_SEQ; q++)
				if (gt->ctxs[i].seqs[q].open)
					gt->ctxs[i].seqs[q].g.uncertain = true;
}

int gen_tracker_contexts(const struct gen_tracker *gt)
{
	return gt->n_contexts;
}

uint64_t gen_tracker_only_context(const struct gen_tracker *gt)
{
	if (gt->n_contexts != 1)
		return 0;
	for (int i = 0; i < MAX_CTX; i++)
		if (gt->ctxs[i].seqs)
			return gt->ctxs[i].ctx;
	return 0;
}

uint64_t gen_tracker_first_context(const struct gen_tracker *gt)
{
	return gt->first_ctx;
}

void gen_tracker_free(struct gen_tracker *gt)
{
	if (!gt)
		return;
	for (int i = 0; i < MAX_CTX; i++)
		free(gt->ctxs[i].seqs);
	free(gt);
}
