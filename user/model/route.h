/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* llama-server's HTTP routes: what a request path is, as a bounded name. */
#ifndef LLMTAP_ROUTE_H
#define LLMTAP_ROUTE_H

#include <stdbool.h>

enum route_kind {
	ROUTE_OTHER = 0,
	ROUTE_CHAT,
	ROUTE_COMPLETION,
	ROUTE_INFILL,
	ROUTE_EMBEDDINGS,
	ROUTE_RERANK,
	ROUTE_RESPONSES,
	ROUTE_MESSAGES,
	ROUTE_TOKENIZE,
	ROUTE_HEALTH,
	ROUTE_METRICS,
	ROUTE_PROPS,
	ROUTE_SLOTS,
	ROUTE_MODELS,
	ROUTE_KIND_MAX,
};

struct route {
	enum route_kind kind;
	const char *template; /* http.route: the registered pattern, or "other" */
};

/* Classify a request path (no query string). Never returns NULL templates. */
struct route route_classify(const char *path);
const char *route_kind_name(enum route_kind k);
/* gen_ai.operation.name for an inference route, NULL for the rest */
const char *route_operation(enum route_kind k);
/* Whether a route generates text (chat, completion, infill, responses, messages). */
bool route_generates(enum route_kind k);

#endif
