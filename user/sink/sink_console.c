// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Console sink: a live line per interval and a summary when tracing ends. */
#include "sink/sinks.h"
#include "model/telemetry.h"
#include "sink/sink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/text.h"

struct console {
	FILE *out;
	/* the last model load and context creation, repeated in the summary */
	bool loaded, have_ctx;
	double load_s;
	bool load_ok;
	uint32_t ctx[4];
	char off[256]; /* the layers turned off and why, for the summary */
};

/* "  finished    stop 3, length 1, cancelled 0, error 0, unknown 2" when any generated */
static void print_finish(FILE *out, const struct tm_window *w)
{
	uint64_t all = 0;

	for (int f = 0; f < FINISH_MAX; f++)
		all += w->finish[f];
	if (!all)
		return;
	fputs("  finished   ", out);
	for (int f = FINISH_STOP; f < FINISH_MAX; f++)
		fprintf(out, " %s %llu,", finish_reason_name(f), (unsigned long long)w->finish[f]);
	fprintf(out, " unknown %llu\n", (unsigned long long)w->finish[FINISH_UNKNOWN]);
}

static void print_mix(FILE *out, const struct tm_window *w)
{
	bool any = false;

	for (int c = 0; c < BATCH_CLASSES; c++) {
		if (!w->batch_mix[c])
			continue;
		fprintf(out, "%s%s:%llu", any ? " " : "", batch_class_name(c),
			(unsigned long long)w->batch_mix[c]);
		any = true;
	}
	if (!any)
		fputs("-", out);
}

/* A token sum over the known counts, or "?" when every count was unknown. */
static const char *fmt_tokens(char *buf, size_t len, uint64_t sum, uint64_t known,
			      uint64_t unknown)
{
	if (!known && unknown)
		return "?";
	snprintf(buf, len, "%llu", (unsigned long long)sum);
	return buf;
}

/* The inference requests and generations with a token count llmtap did not measure. */
static uint64_t tokens_unknown(const struct tm_window *w)
{
	return w->input_unknown > w->output_unknown ? w->input_unknown : w->output_unknown;
}

static void print_requests(FILE *out, const struct tm_window *w, const struct tm_gauges *g)
{
	char p50[32], p99[32], tpot[32], in[24], outs[24];

	char queued[16] = "?";

	if (g && g->queue_known)
		snprintf(queued, sizeof(queued), "%u", g->queued_tasks);
	fprintf(out, "          requests %5.1f/s  active %u  queued %s  slots busy %u  "
		     "ttft p50 %s p99 %s  tpot p50 %s  tokens in %s out %s",
		tm_window_rate(w, w->requests), g ? g->active_requests : 0, queued, g ? g->busy_slots : 0,
		hist_format_quantile(p50, sizeof(p50), &w->ttft_ns, 0.5, 1e9, 3, " s"),
		hist_format_quantile(p99, sizeof(p99), &w->ttft_ns, 0.99, 1e9, 3, " s"),
		hist_format_quantile(tpot, sizeof(tpot), &w->tpot_ns, 0.5, 1e6, 2, " ms"),
		fmt_tokens(in, sizeof(in), w->input_tokens, w->input_known, w->input_unknown),
		fmt_tokens(outs, sizeof(outs), w->output_tokens, w->output_known, w->output_unknown));
	if (tokens_unknown(w))
		fprintf(out, " (unknown for %llu)", (unsigned long long)tokens_unknown(w));
	fprintf(out, "  failed %llu", (unsigned long long)w->requests_failed);
	if (w->generations)
		fprintf(out, "  generations %.1f/s", tm_window_rate(w, w->generations));
	if (w->proxied)
		fprintf(out, "  proxied %llu", (unsigned long long)w->proxied);
	fputc('\n', out);
}

