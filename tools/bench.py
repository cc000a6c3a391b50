#!/usr/bin/python3
"""llmtap overhead benchmark (`make bench`): not a test, a measurement.

1. Probe cost per hit: tools/probe-cost exports a llama_decode with the real
   signature and calls it in a loop; timed untraced and with `llmtap attach`,
   for a generation-like batch (1 token), a 4-sequence batch and a 512-token
   prefill-like batch.
2. Server overhead: the same load against one llama-server on the tiny model,
   rounds ordered ABBA (A untraced, B with llmtap attached), each round with
   prompts of its own; tokens/s and server CPU per generated token per round,
   the median of each and the traced/untraced ratio, llmtap's own CPU and RSS.
"""
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import LLMTAP, LlamaServer, Tracer, prompt, run_concurrently  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE_COST = os.path.join(ROOT, ".output", "probe-cost")
# the same target with a common_sampler_sample (probed on entry and return) as its sampler
PROBE_COST_COMMON = os.path.join(ROOT, ".output", "probe-cost-common")
# and with llama_get_logits_ith (sampling at entry, and a sync site): an embedder that
# samples on its own
PROBE_COST_LOGITS = os.path.join(ROOT, ".output", "probe-cost-logits")
# and with llama-server's server-layer sites: server_slot::find_stopping_strings
PROBE_COST_SERVER = os.path.join(ROOT, ".output", "probe-cost-server")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "16"))
N_PREDICT = int(os.environ.get("BENCH_N_PREDICT", "128"))


