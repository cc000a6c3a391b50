/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `llmtap daemon`: trace every llama.cpp process of the host, as they come and go. */
#ifndef LLMTAP_DAEMON_H
#define LLMTAP_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otlp_config.h"
#include "select.h"

struct daemon_opts {
	struct selector sel;
	uint64_t duration_ns;   /* 0: until stopped */
	uint64_t interval_ns;   /* telemetry ticks */
	uint64_t rescan_ns;     /* /proc rescans */
	int max_targets;
	size_t ringbuf_bytes;   /* per target */
	bool json;              /* JSON lines for every target on stdout */
	bool json_steps;
	bool no_exec_watch;     /* rescans only */
	bool no_freeze;         /* never hold a just-started process while attaching */
	bool verbose;
	const char *prometheus; /* ADDR:PORT, NULL for none */
	uint64_t tail_ns;       /* per target tail capture, 0 for none */
	uint64_t tail_ttft_ns;
	const char *tail_dir;
	struct otlp_cli otlp;
};

/* The exit code: 0 stopped cleanly, 1 could not start. */
int cmd_daemon(const struct daemon_opts *o);

#endif
