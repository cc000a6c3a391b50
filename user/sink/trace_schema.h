/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The trace file's names: what `llmtap record` (sink/sink_trace.c) writes and
 * `llmtap report` (report/report.c) reads back, said once.
 *
 * The file is Chrome / Perfetto trace-event JSON; the format's own keys and
 * values (traceEvents, otherData, ph, pid, tid, ts, dur, name, cat, args, id, s,
 * the phase letters, the process_name / thread_name metadata) are the format's,
 * not llmtap's, and stay spelled out. Below is what llmtap chose.
 */
#ifndef LLMTAP_TRACE_SCHEMA_H
#define LLMTAP_TRACE_SCHEMA_H

/* otherData */
#define TRACE_PRODUCER "producer" /* "llmtap VERSION" */
#define TRACE_START_UNIX_NANO "start_unix_nano" /* the Unix time of ts 0 */
#define TRACE_LIBRARY "library"
#define TRACE_MODEL "model"

/* tracks (thread_name): the engine's steps, requests without a slot, "slot N",
 * "sequence N" (an embedder's generations) */
#define TRACE_TRACK_ENGINE "engine steps"
#define TRACE_TRACK_HTTP "requests without a slot"
#define TRACE_TRACK_SLOT "slot " /* followed by the slot number */
#define TRACE_TRACK_SEQ "sequence " /* followed by the sequence id */

/* complete events (ph X) by category */
#define TRACE_CAT_STEP "step"       /* name: decode or encode */
#define TRACE_CAT_REQUEST "request" /* name: the SERVER span's, "POST /completion" */
#define TRACE_CAT_PHASE "phase"     /* name: TRACE_PREFILL or TRACE_GENERATION */
#define TRACE_PREFILL "prefill"
#define TRACE_GENERATION "generation"

/* a step's args */
#define TRACE_ARG_KIND "kind" /* TRACE_KIND_* */
#define TRACE_ARG_N_TOKENS "n_tokens"
#define TRACE_ARG_N_SEQS "n_seqs"
#define TRACE_ARG_N_OUTPUTS "n_outputs"
#define TRACE_ARG_RET "ret"
#define TRACE_ARG_COMPUTE_MS "compute_ms" /* the step's compute time; absent: unknown
					  * (the slice itself is the submit time) */
#define TRACE_KIND_PREFILL "prefill"
#define TRACE_KIND_GENERATE "generate"
#define TRACE_KIND_MIXED "mixed"
#define TRACE_KIND_UNKNOWN "unknown"

/*
 * A request's args (also on its TRACE_FAILED marker: status, complete). What llmtap
 * did not measure is absent, never 0: the token counts of a request whose counts are
 * unknown, ttft_ms when no token was seen, queue_ms when it never reached a slot.
 * A file written before kind, attribution and operation existed has HTTP requests
 * only, every count in it.
 */
#define TRACE_ARG_REQUEST "request" /* llmtap's request id */
#define TRACE_ARG_REQ_KIND "kind"   /* TRACE_REQ_*; absent: http */
#define TRACE_REQ_HTTP "http"
#define TRACE_REQ_GENERATION "generation" /* an embedder's, on a TRACE_TRACK_SEQ track */
#define TRACE_REQ_PROXY "proxy"   /* a router's copy of a request a child served */
#define TRACE_ARG_ATTRIBUTION "attribution" /* where its counts come from (llmtap.attribution) */
#define TRACE_ARG_OPERATION "operation" /* gen_ai.operation.name; absent: not inference */
#define TRACE_ARG_STATUS "status"
#define TRACE_ARG_STREAM "stream"
#define TRACE_ARG_CLIENT_PORT "client_port"
#define TRACE_ARG_PROMPT_TOKENS "prompt_tokens"
#define TRACE_ARG_CACHED_TOKENS "cached_tokens"
#define TRACE_ARG_OUTPUT_TOKENS "output_tokens"
#define TRACE_ARG_TTFT_MS "ttft_ms"
#define TRACE_ARG_QUEUE_MS "queue_ms"
#define TRACE_ARG_HTTP_MS "http_ms"
#define TRACE_ARG_FINISH "finish" /* why it ended, TRACE_FINISH_*; absent: not told */
#define TRACE_FINISH_REASONS { "stop", "length", "cancelled", "error" }
#define TRACE_ARG_COMPLETE "complete"

/* async events (ph b / e): a queue wait, id the request's */
#define TRACE_CAT_QUEUE "queue"
#define TRACE_QUEUED "queued"

/* instant events (ph i) on a slot's track; args: TRACE_ARG_VALUE, or the request's */
#define TRACE_FAILED "failed"
#define TRACE_CONTEXT_SHIFT "context_shift" /* value: tokens discarded */
#define TRACE_CACHE_SAVE "cache_save"       /* value: bytes */
#define TRACE_CACHE_LOAD "cache_load"       /* value: bytes */
#define TRACE_ARG_VALUE "value"

/* counters (ph C) and their args */
#define TRACE_BATCH_TOKENS "batch tokens"
#define TRACE_ARG_TOKENS "tokens"
#define TRACE_KV_CELLS "kv cells"
#define TRACE_ARG_CELLS "cells"
#define TRACE_ARG_BYTES "bytes"            /* KV bytes used: absent when unknown */
#define TRACE_ARG_CAPACITY "bytes_capacity" /* KV bytes allocated: absent when unknown */
#define TRACE_REQUESTS "requests"
#define TRACE_ARG_ACTIVE "active"
#define TRACE_ARG_QUEUED "queued"

/* in a writer's format string: "key": and "value" */
#define TRACE_KEY(k) "\"" k "\":"
#define TRACE_STR(v) "\"" v "\""

#endif
