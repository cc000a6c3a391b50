// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "target/elfsym.h"
#include "target/gguf.h"
#include "target/proc.h"

#define MAX_SEARCHED 64
#define MAX_IDS 512 /* distinct executable files a process maps, at most */
/* files read per search: a process mapping thousands costs a bounded time */
#define MAX_READ MAX_IDS
#define MAX_ALTS SITE_MAX_ALTS
#define N_SITE_REQS (SITE_MAX * MAX_ALTS)

const struct target_file *target_core(const struct target *t)
{
	return &t->files[t->sites[SITE_DECODE].locs[0].file];
}

bool target_layer_found(const struct target *t, enum llmtap_layer l)
{
	bool any_needed = false, any_found = false;

	if (l >= LAYER_MAX)
		return false;
	for (int i = 0; i < SITE_MAX; i++) {
		const struct site_info *si = site_info(i);

		if (si->layer != l)
			continue;
		if (si->need == NEED_REQ && !t->sites[i].found)
			return false;
		if (si->need == NEED_ANY) {
			any_needed = true;
			any_found |= t->sites[i].found;
		}
	}
	return !any_needed || any_found;
}

struct search {
	struct target *t;
	char exe[PATH_MAX];
	char searched[MAX_SEARCHED][PATH_MAX];
	int n_searched;
	int n_skipped;        /* more files than MAX_SEARCHED */
	int n_read;           /* files opened and read (<= MAX_READ) */
	char stripped[PATH_MAX];
	int unreadable;       /* could not be read, for a reason not worth a warning */
	int last_err;
	struct proc_skips skips; /* refused: what a hostile target does */
	struct elf_sym_req reqs[SITE_MAX * MAX_ALTS + INFO_MAX]; /* the sites', then INFO_* */
	/* files searched, by device and inode: one file mapped at two paths (a bind
	 * mount, a container's view and the host's) is searched and probed once */
	struct file_id {
		uint64_t ino;
		unsigned int major, minor;
	} ids[MAX_IDS];
	int n_ids;
};

/* True when m's file was searched already; else remembers it. */
static bool seen_inode(struct search *s, const struct proc_map *m)
{
	for (int i = 0; i < s->n_ids; i++)
		if (s->ids[i].ino == m->inode && s->ids[i].major == m->dev_major &&
		    s->ids[i].minor == m->dev_minor)
			return true;
	if (s->n_ids < MAX_IDS)
		s->ids[s->n_ids++] = (struct file_id){ m->inode, m->dev_major, m->dev_minor };
	return false;
}

static bool already_searched(const struct search *s, const char *path)
{
	for (int i = 0; i < s->n_searched; i++)
		if (!strcmp(s->searched[i], path))
			return true;
	return false;
}

/* Record every site this file defines (per site, the first of its names found here). */
static bool take_sites(struct search *s, const char *path, const char *host)
{
	struct target *t = s->t;
	int file = -1;
	bool any = false;

	for (int i = 0; i < SITE_MAX; i++) {
		struct target_site_locs *site = &t->sites[i];

		for (int a = 0; a < MAX_ALTS && site_info(i)->alts[a].symbol; a++) {
			const struct elf_sym_req *r = &s->reqs[i * MAX_ALTS + a];
			struct target_loc *loc;

			if (!r->found || site->n_locs >= TARGET_MAX_LOCS)
				continue;
			if (file < 0) {
				if (t->n_files >= TARGET_MAX_FILES)
					return any;
				file = t->n_files++;
				snprintf(t->files[file].path, PATH_MAX, "%s", path);
				snprintf(t->files[file].host, PATH_MAX, "%s", host);
			}
			loc = &site->locs[site->n_locs++];
			loc->file = file;
			loc->offset = r->offset;
			snprintf(loc->symbol, sizeof(loc->symbol), "%s", r->symbol);
			site->found = true;
			any = true;
			break;
		}
	}
	return any;
}

/* Remembers path among the files searched; false when it was already. */
static bool note_searched(struct search *s, const char *path)
{
	if (already_searched(s, path))
		return false;
	if (s->n_searched < MAX_SEARCHED)
		snprintf(s->searched[s->n_searched++], PATH_MAX, "%s", path);
	else
		s->n_skipped++;
	return true;
}

