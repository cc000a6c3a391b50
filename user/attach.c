// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "attach.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "correlate.h"
#include "event.h"
#include "gguf.h"
#include "preflight.h"
#include "probes.h"
#include "prom.h"
#include "proc.h"
#include "resource.h"
#include "sinks.h"
#include "target.h"
#include "telemetry.h"

#define POLL_MS 100
#define TAIL_MAX_BYTES (64u << 20) /* a tail capture's events never take more memory */

/* set by the signal handlers, read by the loop */
static volatile sig_atomic_t stop_signal, dump_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void on_usr1(int sig)
{
	dump_signal = sig;
}

struct session {
	struct telemetry tm;
	struct correlator *corr;
	uint64_t bad_records;
	bool debug;      /* print every record to stderr */
	struct prom_server *prom; /* --prometheus */
	struct sink top;          /* `llmtap top`'s view, ops NULL otherwise */
	struct sink tail;         /* --tail's capture, ops NULL otherwise */
	struct sink otlp;         /* OTLP export, ops NULL otherwise */
	struct otlp_config otlp_cfg;
	struct termios tty;       /* the terminal's settings, restored at the end */
	bool tty_raw;
	struct gguf_info gguf;    /* the mapped model's header */
	struct resource resource; /* who produced the telemetry */
	struct event ev; /* decoding buffer */
	struct step_assembler steps; /* steps spread over several records */
};

static int on_event(void *arg, const void *data, size_t size)
{
	struct session *s = arg;

	if (event_decode(data, size, &s->ev)) {
		s->bad_records++;
		return 0;
	}
	if (s->debug)
		event_print(stderr, &s->ev);
	if (s->ev.kind == LLMTAP_EV_STEP && !step_assemble(&s->steps, &s->ev.step, &s->ev.step))
		return 0; /* the step's next record continues its runs */
	correlator_event(s->corr, &s->ev);
	return 0;
}

/* The model's name from its GGUF header, else its file name ("" when none is mapped). */
static const char *model_name(const struct target *t, struct gguf_info *info)
{
	char host[PATH_MAX + 64], err[256];

	memset(info, 0, sizeof(*info));
	if (!t->model[0])
		return "";
	if (!proc_root_path(t->pid, t->model, host, sizeof(host)) &&
	    !gguf_read_info(host, info, err, sizeof(err)) && info->name[0])
		return info->name;
	return strrchr(t->model, '/') ? strrchr(t->model, '/') + 1 : t->model;
}

/* The target's resource, given to the sinks and to Prometheus's target_info. */
static int detect_resource(struct session *s, const struct target *t, struct tm_target *tt,
			   char *err, size_t errlen)
{
	const struct resource_target rt = {
		.pid = t->pid,
		.comm = t->comm,
		.model_path = t->model,
		.model_name = s->gguf.name,
		.model_arch = s->gguf.architecture,
	};
	const char *kv[2 * RESOURCE_MAX_ATTRS + 1];
	int ret = resource_detect(&s->resource, &rt, err, errlen);

	if (ret)
		return ret;
	tt->resource = &s->resource;
	for (int i = 0; i < s->resource.n; i++) {
		kv[2 * i] = s->resource.attrs[i].key;
		kv[2 * i + 1] = s->resource.attrs[i].value;
	}
	kv[2 * s->resource.n] = NULL;
	if (s->prom && (ret = prom_server_set_info(s->prom, kv)))
		snprintf(err, errlen, "out of memory");
	return ret;
}

static void update_gauges(struct session *s)
{
	struct corr_gauges cg;
	struct tm_gauges g;

	correlator_gauges(s->corr, &cg);
	g = (struct tm_gauges){
		.active_requests = cg.active_requests,
		.active_inference = cg.active_inference,
		.queued_tasks = cg.queued_tasks,
		.busy_slots = cg.busy_slots,
		.kv_cells = cg.kv_cells,
		.n_ctx = cg.n_ctx,
		.rss_bytes = proc_rss_bytes(s->tm.target.pid),
		.n_slots = cg.n_slots,
	};
	memcpy(g.slots, cg.slots, sizeof(g.slots[0]) * (size_t)cg.n_slots);
	telemetry_set_gauges(&s->tm, &g);
}

