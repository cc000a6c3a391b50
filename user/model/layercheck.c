// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/layercheck.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * What llama-server guarantees, read in its code (tools/server, b5640 .. de3ff815ea7d):
 * every task id comes from one counter, server_queue::id, through get_new_id()
 * (probed: LLMTAP_SRV_NEW_ID, on the HTTP threads and on the main loop for its
 * own tasks) or through post(vector) for cancel tasks, which are never launched;
 * a task is launched on a slot at most once; slot id == sequence id, below the
 * context's n_seq_max; a slot's llama_context decodes the slot's sequence
 * before its final response.
 */
#define ID_WINDOW 65536 /* the most recent task ids handed out, one bit each */
#define ID_BACK 1024    /* a handed-out id may come this far behind the newest:
			 * threads race from get_new_id's return to its record */
#define LAUNCHED 64     /* the most recent task ids launched */
#define CTXS 16         /* contexts seen decoding */
#define THREADS 8       /* decoding threads whose last batch is kept */
#define RUNS 64         /* runs of a thread's last batch kept (more: its sequences only) */
#define HTTP_THREADS 64 /* HTTP threads followed from a request's route to its status */
#define MAX_ERR_TYPE 16 /* enum error_type has 7 (b5640) and 8 (b7698..today) values */
#define MAX_TOKEN (1 << 24) /* above any vocabulary (the largest are ~2^18) */
#define MAX_PORT 65535

enum check {
	C_NEW_ID = 0,
	C_LAUNCH_TASK,
	C_DEFER_TASK,
	C_LAUNCH_SLOT,
	C_SLOT_CTX,
	C_FINAL_SLOT,
	C_PARTIAL_SLOT,
	C_ERROR,
	C_HTTP_PORT,
	C_HTTP_METHOD,
	C_HTTP_PATH,
	C_HTTP_STATUS,
	C_HTTP_END,
	C_SAMPLE_BATCH,
	C_SAMPLE_SEQ,
	C_SAMPLE_OUTPUT,
	C_SAMPLE_TOKEN,
	C_MAX,
};

static const enum llmtap_layer check_layer[C_MAX] = {
	[C_NEW_ID] = LAYER_SERVER,
	[C_LAUNCH_TASK] = LAYER_SERVER,
	[C_DEFER_TASK] = LAYER_SERVER,
	[C_LAUNCH_SLOT] = LAYER_SERVER,
	[C_SLOT_CTX] = LAYER_SERVER,
	[C_FINAL_SLOT] = LAYER_SERVER,
	[C_PARTIAL_SLOT] = LAYER_SERVER,
	[C_ERROR] = LAYER_SERVER,
	[C_HTTP_PORT] = LAYER_HTTP,
	[C_HTTP_METHOD] = LAYER_HTTP,
	[C_HTTP_PATH] = LAYER_HTTP,
	[C_HTTP_STATUS] = LAYER_HTTP,
	[C_HTTP_END] = LAYER_HTTP,
	[C_SAMPLE_BATCH] = LAYER_SAMPLING,
	[C_SAMPLE_SEQ] = LAYER_SAMPLING,
	[C_SAMPLE_OUTPUT] = LAYER_SAMPLING,
	[C_SAMPLE_TOKEN] = LAYER_SAMPLING,
};

/* A slot's context read at launch, until a step on the slot's sequence confirms it. */
struct slot {
	uint64_t ctx;
	bool pending;   /* launched, its context not yet seen decoding the slot */
	bool elsewhere; /* the slot's sequence decoded since, on other contexts only */
};

/* The last batch a thread decoded: what its samples read their sequence from. */
struct batch {
	uint32_t tid; /* 0: unused */
	uint64_t ctx;
	int32_t n_tokens;
	bool exact;   /* the runs cover the batch: every token's sequence is known */
	uint32_t n_runs;
	struct {
		int32_t seq;
		uint32_t end; /* one past its last token */
		uint32_t n_outputs;
	} runs[RUNS];     /* when n_runs <= RUNS */
	uint64_t seqs[LLMTAP_SEQ_WORDS];
};

