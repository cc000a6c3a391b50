// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

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

/* ---- a target's mapped files, opened as mapped ---- */

static const char deleted_sfx[] = " (deleted)";

/* m's path without " (deleted)" into out; true when it had it. */
static bool map_path(const struct proc_map *m, char *out, size_t len)
{
	size_t n = strlen(m->path), dl = sizeof(deleted_sfx) - 1;
	bool deleted = n > dl && !strcmp(m->path + n - dl, deleted_sfx);

	snprintf(out, len, "%.*s", (int)(deleted ? n - dl : n), m->path);
	return deleted;
}

const char *proc_shown_path(const char *path, char *buf, size_t len)
{
	size_t i, n = strlen(path), keep = len > 4 ? len - 4 : 0;

	if (!len)
		return "";
	for (i = 0; i < n && i < len - 1; i++) {
		unsigned char c = (unsigned char)path[i];

		/* no terminal control of any kind (C0, DEL, and C1 as UTF-8 or not) */
		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[i] = '\0';
	if (n > len - 1 && keep)
		snprintf(buf + keep, len - keep, "...");
	return buf;
}

static const char *file_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
		return "a FIFO";
	case S_IFLNK:
		return "a symbolic link";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFSOCK:
		return "a socket";
	case S_IFDIR:
		return "a directory";
	default:
		return "not a regular file";
	}
}

__attribute__((format(printf, 4, 5)))
static int refuse(int err, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* path resolved inside pid's root as the target would (no symlink, "..", or /proc
 * magic link out of it), the last component not followed: an O_PATH fd or -errno */
