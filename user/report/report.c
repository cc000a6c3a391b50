// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * `llmtap report`: a trace-event file written by `llmtap record` (sink_trace.c)
 * as one self-contained HTML page for whoever is on call: inline CSS and SVG,
 * no script, nothing fetched (a Content-Security-Policy forbids it anyway).
 *
 * parse:   the file is mapped, and json-c parses one event at a time (a whole
 *          tree would take ten times the file's size): each is flattened into
 *          arrays of requests, steps, phases, counter samples and markers, and
 *          freed.
 * compute: exact percentiles (nearest rank) from sorted samples, per-second
 *          buckets, the slowest requests.
 * render:  a summary, latency histograms, throughput, KV cache and requests
 *          over time, and the slowest requests, each chart an <svg> with axes.
 */
#include "report/report.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "sink/trace_schema.h"

#ifndef LLMTAP_VERSION
#define LLMTAP_VERSION "dev"
#endif

#define MAX_BUCKETS 600   /* time buckets: 1 s wide up to 10 minutes, wider after */
#define MATCH_EPS_US 0.01 /* ts and dur are written to the nanosecond */
#define MATCH_SCAN 64     /* overlapping requests on one track looked at */
#define TOP_SLOWEST 10
#define HIST_BINS_MAX 64

/* chart sizes: two columns, or the whole width, of a 1100 px page */
#define HALF_W 510
#define FULL_W 1036
#define CHART_H 200
#define HIST_H 224

enum step_kind { SK_PREFILL, SK_GENERATE, SK_MIXED, SK_OTHER, SK_MAX };
enum marker_kind { MK_CONTEXT_SHIFT, MK_CACHE_SAVE, MK_CACHE_LOAD, MK_FAILED, MK_MAX };

/* the trace's names; SK_OTHER is a label of the report's own */
static const char *const step_kind_names[SK_MAX] = { TRACE_KIND_PREFILL, TRACE_KIND_GENERATE,
						     TRACE_KIND_MIXED, "other" };
static const char *const marker_names[MK_MAX] = { TRACE_CONTEXT_SHIFT, TRACE_CACHE_SAVE,
						  TRACE_CACHE_LOAD, TRACE_FAILED };

/* colours (Tableau 10): one meaning each, across every chart */
#define C_QUEUE "#f28e2b"
#define C_PREFILL "#4e79a7"
#define C_GENERATE "#59a14f"
#define C_MIXED "#b07aa1"
#define C_OTHER "#bab0ac"
#define C_FAILED "#e15759"
#define C_KV "#76b7b2"
#define C_KV_LINE "#3f8f89"
#define C_INK "#1f2328"
#define C_DURATION "#9c755f"

static const char *const step_kind_colors[SK_MAX] = { C_PREFILL, C_GENERATE, C_MIXED, C_OTHER };

/* A growable array of elements of one type (the field's comment names it). */
struct array {
	void *v;
	size_t n, cap;
};

static const char *const finish_names[] = TRACE_FINISH_REASONS;
#define FINISH_NAMES (sizeof(finish_names) / sizeof(finish_names[0]))

struct request {
	char *name;	  /* "POST /completion" */
	int tid;	  /* its track: a slot, "requests without a slot", or a sequence */
	double ts, dur;	  /* µs: slot launch (else HTTP start) to the final token */
	double http_ms, ttft_ms; /* ttft_ms 0: no token seen */
	double queue_ms;  /* -1: it never reached a slot */
	double prefill_ms, gen_ms; /* from its phase events; -1 when there were none */
	unsigned long long id;
	long long prompt, cached, output; /* -1: unknown (absent from the file) */
	int status;
	int finish;       /* why it ended: an index of finish_names, -1 not told */
	bool stream, failed;
	bool generation; /* an embedder's generation, else an HTTP request */
	bool inference;	 /* it has an operation: its token counts mean something */
};

struct step {
	double ts, dur;
	long long n_tokens;
	enum step_kind kind;
	bool error;
};

struct phase {
	double ts, dur;
	int tid;
	bool generation; /* else prefill */
};

struct sample {
	double ts;
	double a, b; /* "kv cells": a = cells, b = bytes (-1 unknown); "requests": a = active,
		      * b = queued */
};

struct marker {
	double ts;
	int tid;
	enum marker_kind kind;
};

struct track {
	int tid;
	char *name;
};

struct trace {
	const char *path;
	json_object *other; /* otherData */
	const char *producer, *library, *model; /* from otherData; "" when absent */
	char *process;			       /* NULL when absent */
	double start_unix_nano;
	struct array reqs;    /* struct request */
	struct array steps;   /* struct step */
	struct array phases;  /* struct phase */
	struct array kv;      /* struct sample */
	double kv_capacity;   /* KV bytes allocated, the latest sample's; 0 unknown */
	struct array active;  /* struct sample */
	struct array markers; /* struct marker */
	struct array tracks;  /* struct track */
	size_t generations;   /* of reqs, an embedder's generations */
	size_t proxied;	      /* a router's proxy copies: counted, never among reqs */
	double end_us;	      /* the end of the last event: the recording's length */
	size_t events;	      /* llmtap events seen (metadata aside) */
	bool has_events;      /* a "traceEvents" array was there */
};

/* The file's text, mapped, and how far it has been read. */
struct text {
	const char *p;
	size_t len, off;
	json_tokener *tok;
	char *err;
	size_t errlen;
	const char *path;
};

/* Samples of one latency, sorted, and their percentiles (nearest rank). */
struct dist {
	double *v;
	size_t n;
	double p50, p90, p99, max, mean;
};

struct stats {
	size_t failed, step_errors; /* failed: HTTP requests */
	/* sums over the known counts; *_known: how many were; unknown: inference requests
	 * and generations with a count unknown (prompt_unknown, output_unknown: of which) */
	long long prompt, cached, output, batch_tokens, batch_tokens_other;
	size_t prompt_known, output_known, prompt_unknown, output_unknown, unknown;
	size_t finish[FINISH_NAMES]; /* requests and generations by why they ended */
	double busy_us;
	size_t markers[MK_MAX];
	struct dist ttft, tpot, queue, http;
	/* per time bucket (totals, not yet rates) */
	double bucket_s;
	size_t nb;
	double *block; /* owns the series below */
	double *done, *done_failed, *out_tokens, *step_tokens[SK_MAX];
	double *in_flight, *in_queue; /* the most requests at once (in flight, queued) */
	size_t slowest[TOP_SLOWEST]; /* request indices, slowest first */
	size_t n_slowest;
};

/* ---------------------------------------------------------------- parse -- */

static void *array_push(struct array *a, size_t size)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 64;
		void *v = reallocarray(a->v, cap, size);

		if (!v)
			return NULL;
		a->v = v;
		a->cap = cap;
	}
	return memset((char *)a->v + a->n++ * size, 0, size);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static double get_num(json_object *o, const char *key, double def)
{
	json_object *v = get(o, key);
	double d;

	if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return def;
	d = json_object_get_double(v);
	return isfinite(d) ? d : def;
}

/* An int (a track, a status); def when absent or out of range. */
static int get_int(json_object *o, const char *key, int def)
{
	double d = get_num(o, key, def);

	return d >= INT_MIN && d <= INT_MAX ? (int)d : def;
}

/* A count: a non-negative integer, 0 when absent or absurd. */
static long long get_count(json_object *o, const char *key)
{
	double d = get_num(o, key, 0);

	return d > 0 && d < 9e15 ? (long long)d : 0;
}

/* A count that may be unknown: -1 when absent, null or absurd. */
static long long get_opt_count(json_object *o, const char *key)
{
	double d = get_num(o, key, -1);

	return d >= 0 && d < 9e15 ? (long long)d : -1;
}

