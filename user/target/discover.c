// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/discover.h"

#include <bpf/libbpf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.skel.h"
#include "llmtap_events.h"
#include "target/elfsym.h"
#include "target/proc.h"

#define CACHE_SLOTS 4096 /* files remembered; the cache starts over when full */
#define EXEC_BATCH 256

struct file_key {
	uint64_t ino;
	unsigned int major, minor;
	bool used;
	bool llama;
};

struct discover {
	struct exec_bpf *skel;
	struct ring_buffer *rb;
	pid_t *execs; /* filled by the ring buffer callback */
	int n_execs, max_execs;
	struct file_key cache[CACHE_SLOTS];
	int n_cached;
};

static int on_exec(void *arg, void *data, size_t size)
{
	struct discover *d = arg;
	const struct llmtap_exec_event *e = data;

	if (size < sizeof(*e) || d->n_execs >= d->max_execs)
		return 0; /* no room: the next rescan finds it */
	d->execs[d->n_execs++] = (pid_t)e->pid;
	return 0;
}

struct discover *discover_open(bool with_exec, char *err, size_t errlen)
{
	struct discover *d = calloc(1, sizeof(*d));
	int ret;

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!with_exec)
		return d;
	d->skel = exec_bpf__open_and_load();
	if (!d->skel) {
		snprintf(err, errlen, "cannot load the exec watcher: %s", strerror(errno));
		goto fail;
	}
	ret = exec_bpf__attach(d->skel);
	if (ret) {
		snprintf(err, errlen, "cannot attach to the sched_process_exec tracepoint: %s",
			 strerror(-ret));
		goto fail;
	}
	d->rb = ring_buffer__new(bpf_map__fd(d->skel->maps.execs), on_exec, d, NULL);
	if (!d->rb) {
		snprintf(err, errlen, "cannot read the exec watcher: %s", strerror(errno));
		goto fail;
	}
	return d;
fail:
	discover_close(d);
	return NULL;
}

int discover_fd(const struct discover *d)
{
	return d->rb ? ring_buffer__epoll_fd(d->rb) : -1;
}

int discover_execs(struct discover *d, pid_t *out, int max)
{
	if (!d->rb)
		return 0;
	d->execs = out;
	d->max_execs = max;
	d->n_execs = 0;
	ring_buffer__consume(d->rb);
	d->execs = NULL;
	return d->n_execs;
}

uint64_t discover_lost(const struct discover *d)
{
	return d->skel ? d->skel->bss->lost : 0;
}

int discover_list(pid_t *out, int max)
{
	DIR *dir = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!dir)
		return 0;
	while ((de = readdir(dir)) && n < max) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		out[n++] = (pid_t)pid;
	}
	closedir(dir);
	return n;
}

int discover_descendants(pid_t root, pid_t *out, int max)
{
	int n = proc_children(root, out, max), all;

	if (n == -ENOENT && !proc_check(root)) { /* no children files: the slow way */
		all = discover_list(out, max);
		n = 0;
		for (int i = 0; i < all; i++)
			if (proc_descends_from(out[i], root))
				out[n++] = out[i];
		return n;
	}
	/* breadth first: out[0..n) are listed, out[i]'s children go after them */
	for (int i = 0; n > 0 && i < n && n < max; i++) {
		int k = proc_children(out[i], out + n, max - n);

		n += k > 0 ? k : 0;
	}
	return n < 0 ? 0 : n;
}

static struct file_key *cache_slot(struct discover *d, const struct proc_map *m)
{
	uint64_t h = (m->inode ^ ((uint64_t)m->dev_major << 32 | m->dev_minor)) * 0x9e3779b97f4a7c15ull;

	for (unsigned int i = 0; i < CACHE_SLOTS; i++) {
		struct file_key *k = &d->cache[(h + i) % CACHE_SLOTS];

		if (!k->used || (k->ino == m->inode && k->major == m->dev_major &&
				 k->minor == m->dev_minor))
			return k;
	}
	return NULL;
}

/*
 * New files (not in the cache) read per look at a process: one that maps
 * thousands of executable files is looked at over several rescans, each bounded,
 * instead of stalling the daemon for seconds in one.
 */
#define NEW_FILES_PER_LOOK 64

struct probe_ctx {
	struct discover *d;
	pid_t pid;
	struct proc_skips skips;
	int new_files;
};

/* One mapping: does its file define llama_decode? (a non-zero return stops the walk) */
static int check_map(const struct proc_map *m, void *arg)
{
	struct probe_ctx *c = arg;
	struct discover *d = c->d;
	struct elf_sym_req req = { .name = "llama_decode" };
	struct elf_file_info info;
	struct file_key *k;
	char why[256];
	int fd, err;

	if (m->perms[2] != 'x' || m->path[0] != '/' || !m->inode)
		return 0;
	k = cache_slot(d, m);
	if (k && k->used)
		return k->llama;
	if (!k || d->n_cached >= CACHE_SLOTS * 3 / 4) { /* full: start over */
		memset(d->cache, 0, sizeof(d->cache));
		d->n_cached = 0;
		k = cache_slot(d, m);
	}
	if (++c->new_files > NEW_FILES_PER_LOOK)
		return -EAGAIN; /* the rest at the next look (what was read is cached) */
	/* the file the process maps, never whatever its path names now: a refusal is
	 * about this process's view of the file, so it is not cached (another process
	 * may map the same file from a path that is fine) */
	fd = proc_open_mapped(c->pid, m, NULL, 0, why, sizeof(why));
	if (fd < 0) {
		proc_skips_add(&c->skips, fd, m->path, why);
		return 0; /* unreadable now (it may be gone): tried again later */
	}
	err = elf_resolve_fd(fd, &req, 1, &info);
	close(fd);
	if (err) {
		proc_skips_add(&c->skips, err, m->path, elf_strerror(err));
		/* what the file holds (not an ELF file, too big, cut short while read):
		 * the same for every process that maps it, so remembered */
		if (err != -ENOEXEC && err != -EFBIG && err != -EIO)
			return 0;
	}
	*k = (struct file_key){ m->inode, m->dev_major, m->dev_minor, true, !err && req.found };
	d->n_cached++;
	return k->llama;
}

bool discover_has_llama(struct discover *d, pid_t pid, char *why, size_t whylen)
{
	struct probe_ctx c = { .d = d, .pid = pid };
	bool found = proc_for_each_map(pid, check_map, &c) > 0;

	if (why && whylen)
		proc_skips_line(&c.skips, why, whylen);
	return found;
}

void discover_close(struct discover *d)
{
	if (!d)
		return;
	ring_buffer__free(d->rb);
	exec_bpf__destroy(d->skel);
	free(d);
}
