#!/usr/bin/env bash
# `make bench`: builds the probe-cost target, then runs tools/bench.py on the cached
# llama-server and tiny model. Needs root. BENCH_ROUNDS etc. tune it (see bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .output
cc -O2 -g -fno-omit-frame-pointer -rdynamic -Wall -Wextra -Werror -o .output/probe-cost tools/probe-cost.c
cc -O2 -g -fno-omit-frame-pointer -rdynamic -Wall -Wextra -Werror -DPROBE_COMMON_SAMPLER \
	-o .output/probe-cost-common tools/probe-cost.c
cc -O2 -g -fno-omit-frame-pointer -rdynamic -Wall -Wextra -Werror -DPROBE_LOGITS \
	-o .output/probe-cost-logits tools/probe-cost.c
cc -O2 -g -fno-omit-frame-pointer -rdynamic -Wall -Wextra -Werror -DPROBE_SERVER \
	-o .output/probe-cost-server tools/probe-cost.c
export LLAMA_SERVER_SHARED=${LLAMA_SERVER_SHARED:-$(tools/build-llama.sh shared)}
export LLMTAP_MODEL=${LLMTAP_MODEL:-$(tools/make-model.sh)}
export LLMTAP=${LLMTAP:-$PWD/llmtap}
exec /usr/bin/python3 tools/bench.py "$@"
