#!/usr/bin/env bash
# Write llmtap(1) to stdout, from what the built binary prints: help2man turns
# `llmtap --help` into the page, and each command's `llmtap COMMAND --help` into a
# section of its own ("LLMTAP ATTACH", ...), so the page cannot drift from the help texts.
#
#   tools/gen-man.sh ./llmtap > llmtap.1        (needs help2man)
set -euo pipefail

BIN=${1:?usage: gen-man.sh PATH-TO-LLMTAP}
[[ $BIN == */* ]] || BIN=./$BIN
command -v help2man >/dev/null || { echo "gen-man: help2man is missing (apt-get install help2man)" >&2; exit 1; }

# the commands, in the order `llmtap --help` lists them
mapfile -t cmds < <("$BIN" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1; next} on {exit}')
((${#cmds[@]})) || { echo "gen-man: no commands in '$BIN --help'" >&2; exit 1; }

inc=$(mktemp)
trap 'rm -f "$inc"' EXIT
version=$("$BIN" --version | awk '{print $NF; exit}')
for c in "${cmds[@]}"; do
	# the command's own page, then: its NAME and .TH dropped, SYNOPSIS kept as the
	# section's first line, every other section a subsection, bug reports left to the
	# main page's REPORTING BUGS
	printf '[LLMTAP %s]\n' "${c^^}"
	help2man -N --no-discard-stderr --help-option="$c --help" --version-string="$version" "$BIN" |
		awk '
			function endex() { if (ex == 2) print ".fi"; ex = 0 }
			/^\.TH / || /^\.\\"/ {next}
			/^\.SH / {
				endex()
				sec = substr($0, 5); gsub(/"/, "", sec); sub(/:$/, "", sec); sec = toupper(sec)
				skip = (sec == "NAME" || sec == "REPORTING BUGS")
				if (sec == "DESCRIPTION") print ".PP"
				if (sec == "SYNOPSIS" || sec == "DESCRIPTION" || skip) next
				print ".SS \"" sec "\""
				ex = (sec ~ /^EXAMPLES?$/)
				next
			}
			skip {next}
			# examples stay one command a line (help2man would fill them): no-fill
			# until the next paragraph, a continuation line (.IP) indented
			ex && /^\.IP$/ { if (ex == 1) { print ".IP"; print ".nf"; ex = 2 } else cont = 1; next }
			ex && /^\./ {endex()}
			ex == 2 && cont { $0 = "    " $0; cont = 0 }
			{print}'
done >"$inc"

help2man -N --no-discard-stderr --version-string="$version" \
	--name="trace llama.cpp inference servers from outside the process, with eBPF" \
	--include="$inc" "$BIN"
