/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Event records shared by the BPF programs (bpf/) and the loader (user/).
 * Fixed-width types, explicit padding; every record starts with struct
 * llmtap_hdr so the consumer can check version and kind before decoding.
 */
#ifndef LLMTAP_EVENTS_H
#define LLMTAP_EVENTS_H

#ifndef __VMLINUX_H__ /* BPF programs get the types from vmlinux.h */
#include <linux/types.h>
#endif

#define LLMTAP_EVENT_VERSION 3

/* llama.cpp limits (src/llama-cparams.h: LLAMA_MAX_SEQ) */
#define LLMTAP_MAX_SEQ 256
#define LLMTAP_SEQ_WORDS (LLMTAP_MAX_SEQ / 64)

/* BPF-side bounds: tokens scanned per batch, runs kept per batch */
#define LLMTAP_SCAN_CHUNK 64
#define LLMTAP_MAX_SCAN_TOKENS 65536
#define LLMTAP_MAX_RUNS 16
#define LLMTAP_MAX_SEQ_PER_TOKEN 4

enum llmtap_event_kind {
	LLMTAP_EV_STEP = 1,   /* one llama_decode / llama_encode call */
	LLMTAP_EV_SAMPLE = 2, /* one sampled token */
	LLMTAP_EV_KV = 3,     /* a KV-cache (memory) edit */
	LLMTAP_EV_SERVER = 4, /* llama-server task and slot lifecycle */
	LLMTAP_EV_HTTP = 5,   /* llama-server HTTP request handling */
	LLMTAP_EV_CALL = 6,   /* a timed library call: state save/load, model load, ... */
	LLMTAP_EV_SYNC = 7,   /* a context's first synchronizing call after a step */
};

#define LLMTAP_ADDR_LEN 48
#define LLMTAP_PATH_LEN 128
#define LLMTAP_CPARAMS_LEN 136 /* bytes of llama_context_params kept (kv_unified at 133 today) */
#define LLMTAP_MSG_LEN 160

enum llmtap_step_op {
	LLMTAP_OP_DECODE = 0,
	LLMTAP_OP_ENCODE = 1,
};

/* flags on a step event */
enum llmtap_step_flags {
	LLMTAP_STEP_SEQ_NULL = 1 << 0,     /* batch.seq_id == NULL: all tokens in seq 0 */
	LLMTAP_STEP_POS_NULL = 1 << 1,     /* batch.pos == NULL: positions chosen by llama.cpp */
	LLMTAP_STEP_LOGITS_NULL = 1 << 2,  /* batch.logits == NULL: only the last token outputs */
	LLMTAP_STEP_RUNS_TRUNC = 1 << 3,   /* runs lost (a continuation record was dropped) */
	LLMTAP_STEP_SCAN_TRUNC = 1 << 4,   /* n_tokens > LLMTAP_MAX_SCAN_TOKENS */
	LLMTAP_STEP_READ_ERR = 1 << 5,     /* a user-memory read failed */
	LLMTAP_STEP_MULTI_SEQ = 1 << 6,    /* some token belongs to several sequences */
	LLMTAP_STEP_EMBD = 1 << 7,         /* batch carries embeddings, not tokens */
	LLMTAP_STEP_MORE = 1 << 8,         /* runs only: the step's next record continues them */
};

/* counters in the BPF "stats" per-CPU array, indexed by this enum */
enum llmtap_stat {
	LLMTAP_STAT_RB_LOST = 0,   /* ring buffer full: event dropped */
	LLMTAP_STAT_ENTRY_LOST,    /* a return without its entry: the call began before attach */
	LLMTAP_STAT_ENTRY_FULL,    /* no task storage for an entry: that call is lost */
	LLMTAP_STAT_MAX,
};

/* A probe's BPF cookie is its site id: include/llmtap_sites.h. */

struct llmtap_hdr {
	__u16 version;
	__u16 kind;
	__u32 size; /* bytes of the whole record */
};

/* A run of consecutive batch tokens that belong to the same sequence. */
struct llmtap_run {
	__s32 seq_id;
	__u32 n_tokens;
	__s32 pos_first;
	__s32 pos_last;
	__u32 n_outputs;
	__u32 _pad;
};

struct llmtap_step_event {
	struct llmtap_hdr hdr;
	__u32 pid;
	__u32 tid;
	__u64 ctx; /* struct llama_context * */
	__u64 start_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 end_ns;
	__s32 ret;
	__u32 op;  /* enum llmtap_step_op */
	__s32 n_tokens;
	__u32 n_outputs;
	__u32 flags;
	__u32 n_runs; /* runs[] entries filled (<= LLMTAP_MAX_RUNS) */
	__u64 seq_mask[LLMTAP_SEQ_WORDS]; /* sequences present in the batch */
	struct llmtap_run runs[LLMTAP_MAX_RUNS];
};

