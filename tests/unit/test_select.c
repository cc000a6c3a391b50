// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for the daemon's and run's parsing: listening sockets, ld.so --list, several targets on /metrics. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export/prom_text.h"
#include "model/metrics.h"
#include "target/ldd.h"
#include "target/select.h"

static void test_parse_listen(void **state)
{
	unsigned int port = 0;
	uint64_t ino = 0;

	(void)state;
	/* a listening socket on 127.0.0.1:8080 (0x1F90), inode 123456 */
	assert_true(select_parse_listen(
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0",
		&port, &ino));
	assert_int_equal(port, 8080);
	assert_int_equal(ino, 123456);
	/* IPv6 [::]:9464 */
	assert_true(select_parse_listen(
		"   1: 00000000000000000000000000000000:24F8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0",
		&port, &ino));
	assert_int_equal(port, 9464);
	assert_int_equal(ino, 777);
	/* an established connection is not a listener; the header line is nothing */
	assert_false(select_parse_listen(
		"   2: 0100007F:1F90 0100007F:A0B0 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 20 4 30 10 -1",
		&port, &ino));
	assert_false(select_parse_listen(
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
		&port, &ino));
}

static void test_selector_own_process(void **state)
{
	struct selector s = { .n_exe = 1, .exe = { "*test_select" } };
	char why[256];

	(void)state;
	assert_true(selector_match(&s, getpid(), why, sizeof(why)));
	s.exe[0] = "*llama-server";
	assert_false(selector_match(&s, getpid(), why, sizeof(why)));
	assert_non_null(strstr(why, "--exe"));
	s = (struct selector){ .n_exclude = 1, .exclude = { "test_*" } };
	assert_false(selector_match(&s, getpid(), why, sizeof(why)));
	assert_non_null(strstr(why, "excluded"));
	s = (struct selector){ .n_cgroup = 1, .cgroup = { "/no/such/cgroup*" } };
	assert_false(selector_match(&s, getpid(), why, sizeof(why)));
	s = (struct selector){ .n_cgroup = 1, .cgroup = { "*" } };
	assert_true(selector_match(&s, getpid(), why, sizeof(why)));
	s = (struct selector){ .n_ports = 1, .ports = { 1 } }; /* nothing of ours listens on 1 */
	assert_false(selector_match(&s, getpid(), why, sizeof(why)));
	assert_non_null(strstr(why, "--port"));
}

static void test_parse_ldd(void **state)
{
	static const char out[] =
		"\tlinux-vdso.so.1 (0x00007ffd5a1e7000)\n"
		"\tlibllama.so.0 => /opt/llama/lib/libllama.so.0 (0x00007f0a1c000000)\n"
		"\tlibmissing.so => not found\n"
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0a1be00000)\n"
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f0a1c400000)\n";
	char paths[8][4096];

	(void)state;
	assert_int_equal(ldd_parse(out, paths, 8), 2);
	assert_string_equal(paths[0], "/opt/llama/lib/libllama.so.0");
	assert_string_equal(paths[1], "/lib/x86_64-linux-gnu/libc.so.6");
	assert_int_equal(ldd_parse(out, paths, 1), 1);
	assert_int_equal(ldd_parse("", paths, 8), 0);
}

static void test_prom_render_many(void **state)
{
	struct metrics *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	const struct metrics *ms[2] = { a, b };
	const char *la[] = { "process.pid", "1", NULL }, *lb[] = { "process.pid", "2", NULL };
	const char *const *labels[2] = { la, lb };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	metrics_add(a, M_INF_REQUESTS, 3, 1, "status", "200", NULL);
	metrics_add(b, M_INF_REQUESTS, 5, 1, "status", "200", NULL);
	assert_int_equal(prom_render_many(ms, labels, 2, f), 0);
	fclose(f);
	/* one family head, a series per target, told apart by their labels */
	assert_non_null(strstr(buf, "# TYPE llmtap_inference_requests_total counter\n"));
	assert_null(strstr(strstr(buf, "# TYPE llmtap_inference_requests_total") + 1,
			   "# TYPE llmtap_inference_requests_total"));
	assert_non_null(strstr(buf, "llmtap_inference_requests_total{process_pid=\"1\",status=\"200\"} 3"));
	assert_non_null(strstr(buf, "llmtap_inference_requests_total{process_pid=\"2\",status=\"200\"} 5"));
	free(buf);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_selector_own_process),
		cmocka_unit_test(test_parse_ldd),
		cmocka_unit_test(test_prom_render_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
