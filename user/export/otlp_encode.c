// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "export/otlp_encode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/util.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__ArrayValue ArrayValue;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Trace__V1__Status Status;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans ScopeSpans;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans ResourceSpans;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest TraceRequest;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__Gauge Gauge;
typedef Opentelemetry__Proto__Metrics__V1__Sum Sum;
typedef Opentelemetry__Proto__Metrics__V1__Histogram Histogram;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberPoint;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistogramPoint;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics ScopeMetrics;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics ResourceMetrics;
typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest MetricsRequest;

#define SCOPE_NAME "llmtap"
#define SPAN_FLAGS 0x101u /* sampled; is_remote known to be false */
#define MAX_SPAN_ATTRS 32
#define TEMP_DELTA OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA
#define TEMP_CUMULATIVE \
	OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE

/* ---- ids and sampling ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

void otlp_idgen_init(struct otlp_idgen *g)
{
	if (getrandom(g->key, sizeof(g->key), 0) != (ssize_t)sizeof(g->key)) {
		g->key[0] = 0x6c6c6d746170ull ^ (uint64_t)getpid();
		g->key[1] = (uint64_t)(uintptr_t)g;
	}
}

void otlp_trace_id(const struct otlp_idgen *g, uint64_t request_id, uint8_t id[16])
{
	uint64_t hi = mix64(g->key[0] ^ mix64(request_id)), lo = mix64(g->key[1] ^ hi);

	put_be64(id, hi | 1); /* never all zero */
	put_be64(id + 8, lo);
}

void otlp_span_id(const struct otlp_idgen *g, uint64_t request_id, uint64_t role, uint8_t id[8])
{
	put_be64(id, mix64(g->key[1] ^ mix64(request_id * 0x100000001b3ull + role)) | 1);
}

bool otlp_sample(const uint8_t trace_id[16], double ratio)
{
	uint64_t low = 0;

	if (ratio >= 1)
		return true;
	if (ratio <= 0)
		return false;
	for (int i = 8; i < 16; i++)
		low = low << 8 | trace_id[i];
	/* the lower 63 bits against ratio * 2^63, as the SDKs' TraceIdRatioBased does */
	return (double)(low >> 1) < ratio * 9223372036854775808.0;
}

/* ---- an arena: every message of one request body, freed at once ---- */

struct arena {
	struct chunk {
		struct chunk *next;
		size_t used, size;
		max_align_t data[];
	} *head;
	bool failed;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	struct chunk *c = a->head;

	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (!c || c->used + n > c->size) {
		size_t size = n > 65536 ? n : 65536;

		c = malloc(sizeof(*c) + size);
		if (!c) {
			a->failed = true;
			return NULL;
		}
		c->next = a->head;
		c->used = 0;
		c->size = size;
		a->head = c;
	}
	c->used += n;
	return memset((char *)c->data + c->used - n, 0, n);
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct chunk *next = a->head->next;

		free(a->head);
		a->head = next;
	}
}

static char *arena_str(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = arena_alloc(a, n);

	return p ? memcpy(p, s, n) : (char *)protobuf_c_empty_string;
}

/* ---- attributes ---- */

struct attrs {
	KeyValue *kv[MAX_SPAN_ATTRS];
	size_t n;
};

static AnyValue *attr_add(struct arena *a, struct attrs *at, const char *key)
{
	KeyValue *kv;
	AnyValue *v;

	if (at->n >= MAX_SPAN_ATTRS || !(kv = arena_alloc(a, sizeof(*kv))) ||
	    !(v = arena_alloc(a, sizeof(*v))))
		return NULL;
	opentelemetry__proto__common__v1__key_value__init(kv);
	opentelemetry__proto__common__v1__any_value__init(v);
	kv->key = (char *)key; /* static or arena strings only */
	kv->value = v;
	at->kv[at->n++] = kv;
	return v;
}

static void attr_str(struct arena *a, struct attrs *at, const char *key, const char *s)
{
	AnyValue *v = attr_add(a, at, key);

	if (v) {
		v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		v->string_value = arena_str(a, s);
	}
}

static void attr_int(struct arena *a, struct attrs *at, const char *key, int64_t i)
{
	AnyValue *v = attr_add(a, at, key);

	if (v) {
		v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
		v->int_value = i;
	}
}

static void attr_double(struct arena *a, struct attrs *at, const char *key, double d)
{
	AnyValue *v = attr_add(a, at, key);

	if (v) {
		v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
		v->double_value = d;
	}
}

