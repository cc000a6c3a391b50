// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for user/model/layercheck.c: hand-built events of a right and of a
 * wrong build in, the layers found wrong (once, with why) out.
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

#include "llmtap_sites.h"
#include "model/layercheck.h"

#define ALL_LAYERS ((1u << LAYER_MAX) - 1)
#define SERVER (1u << LAYER_SERVER)
#define HTTP (1u << LAYER_HTTP)
#define SAMPLING (1u << LAYER_SAMPLING)

#define MAIN_TID 1  /* llama-server's main loop: launches, decodes, samples */
#define HTTP_TID 10 /* an HTTP worker */
#define TARGET_CTX 0xc0
#define DRAFT_CTX 0xd0

struct fixture {
	struct layercheck *lc;
	unsigned int failed; /* every layer any event failed, OR-ed */
	int n_failures;      /* events that failed a layer */
	char why[256];       /* the last failure's */
	struct event ev;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->lc = layercheck_new(ALL_LAYERS);
	assert_non_null(f->lc);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	layercheck_free(f->lc);
	free(f);
	return 0;
}

static void feed(struct fixture *f)
{
	char why[256] = "unset";
	unsigned int m = layercheck_event(f->lc, &f->ev, why, sizeof(why));

	if (m) {
		assert_false(f->failed & m); /* a layer fails once */
		f->failed |= m;
		f->n_failures++;
		snprintf(f->why, sizeof(f->why), "%s", why);
	}
}

static void *fresh(struct fixture *f, uint32_t kind)
{
	memset(&f->ev, 0, sizeof(f->ev));
	f->ev.kind = kind;
	return &f->ev.step; /* the union's start */
}

/* ---- building events ---- */

/* A step on ctx by tid: runs of (seq, n_tokens, n_outputs), terminated by seq -2. */
static void step(struct fixture *f, uint32_t tid, uint64_t ctx, const int *runs)
{
	struct step *s = fresh(f, LLMTAP_EV_STEP);

	s->tid = tid;
	s->ctx = ctx;
	for (int i = 0; runs[3 * i] != -2; i++) {
		struct llmtap_run *r = &s->runs[s->n_runs++];

		r->seq_id = runs[3 * i];
		r->n_tokens = (uint32_t)runs[3 * i + 1];
		r->n_outputs = (uint32_t)runs[3 * i + 2];
		s->n_tokens += (int32_t)r->n_tokens;
		s->n_outputs += r->n_outputs;
	}
	feed(f);
}

/* one sequence decoding one token that asks for its output */
static void step1(struct fixture *f, uint64_t ctx, int seq)
{
	step(f, MAIN_TID, ctx, (const int[]){ seq, 1, 1, -2 });
}

static void srv(struct fixture *f, uint32_t op, int task, int slot, uint64_t ctx)
{
	struct llmtap_srv_event *e = fresh(f, LLMTAP_EV_SERVER);

	e->tid = op == LLMTAP_SRV_NEW_ID ? HTTP_TID : MAIN_TID;
	e->op = op;
	e->task_id = task;
	e->slot_id = slot;
	e->err_type = -1;
	e->ctx = ctx;
	feed(f);
}

static void new_id(struct fixture *f, int id)
{
	srv(f, LLMTAP_SRV_NEW_ID, id, -1, 0);
}

static void launch(struct fixture *f, int task, int slot, uint64_t ctx)
{
	srv(f, LLMTAP_SRV_LAUNCH, task, slot, ctx);
}

static void final(struct fixture *f, int slot)
{
	srv(f, LLMTAP_SRV_FINAL, -1, slot, 0);
}

static void send_error(struct fixture *f, int task, int type)
{
	struct llmtap_srv_event *e = fresh(f, LLMTAP_EV_SERVER);

	e->tid = MAIN_TID;
	e->op = LLMTAP_SRV_ERROR;
	e->task_id = task;
	e->slot_id = -1;
	e->err_type = type;
	feed(f);
}

static void context_init(struct fixture *f, uint32_t n_seq_max)
{
	struct llmtap_call_event *e = fresh(f, LLMTAP_EV_CALL);

	e->op = LLMTAP_CALL_CONTEXT_INIT;
	e->ret = TARGET_CTX;
	e->params[0] = 4096;
	e->params[3] = n_seq_max;
	feed(f);
}

