// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Engine-first accounting: generations rebuilt from decode batches and KV edits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "model/generation.h"

#define CTX 0x7000
#define MAX_SEEN 64

struct seen {
	struct gen g[MAX_SEEN];
	int n;
};

static void on_closed(void *arg, const struct gen *g)
{
	struct seen *s = arg;

	assert_true(s->n < MAX_SEEN);
	s->g[s->n++] = *g;
}

struct fx {
	struct seen seen;
	struct gen_tracker *gt;
	uint64_t ctx;
	uint32_t flags;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->gt = gen_tracker_new(on_closed, &f->seen);
	assert_non_null(f->gt);
	f->ctx = CTX;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	gen_tracker_free(f->gt);
	free(f);
	return 0;
}

/* one decode of runs {seq, n_tokens, pos_first, n_outputs}, at ts .. ts+5 */
static void step(struct fx *f, uint64_t ts, int n, const int (*runs)[4])
{
	struct step s;

	memset(&s, 0, sizeof(s));
	s.ctx = f->ctx;
	s.start_ns = ts;
	s.end_ns = ts + 5;
	s.op = LLMTAP_OP_DECODE;
	s.flags = f->flags;
	s.n_runs = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		s.runs[i].seq_id = runs[i][0];
		s.runs[i].n_tokens = (uint32_t)runs[i][1];
		s.runs[i].pos_first = runs[i][2];
		s.runs[i].pos_last = runs[i][2] < 0 ? -1 : runs[i][2] + runs[i][1] - 1;
		s.runs[i].n_outputs = (uint32_t)runs[i][3];
	}
	gen_tracker_step(f->gt, &s);
}

static void step1(struct fx *f, uint64_t ts, int seq, int n_tokens, int pos, int n_outputs)
{
	const int run[1][4] = { { seq, n_tokens, pos, n_outputs } };

	step(f, ts, 1, run);
}

static void kv(struct fx *f, uint32_t op, int a0, int a1, int a2, int a3)
{
	struct llmtap_kv_event k = { .mem = 0x9000, .op = op, .args = { a0, a1, a2, a3 } };

	gen_tracker_kv(f->gt, &k);
}

/* llama-server's way: cut the tail, prompt, then one token per step */
static void serve(struct fx *f, uint64_t ts, int seq, int cached, int prompt, int outputs)
{
	kv(f, LLMTAP_KV_SEQ_RM, seq, cached, -1, 0);
	step1(f, ts, seq, prompt, cached, 1);
	for (int i = 1; i < outputs; i++)
		step1(f, ts + 10 * (uint64_t)i, seq, 1, cached + prompt + i - 1, 1);
}

static void test_server_generations(void **state)
{
	struct fx *f = *state;

	serve(f, 100, 0, 0, 10, 4);
	assert_int_equal(f->seen.n, 0); /* still open */
	serve(f, 1000, 0, 7, 3, 5); /* the next prompt reuses 7 positions */
	assert_int_equal(f->seen.n, 1);
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 2);

	assert_int_equal(f->seen.g[0].prompt_tokens, 10);
	assert_int_equal(f->seen.g[0].cached_tokens, 0);
	assert_int_equal(f->seen.g[0].outputs, 4);
	assert_int_equal(f->seen.g[0].steps, 4);
	assert_true(f->seen.g[0].cached_known);
	assert_false(f->seen.g[0].uncertain);
	assert_false(f->seen.g[0].embedding);
	assert_int_equal(f->seen.g[0].start_ns, 100);
	assert_int_equal(f->seen.g[0].first_output_ns, 105);
	assert_int_equal(f->seen.g[0].last_ns, 135);

	assert_int_equal(f->seen.g[1].prompt_tokens, 3);
	assert_int_equal(f->seen.g[1].cached_tokens, 7);
	assert_int_equal(f->seen.g[1].outputs, 5);
	assert_true(f->seen.g[1].id > f->seen.g[0].id);
}

/* A whole prompt in the cache: llama-server decodes its last token again. Without
 * the tail cut that single token would read as the next output of the last one. */
static void test_full_cache_hit_is_a_new_generation(void **state)
{
	struct fx *f = *state;

	serve(f, 100, 2, 0, 6, 3); /* positions 0..7 */
	serve(f, 500, 2, 5, 1, 2);
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 2);
	assert_int_equal(f->seen.g[1].prompt_tokens, 1);
	assert_int_equal(f->seen.g[1].cached_tokens, 5);
	assert_int_equal(f->seen.g[1].outputs, 2);
}

static void test_chunked_prompt_and_interleaved_slots(void **state)
{
	struct fx *f = *state;
	const int a[2][4] = { { 0, 4, 0, 0 }, { 1, 2, 0, 1 } };
	const int b[2][4] = { { 0, 4, 4, 1 }, { 1, 1, 2, 1 } };
	const int c[2][4] = { { 0, 1, 8, 1 }, { 1, 1, 3, 1 } };

	step(f, 100, 2, a); /* seq 0: first chunk, seq 1: whole prompt */
	step(f, 200, 2, b); /* seq 0: last chunk, seq 1: a token */
	step(f, 300, 2, c);
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 2);
	for (int i = 0; i < 2; i++) {
		const struct gen *g = &f->seen.g[i];

		if (g->seq == 0) {
			assert_int_equal(g->prompt_tokens, 8);
			assert_int_equal(g->outputs, 2);
			assert_int_equal(g->first_output_ns, 205);
		} else {
			assert_int_equal(g->prompt_tokens, 2);
			assert_int_equal(g->outputs, 3);
			assert_int_equal(g->first_output_ns, 105);
		}
		assert_int_equal(g->steps, 3);
	}
}

