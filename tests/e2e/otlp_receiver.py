#!/usr/bin/python3
"""A scriptable OTLP/HTTP (protobuf) receiver for the end-to-end tests.

    rx = OtlpReceiver(script={"traces": [Reply(503, {"Retry-After": "1"})]}).start()
    ... point llmtap at rx.url() ...
    rx.wait_for("traces")
    rx.spans(), rx.metric_points("llm.requests")
    rx.stop()

The port is chosen in __init__ and bound by start(), so a test can hand rx.port to llmtap
before the collector is up, and stop() then start() it again on the same port. Bodies are
decoded by the OpenTelemetry project's own generated code (otlp_decode.js, installed by
tools/otlp-decoder.sh), one node process per decoded() call.

`python3 otlp_receiver.py --selfcheck` checks the receiver and decoder on bodies that the
OpenTelemetry package itself encodes. Only the Python standard library.
"""
import gzip
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SIGNALS = {"/v1/traces": "traces", "/v1/metrics": "metrics"}

Reply = namedtuple("Reply", "status headers delay body", defaults=(200, None, 0.0, None))
Reply.__doc__ = """What the receiver answers: status, extra headers (dict), seconds to wait
before answering (stop() cuts the wait short), body (bytes; None: an empty
Export*ServiceResponse for 2xx, a google.rpc.Status with a message otherwise)."""


class Request:
    """One request as received. headers has lowercase names; data is the body after gunzip
    (the body itself without Content-Encoding; None if it did not gunzip); status is what
    the receiver answered; t is time.monotonic() and wall time.time() at arrival."""

    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.signal = SIGNALS.get(path.split("?")[0])
        self.data, self.status = body, None
        self.t, self.wall = time.monotonic(), time.time()

    @property
    def accepted(self):
        return self.status is not None and 200 <= self.status < 300

    def __repr__(self):
        return f"<Request {self.method} {self.path} {self.status} {len(self.body)}B>"


