// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * `make bench`: what OTLP export costs llmtap (never the target): packing a batch
 * of 512 requests (4 spans each, the full attribute set) into an
 * ExportTraceServiceRequest on the main thread, and gzip of it on the sender's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/otlp_encode.h"
#include "export/otlp_export.h"
#include "lib/clock.h"

#define BATCH 512
#define REPS 200

static double now_s(void)
{
	return (double)monotonic_ns() / 1e9;
}

int main(void)
{
	struct resource res = { .n = 12 };
	struct otlp_idgen ids;
	struct otlp_encode_ctx ctx = { &res, "tiny", &ids, 0 };
	struct otlp_item *it = calloc(BATCH, sizeof(*it));
	uint8_t *buf = NULL, *gz;
	size_t len = 0, gz_len;
	double t0, t1, t2;

	if (!it)
		return 1;
	otlp_idgen_init(&ids);
	for (int i = 0; i < res.n; i++) {
		snprintf(res.attrs[i].key, sizeof(res.attrs[i].key), "resource.key.%d", i);
		snprintf(res.attrs[i].value, sizeof(res.attrs[i].value), "value-%d", i);
	}
	for (int i = 0; i < BATCH; i++) {
		struct req_span *r = &it[i].req;

		it[i].is_request = true;
		*r = (struct req_span){ .id = (uint64_t)i + 1, .start_ns = 1000, .end_ns = 9000,
					.method = "POST", .path = "/v1/chat/completions",
					.client = "10.1.2.3", .client_port = 40000 + i,
					.server_port = 8080, .status = 200, .complete = true,
					.n_tasks = 1, .slot = i % 4, .deferred = true,
					.enqueue_ns = 1100, .launch_ns = 2000, .first_token_ns = 3000,
					.final_ns = 8000, .prompt_tokens = 30, .output_tokens = 100,
					.has_sampling = true, .top_k = 40, .top_p = 0.95f,
					.temperature = 0.7f, .err_type = -1,
					.attribution = REQ_ATTR_SERVER,
					.known = REQ_KNOWN_PROMPT | REQ_KNOWN_OUTPUT };
		r->route.kind = ROUTE_CHAT;
		r->route.template = "/v1/chat/completions";
	}
	t0 = now_s();
	for (int k = 0; k < REPS; k++) {
		free(buf);
		if (otlp_encode_traces(&ctx, it, BATCH, &buf, &len))
			return 1;
	}
	t1 = now_s();
	if (otlp_gzip(buf, len, &gz, &gz_len))
		return 1;
	t2 = now_s();
	printf("otlp: a batch of %d requests (%d spans) packs in %.2f ms (%.1f us per request, "
	       "main thread): %zu bytes, %.0f per request; gzip (sender thread) %.2f ms -> %zu "
	       "bytes\n", BATCH, BATCH * 4, (t1 - t0) / REPS * 1e3, (t1 - t0) / REPS / BATCH * 1e6,
	       len, (double)len / BATCH, (t2 - t1) * 1e3, gz_len);
	free(buf);
	free(gz);
	free(it);
	return 0;
}
