/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The C++ layers check themselves. The sampling, server and http layers read
 * llama-server's and cpp-httplib's private structures and call signatures,
 * which move every few months (include/llmtap_offsets.h). Every decoded event
 * passes here before the correlator; a layer whose records do not make sense
 * for the build being traced (a slot's context that never decodes, a task id
 * the queue never handed out, a status outside 100..599, ...) is reported
 * once, so that it can be turned off instead of producing numbers.
 *
 * What a remote client controls (a request's path) never fails a layer on its
 * own; what the first records after attach leave unknown (a task handed out
 * before, a sample whose batch was decoded before) is not judged. A check fails
 * a layer when it has found LAYERCHECK_STRIKES records wrong and more wrong than
 * right: a lost record now and then never does, a wrong layout within its
 * first few requests. The state is bounded, whatever the target sends.
 */
#ifndef LLMTAP_LAYERCHECK_H
#define LLMTAP_LAYERCHECK_H

#include <stddef.h>

#include "llmtap_sites.h"

#include "probe/event.h"

#define LAYERCHECK_STRIKES 3

struct layercheck;

/* layers: the ones attached (1 << enum llmtap_layer); only those are checked. */
struct layercheck *layercheck_new(unsigned int layers);

/*
 * Look at one event (a step whole, as step_assemble gives it), before the
 * correlator. Returns the layers (1 << enum llmtap_layer) found wrong by this
 * event, with why saying what failed ("a slot's context was never seen
 * decoding"); 0 almost always. A layer is returned once: it is not checked
 * again.
 */
unsigned int layercheck_event(struct layercheck *lc, const struct event *ev, char *why,
			      size_t len);

/* The layers still checked: attached and not found wrong. */
unsigned int layercheck_layers(const struct layercheck *lc);

void layercheck_free(struct layercheck *lc);

#endif
