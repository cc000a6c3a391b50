// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Engine-step probes: llama_decode / llama_encode entry and return.
 * Also: sampling, KV-cache edits, and llama-server's task/slot and HTTP
 * handling (small records; the loader correlates them).
 *
 * Entry copies the 56-byte struct llama_batch (by value: on the stack at sp+8
 * on x86-64, a pointer in x1 on arm64) and the time into a per-thread map.
 * Return takes the end time first, then scans the batch arrays in bounded
 * chunks (sequence runs, positions, outputs) so the scan never inflates the
 * measured step, and emits one record to the ring buffer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "llmtap_events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#ifndef PT_REGS_PARM6 /* libbpf 1.1 stops at 5 */
#if defined(__TARGET_ARCH_x86)
#define PT_REGS_PARM6(x) (((const struct pt_regs *)(x))->r9)
#elif defined(__TARGET_ARCH_arm64)
#define PT_REGS_PARM6(x) (((const struct user_pt_regs *)(x))->regs[5])
#endif
#endif

/* Wake the consumer only once this much data is waiting; it also drains on a timer. */
const volatile __u64 wakeup_bytes = 64 * 1024;

struct batch_raw {
	__s32 n_tokens;
	__u32 _pad;
	__u64 token;
	__u64 embd;
	__u64 pos;
	__u64 n_seq_id;
	__u64 seq_id;
	__u64 logits;
};

/* per thread: the engine call in flight, and the last batch it decoded */
struct entry {
	__u64 start_ns; /* a decode/encode in flight; 0 when none */
	__u64 ctx;
	__u32 op;
	__u32 flags;
	struct batch_raw b; /* kept after return: sampling reads its sequence ids */
	__u32 has_batch;
	__u32 call_depth; /* timed calls in flight: only the outermost is recorded */
	struct llmtap_call_event call;
	/* the sampler call in flight: the token exists when it returns */
	__u64 sample_ns;
	__u64 sample_ctx;
	__s32 sample_idx;
	__s32 sample_seq;
	__u32 sample_flags;
	__u32 sample_depth;
};

struct scan_buf {
	__u64 seq_ptr[LLMTAP_SCAN_CHUNK];
	__s32 n_seq[LLMTAP_SCAN_CHUNK];
	__s32 pos[LLMTAP_SCAN_CHUNK];
	__s8 logits[LLMTAP_SCAN_CHUNK];
};

struct scratch {
	struct llmtap_step_event ev;
	struct scan_buf buf;
	struct batch_raw b;
	__s32 last_seq;
	__s32 last_pos;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* resized by the loader */
} events SEC(".maps");

/* the call in flight on each thread: task-local, no hashing, freed with the thread */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct entry);
} entries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LLMTAP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/*
 * The decode return's work space, per decoding thread: a program can be
 * preempted on a preemptible kernel, so a per-CPU buffer could be taken over
 * by another thread's decode half-way through a scan.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct scratch);
} scratches SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
}

/* Wake the consumer only when enough is waiting: it drains every 100 ms anyway. */
static __always_inline __u64 wakeup_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
		       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* A record of size bytes in the ring buffer, or NULL (counted lost) when it is full. */
static __always_inline void *rb_reserve(__u64 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);

	if (!rec)
		stat_inc(LLMTAP_STAT_RB_LOST);
	return rec;
}

/* A record's header and the pid, tid that follow it in every record. */
static __always_inline void record_head(struct llmtap_hdr *h, __u32 size, __u16 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 *ids = (__u32 *)(h + 1);

	h->version = LLMTAP_EVENT_VERSION;
	h->kind = kind;
	h->size = size;
	ids[0] = id >> 32;
	ids[1] = (__u32)id;
}

/* A record of size bytes with its header and ids filled in, or NULL (counted lost). */
static __always_inline void *small_reserve(__u32 size, __u16 kind)
{
	struct llmtap_hdr *h = rb_reserve(size);

	if (h)
		record_head(h, size, kind);
	return h;
}

/*
 * A return of a sampler (sample) or timed call (!sample): this thread's entry
 * when the return ends the outermost such call, else NULL.
 */
