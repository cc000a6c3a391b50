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
#include <unistd.h>

#include "cmd/attach.h"
#include "cmd/loop.h"
#include "cmd/session.h"
#include "cmd/signals.h"
#include "export/otlp_encode.h"
#include "export/otlp_export.h"
#include "export/prom_http.h"
#include "lib/clock.h"
#include "lib/text.h"
#include "lib/util.h"
#include "model/telemetry.h"
#include "probe/preflight.h"
#include "probe/probes.h"
#include "sink/sinks.h"
#include "target/discover.h"
#include "target/freeze.h"
#include "target/proc.h"
#include "target/resource.h"
#include "target/target.h"

#define MAX_PIDS 65536      /* processes listed per rescan */
#define MAX_PENDING 256     /* exec'd processes waiting for another look */
#define MAX_NOTED 1024      /* processes left out, remembered so they are told once */
#define MAX_TARGETS_LIMIT 64
_Static_assert(PROM_MAX_TARGETS >= MAX_TARGETS_LIMIT + 1,
	       "the Prometheus endpoint holds every target and the daemon's own health");

/* after an exec, look again at these delays (ms): the dynamic loader maps the libraries
 * within milliseconds, and attaching before the model loads means seeing it load */
static const unsigned int recheck_ms[] = { 0, 2, 5, 10, 20, 40, 80, 160, 320, 1000, 3000 };
#define N_RECHECKS ARRAY_SIZE(recheck_ms)

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
	struct tracked targets[MAX_TARGETS_LIMIT];
	int n_targets;
	struct pending pending[MAX_PENDING];
	int n_pending;
	struct noted noted[MAX_NOTED]; /* told once why they are not traced */
	int n_noted;
	pid_t self;
	pid_t *pids;                   /* rescan buffer */
	int n_pids, scan_pos;          /* a rescan in progress: pids[scan_pos..n_pids) left */
	uint64_t next_scan;            /* when the next rescan is due */
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
	session_close(t->s, reason);
	*t = d->targets[--d->n_targets];
	d->detached++;
	tell("detached from PID %d (%s): %s, %llu requests traced", (int)pid, comm, reason,
	     (unsigned long long)requests);
}

/* Look at pid: trace it when it loads llama.cpp and the selection takes it. */
static void consider(struct daemon *d, pid_t pid, uint64_t exec_ns)
{
	uint64_t start = proc_start_time(pid);
	struct tracked *t = find_tracked(d, pid);
	struct target *tgt;
	char why[256], err[2048], after[128];
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
			tell("not tracing PID %d: %s", (int)pid, why);
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
			tell("cannot trace PID %d: %s", (int)pid, err);
		}
		return;
	}
	d->targets[d->n_targets++] = (struct tracked){ pid, start, s };
	forget_noted(d, pid);
	d->attached++;
	after[0] = '\0';
	if (exec_ns)
		snprintf(after, sizeof(after), "; %.1f ms after its exec%s",
			 (double)(monotonic_ns() - exec_ns) / 1e6,
			 frozen ? ", held still while attaching" : "");
	if (frozen)
		snprintf(after + strlen(after), sizeof(after) - strlen(after), "%s(%.1f ms)",
			 exec_ns ? " " : ", held still while attaching ", (double)held / 1e6);
	tell("attached to PID %d (%s): %s; service.instance.id %s%s", (int)pid, session_comm(s),
	     session_layers(s), session_instance(s), after);
}

static bool is_pending(const struct daemon *d, pid_t pid)
{
	for (int i = 0; i < d->n_pending; i++)
		if (d->pending[i].pid == pid)
			return true;
	return false;
}

/*
 * A slice of a /proc rescan: true when it is done. A rescan that reads many new
 * files (a process mapping thousands, slow disks) takes slices of RESCAN_SLICE_NS
 * between which the targets' ring buffers are drained, instead of stalling them.
 */
#define RESCAN_SLICE_NS (50 * 1000000ull)

