// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "event.h"

#include <errno.h>
#include <string.h>

static enum step_kind classify(const struct llmtap_step_event *ev)
{
	unsigned int gen = 0, prefill = 0;

	for (uint32_t i = 0; i < ev->n_runs && i < LLMTAP_MAX_RUNS; i++) {
		const struct llmtap_run *r = &ev->runs[i];

		if (r->n_tokens == 1 && r->n_outputs == 1)
			gen++;
		else
			prefill++;
	}
	if (gen && !prefill && !(ev->flags & LLMTAP_STEP_RUNS_TRUNC))
		return STEP_GENERATE;
	if (prefill && !gen)
		return STEP_PREFILL;
	return gen ? STEP_MIXED : STEP_PREFILL;
}

int event_decode(const void *data, size_t size, struct step *out)
{
	const struct llmtap_step_event *ev = data;
	uint32_t n_seqs = 0;

	if (size < sizeof(struct llmtap_hdr))
		return -EINVAL;
	if (ev->hdr.version != LLMTAP_EVENT_VERSION || ev->hdr.kind != LLMTAP_EV_STEP ||
	    ev->hdr.size != sizeof(*ev) || size < sizeof(*ev))
		return -EINVAL;
	if (ev->n_runs > LLMTAP_MAX_RUNS)
		return -EINVAL;

	memset(out, 0, sizeof(*out));
	out->pid = ev->pid;
	out->tid = ev->tid;
	out->ctx = ev->ctx;
	out->start_ns = ev->start_ns;
	out->end_ns = ev->end_ns >= ev->start_ns ? ev->end_ns : ev->start_ns;
	out->ret = ev->ret;
	out->op = ev->op;
	out->n_tokens = ev->n_tokens;
	out->n_outputs = ev->n_outputs;
	out->flags = ev->flags;
	for (int w = 0; w < LLMTAP_SEQ_WORDS; w++)
		n_seqs += (uint32_t)__builtin_popcountll(ev->seq_mask[w]);
	out->n_seqs = n_seqs;
	out->n_runs = ev->n_runs;
	memcpy(out->runs, ev->runs, sizeof(out->runs[0]) * ev->n_runs);
	out->kind = classify(ev);
	return 0;
}

const char *step_kind_name(enum step_kind k)
{
	switch (k) {
	case STEP_PREFILL: return "prefill";
	case STEP_GENERATE: return "generate";
	case STEP_MIXED: return "mixed";
	default: return "unknown";
	}
}

const char *step_op_name(uint32_t op)
{
	return op == LLMTAP_OP_ENCODE ? "encode" : "decode";
}
