"""End-to-end tests of per-request tracing against a real llama-server (issue: per-request traces).

Every request is matched to llmtap's record by the client's own TCP port, and llmtap's
token counts are checked against the server's `timings` for that request and its /metrics.
"""
import http.client
import json
import os
import subprocess
import time

import harness
from harness import (BackgroundLoad, LlamaServer, Tracer, check, check_eq, prompt, run_concurrently,
                     test)


class Call:
    """One HTTP request on its own connection: its port, status, the server's timings."""

    def __init__(self, srv, path, body, method="POST", raw=None):
        self.path, self.body = path, body
        self.stream = bool(body and body.get("stream"))
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        t0 = time.monotonic()
        conn.connect()
        self.port = conn.sock.getsockname()[1]
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        self.status = resp.status
        self.first_byte_s = None
        self.timings, self.usage, self.error, self.answer = None, None, None, {}
        if self.stream and resp.status == 200:
            for line in resp:
                if self.first_byte_s is None:
                    self.first_byte_s = time.monotonic() - t0
                line = line.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                self.timings = chunk.get("timings", self.timings)
                self.usage = chunk.get("usage", self.usage)
        else:
            payload = resp.read()
            self.first_byte_s = time.monotonic() - t0
            try:
                doc = json.loads(payload)
            except ValueError:
                doc = {}
            self.answer = doc if isinstance(doc, dict) else {}
            if isinstance(doc, dict):
                self.timings, self.usage, self.error = doc.get("timings"), doc.get("usage"), doc.get("error")
        self.total_s = time.monotonic() - t0
        conn.close()


def sampling(i):
    """Sampling parameters of their own per request (llmtap reads them back)."""
    return {"temperature": round(0.3 + (i % 5) * 0.1, 2), "top_k": 10 + i % 30,
            "top_p": round(0.5 + (i % 4) * 0.1, 2), "seed": 1000 + i}


def completion(srv, i, n_predict, stream, reuse=None):
    text = prompt(reuse if reuse is not None else i, 10 + i % 7)
    return Call(srv, "/completion", dict(sampling(i), prompt=text, n_predict=n_predict,
                                         ignore_eos=True, stream=stream))


def chat(srv, i, n_predict, stream, reuse=None):
    text = prompt(reuse if reuse is not None else i, 8 + i % 5)
    return Call(srv, "/v1/chat/completions",
                dict(sampling(i), messages=[{"role": "user", "content": text}],
                     max_tokens=n_predict, ignore_eos=True, stream=stream))


def sampling_of(call):
    return {k: call.body[k] for k in ("temperature", "top_k", "top_p", "seed")}


def by_port(tracer):
    reqs = {}
    for r in tracer.records("request"):
        port = r["attributes"]["client.port"]
        check(port not in reqs, f"two llmtap requests on client port {port}")
        reqs[port] = r
    return reqs