static void unreadable(struct search *s, int err, const char *path, const char *reason)
{
	if (proc_skip_told(err)) {
		proc_skips_add(&s->skips, err, path, reason);
		return;
	}
	s->unreadable++;
	s->last_err = err;
}

/*
 * Search one file (path: as the target sees it; host: how the kernel reaches it):
 * fd, the file proc_open_mapped checked, or -1 to open path itself (llmtap run's
 * files, which it chose itself from the loader's list).
 */
static void search_file(struct search *s, const char *path, const char *host, int fd)
{
	struct target *t = s->t;
	struct elf_file_info info;
	int err;

	if (!note_searched(s, path))
		return;
	err = fd >= 0 ? elf_resolve_fd(fd, s->reqs, ARRAY_SIZE(s->reqs), &info) :
			elf_resolve(path, s->reqs, ARRAY_SIZE(s->reqs), &info);
	if (err) {
		unreadable(s, err, path, elf_strerror(err));
		return;
	}
	if (!t->sites[SITE_DECODE].found && !s->reqs[SITE_DECODE * MAX_ALTS].found &&
	    !info.has_symtab && !strcmp(path, s->exe))
		snprintf(s->stripped, sizeof(s->stripped), "%s", path);
	for (int i = 0; i < INFO_MAX; i++) {
		const struct elf_sym_req *r = &s->reqs[N_SITE_REQS + i];

		if (r->found && !t->info[i].found) {
			t->info[i].found = true;
			t->info[i].offset = r->offset;
			snprintf(t->info[i].path, sizeof(t->info[i].path), "%s", path);
		}
	}
	if (take_sites(s, path, host) && t->sites[SITE_DECODE].found &&
	    t->sites[SITE_DECODE].locs[0].file == t->n_files - 1 && !strcmp(path, s->exe))
		t->in_executable = true;
}

/* m's path as the target sees it, without " (deleted)" */
static void mapped_path(const struct proc_map *m, char *out, size_t len)
{
	static const char deleted[] = " (deleted)";
	size_t n = strlen(m->path), dl = sizeof(deleted) - 1;

	if (n > dl && !strcmp(m->path + n - dl, deleted))
		n -= dl;
	snprintf(out, len, "%.*s", (int)n, m->path);
}

static int check_mapping(const struct proc_map *m, void *arg)
{
	struct search *s = arg;
	struct target *t = s->t;
	char path[PATH_MAX], host[PATH_MAX], why[256];
	size_t len = strlen(m->path);
	int fd;

	if (!t->model[0] && len > 5 && !strcmp(m->path + len - 5, ".gguf"))
		snprintf(t->model, sizeof(t->model), "%s", m->path); /* llama.cpp mmaps its model */
	if (m->perms[2] != 'x' || m->path[0] != '/' || !m->inode)
		return 0;
	if (seen_inode(s, m))
		return 0;
	mapped_path(m, path, sizeof(path));
	if (already_searched(s, path))
		return 0;
	if (s->n_read >= MAX_READ) {
		note_searched(s, path); /* told as "and N more", not read */
		return 0;
	}
	s->n_read++;
	/* the file the target maps, never whatever its path names now */
	fd = proc_open_mapped(t->pid, m, host, sizeof(host), why, sizeof(why));
	if (fd < 0) {
		note_searched(s, path);
		unreadable(s, fd, path, why);
		return 0;
	}
	search_file(s, path, host, fd);
	close(fd);
	return 0;
}

static void explain_not_found(const struct search *s, char *err, size_t errlen)
{
	const struct target *t = s->t;
	size_t off;
	int i;

	off = (size_t)snprintf(err, errlen,
			       "no llama.cpp in PID %d (%s): none of its %d mapped executable files defines llama_decode (searched:",
			       (int)t->pid, t->comm, s->n_searched + s->n_skipped);
	for (i = 0; i < s->n_searched && off < errlen; i++)
		off += (size_t)snprintf(err + off, errlen - off, "%s %s", i ? "," : "",
					s->searched[i]);
	if (s->n_skipped && off < errlen)
		off += (size_t)snprintf(err + off, errlen - off, ", and %d more", s->n_skipped);
	if (off < errlen)
		off += (size_t)snprintf(err + off, errlen - off, ")");
	if (s->stripped[0] && off < errlen)
		off += (size_t)snprintf(err + off, errlen - off,
					"; %s is stripped (no .symtab): if llama.cpp is linked into it statically, trace an unstripped build",
					s->stripped);
	if (s->skips.n && off < errlen) {
		char line[512];

		proc_skips_line(&s->skips, line, sizeof(line));
		off += (size_t)snprintf(err + off, errlen - off, "; %s", line);
	}
	if (s->unreadable && off < errlen)
		snprintf(err + off, errlen - off, "; %d file(s) could not be read (%s)%s",
			 s->unreadable, strerror(-s->last_err),
			 s->last_err == -EACCES || s->last_err == -EPERM ?
				 ": reading another user's (or a more privileged) process's files through "
				 "/proc/PID/root needs CAP_SYS_PTRACE, and files closed to others "
				 "CAP_DAC_READ_SEARCH" : "");
}

