#!/usr/bin/env bash
# Run the end-to-end tests: builds (or reuses the cached) llama-server, shared and
# static, and the tiny model, then runs every test against them. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LLAMA_SERVER_SHARED=${LLAMA_SERVER_SHARED:-$(tools/build-llama.sh shared)}
export LLAMA_SERVER_STATIC=${LLAMA_SERVER_STATIC:-$(tools/build-llama.sh static)}
export LLMTAP_MODEL=${LLMTAP_MODEL:-$(tools/make-model.sh)}
# the same model with a vocabulary whose byte fallback throws (tools/make-tiny-model.py)
export LLMTAP_MODEL_NO_HIGH_BYTES=${LLMTAP_MODEL_NO_HIGH_BYTES:-$(tools/make-model.sh --no-high-byte-tokens)}
# the same model under another general.name: a router llama-server's second model
export LLMTAP_MODEL_B=${LLMTAP_MODEL_B:-$(tools/make-model.sh --name llmtap-tiny-llama-b)}
export LLMTAP=${LLMTAP:-$PWD/llmtap}
# the OpenTelemetry project's own OTLP decoder (npm), for the export tests
export LLMTAP_OTLP_DECODER=${LLMTAP_OTLP_DECODER:-$(tools/otlp-decoder.sh)}
# a libllama embedder without llama-server, built against the cached shared build
SRC=$(tools/build-llama.sh src)
BIN=$(dirname "$LLAMA_SERVER_SHARED")
mkdir -p .output
cc -O2 -Wall -Wextra -Werror -I"$SRC/include" -I"$SRC/ggml/include" tests/e2e/embedder.c \
	-L"$BIN" -l:libllama.so.0 -Wl,-rpath,"$BIN" -o .output/embedder
export LLMTAP_EMBEDDER=${LLMTAP_EMBEDDER:-$PWD/.output/embedder}
# runs a program under a seccomp filter that kills it on the uretprobe system call
cc -O2 -Wall -Wextra -Werror tests/e2e/seccomp-exec.c -o .output/seccomp-exec
export LLMTAP_SECCOMP_EXEC=${LLMTAP_SECCOMP_EXEC:-$PWD/.output/seccomp-exec}
# a preload library that hides a llama-server's -m from its /proc/PID/cmdline (a liar)
cc -shared -fPIC -O2 -Wall -Wextra -Werror tests/e2e/hide-model-arg.c -o .output/hide-model-arg.so
export LLMTAP_HIDE_MODEL_ARG=${LLMTAP_HIDE_MODEL_ARG:-$PWD/.output/hide-model-arg.so}
exec /usr/bin/python3 tests/e2e/run_all.py "$@"
