#!/usr/bin/env bash
# Which Linux capabilities `llmtap attach` needs when it is not fully root, shown by running it.
#
#   tests/deploy/caps.sh            (as root; Linux 6.6+ for the uprobe_multi cases)
#
# Starts a real llama-server on the tiny model (one at a time), then runs
# `llmtap attach --pid PID --duration 3s` under capsh with exact capability sets:
#   - as a non-root uid with the set as ambient capabilities (nothing else), or
#   - as uid 0 with the set as its bounding set, i.e. what a container running as root
#     with `capabilities: {drop: [ALL], add: [...]}` gets.
# A minimal set must trace (exit 0, and the summary counts engine steps > 0 after one
# request); the same set less any one of its capabilities must fail with llmtap's one-line
# error and exit 1. Prints a row per run and 'N passed, N failed'; exits 1 on any mismatch.
#
# Environment: LLMTAP (default ./llmtap, built with `make llmtap` if missing),
# LLAMA_SERVER_SHARED and LLMTAP_MODEL (default: tools/build-llama.sh shared,
# tools/make-model.sh), CAPS_VERBOSE=1 prints every run's output.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "caps: $*" >&2; exit 1; }
# shellcheck source=tests/deploy/lib.sh
. "$ROOT/tests/deploy/lib.sh"

[[ $EUID -eq 0 ]] || die "run as root (it starts processes under other uids and capability sets)"
for c in capsh setpriv curl; do command -v "$c" >/dev/null || die "needs $c (apt-get install libcap2-bin util-linux curl)"; done
read -r kmaj kmin < <(uname -r | awk -F. '{print $1, $2}')
if ((kmaj < 6 || (kmaj == 6 && kmin < 6))); then
	echo "caps: Linux $(uname -r) has no uprobe_multi links; these expectations are for 6.6+"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

LLMTAP=${LLMTAP:-$ROOT/llmtap}
if [[ ! -x $LLMTAP ]]; then
	make -C "$ROOT" llmtap >/dev/null
fi
SERVER=${LLAMA_SERVER_SHARED:-$("$ROOT/tools/build-llama.sh" shared)}
MODEL=${LLMTAP_MODEL:-$("$ROOT/tools/make-model.sh")}

# Everything the other uids run must be reachable by them: copy llmtap to a 0755 folder.
WORK=$(mktemp -d /tmp/llmtap-caps.XXXXXX)
chmod 755 "$WORK"
cp "$LLMTAP" "$WORK/llmtap"
chmod 755 "$WORK/llmtap"
SRV_PID=
PORT=

