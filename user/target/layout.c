// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/layout.h"

#include <string.h>

#include "llmtap_offsets.h"
#include "lib/util.h"

/* One row per build checked: its commit (LLAMA_COMMIT, full) and the offsets. */
static const struct {
	const char *commit;
	const char *era;
	int task_n_predict; /* offsetof(server_task, params.n_predict) */
	int slot_stop;      /* offsetof(server_slot, stop): enum stop_type, the same four
			     * values in all (NONE, EOS, WORD, LIMIT) */
	enum kv_layout kv;  /* llama_context_params (include/llmtap_offsets.h) */
} layouts[] = {
	{ "aa3f5d08eeb5", "b5640, node-llama-cpp 3.10.0", SERVER_TASK_N_PREDICT_B5640,
	  SERVER_SLOT_STOP_B5640, KV_LAYOUT_B5640 },
	{ "79efbb133964", "b7698, node-llama-cpp 3.15.0", SERVER_TASK_N_PREDICT_B7698,
	  SERVER_SLOT_STOP_B7698, KV_LAYOUT_B7698 },
	{ "b10e98aadb3e", "b8390, node-llama-cpp 3.18.1", SERVER_TASK_N_PREDICT_B8390,
	  SERVER_SLOT_STOP_B8390, KV_LAYOUT_B7698 },
	{ "d654a8ee8ad7", "b9842, node-llama-cpp 3.19.0", SERVER_TASK_N_PREDICT_B8390,
	  SERVER_SLOT_STOP_B9842, KV_LAYOUT_B9842 },
	{ "c2fd87ef4253", "b10361, node-llama-cpp 3.20.0", SERVER_TASK_N_PREDICT_B10361,
	  SERVER_SLOT_STOP_B10361, KV_LAYOUT_B9842 },
	{ "de3ff815ea7d", "v0.5.0, node-llama-cpp 3.22.1", SERVER_TASK_N_PREDICT_B10361,
	  SERVER_SLOT_STOP_DE3FF815, KV_LAYOUT_B9842 },
};

/* v's row in layouts[], -1 when its build was not checked */
static int layout_row(const struct llama_version *v)
{
	size_t n = strlen(v->commit);

	if (n < 7) /* a shorter prefix could name another build */
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(layouts); i++)
		if (!strncmp(layouts[i].commit, v->commit, n))
			return (int)i;
	return -1;
}

int layout_task_n_predict(const struct llama_version *v)
{
	int i = layout_row(v);

	return i < 0 ? -1 : layouts[i].task_n_predict;
}

int layout_slot_stop(const struct llama_version *v)
{
	int i = layout_row(v);

	return i < 0 ? -1 : layouts[i].slot_stop;
}

enum kv_layout layout_kv(const struct llama_version *v)
{
	int i = layout_row(v);

	return i < 0 ? KV_LAYOUT_UNKNOWN : layouts[i].kv;
}
