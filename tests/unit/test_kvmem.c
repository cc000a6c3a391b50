// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/model/kvmem.c: KV-cache bytes from the model's shape and the context. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "llmtap_events.h"
#include "llmtap_offsets.h"
#include "model/gauges.h"
#include "model/kvmem.h"
#include "target/backend.h"
#include "target/gguf.h"
#include "target/layout.h"

enum { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, IQ4_NL = 20, BF16 = 30, Q2_K = 10 };

static const struct gguf_attn mha = { .plain = true, .n_layer = 2, .n_head_kv = 4, .head_k = 16,
				      .head_v = 16 };
/* Llama 3 8B: 32 layers, 8 KV heads of 128 */
static const struct gguf_attn gqa = { .plain = true, .n_layer = 32, .n_head_kv = 8, .head_k = 128,
				      .head_v = 128 };

static void put32(uint8_t *raw, size_t at, uint32_t v)
{
	raw[at] = v & 0xff;
	raw[at + 1] = v >> 8 & 0xff;
	raw[at + 2] = v >> 16 & 0xff;
	raw[at + 3] = v >> 24;
}

static enum kv_layout layout_of(int build, const char *commit)
{
	struct llama_version v = { .build = build };

	snprintf(v.commit, sizeof(v.commit), "%s", commit);
	return layout_kv(&v);
}

static void test_layout(void **state)
{
	(void)state;
	/* node-llama-cpp's bundles say build 1: known by their commits */
	assert_int_equal(layout_of(1, "de3ff81"), KV_LAYOUT_B9842);
	assert_int_equal(layout_of(1, "c2fd87ef4253"), KV_LAYOUT_B9842);
	assert_int_equal(layout_of(1, "d654a8e"), KV_LAYOUT_B9842);
	assert_int_equal(layout_of(1, "b10e98a"), KV_LAYOUT_B7698);
	assert_int_equal(layout_of(-1, "79efbb1"), KV_LAYOUT_B7698);
	assert_int_equal(layout_of(-1, "aa3f5d0"), KV_LAYOUT_B5640);
	assert_int_equal(layout_of(8390, "b10e98aadb3e"), KV_LAYOUT_B7698);
	/* by commit only: a build number (a fork counts its own) picks nothing, not even
	 * a checked build's own number or one between two checked builds of one layout */
	assert_int_equal(layout_of(5640, ""), KV_LAYOUT_UNKNOWN);
	assert_int_equal(layout_of(8000, ""), KV_LAYOUT_UNKNOWN);
	assert_int_equal(layout_of(10000, "0123abc"), KV_LAYOUT_UNKNOWN);
	assert_int_equal(layout_of(10361, "c2fd87e0"), KV_LAYOUT_UNKNOWN); /* not its commit */
	assert_int_equal(layout_of(1, "de3f"), KV_LAYOUT_UNKNOWN); /* too short to tell */
	assert_int_equal(layout_of(-1, ""), KV_LAYOUT_UNKNOWN);
}

static void test_decode(void **state)
{
	uint8_t raw[LLMTAP_CPARAMS_LEN];
	const uint32_t params[4] = { 1000, 2048, 512, 4 };
	struct kv_context c;

	(void)state;
	/* today's layout: q8_0 / q4_0, per-sequence streams, offload */
	memset(raw, 0, sizeof(raw));
	put32(raw, LLAMA_CPARAMS_B9842_TYPE_K, Q8_0);
	put32(raw, LLAMA_CPARAMS_B9842_TYPE_V, Q4_0);
	raw[LLAMA_CPARAMS_B9842_OFFLOAD_KQV] = 1;
	kvmem_decode_context(KV_LAYOUT_B9842, raw, sizeof(raw), params, &c);
	assert_true(c.known);
	assert_int_equal(c.type_k, Q8_0);
	assert_int_equal(c.type_v, Q4_0);
	assert_true(c.offload_kqv);
	assert_false(c.kv_unified);
	assert_int_equal(c.n_ctx, 1000);
	assert_int_equal(c.n_seq_max, 4);
	/* the same bytes under b7698's layout read other fields */
	memset(raw, 0, sizeof(raw));
	put32(raw, LLAMA_CPARAMS_B7698_TYPE_K, F16);
	put32(raw, LLAMA_CPARAMS_B7698_TYPE_V, F16);
	raw[LLAMA_CPARAMS_B7698_KV_UNIFIED] = 1;
	kvmem_decode_context(KV_LAYOUT_B7698, raw, sizeof(raw), params, &c);
	assert_true(c.known);
	assert_int_equal(c.type_k, F16);
	assert_true(c.kv_unified);
	assert_false(c.offload_kqv);
	/* b5640: flash_attn bool; one unified cache */
	memset(raw, 0, sizeof(raw));
	put32(raw, LLAMA_CPARAMS_B5640_TYPE_K, BF16);
	put32(raw, LLAMA_CPARAMS_B5640_TYPE_V, F32);
	raw[LLAMA_CPARAMS_B5640_FLASH_ATTN] = 1;
	kvmem_decode_context(KV_LAYOUT_B5640, raw, LLAMA_CPARAMS_SIZE_MIN, params, &c);
	assert_true(c.known);
	assert_true(c.flash_attn);
	assert_true(c.kv_unified);
	assert_int_equal(c.type_k, BF16);
	assert_int_equal(c.type_v, F32);
	/* too few bytes, an unknown layout: unknown */
	kvmem_decode_context(KV_LAYOUT_B9842, raw, LLAMA_CPARAMS_B9842_KV_UNIFIED, params, &c);
	assert_false(c.known);
	kvmem_decode_context(KV_LAYOUT_UNKNOWN, raw, sizeof(raw), params, &c);
	assert_false(c.known);
	kvmem_decode_context(KV_LAYOUT_B5640, raw, 0, params, &c);
	assert_false(c.known);
}

