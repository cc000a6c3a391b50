// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "probes.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "llmtap.skel.h"

struct probes {
	struct llmtap_bpf *skel;
	struct ring_buffer *rb;
	struct bpf_link *links[2 * SITE_MAX * TARGET_MAX_LOCS];
	int n_links;
	int ncpus;
	probes_event_fn fn;
	void *fn_arg;
	bool layers[LAYER_MAX];
	char attached[128];
};

static int on_record(void *ctx, void *data, size_t size)
{
	struct probes *p = ctx;

	return p->fn(p->fn_arg, data, size);
}

static bool libbpf_verbose;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG || !libbpf_verbose)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static int attach_one(struct probes *p, struct bpf_program *prog, const struct target *t,
		      enum target_site site, const struct target_loc *loc, bool retprobe,
		      __u64 cookie, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = retprobe, .bpf_cookie = cookie);
	struct bpf_link *link;

	link = bpf_program__attach_uprobe_opts(prog, t->pid, t->files[loc->file].host,
					       (size_t)loc->offset, &uo);
	if (!link) {
		int e = -errno;

		snprintf(err, errlen, "cannot attach a %s to %s in %s (PID %d): %s",
			 retprobe ? "uretprobe" : "uprobe", target_site_name(site),
			 t->files[loc->file].path, (int)t->pid, strerror(-e));
		return e ? e : -EINVAL;
	}
	p->links[p->n_links++] = link;
	return 0;
}

/* The programs of one site: a return probe (attached first, so that an entry
 * never lacks its return), an entry probe, and the entry's cookie. */
static void site_programs(const struct llmtap_bpf *skel, enum target_site site,
			  struct bpf_program **ret, struct bpf_program **enter, __u64 *cookie)
{
	*ret = *enter = NULL;
	*cookie = 0;
	switch (site) {
	case SITE_DECODE:
		*ret = skel->progs.decode_exit;
		*enter = skel->progs.decode_enter;
		break;
	case SITE_ENCODE:
		*ret = skel->progs.encode_exit;
		*enter = skel->progs.encode_enter;
		break;
	case SITE_SAMPLE_COMMON:
	case SITE_SAMPLE:
		*ret = skel->progs.sample_exit;
		*enter = skel->progs.sample_enter;
		break;
	case SITE_KV_SEQ_RM ... SITE_KV_CLEAR:
		*enter = skel->progs.kv_enter;
		*cookie = LLMTAP_KV_SEQ_RM + (site - SITE_KV_SEQ_RM);
		break;
	case SITE_SRV_NEW_ID:
		*ret = skel->progs.new_id_exit;
		break;
	case SITE_SRV_DEFER:
	case SITE_SRV_LAUNCH:
	case SITE_SRV_FINAL:
	case SITE_SRV_ERROR:
	case SITE_SRV_PARTIAL:
		*enter = skel->progs.srv_enter;
		*cookie = LLMTAP_SRV_DEFER + (site - SITE_SRV_DEFER);
		break;
	case SITE_HTTP_PROCESS:
		*ret = skel->progs.http_end;
		*enter = skel->progs.http_enter;
		*cookie = LLMTAP_HTTP_BEGIN;
		break;
	case SITE_HTTP_ROUTING:
		*enter = skel->progs.http_enter;
		*cookie = LLMTAP_HTTP_ROUTE;
		break;
	case SITE_HTTP_WRITE:
		*enter = skel->progs.http_enter;
		*cookie = LLMTAP_HTTP_STATUS;
		break;
	case SITE_CALL_SEQ_SAVE_FILE ... SITE_CALL_TOKENIZE:
		*ret = skel->progs.call_exit;
		*enter = skel->progs.call_enter;
		*cookie = LLMTAP_CALL_SEQ_SAVE_FILE + (site - SITE_CALL_SEQ_SAVE_FILE);
		break;
	default:
		break;
	}
}

/* Attach one site's probes; on failure detach what this site attached. */
static int attach_site(struct probes *p, const struct target *t, enum target_site site,
		       char *err, size_t errlen)
{
	struct bpf_program *ret_prog, *enter;
	int before = p->n_links, e = 0;
	__u64 cookie;

	site_programs(p->skel, site, &ret_prog, &enter, &cookie);
	for (int i = 0; !e && i < t->sites[site].n_locs; i++) {
		const struct target_loc *loc = &t->sites[site].locs[i];

		if (ret_prog)
			e = attach_one(p, ret_prog, t, site, loc, true, 0, err, errlen);
		if (!e && enter)
			e = attach_one(p, enter, t, site, loc, false, cookie, err, errlen);
	}
	while (e && p->n_links > before)
		bpf_link__destroy(p->links[--p->n_links]);
	return e;
}

