"""KV-cache bytes: llmtap's bytes per cell, capacity and bytes in use against llama.cpp's own.

The oracle is the server's log: llama_kv_cache's "size = T MiB (N cells, L layers, S/R seqs),
K (type): a MiB, V (type): b MiB" line, printed once the context's cache is allocated (its
numbers to 0.01 MiB, so the contexts are made large enough for a byte per cell to show), and
its CPU KV buffer; and, for the bytes in use, the request's own timings (prompt_n +
predicted_n - 1 positions stay in the slot's cache after it: the last token sampled is never
decoded). `llmtap run` starts the server, so the context's creation is traced.

Two model shapes (the tiny model: 2 layers, 4 KV heads of 16; its --gqa variant: 3 layers,
2 KV heads of 32 for 4 query heads), two cache types (f16, q8_0), unified and per-sequence
caches, on today's llama.cpp and on two older ones whose llama_context_params differ (b8390:
the same fields 16 bytes nearer; b5640: a bool flash_attn, cells padded to 32).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile

import harness
from harness import LlamaServer, Tracer, check, check_eq, test, wait_until

COMPAT = os.environ.get("LLMTAP_COMPAT_CACHE", "/var/cache/llmtap-compat")
MIB = 1 << 20
# llama_kv_cache (b7698 and later) / llama_kv_cache_unified (b5640)
SIZE_RE = re.compile(r"llama_kv_cache\w*: size = +([0-9.]+) MiB \( *(\d+) cells, +(\d+) layers, +"
                     r"(\d+)(?:/(\d+))? seqs\), K \((\w+)\): +([0-9.]+) MiB, V \((\w+)\): +([0-9.]+) MiB")


class Client:
    """LlamaServer's request helpers for a server llmtap run started (or llmtap's /metrics)."""

    def __init__(self, port):
        self.port = port

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    get = LlamaServer.get
    post = LlamaServer.post
    complete = LlamaServer.complete


def compat_server(commit):
    path = os.path.join(COMPAT, f"build-{commit}-shared", "bin", "llama-server")
    check(os.access(path, os.X_OK), f"no cached llama-server build at {path} "
          "(tests/compat/versions; tools/build-llama.sh builds it)")
    return path


def kv_log(text):
    """The last cache the server allocated (an earlier one may be llama_params_fit's probe)."""
    found = SIZE_RE.findall(text)
    check(found, f"no llama_kv_cache size line in the server's log:\n{text[-2000:]}")
    t, cells, layers, seqs, streams, tk, k, tv, v = found[-1]
    return {"mib": float(t), "cells": int(cells), "layers": int(layers),
            "streams": int(streams) if streams else 1,  # b5640: one cache for all sequences
            "type_k": tk, "k_mib": float(k), "type_v": tv, "v_mib": float(v)}


def near_mib(got_bytes, want_mib, what):
    """Equal as the log prints it (%.2f MiB)."""
    check(abs(got_bytes / MIB - want_mib) <= 0.005 + 1e-9,
          f"{what}: llmtap {got_bytes} bytes = {got_bytes / MIB:.4f} MiB, llama.cpp {want_mib} MiB")


def check_report(r, tail_dir, used, capacity):
    """A --tail capture's KV counter carries the bytes, and the report says them."""
    r.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: "SIGUSR1: wrote" in r.stderr_so_far(), 10, "the SIGUSR1 capture")
    trace = os.path.join(tail_dir, sorted(os.listdir(tail_dir))[-1])
    page = os.path.join(tail_dir, "report.html")
    out = subprocess.run([harness.LLMTAP, "report", trace, "-o", page], capture_output=True,
                         text=True, timeout=60)
    check_eq(out.returncode, 0, f"llmtap report ({out.stderr})")
    with open(page) as f:
        html = f.read()
    want = f"KV bytes: at most {used / MIB:.2f} MiB in use of {capacity / MIB:.2f} MiB allocated"
    check(want in html, f"the report says {want!r}: "
          f"{re.findall(r'KV bytes[^.<]*', html)}")


def run_server(llmtap_args, server_args, port=None):
    """llmtap run on a llama-server (the server's own log on llmtap's stderr, -lv 4), up
    and answering: (the tracer, a client of the server)."""
    port = port or harness.free_port()
    r = Tracer(None, llmtap_args + ["--"] + server_args +
               ["--host", "127.0.0.1", "--port", str(port), "-t", "1", "--no-webui", "-lv", "4"],
               command=["run"])
    srv = Client(port)

    def healthy():
        check(r.proc.poll() is None, f"llmtap run exited: {r.stderr_so_far()[-3000:]}")
        try:
            return srv.get("/health")[0] == 200
        except OSError:
            return False
    try:
        wait_until(healthy, 90, f"llama-server on port {port} under llmtap run")
    except BaseException:
        r.proc.send_signal(signal.SIGTERM)
        r.wait(30)
        raise
    return r, srv


