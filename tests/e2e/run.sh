#!/usr/bin/env bash
# Run the end-to-end tests: builds (or reuses the cached) llama-server, shared and
# static, and the tiny model, then runs every test against them. Needs root.
#
# Which llama.cpp: tools/build-llama.sh's, so NODE_LLAMA_CPP_VERSION and LLMTAP_CACHE
# choose it for the servers, the embedder's headers and library alike. Every input below
# is an environment variable: one that is set is used as it is, and set to "" it is left
# out (the tests that need it fail saying so; tests/compat/run.sh runs one test that way,
# against one shared llama-server, without building what it does not use).
set -euo pipefail
cd "$(dirname "$0")/../.."
export LLAMA_SERVER_SHARED=${LLAMA_SERVER_SHARED-$(tools/build-llama.sh shared)}
export LLAMA_SERVER_STATIC=${LLAMA_SERVER_STATIC-$(tools/build-llama.sh static)}
export LLMTAP_MODEL=${LLMTAP_MODEL-$(tools/make-model.sh)}
# the same model with a vocabulary whose byte fallback throws (tools/make-tiny-model.py)
export LLMTAP_MODEL_NO_HIGH_BYTES=${LLMTAP_MODEL_NO_HIGH_BYTES-$(tools/make-model.sh --no-high-byte-tokens)}
# the same model under another general.name: a router llama-server's second model
export LLMTAP_MODEL_B=${LLMTAP_MODEL_B-$(tools/make-model.sh --name llmtap-tiny-llama-b)}
# another attention shape (grouped-query, 3 layers): KV-cache bytes per cell
export LLMTAP_MODEL_GQA=${LLMTAP_MODEL_GQA-$(tools/make-model.sh --gqa)}
export LLMTAP=${LLMTAP:-$PWD/llmtap}
# the OpenTelemetry project's own OTLP decoder (npm), for the export tests
export LLMTAP_OTLP_DECODER=${LLMTAP_OTLP_DECODER-$(tools/otlp-decoder.sh)}
mkdir -p .output
# a libllama embedder without llama-server, built against the source and the library of
# the shared llama-server the tests run (its build's CMakeCache.txt names the source)
if [[ ! -v LLMTAP_EMBEDDER ]]; then
	BIN=$(dirname "$LLAMA_SERVER_SHARED")
	SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BIN/../CMakeCache.txt" 2>/dev/null || true)
	SRC=${SRC:-$(tools/build-llama.sh src)}
	cc -O2 -Wall -Wextra -Werror -I"$SRC/include" -I"$SRC/ggml/include" tests/e2e/embedder.c \
		-L"$BIN" -lllama -Wl,-rpath,"$BIN" -o .output/embedder
	export LLMTAP_EMBEDDER=$PWD/.output/embedder
fi
# runs a program under a seccomp filter that kills it on the uretprobe system call
cc -O2 -Wall -Wextra -Werror tests/e2e/seccomp-exec.c -o .output/seccomp-exec
export LLMTAP_SECCOMP_EXEC=${LLMTAP_SECCOMP_EXEC:-$PWD/.output/seccomp-exec}
# a preload library that hides a llama-server's -m from its /proc/PID/cmdline (a liar)
cc -shared -fPIC -O2 -Wall -Wextra -Werror tests/e2e/hide-model-arg.c -o .output/hide-model-arg.so
export LLMTAP_HIDE_MODEL_ARG=${LLMTAP_HIDE_MODEL_ARG:-$PWD/.output/hide-model-arg.so}
exec /usr/bin/python3 tests/e2e/run_all.py "$@"
