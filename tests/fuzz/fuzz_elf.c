// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* elf_resolve_fd and elf_each_symbol on the input as a file: a target's library or executable. */
#include "fuzz.h"

#include <stdio.h>

#include "target/elfsym.h"

static int each(void *arg, const char *name, bool object, bool dynamic)
{
	(void)object;
	(void)dynamic;
	if (strncmp(name, "ggml_", 5))
		abort(); /* only names with the prefix */
	return ++*(int *)arg == 1000; /* and it stops when told */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int calls = 0;
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
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (elf_each_symbol(path, "ggml_", each, &calls, &info) == 1 && calls != 1000)
		abort();
	close(fd);
	return 0;
}