static void test_embedding_and_speculation_are_not_token_counts(void **state)
{
	struct fx *f = *state;

	step1(f, 100, 0, 5, 0, 5); /* every token outputs: embeddings */
	serve(f, 200, 1, 0, 4, 2);
	step1(f, 300, 1, 3, 5, 3); /* three tokens verified at once */
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 2);
	for (int i = 0; i < 2; i++) {
		if (f->seen.g[i].seq == 0) {
			assert_true(f->seen.g[i].embedding);
		} else {
			assert_true(f->seen.g[i].uncertain);
			assert_false(f->seen.g[i].embedding);
		}
	}
}

static void test_context_shift_keeps_the_generation(void **state)
{
	struct fx *f = *state;

	serve(f, 100, 0, 0, 8, 3); /* next position 10 */
	kv(f, LLMTAP_KV_SEQ_RM, 0, 2, 6, 0); /* drop 4 after the 2 kept */
	kv(f, LLMTAP_KV_SEQ_ADD, 0, 6, 10, -4);
	step1(f, 200, 0, 1, 6, 1);
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 1);
	assert_int_equal(f->seen.g[0].outputs, 4);
	assert_false(f->seen.g[0].uncertain);
}

/* llama_batch_get_one: no positions, no sequence ids */
static void test_no_positions(void **state)
{
	struct fx *f = *state;

	f->flags = LLMTAP_STEP_POS_NULL;
	step1(f, 100, 0, 6, -1, 1);
	step1(f, 200, 0, 1, -1, 1);
	step1(f, 300, 0, 1, -1, 1);
	step1(f, 400, 0, 5, -1, 1); /* the next turn */
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 2);
	assert_false(f->seen.g[0].cached_known); /* what came before attach is unknown */
	assert_int_equal(f->seen.g[0].outputs, 3);
	assert_false(f->seen.g[1].cached_known); /* nor after: the base is still unknown */
	assert_int_equal(f->seen.g[1].prompt_tokens, 5);
	kv(f, LLMTAP_KV_CLEAR, 0, 0, 0, 0);
	step1(f, 500, 0, 4, -1, 1);
	step1(f, 600, 0, 1, -1, 1);
	step1(f, 700, 0, 3, -1, 1); /* the next turn: 5 positions followed since the clear */
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 4);
	assert_int_equal(f->seen.g[2].cached_tokens, 0);
	assert_true(f->seen.g[2].cached_known);
	assert_int_equal(f->seen.g[3].cached_tokens, 5);
	assert_true(f->seen.g[3].cached_known);
}

static void test_partial_batch_makes_uncertain(void **state)
{
	struct fx *f = *state;

	serve(f, 100, 0, 0, 4, 2);
	f->flags = LLMTAP_STEP_RUNS_TRUNC;
	step1(f, 200, 1, 4, 0, 1);
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 2);
	assert_true(f->seen.g[0].uncertain);
	assert_true(f->seen.g[1].uncertain);
}

static void test_failed_decode_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct step s = { .ctx = CTX, .start_ns = 150, .end_ns = 160, .ret = 1, .n_runs = 1 };

	serve(f, 100, 0, 0, 4, 1);
	s.runs[0] = (struct llmtap_run){ .seq_id = 0, .n_tokens = 1, .pos_first = 4, .pos_last = 4,
					 .n_outputs = 1 };
	gen_tracker_step(f->gt, &s);
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.g[0].outputs, 1);
	assert_int_equal(f->seen.g[0].last_ns, 105);
}

static void test_expire_and_skipped(void **state)
{
	struct fx *f = *state;
	struct gen g;

	serve(f, 100, 0, 0, 4, 2); /* last batch 110..115 */
	serve(f, 120, 1, 0, 4, 1);
	memset(&g, 0, sizeof(g));
	g.ctx = CTX;
	g.seq = 0;
	g.id = 1;
	assert_true(gen_tracker_skipped_after(f->gt, &g, 115)); /* seq 1's step left it out */
	assert_false(gen_tracker_skipped_after(f->gt, &g, 120));
	assert_int_equal(gen_tracker_ctx_last_step(f->gt, CTX), 120);
	assert_int_equal(gen_tracker_expire(f->gt, 130, 100, 1000), 0);
	assert_int_equal(gen_tracker_expire(f->gt, 215, 100, 1000), 1); /* seq 0: skipped, idle */
	assert_int_equal(f->seen.g[0].seq, 0);
	assert_int_equal(gen_tracker_expire(f->gt, 1125, 100, 1000), 1); /* seq 1: quiet */
}

/* A target inventing contexts costs bounded memory: old ones are dropped, closed. */
static void test_context_flood_is_bounded(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 40; i++) {
		f->ctx = 0x1000 + (uint64_t)i;
		step1(f, 100 + (uint64_t)i, 0, 2, 0, 1);
	}
	assert_true(f->seen.n >= 30);
	assert_true(f->seen.g[0].uncertain);
	gen_tracker_flush(f->gt);
	assert_int_equal(f->seen.n, 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_server_generations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_cache_hit_is_a_new_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked_prompt_and_interleaved_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_embedding_and_speculation_are_not_token_counts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_context_shift_keeps_the_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_positions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_batch_makes_uncertain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_decode_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_and_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_context_flood_is_bounded, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
