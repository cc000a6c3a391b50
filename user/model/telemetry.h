/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The telemetry model: engine-step spans and the metric instruments derived
 * from them. Probes feed it decoded steps; sinks (console, JSON, top, trace,
 * OTLP) read it through struct sink (sink/sink.h) and never see probes.
 */
#ifndef LLMTAP_TELEMETRY_H
#define LLMTAP_TELEMETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "model/gauges.h"
#include "model/hist.h"
#include "model/metrics.h"
#include "model/route.h"
#include "probe/event.h"
#include "sink/sink.h"
#include "target/resource.h"

/* batch-size classes for the live "batch mix" */
enum { BATCH_1 = 0, BATCH_2_4, BATCH_5_16, BATCH_17_64, BATCH_65_512, BATCH_513_UP, BATCH_CLASSES };

/*
 * Why a generation ended (gen_ai.response.finish_reasons, a request counter's
 * finish_reason), told without reading text: from the token it ended on, the
 * server's stop-string checks, its final response, its errors and the client's
 * connection. A reason llmtap cannot tell is FINISH_UNKNOWN: left out.
 */
enum finish_reason {
	FINISH_UNKNOWN = 0,
	FINISH_STOP,      /* "stop": an end-of-generation token or a stop string */
	FINISH_LENGTH,    /* "length": a token limit (the request's, the server's, the context's) */
	FINISH_CANCELLED, /* "cancelled": the client went away before the end */
	FINISH_ERROR,     /* "error": the request or its task failed */
	FINISH_MAX,
};

#define REQ_FINISH_MAX 16 /* choices whose reasons a span carries; more: unknown */

/* Aggregates over one interval or the whole session. */
struct tm_window {
	uint64_t start_ns; /* CLOCK_MONOTONIC */
	uint64_t end_ns;
	uint64_t steps;          /* llmtap.engine.steps */
	uint64_t step_errors;    /* steps with ret != 0 */
	uint64_t tokens;         /* llmtap.engine.batch.tokens (sum) */
	uint64_t outputs;
	uint64_t sampled;        /* tokens sampled (the sampling layer) */
	uint64_t by_kind[STEP_KIND_MAX];
	uint64_t batch_mix[BATCH_CLASSES];
	uint64_t lost;           /* events lost (ring buffer full, missed entries) */
	struct hist duration_ns; /* llmtap.engine.step.duration: submit, decode entry to return */
	struct hist compute_ns;  /* llmtap.engine.step.compute.duration: the steps whose is known */
	uint64_t compute_unknown; /* steps whose compute time is unknown (model/stepsync.h) */
	struct hist batch_tokens;/* llmtap.engine.batch.size */
	/* requests (llama-server's HTTP layer); a router's proxy copies are not requests */
	uint64_t requests;
	uint64_t requests_failed;   /* status >= 400, a server error, or cut short */
	uint64_t by_route[ROUTE_KIND_MAX];
	uint64_t generations;       /* an embedder's generations (REQ_GENERATION) */
	uint64_t proxied;           /* a router's proxy copies (REQ_PROXY): the child counts them */
	/* token sums over the requests and generations whose counts llmtap measured
	 * (req_span.known); *_known: how many those were; *_unknown: the inference
	 * requests and generations whose count is unknown (in no sum) */
	uint64_t input_tokens;      /* prompt + cached */
	uint64_t cached_tokens;
	uint64_t output_tokens;
	uint64_t input_known, input_unknown;
	uint64_t output_known, output_unknown;
	/* generating requests and generations by why they ended (enum finish_reason;
	 * FINISH_UNKNOWN: not told) */
	uint64_t finish[FINISH_MAX];
	uint64_t context_shifts;
	uint64_t cache_saves;
	uint64_t cache_loads;
	uint64_t cache_bytes_saved;
	uint64_t cache_bytes_loaded;
	struct hist req_duration_ns; /* http.server.request.duration (HTTP requests) */
	struct hist ttft_ns;         /* gen_ai.server.time_to_first_token (and generations) */
	struct hist tpot_ns;         /* gen_ai.server.time_per_output_token */
	struct hist queue_ns;        /* llmtap.request.queue.duration */
};

/* Something the engine did outside a step: a point or a timed call. */
enum engine_event_kind {
	EE_CONTEXT_SHIFT = 0, /* value: tokens discarded */
	EE_CACHE_SAVE,        /* value: bytes; to_file: slot save, else host memory */
	EE_CACHE_LOAD,        /* value: bytes (0: failed) */
	EE_MODEL_LOAD,        /* ok, text: the model file */
	EE_CONTEXT_INIT,      /* ok, params: n_ctx, n_batch, n_ubatch, n_seq_max */
	EE_KIND_MAX,
};

struct engine_event {
	enum engine_event_kind kind;
	uint64_t ts_ns;       /* CLOCK_MONOTONIC start */
	uint64_t duration_ns; /* 0 for a point */
	int seq;              /* -1: not tied to a sequence */
	uint64_t request_id;  /* 0: none */
	int64_t value;
	bool ok;
	bool to_file;
	uint32_t params[4];
	const char *text;
};

