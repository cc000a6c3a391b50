// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The daemon's loop: new processes come from the exec watcher (looked at a few
 * times in their first seconds, while the dynamic loader maps their libraries)
 * and from a /proc rescan; each selected llama.cpp process gets a session of
 * its own; a session ends when its process exits or exec's something else.
 */
#include "cmd/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cmd/attach.h"
#include "target/discover.h"
#include "target/freeze.h"
#include "export/otlp_encode.h"
#include "export/otlp_export.h"
#include "target/resource.h"
#include "sink/sinks.h"
#include "probe/preflight.h"
#include "probe/probes.h"
#include "target/proc.h"
#include "export/prom.h"
#include "cmd/session.h"
#include "target/target.h"
#include "model/telemetry.h"

#define POLL_MS 100
#define MAX_PIDS 65536      /* processes listed per rescan */
#define MAX_PENDING 256     /* exec'd processes waiting for another look */
#define MAX_NOTED 1024      /* processes left out, remembered so they are told once */
#define MAX_TARGETS_LIMIT 64

/* after an exec, look again at these delays (ms): the dynamic loader maps the libraries
 * within milliseconds, and attaching before the model loads means seeing it load */
static const unsigned int recheck_ms[] = { 0, 2, 5, 10, 20, 40, 80, 160, 320, 1000, 3000 };
#define N_RECHECKS (sizeof(recheck_ms) / sizeof(recheck_ms[0]))

struct tracked {
	pid_t pid;
	uint64_t start;        /* its start time: a reused pid is another process */
	struct session *s;
};

struct pending {
	pid_t pid;
	uint64_t exec_ns;      /* when it exec'd */
	unsigned int next;     /* index in recheck_ms */
};

struct noted {
	pid_t pid;
	uint64_t start;
};

struct daemon {
	const struct daemon_opts *o;
	struct discover *disc;
	struct otlp_config otlp;
	struct otlp_exporter *exporter;
	struct prom_server *prom;
	struct session_opts so;
	int epfd;
	struct tracked targets[MAX_TARGETS_LIMIT];
	int n_targets;
	struct pending pending[MAX_PENDING];
	int n_pending;
	struct noted noted[MAX_NOTED]; /* told once why they are not traced */
	int n_noted;
	pid_t self;
	pid_t *pids;                   /* rescan buffer */
	uint64_t attached, detached;   /* totals, for the last line */
	uint64_t failed;               /* processes that could not be traced */
	struct health *health;         /* the daemon's own telemetry */
};

/* The daemon's own metrics, under a resource of its own (service.name llmtap). */
struct health {
	struct metrics m;
	struct metrics prev;           /* delta temporality: the last export */
	struct otlp_metric_export mx;
	struct resource res;
	struct otlp_idgen ids;
	struct otlp_stats reported;
	uint64_t last_attached, last_detached, last_failed, last_lost;
	const char *labels[5];
};

static struct tracked *find_tracked(struct daemon *d, pid_t pid)
{
	for (int i = 0; i < d->n_targets; i++)
		if (d->targets[i].pid == pid)
			return &d->targets[i];
	return NULL;
}

/* Whether pid (at this start time) was told about already; else remember it. */
static bool already_noted(struct daemon *d, pid_t pid, uint64_t start)
{
	for (int i = 0; i < d->n_noted; i++)
		if (d->noted[i].pid == pid && d->noted[i].start == start)
			return true;
	if (d->n_noted == MAX_NOTED) /* forget the oldest half */
		memmove(d->noted, d->noted + MAX_NOTED / 2,
			(d->n_noted -= MAX_NOTED / 2) * sizeof(d->noted[0]));
	d->noted[d->n_noted++] = (struct noted){ pid, start };
	return false;
}

static void forget_noted(struct daemon *d, pid_t pid)
{
	for (int i = 0; i < d->n_noted; i++)
		if (d->noted[i].pid == pid)
			d->noted[i--] = d->noted[--d->n_noted];
}

static void detach(struct daemon *d, struct tracked *t, const char *reason)
{
	pid_t pid = t->pid;
	uint64_t requests = session_requests(t->s);
	char comm[16];

	snprintf(comm, sizeof(comm), "%s", session_comm(t->s));
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, session_fd(t->s), NULL);
	session_close(t->s, reason);
	*t = d->targets[--d->n_targets];
	d->detached++;
	fprintf(stderr, "llmtap: detached from PID %d (%s): %s, %llu requests traced\n", (int)pid,
		comm, reason, (unsigned long long)requests);
}

