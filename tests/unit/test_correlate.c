// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for user/model/correlate.c: hand-built probe events in, the requests and
 * engine events the telemetry model receives out (through a recording sink).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmtap_sites.h"
#include "model/correlate.h"
#include "model/telemetry.h"
#include "sink/sink.h"

#define MAX_REQS 16
#define MAX_EES 16
#define MAX_STEPS 16

#define MAIN_TID 1 /* llama-server's main loop: launches, steps, samples */

/* the llama_context of the events built below: the slots' one unless a test drafts */
#define TARGET_CTX 0xc0
#define DRAFT_CTX 0xd0
static uint64_t events_ctx = TARGET_CTX;
/* the n_predict a launch record carries (LLMTAP_N_PREDICT_UNKNOWN: not read) */
static int32_t launch_n_predict = LLMTAP_N_PREDICT_UNKNOWN;
/* the server's stop_type a final record carries (-1: not read) */
static int32_t final_stop_type = -1;

/* A sink that keeps a copy of every request, engine event and step it is handed. */
struct rec_sink {
	int n_reqs;
	struct req_span reqs[MAX_REQS];
	int n_ees;
	struct engine_event ees[MAX_EES];
	int n_steps;
	struct step steps[MAX_STEPS];
};

static void rec_request(void *self, const struct req_span *r, int64_t off)
{
	struct rec_sink *s = self;
	(void)off;

	if (s->n_reqs >= MAX_REQS)
		fail_msg("more than %d requests", MAX_REQS);
	s->reqs[s->n_reqs++] = *r;
}

static void rec_engine_event(void *self, const struct engine_event *e, int64_t off)
{
	struct rec_sink *s = self;
	(void)off;

	if (s->n_ees >= MAX_EES)
		fail_msg("more than %d engine events", MAX_EES);
	s->ees[s->n_ees] = *e;
	s->ees[s->n_ees].text = NULL; /* points into the event, gone after the call */
	s->n_ees++;
}

static void rec_step(void *self, const struct step *st, int64_t off)
{
	struct rec_sink *s = self;
	(void)off;

	if (s->n_steps >= MAX_STEPS)
		fail_msg("more than %d steps", MAX_STEPS);
	s->steps[s->n_steps++] = *st;
}

static void rec_destroy(void *self)
{
	free(self);
}

static const struct sink_ops rec_ops = {
	.step = rec_step,
	.request = rec_request,
	.engine_event = rec_engine_event,
	.destroy = rec_destroy,
};

static const struct tm_target target = {
	.pid = 4242,
	.comm = "llama-server",
	.library = "/usr/lib/libllama.so",
	.layers = "engine,sampling,server,http",
	.model = "",
};

struct fixture {
	struct telemetry *tm;
	struct correlator *c;
	struct rec_sink *rec;
};

#define ALL_LAYERS ((1u << LAYER_MAX) - 1)

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->tm = calloc(1, sizeof(*f->tm)); /* struct telemetry is large */
	f->rec = calloc(1, sizeof(*f->rec));
	assert_non_null(f->tm);
	assert_non_null(f->rec);
	telemetry_init(f->tm, &target, 0);
	assert_int_equal(telemetry_add_sink(f->tm, (struct sink){ .ops = &rec_ops, .self = f->rec }),
			 0);
	f->c = correlator_new(f->tm, ALL_LAYERS);
	assert_non_null(f->c);
	events_ctx = TARGET_CTX;
	launch_n_predict = LLMTAP_N_PREDICT_UNKNOWN;
	final_stop_type = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	telemetry_destroy(f->tm); /* frees the recording sink */
	correlator_free(f->c);
	free(f->tm);
	free(f);
	return 0;
}

/* ---- building events ---- */

static void http(struct correlator *c, uint64_t ts, uint32_t tid, uint32_t op, int value,
		 int value2, const char *s0, const char *s1)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_HTTP;
	ev.http.hdr.version = LLMTAP_EVENT_VERSION;
	ev.http.hdr.kind = LLMTAP_EV_HTTP;
	ev.http.pid = 4242;
	ev.http.tid = tid;
	ev.http.ts_ns = ts;
	ev.http.op = op;
	ev.http.value = value;
	ev.http.value2 = value2;
	snprintf(ev.http.s0, sizeof(ev.http.s0), "%s", s0);
	snprintf(ev.http.s1, sizeof(ev.http.s1), "%s", s1);
	ev.http.len0 = (uint32_t)strlen(ev.http.s0);
	ev.http.len1 = (uint32_t)strlen(ev.http.s1);
	correlator_event(c, &ev);
}

static void begin(struct correlator *c, uint64_t ts, uint32_t tid, int port)
{
	http(c, ts, tid, LLMTAP_HTTP_BEGIN, port, 8080, "127.0.0.1", "");
}

static void route(struct correlator *c, uint64_t ts, uint32_t tid, const char *method,
		  const char *path)
{
	http(c, ts, tid, LLMTAP_HTTP_ROUTE, 0, 0, method, path);
}

static void status(struct correlator *c, uint64_t ts, uint32_t tid, int code)
{
	http(c, ts, tid, LLMTAP_HTTP_STATUS, code, 0, "", "");
}

static void end(struct correlator *c, uint64_t ts, uint32_t tid)
{
	http(c, ts, tid, LLMTAP_HTTP_END, 1, 0, "", "");
}

/* A llama-server record; a final one with the slot's last stop check (stop_ns 0: none). */
static void srv_record(struct correlator *c, uint64_t ts, uint32_t tid, uint32_t op, int task,
		       int slot, int err_type, const char *msg, uint64_t stop_ns, bool full)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_SERVER;
	ev.srv.hdr.version = LLMTAP_EVENT_VERSION;
	ev.srv.hdr.kind = LLMTAP_EV_SERVER;
	ev.srv.pid = 4242;
	ev.srv.tid = tid;
	ev.srv.ts_ns = ts;
	ev.srv.op = op;
	ev.srv.task_id = task;
	ev.srv.slot_id = slot;
	ev.srv.err_type = err_type;
	ev.srv.ctx = op == LLMTAP_SRV_LAUNCH ? TARGET_CTX : 0;
	ev.srv.n_predict = launch_n_predict;
	ev.srv.stop_type = op == LLMTAP_SRV_FINAL ? final_stop_type : -1;
	ev.srv.stop_ns = stop_ns;
	ev.srv.stop_full = full;
	snprintf(ev.srv.msg, sizeof(ev.srv.msg), "%s", msg);
	ev.srv.msg_len = (uint32_t)strlen(ev.srv.msg);
	correlator_event(c, &ev);
}

static void srv_msg(struct correlator *c, uint64_t ts, uint32_t tid, uint32_t op, int task,
		    int slot, int err_type, const char *msg)
{
	srv_record(c, ts, tid, op, task, slot, err_type, msg, 0, false);
}

static void srv(struct correlator *c, uint64_t ts, uint32_t tid, uint32_t op, int task, int slot)
{
	srv_msg(c, ts, tid, op, task, slot, 0, "");
}

static void step_runs(struct correlator *c, uint64_t ts, int32_t ret, uint32_t n,
		      const struct llmtap_run *runs)
{
	struct event ev;
	int32_t tokens = 0;
	uint32_t outputs = 0;

	assert_true(n <= LLMTAP_MAX_RUNS);
	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_STEP;
	ev.step.pid = 4242;
	ev.step.tid = MAIN_TID;
	ev.step.ctx = events_ctx;
	ev.step.start_ns = ts;
	ev.step.end_ns = ts + 5;
	ev.step.ret = ret;
	ev.step.n_runs = n;
	for (uint32_t i = 0; i < n; i++) {
		ev.step.runs[i] = runs[i];
		tokens += (int32_t)runs[i].n_tokens;
		outputs += runs[i].n_outputs;
	}
	ev.step.n_tokens = tokens;
	ev.step.n_outputs = outputs;
	ev.step.n_seqs = n;
	ev.step.kind = STEP_MIXED;
	correlator_event(c, &ev);
}

static void step1(struct correlator *c, uint64_t ts, int seq, uint32_t n_tokens, int pos_first,
		  int pos_last, uint32_t n_outputs)
{
	struct llmtap_run run = {
		.seq_id = seq,
		.n_tokens = n_tokens,
		.pos_first = pos_first,
		.pos_last = pos_last,
		.n_outputs = n_outputs,
	};

	step_runs(c, ts, 0, 1, &run);
}

#define SAMPLE_NS 4 /* how long each sampler call takes: the token exists at its end */

/* one token sampled for seq (its sampler's return: the token is known) */
static void sample_tok(struct correlator *c, uint64_t ts, int seq, int32_t token)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_SAMPLE;
	ev.sample.hdr.version = LLMTAP_EVENT_VERSION;
	ev.sample.hdr.kind = LLMTAP_EV_SAMPLE;
	ev.sample.pid = 4242;
	ev.sample.tid = MAIN_TID;
	ev.sample.ctx = events_ctx;
	ev.sample.start_ns = ts;
	ev.sample.end_ns = ts + SAMPLE_NS;
	ev.sample.seq_id = seq;
	ev.sample.token = token;
	correlator_event(c, &ev);
}

static void sample(struct correlator *c, uint64_t ts, int seq)
{
	sample_tok(c, ts, seq, 42);
}

/* llama_get_logits_ith(ctx, idx) read on a thread that did not decode */
static void logits_read(struct correlator *c, uint64_t ts, int idx)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_SAMPLE;
	ev.sample.tid = MAIN_TID + 100;
	ev.sample.ctx = events_ctx;
	ev.sample.start_ns = ev.sample.end_ns = ts;
	ev.sample.idx = idx;
	ev.sample.seq_id = -1;
	ev.sample.token = -1;
	ev.sample.flags = LLMTAP_SAMPLE_LOGITS | LLMTAP_SAMPLE_NO_BATCH;
	correlator_event(c, &ev);
}

static void kv(struct correlator *c, uint64_t ts, uint32_t op, int a0, int a1, int a2, int a3)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_KV;
	ev.kv.hdr.version = LLMTAP_EVENT_VERSION;
	ev.kv.hdr.kind = LLMTAP_EV_KV;
	ev.kv.pid = 4242;
	ev.kv.tid = MAIN_TID;
	ev.kv.ts_ns = ts;
	ev.kv.op = op;
	ev.kv.args[0] = a0;
	ev.kv.args[1] = a1;
	ev.kv.args[2] = a2;
	ev.kv.args[3] = a3;
	correlator_event(c, &ev);
}

static void call(struct correlator *c, uint64_t ts, uint64_t dur, uint32_t tid, uint32_t op,
		 int seq, int64_t ret, uint64_t aux, const char *text)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_CALL;
	ev.call.hdr.version = LLMTAP_EVENT_VERSION;
	ev.call.hdr.kind = LLMTAP_EV_CALL;
	ev.call.pid = 4242;
	ev.call.tid = tid;
	ev.call.start_ns = ts;
	ev.call.end_ns = ts + dur;
	ev.call.op = op;
	ev.call.seq = seq;
	ev.call.ret = ret;
	ev.call.aux = aux;
	snprintf(ev.call.text, sizeof(ev.call.text), "%s", text);
	ev.call.text_len = (uint32_t)strlen(ev.call.text);
	correlator_event(c, &ev);
}

static void context_init(struct correlator *c, uint64_t ts, int64_t ret, uint32_t n_ctx)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_CALL;
	ev.call.hdr.version = LLMTAP_EVENT_VERSION;
	ev.call.hdr.kind = LLMTAP_EV_CALL;
	ev.call.tid = MAIN_TID;
	ev.call.start_ns = ts;
	ev.call.end_ns = ts + 10;
	ev.call.op = LLMTAP_CALL_CONTEXT_INIT;
	ev.call.seq = -1;
	ev.call.ret = ret;
	ev.call.params[0] = n_ctx;
	ev.call.params[1] = 2048;
	ev.call.params[2] = 512;
	ev.call.params[3] = 4;
	correlator_event(c, &ev);
}