/* A whole completion on a right build: id, launch, prompt, a token, the final response. */
static void request(struct fixture *f, int task, int slot, uint64_t slot_ctx)
{
	new_id(f, task);
	launch(f, task, slot, slot_ctx);
	step(f, MAIN_TID, TARGET_CTX, (const int[]){ slot, 5, 1, -2 });
	step1(f, TARGET_CTX, slot);
	final(f, slot);
}

static void http(struct fixture *f, uint32_t op, int value, int value2, const char *s0,
		 const char *s1)
{
	struct llmtap_http_event *e = fresh(f, LLMTAP_EV_HTTP);

	e->tid = HTTP_TID;
	e->op = op;
	e->value = value;
	e->value2 = value2;
	snprintf(e->s0, sizeof(e->s0), "%s", s0);
	snprintf(e->s1, sizeof(e->s1), "%s", s1);
	feed(f);
}

static void http_request(struct fixture *f, const char *method, const char *path, int status)
{
	http(f, LLMTAP_HTTP_BEGIN, 40000, 8080, "127.0.0.1", "");
	http(f, LLMTAP_HTTP_ROUTE, 0, 0, method, path);
	http(f, LLMTAP_HTTP_STATUS, status, 0, "", "");
	http(f, LLMTAP_HTTP_END, 1, 0, "", "");
}

static void sample(struct fixture *f, uint64_t ctx, int idx, int seq, int token, uint32_t flags)
{
	struct llmtap_sample_event *e = fresh(f, LLMTAP_EV_SAMPLE);

	e->tid = MAIN_TID;
	e->ctx = ctx;
	e->start_ns = 1000;
	e->end_ns = 2000;
	e->idx = idx;
	e->seq_id = seq;
	e->token = token;
	e->flags = flags;
	feed(f);
}

/* llama_sampler_sample, recorded at entry: no token yet */
static void sample_at_entry(struct fixture *f, uint64_t ctx, int idx, int seq)
{
	struct llmtap_sample_event *e = fresh(f, LLMTAP_EV_SAMPLE);

	e->tid = MAIN_TID;
	e->ctx = ctx;
	e->start_ns = e->end_ns = 5;
	e->idx = idx;
	e->seq_id = seq;
	e->token = -1;
	feed(f);
}

/* ---- server ---- */

static void test_right_server_passes(void **state)
{
	struct fixture *f = *state;

	context_init(f, 4);
	for (int i = 0; i < 200; i++)
		request(f, 100 + 2 * i, i % 4, TARGET_CTX);
	send_error(f, 7, 7); /* ERROR_TYPE_EXCEED_CONTEXT_SIZE */
	assert_int_equal(f->failed, 0);
	assert_int_equal(layercheck_layers(f->lc), ALL_LAYERS);
}

/* b7698 read at +8: a slot's context reads as something that never decodes; that
 * matters only once a second context decodes */
static void test_slot_ctx_never_decoding(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES - 1; i++)
		request(f, 10 + i, 0, 0x7777);
	assert_int_equal(f->failed, 0); /* the first records get the benefit of the doubt */
	request(f, 20, 1, 0x7777);
	/* with one context decoding, the slots' context is not needed: the layer stays */
	assert_int_equal(f->failed, 0);
	assert_int_equal(layercheck_layers(f->lc), ALL_LAYERS);
	step1(f, DRAFT_CTX, 0); /* a second context: a draft model's cannot be told apart */
	assert_int_equal(f->failed, SERVER);
	assert_string_equal(f->why,
			    "a slot's context was never seen decoding, and a second context decodes");
	assert_int_equal(layercheck_layers(f->lc), ALL_LAYERS & ~SERVER);
	for (int i = 0; i < 20; i++) /* no second verdict */
		request(f, 30 + i, 0, 0x7777);
	assert_int_equal(f->n_failures, 1);
}

/* no speculative decoding in b7698: +8 is batch_spec.n_tokens, 0 */
static void test_slot_ctx_null(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++) {
		assert_int_equal(f->failed, 0);
		new_id(f, i);
		launch(f, i, 0, 0);
	}
	assert_int_equal(f->failed, 0);
	step1(f, TARGET_CTX, 0);
	assert_int_equal(f->failed, 0); /* the one context that decodes */
	step1(f, DRAFT_CTX, 0);
	assert_int_equal(f->failed, SERVER);
}

