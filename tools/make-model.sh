#!/usr/bin/env bash
# Print the path of the tiny test model, writing it first if it is not cached.
# --no-high-byte-tokens: the variant whose vocabulary lacks the byte tokens <0x80>..<0xFF>
# (see tools/make-tiny-model.py).
# Needs the llama.cpp source unpacked by tools/build-llama.sh (for gguf-py and the vocab).
set -euo pipefail
CACHE=${LLMTAP_CACHE:-/var/cache/llmtap}
case ${1:-} in
"") VARIANT= ;;
--no-high-byte-tokens) VARIANT=-no-high-bytes ;;
*) echo "usage: make-model.sh [--no-high-byte-tokens]" >&2; exit 2 ;;
esac
SRC=$(ls -d "$CACHE"/llama.cpp-* 2>/dev/null | head -1)
[[ -n $SRC ]] || { echo "make-model: no llama.cpp source in $CACHE; run tools/build-llama.sh" >&2; exit 1; }
OUT=$CACHE/tiny-llama-${SRC##*-}$VARIANT.gguf
if [[ ! -s $OUT ]]; then
	/usr/bin/python3 "$(dirname "$0")/make-tiny-model.py" "$SRC" "$OUT.tmp" ${1:-} >&2
	mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
