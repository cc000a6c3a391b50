// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The handlers of the probe sites in include/llmtap_sites.def: engine steps
 * (llama_decode / llama_encode entry and return), sampling, KV-cache edits,
 * timed library calls, and llama-server's task/slot and HTTP handling (small
 * records; the loader correlates them). Offsets read in the target's memory
 * are named in include/llmtap_offsets.h.
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
#include "llmtap_offsets.h"
#include "llmtap_sites.h"

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
/*
 * offsetof(server_task, params.n_predict) and offsetof(server_slot, stop) for the
 * target's build, -1 unknown (user/target/layout.c). Writable data, not rodata: a
 * target started by llmtap run tells its build only once it has relocated itself.
 */
volatile __s32 task_n_predict_off = -1;
volatile __s32 slot_stop_off = -1;
/* 0: the target's synchronizing calls may throw and have no return probe (the loader) */
volatile __u32 sync_on = 1;

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

#define BATCH_AT(field, off) \
	_Static_assert(__builtin_offsetof(struct batch_raw, field) == (off), #field " at " #off)
_Static_assert(sizeof(struct batch_raw) == LLAMA_BATCH_SIZE, "struct llama_batch is 56 bytes");
BATCH_AT(n_tokens, LLAMA_BATCH_N_TOKENS);
BATCH_AT(token, LLAMA_BATCH_TOKEN);
BATCH_AT(embd, LLAMA_BATCH_EMBD);
BATCH_AT(pos, LLAMA_BATCH_POS);
BATCH_AT(n_seq_id, LLAMA_BATCH_N_SEQ_ID);
BATCH_AT(seq_id, LLAMA_BATCH_SEQ_ID);
BATCH_AT(logits, LLAMA_BATCH_LOGITS);

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
	/* the synchronizing call in flight that ends its context's step */
	__u64 sync_ctx;
	__u64 sync_step_end;
	__u64 sync_ns;
	__u64 sync_nivcsw;
	__u32 sync_op;
	__u32 sync_depth;
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

/*
 * Per context: the return time of its last step while no synchronizing call
 * has claimed it yet (0 once claimed). Set at a step's return, after its
 * record is out, so a sync record always follows the step it ends.
 */
struct unsynced_key {
	__u32 pid;
	__u32 _pad;
	__u64 ctx;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct unsynced_key);
	__type(value, __u64);
} unsynced SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LLMTAP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/*
 * Per llama-server slot (server_slot *, in this process): its last stop-string
 * check since its task launched. Read and cleared by send_final_response: a
 * last check after the final token that looked for a whole stop string means
 * the token ended on one (or on end-of-generation); a partial check means
 * neither. LRU: slots are few, a target cannot grow it.
 */
struct stop_key {
	__u32 pid;
	__u32 _pad;
	__u64 slot;
};

struct stop_check {
	__u64 ts_ns;
	__u32 full;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct stop_key);
	__type(value, struct stop_check);
} stop_checks SEC(".maps");

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

static __always_inline int step_enter(struct pt_regs *regs, __u32 op, bool entry_only)
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
	src = (const void *)(PT_REGS_SP(regs) + OFF_X86_STACK_ARG);
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

static __always_inline int step_exit(struct pt_regs *regs, __u32 op)
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
	/* the step's outputs await their context's next synchronizing call */
	bpf_map_update_elem(&unsynced, &(struct unsynced_key){ .pid = id >> 32, .ctx = e->ctx },
			    &end_ns, BPF_ANY);
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

/*
 * common_sampler_sample(gsmpl, ctx, idx, ...), llama_sampler_sample(smpl, ctx, idx)
 * or llama_get_logits_ith(ctx, idx) (op LLMTAP_SAMPLE_OP_LOGITS: what every sampler
 * reads, the only sign of a token in an embedder that samples on its own)
 * entry: one token is being sampled from output idx of the last batch this
 * thread decoded; its sequence is read now, while that batch is certainly
 * alive. With a return probe the record goes out when the call returns and the
 * token exists, which is where a request's first token is timed (llama-server
 * times the end of its prompt there too); entry_only: it goes out now.
 */
