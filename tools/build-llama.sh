#!/usr/bin/env bash
# Build a real llama-server from the llama.cpp source that the node-llama-cpp npm
# package ships as a git bundle. The build is cached outside the checkout, keyed
# by the bundle's commit and the link mode, so repeated runs (and CI on the same
# machine) do not rebuild.
#
#   tools/build-llama.sh [shared|static]   prints the path of the llama-server binary
#   tools/build-llama.sh src               prints the llama.cpp source folder (no build)
#
# Environment: LLMTAP_CACHE (default /var/cache/llmtap), NODE_LLAMA_CPP_VERSION.
set -euo pipefail

MODE=${1:-shared}
case $MODE in shared) SHARED=ON ;; static) SHARED=OFF ;; src) ;; *)
	echo "usage: $0 [shared|static|src]" >&2; exit 2 ;;
esac
VERSION=${NODE_LLAMA_CPP_VERSION:-3.22.1}
CACHE=${LLMTAP_CACHE:-/var/cache/llmtap}
PKGDIR=$CACHE/node-llama-cpp-$VERSION
mkdir -p "$CACHE"

log() { echo "build-llama: $*" >&2; }

if [[ ! -f $PKGDIR/llama/gitRelease.bundle ]]; then
	log "fetching node-llama-cpp@$VERSION from the npm registry"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && npm pack --silent "node-llama-cpp@$VERSION" >/dev/null)
	mkdir -p "$PKGDIR.tmp"
	tar -xzf "$tmp"/node-llama-cpp-*.tgz -C "$PKGDIR.tmp" --strip-components=1 package/llama/gitRelease.bundle
	rm -rf "$PKGDIR" && mv "$PKGDIR.tmp" "$PKGDIR"
fi

BUNDLE=$PKGDIR/llama/gitRelease.bundle
COMMIT=$(git bundle list-heads "$BUNDLE" | awk 'NR==1{print substr($1,1,12)}')
SRC=$CACHE/llama.cpp-$COMMIT
if [[ ! -f $SRC/CMakeLists.txt ]]; then
	log "unpacking llama.cpp $COMMIT"
	rm -rf "$SRC.tmp"
	git clone -q "$BUNDLE" "$SRC.tmp"
	rm -rf "$SRC" && mv "$SRC.tmp" "$SRC"
fi

if [[ $MODE == src ]]; then
	echo "$SRC"
	exit 0
fi

BUILD=$CACHE/build-$COMMIT-$MODE
BIN=$BUILD/bin/llama-server
if [[ ! -x $BIN || ! -f $BUILD/.llmtap-done ]]; then
	log "building llama-server ($MODE) in $BUILD; this takes several minutes"
	cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
		-DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON \
		-DBUILD_SHARED_LIBS=$SHARED >"$BUILD.cmake.log" 2>&1 ||
		{ tail -30 "$BUILD.cmake.log" >&2; exit 1; }
	cmake --build "$BUILD" --target llama-server -j "$(nproc)" >"$BUILD.build.log" 2>&1 ||
		{ tail -30 "$BUILD.build.log" >&2; exit 1; }
	touch "$BUILD/.llmtap-done"
fi
echo "$BIN"
