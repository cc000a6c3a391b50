// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Trace-event sink (`llmtap record`): a Chrome / Perfetto trace-event JSON file.
 * Tracks: one per slot (each request's prefill and generation inside its slot
 * span), one for engine steps, counters for batch size and KV cells, async
 * queue waits, and instant markers for context shifts and failed requests.
 * Events are streamed to PATH.tmp as they come, so memory stays flat however
 * long the recording; the file is renamed into place when it is complete.
 */
#include "model/telemetry.h"
#include "sink/sink.h"
#include "sink/sinks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/json.h"
#include "sink/trace_schema.h"

#define TRACK_ENGINE 1
#define TRACK_HTTP 2     /* requests that never reached a slot */
#define TRACK_SLOT0 1000 /* slot N is TRACK_SLOT0 + N */
#define TRACK_SEQ0 2000  /* an embedder's sequence N is TRACK_SEQ0 + N */

/* Tail capture: the last window of events, kept in memory until a trigger dumps them. */
struct tail_event {
	struct tail_event *next;
	uint64_t at_ns; /* CLOCK_MONOTONIC when it was written */
	size_t len;
	char text[];
};

struct tail {
	char *dir;
	uint64_t window_ns;
	uint64_t ttft_ns;  /* dump when a request's TTFT is above this, 0: never */
	size_t max_bytes;  /* the window's events never take more than this */
	char *buf;         /* open_memstream backing of the sink's out */
	size_t len;
	char *header;      /* the file's opening, written at attach */
	struct tail_event *meta, *meta_last; /* track names: in every dump */
	struct tail_event *head, *last;      /* the window, oldest first */
	size_t bytes;
	bool in_meta, cur_meta;
	unsigned int dumps;
	uint64_t last_dump_ns;
};

struct trace_sink {
	FILE *out;
	struct tail *tail; /* NULL: a recording streamed to a file */
	char *path;
	char *tmp_path;
	int pid;
	char model[256]; /* a generation's span name */
	uint64_t events;
	bool slot_named[LLMTAP_MAX_SEQ];
	bool seq_named[LLMTAP_MAX_SEQ];
	bool failed; /* a write failed: the file is not renamed into place */
	uint64_t t0_ns; /* CLOCK_MONOTONIC at the start: ts 0 */
};

/*
 * Microseconds since the recording began (otherData.start_unix_nano): small
 * numbers keep doubles exact, so the sinks' Unix-time offsets are not used here.
 */
static double us(const struct trace_sink *t, uint64_t mono_ns)
{
	return ((double)(int64_t)(mono_ns - t->t0_ns)) / 1e3;
}

static void tail_free_list(struct tail_event *e)
{
	while (e) {
		struct tail_event *next = e->next;

		free(e);
		e = next;
	}
}

/* Move what was written since the last call into the window (or the metadata). */
static void tail_harvest(struct trace_sink *t)
{
	struct tail *tl = t->tail;
	uint64_t now = monotonic_ns();
	struct tail_event *e;

	if (fflush(t->out) || !tl->len)
		return;
	e = malloc(sizeof(*e) + tl->len);
	if (e) {
		e->next = NULL;
		e->at_ns = now;
		e->len = tl->len;
		memcpy(e->text, tl->buf, tl->len);
		if (tl->cur_meta) {
			*(tl->meta_last ? &tl->meta_last->next : &tl->meta) = e;
			tl->meta_last = e;
		} else {
			*(tl->last ? &tl->last->next : &tl->head) = e;
			tl->last = e;
			tl->bytes += e->len;
		}
	}
	rewind(t->out);
	tl->len = 0;
	/* keep the window, and the memory bound */
	while (tl->head && (tl->head->at_ns + tl->window_ns < now || tl->bytes > tl->max_bytes)) {
		e = tl->head;
		tl->head = e->next;
		if (!tl->head)
			tl->last = NULL;
		tl->bytes -= e->len;
		free(e);
	}
}

/* Every event but the first is preceded by a comma (in a tail, the dump adds them). */
static FILE *begin(struct trace_sink *t)
{
	if (t->tail) {
		tail_harvest(t);
		t->tail->cur_meta = t->tail->in_meta;
		t->events++;
		return t->out;
	}
	fputs(t->events++ ? ",\n" : "\n", t->out);
	return t->out;
}

static void thread_name(struct trace_sink *t, int tid, const char *name, int sort)
{
	if (t->tail)
		t->tail->in_meta = true;
	fprintf(begin(t), "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":",
		t->pid, tid);
	json_write_string(t->out, name);
	fputs("}}", t->out);
	fprintf(begin(t), "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_sort_index\","
			  "\"args\":{\"sort_index\":%d}}", t->pid, tid, sort);
	if (t->tail) {
		tail_harvest(t);
		t->tail->in_meta = false;
	}
}

