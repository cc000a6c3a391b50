"""End-to-end tests of `llmtap record` (issue: profiling views)."""
import json
import os
import tempfile
import time

import signal
import subprocess

from harness import (LLMTAP, LlamaServer, Tracer, check, check_eq, run_concurrently, run_llmtap,
                     test, wait_until)
import test_requests as req


@test
def record_writes_a_trace_event_file():
    out = os.path.join(tempfile.mkdtemp(prefix="llmtap-rec-"), "trace.json")
    with LlamaServer(np=2, ctx=4096) as srv:
        m0 = srv.metrics()
        p = subprocess.Popen([LLMTAP, "record", "--pid", str(srv.pid), "--duration", "4s", "-o", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        calls = run_concurrently([lambda i=i: req.completion(srv, 8000 + i, 12 + i, i % 2 == 1)
                                  for i in range(8)], 4)
        m1 = srv.metrics()
        _, err = p.communicate(timeout=30)
    check_eq(p.returncode, 0, f"llmtap record exit code ({err})")
    check(f"to {out}" in err, f"no 'wrote ... to {out}' on stderr: {err!r}")
    check(not os.path.exists(out + ".tmp"), "the temporary file was left behind")
    with open(out) as f:
        doc = json.load(f)  # the trace-event JSON object format
    events = doc["traceEvents"]
    check(all(e["ph"] in ("M", "X", "C", "b", "e", "i") for e in events), "unknown event phases")
    check(all("ts" in e and e["ts"] >= 0 for e in events if e["ph"] != "M"),
          "an event without a timestamp, or before the recording began")
    check(doc["otherData"]["start_unix_nano"] > 1.6e18, "the recording's start time")
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    check({"engine steps", "slot 0", "slot 1"} <= names, f"tracks: {names}")
    steps = [e for e in events if e["ph"] == "X" and e["cat"] == "step"]
    check_eq(len(steps), m1["n_decode_total"] - m0["n_decode_total"], "step events vs n_decode_total")
    counters = [e for e in events if e["ph"] == "C" and e["name"] == "batch tokens"]
    check_eq(len(counters), len(steps), "a batch-size counter per step")
    reqs = {e["args"]["client_port"]: e for e in events if e["ph"] == "X" and e["cat"] == "request"}
    for c in calls:
        r = reqs.get(c.port)
        check(r is not None, f"no request event for client port {c.port}")
        t = c.timings
        check_eq((r["args"]["cached_tokens"], r["args"]["prompt_tokens"], r["args"]["output_tokens"]),
                 (t["cache_n"], t["prompt_n"], t["predicted_n"]), f"tokens of the request on port {c.port}")
        kids = [e for e in events if e["ph"] == "X" and e["cat"] == "phase" and e["tid"] == r["tid"]
                and r["ts"] <= e["ts"] + 0.001 and e["ts"] + e["dur"] <= r["ts"] + r["dur"] + 0.002]
        check({"prefill", "generation"} <= {k["name"] for k in kids},
              f"prefill and generation inside the request on its slot track ({c.port})")


@test
def record_errors():
    rc, _, err = run_llmtap(["record", "--pid", "1"])
    check_eq(rc, 2, "record without -o")
    check("give -o FILE" in err, f"error: {err!r}")
    with LlamaServer(np=1) as srv:
        rc, _, err = run_llmtap(["record", "--pid", str(srv.pid), "-d", "1s", "-o",
                                 "/nonexistent-dir/trace.json"])
    check_eq(rc, 1, "record into a missing directory")
    check("cannot create /nonexistent-dir/trace.json.tmp" in err, f"error: {err!r}")


@test
def tail_capture_on_sigusr1_and_on_ttft():
    """--tail keeps the last window in memory: SIGUSR1 writes it, and so does a request
    whose time to first token crosses --tail-ttft; only the window's events are in it."""
    out = tempfile.mkdtemp(prefix="llmtap-tail-")
    with LlamaServer(np=2, ctx=4096) as srv:
        tr = Tracer(srv.pid, ["--no-steps", "--tail", "1500ms", "--tail-dir", out,
                              "--tail-ttft", "1us"])
        tr.wait_attached()
        # a first wave, then quiet for longer than the window, then a second wave
        first = run_concurrently([lambda i=i: req.completion(srv, 8100 + i, 8, False) for i in range(3)], 3)
        time.sleep(2.5)
        second = run_concurrently([lambda i=i: req.completion(srv, 8200 + i, 8, False) for i in range(3)], 3)
        time.sleep(0.3)
        tr.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: "SIGUSR1: wrote" in tr.stderr_so_far(), 10, "the SIGUSR1 capture")
        check_eq(tr.stop(), 0, "llmtap exit code")
    files = sorted(os.listdir(out))
    err = tr.stderr()
    check("time to first token above the threshold: wrote" in err, f"no threshold capture: {err!r}")
    check(len(files) >= 2, f"captures written: {files}")
    usr1 = [f for f in files if f.endswith(f"-{len(files)}.json")][0]
    with open(os.path.join(out, usr1)) as f:
        doc = json.load(f)
    events = doc["traceEvents"]
    ports = {e["args"]["client_port"] for e in events if e["ph"] == "X" and e["cat"] == "request"}
    check_eq(ports, {c.port for c in second}, "requests in the SIGUSR1 capture (the last window only)")
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    check("engine steps" in names, f"track names kept in every capture: {names}")
    for c in second:
        r = next(e for e in events if e["ph"] == "X" and e["cat"] == "request"
                 and e["args"]["client_port"] == c.port)
        check_eq(r["args"]["output_tokens"], c.timings["predicted_n"], "tokens in the capture")
    check(all(c.port not in ports for c in first), "the first wave aged out of the window")
