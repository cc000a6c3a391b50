// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Engine-step probes: llama_decode / llama_encode entry and return.
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

struct entry {
	__u64 start_ns;
	__u64 ctx;
	__u32 op;
	__u32 flags;
	struct batch_raw b;
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
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
	} else if (ev->n_runs < LLMTAP_MAX_RUNS) {
		run = &ev->runs[ev->n_runs & (LLMTAP_MAX_RUNS - 1)];
		run->seq_id = seqs[0];
		run->n_tokens = 1;
		run->pos_first = pos;
		run->pos_last = pos;
		run->n_outputs = out;
		ev->n_runs++;
	} else {
		ev->flags |= LLMTAP_STEP_RUNS_TRUNC;
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
	__u32 zero = 0, n;
	__u64 flags = BPF_RB_NO_WAKEUP;

	e = bpf_task_storage_get(&entries, bpf_get_current_task_btf(), NULL, 0);
	if (!e || !e->start_ns) {
		stat_inc(LLMTAP_STAT_ENTRY_LOST);
		return 0;
	}
	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		goto out;
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

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), flags))
		stat_inc(LLMTAP_STAT_RB_LOST);
out:
	e->start_ns = 0; /* consumed */
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(decode_enter)
{
	return step_enter(ctx, LLMTAP_OP_DECODE);
}

SEC("uretprobe")
int BPF_KRETPROBE(decode_exit)
{
	return step_exit(ctx);
}

SEC("uprobe")
int BPF_KPROBE(encode_enter)
{
	return step_enter(ctx, LLMTAP_OP_ENCODE);
}

SEC("uretprobe")
int BPF_KRETPROBE(encode_exit)
{
	return step_exit(ctx);
}
