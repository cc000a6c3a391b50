// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "cmd/attach.h"

#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "cmd/loop.h"
#include "cmd/session.h"
#include "cmd/signals.h"
#include "export/prom_http.h"
#include "lib/text.h"
#include "probe/preflight.h"
#include "target/proc.h"
#include "target/router.h"
#include "target/target.h"

/* Where OTLP goes, once at the start (stderr). */
void attach_print_otlp(const struct otlp_config *c)
{
	const struct otlp_signal_config *t = &c->signal[OTLP_TRACES], *m = &c->signal[OTLP_METRICS];

	if (!c->enabled)
		return;
	if (t->enabled)
		fprintf(stderr, "llmtap: OTLP traces to %s%s\n", t->url, t->gzip ? " (gzip)" : "");
	if (m->enabled)
		fprintf(stderr, "llmtap: OTLP metrics to %s every %.3gs, %s%s\n", m->url,
			(double)c->metric_interval_ms / 1000, c->delta ? "delta" : "cumulative",
			m->gzip ? " (gzip)" : "");
}

/* `llmtap top`: keys without Enter, not echoed; read without blocking. */
struct keys {
	struct termios tty; /* the terminal's settings, restored at the end */
	bool raw;
};

static void keys_raw(struct keys *k)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &k->tty))
		return;
	raw = k->tty;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	k->raw = !tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static void keys_restore(struct keys *k)
{
	if (k->raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &k->tty);
	k->raw = false;
}

/* True when q was pressed; other keys go to the view. */
static bool read_keys(struct session *s)
{
	char buf[16];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == 'q' || buf[i] == 'Q')
			return true;
		session_key(s, buf[i]);
	}
	return false;
}

/* What ends attach besides a signal, --duration or a ring buffer error. */
struct attach_loop {
	struct session *s;
	const struct keys *keys;
};

static const char *attach_should_stop(void *arg, uint64_t now)
{
	const struct attach_loop *l = arg;

	(void)now;
	if (ferror(stdout))
		return "output closed";
	if (l->keys->raw && read_keys(l->s))
		return "quit (q)";
	if (session_target_gone(l->s))
		return "target exited";
	return NULL;
}

/*
 * A router llama-server serves no model itself: say so, which children it has,
 * and how to trace them (stderr; its own requests are traced on, as proxies).
 */
static void tell_router(const struct router_info *ri, pid_t pid)
{
	char kids[ROUTER_MAX_CHILDREN * 96] = "";
	size_t len = 0;

	for (int i = 0; i < ri->n_children && len < sizeof(kids); i++) {
		const struct router_child *c = &ri->children[i];

		len += (size_t)snprintf(kids + len, sizeof(kids) - len, "%sPID %d%s%s%s",
					i ? ", " : "", (int)c->pid, c->model[0] ? " (" : "", c->model,
					c->model[0] ? ")" : "");
	}
	tell("PID %d is a router llama-server (%s): it serves no model itself but proxies each "
	     "request to a child llama-server per model", (int)pid, ri->why);
	tell("its requests are traced as proxy spans (kind \"proxy\"); their tokens and timings "
	     "are counted in the child that served them");
	tell("its children: %s", ri->n_children ? kids :
	     "none yet (a child starts when its model is first requested)");
	tell("to trace them: llmtap attach --pid CHILD, or llmtap daemon for every child as it "
	     "starts (llmtap run -- llama-server --models-dir DIR follows them from the start)");
}

struct session_opts attach_session_opts(const struct attach_opts *o,
				       const struct otlp_config *otlp, enum session_view view)
{
	return (struct session_opts){
		.ringbuf_bytes = o->ringbuf_bytes,
		.verbose = o->verbose,
		.debug_events = o->debug_events,
		.view = view,
		.json_steps = o->json_steps,
		.out = stdout,
		.record_path = o->record_path,
		.tail_ns = o->tail_ns,
		.tail_ttft_ns = o->tail_ttft_ns,
		.tail_dir = o->tail_dir,
		.otlp = otlp,
		.target_env = true,
	};
}

int cmd_attach(const struct attach_opts *o)
{
	/* top on something that is not a terminal degrades to the plain lines */
	bool full_screen = o->top && !o->json && isatty(STDOUT_FILENO);
	struct otlp_config *otlp = calloc(1, sizeof(*otlp));
	struct session_opts so = attach_session_opts(o, otlp, o->json ? VIEW_JSON :
								full_screen ? VIEW_TOP : VIEW_CONSOLE);
	struct keys keys = { .raw = false };
	struct attach_loop l;
	struct session *s = NULL;
	struct target *t = calloc(1, sizeof(*t));
	char err[2048];
	int ret = 1;
	int pid = o->pid > 0 ? (int)proc_tgid(o->pid) : o->pid; /* a thread id names its process */

	if (!t || !otlp) {
		fprintf(stderr, "llmtap: out of memory\n");
		goto cleanup;
	}
	if (pid != o->pid)
		fprintf(stderr, "llmtap: %d is a thread of process %d: tracing the process\n", o->pid,
			pid);
	if (preflight_check(err, sizeof(err)) || target_find(pid, t, err, sizeof(err)) ||
	    otlp_config_load(otlp, &o->otlp, NULL, err, sizeof(err))) {
		tell("%s", err);
		goto cleanup;
	}
	if (o->prometheus) {
		so.prom = prom_server_start(o->prometheus, err, sizeof(err));
		if (!so.prom) {
			fprintf(stderr, "llmtap: --prometheus: %s\n", err);
			goto cleanup;
		}
	}
	signals_install_stop();
	s = session_open(t, &so, err, sizeof(err));
	if (!s) {
		tell("%s", err);
		goto cleanup;
	}
	if (session_router(s))
		tell_router(session_router(s), pid);
	attach_print_otlp(otlp);
	if (so.view == VIEW_TOP)
		keys_raw(&keys);
	l = (struct attach_loop){ s, &keys };
	session_close(s, loop_session(s, o->interval_ns, o->duration_ns, attach_should_stop, &l));
	ret = 0;
cleanup:
	keys_restore(&keys);
	prom_server_stop(so.prom);
	free(otlp);
	free(t);
	return ret;
}