static __always_inline int sample_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	bool logits = op == LLMTAP_SAMPLE_OP_LOGITS;
	struct entry *e = thread_entry(!entry_only);
	__s32 idx = (__s32)(logits ? PT_REGS_PARM2(ctx) : PT_REGS_PARM3(ctx)), seq = -1;
	__u64 now, ptr = 0, llama_ctx = logits ? PT_REGS_PARM1(ctx) : PT_REGS_PARM2(ctx);
	__u32 flags = logits ? LLMTAP_SAMPLE_LOGITS : 0;

	if (!entry_only && (!e || e->sample_depth++))
		return 0; /* only the outermost sampler call is a token */
	if (e && idx < 0 && !logits) /* counted from the end of the batch */
		idx += e->b.n_tokens;
	/* an embedder may read logits on another thread than the one that decoded
	 * (node-llama-cpp's thread pool): the loader finds the sequence from the
	 * context's last batch instead */
	if (logits || !e || !e->has_batch || idx < 0 || idx >= e->b.n_tokens) {
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
		return sample_emit(llama_ctx, now, now, idx, seq, flags, -1);
	if (e) {
		e->sample_ctx = llama_ctx;
		e->sample_idx = idx;
		e->sample_seq = seq;
		e->sample_flags = flags;
		e->sample_ns = now;
	}
	return 0;
}

static __always_inline int sample_exit(struct pt_regs *ctx, __u32 op)
{
	__u64 end_ns = bpf_ktime_get_ns();
	struct entry *e = outermost_return(true);

	if (!e)
		return 0;
	return sample_emit(e->sample_ctx, e->sample_ns, end_ns, e->sample_idx, e->sample_seq,
			   e->sample_flags, (__s32)PT_REGS_RC(ctx));
}

/*
 * ---- sync: a context's first synchronizing call after a step ----
 * Entry: unless this call claims its context's unsynced step (the first since
 * that step returned), nothing but a map lookup; calls nested in a claiming
 * one are counted. Return: the claiming call's return emits one record.
 * The entry returns 1 when the call's return has nothing to do: a uprobe
 * session then skips it (the classic programs ignore the value).
 */
static __always_inline int sync_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct unsynced_key key = { .pid = bpf_get_current_pid_tgid() >> 32 };
	struct entry *e = thread_entry(false);
	__u64 *unsynced_end, step_end;

	if (!sync_on)
		return 1;
	if (e && e->sync_depth) { /* nested in a claiming call: its return counts down */
		e->sync_depth++;
		return 0;
	}
	key.ctx = PT_REGS_PARM1(ctx);
	unsynced_end = bpf_map_lookup_elem(&unsynced, &key);
	if (!unsynced_end || !(step_end = *unsynced_end))
		return 1;
	/* another thread may read the same context's outputs: one claim wins */
	if (__sync_val_compare_and_swap(unsynced_end, step_end, 0) != step_end)
		return 1;
	if (!e)
		e = thread_entry(true);
	if (!e) {
		stat_inc(LLMTAP_STAT_ENTRY_FULL);
		return 1;
	}
	e->sync_ctx = key.ctx;
	e->sync_step_end = step_end;
	e->sync_op = op;
	e->sync_depth = 1;
	e->sync_nivcsw = bpf_get_current_task_btf()->nivcsw;
	e->sync_ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int sync_exit(struct pt_regs *ctx, __u32 op)
{
	__u64 end_ns = bpf_ktime_get_ns();
	struct entry *e = thread_entry(false);
	struct llmtap_sync_event *ev;

	if (!e || !e->sync_depth || --e->sync_depth)
		return 0;
	ev = small_reserve(sizeof(*ev), LLMTAP_EV_SYNC);
	if (!ev)
		return 0;
	ev->ctx = e->sync_ctx;
	ev->step_end_ns = e->sync_step_end;
	ev->start_ns = e->sync_ns;
	ev->end_ns = end_ns;
	ev->op = e->sync_op;
	/* an involuntary switch inside the call: its duration is not (only) a wait */
	ev->flags = bpf_get_current_task_btf()->nivcsw != e->sync_nivcsw ? LLMTAP_SYNC_PREEMPTED : 0;
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/*
 * llama_get_logits_ith(ctx, i): a sampling site where the loader chose it for
 * the sampling layer (cookie flag LLMTAP_COOKIE_SAMPLE: one record per read,
 * at entry, as an entry-only row), and a synchronizing call everywhere.
 */
static __always_inline int logits_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	if (bpf_get_attach_cookie(ctx) & LLMTAP_COOKIE_SAMPLE)
		sample_enter(ctx, op, true);
	return sync_enter(ctx, LLMTAP_SYNC_LOGITS_ITH, false);
}

