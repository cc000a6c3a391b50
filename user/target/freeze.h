/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Holding a just-started process still while its probes go on, so that its
 * model load is traced: every thread is stopped with PTRACE_SEIZE +
 * PTRACE_INTERRUPT, a stop its parent never sees (no SIGCHLD, no job-control
 * state), and let go with PTRACE_DETACH. If llmtap dies meanwhile, the kernel
 * detaches and the process runs on.
 */
#ifndef LLMTAP_FREEZE_H
#define LLMTAP_FREEZE_H

#include <stdbool.h>
#include <sys/types.h>

#define FREEZE_MAX_THREADS 64

struct freeze {
	pid_t tids[FREEZE_MAX_THREADS];
	int n;
};

/* Stop every thread of pid (at most FREEZE_MAX_THREADS). false when it could not:
 * nothing is held then (no CAP_SYS_PTRACE, Yama, a debugger already attached). */
bool freeze_process(pid_t pid, struct freeze *f);
/* Let every thread go. */
void freeze_release(struct freeze *f);

#endif
