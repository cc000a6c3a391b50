// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "probe/event.h"

#include <errno.h>
#include <string.h>

#include "lib/text.h"

static enum step_kind classify(const struct llmtap_run *runs, uint32_t n_runs, uint32_t flags)
{
	unsigned int gen = 0, prefill = 0;

	for (uint32_t i = 0; i < n_runs; i++) {
		const struct llmtap_run *r = &runs[i];

		if (r->n_tokens == 1 && r->n_outputs == 1)
			gen++;
		else
			prefill++;
	}
	if (gen && !prefill && !(flags & LLMTAP_STEP_RUNS_TRUNC))
		return STEP_GENERATE;
	if (prefill && !gen)
		return STEP_PREFILL;
	return gen ? STEP_MIXED : STEP_PREFILL;
}

int event_decode_step(const void *data, size_t size, struct step *out)
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
	out->kind = classify(out->runs, out->n_runs, out->flags);
	return 0;
}

/* The assembler slot of tid, or a free one when create; -1 when none. */
static int assembler_slot(struct step_assembler *a, uint32_t tid, bool create)
{
	int free_slot = -1;

	for (int i = 0; i < STEP_ASSEMBLERS; i++) {
		if (a->parts[i].active && a->parts[i].tid == tid)
			return i;
		if (!a->parts[i].active && free_slot < 0)
			free_slot = i;
	}
	if (!create)
		return -1;
	if (free_slot < 0) { /* more threads mid-step than assemblers: give up the oldest */
		a->dropped++;
		free_slot = 0;
	}
	a->parts[free_slot].active = true;
	a->parts[free_slot].tid = tid;
	a->parts[free_slot].acc.n_runs = 0;
	a->parts[free_slot].acc.flags = 0;
	return free_slot;
}

int step_assemble(struct step_assembler *a, const struct step *rec, struct step *out)
{
	bool more = rec->flags & LLMTAP_STEP_MORE;
	int slot = assembler_slot(a, rec->tid, more);
	struct step *acc;
	uint32_t n;

	if (slot < 0) { /* a step in one record */
		if (out != rec)
			*out = *rec;
		return 1;
	}
	acc = &a->parts[slot].acc;
	n = rec->n_runs;
	if (acc->n_runs + n > STEP_MAX_RUNS) {
		n = STEP_MAX_RUNS - acc->n_runs;
		acc->flags |= LLMTAP_STEP_RUNS_TRUNC;
	}
	memcpy(&acc->runs[acc->n_runs], rec->runs, sizeof(rec->runs[0]) * n);
	acc->n_runs += n;
	if (more)
		return 0;
	/* the last record carries the step's totals; the runs are all the records' */
	if (out != rec)
		*out = *rec;
	memcpy(out->runs, acc->runs, sizeof(acc->runs[0]) * acc->n_runs);
	out->n_runs = acc->n_runs;
	out->flags |= acc->flags;
	memset(out->request_ids, 0, sizeof(out->request_ids));
	out->kind = classify(out->runs, out->n_runs, out->flags);
	a->parts[slot].active = false;
	return 1;
}

/* A small record is copied as it is; its strings are bounded and terminated here. */
#define COPY_RECORD(out, data, size, field)                                    \
	({                                                                     \
		int ret_ = -EINVAL;                                            \
		if ((size) >= sizeof((out)->field) &&                          \
		    ((const struct llmtap_hdr *)(data))->size == sizeof((out)->field)) { \
			memcpy(&(out)->field, (data), sizeof((out)->field));   \
			ret_ = 0;                                              \
		}                                                              \
		ret_;                                                          \
	})

/* A string the target wrote: terminated, cut to its field, valid UTF-8 (lib/text.h). */
static void terminate(char *s, uint32_t *len, size_t cap)
{
	if (*len >= cap)
		*len = (uint32_t)cap - 1;
	s[*len] = '\0';
	*len = (uint32_t)utf8_sanitize_inplace(s, cap);
}

