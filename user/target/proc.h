/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Reading a process from /proc: existence, name, memory mappings, root. */
#ifndef LLMTAP_PROC_H
#define LLMTAP_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_map {
	uint64_t start;
	uint64_t end;
	uint64_t offset;
	uint64_t inode;
	unsigned int dev_major;
	unsigned int dev_minor;
	char perms[5];
	char path[PATH_MAX]; /* as the target sees it; "" for anonymous */
};

/* Parse one line of /proc/PID/maps. Returns 0 or -EINVAL. */
int proc_parse_maps_line(const char *line, struct proc_map *m);

/* Call cb for every mapping; stops early and returns cb's value when non-zero. */
typedef int (*proc_map_cb)(const struct proc_map *m, void *arg);
int proc_for_each_map(pid_t pid, proc_map_cb cb, void *arg);

/* 0 when the process exists, else -ESRCH (or another -errno). */
int proc_check(pid_t pid);

/* The task's comm (at most 15 chars); "?" when unreadable. */
void proc_comm(pid_t pid, char *buf, size_t len);

/* The process (thread group) a task id belongs to; pid itself when unreadable. */
pid_t proc_tgid(pid_t pid);

/* Resident memory of pid in bytes (VmRSS), 0 when unreadable. */
uint64_t proc_rss_bytes(pid_t pid);

/* A path inside the target's mount namespace, as reachable from ours (a string only:
 * to open a target's file, see proc_open_mapped). */
int proc_root_path(pid_t pid, const char *path, char *out, size_t len);
/*
 * Open the file a mapping of pid holds, as mapped, never by a path the target can
 * change: /proc/PID/map_files/START-END when llmtap may (CAP_SYS_ADMIN), else the
 * path resolved inside the target's root as it would resolve it (openat2 with
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, the last component not followed).
 * Only a regular file is opened (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY: a
 * FIFO, device or socket never is), and only when it is the mapping's device and
 * inode. Returns the fd, or -errno with a few words in why (without the path):
 * -ESTALE when the path names something else now (another file, a FIFO, a
 * symbolic link: what a hostile target does), -ENOENT when the file is gone.
 * host (may be NULL): a path by which the kernel reaches the same file (for uprobes).
 */
int proc_open_mapped(pid_t pid, const struct proc_map *m, char *host, size_t hlen, char *why,
		     size_t whylen);
/* path for a message: printable ASCII only (no terminal escapes), cut with "..." */
const char *proc_shown_path(const char *path, char *buf, size_t len);

/*
 * What a look at a target's files skipped, told in one line: only what a hostile
 * target does (proc_skip_told: a path that names another file or a FIFO, -ESTALE;
 * a file too big, -EFBIG, or cut short while read, -EIO), not files merely gone.
 */
struct proc_skips {
	int n;
	char first[384];
};
bool proc_skip_told(int err);
/* reason: proc_open_mapped's why, or a few words about the file's contents */
void proc_skips_add(struct proc_skips *s, int err, const char *path, const char *reason);
/* "skipped its mapped file PATH: REASON" (or "skipped N of ..., the first ..."); "" when none */
void proc_skips_line(const struct proc_skips *s, char *buf, size_t len);

/* The process's start time (clock ticks after boot, /proc/PID/stat), 0 when it is gone. */
uint64_t proc_start_time(pid_t pid);
/* The same from a /proc/PID/stat text (NUL-terminated), 0 when malformed. */
uint64_t proc_stat_start_time(const char *stat);
/* Its executable's path as it sees it; "" when unreadable. */
void proc_exe(pid_t pid, char *buf, size_t len);

/*
 * A small file of /proc/PID (name: "cmdline", "environ": NUL-separated strings)
 * into buf, cut to len - 1 bytes and NUL-terminated. The bytes read, or -errno.
 * What these files hold is the target's own memory: its word, not a fact.
 */
ssize_t proc_read_small(pid_t pid, const char *name, char *buf, size_t len);
/* The parent's pid (/proc/PID/stat), 0 when gone or unreadable. */
pid_t proc_ppid(pid_t pid);
/* The same from a /proc/PID/stat text (NUL-terminated), 0 when malformed. */
pid_t proc_stat_ppid(const char *stat);
/* Whether pid is a descendant of root (its parents, at most 64 levels up). */
bool proc_descends_from(pid_t pid, pid_t root);
/*
 * pid's child processes (/proc/PID/task/TID/children of each of its threads: the
 * kernel's list, no scan of /proc), at most max. How many, or -ENOENT when the
 * kernel has no such file (CONFIG_PROC_CHILDREN) or pid is gone.
 */
int proc_children(pid_t pid, pid_t *out, int max);

#endif
