// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/lib/util.c: command-line value parsing, percent-decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

static void test_duration_ok(void **state)
{
	static const struct {
		const char *s;
		uint64_t ns;
	} cases[] = {
		{ "30", 30000000000ull },
		{ "30s", 30000000000ull },
		{ "0", 0 },
		{ "0s", 0 },
		{ "250ms", 250000000ull },
		{ "1.5m", 90000000000ull },
		{ "2h", 7200000000000ull },
		{ "10us", 10000ull },
		{ "0.5", 500000000ull },
		{ "1.5ms", 1500000ull },
		{ "1", 1000000000ull },
		{ "90", 90000000000ull },
		{ "0.000000001", 1 },
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t ns = 12345;
		int ret = parse_duration(cases[i].s, &ns);

		if (ret || ns != cases[i].ns)
			fail_msg("\"%s\": ret %d ns %llu, want 0 and %llu", cases[i].s, ret,
				 (unsigned long long)ns, (unsigned long long)cases[i].ns);
	}
}

static void test_duration_bad(void **state)
{
	static const char *const bad[] = {
		"", "abc", "-1", "-1s", "5x", "1e30", "1e30s", "s", "ms", "5 s", "5ss",
		"5sec", "5S", "inf", "nan", "10m5s", "1.5.3", "1000000000h",
	};
	uint64_t ns = 777;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = parse_duration(bad[i], &ns);

		if (ret != -EINVAL)
			fail_msg("\"%s\": got %d, want -EINVAL", bad[i], ret);
	}
	assert_int_equal(parse_duration(NULL, &ns), -EINVAL);
	/* a rejected value leaves the output alone */
	assert_int_equal(ns, 777);
}

static void test_duration_limit(void **state)
{
	uint64_t ns;
	(void)state;

	/* up to 1e18 ns (~31 years) is accepted, above is not */
	assert_int_equal(parse_duration("1000000000", &ns), 0);
	assert_true(ns == 1000000000000000000ull);
	assert_int_equal(parse_duration("1000000001", &ns), -EINVAL);
	assert_int_equal(parse_duration("277777h", &ns), 0);
	assert_true(ns == 277777ull * 3600 * 1000000000ull);
	assert_int_equal(parse_duration("277778h", &ns), -EINVAL);
}

static void test_size_ok(void **state)
{
	static const struct {
		const char *s;
		size_t bytes;
	} cases[] = {
		{ "4096", 4096 },
		{ "0", 0 },
		{ "64k", 64 << 10 },
		{ "64K", 64 << 10 },
		{ "8M", 8 << 20 },
		{ "8m", 8 << 20 },
		{ "1G", 1ul << 30 },
		{ "1g", 1ul << 30 },
		{ "16G", 16ul << 30 },
		{ "007", 7 },
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t bytes = 12345;
		int ret = parse_size(cases[i].s, &bytes);

		if (ret || bytes != cases[i].bytes)
			fail_msg("\"%s\": ret %d bytes %zu, want 0 and %zu", cases[i].s, ret,
				 bytes, cases[i].bytes);
	}
}

static void test_size_bad(void **state)
{
	static const char *const bad[] = {
		"", "k", "12q", "-5", "+5", " 5", "5 k", "5kb", "5KiB", "1.5M", "0x10", "M8",
		"18446744073709551616",    /* 2^64 */
		"17179869184G",            /* 2^34 GiB = 2^64 bytes */
		"18014398509481984k",      /* 2^54 KiB = 2^64 bytes */
	};
	size_t bytes = 777;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = parse_size(bad[i], &bytes);

		if (ret != -EINVAL)
			fail_msg("\"%s\": got %d, want -EINVAL", bad[i], ret);
	}
	assert_int_equal(parse_size(NULL, &bytes), -EINVAL);
	assert_int_equal(bytes, 777);

	/* the largest size that does fit */
	assert_int_equal(parse_size("17179869183G", &bytes), 0);
	assert_true(bytes == 17179869183ull << 30);
}

static void test_pid(void **state)
{
	static const char *const bad[] = {
		"0", "-3", "12a", "", "99999999999", "+5", " 5", "5 ", "0x10", "1073741824",
		"abc",
	};
	int pid = 0;
	(void)state;

	assert_int_equal(parse_pid("1", &pid), 0);
	assert_int_equal(pid, 1);
	assert_int_equal(parse_pid("4242", &pid), 0);
	assert_int_equal(pid, 4242);
	assert_int_equal(parse_pid("4194304", &pid), 0); /* pid_max limit */
	assert_int_equal(pid, 4194304);
	assert_int_equal(parse_pid("1073741823", &pid), 0);
	assert_int_equal(pid, 1073741823);

	pid = 777;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = parse_pid(bad[i], &pid);

		if (ret != -EINVAL)
			fail_msg("\"%s\": got %d, want -EINVAL", bad[i], ret);
	}
	assert_int_equal(parse_pid(NULL, &pid), -EINVAL);
	assert_int_equal(pid, 777);
}

static void test_pct_decode(void **state)
{
	static const char *const bad[] = { "%", "%4", "a%4", "%zz", "%4g", "x%%41" };
	char out[8];
	(void)state;

	assert_int_equal(pct_decode("a%2Cb%3d", 8, out, sizeof(out)), 4);
	assert_string_equal(out, "a,b=");
	assert_int_equal(pct_decode(" %20 ", 5, out, sizeof(out)), 3);
	assert_string_equal(out, "   ");
	/* only n bytes are read */
	assert_int_equal(pct_decode("abc%41", 3, out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	/* what does not fit is cut off; the length says so */
	assert_int_equal(pct_decode("0123456789%41", 13, out, sizeof(out)), 11);
	assert_string_equal(out, "0123456");
	assert_int_equal(pct_decode("", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		ssize_t ret = pct_decode(bad[i], strlen(bad[i]), out, sizeof(out));

		if (ret != -EINVAL)
			fail_msg("\"%s\": got %zd, want -EINVAL", bad[i], ret);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_ok),
		cmocka_unit_test(test_duration_bad),
		cmocka_unit_test(test_duration_limit),
		cmocka_unit_test(test_size_ok),
		cmocka_unit_test(test_size_bad),
		cmocka_unit_test(test_pid),
		cmocka_unit_test(test_pct_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
