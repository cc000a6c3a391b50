// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* gguf_read_info_fd on the input as a file: a model file's header, whatever it claims. */
#include "fuzz.h"

#include "target/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf_info info;
	char err[128];
	int fd = fuzz_memfd(data, size);

	if (!gguf_read_info_fd(fd, &info, err, sizeof(err))) {
		/* what it returns is terminated */
		if (strlen(info.architecture) >= sizeof(info.architecture) ||
		    strlen(info.name) >= sizeof(info.name))
			abort();
	}
	close(fd);
	return 0;
}
