#!/usr/bin/env bash
# Install an OTLP decoder that llmtap did not write: the protobufjs static code that the
# OpenTelemetry JS project generates from the official OTLP .proto files, shipped in the
# npm package @opentelemetry/otlp-transformer as build/src/generated/root.js.
# tests/e2e/otlp_decode.js loads it. Cached outside the checkout; once installed, a run
# makes no npm call.
#
#   tools/otlp-decoder.sh      prints the decoder directory (LLMTAP_OTLP_DECODER for the tests)
#
# Environment: LLMTAP_CACHE (default /var/cache/llmtap).
set -euo pipefail

VERSION=0.57.2
# The transformer wants protobufjs ^7.3.0; 7.5.3 was the newest when 0.57.2 came out.
PROTOBUFJS=7.5.3
CACHE=${LLMTAP_CACHE:-/var/cache/llmtap}
DIR=$CACHE/otlp-decoder-$VERSION
ROOT_JS=$DIR/node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js

if [[ ! -f $DIR/.llmtap-done ]]; then
	echo "otlp-decoder: installing @opentelemetry/otlp-transformer@$VERSION from the npm registry" >&2
	rm -rf "$DIR.tmp"
	mkdir -p "$DIR.tmp"
	echo '{"name": "llmtap-otlp-decoder", "private": true}' >"$DIR.tmp/package.json"
	(cd "$DIR.tmp" && npm install --silent --no-audit --no-fund --ignore-scripts \
		"@opentelemetry/otlp-transformer@$VERSION" "protobufjs@$PROTOBUFJS" >&2)
	node -e 'require(process.argv[1]).opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest' \
		"${ROOT_JS/#$DIR/$DIR.tmp}"
	touch "$DIR.tmp/.llmtap-done"
	rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"
fi
echo "$DIR"
