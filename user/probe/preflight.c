// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "probe/preflight.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static const char btf_path[] = "/sys/kernel/btf/vmlinux";
static const char uprobe_pmu[] = "/sys/bus/event_source/devices/uprobe/type";

static bool has_cap(const struct __user_cap_data_struct d[2], int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

int preflight_check(char *err, size_t errlen)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data)) {
		snprintf(err, errlen, "cannot read this process's capabilities: %s", strerror(errno));
		return -EPERM;
	}
	if (!has_cap(data, CAP_SYS_ADMIN) &&
	    !(has_cap(data, CAP_BPF) && has_cap(data, CAP_PERFMON))) {
		snprintf(err, errlen,
			 "llmtap needs root, or the capabilities CAP_BPF and CAP_PERFMON (plus CAP_SYS_PTRACE to read another user's process): run it with sudo");
		return -EPERM;
	}
	if (access(btf_path, R_OK)) {
		snprintf(err, errlen,
			 "this kernel exposes no BTF (%s: %s): llmtap's CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y",
			 btf_path, strerror(errno));
		return -EOPNOTSUPP;
	}
	if (access(uprobe_pmu, R_OK)) {
		snprintf(err, errlen,
			 "this kernel has no uprobe support (%s: %s): it needs CONFIG_UPROBE_EVENTS=y",
			 uprobe_pmu, strerror(errno));
		return -EOPNOTSUPP;
	}
	return 0;
}