static double get_ms(json_object *o, const char *key)
{
	double d = get_num(o, key, 0);

	return d > 0 ? d : 0;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* An event's time span in µs; false for an event without a usable "ts". */
static bool event_time(struct trace *t, json_object *e, double *ts, double *dur)
{
	*ts = get_num(e, "ts", -1);
	*dur = get_num(e, "dur", 0);
	if (*ts < 0 || !isfinite(*ts + *dur))
		return false;
	if (*dur < 0)
		*dur = 0;
	if (*ts + *dur > t->end_us)
		t->end_us = *ts + *dur;
	t->events++;
	return true;
}

static int parse_meta(struct trace *t, json_object *e)
{
	const char *name = get_str(e, "name"), *value = get_str(get(e, "args"), "name");
	struct track *tr;

	if (!name || !value)
		return 0;
	if (!strcmp(name, "process_name")) {
		free(t->process);
		t->process = strdup(value);
		return t->process ? 0 : -ENOMEM;
	}
	if (!strcmp(name, "thread_name")) {
		tr = array_push(&t->tracks, sizeof(*tr));
		if (!tr)
			return -ENOMEM;
		tr->tid = get_int(e, "tid", -1);
		tr->name = strdup(value);
		return tr->name ? 0 : -ENOMEM;
	}
	return 0;
}

static enum step_kind step_kind(const char *s)
{
	for (int k = 0; k < SK_OTHER; k++)
		if (s && !strcmp(s, step_kind_names[k]))
			return k;
	return SK_OTHER;
}

static int add_step(struct trace *t, json_object *e, double ts, double dur)
{
	json_object *args = get(e, "args");
	struct step *s = array_push(&t->steps, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->ts = ts;
	s->dur = dur;
	s->n_tokens = get_count(args, TRACE_ARG_N_TOKENS);
	s->kind = step_kind(get_str(args, TRACE_ARG_KIND));
	s->error = get_num(args, TRACE_ARG_RET, 0) != 0;
	return 0;
}

static int add_request(struct trace *t, json_object *e, double ts, double dur)
{
	json_object *args = get(e, "args"), *stream = get(args, TRACE_ARG_STREAM);
	const char *kind = get_str(args, TRACE_ARG_REQ_KIND), *finish;
	struct request *r;

	if (kind && !strcmp(kind, TRACE_REQ_PROXY)) { /* the server it was passed to counts it */
		t->proxied++;
		return 0;
	}
	r = array_push(&t->reqs, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->name = strdup(get_str(e, "name") ?: "?");
	if (!r->name)
		return -ENOMEM;
	r->tid = get_int(e, "tid", -1);
	r->ts = ts;
	r->dur = dur;
	r->id = (unsigned long long)get_count(args, TRACE_ARG_REQUEST);
	r->status = get_int(args, TRACE_ARG_STATUS, 0);
	r->stream = stream && json_object_get_boolean(stream);
	r->generation = kind && !strcmp(kind, TRACE_REQ_GENERATION);
	t->generations += r->generation;
	r->inference = r->generation || get_str(args, TRACE_ARG_OPERATION);
	r->prompt = get_opt_count(args, TRACE_ARG_PROMPT_TOKENS);
	r->cached = r->prompt < 0 ? -1 : get_opt_count(args, TRACE_ARG_CACHED_TOKENS);
	r->output = get_opt_count(args, TRACE_ARG_OUTPUT_TOKENS);
	r->ttft_ms = get_ms(args, TRACE_ARG_TTFT_MS);
	r->queue_ms = get(args, TRACE_ARG_QUEUE_MS) ? get_ms(args, TRACE_ARG_QUEUE_MS) : -1;
	r->http_ms = get_ms(args, TRACE_ARG_HTTP_MS);
	r->prefill_ms = r->gen_ms = -1;
	r->failed = r->status >= 400;
	finish = get_str(args, TRACE_ARG_FINISH);
	r->finish = -1;
	for (size_t i = 0; finish && i < FINISH_NAMES; i++)
		if (!strcmp(finish, finish_names[i]))
			r->finish = (int)i;
	return 0;
}

static int add_phase(struct trace *t, json_object *e, double ts, double dur)
{
	const char *name = get_str(e, "name");
	struct phase *p;

	if (!name || (strcmp(name, TRACE_PREFILL) && strcmp(name, TRACE_GENERATION)))
		return 0;
	p = array_push(&t->phases, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ts = ts;
	p->dur = dur;
	p->tid = get_int(e, "tid", -1);
	p->generation = !strcmp(name, TRACE_GENERATION);
	return 0;
}

static int parse_complete(struct trace *t, json_object *e)
{
	const char *cat = get_str(e, "cat");
	double ts, dur;

	if (!cat || (strcmp(cat, TRACE_CAT_STEP) && strcmp(cat, TRACE_CAT_REQUEST) &&
		     strcmp(cat, TRACE_CAT_PHASE)))
		return 0;
	if (!event_time(t, e, &ts, &dur))
		return 0;
	if (!strcmp(cat, TRACE_CAT_STEP))
		return add_step(t, e, ts, dur);
	if (!strcmp(cat, TRACE_CAT_REQUEST))
		return add_request(t, e, ts, dur);
	return add_phase(t, e, ts, dur);
}

static int parse_counter(struct trace *t, json_object *e)
{
	const char *name = get_str(e, "name");
	json_object *args = get(e, "args");
	struct array *into;
	struct sample *s;
	double ts, dur;

	if (!name)
		return 0;
	if (!strcmp(name, TRACE_KV_CELLS))
		into = &t->kv;
	else if (!strcmp(name, TRACE_REQUESTS))
		into = &t->active;
	else if (!strcmp(name, TRACE_BATCH_TOKENS)) /* the steps tell the same */
		into = NULL;
	else
		return 0;
	if (!event_time(t, e, &ts, &dur) || !into)
		return 0;
	s = array_push(into, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ts = ts;
	if (into == &t->kv) {
		long long cap = get_opt_count(args, TRACE_ARG_CAPACITY);

		s->a = get_count(args, TRACE_ARG_CELLS);
		s->b = (double)get_opt_count(args, TRACE_ARG_BYTES);
		if (cap >= 0)
			t->kv_capacity = (double)cap; /* the latest */
		return 0;
	}
	s->a = get_count(args, TRACE_ARG_ACTIVE);
	s->b = get_count(args, TRACE_ARG_QUEUED);
	return 0;
}

static int parse_instant(struct trace *t, json_object *e)
{
	const char *name = get_str(e, "name");
	struct marker *m;
	double ts, dur;
	int k;

	for (k = 0; k < MK_MAX; k++)
		if (name && !strcmp(name, marker_names[k]))
			break;
	if (k == MK_MAX || !event_time(t, e, &ts, &dur))
		return 0;
	m = array_push(&t->markers, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ts = ts;
	m->tid = get_int(e, "tid", -1);
	m->kind = k;
	return 0;
}

static int parse_event(struct trace *t, json_object *e)
{
	const char *ph = get_str(e, "ph"), *cat;
	double ts, dur;

	if (!ph || !ph[0] || ph[1])
		return 0;
	switch (ph[0]) {
	case 'M':
		return parse_meta(t, e);
	case 'X':
		return parse_complete(t, e);
	case 'C':
		return parse_counter(t, e);
	case 'i':
	case 'I':
		return parse_instant(t, e);
	case 'b':
	case 'e': /* the queue waits: the requests' queue_ms tells the same */
		cat = get_str(e, "cat");
		if (cat && !strcmp(cat, TRACE_CAT_QUEUE))
			event_time(t, e, &ts, &dur);
		return 0;
	default:
		return 0;
	}
}

static int cmp_request(const void *a, const void *b)
{
	const struct request *x = a, *y = b;

	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	return (x->ts > y->ts) - (x->ts < y->ts);
}

/*
 * The request on track tid that holds [start, end] (at_end: that ends at end).
 * Requests are sorted by track and start; on a slot track they never overlap.
 */
static struct request *find_request(struct trace *t, int tid, double start, double end, bool at_end)
{
	struct request *r = t->reqs.v;
	size_t lo = 0, hi = t->reqs.n;

	while (lo < hi) { /* the first request after (tid, start) */
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].tid < tid || (r[mid].tid == tid && r[mid].ts <= start + MATCH_EPS_US))
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = 0; k < MATCH_SCAN && lo > 0; k++) {
		struct request *c = &r[--lo];
		double c_end = c->ts + c->dur;

		if (c->tid != tid)
			break;
		if (at_end ? fabs(c_end - end) <= MATCH_EPS_US : end <= c_end + MATCH_EPS_US)
			return c;
	}
	return NULL;
}

/* Each phase and failure marker to its request. */
static void link_requests(struct trace *t)
{
	const struct phase *p = t->phases.v;
	const struct marker *m = t->markers.v;
	struct request *r;

	if (t->reqs.n)
		qsort(t->reqs.v, t->reqs.n, sizeof(struct request), cmp_request);
	for (size_t i = 0; i < t->phases.n; i++) {
		r = find_request(t, p[i].tid, p[i].ts, p[i].ts + p[i].dur, false);
		if (r && p[i].generation && r->gen_ms < 0)
			r->gen_ms = p[i].dur / 1e3;
		else if (r && !p[i].generation && r->prefill_ms < 0)
			r->prefill_ms = p[i].dur / 1e3;
	}
	for (size_t i = 0; i < t->markers.n; i++) {
		r = m[i].kind == MK_FAILED ? find_request(t, m[i].tid, m[i].ts, m[i].ts, true) : NULL;
		if (r)
			r->failed = true;
	}
}

static const char *track_name(const struct trace *t, int tid)
{
	const struct track *tr = t->tracks.v;

	for (size_t i = 0; i < t->tracks.n; i++)
		if (tr[i].tid == tid)
			return tr[i].name;
	return NULL;
}

/* "slot N" */
static bool is_slot_track(const char *name)
{
	return name && !strncmp(name, TRACE_TRACK_SLOT, strlen(TRACE_TRACK_SLOT));
}

/* A request on a slot's track was given a slot: it went through the queue. */
static bool on_slot(const struct trace *t, const struct request *r)
{
	return is_slot_track(track_name(t, r->tid));
}

static void trace_free(struct trace *t)
{
	struct request *r = t->reqs.v;
	struct track *tr = t->tracks.v;

	for (size_t i = 0; i < t->reqs.n; i++)
		free(r[i].name);
	for (size_t i = 0; i < t->tracks.n; i++)
		free(tr[i].name);
	free(t->reqs.v);
	free(t->steps.v);
	free(t->phases.v);
	free(t->kv.v);
	free(t->active.v);
	free(t->markers.v);
	free(t->tracks.v);
	free(t->process);
	json_object_put(t->other);
}

static void skip_space(struct text *x)
{
	while (x->off < x->len && (x->p[x->off] == ' ' || x->p[x->off] == '\t' ||
				   x->p[x->off] == '\r' || x->p[x->off] == '\n'))
		x->off++;
}

/* The next character after whitespace, consumed when it is one of want ("" peeks). */
static char next_char(struct text *x, const char *want)
{
	char c;

	skip_space(x);
	if (x->off == x->len)
		return 0;
	c = x->p[x->off];
	if (c && strchr(want, c))
		x->off++;
	return c;
}

static int not_json(struct text *x, const char *why)
{
	snprintf(x->err, x->errlen, "%s is not JSON: %s (near byte %zu)", x->path, why, x->off);
	return -EINVAL;
}

/* The JSON value at the cursor into *v (NULL for null); -EINVAL and the reason in err when none. */
static int next_value(struct text *x, json_object **v)
{
	size_t left = x->len - x->off;
	enum json_tokener_error jerr;

	skip_space(x);
	json_tokener_reset(x->tok);
	*v = json_tokener_parse_ex(x->tok, x->p + x->off, left > INT_MAX ? INT_MAX : (int)left);
	jerr = json_tokener_get_error(x->tok);
	x->off += json_tokener_get_parse_end(x->tok);
	if (jerr == json_tokener_success)
		return 0;
	return not_json(x, jerr == json_tokener_continue ? "it ends too early" :
			json_tokener_error_desc(jerr));
}

/* The elements of "traceEvents", one at a time. */
static int parse_event_array(struct trace *t, struct text *x)
{
	json_object *e;
	int ret;
	char c;

	t->has_events = true;
	if (next_char(x, "]") == ']')
		return 0;
	do {
		if (next_value(x, &e))
			return -EINVAL;
		ret = parse_event(t, e);
		json_object_put(e);
		if (ret) {
			snprintf(x->err, x->errlen, "out of memory reading %s", x->path);
			return ret;
		}
	} while ((c = next_char(x, ",]")) == ',');
	return c == ']' ? 0 : not_json(x, "expected ',' or ']' between events");
}

/* One "key": value of the top-level object. */
static int parse_member(struct trace *t, struct text *x)
{
	int ret;
	json_object *key, *v;
	bool events;

	if (next_value(x, &key))
		return -EINVAL;
	events = json_object_is_type(key, json_type_string) &&
		 !strcmp(json_object_get_string(key), "traceEvents");
	if (!json_object_is_type(key, json_type_string) || next_char(x, ":") != ':') {
		json_object_put(key);
		return not_json(x, "expected \"key\": value");
	}
	if (events && next_char(x, "[") == '[') {
		json_object_put(key);
		return parse_event_array(t, x);
	}
	ret = next_value(x, &v);
	if (!strcmp(json_object_get_string(key), "otherData")) {
		json_object_put(t->other);
		t->other = v;
	} else {
		json_object_put(v);
	}
	json_object_put(key);
	return ret;
}

/* The top-level object, as `llmtap record` writes it: {"otherData": {...}, "traceEvents": [...]}. */
static int parse_text(struct trace *t, struct text *x)
{
	json_object *v;
	int ret;
	char c;

	if (!next_char(x, "")) {
		snprintf(x->err, x->errlen, "%s is empty, not a trace-event JSON file", x->path);
		return -EINVAL;
	}
	if (next_char(x, "{") != '{') { /* JSON, or not JSON at all? */
		ret = next_value(x, &v);
		json_object_put(v);
		if (ret && json_tokener_get_error(x->tok) != json_tokener_continue)
			return ret;
		goto not_trace;
	}
	if (next_char(x, "}") != '}') {
		do {
			ret = parse_member(t, x);
			if (ret)
				return ret;
		} while ((c = next_char(x, ",}")) == ',');
		if (c != '}')
			return not_json(x, "expected ',' or '}'");
	}
	if (next_char(x, ""))
		return not_json(x, "data after the end");
	if (t->has_events)
		return 0;
not_trace:
	snprintf(x->err, x->errlen, "%s is not a trace-event JSON object ({\"traceEvents\": [...]})",
		 x->path);
	return -EINVAL;
}

/* Map the file and parse it; err says why not. */
static int parse_file(struct trace *t, const char *path, char *err, size_t errlen)
{
	struct text x = { .err = err, .errlen = errlen, .path = path };
	void *map = MAP_FAILED;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		ret = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto fail;
	}
	x.len = (size_t)st.st_size;
	if (x.len) {
		map = mmap(NULL, x.len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			ret = -errno;
			goto fail;
		}
		madvise(map, x.len, MADV_SEQUENTIAL);
		x.p = map;
	}
	close(fd);
	x.tok = json_tokener_new();
	if (!x.tok) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
	} else {
		ret = parse_text(t, &x);
		json_tokener_free(x.tok);
	}
	if (map != MAP_FAILED)
		munmap(map, x.len);
	return ret;
fail:
	snprintf(err, errlen, "cannot read %s: %s", path, strerror(-ret));
	if (fd >= 0)
		close(fd);
	return ret;
}

static int trace_load(struct trace *t, const char *path, char *err, size_t errlen)
{
	int ret;

	memset(t, 0, sizeof(*t));
	t->path = path;
	ret = parse_file(t, path, err, errlen);
	if (ret)
		return ret;
	t->producer = get_str(t->other, TRACE_PRODUCER) ?: "";
	t->library = get_str(t->other, TRACE_LIBRARY) ?: "";
	t->model = get_str(t->other, TRACE_MODEL) ?: "";
	t->start_unix_nano = get_num(t->other, TRACE_START_UNIX_NANO, 0);
	if (!t->events) {
		snprintf(err, errlen, "%s has no llmtap events (steps, requests, counters); "
			 "was it written by `llmtap record`?", path);
		return -EINVAL;
	}
	link_requests(t);
	return 0;
}

/* -------------------------------------------------------------- compute -- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank q-quantile of n sorted values: the smallest with at least q*n at or below. */
static double quantile(const double *v, size_t n, double q)
{
	size_t k = (size_t)ceil(q * (double)n - 1e-9);

	return n ? v[k ? k - 1 : 0] : 0;
}

static void dist_finish(struct dist *d)
{
	double sum = 0;

	if (d->n)
		qsort(d->v, d->n, sizeof(double), cmp_double);
	for (size_t i = 0; i < d->n; i++)
		sum += d->v[i];
	d->p50 = quantile(d->v, d->n, 0.50);
	d->p90 = quantile(d->v, d->n, 0.90);
	d->p99 = quantile(d->v, d->n, 0.99);
	d->max = d->n ? d->v[d->n - 1] : 0;
	d->mean = d->n ? sum / (double)d->n : 0;
}

static void stats_free(struct stats *s)
{
	free(s->ttft.v);
	free(s->tpot.v);
	free(s->queue.v);
	free(s->http.v);
	free(s->block);
}

/* Keep the TOP_SLOWEST requests by http_ms, slowest first. */
static void note_slow(struct stats *s, const struct request *reqs, size_t i)
{
	size_t k = s->n_slowest < TOP_SLOWEST ? s->n_slowest++ : TOP_SLOWEST;

	if (k == TOP_SLOWEST && reqs[i].http_ms <= reqs[s->slowest[k - 1]].http_ms)
		return;
	if (k == TOP_SLOWEST)
		k--;
	while (k > 0 && reqs[s->slowest[k - 1]].http_ms < reqs[i].http_ms) {
		s->slowest[k] = s->slowest[k - 1];
		k--;
	}
	s->slowest[k] = i;
}

/* a + b for counts (never negative), saturated: a file's counts may add up past LLONG_MAX */
static long long add_count(long long a, long long b)
{
	long long sum;

	return __builtin_add_overflow(a, b, &sum) ? LLONG_MAX : sum;
}

static void add_latencies(const struct trace *t, struct stats *s)
{
	const struct request *r = t->reqs.v;

	for (size_t i = 0; i < t->reqs.n; i++) {
		bool prompt = r[i].prompt >= 0 && r[i].cached >= 0, output = r[i].output >= 0;

		s->failed += r[i].failed && !r[i].generation;
		/* an unknown count is in no sum, and said */
		if (prompt) {
			s->prompt = add_count(s->prompt, r[i].prompt);
			s->cached = add_count(s->cached, r[i].cached);
			s->prompt_known++;
		}
		if (output) {
			s->output = add_count(s->output, r[i].output);
			s->output_known++;
		}
		if (r[i].finish >= 0)
			s->finish[r[i].finish]++;
		if (r[i].inference) {
			s->prompt_unknown += !prompt;
			s->output_unknown += !output;
			s->unknown += !prompt || !output;
		}
		if (r[i].ttft_ms > 0)
			s->ttft.v[s->ttft.n++] = r[i].ttft_ms;
		if (r[i].output >= 2 && r[i].gen_ms > 0)
			s->tpot.v[s->tpot.n++] = r[i].gen_ms / (double)(r[i].output - 1);
		if (on_slot(t, &r[i]) && r[i].queue_ms >= 0)
			s->queue.v[s->queue.n++] = r[i].queue_ms;
		if (r[i].http_ms > 0)
			s->http.v[s->http.n++] = r[i].http_ms;
		note_slow(s, r, i);
	}
	dist_finish(&s->ttft);
	dist_finish(&s->tpot);
	dist_finish(&s->queue);
	dist_finish(&s->http);
}

static size_t bucket(const struct stats *s, double t_us)
{
	size_t b = (size_t)(t_us / 1e6 / s->bucket_s);

	return b < s->nb ? b : s->nb - 1;
}

/* A request's start (+1) or end (-1) of being in flight or queued. */
struct edge {
	double ts;
	int delta;
	bool queue;
};

static int cmp_edge(const void *a, const void *b)
{
	const struct edge *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return y->delta - x->delta; /* starts first: requests that touch count as overlapping */
}

/*
 * The most requests in flight (from entering the queue to the final token; a request
 * without a slot: its HTTP time) and queued at once in each bucket, exact from the
 * requests' own times: a request shorter than the interval the counters are
 * sampled at still counts. 0 or -ENOMEM.
 */
static int add_concurrency(const struct trace *t, struct stats *s)
{
	const struct request *r = t->reqs.v;
	struct edge *e = calloc(4 * t->reqs.n + 1, sizeof(*e));
	size_t n = 0, j = 0;
	long long cur[2] = { 0, 0 };

	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < t->reqs.n; i++) {
		double queue_us = on_slot(t, &r[i]) ? fmax(r[i].queue_ms, 0) * 1e3 : 0;
		double start = fmax(0, r[i].ts - queue_us), end = r[i].ts + r[i].dur;

		if (!on_slot(t, &r[i]))
			end = fmax(end, r[i].ts + r[i].http_ms * 1e3);
		e[n++] = (struct edge){ start, 1, false };
		e[n++] = (struct edge){ end, -1, false };
		if (queue_us > 0) {
			e[n++] = (struct edge){ start, 1, true };
			e[n++] = (struct edge){ r[i].ts, -1, true };
		}
	}
	qsort(e, n, sizeof(*e), cmp_edge);
	for (size_t b = 0; b < s->nb; b++) {
		double end_us = (double)(b + 1) * s->bucket_s * 1e6;
		long long most[2] = { cur[0], cur[1] };

		for (; j < n && (b + 1 == s->nb || e[j].ts < end_us); j++) {
			cur[e[j].queue] += e[j].delta;
			if (cur[e[j].queue] > most[e[j].queue])
				most[e[j].queue] = cur[e[j].queue];
		}
		s->in_flight[b] = (double)most[0];
		s->in_queue[b] = (double)most[1];
	}
	free(e);
	return 0;
}

/* Per-bucket totals: 1 s buckets, wider (2, 5, 10 s...) past MAX_BUCKETS of them. */
static int add_timeline(const struct trace *t, struct stats *s)
{
	const struct request *r = t->reqs.v;
	const struct step *st = t->steps.v;
	static const double widths[] = { 2, 5, 10 };
	double len_s = t->end_us / 1e6;

	s->bucket_s = 1;
	for (int k = 0; len_s / s->bucket_s > MAX_BUCKETS; k++)
		s->bucket_s = widths[k % 3] * pow(10, k / 3);
	s->nb = (size_t)ceil(len_s / s->bucket_s - 1e-9);
	if (!s->nb)
		s->nb = 1;
	s->block = calloc((5 + SK_MAX) * s->nb, sizeof(double));
	if (!s->block)
		return -ENOMEM;
	s->done = s->block;
	s->done_failed = s->done + s->nb;
	s->out_tokens = s->done_failed + s->nb;
	for (int i = 0; i < SK_MAX; i++)
		s->step_tokens[i] = s->out_tokens + (size_t)(i + 1) * s->nb;
	s->in_flight = s->step_tokens[SK_MAX - 1] + s->nb;
	s->in_queue = s->in_flight + s->nb;
	for (size_t i = 0; i < t->reqs.n; i++) {
		size_t b = bucket(s, r[i].ts + r[i].dur);

		if (r[i].failed)
			s->done_failed[b]++;
		else
			s->done[b]++;
		if (r[i].output > 0)
			s->out_tokens[b] += (double)r[i].output;
	}
	for (size_t i = 0; i < t->steps.n; i++) {
		s->step_tokens[st[i].kind][bucket(s, st[i].ts)] += (double)st[i].n_tokens;
		s->batch_tokens = add_count(s->batch_tokens, st[i].n_tokens);
		if (st[i].kind == SK_OTHER)
			s->batch_tokens_other = add_count(s->batch_tokens_other, st[i].n_tokens);
		s->busy_us += st[i].dur;
		s->step_errors += st[i].error;
	}
	return add_concurrency(t, s);
}

static int compute(const struct trace *t, struct stats *s)
{
	size_t n = t->reqs.n ? t->reqs.n : 1;
	const struct marker *m = t->markers.v;

	memset(s, 0, sizeof(*s));
	s->ttft.v = calloc(n, sizeof(double));
	s->tpot.v = calloc(n, sizeof(double));
	s->queue.v = calloc(n, sizeof(double));
	s->http.v = calloc(n, sizeof(double));
	if (!s->ttft.v || !s->tpot.v || !s->queue.v || !s->http.v)
		return -ENOMEM;
	add_latencies(t, s);
	for (size_t i = 0; i < t->markers.n; i++)
		s->markers[m[i].kind]++;
	return add_timeline(t, s);
}

/* ---------------------------------------------------------- formatting -- */

/* s in HTML text or an attribute: markup escaped, control characters dropped. */
static void html(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n')
				fputc(*s, out);
		}
	}
}

