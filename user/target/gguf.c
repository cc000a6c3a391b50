// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * GGUF v2/v3 header reader. Walks the metadata key/value pairs with bounded
 * reads and seeks (every length is checked against a fixed bound and against
 * what is left of the file before it is used) and keeps the values it wants:
 * the model's name, architecture and context length, its attention shape
 * (<arch>.* keys) and, when asked, the vocabulary's end-of-generation facts;
 * tensor infos and tensor data are never read.
 *
 * The model file belongs to the traced process, which may be hostile: a sparse
 * file can claim gigabytes of metadata at no cost to itself. So the whole walk is
 * bounded too, whatever the file claims: it never goes past GGUF_WALK_BYTES into
 * the file, nor takes more than GGUF_WALK_VALUES values one by one (a real
 * model's whole metadata, tokenizer included, is a few MiB and under a million
 * values: 262k tokens, 450k merges at most). Past either bound the file gives no
 * name rather than a wrong one.
 */
#include "target/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC		"GGUF"
#define GGUF_KEY_MAX		(64u << 10)	/* bytes */
#define GGUF_STR_MAX		(16u << 20)	/* bytes */
#define GGUF_KV_MAX		1000000u
#define GGUF_DEPTH_MAX		8		/* arrays of arrays of ... */
#define GGUF_TENSOR_INFO_MIN	24		/* name len, n_dims, type, offset */
#define GGUF_WALK_BYTES		(64ull << 20)	/* the furthest into the file the walk goes */
#define GGUF_WALK_VALUES	(2u << 20)	/* pairs and array elements taken one by one */
#define GGUF_BUF		(64u << 10)	/* bytes read at once */
#define KEY_BUF			256		/* longer keys are none we want */
#define CTX_SUFFIX		".context_length"
#define CTX_SLOTS		16
#define TOKEN_TEXT_MAX		40		/* longer tokens are none of eog_texts */

enum gguf_type {
	GGUF_UINT8 = 0, GGUF_INT8, GGUF_UINT16, GGUF_INT16, GGUF_UINT32, GGUF_INT32,
	GGUF_FLOAT32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, GGUF_UINT64, GGUF_INT64,
	GGUF_FLOAT64, GGUF_TYPE_COUNT,
};

/* Size of a fixed-size value; 0 for STRING and ARRAY. */
static const uint8_t type_size[GGUF_TYPE_COUNT] = {
	[GGUF_UINT8] = 1, [GGUF_INT8] = 1, [GGUF_UINT16] = 2, [GGUF_INT16] = 2,
	[GGUF_UINT32] = 4, [GGUF_INT32] = 4, [GGUF_FLOAT32] = 4, [GGUF_BOOL] = 1,
	[GGUF_UINT64] = 8, [GGUF_INT64] = 8, [GGUF_FLOAT64] = 8,
};

struct reader {
	int fd;
	uint64_t pos;		/* offset of the next byte to take */
	uint64_t size;
	uint64_t values;	/* taken one by one so far */
	uint8_t *buf;		/* the file's bytes [buf_at, buf_at + buf_len) */
	uint64_t buf_at;
	size_t buf_len;
	char *err;
	size_t errlen;
};

/* "<prefix>.context_length" seen before general.architecture. */
struct ctx_slot {
	char prefix[64];
	size_t len;
	uint32_t value;
};

/* An <arch>.* number the attention shape needs. */
enum shape_key { SH_LAYERS, SH_EMBD, SH_HEAD, SH_HEAD_KV, SH_KEY, SH_VALUE, SH_COUNT };

static const char *const shape_suffix[SH_COUNT] = {
	[SH_LAYERS] = ".block_count",
	[SH_EMBD] = ".embedding_length",
	[SH_HEAD] = ".attention.head_count",
	[SH_HEAD_KV] = ".attention.head_count_kv",
	[SH_KEY] = ".attention.key_length",
	[SH_VALUE] = ".attention.value_length",
};

/*
 * <arch>.* keys whose presence means the cache is not one plain K/V row pair per
 * layer and cell (sliding-window layers, recurrent or convolution state, MLA's
 * compressed KV, next-token-prediction layers, layers sharing a cache, per-layer
 * head sizes): bytes per cell are then unknown, whatever the architecture.
 */
static const char *const not_plain_marks[] = {
	"sliding_window", "swa", "ssm.", "wkv.", "rwkv", "shortconv.", "kv_lora_rank",
	"_mla", "nextn", "shared_kv", "full_attention", "recurrent", "linear_attn",
	"key_length_", "value_length_", "layer_types", "n_layer_kv",
};

/*
 * Architectures whose KV cache llmtap sizes: llama.cpp gives them a plain
 * llama_kv_cache (no iSWA, recurrent or MLA variant) with K and V rows of
 * n_embd_head_{k,v} * n_head_kv(il) per layer (llama-hparams.cpp n_embd_k_gqa /
 * n_embd_v_gqa; checked in b5640, b7698, b8390, b9842, b10361, de3ff815ea7d).
 */
static const char *const plain_archs[] = { "llama", "qwen2", "qwen3", "qwen2moe", "qwen3moe" };

/* Token texts llama.cpp makes (or may make) end-of-generation: the union over the
 * versions above of its EOG text list and of the EOT/EOM/FIM-pad/rep/sep texts
 * it infers those ids from (src/llama-vocab.cpp, load). */
