// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/lib/text.c: target strings made valid UTF-8 and terminal-safe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/text.h"

static void test_valid_passes_unchanged(void **state)
{
	const char *s = "llama \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9d\x94\x98";
	char out[64];

	(void)state;
	assert_true(utf8_valid(s, strlen(s)));
	assert_int_equal(utf8_sanitize(out, sizeof(out), s, strlen(s)), strlen(s));
	assert_string_equal(out, s);
}

static void test_invalid_bytes_become_replacement(void **state)
{
	char out[64];

	(void)state;
	/* a lone continuation byte, an overlong '/', a surrogate, a truncated sequence */
	utf8_sanitize(out, sizeof(out), "a\x80" "b", 3);
	assert_string_equal(out, "a\xef\xbf\xbd" "b");
	utf8_sanitize(out, sizeof(out), "\xc0\xaf", 2);
	assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbd");
	utf8_sanitize(out, sizeof(out), "\xed\xa0\x80", 3);
	assert_false(utf8_valid("\xed\xa0\x80", 3));
	assert_true(utf8_valid(out, strlen(out)));
	utf8_sanitize(out, sizeof(out), "x\xe2\x82", 3);
	assert_string_equal(out, "x\xef\xbf\xbd\xef\xbf\xbd");
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void test_cut_on_a_character_boundary(void **state)
{
	/* 70 bytes of 2-byte characters cut to a 64-byte field: 63 bytes fit, 62 are whole */
	char src[71], out[64], s[80];

	(void)state;
	for (int i = 0; i < 70; i += 2)
		memcpy(src + i, "\xc3\xa9", 2);
	src[70] = '\0';
	assert_int_equal(utf8_sanitize(out, sizeof(out), src, 70), 62);
	assert_true(utf8_valid(out, strlen(out)));
	strcpy(s, src);
	utf8_cut(s, 63);
	assert_int_equal(strlen(s), 62);
	assert_true(utf8_valid(s, strlen(s)));
	strcpy(s, "ab\xf0\x9d\x94\x98");
	utf8_cut(s, 5);
	assert_string_equal(s, "ab");
}

static void test_inplace(void **state)
{
	char s[16] = "ok\xff!";

	(void)state;
	assert_int_equal(utf8_sanitize_inplace(s, sizeof(s)), 6);
	assert_string_equal(s, "ok\xef\xbf\xbd!");
	strcpy(s, "fine");
	assert_int_equal(utf8_sanitize_inplace(s, sizeof(s)), 4);
}

static void test_term_safe_escapes_controls(void **state)
{
	char buf[128];

	(void)state;
	assert_string_equal(term_safe(buf, sizeof(buf), "evil\x1b[2J\x07name\n"),
			    "evil\\x1b[2J\\x07name\\x0a");
	assert_string_equal(term_safe(buf, sizeof(buf), "c1 \xc2\x9b" "31m del\x7f"),
			    "c1 \\x9b31m del\\x7f");
	assert_string_equal(term_safe(buf, sizeof(buf), "a\\b \xc3\xa9"), "a\\\\b \xc3\xa9");
	assert_string_equal(term_safe(buf, sizeof(buf), "bad\xff"), "bad\xef\xbf\xbd");
	assert_string_equal(term_safe(buf, 6, "\x1b\x1b"), "\\x1b"); /* cut whole escapes only */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_passes_unchanged),
		cmocka_unit_test(test_invalid_bytes_become_replacement),
		cmocka_unit_test(test_cut_on_a_character_boundary),
		cmocka_unit_test(test_inplace),
		cmocka_unit_test(test_term_safe_escapes_controls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
