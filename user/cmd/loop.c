// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "cmd/loop.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "cmd/session.h"
#include "cmd/signals.h"
#include "lib/clock.h"
#include "model/telemetry.h"

/* ms from now until deadline, rounded up; 0 when it has passed */
static int ms_until(uint64_t now, uint64_t deadline)
{
	uint64_t ms = deadline > now ? (deadline - now + 999999) / 1000000 : 0;

	return ms > LOOP_POLL_MS ? LOOP_POLL_MS : (int)ms;
}

/* How long the wait may last: the caller's bound, the next tick, the end of the duration. */
static int wait_ms(const struct loop_ops *ops, void *arg, uint64_t now, uint64_t next_tick,
		   uint64_t start)
{
	int ms = ops->timeout_ms ? ops->timeout_ms(arg, now) : LOOP_POLL_MS;
	int tick = ms_until(now, next_tick);

	if (ms < 0 || ms > LOOP_POLL_MS)
		ms = LOOP_POLL_MS;
	if (ops->on_tick && tick < ms)
		ms = tick;
	if (ops->duration_ns && ms_until(now, start + ops->duration_ns) < ms)
		ms = ms_until(now, start + ops->duration_ns);
	return ms;
}

const char *loop_run(const struct loop_ops *ops, void *arg)
{
	uint64_t start = monotonic_ns(), next_tick = start + ops->interval_ns;
	struct pollfd pfds[LOOP_MAX_FDS];
	int fds[LOOP_MAX_FDS];

	for (;;) {
		int n = ops->poll_fds ? ops->poll_fds(arg, fds, LOOP_MAX_FDS) : 0;
		int timeout = wait_ms(ops, arg, monotonic_ns(), next_tick, start);
		const char *why;
		uint64_t now;

		n = n < 0 ? 0 : n > LOOP_MAX_FDS ? LOOP_MAX_FDS : n;
		for (int i = 0; i < n; i++)
			pfds[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		/* a signal ends the wait early: its flag is looked at below */
		if (poll(pfds, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			fprintf(stderr, "llmtap: waiting for records failed: %s\n", strerror(errno));
			return "poll error";
		}
		now = monotonic_ns();
		if (ops->on_ready && (why = ops->on_ready(arg, now)))
			return why;
		if (ops->on_tick && tm_tick_due(now, &next_tick, ops->interval_ns))
			ops->on_tick(arg, now);
		if (signals_take_dump() && ops->on_dump)
			ops->on_dump(arg);
		if (ops->should_stop && (why = ops->should_stop(arg, now)))
			return why;
		if (signals_stop())
			return signals_reason(signals_stop());
		if (ops->duration_ns && now - start >= ops->duration_ns)
			return "duration elapsed";
	}
}

struct one_session {
	struct session *s;
	const char *(*should_stop)(void *arg, uint64_t now_ns);
	void *arg;
};

static int one_fds(void *arg, int *fds, int max)
{
	const struct one_session *o = arg;

	(void)max;
	fds[0] = session_fd(o->s);
	return 1;
}

static const char *one_ready(void *arg, uint64_t now)
{
	const struct one_session *o = arg;
	int n = session_poll(o->s, 0);

	(void)now;
	if (n < 0 && n != -EINTR) {
		fprintf(stderr, "llmtap: reading the ring buffer failed: %s\n", strerror(-n));
		return "ring buffer error";
	}
	return NULL;
}

static void one_tick(void *arg, uint64_t now)
{
	const struct one_session *o = arg;

	session_tick(o->s, now);
}

static void one_dump(void *arg)
{
	const struct one_session *o = arg;

	signals_dump_tail(o->s);
}

static const char *one_should_stop(void *arg, uint64_t now)
{
	const struct one_session *o = arg;

	return o->should_stop ? o->should_stop(o->arg, now) : NULL;
}

const char *loop_session(struct session *s, uint64_t interval_ns, uint64_t duration_ns,
			 const char *(*should_stop)(void *arg, uint64_t now_ns), void *arg)
{
	const struct loop_ops ops = {
		.interval_ns = interval_ns,
		.duration_ns = duration_ns,
		.poll_fds = one_fds,
		.on_ready = one_ready,
		.on_tick = one_tick,
		.on_dump = one_dump,
		.should_stop = one_should_stop,
	};
	struct one_session o = { s, should_stop, arg };

	return loop_run(&ops, &o);
}