static bool rescan(struct daemon *d)
{
	uint64_t start = monotonic_ns();

	if (d->scan_pos >= d->n_pids) { /* a new rescan */
		d->n_pids = discover_list(d->pids, MAX_PIDS);
		d->scan_pos = 0;
	}
	/* a process that just exec'd is the exec watcher's (it holds it still while attaching) */
	while (d->scan_pos < d->n_pids) {
		pid_t pid = d->pids[d->scan_pos++];

		if (!is_pending(d, pid))
			consider(d, pid, 0);
		if (monotonic_ns() - start >= RESCAN_SLICE_NS)
			break;
	}
	return d->scan_pos >= d->n_pids;
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

/* How long the loop may sleep: until the next recheck of a new process, LOOP_POLL_MS at most. */
static int sleep_ms(const struct daemon *d, uint64_t now)
{
	int ms = LOOP_POLL_MS;

	if (d->scan_pos < d->n_pids)
		return 0; /* a rescan in slices goes on */
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
	d->pids = calloc(MAX_PIDS, sizeof(*d->pids));
	if (!d->pids) {
		fprintf(stderr, "llmtap: out of memory\n");
		return -1;
	}
	if (preflight_check(err, sizeof(err)) ||
	    otlp_config_load(&d->otlp, &o->trace.otlp, NULL, err, sizeof(err))) {
		tell("%s", err);
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
	d->so = attach_session_opts(&o->trace, &d->otlp, o->trace.json ? VIEW_JSON : VIEW_NONE);
	d->so.otlp_exporter = d->exporter;
	d->so.prom = d->prom;
	d->so.prom_per_target = true;
	if (health_open(d, err, sizeof(err))) {
		tell("%s", err);
		return -1;
	}
	attach_print_otlp(&d->otlp);
	return 0;
}

/* The loop's callbacks: the exec watcher's and every session's ring buffer fds. */
static int daemon_poll_fds(void *arg, int *fds, int max)
{
	const struct daemon *d = arg;
	int n = 0;

	if (discover_fd(d->disc) >= 0 && n < max)
		fds[n++] = discover_fd(d->disc);
	for (int i = 0; i < d->n_targets && n < max; i++)
		fds[n++] = session_fd(d->targets[i].s);
	return n;
}

static int daemon_timeout_ms(void *arg, uint64_t now)
{
	return sleep_ms(arg, now);
}

/* Whatever woke the loop, every ring buffer is drained; new processes are looked at. */
static const char *daemon_ready(void *arg, uint64_t now)
{
	struct daemon *d = arg;
	pid_t execs[256];
	int n;

	for (int i = 0; i < d->n_targets; i++)
		session_poll(d->targets[i].s, 0);
	n = discover_execs(d->disc, execs, 256);
	for (int i = 0; i < n; i++)
		add_pending(d, execs[i], now);
	run_pending(d, now);
	if (now >= d->next_scan && rescan(d))
		d->next_scan = now + d->o->rescan_ns;
	return NULL;
}

static void daemon_tick(void *arg, uint64_t now)
{
	struct daemon *d = arg;

	for (int i = 0; i < d->n_targets; i++)
		session_tick(d->targets[i].s, now);
	health_tick(d, now, false);
}

static void daemon_dump(void *arg)
{
	struct daemon *d = arg;

	for (int i = 0; i < d->n_targets; i++)
		session_dump_tail(d->targets[i].s, "SIGUSR1");
}

/* Processes that exited are detached; the daemon itself stops when stdout is gone. */
static const char *daemon_should_stop(void *arg, uint64_t now)
{
	struct daemon *d = arg;

	(void)now;
	for (int i = 0; i < d->n_targets; i++)
		if (session_target_gone(d->targets[i].s))
			detach(d, &d->targets[i--], "target exited");
	return ferror(stdout) ? "output closed" : NULL;
}

static const char *loop(struct daemon *d)
{
	const struct loop_ops ops = {
		.interval_ns = d->o->trace.interval_ns,
		.duration_ns = d->o->trace.duration_ns,
		.poll_fds = daemon_poll_fds,
		.timeout_ms = daemon_timeout_ms,
		.on_ready = daemon_ready,
		.on_tick = daemon_tick,
		.on_dump = daemon_dump,
		.should_stop = daemon_should_stop,
	};

	d->next_scan = monotonic_ns();
	return loop_run(&ops, d);
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
	signals_install_stop();
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
