// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "cmd/fleet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/loop.h"
#include "lib/clock.h"
#include "lib/text.h"
#include "lib/util.h"
#include "target/discover.h"
#include "target/freeze.h"
#include "target/proc.h"
#include "target/router.h"
#include "target/target.h"

#define MAX_PIDS 65536      /* processes listed per rescan */
#define MAX_PENDING 256     /* exec'd processes waiting for another look */
#define MAX_NOTED 1024      /* processes left out, remembered so they are told once */

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

struct fleet {
	struct fleet_opts o;
	struct discover *disc;
	struct tracked targets[FLEET_MAX_TARGETS];
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
};

static struct tracked *find_tracked(struct fleet *f, pid_t pid)
{
	for (int i = 0; i < f->n_targets; i++)
		if (f->targets[i].pid == pid)
			return &f->targets[i];
	return NULL;
}

/* Whether pid (at this start time) was told about already; else remember it. */
static bool already_noted(struct fleet *f, pid_t pid, uint64_t start)
{
	for (int i = 0; i < f->n_noted; i++)
		if (f->noted[i].pid == pid && f->noted[i].start == start)
			return true;
	if (f->n_noted == MAX_NOTED) /* forget the oldest half */
		memmove(f->noted, f->noted + MAX_NOTED / 2,
			(f->n_noted -= MAX_NOTED / 2) * sizeof(f->noted[0]));
	f->noted[f->n_noted++] = (struct noted){ pid, start };
	return false;
}

static void forget_noted(struct fleet *f, pid_t pid)
{
	for (int i = 0; i < f->n_noted; i++)
		if (f->noted[i].pid == pid)
			f->noted[i--] = f->noted[--f->n_noted];
}

static void detach(struct fleet *f, struct tracked *t, const char *reason)
{
	pid_t pid = t->pid;
	uint64_t requests = session_requests(t->s);
	char comm[16];

	snprintf(comm, sizeof(comm), "%s", session_comm(t->s));
	session_close(t->s, reason);
	*t = f->targets[--f->n_targets];
	f->detached++;
	tell("detached from PID %d (%s): %s, %llu requests traced", (int)pid, comm, reason,
	     (unsigned long long)requests);
}

/* Whether pid is in the fleet's reach: anywhere, or below its root. */
static bool in_reach(const struct fleet *f, pid_t pid)
{
	return f->o.root <= 0 || proc_descends_from(pid, f->o.root);
}

static void tell_attached(struct session *s, pid_t pid, uint64_t exec_ns, bool frozen,
			  uint64_t held)
{
	const struct router_info *ri = session_router(s);
	char after[128] = "";

	if (exec_ns)
		snprintf(after, sizeof(after), "; %.1f ms after its exec%s",
			 (double)(monotonic_ns() - exec_ns) / 1e6,
			 frozen ? ", held still while attaching" : "");
	if (frozen)
		snprintf(after + strlen(after), sizeof(after) - strlen(after), "%s(%.1f ms)",
			 exec_ns ? " " : ", held still while attaching ", (double)held / 1e6);
	tell("attached to PID %d (%s): %s; service.instance.id %s%s", (int)pid, session_comm(s),
	     session_layers(s), session_instance(s), after);
	if (ri)
		tell("PID %d is a router llama-server (%s): its requests are proxy spans, counted in "
		     "the child llama-server that serves each", (int)pid, ri->why);
}

/*
 * A child of a traced router llama-server: traced with it whatever the selection says
 * (it listens on a loopback port of the router's choosing, and serves the requests the
 * router's proxy spans leave uncounted). Its parent is the kernel's word, not its own.
 */
static bool router_child(struct fleet *f, pid_t pid)
{
	struct tracked *parent = find_tracked(f, proc_ppid(pid));

	return parent && session_router(parent->s);
}