static uint64_t lost_total(struct probes *p, const struct session *s)
{
	uint64_t st[LLMTAP_STAT_MAX];

	if (probes_stats(p, st))
		return s->tm.lost_seen;
	/* LLMTAP_STAT_ENTRY_LOST is a call already running at attach: not traced, not lost */
	return st[LLMTAP_STAT_RB_LOST] + st[LLMTAP_STAT_ENTRY_FULL] + s->bad_records +
	       s->steps.dropped;
}

static int target_gone(int pidfd, int pid)
{
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

	if (pidfd >= 0)
		return poll(&pfd, 1, 0) > 0;
	return kill(pid, 0) && errno == ESRCH;
}

static void install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_usr1; /* dump the tail capture (and never die of a stray USR1) */
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int add_sinks(struct session *s, const struct attach_opts *o, char *err, size_t errlen)
{
	struct sink sk;
	int ret;

	/* top on something that is not a terminal degrades to the plain lines */
	bool full_screen = o->top && !o->json && isatty(STDOUT_FILENO);

	if (o->json)
		ret = sink_json_new(stdout, o->json_steps, &sk);
	else if (full_screen)
		ret = sink_top_new(stdout, &sk);
	else
		ret = sink_console_new(stdout, &sk);
	if (ret) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	telemetry_add_sink(&s->tm, sk);
	if (full_screen)
		s->top = sk;
	if (o->tail_ns) {
		ret = sink_tail_new(o->tail_dir ? o->tail_dir : ".", o->tail_ns, o->tail_ttft_ns,
				    TAIL_MAX_BYTES, &sk, err, errlen);
		if (ret)
			return ret;
		telemetry_add_sink(&s->tm, sk);
		s->tail = sk;
	}
	if (o->record_path) {
		ret = sink_trace_new(o->record_path, &sk, err, errlen);
		if (ret)
			return ret;
		telemetry_add_sink(&s->tm, sk);
	}
	if (s->otlp_cfg.enabled) {
		ret = sink_otlp_new(&s->otlp_cfg, &sk, err, errlen);
		if (ret)
			return ret;
		if (telemetry_add_sink(&s->tm, sk)) {
			sk.ops->destroy(sk.self);
			snprintf(err, errlen, "too many outputs at once");
			return -E2BIG;
		}
		s->otlp = sk;
	}
	return 0;
}

/* Where OTLP goes, once at the start (stderr). */
static void print_otlp(const struct otlp_config *c)
{
	const struct otlp_signal_config *t = &c->signal[OTLP_TRACES], *m = &c->signal[OTLP_METRICS];

	if (t->enabled)
		fprintf(stderr, "llmtap: OTLP traces to %s%s\n", t->url, t->gzip ? " (gzip)" : "");
	if (m->enabled)
		fprintf(stderr, "llmtap: OTLP metrics to %s every %.3gs, %s%s\n", m->url,
			(double)c->metric_interval_ms / 1000, c->delta ? "delta" : "cumulative",
			m->gzip ? " (gzip)" : "");
}

/* `llmtap top`: keys without Enter, not echoed; read without blocking. */
static void keys_raw(struct session *s)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &s->tty))
		return;
	raw = s->tty;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	s->tty_raw = !tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static void keys_restore(struct session *s)
{
	if (s->tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &s->tty);
	s->tty_raw = false;
}

/* True when q was pressed; other keys go to the view. */
static bool read_keys(struct session *s)
{
	char buf[16];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == 'q' || buf[i] == 'Q')
			return true;
		if (s->top.ops)
			sink_top_key(&s->top, buf[i]);
	}
	return false;
}

static const char *run_loop(struct session *s, struct probes *p, const struct attach_opts *o,
			    int pidfd)
{
	uint64_t start = monotonic_ns(), next_tick = start + o->interval_ns;
	char *reason = NULL;

	while (!reason) {
		int n = probes_poll(p, POLL_MS);
		uint64_t now = monotonic_ns();

		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "llmtap: reading the ring buffer failed: %s\n", strerror(-n));
			return "ring buffer error";
		}
		if (now >= next_tick) {
			update_gauges(s);
			if (s->otlp.ops)
				sink_otlp_health(&s->otlp, &s->tm.metrics, now);
			telemetry_tick(&s->tm, now, lost_total(p, s));
			if (s->prom)
				prom_server_publish(s->prom, &s->tm.metrics);
			next_tick += o->interval_ns;
			if (next_tick <= now)
				next_tick = now + o->interval_ns;
		}
		if (ferror(stdout))
			return "output closed";
		if (s->tty_raw && read_keys(s))
			return "quit (q)";
		if (dump_signal) {
			dump_signal = 0;
			if (s->tail.ops)
				sink_tail_dump(&s->tail, "SIGUSR1");
			else
				fprintf(stderr, "llmtap: SIGUSR1: no --tail capture to write\n");
		}
		if (stop_signal)
			return stop_signal == SIGINT ? "interrupted (SIGINT)" :
			       stop_signal == SIGTERM ? "terminated (SIGTERM)" : "hung up (SIGHUP)";
		if (o->duration_ns && now - start >= o->duration_ns)
			return "duration elapsed";
		if (target_gone(pidfd, s->tm.target.pid))
			return "target exited";
	}
	return reason;
}

