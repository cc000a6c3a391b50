/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Correlation: turns the probes' events into requests. Per HTTP thread it
 * follows a request from its first byte to its last, collects the task ids the
 * thread creates, follows each task onto its slot (slot id == sequence id), and
 * charges that sequence's decoded and sampled tokens to the request.
 */
#ifndef LLMTAP_CORRELATE_H
#define LLMTAP_CORRELATE_H

#include <stdint.h>

#include "model/gauges.h"
#include "probe/event.h"

struct correlator;
struct telemetry;

/* Completed requests and annotated steps go to tm; layers: the layers attached
 * (1 << enum llmtap_layer), which tells what llmtap can count. */
struct correlator *correlator_new(struct telemetry *tm, unsigned int layers);
/* Consumes one event; a step's request_ids are filled in on the way. */
void correlator_event(struct correlator *c, struct event *ev);
/* Emit the requests still open (as incomplete), e.g. when tracing ends. */
void correlator_flush(struct correlator *c, uint64_t now_ns);
/* The gauges it tracks into g (all but rss_bytes, left 0). */
void correlator_gauges(const struct correlator *c, struct tm_gauges *g);
void correlator_free(struct correlator *c);

#endif