static void console_attached(void *self, const struct tm_target *t)
{
	struct console *c = self;
	char comm[64], lib[512], model[256], arch[64], ver[96];

	/* the target's own strings: no control characters reach the terminal */
	fprintf(c->out, "llmtap: tracing PID %d (%s): llama.cpp %s%sin %s%s; layers: %s\n", t->pid,
		term_safe(comm, sizeof(comm), t->comm),
		t->llama_version ? term_safe(ver, sizeof(ver), t->llama_version) : "",
		t->llama_version ? " " : "", term_safe(lib, sizeof(lib), t->library),
		t->in_executable ? " (linked into the executable)" : "", t->layers);
	if (t->model && t->model[0])
		fprintf(c->out, "llmtap: model %s%s%s%s\n", term_safe(model, sizeof(model), t->model),
			t->model_arch && t->model_arch[0] ? " (" : "",
			t->model_arch && t->model_arch[0] ? term_safe(arch, sizeof(arch), t->model_arch) : "",
			t->model_arch && t->model_arch[0] ? ")" : "");
	fprintf(c->out, "llmtap: a line per interval; Ctrl-C for the summary\n");
	fflush(c->out);
}

static void console_interval(void *self, const struct tm_snapshot *snap)
{
	const struct tm_window *w = snap->interval;
	struct console *c = self;
	time_t now = time(NULL);
	struct tm tm;
	char ts[16];

	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	if (!w->steps) { /* a router never decodes: its requests line still follows */
		fprintf(c->out, "%s  idle: no engine steps  lost %llu\n", ts,
			(unsigned long long)w->lost);
	} else {
		fprintf(c->out, "%s  decode %6.1f/s  tokens %7.1f/s  p50 %7.3f ms  p99 %7.3f ms  batch ",
			ts, tm_window_rate(w, w->steps), tm_window_rate(w, w->tokens),
			(double)hist_quantile(&w->duration_ns, 0.50) / 1e6,
			(double)hist_quantile(&w->duration_ns, 0.99) / 1e6);
		print_mix(c->out, w);
		fprintf(c->out, "  errors %llu  lost %llu\n", (unsigned long long)w->step_errors,
			(unsigned long long)w->lost);
	}
	if (w->requests || w->generations || w->proxied ||
	    (snap->gauges && snap->gauges->active_requests))
		print_requests(c->out, w, snap->gauges);
	fflush(c->out);
}

static void console_summary(void *self, const struct tm_snapshot *snap)
{
	const struct tm_window *w = snap->total;
	const struct hist *d = &w->duration_ns, *b = &w->batch_tokens;
	struct console *c = self;
	char comm[64];

	fprintf(c->out, "\nllmtap summary: PID %d (%s), %.1f s traced, ended: %s\n",
		snap->target->pid, term_safe(comm, sizeof(comm), snap->target->comm),
		(double)(w->end_ns - w->start_ns) / 1e9,
		snap->end_reason ? snap->end_reason : "?");
	fprintf(c->out, "  steps       %llu (prefill %llu, generate %llu, mixed %llu), failed %llu\n",
		(unsigned long long)w->steps, (unsigned long long)w->by_kind[STEP_PREFILL],
		(unsigned long long)w->by_kind[STEP_GENERATE],
		(unsigned long long)w->by_kind[STEP_MIXED], (unsigned long long)w->step_errors);
	fprintf(c->out, "  tokens      %llu in batches, %llu outputs\n",
		(unsigned long long)w->tokens, (unsigned long long)w->outputs);
	fprintf(c->out, "  throughput  %.1f steps/s, %.1f tokens/s\n", tm_window_rate(w, w->steps),
		tm_window_rate(w, w->tokens));
	if (d->count)
		fprintf(c->out,
			"  step time   p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  mean %.3f ms\n",
			(double)hist_quantile(d, 0.5) / 1e6, (double)hist_quantile(d, 0.9) / 1e6,
			(double)hist_quantile(d, 0.99) / 1e6, (double)d->max / 1e6,
			(double)d->sum / (double)d->count / 1e6);
	if (b->count)
		fprintf(c->out, "  batch size  p50 %llu  p99 %llu  max %llu  mean %.1f\n",
			(unsigned long long)hist_quantile(b, 0.5),
			(unsigned long long)hist_quantile(b, 0.99), (unsigned long long)b->max,
			(double)b->sum / (double)b->count);
	fputs("  batch mix   ", c->out);
	print_mix(c->out, w);
	fprintf(c->out, "\n  lost events %llu\n", (unsigned long long)w->lost);
	if (w->requests || w->generations) {
		const struct hist *r = &w->req_duration_ns, *t = &w->ttft_ns;
		char in[24], cached[24], outs[24], q[5][32];

		fprintf(c->out, "  requests    %llu (failed %llu)", (unsigned long long)w->requests,
			(unsigned long long)w->requests_failed);
		if (w->generations)
			fprintf(c->out, ", generations %llu", (unsigned long long)w->generations);
		fprintf(c->out, ", tokens in %s (cached %s), out %s",
			fmt_tokens(in, sizeof(in), w->input_tokens, w->input_known, w->input_unknown),
			fmt_tokens(cached, sizeof(cached), w->cached_tokens, w->input_known,
				   w->input_unknown),
			fmt_tokens(outs, sizeof(outs), w->output_tokens, w->output_known,
				   w->output_unknown));
		if (tokens_unknown(w))
			fprintf(c->out, " (unknown for %llu)", (unsigned long long)tokens_unknown(w));
		fprintf(c->out, ", context shifts %llu\n", (unsigned long long)w->context_shifts);
		print_finish(c->out, w);
		fprintf(c->out, "  duration    p50 %s  p99 %s;  ttft p50 %s  p99 %s;  tpot p50 %s\n",
			hist_format_quantile(q[0], sizeof(q[0]), r, 0.5, 1e9, 3, " s"),
			hist_format_quantile(q[1], sizeof(q[1]), r, 0.99, 1e9, 3, " s"),
			hist_format_quantile(q[2], sizeof(q[2]), t, 0.5, 1e9, 3, " s"),
			hist_format_quantile(q[3], sizeof(q[3]), t, 0.99, 1e9, 3, " s"),
			hist_format_quantile(q[4], sizeof(q[4]), &w->tpot_ns, 0.5, 1e6, 2, " ms"));
	}
	if (w->proxied)
		fprintf(c->out, "  proxied     %llu requests (each counted by the server it was passed to)\n",
			(unsigned long long)w->proxied);
	if (c->off[0])
		fprintf(c->out, "  layers      %s; turned off: %s\n", snap->target->layers, c->off);
	if (c->loaded)
		fprintf(c->out, "  model load  %.3f s%s\n", c->load_s, c->load_ok ? "" : " (failed)");
	if (c->have_ctx)
		fprintf(c->out, "  context     n_ctx %u, n_batch %u, n_ubatch %u, n_seq_max %u\n",
			c->ctx[0], c->ctx[1], c->ctx[2], c->ctx[3]);
	fflush(c->out);
}

