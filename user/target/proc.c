// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/proc.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

int proc_parse_maps_line(const char *line, struct proc_map *m)
{
	int path_at = -1;

	memset(m, 0, sizeof(*m));
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n",
		   &m->start, &m->end, m->perms, &m->offset, &m->dev_major,
		   &m->dev_minor, &m->inode, &path_at) < 7 || path_at < 0)
		return -EINVAL;
	if (m->end < m->start || strlen(m->perms) != 4)
		return -EINVAL;
	snprintf(m->path, sizeof(m->path), "%s", line + path_at);
	m->path[strcspn(m->path, "\n")] = '\0';
	return 0;
}

int proc_for_each_map(pid_t pid, proc_map_cb cb, void *arg)
{
	struct proc_map m;
	char fn[64], line[PATH_MAX + 128];
	FILE *f;
	int ret = 0;

	snprintf(fn, sizeof(fn), "/proc/%d/maps", (int)pid);
	f = fopen(fn, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (proc_parse_maps_line(line, &m))
			continue;
		ret = cb(&m, arg);
		if (ret)
			break;
	}
	fclose(f);
	return ret;
}

int proc_check(pid_t pid)
{
	if (pid <= 0)
		return -EINVAL;
	if (kill(pid, 0) && errno == ESRCH)
		return -ESRCH;
	return 0;
}

void proc_comm(pid_t pid, char *buf, size_t len)
{
	char fn[64];
	FILE *f;

	snprintf(buf, len, "?");
	snprintf(fn, sizeof(fn), "/proc/%d/comm", (int)pid);
	f = fopen(fn, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

int proc_root_path(pid_t pid, const char *path, char *out, size_t len)
{
	int n = snprintf(out, len, "/proc/%d/root%s", (int)pid, path);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int proc_map_file(pid_t pid, const struct proc_map *m, char *path, size_t plen, char *host,
		  size_t hlen)
{
	static const char deleted[] = " (deleted)";
	size_t len = strlen(m->path), dl = sizeof(deleted) - 1;

	if (len > dl && !strcmp(m->path + len - dl, deleted)) {
		/* gone from the file system: reach it through map_files */
		snprintf(path, plen, "%.*s", (int)(len - dl), m->path);
		snprintf(host, hlen, "/proc/%d/map_files/%llx-%llx", (int)pid,
			 (unsigned long long)m->start, (unsigned long long)m->end);
		return 0;
	}
	snprintf(path, plen, "%s", m->path);
	return proc_root_path(pid, m->path, host, hlen);
}

uint64_t proc_start_time(pid_t pid)
{
	char fn[64], buf[1024], *p;
	unsigned long long start = 0;
	size_t n;
	FILE *f;

	snprintf(fn, sizeof(fn), "/proc/%d/stat", (int)pid);
	f = fopen(fn, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after the comm's closing parenthesis: state (field 3) ... starttime (field 22) */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			 "%*d %*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

void proc_exe(pid_t pid, char *buf, size_t len)
{
	char fn[64];
	ssize_t n;

	snprintf(fn, sizeof(fn), "/proc/%d/exe", (int)pid);
	n = readlink(fn, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
}

/* The number after "key:" in /proc/PID/status, or -1. */
static long long status_value(pid_t pid, const char *key)
{
	char fn[64], line[256];
	size_t klen = strlen(key);
	long long v = -1;
	FILE *f;

	snprintf(fn, sizeof(fn), "/proc/%d/status", (int)pid);
	f = fopen(fn, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			if (sscanf(line + klen + 1, "%lld", &v) != 1)
				v = -1;
			break;
		}
	}
	fclose(f);
	return v;
}

uint64_t proc_rss_bytes(pid_t pid)
{
	long long kib = status_value(pid, "VmRSS");

	return kib > 0 ? (uint64_t)kib * 1024 : 0;
}

pid_t proc_tgid(pid_t pid)
{
	long long tgid = status_value(pid, "Tgid");

	return tgid > 0 ? (pid_t)tgid : pid;
}
