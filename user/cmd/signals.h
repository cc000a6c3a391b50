/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * llmtap's signals, for attach (and top and record), run and daemon: what
 * stops a command, SIGUSR1's tail capture, and run's forwarding to its
 * program. The handlers only set flags; the loop (loop.h) reads them.
 */
#ifndef LLMTAP_SIGNALS_H
#define LLMTAP_SIGNALS_H

#include <stdbool.h>
#include <sys/types.h>

struct session;

/* attach and daemon: SIGINT, SIGTERM and SIGHUP stop; then signals_install_dump's. */
void signals_install_stop(void);
/* SIGUSR1 asks for the tail capture (and never kills llmtap); SIGPIPE is ignored. */
void signals_install_dump(void);
/*
 * run: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2 and SIGWINCH that a process
 * sent llmtap go on to the program signals_forward_to names (the terminal's
 * reach both already) and do not stop llmtap; then signals_install_dump's.
 */
void signals_install_forward(void);
void signals_forward_to(pid_t pid);

/* The stopping signal, 0 when none came yet. */
int signals_stop(void);
/* SIGUSR1 came since the last call. */
bool signals_take_dump(void);
/* Why llmtap stopped, for a stopping signal: "interrupted (SIGINT)"... */
const char *signals_reason(int sig);
/* SIGUSR1 came: write s's tail capture, or say on stderr that there is none. */
void signals_dump_tail(struct session *s);

#endif
