// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/probe/event.c: decoding ring-buffer step records. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "probe/event.h"

static void ev_init(struct llmtap_step_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->hdr.version = LLMTAP_EVENT_VERSION;
	ev->hdr.kind = LLMTAP_EV_STEP;
	ev->hdr.size = sizeof(*ev);
	ev->pid = 4242;
	ev->tid = 4243;
	ev->ctx = 0x55d0c8a01230ull;
	ev->start_ns = 1000000;
	ev->end_ns = 1250000;
}

static void ev_add_run(struct llmtap_step_event *ev, int32_t seq, uint32_t n_tokens,
		       int32_t pos_first, uint32_t n_outputs)
{
	struct llmtap_run *r = &ev->runs[ev->n_runs++];

	r->seq_id = seq;
	r->n_tokens = n_tokens;
	r->pos_first = pos_first;
	r->pos_last = pos_first + (int32_t)n_tokens - 1;
	r->n_outputs = n_outputs;
	ev->n_tokens += (int32_t)n_tokens;
	ev->n_outputs += n_outputs;
	ev->seq_mask[seq / 64] |= 1ull << (seq % 64);
}

static void test_decode_fields(void **state)
{
	struct llmtap_step_event ev;
	struct step s;
	(void)state;

	ev_init(&ev);
	ev.ret = 1;
	ev.op = LLMTAP_OP_ENCODE;
	ev.flags = LLMTAP_STEP_POS_NULL | LLMTAP_STEP_MULTI_SEQ;
	ev_add_run(&ev, 3, 30, 0, 1);
	ev_add_run(&ev, 7, 12, 100, 2);

	memset(&s, 0xa5, sizeof(s));
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.pid, 4242);
	assert_int_equal(s.tid, 4243);
	assert_true(s.ctx == 0x55d0c8a01230ull);
	assert_true(s.start_ns == 1000000);
	assert_true(s.end_ns == 1250000);
	assert_int_equal(s.ret, 1);
	assert_int_equal(s.op, LLMTAP_OP_ENCODE);
	assert_int_equal(s.n_tokens, 42);
	assert_int_equal(s.n_outputs, 3);
	assert_int_equal(s.n_seqs, 2);
	assert_int_equal(s.flags, LLMTAP_STEP_POS_NULL | LLMTAP_STEP_MULTI_SEQ);
	assert_int_equal(s.n_runs, 2);
	assert_memory_equal(s.runs, ev.runs, 2 * sizeof(ev.runs[0]));
	assert_int_equal(s.runs[1].seq_id, 7);
	assert_int_equal(s.runs[1].pos_last, 111);
	/* runs past n_runs are cleared, not left over */
	for (int i = 2; i < LLMTAP_MAX_RUNS; i++) {
		assert_int_equal(s.runs[i].n_tokens, 0);
		assert_int_equal(s.runs[i].seq_id, 0);
	}
	assert_string_equal(step_op_name(s.op), "encode");
	assert_string_equal(step_op_name(LLMTAP_OP_DECODE), "decode");

	/* a negative return code survives */
	ev.ret = -3;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.ret, -3);
}

static void test_decode_rejects(void **state)
{
	struct llmtap_step_event ev;
	unsigned char big[sizeof(ev) + 64];
	struct step s;
	(void)state;

	ev_init(&ev);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);

	ev.hdr.version = LLMTAP_EVENT_VERSION + 1;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), -EINVAL);
	ev.hdr.version = 0;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), -EINVAL);

	ev_init(&ev);
	ev.hdr.kind = LLMTAP_EV_STEP + 1;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), -EINVAL);
	ev.hdr.kind = 0;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), -EINVAL);

	ev_init(&ev);
	ev.hdr.size = sizeof(ev) - 8;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), -EINVAL);
	ev.hdr.size = sizeof(ev) + 8;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), -EINVAL);

	/* the buffer is shorter than the record claims */
	ev_init(&ev);
	assert_int_equal(event_decode_step(&ev, sizeof(ev) - 1, &s), -EINVAL);
	assert_int_equal(event_decode_step(&ev, sizeof(struct llmtap_hdr), &s), -EINVAL);
	assert_int_equal(event_decode_step(&ev, sizeof(struct llmtap_hdr) - 1, &s), -EINVAL);
	assert_int_equal(event_decode_step(&ev, 0, &s), -EINVAL);

	/* a longer buffer (ring-buffer records are 8-byte aligned) is fine */
	memset(big, 0, sizeof(big));
	memcpy(big, &ev, sizeof(ev));
	assert_int_equal(event_decode_step(big, sizeof(big), &s), 0);

	ev_init(&ev);
	ev.n_runs = LLMTAP_MAX_RUNS;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.n_runs, LLMTAP_MAX_RUNS);
	ev.n_runs = LLMTAP_MAX_RUNS + 1;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), -EINVAL);
	ev.n_runs = UINT32_MAX;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), -EINVAL);
}

