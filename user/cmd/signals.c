// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "cmd/signals.h"

#include <signal.h>
#include <stdio.h>

#include "cmd/session.h"
#include "lib/util.h"

/* set by the handlers, read by the loop */
static volatile sig_atomic_t stop_signal, dump_signal, forward_pid;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static void on_usr1(int sig)
{
	dump_signal = sig;
}

/* Signals someone sent llmtap go on to the program; the terminal's reach both already. */
static void on_forward(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (si->si_code <= 0 && forward_pid > 0) /* SI_USER, SI_QUEUE, SI_TKILL: a process sent it */
		kill((pid_t)forward_pid, sig);
}

void signals_install_dump(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL); /* dump the tail capture (and never die of a stray USR1) */
	signal(SIGPIPE, SIG_IGN);
}

void signals_install_stop(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signals_install_dump();
}

void signals_install_forward(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2, SIGWINCH };
	struct sigaction sa = { .sa_sigaction = on_forward, .sa_flags = SA_SIGINFO | SA_RESTART };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	signals_install_dump(); /* SIGUSR1 stays llmtap's */
}

void signals_forward_to(pid_t pid)
{
	forward_pid = pid;
}

int signals_stop(void)
{
	return stop_signal;
}

bool signals_take_dump(void)
{
	bool d = dump_signal;

	dump_signal = 0;
	return d;
}

const char *signals_reason(int sig)
{
	return sig == SIGINT ? "interrupted (SIGINT)" :
	       sig == SIGTERM ? "terminated (SIGTERM)" : "hung up (SIGHUP)";
}

void signals_dump_tail(struct session *s)
{
	if (!session_dump_tail(s, "SIGUSR1"))
		fprintf(stderr, "llmtap: SIGUSR1: no --tail capture to write\n");
}
