// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/target/version.c: which llama.cpp a target runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "target/version.h"

static void test_library_version(void **state)
{
	char v[24];

	(void)state;
	assert_true(version_of_library("/x/bin/libllama.so.0.5.0", v, sizeof(v)));
	assert_string_equal(v, "0.5.0");
	assert_true(version_of_library("libllama.so.0", v, sizeof(v)));
	assert_string_equal(v, "0");
	assert_false(version_of_library("/x/libllama.so", v, sizeof(v)));
	assert_false(version_of_library("/x/libllama.v0.5.0.so", v, sizeof(v))); /* node-llama-cpp */
	assert_false(version_of_library("/usr/bin/llama-server", v, sizeof(v)));
	assert_false(version_of_library("/x/libggml.so.0.25.1", v, sizeof(v)));
	assert_false(version_of_library("/x/libllama.so.1.2\x1b[31m", v, sizeof(v)));
	assert_false(version_of_library("/x/libllama.so.11111111111111111111111.2", v, 8));
}

static void test_commit(void **state)
{
	char c[16];

	(void)state;
	assert_true(version_commit("de3ff81", 7, c, sizeof(c)));
	assert_string_equal(c, "de3ff81");
	assert_true(version_commit("DE3FF815EA7D99", 14, c, sizeof(c))); /* at most 12 */
	assert_string_equal(c, "de3ff815ea7d");
	assert_true(version_commit("abcd\x1b[2J", 8, c, sizeof(c))); /* only the hex run */
	assert_string_equal(c, "abcd");
	assert_false(version_commit("unknown", 7, c, sizeof(c)));
	assert_false(version_commit("abc", 3, c, sizeof(c)));
}

static void test_describe(void **state)
{
	struct llama_version v = { .build = -1 };

	(void)state;
	version_describe(&v);
	assert_string_equal(v.text, "unknown");
	strcpy(v.library, "0.5.0");
	version_describe(&v);
	assert_string_equal(v.text, "libllama 0.5.0");
	strcpy(v.commit, "de3ff81");
	version_describe(&v);
	assert_string_equal(v.text, "de3ff81 (libllama 0.5.0)");
	v.build = 1;
	version_describe(&v);
	assert_string_equal(v.text, "b1-de3ff81 (libllama 0.5.0)");
	v.library[0] = '\0';
	version_describe(&v);
	assert_string_equal(v.text, "b1-de3ff81");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_library_version),
		cmocka_unit_test(test_commit),
		cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
