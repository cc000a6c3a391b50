// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "cmd/session.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "export/prom_http.h"
#include "lib/clock.h"
#include "lib/text.h"
#include "lib/util.h"
#include "model/correlate.h"
#include "model/kvmem.h"
#include "model/layercheck.h"
#include "model/telemetry.h"
#include "probe/event.h"
#include "probe/probes.h"
#include "sink/sinks.h"
#include "target/backend.h"
#include "target/gguf.h"
#include "target/layout.h"
#include "target/proc.h"
#include "target/resource.h"
#include "target/router.h"
#include "target/sites.h"
#include "target/version.h"

#define TAIL_MAX_BYTES (64u << 20) /* a tail capture's events never take more memory */

struct session {
	struct target t;
	struct probes *p;
	struct telemetry tm;
	struct correlator *corr;
	struct layercheck *check;  /* turns off a C++ layer whose records do not fit the build */
	char layers[128];          /* the layers attached and believed: the sinks see it change */
	int pidfd;
	uint64_t bad_records;
	bool debug;                /* print every record to stderr */
	struct prom_server *prom;  /* not owned */
	bool prom_per_target;
	const char *prom_labels[5]; /* service.instance.id, process.pid (per target) */
	struct sink top;           /* the full-screen view, ops NULL otherwise */
	struct sink tail;          /* --tail's capture, ops NULL otherwise */
	struct sink otlp;          /* OTLP export, ops NULL otherwise */
	struct gguf_info gguf;     /* the mapped model's header */
	struct gguf_vocab vocab;   /* its end-of-generation tokens (the correlator's eog_of) */
	char sync_lib[64];         /* what may throw through a synchronize (no compute time) */
	bool overrides;            /* its command line overrides model metadata (--override-kv):
				    * the header's EOS ids and shape may not be what it uses */
	bool vocab_of_context;     /* several .gguf mapped: the vocabulary is the serving
				    * context's model's, read with its KV shape (kv_model) */
	uint64_t kv_ctx;           /* the context device_lib was looked up for */
	char kv_path[LLMTAP_PATH_LEN]; /* the model file kv_gguf was read from, "" none */
	struct gguf_info kv_gguf;  /* its header: the serving context's own model */
	int device_lib;            /* it maps a device backend: 1, none 0, not looked -1 */
	char model[256];           /* what the sinks call the model: filled in place when a
				    * model is mapped after the attach */
	struct resource resource;  /* who produced the telemetry */
	struct llama_version version; /* which llama.cpp it runs */
	struct router_info router; /* a router llama-server (router.router): its requests are
				    * proxies until the target does engine work itself */
	struct event ev;           /* decoding buffer */
	struct step_assembler steps; /* steps spread over several records */
};

/* What a layer turned off leaves: the correlator's fallback for it. */
static const char *const layer_off_effect[LAYER_MAX] = {
	[LAYER_SAMPLING] = "output tokens are counted from the decode batches",
	[LAYER_SERVER] = "requests are counted from the engine alone",
	[LAYER_HTTP] = "HTTP requests are not traced; generations are counted from the engine alone",
};

/* s->layers from a mask of 1 << enum llmtap_layer. */
static void describe_layers(struct session *s, unsigned int mask)
{
	size_t used = 0;

	s->layers[0] = '\0';
	for (int l = 0; l < LAYER_MAX; l++) {
		if (!(mask & (1u << l)))
			continue;
		snprintf(s->layers + used, sizeof(s->layers) - used, "%s%s", used ? "," : "",
			 site_layer_name(l));
		used += strlen(s->layers + used);
	}
}

/* The self-check found the layers in failed wrong for this build: stop believing them. */
static void turn_off(struct session *s, unsigned int failed, const char *why)
{
	const char *ver = strcmp(s->version.text, "unknown") ? s->version.text : "of unknown version";

	describe_layers(s, layercheck_layers(s->check));
	for (int l = 0; l < LAYER_MAX; l++) {
		if (!(failed & (1u << l)))
			continue;
		correlator_disable_layer(s->corr, l);
		tell("PID %d: the %s layer does not fit llama.cpp %s (%s); turned off: %s",
		     (int)s->t.pid, site_layer_name(l), ver, why, layer_off_effect[l]);
		for (int i = 0; i < s->tm.n_sinks; i++)
			if (s->tm.sinks[i].ops->layer_off)
				s->tm.sinks[i].ops->layer_off(s->tm.sinks[i].self, &s->tm.target,
							      site_layer_name(l), why);
	}
}

