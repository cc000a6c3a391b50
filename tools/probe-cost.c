// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Probe-cost microbenchmark target: exports a llama_decode with the real
 * signature (a 56-byte llama_batch passed by value) and calls it in a loop, so
 * `llmtap attach` finds it like a statically linked llama.cpp and the cost of
 * one traced call (uprobe + uretprobe + BPF scan + ring buffer) can be timed.
 *
 *   probe-cost N_CALLS N_TOKENS N_SEQS [decode|sample]
 *       prints its PID, waits for a line on stdin, then calls llama_decode (or,
 *       after one decode, llama_sampler_sample) N_CALLS times and prints ns per call
 *
 * Built with -DPROBE_COMMON_SAMPLER, "sample" calls a common_sampler_sample
 * instead (llama.cpp's own tools' sampler, probed on entry and return); with
 * -DPROBE_LOGITS, llama_get_logits_ith (an embedder's own sampler, entry only).
 *
 *   probe-cost N_CALLS N_TOKENS N_SEQS sync|decode-sync
 *       sync: one decode, then N_CALLS llama_synchronize (the first claims the
 *       step, every other one is a call that is not its context's first);
 *       decode-sync: N_CALLS times a decode and the llama_synchronize that ends it
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct llama_batch {
	int32_t n_tokens;
	int32_t *token;
	float *embd;
	int32_t *pos;
	int32_t *n_seq_id;
	int32_t **seq_id;
	int8_t *logits;
};

__attribute__((noinline, used, visibility("default")))
int llama_decode(void *ctx, struct llama_batch batch)
{
	/* like the real one: the batch is read, nothing else happens */
	__asm__ volatile("" : : "r"(ctx), "r"(batch.token) : "memory");
	return batch.n_tokens > 0 ? 0 : -1;
}

/* the sampler's signature: (smpl, ctx, idx) -> token */
__attribute__((noinline, used, visibility("default")))
int32_t llama_sampler_sample(void *smpl, void *ctx, int32_t idx)
{
	/* clobbering a callee-saved register makes the first instruction a push, as in libllama */
#if defined(__x86_64__)
	__asm__ volatile("" : : "r"(smpl), "r"(ctx) : "memory", "rbx");
#else
	__asm__ volatile("" : : "r"(smpl), "r"(ctx) : "memory");
#endif
	return idx + 1;
}

#ifdef PROBE_COMMON_SAMPLER
/* common_sampler_sample(common_sampler *, llama_context *, int, bool), by its C++ name */
__attribute__((noinline, used, visibility("default")))
int32_t common_sampler_sample(void *gsmpl, void *ctx, int idx, bool grammar_first)
	__asm__("_Z21common_sampler_sampleP14common_samplerP13llama_contextib");
int32_t common_sampler_sample(void *gsmpl, void *ctx, int idx, bool grammar_first)
{
#if defined(__x86_64__)
	__asm__ volatile("" : : "r"(gsmpl), "r"(ctx), "r"(grammar_first) : "memory", "rbx");
#else
	__asm__ volatile("" : : "r"(gsmpl), "r"(ctx), "r"(grammar_first) : "memory");
#endif
	return idx + 1;
}
#define SAMPLE(s, ctx, idx) common_sampler_sample(s, ctx, idx, false)
#elif defined(PROBE_LOGITS)
/* llama_get_logits_ith(ctx, idx): what an embedder's own sampler reads */
__attribute__((noinline, used, visibility("default")))
float *llama_get_logits_ith(void *ctx, int32_t idx)
{
	static float logits[4];
#if defined(__x86_64__)
	__asm__ volatile("" : : "r"(ctx) : "memory", "rbx");
#else
	__asm__ volatile("" : : "r"(ctx) : "memory");
#endif
	return &logits[idx & 3];
}
#define SAMPLE(s, ctx, idx) ((void)(s), (void)llama_get_logits_ith(ctx, idx))
#else
#define SAMPLE(s, ctx, idx) llama_sampler_sample(s, ctx, idx)
#endif

/* llama_synchronize(ctx): in libllama a tail call (jmp) to llama_context::synchronize */
__attribute__((noinline)) void context_synchronize(void *ctx)
{
	__asm__ volatile("" : : "r"(ctx) : "memory");
}

__attribute__((noinline, used, visibility("default")))
void llama_synchronize(void *ctx)
{
	context_synchronize(ctx);
}

#ifdef PROBE_SERVER
/* the server layer's required sites, by their C++ names (never called here) */
__attribute__((noinline, used, visibility("default")))
int server_get_new_id(void *queue) __asm__("_ZN12server_queue10get_new_idEv");
int server_get_new_id(void *queue)
{
	__asm__ volatile("" : : "r"(queue) : "memory");
	return 1;
}

__attribute__((noinline, used, visibility("default")))
void server_launch(void *ctx, void *slot, void *task)
	__asm__("_ZN19server_context_impl21launch_slot_with_taskER11server_slotO11server_task");
void server_launch(void *ctx, void *slot, void *task)
{
	__asm__ volatile("" : : "r"(ctx), "r"(slot), "r"(task) : "memory");
}

__attribute__((noinline, used, visibility("default")))
void server_final(void *ctx, void *slot)
	__asm__("_ZN19server_context_impl19send_final_responseER11server_slot");
void server_final(void *ctx, void *slot)
{
	__asm__ volatile("" : : "r"(ctx), "r"(slot) : "memory");
}

/* server_slot::find_stopping_strings(this, text, last_token_size, is_full_stop) */
__attribute__((noinline, used, visibility("default")))
size_t find_stop(void *slot, const void *text, size_t last, bool full)
	__asm__("_ZN11server_slot21find_stopping_stringsERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEEmb");
size_t find_stop(void *slot, const void *text, size_t last, bool full)
{
	/* like the real one: a push first (it saves callee-saved registers) */
#if defined(__x86_64__)
	__asm__ volatile("" : : "r"(slot), "r"(text), "r"(full) : "memory", "rbx", "r15");
#else
	__asm__ volatile("" : : "r"(slot), "r"(text), "r"(full) : "memory");
#endif
	return last ? (size_t)-1 : 0;
}
#endif

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long calls, n, seqs;
	bool sample, sync, decode_sync;
	struct llama_batch b;
	char line[16];
	double t0, t1;

	if (argc < 4 || argc > 5 || (calls = atol(argv[1])) <= 0 || (n = atol(argv[2])) <= 0 ||
	    (seqs = atol(argv[3])) <= 0 || seqs > n ||
	    (argc == 5 && strcmp(argv[4], "decode") && strcmp(argv[4], "sample") &&
	     strcmp(argv[4], "sync") && strcmp(argv[4], "decode-sync") && strcmp(argv[4], "stop"))) {
		fprintf(stderr, "usage: probe-cost N_CALLS N_TOKENS N_SEQS "
				"[decode|sample|sync|decode-sync|stop] (N_SEQS <= N_TOKENS)\n");
		return 2;
	}
	sample = argc == 5 && !strcmp(argv[4], "sample");
	sync = argc == 5 && !strcmp(argv[4], "sync");
	decode_sync = argc == 5 && !strcmp(argv[4], "decode-sync");
	b.n_tokens = (int32_t)n;
	b.token = calloc((size_t)n, sizeof(*b.token));
	b.embd = NULL;
	b.pos = calloc((size_t)n, sizeof(*b.pos));
	b.n_seq_id = calloc((size_t)n, sizeof(*b.n_seq_id));
	b.seq_id = calloc((size_t)n, sizeof(*b.seq_id));
	b.logits = calloc((size_t)n, sizeof(*b.logits));
	if (!b.token || !b.pos || !b.n_seq_id || !b.seq_id || !b.logits)
		return 1;
	for (long i = 0; i < n; i++) {
		long s = i * seqs / n; /* seqs contiguous runs, like llama-server's batches */

		b.pos[i] = (int32_t)i;
		b.n_seq_id[i] = 1;
		b.seq_id[i] = malloc(sizeof(int32_t));
		if (!b.seq_id[i])
			return 1;
		b.seq_id[i][0] = (int32_t)s;
		b.logits[i] = i == n - 1 || (i + 1) * seqs / n != s;
	}
	printf("%d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	if (argc == 5 && !strcmp(argv[4], "stop")) {
#ifdef PROBE_SERVER
		t0 = now_ns();
		for (long i = 0; i < calls; i++)
			find_stop(&b, &b, 1, i & 1); /* a whole check, then a partial one: a token */
		t1 = now_ns();
#else
		fprintf(stderr, "probe-cost: built without -DPROBE_SERVER\n");
		return 2;
#endif
	} else if (sync) {
		llama_decode(&b, b); /* the step the first call claims */
		t0 = now_ns();
		for (long i = 0; i < calls; i++)
			llama_synchronize(&b);
		t1 = now_ns();
	} else if (decode_sync) {
		t0 = now_ns();
		for (long i = 0; i < calls; i++) {
			llama_decode(&b, b);
			llama_synchronize(&b);
		}
		t1 = now_ns();
	} else if (sample) {
		llama_decode(&b, b); /* the batch the sampler's outputs come from */
		t0 = now_ns();
		for (long i = 0; i < calls; i++)
			SAMPLE(&b, &b, (int32_t)(n - 1));
		t1 = now_ns();
	} else {
		t0 = now_ns();
		for (long i = 0; i < calls; i++)
			llama_decode(&b, b);
		t1 = now_ns();
	}
	printf("%.1f\n", (t1 - t0) / (double)calls);
	return 0;
}
