/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The llama.cpp processes discovery finds, each traced by a session of its own.
 * New processes come from the exec watcher (looked at a few times in their first
 * seconds, while the dynamic loader maps their libraries; held still while the
 * probes go on, so their model load is seen) and from a /proc rescan; each one
 * the selection takes gets a session; a session ends when its process exits or
 * exec's another program. `llmtap daemon` watches a host with one; `llmtap run`
 * the descendants of its program (a router llama-server's children).
 */
#ifndef LLMTAP_FLEET_H
#define LLMTAP_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cmd/session.h"
#include "target/select.h"

#define FLEET_MAX_TARGETS 64

struct fleet_opts {
	const struct selector *sel; /* NULL: every process (within root) */
	struct session_opts so;     /* every session's (copied) */
	int max_targets;            /* FLEET_MAX_TARGETS at most */
	uint64_t rescan_ns;         /* /proc rescans */
	bool exec_watch;            /* the exec tracepoint (else rescans alone) */
	bool freeze;                /* hold a just-exec'd process still while attaching */
	pid_t root;                 /* > 0: only root's descendants, listed from root down,
				     * others never looked at nor told about */
};

struct fleet;

/* NULL with a reason in err (the exec watcher could not be loaded). */
struct fleet *fleet_open(const struct fleet_opts *o, char *err, size_t errlen);
/* Whether the exec tracepoint reports new processes (else rescans alone). */
bool fleet_exec_watch(const struct fleet *f);

/* For the loop (loop_ops): the fds to wait on (the exec watcher's, every session's). */
int fleet_poll_fds(const struct fleet *f, int *fds, int max);
/* How long the loop may sleep: until the next look at a new process. */
int fleet_timeout_ms(const struct fleet *f, uint64_t now);
/* Drain every session, look at new processes, rescan when due. */
void fleet_ready(struct fleet *f, uint64_t now);
void fleet_tick(struct fleet *f, uint64_t now);
/* SIGUSR1: every session's tail capture. */
void fleet_dump(struct fleet *f);
/* Detach from the processes that exited. */
void fleet_reap(struct fleet *f);

struct fleet_stats {
	int targets;
	uint64_t attached, detached;
	uint64_t failed;     /* processes that could not be traced */
	uint64_t execs_lost; /* execs the tracepoint could not report */
};
void fleet_stats(const struct fleet *f, struct fleet_stats *st);

/* Detach from every target (reason: why, in each summary). */
void fleet_detach_all(struct fleet *f, const char *reason);
/* The same, and free; NULL is fine. */
void fleet_close(struct fleet *f, const char *reason);

#endif