/* Look at pid: trace it when it loads llama.cpp and the selection takes it. */
static void consider(struct daemon *d, pid_t pid, uint64_t exec_ns)
{
	uint64_t start = proc_start_time(pid);
	struct tracked *t = find_tracked(d, pid);
	struct target *tgt;
	char why[256], err[2048];
	struct session *s;
	struct freeze fr;
	uint64_t held;
	bool frozen;

	if (!start || pid == d->self)
		return;
	if (t && t->start == start)
		return; /* traced already: never twice */
	if (t) /* the pid was reused */
		detach(d, t, "target exited");
	if (!discover_has_llama(d->disc, pid, why, sizeof(why))) {
		if (why[0] && !already_noted(d, pid, start)) /* its files were refused */
			fprintf(stderr, "llmtap: not tracing PID %d: %s\n", (int)pid, why);
		return;
	}
	if (!selector_match(&d->o->sel, pid, why, sizeof(why))) {
		if (!already_noted(d, pid, start))
			fprintf(stderr, "llmtap: not tracing PID %d: %s\n", (int)pid, why);
		return;
	}
	if (d->n_targets >= d->o->max_targets) {
		if (!already_noted(d, pid, start))
			fprintf(stderr, "llmtap: not tracing PID %d: --max-targets %d reached\n",
				(int)pid, d->o->max_targets);
		return;
	}
	tgt = calloc(1, sizeof(*tgt));
	if (!tgt)
		return;
	/* just exec'd: hold it still while attaching, so that its model load is seen */
	frozen = exec_ns && !d->o->no_freeze && freeze_process(pid, &fr);
	held = monotonic_ns();
	s = NULL;
	if (!target_find(pid, tgt, err, sizeof(err)))
		s = session_open(tgt, &d->so, err, sizeof(err));
	if (frozen)
		freeze_release(&fr);
	held = monotonic_ns() - held;
	free(tgt);
	if (!s) {
		if (!already_noted(d, pid, start)) {
			d->failed++;
			fprintf(stderr, "llmtap: cannot trace PID %d: %s\n", (int)pid, err);
		}
		return;
	}
	d->targets[d->n_targets++] = (struct tracked){ pid, start, s };
	forget_noted(d, pid);
	d->attached++;
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = session_fd(s) };

		epoll_ctl(d->epfd, EPOLL_CTL_ADD, session_fd(s), &ev);
	}
	fprintf(stderr, "llmtap: attached to PID %d (%s): %s; service.instance.id %s", (int)pid,
		session_comm(s), session_layers(s), session_instance(s));
	if (exec_ns)
		fprintf(stderr, "; %.1f ms after its exec", (double)(monotonic_ns() - exec_ns) / 1e6);
	if (frozen)
		fprintf(stderr, ", held still while attaching (%.1f ms)", (double)held / 1e6);
	fputc('\n', stderr);
}

static bool is_pending(const struct daemon *d, pid_t pid)
{
	for (int i = 0; i < d->n_pending; i++)
		if (d->pending[i].pid == pid)
			return true;
	return false;
}

static void rescan(struct daemon *d)
{
	int n = discover_list(d->pids, MAX_PIDS);

	/* a process that just exec'd is the exec watcher's (it holds it still while attaching) */
	for (int i = 0; i < n; i++)
		if (!is_pending(d, d->pids[i]))
			consider(d, d->pids[i], 0);
}

static void add_pending(struct daemon *d, pid_t pid, uint64_t now)
{
	struct tracked *t = find_tracked(d, pid);

	if (t) /* it exec'd another program: the old probes went with the old image */
		detach(d, t, "target exec'd another program");
	for (int i = 0; i < d->n_pending; i++)
		if (d->pending[i].pid == pid) {
			d->pending[i] = (struct pending){ pid, now, 0 };
			return;
		}
	if (d->n_pending < MAX_PENDING)
		d->pending[d->n_pending++] = (struct pending){ pid, now, 0 };
}

