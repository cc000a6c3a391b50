/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loading the BPF programs, attaching them to one target, draining the ring buffer. */
#ifndef LLMTAP_PROBES_H
#define LLMTAP_PROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llmtap_events.h"
#include "llmtap_sites.h"
#include "target/target.h"

struct probes;

struct probes_opts {
	size_t ringbuf_bytes;  /* power of two, >= 4096 */
	bool verbose;          /* let libbpf print its diagnostics */
	int task_n_predict_off; /* user/target/layout.c: -1 when unknown for the build */
	int slot_stop_off;      /* the same */
	/* a call that synchronizes may throw (a backend but the host's and ggml-cuda's:
	 * target_sync_may_throw): the sync sites get no probe, compute time is unknown */
	bool no_sync;
};

/* Called for every record; a non-zero return stops the drain. */
typedef int (*probes_event_fn)(void *arg, const void *data, size_t size);

/*
 * Load and attach the probes on t for t->pid only. Returns 0 with *out set,
 * or -errno with a one-line reason in err. Nothing is left attached on error.
 */
int probes_open(const struct target *t, const struct probes_opts *opts, probes_event_fn fn,
		void *arg, struct probes **out, char *err, size_t errlen);
/*
 * Wait up to timeout_ms for data, then drain what is waiting, at most a budget
 * of records (the rest: next call). Returns records or -errno.
 */
int probes_poll(struct probes *p, int timeout_ms);
/* Drain what is waiting now, budget after budget (a bounded number). Returns records. */
int probes_drain(struct probes *p);
/* libbpf's diagnostics on stderr only when verbose (every BPF object of llmtap). */
void probes_libbpf_log(bool verbose);
/* An fd that is readable when records wait (epoll). */
int probes_fd(const struct probes *p);
/* Sum the per-CPU counters (enum llmtap_stat). */
int probes_stats(struct probes *p, uint64_t out[LLMTAP_STAT_MAX]);
/* "engine,sampling,server,http": the layers attached. */
const char *probes_attached(const struct probes *p);
/* The same as a mask of 1 << enum llmtap_layer. */
unsigned int probes_layer_mask(const struct probes *p);
/* The build's private offsets, learnt after attaching (see struct probes_opts). */
void probes_set_layout(struct probes *p, int task_n_predict_off, int slot_stop_off);
/* Whether a site has a probe in the target. */
bool probes_site_attached(const struct probes *p, enum llmtap_site site);
void probes_close(struct probes *p);

#endif
