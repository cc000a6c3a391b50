// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A llama.cpp embedder without llama-server: loads a model, creates a
 * context, decodes prompts for two sequences and samples tokens with the
 * libllama C API. The end-to-end tests attach llmtap before the model loads
 * and compare what it saw with the counts printed here.
 *
 *   embedder MODEL N_GEN [own]
 *       prints its PID, waits for a line on stdin, runs, prints a JSON object with
 *       what it did. With "own" it samples on its own, as node-llama-cpp's addon
 *       does: greedy over llama_get_logits_ith, never a llama_sampler_* call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llama.h"

/* the most likely token of output idx, without llama.cpp's samplers */
static llama_token argmax(struct llama_context *ctx, const struct llama_vocab *vocab, int idx)
{
	const float *logits = llama_get_logits_ith(ctx, idx);
	int n = llama_vocab_n_tokens(vocab);
	llama_token best = 0;

	for (int t = 1; t < n; t++)
		if (logits[t] > logits[best])
			best = t;
	return best;
}

static int decode(struct llama_context *ctx, struct llama_batch *b, int *n_decode, int *n_tokens)
{
	(*n_decode)++;
	*n_tokens += b->n_tokens;
	return llama_decode(ctx, *b);
}

int main(int argc, char **argv)
{
	struct llama_model_params mp = llama_model_default_params();
	struct llama_context_params cp = llama_context_default_params();
	const char *text[2] = { "the river carries stones to the sea", "copper lanterns in winter" };
	int n_decode = 0, n_tokens = 0, n_sampled = 0, n_prompt[2], pos[2], n_gen, own;
	llama_token toks[2][64];
	struct llama_context *ctx;
	struct llama_model *model;
	struct llama_sampler *smpl;
	struct llama_batch batch;
	char line[16];

	own = argc == 4 && !strcmp(argv[3], "own");
	if ((argc != 3 && !own) || (n_gen = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: embedder MODEL N_GEN [own]\n");
		return 2;
	}
	printf("%d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;

	llama_backend_init();
	mp.n_gpu_layers = 0;
	model = llama_model_load_from_file(argv[1], mp);
	if (!model)
		return 1;
	cp.n_ctx = 512;
	cp.n_batch = 256;
	cp.n_ubatch = 256;
	cp.n_seq_max = 2;
	cp.n_threads = cp.n_threads_batch = 1;
	ctx = llama_init_from_model(model, cp);
	if (!ctx)
		return 1;
	smpl = NULL;
	if (!own) {
		smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
		llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
	}
	batch = llama_batch_init(128, 0, 2);

	/* both prompts in one batch, one sequence each, the last token of each outputs */
	batch.n_tokens = 0;
	for (int s = 0; s < 2; s++) {
		n_prompt[s] = llama_tokenize(llama_model_get_vocab(model), text[s], (int)strlen(text[s]),
					     toks[s], 64, true, false);
		for (int i = 0; i < n_prompt[s]; i++) {
			int k = batch.n_tokens++;

			batch.token[k] = toks[s][i];
			batch.pos[k] = i;
			batch.n_seq_id[k] = 1;
			batch.seq_id[k][0] = s;
			batch.logits[k] = i == n_prompt[s] - 1;
		}
		pos[s] = n_prompt[s];
	}
	if (decode(ctx, &batch, &n_decode, &n_tokens))
		return 1;
	for (int g = 0; g < n_gen; g++) {
		llama_token next[2];

		/* outputs are numbered in batch order: sample each sequence's row */
		for (int s = 0; s < 2; s++) {
			int idx = g == 0 ? (s ? -1 : n_prompt[0] - 1) : s;

			next[s] = own ? argmax(ctx, llama_model_get_vocab(model), idx)
				      : llama_sampler_sample(smpl, ctx, idx);
			n_sampled++;
		}
		batch.n_tokens = 0;
		for (int s = 0; s < 2; s++) {
			int k = batch.n_tokens++;

			batch.token[k] = next[s];
			batch.pos[k] = pos[s]++;
			batch.n_seq_id[k] = 1;
			batch.seq_id[k][0] = s;
			batch.logits[k] = 1;
		}
		if (decode(ctx, &batch, &n_decode, &n_tokens))
			return 1;
	}
	llama_memory_seq_rm(llama_get_memory(ctx), 1, -1, -1);
	printf("{\"decode_calls\":%d,\"decode_tokens\":%d,\"sampled\":%d,\"prompt_tokens\":[%d,%d]}\n",
	       n_decode, n_tokens, n_sampled, n_prompt[0], n_prompt[1]);
	fflush(stdout);
	llama_batch_free(batch);
	if (smpl)
		llama_sampler_free(smpl);
	llama_free(ctx);
	llama_model_free(model);
	return 0;
}
