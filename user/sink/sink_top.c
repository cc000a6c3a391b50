// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * `llmtap top`: a full-screen view redrawn every interval with plain ANSI
 * escapes (alternate screen, no scrolling): requests, engine, KV cache,
 * llmtap's own cost, and a row per slot. The terminal size is read at each
 * redraw, so it follows resizes. Keys are read by the attach loop.
 */
#include "model/telemetry.h"
#include "sink/sink.h"
#include "sink/sinks.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lib/text.h"

struct top {
	FILE *out;
	const struct tm_target *target;
	bool paused;
	enum top_sort sort;
	uint64_t cpu_ns_last; /* llmtap's own CPU time at the last frame */
	uint64_t requests_total, generations_total, proxied_total;
	char *line;           /* one screen line, cut to the width */
	struct sink console;  /* prints the summary once the screen is back */
	int cols, rows;
	int row;
};

static const char *const sort_names[] = { "slot", "elapsed", "kv cells" };

static uint64_t self_cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static void screen_size(struct top *t)
{
	struct winsize ws;

	t->cols = 100;
	t->rows = 30;
	if (!ioctl(fileno(t->out), TIOCGWINSZ, &ws) && ws.ws_col && ws.ws_row) {
		t->cols = ws.ws_col;
		t->rows = ws.ws_row;
	}
	if (t->cols > 1000)
		t->cols = 1000;
}

/* One line, cut to the screen's width; lines past the screen's height are dropped. */
__attribute__((format(printf, 2, 3)))
static void put(struct top *t, const char *fmt, ...)
{
	va_list ap;

	if (t->row >= t->rows)
		return;
	va_start(ap, fmt);
	vsnprintf(t->line, (size_t)t->cols + 1, fmt, ap);
	va_end(ap);
	fprintf(t->out, "\033[%d;1H%s\033[K", ++t->row, t->line);
}

/* A count, or "-" when it is unknown. */
static const char *fmt_count(char *buf, size_t len, bool known, uint32_t n)
{
	if (!known)
		return "-";
	snprintf(buf, len, "%u", n);
	return buf;
}

/* Tokens per second over the known counts, or "?" when every count was unknown. */
static const char *fmt_rate(char *buf, size_t len, const struct tm_window *w, uint64_t sum,
			    uint64_t known, uint64_t unknown)
{
	if (!known && unknown)
		return "?";
	snprintf(buf, len, "%.1f", tm_window_rate(w, sum));
	return buf;
}

static int cmp_slot(const void *a, const void *b, void *arg)
{
	const struct tm_slot *x = a, *y = b;
	enum top_sort sort = *(enum top_sort *)arg;

	if (sort == TOP_SORT_ELAPSED && x->since_ns != y->since_ns) /* oldest first, idle last */
		return (x->since_ns ? x->since_ns : UINT64_MAX) < (y->since_ns ? y->since_ns : UINT64_MAX) ? -1 : 1;
	if (sort == TOP_SORT_KV && x->kv_cells != y->kv_cells)
		return x->kv_cells > y->kv_cells ? -1 : 1;
	return x->slot - y->slot;
}

/* ", 1.5 of 12.0 MiB (f16/f16, cpu)": KV bytes used and allocated where known */
static void kv_bytes(char *buf, size_t len, const struct tm_kv_mem *kv, uint64_t cells)
{
	char cap[32] = "";

	snprintf(buf, len, ", bytes ?"); /* context creation not seen, or not a cache llmtap sizes */
	if (!kv->bytes_per_cell)
		return;
	if (kv->cells_capacity)
		snprintf(cap, sizeof(cap), " of %.1f",
			 (double)(kv->cells_capacity * kv->bytes_per_cell) / (1 << 20));
	snprintf(buf, len, ", %.1f%s MiB (%s/%s, %s)",
		 (double)(cells * kv->bytes_per_cell) / (1 << 20), cap,
		 kv->type_k ? kv->type_k : "?", kv->type_v ? kv->type_v : "?",
		 kv->device ? kv->device : "device ?");
}

