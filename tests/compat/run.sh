#!/usr/bin/env bash
# The llama.cpp compatibility matrix: for each version of tests/compat/versions, build (or
# reuse the cached) shared llama-server, run the e2e test compat_accuracy_under_concurrency
# against it, then write the table of what llmtap saw (tests/compat/report.py). Needs root.
#
#   tests/compat/run.sh [--ci] [--built-only] [--out FILE] [--readme FILE] [VERSION...]
#
#   --ci          only the versions marked ci (make compat-ci, part of make test)
#   --built-only  skip a version whose llama-server is not built yet (it shows as not run)
#   --out FILE    where the table goes (default COMPAT.md)
#   --readme FILE also put the table between FILE's compat-table marks (make compat: README.md)
#   VERSION...    node-llama-cpp versions of the list (default: all of them)
#
# Each version's result, test log and build log stay in .output/compat/. Exits 1 when a
# version failed or was not run, after writing the table.
set -euo pipefail
cd "$(dirname "$0")/../.."

CI=0 BUILT_ONLY=0 OUT=COMPAT.md README=()
WANT=()
while (($#)); do
	case $1 in
	--ci) CI=1 ;;
	--built-only) BUILT_ONLY=1 ;;
	--out) OUT=$2; shift ;;
	--readme) README=(--readme "$2"); shift ;;
	-*) echo "usage: $0 [--ci] [--built-only] [--out FILE] [--readme FILE] [VERSION...]" >&2; exit 2 ;;
	*) WANT+=("$1") ;;
	esac
	shift
done

LIST=tests/compat/versions
# the node-llama-cpp version tools/build-llama.sh pins: its build is in the default cache
PINNED=$(sed -n 's/^VERSION=\${NODE_LLAMA_CPP_VERSION:-\([^}]*\)}$/\1/p' tools/build-llama.sh)
[[ -n $PINNED ]] || { echo "compat: no default version in tools/build-llama.sh" >&2; exit 1; }
COMPAT_CACHE=${LLMTAP_COMPAT_CACHE:-/var/cache/llmtap-compat}
RESULTS=.output/compat
mkdir -p "$RESULTS"

VERSIONS=()
while read -r v _ _ ci; do
	[[ -z $v || $v == \#* ]] && continue
	((CI)) && [[ $ci != ci ]] && continue
	if ((${#WANT[@]})); then
		[[ " ${WANT[*]} " == *" $v "* ]] || continue
	fi
	VERSIONS+=("$v")
done <"$LIST"
for w in "${WANT[@]}"; do
	grep -q "^$w[[:space:]]" "$LIST" || { echo "compat: $w is not in $LIST" >&2; exit 2; }
done
((${#VERSIONS[@]})) || { echo "compat: no version to run" >&2; exit 2; }

cache_of() { [[ $1 == "$PINNED" ]] && echo "${LLMTAP_CACHE:-/var/cache/llmtap}" || echo "$COMPAT_CACHE"; }

# true when version $1's shared llama-server is built in cache $2 (nothing is fetched)
built() {
	local bundle=$2/node-llama-cpp-$1/llama/gitRelease.bundle commit
	[[ -f $bundle ]] || return 1
	commit=$(git bundle list-heads "$bundle" | awk 'NR==1{print substr($1,1,12)}')
	[[ -f $2/build-$commit-shared/.llmtap-done ]]
}

# one model for every version, written with the pinned llama.cpp's gguf-py (the test runs
# the variant without byte tokens; the runner wants the other one to exist)
MODEL=$(env -u NODE_LLAMA_CPP_VERSION tools/make-model.sh)
MODEL_NO_HIGH_BYTES=$(env -u NODE_LLAMA_CPP_VERSION tools/make-model.sh --no-high-byte-tokens)
export LLMTAP=${LLMTAP:-$PWD/llmtap}
[[ -x $LLMTAP ]] || { echo "compat: no llmtap binary at $LLMTAP (make)" >&2; exit 1; }

failed=0
for v in "${VERSIONS[@]}"; do
	cache=$(cache_of "$v")
	result=$RESULTS/$v.json log=$RESULTS/$v.log
	rm -f "$result" "$RESULTS/$v.skipped"
	if ((BUILT_ONLY)) && ! built "$v" "$cache"; then
		echo "compat: $v: not built in $cache, skipped"
		echo "not built" >"$RESULTS/$v.skipped"
		failed=1
		continue
	fi
	echo "compat: $v: llama-server (shared) from $cache"
	if ! server=$(NODE_LLAMA_CPP_VERSION=$v LLMTAP_CACHE=$cache tools/build-llama.sh shared \
		2>"$RESULTS/$v.build.log"); then
		echo "compat: $v: the build failed:"; tail -5 "$RESULTS/$v.build.log"
		echo "build failed (.output/compat/$v.build.log)" >"$RESULTS/$v.skipped"
		failed=1
		continue
	fi
	# only what the test uses: this version's shared server and the models; nothing else built
	if NODE_LLAMA_CPP_VERSION=$v LLMTAP_CACHE=$cache LLMTAP_COMPAT_OUT=$result \
		LLAMA_SERVER_SHARED=$server LLAMA_SERVER_STATIC= LLMTAP_MODEL=$MODEL \
		LLMTAP_MODEL_NO_HIGH_BYTES=$MODEL_NO_HIGH_BYTES LLMTAP_EMBEDDER= LLMTAP_OTLP_DECODER= \
		tests/e2e/run.sh compat_accuracy_under_concurrency >"$log" 2>&1; then
		echo "compat: $v: PASS"
	else
		echo "compat: $v: FAIL (.output/compat/$v.log)"
		msg=$(grep -m1 '^FAIL' "$log" || tail -3 "$log")
		echo "${msg:0:400}"
		failed=1
	fi
done

/usr/bin/python3 tests/compat/report.py --versions "$LIST" --results "$RESULTS" --out "$OUT" \
	"${README[@]}" "${VERSIONS[@]}"
echo "compat: wrote $OUT"
exit $failed