/* How long the loop may sleep: until the next recheck of a new process, POLL_MS at most. */
static int sleep_ms(const struct daemon *d, uint64_t now)
{
	int ms = POLL_MS;

	for (int i = 0; i < d->n_pending; i++) {
		uint64_t due = d->pending[i].exec_ns + recheck_ms[d->pending[i].next] * 1000000ull;
		int wait = due <= now ? 0 : (int)((due - now + 999999) / 1000000);

		if (wait < ms)
			ms = wait;
	}
	return ms;
}

static void run_pending(struct daemon *d, uint64_t now)
{
	for (int i = 0; i < d->n_pending; i++) {
		struct pending *p = &d->pending[i];

		if (now < p->exec_ns + recheck_ms[p->next] * 1000000ull)
			continue;
		consider(d, p->pid, p->exec_ns);
		if (find_tracked(d, p->pid) || ++p->next == N_RECHECKS)
			d->pending[i--] = d->pending[--d->n_pending];
	}
}

static int health_open(struct daemon *d, char *err, size_t errlen)
{
	const struct resource_target rt = { .pid = d->self, .comm = "llmtap", .from_env = true };
	struct health *h = calloc(1, sizeof(*h));
	const char *kv[2 * RESOURCE_MAX_ATTRS + 1];

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->health = h;
	if (resource_detect(&h->res, &rt, err, errlen))
		return -EINVAL;
	resource_set(&h->res, "service.name", "llmtap"); /* whatever names the targets */
	otlp_idgen_init(&h->ids);
	h->mx.prev = &h->prev;
	resource_id_pairs(&h->res, h->labels);
	resource_pairs(&h->res, kv);
	/* id 0 on the endpoint: no traced process has pid 0 */
	if (d->prom && prom_server_set_target_info(d->prom, 0, kv)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* The daemon's own metrics: targets, attaches, lost execs, its OTLP sender's health. */
static void health_tick(struct daemon *d, uint64_t now, bool final)
{
	struct health *h = d->health;
	struct otlp_encode_ctx ctx = { &h->res, "", &h->ids, realtime_offset_ns() };
	metrics_set(&h->m, M_DAEMON_TARGETS, d->n_targets, now, NULL);
	metrics_add_total(&h->m, M_DAEMON_ATTACHES, d->attached, &h->last_attached, now, "outcome",
			  "attached", NULL);
	metrics_add_total(&h->m, M_DAEMON_ATTACHES, d->failed, &h->last_failed, now, "outcome",
			  "failed", NULL);
	metrics_add_total(&h->m, M_DAEMON_DETACHES, d->detached, &h->last_detached, now, NULL);
	metrics_add_total(&h->m, M_DAEMON_EXECS_LOST, discover_lost(d->disc), &h->last_lost, now,
			  NULL);
	if (d->exporter) {
		struct otlp_stats st;

		otlp_exporter_stats(d->exporter, &st);
		otlp_health_record(&h->m, &d->otlp, &st, &h->reported, 0, now);
	}
	if (d->prom)
		prom_server_publish_target(d->prom, 0, h->labels, &h->m);
	if (d->exporter)
		otlp_export_metrics(d->exporter, &d->otlp, &ctx, &h->m, &h->mx, now, final,
				    (uintptr_t)h);
}

static int setup(struct daemon *d, const struct daemon_opts *o)
{
	char err[2048];

	d->o = o;
	d->self = getpid();
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->pids = calloc(MAX_PIDS, sizeof(*d->pids));
	if (d->epfd < 0 || !d->pids) {
		fprintf(stderr, "llmtap: out of memory\n");
		return -1;
	}
	if (preflight_check(err, sizeof(err)) ||
	    otlp_config_load(&d->otlp, &o->trace.otlp, NULL, err, sizeof(err))) {
		fprintf(stderr, "llmtap: %s\n", err);
		return -1;
	}
	if (d->otlp.enabled && !(d->exporter = otlp_exporter_start(&d->otlp, err, sizeof(err)))) {
		fprintf(stderr, "llmtap: OTLP: %s\n", err);
		return -1;
	}
	if (o->trace.prometheus &&
	    !(d->prom = prom_server_start(o->trace.prometheus, err, sizeof(err)))) {
		fprintf(stderr, "llmtap: --prometheus: %s\n", err);
		return -1;
	}
	probes_libbpf_log(o->trace.verbose);
	d->disc = discover_open(!o->no_exec_watch, err, sizeof(err));
	if (!d->disc) {
		fprintf(stderr, "llmtap: %s (--no-exec-watch relies on the /proc rescan alone)\n", err);
		return -1;
	}
	if (discover_fd(d->disc) >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = discover_fd(d->disc) };

		epoll_ctl(d->epfd, EPOLL_CTL_ADD, discover_fd(d->disc), &ev);
	}
	d->so = attach_session_opts(&o->trace, &d->otlp, o->trace.json ? VIEW_JSON : VIEW_NONE);
	d->so.otlp_exporter = d->exporter;
	d->so.prom = d->prom;
	d->so.prom_per_target = true;
	if (health_open(d, err, sizeof(err))) {
		fprintf(stderr, "llmtap: %s\n", err);
		return -1;
	}
	attach_print_otlp(&d->otlp);
	return 0;
}

static const char *loop(struct daemon *d)
{
	uint64_t start = monotonic_ns(), next_tick = start + d->o->trace.interval_ns, next_scan = start;
	pid_t execs[256];

	for (;;) {
		struct epoll_event evs[16];
		int n = epoll_wait(d->epfd, evs, 16, sleep_ms(d, monotonic_ns()));
		uint64_t now = monotonic_ns();

		(void)n; /* whatever woke us, every ring buffer is drained */
		for (int i = 0; i < d->n_targets; i++)
			session_poll(d->targets[i].s, 0);
		n = discover_execs(d->disc, execs, 256);
		for (int i = 0; i < n; i++)
			add_pending(d, execs[i], now);
		run_pending(d, now);
		if (now >= next_scan) {
			rescan(d);
			next_scan = now + d->o->rescan_ns;
		}
		if (tm_tick_due(now, &next_tick, d->o->trace.interval_ns)) {
			for (int i = 0; i < d->n_targets; i++)
				session_tick(d->targets[i].s, now);
			health_tick(d, now, false);
		}
		for (int i = 0; i < d->n_targets; i++)
			if (session_target_gone(d->targets[i].s))
				detach(d, &d->targets[i--], "target exited");
		if (attach_take_dump_signal())
			for (int i = 0; i < d->n_targets; i++)
				session_dump_tail(d->targets[i].s, "SIGUSR1");
		if (ferror(stdout))
			return "output closed";
		if (attach_stop_signal())
			return attach_signal_reason(attach_stop_signal());
		if (d->o->trace.duration_ns && now - start >= d->o->trace.duration_ns)
			return "duration elapsed";
	}
}

static void teardown(struct daemon *d, const char *reason)
{
	struct otlp_stats st;

	while (d->n_targets)
		detach(d, &d->targets[0], reason);
	if (d->health && d->disc)
		health_tick(d, monotonic_ns(), true);
	if (d->exporter) {
		otlp_exporter_shutdown(d->exporter, d->otlp.flush_timeout_ms, &st);
		otlp_print_stats(stderr, &st);
	}
	prom_server_stop(d->prom);
	discover_close(d->disc);
	if (d->epfd >= 0)
		close(d->epfd);
	free(d->pids);
	free(d->health);
}

int cmd_daemon(const struct daemon_opts *o)
{
	struct daemon *d = calloc(1, sizeof(*d));
	const char *reason;
	int ret = 1;

	if (!d) {
		fprintf(stderr, "llmtap: out of memory\n");
		return 1;
	}
	d->epfd = -1;
	attach_install_signals();
	if (!setup(d, o)) {
		fprintf(stderr, "llmtap: daemon watching for llama.cpp processes (%s, rescans every "
			"%.3gs, up to %d targets)\n",
			discover_fd(d->disc) >= 0 ? "exec tracepoint" : "no exec tracepoint",
			(double)o->rescan_ns / 1e9, o->max_targets);
		reason = loop(d);
		fprintf(stderr, "llmtap: daemon stopping: %s\n", reason);
		ret = 0;
	} else {
		reason = "could not start";
	}
	teardown(d, reason);
	if (!ret)
		fprintf(stderr, "llmtap: daemon stopped: %llu attached, %llu detached\n",
			(unsigned long long)d->attached, (unsigned long long)d->detached);
	free(d);
	return ret;
}
