// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/backend.h"

#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "target/elfsym.h"
#include "target/proc.h"

/*
 * ggml's libraries that hold nothing off the host (ggml/src of every build in
 * tests/compat/versions): libggml (the backend registry), libggml-base, the CPU
 * backend (libggml-cpu, and its per-ISA variants libggml-cpu-haswell, ...), and the
 * two ACCEL backends whose buffers are the CPU backend's (ggml-blas, ggml-zendnn:
 * get_buffer_type returns ggml_backend_cpu_buffer_type()). Any other libggml* is a
 * device backend, or one llmtap does not know (ggml-virtgpu, ggml-et, the next one).
 */
static const char *const host_stems[] = {
	"libggml", "libggml-base", "libggml-cpu", "libggml-blas", "libggml-zendnn",
};

/* The same backends by their registration functions (ggml_backend_<name>_reg), for a
 * ggml linked into another file; ggml_backend_dev_backend_reg is ggml's own API. */
static const char *const host_regs[] = {
	"ggml_backend_cpu_reg", "ggml_backend_blas_reg", "ggml_backend_zendnn_reg",
	"ggml_backend_dev_backend_reg",
};

/*
 * Device backends whose synchronize() never throws: ggml-cuda (and ggml-hip, ggml-musa,
 * the same code built for ROCm and MUSA) checks every call with CUDA_CHECK, which
 * aborts (ggml_cuda_error -> GGML_ABORT). Others throw through it (ggml-vulkan's
 * VK_CHECK rethrows vk::DeviceLostError) or were not checked: a return probe on a
 * call that synchronizes (the [uprobes] trampoline has no unwind information) would
 * turn what llama-server catches into std::terminate.
 */
static const char *const no_throw_stems[] = { "libggml-cuda", "libggml-hip", "libggml-musa" };
static const char *const no_throw_regs[] = { "ggml_backend_cuda_reg", "ggml_backend_hip_reg",
					     "ggml_backend_musa_reg" };
static const char *const no_throw_runtimes[] = {
	"libcuda.", "libcudart", "libcublas", "libamdhip64", "libhipblas", "librocblas", "libmusa",
};

/* GPU runtimes a backend linked into another file loads (file name prefixes). */
static const char *const runtimes[] = {
	"libcuda.", "libcudart", "libcublas", "libamdhip64", "libhipblas", "librocblas",
	"libvulkan", "libOpenCL", "libsycl", "libze_loader", "libmusa", "libascendcl",
	"libopenvino", "libzdnn", "libcdsprpc", "libdrm",
};

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static bool ends(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* base's name up to ".so" is one of stems */
static bool stem_in(const char *base, const char *const *stems, size_t n_stems)
{
	const char *so = strstr(base, ".so");
	size_t n;

	if (!so || (so[3] && so[3] != '.'))
		return false;
	n = (size_t)(so - base);
	for (size_t i = 0; i < n_stems; i++)
		if (strlen(stems[i]) == n && !strncmp(base, stems[i], n))
			return true;
	return false;
}

/* A ggml library llmtap knows holds nothing off the host: its name up to ".so". */
static bool host_ggml(const char *base)
{
	const char *so = strstr(base, ".so");

	if (stem_in(base, host_stems, ARRAY_SIZE(host_stems)))
		return true;
	return so && so - base > (long)strlen("libggml-cpu-") && starts(base, "libggml-cpu-");
}

static bool in(const char *s, const char *const *list, size_t n, bool prefix)
{
	for (size_t i = 0; i < n; i++)
		if (prefix ? starts(s, list[i]) : !strcmp(s, list[i]))
			return true;
	return false;
}

bool backend_is_device_lib(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	for (size_t i = 0; i < ARRAY_SIZE(runtimes); i++)
		if (starts(base, runtimes[i]))
			return true;
	return starts(base, "libggml") && !host_ggml(base);
}

struct scan {
	char *name;
	size_t len;
	bool ggml;     /* libggml or libggml-base is mapped: ggml is a shared build */
	bool cpu;      /* its CPU backend's library (libggml-cpu*) is mapped */
	bool no_throw; /* also allow the device backends whose synchronize never throws */
};

static void set_name(struct scan *s, const char *what)
{
	if (s->len)
		snprintf(s->name, s->len, "%s", what);
}

static int on_map(const struct proc_map *m, void *arg)
{
	struct scan *s = arg;
	const char *base;

	if (!m->path[0])
		return 0;
	base = strrchr(m->path, '/');
	base = base ? base + 1 : m->path;
	if (backend_is_device_lib(m->path) &&
	    !(s->no_throw && (stem_in(base, no_throw_stems, ARRAY_SIZE(no_throw_stems)) ||
			      in(base, no_throw_runtimes, ARRAY_SIZE(no_throw_runtimes), true)))) {
		set_name(s, base);
		return 1;
	}
	if (starts(base, "libggml.so") || starts(base, "libggml-base.so"))
		s->ggml = true;
	if (starts(base, "libggml-cpu"))
		s->cpu = true;
	return 0;
}

struct regs {
	struct scan *s;
	bool cpu; /* ggml_backend_cpu_reg: ggml's backends are in the file */
};

static int on_symbol(void *arg, const char *name, bool object, bool dynamic)
{
	struct regs *r = arg;

	(void)dynamic;
	if (object || !ends(name, "_reg"))
		return 0;
	if (!strcmp(name, "ggml_backend_cpu_reg"))
		r->cpu = true;
	if (in(name, host_regs, ARRAY_SIZE(host_regs), false) ||
	    (r->s->no_throw && in(name, no_throw_regs, ARRAY_SIZE(no_throw_regs), false)))
		return 0;
	set_name(r->s, name); /* a device backend's, or one llmtap does not know */
	return 1;
}

static int classify(pid_t pid, const char *core, char *name, size_t len, bool no_throw)
{
	struct scan s = { name, len, false, false, no_throw };
	struct regs r = { &s, false };
	struct elf_file_info info;
	int ret;

	if (len)
		name[0] = '\0';
	ret = proc_for_each_map(pid, on_map, &s);
	if (ret)
		return ret < 0 ? ret : 1;
	/*
	 * ggml linked into the core file (a static build; a libllama with ggml inside):
	 * the backends compiled in register with ggml_backend_<name>_reg, a function
	 * each; host memory only when every one defined is a host backend's, and the
	 * CPU backend's is there (else ggml is elsewhere, or the file is stripped).
	 */
	/*
	 * A shared ggml always has its CPU backend in a library of its own: linked
	 * (libggml needs libggml-cpu) or loaded with the others (GGML_BACKEND_DL, as
	 * Ollama builds it: ggml_backend_load_all, after the exec a daemon attaches at).
	 * Without it the backends are not loaded yet, and which will be is unknown.
	 */
	if (s.ggml && !s.cpu) {
		set_name(&s, "ggml's backends (not loaded yet)");
		return 1;
	}
	if (!core)
		return s.ggml ? 0 : 1;
	ret = elf_each_symbol(core, "ggml_backend_", on_symbol, &r, &info);
	if (ret)
		return 1;
	return s.ggml || r.cpu ? 0 : 1;
}

int target_device_backend(pid_t pid, const char *core, char *name, size_t len)
{
	return classify(pid, core, name, len, false);
}

int target_sync_may_throw(pid_t pid, const char *core, char *name, size_t len)
{
	return classify(pid, core, name, len, true);
}