struct http_thread {
	uint32_t tid; /* 0: unused */
	bool routed;  /* a route was read for the request it serves now */
	bool path_ok; /* that route's path begins with '/' */
	bool options; /* an OPTIONS request: llama-server answers 200 whatever its path */
};

struct layercheck {
	unsigned int layers; /* checked: attached, not found wrong */
	unsigned int failed; /* found wrong by the event at hand */
	const char *failed_why[LAYER_MAX];
	struct {
		uint64_t good, bad;
	} tally[C_MAX];

	/* server */
	bool ids_seen;
	int32_t min_id, max_id; /* task ids handed out since attach */
	uint64_t id_bits[ID_WINDOW / 64]; /* id % ID_WINDOW, for ids in (max_id - ID_WINDOW, max_id] */
	int32_t launched[LAUNCHED];
	unsigned int n_launched;
	uint32_t n_seq_max; /* the largest context's, 0 until a context creation is seen */
	uint64_t ctxs[CTXS];
	unsigned int next_ctx;
	/* the slots' context reads wrong: harmless while one context decodes (the
	 * correlator needs it only to tell a draft model's apart), fatal with two */
	bool slot_ctx_wrong;
	struct slot slots[LLMTAP_MAX_SEQ];

	/* sampling */
	struct batch batches[THREADS];
	unsigned int next_batch;

	/* http */
	struct http_thread http[HTTP_THREADS];
	unsigned int next_http;
};

struct layercheck *layercheck_new(unsigned int layers)
{
	struct layercheck *lc = calloc(1, sizeof(*lc));

	if (lc)
		lc->layers = layers;
	return lc;
}

void layercheck_free(struct layercheck *lc)
{
	free(lc);
}

unsigned int layercheck_layers(const struct layercheck *lc)
{
	return lc->layers;
}

static bool checked(const struct layercheck *lc, enum llmtap_layer l)
{
	return lc->layers & (1u << l);
}

/* One record judged: right (ok) or wrong, why saying how. */
static void verdict(struct layercheck *lc, enum check c, bool ok, const char *why)
{
	enum llmtap_layer l = check_layer[c];

	if (!checked(lc, l))
		return;
	if (ok) {
		lc->tally[c].good++;
		return;
	}
	lc->tally[c].bad++;
	if (lc->tally[c].bad >= LAYERCHECK_STRIKES && lc->tally[c].bad > lc->tally[c].good &&
	    c == C_SLOT_CTX && lc->next_ctx <= 1) {
		lc->slot_ctx_wrong = true;
		return;
	}
	if (lc->tally[c].bad >= LAYERCHECK_STRIKES && lc->tally[c].bad > lc->tally[c].good &&
	    !(lc->failed & (1u << l))) {
		lc->failed |= 1u << l;
		lc->failed_why[l] = why;
	}
}

/* ---- server: task ids ---- */

static bool id_bit(const struct layercheck *lc, int32_t id)
{
	uint32_t b = (uint32_t)id % ID_WINDOW;

	return lc->id_bits[b / 64] & (1ULL << (b % 64));
}

static void id_set(struct layercheck *lc, int32_t id)
{
	uint32_t b = (uint32_t)id % ID_WINDOW;

	lc->id_bits[b / 64] |= 1ULL << (b % 64);
}

/* Forget ids from..to (they enter the window as the newest move up). */
static void ids_clear(struct layercheck *lc, int64_t from, int64_t to)
{
	if (to - from + 1 >= ID_WINDOW) {
		memset(lc->id_bits, 0, sizeof(lc->id_bits));
		return;
	}
	for (int64_t id = from; id <= to;) {
		uint32_t b = (uint32_t)(id % ID_WINDOW);

		if (b % 64 == 0 && to - id >= 63) {
			lc->id_bits[b / 64] = 0;
			id += 64;
		} else {
			lc->id_bits[b / 64] &= ~(1ULL << (b % 64));
			id++;
		}
	}
}