/* A latency: "0.85 ms", "12.3 ms", "245 ms", "12.35 s". */
static const char *fmt_ms(char *buf, size_t len, double ms)
{
	if (ms < 10)
		snprintf(buf, len, "%.2f ms", ms);
	else if (ms < 100)
		snprintf(buf, len, "%.1f ms", ms);
	else if (ms < 10000)
		snprintf(buf, len, "%.0f ms", ms);
	else
		snprintf(buf, len, "%.2f s", ms / 1e3);
	return buf;
}

/* A tick label: as many decimals as the step needs, "20k" for round thousands. */
static const char *fmt_tick(char *buf, size_t len, double v, double step)
{
	int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);

	if (fabs(v) >= 10000 && step >= 1000 && fmod(v, 1000) == 0)
		snprintf(buf, len, "%.0fk", v / 1000);
	else
		snprintf(buf, len, "%.*f", decimals, v);
	return buf;
}

/* ---------------------------------------------------------------- plots -- */

/* An SVG chart: both axes start at 0; data coordinates map onto the area l..r, t..b. */
struct plot {
	FILE *out;
	double w, h;
	double l, t, r, b;
	double x_hi, x_step, y_hi, y_step;
};

/* A tick spacing of 1, 2 or 5 times a power of ten: at most `ticks` steps up to max. */
static double nice_step(double max, int ticks)
{
	double raw = max / ticks, mag, f;

	if (!(raw > 0))
		return 1;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	return (f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10) * mag;
}