/* the first launch after attach on an idle server: its context decodes after the launch */
static void test_slot_ctx_confirmed_later(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 10; i++) {
		/* a fresh checker each time: the context is never seen before its launch */
		layercheck_free(f->lc);
		f->lc = layercheck_new(ALL_LAYERS);
		request(f, i, 0, TARGET_CTX);
	}
	assert_int_equal(f->failed, 0);
}

/* speculative decoding: the draft context decodes the slot's sequence too, maybe first */
static void test_slot_ctx_with_draft(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 20; i++) {
		new_id(f, i);
		launch(f, i, i % 2, TARGET_CTX);
		step1(f, DRAFT_CTX, i % 2);
		step1(f, TARGET_CTX, i % 2);
		step1(f, DRAFT_CTX, i % 2);
		final(f, i % 2);
	}
	assert_int_equal(f->failed, 0);
}

/* one lost or odd record among right ones does not turn a layer off */
static void test_tolerance(void **state)
{
	struct fixture *f = *state;

	request(f, 1, 0, 0x7777);
	request(f, 2, 0, 0x7777);
	for (int i = 0; i < 10; i++)
		request(f, 10 + i, 0, TARGET_CTX);
	request(f, 30, 1, 0x7777);
	request(f, 31, 1, 0x7777);
	assert_int_equal(f->failed, 0);
	/* wrong from now on: caught once wrong outweighs right */
	for (int i = 0; i < 12 && !f->failed; i++)
		request(f, 40 + i, 1, 0x7777);
	step1(f, DRAFT_CTX, 1);
	assert_int_equal(f->failed, SERVER);
}

static void test_launched_id_never_handed_out(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++) {
		assert_int_equal(f->failed, 0);
		new_id(f, 50 + i);
		/* a field moved: the id read is something else */
		launch(f, 5000 + i * 17, 0, TARGET_CTX);
		step1(f, TARGET_CTX, 0);
		final(f, 0);
	}
	assert_int_equal(f->failed, SERVER);
	assert_string_equal(f->why, "a task id was never handed out by the queue");
}

/* tasks handed out before attach are launched after it: not judged */
static void test_ids_before_attach(void **state)
{
	struct fixture *f = *state;

	launch(f, 3, 0, TARGET_CTX); /* before any id is seen */
	step1(f, TARGET_CTX, 0);
	new_id(f, 40);
	for (int i = 4; i < 20; i++) { /* the backlog: ids below the first seen */
		launch(f, i, 0, TARGET_CTX);
		final(f, 0);
	}
	launch(f, 40, 1, TARGET_CTX);
	assert_int_equal(f->failed, 0);
}

/* a constant read (a field moved, 0 there) launches "the same task" again and again */
static void test_same_task_launched_again(void **state)
{
	struct fixture *f = *state;

	new_id(f, 100);
	for (int i = 0; i <= LAYERCHECK_STRIKES; i++) {
		assert_int_equal(f->failed, 0);
		new_id(f, 101 + i);
		launch(f, 0, 0, TARGET_CTX);
		step1(f, TARGET_CTX, 0);
		final(f, 0);
	}
	assert_int_equal(f->failed, SERVER);
	assert_string_equal(f->why, "a task was launched twice");
}

static void test_negative_task_ids(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++)
		new_id(f, -5 - i);
	assert_int_equal(f->failed, SERVER);
	assert_string_equal(f->why, "the queue handed out a negative task id");
}

/* get_new_id's return is not an id any more (a changed signature): ids jump around */
static void test_ids_not_counting_up(void **state)
{
	struct fixture *f = *state;

	new_id(f, 10000);
	new_id(f, 9998); /* racing threads: a little behind is fine */
	new_id(f, 10001);
	assert_int_equal(f->failed, 0);
	new_id(f, 5);
	new_id(f, 1 << 30);
	new_id(f, 7);
	assert_int_equal(f->failed, 0); /* 3 wrong, 3 right */
	new_id(f, 9);
	assert_int_equal(f->failed, SERVER);
	assert_string_equal(f->why, "the task ids the queue hands out do not count up");
}

/* the main loop's own tasks (one per step) push the window up: an old task is not judged */
static void test_old_task_in_a_long_queue(void **state)
{
	struct fixture *f = *state;

	new_id(f, 10);
	for (int i = 11; i < 11 + 70000; i++)
		new_id(f, i);
	launch(f, 10, 0, TARGET_CTX);
	for (int i = 0; i < 5; i++) {
		new_id(f, 80000 + i);
		launch(f, 80000 + i, 1, TARGET_CTX);
	}
	assert_int_equal(f->failed, 0);
}

