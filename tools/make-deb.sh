#!/usr/bin/env bash
# Build the Debian package from the build tree: `make deb` (after `make llmtap doc`).
#
#   VERSION=0.1.0 tools/make-deb.sh llmtap_0.1.0_amd64.deb
#
# Stages /usr/bin/llmtap (stripped), llmtap(1) (gzip -9n) and the bash completion the way
# `make install PREFIX=/usr DESTDIR=...` lays them out, plus /usr/share/doc/llmtap, then
# writes DEBIAN/control (Depends from dpkg-shlibdeps: the shared libraries the binary
# links, nothing of the build) and DEBIAN/md5sums, and runs dpkg-deb --build as root:root.
set -euo pipefail

OUT=${1:?usage: make-deb.sh OUTPUT.deb}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${VERSION:?VERSION is not set}
# lintian wants a real address: DEB_MAINTAINER="Name <mail>" make deb
MAINTAINER=${DEB_MAINTAINER:-llmtap maintainers <llmtap@localhost>}
ARCH=$(dpkg --print-architecture)
O=$ROOT/.output
STAGE=$O/deb/llmtap_${VERSION}_$ARCH
for t in dpkg-deb dpkg-shlibdeps strip gzip; do
	command -v "$t" >/dev/null || { echo "make-deb: $t is missing (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done

rm -rf "$STAGE"
install -d -m 0755 "$STAGE/DEBIAN" "$STAGE/usr/share/doc/llmtap"
install -D -m 0755 "$ROOT/llmtap" "$STAGE/usr/bin/llmtap"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/llmtap"
install -D -m 0644 "$O/llmtap.1" "$STAGE/usr/share/man/man1/llmtap.1"
gzip -9n "$STAGE/usr/share/man/man1/llmtap.1"
install -D -m 0644 "$O/llmtap.bash-completion" "$STAGE/usr/share/bash-completion/completions/llmtap"
install -m 0644 "$ROOT/README.md" "$STAGE/usr/share/doc/llmtap/README.md"
gzip -9n "$STAGE/usr/share/doc/llmtap/README.md"
date=$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}")
cat >"$STAGE/usr/share/doc/llmtap/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: llmtap

Files: *
Copyright: the llmtap authors
License: see the llmtap source repository
COPYRIGHT
printf 'llmtap (%s) unstable; urgency=medium\n\n  * Built from the llmtap source tree (make deb).\n\n -- %s  %s\n' \
	"$VERSION" "$MAINTAINER" "$date" | gzip -9n >"$STAGE/usr/share/doc/llmtap/changelog.gz"
chmod 0644 "$STAGE/usr/share/doc/llmtap/"*

# Depends: what dpkg-shlibdeps finds for the binary's NEEDED libraries (it wants a
# debian/control to read; a minimal one in a scratch folder)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/debian"
printf 'Source: llmtap\n\nPackage: llmtap\nArchitecture: any\n' >"$scratch/debian/control"
depends=$(cd "$scratch" && dpkg-shlibdeps -O "$STAGE/usr/bin/llmtap" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "make-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: llmtap
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Depends: $depends
Section: utils
Priority: optional
Description: eBPF tracer for llama.cpp inference servers
 llmtap attaches uprobes to a running llama-server (or any process that loads
 libllama) from outside the process: every engine step and every request, with
 queue wait, prefill, generation, time to first token and token counts exactly
 as the server counts them. Output: a live console view, JSON lines, OTLP/HTTP
 export, a Prometheus endpoint, a full-screen view, Perfetto trace files and an
 HTML report. The BPF programs are compiled into the binary: no compiler or
 bpftool is needed on the host. Needs root (or CAP_BPF and CAP_PERFMON) and a
 kernel with BTF.
CONTROL
(cd "$STAGE" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/md5sums"
find "$STAGE" -type d -exec chmod 0755 {} +

dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT" >/dev/null
echo "make-deb: $OUT (Depends: $depends)"