static int open_in_root(pid_t pid, const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	char fn[64];
	int root, fd;

	snprintf(fn, sizeof(fn), "/proc/%d/root", (int)pid);
	root = open(fn, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	if (fd < 0)
		fd = -errno;
	close(root);
	return fd;
}

struct self_find {
	uintptr_t addr;
	uint64_t inode;
	unsigned int major, minor;
	bool found;
};

static int find_self(const struct proc_map *m, void *arg)
{
	struct self_find *f = arg;

	if (m->start != f->addr)
		return 0;
	*f = (struct self_find){ f->addr, m->inode, m->dev_major, m->dev_minor, true };
	return 1;
}

/*
 * Whether fd's file is the one m maps. stat's device and inode first; when they
 * differ, how the kernel shows fd's file in a mapping of our own: maps show the
 * superblock's device, which stat does not on a btrfs subvolume (nor, before
 * Linux 6.8, on overlayfs, whose maps showed the layer's file).
 */
static bool same_file(int fd, const struct stat *st, const struct proc_map *m)
{
	struct self_find f = { 0 };
	void *p;

	if (st->st_ino == m->inode && major(st->st_dev) == m->dev_major &&
	    minor(st->st_dev) == m->dev_minor)
		return true;
	p = mmap(NULL, 1, PROT_READ, MAP_PRIVATE, fd, 0); /* never touched */
	if (p == MAP_FAILED)
		return false;
	f.addr = (uintptr_t)p;
	proc_for_each_map(getpid(), find_self, &f);
	munmap(p, 1);
	return f.found && f.inode == m->inode && f.major == m->dev_major && f.minor == m->dev_minor;
}

int proc_open_mapped(pid_t pid, const struct proc_map *m, char *host, size_t hlen, char *why,
		     size_t whylen)
{
	char path[PATH_MAX], fn[96], self[64];
	struct stat st, st2;
	bool deleted, via_map_files;
	int pfd, fd;

	if (why && whylen)
		why[0] = '\0';
	if (host && hlen)
		host[0] = '\0';
	deleted = map_path(m, path, sizeof(path));
	if (path[0] != '/' || !m->inode)
		return refuse(-EINVAL, why, whylen, "not a mapped file");

	/* the file the mapping holds, whatever its path names now */
	snprintf(fn, sizeof(fn), "/proc/%d/map_files/%llx-%llx", (int)pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	pfd = open(fn, O_PATH | O_CLOEXEC);
	via_map_files = pfd >= 0;
	if (pfd < 0 && errno != EPERM && errno != EACCES)
		return refuse(-errno, why, whylen, "%s",
			      errno == ENOENT ? "no longer mapped" : strerror(errno));
	if (pfd < 0 && deleted)
		return refuse(-ENOENT, why, whylen, "deleted, and only /proc/PID/map_files "
			      "(CAP_SYS_ADMIN) reaches a deleted file");
	if (pfd < 0) { /* no CAP_SYS_ADMIN: the path, as the target itself resolves it */
		pfd = open_in_root(pid, path);
		if (pfd < 0)
			return refuse(pfd, why, whylen, "%s", strerror(-pfd));
	}
	if (fstat(pfd, &st)) {
		int err = -errno;

		close(pfd);
		return refuse(err, why, whylen, "%s", strerror(-err));
	}
	if (!S_ISREG(st.st_mode)) { /* never opened: no FIFO, device or socket open */
		close(pfd);
		if (via_map_files)
			return refuse(-ENODEV, why, whylen, "%s, not a regular file",
				      file_kind(st.st_mode));
		return refuse(-ESTALE, why, whylen, "%s at that path, not the file it maps",
			      file_kind(st.st_mode));
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
	fd = open(self, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	close(pfd);
	if (fd < 0)
		return refuse(-errno, why, whylen, "%s", strerror(errno));
	if (fstat(fd, &st2) || !S_ISREG(st2.st_mode) || st2.st_dev != st.st_dev ||
	    st2.st_ino != st.st_ino) {
		close(fd);
		return refuse(-ESTALE, why, whylen, "changed while llmtap opened it");
	}
	if (!same_file(fd, &st, m)) {
		close(fd);
		return refuse(-ESTALE, why, whylen, "another file at that path (device %u:%u inode "
			      "%llu), not the file it maps (%x:%x inode %llu)",
			      major(st.st_dev), minor(st.st_dev), (unsigned long long)st.st_ino,
			      m->dev_major, m->dev_minor, (unsigned long long)m->inode);
	}
	if (host && hlen) {
		if (via_map_files)
			snprintf(host, hlen, "%s", fn);
		else if (proc_root_path(pid, path, host, hlen)) {
			close(fd);
			return refuse(-ENAMETOOLONG, why, whylen, "path too long");
		}
	}
	return fd;
}

bool proc_skip_told(int err)
{
	return err == -ESTALE || err == -EFBIG || err == -EIO;
}

void proc_skips_add(struct proc_skips *s, int err, const char *path, const char *reason)
{
	char shown[160];

	if (!proc_skip_told(err))
		return;
	if (!s->n++)
		snprintf(s->first, sizeof(s->first), "%s: %s",
			 proc_shown_path(path, shown, sizeof(shown)), reason);
}

void proc_skips_line(const struct proc_skips *s, char *buf, size_t len)
{
	if (!s->n)
		snprintf(buf, len, "%s", "");
	else if (s->n == 1)
		snprintf(buf, len, "skipped its mapped file %s", s->first);
	else
		snprintf(buf, len, "skipped %d of its mapped files, the first %s", s->n, s->first);
}

uint64_t proc_stat_start_time(const char *stat)
{
	unsigned long long start = 0;
	const char *p;

	/* after the comm's closing parenthesis: state (field 3) ... starttime (field 22) */
	p = strrchr(stat, ')');
	if (!p || p[1] != ' ' ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
		   "%*d %*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

uint64_t proc_start_time(pid_t pid)
{
	char fn[64], buf[1024];
	size_t n;
	FILE *f;

	snprintf(fn, sizeof(fn), "/proc/%d/stat", (int)pid);
	f = fopen(fn, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return proc_stat_start_time(buf);
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

ssize_t proc_read_small(pid_t pid, const char *name, char *buf, size_t len)
{
	char fn[64];
	size_t got = 0;
	ssize_t n = 0;
	int fd;

	if (!len)
		return -EINVAL;
	snprintf(fn, sizeof(fn), "/proc/%d/%s", (int)pid, name);
	fd = open(fn, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	if (n < 0)
		n = -errno;
	close(fd);
	buf[got] = '\0';
	return n < 0 && !got ? n : (ssize_t)got;
}

pid_t proc_stat_ppid(const char *stat)
{
	const char *p = strrchr(stat, ')');
	int ppid;

	/* after the comm's closing parenthesis: state (field 3), ppid (field 4) */
	if (!p || p[1] != ' ' || sscanf(p + 2, "%*c %d", &ppid) != 1 || ppid < 0)
		return 0;
	return (pid_t)ppid;
}

pid_t proc_ppid(pid_t pid)
{
	char buf[1024];

	if (proc_read_small(pid, "stat", buf, sizeof(buf)) <= 0)
		return 0;
	return proc_stat_ppid(buf);
}

bool proc_descends_from(pid_t pid, pid_t root)
{
	for (int depth = 0; depth < 64 && pid > 1; depth++) {
		pid = proc_ppid(pid);
		if (pid == root)
			return true;
	}
	return false;
}

int proc_children(pid_t pid, pid_t *out, int max)
{
	char dirname[64], fn[64], buf[4096];
	bool any = false;
	struct dirent *de;
	int n = 0;
	DIR *dir;

	snprintf(dirname, sizeof(dirname), "/proc/%d/task", (int)pid);
	dir = opendir(dirname);
	if (!dir)
		return -ENOENT;
	while ((n < max || !any) && (de = readdir(dir))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end || tid <= 0)
			continue;
		snprintf(fn, sizeof(fn), "task/%ld/children", tid);
		if (proc_read_small(pid, fn, buf, sizeof(buf)) < 0)
			continue; /* the thread ended meanwhile, or no such file */
		any = true;
		for (char *p = buf; n < max; p = end) {
			long child = strtol(p, &end, 10);

			if (end == p || child <= 0)
				break;
			out[n++] = (pid_t)child;
		}
	}
	closedir(dir);
	return any ? n : -ENOENT;
}