static struct tm_gauges gauges(struct correlator *c)
{
	struct tm_gauges g;

	memset(&g, 0xa5, sizeof(g)); /* correlator_gauges must fill every field */
	correlator_gauges(c, &g);
	return g;
}

/* The recorded request with this start time. */
static const struct req_span *req_started(const struct rec_sink *s, uint64_t start_ns)
{
	for (int i = 0; i < s->n_reqs; i++)
		if (s->reqs[i].start_ns == start_ns)
			return &s->reqs[i];
	fail_msg("no request started at %llu", (unsigned long long)start_ns);
	return NULL;
}

/* ---- speculative decoding: a draft model's steps and samples are not the request's ---- */

static void test_draft_model(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	struct llmtap_run verify = { .seq_id = 0, .n_tokens = 3, .pos_first = 10, .pos_last = 12,
				     .n_outputs = 3 };
	const struct req_span *r;

	begin(c, 100, 10, 5555);
	route(c, 101, 10, "POST", "/completion");
	srv(c, 102, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 103, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0); /* the slot's context: TARGET_CTX */
	step1(c, 110, 0, 10, 0, 9, 1);                  /* the prompt */
	events_ctx = DRAFT_CTX;
	step1(c, 120, 0, 10, 0, 9, 1); /* the draft model reads the same prompt */
	events_ctx = TARGET_CTX;
	sample(c, 130, 0); /* the first token */
	events_ctx = DRAFT_CTX;
	step1(c, 140, 0, 1, 10, 10, 1);
	sample(c, 150, 0); /* two drafted tokens */
	step1(c, 160, 0, 1, 11, 11, 1);
	sample(c, 170, 0);
	events_ctx = TARGET_CTX;
	step_runs(c, 180, 0, 1, &verify); /* the target verifies them: both kept, one more */
	sample(c, 190, 0);
	sample(c, 191, 0);
	sample(c, 192, 0);
	srv(c, 200, MAIN_TID, LLMTAP_SRV_FINAL, 7, 0);
	status(c, 201, 10, 200);
	end(c, 202, 10);

	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->prompt_tokens, 10);
	assert_int_equal(r->output_tokens, 4);
	assert_int_equal(r->draft_tokens, 2);
	assert_int_equal(r->first_token_ns, 130 + SAMPLE_NS);
}

/* A target that launches one task on two slots, then ends it on one: nothing freed is kept. */
static void test_task_on_two_slots(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	struct tm_gauges g;

	srv(c, 100, MAIN_TID, LLMTAP_SRV_LAUNCH, 5, 0);
	srv(c, 101, MAIN_TID, LLMTAP_SRV_LAUNCH, 5, 1);
	srv(c, 102, MAIN_TID, LLMTAP_SRV_FINAL, 5, 1);
	sample(c, 103, 0); /* read a freed task before (AddressSanitizer: heap-use-after-free) */
	step1(c, 104, 0, 1, 0, 0, 1);
	correlator_gauges(c, &g);
	assert_int_equal(g.busy_slots, 0);
	/* the same with a request: its end frees the task */
	begin(c, 200, 10, 5555);
	route(c, 201, 10, "POST", "/completion");
	srv(c, 202, 10, LLMTAP_SRV_NEW_ID, 6, -1);
	srv(c, 203, MAIN_TID, LLMTAP_SRV_LAUNCH, 6, 2);
	srv(c, 204, MAIN_TID, LLMTAP_SRV_LAUNCH, 6, 3);
	status(c, 205, 10, 200);
	end(c, 206, 10);
	sample(c, 207, 2);
	sample(c, 208, 3);
	correlator_gauges(c, &g);
	assert_int_equal(g.busy_slots, 0);
}

/* ---- a flood of task ids: bounded memory, and lookups that stay cheap ---- */

static void test_task_flood_is_bounded(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	struct timespec t0, t1;
	struct tm_gauges g;
	const struct req_span *r;
	double ms;

	/* 256 HTTP threads whose requests each take 4096 task ids and never finish */
	for (uint32_t tid = 1000; tid < 1256; tid++) {
		begin(c, 100, tid, 6000);
		route(c, 101, tid, "POST", "/rerank");
		for (int k = 0; k < 4096; k++)
			srv(c, 102, tid, LLMTAP_SRV_NEW_ID, (int)((tid - 1000) * 4096 + k + 1000), -1);
	}
	correlator_gauges(c, &g);
	assert_true(g.queued_tasks <= 16384); /* MAX_TASKS, not a million */
	/* events about unknown tasks do not walk the followed ones */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < 20000; k++)
		srv_msg(c, 103, MAIN_TID, LLMTAP_SRV_ERROR, 5000000 + k, -1, 1, "unknown");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (ms > 200)
		fail_msg("20000 unknown-task events took %.1f ms", ms);
	/* a request on a fresh thread after the flood is still followed, when a task is free */
	for (uint32_t tid = 1000; tid < 1256; tid++) {
		end(c, 200, tid);
		f->rec->n_reqs = 0; /* the recorder keeps MAX_REQS: these are not looked at */
	}
	correlator_gauges(c, &g);
	assert_int_equal(g.queued_tasks, 0);
	begin(c, 300, 10, 5555);
	route(c, 301, 10, "POST", "/completion");
	srv(c, 302, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 303, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	step1(c, 310, 0, 5, 0, 4, 1);
	sample(c, 320, 0);
	srv(c, 330, MAIN_TID, LLMTAP_SRV_FINAL, 7, 0);
	status(c, 331, 10, 200);
	end(c, 332, 10);
	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->prompt_tokens, 5);
	assert_int_equal(r->output_tokens, 1);
}

/* ---- a. one request, start to end ---- */

static void test_full_request(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;
	struct tm_gauges g;

	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	g = gauges(c);
	assert_int_equal(g.queued_tasks, 1);
	assert_int_equal(g.busy_slots, 0);
	srv(c, 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 2);
	g = gauges(c);
	assert_int_equal(g.queued_tasks, 0);
	assert_int_equal(g.busy_slots, 1);
	step1(c, 140, 2, 30, 5, 34, 1);
	sample(c, 150, 2);
	step1(c, 160, 2, 1, 35, 35, 1);
	sample(c, 170, 2);
	sample(c, 180, 2);
	srv(c, 190, MAIN_TID, LLMTAP_SRV_FINAL, 7, 2);
	status(c, 200, 10, 200);
	assert_int_equal(f->rec->n_reqs, 0); /* not before its last byte */
	end(c, 210, 10);

	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->id, 1);
	assert_int_equal(r->tid, 10);
	assert_int_equal(r->start_ns, 100);
	assert_int_equal(r->end_ns, 210);
	assert_string_equal(r->method, "POST");
	assert_string_equal(r->path, "/completion");
	assert_string_equal(r->client, "127.0.0.1");
	assert_int_equal(r->client_port, 5555);
	assert_int_equal(r->server_port, 8080);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->route.kind, ROUTE_COMPLETION);
	assert_string_equal(r->route.template, "/completion");
	assert_false(r->stream);
	assert_true(r->complete);
	assert_int_equal(r->n_tasks, 1);
	assert_int_equal(r->slot, 2);
	assert_false(r->deferred);
	assert_int_equal(r->enqueue_ns, 120);
	assert_int_equal(r->launch_ns, 130);
	assert_int_equal(r->first_token_ns, 150 + SAMPLE_NS);
	assert_int_equal(r->sampling_ns, 3 * SAMPLE_NS); /* its three tokens' sampler calls */
	assert_int_equal(r->final_ns, 190);
	assert_int_equal(r->cached_tokens, 5);
	assert_int_equal(r->prompt_tokens, 30);
	assert_int_equal(r->output_tokens, 3);
	assert_int_equal(r->context_shifts, 0);
	assert_int_equal(r->cache_loads, 0);
	assert_int_equal(r->cache_bytes_loaded, 0);
	assert_int_equal(r->tokenize_calls, 0);
	assert_int_equal(r->err_type, -1);
	assert_string_equal(r->err_msg, "");
	assert_int_equal(req_queue_ns(r), 0);
	assert_false(req_failed(r));

	/* each step was annotated with the request its run served */
	assert_int_equal(f->rec->n_steps, 2);
	assert_int_equal(f->rec->steps[0].request_ids[0], 1);
	assert_int_equal(f->rec->steps[1].request_ids[0], 1);
	assert_int_equal(f->rec->n_ees, 0);

	/* the telemetry model counted it */
	assert_int_equal(f->tm->total.requests, 1);
	assert_int_equal(f->tm->total.requests_failed, 0);
	assert_int_equal(f->tm->total.by_route[ROUTE_COMPLETION], 1);
	assert_int_equal(f->tm->total.input_tokens, 35);
	assert_int_equal(f->tm->total.cached_tokens, 5);
	assert_int_equal(f->tm->total.output_tokens, 3);

	/* nothing left open; the sequence still holds its cells */
	g = gauges(c);
	assert_int_equal(g.active_requests, 0);
	assert_int_equal(g.active_inference, 0);
	assert_int_equal(g.queued_tasks, 0);
	assert_int_equal(g.busy_slots, 0);
	assert_int_equal(g.kv_cells, 36);
	assert_int_equal(g.n_ctx, 0);
	correlator_flush(c, 1000);
	assert_int_equal(f->rec->n_reqs, 1);
}

/* ---- b. two requests interleaved on two slots ---- */

static void test_interleaved(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *a, *b;
	struct llmtap_run runs[2];

	begin(c, 100, 10, 5001); /* A, id 1 */
	begin(c, 101, 11, 5002); /* B, id 2 */
	route(c, 102, 10, "POST", "/v1/chat/completions");
	route(c, 103, 11, "POST", "/completion");
	srv(c, 104, 11, LLMTAP_SRV_NEW_ID, 20, -1); /* B's task first */
	srv(c, 105, 10, LLMTAP_SRV_NEW_ID, 21, -1);
	srv(c, 106, MAIN_TID, LLMTAP_SRV_LAUNCH, 21, 0); /* A on slot 0 */
	srv(c, 107, MAIN_TID, LLMTAP_SRV_LAUNCH, 20, 1); /* B on slot 1 */
	assert_int_equal(gauges(c).busy_slots, 2);

	runs[0] = (struct llmtap_run){ .seq_id = 1, .n_tokens = 12, .pos_first = 0,
				       .pos_last = 11, .n_outputs = 1 };
	runs[1] = (struct llmtap_run){ .seq_id = 0, .n_tokens = 20, .pos_first = 4,
				       .pos_last = 23, .n_outputs = 1 };
	step_runs(c, 110, 0, 2, runs);
	sample(c, 111, 0);
	sample(c, 112, 1);
	runs[0] = (struct llmtap_run){ .seq_id = 0, .n_tokens = 1, .pos_first = 24,
				       .pos_last = 24, .n_outputs = 1 };
	runs[1] = (struct llmtap_run){ .seq_id = 1, .n_tokens = 1, .pos_first = 12,
				       .pos_last = 12, .n_outputs = 1 };
	step_runs(c, 120, 0, 2, runs);
	sample(c, 121, 1);
	sample(c, 122, 0);
	step1(c, 130, 0, 1, 25, 25, 1);
	sample(c, 131, 0);

	srv(c, 132, MAIN_TID, LLMTAP_SRV_FINAL, 20, 1);
	status(c, 133, 11, 200);
	end(c, 134, 11);
	assert_int_equal(f->rec->n_reqs, 1);
	srv(c, 140, MAIN_TID, LLMTAP_SRV_FINAL, 21, 0);
	status(c, 141, 10, 201);
	end(c, 142, 10);
	assert_int_equal(f->rec->n_reqs, 2);

	b = &f->rec->reqs[0];
	assert_int_equal(b->id, 2);
	assert_int_equal(b->tid, 11);
	assert_int_equal(b->client_port, 5002);
	assert_int_equal(b->route.kind, ROUTE_COMPLETION);
	assert_int_equal(b->slot, 1);
	assert_int_equal(b->cached_tokens, 0);
	assert_int_equal(b->prompt_tokens, 12);
	assert_int_equal(b->output_tokens, 2);
	assert_int_equal(b->enqueue_ns, 104);
	assert_int_equal(b->launch_ns, 107);
	assert_int_equal(b->first_token_ns, 112 + SAMPLE_NS);
	assert_int_equal(b->final_ns, 132);
	assert_int_equal(b->status, 200);
	assert_int_equal(b->end_ns, 134);

	a = &f->rec->reqs[1];
	assert_int_equal(a->id, 1);
	assert_int_equal(a->tid, 10);
	assert_int_equal(a->client_port, 5001);
	assert_int_equal(a->route.kind, ROUTE_CHAT);
	assert_string_equal(a->route.template, "/v1/chat/completions");
	assert_int_equal(a->slot, 0);
	assert_int_equal(a->cached_tokens, 4);
	assert_int_equal(a->prompt_tokens, 20);
	assert_int_equal(a->output_tokens, 3);
	assert_int_equal(a->enqueue_ns, 105);
	assert_int_equal(a->launch_ns, 106);
	assert_int_equal(a->first_token_ns, 111 + SAMPLE_NS);
	assert_int_equal(a->final_ns, 140);
	assert_int_equal(a->status, 201);
	assert_true(a->complete && b->complete);

	/* every run was annotated with its own request */
	assert_int_equal(f->rec->n_steps, 3);
	assert_int_equal(f->rec->steps[0].request_ids[0], 2);
	assert_int_equal(f->rec->steps[0].request_ids[1], 1);
	assert_int_equal(f->rec->steps[1].request_ids[0], 1);
	assert_int_equal(f->rec->steps[1].request_ids[1], 2);
	assert_int_equal(f->rec->steps[2].request_ids[0], 1);
	assert_int_equal(gauges(c).kv_cells, 26 + 13);
}

