#!/usr/bin/env bash
# `make demo`: a tiny llama-server with llmtap attached, showing its traces.
# Builds (or reuses) llama-server and the tiny model, starts the server on
# 127.0.0.1, attaches `llmtap attach`, sends a few requests, prints what llmtap
# saw next to the server's own counters, and stops everything. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER=$(tools/build-llama.sh shared)
MODEL=$(tools/make-model.sh)
PORT=${DEMO_PORT:-8089}
LOG=$(mktemp /tmp/llmtap-demo-server.XXXXXX)

cleanup() {
	[[ -n ${TAP:-} ]] && kill -INT "$TAP" 2>/dev/null && wait "$TAP" 2>/dev/null
	[[ -n ${SRV:-} ]] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	rm -f "$LOG"
}
trap cleanup EXIT

echo "demo: starting llama-server on 127.0.0.1:$PORT (tiny random-weight model, 2 slots)"
"$SERVER" -m "$MODEL" --host 127.0.0.1 --port "$PORT" -np 2 -c 2048 -t 1 --metrics \
	--no-webui >"$LOG" 2>&1 &
SRV=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
	kill -0 "$SRV" 2>/dev/null || { cat "$LOG"; echo "demo: llama-server failed" >&2; exit 1; }
	sleep 0.2
done
counter() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="llamacpp:$1" '$1 == m {print $2}'; }

echo "demo: sudo llmtap attach --pid $SRV"
./llmtap attach --pid "$SRV" &
TAP=$!
sleep 1
before=$(counter n_decode_total)
prompt_before=$(counter prompt_tokens_total)
predicted_before=$(counter tokens_predicted_total)
for round in 1 2 3; do
	clients=()
	for i in 1 2 3 4; do
		curl -s "http://127.0.0.1:$PORT/completion" -H 'Content-Type: application/json' \
			-d "{\"prompt\": \"Round $round request $i: tell me about rivers and stones\", \"n_predict\": $((32 * i)), \"ignore_eos\": true}" >/dev/null &
		clients+=($!)
	done
	wait "${clients[@]}"
	sleep 1
done
after=$(counter n_decode_total)
prompt_after=$(counter prompt_tokens_total)
predicted_after=$(counter tokens_predicted_total)
sleep 1
kill -INT "$TAP"
wait "$TAP" || true
TAP=
echo
echo "demo: the server's own /metrics over the same time:"
echo "  llamacpp:n_decode_total          +$((after - before)) (llmtap: steps)"
echo "  llamacpp:prompt_tokens_total     +$((prompt_after - prompt_before)) (llmtap: tokens in - cached)"
echo "  llamacpp:tokens_predicted_total  +$((predicted_after - predicted_before)) (llmtap: out)"