/* server_queue::get_new_id() returned id: ids count up from one counter. */
static void on_new_id(struct layercheck *lc, int32_t id)
{
	if (id < 0) {
		verdict(lc, C_NEW_ID, false, "the queue handed out a negative task id");
		return;
	}
	if (lc->ids_seen && ((int64_t)id + ID_BACK < lc->max_id ||
			     (int64_t)id > (int64_t)lc->max_id + ID_WINDOW)) {
		verdict(lc, C_NEW_ID, false, "the task ids the queue hands out do not count up");
		return;
	}
	verdict(lc, C_NEW_ID, true, NULL);
	if (!lc->ids_seen) {
		lc->ids_seen = true;
		lc->min_id = lc->max_id = id;
	} else if (id > lc->max_id) {
		ids_clear(lc, (int64_t)lc->max_id + 1, id);
		lc->max_id = id;
	}
	if (id < lc->min_id)
		lc->min_id = id; /* records a little out of order, just after attach */
	if ((int64_t)lc->max_id - id < ID_WINDOW)
		id_set(lc, id);
}

enum id_kind {
	ID_UNKNOWN = 0, /* handed out before attach, or too long ago to tell */
	ID_HANDED_OUT,
	ID_NEVER,       /* after attach, yet not by the queue */
	ID_NEGATIVE,
};

static enum id_kind id_kind(const struct layercheck *lc, int32_t id)
{
	if (id < 0)
		return ID_NEGATIVE;
	if (!lc->ids_seen || id < lc->min_id)
		return ID_UNKNOWN;
	if (id > lc->max_id)
		return ID_NEVER;
	if ((int64_t)lc->max_id - id >= ID_WINDOW)
		return ID_UNKNOWN;
	return id_bit(lc, id) ? ID_HANDED_OUT : ID_NEVER;
}

static void judge_task_id(struct layercheck *lc, enum check c, int32_t id)
{
	switch (id_kind(lc, id)) {
	case ID_NEGATIVE:
		verdict(lc, c, false, "a task id is negative");
		break;
	case ID_NEVER:
		verdict(lc, c, false, "a task id was never handed out by the queue");
		break;
	case ID_HANDED_OUT:
		verdict(lc, c, true, NULL);
		break;
	case ID_UNKNOWN:
		break;
	}
}

/* launch_slot_with_task: a task launches once (a constant read, e.g. a moved field, repeats) */
static void on_launch_task(struct layercheck *lc, int32_t id)
{
	unsigned int n = lc->n_launched < LAUNCHED ? lc->n_launched : LAUNCHED;

	for (unsigned int i = 0; i < n; i++) {
		if (lc->launched[i] == id) {
			verdict(lc, C_LAUNCH_TASK, false, "a task was launched twice");
			return;
		}
	}
	lc->launched[lc->n_launched++ % LAUNCHED] = id;
	if (lc->n_launched >= 2 * LAUNCHED)
		lc->n_launched -= LAUNCHED; /* keeps counting modulo LAUNCHED, never wraps */
	judge_task_id(lc, C_LAUNCH_TASK, id);
}

/* ---- server: slots and their context ---- */

static bool slot_ok(const struct layercheck *lc, int32_t slot)
{
	uint32_t n = lc->n_seq_max ? lc->n_seq_max : LLMTAP_MAX_SEQ;

	return slot >= 0 && (uint32_t)slot < n;
}

static bool ctx_seen(const struct layercheck *lc, uint64_t ctx)
{
	for (int i = 0; i < CTXS; i++)
		if (lc->ctxs[i] == ctx)
			return true;
	return false;
}

