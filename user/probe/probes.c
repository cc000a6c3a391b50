// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "probe/probes.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "llmtap.skel.h"

struct probes {
	struct llmtap_bpf *skel;
	struct ring_buffer *rb;
	bool multi;                 /* uprobe_multi links (Linux 6.6+) */
	bool session;               /* uprobe sessions (Linux 6.13+) for the SESSION sites */
	int link_fds[3 * TARGET_MAX_FILES];
	int n_link_fds;
	struct bpf_link *links[2 * SITE_MAX * TARGET_MAX_LOCS];
	int n_links;
	int ncpus;
	probes_event_fn fn;
	void *fn_arg;
	int polled; /* records handed to fn in this probes_poll */
	bool layers[LAYER_MAX]; /* attached */
	bool sites[SITE_MAX];   /* attached */
	char attached[128];
};

/*
 * Records one probes_poll hands on at most: a daemon drains its targets in
 * turn, so a target that floods its ring buffer cannot starve the others (the
 * rest waits for the next turn; the ring buffer's fd stays readable).
 */
#define POLL_BUDGET 4096
#define BUDGET_SPENT (-EAGAIN) /* libbpf stops a drain on a negative return */

static int on_record(void *ctx, void *data, size_t size)
{
	struct probes *p = ctx;
	int ret = p->fn(p->fn_arg, data, size);

	if (ret)
		return ret;
	return ++p->polled >= POLL_BUDGET ? BUDGET_SPENT : 0;
}

static bool libbpf_verbose;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG || !libbpf_verbose)
		return 0;
	return vfprintf(stderr, fmt, args);
}

/*
 * uprobe_multi (Linux 6.6+): one link per file and direction, however many
 * sites. Removing a uprobe waits for an RCU grace period (~0.1 s here), once
 * per link: with a link per probe, Ctrl-C would wait seconds.
 */
#ifndef BPF_TRACE_UPROBE_MULTI
#define BPF_TRACE_UPROBE_MULTI 48
#endif
#define UPROBE_MULTI_RETURN 1
#ifndef BPF_TRACE_UPROBE_SESSION
#define BPF_TRACE_UPROBE_SESSION 57
#endif

static bool uprobe_multi_supported(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (getenv("LLMTAP_NO_UPROBE_MULTI"))
		return false;
	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 6);
}

/*
 * uprobe sessions (Linux 6.13+, over uprobe_multi): a SESSION site's return probe
 * runs only when its entry handler asks, so the calls it ignores cost an entry alone.
 */
static bool uprobe_session_supported(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (getenv("LLMTAP_NO_UPROBE_SESSION") || !uprobe_multi_supported())
		return false;
	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 13);
}

/* the links of one file: entries, returns, sessions */
enum { DIR_ENTRY = 0, DIR_RETURN, DIR_SESSION, DIRS };

static int uprobe_multi_link(int prog_fd, const char *path, const __u64 *offsets,
			     const __u64 *cookies, __u32 cnt, int dir, int pid)
{
	/* union bpf_attr's link_create, as Linux 6.6 lays it out */
	struct {
		__u32 prog_fd, target_fd, attach_type, flags;
		__u64 path, offsets, ref_ctr_offsets, cookies;
		__u32 cnt, um_flags, pid;
		__u8 pad[68];
	} attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = (__u32)prog_fd;
	attr.attach_type = dir == DIR_SESSION ? BPF_TRACE_UPROBE_SESSION : BPF_TRACE_UPROBE_MULTI;
	attr.path = (__u64)(uintptr_t)path;
	attr.offsets = (__u64)(uintptr_t)offsets;
	attr.cookies = (__u64)(uintptr_t)cookies;
	attr.cnt = cnt;
	attr.um_flags = dir == DIR_RETURN ? UPROBE_MULTI_RETURN : 0;
	attr.pid = (__u32)pid;
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	return fd < 0 ? -errno : fd;
}

/* Whether a site is probed, and its probes' cookie (site id and flags). */
struct site_want {
	bool on;
	bool entry_only; /* a SESSION site probed at entry alone (no_sync) */
	__u64 cookie;
};

struct file_sites {
	__u64 offsets[DIRS][SITE_MAX * TARGET_MAX_LOCS];
	__u64 cookies[DIRS][SITE_MAX * TARGET_MAX_LOCS];
	enum llmtap_site sites[DIRS][SITE_MAX * TARGET_MAX_LOCS];
	__u32 n[DIRS];
};

