/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Finding llama.cpp inside a target process: which mapped file exports it, where. */
#ifndef LLMTAP_TARGET_H
#define LLMTAP_TARGET_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum target_sym {
	TSYM_DECODE = 0, /* llama_decode */
	TSYM_ENCODE,     /* llama_encode */
	TSYM_MAX,
};

struct target {
	pid_t pid;
	char comm[16];
	char lib_path[PATH_MAX];  /* the file as the target sees it */
	char host_path[PATH_MAX]; /* the same file reached from our namespace */
	bool in_executable;       /* llama.cpp is linked into the main executable */
	bool found[TSYM_MAX];
	uint64_t offset[TSYM_MAX];
};

const char *target_sym_name(enum target_sym s);

/*
 * Find the mapped file of pid that defines llama_decode. Returns 0, or a
 * -errno with a one-line, actionable explanation in err.
 */
int target_find(pid_t pid, struct target *t, char *err, size_t errlen);

#endif