#define BAR "\xef\xbd\x9c" /* U+FF5C FULLWIDTH VERTICAL LINE */
#define LOW "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK (SentencePiece's space) */
static const char *const eog_texts[] = {
	"</s>", "<EOT>", "<MID>", "<PAD>", "<PRE>", "<REPO>", "<SUF>", "<end_of_turn>",
	"<end_of_utterance>", "<eos>", "<fim-middle>", "<fim-pad>", "<fim-prefix>",
	"<fim-repo>", "<fim-suffix>", "<fim_middle>", "<fim_pad>", "<fim_prefix>",
	"<fim_suffix>", "<reponame>", "<turn|>", "<|calls|>", "<|call|>", "<|code_middle|>",
	"<|code_prefix|>", "<|code_suffix|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>",
	"<|eom_id|>", "<|eot_id|>", "<|file_sep|>", "<|fim_middle|>", "<|fim_pad|>",
	"<|fim_prefix|>", "<|fim_repo|>", "<|fim_suffix|>", "<|flush|>", "<|im_end|>",
	"<|middle|>", "<|prefix|>", "<|repo_name|>", "<|return|>", "<|suffix|>",
	"<|tool_response>",
	"<" BAR "end" LOW "of" LOW "sentence" BAR ">",	/* U+FF5C, U+2581 */
	"<" BAR "fim" LOW "begin" BAR ">", "<" BAR "fim" LOW "end" BAR ">",
	"<" BAR "fim" LOW "hole" BAR ">", "[EOS]", "[EOT]", "[PAD]", "[e~[",
	"_<EOT>", LOW "<MID>", LOW "<PRE>", LOW "<SUF>",
};

/* The ids llama.cpp defaults an absent or out-of-range EOS to (SPM 2, UGM 1, BPE 11). */
static const uint32_t default_eos[] = { 1, 2, 11 };

#define TOKEN_TYPE_CONTROL	3
#define TOKEN_TYPE_USER_DEFINED	4

/* tokenizer.ggml.*_token_id keys that make a token end-of-generation */
enum vocab_id { VID_EOS, VID_EOT, VID_EOM, VID_FIM_PAD, VID_FIM_REP, VID_FIM_SEP, VID_COUNT };

static const char *const vocab_id_key[VID_COUNT] = {
	[VID_EOS] = "tokenizer.ggml.eos_token_id",
	[VID_EOT] = "tokenizer.ggml.eot_token_id",
	[VID_EOM] = "tokenizer.ggml.eom_token_id",
	[VID_FIM_PAD] = "tokenizer.ggml.fim_pad_token_id",
	[VID_FIM_REP] = "tokenizer.ggml.fim_rep_token_id",
	[VID_FIM_SEP] = "tokenizer.ggml.fim_sep_token_id",
};

/*
 * Tokens llama.cpp may take back out of its end-of-generation set after adding the
 * header's EOS/EOT/EOM (src/llama-vocab.cpp, load): "<|end|>" when the set also has
 * "<|return|>" or "<|flush|>" and "<|call|>" or "<|calls|>" (o200k_harmony,
 * solar-open; b7698 and later), "</s>" when it has "<|tool_response>" (gemma4,
 * paddleocr; b9842 and later). Such an id is never sure: the companions are looked
 * for in the whole vocabulary (a superset of that set, in every version).
 */
enum takeback {
	TB_END = 0,	/* "<|end|>" */
	TB_S,		/* "</s>" */
	TB_COUNT,
};
#define TB_IDS 4	/* ids of one text kept; more: every header id of it is unsure */

enum companion {
	CO_RETURN = 1 << 0,
	CO_CALL = 1 << 1,	/* "<|call|>" or "<|calls|>" */
	CO_FLUSH = 1 << 2,
	CO_TOOL_RESPONSE = 1 << 3,
};

struct takeback_ids {
	int64_t id[TB_IDS];
	unsigned int n;		/* ids seen (may exceed TB_IDS) */
};

struct vocab_scan {
	bool want;
	bool have_tokens, have_types, have_id[VID_COUNT];
	const char *bad;	/* the vocabulary is unknown, why */
	uint64_t n;		/* tokens (the first of tokens / token_type seen) */
	uint8_t *bits;		/* maybe end-of-generation, n bits */
	int64_t id[VID_COUNT];	/* -1: none usable */
	struct takeback_ids tb[TB_COUNT];
	unsigned int companions; /* enum companion */
};

struct scan {
	struct gguf_info info;
	size_t arch_len;
	bool have_arch, have_name, have_ctx;
	bool rescan;		/* second pass, the pairs before general.architecture:
				 * only <arch>.* keys */
	bool overflow;		/* more context_length keys than slots */
	size_t n_slots;
	struct ctx_slot slots[CTX_SLOTS];
	uint64_t index;		/* of the pair being read */
	uint64_t arch_index;	/* of general.architecture */
	bool have_shape[SH_COUNT];
	uint32_t shape[SH_COUNT];
	const char *not_plain;	/* why the attention shape is not plain */
	struct vocab_scan v;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct reader *r, const char *fmt, ...)
{
	va_list ap;

