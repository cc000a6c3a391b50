/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `llmtap daemon`: trace every llama.cpp process of the host, as they come and go. */
#ifndef LLMTAP_DAEMON_H
#define LLMTAP_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd/attach.h"
#include "target/select.h"

struct daemon_opts {
	struct selector sel;
	uint64_t rescan_ns;     /* /proc rescans */
	int max_targets;
	bool no_exec_watch;     /* rescans only */
	bool no_freeze;         /* never hold a just-started process while attaching */
	/* what it shares with attach (main.c's trace_argp): duration, interval, per-target
	 * ring buffer, json, verbose, debug events, prometheus, tail capture, OTLP
	 * (pid, record_path and top unused) */
	struct attach_opts trace;
};

/* The exit code: 0 stopped cleanly, 1 could not start. */
int cmd_daemon(const struct daemon_opts *o);

#endif
