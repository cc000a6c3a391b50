/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Correlation: turns the probes' events into requests. Per HTTP thread it
 * follows a request from its first byte to its last, collects the task ids the
 * thread creates, follows each task onto its slot (slot id == sequence id), and
 * charges that sequence's decoded and sampled tokens to the request.
 */
#ifndef LLMTAP_CORRELATE_H
#define LLMTAP_CORRELATE_H

#include <stdbool.h>
#include <stdint.h>

#include "llmtap_sites.h"

#include "model/gauges.h"
#include "probe/event.h"

struct correlator;
struct telemetry;

/* Whether a token ends a generation, for the traced model's vocabulary. */
enum eog_class {
	EOG_NO = 0, /* never: an ordinary token */
	EOG_MAYBE,  /* the vocabulary does not say (the default with no vocabulary) */
	EOG_YES,    /* always: llama.cpp stops on it */
};
typedef enum eog_class (*eog_fn)(const void *arg, int32_t token);

/* Completed requests and annotated steps go to tm; layers: the layers attached
 * (1 << enum llmtap_layer), which tells what llmtap can count. */
struct correlator *correlator_new(struct telemetry *tm, unsigned int layers);
/*
 * Stop believing a layer's records (a self-check found them wrong): from now on its
 * events are ignored and what it gave is reconstructed from the engine, or unknown.
 */
void correlator_disable_layer(struct correlator *c, enum llmtap_layer layer);
/* The target is a router llama-server: its HTTP requests are proxies (REQ_PROXY). */
void correlator_set_router(struct correlator *c, bool router);
/*
 * The model's end-of-generation tokens (fn(arg, token); NULL: unknown, every token
 * EOG_MAYBE); arg must outlive c or be replaced.
 */
void correlator_set_eog(struct correlator *c, eog_fn fn, const void *arg);
/* llama-server's stop-string checks are probed (SITE_SRV_STOP_CHECK): a final
 * response's records tell a stop string from a limit. */
void correlator_set_stop_checks(struct correlator *c, bool on);
/* Every ggml backend of the target is the host's: a step's compute ends at its return. */
void correlator_set_host_only(struct correlator *c, bool host_only);
/* Consumes one event; a step's request_ids are filled in on the way. */
void correlator_event(struct correlator *c, struct event *ev);
/* Time passes: ends generations that are over, joins requests that can be;
 * lost_total: events lost so far (a request that ran meanwhile is not joined). */
void correlator_tick(struct correlator *c, uint64_t now_ns, uint64_t lost_total);
/* Emit the requests still open (as incomplete), e.g. when tracing ends. */
void correlator_flush(struct correlator *c, uint64_t now_ns);
/* The gauges it tracks into g (all but rss_bytes and kv_mem, left 0). */
void correlator_gauges(const struct correlator *c, struct tm_gauges *g);

/* A context's creation as the probes saw it: llama_init_from_model(model, params). */
struct ctx_creation {
	uint64_t ctx;       /* the llama_context it returned */
	uint64_t model;     /* the llama_model it was given */
	/* the path that llama_model_load_from_file(path, ...) returned model for, the
	 * latest load of that handle before this creation; "" when not seen (attached
	 * after it, another loader, a path cut short): the model's file is then unknown */
	char model_path[LLMTAP_PATH_LEN];
	uint32_t params[4]; /* n_ctx, n_batch, n_ubatch, n_seq_max as passed */
	uint32_t cparams_len;
	uint8_t cparams[LLMTAP_CPARAMS_LEN]; /* the params' head, raw (user/model/kvmem.h) */
};
/*
 * The creation of the context the requests run on: with the server layer, the slots'
 * context once a step confirmed it, before that the first context that decoded
 * (llama-server's target: its warmup and checks come before a draft's); without it,
 * the one context that ever decoded. false: not known (none decoded yet; two and no
 * server layer; a launch read a context not confirmed yet; its creation not seen:
 * attached after it, or no longer among the latest created).
 */
bool correlator_context(const struct correlator *c, struct ctx_creation *out);
void correlator_free(struct correlator *c);

#endif
