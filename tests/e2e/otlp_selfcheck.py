"""Self-check of otlp_receiver.py and otlp_decode.js: `python3 otlp_receiver.py --selfcheck`.

The OpenTelemetry package's own generated code encodes sample requests (every AnyValue
kind, a Sum, a Gauge, a Histogram); they go to the receiver over HTTP with and without
gzip, and must come back from decoded()/spans()/metric_points() as the values put in.
"""
import contextlib
import gzip
import http.client
import io
import math
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import otlp_receiver
from otlp_receiver import OtlpReceiver, Reply, decode, decoder_dir

ENCODE_JS = r"""
const [dir, out] = process.argv.slice(2);
const c = require(dir + "/node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js")
  .opentelemetry.proto.collector;
const hex = (h) => Buffer.from(h, "hex");
const kv = (key, value) => ({ key, value });
const T0 = "1700000000000000000", T1 = "1700000060000000000";
const span = (id, parent, name, kind, attributes) => ({
  traceId: hex("0102030405060708090a0b0c0d0e0f10"), spanId: hex(id), parentSpanId: hex(parent),
  name, kind, startTimeUnixNano: "1700000000123456789", endTimeUnixNano: "1700000000987654321",
  attributes, events: [{ timeUnixNano: "1700000000200000000", name: "first_token",
                         attributes: [kv("n", { intValue: 1 })] }],
  status: { code: "STATUS_CODE_ERROR", message: "boom" },
});
const traces = { resourceSpans: [{
  resource: { attributes: [kv("service.name", { stringValue: "llama-server" }),
                           kv("process.pid", { intValue: 4242 })] },
  scopeSpans: [{ scope: { name: "llmtap", version: "0.1.0" }, spans: [
    span("a1a2a3a4a5a6a7a8", "", "llama.request", "SPAN_KIND_SERVER", [
      kv("s", { stringValue: "h\u00e9llo \u2603" }), kv("empty", { stringValue: "" }),
      kv("b", { boolValue: false }), kv("min", { intValue: "-9223372036854775808" }),
      kv("big", { intValue: "9007199254740993" }), kv("d", { doubleValue: 0.1 }),
      kv("nan", { doubleValue: NaN }), kv("ninf", { doubleValue: -Infinity }),
      kv("raw", { bytesValue: hex("0001feff") }),
      kv("arr", { arrayValue: { values: [{ intValue: 1 }, { stringValue: "a" }, { boolValue: true }] } }),
      kv("map", { kvlistValue: { values: [kv("k", { stringValue: "v" }), kv("n", { doubleValue: 2.5 })] } }),
      kv("none", {}),
    ]),
    span("c1c2c3c4c5c6c7c8", "a1a2a3a4a5a6a7a8", "llama.decode", "SPAN_KIND_INTERNAL", []),
  ] }],
}] };
const metrics = { resourceMetrics: [{
  resource: { attributes: [kv("service.name", { stringValue: "llama-server" })] },
  scopeMetrics: [{ scope: { name: "llmtap", version: "0.1.0" }, metrics: [
    { name: "llm.requests", unit: "{request}", description: "requests", sum: {
      aggregationTemporality: "AGGREGATION_TEMPORALITY_CUMULATIVE", isMonotonic: true, dataPoints: [
        { attributes: [kv("status", { stringValue: "ok" })], startTimeUnixNano: T0, timeUnixNano: T1,
          asInt: "9007199254740993" },
        { attributes: [kv("status", { stringValue: "error" })], startTimeUnixNano: T0, timeUnixNano: T1,
          asInt: "-5" }] } },
    { name: "llm.slots.busy", unit: "1", gauge: { dataPoints: [
        { timeUnixNano: T1, asDouble: 0.25 }, { timeUnixNano: T1, asDouble: 0 }] } },
    { name: "llm.ttft", unit: "s", histogram: {
      aggregationTemporality: "AGGREGATION_TEMPORALITY_DELTA", dataPoints: [
        { attributes: [kv("model", { stringValue: "tiny" })], startTimeUnixNano: T0, timeUnixNano: T1,
          count: "6", sum: 3.5, bucketCounts: ["1", "2", "3"], explicitBounds: [0.1, 1], min: 0.05, max: 2 },
        { startTimeUnixNano: T0, timeUnixNano: T1, count: "0", bucketCounts: ["0"] }] } },
  ] }],
}] };
for (const [file, Type, obj] of [["traces.pb", c.trace.v1.ExportTraceServiceRequest, traces],
                                 ["metrics.pb", c.metrics.v1.ExportMetricsServiceRequest, metrics]]) {
  const msg = Type.fromObject(obj);
  if (Type.verify(msg)) throw new Error(Type.verify(msg));
  require("fs").writeFileSync(out + "/" + file, Type.encode(msg).finish());
}
// A span with Span.flags (16) and a link with Link.flags (6), fields of OTLP 1.1 that the
// generated code lacks: their bytes put together by hand.
const Span = require(dir + "/node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js")
  .opentelemetry.proto.trace.v1.Span;
const { Writer } = require(dir + "/node_modules/protobufjs/minimal");
const field = (tag, bytes) => Writer.create().uint32(tag).bytes(bytes).finish();
const fixed32 = (tag, v) => Writer.create().uint32(tag).fixed32(v).finish();
const link = Span.Link.encode({ traceId: hex("0102030405060708090a0b0c0d0e0f10"),
                                spanId: hex("d1d2d3d4d5d6d7d8") }).finish();
const spanBytes = Buffer.concat([
  Span.encode(Span.fromObject(span("e1e2e3e4e5e6e7e8", "", "flagged", "SPAN_KIND_CLIENT", []))).finish(),
  field(13 << 3 | 2, Buffer.concat([link, fixed32(6 << 3 | 5, 0x300)])),
  fixed32(16 << 3 | 5, 0x101)]);
require("fs").writeFileSync(out + "/flagged.pb", field(1 << 3 | 2, field(2 << 3 | 2, field(2 << 3 | 2, spanBytes))));
"""


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def post(url, body, gz=False, ctype="application/x-protobuf", chunked=False, method="POST",
         headers=None):
    headers = dict({"Content-Type": ctype}, **(headers or {}))
    if gz:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    if chunked:
        host, port = url.split("/")[2].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request(method, "/" + url.split("/", 3)[3], body=iter([body[:7], body[7:]]),
                     headers=headers, encode_chunked=True)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def refused(rx):
    try:
        post(rx.url("/v1/traces"), b"")
    except urllib.error.URLError as e:
        return isinstance(e.reason, ConnectionRefusedError)
    return False


