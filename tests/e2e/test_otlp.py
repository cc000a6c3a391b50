"""End-to-end tests of OTLP/HTTP export (issue: export).

llmtap exports to a scriptable receiver (otlp_receiver.py); every body is decoded by the
OpenTelemetry project's own generated protobuf code from npm (otlp_decode.js), never by
llmtap's. Token counts are checked against the server's own `timings`.
"""
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request

from harness import (LlamaServer, Tracer, check, check_eq, free_port, run_concurrently,
                     run_llmtap, test, wait_until)
from otlp_receiver import OtlpReceiver, Reply
from test_requests import chat, completion


def otlp_env(url, **extra):
    """The environment with OTEL_* variables of the test's choosing only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_METRIC_EXPORT_INTERVAL="1000",
               OTEL_BSP_SCHEDULE_DELAY="200")
    env.update(extra)
    return env


def final_counts(stderr):
    """llmtap's last OTLP line: (spans exported, points exported, spans dropped, points dropped,
    failed attempts)."""
    m = re.search(r"OTLP: (\d+) spans and (\d+) data points exported \(\d+ and \d+ requests\), "
                  r"(\d+) spans and (\d+) data points dropped, (\d+) failed attempts", stderr)
    check(m, f"no OTLP summary line in llmtap's stderr: {stderr}")
    return tuple(int(x) for x in m.groups())


def server_spans(spans):
    return [s for s in spans if s["kind"] == "SPAN_KIND_SERVER"]


def spans_by_port(spans):
    out = {}
    for s in server_spans(spans):
        port = s["attributes"]["client.port"]
        check(port not in out, f"two server spans for client port {port}")
        out[port] = s
    return out


def check_unique(spans):
    ids = [s["spanId"] for s in spans]
    check_eq(len(ids), len(set(ids)), "distinct span ids (a span sent twice?)")


@test
def otlp_spans_and_metrics_match_server():
    """gzip on; headers from OTEL_EXPORTER_OTLP_HEADERS; every span and point decoded by the
    OpenTelemetry project's decoder carries the server's own token counts."""
    with OtlpReceiver() as rx, LlamaServer(np=2) as srv:
        env = otlp_env(rx.url(), OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
                       OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme,authorization=Bearer%20s3cret",
                       OTEL_SERVICE_NAME="llama-prod")
        tr = Tracer(srv.pid, ["--no-steps"], env=env).wait_attached()
        jobs = [lambda i=i: (completion, chat)[i % 2](srv, 3000 + i, 4 + i % 5, i % 4 >= 2)
                for i in range(8)]
        calls = run_concurrently(jobs, 2)
        wait_until(lambda: len(server_spans(rx.spans())) >= 8, 20, "8 server spans")
        rx.wait_for("metrics", 2)
        check_eq(tr.stop(), 0, f"llmtap exit code ({tr.stderr()})")

    err = tr.stderr()
    spans_out, points_out, spans_dropped, points_dropped, failures = final_counts(err)
    check_eq((spans_dropped, points_dropped, failures), (0, 0, 0), "drops and failures")
    for r in rx.requests():
        check_eq(r.status, 200, f"receiver status of {r}")
        check_eq(r.headers.get("content-encoding"), "gzip", "Content-Encoding")
        check_eq(r.headers.get("x-tenant"), "acme", "x-tenant header")
        check_eq(r.headers.get("authorization"), "Bearer s3cret", "percent-decoded header")
        check(r.headers.get("user-agent", "").startswith("llmtap/"), "User-Agent")

    spans = rx.spans()
    check_unique(spans)
    check_eq(len(spans), spans_out, "spans decoded == spans llmtap says it exported")
    by_port = spans_by_port(spans)
    for c in calls:
        check_eq(c.status, 200, "client status")
        s = by_port.get(c.port)
        check(s, f"no server span for client port {c.port}")
        a, t = s["attributes"], c.timings
        what = f"span of port {c.port} ({c.path})"
        check_eq(s["name"], f"POST {c.path}", f"{what}: name")
        check_eq(a["gen_ai.usage.input_tokens"], t["prompt_n"] + t.get("cache_n", 0),
                 f"{what}: input tokens")
        check_eq(a["gen_ai.usage.output_tokens"], t["predicted_n"], f"{what}: output tokens")
        check_eq(a["gen_ai.usage.cache_read.input_tokens"], t.get("cache_n", 0), f"{what}: cached")
        check_eq(a["http.response.status_code"], 200, f"{what}: status")
        check_eq(a["http.request.method"], "POST", f"{what}: method")
        check_eq(a["gen_ai.operation.name"], "chat" if "chat" in c.path else "text_completion",
                 f"{what}: operation")
        check_eq(a["gen_ai.request.stream"], c.stream, f"{what}: stream")
        check_eq(a["gen_ai.request.top_k"], c.body["top_k"], f"{what}: top_k")
        check_eq(a["gen_ai.request.top_p"], c.body["top_p"], f"{what}: top_p")
        check_eq(a["gen_ai.request.temperature"], c.body["temperature"], f"{what}: temperature")
        check_eq(a["gen_ai.request.seed"], c.body["seed"], f"{what}: seed")
        check_eq(s["resource"]["service.name"], "llama-prod", "OTEL_SERVICE_NAME")
        check_eq(s["resource"]["process.pid"], srv.pid, "process.pid")
        check_eq(s["scope"]["name"], "llmtap", "scope")
        check(s["endTimeUnixNano"] > s["startTimeUnixNano"], f"{what}: duration")
        kids = {k["name"]: k for k in spans if k["parentSpanId"] == s["spanId"]}
        for name in ("prefill", "generation"):
            k = kids.get(name)
            check(k, f"{what}: no {name} child")
            check_eq(k["traceId"], s["traceId"], f"{what}: {name} trace")
            check(s["startTimeUnixNano"] <= k["startTimeUnixNano"] <= k["endTimeUnixNano"]
                  <= s["endTimeUnixNano"], f"{what}: {name} inside its request")
        check_eq(kids["generation"]["attributes"]["gen_ai.usage.output_tokens"], t["predicted_n"],
                 f"{what}: generation's tokens")

    reqs = rx.metric_points("llmtap.inference.requests")
    check(reqs and all(p["temporality"] == "AGGREGATION_TEMPORALITY_CUMULATIVE" and p["isMonotonic"]
                       for p in reqs), "llmtap.inference.requests: cumulative monotonic sums")
    series = {}
    for p in reqs:  # a cumulative series keeps its start and never goes down
        key = tuple(sorted(p["attributes"].items()))
        prev = series.get(key)
        if prev:
            check_eq(p["startTimeUnixNano"], prev["startTimeUnixNano"], "cumulative start time")
            check(p["value"] >= prev["value"], "cumulative value went down")
        series[key] = p
    last_t = max(p["timeUnixNano"] for p in reqs)
    check_eq(sum(p["value"] for p in reqs if p["timeUnixNano"] == last_t), len(calls),
             "llmtap.inference.requests at the last export")
    usage = [p for p in rx.metric_points("gen_ai.client.token.usage")
             if p["attributes"].get("gen_ai.token.type") == "output"]
    last_usage = [p for p in usage if p["timeUnixNano"] == max(q["timeUnixNano"] for q in usage)]
    check_eq(sum(p["sum"] for p in last_usage), float(sum(c.timings["predicted_n"] for c in calls)),
             "output tokens sum (every series at the last export)")
    for p in last_usage:
        check_eq(p["type"], "histogram", "token usage type")
        check_eq(sum(p["bucketCounts"]), p["count"], "bucket counts add up")
        check_eq(len(p["bucketCounts"]), len(p["explicitBounds"]) + 1, "bucket count")
    dur = rx.metric_points("http.server.request.duration")
    last_dur = [p for p in dur if p["timeUnixNano"] == max(q["timeUnixNano"] for q in dur)]
    check_eq(sum(p["count"] for p in last_dur), len(calls), "http.server.request.duration count")
    ok = [p for p in rx.metric_points("otel.sdk.exporter.span.exported") if not p["attributes"]]
    check(ok and max(p["value"] for p in ok) > 0, "llmtap's own exported-span counter")


@test
def otlp_retries_503_once_and_drops_400():
    """503 with Retry-After: 1, then 200: the batch arrives exactly once, after the wait.
    400: not retried, its spans counted as dropped."""
    with LlamaServer(np=1) as srv:
        with OtlpReceiver(script={"traces": [Reply(503, {"Retry-After": "1"})]}) as rx:
            tr = Tracer(srv.pid, ["--no-steps"], env=otlp_env(rx.url(), OTEL_METRICS_EXPORTER="none")
                        ).wait_attached()
            calls = [completion(srv, 3100 + i, 3, False) for i in range(3)]
            wait_until(lambda: len(server_spans(rx.spans())) >= 3, 20, "3 server spans")
            time.sleep(0.5)
            check_eq(tr.stop(), 0, "llmtap exit code")
        posts = rx.requests("traces")
        check_eq(posts[0].status, 503, "first POST")
        check_eq(posts[1].status, 200, "second POST")
        check_eq(posts[1].data, posts[0].data, "the retried body is the same batch")
        check(posts[1].t - posts[0].t >= 0.9, f"Retry-After: 1 honoured "
              f"(retried after {posts[1].t - posts[0].t:.2f}s)")
        check_eq(rx.requests("metrics"), [], "OTEL_METRICS_EXPORTER=none: no metrics")
        spans = rx.spans()
        check_unique(spans)
        by_port = spans_by_port(spans)
        check_eq(sorted(by_port), sorted(c.port for c in calls), "each request exactly once")
        exported, _, dropped, _, failures = final_counts(tr.stderr())
        check_eq((exported, dropped, failures), (len(spans), 0, 1), "exported, dropped, failures")
        check("failed: HTTP 503" in tr.stderr() and "works again" in tr.stderr(),
              f"the failure and the recovery are told: {tr.stderr()}")

        with OtlpReceiver(script={"traces": [400]}) as rx:
            tr = Tracer(srv.pid, ["--no-steps"], env=otlp_env(rx.url(), OTEL_METRICS_EXPORTER="none")
                        ).wait_attached()
            completion(srv, 3200, 3, False)
            rx.wait_for("traces", 1, accepted_only=False)
            time.sleep(2.5)  # a retry would come within the backoff's first 1.2 s
            check_eq(tr.stop(), 0, "llmtap exit code")
        check_eq([r.status for r in rx.requests("traces")], [400], "a 400 is not retried")
        exported, _, dropped, _, failures = final_counts(tr.stderr())
        check_eq((exported, failures), (0, 1), "exported, failures after a 400")
        check(dropped >= 3, f"the rejected batch's spans are counted as dropped ({dropped})")


@test
def otlp_final_flush_keeps_its_deadline():
    """A collector that never answers: SIGTERM ends llmtap within LLMTAP_OTLP_FLUSH_TIMEOUT,
    the target untouched, and the spans still in flight are counted as dropped."""
    with LlamaServer(np=1) as srv, OtlpReceiver(script=lambda sig, n, req: Reply(200, delay=60)) as rx:
        tr = Tracer(srv.pid, ["--no-steps"], env=otlp_env(
            rx.url(), LLMTAP_OTLP_FLUSH_TIMEOUT="2s", OTEL_METRICS_EXPORTER="none")).wait_attached()
        completion(srv, 3900, 3, False)
        wait_until(lambda: rx.requests("traces"), 10, "a traces POST in flight")
        t0 = time.monotonic()
        check_eq(tr.stop(signal.SIGTERM), 0, "llmtap exit code")
        took = time.monotonic() - t0
        check(took < 4.5, f"llmtap took {took:.1f}s to stop with a 2s flush deadline")
        check_eq(srv.get("/health")[0], 200, "the server is untouched")
        exported, _, dropped, _, _ = final_counts(tr.stderr())
        check_eq(exported, 0, "nothing acknowledged")
        check(dropped >= 3, f"the unacknowledged spans are counted as dropped ({dropped})")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def prom_value(port, metric, **labels):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric + "{") and not line.startswith(metric + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@test
def otlp_collector_down_then_up():
    """The collector is down for the first 16 requests: llmtap keeps tracing, its memory stays
    bounded, every span is either exported or counted as dropped; once the collector is up,
    new data arrives."""
    rx = OtlpReceiver()  # its port is handed out, nothing listens yet
    prom = free_port()
    # 16 spans of queue: the 16 requests (4 spans each with their cache saves) overflow it
    # while the collector is down; sequential requests once it is up never do
    env = otlp_env(rx.url(), OTEL_BSP_MAX_QUEUE_SIZE="16", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4",
                   OTEL_BSP_SCHEDULE_DELAY="100", OTEL_METRIC_EXPORT_INTERVAL="500",
                   LLMTAP_OTLP_RETRY_MAX="2s")
    with LlamaServer(np=1) as srv:
        tr = Tracer(srv.pid, ["--no-steps", "--prometheus", f"127.0.0.1:{prom}"], env=env
                    ).wait_attached()
        rss0 = rss_kib(tr.proc.pid)
        down = [completion(srv, 3300 + i, 3, False) for i in range(16)]
        wait_until(lambda: len(tr.records("request")) >= 16, 10, "llmtap to trace 16 requests")
        time.sleep(1.5)
        rss_down = rss_kib(tr.proc.pid)
        full = prom_value(prom, "otel_sdk_exporter_span_exported_total", error_type="queue_full")
        failed = prom_value(prom, "llmtap_otlp_export_failures_total", signal="traces")
        check(full > 0, "spans dropped on a full queue are counted (Prometheus)")
        check(failed > 0, "failed export attempts are counted (Prometheus)")
        check(rss_down < 64 * 1024, f"llmtap's memory with the collector down: {rss_down} KiB")
        rx.start()
        wait_until(lambda: "works again" in tr.stderr_so_far(), 20,
                   "llmtap to find the collector back")
        up = [completion(srv, 3400 + i, 3, False) for i in range(4)]
        wait_until(lambda: set(c.port for c in up) <= set(spans_by_port(rx.spans())), 20,
                   "the requests made after the collector came back")
        check_eq(tr.stop(), 0, "llmtap exit code")
        rx.stop()
    print(f"    llmtap RSS: {rss0} KiB at attach, {rss_down} KiB with the collector down")
    check_eq(len(tr.records("request")), len(down) + len(up), "requests llmtap traced")
    spans = rx.spans()
    check_unique(spans)
    exported, _, dropped, _, _ = final_counts(tr.stderr())
    produced = sum(1 + len(r["children"]) for r in tr.records("request")) + \
        len([r for r in tr.records() if r["type"] in ("context_shift", "cache_save", "cache_load",
                                                       "model_load", "context_init")])
    check_eq(len(spans), exported, "spans received == spans llmtap exported")
    check(dropped > 0, "spans were dropped while the collector was down")
    check_eq(exported + dropped, produced, "every span exported or counted as dropped")


@test
def otlp_sampler_delta_and_switches():
    """always_off sends no spans but metrics; traceidratio keeps whole traces, some of them;
    delta temporality adds up to the request count; OTEL_SDK_DISABLED and bad settings."""
    with LlamaServer(np=2) as srv:
        with OtlpReceiver() as rx:
            tr = Tracer(srv.pid, ["--no-steps"], env=otlp_env(
                rx.url(), OTEL_TRACES_SAMPLER="always_off",
                OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta")).wait_attached()
            for i in range(6):
                completion(srv, 3500 + i, 2, False)
                time.sleep(0.4)
            time.sleep(1.2)
            check_eq(tr.stop(), 0, "llmtap exit code")
        check_eq(rx.requests("traces"), [], "always_off: no spans")
        reqs = rx.metric_points("llmtap.inference.requests")
        check(reqs and all(p["temporality"] == "AGGREGATION_TEMPORALITY_DELTA" for p in reqs),
              "delta sums")
        check(len({p["timeUnixNano"] for p in reqs}) >= 2, "deltas over several exports")
        check_eq(sum(p["value"] for p in reqs), 6.0, "delta points add up to the requests")
        ttft = rx.metric_points("gen_ai.server.time_to_first_token")
        check_eq(sum(p["count"] for p in ttft), 6, "delta histogram counts add up")

        with OtlpReceiver() as rx:
            tr = Tracer(srv.pid, ["--no-steps", "--otlp-sampler", "traceidratio=0.5"],
                        env=otlp_env(rx.url(), OTEL_TRACES_SAMPLER="always_on")).wait_attached()
            calls = run_concurrently([lambda i=i: completion(srv, 3600 + i, 2, False)
                                      for i in range(30)], 2)
            time.sleep(1)
            check_eq(tr.stop(), 0, "llmtap exit code")
        spans = rx.spans()
        kept = spans_by_port(spans)
        check(0 < len(kept) < len(calls), f"traceidratio=0.5 kept {len(kept)} of {len(calls)}")
        for s in kept.values():  # a sampled trace is whole
            check(any(k["parentSpanId"] == s["spanId"] and k["name"] == "generation" for k in spans),
                  "a sampled request keeps its children")
        check({s["traceId"] for s in spans if s["parentSpanId"]} <=
              {s["traceId"] for s in kept.values()}, "no child without its request")

        with OtlpReceiver() as rx:
            tr = Tracer(srv.pid, ["--no-steps"], env=otlp_env(rx.url(), OTEL_SDK_DISABLED="true")
                        ).wait_attached()
            completion(srv, 3700, 2, False)
            time.sleep(1.5)
            check_eq(tr.stop(), 0, "llmtap exit code")
            check_eq(rx.requests(), [], "OTEL_SDK_DISABLED=true: nothing sent")
            check("OTLP" not in tr.stderr(), "OTEL_SDK_DISABLED: no OTLP exporter started")

        for env, flags, says in [
                (dict(OTEL_EXPORTER_OTLP_PROTOCOL="grpc"), [], "not supported"),
                (dict(OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318"), [], "not an http"),
                (dict(OTEL_TRACES_SAMPLER="sometimes"), [], "unknown sampler"),
                (dict(OTEL_EXPORTER_OTLP_ENDPOINT=""), ["--otlp-compression", "gzip"],
                 "need somewhere to send")]:
            full = otlp_env("http://127.0.0.1:9", **env)
            rc, _, err = run_llmtap(["attach", "-p", str(srv.pid), "-d", "1s"] + flags, env=full)
            check_eq(rc, 1, f"exit code with {env} {flags}")
            check(says in err and err.count("\n") == 1, f"one clear line for {env}: {err!r}")


def make_certs(d):
    """A CA, a server certificate for localhost and a client certificate, with openssl."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=d, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=llmtap test CA")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={'localhost' if name == 'server' else 'llmtap'}")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost\n" if name == "server" else
                    "extendedKeyUsage=clientAuth\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")


