// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `llmtap report` on the input as a trace file (a recording anyone may hand over). */
#include "fuzz.h"

#include <stdio.h>

#include "report/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[64], err[256];
	int fd = fuzz_memfd(data, size);

	snprintf(in, sizeof(in), "/proc/self/fd/%d", fd);
	report_write(in, "/dev/null", err, sizeof(err));
	if (strlen(err) >= sizeof(err))
		abort();
	close(fd);
	return 0;
}