/* ---- c. waiting for a free slot ---- */

static void test_deferred(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;

	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 125, MAIN_TID, LLMTAP_SRV_DEFER, 7, -1);
	assert_int_equal(gauges(c).queued_tasks, 1);
	srv(c, 500, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	assert_int_equal(gauges(c).queued_tasks, 0);
	step1(c, 510, 0, 4, 0, 3, 1);
	sample(c, 520, 0);
	srv(c, 600, MAIN_TID, LLMTAP_SRV_FINAL, 7, 0);
	status(c, 610, 10, 200);
	end(c, 620, 10);

	/* the same on another thread, dispatched at once */
	begin(c, 1000, 11, 5556);
	route(c, 1001, 11, "POST", "/completion");
	srv(c, 1002, 11, LLMTAP_SRV_NEW_ID, 8, -1);
	srv(c, 1050, MAIN_TID, LLMTAP_SRV_LAUNCH, 8, 0);
	srv(c, 1100, MAIN_TID, LLMTAP_SRV_FINAL, 8, 0);
	status(c, 1110, 11, 200);
	end(c, 1120, 11);

	assert_int_equal(f->rec->n_reqs, 2);
	r = req_started(f->rec, 100);
	assert_true(r->deferred);
	assert_int_equal(r->enqueue_ns, 120);
	assert_int_equal(r->launch_ns, 500);
	assert_int_equal(req_queue_ns(r), 380);
	assert_int_equal(r->slot, 0);
	assert_int_equal(r->prompt_tokens, 4);

	r = req_started(f->rec, 1000);
	assert_false(r->deferred);
	assert_int_equal(r->enqueue_ns, 1002);
	assert_int_equal(r->launch_ns, 1050);
	assert_int_equal(req_queue_ns(r), 0);
	/* the second request did not inherit the first one's tokens on slot 0 */
	assert_int_equal(r->prompt_tokens, 0);
	assert_int_equal(r->output_tokens, 0);
}

/* ---- d. a kept-alive connection that closes without a request ---- */

static void test_keepalive_no_request(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;

	begin(c, 100, 10, 5555);
	assert_int_equal(gauges(c).active_requests, 1);
	end(c, 200, 10);
	assert_int_equal(f->rec->n_reqs, 0);
	assert_int_equal(gauges(c).active_requests, 0);
	assert_int_equal(f->tm->total.requests, 0);

	/* the thread then serves a real request */
	begin(c, 300, 10, 5556);
	route(c, 310, 10, "GET", "/health");
	assert_int_equal(gauges(c).active_inference, 0);
	status(c, 320, 10, 200);
	end(c, 330, 10);
	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->start_ns, 300);
	assert_int_equal(r->client_port, 5556);
	assert_int_equal(r->route.kind, ROUTE_HEALTH);
	assert_int_equal(r->n_tasks, 0);
	assert_int_equal(r->slot, -1);
	assert_true(r->complete);

	/* a request refused before routing (a status, no route) still counts */
	begin(c, 400, 10, 5557);
	status(c, 410, 10, 400);
	end(c, 420, 10);
	assert_int_equal(f->rec->n_reqs, 2);
	r = &f->rec->reqs[1];
	assert_int_equal(r->status, 400);
	assert_string_equal(r->method, "");
	assert_int_equal(r->route.kind, ROUTE_OTHER);
	assert_string_equal(r->route.template, "other");
	assert_true(req_failed(r));
}

/* ---- e. a request that began before llmtap attached ---- */

static void test_before_attach(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	struct tm_gauges g;

	/* HTTP events of a request whose BEGIN was not seen */
	route(c, 90, 12, "POST", "/completion");
	status(c, 95, 10, 200);
	end(c, 100, 10);
	assert_int_equal(gauges(c).active_requests, 0);
	/* a task created on a thread with no request: the main loop's own */
	srv(c, 105, MAIN_TID, LLMTAP_SRV_NEW_ID, 98, -1);
	srv(c, 106, MAIN_TID, LLMTAP_SRV_DEFER, 98, -1);
	assert_int_equal(gauges(c).queued_tasks, 0);

	/* launch of a task nobody saw created */
	srv(c, 110, MAIN_TID, LLMTAP_SRV_LAUNCH, 99, 4);
	g = gauges(c);
	assert_int_equal(g.busy_slots, 1);
	assert_int_equal(g.queued_tasks, 0);
	step1(c, 120, 4, 8, 0, 7, 1);
	sample(c, 130, 4);
	sample(c, 131, 5);   /* a slot with no task at all */
	sample(c, 132, -1);  /* sequence unknown */
	sample(c, 133, LLMTAP_MAX_SEQ);
	srv(c, 134, MAIN_TID, LLMTAP_SRV_PARTIAL, 99, 4);
	kv(c, 135, LLMTAP_KV_SEQ_ADD, 4, 0, 8, -2);
	srv(c, 140, MAIN_TID, LLMTAP_SRV_FINAL, 99, 4);
	srv(c, 141, MAIN_TID, LLMTAP_SRV_FINAL, 0, 9);  /* nothing on slot 9 */
	srv_msg(c, 142, MAIN_TID, LLMTAP_SRV_ERROR, 12345, -1, 1, "unknown task");
	srv(c, 143, MAIN_TID, LLMTAP_SRV_LAUNCH, 100, -1);
	srv(c, 144, MAIN_TID, LLMTAP_SRV_LAUNCH, 101, LLMTAP_MAX_SEQ);

	assert_int_equal(f->rec->n_reqs, 0);
	assert_int_equal(f->rec->n_steps, 1);
	assert_int_equal(f->rec->steps[0].request_ids[0], 0);
	/* the shift is reported, tied to no request */
	assert_int_equal(f->rec->n_ees, 1);
	assert_int_equal(f->rec->ees[0].request_id, 0);
	g = gauges(c);
	assert_int_equal(g.active_requests, 0);
	assert_int_equal(g.busy_slots, 0);
	assert_int_equal(g.queued_tasks, 0);

	/* a request after all that is unaffected */
	begin(c, 200, 10, 6000);
	route(c, 201, 10, "POST", "/completion");
	srv(c, 202, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 203, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 4);
	step1(c, 204, 4, 3, 0, 2, 1);
	sample(c, 205, 4);
	sample(c, 206, 5); /* another slot: not this request's */
	srv(c, 207, MAIN_TID, LLMTAP_SRV_FINAL, 7, 4);
	status(c, 208, 10, 200);
	end(c, 209, 10);
	correlator_flush(c, 300);
	assert_int_equal(f->rec->n_reqs, 1);
	assert_int_equal(f->rec->reqs[0].output_tokens, 1);
	assert_int_equal(f->rec->reqs[0].prompt_tokens, 3);
	assert_false(f->rec->reqs[0].stream);
	assert_int_equal(f->rec->reqs[0].context_shifts, 0);
}

/* ---- f. streaming ---- */

static void test_partial_marks_stream(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	begin(c, 100, 10, 5001);
	route(c, 101, 10, "POST", "/v1/chat/completions");
	srv(c, 102, 10, LLMTAP_SRV_NEW_ID, 1, -1);
	begin(c, 103, 11, 5002);
	route(c, 104, 11, "POST", "/v1/chat/completions");
	srv(c, 105, 11, LLMTAP_SRV_NEW_ID, 2, -1);
	srv(c, 106, MAIN_TID, LLMTAP_SRV_LAUNCH, 1, 2);
	srv(c, 107, MAIN_TID, LLMTAP_SRV_LAUNCH, 2, 3);
	step1(c, 108, 2, 1, 0, 0, 1);
	sample(c, 109, 2);
	srv(c, 110, MAIN_TID, LLMTAP_SRV_PARTIAL, 1, 2);
	srv(c, 111, MAIN_TID, LLMTAP_SRV_FINAL, 1, 2);
	srv(c, 112, MAIN_TID, LLMTAP_SRV_FINAL, 2, 3);
	status(c, 113, 10, 200);
	end(c, 114, 10);
	status(c, 115, 11, 200);
	end(c, 116, 11);

	assert_int_equal(f->rec->n_reqs, 2);
	assert_true(req_started(f->rec, 100)->stream);
	assert_false(req_started(f->rec, 103)->stream);
}

/* ---- g. context shift ---- */

static void test_context_shift(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct engine_event *e;
	const struct req_span *r;

	begin(c, 100, 10, 5555);
	route(c, 101, 10, "POST", "/completion");
	srv(c, 102, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 103, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 2);
	step1(c, 104, 2, 200, 0, 199, 1);
	sample(c, 105, 2);

	kv(c, 300, LLMTAP_KV_SEQ_RM, 2, 1, 51, 0);
	kv(c, 301, LLMTAP_KV_SEQ_ADD, 2, 51, 200, -50);
	assert_int_equal(f->rec->n_ees, 1);
	e = &f->rec->ees[0];
	assert_int_equal(e->kind, EE_CONTEXT_SHIFT);
	assert_int_equal(e->ts_ns, 301);
	assert_int_equal(e->seq, 2);
	assert_int_equal(e->value, 50);
	assert_int_equal(e->request_id, 1);
	assert_true(e->ok);

	/* a positive shift, or a zero one, is not a context shift */
	kv(c, 302, LLMTAP_KV_SEQ_ADD, 2, 0, 10, 5);
	kv(c, 303, LLMTAP_KV_SEQ_ADD, 2, 0, 10, 0);
	assert_int_equal(f->rec->n_ees, 1);
	/* on an idle slot: reported, charged to no request */
	kv(c, 304, LLMTAP_KV_SEQ_ADD, 5, 0, 100, -10);
	assert_int_equal(f->rec->n_ees, 2);
	assert_int_equal(f->rec->ees[1].seq, 5);
	assert_int_equal(f->rec->ees[1].value, 10);
	assert_int_equal(f->rec->ees[1].request_id, 0);
	/* out of range: ignored */
	kv(c, 305, LLMTAP_KV_SEQ_ADD, LLMTAP_MAX_SEQ, 0, 100, -10);
	kv(c, 306, LLMTAP_KV_SEQ_ADD, -1, 0, 100, -10);
	assert_int_equal(f->rec->n_ees, 2);

	srv(c, 400, MAIN_TID, LLMTAP_SRV_FINAL, 7, 2);
	status(c, 401, 10, 200);
	end(c, 402, 10);
	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->context_shifts, 1);
	assert_int_equal(f->tm->total.context_shifts, 2);
}

