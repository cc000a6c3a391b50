// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* prom_route: the request head a /metrics client sends (at most 8 KiB, NUL-terminated). */
#include "fuzz.h"

#include "export/prom_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum prom_path path = PROM_PATH_METRICS;
	bool head_only = false;
	char *head;
	int status;

	if (size >= 8192)
		return 0;
	head = fuzz_str(data, size);
	status = prom_route(head, &head_only, &path);
	if (status != 200 && status != 400 && status != 404 && status != 405)
		abort();
	free(head);
	return 0;
}
