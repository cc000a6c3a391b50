// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/route.h"
#include "lib/util.h"

#include <string.h>

static const struct {
	const char *template;
	enum route_kind kind;
} routes[] = {
	{ "/v1/chat/completions", ROUTE_CHAT },
	{ "/chat/completions", ROUTE_CHAT },
	{ "/completion", ROUTE_COMPLETION },
	{ "/completions", ROUTE_COMPLETION },
	{ "/v1/completions", ROUTE_COMPLETION },
	{ "/infill", ROUTE_INFILL },
	{ "/embedding", ROUTE_EMBEDDINGS },
	{ "/embeddings", ROUTE_EMBEDDINGS },
	{ "/v1/embeddings", ROUTE_EMBEDDINGS },
	{ "/rerank", ROUTE_RERANK },
	{ "/reranking", ROUTE_RERANK },
	{ "/v1/rerank", ROUTE_RERANK },
	{ "/v1/reranking", ROUTE_RERANK },
	{ "/v1/responses", ROUTE_RESPONSES },
	{ "/responses", ROUTE_RESPONSES },
	{ "/v1/messages", ROUTE_MESSAGES },
	{ "/tokenize", ROUTE_TOKENIZE },
	{ "/detokenize", ROUTE_TOKENIZE },
	{ "/apply-template", ROUTE_TOKENIZE },
	{ "/v1/messages/count_tokens", ROUTE_TOKENIZE },
	{ "/chat/completions/input_tokens", ROUTE_TOKENIZE },
	{ "/v1/chat/completions/input_tokens", ROUTE_TOKENIZE },
	{ "/health", ROUTE_HEALTH },
	{ "/v1/health", ROUTE_HEALTH },
	{ "/metrics", ROUTE_METRICS },
	{ "/props", ROUTE_PROPS },
	{ "/slots", ROUTE_SLOTS },
	{ "/models", ROUTE_MODELS },
	{ "/v1/models", ROUTE_MODELS },
};

struct route route_classify(const char *path)
{
	static const char slots_prefix[] = "/slots/";

	for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
		if (!strcmp(path, routes[i].template))
			return (struct route){ routes[i].kind, routes[i].template };
	/* "/slots/:id_slot": the id stays out of the route */
	if (!strncmp(path, slots_prefix, sizeof(slots_prefix) - 1) && path[sizeof(slots_prefix) - 1])
		return (struct route){ ROUTE_SLOTS, "/slots/:id_slot" };
	return (struct route){ ROUTE_OTHER, "other" };
}

const char *route_kind_name(enum route_kind k)
{
	static const char *const names[ROUTE_KIND_MAX] = {
		"other", "chat", "completion", "infill", "embeddings", "rerank", "responses",
		"messages", "tokenize", "health", "metrics", "props", "slots", "models",
	};
	return k < ROUTE_KIND_MAX ? names[k] : "other";
}

const char *route_operation(enum route_kind k)
{
	switch (k) {
	case ROUTE_CHAT:
	case ROUTE_RESPONSES:
	case ROUTE_MESSAGES:
		return "chat";
	case ROUTE_COMPLETION:
	case ROUTE_INFILL:
		return "text_completion";
	case ROUTE_EMBEDDINGS:
		return "embeddings";
	case ROUTE_RERANK:
		return "rerank";
	default:
		return NULL;
	}
}

bool route_generates(enum route_kind k)
{
	const char *op = route_operation(k);

	return op && (!strcmp(op, "chat") || !strcmp(op, "text_completion"));
}
