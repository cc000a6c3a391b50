// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * LD_PRELOAD shim (review r2): ggml_backend_sched_synchronize throws once, when the file
 * named by $R2_THROW_FLAG exists (it is removed), as ggml-vulkan's synchronize does on a
 * lost device (VK_CHECK rethrows vk::DeviceLostError, throws vk::SystemError) or any
 * backend on std::bad_alloc. libllama calls it through its PLT from
 * llama_context::synchronize(), which llama_synchronize tail-calls.
 */
#include <dlfcn.h>
#include <stdexcept>
#include <stdlib.h>
#include <unistd.h>

extern "C" void ggml_backend_sched_synchronize(void *sched)
{
	static void (*real)(void *) =
		(void (*)(void *))dlsym(RTLD_NEXT, "ggml_backend_sched_synchronize");
	const char *flag = getenv("R2_THROW_FLAG");

	if (flag && !unlink(flag))
		throw std::runtime_error("review r2: a backend error in synchronize");
	real(sched);
}