def _read_body(rfile, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            size = int(rfile.readline().split(b";")[0], 16)
            if not size:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return out
            out += rfile.read(size + 2)[:size]
    return rfile.read(int(headers.get("content-length", 0)))


class OtlpReceiver:
    """script: what to answer each request that reaches a signal's path, either
    a dict signal -> list of replies, taken in order (200 once the list runs out), or
    a callable(signal, n, request) -> reply, n counting that signal's requests from 0.
    A reply is a Reply, a status int, or a (status, headers[, delay]) tuple; None is 200.
    The attribute can be changed while the receiver runs. Before the script, the receiver
    answers 404 to other paths, 405 to other methods, 415 to a Content-Type other than
    application/x-protobuf or a Content-Encoding other than gzip, 400 to a bad gzip body."""

    def __init__(self, port=None, script=None, tls=None):
        """tls: an ssl.SSLContext (server side) to serve https on "localhost" instead."""
        self.port = port or _free_port()
        self.script = script
        self.tls = tls
        self._log, self._lock = [], threading.Lock()
        self._server = self._thread = None
        self._stopping = threading.Event()
        self._conns = set()  # open connections, closed by stop() as a dead collector would

    def url(self, path=""):
        if self.tls:
            return f"https://localhost:{self.port}{path}"
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self):
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), self._handler())
        if self.tls:  # the handshake happens in the handler's thread, at its first read
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True,
                                                       do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Close the port and every open connection (new ones are then refused); what was
        received is kept."""
        if self._server:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            with self._lock:
                for sock in self._conns:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            self._thread.join()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def requests(self, signal=None, accepted_only=False):
        with self._lock:
            return [r for r in self._log if (signal is None or r.signal == signal)
                    and (r.accepted or not accepted_only)]

    def wait_for(self, signal, n=1, timeout=30, accepted_only=True):
        """Wait until n requests of signal (accepted ones by default) have been answered."""
        deadline = time.monotonic() + timeout
        while len(got := [r for r in self.requests(signal, accepted_only)
                          if r.status is not None]) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"OTLP receiver: {len(got)} {signal} requests after "
                                     f"{timeout}s, want {n}: {self.requests()}")
            time.sleep(0.05)
        return got

    def decoded(self, signal, strict=True):
        """The accepted bodies of signal ("traces", "metrics"), decoded, in arrival order."""
        return decode(signal, [r.data for r in self.requests(signal, accepted_only=True)], strict)

    def spans(self):
        return spans(self.decoded("traces"))

    def metric_points(self, name=None):
        return metric_points(self.decoded("metrics"), name)

    # -- the server side --

    def _answer(self, req):
        script = self.script
        if callable(script):
            n = sum(r.signal == req.signal for r in self.requests()) - 1
            reply = script(req.signal, n, req)
        else:
            with self._lock:
                queue = (script or {}).get(req.signal) or []
                reply = queue.pop(0) if queue else None
        if reply is None or isinstance(reply, int):
            return Reply(reply or 200)
        return reply if isinstance(reply, Reply) else Reply(*reply)

    def _handler(self):
        rx = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with rx._lock:
                    rx._conns.add(self.connection)

            def finish(self):
                with rx._lock:
                    rx._conns.discard(self.connection)
                super().finish()

            def do_POST(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                req = Request(self.command, self.path, headers, _read_body(self.rfile, headers))
                with rx._lock:
                    rx._log.append(req)
                encoding = headers.get("content-encoding", "identity").lower()
                if req.signal is None:
                    reply = Reply(404)
                elif self.command != "POST":
                    reply = Reply(405)
                elif (headers.get("content-type", "").split(";")[0].strip()
                      != "application/x-protobuf" or encoding not in ("gzip", "identity")):
                    reply = Reply(415)
                else:
                    reply = None
                    if encoding == "gzip":
                        try:
                            req.data = gzip.decompress(req.body)
                        except (OSError, EOFError):
                            req.data, reply = None, Reply(400)
                    reply = reply or rx._answer(req)
                if reply.delay:
                    rx._stopping.wait(reply.delay)
                body = reply.body
                if body is None:  # empty Export*ServiceResponse, or google.rpc.Status{message}
                    msg = f"llmtap test receiver: {reply.status}".encode()
                    body = b"" if 200 <= reply.status < 300 else b"\x12" + bytes([len(msg)]) + msg
                req.status = reply.status
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (reply.headers or {}).items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_DELETE = do_POST

            def log_message(self, *args):
                pass

        return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # a client hung up, or a TLS handshake failed (a test of a bad certificate): not news
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_decoder = []


def decoder_dir():
    """$LLMTAP_OTLP_DECODER, else what tools/otlp-decoder.sh installs (at once when cached)."""
    if not _decoder:
        d = os.environ.get("LLMTAP_OTLP_DECODER") or subprocess.run(
            [os.path.join(ROOT, "tools", "otlp-decoder.sh")], check=True,
            stdout=subprocess.PIPE, text=True).stdout.strip()
        _decoder.append(d)
    return _decoder[0]


def decode(signal, bodies, strict=True):
    """Decode raw protobuf bodies (bytes) of signal with one run of otlp_decode.js.
    strict: a field the decoder does not know fails (else it is skipped with a warning)."""
    if not bodies:
        return []
    with tempfile.TemporaryDirectory(prefix="otlp-") as tmp:
        names = []
        for i, body in enumerate(bodies):
            names.append(os.path.join(tmp, f"{i}.pb"))
            with open(names[-1], "wb") as f:
                f.write(body)
        p = subprocess.run(["node", os.path.join(HERE, "otlp_decode.js")] +
                           ["--strict"] * strict + [signal],
                           input="\n".join(names), capture_output=True, text=True,
                           env=dict(os.environ, LLMTAP_OTLP_DECODER=decoder_dir()))
    if p.returncode:
        raise AssertionError(f"otlp_decode.js {signal} failed: {p.stderr.strip()}")
    sys.stderr.write(p.stderr)
    return json.loads(p.stdout)


# -- flattening the decoded objects --

def any_value(v):
    """An AnyValue as Python: str, bool, int, float, bytes, list, dict; None when empty."""
    kind = (v or {}).get("value")
    if kind == "intValue":
        return int(v[kind])
    if kind == "doubleValue":
        return float(v[kind])  # also "NaN", "Infinity", "-Infinity"
    if kind == "bytesValue":
        return bytes.fromhex(v[kind])
    if kind == "arrayValue":
        return [any_value(x) for x in v[kind]["values"]]
    if kind == "kvlistValue":
        return attributes(v[kind]["values"])
    return v[kind] if kind else None


def attributes(kvs):
    """A list of KeyValue as a dict; a key twice (OTLP forbids it) raises ValueError."""
    out = {}
    for kv in kvs:
        if kv["key"] in out:
            raise ValueError(f"duplicate attribute key {kv['key']!r} in {kvs}")
        out[kv["key"]] = any_value(kv["value"])
    return out


def _scope(s):
    s = s or {"name": "", "version": "", "attributes": []}
    return {"name": s["name"], "version": s["version"], "attributes": attributes(s["attributes"])}


def _resource(r):
    return attributes(r["attributes"]) if r else {}


def _ints(d, *keys):
    for k in keys:
        if k in d:
            d[k] = [int(x) for x in d[k]] if isinstance(d[k], list) else int(d[k])
    return d


def spans(requests):
    """Every span of decoded ExportTraceServiceRequests: the span's own fields (camelCase, as
    decoded) with attributes as dicts, 64-bit integers as int, plus resource (attributes
    dict) and scope ({name, version, attributes})."""
    out = []
    for req in requests:
        for rs in req["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    s = dict(s, resource=_resource(rs["resource"]), scope=_scope(ss["scope"]),
                             attributes=attributes(s["attributes"]))
                    _ints(s, "startTimeUnixNano", "endTimeUnixNano")
                    s["events"] = [_ints(dict(e, attributes=attributes(e["attributes"])),
                                         "timeUnixNano") for e in s["events"]]
                    s["links"] = [dict(l, attributes=attributes(l["attributes"]))
                                  for l in s["links"]]
                    out.append(s)
    return out


def metric_points(requests, name=None):
    """Every data point of decoded ExportMetricsServiceRequests (of metric name, or all): the
    point's own fields (camelCase) with attributes as a dict and 64-bit integers as int, plus
    name, description, unit, type ("sum", "gauge", "histogram", ...), temporality and
    isMonotonic (None where the type has none), resource and scope. A number point's value
    is an int for asInt, a float for asDouble; a histogram's optional sum/min/max are None
    when absent."""
    out = []
    for req in requests:
        for rm in req["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    if name is not None and m["name"] != name:
                        continue
                    kind = m.get("data")
                    data = m[kind] if kind else {"dataPoints": []}
                    for p in data["dataPoints"]:
                        p = dict(p, attributes=attributes(p["attributes"]))
                        _ints(p, "startTimeUnixNano", "timeUnixNano", "count", "bucketCounts",
                              "asInt", "zeroCount")
                        if kind in ("sum", "gauge"):
                            p["value"] = {"asInt": p.get("asInt"), "asDouble": float(
                                p.get("asDouble", 0))}.get(p.get("value"))
                        if kind in ("histogram", "exponentialHistogram"):
                            for k in ("sum", "min", "max"):
                                p[k] = float(p[k]) if k in p else None
                        if "explicitBounds" in p:
                            p["explicitBounds"] = [float(x) for x in p["explicitBounds"]]
                        out.append(dict(p, name=m["name"], description=m["description"],
                                        unit=m["unit"], type=kind,
                                        temporality=data.get("aggregationTemporality"),
                                        isMonotonic=data.get("isMonotonic"),
                                        resource=_resource(rm["resource"]),
                                        scope=_scope(sm["scope"])))
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["--selfcheck"]:
        raise SystemExit(f"usage: {sys.argv[0]} --selfcheck")
    import otlp_selfcheck
    otlp_selfcheck.main()