static void attr_bool(struct arena *a, struct attrs *at, const char *key, bool b)
{
	AnyValue *v = attr_add(a, at, key);

	if (v) {
		v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
		v->bool_value = b;
	}
}

static void attr_strs(struct arena *a, struct attrs *at, const char *key, const char *const *s,
		      int n)
{
	AnyValue *v = attr_add(a, at, key);
	ArrayValue *arr;
	AnyValue **vals;

	if (!v)
		return;
	arr = arena_alloc(a, sizeof(*arr));
	vals = arena_alloc(a, sizeof(*vals) * (size_t)(n > 0 ? n : 1));
	if (!arr || !vals) {
		at->n--; /* no room: leave the attribute out */
		return;
	}
	opentelemetry__proto__common__v1__array_value__init(arr);
	for (int i = 0; i < n; i++) {
		if (!(vals[i] = arena_alloc(a, sizeof(*vals[i])))) {
			at->n--;
			return;
		}
		opentelemetry__proto__common__v1__any_value__init(vals[i]);
		vals[i]->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		vals[i]->string_value = arena_str(a, s[i]);
	}
	arr->values = vals;
	arr->n_values = (size_t)n;
	v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
	v->array_value = arr;
}

static KeyValue **attrs_copy(struct arena *a, const struct attrs *at)
{
	KeyValue **kv = arena_alloc(a, sizeof(*kv) * (at->n ? at->n : 1));

	if (kv)
		memcpy(kv, at->kv, sizeof(*kv) * at->n);
	return kv;
}

static Resource *make_resource(struct arena *a, const struct resource *r)
{
	Resource *res = arena_alloc(a, sizeof(*res));
	struct attrs at = { .n = 0 };
	KeyValue **kv;

	if (!res)
		return NULL;
	opentelemetry__proto__resource__v1__resource__init(res);
	if (!r)
		return res;
	kv = arena_alloc(a, sizeof(*kv) * (size_t)(r->n ? r->n : 1));
	if (!kv)
		return res;
	for (int i = 0; i < r->n; i++) {
		const char *key = arena_str(a, r->attrs[i].key), *v = r->attrs[i].value;
		char *end;
		long long n;

		at.n = 0;
		/* the semantic conventions' integer attributes go out as integers */
		n = strtoll(v, &end, 10);
		if ((!strcmp(key, "process.pid") || !strcmp(key, "process.parent_pid")) && *v && !*end)
			attr_int(a, &at, key, n);
		else
			attr_str(a, &at, key, v);
		if (at.n)
			kv[res->n_attributes++] = at.kv[0];
	}
	res->attributes = kv;
	return res;
}

static Scope *make_scope(struct arena *a)
{
	Scope *s = arena_alloc(a, sizeof(*s));

	if (s) {
		opentelemetry__proto__common__v1__instrumentation_scope__init(s);
		s->name = (char *)SCOPE_NAME;
		s->version = (char *)LLMTAP_VERSION;
	}
	return s;
}

/* ---- spans ---- */

struct span_list {
	Span **spans;
	size_t n, cap;
};

static Span *span_new(struct arena *a, struct span_list *l, const uint8_t trace[16],
		      const uint8_t span[8], const uint8_t *parent, const char *name, int kind,
		      uint64_t start_unix, uint64_t end_unix)
{
	Span *s;
	uint8_t *ids;

	if (l->n >= l->cap || !(s = arena_alloc(a, sizeof(*s))) || !(ids = arena_alloc(a, 32)))
		return NULL;
	opentelemetry__proto__trace__v1__span__init(s);
	memcpy(ids, trace, 16);
	memcpy(ids + 16, span, 8);
	s->trace_id = (ProtobufCBinaryData){ 16, ids };
	s->span_id = (ProtobufCBinaryData){ 8, ids + 16 };
	if (parent) {
		memcpy(ids + 24, parent, 8);
		s->parent_span_id = (ProtobufCBinaryData){ 8, ids + 24 };
	}
	s->flags = SPAN_FLAGS;
	s->name = arena_str(a, name);
	s->kind = kind;
	s->start_time_unix_nano = start_unix;
	s->end_time_unix_nano = end_unix > start_unix ? end_unix : start_unix;
	l->spans[l->n++] = s;
	return s;
}

