"""End-to-end tests of the C++ layers' self-check (user/model/layercheck.c, issue 10).

A layer whose records do not fit the traced llama.cpp is turned off with one warning that
names the build; on today's llama.cpp no check fires, whatever the load.
"""
import json
import os
import socket
import subprocess
import time

import harness
from harness import LlamaServer, Tracer, check, check_eq, prompt, run_concurrently, test
from test_requests import Call, by_port, completion, chat

# llama.cpp b7698 (node-llama-cpp 3.15.0): llama-server's server_slot has its llama_context
# at +64, where llmtap's SERVER_SLOT_CTX (+8, b8390 and later) reads batch_spec instead.
B7698_NODE_LLAMA_CPP = "3.15.0"
COMPAT_CACHE = os.environ.get("LLMTAP_COMPAT_CACHE", "/var/cache/llmtap-compat")


def b7698_server():
    """The b7698 llama-server (shared): $LLAMA_SERVER_B7698, else tools/build-llama.sh's
    (cached in LLMTAP_COMPAT_CACHE, built there the first time)."""
    path = os.environ.get("LLAMA_SERVER_B7698")
    if path:
        return path
    env = dict(os.environ, NODE_LLAMA_CPP_VERSION=B7698_NODE_LLAMA_CPP, LLMTAP_CACHE=COMPAT_CACHE)
    out = subprocess.run([os.path.join(harness.ROOT, "tools", "build-llama.sh"), "shared"],
                         capture_output=True, text=True, env=env, timeout=1800)
    check(out.returncode == 0, f"building llama.cpp b7698 failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def warnings(tracer):
    return [l for l in tracer.stderr().splitlines() if "does not fit" in l]


def raw_request(port, head):
    """Send a request head as it is (what a client may send); the status code answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode())
        status = s.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status.split()[1])


@test
def a_layer_that_does_not_fit_is_turned_off_once():
    """llama.cpp b7698: the server layer reads each slot's context at +8 (b8390 on), which
    is not the context there. That context is only needed to tell a draft model's apart:
    with a draft model (two contexts) llmtap warns once within the first requests, naming
    the build, says so in the JSON output and stops believing the layer; the other layers
    stay on. (Without a draft model the layer stays on, exact: make compat's b7698 row.)"""
    with LlamaServer(b7698_server(), np=2, args=["-md", harness.MODEL]) as srv:
        build_info = json.loads(srv.get("/props")[1])["build_info"]
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        attach = tr.records("attach")[0]
        check_eq(attach["layers"], "engine,sampling,server,http", "layers attached on b7698")
        check(attach["llama_cpp"].startswith(build_info),
              f"attach record's llama_cpp {attach['llama_cpp']!r} vs the server's {build_info}")
        for i in range(8):
            completion(srv, 700 + i, 6, i % 2 == 1)
        time.sleep(0.3)
        check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")

    warned = warnings(tr)
    check_eq(len(warned), 1, f"warnings about a layer (stderr: {tr.stderr()})")
    want = (f"llmtap: PID {srv.pid}: the server layer does not fit llama.cpp {attach['llama_cpp']} "
            f"(a slot's context was never seen decoding")
    check(warned[0].startswith(want), f"the warning: {warned[0]!r}, want it to begin {want!r}")

    offs = tr.records("layer_off")
    # the draft context may decode before the strikes (the plain reason) or after them
    reasons = ("a slot's context was never seen decoding",
               "a slot's context was never seen decoding, and a second context decodes")
    check(len(offs) == 1 and offs[0]["reason"] in reasons, f"layer_off records: {offs}")
    check_eq([(o["layer"], o["llama_cpp"], o["layers"]) for o in offs],
             [("server", attach["llama_cpp"], "engine,sampling,http")], "layer_off records")
    check(warned[0].startswith(want + offs[0]["reason"][len(reasons[0]):] + "); turned off: "),
          f"the warning {warned[0]!r} gives the record's reason")
    # caught within its first few requests: at the third (LAYERCHECK_STRIKES) at the latest
    kinds = [r["type"] for r in tr.records() if r["type"] in ("request", "layer_off")]
    check(kinds.index("layer_off") <= 2, f"the layer went off only after: {kinds}")
    check_eq(kinds.count("request"), 8, "requests traced")
    check_eq(tr.records("summary")[0]["layers"], "engine,sampling,http", "summary's layers")


def send_mixed_load(srv):
    """What a busy llama-server sees: concurrent completions and chats, streamed and not,
    an error, and requests whose heads a client chose."""
    calls = run_concurrently([lambda i=i: (completion, chat)[i % 2](srv, 800 + i, 6 + i % 11,
                                                                       (i // 2) % 2 == 1)
                              for i in range(12)], 4)
    # a prompt longer than a slot's context: the server's send_error, with its type
    too_long = Call(srv, "/completion", {"prompt": prompt(900, 3000), "n_predict": 4})
    check(too_long.status >= 400, f"a prompt over the context answered {too_long.status}")
    check_eq(raw_request(srv.port, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), 200, "OPTIONS *")
    for head in ("GET health HTTP/1.1\r\nHost: x\r\n\r\n",
                 "GET http://example.com/health HTTP/1.1\r\nHost: x\r\n\r\n",
                 "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"):
        check_eq(raw_request(srv.port, head), 404, f"status of {head.splitlines()[0]!r}")
    for _ in range(3):
        check_eq(srv.get("/health")[0], 200, "GET /health")
        srv.metrics()
    return calls, too_long


@test
def no_layer_is_turned_off_on_todays_llama_cpp():
    """Today's llama.cpp with a draft model (two contexts, the draft re-decoding the target's
    batches) under a mixed load: no check fires, and the server's numbers are llmtap's."""
    args = ["-md", harness.MODEL, "--spec-type", "draft-simple", "--spec-draft-n-max", "4"]
    with LlamaServer(np=2, ctx=2048, args=args) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        layers = tr.records("attach")[0]["layers"]
        check_eq(layers, "engine,sampling,server,http", "layers attached")
        calls, too_long = send_mixed_load(srv)
        time.sleep(0.3)
        check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")

    check_eq(warnings(tr), [], "warnings about a layer")
    check_eq(tr.records("layer_off"), [], "layer_off records")
    check_eq(tr.records("summary")[0]["layers"], layers, "summary's layers")
    reqs = by_port(tr)
    for c in calls:  # every layer believed: the server's own accounting, request by request
        r, t = reqs[c.port], c.timings
        check_eq((r["prompt_tokens"], r["output_tokens"]), (t["prompt_n"], t["predicted_n"]),
                 f"tokens of the request on port {c.port}")
    check(any(c.timings.get("draft_n", 0) > 0 for c in calls), "the draft model drafted nothing")
    message = reqs[too_long.port]["attributes"].get("llmtap.error.message", "")
    check("context size" in message, f"the server's error on the request: {message!r}")
