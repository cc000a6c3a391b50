// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * gguf_read_model_fd on the input as a file: a model file's header, whatever it
 * claims, with the vocabulary's end-of-generation facts.
 */
#include "fuzz.h"

#include "target/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf_vocab vocab;
	struct gguf_info info;
	char err[128];
	int fd = fuzz_memfd(data, size), ret;

	ret = gguf_read_model_fd(fd, &info, &vocab, err, sizeof(err));
	if (!ret) {
		/* what it returns is terminated */
		if (strlen(info.architecture) >= sizeof(info.architecture) ||
		    strlen(info.name) >= sizeof(info.name) ||
		    strlen(info.attn.why) >= sizeof(info.attn.why))
			abort();
		/* a plain shape has sizes; an unknown one says why */
		if (info.attn.plain ? !info.attn.n_layer || !info.attn.n_head_kv ||
				      !info.attn.head_k || !info.attn.head_v :
				      !info.attn.why[0])
			abort();
	}
	/* the vocabulary: empty, or a bitmap within its bound holding its sure ids */
	if (!vocab.n_vocab != !vocab.maybe_eog || vocab.n_vocab > GGUF_VOCAB_MAX)
		abort();
	if (vocab.n_vocab) {
		if ((vocab.eos >= 0 && !gguf_token_maybe_eog(&vocab, vocab.eos)) ||
		    (vocab.eot >= 0 && !gguf_token_maybe_eog(&vocab, vocab.eot)) ||
		    (vocab.eom >= 0 && !gguf_token_maybe_eog(&vocab, vocab.eom)))
			abort();
		/* touch the whole bitmap (ASan: it is as large as it claims) */
		for (uint32_t t = 0; t < vocab.n_vocab; t++)
			(void)gguf_token_maybe_eog(&vocab, (int32_t)t);
	}
	gguf_vocab_free(&vocab);
	close(fd);
	return 0;
}