static void span_status(struct arena *a, Span *s, bool error, const char *msg)
{
	Status *st = arena_alloc(a, sizeof(*st));

	if (!st)
		return;
	opentelemetry__proto__trace__v1__status__init(st);
	st->code = error ? OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR :
			   OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_UNSET;
	if (error && msg && msg[0])
		st->message = arena_str(a, msg);
	s->status = st;
}

static uint64_t unix_ns(const struct otlp_encode_ctx *ctx, uint64_t mono)
{
	return mono ? (uint64_t)mono_to_unix_ns(mono, ctx->realtime_offset_ns) : 0;
}

int otlp_item_spans(const struct otlp_item *it)
{
	const struct req_span *r = &it->req;

	if (!it->is_request)
		return 1;
	return 1 + (r->deferred && r->enqueue_ns && r->launch_ns >= r->enqueue_ns) +
	       (r->launch_ns && r->first_token_ns >= r->launch_ns) +
	       (r->first_token_ns && r->final_ns >= r->first_token_ns);
}

/* A float as the double its shortest decimal form names (0.95f -> 0.95, not 0.949999988). */
static double float_value(float f)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.7g", (double)f);
	return strtod(buf, NULL);
}

/* req_visit_attrs into a span's attributes */
struct attrs_into {
	struct arena *a;
	struct attrs *at;
};

static void into_str(void *arg, const char *key, const char *value)
{
	struct attrs_into *in = arg;

	attr_str(in->a, in->at, key, value);
}

static void into_int(void *arg, const char *key, int64_t value)
{
	struct attrs_into *in = arg;

	attr_int(in->a, in->at, key, value);
}

static void into_double(void *arg, const char *key, double value)
{
	struct attrs_into *in = arg;

	attr_double(in->a, in->at, key, value);
}

static void into_float(void *arg, const char *key, float value)
{
	struct attrs_into *in = arg;

	attr_double(in->a, in->at, key, float_value(value));
}

static void into_bool(void *arg, const char *key, bool value)
{
	struct attrs_into *in = arg;

	attr_bool(in->a, in->at, key, value);
}

static void into_strs(void *arg, const char *key, const char *const *values, int n)
{
	struct attrs_into *in = arg;

	attr_strs(in->a, in->at, key, values, n);
}

static const struct req_attr_visitor attrs_visitor = {
	.on_str = into_str,
	.on_int = into_int,
	.on_double = into_double,
	.on_float = into_float,
	.on_bool = into_bool,
	.on_strs = into_strs,
};

static void encode_request(struct arena *a, struct span_list *l, const struct otlp_encode_ctx *ctx,
			   const struct req_span *r)
{
	static const struct {
		const char *name;
		enum otlp_span_role role;
	} phases[] = {
		{ "queue", OTLP_ROLE_QUEUE },
		{ "prefill", OTLP_ROLE_PREFILL },
		{ "generation", OTLP_ROLE_GENERATION },
	};
	uint64_t bounds[4] = { r->deferred ? r->enqueue_ns : 0, r->launch_ns, r->first_token_ns,
			       r->final_ns };
	uint8_t trace[16], span[8], child[8];
	struct attrs at = { .n = 0 };
	struct attrs_into into = { a, &at };
	char name[sizeof(r->method) + 320];
	bool server_error;
	Span *s;

	otlp_trace_id(ctx->ids, r->id, trace);
	otlp_span_id(ctx->ids, r->id, OTLP_ROLE_SERVER, span);
	req_span_name(r, ctx->model, name, sizeof(name));
	/* an HTTP request (or a router's copy of one) is served; a generation is in-process */
	s = span_new(a, l, trace, span, NULL, name,
		     r->kind == REQ_GENERATION ?
			     OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL :
			     OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER,
		     unix_ns(ctx, r->start_ns), unix_ns(ctx, r->end_ns));
	if (!s)
		return;
	/* the server's message goes in the span's status */
	req_visit_attrs(r, ctx->model, REQ_ATTRS_TIMINGS, &attrs_visitor, &into);
	s->attributes = attrs_copy(a, &at);
	s->n_attributes = s->attributes ? at.n : 0;
	/* HTTP server spans: 5xx and requests cut short are errors, 4xx are the client's */
	server_error = r->status >= 500 || !r->complete ||
		       (req_failed(r) && r->status < 400);
	span_status(a, s, server_error, r->err_msg);

	for (size_t i = 0; i < ARRAY_SIZE(phases); i++) {
		if (!bounds[i] || bounds[i + 1] < bounds[i])
			continue;
		otlp_span_id(ctx->ids, r->id, phases[i].role, child);
		s = span_new(a, l, trace, child, span, phases[i].name,
			     OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL,
			     unix_ns(ctx, bounds[i]), unix_ns(ctx, bounds[i + 1]));
		if (!s)
			return;
		at.n = 0;
		/* the counts the phase produced, when they were measured */
		if (phases[i].role == OTLP_ROLE_PREFILL && req_knows(r, REQ_KNOWN_PROMPT)) {
			attr_int(a, &at, "gen_ai.usage.input_tokens",
				 (int64_t)r->cached_tokens + r->prompt_tokens);
			attr_int(a, &at, "gen_ai.usage.cache_read.input_tokens", r->cached_tokens);
		} else if (phases[i].role == OTLP_ROLE_GENERATION && req_knows(r, REQ_KNOWN_OUTPUT)) {
			attr_int(a, &at, "gen_ai.usage.output_tokens", r->output_tokens);
		}
		s->attributes = attrs_copy(a, &at);
		s->n_attributes = s->attributes ? at.n : 0;
	}
}