static __always_inline struct entry *outermost_return(bool sample)
{
	struct entry *e = bpf_task_storage_get(&entries, bpf_get_current_task_btf(), NULL, 0);
	__u32 *depth;

	if (!e) {
		stat_inc(LLMTAP_STAT_ENTRY_LOST);
		return NULL;
	}
	depth = sample ? &e->sample_depth : &e->call_depth;
	if (!*depth) { /* the call began before llmtap attached */
		stat_inc(LLMTAP_STAT_ENTRY_LOST);
		return NULL;
	}
	return --*depth ? NULL : e;
}

static __always_inline int step_enter(struct pt_regs *regs, __u32 op)
{
	struct entry *e;
	const void *src;

	e = bpf_task_storage_get(&entries, bpf_get_current_task_btf(), NULL,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!e) {
		stat_inc(LLMTAP_STAT_ENTRY_FULL);
		return 0;
	}
	e->ctx = PT_REGS_PARM1(regs);
	e->op = op;
	e->flags = 0;
	e->has_batch = 1;
#if defined(__TARGET_ARCH_x86)
	src = (const void *)(PT_REGS_SP(regs) + 8);
#elif defined(__TARGET_ARCH_arm64)
	src = (const void *)PT_REGS_PARM2(regs);
#else
#error "unsupported architecture"
#endif
	if (bpf_probe_read_user(&e->b, sizeof(e->b), src))
		e->flags |= LLMTAP_STEP_READ_ERR;
	e->start_ns = bpf_ktime_get_ns(); /* last, so the copy above is not timed */
	return 0;
}

/*
 * Read sz bytes, sz <= dst_size; barrier_var keeps the compiler from folding
 * the check away, so the verifier sees the bound.
 */
static __always_inline long read_user(void *dst, __u64 dst_size, __u64 sz, __u64 src)
{
	barrier_var(sz);
	if (sz > dst_size)
		return -1;
	return bpf_probe_read_user(dst, sz, (const void *)src);
}

/* Load the batch arrays for tokens [i, i + n) into the scan buffer. */
static __always_inline int load_chunk(struct scratch *s, __u32 i, __u32 n)
{
	struct batch_raw *b = &s->b;
	int err = 0;

	if (n > LLMTAP_SCAN_CHUNK)
		return -1;
	if (b->seq_id) {
		err |= read_user(s->buf.seq_ptr, sizeof(s->buf.seq_ptr), n * 8,
				 b->seq_id + (__u64)i * 8);
		err |= read_user(s->buf.n_seq, sizeof(s->buf.n_seq), n * 4,
				 b->n_seq_id + (__u64)i * 4);
	}
	if (b->pos)
		err |= read_user(s->buf.pos, sizeof(s->buf.pos), n * 4, b->pos + (__u64)i * 4);
	if (b->logits)
		err |= read_user(s->buf.logits, sizeof(s->buf.logits), n, b->logits + i);
	return err;
}

static __always_inline void mask_set(struct llmtap_step_event *ev, __s32 seq)
{
	if (seq >= 0 && seq < LLMTAP_MAX_SEQ)
		ev->seq_mask[(seq >> 6) & (LLMTAP_SEQ_WORDS - 1)] |= 1ULL << (seq & 63);
}

struct scan_ctx {
	struct scratch *s;
};

