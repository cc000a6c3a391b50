// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/text.h"
#include "lib/util.h"
#include "target/proc.h"
#include "target/target.h"

#define ARGS_MAX (64 * 1024) /* of a command line or an environment, read at most */
#define MAX_PIDS 256         /* child processes looked at */
#define CHILD_ENV "LLAMA_SERVER_ROUTER_PORT"

/* The options that give llama-server its model, and their variables (common/arg.cpp). */
static const char *const model_opts[] = {
	"-m", "--model", "-mu", "--model-url", "-hf", "-hfr", "--hf-repo", "-dr", "--docker-repo",
};
static const char *const model_vars[] = {
	"LLAMA_ARG_MODEL", "LLAMA_ARG_MODEL_URL", "LLAMA_ARG_HF_REPO", "LLAMA_ARG_DOCKER_REPO",
};

/* The next NUL-separated string after s in a block of len bytes, or NULL. */
static const char *next_str(const char *block, size_t len, const char *s)
{
	const char *end = memchr(s, '\0', (size_t)(block + len - s));

	return end && end + 1 < block + len ? end + 1 : NULL;
}

/* s is "name" or "name=...": the value's start (after '='), or s + len for "name". */
static const char *opt_value(const char *s, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(s, name, n) || (s[n] && s[n] != '='))
		return NULL;
	return s[n] ? s + n + 1 : s + n;
}

const char *router_arg(const char *argv, size_t alen, const char *name)
{
	if (!alen)
		return NULL;
	/* argv[0] is the program */
	for (const char *a = next_str(argv, alen, argv); a; a = next_str(argv, alen, a)) {
		const char *v = opt_value(a, name);

		if (!v)
			continue;
		if (v != a + strlen(name))
			return v; /* --opt=VALUE */
		v = next_str(argv, alen, a); /* --opt VALUE */
		return v ? v : "";
	}
	return NULL;
}

/* A non-empty variable name in the environment block. */
static bool env_set(const char *env, size_t elen, const char *name)
{
	size_t n = strlen(name);

	for (const char *e = elen ? env : NULL; e; e = next_str(env, elen, e))
		if (!strncmp(e, name, n) && e[n] == '=' && e[n + 1])
			return true;
	return false;
}

static const char *env_get(const char *env, size_t elen, const char *name)
{
	size_t n = strlen(name);

	for (const char *e = elen ? env : NULL; e; e = next_str(env, elen, e))
		if (!strncmp(e, name, n) && e[n] == '=')
			return e + n + 1;
	return NULL;
}

bool router_claimed(const char *argv, size_t alen, const char *env, size_t elen, char *why,
		    size_t whylen)
{
	const char *dir, *preset;

	if (!alen)
		return false; /* no command line (a kernel thread, a zombie): no claim */
	for (size_t i = 0; i < ARRAY_SIZE(model_opts); i++)
		if (router_arg(argv, alen, model_opts[i]))
			return false;
	for (size_t i = 0; i < ARRAY_SIZE(model_vars); i++)
		if (env_set(env, elen, model_vars[i]))
			return false;
	if (env_get(env, elen, CHILD_ENV))
		return false; /* a router's child: it serves a model */
	dir = router_arg(argv, alen, "--models-dir");
	if (!dir)
		dir = env_get(env, elen, "LLAMA_ARG_MODELS_DIR");
	preset = router_arg(argv, alen, "--models-preset");
	if (!preset)
		preset = env_get(env, elen, "LLAMA_ARG_MODELS_PRESET");
	if (dir && *dir)
		snprintf(why, whylen, "--models-dir %.256s", dir);
	else if (preset && *preset)
		snprintf(why, whylen, "--models-preset %.256s", preset);
	else
		snprintf(why, whylen, "started without a model");
	return true;
}

int router_children(pid_t pid, struct router_child *out, int max)
{
	pid_t pids[MAX_PIDS];
	char *block = malloc(ARGS_MAX);
	int n = proc_children(pid, pids, MAX_PIDS), found = 0;

	for (int i = 0; block && i < n && found < max; i++) {
		struct router_child *c = &out[found];
		ssize_t len = proc_read_small(pids[i], "environ", block, ARGS_MAX);
		const char *alias;

		if (len <= 0 || !env_get(block, (size_t)len, CHILD_ENV))
			continue;
		memset(c, 0, sizeof(*c));
		c->pid = pids[i];
		len = proc_read_small(pids[i], "cmdline", block, ARGS_MAX);
		alias = len > 0 ? router_arg(block, (size_t)len, "--alias") : NULL;
		if (!alias && len > 0)
			alias = router_arg(block, (size_t)len, "-a");
		if (alias)
			utf8_sanitize(c->model, sizeof(c->model), alias, strlen(alias));
		found++;
	}
	free(block);
	return found;
}

bool router_detect(const struct target *t, struct router_info *ri)
{
	char *args = malloc(ARGS_MAX), *env = malloc(ARGS_MAX);
	ssize_t alen, elen;

	memset(ri, 0, sizeof(*ri));
	/* a router is a llama-server (the HTTP layer) that never maps a model */
	if (!args || !env || !target_layer_found(t, LAYER_HTTP) || t->model[0])
		goto out;
	alen = proc_read_small(t->pid, "cmdline", args, ARGS_MAX);
	elen = proc_read_small(t->pid, "environ", env, ARGS_MAX);
	ri->n_children = router_children(t->pid, ri->children, ROUTER_MAX_CHILDREN);
	if (router_claimed(args, alen > 0 ? (size_t)alen : 0, env, elen > 0 ? (size_t)elen : 0,
			   ri->why, sizeof(ri->why)))
		ri->router = true;
	else if (ri->n_children > 0 && !(elen > 0 && env_get(env, (size_t)elen, CHILD_ENV))) {
		/* a model source llmtap does not know (-hf with a preset repository, ...) */
		snprintf(ri->why, sizeof(ri->why), "it started child llama-servers (%s)", CHILD_ENV);
		ri->router = true;
	}
out:
	free(args);
	free(env);
	return ri->router;
}