static void encode_engine(struct arena *a, struct span_list *l, const struct otlp_encode_ctx *ctx,
			  const struct otlp_item *it)
{
	const struct engine_event *e = &it->engine.ev;
	uint8_t trace[16], span[8], parent[8];
	struct attrs at = { .n = 0 };
	char name[64];
	Span *s;

	if (e->request_id) { /* a child of its request's span */
		otlp_trace_id(ctx->ids, e->request_id, trace);
		otlp_span_id(ctx->ids, e->request_id, OTLP_ROLE_SERVER, parent);
	} else { /* a trace of its own */
		otlp_trace_id(ctx->ids, (1ull << 63) | it->engine.number, trace);
	}
	otlp_span_id(ctx->ids, e->request_id, OTLP_ROLE_EVENT0 + it->engine.number, span);
	snprintf(name, sizeof(name), "llama.%s", engine_event_name(e->kind));
	s = span_new(a, l, trace, span, e->request_id ? parent : NULL, name,
		     OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL,
		     unix_ns(ctx, e->ts_ns), unix_ns(ctx, e->ts_ns + e->duration_ns));
	if (!s)
		return;
	if (e->seq >= 0)
		attr_int(a, &at, "llmtap.slot", e->seq);
	switch (e->kind) {
	case EE_CONTEXT_SHIFT:
		attr_int(a, &at, "llmtap.context_shift.tokens_discarded", e->value);
		break;
	case EE_CACHE_SAVE:
	case EE_CACHE_LOAD:
		attr_int(a, &at, "llmtap.prompt_cache.bytes", e->value);
		attr_str(a, &at, "llmtap.prompt_cache.target", e->to_file ? "file" : "memory");
		break;
	case EE_MODEL_LOAD:
		if (it->engine.text[0])
			attr_str(a, &at, "llmtap.model.file", it->engine.text);
		break;
	case EE_CONTEXT_INIT:
		attr_int(a, &at, "llmtap.context.n_ctx", e->params[0]);
		attr_int(a, &at, "llmtap.context.n_batch", e->params[1]);
		attr_int(a, &at, "llmtap.context.n_ubatch", e->params[2]);
		attr_int(a, &at, "llmtap.context.n_seq_max", e->params[3]);
		break;
	default:
		break;
	}
	s->attributes = attrs_copy(a, &at);
	s->n_attributes = s->attributes ? at.n : 0;
	span_status(a, s, !e->ok && e->kind != EE_CONTEXT_SHIFT, NULL);
}

static int pack(struct arena *a, const ProtobufCMessage *msg, uint8_t **buf, size_t *len)
{
	size_t n;

	if (a->failed)
		return -ENOMEM;
	n = protobuf_c_message_get_packed_size(msg);
	*buf = malloc(n ? n : 1);
	if (!*buf)
		return -ENOMEM;
	*len = protobuf_c_message_pack(msg, *buf);
	return 0;
}