@test
def every_request_matches_server_accounting():
    """-np 4, 16 concurrent clients, streamed and not, chat and completion, repeated prompts."""
    with LlamaServer(np=4, ctx=4096) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        m0 = srv.metrics()
        jobs = []
        for i in range(32):
            kind = (completion, chat)[i % 2]
            stream = (i // 2) % 2 == 1
            reuse = 500 + i % 3 if i % 4 == 3 else None  # repeated prompts hit the prompt cache
            jobs.append(lambda i=i, kind=kind, stream=stream, reuse=reuse:
                        kind(srv, 1000 + i, 8 + (i * 7) % 25, stream, reuse))
        calls = run_concurrently(jobs, 16)
        # a sequential phase: never more requests than slots
        calls_seq = [completion(srv, 2000 + i, 6, i % 2 == 1) for i in range(4)]
        m1 = srv.metrics()
        time.sleep(0.3)
        check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")

    reqs = by_port(tr)
    inference = [r for r in reqs.values() if r["endpoint"] in ("chat", "completion")]
    check_eq(len(inference), len(calls) + len(calls_seq), "inference requests llmtap saw")
    for c in calls + calls_seq:
        check_eq(c.status, 200, f"client status for {c.path}")
        check(c.timings, f"no timings in the server's answer to {c.path} stream={c.stream}")
        r = reqs.get(c.port)
        check(r is not None, f"no llmtap request for client port {c.port} ({c.path})")
        what = f"request on port {c.port} ({c.path}, stream={c.stream})"
        check_eq(r["complete"], True, f"{what}: complete")
        check_eq(r["attributes"]["http.response.status_code"], 200, f"{what}: status")
        check_eq((r["kind"], r["attribution"], r["endpoint"]),
                 ("http", "server", "chat" if "chat" in c.path else "completion"),
                 f"{what}: kind, attribution, endpoint")
        check_eq(r["stream"], c.stream, f"{what}: stream")
        t = c.timings
        check_eq(r["cached_tokens"], t["cache_n"], f"{what}: cached tokens vs timings.cache_n")
        check_eq(r["prompt_tokens"], t["prompt_n"], f"{what}: prompt tokens vs timings.prompt_n")
        check_eq(r["output_tokens"], t["predicted_n"], f"{what}: output tokens vs timings.predicted_n")
        a = r["attributes"]
        check_eq(a["gen_ai.usage.input_tokens"], t["cache_n"] + t["prompt_n"], f"{what}: input tokens")
        if c.usage:
            check_eq(a["gen_ai.usage.input_tokens"], c.usage["prompt_tokens"], f"{what}: usage.prompt_tokens")
            check_eq(a["gen_ai.usage.output_tokens"], c.usage["completion_tokens"],
                     f"{what}: usage.completion_tokens")
        want = sampling_of(c)
        got = {k: a.get(f"gen_ai.request.{k}") for k in want}
        check(got["seed"] == want["seed"] and got["top_k"] == want["top_k"] and
              abs(got["temperature"] - want["temperature"]) < 1e-6 and
              abs(got["top_p"] - want["top_p"]) < 1e-6, f"{what}: sampling {got} vs {want}")
        ttft_ms = r["ttft_ns"] / 1e6
        check(t["prompt_ms"] <= ttft_ms + 0.5,
              f"{what}: ttft {ttft_ms:.3f} ms below the server's prompt time {t['prompt_ms']} ms")
        check(ttft_ms <= c.first_byte_s * 1000,
              f"{what}: ttft {ttft_ms:.3f} ms above what the client saw ({c.first_byte_s * 1000:.3f} ms)")
    check(any(c.timings["cache_n"] > 0 for c in calls), "no request reused the prompt cache")
    check_eq(sum(r["prompt_tokens"] for r in inference),
             m1["prompt_tokens_total"] - m0["prompt_tokens_total"], "sum of prompt tokens vs /metrics")
    check_eq(sum(r["output_tokens"] for r in inference),
             m1["tokens_predicted_total"] - m0["tokens_predicted_total"], "sum of output tokens vs /metrics")
    # queueing: the burst had more requests than slots, the sequential phase never did
    burst = [reqs[c.port] for c in calls]
    seq = [reqs[c.port] for c in calls_seq]
    check(any(r["queued"] and r["queue_ns"] > 0 for r in burst), "no request of the burst was queued")
    check(all(not r["queued"] and r["queue_ns"] == 0 for r in seq), "a sequential request was queued")
    for r in burst:
        if r["queued"]:
            names = [ch["name"] for ch in r["children"]]
            check_eq(names[:1], ["queue"], "first child span of a queued request")
    summary = tr.records("summary")[0]
    check_eq(summary["lost_events"], 0, "lost events")
    check(summary.get("process_rss_bytes", 0) > 16 << 20, "the server's resident memory (model 17 MB)")
    check_metrics(summary["metrics"], calls + calls_seq, inference)


def check_metrics(metrics, calls, inference):
    """The exported instruments agree with the requests (OTel names, the inference set)."""
    def points(name):
        return [m for m in metrics if m["name"] == name]

    reqs = points("llmtap.inference.requests")
    check_eq(sum(m["value"] for m in reqs), len(calls), "llmtap.inference.requests total")
    for stream in (True, False):
        want = sum(1 for c in calls if c.stream == stream)
        got = sum(m["value"] for m in reqs if m["attributes"]["stream"] == str(stream).lower())
        check_eq(got, want, f"llmtap.inference.requests with stream={stream}")
    # the model's general.name from its GGUF header (tools/make-tiny-model.py writes it)
    check(all(m["attributes"]["model"] == "llmtap-tiny-llama" and m["attributes"]["provider"] == "llama.cpp"
              and m["attributes"]["status"] == "200" for m in reqs), f"inference attributes: {reqs}")
    usage = points("gen_ai.client.token.usage")
    for kind, field in (("input", "gen_ai.usage.input_tokens"), ("output", "gen_ai.usage.output_tokens")):
        got = sum(m["sum"] for m in usage if m["attributes"]["gen_ai.token.type"] == kind)
        check_eq(got, sum(r["attributes"][field] for r in inference), f"{kind} token usage sum")
    ttft = points("gen_ai.server.time_to_first_token")
    check_eq(sum(m["count"] for m in ttft), len(calls), "time-to-first-token count")
    for m in points("http.server.request.duration") + ttft:
        check_eq(len(m["bucket_counts"]), len(m["bounds"]) + 1, f"{m['name']} buckets")
        check_eq(sum(m["bucket_counts"]), m["count"], f"{m['name']} bucket total")


@test
def error_requests_are_counted_with_type():
    with LlamaServer(np=1, ctx=256) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        bad_json = Call(srv, "/completion", None, raw=b"{not json")
        unknown = Call(srv, "/no/such/route", {"x": 1})
        too_long = Call(srv, "/completion", {"prompt": prompt(7, 400), "n_predict": 4})
        ok = Call(srv, "/completion", {"prompt": prompt(8, 5), "n_predict": 3, "ignore_eos": True})
        time.sleep(0.3)
        check_eq(tr.stop(), 0, "llmtap exit code")
    reqs = by_port(tr)
    for c, want_kind in ((bad_json, "completion"), (unknown, "other"), (too_long, "completion")):
        check(c.status >= 400, f"the server accepted {c.path} ({c.status})")
        r = reqs.get(c.port)
        check(r is not None, f"no llmtap request for the failing {c.path}")
        check_eq(r["attributes"]["http.response.status_code"], c.status, f"{c.path}: status")
        check_eq(r["failed"], True, f"{c.path}: failed")
        check_eq(r["attributes"].get("error.type"), str(c.status), f"{c.path}: error.type")
        check_eq(r["endpoint"], want_kind, f"{c.path}: endpoint")
    check("llmtap.error.message" in reqs[too_long.port]["attributes"],
          "the context overflow carries the server's error message")
    check_eq(reqs[ok.port]["failed"], False, "the good request")
    summary = tr.records("summary")[0]
    check_eq(summary["failed_requests"], 3, "failed requests in the summary")


@test
def requests_that_throw_inside_probed_calls_leave_the_server_serving():
    """An exception thrown out of a probed call must reach llama-server's own handler.

    A bad grammar makes common_sampler_init throw, an unspellable prompt llama_tokenize; a
    return probe on either unwinds into the kernel's trampoline and aborts the server
    (both did, with session 2's llmtap)."""
    with LlamaServer(np=1, ctx=512) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        bad = [Call(srv, "/completion", {"prompt": prompt(20, 4), "n_predict": 2, "grammar": "root ::= (("}),
               Call(srv, "/completion", {"prompt": prompt(21, 4), "n_predict": 2, "repeat_penalty": -1.0}),
               Call(srv, "/v1/chat/completions", {"messages": [{"role": "user", "content": prompt(22, 4)}],
                                                  "max_tokens": 2, "grammar": "root ::= [a-"})]
        # a grammar that parses: the grammar sampler runs inside every sampled token
        fine = [Call(srv, "/completion", {"prompt": prompt(23 + i, 5), "n_predict": 6, "ignore_eos": True,
                                          "grammar": 'root ::= [a-z ]+', "seed": 40 + i, "stream": i == 1})
                for i in range(2)]
        after = Call(srv, "/completion", {"prompt": prompt(30, 6), "n_predict": 4, "ignore_eos": True})
        check(srv.proc.poll() is None, f"llama-server died (exit {srv.proc.poll()})")
        time.sleep(0.3)
        check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")
    reqs = by_port(tr)
    for c in bad:
        check_eq(c.status, 400, f"the server's answer to a request whose sampler cannot be built ({c.body})")
        r = reqs.get(c.port)
        check(r is not None, f"no llmtap request for {c.body}")
        check_eq((r["attributes"]["http.response.status_code"], r["failed"], r["output_tokens"]),
                 (400, True, 0), f"llmtap's record of {c.body}")
    for c in fine + [after]:
        check_eq(c.status, 200, f"status of {c.body}")
        r = reqs[c.port]
        t = c.timings
        check_eq((r["cached_tokens"], r["prompt_tokens"], r["output_tokens"]),
                 (t["cache_n"], t["prompt_n"], t["predicted_n"]), f"tokens of {c.body}")
        check(t["prompt_ms"] <= r["ttft_ns"] / 1e6 + 0.5,
              f"ttft {r['ttft_ns'] / 1e6:.3f} ms below the server's prompt time {t['prompt_ms']} ms")
        check(0 < r["sampling_ns"] < r["duration_ns"], f"time in the sampler of {c.body}: {r['sampling_ns']}")
    # a grammar makes every token's sampling dearer (here: rejection sampling over the vocabulary)
    per_token = [reqs[c.port]["sampling_ns"] / reqs[c.port]["output_tokens"] for c in fine + [after]]
    check(min(per_token[:2]) > per_token[2],
          f"sampling per token with a grammar {per_token[:2]} vs without {per_token[2]} (ns)")
    summary = tr.records("summary")[0]
    samples = [m for m in summary["metrics"] if m["name"] == "llmtap.engine.sample.duration"]
    check_eq(sum(m["count"] for m in samples), summary["sampled_tokens"],
             "llmtap.engine.sample.duration: one point per sampled token")

    # llama_tokenize throws std::out_of_range when byte fallback needs a byte token the
    # vocabulary lacks; llama-server answers 400, and so it must with llmtap attached
    check(harness.MODEL_NO_HIGH_BYTES and os.path.exists(harness.MODEL_NO_HIGH_BYTES),
          "LLMTAP_MODEL_NO_HIGH_BYTES is not set (tests/e2e/run.sh sets it)")
    with LlamaServer(np=1, ctx=512, model=harness.MODEL_NO_HIGH_BYTES) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        unspellable = Call(srv, "/completion", {"prompt": "river \U0001d518 stone", "n_predict": 2})
        after = Call(srv, "/completion", {"prompt": prompt(31, 6), "n_predict": 3, "ignore_eos": True})
        check(srv.proc.poll() is None, f"llama-server died (exit {srv.proc.poll()})")
        time.sleep(0.3)
        check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")
    reqs = by_port(tr)
    check_eq((unspellable.status, unspellable.error and unspellable.error.get("message")),
             (400, "unordered_map::at"), "the server's answer to a prompt its vocabulary cannot spell")
    r = reqs[unspellable.port]
    check_eq((r["attributes"]["http.response.status_code"], r["failed"], r["tokenize_calls"] >= 1),
             (400, True, True), "llmtap's record of the unspellable prompt")
    t = after.timings
    check_eq((reqs[after.port]["prompt_tokens"], reqs[after.port]["output_tokens"]),
             (t["prompt_n"], t["predicted_n"]), "tokens of the request after it")


@test
def a_seccomp_confined_server_survives_the_return_probes():
    """A container's seccomp profile may kill on system calls it does not know, such as
    the one the kernel's uretprobe trampoline returns through (x86-64, Linux 6.11+).
    llmtap's return probes (llama_decode, the sampler, ...) must leave such a server alive
    and exact. This kernel lets its trampoline's call past seccomp; the test is the guard
    for a kernel that does not (there the server would die at its first decode)."""
    helper = os.environ.get("LLMTAP_SECCOMP_EXEC", "")
    check(os.access(helper, os.X_OK), "LLMTAP_SECCOMP_EXEC is not set (tests/e2e/run.sh builds it)")
    with LlamaServer(np=1, ctx=512, prefix=[helper]) as srv:
        status = open(f"/proc/{srv.pid}/status").read()
        check("Seccomp:\t2" in status, "the server runs under a seccomp filter")
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        calls = [completion(srv, 3900 + i, 5, i == 1) for i in range(3)]
        check(srv.proc.poll() is None, f"llama-server was killed (exit {srv.proc.poll()})")
        time.sleep(0.3)
        check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")
    reqs = by_port(tr)
    for c in calls:
        t = c.timings
        check_eq((reqs[c.port]["prompt_tokens"], reqs[c.port]["output_tokens"]), (t["prompt_n"], t["predicted_n"]),
                 f"tokens of the request on port {c.port}")


@test
def speculative_decoding_with_a_draft_model():
    """-md (the tiny model as its own draft): the draft model's prefill and drafted tokens are
    not the request's. llmtap's tokens == the server's timings, drafted tokens == draft_n."""
    args = ["-md", harness.MODEL, "--spec-type", "draft-simple", "--spec-draft-n-max", "4"]
    with LlamaServer(np=2, ctx=2048, args=args) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        m0 = srv.metrics()
        calls = run_concurrently([lambda i=i: completion(srv, 6000 + i, 12 + i, i % 2 == 1)
                                  for i in range(6)], 2)
        m1 = srv.metrics()
        time.sleep(0.3)
        check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")
    reqs = by_port(tr)
    for c in calls:
        r, t = reqs[c.port], c.timings
        check_eq((r["cached_tokens"], r["prompt_tokens"], r["output_tokens"], r["draft_tokens"]),
                 (t["cache_n"], t["prompt_n"], t["predicted_n"], t.get("draft_n", 0)),
                 f"tokens (cached, prompt, output, drafted) of the request on port {c.port}")
    check(any(c.timings.get("draft_n", 0) > 0 for c in calls), "the draft model drafted nothing")
    check_eq(sum(reqs[c.port]["output_tokens"] for c in calls),
             m1["tokens_predicted_total"] - m0["tokens_predicted_total"], "output tokens vs /metrics")
    check_eq(sum(reqs[c.port]["prompt_tokens"] for c in calls),
             m1["prompt_tokens_total"] - m0["prompt_tokens_total"], "prompt tokens vs /metrics")


@test
def context_shifts_are_reported():
    """A small context with --context-shift and a long generation: llmtap reports each shift."""
    with LlamaServer(np=1, ctx=256, args=["--context-shift"]) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        c = Call(srv, "/completion", {"prompt": prompt(31, 10), "n_predict": 600, "ignore_eos": True})
        time.sleep(0.3)
        check_eq(tr.stop(), 0, "llmtap exit code")
        server_shifts = srv.log_text().count("slot context shift")
    check_eq(c.status, 200, "status")
    check(server_shifts >= 2, f"the server shifted its context only {server_shifts} times")
    shifts = tr.records("context_shift")
    check_eq(len(shifts), server_shifts, "context shifts llmtap saw vs the server's log")
    r = by_port(tr)[c.port]
    check_eq(r["context_shifts"], server_shifts, "context shifts on the request")
    check(all(s["request"] == r["id"] and s["n_discard"] > 0 for s in shifts),
          f"shift events not tied to the request: {shifts}")
    check_eq(r["output_tokens"], c.timings["predicted_n"], "output tokens across shifts")
    check_eq(tr.records("summary")[0]["context_shifts"], server_shifts, "summary context shifts")


@test
def slot_save_restore_and_host_prompt_cache():
    """--slot-save-path (POST /slots) and --cache-ram show as cache save/load with byte counts."""
    import tempfile
    slots = tempfile.mkdtemp(prefix="llmtap-slots-")
    with LlamaServer(np=1, ctx=1024, args=["--slot-save-path", slots, "--cache-ram", "64"]) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        first = Call(srv, "/completion", {"prompt": prompt(41, 20), "n_predict": 8, "ignore_eos": True})
        save = Call(srv, "/slots/0?action=save", {"filename": "slot0.bin"})
        restore = Call(srv, "/slots/0?action=restore", {"filename": "slot0.bin"})
        other = Call(srv, "/completion", {"prompt": prompt(42, 20), "n_predict": 4, "ignore_eos": True})
        again = Call(srv, "/completion", {"prompt": prompt(41, 20), "n_predict": 4, "ignore_eos": True})
        time.sleep(0.3)
        check_eq(tr.stop(), 0, "llmtap exit code")
    for c in (first, save, restore, other, again):
        check_eq(c.status, 200, f"status of {c.path}")
    files = [e for e in tr.records("cache_save") if e["target"] == "file"]
    loads = [e for e in tr.records("cache_load") if e["target"] == "file"]
    check_eq(len(files), 1, f"slot saves seen: {files}")
    check_eq(len(loads), 1, f"slot restores seen: {loads}")
    check_eq(files[0]["bytes"], save.answer["n_written"], "bytes saved vs the server's n_written")
    check_eq(loads[0]["bytes"], restore.answer["n_read"], "bytes restored vs the server's n_read")
    check(files[0]["path"].endswith("slot0.bin"), f"save path {files[0]['path']}")
    # the host-memory prompt cache: `again` repeats `first`'s prompt after `other` replaced it
    mem_saves = [e for e in tr.records("cache_save") if e["target"] == "memory"]
    mem_loads = [e for e in tr.records("cache_load") if e["target"] == "memory"]
    check(mem_saves and all(e["bytes"] > 0 for e in mem_saves), f"no prompt-cache saves: {mem_saves}")
    check(mem_loads and all(e["bytes"] > 0 for e in mem_loads), f"no prompt-cache loads: {mem_loads}")
    r = by_port(tr)[again.port]
    check(again.timings["cache_n"] > 0, "the server did not reuse the cached prompt")
    check_eq(r["cached_tokens"], again.timings["cache_n"], "cached tokens after a prompt-cache load")
    check_eq(r["prompt_tokens"], again.timings["prompt_n"], "prompt tokens after a prompt-cache load")
    check_eq(r["cache_loads"], 1, "the request that reused the host cache")
    check_eq(r["cache_bytes_loaded"], mem_loads[-1]["bytes"], "bytes charged to that request")


@test
def embeddings_requests():
    with LlamaServer(np=2, args=["--embeddings", "--pooling", "mean"]) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        m0 = srv.metrics()
        calls = [Call(srv, "/v1/embeddings", {"input": prompt(50 + i, 5 + 3 * i)}) for i in range(4)]
        m1 = srv.metrics()
        time.sleep(0.3)
        check_eq(tr.stop(), 0, "llmtap exit code")
    reqs = by_port(tr)
    for c in calls:
        check_eq(c.status, 200, "embeddings status")
        r = reqs[c.port]
        check_eq(r["endpoint"], "embeddings", "endpoint")
        check_eq(r["attributes"]["gen_ai.operation.name"], "embeddings", "gen_ai.operation.name")
        check_eq(r["attributes"]["gen_ai.usage.input_tokens"], c.usage["prompt_tokens"],
                 "input tokens vs usage.prompt_tokens")
        check_eq(r["output_tokens"], 0, "embeddings sample no tokens")
    check_eq(sum(reqs[c.port]["prompt_tokens"] for c in calls),
             m1["prompt_tokens_total"] - m0["prompt_tokens_total"], "prompt tokens vs /metrics")


def run_embedder(n_gen, *mode):
    """tests/e2e/embedder.c traced by llmtap attach from before its model loads, to its
    exit: the tracer (ended) and what the embedder says it did."""
    embedder = os.environ.get("LLMTAP_EMBEDDER", "")
    check(os.access(embedder, os.X_OK), f"LLMTAP_EMBEDDER is not built ({embedder!r})")
    p = subprocess.Popen([embedder, harness.MODEL, str(n_gen), *mode], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        pid = int(p.stdout.readline())
        tr = Tracer(pid).wait_attached()
        p.stdin.write("go\n")
        p.stdin.flush()
        did = json.loads(p.stdout.readline())
        check_eq(p.wait(30), 0, "embedder exit code")
    finally:
        if p.poll() is None:
            p.kill()
    check_eq(tr.wait(15), 0, f"llmtap exit code (stderr: {tr.stderr()})")
    return tr, did


@test
def embedder_without_server_engine_only():
    """A program that calls libllama directly: engine spans, model load and context creation."""
    tr, did = run_embedder(6)
    attach = tr.records("attach")[0]
    check_eq(attach["layers"], "engine,sampling", "layers attached without llama-server")
    loads = tr.records("model_load")
    check_eq(len(loads), 1, "model loads")
    check(loads[0]["ok"] and loads[0]["path"] == harness.MODEL and loads[0]["duration_ns"] > 0,
          f"model load record {loads[0]}")
    inits = tr.records("context_init")
    check_eq(len(inits), 1, "contexts created")
    check_eq((inits[0]["n_ctx"], inits[0]["n_batch"], inits[0]["n_ubatch"], inits[0]["n_seq_max"]),
             (512, 256, 256, 2), "context parameters")
    steps = tr.records("step")
    check_eq(len(steps), did["decode_calls"], "decode calls")
    check_eq(sum(s["n_tokens"] for s in steps), did["decode_tokens"], "decoded tokens")
    first = steps[0]["seqs"]
    check_eq([(r["seq"], r["n_tokens"], r["pos_first"], r["n_outputs"]) for r in first],
             [(0, did["prompt_tokens"][0], 0, 1), (1, did["prompt_tokens"][1], 0, 1)],
             "the first batch's runs")
    check(all(s["n_seqs"] == 2 for s in steps), "every batch carries both sequences")
    summary = tr.records("summary")[0]
    check_eq(summary["end_reason"], "target exited", "end reason")
    check_eq(summary["sampled_tokens"], did["sampled"], "sampled tokens")
    check_eq(summary["requests"], 0, "requests without an HTTP layer")


@test
def embedder_generations_match_its_own_count():
    """An embedder's generations, with llama.cpp's sampler and sampling on its own (as
    node-llama-cpp's addon does: never a llama_sampler_* call): one span per sequence,
    its prompt and output tokens equal to the program's own counts."""
    n_gen = 7
    for mode in (["own"], []):
        tr, did = run_embedder(n_gen, *mode)
        what = f"embedder {' '.join(mode) or 'with llama_sampler_sample'}"
        check_eq(tr.records("attach")[0]["layers"], "engine,sampling", f"{what}: layers")
        gens = [r for r in tr.records("request") if r["kind"] == "generation"]
        check_eq(sorted((g["seq"], g["prompt_tokens"], g["cached_tokens"], g["output_tokens"])
                        for g in gens),
                 [(0, did["prompt_tokens"][0], 0, n_gen), (1, did["prompt_tokens"][1], 0, n_gen)],
                 f"{what}: generations (seq, prompt, cached, output)")
        for g in gens:
            check_eq(g["attribution"], "engine", f"{what}: attribution")
            check(g["ttft_ns"] and g["ttft_ns"] > 0 and g["tpot_ns"] and g["tpot_ns"] > 0,
                  f"{what}: a generation's times {g}")
            check_eq(g["attributes"].get("gen_ai.usage.output_tokens"), n_gen,
                     f"{what}: gen_ai.usage.output_tokens")
        summary = tr.records("summary")[0]
        check_eq((summary["generations"], summary["requests"]), (2, 0), f"{what}: generations, requests")
        check_eq(summary["output_tokens"], did["sampled"], f"{what}: output tokens")
        check_eq(summary["sampled_tokens"], did["sampled"], f"{what}: sampled tokens")


def slot_history(tr, r, done):
    """For a failure's message: the requests llmtap placed on r's slot, with the server's counts
    (and the events llmtap lost, if any)."""
    lost = [s.get("lost_events") for s in tr.records("summary")]
    out = [dict(lost_events=lost)]
    for q in sorted(tr.records("request"), key=lambda q: q["start_unix_nano"]):
        if q["slot"] != r["slot"]:
            continue
        c = done.get(q["attributes"]["client.port"])
        out.append(dict(port=q["attributes"]["client.port"], complete=q["complete"], tasks=q["tasks"],
                        llmtap=(q["cached_tokens"], q["prompt_tokens"], q["output_tokens"]),
                        server=c and c.timings and (c.timings["cache_n"], c.timings["prompt_n"],
                                                    c.timings["predicted_n"]),
                        seed=(q["attributes"].get("gen_ai.request.seed"), c and c.body.get("seed")),
                        start_ms=round(q["start_unix_nano"] / 1e6 % 1e5, 3),
                        ttft_ms=q["ttft_ns"] and round(q["ttft_ns"] / 1e6, 3)))
    return out


@test
def attach_to_a_busy_server():
    """Requests in flight when llmtap attaches or detaches are left out, never miscounted."""
    with LlamaServer(np=2, ctx=4096) as srv:
        def request(k, i):
            return completion(srv, 3000 + 100 * k + i, 40, stream=(i % 2 == 1))

        with BackgroundLoad(request, 3) as load:
            time.sleep(1.0)
            tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
            time.sleep(2.0)
            check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")
    errors, done = load.errors, {c.port: c for c in load.results}
    check(not errors, f"client errors: {errors[:3]}")
    complete = [r for r in tr.records("request") if r["complete"]]
    check(len(complete) >= 3, f"only {len(complete)} complete requests traced")
    for r in complete:
        c = done.get(r["attributes"]["client.port"])
        check(c is not None, f"llmtap request on an unknown port: {r['attributes']}")
        t = c.timings
        # the seed is the client's own: a record matched to the wrong task would show another
        check_eq(r["attributes"].get("gen_ai.request.seed"), c.body["seed"],
                 f"seed of the request on port {c.port}; on its slot: {slot_history(tr, r, done)}")
        check_eq((r["cached_tokens"], r["prompt_tokens"], r["output_tokens"]),
                 (t["cache_n"], t["prompt_n"], t["predicted_n"]),
                 f"tokens of a request traced while the server was busy (port {c.port}); "
                 f"what llmtap saw on its slot, oldest first: {slot_history(tr, r, done)}")
    # at most the requests in flight at detach are cut short
    check(len(tr.records("request")) - len(complete) <= 3, "more cut-short requests than clients")


@test
def rerank_requests():
    """--rerank on the tiny model: pooled output without a classifier head, real token counts."""
    with LlamaServer(np=2, args=["--rerank"]) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        m0 = srv.metrics()
        calls = [Call(srv, "/v1/rerank", {"query": prompt(60 + i, 3),
                                          "documents": [prompt(70 + i, 4 + k) for k in range(1 + i)]})
                 for i in range(3)]
        m1 = srv.metrics()
        time.sleep(0.3)
        check_eq(tr.stop(), 0, "llmtap exit code")
    reqs = by_port(tr)
    for i, c in enumerate(calls):
        check_eq(c.status, 200, "rerank status")
        r = reqs[c.port]
        check_eq(r["endpoint"], "rerank", "endpoint")
        check_eq(r["attributes"]["gen_ai.operation.name"], "rerank", "gen_ai.operation.name")
        check_eq(r["tasks"], 1 + i, "one task per document")
        check_eq(r["attributes"]["gen_ai.usage.input_tokens"], c.usage["prompt_tokens"],
                 "input tokens vs usage.prompt_tokens")
    check_eq(sum(reqs[c.port]["prompt_tokens"] for c in calls),
             m1["prompt_tokens_total"] - m0["prompt_tokens_total"], "prompt tokens vs /metrics")


@test
def more_slots_than_one_record_holds():
    """-np 24: a generation step has more sequence runs than one BPF record carries (16);
    the step arrives in several records and every request is still exact."""
    with LlamaServer(np=24, ctx=8192) as srv:
        tr = Tracer(srv.pid).wait_attached()
        m0 = srv.metrics()
        calls = run_concurrently([lambda i=i: completion(srv, 5000 + i, 24, i % 2 == 1)
                                  for i in range(48)], 24)
        m1 = srv.metrics()
        time.sleep(0.3)
        check_eq(tr.stop(), 0, "llmtap exit code")
    steps = tr.records("step")
    check(max(len(s["seqs"]) for s in steps) > 16, "no step had more than 16 runs")
    check_eq(len(steps), m1["n_decode_total"] - m0["n_decode_total"], "steps (one per decode call)")
    check(all(sum(r["n_tokens"] for r in s["seqs"]) == s["n_tokens"] for s in steps),
          "a step's runs do not add up to its tokens")
    reqs = by_port(tr)
    for c in calls:
        r, t = reqs[c.port], c.timings
        check_eq((r["cached_tokens"], r["prompt_tokens"], r["output_tokens"]),
                 (t["cache_n"], t["prompt_n"], t["predicted_n"]), f"tokens of the request on port {c.port}")