/* The warning itself went to stderr as it happened; the summary repeats it. */
static void console_layer_off(void *self, const struct tm_target *t, const char *layer,
			      const char *why)
{
	struct console *c = self;
	size_t used = strlen(c->off);
	char safe[160];

	(void)t;
	snprintf(c->off + used, sizeof(c->off) - used, "%s%s (%s)", used ? ", " : "", layer,
		 term_safe(safe, sizeof(safe), why));
}

static void console_destroy(void *self)
{
	free(self);
}

/* Model load and context creation, when llmtap saw them (attached first: run, daemon). */
static void console_engine_event(void *self, const struct engine_event *e, int64_t off)
{
	struct console *c = self;
	char path[512];

	(void)off;
	if (e->kind == EE_MODEL_LOAD) {
		c->loaded = true;
		c->load_ok = e->ok;
		c->load_s = (double)e->duration_ns / 1e9;
		fprintf(c->out, "llmtap: model load %s in %.3f s: %s\n", e->ok ? "done" : "FAILED",
			c->load_s, term_safe(path, sizeof(path), e->text ? e->text : "?"));
	} else if (e->kind == EE_CONTEXT_INIT && e->ok) {
		c->have_ctx = true;
		for (int i = 0; i < 4; i++)
			c->ctx[i] = e->params[i];
		fprintf(c->out, "llmtap: context created in %.3f s: n_ctx %u, n_batch %u, n_ubatch %u, "
			"n_seq_max %u\n", (double)e->duration_ns / 1e9, e->params[0], e->params[1],
			e->params[2], e->params[3]);
	} else {
		return;
	}
	fflush(c->out);
}

static const struct sink_ops console_ops = {
	.attached = console_attached,
	.engine_event = console_engine_event,
	.interval = console_interval,
	.summary = console_summary,
	.layer_off = console_layer_off,
	.destroy = console_destroy,
};

int sink_console_new(FILE *out, struct sink *s, char *err, size_t errlen)
{
	struct console *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "the console view: %s", strerror(errno));
		return -ENOMEM;
	}
	c->out = out;
	s->ops = &console_ops;
	s->self = c;
	return 0;
}
