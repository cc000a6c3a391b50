/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The OTLP/HTTP sender: a thread of its own that POSTs encoded request bodies
 * with libcurl, one at a time, in order. Bounded queue; retries with
 * exponential backoff and jitter on connection errors and 429/502/503/504,
 * honouring Retry-After; no retry on other statuses; gzip with zlib. Every
 * span or data point that does not get through is counted, by reason.
 */
#ifndef LLMTAP_OTLP_EXPORT_H
#define LLMTAP_OTLP_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "export/otlp_config.h"
#include "export/otlp_encode.h"
#include "model/metrics.h"

enum otlp_drop {
	OTLP_DROP_QUEUE_FULL = 0, /* the queue was full when it was produced */
	OTLP_DROP_FAILED,         /* not retryable, or retried for too long */
	OTLP_DROP_REJECTED,       /* the receiver's partial_success rejected it */
	OTLP_DROP_SHUTDOWN,       /* still queued when the final flush's deadline passed */
	OTLP_DROP_MAX,
};

struct otlp_signal_stats {
	uint64_t exported;            /* spans / data points the receiver accepted */
	uint64_t dropped[OTLP_DROP_MAX];
	uint64_t requests;            /* requests accepted */
	uint64_t failures;            /* attempts that failed (retried or not) */
	uint64_t queued;              /* items waiting, now */
	uint64_t queued_bytes;
};

struct otlp_stats {
	struct otlp_signal_stats signal[OTLP_SIGNALS];
};

struct otlp_exporter;

/* Start the sender thread. NULL with a reason in err (curl could not start). */
struct otlp_exporter *otlp_exporter_start(const struct otlp_config *c, char *err, size_t errlen);

/*
 * Queue body (taken over: freed by the exporter), which carries items spans or
 * data points. When replace is set, a request of this signal from the same
 * source (key: whatever tells the submitters apart) still waiting is dropped for
 * this one (cumulative metrics: the newer one holds it all). When the queue has
 * no room the body is dropped and counted; returns false then.
 */
bool otlp_exporter_submit(struct otlp_exporter *e, enum otlp_signal sig, uint8_t *body,
			  size_t len, uint32_t items, bool replace, uintptr_t key);

/* Count items dropped before they reached the queue. */
void otlp_exporter_count_drop(struct otlp_exporter *e, enum otlp_signal sig, enum otlp_drop why,
			      uint64_t items);

/* Whether items more spans fit in the queue now. */
bool otlp_exporter_has_room(struct otlp_exporter *e, enum otlp_signal sig, uint32_t items);

void otlp_exporter_stats(struct otlp_exporter *e, struct otlp_stats *st);

/*
 * Send what is queued until timeout_ms from now, then stop the thread and free
 * everything; what is left is counted as dropped (OTLP_DROP_SHUTDOWN). st (may be
 * NULL) gets the final counts. NULL e is fine.
 */
void otlp_exporter_shutdown(struct otlp_exporter *e, uint64_t timeout_ms, struct otlp_stats *st);

const char *otlp_drop_name(enum otlp_drop why);

/* Where one source of metrics is with its exports. */
struct otlp_metric_export {
	struct metrics *prev; /* delta temporality: what the last export held (the caller's) */
	uint64_t prev_ns;
	uint64_t next_ns;     /* the next export is due (0: not scheduled yet) */
};

/*
 * Every OTEL_METRIC_EXPORT_INTERVAL (and when final): m's points, under ctx's
 * resource, to the sender; cumulative ones replace what the same key still has
 * waiting, an unchanged delta sends nothing. A body that cannot be packed is
 * counted as dropped.
 */
void otlp_export_metrics(struct otlp_exporter *e, const struct otlp_config *c,
			 const struct otlp_encode_ctx *ctx, const struct metrics *m,
			 struct otlp_metric_export *x, uint64_t now_ns, bool final, uintptr_t key);

/* One line: what was exported and dropped, and the failed attempts (at the end). */
void otlp_print_stats(FILE *out, const struct otlp_stats *st);

/* RFC 1952 gzip of in; *out is malloc'ed. 0 or -ENOMEM. */
int otlp_gzip(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

/* Seconds to wait from a Retry-After value (delta-seconds or an HTTP date), -1 if none. */
long otlp_retry_after(const char *value, long now_unix);

#endif
