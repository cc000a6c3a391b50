/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * KV-cache memory in bytes: the model's attention shape (its GGUF header), the
 * context's cache types and cell count (its llama_context_params, decoded by
 * llama.cpp version) and ggml's type sizes make bytes per cell and capacity;
 * cells in use (the correlator's count) times bytes per cell make bytes in use.
 * Exact as llama.cpp allocates them (llama_kv_cache: one K and one V tensor of
 * row_size(type, n_head_kv * head) x cells per layer), or unknown.
 */
#ifndef LLMTAP_KVMEM_H
#define LLMTAP_KVMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target/layout.h" /* enum kv_layout: a build's llama_context_params */

struct gguf_attn;
struct tm_kv_mem;

/* What a context's creation says of its KV cache. */
struct kv_context {
	bool known;         /* the fields below were read (a known layout) */
	uint32_t n_ctx;     /* as passed: 0 means the model's context length */
	uint32_t n_seq_max;
	int type_k, type_v; /* enum ggml_type */
	bool flash_attn;    /* b5640 only (it pads the cells) */
	bool kv_unified;    /* b7698 and later; b5640's one cache is unified */
	bool offload_kqv;   /* false: the cache is in host memory whatever the devices */
};

/*
 * Decode the head of llama_context_params (raw, len bytes) with params[0..3]
 * (n_ctx, n_batch, n_ubatch, n_seq_max). out->known false when the layout is
 * unknown or the bytes too few.
 */
void kvmem_decode_context(enum kv_layout layout, const uint8_t *raw, size_t len,
			  const uint32_t params[4], struct kv_context *out);

/* ggml's bytes for n elements of type (a whole number of blocks); 0: unknown type or n. */
uint64_t kvmem_row_bytes(int type, uint64_t n);
/* ggml's name of a cache type ("f16", "q8_0"); NULL when llmtap does not size it. */
const char *kvmem_type_name(int type);

/*
 * Cells llama.cpp allocates for the context (all sequences' streams together);
 * n_ctx_train is the model's context length (used when n_ctx is 0). 0: unknown.
 */
uint64_t kvmem_cells(enum kv_layout layout, const struct kv_context *c, uint32_t n_ctx_train);

/* Bytes of K and V per cell over all layers; 0: unknown (not a plain cache, a type or size not sized). */
uint64_t kvmem_bytes_per_cell(const struct gguf_attn *a, int type_k, int type_v);

/*
 * All of it for the gauges: c from a context's creation (NULL: not seen), a the
 * model's shape, n_ctx_train its context length, device_lib whether the target
 * maps a device backend (1), none (0) or unknown (-1). Unknown parts stay 0/NULL.
 */
void kvmem_describe(enum kv_layout layout, const struct kv_context *c, const struct gguf_attn *a,
		    uint32_t n_ctx_train, int device_lib, struct tm_kv_mem *out);

#endif
