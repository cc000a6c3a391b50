/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The metric instruments in the Prometheus text exposition format 0.0.4, named
 * the way OpenTelemetry's Prometheus compatibility mapping (and the Collector's
 * prometheus exporter) names them. export/prom_http.h serves them.
 */
#ifndef LLMTAP_PROM_TEXT_H
#define LLMTAP_PROM_TEXT_H

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

/*
 * target_info: a resource's attributes (key, value, ..., NULL) as the labels of a
 * gauge of 1, as OpenTelemetry's Prometheus mapping exposes a resource.
 */
int prom_render_info(const char *const *labels, FILE *out);

/*
 * A whole scrape of n traced processes: the target_info of each (infos[t], may
 * be NULL), then their metrics as prom_render_many. 0 or a negative errno.
 */
int prom_render_targets(const struct metrics *const *ms, const char *const *const *labels,
			const char *const *const *infos, int n, FILE *out);

#endif
