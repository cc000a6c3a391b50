// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/correlate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmtap_sites.h"
#include "lib/util.h"
#include "model/generation.h"
#include "model/stepsync.h"
#include "model/telemetry.h"

#define MAX_THREADS 256      /* HTTP worker threads followed at once */
#define MAX_REQ_TASKS 4096   /* tasks charged to one request (rerank: one per document) */
/*
 * Unfinished tasks followed at once, whatever the target claims: a flood of
 * task ids costs bounded memory, and finding one is a hash lookup.
 */
#define MAX_TASKS 16384
#define TASK_BUCKETS 4096    /* a power of two */

/*
 * Engine-first joining (no server layer): an ended HTTP request waits until the
 * generations that could be its own are over, at most JOIN_WAIT_NS; a generation
 * counts as over once its context decoded without it (llama-server decodes every
 * generating slot in every step), or once the context was quiet for JOIN_QUIET_NS.
 */
#define JOIN_WAIT_NS (10ull * 1000000000)
#define JOIN_QUIET_NS (2000ull * 1000000)
/* An embedder's generation ends when its context decodes without it this long, or
 * nothing decodes it for GEN_QUIET_NS (or the next batch of its sequence begins anew). */
#define GEN_IDLE_NS (2000ull * 1000000)
#define GEN_QUIET_NS (10ull * 1000000000)
#define GEN_KEEP 1024 /* ended generations kept for joining */
#define MAX_PENDING 4096 /* ended requests waiting for their generation */

enum task_phase { TASK_QUEUED = 0, TASK_PREFILL, TASK_GENERATE, TASK_DONE };

struct request;

struct task {
	int id;
	struct request *req; /* NULL: a task whose request llmtap did not see */
	int slot;            /* -1 until launched */
	enum task_phase phase;
	bool prefill_seen;
	int32_t last_token;     /* the last token sampled for it, -1 when not seen */
	uint64_t last_token_ns; /* when (the sampler's return) */
	enum finish_reason finish; /* why it ended (TASK_DONE) */
	int32_t n_predict;      /* its limit read at launch, LLMTAP_N_PREDICT_UNKNOWN */
	struct task *next, *prev; /* in the correlator's list */
	struct task *hnext;       /* in its hash bucket */
};

struct request {
	struct req_span span;
	struct request *next;
	bool write_failed; /* process_request returned false: the client may have gone */
	bool lost;         /* what it was counted from may be incomplete (a layer went off) */
	bool spec_verified; /* a task's batch verified drafted tokens (several outputs at once) */
	bool untracked;    /* a task of it could not be followed (too many tasks) */
};

/* Events were lost at production times in (from, to]: a tick learns of it. */
struct loss {
	uint64_t from, to;
};
#define LOSSES 16

#define CTX_KEEP 16 /* context creations kept (llama-server: fit passes, the target, a draft;
		     * b5640 and b7698: a draft context per slot besides) */
#define LOADS_KEEP 8 /* model loads kept (a fit pass and the real load, per model) */

/* llama_model_load_from_file(path) returned model: which file a handle is. */
struct model_load {
	uint64_t model;
	char path[LLMTAP_PATH_LEN]; /* "" unknown (cut short) */
};

/* An ended generation kept for joining. */
struct gen_rec {
	struct gen g;
	bool taken; /* joined to a request */
};



struct http_thread {
	uint32_t tid;
	struct request *req;
};

struct correlator {
	struct telemetry *tm;
	struct stepsync *sync; /* steps wait here for their compute time (stepsync.h) */
	unsigned int layers; /* attached and believed: 1 << enum llmtap_layer */
	bool stop_checks;    /* SITE_SRV_STOP_CHECK is probed */
	bool n_predict_bad;  /* a task outran the n_predict read for it: the offset is wrong */
	/* stop_type reads that contradicted what llmtap saw of a token, and that agreed:
	 * three wrong and more wrong than right, the offset is not this build's */
	unsigned int stop_type_wrong, stop_type_right;
	eog_fn eog;          /* the model's end-of-generation tokens */
	const void *eog_arg;
	bool router;         /* a router llama-server: its requests are proxies */
	struct request *open;                  /* requests begun, not ended */
	struct task *tasks;                    /* tasks not yet finished */
	struct task *by_id[TASK_BUCKETS];      /* the same, by id */
	int n_tasks;
	struct task *slot_task[LLMTAP_MAX_SEQ]; /* the task running on each slot */
	int64_t kv_next[LLMTAP_MAX_SEQ];       /* next position per sequence */
	int64_t pending_load[LLMTAP_MAX_SEQ];  /* bytes restored into an idle slot */
	bool seq_read[LLMTAP_MAX_SEQ];         /* an output of its last batch was read */
	bool logits_reads;                     /* sampling is seen as llama_get_logits_ith reads */
	struct http_thread threads[MAX_THREADS];
	uint64_t next_id;
	uint32_t n_ctx; /* from context creation, when seen */
	struct ctx_creation created[CTX_KEEP]; /* ring: the latest contexts created */
	unsigned int n_created;
	struct model_load loads[LOADS_KEEP]; /* ring: the latest models loaded */
	unsigned int n_loads;
	struct task *launching; /* the task most recently launched on a slot */
	/*
	 * The slots' llama_context, read at launch; once a step on it confirms it,
	 * steps and samples on any other context are a draft model's (speculative
	 * decoding) and are not the requests' prompt or output.
	 */
	uint64_t target_ctx;
	bool target_seen;
	/* engine-first accounting */
	struct gen_tracker *gens;
	struct request *pending;       /* ended, waiting to be joined (no server layer) */
	struct gen_rec ended[GEN_KEEP];/* ring: generations ended */
	unsigned int n_ended, ended_head;
	uint64_t ended_forgot_ns;      /* latest start of a generation dropped from ended[] */
	uint64_t taken_open[16];       /* open generations joined already (ids) */
	uint64_t now_ns;               /* the latest time seen (events, ticks) */
	uint64_t tick_ns;              /* the last tick: events lost before it are known */
	uint64_t lost_total;           /* events lost (ring buffer), as of the last tick */
	struct loss losses[LOSSES];    /* the latest intervals with losses (merged when full) */
	unsigned int n_losses;
	struct request *pending_tail;
	unsigned int n_pending;
};

static void on_gen_closed(void *arg, const struct gen *g);

/* A step whose compute time is known (or unknown for good) goes to the telemetry. */
static void step_out(void *tm, const struct step *s)
{
	telemetry_step(tm, s);
}

struct correlator *correlator_new(struct telemetry *tm, unsigned int layers)
{
	struct correlator *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->tm = tm;
	c->layers = layers;
	c->gens = gen_tracker_new(on_gen_closed, c);
	c->sync = stepsync_new(step_out, tm);
	if (!c->gens || !c->sync) {
		gen_tracker_free(c->gens);
		stepsync_free(c->sync);
		free(c);
		return NULL;
	}
	return c;
}

