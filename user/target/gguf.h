/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A few metadata strings from a GGUF model file's header (llama.cpp's format). */
#ifndef LLMTAP_GGUF_H
#define LLMTAP_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The attention shape that sizes llama.cpp's KV cache (user/model/kvmem.h):
 * per layer, a K row of n_head_kv * head_k and a V row of n_head_kv * head_v
 * elements per cell. plain is false when the model's cache is not that (an
 * architecture llmtap has not checked, a sliding window, a recurrent state,
 * MLA, heads that differ by layer, ...): then why says so in a few words.
 */
struct gguf_attn {
	bool plain;
	char why[64];
	uint32_t n_layer;   /* <arch>.block_count */
	uint32_t n_head_kv; /* <arch>.attention.head_count_kv (default head_count) */
	uint32_t head_k;    /* <arch>.attention.key_length (default embedding_length / head_count) */
	uint32_t head_v;    /* <arch>.attention.value_length (the same default) */
};

/*
 * What the vocabulary says of end-of-generation tokens, for finish reasons.
 * eos/eot/eom are the ids the header sets (in range of the vocabulary): llama.cpp
 * always ends a generation on them; -1 also for one some version checked may take
 * back out of its end-of-generation set ("<|end|>", "</s>" beside their companion
 * tokens, see gguf.c): its bit stays set in maybe_eog. maybe_eog is a bitmap over the n_vocab
 * tokens of those llama.cpp MAY treat as end-of-generation (the ids above, the
 * FIM pad/rep/sep ids, control and user-defined tokens, the texts llama.cpp
 * matches in any version checked, its default ids when the header sets none):
 * a token whose bit is clear is known not to end a generation. n_vocab 0 (and
 * maybe_eog NULL): the vocabulary is unknown. Owned: gguf_vocab_free.
 */
struct gguf_vocab {
	int32_t eos, eot, eom; /* -1: absent */
	uint32_t n_vocab;
	uint8_t *maybe_eog;
};

struct gguf_info {
	char architecture[64];   /* general.architecture, e.g. "llama"; "" when absent */
	char name[128];          /* general.name, "" when absent (cut to 127 bytes) */
	uint32_t context_length; /* <arch>.context_length, 0 when absent (saturated) */
	uint32_t version;
	uint64_t n_tensors;
	struct gguf_attn attn;   /* plain false unless the whole metadata was read */
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
/*
 * The same, and the vocabulary's end-of-generation facts into vocab (may be
 * NULL). The three values above come from the start of the header: when the
 * rest of the metadata is malformed or past the walk's bounds, they are still
 * returned (0) while attn stays not plain and vocab empty. vocab is always
 * initialised (empty) and must be freed by gguf_vocab_free, whatever is returned.
 */
int gguf_read_model_fd(int fd, struct gguf_info *info, struct gguf_vocab *vocab, char *err,
		       size_t errlen);
void gguf_vocab_free(struct gguf_vocab *vocab);

#define GGUF_VOCAB_MAX (4u << 20) /* tokens: a larger vocabulary is left unknown */

/* tok is one of eos/eot/eom: llama.cpp ends a generation on it. */
bool gguf_token_is_eog_sure(const struct gguf_vocab *vocab, int32_t tok);
/* tok may end a generation: false only when known not to (true when the vocabulary is unknown). */
bool gguf_token_maybe_eog(const struct gguf_vocab *vocab, int32_t tok);

#endif
