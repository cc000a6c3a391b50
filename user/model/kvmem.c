// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "model/kvmem.h"

#include <string.h>

#include "llmtap_offsets.h"
#include "model/gauges.h"
#include "target/gguf.h"

/* ggml's enum ggml_type values (ggml.h; stable since 2024) for the KV cache types
 * llama.cpp offers (common/arg.cpp kv_cache_types), with ggml's block sizes */
static const struct {
	int type;
	const char *name;
	uint32_t block;	/* elements per block */
	uint32_t bytes;	/* bytes per block */
} types[] = {
	{ 0, "f32", 1, 4 },
	{ 1, "f16", 1, 2 },
	{ 30, "bf16", 1, 2 },
	{ 8, "q8_0", 32, 34 },
	{ 2, "q4_0", 32, 18 },
	{ 3, "q4_1", 32, 20 },
	{ 20, "iq4_nl", 32, 18 },
	{ 6, "q5_0", 32, 22 },
	{ 7, "q5_1", 32, 24 },
};

#define N_TYPES (sizeof(types) / sizeof(types[0]))

static int32_t le32(const uint8_t *p)
{
	return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			 (uint32_t)p[3] << 24);
}

void kvmem_decode_context(enum kv_layout layout, const uint8_t *raw, size_t len,
			  const uint32_t params[4], struct kv_context *out)
{
	size_t need;

	memset(out, 0, sizeof(*out));
	out->n_ctx = params[0];
	out->n_seq_max = params[3];
	switch (layout) {
	case KV_LAYOUT_B5640:
		need = LLAMA_CPARAMS_B5640_SWA_FULL + 1;
		if (len < need)
			return;
		out->type_k = le32(raw + LLAMA_CPARAMS_B5640_TYPE_K);
		out->type_v = le32(raw + LLAMA_CPARAMS_B5640_TYPE_V);
		out->offload_kqv = raw[LLAMA_CPARAMS_B5640_OFFLOAD_KQV];
		out->flash_attn = raw[LLAMA_CPARAMS_B5640_FLASH_ATTN];
		out->kv_unified = true; /* one cache for all sequences */
		break;
	case KV_LAYOUT_B7698:
		need = LLAMA_CPARAMS_B7698_KV_UNIFIED + 1;
		if (len < need)
			return;
		out->type_k = le32(raw + LLAMA_CPARAMS_B7698_TYPE_K);
		out->type_v = le32(raw + LLAMA_CPARAMS_B7698_TYPE_V);
		out->offload_kqv = raw[LLAMA_CPARAMS_B7698_OFFLOAD_KQV];
		out->kv_unified = raw[LLAMA_CPARAMS_B7698_KV_UNIFIED];
		break;
	case KV_LAYOUT_B9842:
		need = LLAMA_CPARAMS_B9842_KV_UNIFIED + 1;
		if (len < need)
			return;
		out->type_k = le32(raw + LLAMA_CPARAMS_B9842_TYPE_K);
		out->type_v = le32(raw + LLAMA_CPARAMS_B9842_TYPE_V);
		out->offload_kqv = raw[LLAMA_CPARAMS_B9842_OFFLOAD_KQV];
		out->kv_unified = raw[LLAMA_CPARAMS_B9842_KV_UNIFIED];
		break;
	default:
		return;
	}
	out->known = true;
}

static int type_index(int type)
{
	size_t i;

	for (i = 0; i < N_TYPES; i++)
		if (types[i].type == type)
			return (int)i;
	return -1;
}

uint64_t kvmem_row_bytes(int type, uint64_t n)
{
	int i = type_index(type);

	if (i < 0 || !n || n % types[i].block)
		return 0;
	return n / types[i].block * types[i].bytes;
}

const char *kvmem_type_name(int type)
{
	int i = type_index(type);

	return i < 0 ? NULL : types[i].name;
}

static uint64_t pad(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

uint64_t kvmem_cells(enum kv_layout layout, const struct kv_context *c, uint32_t n_ctx_train)
{
	uint64_t n_ctx = c->n_ctx ? c->n_ctx : n_ctx_train, per_seq;

	if (!c->known || !n_ctx)
		return 0;
	switch (layout) {
	case KV_LAYOUT_B5640:
		/* llama_model::create_memory: GGML_PAD(n_ctx, flash_attn ? 256 : 32), one stream */
		return pad(n_ctx, c->flash_attn ? 256 : 32);
	case KV_LAYOUT_B7698:
	case KV_LAYOUT_B9842:
		/* llama_context: n_ctx = GGML_PAD(n_ctx, 256); unified: one stream of n_ctx
		 * cells, else n_seq_max streams of GGML_PAD(n_ctx / n_seq_max, 256) */
		n_ctx = pad(n_ctx, 256);
		if (c->kv_unified)
			return n_ctx;
		if (!c->n_seq_max)
			return 0;
		per_seq = pad(n_ctx / c->n_seq_max, 256);
		return per_seq * c->n_seq_max;
	default:
		return 0;
	}
}

uint64_t kvmem_bytes_per_cell(const struct gguf_attn *a, int type_k, int type_v)
{
	uint64_t k, v;

	if (!a || !a->plain)
		return 0;
	k = kvmem_row_bytes(type_k, (uint64_t)a->n_head_kv * a->head_k);
	v = kvmem_row_bytes(type_v, (uint64_t)a->n_head_kv * a->head_v);
	if (!k || !v)
		return 0;
	return (k + v) * a->n_layer;
}

void kvmem_describe(enum kv_layout layout, const struct kv_context *c, const struct gguf_attn *a,
		    uint32_t n_ctx_train, int device_lib, struct tm_kv_mem *out)
{
	memset(out, 0, sizeof(*out));
	if (!c || !c->known)
		return;
	out->type_k = kvmem_type_name(c->type_k);
	out->type_v = kvmem_type_name(c->type_v);
	out->bytes_per_cell = kvmem_bytes_per_cell(a, c->type_k, c->type_v);
	out->cells_capacity = kvmem_cells(layout, c, n_ctx_train);
	/* llama_kv_cache puts every layer in host memory unless offload_kqv; with it,
	 * on each layer's device: host memory when there is no other device */
	if (!c->offload_kqv || device_lib == 0)
		out->device = "cpu";
}
