#!/usr/bin/python3
"""Write a tiny llama-architecture GGUF with random weights.

The tokenizer is copied from llama.cpp's models/ggml-vocab-llama-spm.gguf, so the
server tokenizes real text; the weights are random, so the output is gibberish,
but every code path (decode, KV cache, sampling, HTTP) is the real one.

usage: make-tiny-model.py LLAMA_SRC OUT.gguf [--no-high-byte-tokens | --name NAME | --gqa]
--no-high-byte-tokens: the byte tokens <0x80>..<0xFF> become unused ones, so llama.cpp's
byte fallback throws std::out_of_range while tokenizing text it cannot spell otherwise
(a broken vocabulary, for testing that a tracer never turns such a throw into an abort).
--name NAME: the same model under another general.name (a second model, e.g. for a router
llama-server serving two).
--gqa: another attention shape: 2 KV heads for the 4 query heads (grouped-query attention),
heads of 32 (key_length / value_length: a quantized KV cache needs a multiple of its block),
3 layers (llmtap.kv_cache bytes per cell differ from the default model's).
Runs under Debian's /usr/bin/python3 with python3-numpy and llama.cpp's gguf-py.
"""
import sys

USAGE = "usage: make-tiny-model.py LLAMA_SRC OUT.gguf [--no-high-byte-tokens | --name NAME | --gqa]"
if len(sys.argv) < 3:
    sys.exit(USAGE)
src, out, opts = sys.argv[1], sys.argv[2], sys.argv[3:]
no_high_bytes, name, gqa = False, "llmtap-tiny-llama", False
if opts == ["--no-high-byte-tokens"]:
    no_high_bytes = True
elif opts == ["--gqa"]:
    gqa, name = True, "llmtap-tiny-llama-gqa"
elif len(opts) == 2 and opts[0] == "--name" and opts[1]:
    name = opts[1]
elif opts:
    sys.exit(USAGE)
sys.path.insert(0, f"{src}/gguf-py")

import numpy as np  # noqa: E402
from gguf import GGUFReader, GGUFWriter, GGUFValueType  # noqa: E402

N_EMBD, N_LAYER, N_HEAD, N_FF, N_CTX = 64, 2, 4, 128, 4096
N_HEAD_KV, HEAD = N_HEAD, N_EMBD // N_HEAD
if gqa:
    N_LAYER, N_HEAD_KV, HEAD = 3, 2, 32
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

vocab = GGUFReader(f"{src}/models/ggml-vocab-llama-spm.gguf")
n_vocab = len(vocab.fields["tokenizer.ggml.tokens"].data)

w = GGUFWriter(out, "llama")
w.add_name(name)
w.add_context_length(N_CTX)
w.add_embedding_length(N_EMBD)
w.add_block_count(N_LAYER)
w.add_feed_forward_length(N_FF)
w.add_head_count(N_HEAD)
w.add_head_count_kv(N_HEAD_KV)
w.add_layer_norm_rms_eps(1e-5)
if HEAD != N_EMBD // N_HEAD:
    w.add_key_length(HEAD)
    w.add_value_length(HEAD)
w.add_rope_dimension_count(HEAD)
w.add_vocab_size(n_vocab)
w.add_file_type(0)  # all f32

UNUSED = 5  # llama_token_type


def vocab_field(name, field):
    """The vocabulary as it is, or without its high byte tokens."""
    contents = field.contents()
    if not no_high_bytes or name not in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
        return contents
    tokens = vocab.fields["tokenizer.ggml.tokens"].contents()
    high = {i for i, tok in enumerate(tokens) if len(tok) == 6 and tok.startswith("<0x") and tok[3] in "89ABCDEF"}
    if name == "tokenizer.ggml.tokens":
        return [f"<unused-byte-{tok[3:5]}>" if i in high else tok for i, tok in enumerate(contents)]
    return [UNUSED if i in high else ty for i, ty in enumerate(contents)]


for name, field in vocab.fields.items():
    if not name.startswith("tokenizer."):
        continue
    vtype = field.types[0]
    if vtype == GGUFValueType.ARRAY:
        w.add_key_value(name, vocab_field(name, field), vtype, field.types[-1])
    else:
        w.add_key_value(name, field.contents(), vtype)
w.add_chat_template(CHATML)

rng = np.random.default_rng(42)


def t(name, *shape, scale=0.02):
    w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))


def ones(name, n):
    w.add_tensor(name, np.ones(n, dtype=np.float32))


t("token_embd.weight", n_vocab, N_EMBD)
ones("output_norm.weight", N_EMBD)
t("output.weight", n_vocab, N_EMBD)
for i in range(N_LAYER):
    ones(f"blk.{i}.attn_norm.weight", N_EMBD)
    t(f"blk.{i}.attn_q.weight", N_HEAD * HEAD, N_EMBD)
    t(f"blk.{i}.attn_k.weight", N_HEAD_KV * HEAD, N_EMBD)
    t(f"blk.{i}.attn_v.weight", N_HEAD_KV * HEAD, N_EMBD)
    t(f"blk.{i}.attn_output.weight", N_EMBD, N_HEAD * HEAD)
    ones(f"blk.{i}.ffn_norm.weight", N_EMBD)
    t(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
    t(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
    t(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