/* ---- h. prompt-cache restores ---- */

static void test_cache_load(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct engine_event *e;
	const struct req_span *r;

	begin(c, 100, 10, 5555);
	route(c, 101, 10, "POST", "/completion");
	srv(c, 102, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	/* restored into slot 3 before the task is launched there */
	call(c, 110, 5, MAIN_TID, LLMTAP_CALL_SEQ_SET_DATA, 3, 4096, 0, "");
	assert_int_equal(f->rec->n_ees, 1);
	e = &f->rec->ees[0];
	assert_int_equal(e->kind, EE_CACHE_LOAD);
	assert_int_equal(e->ts_ns, 110);
	assert_int_equal(e->duration_ns, 5);
	assert_int_equal(e->seq, 3);
	assert_int_equal(e->value, 4096);
	assert_int_equal(e->request_id, 0); /* not known yet */
	assert_false(e->to_file);
	assert_true(e->ok);
	/* a restore into another slot is not this request's */
	call(c, 111, 5, MAIN_TID, LLMTAP_CALL_SEQ_SET_DATA, 4, 1000, 0, "");
	assert_int_equal(f->rec->n_ees, 2);
	srv(c, 120, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 3);

	/* the header probe of a slot restore is not a load */
	call(c, 121, 2, MAIN_TID, LLMTAP_CALL_SEQ_LOAD_FILE, 3, 64, 0, "/tmp/slot.bin");
	assert_int_equal(f->rec->n_ees, 2);
	/* a load into the slot while the request fills its prompt: charged at once */
	call(c, 122, 3, MAIN_TID, LLMTAP_CALL_SEQ_LOAD_FILE, 3, 2048, 0x1000, "/tmp/slot.bin");
	assert_int_equal(f->rec->n_ees, 3);
	e = &f->rec->ees[2];
	assert_int_equal(e->kind, EE_CACHE_LOAD);
	assert_true(e->to_file);
	assert_int_equal(e->value, 2048);
	assert_int_equal(e->request_id, 1);

	step1(c, 130, 3, 4, 10, 13, 1);
	sample(c, 131, 3);
	srv(c, 140, MAIN_TID, LLMTAP_SRV_FINAL, 7, 3);
	status(c, 141, 10, 200);
	end(c, 142, 10);

	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->cache_loads, 2);
	assert_int_equal(r->cache_bytes_loaded, 4096 + 2048);
	assert_int_equal(r->cached_tokens, 10);
	assert_int_equal(f->tm->total.cache_loads, 3);
	assert_int_equal(f->tm->total.cache_bytes_loaded, 4096 + 1000 + 2048);
}

static void test_cache_pending_dropped_by_step(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	/* a restore followed by a step on that sequence was used by no request of ours */
	call(c, 100, 5, MAIN_TID, LLMTAP_CALL_SEQ_SET_DATA, 3, 4096, 0, "");
	step1(c, 105, 3, 1, 0, 0, 1);
	/* a failed restore (0 bytes) charges nothing either */
	call(c, 106, 5, MAIN_TID, LLMTAP_CALL_SEQ_SET_DATA, 3, 0, 0, "");
	assert_int_equal(f->rec->n_ees, 2);
	assert_false(f->rec->ees[1].ok);
	begin(c, 110, 10, 5555);
	route(c, 111, 10, "POST", "/completion");
	srv(c, 112, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 113, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 3);
	srv(c, 114, MAIN_TID, LLMTAP_SRV_FINAL, 7, 3);
	status(c, 115, 10, 200);
	end(c, 116, 10);
	assert_int_equal(f->rec->n_reqs, 1);
	assert_int_equal(f->rec->reqs[0].cache_loads, 0);
	assert_int_equal(f->rec->reqs[0].cache_bytes_loaded, 0);
}

static void test_cache_save_and_calls(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct engine_event *e;

	call(c, 100, 10, MAIN_TID, LLMTAP_CALL_SEQ_SAVE_FILE, 1, 8192, 0, "/tmp/s.bin");
	call(c, 200, 10, MAIN_TID, LLMTAP_CALL_SEQ_GET_DATA, 1, 1024, 0, "");
	call(c, 300, 1000, MAIN_TID, LLMTAP_CALL_MODEL_LOAD, -1, 0xdeadbeef, 0, "/m/model.gguf");
	call(c, 400, 10, MAIN_TID, LLMTAP_CALL_CONTEXT_INIT, -1, 0xc0, 0, "");
	assert_int_equal(f->rec->n_ees, 4);
	e = &f->rec->ees[0];
	assert_int_equal(e->kind, EE_CACHE_SAVE);
	assert_true(e->to_file);
	assert_int_equal(e->value, 8192);
	e = &f->rec->ees[1];
	assert_int_equal(e->kind, EE_CACHE_SAVE);
	assert_false(e->to_file);
	assert_int_equal(e->value, 1024);
	e = &f->rec->ees[2];
	assert_int_equal(e->kind, EE_MODEL_LOAD);
	assert_int_equal(e->duration_ns, 1000);
	assert_true(e->ok);
	e = &f->rec->ees[3];
	assert_int_equal(e->kind, EE_CONTEXT_INIT);
	assert_int_equal(f->tm->total.cache_saves, 2);
	assert_int_equal(f->tm->total.cache_bytes_saved, 8192 + 1024);
}

/* llama_model_load_from_file(path) -> model, then llama_init_from_model(model) -> ctx */
static void load_model(struct correlator *c, uint64_t ts, uint64_t model, const char *path)
{
	call(c, ts, 10, MAIN_TID, LLMTAP_CALL_MODEL_LOAD, -1, (int64_t)model, 0, path);
}

static void create_ctx(struct correlator *c, uint64_t ts, uint64_t model, uint64_t ctx,
		       uint32_t n_ctx)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_CALL;
	ev.call.hdr.version = LLMTAP_EVENT_VERSION;
	ev.call.hdr.kind = LLMTAP_EV_CALL;
	ev.call.tid = MAIN_TID;
	ev.call.start_ns = ts;
	ev.call.end_ns = ts + 10;
	ev.call.op = LLMTAP_CALL_CONTEXT_INIT;
	ev.call.seq = -1;
	ev.call.ret = (int64_t)ctx;
	ev.call.handle = model;
	ev.call.params[0] = n_ctx;
	ev.call.params[3] = 2;
	correlator_event(c, &ev);
}

#define TGT_MODEL 0x1000
#define DFT_MODEL 0x2000
#define FIT_CTX 0xf0

/*
 * llama-server with a draft model: a fit pass (a model loaded and a context created, then
 * freed; both addresses reused), the target's model and context, the draft's. The context
 * the requests run on is the first that decoded (the target's warmup; the draft's check
 * comes after it) until a step on the slots' context confirms it; its model is the
 * target's path.
 */