static void test_slot_out_of_range(void **state)
{
	struct fixture *f = *state;

	launch(f, 1, 200, TARGET_CTX); /* no context seen created: up to LLAMA_MAX_SEQ */
	final(f, 200);
	context_init(f, 2);
	launch(f, 2, 1, TARGET_CTX);
	assert_int_equal(f->failed, 0);
	for (int i = 0; i < LAYERCHECK_STRIKES; i++)
		launch(f, 10 + i, 2, TARGET_CTX);
	assert_int_equal(f->failed, SERVER);
	assert_string_equal(f->why, "a slot's id is outside the context's sequences");
}

static void test_final_slot_negative(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++)
		final(f, -1);
	assert_int_equal(f->failed, SERVER);
}

static void test_error_type_out_of_range(void **state)
{
	struct fixture *f = *state;

	send_error(f, 5, 0);
	send_error(f, 6, 2);
	send_error(f, 8, 1);
	for (int i = 0; i < 3; i++)
		send_error(f, 9, 0x7ffe0000);
	assert_int_equal(f->failed, 0); /* 3 wrong, 3 right */
	send_error(f, 9, 4242);
	assert_int_equal(f->failed, SERVER);
	assert_string_equal(f->why, "an error's task id or type is out of range");
}

static void test_not_attached_not_checked(void **state)
{
	struct fixture *f = *state;

	layercheck_free(f->lc);
	f->lc = layercheck_new((1u << LAYER_ENGINE) | HTTP);
	for (int i = 0; i < 10; i++)
		launch(f, 1, 0, 0);
	assert_int_equal(f->failed, 0);
	assert_int_equal(layercheck_layers(f->lc), (1u << LAYER_ENGINE) | HTTP);
}

/* ---- http ---- */

static void test_right_http_passes(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 20; i++) {
		http_request(f, "POST", "/v1/chat/completions", 200);
		http_request(f, "GET", "/health", 503);
	}
	/* what a client may send: a path of its own, answered 4xx; OPTIONS answered 200 */
	for (int i = 0; i < 10; i++) {
		http_request(f, "GET", "http://example.com/health", 404);
		http_request(f, "GET", "*", 404);
		http_request(f, "OPTIONS", "*", 200);
	}
	http(f, LLMTAP_HTTP_STATUS, 400, 0, "", ""); /* a bad request line: no route */
	http(f, LLMTAP_HTTP_END, 0, 0, "", "");
	assert_int_equal(f->failed, 0);
}

/* a status read where it is not: 0 when unreadable, anything otherwise */
static void test_http_status(void **state)
{
	struct fixture *f = *state;

	http_request(f, "GET", "/health", 0);
	http_request(f, "GET", "/health", 1234567);
	assert_int_equal(f->failed, 0);
	http_request(f, "GET", "/health", -3);
	assert_int_equal(f->failed, HTTP);
	assert_string_equal(f->why, "a response's status is outside 100..599");
}

static void test_http_method(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++)
		http_request(f, "HTTP/1.1", "/health", 200);
	assert_int_equal(f->failed, HTTP);
	assert_string_equal(f->why, "a request's method is not an HTTP method");
}

/* the path read elsewhere (another std::string) on requests the server routed */
static void test_http_path(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++)
		http_request(f, "POST", "application/json", 200);
	assert_int_equal(f->failed, HTTP);
	assert_string_equal(f->why, "a request's path does not begin with '/'");
}

static void test_http_ports_and_end(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++)
		http(f, LLMTAP_HTTP_BEGIN, 70000, -1, "", "");
	assert_int_equal(f->failed, HTTP);
	assert_string_equal(f->why, "a connection's port is out of range");

	layercheck_free(f->lc);
	f->lc = layercheck_new(ALL_LAYERS);
	f->failed = 0;
	for (int i = 0; i < LAYERCHECK_STRIKES; i++)
		http(f, LLMTAP_HTTP_END, 0x55, 0, "", "");
	assert_int_equal(f->failed, HTTP);
}

/* ---- sampling ---- */

