// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * GGUF v2/v3 header reader. Walks the metadata key/value pairs with bounded
 * reads and seeks (every length is checked against a fixed bound and against
 * what is left of the file before it is used), keeps the three values it wants
 * and stops; tensor infos and tensor data are never read.
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

struct scan {
	struct gguf_info info;
	size_t arch_len;
	bool have_arch, have_name, have_ctx;
	bool rescan;		/* second pass: only <arch>.context_length */
	bool overflow;		/* more context_length keys than slots */
	size_t n_slots;
	struct ctx_slot slots[CTX_SLOTS];
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
		return on_context_length(r, s, key, (size_t)klen, type);
	if (s->rescan)
		return skip_value(r, type, 0);

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
	return skip_value(r, type, 0);
}

static int read_kvs(struct reader *r, struct scan *s, uint64_t n)
{
	uint64_t i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = count_value(r);
		if (!ret)
			ret = read_kv(r, s);
		if (ret)
			return ret;
		if (s->have_arch && s->have_ctx && (s->have_name || s->rescan))
			break;
	}
	return 0;
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
	if (ret || !s->have_arch || s->have_ctx || !s->overflow)
		return ret;
	/* too many *.context_length keys before general.architecture: look again
	 * (within the same bounds: the values counted so far count) */
	r->pos = kv_start;
	s->rescan = true;
	return read_kvs(r, s, n_kv);
}

int gguf_read_info_fd(int fd, struct gguf_info *info, char *err, size_t errlen)
{
	struct reader r = { .fd = fd, .err = err, .errlen = errlen };
	struct scan s;
	struct stat st;
	int ret;

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
	ret = read_header(&r, &s);
	if (!ret)
		*info = s.info;
	free(r.buf);
	if (ret != -EINVAL && err && errlen)
		err[0] = '\0';
	return ret;
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
