/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Router mode: a llama-server started without a model (`--models-dir DIR`,
 * `--models-preset FILE`, or no model at all; b7698 has it, b5640 not) is a router.
 * It starts a child llama-server per model on a loopback port, with
 * LLAMA_SERVER_ROUTER_PORT in the child's environment, and proxies each request
 * to it. The router never loads a model and never decodes: its requests are
 * proxies, and their tokens and timings are the child's.
 *
 * What a process was started with (its command line and environment) is its
 * own memory: a claim, not a fact. A process that maps a model file is never
 * taken for a router, and the session drops the claim for good at the target's
 * first engine work (a decode, a model load: see session.c), so a lying target
 * can at most turn the requests that began before it into proxy spans, which
 * are still reported.
 */
#ifndef LLMTAP_ROUTER_H
#define LLMTAP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct target;

#define ROUTER_MAX_CHILDREN 16

struct router_child {
	pid_t pid;
	char model[64]; /* its --alias (the router's name for its model), "" unknown */
};

struct router_info {
	bool router;
	char why[320]; /* what says so: "--models-dir DIR", "no model given", ... (the target's
			* own strings: print through tell() or term_safe()) */
	struct router_child children[ROUTER_MAX_CHILDREN];
	int n_children; /* the children running when it was looked at */
};

/*
 * Whether a llama-server's command line (argv: NUL-separated, alen bytes) and
 * environment (env, elen bytes) make it a router: no model from -m/--model,
 * -mu/--model-url, -hf/--hf-repo, -dr/--docker-repo, nor from their
 * LLAMA_ARG_* variables, and not a router's child (LLAMA_SERVER_ROUTER_PORT).
 * why (when true): what it was started with, in a few words.
 */
bool router_claimed(const char *argv, size_t alen, const char *env, size_t elen, char *why,
		    size_t whylen);

/*
 * Whether t (pid set, its files found) is a router llama-server: it has the HTTP
 * layer's sites, maps no model file, and its command line and environment say
 * so or it has started children that carry LLAMA_SERVER_ROUTER_PORT. Fills ri
 * (its children too). Reads a few small /proc files: never waits on the target.
 */
bool router_detect(const struct target *t, struct router_info *ri);

/* The children a router pid started (LLAMA_SERVER_ROUTER_PORT in their environment),
 * at most max; how many. */
int router_children(pid_t pid, struct router_child *out, int max);

/* The value of option name in argv (NUL-separated, alen bytes): "--opt VALUE" or
 * "--opt=VALUE"; NULL when absent. */
const char *router_arg(const char *argv, size_t alen, const char *name);

#endif