static void test_context_of_requests(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	struct ctx_creation cc;

	load_model(c, 10, TGT_MODEL, "/m/target.gguf");         /* the fit pass */
	create_ctx(c, 20, TGT_MODEL, FIT_CTX, 100);
	load_model(c, 30, TGT_MODEL, "/m/target.gguf");         /* the same address again */
	create_ctx(c, 40, TGT_MODEL, TARGET_CTX, 16000);
	load_model(c, 50, DFT_MODEL, "/m/draft.gguf");
	create_ctx(c, 60, DFT_MODEL, DRAFT_CTX, 16000);
	/* nothing decoded yet: which context serves is not known (the latest is the draft's) */
	assert_false(correlator_context(c, &cc));

	step1(c, 100, 0, 2, 0, 1, 1); /* the warmup, on TARGET_CTX */
	assert_true(correlator_context(c, &cc));
	assert_int_equal(cc.ctx, TARGET_CTX);
	assert_int_equal(cc.model, TGT_MODEL);
	assert_string_equal(cc.model_path, "/m/target.gguf");
	assert_int_equal(cc.params[0], 16000);

	/* the draft decodes too (common_context_can_seq_rm), before any launch */
	events_ctx = DRAFT_CTX;
	step1(c, 200, 0, 3, 0, 2, 1);
	assert_true(correlator_context(c, &cc));
	assert_int_equal(cc.ctx, TARGET_CTX);

	/* a task launched on a slot of TARGET_CTX, and a step there: confirmed */
	srv(c, 300, MAIN_TID, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 301, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	events_ctx = TARGET_CTX;
	step1(c, 310, 0, 4, 0, 3, 1);
	assert_true(correlator_context(c, &cc));
	assert_int_equal(cc.ctx, TARGET_CTX);
	assert_string_equal(cc.model_path, "/m/target.gguf");
	events_ctx = DRAFT_CTX;
	step1(c, 320, 0, 4, 0, 3, 1);
	assert_true(correlator_context(c, &cc));
	assert_int_equal(cc.ctx, TARGET_CTX);
	events_ctx = TARGET_CTX;
}

/* The model's file is known only from a load seen whole: a path that may have been cut
 * short, a model loaded before the attach (or otherwise), a handle reused by a load of
 * another file -- each leaves the context's model_path "". */
static void test_context_model_path(void **state)
{
	struct fixture *f = *state;
	struct correlator *c;
	struct ctx_creation cc;
	char long_path[LLMTAP_PATH_LEN];

	correlator_free(f->c);
	f->c = c = correlator_new(f->tm, (1u << LAYER_ENGINE) | (1u << LAYER_SAMPLING));

	create_ctx(c, 10, TGT_MODEL, TARGET_CTX, 4096); /* its model's load not seen */
	step1(c, 20, 0, 2, 0, 1, 1);
	assert_true(correlator_context(c, &cc));
	assert_int_equal(cc.ctx, TARGET_CTX);
	assert_string_equal(cc.model_path, "");

	memset(long_path, 'a', sizeof(long_path) - 1); /* 127 bytes: maybe cut short */
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	load_model(c, 30, TGT_MODEL, long_path);
	create_ctx(c, 40, TGT_MODEL, TARGET_CTX, 4096);
	assert_true(correlator_context(c, &cc));
	assert_string_equal(cc.model_path, "");

	load_model(c, 50, TGT_MODEL, "/m/a.gguf");
	load_model(c, 60, TGT_MODEL, "/m/b.gguf"); /* freed and reused: the newest load's */
	create_ctx(c, 70, TGT_MODEL, TARGET_CTX, 4096);
	assert_true(correlator_context(c, &cc));
	assert_string_equal(cc.model_path, "/m/b.gguf");

	/* an embedder (no server layer) with two contexts decoding: neither is the one */
	create_ctx(c, 80, TGT_MODEL, DRAFT_CTX, 4096);
	events_ctx = DRAFT_CTX;
	step1(c, 90, 1, 2, 0, 1, 1);
	events_ctx = TARGET_CTX;
	assert_false(correlator_context(c, &cc));
}

/* ---- i. flush ---- */

static void test_flush(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;
	struct tm_gauges g;

	begin(c, 100, 10, 5001);
	route(c, 101, 10, "POST", "/v1/chat/completions");
	srv(c, 102, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 103, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	step1(c, 104, 0, 10, 0, 9, 1);
	sample(c, 105, 0);
	begin(c, 200, 11, 5002);
	route(c, 201, 11, "GET", "/slots/0");
	status(c, 202, 11, 200);
	g = gauges(c);
	assert_int_equal(g.active_requests, 2);
	assert_int_equal(g.active_inference, 1);
	assert_int_equal(g.busy_slots, 1);

	correlator_flush(c, 1000);
	assert_int_equal(f->rec->n_reqs, 2);
	r = req_started(f->rec, 100);
	assert_false(r->complete);
	assert_int_equal(r->end_ns, 1000);
	assert_int_equal(r->status, 0);
	assert_int_equal(r->output_tokens, 1);
	assert_int_equal(r->prompt_tokens, 10);
	assert_int_equal(r->slot, 0);
	assert_true(req_failed(r));
	r = req_started(f->rec, 200);
	assert_false(r->complete);
	assert_int_equal(r->end_ns, 1000);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->route.kind, ROUTE_SLOTS);
	assert_string_equal(r->route.template, "/slots/:id_slot");
	assert_int_equal(f->tm->total.requests_failed, 2);

	/* nothing is left: the tasks went with their requests */
	g = gauges(c);
	assert_int_equal(g.active_requests, 0);
	assert_int_equal(g.busy_slots, 0);
	assert_int_equal(g.queued_tasks, 0);
	sample(c, 1001, 0);
	end(c, 1002, 10);
	correlator_flush(c, 2000);
	assert_int_equal(f->rec->n_reqs, 2);
}

/* ---- j. gauges ---- */

static void test_gauges(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	struct llmtap_run runs[2];
	struct tm_gauges g;

	g = gauges(c);
	assert_int_equal(g.active_requests, 0);
	assert_int_equal(g.active_inference, 0);
	assert_int_equal(g.queued_tasks, 0);
	assert_int_equal(g.busy_slots, 0);
	assert_int_equal(g.kv_cells, 0);
	assert_int_equal(g.n_ctx, 0);

	/* a context created with n_ctx 4096; a failed one does not count */
	context_init(c, 50, 0, 8192);
	assert_int_equal(gauges(c).n_ctx, 0);
	assert_int_equal(f->rec->n_ees, 1);
	assert_int_equal(f->rec->ees[0].kind, EE_CONTEXT_INIT);
	assert_false(f->rec->ees[0].ok);
	context_init(c, 60, 0xc0, 4096);
	assert_int_equal(gauges(c).n_ctx, 4096);
	assert_int_equal(f->rec->n_ees, 2);
	assert_int_equal(f->rec->ees[1].params[0], 4096);
	assert_int_equal(f->rec->ees[1].params[3], 4);

	begin(c, 100, 10, 5001);
	route(c, 101, 10, "POST", "/v1/chat/completions");
	begin(c, 102, 11, 5002);
	route(c, 103, 11, "GET", "/health");
	g = gauges(c);
	assert_int_equal(g.active_requests, 2);
	assert_int_equal(g.active_inference, 1);
	srv(c, 104, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	assert_int_equal(gauges(c).queued_tasks, 1);
	srv(c, 105, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 2);
	g = gauges(c);
	assert_int_equal(g.queued_tasks, 0);
	assert_int_equal(g.busy_slots, 1);

	runs[0] = (struct llmtap_run){ .seq_id = 2, .n_tokens = 30, .pos_first = 0,
				       .pos_last = 29, .n_outputs = 1 };
	runs[1] = (struct llmtap_run){ .seq_id = 3, .n_tokens = 10, .pos_first = 0,
				       .pos_last = 9, .n_outputs = 1 };
	step_runs(c, 110, 0, 2, runs);
	assert_int_equal(gauges(c).kv_cells, 30 + 10);
	step1(c, 120, 2, 1, 30, 30, 1);
	assert_int_equal(gauges(c).kv_cells, 31 + 10);
	/* a failed step holds nothing new */
	runs[0] = (struct llmtap_run){ .seq_id = 2, .n_tokens = 1, .pos_first = 31,
				       .pos_last = 31, .n_outputs = 1 };
	step_runs(c, 125, 1, 1, runs);
	assert_int_equal(gauges(c).kv_cells, 31 + 10);

	/* KV edits */
	kv(c, 130, LLMTAP_KV_SEQ_RM, 3, 0, -1, 0);      /* all of seq 3 */
	assert_int_equal(gauges(c).kv_cells, 31);
	kv(c, 131, LLMTAP_KV_SEQ_CP, 2, 5, -1, -1);     /* seq 2 copied into seq 5 */
	assert_int_equal(gauges(c).kv_cells, 62);
	kv(c, 132, LLMTAP_KV_SEQ_RM, 2, 10, 20, 0);     /* ten positions out of seq 2 */
	assert_int_equal(gauges(c).kv_cells, 21 + 31);
	kv(c, 133, LLMTAP_KV_SEQ_RM, 5, 40, -1, 0);     /* past its end: nothing */
	assert_int_equal(gauges(c).kv_cells, 21 + 31);
	kv(c, 134, LLMTAP_KV_SEQ_KEEP, 2, 0, 0, 0);     /* only seq 2 remains */
	assert_int_equal(gauges(c).kv_cells, 21);
	kv(c, 135, LLMTAP_KV_SEQ_CP, 2, 6, -1, -1);
	kv(c, 136, LLMTAP_KV_SEQ_RM, -1, 0, -1, 0);     /* every sequence */
	assert_int_equal(gauges(c).kv_cells, 0);
	step1(c, 140, 2, 1, 7, 7, 1);
	assert_int_equal(gauges(c).kv_cells, 8);
	kv(c, 141, LLMTAP_KV_CLEAR, 1, 0, 0, 0);
	assert_int_equal(gauges(c).kv_cells, 0);

	status(c, 150, 11, 200);
	end(c, 151, 11);
	g = gauges(c);
	assert_int_equal(g.active_requests, 1);
	assert_int_equal(g.active_inference, 1);
	srv(c, 152, MAIN_TID, LLMTAP_SRV_FINAL, 7, 2);
	g = gauges(c);
	assert_int_equal(g.busy_slots, 0);
	assert_int_equal(g.queued_tasks, 0);
	assert_int_equal(g.active_requests, 1);
	status(c, 153, 10, 200);
	end(c, 154, 10);
	g = gauges(c);
	assert_int_equal(g.active_requests, 0);
	assert_int_equal(g.active_inference, 0);
	assert_int_equal(g.n_ctx, 4096);
	assert_int_equal(f->rec->n_reqs, 2);
}

/* ---- more of the request's life ---- */

static void test_tokenize_and_error(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;

	begin(c, 100, 10, 5555);
	route(c, 101, 10, "POST", "/completion");
	/* the HTTP thread tokenizes the prompt: charged to its request */
	call(c, 102, 30, 10, LLMTAP_CALL_TOKENIZE, -1, 12, 0, "");
	call(c, 140, 20, 10, LLMTAP_CALL_TOKENIZE, -1, 3, 0, "");
	/* another thread's tokenize is not */
	call(c, 103, 1000, 11, LLMTAP_CALL_TOKENIZE, -1, 12, 0, "");
	assert_int_equal(f->rec->n_ees, 0);
	srv(c, 104, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 105, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 1);
	srv_msg(c, 106, MAIN_TID, LLMTAP_SRV_ERROR, 7, -1, 3, "context too long");
	assert_int_equal(gauges(c).busy_slots, 0);
	sample(c, 107, 1); /* the slot is no longer the task's */
	status(c, 108, 10, 400);
	end(c, 109, 10);

	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->tokenize_calls, 2);
	assert_int_equal(r->err_type, 3);
	assert_string_equal(r->err_msg, "context too long");
	assert_int_equal(r->output_tokens, 0);
	assert_int_equal(r->status, 400);
	assert_true(req_failed(r));
}

static void test_several_tasks(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;
	struct llmtap_run runs[2];

	/* one request, two prompts: two tasks on two slots */
	begin(c, 100, 10, 5555);
	route(c, 101, 10, "POST", "/v1/embeddings");
	srv(c, 102, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 103, 10, LLMTAP_SRV_NEW_ID, 8, -1);
	assert_int_equal(gauges(c).queued_tasks, 2);
	srv(c, 104, MAIN_TID, LLMTAP_SRV_LAUNCH, 8, 1);
	srv(c, 105, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	runs[0] = (struct llmtap_run){ .seq_id = 0, .n_tokens = 6, .pos_first = 0,
				       .pos_last = 5, .n_outputs = 6 };
	runs[1] = (struct llmtap_run){ .seq_id = 1, .n_tokens = 9, .pos_first = 0,
				       .pos_last = 8, .n_outputs = 9 };
	step_runs(c, 106, 0, 2, runs);
	srv(c, 107, MAIN_TID, LLMTAP_SRV_FINAL, 7, 0);
	srv(c, 108, MAIN_TID, LLMTAP_SRV_FINAL, 8, 1);
	status(c, 109, 10, 200);
	end(c, 110, 10);

	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->n_tasks, 2);
	assert_int_equal(r->enqueue_ns, 102);
	assert_int_equal(r->launch_ns, 104);
	assert_int_equal(r->slot, 1); /* the first launched */
	assert_int_equal(r->prompt_tokens, 15);
	assert_int_equal(r->final_ns, 108);
	assert_int_equal(r->route.kind, ROUTE_EMBEDDINGS);
	assert_int_equal(f->rec->steps[0].request_ids[0], 1);
	assert_int_equal(f->rec->steps[0].request_ids[1], 1);
}

static void test_end_before_final(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	/* the client went away: the request ends while its task still runs */
	begin(c, 100, 10, 5555);
	route(c, 101, 10, "POST", "/completion");
	srv(c, 102, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 103, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 2);
	step1(c, 104, 2, 5, 0, 4, 1);
	sample(c, 105, 2);
	end(c, 106, 10);
	assert_int_equal(f->rec->n_reqs, 1);
	assert_int_equal(f->rec->reqs[0].output_tokens, 1);
	assert_int_equal(f->rec->reqs[0].final_ns, 0);
	assert_int_equal(gauges(c).busy_slots, 0);
	/* its later events touch nothing */
	sample(c, 107, 2);
	step1(c, 108, 2, 1, 5, 5, 1);
	srv(c, 109, MAIN_TID, LLMTAP_SRV_FINAL, 7, 2);
	assert_int_equal(f->rec->steps[1].request_ids[0], 0);
	correlator_flush(c, 200);
	assert_int_equal(f->rec->n_reqs, 1);
}

/* Regressions: a lost END, and idle keep-alive connections at flush. */
static void test_bug_rebegin_end_ns(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct metric_point *p;
	const struct req_span *r;

	/* a request whose END was lost: the thread's next BEGIN closes it */
	begin(c, 1000000000, 10, 5555);
	route(c, 1000000010, 10, "POST", "/completion");
	begin(c, 2000000000, 10, 5556);
	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_false(r->complete);
	/* its end must not precede its start (the duration is end - start, unsigned) */
	assert_true(r->end_ns >= r->start_ns);
	p = metrics_find(&f->tm->metrics, M_HTTP_DURATION, "http.request.method", "POST",
			 "http.route", "/completion", "error.type", "incomplete", NULL);
	assert_non_null(p);
	assert_true(p->max <= 1.0); /* not 1.8e10 s */
}

static void test_bug_flush_idle_keepalive(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	/* a kept-alive connection waiting for its next request when tracing ends */
	begin(c, 100, 10, 5555);
	correlator_flush(c, 1000);
	/* END would have dropped it as no request; flush should not invent one */
	assert_int_equal(f->rec->n_reqs, 0);
	assert_int_equal(f->tm->total.requests_failed, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* ---- engine-first: no server layer ---- */

#define NO_SERVER (ALL_LAYERS & ~(1u << LAYER_SERVER))
#define S_NS 1000000000ull

static void kv_rm(struct correlator *c, uint64_t ts, int seq, int p0, int p1)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = LLMTAP_EV_KV;
	ev.kv.ts_ns = ts;
	ev.kv.op = LLMTAP_KV_SEQ_RM;
	ev.kv.args[0] = seq;
	ev.kv.args[1] = p0;
	ev.kv.args[2] = p1;
	correlator_event(c, &ev);
}

/* llama-server's decodes for one generation: cut, prompt, a token per step */
static void generate(struct correlator *c, uint64_t ts, int seq, int cached, int prompt, int outputs)
{
	kv_rm(c, ts, seq, cached, -1);
	step1(c, ts, seq, (uint32_t)prompt, cached, cached + prompt - 1, 1);
	sample(c, ts + 6, seq);
	for (int i = 1; i < outputs; i++) {
		step1(c, ts + 10 * (uint64_t)i, seq, 1, cached + prompt + i - 1, cached + prompt + i - 1, 1);
		sample(c, ts + 10 * (uint64_t)i + 6, seq);
	}
}

static void test_engine_first_sequential_requests_are_joined(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;

	correlator_disable_layer(c, LAYER_SERVER);
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	generate(c, 200, 1, 0, 12, 4); /* last step ends at 235 */
	{
		struct tm_gauges g = gauges(c);

		assert_false(g.queue_known); /* no server layer: its queue is unknown */
		assert_int_equal(g.busy_slots, 1);
		assert_int_equal(g.n_slots, 1);
		assert_int_equal(g.slots[0].slot, 1);
		assert_int_equal(g.slots[0].phase, 2);
		assert_int_equal(g.slots[0].prompt_tokens, 12);
		assert_int_equal(g.slots[0].output_tokens, 4);
		assert_int_equal(g.slots[0].kv_cells, 15);
	}
	status(c, 240, 10, 200);
	end(c, 250, 10);
	correlator_tick(c, 260, 0);
	assert_int_equal(f->rec->n_reqs, 0); /* its generation may not be over yet */
	begin(c, 300, 11, 5556);
	route(c, 310, 11, "POST", "/v1/chat/completions");
	generate(c, 400, 1, 9, 3, 2); /* the first one's generation is over: joined */
	assert_int_equal(f->rec->n_reqs, 1);
	status(c, 440, 11, 200);
	end(c, 450, 11);
	correlator_tick(c, 450 + 3 * S_NS, 0); /* nothing decoded since: over */
	assert_int_equal(f->rec->n_reqs, 2);

	r = &f->rec->reqs[0];
	assert_int_equal(r->attribution, REQ_ATTR_ENGINE);
	assert_int_equal(r->known, REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT);
	assert_int_equal(r->prompt_tokens, 12);
	assert_int_equal(r->cached_tokens, 0);
	assert_int_equal(r->output_tokens, 4);
	assert_int_equal(r->launch_ns, 200);
	assert_int_equal(r->first_token_ns, 205);
	assert_int_equal(r->final_ns, 235);
	assert_int_equal(r->slot, 1);
	r = &f->rec->reqs[1];
	assert_int_equal(r->attribution, REQ_ATTR_ENGINE);
	assert_int_equal(r->prompt_tokens, 3);
	assert_int_equal(r->cached_tokens, 9);
	assert_int_equal(r->output_tokens, 2);
}

/* Two requests open at once, two generations: which is whose cannot be told. */
static void test_engine_first_overlap_is_unattributed(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	correlator_disable_layer(c, LAYER_SERVER);
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	begin(c, 120, 11, 5556);
	route(c, 130, 11, "POST", "/completion");
	generate(c, 200, 0, 0, 5, 3);
	generate(c, 300, 1, 0, 7, 2);
	status(c, 395, 10, 200);
	status(c, 405, 11, 200);
	end(c, 400, 10);
	end(c, 410, 11);
	correlator_tick(c, 410 + 3 * S_NS, 0);
	assert_int_equal(f->rec->n_reqs, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(f->rec->reqs[i].attribution, REQ_ATTR_UNATTRIBUTED);
		assert_int_equal(f->rec->reqs[i].known, 0);
	}
}

/* Two clients at once: the first request's window holds one generation, its own;
 * the second's holds both, the first already taken. */
static void test_engine_first_overlap_told_apart_by_elimination(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	correlator_disable_layer(c, LAYER_SERVER);
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	begin(c, 120, 11, 5556);
	route(c, 130, 11, "POST", "/v1/chat/completions");
	generate(c, 200, 0, 0, 5, 3);  /* ends 225 */
	status(c, 230, 10, 200);
	end(c, 231, 10);
	generate(c, 240, 1, 2, 7, 4);  /* ends 275 */
	status(c, 280, 11, 200);
	end(c, 281, 11);
	correlator_tick(c, 290, 0);
	correlator_tick(c, 290 + 3 * S_NS, 0);
	assert_int_equal(f->rec->n_reqs, 2);
	assert_int_equal(f->rec->reqs[0].attribution, REQ_ATTR_ENGINE);
	assert_int_equal(f->rec->reqs[0].prompt_tokens, 5);
	assert_int_equal(f->rec->reqs[0].output_tokens, 3);
	assert_int_equal(f->rec->reqs[1].attribution, REQ_ATTR_ENGINE);
	assert_int_equal(f->rec->reqs[1].prompt_tokens, 7);
	assert_int_equal(f->rec->reqs[1].cached_tokens, 2);
	assert_int_equal(f->rec->reqs[1].output_tokens, 4);
}

/* What could make a request's own generation not among the ones in its time: a
 * client gone mid-response, events lost, a second context (a draft model). */
static void test_engine_first_doubt_leaves_unattributed(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	uint64_t t = 100;

	correlator_disable_layer(c, LAYER_SERVER);
	for (int i = 0; i < 3; i++, t += 1000) {
		begin(c, t, 10, 5555);
		route(c, t + 10, 10, "POST", "/completion");
		if (i == 2)
			events_ctx = DRAFT_CTX;
		generate(c, t + 100, 0, 0, 5, 3);
		events_ctx = TARGET_CTX;
		status(c, t + 200, 10, 200);
		http(c, t + 210, 10, LLMTAP_HTTP_END, i == 0 ? 0 : 1, 0, "", ""); /* 0: write failed */
		correlator_tick(c, t + 300, i == 1 ? 7 : (i > 1 ? 7 : 0));
		correlator_tick(c, t + 300 + 3 * S_NS, i == 1 ? 7 : (i > 1 ? 7 : 0));
		t += 3 * S_NS;
	}
	assert_int_equal(f->rec->n_reqs, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(f->rec->reqs[i].attribution, REQ_ATTR_UNATTRIBUTED);
		assert_int_equal(f->rec->reqs[i].known, 0);
	}
}

/* A generation still decoding after the response ended is someone else's. */
static void test_engine_first_later_decode_is_not_joined(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	correlator_disable_layer(c, LAYER_SERVER);
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	generate(c, 200, 0, 0, 5, 2);
	end(c, 212, 10); /* while the generation's second step runs */
	step1(c, 220, 0, 1, 6, 6, 1);
	correlator_tick(c, 300 + 3 * S_NS, 0);
	assert_int_equal(f->rec->n_reqs, 1);
	assert_int_equal(f->rec->reqs[0].attribution, REQ_ATTR_UNATTRIBUTED);
	/* a health check never decodes: no attribution at all */
	begin(c, 400, 12, 5557);
	route(c, 410, 12, "GET", "/health");
	end(c, 420, 12);
	assert_int_equal(f->rec->n_reqs, 2);
	assert_int_equal(f->rec->reqs[1].attribution, REQ_ATTR_NONE);
}

/* An embedder: no HTTP layer, each generation is a span of its own. */
static void test_embedder_generations(void **state)
{
	struct fixture *f = *state;
	struct correlator *c;
	const struct req_span *r;

	correlator_free(f->c);
	f->c = c = correlator_new(f->tm, (1u << LAYER_ENGINE) | (1u << LAYER_SAMPLING));
	generate(c, 100, 0, 0, 8, 5);
	generate(c, 1000, 0, 0, 4, 2); /* seq 0 again, from position 0 */
	assert_int_equal(f->rec->n_reqs, 1);
	correlator_flush(c, 5000);
	assert_int_equal(f->rec->n_reqs, 2);
	r = &f->rec->reqs[0];
	assert_int_equal(r->kind, REQ_GENERATION);
	assert_int_equal(r->attribution, REQ_ATTR_ENGINE);
	assert_int_equal(r->known, REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT);
	assert_int_equal(r->prompt_tokens, 8);
	assert_int_equal(r->output_tokens, 5);
	assert_int_equal(r->start_ns, 100);
	assert_int_equal(r->first_token_ns, 105);
	assert_int_equal(r->end_ns, 145);
	assert_true(r->complete);
	assert_int_equal(f->rec->reqs[1].output_tokens, 2);
	assert_true(f->rec->reqs[1].id > r->id);
}

/* An embedder that decodes its last token and stops: that output is never read,
 * and read twice, an output is one token. */
static void test_embedder_counts_outputs_read(void **state)
{
	struct fixture *f = *state;
	struct correlator *c;

	correlator_free(f->c);
	f->c = c = correlator_new(f->tm, (1u << LAYER_ENGINE) | (1u << LAYER_SAMPLING));
	step1(c, 100, 0, 6, 0, 5, 1);
	sample(c, 110, 0);
	sample(c, 111, 0);
	step1(c, 120, 0, 1, 6, 6, 1);
	sample(c, 130, 0);
	step1(c, 140, 0, 1, 7, 7, 1); /* decoded, never sampled */
	correlator_flush(c, 5000);
	assert_int_equal(f->rec->n_reqs, 1);
	assert_int_equal(f->rec->reqs[0].output_tokens, 2);
	assert_int_equal(f->rec->reqs[0].prompt_tokens, 6);
	assert_int_equal(f->rec->reqs[0].known, REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT);
}

/* An embedder sampling on its own on a thread pool: its logits reads, found in the
 * context's last batch by index (from the front, or from the last output back). */
static void test_embedder_logits_reads(void **state)
{
	struct fixture *f = *state;
	struct correlator *c;
	const struct llmtap_run two[2] = {
		{ .seq_id = 0, .n_tokens = 5, .pos_first = 0, .pos_last = 4, .n_outputs = 1 },
		{ .seq_id = 1, .n_tokens = 3, .pos_first = 0, .pos_last = 2, .n_outputs = 1 },
	};
	const struct llmtap_run next[2] = {
		{ .seq_id = 0, .n_tokens = 1, .pos_first = 5, .pos_last = 5, .n_outputs = 1 },
		{ .seq_id = 1, .n_tokens = 1, .pos_first = 3, .pos_last = 3, .n_outputs = 1 },
	};

	correlator_free(f->c);
	f->c = c = correlator_new(f->tm, (1u << LAYER_ENGINE) | (1u << LAYER_SAMPLING));
	step_runs(c, 100, 0, 2, two);
	logits_read(c, 110, 4);  /* seq 0's last prompt token */
	logits_read(c, 111, -1); /* the last output: seq 1 */
	logits_read(c, 112, -1); /* again: not another token */
	step_runs(c, 120, 0, 2, next);
	logits_read(c, 130, 0);
	logits_read(c, 131, 1);
	logits_read(c, 132, 7);  /* no such token: nothing */
	correlator_flush(c, 5000);
	assert_int_equal(f->rec->n_reqs, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(f->rec->reqs[i].output_tokens, 2);
		assert_int_equal(f->rec->reqs[i].known, REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT);
	}
	assert_int_equal(f->tm->total.sampled, 4);
}

/* The server layer without the sampling layer: output tokens from the batches. */
static void test_outputs_without_sampling_layer(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;

	correlator_disable_layer(c, LAYER_SAMPLING);
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 2);
	step1(c, 140, 2, 30, 5, 34, 1);
	sample(c, 150, 2); /* ignored: the layer is off */
	step1(c, 160, 2, 1, 35, 35, 1);
	step1(c, 170, 2, 1, 36, 36, 1);
	srv(c, 190, MAIN_TID, LLMTAP_SRV_FINAL, 7, 2);
	end(c, 210, 10);
	assert_int_equal(f->rec->n_reqs, 1);
	r = &f->rec->reqs[0];
	assert_int_equal(r->attribution, REQ_ATTR_SERVER);
	assert_int_equal(r->known, REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT);
	assert_int_equal(r->prompt_tokens, 30);
	assert_int_equal(r->cached_tokens, 5);
	assert_int_equal(r->output_tokens, 3);
	assert_int_equal(r->first_token_ns, 145);
}

/* review 1: server layer turned off while a request has tasks: its tasks keep r */
static void test_review_uaf_after_server_off(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	step1(c, 200, 0, 5, 0, 4, 1);
	correlator_disable_layer(c, LAYER_SERVER); /* layercheck turn_off */
	status(c, 240, 10, 200);
	end(c, 250, 10);
	correlator_tick(c, 260 + 20 * S_NS, 0); /* settled and freed */
	assert_int_equal(f->rec->n_reqs, 1);
	assert_int_equal(f->rec->reqs[0].known, 0); /* counted from a layer cut off midway */
	assert_int_equal(gauges(c).busy_slots, 0); /* no task left pointing at the freed request */
	kv(c, 300 + 20 * S_NS, LLMTAP_KV_SEQ_ADD, 0, 10, 20, -5);
}

/* review 2: A's client went away; its generation decodes once more after its end;
 * B's generation ran inside A's window, B's response ends after A's. */
static void test_review_disconnect_takes_other(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	correlator_disable_layer(c, LAYER_SERVER);
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	begin(c, 120, 11, 5556);
	route(c, 130, 11, "POST", "/completion");
	generate(c, 200, 0, 0, 5, 3);    /* A's: seq 0, 200..225 */
	generate(c, 300, 1, 0, 40, 9);   /* B's: seq 1, 300..385 */
	status(c, 390, 10, 200);
	end(c, 395, 10);                 /* A ends (write ok: kernel buffered) */
	step1(c, 400, 0, 1, 7, 7, 1);    /* A's slot decodes once more before the cancel */
	status(c, 410, 11, 200);
	end(c, 420, 11);
	correlator_tick(c, 430, 0);
	correlator_tick(c, 430 + 3 * S_NS, 0);
	assert_int_equal(f->rec->n_reqs, 2);
	for (int i = 0; i < 2; i++) { /* never the other's counts: exact, or unattributed */
		const struct req_span *r = &f->rec->reqs[i];

		assert_true(r->attribution == REQ_ATTR_UNATTRIBUTED ||
			    (r->start_ns == 100 ? r->prompt_tokens == 5 : r->prompt_tokens == 40));
	}
}

/* review 3: M-RoPE image chunk: first position dimension constant */
static void test_review_mrope_image(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	struct llmtap_run img[4];

	correlator_disable_layer(c, LAYER_SERVER);
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/v1/chat/completions");
	kv_rm(c, 150, 0, 0, -1);
	step1(c, 200, 0, 10, 0, 9, 0);           /* text before the image */
	for (int i = 0; i < 4; i++)
		img[i] = (struct llmtap_run){ .seq_id = 0, .n_tokens = 1, .pos_first = 10, .pos_last = 10 };
	step_runs(c, 210, 0, 4, img);            /* the image: 4 tokens, pos 10 each */
	step1(c, 220, 0, 3, 12, 14, 1);          /* text after: pos 10 + n_pos(2) */
	sample(c, 226, 0);
	step1(c, 230, 0, 1, 15, 15, 1);
	sample(c, 236, 0);
	status(c, 240, 10, 200);
	end(c, 250, 10);
	correlator_tick(c, 260, 0);
	correlator_tick(c, 260 + 3 * S_NS, 0);
	assert_int_equal(f->rec->n_reqs, 1);
	assert_true(f->rec->reqs[0].attribution == REQ_ATTR_UNATTRIBUTED ||
		    !(f->rec->reqs[0].known & REQ_KNOWN_PROMPT)); /* positions are not counts here */
}

/* review 4: loss seen at a tick while A's records still wait in the ring */
static void test_review_loss_backlog(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	correlator_disable_layer(c, LAYER_SERVER);
	correlator_tick(c, 1000, 5);             /* ring overflowed: A's prompt step was lost */
	begin(c, 100, 10, 5555);                 /* the backlog: A's records, consumed after */
	route(c, 110, 10, "POST", "/completion");
	kv_rm(c, 150, 0, 0, -1);
	/* prompt step (pos 0..9) lost */
	step1(c, 300, 0, 1, 10, 10, 1);
	sample(c, 306, 0);
	step1(c, 310, 0, 1, 11, 11, 1);
	sample(c, 316, 0);
	status(c, 320, 10, 200);
	end(c, 330, 10);
	correlator_tick(c, 2000, 5);
	correlator_tick(c, 2000 + 3 * S_NS, 5);
	assert_int_equal(f->rec->n_reqs, 1);
	assert_int_equal(f->rec->reqs[0].attribution, REQ_ATTR_UNATTRIBUTED);
	assert_int_equal(f->rec->reqs[0].known, 0);
}

/* review 5: server mode, events lost while the request ran */
static void test_review_server_lost(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	step1(c, 200, 0, 5, 0, 4, 1);
	sample(c, 206, 0);
	correlator_tick(c, 210, 3);             /* lost: a step of it, say */
	sample(c, 226, 0);
	srv(c, 230, MAIN_TID, LLMTAP_SRV_FINAL, 7, 0);
	status(c, 240, 10, 200);
	end(c, 250, 10);
	assert_int_equal(f->rec->n_reqs, 1);
	assert_int_equal(f->rec->reqs[0].known, 0);
}

static void test_review_embedder_pause(void **state)
{
	struct fixture *f = *state;
	struct correlator *c;

	correlator_free(f->c);
	f->c = c = correlator_new(f->tm, (1u << LAYER_ENGINE) | (1u << LAYER_SAMPLING));
	generate(c, 100, 0, 0, 8, 3);            /* positions 0..10 */
	correlator_tick(c, 100 + 11 * S_NS, 0);  /* the app paused 11 s (stream back-pressure) */
	step1(c, 200 + 11 * S_NS, 0, 1, 10, 10, 1);  /* ... and goes on: the next token */
	sample(c, 206 + 11 * S_NS, 0);
	correlator_flush(c, 300 + 11 * S_NS);
	assert_int_equal(f->rec->n_reqs, 2);
	assert_int_equal(f->rec->reqs[1].known, 0); /* where the resumed one began is unknown */
}

/* Drafted tokens verified at once: common_sampler_sample's records are the tokens
 * accepted; logits reads are not (one counted per batch): unknown then. */
static void test_speculative_outputs_by_sampling_site(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	for (int logits = 0; logits < 2; logits++) {
		int port = 5555 + logits;

		begin(c, 100, 10, port);
		route(c, 110, 10, "POST", "/completion");
		srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7 + logits, -1);
		srv(c, 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 7 + logits, 0);
		step1(c, 140, 0, 10, 0, 9, 1);
		if (logits)
			logits_read(c, 146, -1);
		else
			sample(c, 146, 0);
		step1(c, 160, 0, 3, 10, 12, 3); /* a token and two drafted, verified at once */
		for (int i = 0; i < 3; i++)
			if (logits)
				logits_read(c, 166 + (uint64_t)i, i);
			else
				sample(c, 166 + (uint64_t)i, 0);
		srv(c, 190, MAIN_TID, LLMTAP_SRV_FINAL, 7 + logits, 0);
		status(c, 200, 10, 200);
		end(c, 210, 10);
	}
	assert_int_equal(f->rec->n_reqs, 2);
	assert_int_equal(f->rec->reqs[0].known, REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT);
	assert_int_equal(f->rec->reqs[0].output_tokens, 4);
	assert_int_equal(f->rec->reqs[1].known, REQ_KNOWN_PROMPT);
}