/* Work only a process that has a model does: a router never decodes, samples, loads a
 * model or runs a task on a slot. */
static bool engine_work(const struct event *ev)
{
	switch (ev->kind) {
	case LLMTAP_EV_STEP:
	case LLMTAP_EV_SAMPLE:
	case LLMTAP_EV_CALL:
		return true;
	case LLMTAP_EV_SERVER:
		return ev->srv.op == LLMTAP_SRV_LAUNCH;
	default:
		return false;
	}
}

/*
 * The target said it was a router (router.h) but works as a server: it is none,
 * for good, and its requests are its own from now on (counted, with their tokens).
 */
static void router_disproved(struct session *s)
{
	s->router.router = false;
	correlator_set_router(s->corr, false);
	tell("PID %d (%s) said it was a router llama-server (%s) but does engine work: its "
	     "requests are counted as its own", (int)s->t.pid, s->t.comm, s->router.why);
}

static void refresh_model(struct session *s);

/* A model loaded after the attach (a process traced from its start): its name from now
 * on, so that the requests that follow at once carry it (not from the next tick on). */
static bool model_loaded(const struct session *s, const struct event *ev)
{
	return ev->kind == LLMTAP_EV_CALL && ev->call.op == LLMTAP_CALL_MODEL_LOAD &&
	       ev->call.ret && !s->model[0];
}

static int on_event(void *arg, const void *data, size_t size)
{
	struct session *s = arg;
	unsigned int failed;
	char why[256];

	if (event_decode(data, size, &s->ev)) {
		s->bad_records++;
		return 0;
	}
	if (s->debug)
		event_print(stderr, &s->ev);
	if (s->router.router && engine_work(&s->ev))
		router_disproved(s); /* before the correlator sees the work */
	if (model_loaded(s, &s->ev))
		refresh_model(s);
	if (s->ev.kind == LLMTAP_EV_STEP && !step_assemble(&s->steps, &s->ev.step, &s->ev.step))
		return 0; /* the step's next record continues its runs */
	failed = layercheck_event(s->check, &s->ev, why, sizeof(why));
	if (failed)
		turn_off(s, failed, why);
	correlator_event(s->corr, &s->ev);
	return 0;
}

/*
 * Whether pid's command line or environment overrides model metadata (llama.cpp's
 * --override-kv, LLAMA_ARG_OVERRIDE_KV). Unreadable: assumed so. The target's word:
 * it can only make its own figures unknown.
 */
static bool overrides_metadata(pid_t pid)
{
	static const char *const marks[][2] = {
		{ "cmdline", "override-kv" }, { "environ", "LLAMA_ARG_OVERRIDE_KV=" },
	};
	const size_t cap = 256 * 1024; /* ARG_MAX's usual size: more is cut, and assumed so */
	char *buf = malloc(cap);
	bool found = !buf;

	for (size_t i = 0; i < ARRAY_SIZE(marks) && !found; i++) {
		ssize_t n = proc_read_small(pid, marks[i][0], buf, cap);

		found = n < 0 || (size_t)n >= cap - 1 ||
			memmem(buf, (size_t)n, marks[i][1], strlen(marks[i][1]));
	}
	free(buf);
	return found;
}

static bool is_gguf(const char *path)
{
	size_t len = strlen(path);

	return len > 5 && !strcmp(path + len - 5, ".gguf");
}

/* a mapped .gguf other than the session's model file */
static int other_gguf(const struct proc_map *m, void *arg)
{
	const struct session *s = arg;

	return is_gguf(m->path) && strcmp(m->path, s->t.model);
}

