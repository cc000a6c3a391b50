/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Which llama.cpp a target runs: libllama's file version (libllama.so.0.5.0)
 * and llama.cpp's own build information (LLAMA_BUILD_NUMBER, LLAMA_COMMIT in
 * common/build-info.cpp), read from the running process where it has them.
 */
#ifndef LLMTAP_VERSION_H
#define LLMTAP_VERSION_H

#include <stddef.h>
#include <sys/types.h>

#include "target/target.h"

struct llama_version {
	char library[24]; /* libllama's file version, "0.5.0"; "" unknown */
	int build;        /* LLAMA_BUILD_NUMBER; -1 unknown */
	char commit[16];  /* LLAMA_COMMIT, hex digits only; "" unknown */
	char text[64];    /* what people read: "b1-de3ff81 (libllama 0.5.0)", "unknown" */
};

/* What t (found by target_find) says of its llama.cpp; unknown parts left so. */
void target_version(const struct target *t, struct llama_version *v);

/* The version in a library's file name ("libllama.so.0.5.0" -> "0.5.0"); false when none. */
bool version_of_library(const char *path, char *out, size_t len);
/* A commit as llama.cpp writes it: 4 to 12 leading hex digits of s; false when none. */
bool version_commit(const char *s, size_t n, char *out, size_t len);
/* v->text from the other fields. */
void version_describe(struct llama_version *v);

#endif