def kv_case(server, model, ctx, np, args=(), want_type="f16", prometheus=False):
    prom = harness.free_port() if prometheus else None
    tail_dir = tempfile.mkdtemp(prefix="llmtap-kv-") if prometheus else None
    llmtap_args = ["--no-steps", "--interval", "200ms"] + \
        (["--prometheus", f"127.0.0.1:{prom}", "--tail", "60s", "--tail-dir", tail_dir]
         if prom else [])
    try:
        r, srv = run_server(llmtap_args, [server, "-m", model, "-np", str(np), "-c", str(ctx)] +
                            list(args))
    except BaseException:
        if tail_dir:
            shutil.rmtree(tail_dir)
        raise
    try:
        log = kv_log(r.stderr_so_far())
        check_eq(log["type_k"], want_type, "the server's K cache type (the test's setup)")

        # capacity: the context's creation, decoded, against the cache llama.cpp allocated
        def sized():
            recs = [i for i in r.records("interval") if i.get("kv_bytes_capacity") is not None]
            return recs[-1] if recs else None
        it = wait_until(sized, 20, "an interval record with the KV capacity")
        cells = log["cells"] * log["streams"]
        check_eq(it["kv_cells_capacity"], cells, "KV cells allocated (N cells x streams)")
        check_eq(it["kv_type_k"], log["type_k"], "K cache type")
        check_eq(it["kv_type_v"], log["type_v"], "V cache type")
        check_eq(it["kv_device"], "cpu", "where the cache is (a CPU-only build)")
        check("CPU KV buffer size" in r.stderr_so_far(), "the server put its KV buffer on the CPU")
        bpc = it["kv_bytes_per_cell"]
        check_eq(it["kv_bytes_capacity"], bpc * cells, "capacity = bytes per cell x cells")
        near_mib(it["kv_bytes_capacity"], log["mib"], "KV capacity")
        if log["type_k"] == log["type_v"]:  # equal head sizes: K and V halves
            near_mib(it["kv_bytes_capacity"] // 2, log["k_mib"], "K cache")
            near_mib(it["kv_bytes_capacity"] // 2, log["v_mib"], "V cache")

        # bytes in use: the positions the request left in its slot x bytes per cell
        body = srv.complete(harness.prompt(1, 20), 24)
        held = body["timings"]["prompt_n"] + body["timings"]["predicted_n"] - 1

        def settled():
            recs = r.records("interval")
            return recs[-1] if recs and recs[-1].get("kv_cells") == held else None
        it = wait_until(settled, 20, f"kv_cells {held} (the request's positions) in an interval")
        check_eq(it["kv_bytes_used"], held * bpc, "KV bytes in use = cells held x bytes per cell")
        if prom:
            status, text = Client(prom).get("/metrics")
            check_eq(status, 200, "llmtap's /metrics")
            text = text.decode()
            for name, want in (("llmtap_kv_cache_memory_capacity_bytes", bpc * cells),
                               ("llmtap_kv_cache_memory_usage_bytes", None)):
                m = re.search(rf"^{name}{{([^}}]*)}} (\S+)", text, re.M)
                check(m, f"{name} in llmtap's /metrics:\n{text[-1500:]}")
                for label in ('llmtap_kv_cache_device="cpu"', f'llmtap_kv_cache_type_k="{want_type}"'):
                    check(label in m.group(1), f"{name} has {label}: {m.group(0)}")
                if want is not None:
                    check_eq(float(m.group(2)), want, name)
            check_report(r, tail_dir, held * bpc, bpc * cells)
        return bpc
    finally:
        r.proc.send_signal(signal.SIGTERM)  # to the server too: llmtap run passes it on
        rc = r.wait(30)
        if tail_dir:
            shutil.rmtree(tail_dir)
        check_eq(rc, 0, f"llmtap run's status is the server's ({r.stderr()[-500:]})")


@test
def kv_bytes_match_llama_cpp():
    """Today's llama.cpp: the tiny model (MHA) with f16 per-sequence caches, its GQA variant
    with q8_0 (flash attention on: llama.cpp quantizes V only with it) and a unified cache."""
    check(harness.MODEL_GQA and os.path.exists(harness.MODEL_GQA),
          "LLMTAP_MODEL_GQA is not set (tests/e2e/run.sh: tools/make-model.sh --gqa)")
    # 2 layers x 4 KV heads x 16 x 2 bytes x (K, V)
    check_eq(kv_case(harness.SERVER_SHARED, harness.MODEL, 16000, 3, prometheus=True), 512,
             "bytes per cell, MHA f16")
    # 3 layers x (2 KV heads x 32 = 2 q8_0 blocks of 34 bytes) x (K, V)
    check_eq(kv_case(harness.SERVER_SHARED, harness.MODEL_GQA, 16000, 2,
                     ["-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "--kv-unified"],
                     want_type="q8_0"), 408, "bytes per cell, GQA q8_0")


@test
def kv_bytes_on_older_llama_cpp():
    """b8390 (the KV fields of llama_context_params at other offsets) and b5640 (no
    kv_unified, one cache padded to 32 cells without flash attention)."""
    check(harness.MODEL_GQA and os.path.exists(harness.MODEL_GQA),
          "LLMTAP_MODEL_GQA is not set (tests/e2e/run.sh: tools/make-model.sh --gqa)")
    # 3 layers x 2 KV heads x 32 x 2 bytes x (K, V)
    check_eq(kv_case(compat_server("b10e98aadb3e"), harness.MODEL_GQA, 16000, 2), 768,
             "bytes per cell on b8390")
    # 16200 cells padded to 32: 16224 (to 256 with flash attention: 16384). The tiny
    # model's shape without its high byte tokens: b5640's server aborts on a JSON answer
    # whose random text is not UTF-8 (nlohmann type_error 316)
    check_eq(kv_case(compat_server("aa3f5d08eeb5"), harness.MODEL_NO_HIGH_BYTES, 16200, 2), 512,
             "bytes per cell on b5640")


@test
def kv_bytes_with_a_draft_model():
    """Review (issue 12): with a draft model (-md) llama-server creates the draft's context
    after the target's. Until a step confirms the slots' context, correlator_context() takes
    the latest context created, the draft's, and kv_memory() sizes it with the target
    model's shape (the GGUF llmtap read): the KV capacity is then neither cache's. The oracle
    is the server's own log: its first llama_kv_cache line is the target's. Whatever llmtap
    says before the first request must be the target's cache, or nothing."""
    check(harness.MODEL_GQA and os.path.exists(harness.MODEL_GQA),
          "LLMTAP_MODEL_GQA is not set (tests/e2e/run.sh: tools/make-model.sh --gqa)")
    r, _ = run_server(["--no-steps", "--interval", "200ms"],
                      [harness.SERVER_SHARED, "-m", harness.MODEL, "-md", harness.MODEL_GQA,
                       "--spec-type", "draft-simple", "-ctkd", "q8_0", "-ctvd", "q8_0", "-fa", "on",
                       "-np", "2", "-c", "16000"])
    try:
        found = SIZE_RE.findall(r.stderr_so_far())
        check(len(found) >= 2, f"two llama_kv_cache lines (target, draft): {found}")
        tgt, dft = found[-2], found[-1]
        tgt_cells = int(tgt[1]) * (int(tgt[4]) if tgt[4] else 1)
        dft_cells = int(dft[1]) * (int(dft[4]) if dft[4] else 1)
        check(tgt_cells != dft_cells or tgt[0] != dft[0],
              f"the two caches differ, or the test proves nothing ({tgt}, {dft})")

        # both contexts exist (the server is healthy): the intervals written from now on
        n0 = len(r.records("interval"))

        def sized():
            recs = [i for i in r.records("interval")[n0:] if i.get("kv_bytes_capacity") is not None]
            return recs[-1] if len(recs) >= 3 else None
        it = wait_until(sized, 20, "interval records with the KV capacity")
        check_eq(it["kv_cells_capacity"], tgt_cells,
                 f"KV cells before any request: the target's cache ({tgt[1]}/{tgt[4]}; "
                 f"the draft's: {dft[1]}/{dft[4]})")
        near_mib(it["kv_bytes_capacity"], float(tgt[0]), "KV capacity before any request")
    finally:
        r.proc.send_signal(signal.SIGTERM)
        rc = r.wait(30)
        check_eq(rc, 0, f"llmtap run's status is the server's ({r.stderr()[-500:]})")