const char *engine_event_name(enum engine_event_kind k);

/* What a request span stands for. */
enum req_kind {
	REQ_HTTP = 0,   /* an HTTP request to llama-server */
	REQ_GENERATION, /* a generation in an embedder: no HTTP request (engine layer only) */
	REQ_PROXY,      /* a router llama-server's copy of a request a child serves */
};

/* Where a request's token counts come from (llmtap.attribution). */
enum req_attribution {
	REQ_ATTR_NONE = 0,     /* not an inference request, or nothing of it reached the engine */
	REQ_ATTR_SERVER,       /* llama-server's task and slot records */
	REQ_ATTR_ENGINE,       /* the decode batches of its one generation (engine-first) */
	REQ_ATTR_UNATTRIBUTED, /* an inference request whose generation llmtap cannot tell */
};

/*
 * Which counts were measured (enum req_known in req_span.known). A count whose bit
 * is clear is unknown: every sink leaves it out (JSON null, no attribute, no metric
 * point), never 0. Times use 0 for "not seen" and need no bit.
 */
enum req_known {
	REQ_KNOWN_PROMPT = 1 << 0, /* prompt_tokens and cached_tokens */
	REQ_KNOWN_OUTPUT = 1 << 1, /* output_tokens */
};


/* One HTTP request to llama-server as llmtap reconstructed it (a SERVER span and
 * its queue / prefill / generation children), or one generation of an embedder
 * (kind REQ_GENERATION). Times are CLOCK_MONOTONIC ns; 0 = not seen. */
struct req_span {
	uint64_t id;            /* llmtap's own sequence number */
	enum req_kind kind;
	enum req_attribution attribution;
	unsigned int known;     /* enum req_known */
	int seq;                /* REQ_GENERATION: its sequence id */
	uint32_t tid;           /* the HTTP worker thread */
	uint64_t start_ns;
	uint64_t end_ns;
	char method[16];
	char path[LLMTAP_PATH_LEN];
	char client[LLMTAP_ADDR_LEN];
	int client_port;
	int server_port;
	int status;             /* HTTP status, 0 when not seen */
	struct route route;
	bool stream;            /* the server streamed partial responses */
	bool complete;          /* seen from its first to its last byte */
	int n_tasks;            /* engine tasks it created */
	int slot;               /* slot (= sequence) of its first task, -1 when none */
	bool deferred;          /* waited in the queue for a free slot */
	uint64_t enqueue_ns;    /* its first task was created */
	uint64_t launch_ns;     /* its first task started on a slot */
	uint64_t first_token_ns;
	uint64_t final_ns;      /* the server sent its final result */
	uint32_t cached_tokens; /* prompt tokens reused from the KV cache */
	uint32_t prompt_tokens; /* prompt tokens decoded */
	uint32_t output_tokens; /* tokens sampled */
	uint32_t context_shifts;
	uint32_t cache_loads;     /* prompt state restored into its slot */
	uint64_t cache_bytes_loaded;
	uint32_t tokenize_calls;  /* llama_tokenize on its HTTP thread */
	uint64_t sampling_ns;     /* time in common_sampler_sample for its tokens */
	uint32_t draft_tokens;    /* drafted by a draft model (speculative decoding) */
	bool has_sampling;      /* the sampler parameters of its first task were seen */
	uint32_t seed;
	int32_t top_k;
	float top_p;
	float temperature;
	int err_type;           /* llama-server's error_type, -1 when none */
	char err_msg[LLMTAP_MSG_LEN];
	/* enum finish_reason of each choice (task), in task order; n_finish 0: unknown,
	 * or not a generation */
	uint8_t finish[REQ_FINISH_MAX];
	uint8_t n_finish;
	int32_t max_tokens;     /* gen_ai.request.max_tokens; 0: not known, -1: no limit */
};

struct tm_target {
	int pid;
	const char *comm;
	const char *library;
	const char *llama_version; /* "b1-de3ff81 (libllama 0.5.0)", "unknown"; NULL: not read */
	bool in_executable;
	const char *layers; /* "engine,sampling,server,http": what is attached */
	const char *model;  /* general.name from the GGUF header, else the file's name; "" unknown */
	const char *model_arch; /* general.architecture, "" when unknown */
	const struct resource *resource; /* OpenTelemetry resource, NULL when unknown */
};

struct tm_snapshot {
	const struct tm_target *target;
	const struct tm_window *interval; /* NULL in a summary */
	const struct tm_window *total;
	int64_t realtime_offset_ns; /* add to CLOCK_MONOTONIC to get the Unix time */
	const char *end_reason;     /* summary only */
	const struct tm_gauges *gauges;
	const struct metrics *metrics; /* cumulative instruments */
	uint64_t now_ns;
};

#define TM_MAX_SINKS 8

struct telemetry {
	struct tm_target target;
	struct tm_window interval;
	struct tm_window total;
	uint64_t lost_seen; /* cumulative lost count at the last tick */
	struct tm_gauges gauges;
	struct metrics metrics;
	int64_t realtime_offset_ns;
	struct sink sinks[TM_MAX_SINKS];
	int n_sinks;
};