static int slot_track(struct trace_sink *t, int slot)
{
	char name[32];

	if (slot < 0 || slot >= LLMTAP_MAX_SEQ)
		return TRACK_HTTP;
	if (!t->slot_named[slot]) {
		snprintf(name, sizeof(name), TRACE_TRACK_SLOT "%d", slot);
		thread_name(t, TRACK_SLOT0 + slot, name, 10 + slot);
		t->slot_named[slot] = true;
	}
	return TRACK_SLOT0 + slot;
}

/* An embedder's generations: a track per sequence (no slots, no queue there). */
static int seq_track(struct trace_sink *t, int seq)
{
	char name[32];

	if (seq < 0 || seq >= LLMTAP_MAX_SEQ)
		return TRACK_HTTP;
	if (!t->seq_named[seq]) {
		snprintf(name, sizeof(name), TRACE_TRACK_SEQ "%d", seq);
		thread_name(t, TRACK_SEQ0 + seq, name, 10 + LLMTAP_MAX_SEQ + seq);
		t->seq_named[seq] = true;
	}
	return TRACK_SEQ0 + seq;
}

static void complete(struct trace_sink *t, int tid, const char *name, const char *cat,
		     uint64_t start, uint64_t end)
{
	fprintf(begin(t), "{\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"cat\":\"%s\",\"name\":", t->pid, tid,
		cat);
	json_write_string(t->out, name);
	fprintf(t->out, ",\"ts\":%.3f,\"dur\":%.3f", us(t, start),
		(double)(end > start ? end - start : 0) / 1e3);
}

static void trace_attached(void *self, const struct tm_target *tg)
{
	struct trace_sink *t = self;
	char name[128];

	t->pid = tg->pid;
	snprintf(t->model, sizeof(t->model), "%s", tg->model ? tg->model : "");
	t->t0_ns = monotonic_ns();
	fprintf(t->out, "{\"displayTimeUnit\":\"ms\",\"otherData\":{"
		TRACE_KEY(TRACE_PRODUCER) TRACE_STR("llmtap " LLMTAP_VERSION) ","
		TRACE_KEY(TRACE_START_UNIX_NANO) "%lld," TRACE_KEY(TRACE_LIBRARY),
		(long long)(t->t0_ns + realtime_offset_ns()));
	json_write_string(t->out, tg->library);
	fputs("," TRACE_KEY(TRACE_MODEL), t->out);
	json_write_string(t->out, tg->model ? tg->model : "");
	fputs("},\"traceEvents\":[", t->out);
	if (t->tail) { /* the opening of every dump */
		fflush(t->out);
		t->tail->header = strndup(t->tail->buf, t->tail->len);
		rewind(t->out);
		t->tail->len = 0;
		t->tail->in_meta = true;
	}
	snprintf(name, sizeof(name), "%s (PID %d)", tg->comm, tg->pid);
	fprintf(begin(t), "{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_name\",\"args\":{\"name\":",
		t->pid);
	json_write_string(t->out, name);
	fputs("}}", t->out);
	thread_name(t, TRACK_ENGINE, TRACE_TRACK_ENGINE, 0);
	thread_name(t, TRACK_HTTP, TRACE_TRACK_HTTP, 1);
}

static void tail_write(FILE *f, const struct tail_event *e, bool *first)
{
	for (; e; e = e->next) {
		fputs(*first ? "\n" : ",\n", f);
		fwrite(e->text, 1, e->len, f);
		*first = false;
	}
}

static void tail_dump(struct trace_sink *t, const char *reason)
{
	struct tail *tl = t->tail;
	char stamp[32], *path = NULL;
	time_t now = time(NULL);
	bool first = true;
	struct tm tm;
	FILE *f;

	if (!tl || !tl->header)
		return;
	tail_harvest(t);
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	if (asprintf(&path, "%s/llmtap-tail-%d-%s-%u.json", tl->dir, t->pid, stamp, ++tl->dumps) < 0)
		return;
	f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "llmtap: cannot write the tail capture %s: %s\n", path, strerror(errno));
		free(path);
		return;
	}
	fputs(tl->header, f);
	tail_write(f, tl->meta, &first);
	tail_write(f, tl->head, &first);
	fputs("\n]}\n", f);
	if (fclose(f))
		fprintf(stderr, "llmtap: writing the tail capture %s failed\n", path);
	else
		fprintf(stderr, "llmtap: %s: wrote the last %.0f s to %s\n", reason,
			(double)tl->window_ns / 1e9, path);
	tl->last_dump_ns = monotonic_ns();
	free(path);
}