def main():
    t0 = time.monotonic()
    d = decoder_dir()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "encode.js"), "w") as f:
            f.write(ENCODE_JS)
        subprocess.run(["node", f.name, d, tmp], check=True)
        traces = open(os.path.join(tmp, "traces.pb"), "rb").read()
        metrics = open(os.path.join(tmp, "metrics.pb"), "rb").read()
        flagged = open(os.path.join(tmp, "flagged.pb"), "rb").read()

    # -- the HTTP side: script, validation, gzip, chunked, slow replies, down then up --
    rx = OtlpReceiver(script={"traces": [Reply(503, {"Retry-After": "1"})], "metrics": [400]})
    check(refused(rx), "port in use before start()")
    rx.start()
    s, h, _ = post(rx.url("/v1/traces"), traces, gz=True)
    eq((s, h.get("Retry-After")), (503, "1"), "first traces POST")
    s, _, body = post(rx.url("/v1/traces"), traces, gz=True)
    eq((s, body), (200, b""), "second traces POST")
    eq(post(rx.url("/v1/traces"), traces, chunked=True)[0], 200, "chunked traces POST")
    eq(post(rx.url("/v1/metrics"), metrics)[0], 400, "first metrics POST")
    eq(post(rx.url("/v1/metrics"), metrics)[0], 200, "second metrics POST")
    eq(post(rx.url("/v1/logs"), traces)[0], 404, "logs POST")
    eq(post(rx.url("/v1/traces"), traces, ctype="application/json")[0], 415, "JSON POST")
    eq(post(rx.url("/v1/traces"), traces)[0], 200, "script ran out: 200")
    eq(post(rx.url("/v1/traces"), b"nope", headers={"Content-Encoding": "gzip"})[0], 400,
       "bad gzip")
    eq(post(rx.url("/v1/traces"), b"", headers={"Content-Encoding": "zstd"})[0], 415, "zstd")
    eq(post(rx.url("/v1/traces"), b"", method="GET")[0], 405, "GET")

    rx.script = lambda signal, n, req: Reply(200, delay=0.5) if signal == "metrics" else 500
    t = time.monotonic()
    eq(post(rx.url("/v1/metrics"), metrics, gz=True)[0], 200, "slow metrics POST")
    check(time.monotonic() - t >= 0.5, "slow reply came too soon")
    eq(post(rx.url("/v1/traces"), traces)[0], 500, "callable script traces")
    keep, pb = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10), \
        {"Content-Type": "application/x-protobuf"}
    keep.request("POST", "/v1/metrics", body=metrics, headers=pb)
    eq(keep.getresponse().read(), b"", "keep-alive POST")
    rx.stop()
    check(refused(rx), "port still open after stop()")
    try:
        keep.request("POST", "/v1/metrics", body=metrics, headers=pb)
        keep.getresponse()
        raise AssertionError("a kept-alive connection outlived stop()")
    except (ConnectionError, http.client.RemoteDisconnected):
        pass
    rx.script = None
    rx.start()
    eq(post(rx.url("/v1/metrics"), metrics, gz=True)[0], 200, "metrics POST after restart")
    rx.wait_for("metrics", 4)
    rx.stop()

    eq([r.status for r in rx.requests("traces")],
       [503, 200, 200, 415, 200, 400, 415, 405, 500], "traces statuses")
    eq([r.status for r in rx.requests(None) if r.signal is None], [404], "other paths")
    eq([r.status for r in rx.requests("metrics")], [400, 200, 200, 200, 200], "metrics statuses")
    first = rx.requests("traces")[0]
    eq((first.headers["content-encoding"], first.data, gzip.decompress(first.body)),
       ("gzip", traces, traces), "recorded gzip request")
    check(all(r.data == traces for r in rx.requests("traces", accepted_only=True)), "traces data")
    check(rx.requests("traces")[1].t - first.t < 5 and first.wall > 1e9, "arrival times")

    # -- the decoded side --
    objs = rx.decoded("traces")
    eq(len(objs), 3, "decoded trace requests")
    spans = rx.spans()
    eq([s["name"] for s in spans], ["llama.request", "llama.decode"] * 3, "span names")
    s = spans[0]
    eq((s["traceId"], s["spanId"], s["parentSpanId"], s["kind"]),
       ("0102030405060708090a0b0c0d0e0f10", "a1a2a3a4a5a6a7a8", "", "SPAN_KIND_SERVER"), "ids")
    eq(spans[1]["parentSpanId"], "a1a2a3a4a5a6a7a8", "child's parent")
    eq(s["flags"], 0, "Span.flags absent")
    f = otlp_receiver.spans(decode("traces", [flagged]))
    eq([(x["name"], x["flags"], [(ln["spanId"], ln["flags"]) for ln in x["links"]]) for x in f],
       [("flagged", 0x101, [("d1d2d3d4d5d6d7d8", 0x300)])], "Span.flags and Link.flags")
    eq((s["startTimeUnixNano"], s["endTimeUnixNano"]), (1700000000123456789, 1700000000987654321),
       "span times")
    eq(s["resource"], {"service.name": "llama-server", "process.pid": 4242}, "resource")
    eq(s["scope"], {"name": "llmtap", "version": "0.1.0", "attributes": {}}, "scope")
    eq(s["status"], {"code": "STATUS_CODE_ERROR", "message": "boom"}, "status")
    eq(s["events"][0]["timeUnixNano"], 1700000000200000000, "event time")
    eq(s["events"][0]["attributes"], {"n": 1}, "event attributes")
    a = dict(s["attributes"])
    check(math.isnan(a.pop("nan")), "NaN attribute")
    eq(a, {"s": "h\u00e9llo \u2603", "empty": "", "b": False, "min": -2**63, "big": 2**53 + 1,
           "d": 0.1, "ninf": -math.inf, "raw": b"\x00\x01\xfe\xff", "arr": [1, "a", True],
           "map": {"k": "v", "n": 2.5}, "none": None}, "span attributes")
    check(type(a["b"]) is bool and type(a["d"]) is float, "attribute types")

    eq(len(rx.decoded("metrics")), 4, "decoded metrics requests")
    pts = rx.metric_points("llm.requests")
    eq(len(pts), 8, "llm.requests points")
    p = pts[0]
    eq({k: p[k] for k in ("type", "temporality", "isMonotonic", "unit", "description",
                          "attributes", "value", "startTimeUnixNano", "timeUnixNano")},
       {"type": "sum", "temporality": "AGGREGATION_TEMPORALITY_CUMULATIVE", "isMonotonic": True,
        "unit": "{request}", "description": "requests", "attributes": {"status": "ok"},
        "value": 2**53 + 1, "startTimeUnixNano": 1700000000000000000,
        "timeUnixNano": 1700000060000000000}, "sum point")
    eq(pts[1]["value"], -5, "negative asInt")
    g = rx.metric_points("llm.slots.busy")[:2]
    eq([(x["type"], x["temporality"], x["value"], type(x["value"])) for x in g],
       [("gauge", None, 0.25, float), ("gauge", None, 0.0, float)], "gauge points")
    h = rx.metric_points("llm.ttft")[:2]
    eq({k: h[0][k] for k in ("type", "temporality", "count", "sum", "bucketCounts",
                             "explicitBounds", "min", "max", "attributes")},
       {"type": "histogram", "temporality": "AGGREGATION_TEMPORALITY_DELTA", "count": 6,
        "sum": 3.5, "bucketCounts": [1, 2, 3], "explicitBounds": [0.1, 1.0], "min": 0.05,
        "max": 2.0, "attributes": {"model": "tiny"}}, "histogram point")
    eq((h[1]["count"], h[1]["sum"], h[1]["min"], h[1]["bucketCounts"], h[1]["explicitBounds"]),
       (0, None, None, [0], []), "histogram point without sum")
    eq(len(rx.metric_points()), 24, "all points")

    try:
        decode("traces", [traces, b"\x0a\xff"])
        raise AssertionError("a truncated body decoded")
    except AssertionError as e:
        check("1.pb" in str(e), f"decode error names the file: {e}")
    extra = traces + b"\x98\x06\x01"  # field 99, varint 1: unknown to the decoder
    try:
        decode("traces", [extra])
        raise AssertionError("an unknown field passed strict decoding")
    except AssertionError as e:
        check("unknown field 99 (wire type 0) of collector.trace.v1.ExportTraceServiceRequest"
              in str(e), f"unknown field error: {e}")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        eq(decode("traces", [extra], strict=False), decode("traces", [traces]), "non-strict decode")
    check("skipped unknown field 99" in err.getvalue(), f"non-strict warning: {err.getvalue()!r}")
    print(f"OK ({time.monotonic() - t0:.1f}s)")