void telemetry_init(struct telemetry *tm, const struct tm_target *t, uint64_t now_ns);
int telemetry_add_sink(struct telemetry *tm, struct sink s);
void telemetry_attached(struct telemetry *tm);
void telemetry_step(struct telemetry *tm, const struct step *s);
void telemetry_request(struct telemetry *tm, const struct req_span *r);
/* One token sampled; duration_ns 0 when the sampler was seen at its entry only. */
void telemetry_sampled(struct telemetry *tm, uint64_t end_ns, uint64_t duration_ns);
void telemetry_engine_event(struct telemetry *tm, const struct engine_event *e);
void telemetry_set_gauges(struct telemetry *tm, const struct tm_gauges *g);
/* lost_total: the probes' cumulative lost-event count. */
void telemetry_tick(struct telemetry *tm, uint64_t now_ns, uint64_t lost_total);
/* Derived request times (0 when a phase was not seen, or, for the time per output
 * token, when the output count is unknown). */
uint64_t req_queue_ns(const struct req_span *r);
/* Whether its queue time was measured (the server layer saw its task start). */
bool req_has_queue(const struct req_span *r);
uint64_t req_ttft_ns(const struct req_span *r);
uint64_t req_tpot_ns(const struct req_span *r);
/* Whether every count in bits (enum req_known) was measured. */
static inline bool req_knows(const struct req_span *r, unsigned int bits)
{
	return (r->known & bits) == bits;
}
/* http.route: the route's template, "other" when none was seen */
const char *req_route(const struct req_span *r);
/* "stop", "length", "cancelled", "error"; NULL for FINISH_UNKNOWN */
const char *finish_reason_name(enum finish_reason f);
/* The one reason all of a request's choices share (a counter's finish_reason), else
 * FINISH_UNKNOWN. */
enum finish_reason req_finish(const struct req_span *r);
/* "http", "generation", "proxy" */
const char *req_kind_name(enum req_kind k);
/* llmtap.attribution: "none", "server", "engine", "unattributed" */
const char *req_attribution_name(enum req_attribution a);
/* gen_ai.operation.name: a generation's "text_completion", an HTTP request's (or its
 * proxy copy's) by its route; NULL for a request that is not inference */
const char *req_operation(const struct req_span *r);
bool req_failed(const struct req_span *r);
/* error.type of a failed request ("incomplete", the HTTP status, server_error_N), "" if ok */
void req_error_type(const struct req_span *r, char *buf, size_t len);
/*
 * The span's name: an HTTP request's "{method} {http.route}", its proxy copy's
 * "proxy {method} {http.route}", a generation's "{gen_ai.operation.name}
 * {gen_ai.request.model}" (model NULL or "": the operation alone).
 */
void req_span_name(const struct req_span *r, const char *model, char *buf, size_t len);

/*
 * A request's attributes under their OpenTelemetry names (HTTP server, GenAI), one
 * call each, always in the same order: the one definition of the set that the JSON
 * lines and the OTLP spans both carry. A string value lasts only for its call.
 * A generation has no HTTP attributes; a count llmtap did not measure (req_span.known)
 * is left out; llmtap.attribution says where the counts come from.
 */
struct req_attr_visitor {
	void (*on_str)(void *arg, const char *key, const char *value);
	void (*on_int)(void *arg, const char *key, int64_t value);
	void (*on_double)(void *arg, const char *key, double value);
	void (*on_float)(void *arg, const char *key, float value); /* the sampling parameters */
	void (*on_bool)(void *arg, const char *key, bool value);
	/* a string array (gen_ai.response.finish_reasons): n >= 1 values */
	void (*on_strs)(void *arg, const char *key, const char *const *values, int n);
};

/* Beyond the common set, what one output carries and the other says elsewhere. */
enum req_attr_extras {
	/* llmtap.error.message: the server's message (OTLP: the span status's) */
	REQ_ATTRS_ERROR_MESSAGE = 1 << 0,
	/* llmtap.slot, llmtap.sequence (a generation's), llmtap.queue.duration,
	 * gen_ai.server.time_to_first_token, llmtap.context.shifts,
	 * llmtap.prompt_cache.bytes_loaded, llmtap.incomplete
	 * (the JSON record has fields of its own for these) */
	REQ_ATTRS_TIMINGS = 1 << 1,
};

/* model: gen_ai.request.model of an inference request, NULL or "" to leave it out;
 * extras: enum req_attr_extras. */
void req_visit_attrs(const struct req_span *r, const char *model, unsigned int extras,
		     const struct req_attr_visitor *v, void *arg);
/* n per second over the window */
double tm_window_rate(const struct tm_window *w, uint64_t n);
void telemetry_finish(struct telemetry *tm, uint64_t now_ns, uint64_t lost_total,
		      const char *reason);
void telemetry_destroy(struct telemetry *tm);

int batch_class(int32_t n_tokens);
const char *batch_class_name(int c);
/* Whether a tick is due at now; then *next_ns moves one interval on (to now + interval
 * when the loop fell further behind). */
bool tm_tick_due(uint64_t now_ns, uint64_t *next_ns, uint64_t interval_ns);

#endif
