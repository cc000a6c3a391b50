// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/version.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "target/proc.h"

bool version_of_library(const char *path, char *out, size_t len)
{
	const char *base = strrchr(path, '/'), *v;
	size_t n;

	base = base ? base + 1 : path;
	v = strstr(base, ".so.");
	if (!v || strncmp(base, "libllama", 8))
		return false;
	v += 4;
	n = strspn(v, "0123456789.");
	if (!n || v[n] || n >= len || !isdigit((unsigned char)v[0]))
		return false;
	memcpy(out, v, n);
	out[n] = '\0';
	return true;
}

bool version_commit(const char *s, size_t n, char *out, size_t len)
{
	size_t k = 0;

	while (k < n && k < 12 && isxdigit((unsigned char)s[k]))
		k++;
	if (k < 4 || k >= len)
		return false;
	for (size_t i = 0; i < k; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[k] = '\0';
	return true;
}

void version_describe(struct llama_version *v)
{
	char build[48] = "";

	if (v->build >= 0 && v->commit[0])
		snprintf(build, sizeof(build), "b%d-%s", v->build, v->commit);
	else if (v->commit[0])
		snprintf(build, sizeof(build), "%s", v->commit);
	else if (v->build >= 0)
		snprintf(build, sizeof(build), "b%d", v->build);
	if (build[0] && v->library[0])
		snprintf(v->text, sizeof(v->text), "%s (libllama %s)", build, v->library);
	else if (build[0])
		snprintf(v->text, sizeof(v->text), "%s", build);
	else if (v->library[0])
		snprintf(v->text, sizeof(v->text), "libllama %s", v->library);
	else
		snprintf(v->text, sizeof(v->text), "unknown");
}

struct find_addr {
	const char *path;
	uint64_t offset;
	uint64_t addr; /* 0: not mapped */
};

/* The mapping of the file at path that holds file offset a->offset. */
static int find_mapping(const struct proc_map *m, void *arg)
{
	struct find_addr *a = arg;
	size_t n = strlen(a->path);

	if (strncmp(m->path, a->path, n) || (m->path[n] && strcmp(m->path + n, " (deleted)")))
		return 0;
	if (a->offset < m->offset || a->offset - m->offset >= m->end - m->start)
		return 0;
	a->addr = m->start + (a->offset - m->offset);
	return 1;
}

/* Read len bytes at the target's address addr; false when it cannot be read whole. */
static bool read_target(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };

	return addr && process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len;
}

static uint64_t object_addr(const struct target *t, enum target_info_obj which)
{
	struct find_addr a = { t->info[which].path, t->info[which].offset, 0 };

	if (!t->info[which].found || proc_for_each_map(t->pid, find_mapping, &a) <= 0)
		return 0;
	return a.addr;
}

void target_version(const struct target *t, struct llama_version *v)
{
	uint64_t addr, str = 0;
	int32_t build;
	char commit[16];

	memset(v, 0, sizeof(*v));
	v->build = -1;
	if (t->n_files)
		version_of_library(target_core(t)->path, v->library, sizeof(v->library));
	/* from the running process: the values the loader relocated, bounded reads */
	addr = object_addr(t, INFO_BUILD_NUMBER);
	if (read_target(t->pid, addr, &build, sizeof(build)) && build >= 0)
		v->build = build;
	addr = object_addr(t, INFO_COMMIT);
	if (read_target(t->pid, addr, &str, sizeof(str)) && str) {
		size_t n = 0;

		/* a page boundary may end the string early: read byte runs until one fails */
		while (n < sizeof(commit) && read_target(t->pid, str + n, commit + n, 1) && commit[n])
			n++;
		version_commit(commit, n, v->commit, sizeof(v->commit));
	}
	version_describe(v);
}