static void draw_slots(struct top *t, const struct tm_gauges *g, uint64_t now_ns)
{
	static const char *const phases[] = { "idle", "prefill", "generating" };
	struct tm_slot slots[TM_MAX_SLOTS];
	int n = g->n_slots;

	memcpy(slots, g->slots, sizeof(slots[0]) * (size_t)n);
	qsort_r(slots, (size_t)n, sizeof(slots[0]), cmp_slot, &t->sort);
	put(t, "\033[7m%-5s %-11s %8s  %-22s %7s %7s %6s %9s %7s\033[0m", "SLOT", "STATE", "REQUEST",
	    "ROUTE", "PROMPT", "CACHED", "OUT", "ELAPSED", "KV");
	for (int i = 0; i < n; i++) {
		const struct tm_slot *s = &slots[i];
		char req[24] = "", elapsed[24] = "", prompt[16], cached[16], out[16];
		bool prompt_known = s->request_id && (s->known & REQ_KNOWN_PROMPT);
		bool out_known = s->request_id && (s->known & REQ_KNOWN_OUTPUT);

		if (s->request_id)
			snprintf(req, sizeof(req), "%llu", (unsigned long long)s->request_id);
		if (s->since_ns && now_ns > s->since_ns)
			snprintf(elapsed, sizeof(elapsed), "%.2fs", (double)(now_ns - s->since_ns) / 1e9);
		/* counts llmtap does not know (or a slot without a request) show "-" */
		put(t, "%5d %-11s %8s  %-22.22s %7s %7s %6s %9s %7llu", s->slot,
		    phases[s->phase >= 0 && s->phase <= 2 ? s->phase : 0], req, s->route,
		    fmt_count(prompt, sizeof(prompt), prompt_known, s->prompt_tokens),
		    fmt_count(cached, sizeof(cached), prompt_known, s->cached_tokens),
		    fmt_count(out, sizeof(out), out_known, s->output_tokens), elapsed,
		    (unsigned long long)s->kv_cells);
	}
	if (!n)
		put(t, "  (no slot has run a task since llmtap attached)");
}

static void top_interval(void *self, const struct tm_snapshot *snap)
{
	struct top *t = self;
	const struct tm_window *w = snap->interval;
	const struct tm_gauges *g = snap->gauges;
	uint64_t cpu = self_cpu_ns(), secs_ns = w->end_ns - w->start_ns;
	double cpu_pct = secs_ns ? (double)(cpu - t->cpu_ns_last) / (double)secs_ns * 100 : 0;
	char clock[16], kv[64] = "", comm[64], model[256], in[24], out[24], more[64] = "", queued[16] = "?";
	char mem[96];
	char q[5][24];
	time_t now = time(NULL);
	struct tm tm;

	t->cpu_ns_last = cpu;
	t->requests_total += w->requests;
	t->generations_total += w->generations;
	t->proxied_total += w->proxied;
	if (t->paused || !g)
		return;
	localtime_r(&now, &tm);
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	screen_size(t);
	t->row = 0;
	fputs("\033[H", t->out);
	put(t, "\033[1mllmtap top\033[0m  PID %d (%s)  model %s  layers %s   %s", t->target->pid,
	    term_safe(comm, sizeof(comm), t->target->comm),
	    term_safe(model, sizeof(model),
		      t->target->model && t->target->model[0] ? t->target->model : "?"),
	    t->target->layers, clock);
	put(t, "keys: q quit  p pause  s sort (by %s)", sort_names[t->sort]);
	put(t, "%s", "");
	if (t->generations_total)
		snprintf(more, sizeof(more), "  generations %llu", (unsigned long long)t->generations_total);
	if (t->proxied_total)
		snprintf(more + strlen(more), sizeof(more) - strlen(more), "  proxied %llu",
			 (unsigned long long)t->proxied_total);
	if (g->queue_known)
		snprintf(queued, sizeof(queued), "%u", g->queued_tasks);
	put(t, "requests  %6.1f/s  total %-6llu active %-4u queued %-4s failed %-4llu  tokens/s in %7s out %7s%s",
	    tm_window_rate(w, w->requests), (unsigned long long)t->requests_total, g->active_requests,
	    queued, (unsigned long long)w->requests_failed,
	    fmt_rate(in, sizeof(in), w, w->input_tokens, w->input_known, w->input_unknown),
	    fmt_rate(out, sizeof(out), w, w->output_tokens, w->output_known, w->output_unknown), more);
	put(t, "latency   ttft p50 %s p99 %s   tpot p50 %s p99 %s   queue p99 %s",
	    hist_format_quantile(q[0], sizeof(q[0]), &w->ttft_ns, 0.5, 1e9, 3, "s"),
	    hist_format_quantile(q[1], sizeof(q[1]), &w->ttft_ns, 0.99, 1e9, 3, "s"),
	    hist_format_quantile(q[2], sizeof(q[2]), &w->tpot_ns, 0.5, 1e6, 2, "ms"),
	    hist_format_quantile(q[3], sizeof(q[3]), &w->tpot_ns, 0.99, 1e6, 2, "ms"),
	    hist_format_quantile(q[4], sizeof(q[4]), &w->queue_ns, 0.99, 1e9, 3, "s"));
	put(t, "engine    %6.1f steps/s  %7.1f tokens/s   step p50 %s p99 %s   batch p50 %llu max %llu",
	    tm_window_rate(w, w->steps), tm_window_rate(w, w->tokens),
	    hist_format_quantile(q[0], sizeof(q[0]), &w->duration_ns, 0.5, 1e6, 3, "ms"),
	    hist_format_quantile(q[1], sizeof(q[1]), &w->duration_ns, 0.99, 1e6, 3, "ms"),
	    (unsigned long long)hist_quantile(&w->batch_tokens, 0.5),
	    (unsigned long long)w->batch_tokens.max);
	if (g->n_ctx)
		snprintf(kv, sizeof(kv), " (%.1f%% of %u)", (double)g->kv_cells * 100 / g->n_ctx, g->n_ctx);
	kv_bytes(mem, sizeof(mem), &g->kv_mem, g->kv_cells);
	put(t, "kv cache  %llu cells%s%s in %u busy slots   context shifts %llu   cache loads %llu saves %llu",
	    (unsigned long long)g->kv_cells, kv, mem, g->busy_slots,
	    (unsigned long long)snap->total->context_shifts, (unsigned long long)snap->total->cache_loads,
	    (unsigned long long)snap->total->cache_saves);
	if (g->rss_bytes)
		snprintf(in, sizeof(in), "%.0f MiB", (double)g->rss_bytes / (1 << 20));
	put(t, "llmtap    cpu %.2f%%  lost events %llu   target rss %s", cpu_pct,
	    (unsigned long long)snap->total->lost, g->rss_bytes ? in : "?");
	put(t, "%s", "");
	draw_slots(t, g, w->end_ns);
	fputs("\033[J", t->out); /* clear what the last frame had below */
	fflush(t->out);
}