int cmd_attach(const struct attach_opts *o)
{
	struct probes_opts po = {
		.ringbuf_bytes = o->ringbuf_bytes,
		.verbose = o->verbose,
		.layers = { true, true, true, true },
	};
	struct session *s = NULL;
	struct probes *p = NULL;
	struct target t;
	struct tm_target tt;
	char err[2048];
	const char *reason;
	int pidfd = -1, ret = 1;
	int pid = o->pid > 0 ? (int)proc_tgid(o->pid) : o->pid; /* a thread id names its process */

	if (pid != o->pid)
		fprintf(stderr, "llmtap: %d is a thread of process %d: tracing the process\n", o->pid,
			pid);
	if (preflight_check(err, sizeof(err)) || target_find(pid, &t, err, sizeof(err))) {
		fprintf(stderr, "llmtap: %s\n", err);
		return 1;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		fprintf(stderr, "llmtap: out of memory\n");
		return 1;
	}
	/* watch for the target's exit without racing PID reuse */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 && errno == ESRCH) {
		fprintf(stderr, "llmtap: PID %d exited before llmtap could attach\n", pid);
		goto cleanup;
	}
	s->debug = o->debug_events;
	if (otlp_config_load(&s->otlp_cfg, &o->otlp, NULL, err, sizeof(err))) {
		fprintf(stderr, "llmtap: %s\n", err);
		goto cleanup;
	}
	if (o->prometheus) {
		s->prom = prom_server_start(o->prometheus, err, sizeof(err));
		if (!s->prom) {
			fprintf(stderr, "llmtap: --prometheus: %s\n", err);
			goto cleanup;
		}
	}
	install_signals();
	if (probes_open(&t, &po, on_event, s, &p, err, sizeof(err))) {
		fprintf(stderr, "llmtap: %s\n", err);
		goto cleanup;
	}
	tt = (struct tm_target){
		.pid = pid,
		.comm = t.comm,
		.library = target_core(&t)->path,
		.in_executable = t.in_executable,
		.layers = probes_attached(p),
		.model = model_name(&t, &s->gguf),
		.model_arch = s->gguf.architecture,
	};
	if (detect_resource(s, &t, &tt, err, sizeof(err))) {
		fprintf(stderr, "llmtap: %s\n", err);
		goto cleanup;
	}
	telemetry_init(&s->tm, &tt, monotonic_ns());
	s->corr = correlator_new(&s->tm);
	if (!s->corr) {
		fprintf(stderr, "llmtap: out of memory\n");
		goto cleanup;
	}
	if (add_sinks(s, o, err, sizeof(err))) {
		fprintf(stderr, "llmtap: %s\n", err);
		goto cleanup;
	}
	telemetry_attached(&s->tm);
	if (s->otlp.ops)
		print_otlp(&s->otlp_cfg);
	if (s->top.ops)
		keys_raw(s);

	reason = run_loop(s, p, o, pidfd);
	probes_poll(p, 0); /* whatever is still in the ring buffer */
	update_gauges(s);
	correlator_flush(s->corr, monotonic_ns());
	if (s->otlp.ops)
		sink_otlp_health(&s->otlp, &s->tm.metrics, monotonic_ns());
	telemetry_finish(&s->tm, monotonic_ns(), lost_total(p, s), reason);
	if (s->otlp.ops) /* the final flush's outcome */
		sink_otlp_health(&s->otlp, &s->tm.metrics, monotonic_ns());
	if (s->prom)
		prom_server_publish(s->prom, &s->tm.metrics);
	ret = 0;
cleanup:
	probes_close(p);
	if (s) {
		keys_restore(s);
		prom_server_stop(s->prom);
		correlator_free(s->corr);
		telemetry_destroy(&s->tm);
	}
	free(s);
	if (pidfd >= 0)
		close(pidfd);
	return ret;
}