void sink_tail_dump(struct sink *s, const char *reason)
{
	tail_dump(s->self, reason);
}

static const char *kind_name(enum step_kind k)
{
	switch (k) {
	case STEP_PREFILL: return TRACE_KIND_PREFILL;
	case STEP_GENERATE: return TRACE_KIND_GENERATE;
	case STEP_MIXED: return TRACE_KIND_MIXED;
	default: return TRACE_KIND_UNKNOWN;
	}
}

static void trace_step(void *self, const struct step *s, int64_t off __attribute__((unused)))
{
	struct trace_sink *t = self;

	complete(t, TRACK_ENGINE, step_op_name(s->op), TRACE_CAT_STEP, s->start_ns, s->end_ns);
	fprintf(t->out, ",\"args\":{" TRACE_KEY(TRACE_ARG_KIND) "\"%s\"," TRACE_KEY(TRACE_ARG_N_TOKENS)
			"%d," TRACE_KEY(TRACE_ARG_N_SEQS) "%u," TRACE_KEY(TRACE_ARG_N_OUTPUTS) "%u,"
			TRACE_KEY(TRACE_ARG_RET) "%d",
		kind_name(s->kind), s->n_tokens, s->n_seqs, s->n_outputs, s->ret);
	if (step_compute_known(s))
		fprintf(t->out, "," TRACE_KEY(TRACE_ARG_COMPUTE_MS) "%.6f",
			(double)step_compute_ns(s) / 1e6);
	fputs("}}", t->out);
	fprintf(begin(t), "{\"ph\":\"C\",\"pid\":%d,\"name\":" TRACE_STR(TRACE_BATCH_TOKENS)
			  ",\"ts\":%.3f,\"args\":{" TRACE_KEY(TRACE_ARG_TOKENS) "%d}}",
		t->pid, us(t, s->start_ns), s->n_tokens);
}

static const char *req_kind_arg(enum req_kind k)
{
	switch (k) {
	case REQ_GENERATION: return TRACE_REQ_GENERATION;
	case REQ_PROXY: return TRACE_REQ_PROXY;
	default: return TRACE_REQ_HTTP;
	}
}

/* A request's args: what llmtap did not measure is left out (trace_schema.h). */
static void request_args(struct trace_sink *t, const struct req_span *r)
{
	const char *op = req_operation(r);

	fprintf(t->out, ",\"args\":{" TRACE_KEY(TRACE_ARG_REQUEST) "%llu," TRACE_KEY(TRACE_ARG_REQ_KIND)
			"\"%s\"," TRACE_KEY(TRACE_ARG_ATTRIBUTION) "\"%s\",",
		(unsigned long long)r->id, req_kind_arg(r->kind), req_attribution_name(r->attribution));
	if (op)
		fprintf(t->out, TRACE_KEY(TRACE_ARG_OPERATION) "\"%s\",", op);
	fprintf(t->out, TRACE_KEY(TRACE_ARG_STATUS) "%d," TRACE_KEY(TRACE_ARG_STREAM) "%s,"
			TRACE_KEY(TRACE_ARG_CLIENT_PORT) "%d,",
		r->status, r->stream ? "true" : "false", r->client_port);
	if (req_knows(r, REQ_KNOWN_PROMPT))
		fprintf(t->out, TRACE_KEY(TRACE_ARG_PROMPT_TOKENS) "%u,"
				TRACE_KEY(TRACE_ARG_CACHED_TOKENS) "%u,",
			r->prompt_tokens, r->cached_tokens);
	if (req_knows(r, REQ_KNOWN_OUTPUT))
		fprintf(t->out, TRACE_KEY(TRACE_ARG_OUTPUT_TOKENS) "%u,", r->output_tokens);
	if (req_ttft_ns(r))
		fprintf(t->out, TRACE_KEY(TRACE_ARG_TTFT_MS) "%.3f,", (double)req_ttft_ns(r) / 1e6);
	if (req_has_queue(r))
		fprintf(t->out, TRACE_KEY(TRACE_ARG_QUEUE_MS) "%.3f,", (double)req_queue_ns(r) / 1e6);
	if (req_finish(r) != FINISH_UNKNOWN)
		fprintf(t->out, TRACE_KEY(TRACE_ARG_FINISH) "\"%s\",", finish_reason_name(req_finish(r)));
	fprintf(t->out, TRACE_KEY(TRACE_ARG_HTTP_MS) "%.3f}}",
		(double)(r->end_ns > r->start_ns ? r->end_ns - r->start_ns : 0) / 1e6);
}

