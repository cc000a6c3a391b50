/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every byte offset llmtap reads in a target's memory, named, with the versions
 * it was checked against. The exported C API's layouts (llama_batch,
 * llama_context_params) have been stable since b4753; the C++ ones
 * (cpp-httplib, llama-server, libstdc++) are checked per version: a layout
 * that moved must get a new constant and a version check, never an edit here
 * that silently changes what an older target means.
 */
#ifndef LLMTAP_OFFSETS_H
#define LLMTAP_OFFSETS_H

/* ---- x86-64 SysV / AArch64 AAPCS64: where a by-value struct argument is ---- */
/* llama_decode(ctx, struct llama_batch): 56 bytes, on the stack above the return address (x86-64) */
#define OFF_X86_STACK_ARG 8

/* ---- struct llama_batch (include/llama.h; b4753 .. v0.5.0 de3ff815ea7d) ---- */
#define LLAMA_BATCH_SIZE 56
#define LLAMA_BATCH_N_TOKENS 0  /* int32_t */
#define LLAMA_BATCH_TOKEN 8     /* llama_token * */
#define LLAMA_BATCH_EMBD 16     /* float * */
#define LLAMA_BATCH_POS 24      /* llama_pos * */
#define LLAMA_BATCH_N_SEQ_ID 32 /* int32_t * */
#define LLAMA_BATCH_SEQ_ID 40   /* llama_seq_id ** */
#define LLAMA_BATCH_LOGITS 48   /* int8_t * */

/* ---- struct llama_context_params, first fields (uint32_t each; b4753 .. de3ff815ea7d) ---- */
#define LLAMA_CPARAMS_N_CTX 0
#define LLAMA_CPARAMS_N_BATCH 4
#define LLAMA_CPARAMS_N_UBATCH 8
#define LLAMA_CPARAMS_N_SEQ_MAX 12

/*
 * ---- struct llama_context_params, the KV cache's fields: they moved ----
 * (gdb ptype /o struct llama_context_params on each build's libllama.so; the
 * BPF side copies the struct's head raw, user/model/kvmem.c picks the layout by
 * the target's version and reads nothing for a version between or after these)
 * LAYOUT_B5640: b5640 (aa3f5d08eeb5); 120 bytes; bool flash_attn, no kv_unified
 * LAYOUT_B7698: b7698 (79efbb133964), b8390 (b10e98aadb3e); 136 bytes
 * LAYOUT_B9842: b9842 (d654a8ee8ad7), b10361 (c2fd87ef4253), de3ff815ea7d
 *   (v0.5.0); 160 bytes: n_rs_seq, n_outputs_max, ctx_type added before them;
 *   flash_attn_type at 48 in b9842, at 52 from b10361 (n_outputs_max_per_seq)
 */
#define LLAMA_CPARAMS_SIZE_MIN 120 /* the smallest of them (b5640) */
#define LLAMA_CPARAMS_B5640_TYPE_K 88       /* enum ggml_type */
#define LLAMA_CPARAMS_B5640_TYPE_V 92       /* enum ggml_type */
#define LLAMA_CPARAMS_B5640_OFFLOAD_KQV 113 /* bool */
#define LLAMA_CPARAMS_B5640_FLASH_ATTN 114  /* bool */
#define LLAMA_CPARAMS_B5640_SWA_FULL 117    /* bool */
#define LLAMA_CPARAMS_B7698_FLASH_ATTN_TYPE 36 /* enum llama_flash_attn_type: -1 auto, 0, 1 */
#define LLAMA_CPARAMS_B7698_TYPE_K 88
#define LLAMA_CPARAMS_B7698_TYPE_V 92
#define LLAMA_CPARAMS_B7698_OFFLOAD_KQV 113
#define LLAMA_CPARAMS_B7698_SWA_FULL 116
#define LLAMA_CPARAMS_B7698_KV_UNIFIED 117
#define LLAMA_CPARAMS_B9842_FLASH_ATTN_TYPE 48
#define LLAMA_CPARAMS_B10361_FLASH_ATTN_TYPE 52
#define LLAMA_CPARAMS_B9842_TYPE_K 104
#define LLAMA_CPARAMS_B9842_TYPE_V 108
#define LLAMA_CPARAMS_B9842_OFFLOAD_KQV 129
#define LLAMA_CPARAMS_B9842_SWA_FULL 132
#define LLAMA_CPARAMS_B9842_KV_UNIFIED 133

/* ---- libstdc++ std::string (the C++11 ABI): { char *p; size_t len; char sso[16]; } ---- */
#define STDSTRING_PTR 0
#define STDSTRING_LEN 8

/* ---- cpp-httplib (0.19 -> 0.57.1): the heads of Request and Response ---- */
#define HTTPLIB_REQUEST_METHOD 0  /* std::string */
#define HTTPLIB_REQUEST_PATH 32   /* std::string; later fields moved between versions */
#define HTTPLIB_RESPONSE_STATUS 32 /* int, after std::string version */

/* ---- llama-server (tools/server; checked on de3ff815ea7d, node-llama-cpp 3.22.1) ---- */
#define SERVER_TASK_ID 0   /* server_task::id, int: the first field since b4753 */
#define SERVER_SLOT_ID 0   /* server_slot::id, int: the first field since b4753 */
#define SERVER_SLOT_CTX 8  /* server_slot::ctx_tgt, llama_context *: +8 since b8390
			    * (+64 in b7698, +72 in b5640: an offset not confirmed by
			    * the steps' contexts is ignored, see the correlator) */

/*
 * llama-server's task and slot fields that moved in every release: per build (gdb
 * ptype /o on each build of tests/compat/versions), chosen by user/target/layout.c
 * from the target's LLAMA_COMMIT and handed to the BPF programs as task_n_predict_off
 * and slot_stop_off (-1 on any other build: not read).
 */
#define SERVER_TASK_N_PREDICT_B5640 28    /* server_task::params.n_predict, int32 */
#define SERVER_TASK_N_PREDICT_B7698 48
#define SERVER_TASK_N_PREDICT_B8390 72    /* and b9842 */
#define SERVER_TASK_N_PREDICT_B10361 76   /* and de3ff815ea7d */
#define SERVER_SLOT_STOP_B5640 2396       /* server_slot::stop, enum stop_type */
#define SERVER_SLOT_STOP_B7698 268
#define SERVER_SLOT_STOP_B8390 236
#define SERVER_SLOT_STOP_B9842 388
#define SERVER_SLOT_STOP_B10361 420
#define SERVER_SLOT_STOP_DE3FF815 5412

/* ---- common_params_sampling (common/common.h; de3ff815ea7d) ---- */
#define SAMPLING_SEED 0  /* uint32_t */
#define SAMPLING_TOP_K 16 /* int32_t */
#define SAMPLING_TOP_P 20 /* float */
#define SAMPLING_TEMP 40  /* float */
#define SAMPLING_HEAD 44  /* bytes read: up to and with temp */

#endif /* LLMTAP_OFFSETS_H */