int event_decode(const void *data, size_t size, struct event *out)
{
	const struct llmtap_hdr *h = data;
	int ret;

	if (size < sizeof(*h) || h->version != LLMTAP_EVENT_VERSION)
		return -EINVAL;
	out->kind = h->kind;
	switch (h->kind) {
	case LLMTAP_EV_STEP:
		return event_decode_step(data, size, &out->step);
	case LLMTAP_EV_SAMPLE:
		return COPY_RECORD(out, data, size, sample);
	case LLMTAP_EV_KV:
		ret = COPY_RECORD(out, data, size, kv);
		return ret ? ret : out->kv.op < LLMTAP_KV_OP_MAX ? 0 : -EINVAL;
	case LLMTAP_EV_SERVER:
		ret = COPY_RECORD(out, data, size, srv);
		if (ret || out->srv.op >= LLMTAP_SRV_OP_MAX)
			return -EINVAL;
		terminate(out->srv.msg, &out->srv.msg_len, sizeof(out->srv.msg));
		return 0;
	case LLMTAP_EV_HTTP:
		ret = COPY_RECORD(out, data, size, http);
		if (ret || out->http.op >= LLMTAP_HTTP_OP_MAX)
			return -EINVAL;
		terminate(out->http.s0, &out->http.len0, sizeof(out->http.s0));
		terminate(out->http.s1, &out->http.len1, sizeof(out->http.s1));
		return 0;
	case LLMTAP_EV_CALL:
		ret = COPY_RECORD(out, data, size, call);
		if (ret || out->call.op >= LLMTAP_CALL_OP_MAX)
			return -EINVAL;
		terminate(out->call.text, &out->call.text_len, sizeof(out->call.text));
		if (out->call.cparams_len > sizeof(out->call.cparams))
			out->call.cparams_len = 0;
		return 0;
	case LLMTAP_EV_SYNC:
		ret = COPY_RECORD(out, data, size, sync);
		return ret ? ret : out->sync.op < LLMTAP_SYNC_OP_MAX ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
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

void event_print(FILE *out, const struct event *ev)
{
	switch (ev->kind) {
	case LLMTAP_EV_STEP:
		fprintf(out, "step tid=%u t=%llu %s ret=%d n_tokens=%d runs=%u", ev->step.tid,
			(unsigned long long)ev->step.start_ns, step_op_name(ev->step.op), ev->step.ret,
			ev->step.n_tokens, ev->step.n_runs);
		for (uint32_t i = 0; i < ev->step.n_runs; i++)
			fprintf(out, " [seq %d x%u pos %d..%d out %u]", ev->step.runs[i].seq_id,
				ev->step.runs[i].n_tokens, ev->step.runs[i].pos_first,
				ev->step.runs[i].pos_last, ev->step.runs[i].n_outputs);
		fputc('\n', out);
		break;
	case LLMTAP_EV_SAMPLE:
		fprintf(out, "sample tid=%u ctx=%#llx t=%llu..%llu idx=%d seq=%d token=%d flags=%u\n",
			ev->sample.tid, (unsigned long long)ev->sample.ctx,
			(unsigned long long)ev->sample.start_ns, (unsigned long long)ev->sample.end_ns,
			ev->sample.idx, ev->sample.seq_id, ev->sample.token, ev->sample.flags);
		break;
	case LLMTAP_EV_KV:
		fprintf(out, "kv tid=%u t=%llu op=%u args=%d,%d,%d,%d\n", ev->kv.tid,
			(unsigned long long)ev->kv.ts_ns, ev->kv.op, ev->kv.args[0], ev->kv.args[1],
			ev->kv.args[2], ev->kv.args[3]);
		break;
	case LLMTAP_EV_SERVER:
		fprintf(out, "server tid=%u t=%llu op=%u task=%d slot=%d ctx=%#llx err=%d msg=%s\n",
			ev->srv.tid, (unsigned long long)ev->srv.ts_ns, ev->srv.op, ev->srv.task_id,
			ev->srv.slot_id, (unsigned long long)ev->srv.ctx, ev->srv.err_type, ev->srv.msg);
		break;
	case LLMTAP_EV_CALL:
		fprintf(out, "call tid=%u t=%llu op=%u dur=%llu seq=%d ret=%lld params=%u,%u,%u,%u text=%s\n",
			ev->call.tid, (unsigned long long)ev->call.start_ns, ev->call.op,
			(unsigned long long)(ev->call.end_ns - ev->call.start_ns), ev->call.seq,
			(long long)ev->call.ret, ev->call.params[0], ev->call.params[1],
			ev->call.params[2], ev->call.params[3], ev->call.text);
		break;
	case LLMTAP_EV_SYNC:
		fprintf(out, "sync tid=%u ctx=%#llx step_end=%llu t=%llu..%llu op=%u flags=%u\n",
			ev->sync.tid, (unsigned long long)ev->sync.ctx,
			(unsigned long long)ev->sync.step_end_ns, (unsigned long long)ev->sync.start_ns,
			(unsigned long long)ev->sync.end_ns, ev->sync.op, ev->sync.flags);
		break;
	case LLMTAP_EV_HTTP:
		fprintf(out, "http tid=%u t=%llu op=%u value=%d,%d s0=%s s1=%s\n", ev->http.tid,
			(unsigned long long)ev->http.ts_ns, ev->http.op, ev->http.value,
			ev->http.value2, ev->http.s0, ev->http.s1);
		break;
	}
}