/* Look at pid: trace it when it loads llama.cpp and the selection takes it. */
static void consider(struct fleet *f, pid_t pid, uint64_t exec_ns)
{
	uint64_t start = proc_start_time(pid);
	struct tracked *t = find_tracked(f, pid);
	struct target *tgt;
	char why[256], err[2048];
	struct session *s;
	struct freeze fr;
	uint64_t held;
	bool frozen;

	if (!start || pid == f->self)
		return;
	if (t && t->start == start)
		return; /* traced already: never twice */
	if (t) /* the pid was reused */
		detach(f, t, "target exited");
	if (!in_reach(f, pid))
		return;
	if (!discover_has_llama(f->disc, pid, why, sizeof(why))) {
		if (why[0] && !already_noted(f, pid, start)) /* its files were refused */
			fprintf(stderr, "llmtap: not tracing PID %d: %s\n", (int)pid, why);
		return;
	}
	if (f->o.sel && !selector_match(f->o.sel, pid, why, sizeof(why)) && !router_child(f, pid)) {
		if (!already_noted(f, pid, start))
			tell("not tracing PID %d: %s", (int)pid, why);
		return;
	}
	if (f->n_targets >= f->o.max_targets) {
		if (!already_noted(f, pid, start))
			fprintf(stderr, "llmtap: not tracing PID %d: --max-targets %d reached\n",
				(int)pid, f->o.max_targets);
		return;
	}
	tgt = calloc(1, sizeof(*tgt));
	if (!tgt)
		return;
	/* just exec'd: hold it still while attaching, so that its model load is seen */
	frozen = exec_ns && f->o.freeze && freeze_process(pid, &fr);
	held = monotonic_ns();
	s = NULL;
	if (!target_find(pid, tgt, err, sizeof(err)))
		s = session_open(tgt, &f->o.so, err, sizeof(err));
	if (frozen)
		freeze_release(&fr);
	held = monotonic_ns() - held;
	free(tgt);
	if (!s) {
		if (!already_noted(f, pid, start)) {
			f->failed++;
			tell("cannot trace PID %d: %s", (int)pid, err);
		}
		return;
	}
	f->targets[f->n_targets++] = (struct tracked){ pid, start, s };
	forget_noted(f, pid);
	f->attached++;
	tell_attached(s, pid, exec_ns, frozen, held);
}

static bool is_pending(const struct fleet *f, pid_t pid)
{
	for (int i = 0; i < f->n_pending; i++)
		if (f->pending[i].pid == pid)
			return true;
	return false;
}

/*
 * A slice of a /proc rescan: true when it is done. A rescan that reads many new
 * files (a process mapping thousands, slow disks) takes slices of RESCAN_SLICE_NS
 * between which the targets' ring buffers are drained, instead of stalling them.
 */
#define RESCAN_SLICE_NS (50 * 1000000ull)

static bool rescan(struct fleet *f)
{
	uint64_t start = monotonic_ns();

	if (f->scan_pos >= f->n_pids) { /* a new rescan */
		f->n_pids = f->o.root > 0 ? discover_descendants(f->o.root, f->pids, MAX_PIDS)
					  : discover_list(f->pids, MAX_PIDS);
		f->scan_pos = 0;
	}
	/* a process that just exec'd is the exec watcher's (it holds it still while attaching) */
	while (f->scan_pos < f->n_pids) {
		pid_t pid = f->pids[f->scan_pos++];

		if (!is_pending(f, pid))
			consider(f, pid, 0);
		if (monotonic_ns() - start >= RESCAN_SLICE_NS)
			break;
	}
	return f->scan_pos >= f->n_pids;
}

static void add_pending(struct fleet *f, pid_t pid, uint64_t now)
{
	struct tracked *t = find_tracked(f, pid);

	if (t) /* it exec'd another program: the old probes went with the old image */
		detach(f, t, "target exec'd another program");
	if (!in_reach(f, pid))
		return;
	for (int i = 0; i < f->n_pending; i++)
		if (f->pending[i].pid == pid) {
			f->pending[i] = (struct pending){ pid, now, 0 };
			return;
		}
	if (f->n_pending < MAX_PENDING)
		f->pending[f->n_pending++] = (struct pending){ pid, now, 0 };
}