/* one token sampled for a sequence (common_sampler_sample / llama_sampler_sample entry) */
struct llmtap_sample_event {
	struct llmtap_hdr hdr;
	__u32 pid;
	__u32 tid;
	__u64 ctx;      /* the llama_context sampled from */
	__u64 start_ns; /* the sampler call's entry */
	__u64 end_ns;   /* its return: the token exists from here */
	__s32 idx;      /* output index in the last batch this thread decoded */
	__s32 seq_id;   /* that output's sequence, -1 when unknown */
	__s32 token;    /* the sampled token; -1 when recorded at entry */
	__u32 flags;    /* LLMTAP_SAMPLE_* */
};

enum llmtap_sample_flags {
	LLMTAP_SAMPLE_NO_BATCH = 1 << 0, /* no decode seen on this thread: seq unknown */
	LLMTAP_SAMPLE_READ_ERR = 1 << 1,
	LLMTAP_SAMPLE_LOGITS = 1 << 2,   /* an output's logits were read (llama_get_logits_ith) */
};

/* the op of a sampling site's row: where its (ctx, idx) arguments are */
enum llmtap_sample_op {
	LLMTAP_SAMPLE_OP_SAMPLER = 0, /* sampler(smpl, ctx, idx, ...) */
	LLMTAP_SAMPLE_OP_LOGITS = 1,  /* llama_get_logits_ith(ctx, idx) */
};

/* which KV edit (the op of a KV site's row in llmtap_sites.def) */
enum llmtap_kv_op {
	LLMTAP_KV_SEQ_RM = 0, /* (mem, seq, p0, p1) */
	LLMTAP_KV_SEQ_CP,     /* (mem, src, dst, p0, p1) */
	LLMTAP_KV_SEQ_KEEP,   /* (mem, seq) */
	LLMTAP_KV_SEQ_ADD,    /* (mem, seq, p0, p1, delta) */
	LLMTAP_KV_SEQ_DIV,    /* (mem, seq, p0, p1, d) */
	LLMTAP_KV_CLEAR,      /* (mem, data) */
	LLMTAP_KV_OP_MAX,
};

struct llmtap_kv_event {
	struct llmtap_hdr hdr;
	__u32 pid;
	__u32 tid;
	__u64 mem; /* llama_memory_t, or the context for the older llama_kv_* names */
	__u64 ts_ns;
	__u32 op;  /* enum llmtap_kv_op */
	__s32 args[4]; /* the integer arguments after mem, in order */
	__u32 _pad;
};

/* what a llama-server record tells */
enum llmtap_srv_op {
	LLMTAP_SRV_NEW_ID = 0, /* server_queue::get_new_id() returned task_id (on an HTTP thread) */
	LLMTAP_SRV_DEFER,      /* server_queue::defer(task): no free slot */
	LLMTAP_SRV_LAUNCH,     /* launch_slot_with_task(slot, task) */
	LLMTAP_SRV_FINAL,      /* send_final_response(slot) */
	LLMTAP_SRV_ERROR,      /* send_error(task_id, message, type) */
	LLMTAP_SRV_PARTIAL,    /* send_partial_response(slot, ...): the task streams */
	LLMTAP_SRV_STOP_CHECK, /* server_slot::find_stopping_strings: no record, kept per slot for FINAL */
	LLMTAP_SRV_OP_MAX,
};

struct llmtap_srv_event {
	struct llmtap_hdr hdr;
	__u32 pid;
	__u32 tid;
	__u64 ts_ns;
	__u32 op;
	__s32 task_id;
	__s32 slot_id;
	__s32 err_type;
	__u32 msg_len;
	__u32 _pad;
	__u64 ctx; /* launch: the slot's llama_context (server_slot::ctx_tgt) */
	char msg[LLMTAP_MSG_LEN];
	/* final: the slot's last stop-string check since its task launched
	 * (server_slot::find_stopping_strings), 0 when none was seen */
	__u64 stop_ns;
	__u32 stop_full; /* that check looked for a whole stop string (is_full_stop) */
	__s32 n_predict; /* launch: the task's n_predict where its offset is known for the
			  * build (user/target/layout.c), LLMTAP_N_PREDICT_UNKNOWN otherwise */
	__s32 stop_type; /* final: server_slot::stop where its offset is known, else -1 */
	__u32 _pad2;
};

/* llama-server's enum stop_type (the same in every version checked) */
enum llmtap_stop_type {
	LLMTAP_STOP_NONE = 0,
	LLMTAP_STOP_EOS,
	LLMTAP_STOP_WORD,
	LLMTAP_STOP_LIMIT,
};

#define LLMTAP_N_PREDICT_UNKNOWN (-2)

enum llmtap_http_op {
	LLMTAP_HTTP_BEGIN = 0, /* process_request entry: s0 client address, value port, value2 local port */
	LLMTAP_HTTP_ROUTE,     /* routing entry: s0 method, s1 path */
	LLMTAP_HTTP_STATUS,    /* write_response_core entry: value status */
	LLMTAP_HTTP_END,       /* process_request return: value its result */
	LLMTAP_HTTP_OP_MAX,
};

