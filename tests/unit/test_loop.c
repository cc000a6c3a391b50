// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/cmd/loop.c and signals.c: the loop attach, run and daemon turn. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cmd/loop.h"
#include "cmd/session.h"
#include "cmd/signals.h"
#include "lib/clock.h"
#include "model/telemetry.h"

#define MS 1000000ull

/* A session as loop_session sees it: a pipe for its ring buffer. */
struct session {
	int fds[2];
	int polls, records, ticks, dumps;
	int poll_error;       /* session_poll returns it once */
};

int session_fd(const struct session *s)
{
	return s->fds[0];
}

int session_poll(struct session *s, int timeout_ms)
{
	char buf[64];
	ssize_t n;
	int err = s->poll_error;

	assert_int_equal(timeout_ms, 0); /* the loop waits; sessions only drain */
	s->polls++;
	s->poll_error = 0;
	if (err)
		return err;
	n = read(s->fds[0], buf, sizeof(buf));
	if (n > 0)
		s->records += (int)n;
	return n > 0 ? (int)n : 0;
}

void session_tick(struct session *s, uint64_t now_ns)
{
	(void)now_ns;
	s->ticks++;
}

bool session_dump_tail(struct session *s, const char *reason)
{
	assert_string_equal(reason, "SIGUSR1");
	s->dumps++;
	return true;
}

static void session_init(struct session *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(pipe2(s->fds, O_NONBLOCK), 0);
}

static void session_fini(struct session *s)
{
	close(s->fds[0]);
	close(s->fds[1]);
}

/* What the ops-level tests count. */
struct counts {
	int ready, ticks, dumps, rounds;
	uint64_t first_tick_ns;
	const char *stop_at_round_reason;
	int stop_at_round;
};

static const char *count_ready(void *arg, uint64_t now)
{
	struct counts *c = arg;

	(void)now;
	c->ready++;
	return NULL;
}

static void count_tick(void *arg, uint64_t now)
{
	struct counts *c = arg;

	if (!c->ticks++)
		c->first_tick_ns = now;
}

static void count_dump(void *arg)
{
	struct counts *c = arg;

	c->dumps++;
}

static const char *count_rounds(void *arg, uint64_t now)
{
	struct counts *c = arg;

	(void)now;
	return ++c->rounds == c->stop_at_round ? c->stop_at_round_reason : NULL;
}

static void test_ticks_until_duration(void **state)
{
	struct counts c = { 0 };
	const struct loop_ops ops = {
		.interval_ns = 40 * MS,
		.duration_ns = 210 * MS,
		.on_ready = count_ready,
		.on_tick = count_tick,
		.should_stop = count_rounds,
	};
	uint64_t start = monotonic_ns(), took;
	(void)state;

	assert_string_equal(loop_run(&ops, &c), "duration elapsed");
	took = monotonic_ns() - start;
	assert_true(took >= 210 * MS);
	assert_true(took < 2000 * MS);
	/* at 40, 80, 120, 160 and 200 ms: the wait ends at each tick (waits of LOOP_POLL_MS
	 * would tick twice); a loaded machine may run one late and skip the next */
	assert_in_range(c.ticks, 3, 5);
	assert_true(c.first_tick_ns - start >= 40 * MS);
	/* on_ready and should_stop run every round, the last one included */
	assert_int_equal(c.ready, c.rounds);
	assert_true(c.rounds >= 6);
}

static void test_callback_stops(void **state)
{
	struct counts c = { .stop_at_round = 3, .stop_at_round_reason = "enough" };
	const struct loop_ops ops = { .interval_ns = 10 * MS, .should_stop = count_rounds };
	(void)state;

	assert_string_equal(loop_run(&ops, &c), "enough");
	assert_int_equal(c.rounds, 3);
}

static const char *stop_when_ready(void *arg, uint64_t now)
{
	struct session *s = arg;

	(void)now;
	return s->records ? "records came" : NULL;
}

static void *write_later(void *arg)
{
	struct session *s = arg;

	usleep(30000);
	assert_int_equal(write(s->fds[1], "abc", 3), 3);
	return NULL;
}

/* Records wake the loop: it does not sleep through them until the next tick. */
static void test_records_wake_the_loop(void **state)
{
	struct session s;
	pthread_t th;
	uint64_t start, took;
	(void)state;

	session_init(&s);
	start = monotonic_ns();
	assert_int_equal(pthread_create(&th, NULL, write_later, &s), 0);
	assert_string_equal(loop_session(&s, 10000 * MS, 0, stop_when_ready, &s), "records came");
	took = monotonic_ns() - start;
	pthread_join(th, NULL);
	assert_int_equal(s.records, 3);
	assert_int_equal(s.ticks, 0);
	assert_true(took >= 30 * MS);
	session_fini(&s);
}

