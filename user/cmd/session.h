/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One traced process: its probes, correlator, telemetry model and sinks, from
 * attach to summary. `llmtap attach` runs one; `llmtap daemon` runs many.
 */
#ifndef LLMTAP_SESSION_H
#define LLMTAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "export/otlp_config.h"
#include "target/target.h"

struct otlp_exporter;
struct prom_server;
struct router_info;

enum session_view {
	VIEW_CONSOLE = 0, /* a line per interval and a summary */
	VIEW_JSON,        /* JSON lines */
	VIEW_TOP,         /* the full-screen view */
	VIEW_NONE,        /* nothing on out (the daemon's default) */
};

struct session_opts {
	size_t ringbuf_bytes;
	bool verbose;             /* libbpf's diagnostics */
	bool debug_events;        /* every record on stderr */
	enum session_view view;
	bool json_steps;          /* VIEW_JSON: a record per engine step */
	FILE *out;
	const char *record_path;  /* a trace-event file, NULL for none */
	uint64_t tail_ns;         /* tail capture window, 0 for none */
	uint64_t tail_ttft_ns;
	const char *tail_dir;
	const struct otlp_config *otlp;       /* NULL or not enabled: no OTLP */
	struct otlp_exporter *otlp_exporter;  /* a sender shared by sessions, NULL: its own */
	struct prom_server *prom;             /* publish the metrics there, NULL for none */
	bool prom_per_target;     /* one of several on prom: its series carry its
				   * service.instance.id and process.pid, gone at the end */
	bool target_env;          /* the target's own OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
				   * and K8S_* / POD_* variables name its resource too */
};

struct session;

/* Attach to t (found by target_find) and start its telemetry. NULL with a reason in err. */
struct session *session_open(const struct target *t, const struct session_opts *o, char *err,
			     size_t errlen);

/* Wait up to timeout_ms for records, then handle all waiting. Records or -errno. */
int session_poll(struct session *s, int timeout_ms);
/* The fd that is readable when records wait (for epoll). */
int session_fd(const struct session *s);
/* Gauges, health and the interval's aggregates to the sinks. */
void session_tick(struct session *s, uint64_t now_ns);
/* The target exited (its pidfd says so). */
bool session_target_gone(const struct session *s);
const char *session_comm(const struct session *s);
const char *session_layers(const struct session *s);
/* The service.instance.id of its resource. */
const char *session_instance(const struct session *s);
/* Write the tail capture; false when there is none. */
bool session_dump_tail(struct session *s, const char *reason);
/* A key for the full-screen view; false when there is none. */
bool session_key(struct session *s, int key);
/*
 * A router llama-server (target/router.h): what says so and its children when it
 * was attached; NULL for any other target, or once the target did engine work.
 */
const struct router_info *session_router(const struct session *s);
/* Requests seen so far (for the daemon's log). */
uint64_t session_requests(const struct session *s);

/* Drain, flush, summarise (reason: why it ended) and free everything; NULL is fine. */
void session_close(struct session *s, const char *reason);

#endif
