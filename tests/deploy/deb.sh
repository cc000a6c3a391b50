#!/usr/bin/env bash
# The Debian package on a host without a compiler: a Debian 12 root file system made with
# mmdebstrap (minbase + man-db: no gcc, clang or bpftool), `apt install ./llmtap_*.deb`
# in it (apt resolves the package's Depends from Debian's mirror), then from inside that
# chroot: `man llmtap` renders, `llmtap --help` runs, the bash completion offers every
# command and option of the help texts, and `llmtap attach` traces a real llama-server
# running on the host, a request's token counts equal to the server's own timings
# (prompt_n, predicted_n), exactly.
#
#   tests/deploy/deb.sh llmtap_0.1.0_amd64.deb       (as root; `make deb-check`)
#
# The root file system is cached as a tarball under /var/cache/llmtap (keyed by the
# package list) and the .debs apt fetches in /var/cache/llmtap/deb-apt-archives, so only the
# first run needs Debian's mirror. Prints 'N passed, N failed'.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEB=$(realpath "${1:?usage: deb.sh PATH-TO-llmtap.deb}")
CACHE=${LLMTAP_CACHE:-/var/cache/llmtap}
SUITE=bookworm
INCLUDE=man-db
log() { echo "deb: $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=tests/deploy/lib.sh
. "$ROOT/tests/deploy/lib.sh"
[[ $EUID -eq 0 ]] || die "run as root"
[[ -f $DEB ]] || die "no $DEB (make deb)"

need_packages mmdebstrap curl jq

WORK=$(mktemp -d /var/tmp/llmtap-deb.XXXXXX)
RFS=$WORK/rootfs
SRV_PID=
LP=
cleanup() {
	[[ -z $LP ]] || kill "$LP" 2>/dev/null || true
	[[ -z $SRV_PID ]] || kill "$SRV_PID" 2>/dev/null || true
	# every mount under the root file system, deepest first; nothing is deleted while
	# one is left (rm -rf would go through a bind mount of /sys or /dev)
	local m left
	for m in $(findmnt -rn -o TARGET | grep "^$RFS/" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	left=$(findmnt -rn -o TARGET | grep -c "^$RFS/" || true)
	if ((left)); then log "still mounted under $RFS: left in place"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# the root file system, cached: minbase and man-db, apt's lists kept so that apt can
# resolve the package's Depends without an update
tarball=$CACHE/deb-rootfs-$SUITE-$(echo "$INCLUDE" | md5sum | cut -c1-8).tar
if [[ ! -s $tarball ]]; then
	log "making a $SUITE root file system (minbase, $INCLUDE) with mmdebstrap from Debian's mirror"
	mkdir -p "$CACHE"
	mmdebstrap --variant=minbase --include="$INCLUDE" --skip=cleanup/apt/lists --format=tar --quiet \
		"$SUITE" "$tarball.tmp" http://deb.debian.org/debian
	mv "$tarball.tmp" "$tarball"
fi
start=$SECONDS
mkdir "$RFS"
tar -C "$RFS" --numeric-owner -xf "$tarball"
mkdir -p "$CACHE/deb-apt-archives/partial"
mount --bind "$CACHE/deb-apt-archives" "$RFS/var/cache/apt/archives"
mount -t proc proc "$RFS/proc"
mount --rbind /sys "$RFS/sys" # with /sys/kernel/btf, /sys/fs/bpf, tracefs
mount --make-rslave "$RFS/sys"
mount --rbind /dev "$RFS/dev"
mount --make-rslave "$RFS/dev"
cp -L /etc/resolv.conf "$RFS/etc/resolv.conf"
cp "$DEB" "$RFS/tmp/"
in_root() { chroot "$RFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

passed=0
failed=0
result() { # result PASS|FAIL TEXT
	echo "$1 $2"
	if [[ $1 == PASS ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

tools=$(in_root sh -c 'for t in cc gcc clang bpftool make; do command -v $t; done' || true)
if [[ -z $tools ]]; then result PASS "the root file system has no cc, gcc, clang, bpftool or make"
else result FAIL "the root file system has a build tool: $tools"; fi

apt_install() {
	in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"/tmp/$(basename "$DEB")" >"$WORK/apt.log" 2>&1
}
if apt_install || { in_root apt-get update -q >>"$WORK/apt.log" 2>&1 && apt_install; }; then
	pulled=$(awk '/^The following NEW packages/ {on = 1; next} on && /^  / {printf "%s", $0; next} {on = 0}' \
		"$WORK/apt.log" | tr -s ' ')
	result PASS "apt install ./$(basename "$DEB"), new packages:${pulled}"
else
	tail -20 "$WORK/apt.log" >&2
	result FAIL "apt install ./$(basename "$DEB")"
fi

if in_root man -P cat llmtap >"$WORK/man.txt" 2>"$WORK/man.err" && grep -q '^LLMTAP ATTACH' "$WORK/man.txt" &&
	grep -q '^LLMTAP DAEMON' "$WORK/man.txt"; then
	result PASS "man llmtap: $(wc -l <"$WORK/man.txt") lines, $(grep -c '^LLMTAP [A-Z]' "$WORK/man.txt") command sections"
else
	result FAIL "man llmtap: $(head -c 300 "$WORK/man.err")"
fi

if in_root llmtap --help >"$WORK/help" 2>&1 && grep -q '^Commands:' "$WORK/help"; then
	result PASS "llmtap --help in the root ($(in_root llmtap --version))"
else
	result FAIL "llmtap --help: $(head -c 300 "$WORK/help")"
fi

# the installed completion against the installed binary's help texts: every command
# completes, and every --option of each command's --help is offered for `--`
if in_root bash -c '
	. /usr/share/bash-completion/completions/llmtap
	comp() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _llmtap; }
	cmds=$(llmtap --help | awk "/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print \$1; next} on {exit}")
	comp llmtap ""
	for c in $cmds; do [[ " ${COMPREPLY[*]} " == *" $c "* ]] || { echo "command $c not offered"; exit 1; }; done
	for c in $cmds; do
		comp llmtap "$c" --
		for o in $(llmtap "$c" --help | grep -oE "^ {1,8}(-[A-Za-z?], )?--[a-z][a-z-]*" | grep -oE "\-\-[a-z][a-z-]*"); do
			[[ " ${COMPREPLY[*]} " == *" $o "* ]] || { echo "$c: $o not offered"; exit 1; }
		done
	done
	comp llmtap attach --pid ""
	[[ " ${COMPREPLY[*]} " == *" 1 "* ]] || { echo "attach --pid: no PIDs offered"; exit 1; }
	echo "$(echo $cmds | wc -w) commands"' >"$WORK/comp" 2>&1; then
	result PASS "bash completion matches every command's --help: $(tail -1 "$WORK/comp")"
else
	result FAIL "bash completion: $(head -c 300 "$WORK/comp")"
fi

# a real llama-server on the host, traced by the llmtap installed in the root
SERVER=${LLAMA_SERVER_SHARED:-$("$ROOT/tools/build-llama.sh" shared)}
MODEL=${LLMTAP_MODEL:-$("$ROOT/tools/make-model.sh")}
start_llama "$SERVER" "$MODEL"
in_root llmtap attach --pid "$SRV_PID" --duration 6s --json --no-steps >"$WORK/out" 2>"$WORK/err" &
LP=$!
for _ in $(seq 300); do
	grep -q '"type":"attach"' "$WORK/out" && break
	kill -0 "$LP" 2>/dev/null || break
	sleep 0.05
done
if grep -q '"type":"attach"' "$WORK/out"; then
	curl -sf "http://127.0.0.1:$PORT/completion" \
		-d "{\"prompt\":\"deb test $RANDOM\",\"n_predict\":8,\"cache_prompt\":false}" >"$WORK/resp" || true
fi
rc=0
wait "$LP" || rc=$?
LP=
server=$(jq -c '[.timings.prompt_n, .timings.predicted_n]' "$WORK/resp" 2>/dev/null || echo none)
traced=$(jq -c 'select(.type == "request" and (.output_tokens // 0) > 0) | [.prompt_tokens, .output_tokens]' \
	"$WORK/out" 2>/dev/null | head -1)
if [[ $rc -eq 0 && $server != none && $server == "$traced" ]]; then
	result PASS "llmtap attach from the root: exit 0, request tokens [prompt, output] $traced = the server's timings $server"
else
	result FAIL "llmtap attach from the root: exit $rc, traced ${traced:-none}, server $server: $(head -c 300 "$WORK/err")"
fi

echo "deb: $passed passed, $failed failed ($((SECONDS - start)) s after the root file system)"
((failed == 0))
