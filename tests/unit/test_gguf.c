// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/target/gguf.c: GGUF header metadata without the tensor data. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "target/gguf.h"

enum {
	T_UINT8 = 0, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL,
	T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64,
};

static char tmpdir[] = "/tmp/test_gguf.XXXXXX";

/* ---- a GGUF writer: kv pairs go to body, the header is written at the end ---- */

struct gguf_buf {
	uint8_t *p;
	size_t len, cap;
	uint64_t n_kv;
};

static void put(struct gguf_buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_u8(struct gguf_buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_u32(struct gguf_buf *b, uint32_t v)
{
	uint8_t le[4] = { v, v >> 8, v >> 16, v >> 24 };

	put(b, le, sizeof(le));
}

static void put_u64(struct gguf_buf *b, uint64_t v)
{
	uint8_t le[8];
	int i;

	for (i = 0; i < 8; i++)
		le[i] = v >> (8 * i);
	put(b, le, sizeof(le));
}

static void put_str(struct gguf_buf *b, const char *s)
{
	put_u64(b, strlen(s));
	put(b, s, strlen(s));
}

/* Starts a pair: the key and the value type; the caller writes the value. */
static void kv(struct gguf_buf *b, const char *key, uint32_t type)
{
	put_str(b, key);
	put_u32(b, type);
	b->n_kv++;
}

static void kv_str(struct gguf_buf *b, const char *key, const char *val)
{
	kv(b, key, T_STRING);
	put_str(b, val);
}

static void kv_u32(struct gguf_buf *b, const char *key, uint32_t v)
{
	kv(b, key, T_UINT32);
	put_u32(b, v);
}

static void kv_u64(struct gguf_buf *b, const char *key, uint64_t v)
{
	kv(b, key, T_UINT64);
	put_u64(b, v);
}

static void kv_arr_u32(struct gguf_buf *b, const char *key, uint64_t n)
{
	uint64_t i;

	kv(b, key, T_ARRAY);
	put_u32(b, T_UINT32);
	put_u64(b, n);
	for (i = 0; i < n; i++)
		put_u32(b, (uint32_t)i * 7);
}

static void kv_arr_f32(struct gguf_buf *b, const char *key, uint64_t n)
{
	uint64_t i;

	kv(b, key, T_ARRAY);
	put_u32(b, T_FLOAT32);
	put_u64(b, n);
	for (i = 0; i < n; i++)
		put_u32(b, 0x3f800000); /* 1.0f */
}

static void kv_arr_str(struct gguf_buf *b, const char *key, uint64_t n)
{
	char tok[32];
	uint64_t i;

	kv(b, key, T_ARRAY);
	put_u32(b, T_STRING);
	put_u64(b, n);
	for (i = 0; i < n; i++) {
		snprintf(tok, sizeof(tok), "<tok%llu>", (unsigned long long)i);
		put_str(b, i % 97 == 5 ? "" : tok);
	}
}

/* levels array headers, each holding the next; the innermost holds 2 bytes. */
static void put_nested(struct gguf_buf *b, int levels)
{
	if (levels == 1) {
		put_u32(b, T_UINT8);
		put_u64(b, 2);
		put_u8(b, 1);
		put_u8(b, 2);
		return;
	}
	put_u32(b, T_ARRAY);
	put_u64(b, 1);
	put_nested(b, levels - 1);
}

static void kv_general(struct gguf_buf *b, const char *arch, const char *name, uint32_t ctx)
{
	char key[128];

	kv_str(b, "general.architecture", arch);
	kv_str(b, "general.name", name);
	snprintf(key, sizeof(key), "%s.context_length", arch);
	kv_u32(b, key, ctx);
}

static const char *tmp_path(const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static void write_raw(const char *path, const void *d, size_t n)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fwrite(d, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* The header then body's pairs into name under tmpdir; frees body. */
static const char *write_gguf_n(struct gguf_buf *body, const char *name, uint32_t version,
				uint64_t n_tensors, uint64_t n_kv)
{
	struct gguf_buf f = { 0 };
	const char *path = tmp_path(name);

	put(&f, "GGUF", 4);
	put_u32(&f, version);
	put_u64(&f, n_tensors);
	put_u64(&f, n_kv);
	if (body->len)
		put(&f, body->p, body->len);
	write_raw(path, f.p, f.len);
	free(f.p);
	free(body->p);
	memset(body, 0, sizeof(*body));
	return path;
}

static const char *write_gguf(struct gguf_buf *body, const char *name, uint64_t n_tensors)
{
	return write_gguf_n(body, name, 3, n_tensors, body->n_kv);
}

/* Expect -EINVAL, a one-line reason containing want, and info left alone. */
static void expect_invalid(const char *path, const char *want)
{
	struct gguf_info info, untouched;
	char err[256];

	memset(&info, 0xa5, sizeof(info));
	untouched = info;
	memset(err, 'x', sizeof(err));
	assert_int_equal(gguf_read_info(path, &info, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
	assert_null(strchr(err, '\n'));
	if (want && !strstr(err, want))
		fail_msg("error \"%s\" does not mention \"%s\"", err, want);
	assert_memory_equal(&info, &untouched, sizeof(info));
}

static void read_ok(const char *path, struct gguf_info *info)
{
	char err[256];
	int ret;

	memset(info, 0xa5, sizeof(*info));
	ret = gguf_read_info(path, info, err, sizeof(err));
	if (ret)
		fail_msg("gguf_read_info(%s) = %d: %s", path, ret, err);
	assert_string_equal(err, "");
}

/* ---- valid files ---- */

static void test_basic(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	const char *path;

	(void)state;
	kv_general(&b, "llama", "tiny", 2048);
	path = write_gguf(&b, "basic.gguf", 3);
	read_ok(path, &info);
	assert_string_equal(info.architecture, "llama");
	assert_string_equal(info.name, "tiny");
	assert_int_equal(info.context_length, 2048);
	assert_int_equal(info.version, 3);
	assert_int_equal(info.n_tensors, 3);
}

static void test_version2(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	const char *path;

	(void)state;
	kv_general(&b, "qwen2", "Qwen", 32768);
	path = write_gguf_n(&b, "v2.gguf", 2, 1, b.n_kv);
	read_ok(path, &info);
	assert_string_equal(info.architecture, "qwen2");
	assert_string_equal(info.name, "Qwen");
	assert_int_equal(info.context_length, 32768);
	assert_int_equal(info.version, 2);
	assert_int_equal(info.n_tensors, 1);
}

/* A vocabulary and other arrays first, context_length before the architecture. */
static void test_arrays_first(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	const char *path;

	(void)state;
	kv_str(&b, "tokenizer.ggml.model", "llama");
	kv_arr_str(&b, "tokenizer.ggml.tokens", 32000);
	kv_arr_f32(&b, "tokenizer.ggml.scores", 32000);
	kv_arr_u32(&b, "tokenizer.ggml.token_type", 32000);
	kv_arr_str(&b, "tokenizer.ggml.merges", 0);
	kv_u32(&b, "gpt2.context_length", 1024);
	kv_u32(&b, "llama.context_length", 4096);
	kv_u32(&b, "llama.embedding_length", 64);
	kv_u32(&b, "llam.context_length", 1);
	kv_u32(&b, "xllama.context_length", 2);
	kv_str(&b, "general.name", "vocab first");
	kv_arr_u32(&b, "some.ids", 5);
	kv_str(&b, "general.architecture", "llama");
	kv_u32(&b, "bert.context_length", 512);
	path = write_gguf(&b, "arrays.gguf", 0);
	read_ok(path, &info);
	assert_string_equal(info.architecture, "llama");
	assert_string_equal(info.name, "vocab first");
	assert_int_equal(info.context_length, 4096);
	assert_int_equal(info.version, 3);
	assert_int_equal(info.n_tensors, 0);
}

/* Every order of the three keys, with arrays between them. */
static void test_key_orders(void **state)
{
	static const int orders[6][3] = {
		{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
	};
	struct gguf_info info;
	char key[64];
	int i, k;

	(void)state;
	for (i = 0; i < 6; i++) {
		struct gguf_buf b = { 0 };
		const char *path;

		kv_arr_u32(&b, "a.u32s", 100);
		for (k = 0; k < 3; k++) {
			switch (orders[i][k]) {
			case 0:
				kv_str(&b, "general.architecture", "phi3");
				break;
			case 1:
				kv_str(&b, "general.name", "order");
				break;
			case 2:
				kv_u32(&b, "phi3.context_length", 131072);
				break;
			}
			kv_arr_str(&b, "b.strings", 10 + k);
			snprintf(key, sizeof(key), "llama%d.context_length", k);
			kv_u32(&b, key, 4096 + k);
		}
		path = write_gguf(&b, "orders.gguf", 2);
		read_ok(path, &info);
		assert_string_equal(info.architecture, "phi3");
		assert_string_equal(info.name, "order");
		assert_int_equal(info.context_length, 131072);
		assert_int_equal(info.n_tensors, 2);
	}
}

/* A value of every type, nested and empty arrays, before the general keys. */
static void test_all_types(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	const char *path;
	int t;

	(void)state;
	kv(&b, "t.u8", T_UINT8); put_u8(&b, 0xff);
	kv(&b, "t.i8", T_INT8); put_u8(&b, 0x80);
	kv(&b, "t.u16", T_UINT16); put_u8(&b, 1); put_u8(&b, 2);
	kv(&b, "t.i16", T_INT16); put_u8(&b, 1); put_u8(&b, 2);
	kv(&b, "t.u32", T_UINT32); put_u32(&b, 7);
	kv(&b, "t.i32", T_INT32); put_u32(&b, (uint32_t)-7);
	kv(&b, "t.f32", T_FLOAT32); put_u32(&b, 0x3f800000);
	kv(&b, "t.bool", T_BOOL); put_u8(&b, 1);
	kv(&b, "t.str", T_STRING); put_str(&b, "value");
	kv(&b, "t.u64", T_UINT64); put_u64(&b, UINT64_MAX);
	kv(&b, "t.i64", T_INT64); put_u64(&b, (uint64_t)-1);
	kv(&b, "t.f64", T_FLOAT64); put_u64(&b, 0x3ff0000000000000ull);
	/* an empty array of each element type */
	for (t = T_UINT8; t <= T_FLOAT64; t++) {
		kv(&b, "t.empty", T_ARRAY);
		put_u32(&b, t);
		put_u64(&b, 0);
	}
	kv(&b, "t.bools", T_ARRAY); put_u32(&b, T_BOOL); put_u64(&b, 3);
	put_u8(&b, 0); put_u8(&b, 1); put_u8(&b, 0);
	kv(&b, "t.i64s", T_ARRAY); put_u32(&b, T_INT64); put_u64(&b, 2);
	put_u64(&b, 1); put_u64(&b, 2);
	/* array of 2 arrays: of strings, of uint16 */
	kv(&b, "t.nested", T_ARRAY); put_u32(&b, T_ARRAY); put_u64(&b, 2);
	put_u32(&b, T_STRING); put_u64(&b, 2); put_str(&b, "x"); put_str(&b, "");
	put_u32(&b, T_UINT16); put_u64(&b, 3); put_u32(&b, 0); put_u8(&b, 0); put_u8(&b, 0);
	kv(&b, "t.deep", T_ARRAY); put_nested(&b, 8);
	/* a key of exactly 64 KiB, and an empty key */
	{
		char *key = malloc((64 << 10) + 1);

		assert_non_null(key);
		memset(key, 'k', 64 << 10);
		key[64 << 10] = '\0';
		kv(&b, key, T_UINT8); put_u8(&b, 0);
		free(key);
	}
	kv(&b, "", T_STRING); put_str(&b, "empty key");
	kv(&b, "falcon.context_length", T_STRING); put_str(&b, "not a number");
	kv(&b, "falcon.context_length.x", T_UINT32); put_u32(&b, 9);
	kv_str(&b, "general.architecture", "falcon");
	kv_str(&b, "general.name", "");
	kv(&b, "t.after", T_UINT32); put_u32(&b, 1);
	path = write_gguf(&b, "types.gguf", 0);
	read_ok(path, &info);
	assert_string_equal(info.architecture, "falcon");
	assert_string_equal(info.name, "");
	assert_int_equal(info.context_length, 0); /* a string is no context length */
}

static void test_absent_optional(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	const char *path;

	(void)state;
	kv_u32(&b, "llama.context_length", 4096);
	kv_str(&b, "general.architecture", "gemma");
	kv_arr_str(&b, "tokenizer.ggml.tokens", 50);
	path = write_gguf(&b, "noname.gguf", 0);
	read_ok(path, &info);
	assert_string_equal(info.architecture, "gemma");
	assert_string_equal(info.name, "");
	assert_int_equal(info.context_length, 0);

	/* no pairs at all */
	path = write_gguf(&b, "empty-kv.gguf", 0);
	read_ok(path, &info);
	assert_string_equal(info.architecture, "");
	assert_string_equal(info.name, "");
	assert_int_equal(info.context_length, 0);
	assert_int_equal(info.n_tensors, 0);
}

static void test_context_length_types(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	const char *path;

	(void)state;
	kv_u64(&b, "llama.context_length", 131072);
	kv_str(&b, "general.architecture", "llama");
	path = write_gguf(&b, "ctx64.gguf", 0);
	read_ok(path, &info);
	assert_int_equal(info.context_length, 131072);

	kv_str(&b, "general.architecture", "llama");
	kv_u64(&b, "llama.context_length", 1ull << 40); /* saturates */
	path = write_gguf(&b, "ctxbig.gguf", 0);
	read_ok(path, &info);
	assert_int_equal(info.context_length, UINT32_MAX);

	kv_str(&b, "general.architecture", "llama");
	kv(&b, "llama.context_length", T_INT32); put_u32(&b, 8192);
	path = write_gguf(&b, "ctxi32.gguf", 0);
	read_ok(path, &info);
	assert_int_equal(info.context_length, 8192);

	kv(&b, "llama.context_length", T_INT32); put_u32(&b, (uint32_t)-1);
	kv_str(&b, "general.architecture", "llama");
	path = write_gguf(&b, "ctxneg.gguf", 0);
	read_ok(path, &info);
	assert_int_equal(info.context_length, 0);
}

/* More "*.context_length" keys before the architecture than the reader keeps. */
static void test_many_context_lengths(void **state)
{
	static const char *const archs[] = { "arch3", "arch17", "arch29" };
	static const uint32_t want[] = { 1003, 1017, 1029 };
	struct gguf_info info;
	char key[64];
	size_t a;
	int i;

	(void)state;
	for (a = 0; a < ARRAY_SIZE(archs); a++) {
		struct gguf_buf b = { 0 };
		const char *path;

		kv_str(&b, "general.name", "many");
		for (i = 0; i < 30; i++) {
			snprintf(key, sizeof(key), "arch%d.context_length", i);
			kv_u32(&b, key, 1000 + i);
			kv_arr_str(&b, "filler", 3);
		}
		kv_str(&b, "general.architecture", archs[a]);
		kv_arr_u32(&b, "after", 3);
		path = write_gguf(&b, "many.gguf", 0);
		read_ok(path, &info);
		assert_string_equal(info.architecture, archs[a]);
		assert_string_equal(info.name, "many");
		assert_int_equal(info.context_length, want[a]);
	}
}

/* Once all three are known the rest of the header is not read. */
static void test_stops_early(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	const char *path;

	(void)state;
	kv_general(&b, "llama", "early", 4096);
	put_u64(&b, UINT64_MAX); /* a fourth "key" that would be malformed */
	path = write_gguf_n(&b, "early.gguf", 3, 0, 10);
	read_ok(path, &info);
	assert_string_equal(info.name, "early");
	assert_int_equal(info.context_length, 4096);

	/* without a name it must read on, and finds the garbage */
	kv_str(&b, "general.architecture", "llama");
	kv_u32(&b, "llama.context_length", 4096);
	put_u64(&b, UINT64_MAX);
	path = write_gguf_n(&b, "early2.gguf", 3, 0, 10);
	expect_invalid(path, "key");
}

static void test_long_name(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	char name[300];
	const char *path;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	kv_str(&b, "general.name", name);
	kv_str(&b, "general.architecture", "llama");
	kv_u32(&b, "llama.context_length", 77);
	path = write_gguf(&b, "longname.gguf", 0);
	read_ok(path, &info);
	assert_int_equal(strlen(info.name), sizeof(info.name) - 1);
	assert_memory_equal(info.name, name, sizeof(info.name) - 1);
	assert_int_equal(info.context_length, 77); /* read past the rest of the name */

	/* a name of 3-byte characters cut at 127 bytes ends before the split one (126) */
	{
		struct gguf_buf u = { 0 };
		char wide[3 * 60 + 1];

		for (int i = 0; i < 60; i++)
			memcpy(wide + 3 * i, "\xe4\xb8\xad", 3); /* U+4E2D */
		wide[3 * 60] = '\0';
		kv_str(&u, "general.name", wide);
		kv_str(&u, "general.architecture", "llama");
		kv_u32(&u, "llama.context_length", 78);
		path = write_gguf(&u, "widename.gguf", 0);
		read_ok(path, &info);
		assert_int_equal(strlen(info.name), 126);
		assert_memory_equal(info.name, wide, 126);
		assert_int_equal(info.context_length, 78);
		free(u.p);
	}

	/* 63 bytes of architecture fit, 64 do not */
	memset(name, 'a', 63);
	name[63] = '\0';
	kv_str(&b, "general.architecture", name);
	path = write_gguf(&b, "arch63.gguf", 0);
	read_ok(path, &info);
	assert_string_equal(info.architecture, name);
	memset(name, 'a', 64);
	name[64] = '\0';
	kv_str(&b, "general.architecture", name);
	path = write_gguf(&b, "arch64.gguf", 0);
	expect_invalid(path, "general.architecture");
}

/* The tiny llama model tools/make-model.sh builds, when LLMTAP_MODEL names it. */
static void test_real_model(void **state)
{
	const char *path = getenv("LLMTAP_MODEL");
	struct gguf_info info;
	struct stat st;

	(void)state;
	if (!path || !*path || stat(path, &st)) {
		print_message("LLMTAP_MODEL unset or missing: skipping the real model\n");
		skip();
	}
	read_ok(path, &info);
	assert_string_equal(info.architecture, "llama");
	assert_string_equal(info.name, "llmtap-tiny-llama");
	assert_int_equal(info.context_length, 4096);
	assert_true(info.version == 2 || info.version == 3);
	assert_true(info.n_tensors > 0);
	/* tools/make-tiny-model.py: 2 layers, 4 heads of 16 */
	assert_true(info.attn.plain);
	assert_int_equal(info.attn.n_layer, 2);
	assert_int_equal(info.attn.n_head_kv, 4);
	assert_int_equal(info.attn.head_k, 16);
	assert_int_equal(info.attn.head_v, 16);
	{
		struct gguf_vocab v;
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(gguf_read_model_fd(fd, &info, &v, NULL, 0), 0);
		close(fd);
		/* llama-spm: 32000 tokens, </s> = 2 the only EOS; "hello"-like pieces are not EOG */
		assert_int_equal(v.n_vocab, 32000);
		assert_int_equal(v.eos, 2);
		assert_true(gguf_token_is_eog_sure(&v, 2));
		assert_true(gguf_token_maybe_eog(&v, 2));
		assert_false(gguf_token_maybe_eog(&v, 3000));
		gguf_vocab_free(&v);
	}
}

/* ---- the attention shape ---- */

static void kv_i32_arr(struct gguf_buf *b, const char *key, const uint32_t *v, uint64_t n)
{
	uint64_t i;

	kv(b, key, T_ARRAY);
	put_u32(b, T_INT32);
	put_u64(b, n);
	for (i = 0; i < n; i++)
		put_u32(b, v[i]);
}

static void read_attn(struct gguf_buf *b, const char *name, struct gguf_info *info)
{
	read_ok(write_gguf(b, name, 0), info);
}

static void test_attn_shapes(void **state)
{
	static const uint32_t same[3] = { 2, 2, 2 }, differ[3] = { 2, 4, 2 };
	struct gguf_buf b = { 0 };
	struct gguf_info info;

	(void)state;
	/* MHA: head sizes default to embedding_length / head_count, KV heads to head_count */
	kv_general(&b, "llama", "mha", 4096);
	kv_u32(&b, "llama.block_count", 2);
	kv_u32(&b, "llama.embedding_length", 64);
	kv_u32(&b, "llama.attention.head_count", 4);
	read_attn(&b, "mha.gguf", &info);
	assert_true(info.attn.plain);
	assert_int_equal(info.attn.n_layer, 2);
	assert_int_equal(info.attn.n_head_kv, 4);
	assert_int_equal(info.attn.head_k, 16);
	assert_int_equal(info.attn.head_v, 16);

	/* GQA with explicit head sizes; the keys before general.architecture count too */
	kv_u32(&b, "qwen3.attention.key_length", 128);
	kv_u64(&b, "qwen3.block_count", 28);
	kv_general(&b, "qwen3", "gqa", 40960);
	kv_u32(&b, "qwen3.embedding_length", 1024);
	kv_u32(&b, "qwen3.attention.head_count", 16);
	kv_i32_arr(&b, "qwen3.attention.head_count_kv", same, 3);
	kv_u32(&b, "qwen3.attention.value_length", 96);
	read_attn(&b, "gqa.gguf", &info);
	assert_true(info.attn.plain);
	assert_int_equal(info.attn.n_layer, 28);
	assert_int_equal(info.attn.n_head_kv, 2);
	assert_int_equal(info.attn.head_k, 128);
	assert_int_equal(info.attn.head_v, 96);
	assert_int_equal(info.context_length, 40960);

	/* per-layer KV heads that differ: unknown */
	kv_general(&b, "llama", "var", 4096);
	kv_u32(&b, "llama.block_count", 3);
	kv_u32(&b, "llama.embedding_length", 64);
	kv_u32(&b, "llama.attention.head_count", 4);
	kv_i32_arr(&b, "llama.attention.head_count_kv", differ, 3);
	read_attn(&b, "var.gguf", &info);
	assert_false(info.attn.plain);
	assert_non_null(strstr(info.attn.why, "differ"));
	assert_int_equal(info.attn.n_layer, 0);
}

static void test_attn_unknown(void **state)
{
	static const char *const marks[] = {
		"qwen2.attention.sliding_window", "qwen2.ssm.state_size",
		"qwen2.attention.kv_lora_rank", "qwen2.nextn_predict_layers",
		"qwen2.attention.key_length_swa",
	};
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	size_t i;

	(void)state;
	/* an architecture llmtap has not checked: never guessed, even with every key */
	kv_general(&b, "gemma3", "g", 4096);
	kv_u32(&b, "gemma3.block_count", 2);
	kv_u32(&b, "gemma3.embedding_length", 64);
	kv_u32(&b, "gemma3.attention.head_count", 4);
	read_attn(&b, "gemma.gguf", &info);
	assert_false(info.attn.plain);
	assert_non_null(strstr(info.attn.why, "architecture"));

	/* a checked architecture with a key that says the cache is not plain */
	for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		kv_general(&b, "qwen2", "m", 4096);
		kv_u32(&b, "qwen2.block_count", 2);
		kv_u32(&b, "qwen2.embedding_length", 64);
		kv_u32(&b, "qwen2.attention.head_count", 4);
		kv_u32(&b, marks[i], 8);
		read_attn(&b, "mark.gguf", &info);
		assert_false(info.attn.plain);
		assert_true(info.attn.why[0]);
	}

	/* missing sizes, zero heads, a negative count */
	kv_general(&b, "llama", "nolayers", 4096);
	kv_u32(&b, "llama.embedding_length", 64);
	kv_u32(&b, "llama.attention.head_count", 4);
	read_attn(&b, "nolayers.gguf", &info);
	assert_false(info.attn.plain);
	kv_general(&b, "llama", "zero", 4096);
	kv_u32(&b, "llama.block_count", 2);
	kv_u32(&b, "llama.embedding_length", 64);
	kv_u32(&b, "llama.attention.head_count", 4);
	kv_u32(&b, "llama.attention.head_count_kv", 0);
	read_attn(&b, "zero.gguf", &info);
	assert_false(info.attn.plain);
	kv_general(&b, "llama", "neg", 4096);
	kv_u32(&b, "llama.block_count", 2);
	kv_u32(&b, "llama.embedding_length", 64);
	kv(&b, "llama.attention.head_count", T_INT32);
	put_u32(&b, (uint32_t)-4);
	read_attn(&b, "neg.gguf", &info);
	assert_false(info.attn.plain);

	/* a duplicate shape key is a malformed header, as for the name */
	kv_u32(&b, "llama.block_count", 2);
	kv_general(&b, "llama", "dup", 4096);
	kv_u32(&b, "llama.embedding_length", 64);
	kv_u32(&b, "llama.block_count", 2);
	kv_u32(&b, "llama.attention.head_count", 4);
	read_attn(&b, "dupshape.gguf", &info); /* the start is still good */
	assert_string_equal(info.name, "dup");
	assert_false(info.attn.plain);
}

/* ---- the vocabulary's end-of-generation facts ---- */

static void kv_tokens(struct gguf_buf *b, const char *const *tok, uint64_t n)
{
	uint64_t i;

	kv(b, "tokenizer.ggml.tokens", T_ARRAY);
	put_u32(b, T_STRING);
	put_u64(b, n);
	for (i = 0; i < n; i++)
		put_str(b, tok[i]);
}

static int read_vocab(const char *path, struct gguf_info *info, struct gguf_vocab *v)
{
	char err[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	assert_true(fd >= 0);
	ret = gguf_read_model_fd(fd, info, v, err, sizeof(err));
	close(fd);
	return ret;
}

static void test_vocab_eog(void **state)
{
	static const char *const tok[] = {
		"<unk>", "<s>", "</s>", "hello", "<|im_end|>", "<ctl>", "<user>", "world",
		"<|fim_pad|>", "x", "<|eot_id|>", "y", "z",
	};
	/* normal 1, control 3, user-defined 4 */
	static const uint32_t types[] = { 2, 3, 1, 1, 1, 3, 4, 1, 1, 1, 1, 1, 1 };
	struct gguf_buf b = { 0 };
	struct gguf_vocab v;
	struct gguf_info info;
	int32_t t;

	(void)state;
	kv_general(&b, "llama", "v", 4096);
	kv_tokens(&b, tok, 13);
	kv_i32_arr(&b, "tokenizer.ggml.token_type", types, 13);
	kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
	kv_u32(&b, "tokenizer.ggml.eot_token_id", 10);
	kv_u32(&b, "tokenizer.ggml.fim_sep_token_id", 11);
	kv_u32(&b, "tokenizer.ggml.eom_token_id", 99); /* out of range: llama.cpp ignores it */
	assert_int_equal(read_vocab(write_gguf(&b, "vocab.gguf", 0), &info, &v), 0);
	assert_int_equal(v.n_vocab, 13);
	assert_int_equal(v.eos, 2);
	assert_int_equal(v.eot, 10);
	assert_int_equal(v.eom, -1);
	assert_true(gguf_token_is_eog_sure(&v, 2));
	assert_true(gguf_token_is_eog_sure(&v, 10));
	assert_false(gguf_token_is_eog_sure(&v, 11));
	assert_false(gguf_token_is_eog_sure(&v, -1));
	assert_false(gguf_token_is_eog_sure(&v, 4));
	for (t = 0; t < 13; t++) {
		/* maybe: control (1, 5), user-defined (6), EOG texts (2, 4, 8, 10), ids (11) */
		bool want = t == 1 || t == 2 || t == 4 || t == 5 || t == 6 || t == 8 || t == 10 ||
			    t == 11;

		if (gguf_token_maybe_eog(&v, t) != want)
			fail_msg("token %d maybe_eog %d, want %d", t, !want, want);
	}
	assert_true(gguf_token_maybe_eog(&v, 13));  /* not in the vocabulary: unknown */
	assert_true(gguf_token_maybe_eog(&v, -5));
	gguf_vocab_free(&v);
	assert_null(v.maybe_eog);
	assert_true(gguf_token_maybe_eog(&v, 3)); /* freed: unknown */
	assert_false(gguf_token_is_eog_sure(&v, 2));

	/* no eos key: llama.cpp's default EOS ids may end a generation */
	kv_general(&b, "llama", "v", 4096);
	kv_tokens(&b, tok, 13);
	assert_int_equal(read_vocab(write_gguf(&b, "vocab2.gguf", 0), &info, &v), 0);
	assert_int_equal(v.eos, -1);
	assert_true(gguf_token_maybe_eog(&v, 1));
	assert_true(gguf_token_maybe_eog(&v, 11));
	assert_false(gguf_token_maybe_eog(&v, 3));
	assert_false(gguf_token_maybe_eog(&v, 12));
	gguf_vocab_free(&v);

	/* tokens and types that disagree: unknown, whatever else the file says */
	kv_general(&b, "llama", "v", 4096);
	kv_tokens(&b, tok, 13);
	kv_i32_arr(&b, "tokenizer.ggml.token_type", types, 12);
	kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
	assert_int_equal(read_vocab(write_gguf(&b, "vocab3.gguf", 0), &info, &v), 0);
	assert_int_equal(v.n_vocab, 0);
	assert_null(v.maybe_eog);
	assert_true(gguf_token_maybe_eog(&v, 3));
	assert_false(gguf_token_is_eog_sure(&v, 2));
	gguf_vocab_free(&v);

	/* a tail past the walk's bounds: the name stays, the vocabulary is unknown */
	kv_general(&b, "llama", "tail", 4096);
	kv_tokens(&b, tok, 13);
	put_u64(&b, UINT64_MAX);
	assert_int_equal(read_vocab(write_gguf_n(&b, "vocab4.gguf", 3, 0, 10), &info, &v), 0);
	assert_string_equal(info.name, "tail");
	assert_int_equal(v.n_vocab, 0);
	assert_false(info.attn.plain);
	gguf_vocab_free(&v);
}

/*
 * Review (issue 12): llama.cpp (src/llama-vocab.cpp, load) takes two ids back out of its
 * end-of-generation set after adding the header's EOS/EOT/EOM: "</s>" when the vocabulary
 * has "<|tool_response>" (gemma4/paddleocr, b9842 and later), and "<|end|>" when it has
 * "<|return|>" and "<|call|>" (o200k_harmony, b7698 and later). A header that names such
 * a token as its EOS or EOT is then not "sure": llama-server keeps generating past it,
 * and llmtap would report "stop" for a request it ended on that token for a limit.
 */
static void test_vocab_eog_taken_back(void **state)
{
	static const char *const gemma[] = { "<unk>", "<s>", "</s>", "<|tool_response>", "a" };
	static const char *const harmony[] = { "<|return|>", "<|call|>", "<|end|>", "a", "b" };
	struct gguf_buf b = { 0 };
	struct gguf_vocab v;
	struct gguf_info info;

	(void)state;
	kv_general(&b, "llama", "g", 4096);
	kv_tokens(&b, gemma, 5);
	kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
	assert_int_equal(read_vocab(write_gguf(&b, "takeback1.gguf", 0), &info, &v), 0);
	assert_false(gguf_token_is_eog_sure(&v, 2));
	assert_true(gguf_token_maybe_eog(&v, 2));
	gguf_vocab_free(&v);

	kv_general(&b, "llama", "h", 4096);
	kv_tokens(&b, harmony, 5);
	kv_u32(&b, "tokenizer.ggml.eos_token_id", 0);
	kv_u32(&b, "tokenizer.ggml.eot_token_id", 2);
	assert_int_equal(read_vocab(write_gguf(&b, "takeback2.gguf", 0), &info, &v), 0);
	assert_true(gguf_token_is_eog_sure(&v, 0));
	assert_false(gguf_token_is_eog_sure(&v, 2));
	assert_true(gguf_token_maybe_eog(&v, 2));
	gguf_vocab_free(&v);
}

/* ---- errors ---- */

static void test_missing_file(void **state)
{
	struct gguf_info info;
	char err[128] = "x";

	(void)state;
	assert_int_equal(gguf_read_info(tmp_path("does-not-exist.gguf"), &info, err,
					sizeof(err)), -ENOENT);
	assert_string_equal(err, "");
	assert_int_equal(gguf_read_info(tmpdir, &info, err, sizeof(err)), -EISDIR);
	assert_int_equal(gguf_read_info("/dev/null", &info, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
}

static void test_not_gguf(void **state)
{
	static const char ggml[] = "GGML\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
	const char *path = tmp_path("not.gguf");

	(void)state;
	write_raw(path, ggml, sizeof(ggml) - 1);
	expect_invalid(path, "magic");
	write_raw(path, "GGU", 3);
	expect_invalid(path, "not a GGUF file");
	write_raw(path, "", 0);
	expect_invalid(path, "not a GGUF file");
}

static void test_versions(void **state)
{
	struct gguf_buf b = { 0 };
	const char *path;

	(void)state;
	kv_general(&b, "llama", "v", 1);
	path = write_gguf_n(&b, "v1.gguf", 1, 0, 3);
	expect_invalid(path, "version 1");
	kv_general(&b, "llama", "v", 1);
	path = write_gguf_n(&b, "v4.gguf", 4, 0, 3);
	expect_invalid(path, "version 4");
	kv_general(&b, "llama", "v", 1);
	path = write_gguf_n(&b, "v0.gguf", 0, 0, 3);
	expect_invalid(path, "version 0");
	kv_general(&b, "llama", "v", 1);
	path = write_gguf_n(&b, "be.gguf", 0x03000000, 0, 3);
	expect_invalid(path, "big-endian");
}

/* Cut a valid file at every offset before its end: an error each time. */
static void cut_everywhere(struct gguf_buf *b, const char *name)
{
	struct gguf_info info;
	const char *path = write_gguf(b, name, 0);
	char err[256];
	struct stat st;
	off_t cut;

	read_ok(path, &info);
	assert_int_equal(stat(path, &st), 0);
	for (cut = st.st_size - 1; cut >= 0; cut--) {
		assert_int_equal(truncate(path, cut), 0);
		err[0] = '\0';
		if (gguf_read_info(path, &info, err, sizeof(err)) != -EINVAL || !err[0])
			fail_msg("cut at %lld of %lld: not -EINVAL with a reason",
				 (long long)cut, (long long)st.st_size);
	}
}

static void test_truncated(void **state)
{
	struct gguf_buf b = { 0 };

	(void)state;
	/* the last pair is one of the three wanted */
	kv_arr_str(&b, "tokenizer.ggml.tokens", 6);
	kv_arr_u32(&b, "tokenizer.ggml.token_type", 6);
	kv_u32(&b, "llama.context_length", 4096);
	kv(&b, "t.nested", T_ARRAY); put_nested(&b, 3);
	kv(&b, "t.f64", T_FLOAT64); put_u64(&b, 0);
	kv_str(&b, "general.name", "cut");
	kv(&b, "t.u16", T_UINT16); put_u8(&b, 0); put_u8(&b, 0);
	kv_str(&b, "general.architecture", "llama");
	cut_everywhere(&b, "cut1.gguf");

	/* no name: every pair is read */
	kv_str(&b, "general.architecture", "llama");
	kv_u64(&b, "llama.context_length", 4096);
	kv_arr_str(&b, "tokenizer.ggml.tokens", 4);
	kv(&b, "t.bool", T_BOOL); put_u8(&b, 1);
	cut_everywhere(&b, "cut2.gguf");
}

static void test_huge_lengths(void **state)
{
	struct gguf_buf b = { 0 };
	const char *path;

	(void)state;
	/* a string value of 2^63 bytes */
	kv(&b, "general.name", T_STRING); put_u64(&b, 1ull << 63);
	path = write_gguf(&b, "str63.gguf", 0);
	expect_invalid(path, "exceeds");
	kv(&b, "other", T_STRING); put_u64(&b, 1ull << 63);
	path = write_gguf(&b, "str63b.gguf", 0);
	expect_invalid(path, "exceeds");
	/* just over 16 MiB */
	kv(&b, "other", T_STRING); put_u64(&b, (16 << 20) + 1);
	path = write_gguf(&b, "str16m.gguf", 0);
	expect_invalid(path, "exceeds");
	/* a string longer than the file */
	kv(&b, "other", T_STRING); put_u64(&b, 1000); put(&b, "abc", 3);
	path = write_gguf(&b, "strlong.gguf", 0);
	expect_invalid(path, "truncated");
	/* an array element of 2^63 bytes */
	kv(&b, "tokens", T_ARRAY); put_u32(&b, T_STRING); put_u64(&b, 2);
	put_str(&b, "ok"); put_u64(&b, 1ull << 63);
	path = write_gguf(&b, "elem63.gguf", 0);
	expect_invalid(path, "exceeds");

	/* array counts of 2^62 */
	kv(&b, "ids", T_ARRAY); put_u32(&b, T_UINT32); put_u64(&b, 1ull << 62);
	put_u32(&b, 1);
	path = write_gguf(&b, "arr62.gguf", 0);
	expect_invalid(path, "array");
	kv(&b, "tokens", T_ARRAY); put_u32(&b, T_STRING); put_u64(&b, 1ull << 62);
	put_str(&b, "a");
	path = write_gguf(&b, "arrstr62.gguf", 0);
	expect_invalid(path, "array");
	kv(&b, "bytes", T_ARRAY); put_u32(&b, T_UINT8); put_u64(&b, UINT64_MAX);
	path = write_gguf(&b, "arrmax.gguf", 0);
	expect_invalid(path, "array");
	/* more uint64 than the bytes left can hold, fewer than the bytes */
	kv(&b, "wide", T_ARRAY); put_u32(&b, T_UINT64); put_u64(&b, 16);
	put_u64(&b, 0); put_u64(&b, 0); put_u64(&b, 0);
	put_u64(&b, 0); put_u64(&b, 0); put_u64(&b, 0);
	path = write_gguf(&b, "arrwide.gguf", 0);
	expect_invalid(path, "array");
	kv(&b, "arrs", T_ARRAY); put_u32(&b, T_ARRAY); put_u64(&b, 1ull << 62);
	path = write_gguf(&b, "arrarr62.gguf", 0);
	expect_invalid(path, "array");

	/* keys over 64 KiB: 2^63 bytes, and 64 KiB + 1 bytes actually there */
	put_u64(&b, 1ull << 63); put_u32(&b, T_UINT8); put_u8(&b, 0);
	path = write_gguf_n(&b, "key63.gguf", 3, 0, 1);
	expect_invalid(path, "key");
	{
		size_t n = (64 << 10) + 1;
		char *key = malloc(n + 1);

		assert_non_null(key);
		memset(key, 'k', n);
		key[n] = '\0';
		kv(&b, key, T_UINT8); put_u8(&b, 0);
		free(key);
		path = write_gguf(&b, "key64k.gguf", 0);
		expect_invalid(path, "key");
	}
}

static void test_malformed(void **state)
{
	struct gguf_buf b = { 0 };
	const char *path;

	(void)state;
	kv_general(&b, "llama", "n", 1);
	path = write_gguf_n(&b, "kv1m.gguf", 3, 0, 1000001);
	expect_invalid(path, "metadata pairs");
	kv_general(&b, "llama", "n", 1);
	path = write_gguf_n(&b, "tensors.gguf", 3, 1ull << 40, 3);
	expect_invalid(path, "tensors");

	kv(&b, "t.bad", 13); put_u32(&b, 0);
	path = write_gguf(&b, "type13.gguf", 0);
	expect_invalid(path, "type 13");
	kv(&b, "t.bad", T_ARRAY); put_u32(&b, 0x80000000u); put_u64(&b, 1);
	path = write_gguf(&b, "etype.gguf", 0);
	expect_invalid(path, "element type");
	kv(&b, "t.deep", T_ARRAY); put_nested(&b, 9);
	path = write_gguf(&b, "deep.gguf", 0);
	expect_invalid(path, "nested");

	kv(&b, "general.architecture", T_UINT32); put_u32(&b, 1);
	path = write_gguf(&b, "archtype.gguf", 0);
	expect_invalid(path, "not a string");
	kv(&b, "general.name", T_ARRAY); put_u32(&b, T_UINT8); put_u64(&b, 0);
	path = write_gguf(&b, "nametype.gguf", 0);
	expect_invalid(path, "not a string");

	kv_str(&b, "general.architecture", "llama");
	kv_str(&b, "general.architecture", "gpt2");
	path = write_gguf(&b, "dup.gguf", 0);
	expect_invalid(path, "duplicate");
	kv_u32(&b, "llama.context_length", 1);
	kv_u32(&b, "llama.context_length", 2);
	kv_str(&b, "general.architecture", "llama");
	path = write_gguf(&b, "dupctx.gguf", 0);
	expect_invalid(path, "duplicate");
	kv_u32(&b, "llama.context_length", 1);
	kv_str(&b, "general.architecture", "llama");
	kv_u64(&b, "llama.context_length", 2);
	path = write_gguf(&b, "dupctx2.gguf", 0);
	expect_invalid(path, "duplicate");
}

static void test_err_buffers(void **state)
{
	const char *path = tmp_path("bad.gguf");
	struct gguf_info info;
	char err[8];

	(void)state;
	write_raw(path, "NOPE\3\0\0\0", 8);
	assert_int_equal(gguf_read_info(path, &info, NULL, 0), -EINVAL);
	assert_int_equal(gguf_read_info(path, &info, err, 0), -EINVAL);
	assert_int_equal(gguf_read_info(path, &info, err, sizeof(err)), -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(gguf_read_info(tmp_path("nope"), &info, NULL, 0), -ENOENT);
}


/* ---- a hostile file: what it claims costs llmtap a bounded walk ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * head, then a hole up to tail_at (zeros on disk for free: a sparse file), then
 * tail's pairs: head's last pair is an array whose elements the hole holds.
 */
static const char *write_sparse(struct gguf_buf *head, struct gguf_buf *tail, uint64_t tail_at,
				const char *name)
{
	const char *path = tmp_path(name);
	struct gguf_buf f = { 0 };
	int fd;

	put(&f, "GGUF", 4);
	put_u32(&f, 3);
	put_u64(&f, 0);
	put_u64(&f, head->n_kv + tail->n_kv);
	put(&f, head->p, head->len);
	assert_true(f.len <= tail_at);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, f.p, f.len, 0), (ssize_t)f.len);
	assert_int_equal(pwrite(fd, tail->p, tail->len, (off_t)tail_at), (ssize_t)tail->len);
	assert_int_equal(close(fd), 0);
	free(f.p);
	free(head->p);
	free(tail->p);
	memset(head, 0, sizeof(*head));
	memset(tail, 0, sizeof(*tail));
	return path;
}

/* Expect a quick -EINVAL saying the metadata is too big, and no name. */
static void expect_bounded(const char *path)
{
	double t0 = now_s(), took;

	expect_invalid(path, "larger than llmtap reads");
	took = now_s() - t0;
	print_message("%s: refused in %.1f ms\n", strrchr(path, '/') + 1, took * 1e3);
	if (took > 1.0)
		fail_msg("%s: %.2f s: the walk is not bounded", path, took);
}

static void test_sparse_huge_array(void **state)
{
	const uint64_t size = 1ull << 30; /* 1 GiB claimed, a few KiB on disk */
	struct gguf_buf head = { 0 }, tail = { 0 };
	uint64_t at;
	const char *path;

	(void)state;
	/* 2^27 empty strings (8 bytes each: their lengths) in the hole, a name after them:
	 * walked one by one, they once cost 18 s; the name must not be believed */
	kv_str(&head, "general.architecture", "llama");
	kv(&head, "tokenizer.ggml.tokens", T_ARRAY);
	put_u32(&head, T_STRING);
	at = 4 + 4 + 8 + 8 + head.len + 8;
	put_u64(&head, (size - at) / 8);
	kv_str(&tail, "general.name", "not-this-one");
	path = write_sparse(&head, &tail, at + (size - at) / 8 * 8, "sparse-str.gguf");
	expect_bounded(path);

	/* a byte array of 1 GiB: skipped in one step, but what follows is past the bound */
	kv_str(&head, "general.architecture", "llama");
	kv(&head, "tokenizer.ggml.precompiled_charsmap", T_ARRAY);
	put_u32(&head, T_UINT8);
	at = 4 + 4 + 8 + 8 + head.len + 8;
	put_u64(&head, size - at);
	kv_str(&tail, "general.name", "not-this-one");
	path = write_sparse(&head, &tail, size, "sparse-u8.gguf");
	expect_bounded(path);

	/* arrays of empty arrays: 16 bytes each (element type, count), the fewest bytes
	 * per value walked */
	kv(&head, "t.arrs", T_ARRAY);
	put_u32(&head, T_ARRAY);
	at = 4 + 4 + 8 + 8 + head.len + 8;
	put_u64(&head, (size - at) / 12);
	kv_str(&tail, "general.name", "not-this-one");
	path = write_sparse(&head, &tail, at + (size - at) / 12 * 12, "sparse-arr.gguf");
	expect_bounded(path);
}

/* What a real model holds (a 262k-token vocabulary, its merges, scores and types)
 * is well within the bounds, with the name after it. */
static void test_big_real_vocab(void **state)
{
	struct gguf_buf b = { 0 };
	struct gguf_info info;
	const char *path;
	double t0;

	(void)state;
	kv_str(&b, "general.architecture", "gemma3");
	kv_arr_str(&b, "tokenizer.ggml.tokens", 262144);
	kv_arr_f32(&b, "tokenizer.ggml.scores", 262144);
	kv_arr_u32(&b, "tokenizer.ggml.token_type", 262144);
	kv_arr_str(&b, "tokenizer.ggml.merges", 500000);
	kv_str(&b, "general.name", "big vocab");
	kv_u32(&b, "gemma3.context_length", 131072);
	path = write_gguf(&b, "bigvocab.gguf", 0);
	t0 = now_s();
	read_ok(path, &info);
	print_message("762144 strings walked in %.1f ms\n", (now_s() - t0) * 1e3);
	assert_string_equal(info.name, "big vocab");
	assert_int_equal(info.context_length, 131072);
	{
		/* and the vocabulary read: every token compared, a 32 KiB bitmap */
		struct gguf_vocab v;
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		assert_true(fd >= 0);
		t0 = now_s();
		assert_int_equal(gguf_read_model_fd(fd, &info, &v, NULL, 0), 0);
		print_message("with the vocabulary: %.1f ms\n", (now_s() - t0) * 1e3);
		close(fd);
		assert_int_equal(v.n_vocab, 262144);
		assert_int_equal(v.eos, -1);
		assert_true(gguf_token_maybe_eog(&v, 1));   /* no EOS key: llama.cpp's defaults */
		assert_true(gguf_token_maybe_eog(&v, 11));
		assert_false(gguf_token_maybe_eog(&v, 3));  /* "<tok3>", type 21: never EOG */
		assert_false(gguf_token_maybe_eog(&v, 5));
		gguf_vocab_free(&v);
	}
}

/* A FIFO is refused at once (opened non-blocking), not waited on. */
static void test_fifo(void **state)
{
	const char *path = tmp_path("fifo.gguf");
	struct gguf_info info;
	char err[128];

	(void)state;
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10); /* a reader that waits for a writer dies here instead */
	assert_int_equal(gguf_read_info(path, &info, err, sizeof(err)), -EINVAL);
	alarm(0);
	assert_non_null(strstr(err, "not a regular file"));
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	struct dirent *de;
	DIR *d = opendir(tmpdir);

	(void)state;
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlink(tmp_path(de->d_name));
	closedir(d);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_version2),
		cmocka_unit_test(test_arrays_first),
		cmocka_unit_test(test_key_orders),
		cmocka_unit_test(test_all_types),
		cmocka_unit_test(test_absent_optional),
		cmocka_unit_test(test_context_length_types),
		cmocka_unit_test(test_many_context_lengths),
		cmocka_unit_test(test_stops_early),
		cmocka_unit_test(test_long_name),
		cmocka_unit_test(test_real_model),
		cmocka_unit_test(test_attn_shapes),
		cmocka_unit_test(test_attn_unknown),
		cmocka_unit_test(test_vocab_eog),
		cmocka_unit_test(test_vocab_eog_taken_back),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_not_gguf),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_huge_lengths),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_err_buffers),
		cmocka_unit_test(test_sparse_huge_array),
		cmocka_unit_test(test_big_real_vocab),
		cmocka_unit_test(test_fifo),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
