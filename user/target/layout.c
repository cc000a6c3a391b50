// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/layout.h"

#include <string.h>

#include "lib/util.h"

/* One row per build checked: its commit (LLAMA_COMMIT, full) and the offsets. */
static const struct {
	const char *commit;
	const char *era;
	int task_n_predict; /* offsetof(server_task, params.n_predict) */
	int slot_stop;      /* offsetof(server_slot, stop): enum stop_type, the same four
			     * values in all (NONE, EOS, WORD, LIMIT) */
} layouts[] = {
	{ "aa3f5d08eeb5", "b5640, node-llama-cpp 3.10.0", 28, 2396 },
	{ "79efbb133964", "b7698, node-llama-cpp 3.15.0", 48, 268 },
	{ "b10e98aadb3e", "b8390, node-llama-cpp 3.18.1", 72, 236 },
	{ "d654a8ee8ad7", "b9842, node-llama-cpp 3.19.0", 72, 388 },
	{ "c2fd87ef4253", "b10361, node-llama-cpp 3.20.0", 76, 420 },
	{ "de3ff815ea7d", "v0.5.0, node-llama-cpp 3.22.1", 76, 5412 },
};

/* v's row, or -1 */
static int row_of(const struct llama_version *v)
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
	int i = row_of(v);

	return i < 0 ? -1 : layouts[i].task_n_predict;
}

int layout_slot_stop(const struct llama_version *v)
{
	int i = row_of(v);

	return i < 0 ? -1 : layouts[i].slot_stop;
}
