/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The live state of the traced server as a set of gauges: requests in flight,
 * queued tasks, busy slots, KV cells, and a row per slot. The correlator fills
 * them from what it tracks (correlator_gauges), the session adds the target's
 * memory, and the telemetry model keeps them for its sinks and metrics
 * (telemetry_set_gauges) at each tick.
 */
#ifndef LLMTAP_GAUGES_H
#define LLMTAP_GAUGES_H

#include <stdbool.h>
#include <stdint.h>

#define TM_MAX_SLOTS 64

/* One slot (= sequence) as it is now: what `llmtap top` shows per slot. */
struct tm_slot {
	int slot;
	int phase;           /* 0 idle, 1 prefill, 2 generating */
	uint64_t request_id; /* 0: none or not seen */
	const char *route;   /* http.route of its request, "" when none */
	unsigned int known;  /* enum req_known of its request: a count whose bit is clear is unknown */
	uint32_t prompt_tokens;
	uint32_t cached_tokens;
	uint32_t output_tokens;
	uint64_t since_ns;   /* when its task started on the slot, 0 when idle */
	uint64_t kv_cells;
};

/*
 * KV-cache memory of the context the requests run on (user/model/kvmem.h), from
 * the model's header and the context's creation; 0 / NULL where unknown. Bytes
 * used are kv_cells x bytes_per_cell.
 */
struct tm_kv_mem {
	uint64_t bytes_per_cell;  /* K and V over all layers; 0 unknown */
	uint64_t cells_capacity;  /* cells llama.cpp allocated; 0 unknown */
	const char *type_k;       /* cache types ("f16", "q8_0"); NULL unknown */
	const char *type_v;
	const char *device;       /* where the cache is: "cpu"; NULL unknown */
};

struct tm_gauges {
	uint32_t active_requests;  /* HTTP requests between first and last byte */
	uint32_t active_inference; /* of which inference (chat, completion, embeddings...) */
	uint32_t queued_tasks;     /* tasks created, not yet on a slot (when queue_known) */
	bool queue_known;          /* the server layer tells tasks: else queued_tasks is unknown */
	uint32_t busy_slots;
	uint64_t kv_cells;         /* positions held by the sequences llmtap saw */
	uint32_t n_ctx;            /* context size from its creation, 0 when not seen */
	uint64_t rss_bytes;        /* the target's resident memory, 0 when unknown */
	struct tm_kv_mem kv_mem;   /* filled by the session */
	int n_slots;               /* slots busy or holding KV cells, by slot id */
	struct tm_slot slots[TM_MAX_SLOTS];
};

#endif