/* The model's name from its GGUF header, else its file name, into s->model ("" when none). */
static void read_model(struct session *s)
{
	const struct target *t = &s->t;
	char err[256];
	const char *slash = strrchr(t->model, '/');

	memset(&s->gguf, 0, sizeof(s->gguf));
	gguf_vocab_free(&s->vocab);
	s->model[0] = '\0';
	if (!t->model[0])
		return;
	if (!target_model_read(t->pid, t->model, &s->gguf, &s->vocab, err, sizeof(err)) &&
	    s->gguf.name[0])
		snprintf(s->model, sizeof(s->model), "%s", s->gguf.name);
	else
		snprintf(s->model, sizeof(s->model), "%.255s", slash ? slash + 1 : t->model);
	/* a draft model's or a projector's file beside it: which one's tokens the requests
	 * are is known only from the serving context's model (kv_model) */
	s->overrides = overrides_metadata(t->pid);
	s->vocab_of_context = proc_for_each_map(t->pid, other_gguf, s) > 0;
	if (s->vocab_of_context)
		gguf_vocab_free(&s->vocab);
}

/* The correlator's view of the vocabulary: sure, maybe, or never end-of-generation;
 * with metadata overridden, the header's EOS ids are only maybe. */
static enum eog_class vocab_eog(const void *arg, int32_t token)
{
	const struct session *s = arg;

	if (gguf_token_is_eog_sure(&s->vocab, token))
		return s->overrides ? EOG_MAYBE : EOG_YES;
	return gguf_token_maybe_eog(&s->vocab, token) ? EOG_MAYBE : EOG_NO;
}

static int find_gguf(const struct proc_map *m, void *arg)
{
	struct session *s = arg;

	if (is_gguf(m->path)) {
		snprintf(s->t.model, sizeof(s->t.model), "%s", m->path);
		return 1;
	}
	return 0;
}

static int publish_info(struct session *s);

/* Attached before the model was loaded: look for it (the sinks see it in place). */
static void refresh_model(struct session *s)
{
	if (s->model[0] || proc_for_each_map(s->t.pid, find_gguf, s) <= 0)
		return;
	read_model(s);
	resource_set(&s->resource, "llmtap.model.file", s->t.model);
	if (s->gguf.name[0])
		resource_set(&s->resource, "llmtap.model.name", s->gguf.name);
	if (s->gguf.architecture[0])
		resource_set(&s->resource, "llmtap.model.architecture", s->gguf.architecture);
	publish_info(s);
}

/* The resource as Prometheus's target_info. */
static int publish_info(struct session *s)
{
	const char *kv[2 * RESOURCE_MAX_ATTRS + 1];

	resource_pairs(&s->resource, kv);
	if (s->prom && s->prom_per_target)
		return prom_server_set_target_info(s->prom, s->t.pid, kv);
	if (s->prom)
		return prom_server_set_info(s->prom, kv);
	return 0;
}

/* What llmtap knows of the target's llama.cpp, as resource attributes (unknown: left out). */
static void set_version_attrs(struct session *s)
{
	const struct llama_version *v = &s->version;
	char build[16];

	if (strcmp(v->text, "unknown"))
		resource_set(&s->resource, "llmtap.llama_cpp.version", v->text);
	if (v->commit[0])
		resource_set(&s->resource, "llmtap.llama_cpp.commit", v->commit);
	if (v->build >= 0) {
		snprintf(build, sizeof(build), "%d", v->build);
		resource_set(&s->resource, "llmtap.llama_cpp.build", build);
	}
	if (v->library[0])
		resource_set(&s->resource, "llmtap.llama_cpp.library_version", v->library);
}

/* The target's resource, given to the sinks and to Prometheus's target_info. */
static int detect_resource(struct session *s, const struct session_opts *o, struct tm_target *tt,
			   char *err, size_t errlen)
{
	const struct resource_target rt = {
		.pid = s->t.pid,
		.comm = s->t.comm,
		.model_path = s->t.model,
		.model_name = s->gguf.name,
		.model_arch = s->gguf.architecture,
		.from_env = o->target_env,
	};
	int ret = resource_detect(&s->resource, &rt, err, errlen);

	if (ret)
		return ret;
	set_version_attrs(s);
	tt->resource = &s->resource;
	resource_id_pairs(&s->resource, s->prom_labels);
	ret = publish_info(s);
	if (ret == -ENOSPC)
		snprintf(err, errlen, "the Prometheus endpoint holds %d processes at most",
			 PROM_MAX_TARGETS);
	else if (ret)
		snprintf(err, errlen, "Prometheus target_info: %s", strerror(-ret));
	return ret;
}