static void test_row_bytes(void **state)
{
	(void)state;
	assert_int_equal(kvmem_row_bytes(F32, 64), 256);
	assert_int_equal(kvmem_row_bytes(F16, 64), 128);
	assert_int_equal(kvmem_row_bytes(BF16, 64), 128);
	assert_int_equal(kvmem_row_bytes(Q8_0, 64), 68);   /* 2 blocks of 34 */
	assert_int_equal(kvmem_row_bytes(Q4_0, 1024), 576); /* 32 blocks of 18 */
	assert_int_equal(kvmem_row_bytes(IQ4_NL, 32), 18);
	assert_int_equal(kvmem_row_bytes(7, 32), 24);       /* q5_1 */
	assert_int_equal(kvmem_row_bytes(Q8_0, 48), 0);     /* not whole blocks */
	assert_int_equal(kvmem_row_bytes(Q2_K, 256), 0);    /* not a KV cache type llmtap sizes */
	assert_int_equal(kvmem_row_bytes(-1, 64), 0);
	assert_int_equal(kvmem_row_bytes(F16, 0), 0);
	assert_string_equal(kvmem_type_name(Q8_0), "q8_0");
	assert_string_equal(kvmem_type_name(F16), "f16");
	assert_null(kvmem_type_name(Q2_K));
}

static void test_bytes_per_cell(void **state)
{
	struct gguf_attn odd = gqa, unknown = { .plain = false, .n_layer = 2, .n_head_kv = 4,
						.head_k = 16, .head_v = 16 };

	(void)state;
	/* the tiny model: 2 layers x (K 64 + V 64 halves) */
	assert_int_equal(kvmem_bytes_per_cell(&mha, F16, F16), 2 * (128 + 128));
	assert_int_equal(kvmem_bytes_per_cell(&mha, F32, F16), 2 * (256 + 128));
	/* Llama 3 8B f16: 128 KiB per token, as llama.cpp reports (32 x 2 x 1024 x 2) */
	assert_int_equal(kvmem_bytes_per_cell(&gqa, F16, F16), 131072);
	assert_int_equal(kvmem_bytes_per_cell(&gqa, Q8_0, Q8_0), 32 * 2 * 32 * 34);
	assert_int_equal(kvmem_bytes_per_cell(&gqa, Q8_0, F16), 32 * (32 * 34 + 2048));
	/* different K and V head sizes */
	odd.head_v = 64;
	assert_int_equal(kvmem_bytes_per_cell(&odd, F16, F16), 32 * (2048 + 1024));
	/* unknown: a shape that is not plain, a type or a row llmtap does not size */
	assert_int_equal(kvmem_bytes_per_cell(&unknown, F16, F16), 0);
	assert_int_equal(kvmem_bytes_per_cell(NULL, F16, F16), 0);
	assert_int_equal(kvmem_bytes_per_cell(&mha, Q2_K, F16), 0);
	/* ggml_row_size of the layer's row (n_head_kv x head): whole blocks or unknown */
	odd.head_k = 40; /* 8 x 40 = 320 = 10 blocks of 32 */
	assert_int_equal(kvmem_bytes_per_cell(&odd, Q8_0, F16), 32 * (10 * 34 + 1024));
	odd.n_head_kv = 1; /* 40: not whole blocks */
	assert_int_equal(kvmem_bytes_per_cell(&odd, Q8_0, F16), 0);
}

static struct kv_context ctx(uint32_t n_ctx, uint32_t n_seq, bool unified, bool fa)
{
	return (struct kv_context){ .known = true, .n_ctx = n_ctx, .n_seq_max = n_seq,
				    .kv_unified = unified, .flash_attn = fa, .type_k = F16,
				    .type_v = F16 };
}

