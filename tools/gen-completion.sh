#!/usr/bin/env bash
# Write llmtap's bash completion to stdout, from what the built binary prints: the
# commands of `llmtap --help`, each command's options (and what their arguments are:
# PID, FILE, DIR) of `llmtap COMMAND --help`. Rebuilt with the binary, so it cannot drift.
#
#   tools/gen-completion.sh ./llmtap > llmtap.bash-completion
set -euo pipefail

BIN=${1:?usage: gen-completion.sh PATH-TO-LLMTAP}
[[ $BIN == */* ]] || BIN=./$BIN

mapfile -t cmds < <("$BIN" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1; next} on {exit}')
((${#cmds[@]})) || { echo "gen-completion: no commands in '$BIN --help'" >&2; exit 1; }

# options COMMAND: one line per option of the command's --help: "NAME KIND", KIND one of
# none (a flag), pid, file, dir, value
options() {
	"$BIN" "$1" --help | awk '
		/^ +-/ && match($0, /^ +/) && RLENGTH < 10 {
			# the option part ends at two spaces before the description (or the line end)
			spec = $0; sub(/^ +/, "", spec); sub(/   .*/, "", spec); sub(/  +[A-Z].*/, "", spec)
			kind = "none"
			if (match(spec, /=[^ ,]+/)) {
				arg = substr(spec, RSTART + 1, RLENGTH - 1); gsub(/[][]/, "", arg)
				if (arg ~ /^PID$/) kind = "pid"
				else if (arg ~ /DIR/) kind = "dir"
				else if (arg ~ /FILE|\.json$|\.html$/) kind = "file"
				else kind = "value"
			}
			n = split(spec, w, /[ ,]+/)
			for (i = 1; i <= n; i++) {
				name = w[i]; sub(/=.*/, "", name); sub(/\[$/, "", name)
				if (name ~ /^--?[A-Za-z?]/ && name != "-?") print name, kind
			}
		}'
}

cat <<HEAD
# bash completion for llmtap(1): generated from llmtap $("$BIN" --version | awk '{print $NF; exit}')'s --help
# by tools/gen-completion.sh; do not edit.

_llmtap() {
	local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} cmd=\${COMP_WORDS[1]-} i
	local opts= pid= file= dir= value=
	COMPREPLY=()
	if ((COMP_CWORD == 1)); then
		mapfile -t COMPREPLY < <(compgen -W "${cmds[*]} --help --version" -- "\$cur")
		return
	fi
	case \$cmd in
HEAD
for c in "${cmds[@]}"; do
	mapfile -t lines < <(options "$c")
	declare -A by=([none]= [pid]= [file]= [dir]= [value]=)
	all=
	for l in "${lines[@]}"; do
		all+="${all:+ }${l% *}"
		k=${l#* }
		by[$k]+="${by[$k]:+ }${l% *}"
	done
	printf '\t%s)\n\t\topts="%s"\n' "$c" "$all"
	for k in pid file dir value; do
		[[ -z ${by[$k]} ]] || printf '\t\t%s="%s"\n' "$k" "${by[$k]}"
	done
	printf '\t\t;;\n'
	unset by
done
cat <<'TAIL'
	*) return ;;
	esac
	# `llmtap run [OPTION...] -- PROGRAM [ARG...]`: after --, a program, then its files
	if [[ $cmd == run ]]; then
		for ((i = 2; i < COMP_CWORD; i++)); do
			[[ ${COMP_WORDS[i]} == -- ]] || continue
			if ((i + 1 == COMP_CWORD)); then
				mapfile -t COMPREPLY < <(compgen -c -- "$cur")
			else
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			fi
			return
		done
	fi
	# the argument of the option before
	if [[ " $pid " == *" $prev "* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(cd /proc && printf '%s ' [0-9]*)" -- "$cur")
		return
	elif [[ " $file " == *" $prev "* ]]; then
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
	elif [[ " $dir " == *" $prev "* ]]; then
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
	elif [[ " $value " == *" $prev "* ]]; then
		return
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	elif [[ $cmd == report ]]; then
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")   # the trace file
	fi
}
complete -F _llmtap llmtap
TAIL