/* ---- small records: KV edits, llama-server lifecycle, HTTP ---- */

/* Copy a libstdc++ std::string at src, truncated to cap - 1. */
static __always_inline __u32 read_string(char *dst, __u32 cap, __u64 src)
{
	__u64 p = 0, len = 0, n;

	dst[0] = '\0';
	if (!src || bpf_probe_read_user(&p, sizeof(p), (const void *)(src + STDSTRING_PTR)) ||
	    bpf_probe_read_user(&len, sizeof(len), (const void *)(src + STDSTRING_LEN)))
		return 0;
	n = len < cap - 1 ? len : cap - 1;
	barrier_var(n);
	if (n > cap - 1 || bpf_probe_read_user(dst, n, (const void *)p))
		return 0;
	dst[n] = '\0';
	return (__u32)n;
}

/* An int at ptr + off in the target, or -1 when it cannot be read. */
static __always_inline __s32 read_int(__u64 ptr, __u32 off)
{
	__s32 v = -1;

	if (bpf_probe_read_user(&v, sizeof(v), (const void *)(ptr + off)))
		v = -1;
	return v;
}

/* llama_memory_seq_*(mem, ...) and their older names: the integer arguments after mem, in order. */
static __always_inline int kv_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
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

/* A llama-server record with nothing known yet (ids -1). */
static __always_inline struct llmtap_srv_event *srv_reserve(__u32 op)
{
	struct llmtap_srv_event *ev = small_reserve(sizeof(*ev), LLMTAP_EV_SERVER);

	if (!ev)
		return NULL;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->op = op;
	ev->task_id = -1;
	ev->slot_id = -1;
	ev->err_type = -1;
	ev->msg_len = 0;
	ev->_pad = 0;
	ev->ctx = 0;
	ev->msg[0] = '\0';
	ev->stop_ns = 0;
	ev->stop_full = 0;
	ev->n_predict = LLMTAP_N_PREDICT_UNKNOWN;
	ev->stop_type = -1;
	ev->_pad2 = 0;
	return ev;
}

static __always_inline struct stop_key stop_key_of(__u64 slot)
{
	struct stop_key k = { .pid = bpf_get_current_pid_tgid() >> 32, .slot = slot };

	return k;
}

