/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The loop attach (and top and record), run and daemon turn until they stop:
 * wait for records on the ring buffers' fds (LOOP_POLL_MS at most: the BPF
 * side does not wake the consumer for every record), handle them, tick the
 * telemetry every interval, write the tail capture on SIGUSR1, and stop on a
 * stopping signal (signals_install_stop), at the end of the duration, or when
 * a callback says so. A signal interrupting the wait is no error.
 */
#ifndef LLMTAP_LOOP_H
#define LLMTAP_LOOP_H

#include <stdint.h>

#define LOOP_POLL_MS 100
#define LOOP_MAX_FDS 128

struct loop_ops {
	uint64_t interval_ns;  /* on_tick's period */
	uint64_t duration_ns;  /* stop after this long ("duration elapsed"), 0: never */
	/* The fds to wait on (readable when records wait): up to max of them in fds, their count. */
	int (*poll_fds)(void *arg, int *fds, int max);
	/* NULL or how long the next wait may last at most, in ms (LOOP_POLL_MS at most). */
	int (*timeout_ms)(void *arg, uint64_t now_ns);
	/* After every wait, whatever ended it: handle what waits. NULL or a reason to stop. */
	const char *(*on_ready)(void *arg, uint64_t now_ns);
	/* Every interval_ns (NULL: none). */
	void (*on_tick)(void *arg, uint64_t now_ns);
	/* SIGUSR1 came (NULL: nothing to do). */
	void (*on_dump)(void *arg);
	/* Last in every round: NULL to go on, or a reason to stop (NULL: never). */
	const char *(*should_stop)(void *arg, uint64_t now_ns);
};

/* Turn until something stops the loop; why (for the summary). */
const char *loop_run(const struct loop_ops *ops, void *arg);

struct session;

/*
 * The loop around one session (attach, top, record, run): its records (a ring
 * buffer error stops it), its ticks, SIGUSR1's tail capture (or a word that
 * there is none). should_stop(arg, now), when not NULL, says what else ends it.
 */
const char *loop_session(struct session *s, uint64_t interval_ns, uint64_t duration_ns,
			 const char *(*should_stop)(void *arg, uint64_t now_ns), void *arg);

#endif
