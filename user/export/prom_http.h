/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A small HTTP server for GET /metrics and GET /healthz: a listening socket and
 * a thread of its own that answers each scrape with the latest published
 * metrics, rendered by export/prom_text.h. Connections are served side by side,
 * each with deadlines and a size limit: no client can delay another's scrape.
 * /healthz answers 200 while the main loop publishes (every interval), 503 once
 * it has not for 10 s (or three times its last interval): a liveness probe.
 */
#ifndef LLMTAP_PROM_HTTP_H
#define LLMTAP_PROM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics;
struct prom_server;

/*
 * Listen on "ADDR:PORT" ("127.0.0.1:9464", ":9464" for every interface,
 * "[::1]:9464") and serve GET /metrics from a thread of its own. NULL on
 * failure, with a one-line reason in err.
 */
struct prom_server *prom_server_start(const char *addr_port, char *err, size_t errlen);

/* Copy m (NULL: no points) as the snapshot later scrapes see. */
void prom_server_publish(struct prom_server *s, const struct metrics *m);

/* the daemon: its own health (id 0) and up to 64 targets */
#define PROM_MAX_TARGETS 65
/*
 * Several traced processes on one endpoint (the daemon): target id's metrics,
 * with labels (key, value, ..., NULL; taken the first time) on each of its
 * series and its own target_info. 0, -ENOSPC past PROM_MAX_TARGETS, -ENOMEM.
 * Id 0 is what prom_server_publish and prom_server_set_info use.
 */
int prom_server_publish_target(struct prom_server *s, int id, const char *const *labels,
			       const struct metrics *m);
int prom_server_set_target_info(struct prom_server *s, int id, const char *const *info);
/* Its series go away (a target that exited). */
void prom_server_remove_target(struct prom_server *s, int id);

/* /healthz fails after ms without a publish (default 10000; tests shorten it). */
void prom_server_set_stale_ms(struct prom_server *s, int64_t ms);

/* Stop the thread, close the sockets, free everything; NULL is fine. */
void prom_server_stop(struct prom_server *s);

/* Serve target_info (see prom_render_info) with these labels (copied) before the
 * metrics. 0 or -errno. */
int prom_server_set_info(struct prom_server *s, const char *const *labels);

enum prom_path { PROM_PATH_METRICS = 0, PROM_PATH_HEALTHZ };

/*
 * The HTTP status for a request head (NUL-terminated, as received): 200, 400
 * (not "METHOD TARGET HTTP/..."), 404 (neither /metrics nor /healthz, a query
 * ignored) or 405 (neither GET nor HEAD); *head_only for HEAD, *path what it
 * asks for (both set only as far as the head was understood).
 */
int prom_route(const char *head, bool *head_only, enum prom_path *path);

#endif