static void top_attached(void *self, const struct tm_target *target)
{
	struct top *t = self;

	t->target = target;
	t->cpu_ns_last = self_cpu_ns();
	/* the alternate screen, the cursor hidden */
	fputs("\033[?1049h\033[?25l\033[H\033[2J", t->out);
	fflush(t->out);
}

static void top_summary(void *self, const struct tm_snapshot *snap)
{
	struct top *t = self;

	fputs("\033[?25h\033[?1049l", t->out); /* back to the normal screen */
	fflush(t->out);
	t->console.ops->summary(t->console.self, snap);
}

static void top_destroy(void *self)
{
	struct top *t = self;

	t->console.ops->destroy(t->console.self);
	free(t->line);
	free(t);
}

static const struct sink_ops top_ops = {
	.attached = top_attached,
	.interval = top_interval,
	.summary = top_summary,
	.destroy = top_destroy,
};

int sink_top_new(FILE *out, struct sink *s, char *err, size_t errlen)
{
	struct top *t = calloc(1, sizeof(*t));
	int ret;

	if (!t || !(t->line = malloc(1001))) {
		snprintf(err, errlen, "the top view: %s", strerror(errno));
		free(t);
		return -ENOMEM;
	}
	ret = sink_console_new(out, &t->console, err, errlen);
	if (ret) {
		free(t->line);
		free(t);
		return ret;
	}
	t->out = out;
	s->ops = &top_ops;
	s->self = t;
	return 0;
}

void sink_top_key(struct sink *s, int key)
{
	struct top *t = s->self;

	if (key == 'p')
		t->paused = !t->paused;
	else if (key == 's')
		t->sort = (enum top_sort)((t->sort + 1) % TOP_SORT_MAX);
	else
		return;
	/* say so now; the next frame follows at the next interval */
	fprintf(t->out, "\033[2;1Hkeys: q quit  p pause  s sort (by %s)%s\033[K", sort_names[t->sort],
		t->paused ? "   \033[7m PAUSED \033[0m" : "");
	fflush(t->out);
}
