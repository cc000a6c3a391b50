/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Offsets in llama-server's private C++ structures that move with every release,
 * known only for the builds they were checked on (gdb `ptype /o` on each build of
 * tests/compat/versions): a target whose LLAMA_COMMIT is not one of them gets none,
 * and what would be read there stays unknown.
 */
#ifndef LLMTAP_LAYOUT_H
#define LLMTAP_LAYOUT_H

#include "target/version.h"

/* Which llama_context_params layout a build has (include/llmtap_offsets.h): where
 * its KV-cache fields are (user/model/kvmem.c decodes them). */
enum kv_layout {
	KV_LAYOUT_UNKNOWN = 0,
	KV_LAYOUT_B5640,  /* b5640: bool flash_attn; cells padded to 32, or 256 with FA */
	KV_LAYOUT_B7698,  /* b7698, b8390: kv_unified; cells padded to 256, per sequence */
	KV_LAYOUT_B9842,  /* b9842, b10361, de3ff815ea7d: the same fields 16 bytes further */
};

/* server_task::params.n_predict (int32, the request's max_tokens or the server's
 * default) for v's build, or -1 when not known for it. */
int layout_task_n_predict(const struct llama_version *v);
/* server_slot::stop (enum stop_type: why the slot's task ended, as the server tells
 * it: its stop_type) for v's build, or -1 when not known for it. */
int layout_slot_stop(const struct llama_version *v);
/* v's llama_context_params layout, KV_LAYOUT_UNKNOWN when its build was not checked
 * (by commit only: a fork numbers its builds its own way). */
enum kv_layout layout_kv(const struct llama_version *v);

#endif
