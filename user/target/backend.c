// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/backend.h"

#include <stdio.h>
#include <string.h>

#include "target/proc.h"

/*
 * File name prefixes: ggml's device backends (ggml/src/ggml-*: a shared build
 * maps libggml-<name>.so) and the runtimes a static build with one links
 * dynamically. libggml-cpu*, -blas and -base hold nothing off the host.
 */
static const char *const device_libs[] = {
	"libggml-cuda", "libggml-hip", "libggml-vulkan", "libggml-metal", "libggml-sycl",
	"libggml-opencl", "libggml-cann", "libggml-musa", "libggml-rpc", "libggml-webgpu",
	"libggml-zdnn", "libggml-hexagon", "libggml-kompute", "libggml-openvino",
	"libcuda.", "libcudart", "libcublas", "libamdhip64", "libhipblas", "librocblas",
	"libvulkan", "libOpenCL", "libsycl", "libze_loader", "libmusa", "libascendcl",
};

bool backend_is_device_lib(const char *path)
{
	const char *base = strrchr(path, '/');
	size_t i;

	base = base ? base + 1 : path;
	for (i = 0; i < sizeof(device_libs) / sizeof(device_libs[0]); i++)
		if (!strncmp(base, device_libs[i], strlen(device_libs[i])))
			return true;
	return false;
}

struct scan {
	char *name;
	size_t len;
};

static int on_map(const struct proc_map *m, void *arg)
{
	struct scan *s = arg;
	const char *base;

	if (!m->path[0] || !backend_is_device_lib(m->path))
		return 0;
	base = strrchr(m->path, '/');
	snprintf(s->name, s->len, "%s", base ? base + 1 : m->path);
	return 1;
}

int target_device_backend(pid_t pid, char *name, size_t len)
{
	struct scan s = { name, len };
	int ret;

	if (len)
		name[0] = '\0';
	ret = proc_for_each_map(pid, on_map, &s);
	return ret < 0 ? ret : ret > 0;
}
