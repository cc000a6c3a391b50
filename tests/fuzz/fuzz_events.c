// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The probes' ring-buffer records, which a traced process shapes (its pointers,
 * its strings, its timing): the input is records, each a 16-bit little-endian
 * length and that many bytes, decoded (event_decode, step_assemble) into the
 * correlator and through the telemetry model to the JSON-lines and trace-file
 * sinks and the OTLP encoder (spans as they come, metrics at each tick).
 */
#include "fuzz.h"

#include <stdio.h>

#include "export/otlp_encode.h"
#include "llmtap_sites.h"
#include "model/correlate.h"
#include "model/layercheck.h"
#include "model/telemetry.h"
#include "probe/event.h"
#include "sink/sinks.h"

#define SEC 1000000000ull

struct enc_sink {
	struct otlp_encode_ctx ctx;
	struct otlp_idgen ids;
	uint64_t numbers;
};

static void encode_item(struct enc_sink *e, const struct otlp_item *it, int64_t off)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	e->ctx.realtime_offset_ns = off;
	if (otlp_item_spans(it) < 1)
		abort();
	if (!otlp_encode_traces(&e->ctx, it, 1, &buf, &len))
		free(buf);
}

static void enc_request(void *self, const struct req_span *r, int64_t off)
{
	struct otlp_item *it = calloc(1, sizeof(*it));

	if (!it)
		abort();
	it->is_request = true;
	it->req = *r;
	encode_item(self, it, off);
	free(it);
}

static void enc_engine_event(void *self, const struct engine_event *ev, int64_t off)
{
	struct enc_sink *e = self;
	struct otlp_item *it = calloc(1, sizeof(*it));

	if (!it)
		abort();
	it->engine.ev = *ev;
	it->engine.number = ++e->numbers;
	snprintf(it->engine.text, sizeof(it->engine.text), "%s", ev->text ? ev->text : "");
	it->engine.ev.text = NULL;
	encode_item(e, it, off);
	free(it);
}

static void enc_metrics(void *self, const struct tm_snapshot *snap)
{
	struct enc_sink *e = self;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint32_t n = 0;

	if (!snap->metrics)
		return;
	e->ctx.realtime_offset_ns = snap->realtime_offset_ns;
	if (!otlp_encode_metrics(&e->ctx, snap->metrics, NULL, 0, snap->now_ns, &buf, &len, &n))
		free(buf);
}

static void enc_destroy(void *self)
{
	free(self);
}

static const struct sink_ops enc_ops = {
	.request = enc_request,
	.engine_event = enc_engine_event,
	.interval = enc_metrics,
	.summary = enc_metrics,
	.destroy = enc_destroy,
};

static char trace_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct resource res = { .n = 1, .attrs = { { "service.name", "llama-server" } } };
	const struct tm_target target = {
		.pid = 7, .comm = "llama-server", .library = "/opt/llama/libllama.so",
		.layers = "engine,sampling,server,http", .model = "tiny", .model_arch = "llama",
		.resource = &res,
	};
	struct telemetry *tm = calloc(1, sizeof(*tm));
	struct step_assembler *asm_ = calloc(1, sizeof(*asm_));
	struct event *ev = malloc(sizeof(*ev));
	struct enc_sink *enc = calloc(1, sizeof(*enc));
	struct correlator *c;
	struct layercheck *lc;
	/* which layers are attached (engine always) follows the input's size, so the
	 * engine-first paths are fuzzed too and the records keep their meaning */
	unsigned int layers = 1u | (unsigned int)(size % (1u << LAYER_MAX));
	struct sink s;
	uint64_t now = SEC;
	char err[256];
	FILE *json = fopen("/dev/null", "we");
	size_t off = 0;
	int n = 0;

	if (!tm || !asm_ || !ev || !enc || !json)
		abort();
	if (!trace_path[0])
		snprintf(trace_path, sizeof(trace_path), "/tmp/llmtap-fuzz-events-%d.json", (int)getpid());
	telemetry_init(tm, &target, now);
	if (sink_json_new(json, true, &s, err, sizeof(err)) || telemetry_add_sink(tm, s))
		abort();
	if (sink_trace_new(trace_path, &s, err, sizeof(err)) || telemetry_add_sink(tm, s))
		abort();
	memset(enc->ids.key, 0x5a, sizeof(enc->ids.key)); /* deterministic: no getrandom */
	enc->ctx = (struct otlp_encode_ctx){ .resource = &res, .model = "tiny", .ids = &enc->ids };
	if (telemetry_add_sink(tm, (struct sink){ .ops = &enc_ops, .self = enc }))
		abort();
	telemetry_attached(tm);
	c = correlator_new(tm, layers);
	lc = layercheck_new(layers);
	if (!c || !lc)
		abort();
	while (off + 2 <= size) {
		size_t len = data[off] | (size_t)data[off + 1] << 8;
		uint8_t *rec;

		off += 2;
		if (len > size - off)
			len = size - off;
		rec = malloc(len ? len : 1); /* exact bounds for ASan */
		if (!rec)
			abort();
		memcpy(rec, data + off, len);
		off += len;
		if (!event_decode(rec, len, ev) &&
		    (ev->kind != LLMTAP_EV_STEP || step_assemble(asm_, &ev->step, &ev->step))) {
			unsigned int off_now = layercheck_event(lc, ev, err, sizeof(err));

			for (int l = 0; l < LAYER_MAX; l++)
				if (off_now & (1u << l))
					correlator_disable_layer(c, (enum llmtap_layer)l);
			correlator_event(c, ev);
		}
		free(rec);
		if (++n % 8 == 0) {
			struct tm_gauges g;
			struct ctx_creation cc;

			now += SEC;
			correlator_tick(c, now, (uint64_t)n / 64);
			correlator_gauges(c, &g);
			if (correlator_context(c, &cc) &&
			    strnlen(cc.model_path, sizeof(cc.model_path)) >= sizeof(cc.model_path))
				abort(); /* a model's path always ends in the struct */
			telemetry_set_gauges(tm, &g);
			telemetry_tick(tm, now, (uint64_t)n / 8);
		}
	}
	correlator_flush(c, now + SEC);
	telemetry_finish(tm, now + SEC, (uint64_t)n, "fuzz");
	correlator_free(c);
	layercheck_free(lc);
	telemetry_destroy(tm);
	fclose(json);
	unlink(trace_path);
	free(ev);
	free(asm_);
	free(tm);
	return 0;
}
