// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* JSON-lines sink: one object per line, for scripts. Times are Unix nanoseconds. */
#include "sink/sinks.h"
#include "model/telemetry.h"
#include "sink/sink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/json.h"

struct json_sink {
	FILE *out;
	bool steps;
	int pid; /* the target's: on every record (the daemon writes several targets' records) */
	char model[256]; /* a generation's span name */
};

/* ,"key":N, or null when it is unknown */
static void json_count(FILE *out, const char *key, bool known, unsigned long long n)
{
	if (known)
		fprintf(out, ",\"%s\":%llu", key, n);
	else
		fprintf(out, ",\"%s\":null", key);
}

/* A histogram; without samples its min, max and percentiles are null, not 0. */
static void json_hist(FILE *out, const char *name, const struct hist *h, double scale)
{
	if (!h->count) {
		fprintf(out, ",\"%s\":{\"count\":0,\"sum\":0,\"min\":null,\"max\":null,"
			     "\"p50\":null,\"p90\":null,\"p99\":null}", name);
		return;
	}
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
		mono_to_unix_ns(w->start_ns, off), mono_to_unix_ns(w->end_ns, off));
	fprintf(out, ",\"steps\":%llu,\"failed_steps\":%llu,\"tokens\":%llu,\"outputs\":%llu,"
		     "\"sampled_tokens\":%llu",
		(unsigned long long)w->steps, (unsigned long long)w->step_errors,
		(unsigned long long)w->tokens, (unsigned long long)w->outputs,
		(unsigned long long)w->sampled);
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
	json_hist(out, "step_compute_duration_s", &w->compute_ns, 1e-9);
	fprintf(out, ",\"step_compute_unknown\":%llu", (unsigned long long)w->compute_unknown);
	json_hist(out, "batch_tokens", &w->batch_tokens, 1);
	fprintf(out, ",\"requests\":%llu,\"failed_requests\":%llu,\"requests_by_route\":{",
		(unsigned long long)w->requests, (unsigned long long)w->requests_failed);
	for (int k = 0, n = 0; k < ROUTE_KIND_MAX; k++)
		if (w->by_route[k])
			fprintf(out, "%s\"%s\":%llu", n++ ? "," : "", route_kind_name((enum route_kind)k),
				(unsigned long long)w->by_route[k]);
	fprintf(out, "},\"generations\":%llu,\"proxied\":%llu", (unsigned long long)w->generations,
		(unsigned long long)w->proxied);
	/* generating requests and generations by why they ended; "unknown": not told */
	fputs(",\"finish_reasons\":{", out);
	for (int f = FINISH_STOP; f < FINISH_MAX; f++)
		fprintf(out, "\"%s\":%llu,", finish_reason_name((enum finish_reason)f),
			(unsigned long long)w->finish[f]);
	fprintf(out, "\"unknown\":%llu}", (unsigned long long)w->finish[FINISH_UNKNOWN]);
	/* sums over the known counts: null when every count was unknown */
	json_count(out, "input_tokens", w->input_known || !w->input_unknown, w->input_tokens);
	json_count(out, "cached_tokens", w->input_known || !w->input_unknown, w->cached_tokens);
	json_count(out, "output_tokens", w->output_known || !w->output_unknown, w->output_tokens);
	fprintf(out, ",\"input_tokens_unknown\":%llu,\"output_tokens_unknown\":%llu,"
		     "\"context_shifts\":%llu,\"cache_saves\":%llu,\"cache_loads\":%llu,"
		     "\"cache_bytes_saved\":%llu,\"cache_bytes_loaded\":%llu",
		(unsigned long long)w->input_unknown, (unsigned long long)w->output_unknown,
		(unsigned long long)w->context_shifts,
		(unsigned long long)w->cache_saves, (unsigned long long)w->cache_loads,
		(unsigned long long)w->cache_bytes_saved, (unsigned long long)w->cache_bytes_loaded);
	json_hist(out, "request_duration_s", &w->req_duration_ns, 1e-9);
	json_hist(out, "time_to_first_token_s", &w->ttft_ns, 1e-9);
	json_hist(out, "time_per_output_token_s", &w->tpot_ns, 1e-9);
	json_hist(out, "queue_duration_s", &w->queue_ns, 1e-9);
}

static void json_str_or_null(FILE *out, const char *key, const char *v)
{
	if (v)
		fprintf(out, ",\"%s\":\"%s\"", key, v); /* llmtap's own names: no escaping */
	else
		fprintf(out, ",\"%s\":null", key);
}