/* ---- finish reasons ---- */

#define EOS_TOKEN 2

/* a vocabulary: token 2 ends generation, 100..199 may (control tokens), the rest never */
static enum eog_class test_eog(const void *arg, int32_t token)
{
	(void)arg;
	if (token == EOS_TOKEN)
		return EOG_YES;
	return token >= 100 && token < 200 ? EOG_MAYBE : EOG_NO;
}

/* send_final_response with the slot's last stop-string check (stop_ns 0: none) */
static void final_checked(struct correlator *c, uint64_t ts, int slot, uint64_t stop_ns, bool full)
{
	srv_record(c, ts, MAIN_TID, LLMTAP_SRV_FINAL, -1, slot, -1, "", stop_ns, full);
}

/* One /completion request (task 7 on slot 0) whose last token is last_token, and
 * whose final response carries the slot's last stop check. Returns its span's finish. */
static const struct req_span *one_finish(struct fixture *f, int32_t last_token, uint64_t stop_ns,
					 bool full)
{
	struct correlator *c = f->c;
	int before = f->rec->n_reqs;

	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	step1(c, 140, 0, 5, 0, 4, 1);
	sample_tok(c, 150, 0, 1000);
	step1(c, 160, 0, 1, 5, 5, 1);
	sample_tok(c, 170, 0, last_token); /* the token exists at 174 */
	final_checked(c, 190, 0, stop_ns, full);
	status(c, 200, 10, 200);
	end(c, 210, 10);
	assert_int_equal(f->rec->n_reqs, before + 1);
	return &f->rec->reqs[before];
}

