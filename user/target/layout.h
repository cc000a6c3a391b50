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

/* server_task::params.n_predict (int32, the request's max_tokens or the server's
 * default) for v's build, or -1 when not known for it. */
int layout_task_n_predict(const struct llama_version *v);
/* server_slot::stop (enum stop_type: why the slot's task ended, as the server tells
 * it: its stop_type) for v's build, or -1 when not known for it. */
int layout_slot_stop(const struct llama_version *v);

#endif