/* server_queue::get_new_id() returned the id of a task an HTTP thread creates */
static __always_inline int srv_new_id_exit(struct pt_regs *ctx, __u32 op)
{
	struct llmtap_srv_event *ev = srv_reserve(op);

	if (!ev)
		return 0;
	ev->task_id = (__s32)PT_REGS_RC(ctx);
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* server_queue::defer(server_task &&task): no free slot for it */
static __always_inline int srv_defer_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_srv_event *ev = srv_reserve(op);

	if (!ev)
		return 0;
	ev->task_id = read_int(PT_REGS_PARM2(ctx), SERVER_TASK_ID);
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* launch_slot_with_task(server_slot &slot, server_task &&task) */
static __always_inline int srv_launch_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_srv_event *ev = srv_reserve(op);
	__u64 slot = PT_REGS_PARM2(ctx);

	if (!ev)
		return 0;
	struct stop_key k = stop_key_of(slot);

	bpf_map_delete_elem(&stop_checks, &k); /* a new task: no check of its own yet */
	ev->slot_id = read_int(slot, SERVER_SLOT_ID);
	ev->task_id = read_int(PT_REGS_PARM3(ctx), SERVER_TASK_ID);
	if (task_n_predict_off >= 0 &&
	    bpf_probe_read_user(&ev->n_predict, sizeof(ev->n_predict),
				(const void *)(PT_REGS_PARM3(ctx) + task_n_predict_off)))
		ev->n_predict = LLMTAP_N_PREDICT_UNKNOWN;
	ev->stop_type = -1;
	ev->_pad2 = 0;
	/* the slot's llama_context: tells a draft model's steps apart */
	bpf_probe_read_user(&ev->ctx, sizeof(ev->ctx), (const void *)(slot + SERVER_SLOT_CTX));
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* send_final_response(server_slot &slot) / send_partial_response(server_slot &slot, ...) */
static __always_inline int srv_slot_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_srv_event *ev = srv_reserve(op);
	__u64 slot = PT_REGS_PARM2(ctx);

	if (!ev)
		return 0;
	ev->slot_id = read_int(slot, SERVER_SLOT_ID);
	if (op == LLMTAP_SRV_FINAL) {
		struct stop_key k = stop_key_of(slot);
		struct stop_check *sc = bpf_map_lookup_elem(&stop_checks, &k);

		if (sc) {
			ev->stop_ns = sc->ts_ns;
			ev->stop_full = sc->full;
			bpf_map_delete_elem(&stop_checks, &k);
		}
		if (slot_stop_off >= 0 &&
		    bpf_probe_read_user(&ev->stop_type, sizeof(ev->stop_type),
					(const void *)(slot + slot_stop_off)))
			ev->stop_type = -1;
	}
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* server_slot::find_stopping_strings(this, text, last_token_size, is_full_stop) */
static __always_inline int srv_stop_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct stop_key k = stop_key_of(PT_REGS_PARM1(ctx));
	struct stop_check sc = {
		.ts_ns = bpf_ktime_get_ns(),
		.full = (__u8)PT_REGS_PARM4(ctx) != 0,
	}, *old = bpf_map_lookup_elem(&stop_checks, &k);

	if (old) { /* the slot's every later check: written in place, no element swapped */
		old->ts_ns = sc.ts_ns;
		old->full = sc.full;
	} else {
		bpf_map_update_elem(&stop_checks, &k, &sc, BPF_ANY);
	}
	return 0;
}

/* send_error(int id_task, const std::string &message, error_type type, ...) */
static __always_inline int srv_error_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_srv_event *ev = srv_reserve(op);

	if (!ev)
		return 0;
	ev->task_id = (__s32)PT_REGS_PARM2(ctx);
	ev->err_type = (__s32)PT_REGS_PARM4(ctx);
	ev->msg_len = read_string(ev->msg, sizeof(ev->msg), PT_REGS_PARM3(ctx));
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

/* process_request(strm, remote_addr, remote_port, local_addr, local_port, ...) */
static __always_inline int http_begin_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_http_event *ev = http_reserve(op);

	if (!ev)
		return 0;
	ev->len0 = read_string(ev->s0, sizeof(ev->s0), PT_REGS_PARM3(ctx));
	ev->value = (__s32)PT_REGS_PARM4(ctx);
	ev->value2 = (__s32)PT_REGS_PARM6(ctx);
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* process_request's return: the response is written, streamed ones too */
static __always_inline int http_end_exit(struct pt_regs *ctx, __u32 op)
{
	struct llmtap_http_event *ev = http_reserve(LLMTAP_HTTP_END);

	if (!ev)
		return 0;
	ev->value = (int)PT_REGS_RC(ctx) & 0xff;
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* routing(Request &req, Response &res, Stream &strm) */
static __always_inline int http_route_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_http_event *ev = http_reserve(op);
	__u64 req = PT_REGS_PARM2(ctx);

	if (!ev)
		return 0;
	ev->len0 = read_string(ev->s0, sizeof(ev->s0), req + HTTPLIB_REQUEST_METHOD);
	ev->len1 = read_string(ev->s1, sizeof(ev->s1), req + HTTPLIB_REQUEST_PATH);
	bpf_ringbuf_submit(ev, wakeup_flags());
	return 0;
}

/* write_response_core(strm, close_connection, const Request &req, Response &res, ...) */
static __always_inline int http_status_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_http_event *ev = http_reserve(op);

	if (!ev)
		return 0;
	ev->value = read_int(PT_REGS_PARM5(ctx), HTTPLIB_RESPONSE_STATUS);
	if (ev->value < 0)
		ev->value = 0;
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

