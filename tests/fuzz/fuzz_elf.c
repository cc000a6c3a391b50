// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* elf_resolve_fd on the input as a file: a target's library or executable. */
#include "fuzz.h"

#include "target/elfsym.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_sym_req reqs[] = {
		{ .name = "llama_decode" }, { .name = "f" }, { .name = "main" },
		{ .name = "llama_*" }, { .name = "_start" }, { .name = "*" },
	};
	struct elf_file_info info;
	int fd = fuzz_memfd(data, size);

	elf_resolve_fd(fd, reqs, sizeof(reqs) / sizeof(reqs[0]), &info);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		if (strlen(reqs[i].symbol) >= sizeof(reqs[i].symbol))
			abort();
	if (strlen(info.interp) >= sizeof(info.interp))
		abort();
	close(fd);
	return 0;
}
