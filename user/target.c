// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfsym.h"
#include "proc.h"

#define MAX_SEARCHED 64

static const char *const sym_names[TSYM_MAX] = {
	[TSYM_DECODE] = "llama_decode",
	[TSYM_ENCODE] = "llama_encode",
};

const char *target_sym_name(enum target_sym s)
{
	return s < TSYM_MAX ? sym_names[s] : "?";
}

struct search {
	struct target *t;
	char exe[PATH_MAX];
	char searched[MAX_SEARCHED][PATH_MAX];
	int n_searched;
	int n_skipped;        /* more files than MAX_SEARCHED */
	char stripped[PATH_MAX];
	int unreadable;
	int last_err;
};

static bool already_searched(const struct search *s, const char *path)
{
	for (int i = 0; i < s->n_searched; i++)
		if (!strcmp(s->searched[i], path))
			return true;
	return false;
}

static int check_mapping(const struct proc_map *m, void *arg)
{
	static const char deleted[] = " (deleted)";
	struct search *s = arg;
	struct target *t = s->t;
	struct elf_sym_req reqs[TSYM_MAX];
	struct elf_file_info info;
	char path[PATH_MAX], host[PATH_MAX];
	size_t len;
	int err, i;

	if (m->perms[2] != 'x' || m->path[0] != '/')
		return 0;
	snprintf(path, sizeof(path), "%s", m->path);
	len = strlen(path);
	if (len > sizeof(deleted) - 1 && !strcmp(path + len - (sizeof(deleted) - 1), deleted)) {
		/* the file is gone from the file system: reach it through map_files */
		path[len - (sizeof(deleted) - 1)] = '\0';
		snprintf(host, sizeof(host), "/proc/%d/map_files/%llx-%llx", (int)t->pid,
			 (unsigned long long)m->start, (unsigned long long)m->end);
	} else if (proc_root_path(t->pid, path, host, sizeof(host))) {
		return 0;
	}
	if (already_searched(s, path))
		return 0;
	if (s->n_searched < MAX_SEARCHED)
		snprintf(s->searched[s->n_searched++], PATH_MAX, "%s", path);
	else
		s->n_skipped++;

	for (i = 0; i < TSYM_MAX; i++)
		reqs[i].name = sym_names[i];
	err = elf_resolve(host, reqs, TSYM_MAX, &info);
	if (err) {
		s->unreadable++;
		s->last_err = err;
		return 0;
	}
	if (!reqs[TSYM_DECODE].found) {
		if (!info.has_symtab && !strcmp(path, s->exe))
			snprintf(s->stripped, sizeof(s->stripped), "%s", path);
		return 0;
	}
	snprintf(t->lib_path, sizeof(t->lib_path), "%s", path);
	snprintf(t->host_path, sizeof(t->host_path), "%s", host);
	t->in_executable = !strcmp(path, s->exe);
	for (i = 0; i < TSYM_MAX; i++) {
		t->found[i] = reqs[i].found;
		t->offset[i] = reqs[i].offset;
	}
	return 1;
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
	if (s->unreadable && off < errlen)
		snprintf(err + off, errlen - off, "; %d file(s) could not be read (%s)",
			 s->unreadable, strerror(-s->last_err));
}

int target_find(pid_t pid, struct target *t, char *err, size_t errlen)
{
	struct search *s;
	char link[64];
	ssize_t n;
	int ret;

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	ret = proc_check(pid);
	if (ret) {
		snprintf(err, errlen, "no process with PID %d", (int)pid);
		return ret;
	}
	proc_comm(pid, t->comm, sizeof(t->comm));

	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->t = t;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, s->exe, sizeof(s->exe) - 1);
	s->exe[n > 0 ? n : 0] = '\0';

	ret = proc_for_each_map(pid, check_mapping, s);
	if (ret == 1) {
		ret = 0;
	} else if (ret < 0) {
		snprintf(err, errlen, "cannot read /proc/%d/maps: %s%s", (int)pid, strerror(-ret),
			 ret == -EACCES || ret == -EPERM ? " (run as root)" : "");
	} else if (proc_check(pid)) {
		snprintf(err, errlen, "PID %d exited while llmtap was looking at it", (int)pid);
		ret = -ESRCH;
	} else {
		explain_not_found(s, err, errlen);
		ret = -ENOENT;
	}
	free(s);
	return ret;
}