static void trace_request(void *self, const struct req_span *r,
			  int64_t off __attribute__((unused)))
{
	struct trace_sink *t = self;
	int track = r->kind == REQ_GENERATION && r->slot < 0 ? seq_track(t, r->seq) :
							      slot_track(t, r->slot);
	uint64_t start = r->launch_ns ? r->launch_ns : r->start_ns;
	uint64_t end = r->final_ns ? r->final_ns : r->end_ns;
	char name[sizeof(r->method) + sizeof(t->model) + 64];

	req_span_name(r, t->model, name, sizeof(name));
	if (r->deferred && r->launch_ns > r->enqueue_ns) { /* waits overlap: async events */
		fprintf(begin(t), "{\"ph\":\"b\",\"pid\":%d,\"tid\":%d,\"cat\":" TRACE_STR(TRACE_CAT_QUEUE)
				  ",\"name\":" TRACE_STR(TRACE_QUEUED) ",\"id\":%llu,\"ts\":%.3f}",
			t->pid, track, (unsigned long long)r->id, us(t, r->enqueue_ns));
		fprintf(begin(t), "{\"ph\":\"e\",\"pid\":%d,\"tid\":%d,\"cat\":" TRACE_STR(TRACE_CAT_QUEUE)
				  ",\"name\":" TRACE_STR(TRACE_QUEUED) ",\"id\":%llu,\"ts\":%.3f}",
			t->pid, track, (unsigned long long)r->id, us(t, r->launch_ns));
	}
	complete(t, track, name, TRACE_CAT_REQUEST, start, end);
	request_args(t, r);
	if (r->launch_ns && r->first_token_ns >= r->launch_ns) {
		complete(t, track, TRACE_PREFILL, TRACE_CAT_PHASE, r->launch_ns, r->first_token_ns);
		fputs("}", t->out);
	}
	if (r->first_token_ns && r->final_ns > r->first_token_ns) {
		complete(t, track, TRACE_GENERATION, TRACE_CAT_PHASE, r->first_token_ns, r->final_ns);
		fputs("}", t->out);
	}
	if (t->tail && t->tail->ttft_ns && req_ttft_ns(r) > t->tail->ttft_ns &&
	    (!t->tail->last_dump_ns || monotonic_ns() - t->tail->last_dump_ns >= t->tail->window_ns))
		tail_dump(t, "time to first token above the threshold");
	if (req_failed(r)) {
		fprintf(begin(t), "{\"ph\":\"i\",\"s\":\"t\",\"pid\":%d,\"tid\":%d,\"name\":"
				  TRACE_STR(TRACE_FAILED) ",\"ts\":%.3f,\"args\":{" TRACE_KEY(TRACE_ARG_STATUS)
				  "%d," TRACE_KEY(TRACE_ARG_COMPLETE) "%s}}",
			t->pid, track, us(t, end), r->status, r->complete ? "true" : "false");
	}
}

static void trace_engine_event(void *self, const struct engine_event *e,
			       int64_t off __attribute__((unused)))
{
	struct trace_sink *t = self;
	const char *name;
	int track;

	switch (e->kind) {
	case EE_CONTEXT_SHIFT: name = TRACE_CONTEXT_SHIFT; break;
	case EE_CACHE_SAVE: name = TRACE_CACHE_SAVE; break;
	case EE_CACHE_LOAD: name = TRACE_CACHE_LOAD; break;
	default: return;
	}
	track = slot_track(t, e->seq); /* may name the track: before this event begins */
	fprintf(begin(t), "{\"ph\":\"i\",\"s\":\"t\",\"pid\":%d,\"tid\":%d,\"name\":\"%s\",\"ts\":%.3f,"
			  "\"args\":{" TRACE_KEY(TRACE_ARG_VALUE) "%lld}}",
		t->pid, track, name, us(t, e->ts_ns), (long long)e->value);
}

