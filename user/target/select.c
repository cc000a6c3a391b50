// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/select.h"

#include <dirent.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "target/proc.h"

#define MAX_LISTEN 64

static bool glob_any(const char *const *globs, int n, const char *a, const char *b)
{
	for (int i = 0; i < n; i++)
		if ((a[0] && !fnmatch(globs[i], a, 0)) || (b[0] && !fnmatch(globs[i], b, 0)))
			return true;
	return false;
}

static bool cgroup_match(const struct selector *s, pid_t pid)
{
	char fn[64], line[4096];
	bool hit = false;
	FILE *f;

	snprintf(fn, sizeof(fn), "/proc/%d/cgroup", (int)pid);
	f = fopen(fn, "re");
	if (!f)
		return false;
	while (!hit && fgets(line, sizeof(line), f)) {
		/* hierarchy-ID:controllers:path */
		char *path = strchr(line, ':');

		path = path ? strchr(path + 1, ':') : NULL;
		if (!path)
			continue;
		path++;
		path[strcspn(path, "\n")] = '\0';
		hit = glob_any(s->cgroup, s->n_cgroup, path, "");
	}
	fclose(f);
	return hit;
}

bool select_parse_listen(const char *line, unsigned int *port, uint64_t *inode)
{
	char local[64], remote[64], *colon;
	unsigned int st;
	unsigned long long ino;

	/* sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode */
	if (sscanf(line, " %*[0-9]: %63s %63s %x %*s %*s %*s %*u %*u %llu", local, remote, &st,
		   &ino) != 4 || st != 0x0A) /* TCP_LISTEN */
		return false;
	colon = strrchr(local, ':');
	if (!colon)
		return false;
	*port = (unsigned int)strtoul(colon + 1, NULL, 16);
	*inode = ino;
	return true;
}

/* The inodes of the listening sockets on the wanted ports in pid's network namespace. */
static int listening_inodes(const struct selector *s, pid_t pid, uint64_t *inodes, int max)
{
	static const char *const files[] = { "tcp", "tcp6" };
	int n = 0;

	for (size_t i = 0; i < 2; i++) {
		char fn[64], line[512];
		FILE *f;

		snprintf(fn, sizeof(fn), "/proc/%d/net/%s", (int)pid, files[i]);
		f = fopen(fn, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f) && n < max) {
			unsigned int port;
			uint64_t ino;

			if (!select_parse_listen(line, &port, &ino))
				continue;
			for (int k = 0; k < s->n_ports; k++)
				if (s->ports[k] == port)
					inodes[n++] = ino;
		}
		fclose(f);
	}
	return n;
}

/* Does pid own one of the sockets? (its fds are links "socket:[inode]") */
static bool owns_socket(pid_t pid, const uint64_t *inodes, int n)
{
	char dirname[64], fn[64 + sizeof(((struct dirent *)0)->d_name)], link[64];
	struct dirent *de;
	bool hit = false;
	DIR *dir;

	snprintf(dirname, sizeof(dirname), "/proc/%d/fd", (int)pid);
	dir = opendir(dirname);
	if (!dir)
		return false;
	while (!hit && (de = readdir(dir))) {
		unsigned long long ino;
		ssize_t len;

		snprintf(fn, sizeof(fn), "%s/%s", dirname, de->d_name);
		len = readlink(fn, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (sscanf(link, "socket:[%llu]", &ino) != 1)
			continue;
		for (int i = 0; i < n && !hit; i++)
			hit = inodes[i] == ino;
	}
	closedir(dir);
	return hit;
}

bool selector_match(const struct selector *s, pid_t pid, char *why, size_t len)
{
	char exe[PATH_MAX], comm[16];

	proc_exe(pid, exe, sizeof(exe));
	proc_comm(pid, comm, sizeof(comm));
	if (glob_any(s->exclude, s->n_exclude, exe, comm)) {
		snprintf(why, len, "excluded (--exclude)");
		return false;
	}
	if (s->n_exe && !glob_any(s->exe, s->n_exe, exe, comm)) {
		snprintf(why, len, "its executable %s matches no --exe", exe[0] ? exe : comm);
		return false;
	}
	if (s->n_cgroup && !cgroup_match(s, pid)) {
		snprintf(why, len, "its cgroup matches no --cgroup");
		return false;
	}
	if (s->n_ports) {
		uint64_t inodes[MAX_LISTEN];
		int k = listening_inodes(s, pid, inodes, MAX_LISTEN);

		if (!k || !owns_socket(pid, inodes, k)) {
			snprintf(why, len, "it listens on no --port (looked at again at each rescan)");
			return false;
		}
	}
	return true;
}