@test
def otlp_over_tls_with_client_certificate():
    """https with a private CA (OTEL_EXPORTER_OTLP_CERTIFICATE) and mutual TLS (--otlp-client-*);
    without the CA the export fails, is told once, and its spans are counted as dropped."""
    d = tempfile.mkdtemp(prefix="llmtap-tls-")
    try:
        make_certs(d)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
        ctx.load_verify_locations(os.path.join(d, "ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        with LlamaServer(np=1) as srv, OtlpReceiver(tls=ctx) as rx:
            env = otlp_env(rx.url(), OTEL_EXPORTER_OTLP_CERTIFICATE=os.path.join(d, "ca.pem"))
            tr = Tracer(srv.pid, ["--no-steps", "--otlp-client-cert", os.path.join(d, "client.pem"),
                                  "--otlp-client-key", os.path.join(d, "client.key")],
                        env=env).wait_attached()
            c = completion(srv, 3800, 3, False)
            wait_until(lambda: c.port in spans_by_port(rx.spans()), 20, "the span over TLS")
            check_eq(tr.stop(), 0, "llmtap exit code")
            check_eq(final_counts(tr.stderr())[2:], (0, 0, 0), "no drops over TLS")

            n = len(rx.requests())
            tr = Tracer(srv.pid, ["--no-steps"], env=otlp_env(rx.url(), LLMTAP_OTLP_FLUSH_TIMEOUT="2s")
                        ).wait_attached()  # the system's CA store does not know the test CA
            completion(srv, 3801, 3, False)
            time.sleep(1.5)
            check_eq(tr.stop(), 0, "llmtap exit code")
            check_eq(len(rx.requests(accepted_only=True)),
                     len([r for r in rx.requests()[:n] if r.accepted]), "nothing accepted")
            err = tr.stderr()
            check("certificate" in err.lower(), f"the TLS failure is told: {err}")
            check(final_counts(err)[2] >= 3, "its spans are counted as dropped")
    finally:
        shutil.rmtree(d, ignore_errors=True)