/*
 * The header of the file cc's model was loaded from (llama_model_load_from_file
 * returned that llama_model for that path): read from the mapped file of that path,
 * whichever .gguf the session's model is (a draft's or a projector's may be). NULL:
 * unknown (the load not seen, a relative path, not mapped: --no-mmap).
 */
static const struct gguf_info *kv_model(struct session *s, const struct ctx_creation *cc)
{
	if (!cc->model_path[0] || s->overrides)
		return NULL; /* not seen; or its shape may be overridden */
	if (strcmp(cc->model_path, s->kv_path)) {
		s->kv_path[0] = '\0';
		if (!strcmp(cc->model_path, s->t.model) && s->gguf.version && !s->vocab_of_context)
			s->kv_gguf = s->gguf;
		else if (target_model_read(s->t.pid, cc->model_path, &s->kv_gguf,
					   s->vocab_of_context ? &s->vocab : NULL, NULL, 0))
			return NULL; /* looked for again next time: it may be mapped by then */
		snprintf(s->kv_path, sizeof(s->kv_path), "%s", cc->model_path);
	}
	return &s->kv_gguf;
}

/* The KV cache's bytes: the serving context's creation and its own model's shape. */
static void kv_memory(struct session *s, struct tm_kv_mem *out)
{
	enum kv_layout layout = layout_kv(&s->version);
	const struct gguf_info *model;
	struct ctx_creation cc;
	struct kv_context kc;
	char lib[64];
	int ret;

	if (!correlator_context(s->corr, &cc)) {
		kvmem_describe(layout, NULL, NULL, 0, -1, out);
		return;
	}
	/* the backends are loaded before any context: look once per context */
	if (cc.ctx != s->kv_ctx) {
		ret = target_device_backend(s->t.pid, target_core(&s->t)->host, lib, sizeof(lib));
		s->device_lib = ret < 0 ? -1 : ret;
		s->kv_ctx = cc.ctx;
		/* loaded by now (llmtap run, a daemon at the exec: perhaps not at the attach) */
		correlator_set_host_only(s->corr, s->device_lib == 0);
		/* started by llmtap run, the target had not relocated LLAMA_COMMIT
		 * yet when llmtap attached: it has now (the sinks see it in place) */
		if (!s->version.commit[0]) {
			target_version(&s->t, &s->version);
			set_version_attrs(s);
			publish_info(s);
			layout = layout_kv(&s->version);
			probes_set_layout(s->p, layout_task_n_predict(&s->version),
					  layout_slot_stop(&s->version));
		}
	}
	kvmem_decode_context(layout, cc.cparams, cc.cparams_len, cc.params, &kc);
	/* the shape (and the context length n_ctx 0 stands for) of the context's own
	 * model only: another model's would make bytes that are no cache's */
	model = kv_model(s, &cc);
	kvmem_describe(layout, &kc, model ? &model->attn : NULL, model ? model->context_length : 0,
		       s->device_lib, out);
}

static void update_gauges(struct session *s)
{
	struct tm_gauges g;

	correlator_gauges(s->corr, &g);
	g.rss_bytes = proc_rss_bytes(s->tm.target.pid);
	kv_memory(s, &g.kv_mem);
	telemetry_set_gauges(&s->tm, &g);
}

static uint64_t lost_total(struct session *s)
{
	uint64_t st[LLMTAP_STAT_MAX];

	if (probes_stats(s->p, st))
		return s->tm.lost_seen;
	/* LLMTAP_STAT_ENTRY_LOST is a call already running at attach: not traced, not lost */
	return st[LLMTAP_STAT_RB_LOST] + st[LLMTAP_STAT_ENTRY_FULL] + s->bad_records +
	       s->steps.dropped;
}

