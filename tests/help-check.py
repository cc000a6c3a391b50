#!/usr/bin/python3
"""Check every `llmtap ... --help`: it reads well on an 80-column terminal.

- no line is longer than 80 columns (COLUMNS=80, argp's default right margin);
- no line is a fragment of a hand-broken sentence: argp fills paragraphs greedily, so in
  a filled paragraph the first word of a line never fits at the end of the line before.
  A line that starts with a lowercase word which would have fitted there was broken by
  hand in the source. Checked at 80 columns and again with a wide margin
  (ARGP_HELP_FMT=rmargin=200), where hand breaks at 80 columns stand out;
- the help ends with an "Examples:" section whose lines are all commands that start with
  "llmtap ", of a real command, using only long options that command's help lists.

Usage: tests/help-check.py [LLMTAP]  (exit status 0 when every help passes)
"""
import os
import re
import subprocess
import sys

COMMANDS = ["", "attach", "top", "record", "run", "daemon", "report"]
WIDTH = 80


def helptext(llmtap, cmd, env_extra):
    env = dict(os.environ, COLUMNS=str(WIDTH), **env_extra)
    env.pop("ARGP_HELP_FMT", None) if "ARGP_HELP_FMT" not in env_extra else None
    args = [llmtap] + ([cmd] if cmd else []) + ["--help"]
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=10)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit status {p.returncode}: {p.stderr}")
    return p.stdout


def indent(line):
    return len(line) - len(line.lstrip(" "))


def fragments(text, margin):
    """Lines whose first word would have fitted on the line before, in one paragraph."""
    out, lines = [], text.split("\n")
    for prev, cur in zip(lines, lines[1:]):
        if not prev.strip() or not cur.strip():
            continue  # a paragraph starts here
        # prose continues at column 0, an option's description at its column (>= 20);
        # other indented lines (the commands list, examples, option names) are lists
        if not ((indent(prev) == 0 and indent(cur) == 0) or indent(cur) >= 20):
            continue
        word = cur.split()[0]
        if word[0].islower() and len(prev.rstrip()) + 1 + len(word) <= margin:
            out.append(f"{prev!r} / {cur!r}")
    return out


def check(llmtap, cmd, errors):
    name = f"llmtap {cmd} --help".replace("  ", " ")
    text = helptext(llmtap, cmd, {})
    for line in text.split("\n"):
        if len(line) > WIDTH:
            errors.append(f"{name}: a line of {len(line)} columns: {line!r}")
    for f in fragments(text, WIDTH - 1):
        errors.append(f"{name}: a hand-broken line at {WIDTH} columns: {f}")
    wide = helptext(llmtap, cmd, {"ARGP_HELP_FMT": "rmargin=200"}) if cmd else text
    for f in fragments(wide, 199 if cmd else WIDTH - 1):
        errors.append(f"{name}: a hand-broken line with a wide margin: {f}")

    lines = text.rstrip("\n").split("\n")
    if "Examples:" not in lines:
        errors.append(f"{name}: no 'Examples:' section")
        return
    examples = [l for l in lines[lines.index("Examples:") + 1:] if l.strip()]
    if not examples:
        errors.append(f"{name}: an empty 'Examples:' section")
    for ex in examples:
        if not ex.startswith("  llmtap "):
            errors.append(f"{name}: after 'Examples:', a line that is not a command "
                          f"starting with 'llmtap ' (the section must end the help): {ex!r}")
            continue
        words = ex.split()
        sub = words[1]
        if sub not in COMMANDS[1:]:
            errors.append(f"{name}: example of an unknown command {sub!r}: {ex!r}")
            continue
        known = set(re.findall(r"--[a-z][a-z-]*", helptext(llmtap, sub, {})))
        own = words[2:words.index("--")] if "--" in words else words[2:]
        for w in own:
            opt = re.match(r"--[a-z][a-z-]*", w)
            if opt and opt.group(0) not in known:
                errors.append(f"{name}: example with an option {sub} does not have: {ex!r}")


def main():
    llmtap = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "llmtap")
    errors = []
    for cmd in COMMANDS:
        check(llmtap, cmd, errors)
    for e in errors:
        print(e)
    print(f"help-check: {len(COMMANDS)} helps, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
