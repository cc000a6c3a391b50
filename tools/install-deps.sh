#!/usr/bin/env bash
# Install every Debian package that llmtap's build, tests, demo and benchmarks need.
# Idempotent: packages already present are skipped; `apt-get update` runs only when
# something is missing. Run as root on Debian 12.
set -euo pipefail

PKGS=(
	# build
	make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config libjson-c-dev
	# OTLP export: protoc-c, libprotobuf-c, libcurl (gzip comes from zlib)
	protobuf-c-compiler libprotobuf-c-dev libcurl4-openssl-dev
	# make install / make deb: the man page from --help, the package
	help2man dpkg-dev
	# unit tests; the fuzzers (make fuzz): clang's libFuzzer and sanitizer runtimes
	libcmocka-dev libclang-rt-14-dev
	# the real target: llama.cpp from the node-llama-cpp npm package
	git cmake g++ nodejs npm python3-numpy
	# end-to-end tests
	curl jq procps util-linux libcap2-bin prometheus tmux chromium fonts-dejavu-core openssl ca-certificates
	# deploy/ checks
	yamllint
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian on some images: accept them on PATH.
if command -v node >/dev/null && command -v npm >/dev/null; then
	tmp=()
	for p in "${missing[@]}"; do
		[[ $p == nodejs || $p == npm ]] || tmp+=("$p")
	done
	missing=("${tmp[@]+"${tmp[@]}"}")
fi

if ((${#missing[@]})); then
	if [[ $EUID -ne 0 ]]; then
		echo "install-deps: missing packages: ${missing[*]}; run as root" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "install-deps: all packages present"
fi