static struct search *search_new(pid_t pid, struct target *t, const char *exe)
{
	struct search *s;

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->t = t;
	for (int i = 0; i < SITE_MAX; i++)
		for (int a = 0; a < MAX_ALTS; a++) /* "" never matches */
			s->reqs[i * MAX_ALTS + a].name = site_info(i)->alts[a].symbol ?
								 site_info(i)->alts[a].symbol : "";
	s->reqs[N_SITE_REQS + INFO_BUILD_NUMBER] =
		(struct elf_sym_req){ .name = "LLAMA_BUILD_NUMBER", .object = true };
	s->reqs[N_SITE_REQS + INFO_COMMIT] =
		(struct elf_sym_req){ .name = "LLAMA_COMMIT", .object = true };
	snprintf(s->exe, sizeof(s->exe), "%s", exe);
	return s;
}

int target_find(pid_t pid, struct target *t, char *err, size_t errlen)
{
	struct search *s;
	char exe[PATH_MAX];
	int ret;

	ret = proc_check(pid);
	if (ret) {
		memset(t, 0, sizeof(*t));
		snprintf(err, errlen, "no process with PID %d", (int)pid);
		return ret;
	}
	proc_exe(pid, exe, sizeof(exe));
	s = search_new(pid, t, exe);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	proc_comm(pid, t->comm, sizeof(t->comm));

	ret = proc_for_each_map(pid, check_mapping, s);
	if (ret < 0) {
		snprintf(err, errlen, "cannot read /proc/%d/maps: %s%s", (int)pid, strerror(-ret),
			 ret == -EACCES || ret == -EPERM ? " (run as root)" : "");
	} else if (proc_check(pid)) {
		snprintf(err, errlen, "PID %d exited while llmtap was looking at it", (int)pid);
		ret = -ESRCH;
	} else if (!t->sites[SITE_DECODE].found) {
		explain_not_found(s, err, errlen);
		ret = -ENOENT;
	}
	free(s);
	return ret;
}

int target_find_files(pid_t pid, const char *comm, const char *const *paths, int n,
		      struct target *t, char *err, size_t errlen)
{
	struct search *s = search_new(pid, t, n > 0 ? paths[0] : "");
	int ret = 0;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(t->comm, sizeof(t->comm), "%s", comm);
	for (int i = 0; i < n; i++)
		search_file(s, paths[i], paths[i], -1);
	if (!t->sites[SITE_DECODE].found) {
		explain_not_found(s, err, errlen);
		ret = -ENOENT;
	}
	free(s);
	return ret;
}

struct model_find {
	const char *model;
	struct proc_map m;
	bool found;
};

static int find_model(const struct proc_map *m, void *arg)
{
	struct model_find *f = arg;

	if (strcmp(m->path, f->model))
		return 0;
	f->m = *m;
	f->found = true;
	return 1;
}

int target_model_read(pid_t pid, const char *model, struct gguf_info *info,
		      struct gguf_vocab *vocab, char *err, size_t errlen)
{
	struct model_find *f = calloc(1, sizeof(*f));
	int fd, ret;

	gguf_vocab_free(vocab); /* empty until read (an earlier read's freed) */
	if (err && errlen)
		err[0] = '\0';
	if (!f)
		return -ENOMEM;
	f->model = model;
	if (proc_for_each_map(pid, find_model, f) <= 0 || !f->found) {
		free(f);
		return -ENOENT;
	}
	fd = proc_open_mapped(pid, &f->m, NULL, 0, err, errlen);
	free(f);
	if (fd < 0)
		return fd;
	ret = gguf_read_model_fd(fd, info, vocab, err, errlen);
	close(fd);
	return ret;
}