static void add_site(struct file_sites *fs, int dir, __u64 offset, __u64 cookie,
		     enum llmtap_site site)
{
	for (__u32 i = 0; i < fs->n[dir]; i++)
		if (fs->offsets[dir][i] == offset)
			return; /* one function under two names: the first site keeps it */
	fs->offsets[dir][fs->n[dir]] = offset;
	fs->cookies[dir][fs->n[dir]] = cookie;
	fs->sites[dir][fs->n[dir]++] = site;
}

/* Attach the wanted sites of file f. Returns 0 or -errno with err set. */
static int attach_file_multi(struct probes *p, const struct target *t, int f,
			     const struct site_want *want, char *err, size_t errlen)
{
	struct file_sites *fs = calloc(1, sizeof(*fs));
	static const char *const what[DIRS] = { "uprobes", "uretprobes", "uprobe sessions" };
	/* returns before entries: an entry never lacks its return */
	static const int order[DIRS] = { DIR_RETURN, DIR_SESSION, DIR_ENTRY };
	int prog[DIRS] = { bpf_program__fd(p->skel->progs.probe_enter),
			   bpf_program__fd(p->skel->progs.probe_exit),
			   bpf_program__fd(p->skel->progs.probe_session) };
	int ret = 0;

	if (!fs)
		return -ENOMEM;
	for (int site = 0; site < SITE_MAX; site++) {
		const struct site_info *si = site_info(site);

		if (!want[site].on)
			continue;
		for (int i = 0; i < t->sites[site].n_locs; i++) {
			const struct target_loc *loc = &t->sites[site].locs[i];

			if (loc->file != f)
				continue;
			if (want[site].entry_only) {
				add_site(fs, DIR_ENTRY, loc->offset, want[site].cookie, site);
				continue;
			}
			if (si->session && p->session) {
				add_site(fs, DIR_SESSION, loc->offset, want[site].cookie, site);
				continue;
			}
			if (si->entry)
				add_site(fs, DIR_ENTRY, loc->offset, want[site].cookie, site);
			if (si->ret)
				add_site(fs, DIR_RETURN, loc->offset, want[site].cookie, site);
		}
	}
	for (int k = 0; k < DIRS && !ret; k++) {
		int dir = order[k], fd;

		if (!fs->n[dir])
			continue;
		fd = uprobe_multi_link(prog[dir], t->files[f].host, fs->offsets[dir],
				       fs->cookies[dir], fs->n[dir], dir, t->pid);
		if (fd < 0 && dir == DIR_SESSION) {
			/* the kernel refused sessions after all: these sites get a classic
			 * return (now, before any entry) and entry (with the others') */
			p->session = false;
			fd = uprobe_multi_link(prog[DIR_RETURN], t->files[f].host,
					       fs->offsets[dir], fs->cookies[dir], fs->n[dir],
					       DIR_RETURN, t->pid);
			for (__u32 i = 0; fd >= 0 && i < fs->n[dir]; i++)
				add_site(fs, DIR_ENTRY, fs->offsets[dir][i], fs->cookies[dir][i],
					 fs->sites[dir][i]);
		}
		if (fd < 0) {
			ret = fd;
			snprintf(err, errlen, "cannot attach %u %s to %s (PID %d): %s", fs->n[dir],
				 what[dir], t->files[f].path, (int)t->pid, strerror(-fd));
			break;
		}
		p->link_fds[p->n_link_fds++] = fd;
		for (__u32 i = 0; i < fs->n[dir]; i++) {
			p->sites[fs->sites[dir][i]] = true;
			p->layers[site_info(fs->sites[dir][i])->layer] = true;
		}
	}
	free(fs);
	return ret;
}

