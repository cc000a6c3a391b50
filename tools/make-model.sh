#!/usr/bin/env bash
# Print the path of the tiny test model, writing it first if it is not cached.
# --no-high-byte-tokens: the variant whose vocabulary lacks the byte tokens <0x80>..<0xFF>
# (see tools/make-tiny-model.py).
# --name NAME: the same model under another general.name (letters, digits, . _ -), e.g. a
# second model for a router llama-server.
# --gqa: another attention shape (2 KV heads of 4, 3 layers), e.g. for KV-cache bytes.
# Uses the llama.cpp source that tools/build-llama.sh unpacks (gguf-py and the vocab).
set -euo pipefail
CACHE=${LLMTAP_CACHE:-/var/cache/llmtap}
usage() { echo "usage: make-model.sh [--no-high-byte-tokens | --name NAME | --gqa]" >&2; exit 2; }
case ${1:-} in
"") VARIANT= ;;
--no-high-byte-tokens) VARIANT=-no-high-bytes ;;
--name) [[ ${2:-} =~ ^[A-Za-z0-9._-]+$ ]] || usage; VARIANT=-name-$2 ;;
--gqa) VARIANT=-gqa ;;
*) usage ;;
esac
# the source of the pinned llama.cpp (NODE_LLAMA_CPP_VERSION), not any other cached one
SRC=$("$(dirname "$0")/build-llama.sh" src)
OUT=$CACHE/tiny-llama-${SRC##*-}$VARIANT.gguf
if [[ ! -s $OUT ]]; then
	/usr/bin/python3 "$(dirname "$0")/make-tiny-model.py" "$SRC" "$OUT.tmp" "$@" >&2
	mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
