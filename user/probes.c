// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "probes.h"

#include <errno.h>
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
	struct bpf_link *links[2 * TSYM_MAX];
	int n_links;
	int ncpus;
	probes_event_fn fn;
	void *fn_arg;
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
		      enum target_sym sym, bool retprobe, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = retprobe);
	struct bpf_link *link;

	link = bpf_program__attach_uprobe_opts(prog, t->pid, t->host_path,
					       (size_t)t->offset[sym], &uo);
	if (!link) {
		int e = -errno;

		snprintf(err, errlen, "cannot attach a %s to %s in %s (PID %d): %s",
			 retprobe ? "uretprobe" : "uprobe", target_sym_name(sym), t->lib_path,
			 (int)t->pid, strerror(-e));
		return e ? e : -EINVAL;
	}
	p->links[p->n_links++] = link;
	return 0;
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
	const struct {
		enum target_sym sym;
		struct bpf_program *enter, *exit;
	} sites[] = {
		{ TSYM_DECODE, p->skel->progs.decode_enter, p->skel->progs.decode_exit },
		{ TSYM_ENCODE, p->skel->progs.encode_enter, p->skel->progs.encode_exit },
	};
	for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++) {
		size_t used = strlen(p->attached);

		if (!t->found[sites[i].sym])
			continue;
		/* return probe first: an entry without its return would leak map entries */
		ret = attach_one(p, sites[i].exit, t, sites[i].sym, true, err, errlen);
		if (!ret)
			ret = attach_one(p, sites[i].enter, t, sites[i].sym, false, err, errlen);
		if (ret)
			goto cleanup;
		snprintf(p->attached + used, sizeof(p->attached) - used, "%s%s", used ? "," : "",
			 target_sym_name(sites[i].sym));
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

void probes_close(struct probes *p)
{
	if (!p)
		return;
	ring_buffer__free(p->rb);
	for (int i = p->n_links - 1; i >= 0; i--)
		bpf_link__destroy(p->links[i]);
	llmtap_bpf__destroy(p->skel);
	free(p);
}
