// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * `llmtap run`: the program is started stopped at its first instruction
 * (PTRACE_TRACEME: the kernel stops it right after exec, before the dynamic
 * loader runs), the probes go on the files it will map (the executable and
 * what its loader's --list names), and only then is it let go. Model load and
 * context creation are traced like everything after them. Signals sent to
 * llmtap reach the program; its exit status is llmtap's.
 *
 * The program's descendants that load llama.cpp are traced too, each with a
 * session of its own, as they start (a fleet rooted at the program: the
 * daemon's machinery): a router llama-server (`--models-dir DIR`) starts a
 * child llama-server per model when the model is first requested, and the
 * tokens of the requests it proxies are that child's.
 */
#include "cmd/run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/fleet.h"
#include "cmd/loop.h"
#include "cmd/session.h"
#include "cmd/signals.h"
#include "export/prom_http.h"
#include "lib/text.h"
#include "probe/preflight.h"
#include "target/elfsym.h"
#include "target/ldd.h"
#include "target/router.h"
#include "target/target.h"

#define MAX_FILES 64
#define RESCAN_NS 2000000000ull /* the program's descendants looked for this often */

/* The program's path: argv0 itself when it has a '/', else the first match in PATH. */
static int find_program(const char *argv0, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(argv0, '/')) {
		snprintf(out, len, "%s", argv0);
		return access(out, X_OK) ? -errno : 0;
	}
	for (const char *p = path ? path : "/usr/local/bin:/usr/bin:/bin"; *p;) {
		size_t n = strcspn(p, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, n ? p : ".", argv0);
		if (!access(buf, X_OK)) {
			snprintf(out, len, "%s", buf);
			return 0;
		}
		p += n + (p[n] == ':');
	}
	return -ENOENT;
}

/* The executable and the libraries its dynamic loader will map (ld.so --list never runs it). */
static int program_files(const char *exe, char (*files)[4096], int max, char *err, size_t errlen)
{
	struct elf_file_info info;
	char cmd[2 * PATH_MAX + 64], *out = NULL;
	size_t cap = 0, len = 0;
	int n = 1, ret;
	FILE *p;

	ret = elf_resolve(exe, NULL, 0, &info);
	if (ret) {
		snprintf(err, errlen, "%.1024s is not an ELF executable (%s): llmtap run needs the program "
			 "itself; for a wrapper script, use llmtap daemon or attach", exe,
			 strerror(-ret));
		return ret;
	}
	snprintf(files[0], 4096, "%s", exe);
	if (!info.interp[0])
		return 1; /* static: everything is in the executable */
	snprintf(cmd, sizeof(cmd), "'%s' --list '%s' 2>/dev/null", info.interp, exe);
	if (strchr(info.interp, '\'') || strchr(exe, '\'') || !(p = popen(cmd, "r"))) {
		snprintf(err, errlen, "cannot list the libraries of %.1024s", exe);
		return -EINVAL;
	}
	for (;;) {
		if (len + 4096 > cap) {
			char *grown = realloc(out, cap += 65536);

			if (!grown)
				break;
			out = grown;
		}
		size_t got = fread(out + len, 1, cap - len - 1, p);

		if (!got)
			break;
		len += got;
	}
	pclose(p);
	if (out) {
		out[len] = '\0';
		n += ldd_parse(out, files + 1, max - 1);
	}
	free(out);
	return n;
}

/* Fork the program stopped right after its exec. The child's pid, or -errno with err. */
static pid_t start_stopped(const char *exe, char *const *argv, char *err, size_t errlen)
{
	int fds[2], status, child_err = 0, e;
	ssize_t got;
	pid_t pid, w;

	if (pipe2(fds, O_CLOEXEC)) {
		e = errno;
		snprintf(err, errlen, "cannot create a pipe to start %.1024s: %s", exe, strerror(e));
		return -e;
	}
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(fds[0]);
		close(fds[1]);
		snprintf(err, errlen, "cannot fork: %s", strerror(e));
		return -e;
	}
	if (!pid) {
		close(fds[0]);
		if (!ptrace(PTRACE_TRACEME, 0, NULL, NULL))
			execv(exe, argv);
		child_err = errno;
		if (write(fds[1], &child_err, sizeof(child_err)) < 0)
			_exit(127);
		_exit(127);
	}
	close(fds[1]);
	/* SIGUSR1 is llmtap's already: it interrupts these waits, it does not end them */
	while ((got = read(fds[0], &child_err, sizeof(child_err))) < 0 && errno == EINTR)
		;
	close(fds[0]);
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (got == (ssize_t)sizeof(child_err)) {
		snprintf(err, errlen, "cannot run %.1024s: %s", exe, strerror(child_err));
		return -child_err;
	}
	/* the exec succeeded (the pipe closed with it): the kernel stops the child with SIGTRAP */
	if (w != pid || !WIFSTOPPED(status)) {
		snprintf(err, errlen, "%.1024s did not stop after its exec", exe);
		return -ECHILD;
	}
	return pid;
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

/* The program and its descendants, watched from the loop until it exits. */
struct run_loop {
	pid_t pid;
	struct session *s;     /* the program's */
	struct fleet *fleet;   /* its descendants', NULL when they cannot be followed */
	int status;            /* its wait status, once it exited */
	bool exited;
	char reason[128];
};

/* The program exited: why the tracing ends. */
static const char *program_exited(struct run_loop *l)
{
	if (waitpid(l->pid, &l->status, WNOHANG) != l->pid)
		return NULL;
	l->exited = true;
	if (WIFSIGNALED(l->status))
		snprintf(l->reason, sizeof(l->reason), "program killed by signal %d",
			 WTERMSIG(l->status));
	else
		snprintf(l->reason, sizeof(l->reason), "program exited with status %d",
			 exit_code(l->status));
	return l->reason;
}

static int run_poll_fds(void *arg, int *fds, int max)
{
	const struct run_loop *l = arg;

	fds[0] = session_fd(l->s);
	return 1 + (l->fleet ? fleet_poll_fds(l->fleet, fds + 1, max - 1) : 0);
}

static int run_timeout_ms(void *arg, uint64_t now)
{
	const struct run_loop *l = arg;

	return l->fleet ? fleet_timeout_ms(l->fleet, now) : LOOP_POLL_MS;
}

static const char *run_ready(void *arg, uint64_t now)
{
	struct run_loop *l = arg;
	int n = session_poll(l->s, 0);

	if (l->fleet)
		fleet_ready(l->fleet, now);
	if (n < 0 && n != -EINTR) {
		fprintf(stderr, "llmtap: reading the ring buffer failed: %s\n", strerror(-n));
		return "ring buffer error";
	}
	return NULL;
}

static void run_tick(void *arg, uint64_t now)
{
	struct run_loop *l = arg;

	session_tick(l->s, now);
	if (l->fleet)
		fleet_tick(l->fleet, now);
}

static void run_dump(void *arg)
{
	struct run_loop *l = arg;

	signals_dump_tail(l->s);
	if (l->fleet)
		fleet_dump(l->fleet);
}

static const char *run_should_stop(void *arg, uint64_t now)
{
	struct run_loop *l = arg;

	(void)now;
	if (l->fleet)
		fleet_reap(l->fleet);
	return program_exited(l);
}

/*
 * The fleet of pid's descendants: sessions like the program's (each its own series
 * on a shared Prometheus endpoint), found by the exec watcher, else by rescans
 * alone. NULL (said why) when they cannot be followed: the program is traced anyway.
 */
static struct fleet *follow_descendants(pid_t pid, const struct session_opts *so)
{
	struct fleet_opts fo = {
		.so = *so,
		.max_targets = FLEET_MAX_TARGETS - 1, /* the program is one on Prometheus */
		.rescan_ns = RESCAN_NS,
		.exec_watch = true,
		.freeze = true,
		.root = pid,
	};
	char err[1024], err2[1024];
	struct fleet *f;

	fo.so.prom_per_target = true;
	fo.so.record_path = NULL;
	f = fleet_open(&fo, err, sizeof(err));
	if (f)
		return f;
	fo.exec_watch = false;
	f = fleet_open(&fo, err2, sizeof(err2));
	if (f)
		tell("%s: the program's children are found by a rescan every %.3gs (their model "
		     "load is not seen)", err, (double)RESCAN_NS / 1e9);
	else
		tell("%s: the program's children are not traced", err2);
	return f;
}

int cmd_run(const struct attach_opts *o, char *const *argv)
{
	struct otlp_config *otlp = calloc(1, sizeof(*otlp));
	char (*files)[4096] = calloc(MAX_FILES, sizeof(*files));
	const char *paths[MAX_FILES];
	struct target *t = calloc(1, sizeof(*t));
	struct session_opts so = attach_session_opts(o, otlp, o->json ? VIEW_JSON : VIEW_CONSOLE);
	char exe[PATH_MAX], err[2048], comm[16];
	const struct loop_ops ops = {
		.interval_ns = o->interval_ns,
		.duration_ns = o->duration_ns,
		.poll_fds = run_poll_fds,
		.timeout_ms = run_timeout_ms,
		.on_ready = run_ready,
		.on_tick = run_tick,
		.on_dump = run_dump,
		.should_stop = run_should_stop,
	};
	struct session *s = NULL;
	struct fleet *fleet = NULL;
	const char *reason;
	struct run_loop l;
	int n, ret = 1;
	pid_t pid = -1;

	if (!otlp || !files || !t) {
		fprintf(stderr, "llmtap: out of memory\n");
		goto cleanup;
	}
	if (preflight_check(err, sizeof(err)) ||
	    otlp_config_load(otlp, &o->otlp, NULL, err, sizeof(err))) {
		tell("%s", err);
		goto cleanup;
	}
	if (find_program(argv[0], exe, sizeof(exe))) {
		fprintf(stderr, "llmtap: %s: no such program (not a path, and not in PATH)\n", argv[0]);
		goto cleanup;
	}
	n = program_files(exe, files, MAX_FILES, err, sizeof(err));
	if (n < 0) {
		tell("%s", err);
		goto cleanup;
	}
	for (int i = 0; i < n; i++)
		paths[i] = files[i];
	snprintf(comm, sizeof(comm), "%.15s", strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe);
	/* find llama.cpp before anything runs: no tracing, no program */
	if (target_find_files(0, comm, paths, n, t, err, sizeof(err))) {
		tell("%s", err);
		goto cleanup;
	}
	if (o->prometheus && !(so.prom = prom_server_start(o->prometheus, err, sizeof(err)))) {
		fprintf(stderr, "llmtap: --prometheus: %s\n", err);
		goto cleanup;
	}
	signals_install_forward();
	pid = start_stopped(exe, argv, err, sizeof(err));
	if (pid < 0) {
		tell("%s", err);
		goto cleanup;
	}
	signals_forward_to(pid);
	t->pid = pid;
	s = session_open(t, &so, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "llmtap: %s (the program was not started)\n", err);
		kill(pid, SIGKILL);
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
		waitpid(pid, NULL, 0);
		goto cleanup;
	}
	attach_print_otlp(otlp);
	if (session_router(s))
		tell("PID %d is a router llama-server (%s): its requests are proxy spans, counted in "
		     "the child llama-server that serves each; the children are traced as they start",
		     (int)pid, session_router(s)->why);
	/* before the program runs: its first children are seen from their exec on */
	fleet = follow_descendants(pid, &so);
	if (ptrace(PTRACE_DETACH, pid, NULL, NULL)) { /* let it go */
		fprintf(stderr, "llmtap: cannot start %s: %s\n", exe, strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fleet_close(fleet, "could not start the program");
		session_close(s, "could not start the program");
		goto cleanup;
	}
	/* trace until the program exits, or until --duration (then l.exited stays false) */
	l = (struct run_loop){ .pid = pid, .s = s, .fleet = fleet };
	reason = loop_run(&ops, &l);
	fleet_close(fleet, reason);
	session_close(s, reason);
	if (!l.exited) { /* --duration: the program runs on; pass its status through anyway */
		while (waitpid(pid, &l.status, 0) < 0 && errno == EINTR)
			;
	}
	ret = exit_code(l.status);
cleanup:
	prom_server_stop(so.prom);
	free(otlp);
	free(files);
	free(t);
	return ret;
}
