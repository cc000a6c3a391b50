// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* JSON-lines sink: one object per line, for scripts. Times are Unix nanoseconds. */
#include "sinks.h"

#include <stdlib.h>

struct json_sink {
	FILE *out;
	bool steps;
};

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void json_hist(FILE *out, const char *name, const struct hist *h, double scale)
{
	fprintf(out, ",\"%s\":{\"count\":%llu,\"sum\":%.9g,\"min\":%.9g,\"max\":%.9g,"
		     "\"p50\":%.9g,\"p90\":%.9g,\"p99\":%.9g}",
		name, (unsigned long long)h->count, (double)h->sum * scale,
		(double)h->min * scale, (double)h->max * scale,
		(double)hist_quantile(h, 0.5) * scale, (double)hist_quantile(h, 0.9) * scale,
		(double)hist_quantile(h, 0.99) * scale);
}

static void json_window(FILE *out, const struct tm_window *w, int64_t off)
{
	fprintf(out, ",\"start_unix_nano\":%lld,\"end_unix_nano\":%lld",
		(long long)w->start_ns + off, (long long)w->end_ns + off);
	fprintf(out, ",\"steps\":%llu,\"failed_steps\":%llu,\"tokens\":%llu,\"outputs\":%llu",
		(unsigned long long)w->steps, (unsigned long long)w->step_errors,
		(unsigned long long)w->tokens, (unsigned long long)w->outputs);
	fprintf(out, ",\"steps_by_kind\":{");
	for (int k = 0; k < STEP_KIND_MAX; k++)
		fprintf(out, "%s\"%s\":%llu", k ? "," : "", step_kind_name((enum step_kind)k),
			(unsigned long long)w->by_kind[k]);
	fprintf(out, "},\"batch_mix\":{");
	for (int c = 0; c < BATCH_CLASSES; c++)
		fprintf(out, "%s\"%s\":%llu", c ? "," : "", batch_class_name(c),
			(unsigned long long)w->batch_mix[c]);
	fprintf(out, "},\"lost_events\":%llu", (unsigned long long)w->lost);
	json_hist(out, "step_duration_s", &w->duration_ns, 1e-9);
	json_hist(out, "batch_tokens", &w->batch_tokens, 1);
}

static void json_attached(void *self, const struct tm_target *t)
{
	struct json_sink *j = self;

	fprintf(j->out, "{\"type\":\"attach\",\"pid\":%d,\"comm\":", t->pid);
	json_string(j->out, t->comm);
	fputs(",\"library\":", j->out);
	json_string(j->out, t->library);
	fprintf(j->out, ",\"in_executable\":%s,\"probes\":", t->in_executable ? "true" : "false");
	json_string(j->out, t->probes);
	fputs("}\n", j->out);
	fflush(j->out);
}

static void json_step(void *self, const struct step *s, int64_t off)
{
	struct json_sink *j = self;

	if (!j->steps)
		return;
	fprintf(j->out,
		"{\"type\":\"step\",\"op\":\"%s\",\"pid\":%u,\"tid\":%u,\"ctx\":\"0x%llx\","
		"\"start_unix_nano\":%lld,\"duration_ns\":%llu,\"ret\":%d,\"kind\":\"%s\","
		"\"n_tokens\":%d,\"n_seqs\":%u,\"n_outputs\":%u,\"flags\":%u,\"seqs\":[",
		step_op_name(s->op), s->pid, s->tid, (unsigned long long)s->ctx,
		(long long)s->start_ns + off, (unsigned long long)(s->end_ns - s->start_ns), s->ret,
		step_kind_name(s->kind), s->n_tokens, s->n_seqs, s->n_outputs, s->flags);
	for (uint32_t i = 0; i < s->n_runs; i++) {
		const struct llmtap_run *r = &s->runs[i];

		fprintf(j->out, "%s{\"seq\":%d,\"n_tokens\":%u,\"pos_first\":%d,\"pos_last\":%d,\"n_outputs\":%u}",
			i ? "," : "", r->seq_id, r->n_tokens, r->pos_first, r->pos_last, r->n_outputs);
	}
	fputs("]}\n", j->out);
}

static void json_interval(void *self, const struct tm_snapshot *snap)
{
	struct json_sink *j = self;

	fprintf(j->out, "{\"type\":\"interval\",\"pid\":%d", snap->target->pid);
	json_window(j->out, snap->interval, snap->realtime_offset_ns);
	fputs("}\n", j->out);
	fflush(j->out);
}

static void json_summary(void *self, const struct tm_snapshot *snap)
{
	struct json_sink *j = self;

	fprintf(j->out, "{\"type\":\"summary\",\"pid\":%d,\"end_reason\":", snap->target->pid);
	json_string(j->out, snap->end_reason);
	json_window(j->out, snap->total, snap->realtime_offset_ns);
	fputs("}\n", j->out);
	fflush(j->out);
}

static void json_destroy(void *self)
{
	free(self);
}

static const struct sink_ops json_ops = {
	.attached = json_attached,
	.step = json_step,
	.interval = json_interval,
	.summary = json_summary,
	.destroy = json_destroy,
};

int sink_json_new(FILE *out, bool steps, struct sink *s)
{
	struct json_sink *j = calloc(1, sizeof(*j));

	if (!j)
		return -1;
	j->out = out;
	j->steps = steps;
	s->ops = &json_ops;
	s->self = j;
	return 0;
}