static int scan_token(__u32 i, struct scan_ctx *sc)
{
	__u32 j = i % LLMTAP_SCAN_CHUNK, n_seq = 1, k;
	__s32 seqs[LLMTAP_MAX_SEQ_PER_TOKEN] = {};
	struct llmtap_step_event *ev;
	struct llmtap_run *run;
	struct scratch *s;
	__s32 pos = -1;
	int out;

	s = sc->s;
	if (!s)
		return 1;
	ev = &s->ev;
	if (j == 0) {
		__u32 left = (__u32)s->b.n_tokens - i;

		if (load_chunk(s, i, left < LLMTAP_SCAN_CHUNK ? left : LLMTAP_SCAN_CHUNK)) {
			ev->flags |= LLMTAP_STEP_READ_ERR;
			return 1;
		}
	}
	j &= LLMTAP_SCAN_CHUNK - 1;
	if (s->b.seq_id) {
		n_seq = s->buf.n_seq[j];
		if (n_seq > 1)
			ev->flags |= LLMTAP_STEP_MULTI_SEQ;
		if (n_seq > LLMTAP_MAX_SEQ_PER_TOKEN)
			n_seq = LLMTAP_MAX_SEQ_PER_TOKEN;
		if (n_seq < 1 || read_user(seqs, sizeof(seqs), n_seq * 4, s->buf.seq_ptr[j])) {
			ev->flags |= LLMTAP_STEP_READ_ERR;
			return 1;
		}
	}
	for (k = 0; k < LLMTAP_MAX_SEQ_PER_TOKEN; k++)
		if (k < n_seq)
			mask_set(ev, seqs[k]);
	if (s->b.pos)
		pos = s->buf.pos[j];
	if (s->b.logits)
		out = s->buf.logits[j] != 0;
	else
		out = i == (__u32)s->b.n_tokens - 1;
	ev->n_outputs += out;

	/* extend the current run, or open a new one */
	if (ev->n_runs > 0 && seqs[0] == s->last_seq &&
	    (pos < 0 || pos == s->last_pos + 1)) {
		run = &ev->runs[(ev->n_runs - 1) & (LLMTAP_MAX_RUNS - 1)];
		run->n_tokens++;
		run->pos_last = pos;
		run->n_outputs += out;
	} else {
		if (ev->n_runs >= LLMTAP_MAX_RUNS) {
			/* the run array is full (many slots): ship these runs, carry on in a new record */
			ev->flags |= LLMTAP_STEP_MORE;
			if (bpf_ringbuf_output(&events, ev, sizeof(*ev), wakeup_flags())) {
				stat_inc(LLMTAP_STAT_RB_LOST);
				ev->flags |= LLMTAP_STEP_RUNS_TRUNC;
			}
			ev->flags &= ~LLMTAP_STEP_MORE;
			ev->n_runs = 0;
		}
		run = &ev->runs[ev->n_runs & (LLMTAP_MAX_RUNS - 1)];
		run->seq_id = seqs[0];
		run->n_tokens = 1;
		run->pos_first = pos;
		run->pos_last = pos;
		run->n_outputs = out;
		ev->n_runs++;
	}
	s->last_seq = seqs[0];
	s->last_pos = pos;
	return 0;
}

static __always_inline int step_exit(struct pt_regs *regs)
{
	__u64 end_ns = bpf_ktime_get_ns();
	__u64 id = bpf_get_current_pid_tgid();
	struct llmtap_step_event *ev;
	struct scratch *s;
	struct entry *e;
	__u32 n;

	e = bpf_task_storage_get(&entries, bpf_get_current_task_btf(), NULL, 0);
	if (!e || !e->start_ns) {
		stat_inc(LLMTAP_STAT_ENTRY_LOST);
		return 0;
	}
	s = bpf_task_storage_get(&scratches, bpf_get_current_task_btf(), NULL,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		stat_inc(LLMTAP_STAT_ENTRY_FULL);
		goto out;
	}
	ev = &s->ev;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->hdr.version = LLMTAP_EVENT_VERSION;
	ev->hdr.kind = LLMTAP_EV_STEP;
	ev->hdr.size = sizeof(*ev);
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->ctx = e->ctx;
	ev->start_ns = e->start_ns;
	ev->end_ns = end_ns;
	ev->ret = (__s32)PT_REGS_RC(regs);
	ev->op = e->op;
	ev->n_tokens = e->b.n_tokens;
	ev->flags = e->flags;
	s->b = e->b;
	s->last_seq = -1;
	s->last_pos = -1;
	if (!e->b.seq_id)
		ev->flags |= LLMTAP_STEP_SEQ_NULL;
	if (!e->b.pos)
		ev->flags |= LLMTAP_STEP_POS_NULL;
	if (!e->b.logits)
		ev->flags |= LLMTAP_STEP_LOGITS_NULL;
	if (!e->b.token && e->b.embd)
		ev->flags |= LLMTAP_STEP_EMBD;

	n = e->b.n_tokens > 0 ? e->b.n_tokens : 0;
	if (n > LLMTAP_MAX_SCAN_TOKENS) {
		n = LLMTAP_MAX_SCAN_TOKENS;
		ev->flags |= LLMTAP_STEP_SCAN_TRUNC;
	}
	if (!(ev->flags & LLMTAP_STEP_READ_ERR) && n)
		bpf_loop(n, scan_token, &(struct scan_ctx){ .s = s }, 0);

	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), wakeup_flags()))
		stat_inc(LLMTAP_STAT_RB_LOST);
