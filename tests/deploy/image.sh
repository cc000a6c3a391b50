#!/usr/bin/env bash
# Build deploy/Dockerfile on this machine and run the image as the DaemonSet runs it.
#
#   tests/deploy/image.sh          (as root; about 2 minutes the first time, then ~1)
#
# No Docker engine runs here and no registry but Debian's is reachable, so:
# 1. Debian's podman, runc and mmdebstrap are installed (crun refuses this machine's hybrid
#    cgroups; runc runs);
# 2. the base image debian:bookworm-slim is made with mmdebstrap (minbase) from Debian's
#    mirror and imported (once: kept in podman's storage);
# 3. `podman build -f deploy/Dockerfile` (its apt-get steps use the host's network); the
#    image's llmtap must be the Debian package the build stage made (`make deb`);
# 4. the image runs `llmtap attach` on a llama-server of uid 65534 (the tiny model) with the
#    DaemonSet's security settings: host PID namespace, read-only root, every capability
#    dropped but BPF, PERFMON, SYS_PTRACE, DAC_READ_SEARCH, no new privileges, /sys/kernel/btf
#    and /sys/fs/cgroup read-only. It must trace (exit 0, steps > 0 after a request); without
#    SYS_PTRACE it must fail with llmtap's one-line error; under podman's own default seccomp
#    profile (Debian 12's containers-common 0.50, which allows bpf() only with SYS_ADMIN) it
#    fails too, so the passing runs use seccomp=unconfined (see the DaemonSet's comment).
# Prints 'N passed, N failed'.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=${LLMTAP_IMAGE:-localhost/llmtap:test}
BASE=docker.io/library/debian:bookworm-slim
log() { echo "image: $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=tests/deploy/lib.sh
. "$ROOT/tests/deploy/lib.sh"
[[ $EUID -eq 0 ]] || die "run as root"

need_packages podman runc mmdebstrap curl

# This machine's shell may not raise rlimits (no CAP_SYS_RESOURCE): ask for lower ones.
PODMAN=(podman --runtime runc)
LIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

WORK=$(mktemp -d /var/tmp/llmtap-image.XXXXXX)
SRV_PID=
cleanup() {
	[[ -z $SRV_PID ]] || kill "$SRV_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

if ! podman image exists "$BASE"; then
	log "making $BASE with mmdebstrap (minbase) from Debian's mirror"
	mmdebstrap --variant=minbase --quiet bookworm "$WORK/rootfs.tar" http://deb.debian.org/debian
	podman import --change 'CMD ["bash"]' "$WORK/rootfs.tar" "$BASE" >/dev/null
	rm -f "$WORK/rootfs.tar"
fi

log "podman build -f deploy/Dockerfile -t $IMAGE"
start=$SECONDS
if ! nice -n 19 "${PODMAN[@]}" build --network=host --pull=never "${LIMITS[@]}" \
	-f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1; then
	tail -30 "$WORK/build.log" >&2
	die "the image did not build"
fi
echo "built $IMAGE in $((SECONDS - start)) s: $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')," \
	"entrypoint $(podman image inspect "$IMAGE" --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}')"

passed=0
failed=0
result() { # result OK|FAIL TEXT
	echo "$1 $2"
	if [[ $1 == PASS ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

v=$("${PODMAN[@]}" run --rm --network=host "${LIMITS[@]}" "$IMAGE" --version 2>&1) || true
if [[ $v == llmtap\ * ]]; then result PASS "llmtap --version in the image: $v"; else result FAIL "--version: $v"; fi
# the image's llmtap is the Debian package `make deb` makes (deploy/Dockerfile)
v=$("${PODMAN[@]}" run --rm --network=host "${LIMITS[@]}" --entrypoint dpkg-query "$IMAGE" \
	-W -f='${Package} ${Version} ${Status}' llmtap 2>&1) || true
if [[ $v == *"install ok installed" ]]; then result PASS "the image has the package: $v"
else result FAIL "the image has no llmtap package: $v"; fi

SERVER=${LLAMA_SERVER_SHARED:-$("$ROOT/tools/build-llama.sh" shared)}
MODEL=${LLMTAP_MODEL:-$("$ROOT/tools/make-model.sh")}
start_llama "$SERVER" "$MODEL" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
	--bounding-set=-all

# the DaemonSet's securityContext and mounts, as podman flags
SECURE=(--rm --pid=host --network=host --read-only --cap-drop=ALL --security-opt=no-new-privileges
	-v /sys/kernel/btf:/sys/kernel/btf:ro -v /sys/fs/cgroup:/sys/fs/cgroup:ro "${LIMITS[@]}")
CAPS=CAP_BPF,CAP_PERFMON,CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH

# attach DESCRIPTION ok|fail PODMAN-FLAGS...
attach() {
	local desc=$1 expect=$2 rc=0 steps
	shift 2
	"${PODMAN[@]}" run "${SECURE[@]}" "$@" "$IMAGE" attach --pid "$SRV_PID" --duration 4s \
		>"$WORK/out" 2>"$WORK/err" &
	local lp=$!
	traced_request "$lp" "$WORK/out" '^llmtap: tracing PID' "image test" || true
	wait "$lp" || rc=$?
	steps=$(awk '$1 == "steps" {print $2; exit}' "$WORK/out")
	if verdict "$expect" "$rc" "$steps" "$WORK/err"; then result PASS "$desc: ${VERDICT:0:170}"
	else result FAIL "$desc: $VERDICT: $(head -c 300 "$WORK/err")"; fi
}
attach "DaemonSet's capabilities (seccomp unconfined)" ok --cap-add=$CAPS --security-opt seccomp=unconfined
attach "without SYS_PTRACE" fail --cap-add=CAP_BPF,CAP_PERFMON,CAP_DAC_READ_SEARCH --security-opt seccomp=unconfined
attach "podman's default seccomp profile" fail --cap-add=$CAPS

# the daemon (when the image has it): the exec tracepoint and discovery under the same
# settings, limited by --port to this test's server
if "${PODMAN[@]}" run --rm --network=host "${LIMITS[@]}" "$IMAGE" daemon --help >/dev/null 2>&1; then
	rc=0
	"${PODMAN[@]}" run "${SECURE[@]}" --cap-add=$CAPS --security-opt seccomp=unconfined "$IMAGE" \
		daemon --port "$PORT" --duration 6s --json --no-steps >"$WORK/out" 2>"$WORK/err" &
	lp=$!
	traced_request "$lp" "$WORK/err" "attached to PID $SRV_PID" "daemon test" || true
	wait "$lp" || rc=$?
	steps=$(grep -o "\"type\":\"summary\",\"pid\":$SRV_PID,[^{]*\"steps\":[0-9]*" "$WORK/out" | grep -o '[0-9]*$' || true)
	if [[ $rc -eq 0 && ${steps:-0} -gt 0 ]]; then
		result PASS "llmtap daemon with the DaemonSet's capabilities: exit 0, PID $SRV_PID traced, steps $steps"
	else
		result FAIL "llmtap daemon: exit $rc, steps ${steps:-none}: $(head -c 300 "$WORK/err")"
	fi
else
	echo "SKIP llmtap daemon: this image has no daemon command yet"
fi

echo "image: $passed passed, $failed failed"
((failed == 0))