static void nice_axis(double max, int ticks, bool integer, double *hi, double *step)
{
	*step = nice_step(max > 0 ? max : 1, ticks);
	if (integer && *step < 1)
		*step = 1;
	*hi = max > 0 ? ceil(max / *step - 1e-9) * *step : *step;
}

static double px(const struct plot *p, double x)
{
	return p->l + (p->r - p->l) * x / p->x_hi;
}

static double py(const struct plot *p, double y)
{
	return p->b - (p->b - p->t) * y / p->y_hi;
}

static void svg_open(FILE *out, double w, double h, const char *label)
{
	fprintf(out, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
		"height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"", w, h, w, h);
	html(out, label);
	fputs("\">\n", out);
}

static void axis_labels(const struct plot *p, const char *x_label, const char *y_label)
{
	fprintf(p->out, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
		(p->l + p->r) / 2, p->h - 6);
	html(p->out, x_label);
	fprintf(p->out, "</text>\n<text class=\"label\" transform=\"translate(14 %.1f) rotate(-90)\" "
		"text-anchor=\"middle\">", (p->t + p->b) / 2);
	html(p->out, y_label);
	fputs("</text>\n", p->out);
}

static void plot_frame(struct plot *p, FILE *out, double w, double h, double top)
{
	p->out = out;
	p->w = w;
	p->h = h;
	p->l = 64;
	p->r = w - 16;
	p->t = top;
	p->b = h - 40;
}

/* The SVG, grid lines and tick labels; the caller draws the data and calls plot_close(). */
static void plot_open(struct plot *p, const char *label, const char *x_label, const char *y_label)
{
	char buf[32];
	int k;

	svg_open(p->out, p->w, p->h, label);
	for (k = 0; k * p->y_step <= p->y_hi * (1 + 1e-9); k++) {
		double y = py(p, k * p->y_step);

		fprintf(p->out, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", p->l, p->r, y, y,
			p->l - 6, y + 4, fmt_tick(buf, sizeof(buf), k * p->y_step, p->y_step));
	}
	for (k = 0; k * p->x_step <= p->x_hi * (1 + 1e-9); k++) {
		double x = px(p, k * p->x_step);

		fprintf(p->out, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, x, p->b,
			p->b + 5, x, p->b + 18, fmt_tick(buf, sizeof(buf), k * p->x_step, p->x_step));
	}
	axis_labels(p, x_label, y_label);
}

static void plot_close(const struct plot *p)
{
	fprintf(p->out, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		"<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n</svg>\n",
		p->l, p->r, p->b, p->b, p->l, p->l, p->t, p->b);
}

/* A chart without data: its frame, its axis labels and "no data". */
static void plot_empty(FILE *out, double w, double h, const char *label, const char *x_label,
		       const char *y_label)
{
	struct plot p;

	plot_frame(&p, out, w, h, 20);
	svg_open(out, w, h, label);
	fprintf(out, "<rect class=\"empty\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>"
		"<text class=\"nodata\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no data</text>\n",
		p.l, p.t, p.r - p.l, p.b - p.t, (p.l + p.r) / 2, (p.t + p.b) / 2 + 5);
	axis_labels(&p, x_label, y_label);
	fputs("</svg>\n", out);
}

static void rect(const struct plot *p, double x0, double x1, double y0, double y1,
		 const char *color)
{
	double l = px(p, x0), r = px(p, x1), gap = r - l > 3 ? 1 : 0;

	if (y1 <= y0)
		return;
	fprintf(p->out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", l,
		py(p, y1), r - l - gap, py(p, y0) - py(p, y1), color);
}

static void legend(FILE *out, const char *color, const char *label, bool line)
{
	fprintf(out, "<span class=\"key\"><span class=\"%s\" style=\"background:%s\"></span>",
		line ? "ln" : "sw", color);
	html(out, label);
	fputs("</span>", out);
}

/* -------------------------------------------------------------- sections -- */

static void render_head(FILE *out, const struct trace *t)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'; img-src data:\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<meta name=\"generator\" content=\"llmtap " LLMTAP_VERSION "\">\n<title>llmtap report: ",
	      out);
	html(out, t->model[0] ? t->model : t->process ?: t->path);
	fputs("</title>\n<style>\n"
	      "body{margin:0;background:#f4f5f7;color:#1f2328;font:14px/1.45 system-ui,-apple-system,"
	      "'Segoe UI',Roboto,'Helvetica Neue','DejaVu Sans',Arial,sans-serif}\n"
	      "main{max-width:1100px;margin:0 auto;padding:18px 16px 28px;box-sizing:border-box}\n"
	      "h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:0 0 10px}\n"
	      ".sub{color:#57606a;margin:0;overflow-wrap:anywhere}\n"
	      "section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 15px;"
	      "margin:14px 0}\n"
	      ".grid{display:grid;grid-template-columns:1fr 1fr;gap:14px 16px}\n"
	      "figure{margin:0;min-width:0}figcaption{font-weight:600;margin-bottom:2px}\n"
	      ".stats{color:#57606a;font-size:12.5px;font-weight:400}\n"
	      ".keys{font-size:12.5px;color:#57606a;font-weight:400}\n"
	      ".key{margin-right:14px;white-space:nowrap}\n"
	      ".sw,.ln{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;"
	      "vertical-align:-1px}.ln{height:3px;vertical-align:3px}\n"
	      "svg.chart{display:block;max-width:100%;height:auto}\n"
	      "svg text{font-size:11.5px;fill:#57606a}svg text.label{font-size:12px;fill:#1f2328}\n"
	      "svg text.pct{font-size:11.5px;font-weight:600;paint-order:stroke;stroke:#fff;"
	      "stroke-width:4px;stroke-linejoin:round}svg text.nodata{font-size:15px;fill:#8c959f}\n"
	      "svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}svg .empty{fill:#f6f8fa;stroke:#d0d7de}\n"
	      "table{border-collapse:collapse;width:100%}\n"
	      "th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:middle}\n"
	      "th{font-weight:600;color:#57606a;font-size:12.5px}\n"
	      ".num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
	      ".kv th{width:34%}.kv td{overflow-wrap:anywhere}\n"
	      ".bad{color:#cf222e;font-weight:600}\n"
	      "table.slow td{font-size:13px;white-space:nowrap}table.slow svg{display:block}\n"
	      "table.slow th,table.slow td{padding:4px 6px}table.slow th{vertical-align:bottom}\n"
	      "table.lat th{white-space:nowrap}\n"
	      "td.name{max-width:240px;overflow:hidden;text-overflow:ellipsis}\n"
	      "footer{color:#8c959f;font-size:12px;overflow-wrap:anywhere}\n"
	      "</style>\n</head>\n<body>\n<main>\n", out);
}

