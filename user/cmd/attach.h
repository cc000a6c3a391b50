/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `llmtap attach`: trace one running process until stopped. */
#ifndef LLMTAP_ATTACH_H
#define LLMTAP_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export/otlp_config.h"

struct attach_opts {
	int pid;
	uint64_t duration_ns;  /* 0: until interrupted or the target exits */
	uint64_t interval_ns;  /* live output period */
	size_t ringbuf_bytes;
	bool json;             /* JSON lines on stdout instead of the console view */
	bool json_steps;       /* with json: one record per engine step */
	bool verbose;
	bool debug_events;     /* every decoded record on stderr */
	const char *prometheus; /* ADDR:PORT to serve /metrics on, NULL for none */
	bool top;               /* `llmtap top`: the full-screen view */
	const char *record_path; /* a trace-event file to write, NULL for none */
	uint64_t tail_ns;       /* tail capture window, 0 for none */
	uint64_t tail_ttft_ns;  /* dump the tail when a TTFT exceeds this, 0: SIGUSR1 only */
	const char *tail_dir;   /* where tail captures go */
	struct otlp_cli otlp;   /* --otlp-* flags (the environment is read at start) */
};

#include "cmd/session.h"

/* A session's options from the command line's, with its view and OTLP settings. */
struct session_opts attach_session_opts(const struct attach_opts *o,
				       const struct otlp_config *otlp, enum session_view view);

/* Returns the process exit code: 0 traced and summarised, 1 failure. */
int cmd_attach(const struct attach_opts *o);

/* Where OTLP goes, once at the start (stderr). */
void attach_print_otlp(const struct otlp_config *c);

#endif