static void ctx_add(struct layercheck *lc, uint64_t ctx)
{
	if (!ctx || ctx_seen(lc, ctx))
		return;
	lc->ctxs[lc->next_ctx++ % CTXS] = ctx;
	if (lc->slot_ctx_wrong && lc->next_ctx > 1 && checked(lc, LAYER_SERVER) &&
	    !(lc->failed & (1u << LAYER_SERVER))) {
		lc->failed |= 1u << LAYER_SERVER;
		lc->failed_why[LAYER_SERVER] =
			"a slot's context was never seen decoding, and a second context decodes";
	}
}

#define WHY_CTX "a slot's context was never seen decoding"

/* The slot's task ends (a final response, or a new task on it): was its context confirmed? */
static void slot_end(struct layercheck *lc, struct slot *s)
{
	if (s->pending && s->elsewhere) /* its sequence decoded, never on its context */
		verdict(lc, C_SLOT_CTX, false, WHY_CTX);
	s->pending = false;
}

static void on_launch_ctx(struct layercheck *lc, int32_t slot, uint64_t ctx)
{
	struct slot *s = &lc->slots[slot];

	slot_end(lc, s);
	if (!ctx) {
		verdict(lc, C_SLOT_CTX, false, WHY_CTX);
	} else if (ctx_seen(lc, ctx)) {
		verdict(lc, C_SLOT_CTX, true, NULL);
	} else { /* the first launch after attach on an idle server: wait for its steps */
		s->ctx = ctx;
		s->pending = true;
		s->elsewhere = false;
	}
}

#define WHY_SLOT "a slot's id is outside the context's sequences"

static void on_server(struct layercheck *lc, const struct llmtap_srv_event *e)
{
	bool slot = slot_ok(lc, e->slot_id);

	switch (e->op) {
	case LLMTAP_SRV_NEW_ID:
		on_new_id(lc, e->task_id);
		break;
	case LLMTAP_SRV_DEFER: /* a task may be deferred many times */
		judge_task_id(lc, C_DEFER_TASK, e->task_id);
		break;
	case LLMTAP_SRV_LAUNCH:
		on_launch_task(lc, e->task_id);
		verdict(lc, C_LAUNCH_SLOT, slot, WHY_SLOT);
		if (slot)
			on_launch_ctx(lc, e->slot_id, e->ctx);
		break;
	case LLMTAP_SRV_FINAL:
		verdict(lc, C_FINAL_SLOT, slot, WHY_SLOT);
		if (slot)
			slot_end(lc, &lc->slots[e->slot_id]);
		break;
	case LLMTAP_SRV_PARTIAL:
		verdict(lc, C_PARTIAL_SLOT, slot, WHY_SLOT);
		break;
	case LLMTAP_SRV_ERROR:
		verdict(lc, C_ERROR, e->task_id >= 0 && e->err_type >= 0 && e->err_type < MAX_ERR_TYPE,
			"an error's task id or type is out of range");
		break;
	}
}

/* ---- steps: contexts decoding, each thread's last batch ---- */

static struct batch *batch_of(struct layercheck *lc, uint32_t tid, bool create)
{
	for (int i = 0; i < THREADS; i++)
		if (lc->batches[i].tid == tid)
			return &lc->batches[i];
	if (!create)
		return NULL;
	return &lc->batches[lc->next_batch++ % THREADS];
}

static void keep_batch(struct layercheck *lc, const struct step *s)
{
	struct batch *b = batch_of(lc, s->tid, true);
	uint32_t end = 0;

	memset(b, 0, sizeof(*b));
	b->tid = s->tid;
	b->ctx = s->ctx;
	b->n_tokens = s->n_tokens;
	b->n_runs = s->n_runs;
	b->exact = !(s->flags & (LLMTAP_STEP_RUNS_TRUNC | LLMTAP_STEP_SCAN_TRUNC |
				 LLMTAP_STEP_READ_ERR));
	for (uint32_t i = 0; i < s->n_runs; i++) {
		const struct llmtap_run *r = &s->runs[i];

		end += r->n_tokens;
		if (r->seq_id >= 0 && r->seq_id < LLMTAP_MAX_SEQ)
			b->seqs[r->seq_id / 64] |= 1ULL << (r->seq_id % 64);
		if (i < RUNS) {
			b->runs[i].seq = r->seq_id;
			b->runs[i].end = end;
			b->runs[i].n_outputs = r->n_outputs;
		}
	}
	if (s->n_tokens < 0 || end != (uint32_t)s->n_tokens)
		b->exact = false;
}