/* Without uprobe_multi: a perf-event link per site, location and direction. */
static int attach_site_perf(struct probes *p, const struct target *t, enum llmtap_site site,
			    const struct site_want *want, char *err, size_t errlen)
{
	const struct site_info *si = site_info(site);
	int before = p->n_links, e = 0;

	for (int i = 0; !e && i < t->sites[site].n_locs; i++) {
		const struct target_loc *loc = &t->sites[site].locs[i];

		for (int dir = 1; dir >= 0 && !e; dir--) {
			LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = dir == 1,
				    .bpf_cookie = want[site].cookie);
			struct bpf_link *link;

			if (dir ? !si->ret || want[site].entry_only : !si->entry)
				continue;
			link = bpf_program__attach_uprobe_opts(dir ? p->skel->progs.probe_exit :
								     p->skel->progs.probe_enter,
							       t->pid, t->files[loc->file].host,
							       (size_t)loc->offset, &uo);
			if (!link) {
				e = -errno ? -errno : -EINVAL;
				snprintf(err, errlen, "cannot attach a %s to %s in %s (PID %d): %s%s",
					 dir ? "uretprobe" : "uprobe", si->label,
					 t->files[loc->file].path, (int)t->pid, strerror(-e),
					 e == -EPERM || e == -EACCES ?
						 " (per-probe perf links, as on kernels before 6.6, need "
						 "CAP_SYS_ADMIN: CAP_BPF and CAP_PERFMON are not enough)" : "");
				break;
			}
			p->links[p->n_links++] = link;
		}
	}
	while (e && p->n_links > before)
		bpf_link__destroy(p->links[--p->n_links]);
	if (!e) {
		p->sites[site] = true;
		p->layers[si->layer] = true;
	}
	return e;
}

/*
 * The state calls: they synchronize before their try (llama-context.cpp), so what a
 * backend throws there passes their return. Checked in de3ff815ea7d and b5640.
 */
static bool synchronizes_first(enum llmtap_site site)
{
	switch (site) {
	case SITE_CALL_SEQ_SAVE_FILE:
	case SITE_CALL_SEQ_LOAD_FILE:
	case SITE_CALL_SEQ_GET_DATA:
	case SITE_CALL_SEQ_SET_DATA:
	case SITE_CALL_SAVE_FILE:
	case SITE_CALL_LOAD_FILE:
		return true;
	default:
		return false;
	}
}

/*
 * The sites to probe: llama_decode, and every site found of a layer that has
 * what it needs (target_layer_found); of a layer's ANY sites only the first
 * found, in table order, which gets LLMTAP_COOKIE_SAMPLE in its cookie. One
 * ANY site serves a second job and is probed even when not chosen:
 * llama_get_logits_ith is also a synchronizing call (llmtap_sites.def).
 */
static void want_sites(const struct target *t, bool no_sync, struct site_want want[SITE_MAX])
{
	bool any_taken[LAYER_MAX] = { false };

	for (int site = 0; site < SITE_MAX; site++) {
		const struct site_info *si = site_info(site);

		want[site].cookie = (__u64)site;
		want[site].entry_only = false;
		want[site].on = t->sites[site].found &&
				(site == SITE_DECODE || target_layer_found(t, si->layer));
		if (want[site].on && si->need == NEED_ANY) {
			if (!any_taken[si->layer])
				want[site].cookie |= LLMTAP_COOKIE_SAMPLE;
			else
				want[site].on = site == SITE_SAMPLE_LOGITS;
			any_taken[si->layer] = true;
		}
		/* where a call that synchronizes may throw, no return probe on one that
		 * synchronizes: the sync sites are left off, llama_get_logits_ith keeps its
		 * sampling entry, common_sampler_sample (it reads the logits) is recorded at
		 * entry, as llama_sampler_sample always is */
		if (want[site].on && si->session && no_sync) {
			want[site].on = want[site].cookie & LLMTAP_COOKIE_SAMPLE;
			want[site].entry_only = true;
		}
		if (want[site].on && site == SITE_SAMPLE_COMMON && no_sync) {
			want[site].entry_only = true;
			want[site].cookie |= LLMTAP_COOKIE_ENTRY_ONLY;
		}
		if (want[site].on && no_sync && synchronizes_first(site))
			want[site].on = false; /* their result is their return's: none without */
	}
}