int fleet_timeout_ms(const struct fleet *f, uint64_t now)
{
	int ms = LOOP_POLL_MS;

	if (f->scan_pos < f->n_pids)
		return 0; /* a rescan in slices goes on */
	for (int i = 0; i < f->n_pending; i++) {
		uint64_t due = f->pending[i].exec_ns + recheck_ms[f->pending[i].next] * 1000000ull;
		int wait = due <= now ? 0 : (int)((due - now + 999999) / 1000000);

		if (wait < ms)
			ms = wait;
	}
	return ms;
}

static void run_pending(struct fleet *f, uint64_t now)
{
	for (int i = 0; i < f->n_pending; i++) {
		struct pending *p = &f->pending[i];

		if (now < p->exec_ns + recheck_ms[p->next] * 1000000ull)
			continue;
		consider(f, p->pid, p->exec_ns);
		if (find_tracked(f, p->pid) || ++p->next == N_RECHECKS)
			f->pending[i--] = f->pending[--f->n_pending];
	}
}

struct fleet *fleet_open(const struct fleet_opts *o, char *err, size_t errlen)
{
	struct fleet *f = calloc(1, sizeof(*f));

	if (!f || !(f->pids = calloc(MAX_PIDS, sizeof(*f->pids)))) {
		snprintf(err, errlen, "out of memory");
		free(f);
		return NULL;
	}
	f->o = *o;
	if (f->o.max_targets > FLEET_MAX_TARGETS || f->o.max_targets <= 0)
		f->o.max_targets = FLEET_MAX_TARGETS;
	f->self = getpid();
	f->disc = discover_open(o->exec_watch, err, errlen);
	if (!f->disc) {
		free(f->pids);
		free(f);
		return NULL;
	}
	f->next_scan = monotonic_ns();
	return f;
}

bool fleet_exec_watch(const struct fleet *f)
{
	return discover_fd(f->disc) >= 0;
}

int fleet_poll_fds(const struct fleet *f, int *fds, int max)
{
	int n = 0;

	if (discover_fd(f->disc) >= 0 && n < max)
		fds[n++] = discover_fd(f->disc);
	for (int i = 0; i < f->n_targets && n < max; i++)
		fds[n++] = session_fd(f->targets[i].s);
	return n;
}

void fleet_ready(struct fleet *f, uint64_t now)
{
	pid_t execs[256];
	int n;

	for (int i = 0; i < f->n_targets; i++)
		session_poll(f->targets[i].s, 0);
	n = discover_execs(f->disc, execs, 256);
	for (int i = 0; i < n; i++)
		add_pending(f, execs[i], now);
	run_pending(f, now);
	if (now >= f->next_scan && rescan(f))
		f->next_scan = now + f->o.rescan_ns;
}

void fleet_tick(struct fleet *f, uint64_t now)
{
	for (int i = 0; i < f->n_targets; i++)
		session_tick(f->targets[i].s, now);
}

void fleet_dump(struct fleet *f)
{
	for (int i = 0; i < f->n_targets; i++)
		session_dump_tail(f->targets[i].s, "SIGUSR1");
}

void fleet_reap(struct fleet *f)
{
	for (int i = 0; i < f->n_targets; i++)
		if (session_target_gone(f->targets[i].s))
			detach(f, &f->targets[i--], "target exited");
}

void fleet_stats(const struct fleet *f, struct fleet_stats *st)
{
	*st = (struct fleet_stats){
		.targets = f->n_targets,
		.attached = f->attached,
		.detached = f->detached,
		.failed = f->failed,
		.execs_lost = discover_lost(f->disc),
	};
}

void fleet_detach_all(struct fleet *f, const char *reason)
{
	while (f->n_targets)
		detach(f, &f->targets[0], reason);
}

void fleet_close(struct fleet *f, const char *reason)
{
	if (!f)
		return;
	fleet_detach_all(f, reason);
	discover_close(f->disc);
	free(f->pids);
	free(f);
}