	if (r->err && r->errlen) {
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static uint64_t remaining(const struct reader *r)
{
	return r->pos < r->size ? r->size - r->pos : 0;
}

static int truncated(struct reader *r, uint64_t need)
{
	return fail(r, "truncated GGUF header: %" PRIu64 " bytes needed at offset %" PRIu64
		    ", file is %" PRIu64 " bytes", need, r->pos, r->size);
}

static int too_big(struct reader *r)
{
	return fail(r, "GGUF metadata larger than llmtap reads (%llu MiB, %u values): "
		    "not read past offset %" PRIu64, GGUF_WALK_BYTES >> 20, GGUF_WALK_VALUES,
		    r->pos);
}

/* n more bytes from pos on: within the file and within the walk's bound */
static int check_span(struct reader *r, uint64_t n)
{
	if (n > remaining(r))
		return truncated(r, n);
	if (r->pos + n > GGUF_WALK_BYTES)
		return too_big(r);
	return 0;
}

/* One more value taken by itself (a pair, an array element walked one at a time). */
static int count_value(struct reader *r)
{
	return ++r->values > GGUF_WALK_VALUES ? too_big(r) : 0;
}

static int read_bytes(struct reader *r, void *buf, size_t n)
{
	uint8_t *out = buf;
	int ret = check_span(r, n);

	if (ret)
		return ret;
	if (r->pos >= r->buf_at && r->pos - r->buf_at + n <= r->buf_len) {
		memcpy(out, r->buf + (r->pos - r->buf_at), n); /* the usual case */
		r->pos += n;
		return 0;
	}
	while (n) {
		size_t have, take;
		ssize_t got;

		if (r->pos >= r->buf_at && r->pos < r->buf_at + r->buf_len) {
			have = (size_t)(r->buf_at + r->buf_len - r->pos);
			take = n < have ? n : have;
			memcpy(out, r->buf + (r->pos - r->buf_at), take);
			out += take;
			r->pos += take;
			n -= take;
			continue;
		}
		do
			got = pread(r->fd, r->buf, GGUF_BUF, (off_t)r->pos);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return -errno;
		if (!got)
			return truncated(r, n);	/* the file shrank under us */
		r->buf_at = r->pos;
		r->buf_len = (size_t)got;
	}
	return 0;
}

static int skip_bytes(struct reader *r, uint64_t n)
{
	int ret = check_span(r, n);

	if (!ret)
		r->pos += n;	/* read on demand: a seek costs nothing */
	return ret;
}

static int read_u32(struct reader *r, uint32_t *v)
{
	uint8_t b[4];
	int ret = read_bytes(r, b, sizeof(b));

	if (!ret)
		*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
		     (uint32_t)b[3] << 24;
	return ret;
}

static int read_u64(struct reader *r, uint64_t *v)
{
	uint8_t b[8];
	int ret = read_bytes(r, b, sizeof(b));
	int i;

	if (ret)
		return ret;
	*v = 0;
	for (i = 7; i >= 0; i--)
		*v = *v << 8 | b[i];
	return 0;
}

/* A gguf string's length, checked against bound and against the file. */
static int read_len(struct reader *r, uint64_t bound, const char *what, uint64_t *len)
{
	uint64_t at = r->pos;
	int ret = read_u64(r, len);

	if (ret)
		return ret;
	if (*len > bound)
		return fail(r, "malformed GGUF header: %s of %" PRIu64 " bytes at offset %"
			    PRIu64 " exceeds the %" PRIu64 "-byte limit", what, *len, at, bound);
	if (*len > remaining(r))
		return truncated(r, *len);
	return 0;
}

/*
 * A string value into buf (NUL-terminated). Returns its full length in *len;
 * only the first cap - 1 bytes are kept, the rest is skipped.
 */
/*
 * Where to end a string of which buf[0..n) was kept: n, or, when it was cut
 * short, before a last UTF-8 character the cut split.
 */
static size_t utf8_whole(const char *buf, size_t n, bool cut)
{
	size_t lead = n, need;
	unsigned char c;

	if (!cut)
		return n;
	while (lead > 0 && ((unsigned char)buf[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (!lead--)
		return n;
	c = (unsigned char)buf[lead];
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	return lead + need > n ? lead : n;
}

static int read_string(struct reader *r, const char *what, char *buf, size_t cap,
		       uint64_t *len)
{
	size_t keep;
	int ret = read_len(r, GGUF_STR_MAX, what, len);

	if (ret)
		return ret;
	keep = *len < cap - 1 ? (size_t)*len : cap - 1;
	ret = read_bytes(r, buf, keep);
	if (ret)
		return ret;
	buf[utf8_whole(buf, keep, keep < *len)] = '\0';
	return skip_bytes(r, *len - keep);
}

static int skip_value(struct reader *r, uint32_t type, int depth)
{
	uint64_t len, count, min, i, at;
	uint32_t etype;
	int ret;

	if (type >= GGUF_TYPE_COUNT)
		return fail(r, "malformed GGUF header: unknown value type %" PRIu32
			    " at offset %" PRIu64, type, r->pos - 4);
	if (type_size[type])
		return skip_bytes(r, type_size[type]);
	if (type == GGUF_STRING) {
		ret = read_len(r, GGUF_STR_MAX, "string", &len);
		return ret ? ret : skip_bytes(r, len);
	}

	/* GGUF_ARRAY */
	at = r->pos;
	if (depth >= GGUF_DEPTH_MAX)
		return fail(r, "malformed GGUF header: arrays nested deeper than %d at offset %"
			    PRIu64, GGUF_DEPTH_MAX, at);
	ret = read_u32(r, &etype);
	if (!ret)
		ret = read_u64(r, &count);
	if (ret)
		return ret;
	if (etype >= GGUF_TYPE_COUNT)
		return fail(r, "malformed GGUF header: unknown array element type %" PRIu32
			    " at offset %" PRIu64, etype, at);
	/* the smallest an element can be: a string its length, an array its header */
	min = type_size[etype] ? type_size[etype] : etype == GGUF_STRING ? 8 : 12;
	if (count > remaining(r) / min)
		return fail(r, "malformed GGUF header: array of %" PRIu64 " elements at offset %"
			    PRIu64 " cannot fit in the remaining %" PRIu64 " bytes",
			    count, at, remaining(r));
	if (type_size[etype])
		return skip_bytes(r, count * type_size[etype]);
	for (i = 0; i < count; i++) {
		ret = count_value(r);
		if (!ret)
			ret = skip_value(r, etype, depth + 1);
		if (ret)
			return ret;
	}
	return 0;
}

/* An integer value as a context length (saturated); false for other types. */
static int read_ctx_value(struct reader *r, uint32_t type, bool *ok, uint32_t *v)
{
	uint64_t v64;
	uint32_t v32;
	int ret;

	*ok = false;
	switch (type) {
	case GGUF_UINT32:
	case GGUF_INT32:
		ret = read_u32(r, &v32);
		if (ret)
			return ret;
		*ok = type == GGUF_UINT32 || !(v32 & 0x80000000u);
		*v = v32;
		return 0;
	case GGUF_UINT64:
	case GGUF_INT64:
		ret = read_u64(r, &v64);
		if (ret)
			return ret;
		*ok = type == GGUF_UINT64 || !(v64 >> 63);
		*v = v64 > UINT32_MAX ? UINT32_MAX : (uint32_t)v64;
		return 0;
	default:
		return skip_value(r, type, 0);
	}
}

/* A key for messages: printable, at most 64 bytes. */
static const char *show_key(const char *key, size_t len, char *buf, size_t cap)
{
	size_t i, n = len < cap - 1 ? len : cap - 1;

	for (i = 0; i < n; i++)
		buf[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
	buf[n] = '\0';
	return buf;
}

static bool key_is(const char *key, size_t len, const char *want)
{
	return len == strlen(want) && !memcmp(key, want, len);
}

static int dup_key(struct reader *r, const char *key, size_t len)
{
	char shown[65];

	return fail(r, "malformed GGUF header: duplicate key '%s' before offset %" PRIu64,
		    show_key(key, len, shown, sizeof(shown)), r->pos);
}

static bool slot_lookup(const struct scan *s, const char *prefix, size_t len, uint32_t *v)
{
	size_t i;

	for (i = 0; i < s->n_slots; i++) {
		if (s->slots[i].len == len && !memcmp(s->slots[i].prefix, prefix, len)) {
			if (v)
				*v = s->slots[i].value;
			return true;
		}
	}
	return false;
}

static int on_context_length(struct reader *r, struct scan *s, const char *key,
			     size_t klen, uint32_t type)
{
	size_t plen = klen - strlen(CTX_SUFFIX);
	struct ctx_slot *slot;
	uint32_t v;
	bool ok;
	int ret;

	if (s->have_arch && (plen != s->arch_len || memcmp(key, s->info.architecture, plen)))
		return skip_value(r, type, 0);
	if (!s->have_arch && plen >= sizeof(slot->prefix))
		return skip_value(r, type, 0);	/* longer than any architecture */
	ret = read_ctx_value(r, type, &ok, &v);
	if (ret || !ok)
		return ret;
	if (s->have_arch) {
		if (s->have_ctx)
			return dup_key(r, key, klen);
		s->info.context_length = v;
		s->have_ctx = true;
		return 0;
	}
	if (slot_lookup(s, key, plen, NULL))
		return dup_key(r, key, klen);
	if (s->n_slots == CTX_SLOTS) {
		s->overflow = true;
		return 0;
	}
	slot = &s->slots[s->n_slots++];
	memcpy(slot->prefix, key, plen);
	slot->len = plen;
	slot->value = v;
	return 0;
}

/* An integer value of any integer type (the other types skipped): *ok when it is one, >= 0. */
static int read_int(struct reader *r, uint32_t type, bool *ok, uint64_t *v)
{
	uint8_t b[8] = { 0 };
	size_t n = type < GGUF_TYPE_COUNT ? type_size[type] : 0;
	bool is_signed = type == GGUF_INT8 || type == GGUF_INT16 || type == GGUF_INT32 ||
			 type == GGUF_INT64;
	int ret, i;

	*ok = false;
	if (type == GGUF_FLOAT32 || type == GGUF_FLOAT64 || type == GGUF_BOOL || !n)
		return skip_value(r, type, 0);
	ret = read_bytes(r, b, n);
	if (ret)
		return ret;
	*v = 0;
	for (i = (int)n - 1; i >= 0; i--)
		*v = *v << 8 | b[i];
	*ok = !is_signed || !(b[n - 1] & 0x80);
	return 0;
}

/* An array's element type and count, checked against what is left of the file. */
static int read_array_head(struct reader *r, uint32_t *etype, uint64_t *count)
{
	uint64_t at = r->pos, min;
	int ret = read_u32(r, etype);

	if (!ret)
		ret = read_u64(r, count);
	if (ret)
		return ret;
	if (*etype >= GGUF_TYPE_COUNT)
		return fail(r, "malformed GGUF header: unknown array element type %" PRIu32
			    " at offset %" PRIu64, *etype, at);
	min = type_size[*etype] ? type_size[*etype] : *etype == GGUF_STRING ? 8 : 12;
	if (*count > remaining(r) / min)
		return fail(r, "malformed GGUF header: array of %" PRIu64 " elements at offset %"
			    PRIu64 " cannot fit in the remaining %" PRIu64 " bytes",
			    *count, at, remaining(r));
	return 0;
}

/*
 * A number of the attention shape: an integer, or an array of them (per layer,
 * as llama.cpp's get_key_or_arr takes it) that must hold one value throughout.
 * *v is UINT32_MAX... when unusable: s->not_plain says why.
 */
static int read_shape_value(struct reader *r, struct scan *s, uint32_t type, uint32_t *out)
{
	uint64_t v = 0, first = 0, count, i;
	uint32_t etype;
	bool ok;
	int ret;

	if (type != GGUF_ARRAY) {
		ret = read_int(r, type, &ok, &v);
		if (!ret && (!ok || v > UINT32_MAX))
			s->not_plain = "an attention size that is not a 32-bit count";
		*out = (uint32_t)v;
		return ret;
	}
	ret = read_array_head(r, &etype, &count);
	if (ret)
		return ret;
	if (!type_size[etype] || etype == GGUF_FLOAT32 || etype == GGUF_FLOAT64 ||
	    etype == GGUF_BOOL || !count) {
		s->not_plain = "an attention size that is not a count";
		for (i = 0; i < count && !ret; i++) {
			ret = count_value(r);
			if (!ret)
				ret = skip_value(r, etype, 1);
		}
		return ret;
	}
	for (i = 0; i < count; i++) {
		ret = read_int(r, etype, &ok, &v);
		if (ret)
			return ret;
		if (!ok || v > UINT32_MAX)
			s->not_plain = "an attention size that is not a 32-bit count";
		if (!i)
			first = v;
		else if (v != first)
			s->not_plain = "attention heads that differ by layer";
	}
	*out = (uint32_t)first;
	return 0;
}

/* <arch>.<suffix>: a number of the attention shape, a mark that it is not plain, or neither. */
static int on_arch_key(struct reader *r, struct scan *s, const char *key, size_t klen,
		       uint32_t type)
{
	const char *sfx = key + s->arch_len;
	size_t n = klen - s->arch_len, i;

	for (i = 0; i < SH_COUNT; i++) {
		if (n != strlen(shape_suffix[i]) || memcmp(sfx, shape_suffix[i], n))
			continue;
		if (s->have_shape[i])
			return dup_key(r, key, klen);
		s->have_shape[i] = true;
		return read_shape_value(r, s, type, &s->shape[i]);
	}
	for (i = 0; i < sizeof(not_plain_marks) / sizeof(not_plain_marks[0]); i++) {
		if (memmem(sfx, n, not_plain_marks[i], strlen(not_plain_marks[i]))) {
			s->not_plain = "a sliding-window, recurrent, MLA or shared cache";
			break;
		}
	}
	return skip_value(r, type, 0);
}

/* tokenizer.ggml.*_token_id */
static int on_vocab_id(struct reader *r, struct scan *s, enum vocab_id id, const char *key,
		       size_t klen, uint32_t type)
{
	uint64_t v;
	bool ok;
	int ret;

	if (s->v.have_id[id])
		return dup_key(r, key, klen);
	s->v.have_id[id] = true;
	ret = read_int(r, type, &ok, &v);
	if (!ret && ok && v <= INT32_MAX)
		s->v.id[id] = (int64_t)v;
	return ret;
}

/*
 * The first of tokens / token_type gives the vocabulary's size; the other must
 * agree. 0: the array's bits go to s->v.bits; 1: the vocabulary is unknown (skip
 * the array); -ENOMEM.
 */
static int vocab_size(struct scan *s, uint64_t count)
{
	if (s->v.bits) {
		if (count == s->v.n)
			return 0;
		s->v.bad = "tokens and token types disagree";
		return 1;
	}
	if (!count || count > GGUF_VOCAB_MAX) {
		s->v.bad = "a vocabulary of no or too many tokens";
		return 1;
	}
	s->v.bits = calloc((size_t)((count + 7) / 8), 1);
	if (!s->v.bits)
		return -ENOMEM;
	s->v.n = count;
	return 0;
}

static void set_bit(uint8_t *bits, uint64_t i)
{
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static bool eog_text(const char *t, size_t n)
{
	size_t i;

	/* every one starts so: most tokens are not looked at further */
	if (n < 4 || (t[0] != '<' && t[0] != '[' && t[0] != '_' && t[0] != LOW[0]))
		return false;
	for (i = 0; i < sizeof(eog_texts) / sizeof(eog_texts[0]); i++)
		if (n == strlen(eog_texts[i]) && !memcmp(t, eog_texts[i], n))
			return true;
	return false;
}

static bool text_is(const char *t, size_t n, const char *want)
{
	return n == strlen(want) && !memcmp(t, want, n);
}

/* Token i's text, for what llama.cpp may take back out of its EOG set (enum takeback). */
static void note_takeback(struct vocab_scan *v, const char *t, size_t n, uint64_t i)
{
	int tb = text_is(t, n, "<|end|>") ? TB_END : text_is(t, n, "</s>") ? TB_S : -1;

	if (tb >= 0) {
		if (v->tb[tb].n < TB_IDS)
			v->tb[tb].id[v->tb[tb].n] = (int64_t)i;
		if (v->tb[tb].n < UINT32_MAX)
			v->tb[tb].n++;
	} else if (text_is(t, n, "<|return|>")) {
		v->companions |= CO_RETURN;
	} else if (text_is(t, n, "<|call|>") || text_is(t, n, "<|calls|>")) {
		v->companions |= CO_CALL;
	} else if (text_is(t, n, "<|flush|>")) {
		v->companions |= CO_FLUSH;
	} else if (text_is(t, n, "<|tool_response>")) {
		v->companions |= CO_TOOL_RESPONSE;
	}
}

/* Whether llama.cpp may erase id from its EOG set (some version, see enum takeback). */
static bool taken_back(const struct vocab_scan *v, int64_t id)
{
	bool end = (v->companions & CO_CALL) && (v->companions & (CO_RETURN | CO_FLUSH));
	bool s = v->companions & CO_TOOL_RESPONSE;
	const bool may[TB_COUNT] = { [TB_END] = end, [TB_S] = s };

	for (int tb = 0; tb < TB_COUNT; tb++) {
		if (!may[tb])
			continue;
		if (v->tb[tb].n > TB_IDS)
			return true; /* not all its ids were kept */
		for (unsigned int k = 0; k < v->tb[tb].n; k++)
			if (v->tb[tb].id[k] == id)
				return true;
	}
	return false;
}

/* tokenizer.ggml.tokens: an array of strings; the EOG-looking ones get their bit. */
static int on_tokens(struct reader *r, struct scan *s, const char *key, size_t klen,
		     uint32_t type)
{
	char text[TOKEN_TEXT_MAX];
	uint64_t count, len, i;
	uint32_t etype;
	int ret, sized;

	if (s->v.have_tokens)
		return dup_key(r, key, klen);
	s->v.have_tokens = true;
	if (type != GGUF_ARRAY) {
		s->v.bad = "tokens that are not an array";
		return skip_value(r, type, 0);
	}
	ret = read_array_head(r, &etype, &count);
	if (ret)
		return ret;
	if (etype == GGUF_STRING) {
		sized = vocab_size(s, count);
	} else {
		s->v.bad = "tokens that are not strings";
		sized = 1;
	}
	if (sized < 0)
		return sized;
	for (i = 0; i < count; i++) {
		ret = count_value(r);
		if (ret)
			return ret;
		if (sized) {
			ret = skip_value(r, etype, 1);
		} else {
			ret = read_len(r, GGUF_STR_MAX, "token", &len);
			if (!ret && len <= sizeof(text)) {
				ret = read_bytes(r, text, (size_t)len);
				if (!ret && eog_text(text, (size_t)len)) {
					set_bit(s->v.bits, i);
					note_takeback(&s->v, text, (size_t)len, i);
				}
			} else if (!ret) {
				ret = skip_bytes(r, len);
			}
		}
		if (ret)
			return ret;
	}
	return 0;
}

/* tokenizer.ggml.token_type: an array of integers; control and user-defined get their bit. */
static int on_token_types(struct reader *r, struct scan *s, const char *key, size_t klen,
			  uint32_t type)
{
	uint64_t count, i, v;
	uint32_t etype;
	int ret, sized;
	bool ok;

	if (s->v.have_types)
		return dup_key(r, key, klen);
	s->v.have_types = true;
	if (type != GGUF_ARRAY) {
		s->v.bad = "token types that are not an array";
		return skip_value(r, type, 0);
	}
	ret = read_array_head(r, &etype, &count);
	if (ret)
		return ret;
	if (!type_size[etype] || etype == GGUF_FLOAT32 || etype == GGUF_FLOAT64 ||
	    etype == GGUF_BOOL) {
		s->v.bad = "token types that are not integers";
		for (i = 0; i < count && !ret; i++) {
			ret = count_value(r);
			if (!ret)
				ret = skip_value(r, etype, 1);
		}
		return ret;
	}
	sized = vocab_size(s, count);
	if (sized < 0)
		return sized;
	if (sized)
		return skip_bytes(r, count * type_size[etype]);
	for (i = 0; i < count; i++) {
		ret = read_int(r, etype, &ok, &v);
		if (ret)
			return ret;
		if (!ok || v == TOKEN_TYPE_CONTROL || v == TOKEN_TYPE_USER_DEFINED)
			set_bit(s->v.bits, i);
	}
	return 0;
}

/* The pairs that are not the name, the architecture or its context length. */
static int on_other_key(struct reader *r, struct scan *s, const char *key, size_t klen,
			uint32_t type)
{
	size_t i;

	if (s->have_arch && klen > s->arch_len && key[s->arch_len] == '.' &&
	    !memcmp(key, s->info.architecture, s->arch_len))
		return on_arch_key(r, s, key, klen, type);
	if (s->rescan || !s->v.want || klen < 15 || memcmp(key, "tokenizer.ggml.", 15))
		return skip_value(r, type, 0);
	if (key_is(key, klen, "tokenizer.ggml.tokens"))
		return on_tokens(r, s, key, klen, type);
	if (key_is(key, klen, "tokenizer.ggml.token_type"))
		return on_token_types(r, s, key, klen, type);
	for (i = 0; i < VID_COUNT; i++)
		if (key_is(key, klen, vocab_id_key[i]))
			return on_vocab_id(r, s, (enum vocab_id)i, key, klen, type);
	return skip_value(r, type, 0);
}

static int read_kv(struct reader *r, struct scan *s)
{
	char key[KEY_BUF], shown[65];
	uint64_t klen, len, at = r->pos;
	size_t sfx = strlen(CTX_SUFFIX);
	uint32_t type;
	bool known;
	int ret;

	ret = read_len(r, GGUF_KEY_MAX, "key", &klen);
	if (ret)
		return ret;
	known = klen < sizeof(key);
	ret = known ? read_bytes(r, key, (size_t)klen) : skip_bytes(r, klen);
	if (!ret)
		ret = read_u32(r, &type);
	if (ret)
		return ret;
	if (!known)
		return skip_value(r, type, 0);
	if (type >= GGUF_TYPE_COUNT)
		return fail(r, "malformed GGUF header: key '%s' at offset %" PRIu64
			    " has unknown value type %" PRIu32,
			    show_key(key, (size_t)klen, shown, sizeof(shown)), at, type);

	if (klen > sfx && !memcmp(key + klen - sfx, CTX_SUFFIX, sfx))
		return s->rescan && s->have_ctx ? skip_value(r, type, 0) :
		       on_context_length(r, s, key, (size_t)klen, type);
	if (s->rescan)
		return on_other_key(r, s, key, (size_t)klen, type);

	if (key_is(key, (size_t)klen, "general.architecture")) {
		if (s->have_arch)
			return dup_key(r, key, (size_t)klen);
		if (type != GGUF_STRING)
			return fail(r, "malformed GGUF header: general.architecture at offset %"
				    PRIu64 " is not a string (type %" PRIu32 ")", at, type);
		ret = read_string(r, "general.architecture", s->info.architecture,
				  sizeof(s->info.architecture), &len);
		if (ret)
			return ret;
		if (len >= sizeof(s->info.architecture))
			return fail(r, "malformed GGUF header: general.architecture of %"
				    PRIu64 " bytes at offset %" PRIu64 " is too long", len, at);
		s->arch_len = strlen(s->info.architecture);
		s->have_arch = true;
		s->arch_index = s->index;
		s->have_ctx = slot_lookup(s, s->info.architecture, s->arch_len,
					  &s->info.context_length);
		return 0;
	}
	if (key_is(key, (size_t)klen, "general.name")) {
		if (s->have_name)
			return dup_key(r, key, (size_t)klen);
		if (type != GGUF_STRING)
			return fail(r, "malformed GGUF header: general.name at offset %" PRIu64
				    " is not a string (type %" PRIu32 ")", at, type);
		s->have_name = true;
		return read_string(r, "general.name", s->info.name, sizeof(s->info.name), &len);
	}
	return on_other_key(r, s, key, (size_t)klen, type);
}

static int read_kvs(struct reader *r, struct scan *s, uint64_t n)
{
	int ret;

	for (s->index = 0; s->index < n; s->index++) {
		ret = count_value(r);
		if (!ret)
			ret = read_kv(r, s);
		if (ret)
			return ret;
	}
	return 0;
}

/* The name, architecture and context length are known: what the header's start gives. */
static bool have_basics(const struct scan *s)
{
	return s->have_arch && s->have_ctx && s->have_name;
}

static bool plain_arch(const char *arch)
{
	size_t i;

	for (i = 0; i < sizeof(plain_archs) / sizeof(plain_archs[0]); i++)
		if (!strcmp(arch, plain_archs[i]))
			return true;
	return false;
}

/* The attention shape once every pair was read. */
static void finish_attn(struct scan *s)
{
	struct gguf_attn *a = &s->info.attn;
	const uint32_t *v = s->shape;
	const char *why = s->not_plain;

	if (!why && !plain_arch(s->info.architecture))
		why = "an architecture llmtap does not size";
	if (!why && (!s->have_shape[SH_LAYERS] || !s->have_shape[SH_EMBD] ||
		     !s->have_shape[SH_HEAD]))
		why = "no block_count, embedding_length or head_count";
	if (!why && (!v[SH_LAYERS] || !v[SH_HEAD] || v[SH_LAYERS] > 4096))
		why = "no layers or heads";
	if (!why) {
		a->n_layer = v[SH_LAYERS];
		a->n_head_kv = s->have_shape[SH_HEAD_KV] ? v[SH_HEAD_KV] : v[SH_HEAD];
		a->head_k = s->have_shape[SH_KEY] ? v[SH_KEY] : v[SH_EMBD] / v[SH_HEAD];
		a->head_v = s->have_shape[SH_VALUE] ? v[SH_VALUE] : v[SH_EMBD] / v[SH_HEAD];
		if (!a->n_head_kv || !a->head_k || !a->head_v)
			why = "no KV heads or an empty head";
	}
	if (why) {
		memset(a, 0, sizeof(*a));
		snprintf(a->why, sizeof(a->why), "%s", why);
		return;
	}
	a->plain = true;
}

/* The vocabulary once every pair was read: the ids llama.cpp takes get their bits. */
static void finish_vocab(struct scan *s, struct gguf_vocab *out)
{
	struct vocab_scan *v = &s->v;
	int32_t *sure[VID_COUNT] = { &out->eos, &out->eot, &out->eom };
	bool have_eos = false;
	size_t i;

	if (v->bad || !v->have_tokens || !v->bits)
		return;
	for (i = 0; i < VID_COUNT; i++) {
		if (v->id[i] < 0 || (uint64_t)v->id[i] >= v->n)
			continue; /* llama.cpp keeps its default: see below */
		set_bit(v->bits, (uint64_t)v->id[i]);
		have_eos |= i == VID_EOS;
		/* an id llama.cpp may take back out stays a maybe */
		if (sure[i] && !taken_back(v, v->id[i]))
			*sure[i] = (int32_t)v->id[i];
	}
	if (!have_eos)
		for (i = 0; i < sizeof(default_eos) / sizeof(default_eos[0]); i++)
			if (default_eos[i] < v->n)
				set_bit(v->bits, default_eos[i]);
	out->n_vocab = (uint32_t)v->n;
	out->maybe_eog = v->bits;
	v->bits = NULL;
}

static int read_header(struct reader *r, struct scan *s)
{
	uint32_t version, swapped;
	uint64_t n_kv, kv_start;
	char magic[4];
	int ret;

	if (r->size < sizeof(magic))
		return fail(r, "not a GGUF file: %" PRIu64 " bytes", r->size);
	ret = read_bytes(r, magic, sizeof(magic));
	if (ret)
		return ret;
	if (memcmp(magic, GGUF_MAGIC, sizeof(magic)))
		return fail(r, "not a GGUF file: bad magic %02x %02x %02x %02x",
			    (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2],
			    (uint8_t)magic[3]);
	ret = read_u32(r, &version);
	if (ret)
		return ret;
	if (version == 1)
		return fail(r, "GGUF version 1 is not supported (32-bit lengths); "
			    "re-convert the model to GGUF v3");
	swapped = __builtin_bswap32(version);
	if (version != 2 && version != 3)
		return fail(r, "unsupported GGUF version %" PRIu32 "%s (only 2 and 3)", version,
			    swapped >= 1 && swapped <= 3 ? ", a big-endian file" : "");
	s->info.version = version;
	ret = read_u64(r, &s->info.n_tensors);
	if (!ret)
		ret = read_u64(r, &n_kv);
	if (ret)
		return ret;
	if (s->info.n_tensors > r->size / GGUF_TENSOR_INFO_MIN)
		return fail(r, "malformed GGUF header: %" PRIu64 " tensors cannot fit in %"
			    PRIu64 " bytes", s->info.n_tensors, r->size);
	if (n_kv > GGUF_KV_MAX)
		return fail(r, "malformed GGUF header: %" PRIu64 " metadata pairs (limit %u)",
			    n_kv, GGUF_KV_MAX);

	kv_start = r->pos;
	ret = read_kvs(r, s, n_kv);
	if (ret || !s->have_arch || !s->arch_index)
		return ret;
	/* <arch>.* keys before general.architecture (too many *.context_length
	 * keys for the slots, the attention shape): look again at those pairs
	 * (within the same bounds: the values counted so far count) */
	r->pos = kv_start;
	s->rescan = true;
	return read_kvs(r, s, s->arch_index);
}

void gguf_vocab_free(struct gguf_vocab *vocab)
{
	if (!vocab)
		return;
	free(vocab->maybe_eog);
	vocab->maybe_eog = NULL;
	vocab->n_vocab = 0;
	vocab->eos = vocab->eot = vocab->eom = -1;
}

int gguf_read_model_fd(int fd, struct gguf_info *info, struct gguf_vocab *vocab, char *err,
		       size_t errlen)
{
	struct reader r = { .fd = fd, .err = err, .errlen = errlen };
	struct scan s;
	struct stat st;
	size_t i;
	int ret;

	if (vocab) {
		vocab->maybe_eog = NULL;
		gguf_vocab_free(vocab);
	}
	if (err && errlen)
		err[0] = '\0';
	if (fstat(fd, &st))
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return fail(&r, "not a GGUF file: not a regular file");
	r.size = (uint64_t)st.st_size;
	r.buf = malloc(GGUF_BUF);
	if (!r.buf)
		return -ENOMEM;
	memset(&s, 0, sizeof(s));
	s.v.want = vocab != NULL;
	for (i = 0; i < VID_COUNT; i++)
		s.v.id[i] = -1;
	ret = read_header(&r, &s);
	if (!ret) {
		finish_attn(&s);
		if (vocab)
			finish_vocab(&s, vocab);
	} else if (ret == -EINVAL && have_basics(&s)) {
		/* the rest of the metadata is bad or too big: the start is still good */
		memset(&s.info.attn, 0, sizeof(s.info.attn));
		snprintf(s.info.attn.why, sizeof(s.info.attn.why), "metadata not read whole");
		ret = 0;
	}
	if (!ret)
		*info = s.info;
	free(s.v.bits);
	free(r.buf);
	if (ret != -EINVAL && err && errlen)
		err[0] = '\0';
	return ret;
}

int gguf_read_info_fd(int fd, struct gguf_info *info, char *err, size_t errlen)
{
	return gguf_read_model_fd(fd, info, NULL, err, errlen);
}

bool gguf_token_is_eog_sure(const struct gguf_vocab *vocab, int32_t tok)
{
	return vocab && vocab->n_vocab && tok >= 0 &&
	       (tok == vocab->eos || tok == vocab->eot || tok == vocab->eom);
}

bool gguf_token_maybe_eog(const struct gguf_vocab *vocab, int32_t tok)
{
	if (!vocab || !vocab->n_vocab || !vocab->maybe_eog)
		return true;
	if (tok < 0 || (uint32_t)tok >= vocab->n_vocab)
		return true; /* not a token of this vocabulary: nothing is known */
	return vocab->maybe_eog[(uint32_t)tok / 8] & (1u << ((uint32_t)tok % 8));
}

int gguf_read_info(const char *path, struct gguf_info *info, char *err, size_t errlen)
{
	/* non-blocking: a FIFO at path costs nothing (it is refused as not a regular file) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), ret;

	if (err && errlen)
		err[0] = '\0';
	if (fd < 0)
		return -errno;
	ret = gguf_read_info_fd(fd, info, err, errlen);
	close(fd);
	return ret;
}