/* KV-cache bytes (user/model/kvmem.h): null where unknown */
static void json_kv_mem(FILE *out, const struct tm_kv_mem *kv, uint64_t cells)
{
	uint64_t bpc = kv->bytes_per_cell;

	json_count(out, "kv_bytes_per_cell", bpc, bpc);
	json_count(out, "kv_bytes_used", bpc, cells * bpc);
	json_count(out, "kv_cells_capacity", kv->cells_capacity, kv->cells_capacity);
	json_count(out, "kv_bytes_capacity", bpc && kv->cells_capacity, kv->cells_capacity * bpc);
	json_str_or_null(out, "kv_type_k", kv->type_k);
	json_str_or_null(out, "kv_type_v", kv->type_v);
	json_str_or_null(out, "kv_device", kv->device);
}

static void json_gauges(FILE *out, const struct tm_gauges *g)
{
	if (!g)
		return;
	fprintf(out, ",\"active_requests\":%u", g->active_requests);
	json_count(out, "queued_tasks", g->queue_known, g->queued_tasks);
	fprintf(out, ",\"busy_slots\":%u,\"kv_cells\":%llu", g->busy_slots,
		(unsigned long long)g->kv_cells);
	if (g->n_ctx)
		fprintf(out, ",\"n_ctx\":%u,\"kv_usage_ratio\":%.6f", g->n_ctx,
			(double)g->kv_cells / g->n_ctx);
	if (g->rss_bytes)
		fprintf(out, ",\"process_rss_bytes\":%llu", (unsigned long long)g->rss_bytes);
	json_kv_mem(out, &g->kv_mem, g->kv_cells);
}

static void json_attached(void *self, const struct tm_target *t)
{
	struct json_sink *j = self;

	j->pid = t->pid;
	snprintf(j->model, sizeof(j->model), "%s", t->model ? t->model : "");
	fprintf(j->out, "{\"type\":\"attach\",\"pid\":%d,\"comm\":", t->pid);
	json_write_string(j->out, t->comm);
	fputs(",\"library\":", j->out);
	json_write_string(j->out, t->library);
	if (t->llama_version) {
		fputs(",\"llama_cpp\":", j->out);
		json_write_string(j->out, t->llama_version);
	}
	fprintf(j->out, ",\"in_executable\":%s,\"layers\":", t->in_executable ? "true" : "false");
	json_write_string(j->out, t->layers);
	fputs(",\"model\":", j->out);
	json_write_string(j->out, t->model ? t->model : "");
	fputs(",\"model_architecture\":", j->out);
	json_write_string(j->out, t->model_arch ? t->model_arch : "");
	if (t->resource) {
		fputs(",\"resource\":{", j->out);
		for (int i = 0; i < t->resource->n; i++) {
			fputs(i ? "," : "", j->out);
			json_write_string(j->out, t->resource->attrs[i].key);
			fputc(':', j->out);
			json_write_string(j->out, t->resource->attrs[i].value);
		}
		fputc('}', j->out);
	}
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
		"\"n_tokens\":%d,\"n_seqs\":%u,\"n_outputs\":%u,\"flags\":%u",
		step_op_name(s->op), s->pid, s->tid, (unsigned long long)s->ctx,
		mono_to_unix_ns(s->start_ns, off), (unsigned long long)(s->end_ns - s->start_ns), s->ret,
		step_kind_name(s->kind), s->n_tokens, s->n_seqs, s->n_outputs, s->flags);
	/* duration_ns is the submit time; compute_ns null when unknown */
	if (step_compute_known(s))
		fprintf(j->out, ",\"compute_ns\":%llu,\"seqs\":[",
			(unsigned long long)step_compute_ns(s));
	else
		fputs(",\"compute_ns\":null,\"seqs\":[", j->out);
	for (uint32_t i = 0; i < s->n_runs; i++) {
		const struct llmtap_run *r = &s->runs[i];

		fprintf(j->out, "%s{\"seq\":%d,\"n_tokens\":%u,\"pos_first\":%d,\"pos_last\":%d,\"n_outputs\":%u",
			i ? "," : "", r->seq_id, r->n_tokens, r->pos_first, r->pos_last, r->n_outputs);
		if (s->request_ids[i])
			fprintf(j->out, ",\"request\":%llu", (unsigned long long)s->request_ids[i]);
		fputc('}', j->out);
	}
	fputs("]}\n", j->out);
}

static void json_child(FILE *out, bool *first, const char *name, uint64_t start, uint64_t end,
		       int64_t off)
{
	if (!start || end < start)
		return;
	fprintf(out, "%s{\"name\":\"%s\",\"start_unix_nano\":%lld,\"duration_ns\":%llu}",
		*first ? "" : ",", name, mono_to_unix_ns(start, off), (unsigned long long)(end - start));
	*first = false;
}