static void trace_interval(void *self, const struct tm_snapshot *snap)
{
	struct trace_sink *t = self;

	const struct tm_kv_mem *kv;
	char bytes[96] = "";

	if (!snap->gauges)
		return;
	kv = &snap->gauges->kv_mem;
	if (kv->bytes_per_cell)
		snprintf(bytes, sizeof(bytes), "," TRACE_KEY(TRACE_ARG_BYTES) "%llu",
			 (unsigned long long)(snap->gauges->kv_cells * kv->bytes_per_cell));
	if (kv->bytes_per_cell && kv->cells_capacity)
		snprintf(bytes + strlen(bytes), sizeof(bytes) - strlen(bytes),
			 "," TRACE_KEY(TRACE_ARG_CAPACITY) "%llu",
			 (unsigned long long)(kv->cells_capacity * kv->bytes_per_cell));
	fprintf(begin(t), "{\"ph\":\"C\",\"pid\":%d,\"name\":" TRACE_STR(TRACE_KV_CELLS)
			  ",\"ts\":%.3f,\"args\":{" TRACE_KEY(TRACE_ARG_CELLS) "%llu%s}}",
		t->pid, us(t, snap->now_ns), (unsigned long long)snap->gauges->kv_cells, bytes);
	fprintf(begin(t), "{\"ph\":\"C\",\"pid\":%d,\"name\":" TRACE_STR(TRACE_REQUESTS)
			  ",\"ts\":%.3f,\"args\":{" TRACE_KEY(TRACE_ARG_ACTIVE) "%u,"
			  TRACE_KEY(TRACE_ARG_QUEUED) "%u}}",
		t->pid, us(t, snap->now_ns), snap->gauges->active_requests,
		snap->gauges->queued_tasks);
}

static void trace_summary(void *self, const struct tm_snapshot *snap)
{
	struct trace_sink *t = self;

	(void)snap;
	if (t->tail)
		return; /* a tail is only written when triggered */
	fputs("\n]}\n", t->out);
	if (fflush(t->out) || ferror(t->out))
		t->failed = true;
}

static void tail_destroy(struct trace_sink *t)
{
	struct tail *tl = t->tail;

	fclose(t->out);
	tail_free_list(tl->meta);
	tail_free_list(tl->head);
	free(tl->buf);
	free(tl->header);
	free(tl->dir);
	free(tl);
	free(t);
}

static void trace_destroy(void *self)
{
	struct trace_sink *t = self;
	bool ok;

	if (t->tail) {
		tail_destroy(t);
		return;
	}
	ok = !t->failed && !ferror(t->out);

	if (fclose(t->out))
		ok = false;
	if (ok && rename(t->tmp_path, t->path)) {
		fprintf(stderr, "llmtap: cannot write %s: %s\n", t->path, strerror(errno));
		ok = false;
	} else if (!ok) {
		fprintf(stderr, "llmtap: writing %s failed; the partial recording is in %s\n", t->path,
			t->tmp_path);
	}
	if (ok)
		fprintf(stderr, "llmtap: wrote %llu trace events to %s (open it in ui.perfetto.dev or chrome://tracing)\n",
			(unsigned long long)t->events, t->path);
	free(t->path);
	free(t->tmp_path);
	free(t);
}

static const struct sink_ops trace_ops = {
	.attached = trace_attached,
	.step = trace_step,
	.request = trace_request,
	.engine_event = trace_engine_event,
	.interval = trace_interval,
	.summary = trace_summary,
	.destroy = trace_destroy,
};

int sink_trace_new(const char *path, struct sink *s, char *err, size_t errlen)
{
	struct trace_sink *t = calloc(1, sizeof(*t));

	if (!t || !(t->path = strdup(path)) || asprintf(&t->tmp_path, "%s.tmp", path) < 0) {
		if (t)
			free(t->path);
		free(t);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->out = fopen(t->tmp_path, "we");
	if (!t->out) {
		int e = errno;

		snprintf(err, errlen, "cannot create %s: %s", t->tmp_path, strerror(e));
		free(t->path);
		free(t->tmp_path);
		free(t);
		return -e;
	}
	s->ops = &trace_ops;
	s->self = t;
	return 0;
}

int sink_tail_new(const char *dir, uint64_t window_ns, uint64_t ttft_ns, size_t max_bytes,
		  struct sink *s, char *err, size_t errlen)
{
	struct trace_sink *t = calloc(1, sizeof(*t));
	struct tail *tl = calloc(1, sizeof(*tl));

	if (t && tl && (tl->dir = strdup(dir)))
		t->out = open_memstream(&tl->buf, &tl->len);
	if (!t || !tl || !tl->dir || !t->out) {
		if (tl)
			free(tl->dir);
		free(tl);
		free(t);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (access(dir, W_OK)) {
		int e = errno;

		snprintf(err, errlen, "--tail-dir %s: %s", dir, strerror(e));
		fclose(t->out);
		free(tl->buf);
		free(tl->dir);
		free(tl);
		free(t);
		return -e;
	}
	tl->window_ns = window_ns;
	tl->ttft_ns = ttft_ns;
	tl->max_bytes = max_bytes;
	t->tail = tl;
	s->ops = &trace_ops;
	s->self = t;
	return 0;
}