static void test_cells(void **state)
{
	struct kv_context c;

	(void)state;
	/* b7698 and later: padded to 256; per sequence streams of pad(n_ctx / n_seq, 256) */
	c = ctx(1000, 2, false, false);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B9842, &c, 4096), 1024);
	c = ctx(1000, 3, false, false);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B9842, &c, 4096), 3 * 512); /* 1024 / 3 = 341 -> 512 */
	c = ctx(1000, 3, true, false);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B7698, &c, 4096), 1024);
	c = ctx(4096, 4, false, false);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B7698, &c, 0), 4096);
	c = ctx(0, 1, false, false); /* 0: the model's context length */
	assert_int_equal(kvmem_cells(KV_LAYOUT_B9842, &c, 4000), 4096);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B9842, &c, 0), 0);
	c = ctx(1000, 0, false, false);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B9842, &c, 4096), 0);
	/* b5640: one cache of n_ctx padded to 32, or 256 with flash attention */
	c = ctx(1000, 4, true, false);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B5640, &c, 4096), 1024);
	c = ctx(1001, 4, true, false);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B5640, &c, 4096), 1024);
	c = ctx(1030, 4, true, false);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B5640, &c, 4096), 1056);
	c = ctx(1030, 4, true, true);
	assert_int_equal(kvmem_cells(KV_LAYOUT_B5640, &c, 4096), 1280);
	/* an unknown layout or context */
	assert_int_equal(kvmem_cells(KV_LAYOUT_UNKNOWN, &c, 4096), 0);
	c.known = false;
	assert_int_equal(kvmem_cells(KV_LAYOUT_B9842, &c, 4096), 0);
}

static void test_describe(void **state)
{
	struct kv_context c = ctx(1000, 2, false, false);
	struct tm_kv_mem m;

	(void)state;
	kvmem_describe(KV_LAYOUT_B9842, &c, &mha, 4096, 0, &m);
	assert_int_equal(m.bytes_per_cell, 512);
	assert_int_equal(m.cells_capacity, 1024);
	assert_string_equal(m.type_k, "f16");
	assert_string_equal(m.type_v, "f16");
	assert_string_equal(m.device, "cpu");
	/* a device backend: where the layers are is not known, unless not offloaded */
	kvmem_describe(KV_LAYOUT_B9842, &c, &mha, 4096, 1, &m);
	assert_string_equal(m.device, "cpu"); /* offload_kqv false */
	c.offload_kqv = true;
	kvmem_describe(KV_LAYOUT_B9842, &c, &mha, 4096, 1, &m);
	assert_null(m.device);
	kvmem_describe(KV_LAYOUT_B9842, &c, &mha, 4096, -1, &m);
	assert_null(m.device);
	assert_int_equal(m.bytes_per_cell, 512);
	/* no context creation seen: nothing known, not even the types */
	kvmem_describe(KV_LAYOUT_B9842, NULL, &mha, 4096, 0, &m);
	assert_int_equal(m.bytes_per_cell, 0);
	assert_int_equal(m.cells_capacity, 0);
	assert_null(m.type_k);
	assert_null(m.device);
}

static void test_device_libs(void **state)
{
	(void)state;
	assert_true(backend_is_device_lib("/opt/llama/lib/libggml-cuda.so"));
	assert_true(backend_is_device_lib("/usr/lib/x86_64-linux-gnu/libvulkan.so.1.3.239"));
	assert_true(backend_is_device_lib("/usr/local/cuda/lib64/libcudart.so.12"));
	assert_true(backend_is_device_lib("/usr/lib/libcuda.so.1"));
	assert_true(backend_is_device_lib("libggml-rpc.so"));
	assert_false(backend_is_device_lib("/opt/llama/lib/libggml-cpu-haswell.so"));
	assert_false(backend_is_device_lib("/opt/llama/lib/libggml-base.so"));
	assert_false(backend_is_device_lib("/opt/llama/lib/libggml-blas.so"));
	assert_false(backend_is_device_lib("/usr/lib/libcudaish/libc.so.6"));
	assert_false(backend_is_device_lib(""));
}

/*
 * Review (issue 12): ggml's backends in today's tree (ggml/src/ggml-*) include two device
 * backends the list does not name: ggml-virtgpu (a GPU through virtio) and ggml-et (an
 * accelerator). A target mapping one holds its offloaded layers' cache off the host, but
 * it maps no listed library, so kv_memory() passes device_lib 0 and the cache is said to be
 * on "cpu". Unknown libggml-* names must not count as host memory.
 */
static void test_device_libs_all_of_ggml(void **state)
{
	(void)state;
	assert_true(backend_is_device_lib("/opt/llama/lib/libggml-virtgpu.so"));
	assert_true(backend_is_device_lib("/opt/llama/lib/libggml-et.so"));
}