/* req_visit_attrs as the members of a JSON object */
struct attr_out {
	FILE *out;
	bool first;
};

static FILE *attr_key(struct attr_out *o, const char *key)
{
	if (!o->first)
		fputc(',', o->out);
	o->first = false;
	json_write_string(o->out, key);
	fputc(':', o->out);
	return o->out;
}

static void out_str(void *arg, const char *key, const char *value)
{
	json_write_string(attr_key(arg, key), value);
}

static void out_int(void *arg, const char *key, int64_t value)
{
	fprintf(attr_key(arg, key), "%lld", (long long)value);
}

static void out_double(void *arg, const char *key, double value)
{
	fprintf(attr_key(arg, key), "%.9g", value);
}

static void out_float(void *arg, const char *key, float value)
{
	fprintf(attr_key(arg, key), "%.9g", (double)value);
}

static void out_bool(void *arg, const char *key, bool value)
{
	fputs(value ? "true" : "false", attr_key(arg, key));
}

static void out_strs(void *arg, const char *key, const char *const *values, int n)
{
	FILE *out = attr_key(arg, key);

	fputc('[', out);
	for (int i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		json_write_string(out, values[i]);
	}
	fputc(']', out);
}

static const struct req_attr_visitor attr_writer = {
	.on_str = out_str,
	.on_int = out_int,
	.on_double = out_double,
	.on_float = out_float,
	.on_bool = out_bool,
	.on_strs = out_strs,
};

/* ,"key":ns, or null for a time that was not seen (0) */
static void json_time(FILE *out, const char *key, uint64_t ns)
{
	json_count(out, key, ns != 0, (unsigned long long)ns);
}

static void json_request(void *self, const struct req_span *r, int64_t off)
{
	struct json_sink *j = self;
	FILE *out = j->out;
	struct attr_out attrs = { out, true };
	char name[sizeof(r->method) + sizeof(j->model) + 64];
	bool first = true, prompt = req_knows(r, REQ_KNOWN_PROMPT);

	fprintf(out, "{\"type\":\"request\",\"pid\":%d,\"id\":%llu,\"kind\":\"%s\","
		"\"attribution\":\"%s\",\"name\":", j->pid, (unsigned long long)r->id,
		req_kind_name(r->kind), req_attribution_name(r->attribution));
	req_span_name(r, j->model, name, sizeof(name));
	json_write_string(out, name);
	fprintf(out, ",\"start_unix_nano\":%lld,\"duration_ns\":%llu,\"complete\":%s",
		mono_to_unix_ns(r->start_ns, off),
		(unsigned long long)(r->end_ns > r->start_ns ? r->end_ns - r->start_ns : 0),
		r->complete ? "true" : "false");
	fprintf(out, ",\"endpoint\":\"%s\",\"stream\":%s,\"tasks\":%d,\"slot\":%d",
		r->kind == REQ_GENERATION ? "generation" : route_kind_name(r->route.kind),
		r->stream ? "true" : "false", r->n_tasks, r->slot);
	if (r->kind == REQ_GENERATION)
		fprintf(out, ",\"seq\":%d", r->seq);
	fprintf(out, ",\"queued\":%s", r->deferred ? "true" : "false");
	/* unseen times and unmeasured counts are null, never 0 */
	json_count(out, "queue_ns", req_has_queue(r), (unsigned long long)req_queue_ns(r));
	json_time(out, "ttft_ns", req_ttft_ns(r));
	json_time(out, "tpot_ns", req_tpot_ns(r));
	json_count(out, "prompt_tokens", prompt, r->prompt_tokens);
	json_count(out, "cached_tokens", prompt, r->cached_tokens);
	json_count(out, "output_tokens", req_knows(r, REQ_KNOWN_OUTPUT), r->output_tokens);
	fprintf(out, ",\"context_shifts\":%u,\"cache_loads\":%u,\"cache_bytes_loaded\":%llu,"
		     "\"tokenize_calls\":%u,\"sampling_ns\":%llu,\"draft_tokens\":%u,\"failed\":%s",
		r->context_shifts, r->cache_loads, (unsigned long long)r->cache_bytes_loaded,
		r->tokenize_calls, (unsigned long long)r->sampling_ns, r->draft_tokens,
		req_failed(r) ? "true" : "false");
	fputs(",\"attributes\":{", out);
	req_visit_attrs(r, NULL, REQ_ATTRS_ERROR_MESSAGE, &attr_writer, &attrs);
	fputs("},\"children\":[", out);
	json_child(out, &first, "queue", r->deferred ? r->enqueue_ns : 0, r->launch_ns, off);
	json_child(out, &first, "prefill", r->launch_ns, r->first_token_ns ? r->first_token_ns : r->final_ns, off);
	json_child(out, &first, "generation", r->first_token_ns, r->final_ns, off);
	fputs("]}\n", out);
}