static void render_title(FILE *out, const struct trace *t)
{
	char when[64] = "";
	double sec = t->start_unix_nano / 1e9;
	struct tm tm;
	time_t tt;

	/* a date between 1970 and 9999 (a file may say anything: casting it could be undefined) */
	if (sec > 0 && sec < 253402300800.0) {
		tt = (time_t)sec;
		if (gmtime_r(&tt, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	fputs("<header>\n<h1>llmtap report: ", out);
	html(out, t->model[0] ? t->model : "unknown model");
	fputs("</h1>\n<p class=\"sub\">", out);
	html(out, t->process ?: "unknown process");
	if (when[0])
		fprintf(out, " · recorded %s", when);
	fprintf(out, " for %.1f s</p>\n</header>\n", t->end_us / 1e6);
}

static void kv_row(FILE *out, const char *key, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A row of the overview table; id names the value for scripts and tests. */
static void kv_row(FILE *out, const char *key, const char *id, const char *fmt, ...)
{
	va_list ap;

	fprintf(out, "<tr><th>%s</th><td id=\"%s\">", key, id);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputs("</td></tr>\n", out);
}

static void text_row(FILE *out, const char *key, const char *id, const char *value)
{
	fprintf(out, "<tr><th>%s</th><td id=\"%s\">", key, id);
	html(out, value[0] ? value : "unknown");
	fputs("</td></tr>\n", out);
}

/* A sum of known counts, or "unknown" when every count was. */
static const char *fmt_sum(char *buf, size_t len, long long sum, size_t known, size_t unknown)
{
	if (!known && unknown)
		return "unknown";
	snprintf(buf, len, "%lld", sum);
	return buf;
}

/* "Finished: stop 3 · length 1 ..." when the recording told any reason */
static void render_finish(FILE *out, const struct stats *s)
{
	size_t told = 0;

	for (size_t i = 0; i < FINISH_NAMES; i++)
		told += s->finish[i];
	if (!told)
		return;
	fputs("<tr><th>Finished</th><td id=\"sum-finish\">", out);
	for (size_t i = 0; i < FINISH_NAMES; i++)
		fprintf(out, "%s%s <span id=\"sum-finish-%s\">%zu</span>", i ? " · " : "",
			finish_names[i], finish_names[i], s->finish[i]);
	fputs(" (requests whose reason llmtap told)</td></tr>\n", out);
}

static void render_overview(FILE *out, const struct trace *t, const struct stats *s)
{
	double len_s = t->end_us / 1e6, per_s = len_s > 0 ? 1 / len_s : 0;
	size_t n_http = t->reqs.n - t->generations;
	char prompt[24], cached[24], output[24];

	fputs("<table class=\"kv\">\n", out);
	kv_row(out, "Recording", "sum-length", "%.1f s", len_s);
	kv_row(out, "Requests", "sum-requests-all",
	       "<span id=\"sum-requests\">%zu</span> (<span id=\"sum-ok\">%zu</span> ok, "
	       "<span id=\"sum-failed\" class=\"%s\">%zu</span> failed) · %.2f /s",
	       n_http, n_http - s->failed, s->failed ? "bad" : "", s->failed,
	       (double)n_http * per_s);
	if (t->generations)
		kv_row(out, "Generations", "sum-generations-all",
		       "<span id=\"sum-generations\">%zu</span> (an embedder's, without HTTP) · %.2f /s",
		       t->generations, (double)t->generations * per_s);
	if (t->proxied)
		kv_row(out, "Proxied", "sum-proxied-all",
		       "<span id=\"sum-proxied\">%zu</span> requests passed on by a router "
		       "(each counted by the server it was passed to)", t->proxied);
	fputs("<tr><th>Tokens</th><td id=\"sum-tokens\">", out);
	fprintf(out, "<span id=\"sum-prompt-tokens\">%s</span> prompt, "
		"<span id=\"sum-cached-tokens\">%s</span> cached, "
		"<span id=\"sum-output-tokens\">%s</span> output (%.1f output tokens/s)",
		fmt_sum(prompt, sizeof(prompt), s->prompt, s->prompt_known, s->prompt_unknown),
		fmt_sum(cached, sizeof(cached), s->cached, s->prompt_known, s->prompt_unknown),
		fmt_sum(output, sizeof(output), s->output, s->output_known, s->output_unknown),
		(double)s->output * per_s);
	if (s->unknown)
		fprintf(out, " · counts unknown for <span id=\"sum-tokens-unknown\" class=\"bad\">%zu"
			"</span> requests (not in the sums)", s->unknown);
	fputs("</td></tr>\n", out);
	render_finish(out, s);
	kv_row(out, "Engine steps", "sum-steps-all",
	       "<span id=\"sum-steps\">%zu</span> steps (<span class=\"%s\">%zu</span> failed), "
	       "%lld batch tokens, busy %.1f%% of the time",
	       t->steps.n, s->step_errors ? "bad" : "", s->step_errors, s->batch_tokens,
	       len_s > 0 ? 100 * s->busy_us / t->end_us : 0.0);
	kv_row(out, "Cache events", "sum-events",
	       "context shifts <span id=\"sum-context-shifts\" class=\"%s\">%zu</span>, "
	       "cache saves <span id=\"sum-cache-saves\">%zu</span>, "
	       "cache loads <span id=\"sum-cache-loads\">%zu</span>",
	       s->markers[MK_CONTEXT_SHIFT] ? "bad" : "", s->markers[MK_CONTEXT_SHIFT],
	       s->markers[MK_CACHE_SAVE], s->markers[MK_CACHE_LOAD]);
	text_row(out, "Model", "sum-model", t->model);
	text_row(out, "Process", "sum-process", t->process ?: "");
	text_row(out, "Library", "sum-library", t->library);
	fputs("</table>\n", out);
}

static void latency_row(FILE *out, const char *name, const char *id, const struct dist *d)
{
	const double v[] = { d->p50, d->p90, d->p99, d->max };
	const char *col[] = { "p50", "p90", "p99", "max" };
	char buf[32];

	fprintf(out, "<tr><th>%s</th><td class=\"num\" id=\"%s-n\">%zu</td>", name, id, d->n);
	for (int i = 0; i < 4; i++)
		fprintf(out, "<td class=\"num\" id=\"%s-%s\">%s</td>", id, col[i],
			d->n ? fmt_ms(buf, sizeof(buf), v[i]) : "–");
	fputs("</tr>\n", out);
}

static void render_summary(FILE *out, const struct trace *t, const struct stats *s)
{
	fputs("<section id=\"summary\">\n<h2>Summary</h2>\n<div class=\"grid\">\n<div>\n", out);
	render_overview(out, t, s);
	fputs("</div>\n<div>\n<table class=\"lat\">\n<tr><th>latency</th><th class=\"num\">requests</th>"
	      "<th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p99</th>"
	      "<th class=\"num\">max</th></tr>\n", out);
	latency_row(out, "Time to first token", "ttft", &s->ttft);
	latency_row(out, "Time per output token", "tpot", &s->tpot);
	latency_row(out, "Queue wait", "queue", &s->queue);
	latency_row(out, "Request duration", "duration", &s->http);
	fputs("</table>\n<p class=\"stats\">Time per output token: the generation phase over its "
	      "output tokens but the first. Queue wait: requests that got a slot. Percentiles are "
	      "nearest-rank over every request (and generation) in the recording whose time "
	      "llmtap measured; a count it did not measure is in no sum.</p>\n</div>\n</div>\n"
	      "</section>\n", out);
}

/* A histogram of d with its p50, p90 and p99 marked. */
static void chart_histogram(FILE *out, const struct dist *d, const char *title, const char *unit,
			    const char *color)
{
	static const char *const pct_name[] = { "p50", "p90", "p99" };
	static const char *const pct_color[] = { C_INK, "#bc5090", C_FAILED };
	const double pct[] = { d->p50, d->p90, d->p99 };
	bool secs = d->max >= 2000;
	double scale = secs ? 1e-3 : 1, bw, max_count = 0;
	unsigned int counts[HIST_BINS_MAX] = { 0 };
	char x_label[64], buf[32];
	size_t nbins;
	struct plot p;

	fprintf(out, "<figure>\n<figcaption>");
	html(out, title);
	if (d->n)
		fprintf(out, " <span class=\"stats\">%zu requests · mean %s</span>", d->n,
			fmt_ms(buf, sizeof(buf), d->mean));
	fputs("</figcaption>\n", out);
	snprintf(x_label, sizeof(x_label), "%s (%s%s)", title, secs ? "s" : "ms", unit);
	plot_frame(&p, out, HALF_W, HIST_H, 48);
	if (!d->n) {
		plot_empty(out, HALF_W, HIST_H, title, x_label, "requests");
		fputs("</figure>\n", out);
		return;
	}
	nice_axis(d->max * scale, 5, false, &p.x_hi, &p.x_step);
	bw = p.x_step / 5;
	nbins = (size_t)ceil(p.x_hi / bw - 1e-9);
	nbins = nbins < 1 ? 1 : nbins > HIST_BINS_MAX ? HIST_BINS_MAX : nbins;
	for (size_t i = 0; i < d->n; i++) {
		size_t b = (size_t)(d->v[i] * scale / bw);

		counts[b < nbins ? b : nbins - 1]++;
	}
	for (size_t b = 0; b < nbins; b++)
		max_count = counts[b] > max_count ? counts[b] : max_count;
	nice_axis(max_count, 4, true, &p.y_hi, &p.y_step);
	plot_open(&p, title, x_label, "requests");
	for (size_t b = 0; b < nbins; b++)
		rect(&p, (double)b * bw, (double)(b + 1) * bw, 0, counts[b], color);
	for (int i = 0; i < 3; i++) { /* one label row each, so they never overlap */
		double x = px(&p, pct[i] * scale), y = 13 + 12.5 * i;
		bool left = x > (p.l + p.r) / 2;

		fprintf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
			"stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>\n<text class=\"pct\" x=\"%.1f\" "
			"y=\"%.1f\" text-anchor=\"%s\" style=\"fill:%s\">%s %s</text>\n", x, x, y + 3, p.b,
			pct_color[i], left ? x - 4 : x + 4, y, left ? "end" : "start", pct_color[i],
			pct_name[i], fmt_ms(buf, sizeof(buf), pct[i]));
	}
	plot_close(&p);
	fputs("</figure>\n", out);
}

static void render_latency(FILE *out, const struct stats *s)
{
	fputs("<section id=\"latency\">\n<h2>Latency distributions</h2>\n<div class=\"grid\">\n", out);
	chart_histogram(out, &s->ttft, "Time to first token", "", C_PREFILL);
	chart_histogram(out, &s->tpot, "Time per output token", " per token", C_GENERATE);
	chart_histogram(out, &s->queue, "Queue wait", "", C_QUEUE);
	chart_histogram(out, &s->http, "Request duration", "", C_DURATION);
	fputs("</div>\n</section>\n", out);
}

static void time_frame(struct plot *p, FILE *out, const struct stats *s, double w, double y_max,
		       bool integer)
{
	plot_frame(p, out, w, CHART_H - 20, 12);
	nice_axis((double)s->nb * s->bucket_s, w > HALF_W ? 12 : 6, false, &p->x_hi, &p->x_step);
	nice_axis(y_max, 4, integer, &p->y_hi, &p->y_step);
}

static const char *rate_label(const struct stats *s, char *buf, size_t len, const char *what)
{
	if (s->bucket_s == 1)
		snprintf(buf, len, "%s / s", what);
	else
		snprintf(buf, len, "%s / s (%g s buckets)", what, s->bucket_s);
	return buf;
}

#define TIME_LABEL "time since the recording started (s)"

static void chart_requests_rate(FILE *out, const struct stats *s, size_t n_requests)
{
	double max = 0, bs = s->bucket_s;
	char y_label[64];
	struct plot p;

	fputs("<figure>\n<figcaption>Requests completed per second <span class=\"keys\">", out);
	legend(out, C_PREFILL, "ok", false);
	legend(out, C_FAILED, "failed", false);
	fputs("</span></figcaption>\n", out);
	rate_label(s, y_label, sizeof(y_label), "requests");
	if (!n_requests) {
		plot_empty(out, FULL_W, CHART_H - 20, "requests per second", TIME_LABEL, y_label);
		fputs("</figure>\n", out);
		return;
	}
	for (size_t b = 0; b < s->nb; b++)
		max = fmax(max, (s->done[b] + s->done_failed[b]) / bs);
	time_frame(&p, out, s, FULL_W, max, bs == 1);
	plot_open(&p, "requests per second", TIME_LABEL, y_label);
	for (size_t b = 0; b < s->nb; b++) {
		double x = (double)b * bs, ok = s->done[b] / bs, bad = s->done_failed[b] / bs;

		rect(&p, x, x + bs, 0, ok, C_PREFILL);
		rect(&p, x, x + bs, ok, ok + bad, C_FAILED);
	}
	plot_close(&p);
	fputs("</figure>\n", out);
}

static void chart_tokens_rate(FILE *out, const struct stats *s, size_t n_steps, size_t n_requests)
{
	double max = 0, bs = s->bucket_s;
	char y_label[64];
	struct plot p;

	fputs("<figure>\n<figcaption>Tokens per second <span class=\"keys\">", out);
	for (int k = 0; k < SK_MAX; k++) {
		char label[48];

		snprintf(label, sizeof(label), "batch tokens: %s steps", step_kind_names[k]);
		if (k != SK_OTHER || s->batch_tokens_other)
			legend(out, step_kind_colors[k], label, false);
	}
	legend(out, C_INK, "output tokens of completed requests", true);
	fputs("</span></figcaption>\n", out);
	rate_label(s, y_label, sizeof(y_label), "tokens");
	if (!n_steps && !n_requests) {
		plot_empty(out, FULL_W, CHART_H - 20, "tokens per second", TIME_LABEL, y_label);
		fputs("</figure>\n", out);
		return;
	}
	for (size_t b = 0; b < s->nb; b++) {
		double sum = 0;

		for (int k = 0; k < SK_MAX; k++)
			sum += s->step_tokens[k][b];
		max = fmax(max, fmax(sum, s->out_tokens[b]) / bs);
	}
	time_frame(&p, out, s, FULL_W, max, false);
	plot_open(&p, "tokens per second", TIME_LABEL, y_label);
	for (size_t b = 0; b < s->nb; b++) {
		double x = (double)b * bs, y = 0;

		for (int k = 0; k < SK_MAX; k++) {
			rect(&p, x, x + bs, y, y + s->step_tokens[k][b] / bs, step_kind_colors[k]);
			y += s->step_tokens[k][b] / bs;
		}
	}
	fputs("<polyline fill=\"none\" stroke=\"" C_INK "\" stroke-width=\"2\" points=\"", out);
	for (size_t b = 0; b < s->nb; b++)
		fprintf(out, "%.1f,%.1f ", px(&p, ((double)b + 0.5) * bs), py(&p, s->out_tokens[b] / bs));
	fputs("\"/>\n", out);
	plot_close(&p);
	fputs("</figure>\n", out);
}

static void render_throughput(FILE *out, const struct trace *t, const struct stats *s)
{
	fputs("<section id=\"throughput\">\n<h2>Throughput</h2>\n", out);
	chart_requests_rate(out, s, t->reqs.n);
	chart_tokens_rate(out, s, t->steps.n, t->reqs.n);
	fputs("<p class=\"stats\">Requests and their output tokens count in the second they completed; "
	      "engine batch tokens (prompt and generated tokens the model evaluated) in the second "
	      "their step began.</p>\n</section>\n", out);
}

/* A counter as a step line: each sample holds until the next. */
static void counter_path(const struct plot *p, const struct sample *v, size_t n, bool second,
			 const char *color, bool area)
{
	double y0 = py(p, 0);

	fputs("<path d=\"", p->out);
	for (size_t i = 0; i < n; i++) {
		double x = px(p, v[i].ts / 1e6), y = py(p, second ? v[i].b : v[i].a);

		if (!i)
			fprintf(p->out, "M%.1f,%.1fV%.1f", x, area ? y0 : y, y);
		else
			fprintf(p->out, "H%.1fV%.1f", x, y);
	}
	if (area)
		fprintf(p->out, "V%.1fZ\" fill=\"%s\" fill-opacity=\"0.35\" stroke=\"none\"/>\n", y0, color);
	else
		fprintf(p->out, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n", color);
}

static void chart_kv(FILE *out, const struct trace *t, const struct stats *s)
{
	const struct sample *v = t->kv.v;
	const struct marker *m = t->markers.v;
	double max = 0;
	struct plot p;

	fputs("<figure>\n<figcaption>KV cache cells in use <span class=\"keys\">", out);
	legend(out, C_KV_LINE, "cells", true);
	if (s->markers[MK_CONTEXT_SHIFT])
		legend(out, C_FAILED, "context shift", true);
	fputs("</span></figcaption>\n", out);
	if (!t->kv.n) {
		plot_empty(out, HALF_W, CHART_H - 20, "KV cache cells", TIME_LABEL, "cells");
		fputs("</figure>\n", out);
		return;
	}
	for (size_t i = 0; i < t->kv.n; i++)
		max = fmax(max, v[i].a);
	time_frame(&p, out, s, HALF_W, max, true);
	plot_open(&p, "KV cache cells", TIME_LABEL, "cells");
	counter_path(&p, v, t->kv.n, false, C_KV, true);
	counter_path(&p, v, t->kv.n, false, C_KV_LINE, false);
	for (size_t i = 0; i < t->markers.n; i++)
		if (m[i].kind == MK_CONTEXT_SHIFT)
			fprintf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" C_FAILED
				"\" stroke-width=\"1.5\"/>\n", px(&p, m[i].ts / 1e6), px(&p, m[i].ts / 1e6),
				p.t, p.b);
	plot_close(&p);
	fputs("</figure>\n", out);
}

static void chart_active(FILE *out, const struct trace *t, const struct stats *s)
{
	const struct sample *v = t->active.v;
	struct sample *exact = NULL;
	size_t n = t->active.n;
	double max = 0, most = 0, most_queued = 0;
	struct plot p;

	/* from the requests' own times, the most at once per bucket (a step line that
	 * holds over each bucket); without requests, the sampled counters */
	if (t->reqs.n && (exact = calloc(s->nb + 1, sizeof(*exact)))) {
		for (size_t b = 0; b <= s->nb; b++) {
			exact[b].ts = (double)b * s->bucket_s * 1e6;
			exact[b].a = s->in_flight[b < s->nb ? b : s->nb - 1];
			exact[b].b = s->in_queue[b < s->nb ? b : s->nb - 1];
		}
		v = exact;
		n = s->nb + 1;
	}
	for (size_t i = 0; i < n; i++) {
		most = fmax(most, v[i].a);
		most_queued = fmax(most_queued, v[i].b);
	}
	fprintf(out, "<figure id=\"in-flight\" data-most=\"%.0f\" data-most-queued=\"%.0f\">\n"
		"<figcaption>Requests in flight <span class=\"keys\">", most, most_queued);
	legend(out, C_PREFILL, "active", true);
	legend(out, C_QUEUE, "queued", true);
	fputs("</span></figcaption>\n", out);
	if (!n) {
		plot_empty(out, HALF_W, CHART_H - 20, "requests in flight", TIME_LABEL, "requests");
		fputs("</figure>\n", out);
		return;
	}
	max = fmax(most, most_queued);
	time_frame(&p, out, s, HALF_W, max, true);
	plot_open(&p, "requests in flight", TIME_LABEL, "requests");
	counter_path(&p, v, n, true, C_QUEUE, false);
	counter_path(&p, v, n, false, C_PREFILL, false);
	plot_close(&p);
	fputs("</figure>\n", out);
	free(exact);
}

/* "; KV bytes: at most X MiB in use of Y MiB allocated", where the samples know them */
static void kv_bytes_stats(FILE *out, const struct trace *t)
{
	const struct sample *v = t->kv.v;
	double most = -1;

	for (size_t i = 0; i < t->kv.n; i++)
		most = fmax(most, v[i].b);
	if (most < 0) {
		fputs("; KV bytes unknown (model shape or context creation not seen)", out);
		return;
	}
	fprintf(out, "; KV bytes: at most %.2f MiB in use", most / (1 << 20));
	if (t->kv_capacity > 0)
		fprintf(out, " of %.2f MiB allocated", t->kv_capacity / (1 << 20));
}

static void render_kv(FILE *out, const struct trace *t, const struct stats *s)
{
	fputs("<section id=\"kv\">\n<h2>KV cache and requests over time</h2>\n<div class=\"grid\">\n", out);
	chart_kv(out, t, s);
	chart_active(out, t, s);
	fputs("</div>\n<p class=\"stats\">KV cache cells: sampled once per interval of the "
	      "recording (1 s by default)", out);
	kv_bytes_stats(out, t);
	fputs(". Requests in flight (from entering the queue to the final "
	      "token) and queued: the most at once in each time bucket, from the requests' own "
	      "times.</p>\n</section>\n", out);
}

/* A request's time as stacked segments, scaled so that full_ms fills the bar. */
static void breakdown_bar(FILE *out, const struct request *r, double full_ms)
{
	const char *names[] = { "queue", "prefill", "generation", "other (HTTP, tokenizing, sending)" };
	const char *colors[] = { C_QUEUE, C_PREFILL, C_GENERATE, C_OTHER };
	double seg[4] = { fmax(r->queue_ms, 0), fmax(r->prefill_ms, 0), fmax(r->gen_ms, 0), 0 };
	double w = 200, x = 0, sum = seg[0] + seg[1] + seg[2], total = fmax(r->http_ms, sum);
	char buf[32];

	seg[3] = total - sum;
	fprintf(out, "<svg width=\"%.0f\" height=\"14\" role=\"img\" aria-label=\"time breakdown\">"
		"<rect width=\"%.0f\" height=\"14\" fill=\"#f6f8fa\"/>", w, w);
	for (int i = 0; i < 4 && full_ms > 0; i++) {
		double sw = w * seg[i] / full_ms;

		if (sw <= 0)
			continue;
		fprintf(out, "<rect x=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"%s\"><title>%s %s</title>"
			"</rect>", x, sw, colors[i], names[i], fmt_ms(buf, sizeof(buf), seg[i]));
		x += sw;
	}
	fputs("</svg>", out);
}

/* A request's count: "?" when unknown, "–" when it has none (not inference). */
static const char *fmt_count(char *buf, size_t len, long long n, bool inference)
{
	if (n < 0)
		return inference ? "?" : "–";
	snprintf(buf, len, "%lld", n);
	return buf;
}

static void slow_row(FILE *out, const struct trace *t, const struct request *r, int rank,
		     double full_ms)
{
	const char *track = track_name(t, r->tid);
	char buf[32], n[3][24];

	fprintf(out, "<tr><td class=\"num\">%d</td><td class=\"num\">%llu</td><td class=\"name\" title=\"",
		rank, r->id);
	html(out, r->name);
	fputs("\">", out);
	html(out, r->name);
	fprintf(out, "%s</td><td>", r->stream ? " <span class=\"stats\">stream</span>" : "");
	html(out, is_slot_track(track) || r->generation ? track ?: "?" : "no slot");
	fprintf(out, "</td><td class=\"num%s\">%d%s</td><td class=\"num\">%.3f</td>"
		"<td class=\"num\">%s / %s / %s</td>", r->failed ? " bad" : "", r->status,
		r->failed ? " failed" : "", r->ts / 1e6,
		fmt_count(n[0], sizeof(n[0]), r->prompt, r->inference),
		fmt_count(n[1], sizeof(n[1]), r->cached, r->inference),
		fmt_count(n[2], sizeof(n[2]), r->output, r->inference));
	fprintf(out, "<td class=\"num\">%s</td>", r->ttft_ms > 0 ? fmt_ms(buf, sizeof(buf), r->ttft_ms) : "–");
	fprintf(out, "<td class=\"num\">%s</td><td>", fmt_ms(buf, sizeof(buf), r->http_ms));
	breakdown_bar(out, r, full_ms);
	fputs("</td></tr>\n", out);
}

static void render_slowest(FILE *out, const struct trace *t, const struct stats *s)
{
	const struct request *r = t->reqs.v;
	double full_ms = 0;

	fprintf(out, "<section id=\"slowest\">\n<h2>Slowest requests <span class=\"stats\">top %d by "
		"duration</span></h2>\n", TOP_SLOWEST);
	if (!s->n_slowest) {
		fputs("<p class=\"stats\">No requests were recorded.</p>\n</section>\n", out);
		return;
	}
	for (size_t i = 0; i < s->n_slowest; i++) {
		const struct request *q = &r[s->slowest[i]];

		full_ms = fmax(full_ms, fmax(q->http_ms, fmax(q->queue_ms, 0) + fmax(q->prefill_ms, 0) +
							  fmax(q->gen_ms, 0)));
	}
	fputs("<p class=\"keys\">", out);
	legend(out, C_QUEUE, "queue", false);
	legend(out, C_PREFILL, "prefill", false);
	legend(out, C_GENERATE, "generation", false);
	legend(out, C_OTHER, "other (HTTP, tokenizing, sending)", false);
	fputs("</p>\n<table class=\"slow\">\n<tr><th class=\"num\">#</th><th class=\"num\">id</th>"
	      "<th>request</th><th>track</th><th class=\"num\">status</th>"
	      "<th class=\"num\" title=\"slot launch (or HTTP arrival), seconds into the recording\">"
	      "start<br>(s)</th><th class=\"num\">tokens<br>prompt / cached / output</th>"
	      "<th class=\"num\">TTFT</th><th class=\"num\">duration</th><th>breakdown</th></tr>\n",
	      out);
	for (size_t i = 0; i < s->n_slowest; i++)
		slow_row(out, t, &r[s->slowest[i]], (int)i + 1, full_ms);
	fputs("</table>\n</section>\n", out);
}

static void render_foot(FILE *out, const struct trace *t)
{
	fputs("<footer>Made by llmtap " LLMTAP_VERSION " from ", out);
	html(out, t->path);
	if (t->producer[0]) {
		fputs(" (written by ", out);
		html(out, t->producer);
		fputs(")", out);
	}
	fprintf(out, ": %zu events.</footer>\n</main>\n</body>\n</html>\n", t->events);
}

static void render(FILE *out, const struct trace *t, const struct stats *s)
{
	render_head(out, t);
	render_title(out, t);
	render_summary(out, t, s);
	render_latency(out, s);
	render_throughput(out, t, s);
	render_kv(out, t, s);
	render_slowest(out, t, s);
	render_foot(out, t);
}

static int write_html(const char *path, const struct trace *t, const struct stats *s, char *err,
		      size_t errlen)
{
	FILE *out = fopen(path, "we");
	struct stat st;
	bool regular;
	int ret = 0;

	if (!out) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(-ret));
		return ret;
	}
	regular = !fstat(fileno(out), &st) && S_ISREG(st.st_mode);
	render(out, t, s);
	if (fflush(out) || ferror(out))
		ret = -(errno ? errno : EIO);
	if (fclose(out) && !ret)
		ret = -(errno ? errno : EIO);
	if (ret) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-ret));
		if (regular) /* a half-written report; never a device or a pipe */
			unlink(path);
	}
	return ret;
}

int report_write(const char *trace_path, const char *html_path, char *err, size_t errlen)
{
	struct trace t;
	struct stats s;
	int ret;

	ret = trace_load(&t, trace_path, err, errlen);
	if (ret) {
		trace_free(&t);
		return ret;
	}
	ret = compute(&t, &s);
	if (ret)
		snprintf(err, errlen, "out of memory");
	else
		ret = write_html(html_path, &t, &s, err, errlen);
	stats_free(&s);
	trace_free(&t);
	return ret;
}