int otlp_encode_traces(const struct otlp_encode_ctx *ctx, const struct otlp_item *items, int n,
		       uint8_t **buf, size_t *len)
{
	TraceRequest req = OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
	ResourceSpans rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT, *rsp = &rs;
	ScopeSpans ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT, *ssp = &ss;
	struct arena a = { 0 };
	struct span_list l = { 0 };
	int ret;

	for (int i = 0; i < n; i++)
		l.cap += (size_t)otlp_item_spans(&items[i]);
	l.spans = arena_alloc(&a, sizeof(Span *) * (l.cap ? l.cap : 1));
	rs.resource = make_resource(&a, ctx->resource);
	ss.scope = make_scope(&a);
	for (int i = 0; l.spans && i < n; i++) {
		if (items[i].is_request)
			encode_request(&a, &l, ctx, &items[i].req);
		else
			encode_engine(&a, &l, ctx, &items[i]);
	}
	ss.spans = l.spans;
	ss.n_spans = l.n;
	rs.scope_spans = &ssp;
	rs.n_scope_spans = 1;
	req.resource_spans = &rsp;
	req.n_resource_spans = 1;
	ret = pack(&a, &req.base, buf, len);
	arena_free(&a);
	return ret;
}

/* ---- metrics ---- */

static const struct metric_point *find_prev(const struct metrics *prev, const struct metric_point *p)
{
	for (int i = 0; prev && i < prev->n_points; i++) {
		const struct metric_point *q = &prev->points[i];

		if (q->id == p->id && metric_attrs_equal(q->attrs, q->n_attrs, p->attrs, p->n_attrs))
			return q;
	}
	return NULL;
}

static KeyValue **point_attrs(struct arena *a, const struct metric_point *p, size_t *n)
{
	struct attrs at = { .n = 0 };

	for (int i = 0; i < p->n_attrs; i++)
		attr_str(a, &at, p->attrs[i].key, p->attrs[i].value);
	*n = at.n;
	return attrs_copy(a, &at);
}

struct metric_build {
	struct arena *a;
	const struct otlp_encode_ctx *ctx;
	const struct metrics *prev;
	uint64_t prev_ns, now_ns;
	uint32_t points;
};

/* One point as an OTLP data point of in's kind; false when (delta) it did not change. */
static bool add_number(struct metric_build *b, const struct instrument *in,
		       const struct metric_point *p, void **pts, size_t *n)
{
	const struct metric_point *q = b->prev ? find_prev(b->prev, p) : NULL;
	NumberPoint *np = arena_alloc(b->a, sizeof(*np));
	double v = p->value;
	uint64_t start = p->start_ns;

	if (!np)
		return false;
	opentelemetry__proto__metrics__v1__number_data_point__init(np);
	if (in->kind == INSTR_COUNTER && b->prev) {
		if (q) {
			v -= q->value;
			start = b->prev_ns;
		}
		if (v == 0)
			return false;
	}
	np->attributes = point_attrs(b->a, p, &np->n_attributes);
	if (in->kind == INSTR_COUNTER)
		np->start_time_unix_nano = unix_ns(b->ctx, start);
	np->time_unix_nano = unix_ns(b->ctx, b->now_ns);
	np->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
	np->as_double = v;
	pts[(*n)++] = np;
	return true;
}

static bool add_histogram(struct metric_build *b, const struct instrument *in,
			  const struct metric_point *p, void **pts, size_t *n)
{
	const struct metric_point *q = b->prev ? find_prev(b->prev, p) : NULL;
	HistogramPoint *hp = arena_alloc(b->a, sizeof(*hp));
	size_t nb = (size_t)in->n_bounds + 1;
	uint64_t *counts = arena_alloc(b->a, sizeof(uint64_t) * nb);

	if (!hp || !counts)
		return false;
	opentelemetry__proto__metrics__v1__histogram_data_point__init(hp);
	hp->count = p->count;
	hp->sum = p->sum;
	hp->start_time_unix_nano = unix_ns(b->ctx, p->start_ns);
	for (size_t i = 0; i < nb; i++)
		counts[i] = p->buckets[i];
	if (b->prev && q) {
		hp->count -= q->count;
		hp->sum -= q->sum;
		for (size_t i = 0; i < nb; i++)
			counts[i] -= q->buckets[i];
		hp->start_time_unix_nano = unix_ns(b->ctx, b->prev_ns);
	}
	if (b->prev && !hp->count)
		return false;
	hp->attributes = point_attrs(b->a, p, &hp->n_attributes);
	hp->time_unix_nano = unix_ns(b->ctx, b->now_ns);
	hp->optional_sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPTIONAL_SUM_SUM;
	if (!b->prev || !q) { /* min and max are over the whole point's time only */
		if (p->count) {
			hp->optional_min_case =
				OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPTIONAL_MIN_MIN;
			hp->min = p->min;
			hp->optional_max_case =
				OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPTIONAL_MAX_MAX;
			hp->max = p->max;
		}
	}
	hp->bucket_counts = counts;
	hp->n_bucket_counts = nb;
	hp->explicit_bounds = (double *)in->bounds;
	hp->n_explicit_bounds = (size_t)in->n_bounds;
	pts[(*n)++] = hp;
	return true;
}

