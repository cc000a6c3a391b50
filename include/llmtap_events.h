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

#define LLMTAP_EVENT_VERSION 1

/* llama.cpp limits (src/llama-cparams.h: LLAMA_MAX_SEQ) */
#define LLMTAP_MAX_SEQ 256
#define LLMTAP_SEQ_WORDS (LLMTAP_MAX_SEQ / 64)

/* BPF-side bounds: tokens scanned per batch, runs kept per batch */
#define LLMTAP_SCAN_CHUNK 64
#define LLMTAP_MAX_SCAN_TOKENS 65536
#define LLMTAP_MAX_RUNS 16
#define LLMTAP_MAX_SEQ_PER_TOKEN 4

enum llmtap_event_kind {
	LLMTAP_EV_STEP = 1, /* one llama_decode / llama_encode call */
};

enum llmtap_step_op {
	LLMTAP_OP_DECODE = 0,
	LLMTAP_OP_ENCODE = 1,
};

/* flags on a step event */
enum llmtap_step_flags {
	LLMTAP_STEP_SEQ_NULL = 1 << 0,     /* batch.seq_id == NULL: all tokens in seq 0 */
	LLMTAP_STEP_POS_NULL = 1 << 1,     /* batch.pos == NULL: positions chosen by llama.cpp */
	LLMTAP_STEP_LOGITS_NULL = 1 << 2,  /* batch.logits == NULL: only the last token outputs */
	LLMTAP_STEP_RUNS_TRUNC = 1 << 3,   /* more than LLMTAP_MAX_RUNS runs */
	LLMTAP_STEP_SCAN_TRUNC = 1 << 4,   /* n_tokens > LLMTAP_MAX_SCAN_TOKENS */
	LLMTAP_STEP_READ_ERR = 1 << 5,     /* a user-memory read failed */
	LLMTAP_STEP_MULTI_SEQ = 1 << 6,    /* some token belongs to several sequences */
	LLMTAP_STEP_EMBD = 1 << 7,         /* batch carries embeddings, not tokens */
};

/* counters in the BPF "stats" per-CPU array, indexed by this enum */
enum llmtap_stat {
	LLMTAP_STAT_RB_LOST = 0,   /* ring buffer full: event dropped */
	LLMTAP_STAT_ENTRY_LOST,    /* a return without its entry: the call began before attach */
	LLMTAP_STAT_ENTRY_FULL,    /* no task storage for an entry: that call is lost */
	LLMTAP_STAT_MAX,
};

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

#endif /* LLMTAP_EVENTS_H */