/*
 * The record a call's entry fills: straight in the ring buffer when it has no
 * return probe (entry_only), else this thread's call in flight (the outermost
 * one only). NULL: nothing to fill.
 */
static __always_inline struct llmtap_call_event *call_begin(struct pt_regs *ctx, __u32 op,
							    bool entry_only)
{
	struct llmtap_call_event *c;
	struct entry *e;

	if (entry_only) {
		c = small_reserve(sizeof(*c), LLMTAP_EV_CALL);
	} else {
		e = thread_entry(true);
		if (!e || e->call_depth++)
			return NULL;
		c = &e->call;
	}
	if (!c)
		return NULL;
	c->op = op;
	c->seq = -1;
	c->handle = PT_REGS_PARM1(ctx);
	c->aux = 0;
	c->text_len = 0;
	c->text[0] = '\0';
	c->params[0] = c->params[1] = c->params[2] = c->params[3] = 0;
	c->cparams_len = 0;
	c->_pad2 = 0;
	return c;
}

/* The arguments are in c: start the clock, or send it now, untimed, when no return follows. */
static __always_inline int call_started(struct llmtap_call_event *c, bool entry_only)
{
	c->start_ns = bpf_ktime_get_ns();
	if (entry_only) {
		c->end_ns = c->start_ns;
		c->ret = 0;
		c->_pad = 0;
		bpf_ringbuf_submit(c, wakeup_flags());
	}
	return 0;
}

/* llama_tokenize(vocab, text, len, ...): the vocabulary only, never the text */
static __always_inline int call_plain_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_call_event *c = call_begin(ctx, op, entry_only);

	return c ? call_started(c, entry_only) : 0;
}

/* llama_state_seq_{save,load}_file(ctx, path, seq, tokens, ...) */
static __always_inline int call_seq_file_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_call_event *c = call_begin(ctx, op, entry_only);

	if (!c)
		return 0;
	c->seq = (__s32)PT_REGS_PARM3(ctx);
	/* load: tokens_out (NULL: a header probe, not a load) */
	c->aux = op == LLMTAP_CALL_SEQ_LOAD_FILE ? PT_REGS_PARM4(ctx) : 0;
	read_cstr(c->text, sizeof(c->text), PT_REGS_PARM2(ctx), &c->text_len);
	return call_started(c, entry_only);
}

/* llama_state_seq_{get,set}_data[_ext](ctx, buf, size, seq, ...) */
static __always_inline int call_seq_data_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_call_event *c = call_begin(ctx, op, entry_only);

	if (!c)
		return 0;
	c->seq = (__s32)PT_REGS_PARM4(ctx);
	return call_started(c, entry_only);
}

/* llama_state_{save,load}_file(ctx, path, ...) */
static __always_inline int call_file_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_call_event *c = call_begin(ctx, op, entry_only);

	if (!c)
		return 0;
	read_cstr(c->text, sizeof(c->text), PT_REGS_PARM2(ctx), &c->text_len);
	return call_started(c, entry_only);
}

/* llama_model_load_from_file(path, params) */
static __always_inline int call_model_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_call_event *c = call_begin(ctx, op, entry_only);

	if (!c)
		return 0;
	c->handle = 0;
	read_cstr(c->text, sizeof(c->text), PT_REGS_PARM1(ctx), &c->text_len);
	return call_started(c, entry_only);
}

/* llama_init_from_model(model, struct llama_context_params params): by value */
static __always_inline int call_context_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_call_event *c = call_begin(ctx, op, entry_only);
	__u64 params;

	if (!c)
		return 0;
#if defined(__TARGET_ARCH_x86)
	params = PT_REGS_SP(ctx) + OFF_X86_STACK_ARG; /* on the stack */
#else
	params = PT_REGS_PARM2(ctx); /* by reference on arm64 */
#endif
	/* n_ctx, n_batch, n_ubatch, n_seq_max: the first four fields */
	bpf_probe_read_user(c->params, sizeof(c->params), (const void *)(params + LLAMA_CPARAMS_N_CTX));
	/* the head of the struct, raw, for the loader to decode by version (cache
	 * types, kv_unified, ...); an older, smaller struct may end nearer a page */
	if (!bpf_probe_read_user(c->cparams, LLMTAP_CPARAMS_LEN, (const void *)params))
		c->cparams_len = LLMTAP_CPARAMS_LEN;
	else if (!bpf_probe_read_user(c->cparams, LLAMA_CPARAMS_SIZE_MIN, (const void *)params))
		c->cparams_len = LLAMA_CPARAMS_SIZE_MIN;
	return call_started(c, entry_only);
}

