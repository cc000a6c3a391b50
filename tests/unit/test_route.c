// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/model/route.c: llama-server's paths as bounded route names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/util.h"
#include "model/route.h"

static const struct {
	const char *path;
	enum route_kind kind;
} known[] = {
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

static void test_known_routes(void **state)
{
	(void)state;

	/* a registered route is its own template */
	for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
		struct route r = route_classify(known[i].path);

		if (r.kind != known[i].kind)
			fail_msg("%s: kind %d (%s), expected %d (%s)", known[i].path, r.kind,
				 route_kind_name(r.kind), known[i].kind,
				 route_kind_name(known[i].kind));
		assert_non_null(r.template);
		assert_string_equal(r.template, known[i].path);
	}
}

static void test_examples(void **state)
{
	struct route r;
	(void)state;

	r = route_classify("/v1/chat/completions");
	assert_int_equal(r.kind, ROUTE_CHAT);
	assert_string_equal(r.template, "/v1/chat/completions");
	r = route_classify("/completion");
	assert_int_equal(r.kind, ROUTE_COMPLETION);
	assert_string_equal(r.template, "/completion");
	r = route_classify("/v1/embeddings");
	assert_int_equal(r.kind, ROUTE_EMBEDDINGS);
	assert_string_equal(r.template, "/v1/embeddings");
	r = route_classify("/health");
	assert_int_equal(r.kind, ROUTE_HEALTH);
	assert_string_equal(r.template, "/health");
}

static void test_slot_id(void **state)
{
	static const char *const paths[] = { "/slots/0", "/slots/7", "/slots/123",
					     "/slots/abc" };
	struct route r;
	(void)state;

	/* the slot id stays out of the route (a bounded attribute) */
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		r = route_classify(paths[i]);
		assert_int_equal(r.kind, ROUTE_SLOTS);
		assert_string_equal(r.template, "/slots/:id_slot");
		assert_null(strstr(r.template, paths[i] + strlen("/slots/")));
	}
	/* the bare list is its own route */
	r = route_classify("/slots");
	assert_int_equal(r.kind, ROUTE_SLOTS);
	assert_string_equal(r.template, "/slots");
	/* no id: not a slot route */
	r = route_classify("/slots/");
	assert_int_equal(r.kind, ROUTE_OTHER);
	assert_string_equal(r.template, "other");
}

static void test_other(void **state)
{
	static const char *const paths[] = {
		"", "/", "/index.html", "/v1/chat/completion", "/completion/", "/COMPLETION",
		"/health ", "/v1/chat/completions?stream=true", "/slotsX", "/slots0",
		"completion", "//completion", "/v2/models", "/api/chat",
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		struct route r = route_classify(paths[i]);

		if (r.kind != ROUTE_OTHER)
			fail_msg("\"%s\": kind %s, expected other", paths[i],
				 route_kind_name(r.kind));
		assert_non_null(r.template);
		assert_string_equal(r.template, "other");
	}
}

static void test_template_is_static(void **state)
{
	char path[32];
	struct route r;
	(void)state;

	/* the template must outlive the path it was classified from */
	strcpy(path, "/health");
	r = route_classify(path);
	assert_true(r.template != path);
	memset(path, 'x', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_string_equal(r.template, "/health");
}

static void test_operation(void **state)
{
	(void)state;

	assert_string_equal(route_operation(ROUTE_CHAT), "chat");
	assert_string_equal(route_operation(ROUTE_RESPONSES), "chat");
	assert_string_equal(route_operation(ROUTE_MESSAGES), "chat");
	assert_string_equal(route_operation(ROUTE_COMPLETION), "text_completion");
	assert_string_equal(route_operation(ROUTE_INFILL), "text_completion");
	assert_string_equal(route_operation(ROUTE_EMBEDDINGS), "embeddings");
	assert_string_equal(route_operation(ROUTE_RERANK), "rerank");
	assert_null(route_operation(ROUTE_OTHER));
	assert_null(route_operation(ROUTE_TOKENIZE));
	assert_null(route_operation(ROUTE_HEALTH));
	assert_null(route_operation(ROUTE_METRICS));
	assert_null(route_operation(ROUTE_PROPS));
	assert_null(route_operation(ROUTE_SLOTS));
	assert_null(route_operation(ROUTE_MODELS));
	assert_null(route_operation(ROUTE_KIND_MAX));

	/* through classification */
	assert_string_equal(route_operation(route_classify("/v1/chat/completions").kind), "chat");
	assert_string_equal(route_operation(route_classify("/completion").kind),
			    "text_completion");
	assert_string_equal(route_operation(route_classify("/v1/rerank").kind), "rerank");
	assert_null(route_operation(route_classify("/slots/0").kind));
}

static void test_kind_names(void **state)
{
	(void)state;

	for (int k = 0; k < ROUTE_KIND_MAX; k++) {
		assert_non_null(route_kind_name(k));
		for (int j = 0; j < k; j++)
			assert_true(strcmp(route_kind_name(j), route_kind_name(k)) != 0);
	}
	assert_string_equal(route_kind_name(ROUTE_OTHER), "other");
	assert_string_equal(route_kind_name(ROUTE_CHAT), "chat");
	assert_string_equal(route_kind_name(ROUTE_COMPLETION), "completion");
	assert_string_equal(route_kind_name(ROUTE_EMBEDDINGS), "embeddings");
	assert_string_equal(route_kind_name(ROUTE_SLOTS), "slots");
	assert_string_equal(route_kind_name(ROUTE_MODELS), "models");
	assert_string_equal(route_kind_name(ROUTE_KIND_MAX), "other");
	assert_string_equal(route_kind_name((enum route_kind)1000), "other");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_routes),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_slot_id),
		cmocka_unit_test(test_other),
		cmocka_unit_test(test_template_is_static),
		cmocka_unit_test(test_operation),
		cmocka_unit_test(test_kind_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