static void assert_finish(const struct req_span *r, enum finish_reason want)
{
	if (want == FINISH_UNKNOWN) {
		assert_int_equal(r->n_finish, 0);
	} else {
		assert_int_equal(r->n_finish, 1);
		assert_int_equal(r->finish[0], want);
	}
	assert_int_equal(req_finish(r), want);
}

static void test_finish_by_eog_and_stop_checks(void **state)
{
	struct fixture *f = *state;

	correlator_set_eog(f->c, test_eog, NULL);
	correlator_set_stop_checks(f->c, true);
	/* an end-of-generation token: "stop", whatever was checked */
	assert_finish(one_finish(f, EOS_TOKEN, 0, false), FINISH_STOP);
	/* the last check came after the token and looked for a whole stop string: it
	 * found one (or the token ends generation), but a limit found on the same token
	 * overrides a stop string in the server's answer: unknown */
	assert_finish(one_finish(f, 1001, 180, true), FINISH_UNKNOWN);
	assert_finish(one_finish(f, 150, 180, true), FINISH_UNKNOWN);
	/* a partial check last: neither; a limit ended it */
	assert_finish(one_finish(f, 1001, 180, false), FINISH_LENGTH);
	/* no check after the token (its text is incomplete UTF-8): not a stop string;
	 * an ordinary token is then a limit, a maybe-EOG one cannot be told */
	assert_finish(one_finish(f, 1001, 160, false), FINISH_LENGTH);
	assert_finish(one_finish(f, 150, 160, true), FINISH_UNKNOWN);
	/* no check at all since its launch: the build does not call what is probed */
	assert_finish(one_finish(f, 1001, 0, false), FINISH_UNKNOWN);
	assert_int_equal(f->tm->total.finish[FINISH_STOP], 1);
	assert_int_equal(f->tm->total.finish[FINISH_LENGTH], 2);
	assert_int_equal(f->tm->total.finish[FINISH_UNKNOWN], 4);
}

static void test_finish_without_stop_checks_or_vocab(void **state)
{
	struct fixture *f = *state;

	/* no vocabulary: even token 2 may be anything */
	correlator_set_stop_checks(f->c, true);
	assert_finish(one_finish(f, EOS_TOKEN, 0, false), FINISH_UNKNOWN);
	assert_finish(one_finish(f, 1001, 180, false), FINISH_LENGTH);
	/* no stop-check probe (llama-server b5640, b7698): only an EOG token tells */
	correlator_set_eog(f->c, test_eog, NULL);
	correlator_set_stop_checks(f->c, false);
	assert_finish(one_finish(f, EOS_TOKEN, 0, false), FINISH_STOP);
	assert_finish(one_finish(f, 1001, 180, false), FINISH_UNKNOWN);
	/* a token recorded at the sampler's entry (-1) is not known */
	correlator_set_stop_checks(f->c, true);
	assert_finish(one_finish(f, -1, 180, false), FINISH_UNKNOWN);
}