struct llmtap_http_event {
	struct llmtap_hdr hdr;
	__u32 pid;
	__u32 tid;
	__u64 ts_ns;
	__u32 op;
	__s32 value;
	__s32 value2;
	__u32 len0;
	__u32 len1;
	__u32 _pad;
	char s0[LLMTAP_ADDR_LEN];
	char s1[LLMTAP_PATH_LEN];
};

/* which timed call */
enum llmtap_call_op {
	LLMTAP_CALL_SEQ_SAVE_FILE = 0, /* llama_state_seq_save_file(ctx, path, seq, ...) -> bytes */
	LLMTAP_CALL_SEQ_LOAD_FILE,     /* llama_state_seq_load_file(ctx, path, seq, ...) -> bytes */
	LLMTAP_CALL_SEQ_GET_DATA,      /* llama_state_seq_get_data_ext(ctx, dst, size, seq, flags) -> bytes */
	LLMTAP_CALL_SEQ_SET_DATA,      /* llama_state_seq_set_data_ext(ctx, src, size, seq, flags) -> bytes */
	LLMTAP_CALL_SAVE_FILE,         /* llama_state_save_file(ctx, path, ...) -> ok */
	LLMTAP_CALL_LOAD_FILE,         /* llama_state_load_file(ctx, path, ...) -> ok */
	LLMTAP_CALL_MODEL_LOAD,        /* llama_model_load_from_file(path, params) -> model */
	LLMTAP_CALL_CONTEXT_INIT,      /* llama_init_from_model(model, params) -> ctx */
	LLMTAP_CALL_TOKENIZE,          /* llama_tokenize(vocab, text, len, ...) -> n_tokens */
	LLMTAP_CALL_SAMPLER_INIT,      /* common_sampler_init(model, params) -> sampler */
	LLMTAP_CALL_OP_MAX,
};

struct llmtap_call_event {
	struct llmtap_hdr hdr;
	__u32 pid;
	__u32 tid;
	__u64 start_ns;
	__u64 end_ns;
	__u32 op;
	__s32 seq;      /* the sequence of a state call, -1 otherwise */
	__s64 ret;      /* bytes, token count, a pointer (0 = failed) or a bool */
	__u64 handle;   /* ctx / model / vocab */
	__u64 aux;      /* seq load file: tokens_out (NULL: a header probe, not a load) */
	__u32 params[4]; /* context init: n_ctx, n_batch, n_ubatch, n_seq_max;
			  * sampler init: seed, top_k, top_p and temp (float bits) */
	__u32 text_len;
	__u32 _pad;
	char text[LLMTAP_PATH_LEN]; /* model or state file path; never prompt text */
	/* context init: the head of llama_context_params as the target passed it,
	 * raw; the loader decodes it by llama.cpp version (include/llmtap_offsets.h) */
	__u32 cparams_len; /* bytes of cparams read: 0 none */
	__u32 _pad2;
	__u8 cparams[LLMTAP_CPARAMS_LEN];
};

/* which synchronizing call (the op of a sync site's row) */
enum llmtap_sync_op {
	LLMTAP_SYNC_SYNCHRONIZE = 0, /* llama_synchronize(ctx) */
	LLMTAP_SYNC_LOGITS,          /* llama_get_logits(ctx) */
	LLMTAP_SYNC_LOGITS_ITH,      /* llama_get_logits_ith(ctx, i) */
	LLMTAP_SYNC_EMBD,            /* llama_get_embeddings(ctx) */
	LLMTAP_SYNC_EMBD_ITH,        /* llama_get_embeddings_ith(ctx, i) */
	LLMTAP_SYNC_EMBD_SEQ,        /* llama_get_embeddings_seq(ctx, seq) */
	LLMTAP_SYNC_OP_MAX,
};

enum llmtap_sync_flags {
	LLMTAP_SYNC_PREEMPTED = 1 << 0, /* the thread was preempted inside the call */
};

/*
 * The first synchronizing call on a context since its last llama_decode /
 * llama_encode returned: the step's asynchronous work is over when it returns.
 */
struct llmtap_sync_event {
	struct llmtap_hdr hdr;
	__u32 pid;
	__u32 tid;
	__u64 ctx;
	__u64 step_end_ns; /* the return of the step it ends (that step's end_ns) */
	__u64 start_ns;    /* the call's entry */
	__u64 end_ns;      /* its return */
	__u32 op;          /* enum llmtap_sync_op */
	__u32 flags;       /* enum llmtap_sync_flags */
};

/* bpf/exec.bpf.c: a process exec'd (the daemon's watcher; its own ring buffer) */
struct llmtap_exec_event {
	__u32 pid; /* the thread group, in the initial PID namespace */
	__u32 _pad;
	char comm[16];
};

#endif /* LLMTAP_EVENTS_H */
