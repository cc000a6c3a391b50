#!/usr/bin/env bash
# shellcheck disable=SC2016 # the self-test's $1 and \n are perl's
# Offline checks of deploy/: the Kubernetes manifests and the Dockerfile.
#
#   tests/deploy/lint.sh              every deploy/kubernetes/*.yaml, deploy/Dockerfile,
#                                     then the self-test
#   tests/deploy/lint.sh FILE.yaml... those manifests only (no self-test)
#
# 1. yamllint (Debian's package) with tests/deploy/yamllint.yaml: YAML syntax and style.
# 2. tests/deploy/validate.mjs: each object against the Kubernetes API's own OpenAPI schema
#    (types, enums, required fields, quantity formats), unknown fields as
#    `kubectl --validate=strict` rejects them, YAML 1.1 as Kubernetes parses it, references
#    between the files, and llmtap's pod policy (capabilities, read-only root, limits).
#    Its npm packages (kubernetes-models, @kubernetes/client-node's generated models, yaml,
#    and dockerfile-utils for step 3)
#    are pinned by tests/deploy/package-lock.json and installed once into
#    $LLMTAP_CACHE/deploy-lint-HASH (default /var/cache/llmtap); later runs need no network.
# 3. dockerfile-utils (the Dockerfile parser and linter of VS Code's Docker support) on
#    deploy/Dockerfile: instructions, flags, ports, durations. hadolint is not to be had here
#    (neither Debian nor npm ships its binary); `podman build` is the real test.
# 4. The self-test: broken copies of the manifests (a misspelt field, a wrong type, a YAML
#    1.1 boolean, a duplicate key, an extra capability, ...) must each be rejected.
# Not covered (a server's admission, not a schema, checks these): field paths in fieldRef,
# environment variable names, Pod Security Admission. `kubectl apply --dry-run=server -f
# deploy/kubernetes/` against a real cluster checks those.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${LLMTAP_CACHE:-/var/cache/llmtap}
log() { echo "lint: $*" >&2; }

# --- tools ---------------------------------------------------------------------------
if ! command -v yamllint >/dev/null; then
	[[ $EUID -eq 0 ]] || { log "yamllint is missing: apt-get install yamllint (as root)"; exit 1; }
	log "installing yamllint (Debian)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends yamllint >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends yamllint >/dev/null; }
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	log "needs node and npm"
	exit 1
fi

