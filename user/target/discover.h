/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Finding the processes of a host that load llama.cpp: an exec tracepoint that
 * reports new processes at once, /proc listings for the periodic rescan, and a
 * per-file cache of "does this ELF file define llama_decode".
 */
#ifndef LLMTAP_DISCOVER_H
#define LLMTAP_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct discover;

/* with_exec: load the exec tracepoint (else rescans only). NULL with a reason in err. */
struct discover *discover_open(bool with_exec, char *err, size_t errlen);
/* Readable when exec records wait; -1 without the tracepoint. */
int discover_fd(const struct discover *d);
/* Pids that exec'd since the last call, at most max. */
int discover_execs(struct discover *d, pid_t *out, int max);
/* Execs the tracepoint could not report (its ring buffer was full). */
uint64_t discover_lost(const struct discover *d);

/* Every process of the host (its thread group ids), at most max. Returns how many. */
int discover_list(pid_t *out, int max);
/* root's descendants (not root), at most max: from the kernel's lists of children, or
 * a scan of /proc where the kernel has none. Returns how many. */
int discover_descendants(pid_t root, pid_t *out, int max);

/*
 * Whether pid maps an executable file that defines llama_decode. Each file is
 * read once (cached by device and inode, up to a bound): a host with hundreds
 * of processes costs one /proc/PID/maps read per process per rescan. Files are
 * read as mapped (proc_open_mapped). why (may be NULL): what was skipped, in one
 * line ("" when nothing): a path that names another file or a FIFO now, a file
 * too big or cut short while read (see proc_skips).
 */
bool discover_has_llama(struct discover *d, pid_t pid, char *why, size_t whylen);

void discover_close(struct discover *d);

#endif