def cpu_seconds(pid):
    """CPU time of every thread of pid, in ns resolution (/proc/PID/task/*/schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that just exited
    return total / 1e9


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def first_instruction(binary, symbol):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={symbol}", binary],
                         capture_output=True, text=True).stdout.splitlines()
    for i, line in enumerate(out):
        if line.endswith(f"<{symbol}>:") and i + 1 < len(out):
            return " ".join(out[i + 1].split()[1:])
    return "?"


def probe_cost_once(calls, n_tokens, n_seqs, traced, what="decode", args=()):
    exe = {"common-sample": PROBE_COST_COMMON, "logits-sample": PROBE_COST_LOGITS,
           "stop": PROBE_COST_SERVER}.get(what, PROBE_COST)
    p = subprocess.Popen([exe, str(calls), str(n_tokens), str(n_seqs),
                          "sample" if what.endswith("-sample") else what],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline())
    tr = Tracer(pid, ["--no-steps", *args]).wait_attached() if traced else None
    p.stdin.write("go\n")
    p.stdin.flush()
    ns = float(p.stdout.readline())
    p.wait()
    summary = None
    if tr:
        tr.wait(10)
        summary = tr.records("summary")[0]
    return ns, summary


def bench_probe_cost():
    print("== probe cost per hit (uprobe, uretprobe where there is one, BPF, ring buffer)")
    print(f"   probe site: llama_decode+0 in probe-cost is `{first_instruction(PROBE_COST, 'llama_decode')}`")
    print(f"   llama_sampler_sample+0 is `{first_instruction(PROBE_COST, 'llama_sampler_sample')}`")
    common = "_Z21common_sampler_sampleP14common_samplerP13llama_contextib"
    print(f"   common_sampler_sample+0 is `{first_instruction(PROBE_COST_COMMON, common)}`")
    stop = "_ZN11server_slot21find_stopping_stringsERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEEmb"
    print(f"   server_slot::find_stopping_strings+0 is `{first_instruction(PROBE_COST_SERVER, stop)}`")
    print(f"   llama_synchronize+0 is `{first_instruction(PROBE_COST, 'llama_synchronize')}` "
          "(libllama's: a jmp to llama_context::synchronize@plt)")
    rows = []
    for what, n_tokens, n_seqs, calls in (("decode", 1, 1, 200000), ("decode", 4, 4, 200000),
                                          ("decode", 512, 1, 20000), ("sample", 1, 1, 200000),
                                          ("common-sample", 1, 1, 200000),
                                          ("logits-sample", 1, 1, 200000),
                                          ("sync", 1, 1, 200000), ("stop", 1, 1, 200000)):
        base = statistics.median(probe_cost_once(calls, n_tokens, n_seqs, False, what)[0]
                                 for _ in range(3))
        runs = [probe_cost_once(calls, n_tokens, n_seqs, True, what) for _ in range(3)]
        traced = statistics.median(r[0] for r in runs)
        seen = runs[-1][1]
        rows.append((n_tokens, n_seqs, base, traced))
        if what == "decode":
            label = f"llama_decode, batch {n_tokens:4d} tokens / {n_seqs} seq"
            count = f"llmtap saw {seen['steps']} of {calls} calls"
        elif what == "sync":
            label = "llama_synchronize, not its context's first"
            count = f"{calls} calls after one step, the first claimed it"
        elif what == "stop":
            label = "find_stopping_strings (entry, a map update)"
            count = f"{calls} checks, layers {seen['layers']}"
        else:
            label = {"sample": "llama_sampler_sample (entry only)",
                     "common-sample": "common_sampler_sample (entry + return)",
                     "logits-sample": "llama_get_logits_ith (sampling + sync)"}[what]
            count = f"llmtap saw {seen['sampled_tokens']} of {calls} samples"
            if what == "logits-sample":  # one batch read again and again: one token
                count = f"{calls} reads of one batch's output, llmtap counted {seen['sampled_tokens']} token"
        print(f"   {label:42s}: untraced {base:8.1f} ns/call, traced {traced:8.1f} ns/call -> "
              f"{(traced - base) / 1000:6.2f} us per hit ({count}, lost {seen['lost_events']})")
    # a sync that claims its step: a step and its sync minus a step alone, both with a
    # ring buffer that holds every record (a full one makes the step cheaper, and the sync
    # record of a lost step has nothing to end)
    pair = {}
    for what in ("decode", "decode-sync"):
        base = statistics.median(probe_cost_once(20000, 1, 1, False, what)[0] for _ in range(3))
        runs = [probe_cost_once(20000, 1, 1, True, what, ["--ringbuf-size=64M"]) for _ in range(3)]
        pair[what] = (statistics.median(r[0] for r in runs) - base) / 1000
        seen = runs[-1][1]
    claim_us = pair["decode-sync"] - pair["decode"]
    print(f"   {'a first llama_synchronize (claims the step)':42s}: {claim_us:6.2f} us per hit "
          f"(a step and its sync {pair['decode-sync']:.2f} us minus a step {pair['decode']:.2f} us; "
          f"llmtap saw {seen['steps']} of 20000 steps, {seen['step_compute_duration_s']['count']} "
          f"with a compute time, lost {seen['lost_events']})")
    return rows, claim_us


def bpf_prog_stats():
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    return {p["name"]: (p.get("run_cnt", 0), p.get("run_time_ns", 0))
            for p in json.loads(out or "[]")
            if p.get("name") in ("probe_enter", "probe_exit", "probe_session")}


def count_hits(srv):
    """One traced round with BPF run statistics on: probe hits per generated token, all probes."""
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    try:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        before = bpf_prog_stats()
        tokens = load_round(srv, 10**7)[0]
        after = bpf_prog_stats()
        tr.stop()
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("0")
    hits = {}
    for name in ("probe_enter", "probe_exit", "probe_session"):
        if name not in after:  # no uprobe sessions on this kernel: the sync sites are in the others
            hits[name] = (0.0, 0.0)
            continue
        n = after[name][0] - before[name][0]
        hits[name] = (n / tokens, (after[name][1] - before[name][1]) / max(n, 1))
    return hits


def load_round(srv, first):
    """REQUESTS completions, 2 at a time.

    Returns (generated tokens, wall seconds, server CPU seconds, the server's own tokens/s)."""
    jobs = [lambda i=i: srv.complete(prompt(first + i, 16), N_PREDICT) for i in range(REQUESTS)]
    m0, cpu0, t0 = srv.metrics(), cpu_seconds(srv.pid), time.monotonic()
    done = run_concurrently(jobs, 2)
    secs, cpu, m1 = time.monotonic() - t0, cpu_seconds(srv.pid) - cpu0, srv.metrics()
    tokens = sum(r["timings"]["predicted_n"] for r in done)
    # the server's own generation throughput: tokens over the time its slots spent generating
    gen = ((m1["tokens_predicted_total"] - m0["tokens_predicted_total"]) /
           (m1["tokens_predicted_seconds_total"] - m0["tokens_predicted_seconds_total"]))
    return tokens, secs, cpu, gen


def bench_server():
    print(f"== llama-server throughput, {ROUNDS} rounds ABBA, {REQUESTS} requests x "
          f"{N_PREDICT} tokens per round, 2 concurrent, -np 2")
    order = ["A", "B", "B", "A"] * ((ROUNDS + 3) // 4)
    res = {"A": [], "B": []}
    lt_cpu, lt_rss, lt_lost, lt_steps, lt_samples, lt_tokens = [], 0, 0, 0, 0, 0
    with LlamaServer(np=2, ctx=4096) as srv:
        print(f"   probe site: llama_decode+0 in libllama is "
              f"`{first_instruction(os.path.join(os.path.dirname(srv.binary), 'libllama.so'), 'llama_decode')}`")
        load_round(srv, 10**6)  # warm-up
        for k, mode in enumerate(order[:ROUNDS]):
            tr = Tracer(srv.pid, ["--no-steps"]).wait_attached() if mode == "B" else None
            c0 = cpu_seconds(tr.proc.pid) if tr else 0
            tokens, secs, cpu, gen = load_round(srv, 1000 * k)
            if tr:
                lt_cpu.append(cpu_seconds(tr.proc.pid) - c0)
                lt_rss = max(lt_rss, peak_rss_kib(tr.proc.pid))
                tr.stop()
                s = tr.records("summary")[0]
                lt_lost += s["lost_events"]
                lt_steps += s["steps"]
                lt_samples += s["sampled_tokens"]
                lt_tokens += tokens
            res[mode].append((tokens / secs, cpu / tokens * 1e6, secs, gen))
            print(f"   round {k + 1:2d} {mode}: {tokens / secs:7.1f} tokens/s (client), "
                  f"{gen:7.1f} tokens/s (server's generation time), "
                  f"server CPU {cpu / tokens * 1e6:6.1f} us/token")
        hits = count_hits(srv)

    def med(m, i):
        return statistics.median(r[i] for r in res[m])

    def rng(m, i):
        return f"{min(r[i] for r in res[m]):.1f}-{max(r[i] for r in res[m]):.1f}"

    tps = {m: med(m, 0) for m in res}
    cpt = {m: med(m, 1) for m in res}
    gen = {m: med(m, 3) for m in res}
    for m, name in (("A", "untraced"), ("B", "traced  ")):
        print(f"   {name}: median {tps[m]:.1f} tokens/s client (range {rng(m, 0)}), "
              f"{gen[m]:.1f} tokens/s server (range {rng(m, 3)}), {cpt[m]:.1f} us CPU/token")
    print(f"   RATIO of medians traced/untraced: tokens/s client {tps['B'] / tps['A']:.4f}, "
          f"tokens/s server {gen['B'] / gen['A']:.4f}, "
          f"server CPU per token {cpt['B'] / cpt['A']:.4f}")
    # each ABBA block compares rounds run side by side, which cancels slow drift
    blocks = []
    for b in range(len(res["A"]) // 2):
        a_rounds, b_rounds = res["A"][2 * b:2 * b + 2], res["B"][2 * b:2 * b + 2]
        blocks.append(sum(r[0] for r in b_rounds) / sum(r[0] for r in a_rounds))
    if blocks:
        print(f"   RATIO per ABBA block (client tokens/s): median {statistics.median(blocks):.4f}, "
              f"range {min(blocks):.4f}-{max(blocks):.4f} over {len(blocks)} blocks")
    secs_b = sum(r[2] for r in res["B"])
    print(f"   llmtap itself: {sum(lt_cpu) / secs_b * 100:.2f}% of one CPU while traced, "
          f"peak RSS {lt_rss / 1024:.1f} MiB, {lt_steps} steps, {lt_lost} lost")
    print(f"   probe hits per generated token: {lt_steps / lt_tokens:.3f} llama_decode, "
          f"{lt_samples / lt_tokens:.3f} sampler (llmtap's own counts)")
    print(f"   all probes, counted in one more traced run with kernel.bpf_stats_enabled: "
          f"{hits['probe_enter'][0]:.3f} entry and {hits['probe_exit'][0]:.3f} return hits per token, "
          f"BPF time {hits['probe_enter'][1]:.0f} / {hits['probe_exit'][1]:.0f} ns per hit; "
          f"{hits['probe_session'][0]:.3f} uprobe session runs per token (the sync sites: "
          f"an entry each, and a return for the call that claims a step), "
          f"BPF time {hits['probe_session'][1]:.0f} ns per run")
    return tps, cpt, lt_steps / lt_tokens, lt_samples / lt_tokens, hits


def main():
    for f in (LLMTAP, PROBE_COST, PROBE_COST_COMMON):
        if not os.access(f, os.X_OK):
            raise SystemExit(f"bench: {f} is missing; run `make bench`")
    rows, claim_us = bench_probe_cost()
    if ROUNDS <= 0:
        return
    tps, cpt, decode_hits, sample_hits, hits = bench_server()
    decode_us = (rows[0][3] - rows[0][2]) / 1000   # an entry + return pair, with the batch scan
    entry_us = (rows[3][3] - rows[3][2]) / 1000    # an entry probe alone
    sample_us = (rows[4][3] - rows[4][2]) / 1000   # common_sampler_sample: entry + return
    # the other return probes (get_new_id on every main-loop pass, process_request, ...):
    # priced as an entry + return pair without the scan
    other_pairs = max(hits["probe_exit"][0] - decode_hits - sample_hits, 0)
    other_entries = max(hits["probe_enter"][0] - decode_hits - sample_hits - other_pairs, 0)
    per_token_us = 1e6 / tps["A"]
    # the sync sites as uprobe sessions: a claiming call (one per step) runs the program at
    # entry and return, every other call at entry only
    sync_us = (rows[6][3] - rows[6][2]) / 1000  # a sync that is not its context's first
    claims = min(decode_hits, hits["probe_session"][0] / 2)
    others = max(hits["probe_session"][0] - 2 * claims, 0)
    cost = (decode_hits * decode_us + sample_hits * sample_us + other_entries * entry_us +
            other_pairs * sample_us + claims * claim_us + others * sync_us)
    print("== cross-check: hits per token x cost per hit / wall time per token")
    print(f"   ({decode_hits:.3f} decode x {decode_us:.2f} + {sample_hits:.3f} sampler x {sample_us:.2f} + "
          f"{other_entries:.3f} other entries x {entry_us:.2f} + {other_pairs:.3f} other entry/return "
          f"pairs x {sample_us:.2f} + {claims:.3f} claiming syncs x {claim_us:.2f} + {others:.3f} "
          f"other syncs x {sync_us:.2f}) us / {per_token_us:.0f} us = {cost / per_token_us * 100:.3f}% "
          f"expected overhead (ratio {1 - cost / per_token_us:.4f})")


if __name__ == "__main__":
    main()
