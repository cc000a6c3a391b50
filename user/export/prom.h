/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The metric instruments in the Prometheus text exposition format 0.0.4, named
 * the way OpenTelemetry's Prometheus compatibility mapping (and the Collector's
 * prometheus exporter) names them, and a small HTTP server for GET /metrics.
 */
#ifndef LLMTAP_PROM_H
#define LLMTAP_PROM_H

#include <stddef.h>
#include <stdio.h>

#include "model/metrics.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * The Prometheus name of an instrument: characters outside [a-zA-Z0-9:] split
 * words joined by one '_', then the unit ("s" -> "_seconds", "By" -> "_bytes",
 * "{token}/s" -> "_per_second"; annotations in braces give nothing) unless the
 * name already holds it, "_ratio" for gauges of unit "1", "_total" for counters.
 * Truncated to len - 1 characters.
 */
void prom_metric_name(const struct instrument *in, char *buf, size_t len);

/* A label name: characters outside [a-zA-Z0-9_] become '_', runs of '_' one, "key_" before a digit. */
void prom_label_name(const char *key, char *buf, size_t len);

/*
 * Every point of m, one family per instrument (HELP, TYPE, then its series),
 * families sorted by name. const_labels: (key, value) pairs, NULL-terminated
 * (a NULL value skips the key), added to every series; may be NULL.
 * Returns 0, -EINVAL, or the negative errno of a failed write.
 */
int prom_render(const struct metrics *m, const char *const *const_labels, FILE *out);
/* The same for n metric sets, each with its own const labels (const_labels may be
 * NULL), each family written once with the series of every set. */
int prom_render_many(const struct metrics *const *ms, const char *const *const *const_labels,
		     int n, FILE *out);

struct prom_server;

/*
 * Listen on "ADDR:PORT" ("127.0.0.1:9464", ":9464" for every interface,
 * "[::1]:9464") and serve GET /metrics from a thread of its own. NULL on
 * failure, with a one-line reason in err.
 */
struct prom_server *prom_server_start(const char *addr_port, char *err, size_t errlen);

/* Copy m (NULL: no points) as the snapshot later scrapes see. */
void prom_server_publish(struct prom_server *s, const struct metrics *m);

#define PROM_MAX_TARGETS 64
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

/* Stop the thread, close the sockets, free everything; NULL is fine. */
void prom_server_stop(struct prom_server *s);

/*
 * target_info: a resource's attributes (key, value, ..., NULL) as the labels of a
 * gauge of 1, as OpenTelemetry's Prometheus mapping exposes a resource.
 */
int prom_render_info(const char *const *labels, FILE *out);
/* Serve target_info with these labels (copied) before the metrics. 0 or -errno. */
int prom_server_set_info(struct prom_server *s, const char *const *labels);

#endif