void correlator_set_eog(struct correlator *c, eog_fn fn, const void *arg)
{
	c->eog = fn;
	c->eog_arg = arg;
}

void correlator_set_host_only(struct correlator *c, bool host_only)
{
	stepsync_set_host_only(c->sync, host_only);
}

void correlator_set_stop_checks(struct correlator *c, bool on)
{
	c->stop_checks = on;
}

static enum eog_class eog_of(const struct correlator *c, int32_t token)
{
	if (token < 0)
		return EOG_MAYBE;
	return c->eog ? c->eog(c->eog_arg, token) : EOG_MAYBE;
}

static bool has_layer(const struct correlator *c, enum llmtap_layer l)
{
	return c->layers & (1u << l);
}

static void settle(struct correlator *c, bool force);
static void tasks_drop(struct correlator *c, const struct request *r);

void correlator_disable_layer(struct correlator *c, enum llmtap_layer layer)
{
	if (!(c->layers & (1u << layer)))
		return;
	/* what the requests in flight were counted from is cut off: none of them is exact */
	for (struct request *r = c->open; r; r = r->next)
		r->lost = true;
	for (struct request *r = c->pending; r; r = r->next)
		r->lost = true;
	if (layer == LAYER_HTTP)
		settle(c, true); /* generations are an embedder's from now on */
	c->layers &= ~(1u << layer);
	if (layer == LAYER_SERVER) { /* no task or slot of it is believed any more */
		tasks_drop(c, NULL);
		memset(c->slot_task, 0, sizeof(c->slot_task));
		c->launching = NULL;
	}
}

void correlator_set_router(struct correlator *c, bool router)
{
	c->router = router;
	/* the requests in flight are what the target now is said to be */
	for (struct request *r = c->open; r; r = r->next)
		if (r->span.kind == REQ_HTTP || r->span.kind == REQ_PROXY)
			r->span.kind = router ? REQ_PROXY : REQ_HTTP;
}

static struct http_thread *thread_of(struct correlator *c, uint32_t tid, bool create)
{
	struct http_thread *free_slot = NULL;

	for (int i = 0; i < MAX_THREADS; i++) {
		if (c->threads[i].tid == tid)
			return &c->threads[i];
		if (!free_slot && !c->threads[i].req)
			free_slot = &c->threads[i];
	}
	if (!create || !free_slot)
		return NULL;
	free_slot->tid = tid;
	return free_slot;
}

static struct task **bucket(struct correlator *c, int id)
{
	return &c->by_id[((uint32_t)id * 2654435761u >> 16) & (TASK_BUCKETS - 1)];
}

static struct task *task_find(struct correlator *c, int id)
{
	for (struct task *t = *bucket(c, id); t; t = t->hnext)
		if (t->id == id)
			return t;
	return NULL;
}

/* A task to follow, or NULL: no memory, or MAX_TASKS followed already. */
static struct task *task_new(struct correlator *c, int id, struct request *req)
{
	struct task **b = bucket(c, id), *t;

	if (c->n_tasks >= MAX_TASKS)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->id = id;
	t->req = req;
	t->slot = -1;
	t->last_token = -1;
	t->n_predict = LLMTAP_N_PREDICT_UNKNOWN;
	t->next = c->tasks;
	if (c->tasks)
		c->tasks->prev = t;
	c->tasks = t;
	t->hnext = *b;
	*b = t;
	c->n_tasks++;
	return t;
}

static void task_free(struct correlator *c, struct task *t)
{
	struct task **pp;

	for (pp = bucket(c, t->id); *pp && *pp != t; pp = &(*pp)->hnext)
		;
	if (*pp)
		*pp = t->hnext;
	if (t->prev)
		t->prev->next = t->next;
	else
		c->tasks = t->next;
	if (t->next)
		t->next->prev = t->prev;
	c->n_tasks--;
	/* every slot: whatever a target's events did, no slot keeps a freed task */
	for (int i = 0; i < LLMTAP_MAX_SEQ; i++)
		if (c->slot_task[i] == t)
			c->slot_task[i] = NULL;
	if (c->launching == t)
		c->launching = NULL;
	free(t);
}

/* A step or sample on a draft model's context? */
static bool draft_ctx(const struct correlator *c, uint64_t ctx)
{
	return c->target_seen && ctx && ctx != c->target_ctx;
}

static struct task *slot_task(struct correlator *c, int slot)
{
	return slot >= 0 && slot < LLMTAP_MAX_SEQ ? c->slot_task[slot] : NULL;
}

static bool engine_first(const struct correlator *c);
static bool route_decodes(enum route_kind k);

/* Whether events may have been lost between from and to (as known at the last tick). */
static bool lost_during(const struct correlator *c, uint64_t from, uint64_t to)
{
	for (unsigned int i = 0; i < c->n_losses; i++)
		if (from <= c->losses[i].to && to > c->losses[i].from)
			return true;
	return false;
}

/* Forget the tasks of a request (all tasks when r is NULL). */
static void tasks_drop(struct correlator *c, const struct request *r)
{
	struct task *t, *next;

	for (t = c->tasks; t; t = next) {
		next = t->next;
		if (!r || t->req == r)
			task_free(c, t);
	}
}