out:
	e->start_ns = 0; /* consumed */
	return 0;
}

/* ---- sampling: one token per outermost sampler call ---- */

static __always_inline struct entry *thread_entry(bool create)
{
	return bpf_task_storage_get(&entries, bpf_get_current_task_btf(), NULL,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

/*
 * common_sampler_sample(gsmpl, ctx, idx, ...) or llama_sampler_sample(smpl, ctx, idx)
 * entry: one token is being sampled from output idx of the last batch this
 * thread decoded; its sequence is read now, while that batch is certainly
 * alive. With a return probe (common_sampler_sample) the record goes out when
 * the call returns and the token exists, which is where a request's first
 * token is timed (llama-server times the end of its prompt there too).
 * llama_sampler_sample accepts the token inside, which can throw, so it has
 * no return probe (entry_only): its record goes out at entry.
 */
static __always_inline int sample_emit(__u64 llama_ctx, __u64 start_ns, __u64 end_ns, __s32 idx,
				       __s32 seq, __u32 flags, __s32 token)
{
	struct llmtap_sample_event *ev = small_reserve(sizeof(*ev), LLMTAP_EV_SAMPLE);

	if (!ev)
		return 0;
	ev->ctx = llama_ctx;
	ev->start_ns = start_ns;
	ev->end_ns = end_ns;
	ev->idx = idx;
	ev->seq_id = seq;
	ev->token = token;
	ev->flags = flags;
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

static __always_inline int sample_enter(struct pt_regs *ctx, bool entry_only)
{
	struct entry *e = thread_entry(!entry_only);
	__s32 idx = (__s32)PT_REGS_PARM3(ctx), seq = -1;
	__u64 now, ptr = 0;
	__u32 flags = 0;

	if (!entry_only && (!e || e->sample_depth++))
		return 0; /* only the outermost sampler call is a token */
	if (e && idx < 0) /* counted from the end of the batch */
		idx += e->b.n_tokens;
	if (!e || !e->has_batch || idx < 0 || idx >= e->b.n_tokens) {
		flags |= LLMTAP_SAMPLE_NO_BATCH;
	} else if (!e->b.seq_id) {
		seq = 0;
	} else if (bpf_probe_read_user(&ptr, sizeof(ptr), (const void *)(e->b.seq_id + (__u64)idx * 8)) ||
		   bpf_probe_read_user(&seq, sizeof(seq), (const void *)ptr)) {
		seq = -1;
		flags |= LLMTAP_SAMPLE_READ_ERR;
	}
	now = bpf_ktime_get_ns();
	if (entry_only)
		return sample_emit(PT_REGS_PARM2(ctx), now, now, idx, seq, flags, -1);
	if (e) {
		e->sample_ctx = PT_REGS_PARM2(ctx);
		e->sample_idx = idx;
		e->sample_seq = seq;
		e->sample_flags = flags;
		e->sample_ns = now;
	}
	return 0;
}

static __always_inline int sample_exit(struct pt_regs *ctx)
{
	__u64 end_ns = bpf_ktime_get_ns();
	struct entry *e = outermost_return(true);

	if (!e)
		return 0;
	return sample_emit(e->sample_ctx, e->sample_ns, end_ns, e->sample_idx, e->sample_seq,
			   e->sample_flags, (__s32)PT_REGS_RC(ctx));
}

/* ---- small records: KV edits, llama-server lifecycle, HTTP ---- */

/* Copy a libstdc++ std::string ({char *p; size_t len; ...}) at src, truncated to cap - 1. */
static __always_inline __u32 read_string(char *dst, __u32 cap, __u64 src)
{
	struct {
		__u64 p;
		__u64 len;
	} str = {};
	__u64 n;

	dst[0] = '\0';
	if (!src || bpf_probe_read_user(&str, sizeof(str), (const void *)src))
		return 0;
	n = str.len < cap - 1 ? str.len : cap - 1;
	barrier_var(n);
	if (n > cap - 1 || bpf_probe_read_user(dst, n, (const void *)str.p))
		return 0;
	dst[n] = '\0';
	return (__u32)n;
}

/* op: enum llmtap_kv_op. The integer arguments follow the memory handle. */
static __always_inline int kv_enter(struct pt_regs *ctx, __u32 op)
{
	struct llmtap_kv_event *ev = small_reserve(sizeof(*ev), LLMTAP_EV_KV);

	if (!ev)
		return 0;
	ev->mem = PT_REGS_PARM1(ctx);
	ev->ts_ns = bpf_ktime_get_ns();
	ev->op = op;
	ev->args[0] = (__s32)PT_REGS_PARM2(ctx);
	ev->args[1] = (__s32)PT_REGS_PARM3(ctx);
	ev->args[2] = (__s32)PT_REGS_PARM4(ctx);
	ev->args[3] = (__s32)PT_REGS_PARM5(ctx);
	ev->_pad = 0;
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* op: enum llmtap_srv_op (not NEW_ID). Member functions: PARM1 is `this`. */
static __always_inline int srv_enter(struct pt_regs *ctx, __u32 op)
{
	struct llmtap_srv_event *ev = small_reserve(sizeof(*ev), LLMTAP_EV_SERVER);
	__s32 first = -1;

	if (!ev)
		return 0;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->op = op;
	ev->task_id = -1;
	ev->slot_id = -1;
	ev->err_type = -1;
	ev->msg_len = 0;
	ev->_pad = 0;
	ev->ctx = 0;
	ev->msg[0] = '\0';
	switch (op) {
	case LLMTAP_SRV_DEFER: /* (server_task &&): id is its first field */
		bpf_probe_read_user(&first, sizeof(first), (const void *)PT_REGS_PARM2(ctx));
		ev->task_id = first;
		break;
	case LLMTAP_SRV_LAUNCH: /* (server_slot &, server_task &&) */
		bpf_probe_read_user(&first, sizeof(first), (const void *)PT_REGS_PARM2(ctx));
		ev->slot_id = first;
		first = -1;
		bpf_probe_read_user(&first, sizeof(first), (const void *)PT_REGS_PARM3(ctx));
		ev->task_id = first;
		/* server_slot { int id; llama_context *ctx_tgt; ... }: tells a draft model's steps apart */
		bpf_probe_read_user(&ev->ctx, sizeof(ev->ctx), (const void *)(PT_REGS_PARM2(ctx) + 8));
		break;
	case LLMTAP_SRV_FINAL: /* (server_slot &) */
	case LLMTAP_SRV_PARTIAL: /* (server_slot &, ...) */
		bpf_probe_read_user(&first, sizeof(first), (const void *)PT_REGS_PARM2(ctx));
		ev->slot_id = first;
		break;
	case LLMTAP_SRV_ERROR: /* (int id_task, const std::string &, error_type, ...) */
		ev->task_id = (__s32)PT_REGS_PARM2(ctx);
		ev->err_type = (__s32)PT_REGS_PARM4(ctx);
		ev->msg_len = read_string(ev->msg, sizeof(ev->msg), PT_REGS_PARM3(ctx));
		break;
	}
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* server_queue::get_new_id() */
static __always_inline int new_id_exit(struct pt_regs *ctx)
{
	int id = (int)PT_REGS_RC(ctx);
	struct llmtap_srv_event *ev = small_reserve(sizeof(*ev), LLMTAP_EV_SERVER);

	if (!ev)
		return 0;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->op = LLMTAP_SRV_NEW_ID;
	ev->task_id = id;
	ev->slot_id = -1;
	ev->err_type = -1;
	ev->msg_len = 0;
	ev->_pad = 0;
	ev->msg[0] = '\0';
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

static __always_inline struct llmtap_http_event *http_reserve(__u32 op)
{
	struct llmtap_http_event *ev = small_reserve(sizeof(*ev), LLMTAP_EV_HTTP);

	if (!ev)
		return NULL;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->op = op;
	ev->value = ev->value2 = 0;
	ev->len0 = ev->len1 = 0;
	ev->_pad = 0;
	ev->s0[0] = ev->s1[0] = '\0';
	return ev;
}

/* op: LLMTAP_HTTP_BEGIN, _ROUTE or _STATUS */
static __always_inline int http_enter(struct pt_regs *ctx, __u32 op)
{
	struct llmtap_http_event *ev = http_reserve(op);
	__u64 req;
	__s32 status = 0;

	if (!ev)
		return 0;
	switch (op) {
	case LLMTAP_HTTP_BEGIN:
		/* process_request(strm, remote_addr, remote_port, local_addr, local_port, ...) */
		ev->len0 = read_string(ev->s0, sizeof(ev->s0), PT_REGS_PARM3(ctx));
		ev->value = (__s32)PT_REGS_PARM4(ctx);
		ev->value2 = (__s32)PT_REGS_PARM6(ctx);
		break;
	case LLMTAP_HTTP_ROUTE:
		/* routing(Request &req, ...): req.method at 0, req.path at 32 */
		req = PT_REGS_PARM2(ctx);
		ev->len0 = read_string(ev->s0, sizeof(ev->s0), req);
		ev->len1 = read_string(ev->s1, sizeof(ev->s1), req + 32);
		break;
	case LLMTAP_HTTP_STATUS:
		/* write_response_core(strm, close, req, Response &res, ...): res.status at 32 */
		bpf_probe_read_user(&status, sizeof(status), (const void *)(PT_REGS_PARM5(ctx) + 32));
		ev->value = status;
		break;
	}
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* process_request return */
static __always_inline int http_end(struct pt_regs *ctx)
{
	int ret = (int)PT_REGS_RC(ctx);
	struct llmtap_http_event *ev = http_reserve(LLMTAP_HTTP_END);

	if (!ev)
		return 0;
	ev->value = ret & 0xff;
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* ---- timed calls (state save/load, model load, context creation, tokenize) ---- */

static __always_inline void read_cstr(char *dst, __u32 cap, __u64 src, __u32 *len)
{
	long n = src ? bpf_probe_read_user_str(dst, cap, (const void *)src) : 0;

	*len = n > 0 ? (__u32)n - 1 : 0;
	if (n <= 0)
		dst[0] = '\0';
}

/* What a call's entry knows: op's arguments. */
static __always_inline void call_fill(struct pt_regs *ctx, struct llmtap_call_event *c, __u32 op)
{
	__u64 params;

	c->op = op;
	c->seq = -1;
	c->handle = PT_REGS_PARM1(ctx);
	c->aux = op == LLMTAP_CALL_SEQ_LOAD_FILE ? PT_REGS_PARM4(ctx) : 0;
	c->text_len = 0;
	c->text[0] = '\0';
	c->params[0] = c->params[1] = c->params[2] = c->params[3] = 0;
	switch (op) {
	case LLMTAP_CALL_SEQ_SAVE_FILE:
	case LLMTAP_CALL_SEQ_LOAD_FILE:
		c->seq = (__s32)PT_REGS_PARM3(ctx);
		read_cstr(c->text, sizeof(c->text), PT_REGS_PARM2(ctx), &c->text_len);
		break;
	case LLMTAP_CALL_SEQ_GET_DATA:
	case LLMTAP_CALL_SEQ_SET_DATA:
		c->seq = (__s32)PT_REGS_PARM4(ctx);
		break;
	case LLMTAP_CALL_SAVE_FILE:
	case LLMTAP_CALL_LOAD_FILE:
		read_cstr(c->text, sizeof(c->text), PT_REGS_PARM2(ctx), &c->text_len);
		break;
	case LLMTAP_CALL_MODEL_LOAD:
		c->handle = 0;
		read_cstr(c->text, sizeof(c->text), PT_REGS_PARM1(ctx), &c->text_len);
		break;
	case LLMTAP_CALL_SAMPLER_INIT: {
		/* common_params_sampling: seed @0, top_k @16, top_p @20, temp @40 */
		__u32 sp[11] = {};

		bpf_probe_read_user(sp, sizeof(sp), (const void *)PT_REGS_PARM2(ctx));
		c->params[0] = sp[0];
		c->params[1] = sp[4];
		c->params[2] = sp[5];
		c->params[3] = sp[10];
		break;
	}
	case LLMTAP_CALL_CONTEXT_INIT:
		/* llama_context_params by value: on the stack on x86-64, by reference on arm64 */
#if defined(__TARGET_ARCH_x86)
		params = PT_REGS_SP(ctx) + 8;
#else
		params = PT_REGS_PARM2(ctx);
#endif
		bpf_probe_read_user(c->params, sizeof(c->params), (const void *)params);
		break;
	}
	c->start_ns = bpf_ktime_get_ns();
}

/*
 * op: enum llmtap_call_op. entry_only: the call has no return probe (it can
 * throw a C++ exception out, which cannot unwind through a return probe's
 * trampoline; user/probes.c says which), so it is recorded at entry, untimed.
 */
static __always_inline int call_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_call_event *ev;
	struct entry *e;

	if (entry_only) { /* no return probe follows: the record goes now, untimed */
		ev = small_reserve(sizeof(*ev), LLMTAP_EV_CALL);
		if (!ev)
			return 0;
		call_fill(ctx, ev, op);
		ev->end_ns = ev->start_ns;
		ev->ret = 0;
		ev->_pad = 0;
		bpf_ringbuf_submit(ev, wakeup_flags());
		return 0;
	}
	e = thread_entry(true);
	if (!e || e->call_depth++)
		return 0;
	call_fill(ctx, &e->call, op);
	return 0;
}

static __always_inline int call_exit(struct pt_regs *ctx)
{
	__u64 end = bpf_ktime_get_ns();
	struct entry *e = outermost_return(false);
	struct llmtap_call_event *ev;

	if (!e)
		return 0;
	ev = rb_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	__builtin_memcpy(ev, &e->call, sizeof(*ev));
	record_head(&ev->hdr, sizeof(*ev), LLMTAP_EV_CALL);
	ev->end_ns = end;
	ev->ret = (long)PT_REGS_RC(ctx);
	ev->_pad = 0;
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* ---- the two programs: every site's cookie says which probe it is ---- */

SEC("uprobe")
int probe_enter(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 op = (__u32)cookie & ~LLMTAP_ENTRY_ONLY;
	bool entry_only = (__u32)cookie & LLMTAP_ENTRY_ONLY;

	switch (cookie >> 32) {
	case LLMTAP_P_STEP:
		return step_enter(ctx, op);
	case LLMTAP_P_SAMPLE:
		return sample_enter(ctx, entry_only);
	case LLMTAP_P_KV:
		return kv_enter(ctx, op);
	case LLMTAP_P_SERVER:
		return srv_enter(ctx, op);
	case LLMTAP_P_HTTP:
		return http_enter(ctx, op);
	case LLMTAP_P_CALL:
		return call_enter(ctx, op, entry_only);
	}
	return 0;
}

SEC("uretprobe")
int probe_exit(struct pt_regs *ctx)
{
	switch (bpf_get_attach_cookie(ctx) >> 32) {
	case LLMTAP_P_STEP:
		return step_exit(ctx);
	case LLMTAP_P_SAMPLE:
		return sample_exit(ctx);
	case LLMTAP_P_SERVER: /* get_new_id */
		return new_id_exit(ctx);
	case LLMTAP_P_HTTP: /* process_request */
		return http_end(ctx);
	case LLMTAP_P_CALL:
		return call_exit(ctx);
	}
	return 0;
}