/* common_sampler_init(model, common_params_sampling &params) */
static __always_inline int call_sampler_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	struct llmtap_call_event *c = call_begin(ctx, op, entry_only);
	__u32 sp[SAMPLING_HEAD / 4] = {};

	if (!c)
		return 0;
	bpf_probe_read_user(sp, sizeof(sp), (const void *)PT_REGS_PARM2(ctx));
	c->params[0] = sp[SAMPLING_SEED / 4];
	c->params[1] = sp[SAMPLING_TOP_K / 4];
	c->params[2] = sp[SAMPLING_TOP_P / 4];
	c->params[3] = sp[SAMPLING_TEMP / 4]; /* float bits */
	return call_started(c, entry_only);
}

static __always_inline int call_exit(struct pt_regs *ctx, __u32 op)
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

/* the "none" handler of a site without an entry or a return probe: never attached */
static __always_inline int none_enter(struct pt_regs *ctx, __u32 op, bool entry_only)
{
	return 0;
}

static __always_inline int none_exit(struct pt_regs *ctx, __u32 op)
{
	return 0;
}

/*
 * ---- the two programs ----
 * Every probe's cookie is its site id (include/llmtap_sites.def); each program
 * dispatches once on it to the site's handler. Two programs, not one per site:
 * uprobe_multi links one program to many offsets of one file, so a target costs
 * one link per file and direction, and removing a uprobe link waits for an RCU
 * grace period (~0.1 s here) per link: with a link per site, detaching (Ctrl-C,
 * a daemon's target exiting) would take seconds.
 */
#define HAS_ENTRY(probe) ((PROBE_##probe) & PROBE_ENTRY)
#define HAS_RETURN(probe) ((PROBE_##probe) & PROBE_RETURN)

SEC("uprobe")
int probe_enter(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);

	switch (cookie & LLMTAP_COOKIE_SITE) {
#define SITE(id, label, layer, need, probe, enter, exit, op, ...)                                  \
	case SITE_##id:                                                                            \
		if (HAS_ENTRY(probe))                                                              \
			enter##_enter(ctx, op, !HAS_RETURN(probe) ||                               \
					       (cookie & LLMTAP_COOKIE_ENTRY_ONLY));               \
		return 0;
#include "llmtap_sites.def"
#undef SITE
	}
	return 0;
}

SEC("uretprobe")
int probe_exit(struct pt_regs *ctx)
{
	switch (bpf_get_attach_cookie(ctx) & LLMTAP_COOKIE_SITE) {
#define SITE(id, label, layer, need, probe, enter, exit, op, ...)                                  \
	case SITE_##id:                                                                            \
		return HAS_RETURN(probe) ? exit##_exit(ctx, op) : 0;
#include "llmtap_sites.def"
#undef SITE
	}
	return 0;
}

/*
 * The SESSION sites where the kernel has uprobe sessions (Linux 6.13): one
 * program for entry and return; the entry handler's value decides whether the
 * return runs (0) or not. Not loaded where the kernel has none (the loader
 * turns its autoload off): its sites then get probe_enter and probe_exit.
 */
extern bool bpf_session_is_return(void) __ksym __weak;

#define IS_SESSION(probe) ((PROBE_##probe) & PROBE_SESSION_BIT)

SEC("uprobe")
int probe_session(struct pt_regs *ctx)
{
	bool ret = bpf_session_is_return();

	switch (bpf_get_attach_cookie(ctx) & LLMTAP_COOKIE_SITE) {
#define SITE(id, label, layer, need, probe, enter, exit, op, ...)                                  \
	case SITE_##id:                                                                            \
		if (!IS_SESSION(probe))                                                            \
			return 1;                                                                  \
		return ret ? exit##_exit(ctx, op) : enter##_enter(ctx, op, false);
#include "llmtap_sites.def"
#undef SITE
	}
	return 1;
}