static void test_decode_short_heap_buffer(void **state)
{
	struct llmtap_step_event ev;
	size_t n = sizeof(struct llmtap_hdr);
	void *buf = malloc(n);
	struct step s;
	(void)state;

	/* only the header is there: must be rejected without reading past it */
	ev_init(&ev);
	assert_non_null(buf);
	memcpy(buf, &ev, n);
	assert_int_equal(event_decode_step(buf, n, &s), -EINVAL);
	free(buf);
}

static void test_decode_seq_count(void **state)
{
	struct llmtap_step_event ev;
	struct step s;
	(void)state;

	ev_init(&ev);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.n_seqs, 0);

	/* one sequence in each word's edge */
	ev.seq_mask[0] = 1ull << 0;
	ev.seq_mask[0] |= 1ull << 63;
	ev.seq_mask[1] = 1ull << 0;  /* seq 64 */
	ev.seq_mask[3] = 1ull << 63; /* seq 255 */
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.n_seqs, 4);

	ev.seq_mask[2] = 0xf0f0ull; /* seqs 132..135, 140..143 */
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.n_seqs, 12);

	for (int w = 0; w < LLMTAP_SEQ_WORDS; w++)
		ev.seq_mask[w] = ~0ull;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.n_seqs, LLMTAP_MAX_SEQ);
}

static void test_kind_generate(void **state)
{
	struct llmtap_step_event ev;
	struct step s;
	(void)state;

	ev_init(&ev);
	for (int i = 0; i < 8; i++)
		ev_add_run(&ev, i, 1, 100 + i, 1);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.kind, STEP_GENERATE);
	assert_int_equal(s.n_seqs, 8);
	assert_string_equal(step_kind_name(s.kind), "generate");

	/* a single sequence generating */
	ev_init(&ev);
	ev_add_run(&ev, 0, 1, 57, 1);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.kind, STEP_GENERATE);
}

static void test_kind_prefill(void **state)
{
	struct llmtap_step_event ev;
	struct step s;
	(void)state;

	ev_init(&ev);
	ev_add_run(&ev, 0, 30, 0, 1);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.kind, STEP_PREFILL);
	assert_string_equal(step_kind_name(s.kind), "prefill");

	/* several prompts at once, one with every token output (embeddings) */
	ev_init(&ev);
	ev_add_run(&ev, 0, 30, 0, 1);
	ev_add_run(&ev, 1, 5, 0, 5);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.kind, STEP_PREFILL);

	/* one token that outputs nothing is still prompt processing */
	ev_init(&ev);
	ev_add_run(&ev, 0, 1, 0, 0);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.kind, STEP_PREFILL);
}

static void test_kind_mixed(void **state)
{
	struct llmtap_step_event ev;
	struct step s;
	(void)state;

	/* continuous batching: two sequences generate while a third prefills */
	ev_init(&ev);
	ev_add_run(&ev, 0, 1, 80, 1);
	ev_add_run(&ev, 1, 1, 44, 1);
	ev_add_run(&ev, 2, 30, 0, 1);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.kind, STEP_MIXED);
	assert_int_equal(s.n_seqs, 3);
	assert_string_equal(step_kind_name(s.kind), "mixed");

	/* the run order does not matter */
	ev_init(&ev);
	ev_add_run(&ev, 2, 30, 0, 1);
	ev_add_run(&ev, 0, 1, 80, 1);
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.kind, STEP_MIXED);

	/* all visible runs generate, but some runs were cut off: unknown rest */
	ev_init(&ev);
	for (int i = 0; i < LLMTAP_MAX_RUNS; i++)
		ev_add_run(&ev, i, 1, 10, 1);
	ev.flags |= LLMTAP_STEP_RUNS_TRUNC;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_int_equal(s.kind, STEP_MIXED);
	assert_int_equal(s.n_runs, LLMTAP_MAX_RUNS);
}

static void test_time_clamp(void **state)
{
	struct llmtap_step_event ev;
	struct step s;
	(void)state;

	ev_init(&ev);
	ev.start_ns = 5000;
	ev.end_ns = 4000;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_true(s.start_ns == 5000);
	assert_true(s.end_ns == 5000);
	assert_true(s.end_ns - s.start_ns == 0);

	ev.end_ns = 5000;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_true(s.end_ns == 5000);

	ev.start_ns = UINT64_MAX - 10;
	ev.end_ns = UINT64_MAX;
	assert_int_equal(event_decode_step(&ev, sizeof(ev), &s), 0);
	assert_true(s.end_ns - s.start_ns == 10);
}

