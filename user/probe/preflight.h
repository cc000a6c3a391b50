/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Can this process load BPF and attach uprobes on this kernel? */
#ifndef LLMTAP_PREFLIGHT_H
#define LLMTAP_PREFLIGHT_H

#include <stddef.h>

/*
 * Check privileges (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN), kernel BTF and
 * uprobe support. Returns 0, or -EPERM / -EOPNOTSUPP with a one-line reason.
 */
int preflight_check(char *err, size_t errlen);

#endif
