/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Which processes the daemon traces: executable, cgroup, listening port, exclusions. */
#ifndef LLMTAP_SELECT_H
#define LLMTAP_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SELECT_MAX 16

struct selector {
	const char *exe[SELECT_MAX];     /* globs on the executable's path or name */
	int n_exe;
	const char *cgroup[SELECT_MAX];  /* globs on a /proc/PID/cgroup path */
	int n_cgroup;
	unsigned int ports[SELECT_MAX];  /* TCP ports it listens on */
	int n_ports;
	const char *exclude[SELECT_MAX]; /* globs on the executable's path or name */
	int n_exclude;
};

/*
 * Whether the daemon should trace pid: every kind of rule given must match
 * (any one of its values), and no exclusion. Globs are fnmatch(3) patterns
 * where '*' also crosses '/'. Paths are as the process sees them (inside its
 * container). When false, why says which rule left it out.
 */
bool selector_match(const struct selector *s, pid_t pid, char *why, size_t len);

/* One line of /proc/PID/net/tcp{,6}: true for a listening socket, with its port and inode. */
bool select_parse_listen(const char *line, unsigned int *port, uint64_t *inode);

#endif
