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

/* A path inside the target's mount namespace, as reachable from ours. */
int proc_root_path(pid_t pid, const char *path, char *out, size_t len);
/*
 * A mapping's file: path as the target sees it (without " (deleted)"), host as we
 * reach it (through /proc/PID/root, or map_files for a deleted file). 0 or -errno.
 */
int proc_map_file(pid_t pid, const struct proc_map *m, char *path, size_t plen, char *host,
		  size_t hlen);
/* The process's start time (clock ticks after boot, /proc/PID/stat), 0 when it is gone. */
uint64_t proc_start_time(pid_t pid);
/* Its executable's path as it sees it; "" when unreadable. */
void proc_exe(pid_t pid, char *buf, size_t len);

#endif
