// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/target/router.c: router claims from a command line and an
 * environment, options, and a router's children found from /proc. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target/proc.h"
#include "target/router.h"

/* A NUL-separated block from a C string with '|' between the strings (and a NUL after it,
 * as proc_read_small leaves it). */
struct block {
	char s[512];
	size_t len;
};

static struct block blk(const char *spec)
{
	struct block b = { .len = strlen(spec) ? strlen(spec) + 1 : 0 };

	snprintf(b.s, sizeof(b.s), "%s", spec);
	for (char *p = b.s; *p; p++)
		if (*p == '|')
			*p = '\0';
	return b;
}

static bool claimed(const char *args, const char *env, char *why, size_t len)
{
	struct block a = blk(args), e = blk(env);

	return router_claimed(a.s, a.len, e.s, e.len, why, len);
}

static void test_claims(void **state)
{
	char why[320];

	(void)state;
	assert_true(claimed("llama-server|--models-dir|/srv/models|--port|8080", "PATH=/bin", why,
			    sizeof(why)));
	assert_string_equal(why, "--models-dir /srv/models");
	assert_true(claimed("llama-server|--models-preset=/etc/m.ini", "", why, sizeof(why)));
	assert_string_equal(why, "--models-preset /etc/m.ini");
	assert_true(claimed("llama-server|--port|8080", "HOME=/root", why, sizeof(why)));
	assert_string_equal(why, "started without a model");
	assert_true(claimed("llama-server", "LLAMA_ARG_MODELS_DIR=/m", why, sizeof(why)));
	assert_string_equal(why, "--models-dir /m");
	/* --models-dir is no router when a model is given too */
	assert_false(claimed("llama-server|--models-dir|/m|-m|a.gguf", "", why, sizeof(why)));
	assert_false(claimed("llama-server|--model=a.gguf", "", why, sizeof(why)));
	assert_false(claimed("llama-server|-hf|org/repo", "", why, sizeof(why)));
	assert_false(claimed("llama-server|-mu|http://x/a.gguf", "", why, sizeof(why)));
	assert_false(claimed("llama-server|--docker-repo|ai/x", "", why, sizeof(why)));
	/* a model from the environment (common/arg.cpp's LLAMA_ARG_*) */
	assert_false(claimed("llama-server|--port|1", "A=1|LLAMA_ARG_MODEL=/m/a.gguf", why,
			     sizeof(why)));
	assert_false(claimed("llama-server", "LLAMA_ARG_HF_REPO=org/repo", why, sizeof(why)));
	/* an empty variable gives no model */
	assert_true(claimed("llama-server", "LLAMA_ARG_MODEL=", why, sizeof(why)));
	/* a router's child serves a model */
	assert_false(claimed("llama-server|--port|0", "LLAMA_SERVER_ROUTER_PORT=8080", why,
			     sizeof(why)));
	/* no command line (a zombie, a kernel thread) claims nothing */
	assert_false(claimed("", "", why, sizeof(why)));
	/* the program's own name is no option: argv[0] "-m" is not a model */
	assert_true(claimed("-m", "", why, sizeof(why)));
	/* options that only start like a model's are not one */
	assert_true(claimed("llama-server|--models-max|4|-mus|x", "", why, sizeof(why)));
}

static void test_arg(void **state)
{
	struct block a = blk("llama-server|--alias|alpha|--port=0|--model|/m/a.gguf|--last");

	(void)state;
	assert_string_equal(router_arg(a.s, a.len, "--alias"), "alpha");
	assert_string_equal(router_arg(a.s, a.len, "--port"), "0");
	assert_string_equal(router_arg(a.s, a.len, "--model"), "/m/a.gguf");
	assert_string_equal(router_arg(a.s, a.len, "--last"), ""); /* no value follows */
	assert_null(router_arg(a.s, a.len, "--mod"));
	assert_null(router_arg(a.s, a.len, "llama-server")); /* argv[0] */
	assert_null(router_arg(a.s, 0, "--alias"));
	/* a block cut in its last string (no NUL inside len) */
	a = blk("x|--alias|al");
	assert_string_equal(router_arg(a.s, a.len - 1, "--alias"), "al");
}

/* Start a child (this program again, waiting) with or without the router's variable. */
static pid_t spawn(bool router_child, const char *alias)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid) {
		char *argv[] = { "llama-server", "--child", "--alias", (char *)alias, NULL };
		char *env_child[] = { "LLAMA_SERVER_ROUTER_PORT=8080", NULL };
		char *env_other[] = { "PATH=/bin", NULL };

		execve("/proc/self/exe", argv, router_child ? env_child : env_other);
		_exit(127);
	}
	return pid;
}

static void test_children(void **state)
{
	struct router_child kids[ROUTER_MAX_CHILDREN];
	pid_t a, b;
	int n;

	(void)state;
	a = spawn(true, "alpha");
	b = spawn(false, "beta");
	/* wait until both exec'd (their environment is the new one) */
	for (int i = 0; i < 200; i++) {
		char env[256];

		if (proc_read_small(a, "environ", env, sizeof(env)) > 0 && !strncmp(env, "LLAMA", 5) &&
		    proc_read_small(b, "environ", env, sizeof(env)) > 0 && !strncmp(env, "PATH", 4))
			break;
		usleep(10000);
	}
	n = router_children(getpid(), kids, ROUTER_MAX_CHILDREN);
	assert_int_equal(n, 1);
	assert_int_equal(kids[0].pid, a);
	assert_string_equal(kids[0].model, "alpha");
	kill(a, SIGKILL);
	kill(b, SIGKILL);
	waitpid(a, NULL, 0);
	waitpid(b, NULL, 0);
	assert_int_equal(router_children(getpid(), kids, ROUTER_MAX_CHILDREN), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_arg),
		cmocka_unit_test(test_children),
	};

	if (argc > 1 && !strcmp(argv[1], "--child")) { /* spawn()'s child: wait to be killed */
		pause();
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