static void test_names(void **state)
{
	(void)state;

	assert_string_equal(step_kind_name(STEP_PREFILL), "prefill");
	assert_string_equal(step_kind_name(STEP_GENERATE), "generate");
	assert_string_equal(step_kind_name(STEP_MIXED), "mixed");
	assert_string_equal(step_kind_name(STEP_KIND_MAX), "unknown");
	assert_string_equal(step_kind_name((enum step_kind)99), "unknown");
}


static struct step part(uint32_t tid, uint32_t first_seq, uint32_t n_runs, bool more)
{
	struct step s;

	memset(&s, 0, sizeof(s));
	s.tid = tid;
	s.n_tokens = (int32_t)n_runs;
	s.n_runs = n_runs;
	s.flags = more ? LLMTAP_STEP_MORE : 0;
	for (uint32_t i = 0; i < n_runs; i++)
		s.runs[i] = (struct llmtap_run){ .seq_id = (int32_t)(first_seq + i), .n_tokens = 1,
						 .pos_first = 7, .pos_last = 7, .n_outputs = 1 };
	return s;
}

static void test_assemble_single_record(void **state)
{
	struct step_assembler *a = calloc(1, sizeof(*a));
	struct step in = part(5, 0, 3, false), out;
	(void)state;

	assert_int_equal(step_assemble(a, &in, &out), 1);
	assert_int_equal(out.n_runs, 3);
	assert_int_equal(out.runs[2].seq_id, 2);
	free(a);
}

static void test_assemble_parts(void **state)
{
	struct step_assembler *a = calloc(1, sizeof(*a));
	struct step p1 = part(5, 0, LLMTAP_MAX_RUNS, true), p2 = part(5, 16, LLMTAP_MAX_RUNS, true);
	struct step last = part(5, 32, 4, false), other = part(9, 100, 2, false), out;
	(void)state;

	last.n_tokens = 36; /* the last record carries the step's totals */
	assert_int_equal(step_assemble(a, &p1, &out), 0);
	/* another thread's one-record step passes through untouched meanwhile */
	assert_int_equal(step_assemble(a, &other, &out), 1);
	assert_int_equal(out.n_runs, 2);
	assert_int_equal(out.runs[0].seq_id, 100);
	assert_int_equal(step_assemble(a, &p2, &out), 0);
	assert_int_equal(step_assemble(a, &last, &out), 1);
	assert_int_equal(out.n_runs, 2 * LLMTAP_MAX_RUNS + 4);
	assert_int_equal(out.n_tokens, 36);
	for (uint32_t i = 0; i < out.n_runs; i++)
		assert_int_equal(out.runs[i].seq_id, (int)i);
	assert_int_equal(out.kind, STEP_GENERATE);
	assert_false(out.flags & LLMTAP_STEP_MORE);
	/* and the assembler is free again */
	assert_int_equal(step_assemble(a, &other, &out), 1);
	assert_int_equal(out.n_runs, 2);
	free(a);
}

static void test_assemble_in_place_and_overflow(void **state)
{
	struct step_assembler *a = calloc(1, sizeof(*a));
	struct step *s = calloc(1, sizeof(*s));
	int parts = 0;
	(void)state;

	/* more runs than STEP_MAX_RUNS: kept up to the bound, flagged as truncated */
	for (uint32_t first = 0; first < STEP_MAX_RUNS + 2 * LLMTAP_MAX_RUNS; first += LLMTAP_MAX_RUNS) {
		*s = part(3, first, LLMTAP_MAX_RUNS, true);
		assert_int_equal(step_assemble(a, s, s), 0);
		parts++;
	}
	*s = part(3, 0, 1, false);
	assert_int_equal(step_assemble(a, s, s), 1);
	assert_int_equal(s->n_runs, STEP_MAX_RUNS);
	assert_true(s->flags & LLMTAP_STEP_RUNS_TRUNC);
	assert_true(parts > STEP_MAX_RUNS / LLMTAP_MAX_RUNS);
	free(s);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_assemble_single_record),
		cmocka_unit_test(test_assemble_parts),
		cmocka_unit_test(test_assemble_in_place_and_overflow),
		cmocka_unit_test(test_decode_fields),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_decode_short_heap_buffer),
		cmocka_unit_test(test_decode_seq_count),
		cmocka_unit_test(test_kind_generate),
		cmocka_unit_test(test_kind_prefill),
		cmocka_unit_test(test_kind_mixed),
		cmocka_unit_test(test_time_clamp),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