/* in's metric with every point of m that belongs to it; NULL when it has none. */
static Metric *make_metric(struct metric_build *b, const struct metrics *m, enum instr_id id)
{
	const struct instrument *in = metric_instrument(id);
	size_t cap = 0, n = 0;
	void **pts;
	Metric *mt;

	for (int i = 0; i < m->n_points; i++)
		cap += m->points[i].id == id;
	if (!cap || !(mt = arena_alloc(b->a, sizeof(*mt))) ||
	    !(pts = arena_alloc(b->a, sizeof(void *) * cap)))
		return NULL;
	opentelemetry__proto__metrics__v1__metric__init(mt);
	mt->name = (char *)in->name;
	mt->description = (char *)in->description;
	mt->unit = (char *)in->unit;
	for (int i = 0; i < m->n_points; i++) {
		if (m->points[i].id != id)
			continue;
		if (in->kind == INSTR_HISTOGRAM)
			add_histogram(b, in, &m->points[i], pts, &n);
		else
			add_number(b, in, &m->points[i], pts, &n);
	}
	if (!n)
		return NULL;
	b->points += (uint32_t)n;
	switch (in->kind) {
	case INSTR_GAUGE: {
		Gauge *g = arena_alloc(b->a, sizeof(*g));

		if (!g)
			return NULL;
		opentelemetry__proto__metrics__v1__gauge__init(g);
		g->data_points = (NumberPoint **)pts;
		g->n_data_points = n;
		mt->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
		mt->gauge = g;
		break;
	}
	case INSTR_COUNTER: {
		Sum *s = arena_alloc(b->a, sizeof(*s));

		if (!s)
			return NULL;
		opentelemetry__proto__metrics__v1__sum__init(s);
		s->data_points = (NumberPoint **)pts;
		s->n_data_points = n;
		s->aggregation_temporality = b->prev ? TEMP_DELTA : TEMP_CUMULATIVE;
		s->is_monotonic = 1;
		mt->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
		mt->sum = s;
		break;
	}
	case INSTR_HISTOGRAM: {
		Histogram *h = arena_alloc(b->a, sizeof(*h));

		if (!h)
			return NULL;
		opentelemetry__proto__metrics__v1__histogram__init(h);
		h->data_points = (HistogramPoint **)pts;
		h->n_data_points = n;
		h->aggregation_temporality = b->prev ? TEMP_DELTA : TEMP_CUMULATIVE;
		mt->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
		mt->histogram = h;
		break;
	}
	}
	return mt;
}

int otlp_encode_metrics(const struct otlp_encode_ctx *ctx, const struct metrics *m,
			const struct metrics *prev, uint64_t prev_ns, uint64_t now_ns,
			uint8_t **buf, size_t *len, uint32_t *n_points)
{
	MetricsRequest req =
		OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
	ResourceMetrics rm = OPENTELEMETRY__PROTO__METRICS__V1__RESOURCE_METRICS__INIT, *rmp = &rm;
	ScopeMetrics sm = OPENTELEMETRY__PROTO__METRICS__V1__SCOPE_METRICS__INIT, *smp = &sm;
	struct arena a = { 0 };
	struct metric_build b = { &a, ctx, prev, prev_ns, now_ns, 0 };
	Metric **metrics = arena_alloc(&a, sizeof(Metric *) * M_INSTR_MAX);
	int ret;

	rm.resource = make_resource(&a, ctx->resource);
	sm.scope = make_scope(&a);
	for (int id = 0; metrics && id < M_INSTR_MAX; id++) {
		Metric *mt = make_metric(&b, m, (enum instr_id)id);

		if (mt)
			metrics[sm.n_metrics++] = mt;
	}
	sm.metrics = metrics;
	rm.scope_metrics = &smp;
	rm.n_scope_metrics = 1;
	req.resource_metrics = &rmp;
	req.n_resource_metrics = 1;
	ret = pack(&a, &req.base, buf, len);
	*n_points = ret ? 0 : b.points;
	arena_free(&a);
	return ret;
}