static int add_sink(struct session *s, struct sink sk, char *err, size_t errlen)
{
	if (telemetry_add_sink(&s->tm, sk)) {
		sk.ops->destroy(sk.self);
		snprintf(err, errlen, "too many outputs at once");
		return -E2BIG;
	}
	return 0;
}

static int add_sinks(struct session *s, const struct session_opts *o, char *err, size_t errlen)
{
	struct sink sk;
	int ret = 0;

	switch (o->view) {
	case VIEW_JSON:
		ret = sink_json_new(o->out, o->json_steps, &sk, err, errlen);
		break;
	case VIEW_TOP:
		ret = sink_top_new(o->out, &sk, err, errlen);
		break;
	case VIEW_CONSOLE:
		ret = sink_console_new(o->out, &sk, err, errlen);
		break;
	case VIEW_NONE:
		sk.ops = NULL;
		break;
	}
	if (ret || (sk.ops && (ret = add_sink(s, sk, err, errlen))))
		return ret;
	if (o->view == VIEW_TOP)
		s->top = sk;
	if (o->tail_ns) {
		ret = sink_tail_new(o->tail_dir ? o->tail_dir : ".", o->tail_ns, o->tail_ttft_ns,
				    TAIL_MAX_BYTES, &sk, err, errlen);
		if (ret || (ret = add_sink(s, sk, err, errlen)))
			return ret;
		s->tail = sk;
	}
	if (o->record_path) {
		ret = sink_trace_new(o->record_path, &sk, err, errlen);
		if (ret || (ret = add_sink(s, sk, err, errlen)))
			return ret;
	}
	if (o->otlp && o->otlp->enabled) {
		ret = sink_otlp_new(o->otlp, o->otlp_exporter, &sk, err, errlen);
		if (ret || (ret = add_sink(s, sk, err, errlen)))
			return ret;
		s->otlp = sk;
	}
	return 0;
}

/* Everything a session holds, whatever state it got to (the sinks go with the telemetry). */
static void session_free(struct session *s)
{
	probes_close(s->p);
	correlator_free(s->corr);
	layercheck_free(s->check);
	telemetry_destroy(&s->tm);
	gguf_vocab_free(&s->vocab);
	if (s->pidfd >= 0)
		close(s->pidfd);
	free(s);
}

struct session *session_open(const struct target *t, const struct session_opts *o, char *err,
			     size_t errlen)
{
	struct probes_opts po = {
		.ringbuf_bytes = o->ringbuf_bytes,
		.verbose = o->verbose,
	};
	struct session *s = calloc(1, sizeof(*s));
	struct tm_target tt;
	bool host_only;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->t = *t;
	s->debug = o->debug_events;
	s->prom = o->prom;
	s->prom_per_target = o->prom_per_target;
	/* watch for the target's exit without racing PID reuse */
	s->device_lib = -1;
	s->pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
	if (s->pidfd < 0 && errno == ESRCH) {
		snprintf(err, errlen, "PID %d exited before llmtap could attach", (int)t->pid);
		free(s);
		return NULL;
	}
	target_version(&s->t, &s->version);
	po.task_n_predict_off = layout_task_n_predict(&s->version);
	po.slot_stop_off = layout_slot_stop(&s->version);
	/* only the host's backends: its work is over at llama_decode's return, and no
	 * synchronize throws; else ask whether one may (a second look, device ones only) */
	host_only = !target_device_backend(t->pid, target_core(t)->host, NULL, 0);
	po.no_sync = !host_only && target_sync_may_throw(t->pid, target_core(t)->host, s->sync_lib,
							 sizeof(s->sync_lib)) != 0;
	if (probes_open(&s->t, &po, on_event, s, &s->p, err, errlen))
		goto fail;
	if (po.no_sync)
		fprintf(stderr, "llmtap: PID %d: no step compute time: a call that synchronizes may "
			"throw in %s, where a return probe would end the process\n", (int)t->pid,
			s->sync_lib[0] ? s->sync_lib : "a ggml backend llmtap cannot tell");
	read_model(s);
	snprintf(s->layers, sizeof(s->layers), "%s", probes_attached(s->p));
	tt = (struct tm_target){
		.pid = s->t.pid,
		.comm = s->t.comm,
		.library = target_core(&s->t)->path,
		.llama_version = s->version.text,
		.in_executable = s->t.in_executable,
		.layers = s->layers,
		.model = s->model,
		.model_arch = s->gguf.architecture,
	};
	if (detect_resource(s, o, &tt, err, errlen))
		goto fail;
	telemetry_init(&s->tm, &tt, monotonic_ns());
	s->corr = correlator_new(&s->tm, probes_layer_mask(s->p));
	s->check = layercheck_new(probes_layer_mask(s->p));
	if (!s->corr || !s->check) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	correlator_set_stop_checks(s->corr, probes_site_attached(s->p, SITE_SRV_STOP_CHECK));
	correlator_set_eog(s->corr, vocab_eog, s);
	correlator_set_host_only(s->corr, host_only);
	if (router_detect(&s->t, &s->router))
		correlator_set_router(s->corr, true);
	if (add_sinks(s, o, err, errlen))
		goto fail;
	telemetry_attached(&s->tm);
	return s;
fail:
	if (s->prom && s->prom_per_target)
		prom_server_remove_target(s->prom, s->t.pid);
	session_free(s);
	return NULL;
}