static void test_session_ticks_and_ring_errors(void **state)
{
	struct session s;
	(void)state;

	session_init(&s);
	assert_string_equal(loop_session(&s, 20 * MS, 70 * MS, NULL, NULL), "duration elapsed");
	assert_in_range(s.ticks, 1, 3); /* at 20, 40 and 60 ms */
	assert_true(s.polls >= 2);
	s.poll_error = -EIO;
	assert_string_equal(loop_session(&s, 20 * MS, 0, NULL, NULL), "ring buffer error");
	/* -EINTR is no error */
	s.poll_error = -EINTR;
	assert_string_equal(loop_session(&s, 20 * MS, 50 * MS, NULL, NULL), "duration elapsed");
	session_fini(&s);
}

/* timeout_ms bounds the wait: the daemon's rechecks of a just-started process. */
static int short_wait(void *arg, uint64_t now)
{
	(void)arg;
	(void)now;
	return 5;
}

static void test_timeout_bounds_the_wait(void **state)
{
	struct counts c = { 0 };
	const struct loop_ops ops = { .interval_ns = 10000 * MS, .duration_ns = 100 * MS,
				      .timeout_ms = short_wait, .should_stop = count_rounds };
	(void)state;

	assert_string_equal(loop_run(&ops, &c), "duration elapsed");
	assert_true(c.rounds >= 5); /* 5 ms waits (20 rounds), not LOOP_POLL_MS ones (1 or 2) */
}

/* A SIGUSR1 that came is handled once, in the next round. */
static void test_usr1_calls_on_dump(void **state)
{
	struct counts c = { 0 };
	const struct loop_ops ops = { .interval_ns = 10000 * MS, .duration_ns = 50 * MS,
				      .on_dump = count_dump, .should_stop = count_rounds };
	(void)state;

	signals_install_dump();
	raise(SIGUSR1);
	assert_string_equal(loop_run(&ops, &c), "duration elapsed");
	assert_int_equal(c.dumps, 1);
	assert_false(signals_take_dump());
}

static void *usr1_later(void *arg)
{
	(void)arg;
	usleep(30000);
	kill(getpid(), SIGUSR1);
	return NULL;
}

/* SIGUSR1 interrupting the wait (EINTR) is no error: the session's tail is written. */
static void test_usr1_interrupts_the_wait(void **state)
{
	struct session s;
	pthread_t th;
	sigset_t usr1;
	(void)state;

	session_init(&s);
	signals_install_dump();
	/* only the main thread (in poll) takes the signal */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	assert_int_equal(pthread_create(&th, NULL, usr1_later, NULL), 0);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	assert_string_equal(loop_session(&s, 10000 * MS, 150 * MS, NULL, NULL), "duration elapsed");
	pthread_join(th, NULL);
	assert_int_equal(s.dumps, 1);
	session_fini(&s);
}

static const char *raise_term(void *arg, uint64_t now)
{
	struct counts *c = arg;

	(void)now;
	if (++c->rounds == 2)
		raise(SIGTERM);
	return NULL;
}

/* Last: the stop flag stays set (a stopped command never turns the loop again). */
static void test_stop_signal(void **state)
{
	struct counts c = { 0 };
	const struct loop_ops ops = { .interval_ns = 10 * MS, .should_stop = raise_term };
	(void)state;

	assert_int_equal(signals_stop(), 0);
	signals_install_stop();
	assert_string_equal(loop_run(&ops, &c), "terminated (SIGTERM)");
	assert_int_equal(c.rounds, 2);
	assert_int_equal(signals_stop(), SIGTERM);
	assert_string_equal(signals_reason(SIGINT), "interrupted (SIGINT)");
	assert_string_equal(signals_reason(SIGHUP), "hung up (SIGHUP)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ticks_until_duration),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_records_wake_the_loop),
		cmocka_unit_test(test_session_ticks_and_ring_errors),
		cmocka_unit_test(test_timeout_bounds_the_wait),
		cmocka_unit_test(test_usr1_calls_on_dump),
		cmocka_unit_test(test_usr1_interrupts_the_wait),
		cmocka_unit_test(test_stop_signal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
