#!/usr/bin/python3
"""Write COMPAT.md from one run of tests/compat/run.sh.

  report.py --versions tests/compat/versions --results .output/compat --out COMPAT.md
            [--readme README.md] V...

V...: the versions this run ran (their results are RESULTS/V.json, written by the e2e test
compat_accuracy_under_concurrency, or RESULTS/V.skipped saying why there is none); every
other version of the list shows as not run. For a layer llmtap did not attach, the "missing
and why" column names the probe sites (include/llmtap_sites.def) the build lacks, and why
as far as its symbols tell: another signature, or inlined (named in the debug information
without a symbol of its own).
"""
import argparse
import datetime
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITES = os.path.join(ROOT, "include", "llmtap_sites.def")
LAYERS = ("engine", "sampling", "server", "http")


def read_versions(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                rows.append({"version": line[0], "llama": line[1], "date": line[2],
                             "ci": len(line) > 3 and line[3] == "ci"})
    return rows


def read_sites():
    """The site table: label, layer, need and alternate symbols of every row."""
    with open(SITES) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    sites = []
    for m in re.finditer(r"^SITE\((\w+),\s*\"([^\"]+)\",\s*(\w+),\s*(\w+),(.*?)\)\s*$", text, re.S | re.M):
        alts = re.findall(r"\{\s*\"([^\"]+)\",\s*\"([^\"]*)\"\s*\}", m.group(5))
        sites.append({"label": m.group(2), "layer": m.group(3).lower(), "need": m.group(4),
                      "alts": alts})
    return sites


def binaries(server):
    """The executable and the libraries beside it (a shared build's libllama*, ggml, the
    server library of later versions)."""
    d = os.path.dirname(server)
    files = {os.path.realpath(server)}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if ".so" in name and os.path.isfile(p):
            files.add(os.path.realpath(p))
    return sorted(files)


def symbols(files):
    names = set()
    for f in files:
        for flags in (["--defined-only"], ["-D", "--defined-only"]):
            out = subprocess.run(["nm", "-P"] + flags + [f], capture_output=True, text=True)
            names |= {l.split()[0] for l in out.stdout.splitlines() if l.strip()}
    return names


def matches(alt, names):
    sym = alt[0]
    if sym.endswith("*"):
        return any(n.startswith(sym[:-1]) for n in names)
    return sym in names


def why_missing(site, names, files):
    """Why none of a site's symbols is in the build, as far as the build tells."""
    short = site["label"].split("::")[-1]
    piece = f"{len(short)}{short}"  # its name as a C++ mangled name spells it
    others = sorted(n for n in names if piece in n or n == short)
    if others:
        return f"{site['label']}: only {', '.join(others[:2])} (not the signature llmtap reads)"
    for f in files:
        with open(f, "rb") as fh:
            if short.encode() in fh.read():
                return f"{site['label']} inlined (in the debug info, no symbol of its own)"
    return f"{site['label']}: not in this build"


def missing(result, sites):
    """What llmtap did not attach, and why: one phrase per layer."""
    server = result.get("server")
    if not server or not os.path.exists(server):
        return []
    files = binaries(server)
    names = symbols(files)
    out = []
    for layer in LAYERS:
        if layer in result.get("layers", []):
            continue
        rows = [s for s in sites if s["layer"] == layer]
        reasons = [why_missing(s, names, files) for s in rows
                   if s["need"] == "REQ" and not any(matches(a, names) for a in s["alts"])]
        anys = [s for s in rows if s["need"] == "ANY"]
        if anys and not any(matches(a, names) for s in anys for a in s["alts"]):
            reasons.append("none of " + ", ".join(s["label"] for s in anys))
        if not reasons:
            reasons = ["its sites are there; llmtap left it off"]
        out.append(f"{layer} layer: " + "; ".join(reasons))
    return out


def row(v, result, skipped, sites):
    name = f"{v['version']}{' (ci)' if v['ci'] else ''}"
    era = f"{v['llama']}, {v['date']}"
    if result is None:
        return [name, era, "", "", "", "", "", "", "not run" + (f": {skipped}" if skipped else ""), ""]
    notes = missing(result, sites)
    if result.get("partial"):
        notes.append(f"{result['partial']} requests with counts partly null, not marked unattributed")
    if result.get("unseen"):
        notes.append(f"{result['unseen']} requests without a record")
    if result.get("failures"):
        first = result["failures"][0]
        why = "; ".join(first["why"].split("; ")[:2])
        notes.append(f"{first['verdict']}, e.g. {first['request'].split(' port')[0]}: {why}")
    notes += [w.strip() for w in result.get("llmtap_warnings", [])]
    if result.get("error") and result.get("steps") is None:
        notes.append(result["error"].splitlines()[0][:200])
    steps = result.get("steps")
    steps = "" if steps is None else f"{steps} / {result.get('n_decode_delta')}"
    if steps and result.get("steps") != result.get("n_decode_delta"):
        steps += " (differ)"
    counts = "" if result.get("steps") is None else \
        f"{result['exact']} / {result['unattributed']} / {result['wrong']} of {result['requests']}"
    fin, mt = result.get("finish"), result.get("max_tokens")
    finish = f"{fin['told']} / {fin['unknown']} / {fin['wrong']}" if fin else ""
    max_tokens = f"{mt['told']} / {mt['unknown']} / {mt['wrong']}" if mt else ""
    if result.get("finish_failures"):
        first = result["finish_failures"][0]
        notes.append(f"finish reason {first['llmtap']} where the server said {first['server']!r}")
    verdict = "pass" if result.get("passed") else "FAIL"
    return [name, era, f"`{result.get('llama_cpp') or '?'}`", ",".join(result.get("layers", [])),
            steps, counts, finish, max_tokens, verdict, "; ".join(notes) or "-"]


def llmtap_commit():
    out = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                         text=True)
    return out.stdout.strip() or "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--readme", help="also put the table between this file's compat-table marks")
    ap.add_argument("ran", nargs="*")
    a = ap.parse_args()
    sites = read_sites()
    head = ["node-llama-cpp", "llama.cpp", "llama.cpp as llmtap read it", "layers attached",
            "decode steps (llmtap / server)", "requests exact / unattributed / wrong",
            "finish reasons told / unknown / wrong", "max_tokens told / unknown / wrong", "result",
            "missing and why"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in read_versions(a.versions):
        result, skipped = None, None
        if v["version"] in a.ran:
            p = os.path.join(a.results, v["version"] + ".json")
            if os.path.exists(p):
                with open(p) as f:
                    result = json.load(f)
            s = os.path.join(a.results, v["version"] + ".skipped")
            if os.path.exists(s):
                with open(s) as f:
                    skipped = f.read().strip()
            elif result is None:
                skipped = f"the test wrote no result (.output/compat/{v['version']}.log)"
        else:
            skipped = "not in this run"
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row(v, result, skipped, sites)) + " |")
    table = "\n".join(lines)
    doc = f"""# llama.cpp compatibility

Generated by `make compat` (tests/compat/run.sh) on {datetime.date.today().isoformat()} with llmtap
{llmtap_commit()}; do not edit. Each row is one llama.cpp, built from the source its node-llama-cpp
release ships (tests/compat/versions), traced by llmtap while 16 concurrent clients send requests to
a 4-slot llama-server (/completion and chat, streamed and not, shared prompt prefixes; the e2e
test compat_accuracy_under_concurrency).

- **decode steps**: the `llama_decode` calls llmtap counted, next to the server's own
  `llamacpp:n_decode_total` over the same time.
- **requests**: a request is *exact* when its prompt, cached and output token counts are the
  server's (`timings`, `usage`), *unattributed* when llmtap says it cannot know them
  (`"attribution": "unattributed"`, the counts null), *wrong* otherwise. The test fails on
  any wrong request, and on any request not exact where the server layer attached.
- **finish reasons**: a request's `gen_ai.response.finish_reasons` is *told* when it is the
  server's own (`stop_type`, `finish_reason`), *unknown* when llmtap leaves it out, *wrong*
  otherwise (the test fails). A quarter of the requests end on an end-of-generation token
  (forced by a logit bias), the rest on their token limit. `gen_ai.request.max_tokens` likewise
  against the `n_predict` each asked for: it is read from llama-server's task, whose layout
  moves with every release, so only on the builds in user/target/layout.c.
- **missing and why**: the layers llmtap did not attach, and the probe sites this build lacks
  (include/llmtap_sites.def), from its symbols.

{table}
"""
    write(a.out, doc)
    if a.readme:
        with open(a.readme) as f:
            text = f.read()
        marks = re.compile(r"(<!-- compat-table:[^\n]*-->\n).*?(<!-- /compat-table -->)", re.S)
        if not marks.search(text):
            raise SystemExit(f"report: no compat-table marks in {a.readme}")
        write(a.readme, marks.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text))


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
