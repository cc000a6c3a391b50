// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The daemon: every llama.cpp process of the host the selection takes, found
 * and traced by a fleet (cmd/fleet.h), with one OTLP sender and one Prometheus
 * endpoint for all, and the daemon's own health metrics beside them.
 */
#include "cmd/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/attach.h"
#include "cmd/fleet.h"
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
#include "target/resource.h"

_Static_assert(PROM_MAX_TARGETS >= FLEET_MAX_TARGETS + 1,
	       "the Prometheus endpoint holds every target and the daemon's own health");

struct daemon {
	const struct daemon_opts *o;
	struct fleet *fleet;
	struct otlp_config otlp;
	struct otlp_exporter *exporter;
	struct prom_server *prom;
	pid_t self;
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
	struct fleet_stats st;

	fleet_stats(d->fleet, &st);
	metrics_set(&h->m, M_DAEMON_TARGETS, st.targets, now, NULL);
	metrics_add_total(&h->m, M_DAEMON_ATTACHES, st.attached, &h->last_attached, now, "outcome",
			  "attached", NULL);
	metrics_add_total(&h->m, M_DAEMON_ATTACHES, st.failed, &h->last_failed, now, "outcome",
			  "failed", NULL);
	metrics_add_total(&h->m, M_DAEMON_DETACHES, st.detached, &h->last_detached, now, NULL);
	metrics_add_total(&h->m, M_DAEMON_EXECS_LOST, st.execs_lost, &h->last_lost, now, NULL);
	if (d->exporter) {
		struct otlp_stats ost;

		otlp_exporter_stats(d->exporter, &ost);
		otlp_health_record(&h->m, &d->otlp, &ost, &h->reported, 0, now);
	}
	if (d->prom)
		prom_server_publish_target(d->prom, 0, h->labels, &h->m);
	if (d->exporter)
		otlp_export_metrics(d->exporter, &d->otlp, &ctx, &h->m, &h->mx, now, final,
				    (uintptr_t)h);
}

static int setup(struct daemon *d, const struct daemon_opts *o)
{
	struct fleet_opts fo = {
		.sel = &o->sel,
		.max_targets = o->max_targets,
		.rescan_ns = o->rescan_ns,
		.exec_watch = !o->no_exec_watch,
		.freeze = !o->no_freeze,
	};
	char err[2048];

	d->o = o;
	d->self = getpid();
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
	fo.so = attach_session_opts(&o->trace, &d->otlp, o->trace.json ? VIEW_JSON : VIEW_NONE);
	fo.so.otlp_exporter = d->exporter;
	fo.so.prom = d->prom;
	fo.so.prom_per_target = true;
	d->fleet = fleet_open(&fo, err, sizeof(err));
	if (!d->fleet) {
		fprintf(stderr, "llmtap: %s (--no-exec-watch relies on the /proc rescan alone)\n", err);
		return -1;
	}
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

	return fleet_poll_fds(d->fleet, fds, max);
}

static int daemon_timeout_ms(void *arg, uint64_t now)
{
	const struct daemon *d = arg;

	return fleet_timeout_ms(d->fleet, now);
}

/* Whatever woke the loop, every ring buffer is drained; new processes are looked at. */
static const char *daemon_ready(void *arg, uint64_t now)
{
	struct daemon *d = arg;

	fleet_ready(d->fleet, now);
	return NULL;
}

static void daemon_tick(void *arg, uint64_t now)
{
	struct daemon *d = arg;

	fleet_tick(d->fleet, now);
	health_tick(d, now, false);
}

static void daemon_dump(void *arg)
{
	struct daemon *d = arg;

	fleet_dump(d->fleet);
}

/* Processes that exited are detached; the daemon itself stops when stdout is gone. */
static const char *daemon_should_stop(void *arg, uint64_t now)
{
	struct daemon *d = arg;

	(void)now;
	fleet_reap(d->fleet);
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

	return loop_run(&ops, d);
}

/* Every target detached, the last health export, everything stopped; the totals in st. */
static void teardown(struct daemon *d, const char *reason, struct fleet_stats *st)
{
	struct otlp_stats ost;

	memset(st, 0, sizeof(*st));
	if (d->fleet) {
		fleet_detach_all(d->fleet, reason);
		fleet_stats(d->fleet, st);
		if (d->health)
			health_tick(d, monotonic_ns(), true);
	}
	if (d->exporter) {
		otlp_exporter_shutdown(d->exporter, d->otlp.flush_timeout_ms, &ost);
		otlp_print_stats(stderr, &ost);
	}
	prom_server_stop(d->prom);
	fleet_close(d->fleet, reason);
	free(d->health);
}

int cmd_daemon(const struct daemon_opts *o)
{
	struct daemon *d = calloc(1, sizeof(*d));
	struct fleet_stats st;
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
			fleet_exec_watch(d->fleet) ? "exec tracepoint" : "no exec tracepoint",
			(double)o->rescan_ns / 1e9, o->max_targets);
		reason = loop(d);
		fprintf(stderr, "llmtap: daemon stopping: %s\n", reason);
		ret = 0;
	} else {
		reason = "could not start";
	}
	teardown(d, reason, &st);
	if (!ret)
		fprintf(stderr, "llmtap: daemon stopped: %llu attached, %llu detached\n",
			(unsigned long long)st.attached, (unsigned long long)st.detached);
	free(d);
	return ret;
}