static void on_step(struct layercheck *lc, const struct step *s)
{
	ctx_add(lc, s->ctx);
	if (checked(lc, LAYER_SERVER)) {
		for (uint32_t i = 0; i < s->n_runs; i++) {
			int32_t seq = s->runs[i].seq_id;
			struct slot *sl;

			if (seq < 0 || seq >= LLMTAP_MAX_SEQ || !lc->slots[seq].pending)
				continue;
			sl = &lc->slots[seq];
			if (sl->ctx == s->ctx) {
				verdict(lc, C_SLOT_CTX, true, NULL);
				sl->pending = false;
			} else {
				sl->elsewhere = true; /* a draft model's, or the slot's context is not */
			}
		}
	}
	if (checked(lc, LAYER_SAMPLING))
		keep_batch(lc, s);
}

static void on_call(struct layercheck *lc, const struct llmtap_call_event *e)
{
	uint32_t n = e->params[3];

	if (e->op != LLMTAP_CALL_CONTEXT_INIT || !e->ret || !n)
		return;
	if (n > LLMTAP_MAX_SEQ)
		n = LLMTAP_MAX_SEQ;
	if (n > lc->n_seq_max)
		lc->n_seq_max = n;
}

/* ---- sampling ---- */

/*
 * common_sampler_sample / llama_sampler_sample(.., ctx, idx): idx is a token of
 * the last batch the thread decoded (the BPF side reads the token's sequence
 * there), a token the batch asked an output for when that batch is ctx's (with
 * speculative decoding the draft model re-decodes the target's batch before the
 * target samples: same tokens and sequences, its own outputs).
 */
static void on_sample(struct layercheck *lc, const struct llmtap_sample_event *e)
{
	const struct batch *b = batch_of(lc, e->tid, false);
	bool in_batch;

	if (!(e->token == -1 && e->end_ns == e->start_ns)) /* -1 at entry: not sampled yet */
		verdict(lc, C_SAMPLE_TOKEN, e->token >= 0 && e->token < MAX_TOKEN,
			"a sampled token id is out of range");
	if (e->flags & LLMTAP_SAMPLE_LOGITS)
		return; /* a logits read: its batch may be another thread's */
	if (!b || (e->flags & LLMTAP_SAMPLE_READ_ERR))
		return; /* its thread's batch was decoded before attach */
	in_batch = !(e->flags & LLMTAP_SAMPLE_NO_BATCH) && e->idx >= 0 && e->idx < b->n_tokens;
	verdict(lc, C_SAMPLE_BATCH, in_batch, "a sampled output is outside its thread's last batch");
	if (!in_batch || !b->exact)
		return;
	if (b->n_runs > RUNS) {
		verdict(lc, C_SAMPLE_SEQ,
			e->seq_id >= 0 && e->seq_id < LLMTAP_MAX_SEQ &&
				(b->seqs[e->seq_id / 64] & (1ULL << (e->seq_id % 64))),
			"a sampled token's sequence is not in its batch");
		return;
	}
	for (uint32_t i = 0; i < b->n_runs; i++) {
		if ((uint32_t)e->idx >= b->runs[i].end)
			continue;
		verdict(lc, C_SAMPLE_SEQ, b->runs[i].seq == e->seq_id,
			"a sampled token's sequence is not in its batch");
		if (b->ctx == e->ctx)
			verdict(lc, C_SAMPLE_OUTPUT, b->runs[i].n_outputs > 0,
				"a token was sampled where its batch asked for no output");
		return;
	}
}