/* Forget a request and its tasks. */
static void request_drop(struct correlator *c, struct request *r)
{
	struct request **pp;

	tasks_drop(c, r);
	for (pp = &c->open; *pp && *pp != r; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = r->next;
	for (int i = 0; i < MAX_THREADS; i++)
		if (c->threads[i].req == r)
			c->threads[i].req = NULL;
	free(r);
}

static void finish_one(struct req_span *s, enum finish_reason f)
{
	s->finish[0] = (uint8_t)f;
	s->n_finish = 1;
}

/*
 * A request's finish reasons: an error status is "error"; with the server layer,
 * each task's, in task order, where a task that never ended was cancelled (the
 * client went away: llama-server cancels its tasks); engine-first, what its one
 * generation told (span_from_gen). Unknown when any choice's is, or when records
 * may be missing.
 */
static void request_finish(struct correlator *c, struct request *r)
{
	struct req_span *s = &r->span;
	struct { int id; enum finish_reason f; } got[REQ_FINISH_MAX];
	int n = 0;

	if (s->kind != REQ_HTTP || !route_generates(s->route.kind) || r->untracked || r->lost ||
	    lost_during(c, s->start_ns, s->end_ns)) {
		s->n_finish = 0;
		return;
	}
	if (s->status >= 400) {
		finish_one(s, FINISH_ERROR);
		return;
	}
	if (engine_first(c))
		return; /* what the join gave */
	s->n_finish = 0;
	if (!s->n_tasks || s->n_tasks > REQ_FINISH_MAX)
		return;
	for (struct task *t = c->tasks; t; t = t->next) {
		enum finish_reason f;
		int i;

		if (t->req != r)
			continue;
		if (t->phase == TASK_DONE)
			f = t->finish;
		else
			f = s->complete ? FINISH_CANCELLED : FINISH_UNKNOWN;
		if (f == FINISH_UNKNOWN || n == REQ_FINISH_MAX)
			return;
		for (i = n++; i > 0 && got[i - 1].id > t->id; i--) /* by id: the choices' order */
			got[i] = got[i - 1];
		got[i].id = t->id;
		got[i].f = f;
	}
	if (n != s->n_tasks)
		return; /* a task was not followed */
	for (int i = 0; i < n; i++)
		s->finish[i] = (uint8_t)got[i].f;
	s->n_finish = (uint8_t)n;
}

/* gen_ai.request.max_tokens: its tasks' n_predict where read, and all the same */
static void request_max_tokens(struct correlator *c, struct request *r)
{
	int32_t n = LLMTAP_N_PREDICT_UNKNOWN;

	r->span.max_tokens = 0;
	if (c->n_predict_bad || engine_first(c) || r->span.kind != REQ_HTTP)
		return;
	for (struct task *t = c->tasks; t; t = t->next) {
		if (t->req != r)
			continue;
		if (t->n_predict == LLMTAP_N_PREDICT_UNKNOWN || (n != LLMTAP_N_PREDICT_UNKNOWN &&
								   t->n_predict != n))
			return;
		n = t->n_predict;
	}
	if (n != LLMTAP_N_PREDICT_UNKNOWN)
		r->span.max_tokens = n;
}

/*
 * Hand a request to the telemetry model, then forget it. A kept-alive
 * connection that ends while waiting for its next request line (no route,
 * no status) is no request at all.
 */
static void request_close(struct correlator *c, struct request *r, bool complete)
{
	if (r->span.method[0] || r->span.status) {
		r->span.complete = complete;
		/* the server layer saw it make no task, or its task fail before a prompt
		 * was decoded: nothing was decoded for it (a task launched unseen is not
		 * that: its counts stay unknown) */
		if (!engine_first(c) && r->span.kind == REQ_HTTP && !r->span.known &&
		    !r->span.prompt_tokens && !r->span.output_tokens && !r->lost && !r->untracked &&
		    (!r->span.n_tasks || (r->span.n_tasks == 1 && r->span.err_type >= 0)))
			r->span.known = REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT;
		if (r->lost || lost_during(c, r->span.start_ns, r->span.end_ns))
			r->span.known = 0; /* some of what it was counted from may be missing */
		else if (r->spec_verified && (!has_layer(c, LAYER_SAMPLING) || c->logits_reads))
			/* outputs read, or asked for, are not the tokens accepted; the
			 * samplers' own records (common_sampler_sample) are */
			r->span.known &= ~REQ_KNOWN_OUTPUT;
		if (engine_first(c) && r->span.kind == REQ_HTTP && route_decodes(r->span.route.kind) &&
		    r->span.attribution == REQ_ATTR_NONE)
			r->span.attribution = REQ_ATTR_UNATTRIBUTED;
		request_finish(c, r);
		request_max_tokens(c, r);
		telemetry_request(c->tm, &r->span);
	}
	request_drop(c, r);
}

/* ---- engine-first accounting: generations, and requests joined to them ---- */

static bool engine_first(const struct correlator *c)
{
	return !has_layer(c, LAYER_SERVER);
}

/* Whether a request on this route may have decoded (unknown routes may). */
static bool route_decodes(enum route_kind k)
{
	return route_operation(k) || k == ROUTE_OTHER;
}


/*
 * Copy what a generation measured onto a span. Its output tokens are the outputs a
 * sampler read where the sampling layer is attached; else the outputs it asked for,
 * which is llama-server's way (the last token it samples is never decoded).
 */
static void span_from_gen(const struct correlator *c, struct req_span *r, const struct gen *g)
{
	uint32_t outputs = has_layer(c, LAYER_SAMPLING) ? g->sampled : g->outputs;

	r->launch_ns = g->start_ns;
	r->first_token_ns = g->embedding ? 0 : g->first_output_ns;
	r->final_ns = g->last_ns;
	r->slot = g->seq;
	r->prompt_tokens = g->prompt_tokens;
	r->cached_tokens = g->cached_tokens;
	r->output_tokens = g->embedding ? 0 : outputs;
	r->known = 0;
	if (!g->uncertain && g->cached_known)
		r->known |= REQ_KNOWN_PROMPT;
	if (!g->uncertain && !g->embedding && g->phase == GEN_OUTPUT)
		r->known |= REQ_KNOWN_OUTPUT;
	/* it ended on an end-of-generation token: the only reason the engine tells */
	r->n_finish = 0;
	if (req_knows(r, REQ_KNOWN_OUTPUT) && eog_of(c, g->last_token) == EOG_YES)
		finish_one(r, FINISH_STOP);
}

/* An embedder's generation (no HTTP layer): a span of its own. */
static void emit_generation(struct correlator *c, const struct gen *g)
{
	struct req_span r = {
		.id = ++c->next_id,
		.kind = REQ_GENERATION,
		.attribution = REQ_ATTR_ENGINE,
		.seq = g->seq,
		.start_ns = g->start_ns,
		.end_ns = g->last_ns,
		.err_type = -1,
		.route = route_classify(""),
		.complete = true, /* what is uncertain is its counts, left unknown */
	};

	span_from_gen(c, &r, g);
	telemetry_request(c->tm, &r);
}

static bool taken_open(const struct correlator *c, uint64_t id)
{
	for (size_t i = 0; i < ARRAY_SIZE(c->taken_open); i++)
		if (c->taken_open[i] == id)
			return true;
	return false;
}

static void on_gen_closed(void *arg, const struct gen *g)
{
	struct correlator *c = arg;
	struct gen_rec *rec;

	if (!has_layer(c, LAYER_HTTP)) {
		emit_generation(c, g);
		return;
	}
	if (!engine_first(c))
		return;
	if (c->n_ended == GEN_KEEP) { /* the ring is full: forget the oldest */
		const struct gen *old = &c->ended[c->ended_head].g;

		if (old->start_ns > c->ended_forgot_ns)
			c->ended_forgot_ns = old->start_ns;
		c->n_ended--;
		c->ended_head = (c->ended_head + 1) % GEN_KEEP;
	}
	rec = &c->ended[(c->ended_head + c->n_ended++) % GEN_KEEP];
	rec->g = *g;
	rec->taken = taken_open(c, g->id);
	for (size_t i = 0; i < ARRAY_SIZE(c->taken_open); i++)
		if (c->taken_open[i] == g->id)
			c->taken_open[i] = 0;
}

struct join_scan {
	const struct correlator *c;
	const struct request *r;
	bool undecided;          /* an open generation may still be its */
	bool tainted;            /* a generation in its time could not be counted whole */
	const struct gen *match; /* the one that fits its route, when one */
	int n_match;
	bool match_open;
};

static bool gen_fits(const struct request *r, const struct gen *g)
{
	if (route_generates(r->span.route.kind))
		return !g->embedding && g->phase == GEN_OUTPUT;
	return false; /* embeddings and the rest are not joined (several prompts per request) */
}

static void scan_gen(struct join_scan *js, const struct gen *g, bool open, bool taken)
{
	const struct request *r = js->r;

	if (g->start_ns < r->span.start_ns || g->start_ns > r->span.end_ns)
		return;
	if (g->uncertain || lost_during(js->c, g->start_ns, g->last_ns))
		js->tainted = true; /* its own may be this one: miscounted, or not one at all */
	if (g->last_ns > r->span.end_ns) {
		/*
		 * It decoded after the response ended: someone else's, unless the client went
		 * away mid-response (llama-server's write to the kernel still succeeds). Then
		 * the handler cancelled its task before returning, and the main loop drops it
		 * before its next step but one: a generation with three steps begun after the
		 * response is not its.
		 */
		if (taken || !gen_fits(r, g) || g->recent_ns[2] > r->span.end_ns)
			return;
		if (open && js->c->now_ns < g->last_ns + JOIN_QUIET_NS)
			js->undecided = true; /* it may yet go on: wait */
		else
			js->n_match++; /* it stopped soon after: it may be this one's, cut short */
		return;
	}
	if (open && !gen_tracker_skipped_after(js->c->gens, g, r->span.end_ns) &&
	    js->c->now_ns < r->span.end_ns + JOIN_QUIET_NS) {
		js->undecided = true; /* nothing decoded since: wait a little */
		return;
	}
	if (taken || !gen_fits(r, g))
		return;
	js->n_match++;
	js->match = g;
	js->match_open = open;
}

static void scan_open(void *arg, const struct gen *g)
{
	struct join_scan *js = arg;

	scan_gen(js, g, true, taken_open(js->c, g->id));
}

/*
 * Join an ended request to the generation that served it. A completed request
 * to a completion route, answered 2xx/3xx, was served by one generation (of
 * llama-server's one context) that began after the request began and ended
 * before its response did: among those generations, its own is the one not
 * joined to a request before it. Where that is not one generation, where one in
 * its time could not be counted whole, where the response may have been cut
 * short (the client went away) or events were lost, it stays unattributed.
 * Returns false while that cannot be told yet.
 */
static bool join(struct correlator *c, struct request *r, bool force)
{
	struct join_scan js = { .c = c, .r = r };
	struct gen_rec *rec = NULL;

	for (unsigned int i = 0; i < c->n_ended; i++) {
		struct gen_rec *e = &c->ended[(c->ended_head + i) % GEN_KEEP];
		const struct gen *before = js.match;

		scan_gen(&js, &e->g, false, e->taken);
		if (js.match != before)
			rec = e;
	}
	gen_tracker_each_open(c->gens, scan_open, &js);
	if (js.undecided && !force)
		return false;
	r->span.attribution = REQ_ATTR_UNATTRIBUTED;
	r->span.known = 0;
	if (js.undecided || js.tainted || js.n_match != 1 || c->ended_forgot_ns >= r->span.start_ns ||
	    r->span.status < 200 || r->span.status >= 400 || !r->span.complete || r->write_failed ||
	    r->lost || lost_during(c, r->span.start_ns, r->span.end_ns) ||
	    gen_tracker_contexts(c->gens) != 1)
		return true;
	span_from_gen(c, &r->span, js.match);
	r->span.attribution = REQ_ATTR_ENGINE;
	if (js.match_open) {
		for (size_t i = 0; i < ARRAY_SIZE(c->taken_open); i++)
			if (!c->taken_open[i]) {
				c->taken_open[i] = js.match->id;
				return true;
			}
		/* no room to remember it: then nobody gets it */
		span_from_gen(c, &r->span, &(struct gen){ .seq = -1 });
		r->span.known = 0;
		r->span.attribution = REQ_ATTR_UNATTRIBUTED;
	} else if (rec) {
		rec->taken = true;
	}
	return true;
}

/* Settle the ended requests whose generations are known by now, oldest first;
 * force: settle all (tracing ends). */
static void settle(struct correlator *c, bool force)
{
	struct request *r;

	while ((r = c->pending)) {
		bool late = c->now_ns > r->span.end_ns + JOIN_WAIT_NS;

		/* not before a tick after its end: events lost while it ran are known then */
		if (!force && c->tick_ns <= r->span.end_ns)
			return;
		if (!join(c, r, force || late))
			return; /* in order: a later one may need this one's window */
		c->pending = r->next;
		if (!c->pending)
			c->pending_tail = NULL;
		c->n_pending--;
		telemetry_request(c->tm, &r->span);
		free(r);
	}
}

/* An HTTP request ended without the server layer: join it when it can be told. */
static void pend(struct correlator *c, struct request *r)
{
	struct request **pp;

	tasks_drop(c, r); /* none: no server layer; but never a task left pointing at it */
	for (pp = &c->open; *pp && *pp != r; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = r->next;
	for (int i = 0; i < MAX_THREADS; i++)
		if (c->threads[i].req == r)
			c->threads[i].req = NULL;
	r->next = NULL;
	if (c->pending_tail)
		c->pending_tail->next = r;
	else
		c->pending = r;
	c->pending_tail = r;
	c->n_pending++;
	settle(c, c->n_pending > MAX_PENDING); /* a flood waits no longer than memory allows */
}

static void on_http(struct correlator *c, const struct llmtap_http_event *h)
{
	struct http_thread *th = thread_of(c, h->tid, h->op == LLMTAP_HTTP_BEGIN);
	struct request *r = th ? th->req : NULL;

	if (h->ts_ns > c->now_ns)
		c->now_ns = h->ts_ns;
	switch (h->op) {
	case LLMTAP_HTTP_BEGIN:
		if (!th)
			return;
		if (r) { /* never ended: its thread moved on */
			r->span.end_ns = h->ts_ns;
			request_close(c, r, false);
		}
		r = calloc(1, sizeof(*r));
		if (!r)
			return;
		r->span.id = ++c->next_id;
		r->span.kind = c->router ? REQ_PROXY : REQ_HTTP;
		r->span.tid = h->tid;
		r->span.start_ns = h->ts_ns;
		r->span.client_port = h->value;
		r->span.server_port = h->value2;
		r->span.slot = -1;
		r->span.err_type = -1;
		r->span.route = route_classify("");
		snprintf(r->span.client, sizeof(r->span.client), "%s", h->s0);
		r->next = c->open;
		c->open = r;
		th->req = r;
		break;
	case LLMTAP_HTTP_ROUTE:
		if (!r)
			return;
		snprintf(r->span.method, sizeof(r->span.method), "%.15s", h->s0);
		snprintf(r->span.path, sizeof(r->span.path), "%s", h->s1);
		r->span.route = route_classify(h->s1);
		break;
	case LLMTAP_HTTP_STATUS:
		if (r)
			r->span.status = h->value;
		break;
	case LLMTAP_HTTP_END:
		if (!r)
			return; /* began before llmtap attached */
		r->span.end_ns = h->ts_ns;
		r->write_failed = !h->value;
		if (engine_first(c) && r->span.kind == REQ_HTTP && r->span.method[0] &&
		    route_decodes(r->span.route.kind)) {
			r->span.complete = true;
			pend(c, r);
			break;
		}
		request_close(c, r, true);
		break;
	}
}

static void charge_load(struct request *r, int64_t bytes)
{
	r->span.cache_loads++;
	r->span.cache_bytes_loaded += bytes > 0 ? (uint64_t)bytes : 0;
}

/*
 * Why a task ended, at its final response, from what llmtap saw itself. llama-server's
 * process_token checks each complete token for a whole stop string (is_full_stop),
 * then, unless one was found or the token is end-of-generation, for a partial one.
 * So a partial check after the final token means neither: a limit ended it
 * ("length"). No check after it: the token left its text incomplete UTF-8, which
 * rules out a stop string, so an ordinary token was cut by a limit. A whole check
 * last means a stop string or end-of-generation; but a limit found on that same
 * token (the context, n_indent, t_max_predict_ms) overrides a stop string in the
 * server's answer, so only end-of-generation is certain there. The slot must have
 * been checked at all since its launch: a build whose process_token does not call
 * the probed function tells nothing.
 */
static enum finish_reason finish_seen(const struct correlator *c, const struct task *t,
				      const struct llmtap_srv_event *e)
{
	enum eog_class eog = eog_of(c, t->last_token);

	if (t->req->spec_verified || t->last_token < 0)
		return FINISH_UNKNOWN; /* no token seen, or several per sample (drafts) */
	if (eog == EOG_YES)
		return FINISH_STOP; /* end-of-generation overrides every other reason */
	if (!c->stop_checks || !e->stop_ns)
		return FINISH_UNKNOWN;
	if (e->stop_ns > t->last_token_ns)
		return e->stop_full ? FINISH_UNKNOWN : FINISH_LENGTH;
	return eog == EOG_NO ? FINISH_LENGTH : FINISH_UNKNOWN;
}

/* What llmtap saw of a task's last token says of the server's stop_type read at its
 * final response: contradicts it (then the offset it was read at may not be this
 * build's), confirms it, or says nothing. */
enum stop_evidence { EVIDENCE_NONE = 0, EVIDENCE_AGREES, EVIDENCE_CONTRADICTS };

static enum stop_evidence stop_type_evidence(const struct correlator *c, const struct task *t,
					     const struct llmtap_srv_event *e)
{
	enum eog_class eog = eog_of(c, t->last_token);
	int st = e->stop_type;
	/* a partial check after the token: neither a stop string nor end-of-generation */
	bool partial = c->stop_checks && e->stop_ns > t->last_token_ns && !e->stop_full;

	if (st < LLMTAP_STOP_NONE || st > LLMTAP_STOP_LIMIT)
		return EVIDENCE_CONTRADICTS;
	if (t->req->spec_verified || t->last_token < 0)
		return EVIDENCE_NONE; /* nothing to hold it against */
	if (eog == EOG_YES) /* end-of-generation overrides every other reason */
		return st == LLMTAP_STOP_EOS ? EVIDENCE_AGREES : EVIDENCE_CONTRADICTS;
	if (eog == EOG_NO && st == LLMTAP_STOP_EOS)
		return EVIDENCE_CONTRADICTS;
	if (partial)
		return st == LLMTAP_STOP_LIMIT ? EVIDENCE_AGREES : EVIDENCE_CONTRADICTS;
	return EVIDENCE_NONE;
}

/*
 * Why a task ended: the server's own stop_type (server_slot::stop, read where its
 * offset is known for the build: user/target/layout.c) unless it contradicts what
 * llmtap saw (then unknown); once it has contradicted it three times, more often
 * than agreed, it is not read and what llmtap saw decides (finish_seen).
 */
static enum finish_reason finish_at_final(struct correlator *c, const struct task *t,
					  const struct llmtap_srv_event *e)
{
	bool believed = c->stop_type_wrong < 3 || c->stop_type_wrong <= c->stop_type_right;
	enum stop_evidence ev;

	if (!t->req)
		return FINISH_UNKNOWN;
	if (e->stop_type != -1 && believed) {
		ev = stop_type_evidence(c, t, e);
		c->stop_type_right += ev == EVIDENCE_AGREES;
		c->stop_type_wrong += ev == EVIDENCE_CONTRADICTS;
		switch (ev == EVIDENCE_CONTRADICTS ? -1 : e->stop_type) {
		case LLMTAP_STOP_EOS:
		case LLMTAP_STOP_WORD:
			return FINISH_STOP;
		case LLMTAP_STOP_LIMIT:
			return FINISH_LENGTH;
		default:
			/* none (an empty prompt); or the server's word against what llmtap saw,
			 * where one of the two is wrong: the vocabulary llmtap read may not be
			 * the server's (--override-kv), so neither decides */
			return FINISH_UNKNOWN;
		}
	}
	return finish_seen(c, t, e);
}

static void on_server(struct correlator *c, const struct llmtap_srv_event *e)
{
	struct http_thread *th;
	struct task *t;

	switch (e->op) {
	case LLMTAP_SRV_NEW_ID:
		th = thread_of(c, e->tid, false);
		if (!th || !th->req || th->req->span.n_tasks >= MAX_REQ_TASKS)
			return; /* an internal task of the main loop */
		if (!task_new(c, e->task_id, th->req)) {
			th->req->untracked = true;
			return;
		}
		if (!th->req->span.n_tasks++)
			th->req->span.enqueue_ns = e->ts_ns;
		break;
	case LLMTAP_SRV_DEFER:
		t = task_find(c, e->task_id);
		if (t && t->req)
			t->req->span.deferred = true;
		break;
	case LLMTAP_SRV_LAUNCH:
		if (e->slot_id < 0 || e->slot_id >= LLMTAP_MAX_SEQ)
			return;
		t = task_find(c, e->task_id);
		if (!t)
			t = task_new(c, e->task_id, NULL);
		if (!t)
			return;
		if (c->slot_task[e->slot_id] && c->slot_task[e->slot_id] != t) {
			struct task *old = c->slot_task[e->slot_id]; /* its end was not seen */

			old->slot = -1;
			if (!old->req)
				task_free(c, old);
		}
		/* a task launched again on another slot leaves its old one (a slot never
		 * keeps a task that is no longer on it: it could be freed from the new one) */
		if (t->slot >= 0 && t->slot != e->slot_id && c->slot_task[t->slot] == t)
			c->slot_task[t->slot] = NULL;
		c->slot_task[e->slot_id] = t;
		c->launching = t;
		if (e->ctx && e->ctx != c->target_ctx) {
			c->target_ctx = e->ctx;
			c->target_seen = false;
		}
		t->slot = e->slot_id;
		t->phase = TASK_PREFILL;
		t->n_predict = e->n_predict >= -1 ? e->n_predict : LLMTAP_N_PREDICT_UNKNOWN;
		if (c->pending_load[e->slot_id] && t->req)
			charge_load(t->req, c->pending_load[e->slot_id]);
		c->pending_load[e->slot_id] = 0;
		if (t->req && !t->req->span.launch_ns) {
			t->req->span.launch_ns = e->ts_ns;
			t->req->span.slot = e->slot_id;
		}
		break;
	case LLMTAP_SRV_PARTIAL:
		t = slot_task(c, e->slot_id);
		if (t && t->req)
			t->req->span.stream = true;
		break;
	case LLMTAP_SRV_FINAL:
		t = slot_task(c, e->slot_id);
		if (!t)
			return;
		if (t->req && e->ts_ns > t->req->span.final_ns)
			t->req->span.final_ns = e->ts_ns;
		t->finish = finish_at_final(c, t, e);
		t->phase = TASK_DONE;
		if (t->req && t->req->span.n_tasks == 1 && t->n_predict > 0 &&
		    t->req->span.output_tokens > (uint32_t)t->n_predict && !t->req->spec_verified)
			c->n_predict_bad = true; /* more tokens than its limit: not its limit */
		c->slot_task[e->slot_id] = NULL;
		t->slot = -1;
		if (!t->req)
			task_free(c, t);
		break;
	case LLMTAP_SRV_ERROR:
		t = task_find(c, e->task_id);
		if (!t)
			return;
		if (t->req) {
			t->req->span.err_type = e->err_type;
			snprintf(t->req->span.err_msg, sizeof(t->req->span.err_msg), "%s", e->msg);
		}
		if (t->slot >= 0 && c->slot_task[t->slot] == t)
			c->slot_task[t->slot] = NULL;
		t->slot = -1;
		t->finish = FINISH_ERROR;
		t->phase = TASK_DONE;
		if (!t->req)
			task_free(c, t);
		break;
	}
}

/*
 * Without the sampling layer a task's output tokens are the outputs its batches
 * asked for: the prompt's last token, then one per generated token (the last
 * token sampled is never decoded).
 */
static void count_outputs(struct task *t, const struct step *s, const struct llmtap_run *run)
{
	if (!run->n_outputs || t->phase == TASK_QUEUED || t->phase == TASK_DONE)
		return;
	t->req->span.output_tokens += run->n_outputs;
	t->phase = TASK_GENERATE;
	if (!t->req->span.first_token_ns)
		t->req->span.first_token_ns = s->end_ns; /* its logits exist */
}

static void on_step(struct correlator *c, struct step *s)
{
	bool by_task = !engine_first(c);

	if (s->end_ns > c->now_ns)
		c->now_ns = s->end_ns;
	gen_tracker_step(c->gens, s);
	if (c->pending)
		settle(c, false);
	if (by_task && c->target_ctx && s->ctx == c->target_ctx)
		c->target_seen = true;
	if (by_task && draft_ctx(c, s->ctx))
		return; /* the draft model's own prefill and drafting */
	for (uint32_t i = 0; i < s->n_runs; i++) {
		const struct llmtap_run *run = &s->runs[i];
		struct task *t = slot_task(c, run->seq_id);

		if (run->seq_id >= 0 && run->seq_id < LLMTAP_MAX_SEQ) {
			c->pending_load[run->seq_id] = 0; /* a restore is charged at launch or never */
			c->seq_read[run->seq_id] = false;
			if (run->pos_last >= 0 && s->ret == 0)
				c->kv_next[run->seq_id] = (int64_t)run->pos_last + 1;
		}
		if (!by_task || !t || !t->req || s->ret != 0)
			continue;
		s->request_ids[i] = t->req->span.id;
		if (t->phase == TASK_GENERATE && run->n_tokens > 1 && run->n_outputs > 1)
			t->req->spec_verified = true; /* drafted tokens verified at once */
		if (t->phase == TASK_PREFILL) {
			if (!t->prefill_seen) {
				/* the prompt's first decoded position: the ones before came from the cache */
				t->prefill_seen = true;
				t->req->span.attribution = REQ_ATTR_SERVER;
				t->req->span.known |= REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT;
				if (run->pos_first > 0)
					t->req->span.cached_tokens += (uint32_t)run->pos_first;
			}
			t->req->span.prompt_tokens += run->n_tokens;
		}
		if (!has_layer(c, LAYER_SAMPLING))
			count_outputs(t, s, run);
	}
}

static void on_sample(struct correlator *c, const struct llmtap_sample_event *e)
{
	bool seq_known = !(e->flags & (LLMTAP_SAMPLE_NO_BATCH | LLMTAP_SAMPLE_READ_ERR));
	int seq = seq_known ? e->seq_id : -1;
	struct task *t;
	uint64_t took = e->end_ns > e->start_ns ? e->end_ns - e->start_ns : 0;

	if (e->flags & LLMTAP_SAMPLE_LOGITS) {
		c->logits_reads = true;
		/* the output read, in its context's last batch (records come in order) */
		seq = gen_tracker_seq_of(c->gens, e->ctx, e->idx);
		gen_tracker_sampled(c->gens, e->ctx, seq, e->idx, -1);
		/* a sampler may read an output's logits more than once: the first read counts */
		if (seq < 0 || seq >= LLMTAP_MAX_SEQ || c->seq_read[seq])
			return;
		c->seq_read[seq] = true;
	} else {
		gen_tracker_sampled(c->gens, e->ctx, seq, e->idx, e->token);
	}
	t = slot_task(c, seq);
	if (!engine_first(c) && draft_ctx(c, e->ctx)) { /* a token drafted for the target to verify */
		if (t && t->req)
			t->req->span.draft_tokens++;
		return;
	}
	telemetry_sampled(c->tm, e->end_ns, took);
	if (engine_first(c) || !t || !t->req)
		return;
	t->req->span.output_tokens++;
	t->req->span.sampling_ns += took;
	t->last_token = e->flags & LLMTAP_SAMPLE_LOGITS ? -1 : e->token;
	t->last_token_ns = e->end_ns;
	if (t->phase == TASK_PREFILL)
		t->phase = TASK_GENERATE;
	if (!t->req->span.first_token_ns)
		t->req->span.first_token_ns = e->end_ns; /* the token exists once sampled */
}

static void kv_set(struct correlator *c, int seq, int64_t next)
{
	if (seq >= 0 && seq < LLMTAP_MAX_SEQ)
		c->kv_next[seq] = next < 0 ? 0 : next;
}

static void on_kv(struct correlator *c, const struct llmtap_kv_event *k)
{
	int seq = k->args[0], p0 = k->args[1], p1 = k->args[2];
	struct task *t;

	gen_tracker_kv(c->gens, k);
	switch (k->op) {
	case LLMTAP_KV_SEQ_RM:
		/* seq < 0: every sequence; p1 < 0: to the end */
		for (int s = seq < 0 ? 0 : seq; s < LLMTAP_MAX_SEQ && (seq < 0 || s == seq); s++) {
			int64_t from = p0 < 0 ? 0 : p0;

			if (p1 < 0 || p1 >= c->kv_next[s])
				kv_set(c, s, from < c->kv_next[s] ? from : c->kv_next[s]);
			else if (p1 > from)
				kv_set(c, s, c->kv_next[s] - (p1 - from));
		}
		break;
	case LLMTAP_KV_SEQ_ADD:
		/* (seq, p0, p1, delta): a negative shift of the tail is a context shift */
		if (seq >= 0 && seq < LLMTAP_MAX_SEQ && k->args[3] < 0) {
			t = c->slot_task[seq];
			if (t && t->req)
				t->req->span.context_shifts++;
			telemetry_engine_event(c->tm, &(struct engine_event){
				.kind = EE_CONTEXT_SHIFT,
				.ts_ns = k->ts_ns,
				.seq = seq,
				.request_id = t && t->req ? t->req->span.id : 0,
				.value = -(int64_t)k->args[3],
				.ok = true,
			});
		}
		break;
	case LLMTAP_KV_SEQ_CP:
		if (p0 >= 0 && p0 < LLMTAP_MAX_SEQ && seq >= 0 && seq < LLMTAP_MAX_SEQ &&
		    c->kv_next[seq] > c->kv_next[p0])
			c->kv_next[p0] = c->kv_next[seq]; /* args: src, dst */
		break;
	case LLMTAP_KV_SEQ_KEEP:
		for (int s = 0; s < LLMTAP_MAX_SEQ; s++)
			if (s != seq)
				c->kv_next[s] = 0;
		break;
	case LLMTAP_KV_CLEAR:
		memset(c->kv_next, 0, sizeof(c->kv_next));
		break;
	}
}

/* A model was loaded: its handle is that file from now on (a handle freed and
 * reused is the newest load's). */
static void model_loaded(struct correlator *c, const struct llmtap_call_event *e)
{
	struct model_load *ml = &c->loads[c->n_loads++ % LOADS_KEEP];

	ml->model = (uint64_t)e->ret;
	ml->path[0] = '\0';
	/* text_len LLMTAP_PATH_LEN - 1 may be a longer path cut short: not that file */
	if (e->text_len && e->text_len < sizeof(ml->path) - 1 && e->text_len < sizeof(e->text)) {
		memcpy(ml->path, e->text, e->text_len);
		ml->path[e->text_len] = '\0';
	}
}

/* The file model was loaded from (its latest load), "" when not seen. */
static const char *model_path(const struct correlator *c, uint64_t model)
{
	unsigned int i, n = c->n_loads < LOADS_KEEP ? c->n_loads : LOADS_KEEP;

	for (i = 0; i < n; i++) { /* newest first */
		const struct model_load *ml = &c->loads[(c->n_loads - 1 - i) % LOADS_KEEP];

		if (ml->model == model)
			return ml->path;
	}
	return "";
}

static void on_call(struct correlator *c, const struct llmtap_call_event *e)
{
	struct engine_event ee = {
		.ts_ns = e->start_ns,
		.duration_ns = e->end_ns - e->start_ns,
		.seq = e->seq,
		.value = e->ret,
		.ok = e->ret != 0,
		.text = e->text,
	};
	struct http_thread *th;
	struct task *t;

	switch (e->op) {
	case LLMTAP_CALL_TOKENIZE:
		/* the HTTP thread tokenizes its request's prompt */
		th = thread_of(c, e->tid, false);
		if (th && th->req)
			th->req->span.tokenize_calls++; /* untimed: entry only, see probes.c */
		return;
	case LLMTAP_CALL_SEQ_SAVE_FILE:
	case LLMTAP_CALL_SAVE_FILE:
		ee.to_file = true;
		/* fall through */
	case LLMTAP_CALL_SEQ_GET_DATA:
		ee.kind = EE_CACHE_SAVE;
		break;
	case LLMTAP_CALL_SEQ_LOAD_FILE:
		if (!e->aux)
			return; /* tokens_out NULL: reads the header only */
		/* fall through */
	case LLMTAP_CALL_LOAD_FILE:
		ee.to_file = true;
		/* fall through */
	case LLMTAP_CALL_SEQ_SET_DATA:
		ee.kind = EE_CACHE_LOAD;
		/* a restore into a slot serves the request that runs there, or the next one */
		t = slot_task(c, e->seq);
		if (t && t->req && t->phase == TASK_PREFILL) {
			ee.request_id = t->req->span.id;
			charge_load(t->req, e->ret);
		} else if (e->seq >= 0 && e->seq < LLMTAP_MAX_SEQ && e->ret > 0) {
			c->pending_load[e->seq] = e->ret;
		}
		break;
	case LLMTAP_CALL_MODEL_LOAD:
		ee.kind = EE_MODEL_LOAD;
		if (e->ret)
			model_loaded(c, e);
		break;
	case LLMTAP_CALL_SAMPLER_INIT:
		/* llama-server builds a task's sampler inside launch_slot_with_task */
		t = c->launching;
		if (t && t->req && !t->req->span.has_sampling) {
			struct req_span *r = &t->req->span;

			r->has_sampling = true;
			r->seed = e->params[0];
			r->top_k = (int32_t)e->params[1];
			memcpy(&r->top_p, &e->params[2], sizeof(r->top_p));
			memcpy(&r->temperature, &e->params[3], sizeof(r->temperature));
		}
		return;
	case LLMTAP_CALL_CONTEXT_INIT:
		ee.kind = EE_CONTEXT_INIT;
		memcpy(ee.params, e->params, sizeof(ee.params));
		if (e->ret) {
			struct ctx_creation *cc = &c->created[c->n_created++ % CTX_KEEP];
			const char *path;

			c->n_ctx = e->params[0];
			cc->ctx = (uint64_t)e->ret;
			cc->model = e->handle;
			path = model_path(c, e->handle); /* shorter than model_path by construction */
			memcpy(cc->model_path, path, strlen(path) + 1);
			memcpy(cc->params, e->params, sizeof(cc->params));
			cc->cparams_len = e->cparams_len;
			memcpy(cc->cparams, e->cparams, sizeof(cc->cparams));
		}
		break;
	default:
		return;
	}
	if (ee.kind == EE_CACHE_SAVE || ee.kind == EE_CACHE_LOAD)
		ee.value = e->ret; /* bytes; the bool calls return 0/1 */
	telemetry_engine_event(c->tm, &ee);
}

void correlator_event(struct correlator *c, struct event *ev)
{
	switch (ev->kind) {
	case LLMTAP_EV_STEP:
		on_step(c, &ev->step); /* fills the step's request_ids */
		stepsync_step(c->sync, &ev->step); /* to the telemetry with its compute time */
		break;
	case LLMTAP_EV_SYNC:
		stepsync_sync(c->sync, &ev->sync);
		break;
	case LLMTAP_EV_SAMPLE:
		if (has_layer(c, LAYER_SAMPLING))
			on_sample(c, &ev->sample);
		break;
	case LLMTAP_EV_KV:
		on_kv(c, &ev->kv);
		break;
	case LLMTAP_EV_SERVER:
		if (has_layer(c, LAYER_SERVER))
			on_server(c, &ev->srv);
		break;
	case LLMTAP_EV_HTTP:
		if (has_layer(c, LAYER_HTTP))
			on_http(c, &ev->http);
		break;
	case LLMTAP_EV_CALL:
		on_call(c, &ev->call);
		break;
	}
}

void correlator_tick(struct correlator *c, uint64_t now_ns, uint64_t lost_total)
{
	if (now_ns > c->now_ns)
		c->now_ns = now_ns;
	if (lost_total > c->lost_total) { /* lost since the last tick's count */
		struct loss l = { c->tick_ns, c->now_ns };

		c->lost_total = lost_total;
		gen_tracker_taint(c->gens);
		if (c->n_losses == LOSSES) { /* merge the oldest two: wider, never narrower */
			c->losses[1].from = c->losses[0].from;
			memmove(c->losses, c->losses + 1, sizeof(c->losses[0]) * (LOSSES - 1));
			c->n_losses--;
		}
		c->losses[c->n_losses++] = l;
	}
	c->tick_ns = c->now_ns;
	gen_tracker_expire(c->gens, c->now_ns, GEN_IDLE_NS, GEN_QUIET_NS);
	settle(c, false);
	stepsync_tick(c->sync, now_ns);
}

void correlator_flush(struct correlator *c, uint64_t now_ns)
{
	if (now_ns > c->now_ns)
		c->now_ns = now_ns;
	stepsync_flush(c->sync);
	gen_tracker_flush(c->gens);
	settle(c, true);
	while (c->open) {
		c->open->span.end_ns = now_ns;
		request_close(c, c->open, false);
	}
}

struct gauge_scan {
	const struct correlator *c;
	struct tm_gauges *g;
};

/* Engine-first: a sequence is busy while its generation took part in its
 * context's last step (or is still in its prompt). */
static void gauge_gen(void *arg, const struct gen *gen)
{
	struct gauge_scan *gs = arg;
	struct tm_slot *v;
	struct req_span r = { 0 };

	if (gen->phase == GEN_OUTPUT &&
	    gen->last_ns < gen_tracker_ctx_last_step(gs->c->gens, gen->ctx))
		return;
	gs->g->busy_slots++;
	for (int i = 0; i < gs->g->n_slots; i++)
		if (gs->g->slots[i].slot == gen->seq) {
			v = &gs->g->slots[i];
			goto fill;
		}
	if (gs->g->n_slots >= TM_MAX_SLOTS)
		return;
	v = &gs->g->slots[gs->g->n_slots++];
	v->slot = gen->seq;
	v->route = "";
fill:
	span_from_gen(gs->c, &r, gen);
	v->phase = gen->phase == GEN_OUTPUT ? 2 : 1;
	v->known = r.known;
	v->prompt_tokens = r.prompt_tokens;
	v->cached_tokens = r.cached_tokens;
	v->output_tokens = r.output_tokens;
	v->since_ns = gen->start_ns;
}

void correlator_gauges(const struct correlator *c, struct tm_gauges *g)
{
	memset(g, 0, sizeof(*g));
	for (const struct request *r = c->open; r; r = r->next) {
		g->active_requests++;
		g->active_inference += route_operation(r->span.route.kind) != NULL;
	}
	g->queue_known = !engine_first(c);
	for (const struct task *t = c->tasks; t; t = t->next)
		if (t->phase == TASK_QUEUED && t->req)
			g->queued_tasks++;

	for (int s = 0; s < LLMTAP_MAX_SEQ; s++) {
		const struct task *t = c->slot_task[s];
		struct tm_slot *v;

		if (t)
			g->busy_slots++;
		g->kv_cells += (uint64_t)c->kv_next[s];
		if ((!t && !c->kv_next[s]) || g->n_slots >= TM_MAX_SLOTS)
			continue;
		v = &g->slots[g->n_slots++];
		v->slot = s;
		v->kv_cells = (uint64_t)c->kv_next[s];
		v->route = "";
		if (!t)
			continue;
		v->phase = t->phase == TASK_GENERATE ? 2 : 1;
		if (t->req) {
			v->known = t->req->span.known;
			v->request_id = t->req->span.id;
			v->route = t->req->span.route.template;
			v->prompt_tokens = t->req->span.prompt_tokens;
			v->cached_tokens = t->req->span.cached_tokens;
			v->output_tokens = t->req->span.output_tokens;
			v->since_ns = t->req->span.launch_ns;
		}
	}
	if (engine_first(c))
		gen_tracker_each_open(c->gens, gauge_gen, &(struct gauge_scan){ c, g });
	g->n_ctx = c->n_ctx;
}

/*
 * The context the requests run on. The server layer reads the slots' context at launch,
 * and a step on it confirms it. Before that, llama-server's target context is the
 * first to decode (every version in tests/compat/versions): common_init_from_params
 * creates it and runs its warmup before a draft model is loaded, and b9842 and later
 * check it (common_context_can_seq_rm, a decode) before the draft's. Without the
 * server layer, an embedder's context is the only one that decodes; two: unknown.
 */
static uint64_t requests_context(const struct correlator *c)
{
	uint64_t first;

	if (engine_first(c))
		return gen_tracker_only_context(c->gens);
	if (c->target_seen)
		return c->target_ctx;
	first = gen_tracker_first_context(c->gens);
	/* a launch read another context, not confirmed yet: neither is believed */
	if (c->target_ctx && c->target_ctx != first)
		return 0;
	return first;
}

bool correlator_context(const struct correlator *c, struct ctx_creation *out)
{
	unsigned int i, n = c->n_created < CTX_KEEP ? c->n_created : CTX_KEEP;
	uint64_t ctx = requests_context(c);

	if (!ctx)
		return false;
	for (i = 0; i < n; i++) { /* newest first: an address reused is the newest creation's */
		const struct ctx_creation *cc = &c->created[(c->n_created - 1 - i) % CTX_KEEP];

		if (cc->ctx == ctx) {
			*out = *cc;
			return true;
		}
	}
	return false;
}

void correlator_free(struct correlator *c)
{
	struct task *t, *nt;
	struct request *r, *nr;

	if (!c)
		return;
	for (t = c->tasks; t; t = nt) {
		nt = t->next;
		free(t);
	}
	for (r = c->open; r; r = nr) {
		nr = r->next;
		free(r);
	}
	for (r = c->pending; r; r = nr) {
		nr = r->next;
		free(r);
	}
	gen_tracker_free(c->gens);
	stepsync_free(c->sync);
	free(c);
}