int probes_open(const struct target *t, const struct probes_opts *opts, probes_event_fn fn,
		void *arg, struct probes **out, char *err, size_t errlen)
{
	struct probes *p;
	int ret;

	*out = NULL;
	libbpf_verbose = opts->verbose;
	libbpf_set_print(libbpf_print);

	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->ncpus = libbpf_num_possible_cpus();
	if (p->ncpus <= 0) {
		snprintf(err, errlen, "cannot count CPUs: %s", strerror(-p->ncpus));
		ret = p->ncpus ? p->ncpus : -EINVAL;
		goto cleanup;
	}
	p->skel = llmtap_bpf__open();
	if (!p->skel) {
		ret = -errno;
		snprintf(err, errlen, "cannot open the BPF object: %s", strerror(-ret));
		goto cleanup;
	}
	ret = bpf_map__set_max_entries(p->skel->maps.events, (__u32)opts->ringbuf_bytes);
	if (ret) {
		snprintf(err, errlen, "bad ring buffer size %zu: %s", opts->ringbuf_bytes,
			 strerror(-ret));
		goto cleanup;
	}
	p->skel->rodata->wakeup_bytes = opts->ringbuf_bytes / 4;
	ret = llmtap_bpf__load(p->skel);
	if (ret) {
		snprintf(err, errlen,
			 "the kernel refused llmtap's BPF programs: %s (run with --verbose for the verifier log)",
			 strerror(-ret));
		goto cleanup;
	}
	if (attach_site(p, t, SITE_DECODE, err, errlen)) {
		ret = -EINVAL;
		goto cleanup;
	}
	p->layers[LAYER_ENGINE] = true;
	for (int site = SITE_DECODE + 1; site < SITE_MAX; site++) {
		enum target_layer layer = target_site_layer(site);
		char why[512];

		if (!t->sites[site].found || !opts->layers[layer] || !target_layer_found(t, layer))
			continue;
		if (attach_site(p, t, site, why, sizeof(why))) {
			/* optional sites: say so and go on without them */
			fprintf(stderr, "llmtap: warning: %s\n", why);
			continue;
		}
		p->layers[layer] = true;
	}
	for (int l = 0; l < LAYER_MAX; l++) {
		size_t used = strlen(p->attached);

		if (p->layers[l])
			snprintf(p->attached + used, sizeof(p->attached) - used, "%s%s",
				 used ? "," : "", target_layer_name(l));
	}
	p->fn = fn;
	p->fn_arg = arg;
	p->rb = ring_buffer__new(bpf_map__fd(p->skel->maps.events), on_record, p, NULL);
	if (!p->rb) {
		ret = -errno;
		snprintf(err, errlen, "cannot open the ring buffer: %s", strerror(-ret));
		goto cleanup;
	}
	*out = p;
	return 0;
cleanup:
	probes_close(p);
	return ret;
}

int probes_poll(struct probes *p, int timeout_ms)
{
	int n = ring_buffer__poll(p->rb, timeout_ms);

	if (n < 0)
		return n;
	/* records written without a wakeup are drained here */
	int m = ring_buffer__consume(p->rb);

	return m < 0 ? m : n + m;
}

int probes_stats(struct probes *p, uint64_t out[LLMTAP_STAT_MAX])
{
	int fd = bpf_map__fd(p->skel->maps.stats);
	uint64_t *vals = calloc((size_t)p->ncpus, sizeof(*vals));

	if (!vals)
		return -ENOMEM;
	for (__u32 k = 0; k < LLMTAP_STAT_MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(fd, &k, vals))
			continue;
		for (int c = 0; c < p->ncpus; c++)
			out[k] += vals[c];
	}
	free(vals);
	return 0;
}

const char *probes_attached(const struct probes *p)
{
	return p->attached;
}

bool probes_layer(const struct probes *p, enum target_layer l)
{
	return l < LAYER_MAX && p->layers[l];
}

struct detach_stripe {
	struct probes *p;
	int first; /* destroys links first, first + DETACH_THREADS, ... */
};

#define DETACH_THREADS 16

static void *detach_stripe(void *arg)
{
	struct detach_stripe *d = arg;

	for (int i = d->first; i < d->p->n_links; i += DETACH_THREADS)
		bpf_link__destroy(d->p->links[i]);
	return NULL;
}

/*
 * Removing a uprobe waits for an RCU grace period (~0.1 s here), one link after
 * the other: 50 links would keep Ctrl-C waiting for seconds. Threads let those
 * waits overlap.
 */
static void detach_all(struct probes *p)
{
	struct detach_stripe stripes[DETACH_THREADS];
	pthread_t threads[DETACH_THREADS];
	bool started[DETACH_THREADS] = { false };

	for (int t = 0; t < DETACH_THREADS && t < p->n_links; t++) {
		stripes[t] = (struct detach_stripe){ .p = p, .first = t };
		started[t] = !pthread_create(&threads[t], NULL, detach_stripe, &stripes[t]);
		if (!started[t])
			detach_stripe(&stripes[t]); /* no thread: do it here */
	}
	for (int t = 0; t < DETACH_THREADS; t++)
		if (started[t])
			pthread_join(threads[t], NULL);
	p->n_links = 0;
}

void probes_close(struct probes *p)
{
	if (!p)
		return;
	ring_buffer__free(p->rb);
	detach_all(p);
	llmtap_bpf__destroy(p->skel);
	free(p);
}
