// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/correlate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmtap_sites.h"
#include "model/telemetry.h"

#define MAX_THREADS 256      /* HTTP worker threads followed at once */
#define MAX_REQ_TASKS 4096   /* tasks charged to one request (rerank: one per document) */
/*
 * Unfinished tasks followed at once, whatever the target claims: a flood of
 * task ids costs bounded memory, and finding one is a hash lookup.
 */
#define MAX_TASKS 16384
#define TASK_BUCKETS 4096    /* a power of two */

enum task_phase { TASK_QUEUED = 0, TASK_PREFILL, TASK_GENERATE, TASK_DONE };

struct request;

struct task {
	int id;
	struct request *req; /* NULL: a task whose request llmtap did not see */
	int slot;            /* -1 until launched */
	enum task_phase phase;
	bool prefill_seen;
	struct task *next, *prev; /* in the correlator's list */
	struct task *hnext;       /* in its hash bucket */
};

struct request {
	struct req_span span;
	struct request *next;
};

struct http_thread {
	uint32_t tid;
	struct request *req;
};

struct correlator {
	struct telemetry *tm;
	unsigned int layers; /* attached and believed: 1 << enum llmtap_layer */
	bool router;         /* a router llama-server: its requests are proxies */
	struct request *open;                  /* requests begun, not ended */
	struct task *tasks;                    /* tasks not yet finished */
	struct task *by_id[TASK_BUCKETS];      /* the same, by id */
	int n_tasks;
	struct task *slot_task[LLMTAP_MAX_SEQ]; /* the task running on each slot */
	int64_t kv_next[LLMTAP_MAX_SEQ];       /* next position per sequence */
	int64_t pending_load[LLMTAP_MAX_SEQ];  /* bytes restored into an idle slot */
	struct http_thread threads[MAX_THREADS];
	uint64_t next_id;
	uint32_t n_ctx; /* from context creation, when seen */
	struct task *launching; /* the task most recently launched on a slot */
	/*
	 * The slots' llama_context, read at launch; once a step on it confirms it,
	 * steps and samples on any other context are a draft model's (speculative
	 * decoding) and are not the requests' prompt or output.
	 */
	uint64_t target_ctx;
	bool target_seen;
};

struct correlator *correlator_new(struct telemetry *tm, unsigned int layers)
{
	struct correlator *c = calloc(1, sizeof(*c));

	if (c) {
		c->tm = tm;
		c->layers = layers;
	}
	return c;
}

static bool has_layer(const struct correlator *c, enum llmtap_layer l)
{
	return c->layers & (1u << l);
}

void correlator_disable_layer(struct correlator *c, enum llmtap_layer layer)
{
	c->layers &= ~(1u << layer);
}

void correlator_set_router(struct correlator *c, bool router)
{
	c->router = router;
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

/* Forget a request and its tasks. */
static void request_drop(struct correlator *c, struct request *r)
{
	struct request **pp;
	struct task *t, *next;

	for (t = c->tasks; t; t = next) {
		next = t->next;
		if (t->req == r)
			task_free(c, t);
	}
	for (pp = &c->open; *pp && *pp != r; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = r->next;
	for (int i = 0; i < MAX_THREADS; i++)
		if (c->threads[i].req == r)
			c->threads[i].req = NULL;
	free(r);
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
		telemetry_request(c->tm, &r->span);
	}
	request_drop(c, r);
}

static void on_http(struct correlator *c, const struct llmtap_http_event *h)
{
	struct http_thread *th = thread_of(c, h->tid, h->op == LLMTAP_HTTP_BEGIN);
	struct request *r = th ? th->req : NULL;

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
		request_close(c, r, true);
		break;
	}
}

static void charge_load(struct request *r, int64_t bytes)
{
	r->span.cache_loads++;
	r->span.cache_bytes_loaded += bytes > 0 ? (uint64_t)bytes : 0;
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
		if (!task_new(c, e->task_id, th->req))
			return;
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
		t->phase = TASK_DONE;
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
		t->phase = TASK_DONE;
		if (!t->req)
			task_free(c, t);
		break;
	}
}

static void on_step(struct correlator *c, struct step *s)
{
	if (c->target_ctx && s->ctx == c->target_ctx)
		c->target_seen = true;
	if (draft_ctx(c, s->ctx))
		return; /* the draft model's own prefill and drafting */
	for (uint32_t i = 0; i < s->n_runs; i++) {
		const struct llmtap_run *run = &s->runs[i];
		struct task *t = slot_task(c, run->seq_id);

		if (run->seq_id >= 0 && run->seq_id < LLMTAP_MAX_SEQ) {
			c->pending_load[run->seq_id] = 0; /* a restore is charged at launch or never */
			if (run->pos_last >= 0 && s->ret == 0)
				c->kv_next[run->seq_id] = (int64_t)run->pos_last + 1;
		}
		if (!t || !t->req || s->ret != 0)
			continue;
		s->request_ids[i] = t->req->span.id;
		if (t->phase != TASK_PREFILL)
			continue;
		if (!t->prefill_seen) {
			/* the prompt's first decoded position: everything before came from the cache */
			t->prefill_seen = true;
			t->req->span.attribution = REQ_ATTR_SERVER;
			t->req->span.known |= REQ_KNOWN_PROMPT;
			if (has_layer(c, LAYER_SAMPLING))
				t->req->span.known |= REQ_KNOWN_OUTPUT;
			if (run->pos_first > 0)
				t->req->span.cached_tokens += (uint32_t)run->pos_first;
		}
		t->req->span.prompt_tokens += run->n_tokens;
	}
}

static void on_sample(struct correlator *c, const struct llmtap_sample_event *e)
{
	struct task *t = slot_task(c, e->seq_id);
	uint64_t took = e->end_ns > e->start_ns ? e->end_ns - e->start_ns : 0;

	if (draft_ctx(c, e->ctx)) { /* a token drafted for the target to verify */
		if (t && t->req)
			t->req->span.draft_tokens++;
		return;
	}
	telemetry_sampled(c->tm, e->end_ns, took);
	if (!t || !t->req)
		return;
	t->req->span.output_tokens++;
	t->req->span.sampling_ns += took;
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
		if (e->ret)
			c->n_ctx = e->params[0];
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
		telemetry_step(c->tm, &ev->step);
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

void correlator_flush(struct correlator *c, uint64_t now_ns)
{
	while (c->open) {
		c->open->span.end_ns = now_ns;
		request_close(c, c->open, false);
	}
}

void correlator_gauges(const struct correlator *c, struct tm_gauges *g)
{
	memset(g, 0, sizeof(*g));
	for (const struct request *r = c->open; r; r = r->next) {
		g->active_requests++;
		g->active_inference += route_operation(r->span.route.kind) != NULL;
	}
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
			v->request_id = t->req->span.id;
			v->route = t->req->span.route.template;
			v->prompt_tokens = t->req->span.prompt_tokens;
			v->cached_tokens = t->req->span.cached_tokens;
			v->output_tokens = t->req->span.output_tokens;
			v->since_ns = t->req->span.launch_ns;
		}
	}
	g->n_ctx = c->n_ctx;
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
	free(c);
}