stop_server() {
	if [[ -n $SRV_PID ]] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill "$SRV_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SRV_PID" 2>/dev/null || true
	fi
	SRV_PID=
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT

# start_server DESCRIPTION [command prefix...]: llama-server on 127.0.0.1, 1 slot, 256 ctx.
start_server() {
	local desc=$1 bin=$SERVER
	shift
	if [[ -n ${SERVER_BIN:-} ]]; then bin=$SERVER_BIN; fi
	stop_server
	start_llama "$bin" "$MODEL" "$@"
	echo
	echo "target: PID $SRV_PID, $desc"
	echo "        uid $(awk '/^Uid:/{print $2}' /proc/$SRV_PID/status)," \
		"CapEff $(awk '/^CapEff:/{print $2}' /proc/$SRV_PID/status)," \
		"libllama $(grep -m1 -o '/[^ ]*libllama\.so[^ ]*' /proc/$SRV_PID/maps)"
}

passed=0
failed=0
n=0

# run WHO CAPS EXPECT [VAR=VALUE...]
#   WHO    "root": uid 0 whose bounding set is CAPS (a container running as root);
#          a number: that uid (and gid) with CAPS as its only (ambient) capabilities.
#   CAPS   comma-separated capsh names, "" for none.
#   EXPECT ok | fail
run() {
	local who=$1 caps=$2 expect=$3
	shift 3
	local out=$WORK/out err=$WORK/err capsf=$WORK/caps pre=() all drop
	# shellcheck disable=SC2016 # expanded by the inner bash
	local inner='capsh --print | sed -n "s/^Current: //p" >"$0"; exec "$@"'
	n=$((n + 1))
	if [[ $who == root ]]; then
		all=$(capsh --print | sed -n 's/^Bounding set =//p')
		drop=$(tr , '\n' <<<"$all" | grep -vxF -f <(tr , '\n' <<<"$caps") | paste -sd, || true)
		pre=(capsh --drop="$drop" --)
	elif [[ -n $caps ]]; then
		pre=(capsh --gid="$who" --groups="$who" --keep=1 --caps="$caps+eip cap_setuid,cap_setpcap+ep"
			--uid="$who" --addamb="$caps" --)
	else
		pre=(capsh --gid="$who" --groups="$who" --uid="$who" --)
	fi
	: >"$out"
	: >"$err"
	: >"$capsf"
	chmod 666 "$capsf"
	env "$@" "${pre[@]}" -c "$inner" "$capsf" "$WORK/llmtap" attach --pid "$SRV_PID" --duration 3s \
		>"$out" 2>"$err" &
	local lp=$! rc steps result ok=1
	traced_request "$lp" "$out" '^llmtap: tracing PID' "capability check $n" || true
	rc=0
	wait "$lp" || rc=$?
	steps=$(awk '$1 == "steps" {print $2; exit}' "$out")
	verdict "$expect" "$rc" "$steps" "$err" || ok=0
	result=$VERDICT
	# long errors (the list of files searched): keep the start and the reason at the end
	((${#result} <= 200)) || result="${result:0:110} ... ${result: -85}"
	local whos env=${*:-}
	if [[ $who == root ]]; then whos="uid 0, bset"; else whos="uid $who, amb"; fi
	printf '%-4s %-13s %-52s %-4s %s\n' "$([[ $ok == 1 ]] && echo PASS || echo FAIL)" "$whos" \
		"${caps:-(none)}${env:+ $env}" "$expect" "$result"
	printf '     %-13s %s\n' "" "llmtap ran with: $(cat "$capsf" 2>/dev/null)"
	if [[ ${CAPS_VERBOSE:-} == 1 || $ok == 0 ]]; then sed 's/^/     | /' "$out" "$err"; fi
	if [[ $ok == 1 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

echo "kernel $(uname -r); kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)," \
	"kernel.unprivileged_bpf_disabled=$(cat /proc/sys/kernel/unprivileged_bpf_disabled)"
echo "llmtap: $LLMTAP; llama-server: $SERVER"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all)

start_server "uid 65534 without capabilities" "${NOBODY[@]}"
echo "A. llmtap as the target's own uid: CAP_BPF + CAP_PERFMON"
run 65534 cap_bpf,cap_perfmon ok
run 65534 cap_perfmon fail
run 65534 cap_bpf fail
echo "B. llmtap as uid 0 (a container running as root), target uid 65534: + CAP_SYS_PTRACE"
run root cap_bpf,cap_perfmon,cap_sys_ptrace ok
run root cap_perfmon,cap_sys_ptrace fail
run root cap_bpf,cap_sys_ptrace fail
run root cap_bpf,cap_perfmon fail
run root cap_sys_admin fail
echo "B2. llmtap as another non-root uid (1), target uid 65534: + CAP_SYS_PTRACE"
run 1 cap_bpf,cap_perfmon,cap_sys_ptrace ok
run 1 cap_perfmon,cap_sys_ptrace fail
run 1 cap_bpf,cap_sys_ptrace fail
run 1 cap_bpf,cap_perfmon fail
echo "E. perf-event uprobe links (LLMTAP_NO_UPROBE_MULTI=1, what kernels before 6.6 get): CAP_SYS_ADMIN"
run 65534 cap_sys_admin ok LLMTAP_NO_UPROBE_MULTI=1
run 65534 cap_bpf,cap_perfmon fail LLMTAP_NO_UPROBE_MULTI=1
run 65534 "" fail LLMTAP_NO_UPROBE_MULTI=1

start_server "uid 0 with every capability of this shell (a root container)"
echo "C. llmtap as uid 0, target uid 0 with capabilities llmtap lacks: + CAP_SYS_PTRACE"
run root cap_bpf,cap_perfmon,cap_sys_ptrace ok
run root cap_bpf,cap_perfmon fail

# the server's files in a folder only uid 65534 may enter (hard links when possible)
PRIV=$WORK/private
mkdir -m 700 "$PRIV"
cp -al "$(dirname "$SERVER")" "$PRIV/bin" 2>/dev/null || cp -a "$(dirname "$SERVER")" "$PRIV/bin"
chown 65534:65534 "$PRIV"
SERVER_BIN=$PRIV/bin/$(basename "$SERVER") start_server \
	"uid 65534, its binary and libraries in a 0700 folder of uid 65534" \
	"${NOBODY[@]}" env LD_LIBRARY_PATH="$PRIV/bin"
echo "D. llmtap as uid 0, target's libraries unreadable to other uids: + CAP_DAC_READ_SEARCH"
run root cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search ok
run root cap_bpf,cap_perfmon,cap_sys_ptrace fail
stop_server

echo
echo "caps: $passed passed, $failed failed"
((failed == 0))