HASH=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -c1-12)
TOOLS=$CACHE/deploy-lint-$HASH
if [[ ! -f $TOOLS/.done ]]; then
	log "installing the schema checker's npm packages into $TOOLS"
	mkdir -p "$CACHE"
	rm -rf "$TOOLS.tmp"
	mkdir -p "$TOOLS.tmp"
	cp "$HERE/package.json" "$HERE/package-lock.json" "$TOOLS.tmp/"
	(cd "$TOOLS.tmp" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
	touch "$TOOLS.tmp/.done"
	rm -rf "$TOOLS"
	mv "$TOOLS.tmp" "$TOOLS"
fi
# the script must sit beside node_modules for Node to resolve its imports
cp "$HERE/validate.mjs" "$TOOLS/validate.mjs"
validate() { node "$TOOLS/validate.mjs" "$@"; }

# --- the manifests -------------------------------------------------------------------
self_test=1
if (($#)); then
	files=("$@")
	self_test=0
else
	files=("$ROOT"/deploy/kubernetes/*.yaml)
fi

status=0
passed=0
failed=0
count() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi; }
# shellcheck disable=SC2317 # called through count
yamllint_all() {
	yamllint -s -c "$HERE/yamllint.yaml" "${files[@]}" && echo "yamllint: ${#files[@]} files, no problems"
}
# shellcheck disable=SC2317 # called through count
dockerfile_lint() {
	"$TOOLS/node_modules/.bin/dockerfile-utils" lint "$ROOT/deploy/Dockerfile" &&
		echo "dockerfile-utils: deploy/Dockerfile, no problems"
}
echo "== yamllint"
count yamllint_all
echo "== Kubernetes schemas, unknown fields, references, policy"
count validate "${files[@]}"
if ((!self_test)); then
	echo "lint: $passed passed, $failed failed"
	exit $status
fi
echo "== Dockerfile"
count dockerfile_lint

# --- the self-test: each broken copy must be rejected --------------------------------
echo "== self-test: broken manifests must be rejected"
K=$ROOT/deploy/kubernetes
WORK=$(mktemp -d /tmp/llmtap-lint.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
broken=()
declare -A from # broken copy -> the manifest it breaks
# break NAME FILE PERL-EXPRESSION: a copy of FILE changed by the expression (which must match)
break_copy() {
	local name=$1 file=$2 expr=$3 out=$WORK/$1.yaml
	perl -0pe "$expr" "$K/$file" >"$out"
	if cmp -s "$K/$file" "$out"; then
		log "self-test case $name changed nothing in $file: update it"
		status=1
		return
	fi
	broken+=("$out")
	from[$out]=$file
}
break_copy misspelt-field daemonset.yaml 's/readOnlyRootFilesystem: true/readOnlyRootFilesytem: true/'
break_copy field-in-wrong-place daemonset.yaml 's/(\n      hostPID: true)/$1\n      hostNetwork: false\n      privileged: false/'
break_copy wrong-type daemonset.yaml 's/containerPort: 9464/containerPort: "9464"/'
break_copy bad-enum daemonset.yaml 's/protocol: TCP/protocol: tcp/'
break_copy bad-quantity daemonset.yaml 's/memory: 256Mi/memory: 256MB/'
break_copy missing-required daemonset.yaml 's/\n( +)- name: llmtap\n +#/\n$1- #/'
break_copy yaml11-boolean daemonset.yaml 's/prometheus.io\/scrape: "true"/prometheus.io\/scrape: yes/'
break_copy duplicate-key daemonset.yaml 's/(\n      hostPID: true)/$1$1/'
break_copy syntax-error daemonset.yaml 's/- ":9464"/- ":9464/'
break_copy removed-api daemonset.yaml 's/apiVersion: apps\/v1/apiVersion: extensions\/v1beta1/'
break_copy extra-capability daemonset.yaml 's/(\n( +)- DAC_READ_SEARCH)/$1\n$2- SYS_ADMIN/'
break_copy privileged daemonset.yaml 's/privileged: false/privileged: true/'
break_copy writable-root daemonset.yaml 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/'
break_copy no-memory-limit daemonset.yaml 's/(limits:\n +cpu: 500m)\n +memory: 256Mi/$1/'
break_copy undefined-configmap daemonset.yaml 's/name: llmtap-config/name: llmtap-configs/'
break_copy undefined-namespace configmap.yaml 's/namespace: llmtap/namespace: llmtap-system/'
break_copy unknown-kind configmap.yaml 's/kind: ConfigMap/kind: ConfigMapp/'
break_copy configmap-number configmap.yaml 's/OTEL_METRIC_EXPORT_INTERVAL: "60000"/OTEL_METRIC_EXPORT_INTERVAL: 60000/'

# each broken copy is checked beside the other, good manifests (for its references)
for file in $(printf '%s\n' "${from[@]}" | sort -u); do
	these=() context=()
	for b in "${broken[@]}"; do [[ ${from[$b]} != "$file" ]] || these+=("$b"); done
	for f in "$K"/*.yaml; do [[ $(basename "$f") == "$file" ]] || context+=("$f"); done
	validate --each-must-fail "${these[@]}" --context "${context[@]}" | tee "$WORK/self-test.out" || status=1
	r=$(sed -n 's/^validate: \([0-9]*\) of \([0-9]*\) broken.*/\1 \2/p' "$WORK/self-test.out")
	[[ -n $r ]] || r="0 ${#these[@]}"
	passed=$((passed + ${r% *}))
	failed=$((failed + ${r#* } - ${r% *}))
done

# and a broken Dockerfile
perl -pe 's/^EXPOSE 9464$/EXPOSE 94x64/' "$ROOT/deploy/Dockerfile" >"$WORK/Dockerfile"
if cmp -s "$ROOT/deploy/Dockerfile" "$WORK/Dockerfile"; then
	log "self-test case broken-dockerfile changed nothing: update it"
	count false
elif "$TOOLS/node_modules/.bin/dockerfile-utils" lint "$WORK/Dockerfile" >"$WORK/df.out" 2>&1; then
	echo "Dockerfile with EXPOSE 94x64: accepted, but it is broken"
	count false
else
	echo "Dockerfile with EXPOSE 94x64: rejected: $(grep -m1 '^Error' "$WORK/df.out")"
	count true
fi

echo
echo "lint: $passed passed, $failed failed"
exit $status