static void test_right_sampling_passes(void **state)
{
	struct fixture *f = *state;

	sample(f, TARGET_CTX, 0, 0, 5, LLMTAP_SAMPLE_NO_BATCH); /* decoded before attach */
	for (int i = 0; i < 20; i++) {
		/* two slots: 4 prompt tokens of seq 0 (last asks an output), one token of seq 1 */
		step(f, MAIN_TID, TARGET_CTX, (const int[]){ 0, 4, 1, 1, 1, 1, -2 });
		sample(f, TARGET_CTX, 3, 0, 100 + i, 0);
		sample(f, TARGET_CTX, 4, 1, 200 + i, 0);
		sample_at_entry(f, TARGET_CTX, 4, 1);
	}
	assert_int_equal(f->failed, 0);
}

/* speculative decoding: the draft re-decodes the target's batch (no outputs asked) first */
static void test_sampling_after_draft_batch(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 20; i++) {
		step(f, MAIN_TID, TARGET_CTX, (const int[]){ 0, 3, 3, -2 });
		step(f, MAIN_TID, DRAFT_CTX, (const int[]){ 0, 3, 1, -2 });
		sample(f, TARGET_CTX, 0, 0, 7, 0);
		sample(f, TARGET_CTX, 1, 0, 8, 0);
	}
	assert_int_equal(f->failed, 0);
}

static void test_sample_wrong_sequence(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++) {
		step(f, MAIN_TID, TARGET_CTX, (const int[]){ 0, 1, 1, 1, 1, 1, -2 });
		sample(f, TARGET_CTX, 0, 1, 5, 0);
	}
	assert_int_equal(f->failed, SAMPLING);
	assert_string_equal(f->why, "a sampled token's sequence is not in its batch");
}

/* idx is read from another argument: outside the batch, or no batch for the BPF side */
static void test_sample_outside_batch(void **state)
{
	struct fixture *f = *state;

	step1(f, TARGET_CTX, 0);
	sample(f, TARGET_CTX, 0, -1, 5, LLMTAP_SAMPLE_NO_BATCH);
	sample(f, TARGET_CTX, 7, 0, 5, 0);
	assert_int_equal(f->failed, 0);
	sample(f, TARGET_CTX, -1, -1, 5, LLMTAP_SAMPLE_NO_BATCH);
	assert_int_equal(f->failed, SAMPLING);
	assert_string_equal(f->why, "a sampled output is outside its thread's last batch");
}

static void test_sample_without_output(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < LAYERCHECK_STRIKES; i++) {
		/* seq 0's prompt asks no output (a prompt split over batches) */
		step(f, MAIN_TID, TARGET_CTX, (const int[]){ 0, 4, 0, 1, 1, 1, -2 });
		sample(f, TARGET_CTX, 1, 0, 5, 0);
	}
	assert_int_equal(f->failed, SAMPLING);
	assert_string_equal(f->why, "a token was sampled where its batch asked for no output");
}

static void test_sample_token_out_of_range(void **state)
{
	struct fixture *f = *state;

	sample(f, TARGET_CTX, 0, 0, -7, 0);
	sample(f, TARGET_CTX, 0, 0, 1 << 30, 0);
	assert_int_equal(f->failed, 0);
	sample(f, TARGET_CTX, 0, 0, -1, 0); /* at return: -1 is no token */
	assert_int_equal(f->failed, SAMPLING);
	assert_string_equal(f->why, "a sampled token id is out of range");
}

/* a hostile target's flood: bounded state, no crash, and its layers are what it breaks */
static void test_flood(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 100000; i++) {
		struct llmtap_srv_event *e = fresh(f, LLMTAP_EV_SERVER);

		e->tid = (uint32_t)i;
		e->op = (uint32_t)(i % 7);
		e->task_id = i * 7919;
		e->slot_id = (i * 31) % 300 - 20;
		e->ctx = (uint64_t)i;
		feed(f);
		http(f, (uint32_t)(i % 5), i, -i, "GET", "/x");
	}
	assert_true(f->n_failures <= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_right_server_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_ctx_never_decoding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_ctx_null, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_ctx_confirmed_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_ctx_with_draft, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tolerance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_launched_id_never_handed_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_before_attach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_task_launched_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negative_task_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_not_counting_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_task_in_a_long_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_final_slot_negative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_type_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_attached_not_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_right_http_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_ports_and_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_right_sampling_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sampling_after_draft_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sample_wrong_sequence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sample_outside_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sample_without_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sample_token_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