static void json_engine_event(void *self, const struct engine_event *e, int64_t off)
{
	struct json_sink *j = self;

	fprintf(j->out, "{\"type\":\"%s\",\"pid\":%d,\"time_unix_nano\":%lld,\"duration_ns\":%llu,"
		"\"seq\":%d", engine_event_name(e->kind), j->pid, mono_to_unix_ns(e->ts_ns, off),
		(unsigned long long)e->duration_ns, e->seq);
	if (e->request_id)
		fprintf(j->out, ",\"request\":%llu", (unsigned long long)e->request_id);
	switch (e->kind) {
	case EE_CONTEXT_SHIFT:
		fprintf(j->out, ",\"n_discard\":%lld", (long long)e->value);
		break;
	case EE_CACHE_SAVE:
	case EE_CACHE_LOAD:
		fprintf(j->out, ",\"bytes\":%lld,\"target\":\"%s\"", (long long)e->value,
			e->to_file ? "file" : "memory");
		if (e->text && e->text[0]) {
			fputs(",\"path\":", j->out);
			json_write_string(j->out, e->text);
		}
		break;
	case EE_MODEL_LOAD:
		fputs(",\"path\":", j->out);
		json_write_string(j->out, e->text);
		break;
	case EE_CONTEXT_INIT:
		fprintf(j->out, ",\"n_ctx\":%u,\"n_batch\":%u,\"n_ubatch\":%u,\"n_seq_max\":%u",
			e->params[0], e->params[1], e->params[2], e->params[3]);
		break;
	default:
		break;
	}
	fprintf(j->out, ",\"ok\":%s}\n", e->ok ? "true" : "false");
}

static void json_interval(void *self, const struct tm_snapshot *snap)
{
	struct json_sink *j = self;

	fprintf(j->out, "{\"type\":\"interval\",\"pid\":%d", snap->target->pid);
	json_window(j->out, snap->interval, snap->realtime_offset_ns);
	json_gauges(j->out, snap->gauges);
	fputs("}\n", j->out);
	fflush(j->out);
}

static void json_summary(void *self, const struct tm_snapshot *snap)
{
	struct json_sink *j = self;

	fprintf(j->out, "{\"type\":\"summary\",\"pid\":%d,\"end_reason\":", snap->target->pid);
	json_write_string(j->out, snap->end_reason);
	fputs(",\"layers\":", j->out); /* what is left: a layer may have been turned off */
	json_write_string(j->out, snap->target->layers);
	json_window(j->out, snap->total, snap->realtime_offset_ns);
	json_gauges(j->out, snap->gauges);
	if (snap->metrics) {
		fputs(",\"metrics\":", j->out);
		metrics_write_json(snap->metrics, j->out, snap->realtime_offset_ns, snap->now_ns);
	}
	fputs("}\n", j->out);
	fflush(j->out);
}

static void json_layer_off(void *self, const struct tm_target *t, const char *layer,
			   const char *why)
{
	struct json_sink *j = self;

	fprintf(j->out, "{\"type\":\"layer_off\",\"pid\":%d,\"time_unix_nano\":%lld,\"layer\":",
		t->pid, mono_to_unix_ns(monotonic_ns(), realtime_offset_ns()));
	json_write_string(j->out, layer);
	fputs(",\"reason\":", j->out);
	json_write_string(j->out, why);
	if (t->llama_version) {
		fputs(",\"llama_cpp\":", j->out);
		json_write_string(j->out, t->llama_version);
	}
	fputs(",\"layers\":", j->out);
	json_write_string(j->out, t->layers);
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
	.request = json_request,
	.engine_event = json_engine_event,
	.interval = json_interval,
	.summary = json_summary,
	.layer_off = json_layer_off,
	.destroy = json_destroy,
};

int sink_json_new(FILE *out, bool steps, struct sink *s, char *err, size_t errlen)
{
	struct json_sink *j = calloc(1, sizeof(*j));

	if (!j) {
		snprintf(err, errlen, "the JSON output: %s", strerror(errno));
		return -ENOMEM;
	}
	j->out = out;
	j->steps = steps;
	s->ops = &json_ops;
	s->self = j;
	return 0;
}