int session_poll(struct session *s, int timeout_ms)
{
	return probes_poll(s->p, timeout_ms);
}

int session_fd(const struct session *s)
{
	return probes_fd(s->p);
}

static void publish(struct session *s)
{
	if (s->prom && s->prom_per_target)
		prom_server_publish_target(s->prom, s->t.pid, s->prom_labels, &s->tm.metrics);
	else if (s->prom)
		prom_server_publish(s->prom, &s->tm.metrics);
}

void session_tick(struct session *s, uint64_t now)
{
	uint64_t lost = lost_total(s); /* one read of the per-CPU counters per tick */

	refresh_model(s);
	correlator_tick(s->corr, now, lost);
	update_gauges(s);
	if (s->otlp.ops)
		sink_otlp_health(&s->otlp, &s->tm.metrics, now);
	telemetry_tick(&s->tm, now, lost);
	publish(s);
}

bool session_target_gone(const struct session *s)
{
	struct pollfd pfd = { .fd = s->pidfd, .events = POLLIN };

	if (s->pidfd >= 0)
		return poll(&pfd, 1, 0) > 0;
	return kill(s->t.pid, 0) && errno == ESRCH;
}

const char *session_comm(const struct session *s)
{
	return s->t.comm;
}

const char *session_layers(const struct session *s)
{
	return s->layers;
}

const char *session_instance(const struct session *s)
{
	const char *v = resource_get(&s->resource, "service.instance.id");

	return v ? v : "";
}

const struct router_info *session_router(const struct session *s)
{
	return s->router.router ? &s->router : NULL;
}

uint64_t session_requests(const struct session *s)
{
	return s->tm.total.requests;
}

bool session_dump_tail(struct session *s, const char *reason)
{
	if (!s->tail.ops)
		return false;
	sink_tail_dump(&s->tail, reason);
	return true;
}

bool session_key(struct session *s, int key)
{
	if (!s->top.ops)
		return false;
	sink_top_key(&s->top, key);
	return true;
}

void session_close(struct session *s, const char *reason)
{
	if (!s)
		return;
	probes_drain(s->p); /* whatever is still in the ring buffer */
	update_gauges(s);
	correlator_flush(s->corr, monotonic_ns());
	if (s->otlp.ops)
		sink_otlp_health(&s->otlp, &s->tm.metrics, monotonic_ns());
	telemetry_finish(&s->tm, monotonic_ns(), lost_total(s), reason);
	if (s->otlp.ops) /* the final flush's outcome */
		sink_otlp_health(&s->otlp, &s->tm.metrics, monotonic_ns());
	if (s->prom && s->prom_per_target) /* gone with the process */
		prom_server_remove_target(s->prom, s->t.pid);
	else
		publish(s);
	session_free(s);
}
