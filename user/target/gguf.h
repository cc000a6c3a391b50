/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A few metadata strings from a GGUF model file's header (llama.cpp's format). */
#ifndef LLMTAP_GGUF_H
#define LLMTAP_GGUF_H

#include <stddef.h>
#include <stdint.h>

struct gguf_info {
	char architecture[64];   /* general.architecture, e.g. "llama"; "" when absent */
	char name[128];          /* general.name, "" when absent (cut to 127 bytes) */
	uint32_t context_length; /* <arch>.context_length, 0 when absent (saturated) */
	uint32_t version;
	uint64_t n_tensors;
};

/*
 * Read path's GGUF header. Returns 0, -errno when the file cannot be read, -EINVAL
 * (with a one-line reason in err) when it is not a GGUF v2/v3 file or the header is
 * malformed or truncated, or its metadata is larger than llmtap walks (64 MiB into
 * the file, 2 Mi values: a few milliseconds whatever the file claims). Never reads
 * more than the header. info is written only on success; err (may be NULL) is ""
 * unless -EINVAL is returned. The file is opened non-blocking: a FIFO is refused.
 */
int gguf_read_info(const char *path, struct gguf_info *info, char *err, size_t errlen);
/* The same from an open file (read with pread: its offset is left alone). */
int gguf_read_info_fd(int fd, struct gguf_info *info, char *err, size_t errlen);

#endif
