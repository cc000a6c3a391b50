# shellcheck shell=bash
# What tests/deploy/caps.sh and image.sh share: a llama-server to trace, one traced
# request, and the verdict on how llmtap ended. Sourced; callers set WORK (a scratch
# folder) and define die.

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_llama BIN MODEL [command prefix...]: llama-server on a free 127.0.0.1 port (PORT),
# 1 slot, 256 ctx, its PID in SRV_PID, log in $WORK/server.log; returns once it is healthy.
start_llama() {
	local bin=$1 model=$2
	shift 2
	PORT=$(free_port)
	setsid "$@" "$bin" -m "$model" --host 127.0.0.1 --port "$PORT" -np 1 -c 256 -t 1 \
		--no-webui >"$WORK/server.log" 2>&1 </dev/null &
	SRV_PID=$!
	for _ in $(seq 600); do
		kill -0 "$SRV_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "llama-server exited"; }
		curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || die "llama-server did not come up"
}

# traced_request PID FILE PATTERN PROMPT: once the llmtap of PID writes a line matching
# PATTERN to FILE (it has attached), ask the server on PORT for one completion; gives up
# after 15 s or when that llmtap exits. Fails when llmtap never attached or the request failed.
traced_request() {
	local lp=$1 file=$2 pattern=$3 prompt=$4
	for _ in $(seq 300); do
		grep -q "$pattern" "$file" && break
		kill -0 "$lp" 2>/dev/null || break
		sleep 0.05
	done
	grep -q "$pattern" "$file" || return 1
	curl -sf "http://127.0.0.1:$PORT/completion" \
		-d "{\"prompt\":\"$prompt $RANDOM\",\"n_predict\":8,\"cache_prompt\":false}" >/dev/null
}

# verdict ok|fail RC STEPS ERR: did llmtap end as expected? ok: exit 0 having traced engine
# steps; fail: exit 1 with llmtap's one-line error on stderr (file ERR). Sets VERDICT to
# what happened.
# shellcheck disable=SC2034 # VERDICT is for the caller
verdict() {
	local expect=$1 rc=$2 steps=$3 err=$4
	if [[ $expect == ok ]]; then
		VERDICT="exit $rc, steps ${steps:-none}"
		[[ $rc -eq 0 && ${steps:-0} -gt 0 ]]
	else
		VERDICT="exit $rc: $(head -1 "$err")"
		[[ $rc -eq 1 && $(wc -l <"$err") -eq 1 ]] && grep -q '^llmtap: ' "$err"
	fi
}

# Install the Debian packages named that are missing (apt-get update only when needed).
need_packages() {
	local need=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
	done
	((${#need[@]})) || return 0
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
}