/* Host-only ggml libraries by their exact names (a versioned .so too); anything else
 * named libggml* is a device, or a backend llmtap does not know: not host memory. */
static void test_device_libs_host_only(void **state)
{
	(void)state;
	assert_false(backend_is_device_lib("/opt/llama/lib/libggml.so.0.25.1"));
	assert_false(backend_is_device_lib("/opt/llama/lib/libggml-base.so.0"));
	assert_false(backend_is_device_lib("/opt/llama/lib/libggml-cpu.so"));
	assert_false(backend_is_device_lib("/opt/llama/lib/libggml-zendnn.so"));
	assert_true(backend_is_device_lib("/opt/llama/lib/libggml-zdnn.so"));
	assert_true(backend_is_device_lib("/opt/llama/lib/libggml-cpu-.so"));
	assert_true(backend_is_device_lib("/opt/llama/lib/libggml-basement.so"));
	assert_true(backend_is_device_lib("/opt/llama/lib/libggml-next"));
	assert_true(backend_is_device_lib("/usr/lib/libdrm.so.2"));
}

/*
 * ggml linked into the file with llama.cpp (a static build): the backends compiled in
 * are their ggml_backend_<name>_reg functions. This test binary defines the CPU and
 * BLAS backends' (below), maps no libggml and no GPU runtime: host memory, 0. Without
 * the file to look at, and with ggml nowhere, unknown: 1.
 */
void ggml_backend_cpu_reg(void);
void ggml_backend_blas_reg(void);
void ggml_backend_cpu_reg(void)
{
}
void ggml_backend_blas_reg(void)
{
}

static void test_device_static(void **state)
{
	char name[64];

	(void)state;
	ggml_backend_cpu_reg();
	ggml_backend_blas_reg();
	assert_int_equal(target_device_backend(getpid(), "/proc/self/exe", name, sizeof(name)), 0);
	assert_int_equal(target_device_backend(getpid(), NULL, name, sizeof(name)), 1);
	assert_int_equal(target_device_backend(getpid(), "/nonexistent", name, sizeof(name)), 1);
}

/* Map a copy of a harmless library (zlib) under name in dir, as a process loads a
 * ggml library: what llmtap reads is the mapping's file name. */
static void *map_as(const char *dir, const char *name)
{
	char path[256], cmd[700];
	void *h;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(cmd, sizeof(cmd), "cp /lib/x86_64-linux-gnu/libz.so.1 '%s' 2>/dev/null || "
		 "cp /usr/lib/x86_64-linux-gnu/libz.so.1 '%s'", path, path);
	assert_int_equal(system(cmd), 0);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	return h;
}

/* A shared ggml whose backends are not loaded yet (GGML_BACKEND_DL before
 * ggml_backend_load_all: a daemon attaches at the exec) is no host-only process; once
 * its CPU backend is there it is, until a device backend comes (ggml-cuda's
 * synchronize aborts, ggml-vulkan's throws). Read from this process's own maps. */
static void test_backends_of_a_process(void **state)
{
	char dir[] = "/tmp/llmtap-test-backends-XXXXXX", name[64], cmd[128];
	void *h[4];
	(void)state;

	assert_non_null(mkdtemp(dir));
	h[0] = map_as(dir, "libggml-base.so");
	assert_int_equal(target_device_backend(getpid(), NULL, name, sizeof(name)), 1);
	assert_string_equal(name, "ggml's backends (not loaded yet)");
	assert_int_equal(target_sync_may_throw(getpid(), NULL, name, sizeof(name)), 1);
	h[1] = map_as(dir, "libggml-cpu-haswell.so");
	assert_int_equal(target_device_backend(getpid(), NULL, name, sizeof(name)), 0);
	assert_int_equal(target_sync_may_throw(getpid(), NULL, name, sizeof(name)), 0);
	h[2] = map_as(dir, "libggml-cuda.so");
	assert_int_equal(target_device_backend(getpid(), NULL, name, sizeof(name)), 1);
	assert_string_equal(name, "libggml-cuda.so");
	assert_int_equal(target_sync_may_throw(getpid(), NULL, name, sizeof(name)), 0);
	h[3] = map_as(dir, "libggml-vulkan.so");
	assert_int_equal(target_sync_may_throw(getpid(), NULL, name, sizeof(name)), 1);
	assert_string_equal(name, "libggml-vulkan.so");
	for (int i = 3; i >= 0; i--)
		dlclose(h[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_row_bytes),
		cmocka_unit_test(test_bytes_per_cell),
		cmocka_unit_test(test_cells),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_device_libs),
		cmocka_unit_test(test_device_libs_all_of_ggml),
		cmocka_unit_test(test_device_libs_host_only),
		cmocka_unit_test(test_device_static),
		cmocka_unit_test(test_backends_of_a_process), /* last: it maps libraries */
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