int probes_open(const struct target *t, const struct probes_opts *opts, probes_event_fn fn,
		void *arg, struct probes **out, char *err, size_t errlen)
{
	struct site_want want[SITE_MAX];
	struct probes *p;
	int ret;

	*out = NULL;
	probes_libbpf_log(opts->verbose);

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
	p->skel->data->task_n_predict_off = opts->task_n_predict_off;
	p->skel->data->slot_stop_off = opts->slot_stop_off;
	p->skel->data->sync_on = !opts->no_sync;
	p->multi = uprobe_multi_supported();
	if (p->multi) {
		bpf_program__set_expected_attach_type(p->skel->progs.probe_enter, BPF_TRACE_UPROBE_MULTI);
		bpf_program__set_expected_attach_type(p->skel->progs.probe_exit, BPF_TRACE_UPROBE_MULTI);
	}
	p->session = uprobe_session_supported();
	if (p->session)
		bpf_program__set_expected_attach_type(p->skel->progs.probe_session,
						      BPF_TRACE_UPROBE_SESSION);
	else /* its kfunc needs the session attach type: not loaded at all */
		bpf_program__set_autoload(p->skel->progs.probe_session, false);
	ret = llmtap_bpf__load(p->skel);
	if (ret) {
		snprintf(err, errlen,
			 "the kernel refused llmtap's BPF programs: %s (run with --verbose for the verifier log)",
			 strerror(-ret));
		goto cleanup;
	}
	want_sites(t, opts->no_sync, want);
	/* the file with llama_decode first: it must attach, the others may fail */
	ret = p->multi ? attach_file_multi(p, t, t->sites[SITE_DECODE].locs[0].file, want, err, errlen)
		       : attach_site_perf(p, t, SITE_DECODE, want, err, errlen);
	if (ret)
		goto cleanup;
	for (int i = 0; i < (p->multi ? t->n_files : SITE_MAX); i++) {
		char why[512];

		if (p->multi ? i == t->sites[SITE_DECODE].locs[0].file : (i == SITE_DECODE || !want[i].on))
			continue;
		if (p->multi ? attach_file_multi(p, t, i, want, why, sizeof(why))
			     : attach_site_perf(p, t, i, want, why, sizeof(why)))
			fprintf(stderr, "llmtap: warning: %s; going on without it\n", why);
	}
	for (int l = 0; l < LAYER_MAX; l++) {
		size_t used = strlen(p->attached);

		if (p->layers[l])
			snprintf(p->attached + used, sizeof(p->attached) - used, "%s%s",
				 used ? "," : "", site_layer_name(l));
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
	int n;

	p->polled = 0;
	n = ring_buffer__poll(p->rb, timeout_ms);
	if (n == BUDGET_SPENT && p->polled >= POLL_BUDGET)
		return p->polled;
	if (n < 0)
		return n;
	/* records written without a wakeup are drained here */
	n = ring_buffer__consume(p->rb);
	if (n == BUDGET_SPENT && p->polled >= POLL_BUDGET)
		return p->polled;
	return n < 0 ? n : p->polled;
}

int probes_drain(struct probes *p)
{
	int n, total = 0;

	/* bounded: a target still writing cannot keep its session from closing */
	for (int i = 0; i < 64 && (n = probes_poll(p, 0)) > 0; i++)
		total += n;
	return total;
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

void probes_libbpf_log(bool verbose)
{
	libbpf_verbose = verbose;
	libbpf_set_print(libbpf_print);
}

int probes_fd(const struct probes *p)
{
	return ring_buffer__epoll_fd(p->rb);
}

const char *probes_attached(const struct probes *p)
{
	return p->attached;
}

void probes_set_layout(struct probes *p, int task_n_predict_off, int slot_stop_off)
{
	/* the loaded programs read these (the skeleton's mapping of their .data) */
	p->skel->data->task_n_predict_off = task_n_predict_off;
	p->skel->data->slot_stop_off = slot_stop_off;
}

bool probes_site_attached(const struct probes *p, enum llmtap_site site)
{
	return site < SITE_MAX && p->sites[site];
}

unsigned int probes_layer_mask(const struct probes *p)
{
	unsigned int mask = 0;

	for (int l = 0; l < LAYER_MAX; l++)
		if (p->layers[l])
			mask |= 1u << l;
	return mask;
}


void probes_close(struct probes *p)
{
	if (!p)
		return;
	ring_buffer__free(p->rb);
	for (int i = p->n_link_fds - 1; i >= 0; i--)
		close(p->link_fds[i]);
	for (int i = p->n_links - 1; i >= 0; i--)
		bpf_link__destroy(p->links[i]);
	llmtap_bpf__destroy(p->skel);
	free(p);
}