/* ---- http ---- */

static struct http_thread *http_thread(struct layercheck *lc, uint32_t tid, bool create)
{
	struct http_thread *t;

	for (int i = 0; i < HTTP_THREADS; i++)
		if (lc->http[i].tid == tid)
			return &lc->http[i];
	if (!create)
		return NULL;
	t = &lc->http[lc->next_http++ % HTTP_THREADS];
	*t = (struct http_thread){ .tid = tid };
	return t;
}

/* cpp-httplib's parse_request_line refuses any other before routing (0.19 .. 0.57.1) */
static bool http_method(const char *m)
{
	static const char *const known[] = {
		"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI",
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(m, known[i]))
			return true;
	return false;
}

static void on_http(struct layercheck *lc, const struct llmtap_http_event *h)
{
	struct http_thread *t;
	bool ok;

	switch (h->op) {
	case LLMTAP_HTTP_BEGIN:
		verdict(lc, C_HTTP_PORT,
			h->value >= 0 && h->value <= MAX_PORT && h->value2 >= 0 && h->value2 <= MAX_PORT,
			"a connection's port is out of range");
		http_thread(lc, h->tid, true)->routed = false;
		break;
	case LLMTAP_HTTP_ROUTE:
		ok = http_method(h->s0);
		verdict(lc, C_HTTP_METHOD, ok, "a request's method is not an HTTP method");
		t = http_thread(lc, h->tid, true);
		t->routed = ok;
		t->path_ok = h->s1[0] == '/';
		t->options = !strcmp(h->s0, "OPTIONS");
		break;
	case LLMTAP_HTTP_STATUS:
		verdict(lc, C_HTTP_STATUS, h->value >= 100 && h->value <= 599,
			"a response's status is outside 100..599");
		/*
		 * The path is the client's to choose: one without its '/' is wrong only
		 * when the server answered it as a route of its own (a 2xx or 3xx), which
		 * llama-server does for OPTIONS alone.
		 */
		t = http_thread(lc, h->tid, false);
		if (!t || !t->routed)
			break;
		t->routed = false;
		if (t->path_ok)
			verdict(lc, C_HTTP_PATH, true, NULL);
		else if (h->value >= 200 && h->value < 400 && !t->options)
			verdict(lc, C_HTTP_PATH, false, "a request's path does not begin with '/'");
		break;
	case LLMTAP_HTTP_END:
		verdict(lc, C_HTTP_END, h->value == 0 || h->value == 1,
			"a request's end is not a yes or no");
		t = http_thread(lc, h->tid, false);
		if (t)
			t->routed = false;
		break;
	}
}

unsigned int layercheck_event(struct layercheck *lc, const struct event *ev, char *why,
			      size_t len)
{
	unsigned int failed;
	size_t used = 0;

	lc->failed = 0;
	switch (ev->kind) {
	case LLMTAP_EV_STEP:
		on_step(lc, &ev->step);
		break;
	case LLMTAP_EV_CALL:
		on_call(lc, &ev->call);
		break;
	case LLMTAP_EV_SERVER:
		if (checked(lc, LAYER_SERVER))
			on_server(lc, &ev->srv);
		break;
	case LLMTAP_EV_SAMPLE:
		if (checked(lc, LAYER_SAMPLING))
			on_sample(lc, &ev->sample);
		break;
	case LLMTAP_EV_HTTP:
		if (checked(lc, LAYER_HTTP))
			on_http(lc, &ev->http);
		break;
	}
	failed = lc->failed & lc->layers;
	lc->layers &= ~failed;
	if (len)
		why[0] = '\0';
	for (int l = 0; l < LAYER_MAX && len; l++) {
		if (!(failed & (1u << l)))
			continue;
		snprintf(why + used, len - used, "%s%s", used ? "; " : "", lc->failed_why[l]);
		used += strlen(why + used);
	}
	return failed;
}