static void test_finish_cancelled_and_error(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	correlator_set_eog(c, test_eog, NULL);
	correlator_set_stop_checks(c, true);
	/* the client went away mid-stream: llama-server cancels its task, no final */
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	step1(c, 140, 0, 5, 0, 4, 1);
	sample_tok(c, 150, 0, 1000);
	srv(c, 160, MAIN_TID, LLMTAP_SRV_PARTIAL, 7, 0);
	status(c, 165, 10, 200);
	http(c, 170, 10, LLMTAP_HTTP_END, 0, 0, "", "");
	assert_finish(&f->rec->reqs[0], FINISH_CANCELLED);
	/* still queued when it went */
	begin(c, 200, 11, 5556);
	route(c, 210, 11, "POST", "/v1/chat/completions");
	srv(c, 220, 11, LLMTAP_SRV_NEW_ID, 8, -1);
	srv(c, 225, MAIN_TID, LLMTAP_SRV_DEFER, 8, -1);
	http(c, 230, 11, LLMTAP_HTTP_END, 0, 0, "", "");
	assert_finish(&f->rec->reqs[1], FINISH_CANCELLED);
	/* its task failed: "error" */
	begin(c, 300, 12, 5557);
	route(c, 310, 12, "POST", "/completion");
	srv(c, 320, 12, LLMTAP_SRV_NEW_ID, 9, -1);
	srv(c, 330, MAIN_TID, LLMTAP_SRV_LAUNCH, 9, 1);
	srv_msg(c, 340, MAIN_TID, LLMTAP_SRV_ERROR, 9, -1, 4, "the request exceeds the context");
	status(c, 350, 12, 400);
	end(c, 360, 12);
	assert_finish(&f->rec->reqs[2], FINISH_ERROR);
	/* refused before any task (a bad request): "error" */
	begin(c, 400, 13, 5558);
	route(c, 410, 13, "POST", "/completion");
	status(c, 420, 13, 400);
	end(c, 430, 13);
	assert_finish(&f->rec->reqs[3], FINISH_ERROR);
	/* not a generation: no reason at all */
	begin(c, 500, 14, 5559);
	route(c, 510, 14, "POST", "/embeddings");
	status(c, 520, 14, 500);
	end(c, 530, 14);
	assert_int_equal(f->rec->reqs[4].n_finish, 0);
	/* a request still open when tracing ends: unknown, not cancelled */
	begin(c, 600, 15, 5560);
	route(c, 610, 15, "POST", "/completion");
	srv(c, 620, 15, LLMTAP_SRV_NEW_ID, 10, -1);
	srv(c, 630, MAIN_TID, LLMTAP_SRV_LAUNCH, 10, 2);
	correlator_flush(c, 700);
	assert_finish(&f->rec->reqs[5], FINISH_UNKNOWN);
	assert_int_equal(f->tm->total.finish[FINISH_CANCELLED], 2);
	assert_int_equal(f->tm->total.finish[FINISH_ERROR], 2);
}

/* Two choices (n > 1): one reason each, in task order; one unknown leaves all out. */
static void test_finish_per_choice(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;
	const struct req_span *r;

	correlator_set_eog(c, test_eog, NULL);
	correlator_set_stop_checks(c, true);
	for (int round = 0; round < 2; round++) {
		uint64_t t0 = 1000 * (uint64_t)round;

		begin(c, t0 + 100, 10, 5555);
		route(c, t0 + 110, 10, "POST", "/v1/completions");
		srv(c, t0 + 120, 10, LLMTAP_SRV_NEW_ID, 21, -1);
		srv(c, t0 + 121, 10, LLMTAP_SRV_NEW_ID, 20, -1);
		srv(c, t0 + 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 21, 1);
		srv(c, t0 + 131, MAIN_TID, LLMTAP_SRV_LAUNCH, 20, 0);
		step1(c, t0 + 140, 0, 5, 0, 4, 1);
		step1(c, t0 + 145, 1, 5, 0, 4, 1);
		sample_tok(c, t0 + 150, 0, 1001);
		sample_tok(c, t0 + 155, 1, round ? 150 : EOS_TOKEN);
		final_checked(c, t0 + 170, 0, t0 + 160, false); /* task 20: a limit */
		final_checked(c, t0 + 171, 1, 0, false);         /* task 21: EOS (or unknown) */
		status(c, t0 + 180, 10, 200);
		end(c, t0 + 190, 10);
	}
	r = &f->rec->reqs[0];
	assert_int_equal(r->n_finish, 2);
	assert_int_equal(r->finish[0], FINISH_LENGTH); /* task 20 first */
	assert_int_equal(r->finish[1], FINISH_STOP);
	assert_int_equal(req_finish(r), FINISH_UNKNOWN); /* no one reason for the counter */
	assert_int_equal(f->rec->reqs[1].n_finish, 0);
}

/* Lost records, speculative drafts: unknown. An embedder's generation: "stop" on EOG. */
static void test_finish_unknown_when_doubtful(void **state)
{
	struct fixture *f = *state;
	struct correlator *c = f->c;

	correlator_set_eog(c, test_eog, NULL);
	correlator_set_stop_checks(c, true);
	begin(c, 100, 10, 5555);
	route(c, 110, 10, "POST", "/completion");
	srv(c, 120, 10, LLMTAP_SRV_NEW_ID, 7, -1);
	srv(c, 130, MAIN_TID, LLMTAP_SRV_LAUNCH, 7, 0);
	step1(c, 140, 0, 5, 0, 4, 1);
	correlator_tick(c, 145, 2); /* lost */
	sample_tok(c, 150, 0, EOS_TOKEN);
	final_checked(c, 190, 0, 0, false);
	status(c, 200, 10, 200);
	end(c, 210, 10);
	assert_finish(&f->rec->reqs[0], FINISH_UNKNOWN);

	correlator_free(f->c);
	f->c = c = correlator_new(f->tm, (1u << LAYER_ENGINE) | (1u << LAYER_SAMPLING));
	correlator_set_eog(c, test_eog, NULL);
	kv_rm(c, 1000, 0, 0, -1);
	step1(c, 1000, 0, 4, 0, 3, 1);
	sample_tok(c, 1006, 0, 1000);
	step1(c, 1010, 0, 1, 4, 4, 1);
	sample_tok(c, 1016, 0, EOS_TOKEN); /* it stops on end-of-generation */
	kv_rm(c, 2000, 0, 0, -1);
	step1(c, 2000, 0, 4, 0, 3, 1);
	sample_tok(c, 2006, 0, 1000);
	step1(c, 2010, 0, 1, 4, 4, 1);
	sample_tok(c, 2016, 0, 1001); /* it stops on its own limit: unknown */
	correlator_flush(c, 9000);
	assert_int_equal(f->rec->n_reqs, 3);
	assert_int_equal(f->rec->reqs[1].kind, REQ_GENERATION);
	assert_finish(&f->rec->reqs[1], FINISH_STOP);
	assert_finish(&f->rec->reqs[2], FINISH_UNKNOWN);
}

/* gen_ai.request.max_tokens: the task's n_predict read at launch, while believable */
static void test_max_tokens(void **state)
{
	struct fixture *f = *state;

	launch_n_predict = 8;
	assert_int_equal(one_finish(f, 1001, 0, false)->max_tokens, 8); /* 2 outputs of 8 */
	launch_n_predict = -1;
	assert_int_equal(one_finish(f, 1001, 0, false)->max_tokens, -1); /* no limit: left out */
	launch_n_predict = LLMTAP_N_PREDICT_UNKNOWN;
	assert_int_equal(one_finish(f, 1001, 0, false)->max_tokens, 0);
	/* a task outran what was read as its limit: the offset is not this build's */
	launch_n_predict = 1;
	one_finish(f, 1001, 0, false);
	launch_n_predict = 8;
	assert_int_equal(one_finish(f, 1001, 0, false)->max_tokens, 0);
}

/* The server's own stop_type (server_slot::stop, read where the build's layout is known):
 * exact, also where a limit overrides a stop string; disbelieved once it contradicts
 * what llmtap saw three times, more often than it agreed. */
static void test_finish_by_server_stop_type(void **state)
{
	struct fixture *f = *state;

	correlator_set_eog(f->c, test_eog, NULL);
	correlator_set_stop_checks(f->c, true);
	final_stop_type = LLMTAP_STOP_WORD;
	assert_finish(one_finish(f, 1001, 180, true), FINISH_STOP);
	final_stop_type = LLMTAP_STOP_LIMIT; /* a word found, then a limit on the same token */
	assert_finish(one_finish(f, 1001, 180, true), FINISH_LENGTH);
	final_stop_type = LLMTAP_STOP_EOS;
	assert_finish(one_finish(f, 150, 180, true), FINISH_STOP);
	final_stop_type = LLMTAP_STOP_NONE; /* an empty prompt */
	assert_finish(one_finish(f, 1001, 180, true), FINISH_UNKNOWN);
	/* contradictions: the server's word or llmtap's vocabulary is wrong: unknown */
	final_stop_type = LLMTAP_STOP_LIMIT;
	assert_finish(one_finish(f, EOS_TOKEN, 180, true), FINISH_UNKNOWN); /* EOS wins */
	final_stop_type = LLMTAP_STOP_WORD;
	assert_finish(one_finish(f, 1001, 180, false), FINISH_UNKNOWN);   /* a partial check */
	final_stop_type = 77;
	assert_finish(one_finish(f, 1001, 180, false), FINISH_UNKNOWN);   /* no such value */
	/* three contradictions and no agreement: no longer read */
	final_stop_type = LLMTAP_STOP_WORD;
	assert_finish(one_finish(f, 1001, 180, true), FINISH_UNKNOWN);
}

/*
 * Review (r2): the server's own stop_type contradicting llmtap's vocabulary means the
 * vocabulary is not the server's (--override-kv tokenizer.ggml.eos_token_id, or the
 * wrong .gguf's) or the offset is wrong; either way the reason cannot be told from that
 * vocabulary. Here the server ended the task on a token it treats as EOS (stop_type
 * EOS: "stop"), a byte token whose text was incomplete UTF-8 (no stop check after it),
 * which llmtap's vocabulary calls never end-of-generation: llmtap must not say "length".
 */
static void test_review_r2_contradicted_vocabulary_is_not_used(void **state)
{
	struct fixture *f = *state;

	correlator_set_eog(f->c, test_eog, NULL);
	correlator_set_stop_checks(f->c, true);
	final_stop_type = LLMTAP_STOP_EOS;
	/* the last check (160) was the token before's: none after the final token (174) */
	const struct req_span *r = one_finish(f, 1001, 160, false);
	assert_true(r->n_finish == 0 || r->finish[0] == FINISH_STOP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_speculative_outputs_by_sampling_site, setup, teardown),
		cmocka_unit_test_setup_teardown(test_review_uaf_after_server_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_review_disconnect_takes_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_context_of_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_context_model_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_review_mrope_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_review_loss_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_review_server_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_review_embedder_pause, setup, teardown),

		cmocka_unit_test_setup_teardown(test_engine_first_sequential_requests_are_joined, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_engine_first_overlap_is_unattributed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_first_overlap_told_apart_by_elimination, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_engine_first_doubt_leaves_unattributed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_first_later_decode_is_not_joined, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_embedder_generations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_embedder_counts_outputs_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_embedder_logits_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outputs_without_sampling_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_by_eog_and_stop_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_without_stop_checks_or_vocab, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_finish_cancelled_and_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_per_choice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_unknown_when_doubtful, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_by_server_stop_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_review_r2_contradicted_vocabulary_is_not_used, setup,
						teardown),
		T(test_full_request),
		T(test_draft_model),
		T(test_task_flood_is_bounded),
		T(test_task_on_two_slots),
		T(test_interleaved),
		T(test_deferred),
		T(test_keepalive_no_request),
		T(test_before_attach),
		T(test_partial_marks_stream),
		T(test_context_shift),
		T(test_cache_load),
		T(test_cache_pending_dropped_by_step),
		T(test_cache_save_and_calls),
		T(test_flush),
		T(test_gauges),
		T(test_tokenize_and_error),
		T(test_several_tasks),
		T(test_end_before_final),
		T(test_bug_rebegin_end_ns),
		T(test_bug_flush_idle_keepalive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
