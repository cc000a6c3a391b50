"""End-to-end tests of router mode (issue 10): a llama-server started with --models-dir and
no model is a router. It starts a child llama-server per model when the model is first asked
for and proxies each request to it; it never decodes.

Two models in the directory: the tiny model as alpha.gguf and the same weights under another
general.name as beta.gguf. Under `llmtap daemon` and under `llmtap run`, every client request
is counted once, by the child that served it, with the tokens of the server's own `timings` in
its response and that child's model name; the router's copy of it is a proxy span.
`llmtap attach --pid ROUTER` says what the router is, and which children it has.
"""
import os
import re
import shutil
import signal
import tempfile
import time

import harness
from harness import LlamaServer, Tracer, check, check_eq, prompt, test, wait_until
from otlp_receiver import OtlpReceiver
from test_daemon import Remote, attached_pids, stop_all
from test_requests import Call, completion, sampling

# the router names a model by its file name; llmtap by its GGUF's general.name
GENERAL_NAME = {"alpha": "llmtap-tiny-llama", "beta": "llmtap-tiny-llama-b"}
SERVER_ARGS = ["--host", "127.0.0.1", "-np", "2", "-c", "2048", "-t", "1", "--metrics",
               "--no-webui"]


def models_dir():
    """A --models-dir with alpha.gguf and beta.gguf (links to the two tiny models)."""
    check(harness.MODEL_B and os.path.exists(harness.MODEL_B),
          "LLMTAP_MODEL_B (tools/make-model.sh --name llmtap-tiny-llama-b) is set")
    d = tempfile.mkdtemp(prefix="llmtap-models-")
    os.symlink(harness.MODEL, os.path.join(d, "alpha.gguf"))
    os.symlink(harness.MODEL_B, os.path.join(d, "beta.gguf"))
    return d


def ask(srv, i, model):
    """One request through the router to model: chat or text completion, streamed or not."""
    stream = i % 4 >= 2
    body = dict(sampling(i), model=model, max_tokens=3 + i % 4, ignore_eos=True, stream=stream)
    if i % 3 == 2:
        path, body["prompt"] = "/v1/completions", prompt(i, 9 + i % 5)
    else:
        path, body["messages"] = "/v1/chat/completions", [{"role": "user",
                                                           "content": prompt(i, 7 + i % 5)}]
    c = Call(srv, path, body)
    check_eq(c.status, 200, f"request {i} to {model} through the router ({c.error})")
    check(c.timings, f"request {i}: the child's timings came back through the router")
    c.model = model
    return c


def ask_both(srv, base, n=6):
    """n requests, alternating the two models (the first of each starts its child)."""
    return [ask(srv, base + i, ("alpha", "beta")[i % 2]) for i in range(n)]


def children_of(router):
    """The router's child processes now (its model servers), by their --alias."""
    out = {}
    for tid in os.listdir(f"/proc/{router}/task"):
        with open(f"/proc/{router}/task/{tid}/children") as f:
            for pid in f.read().split():
                with open(f"/proc/{pid}/cmdline", "rb") as c:
                    args = c.read().split(b"\0")
                if b"--alias" in args:
                    out[args[args.index(b"--alias") + 1].decode()] = int(pid)
    return out


def kill_tree(pid):
    """pid and its children (a router llmtap run started, if it outlived llmtap)."""
    try:
        kids = children_of(pid).values()
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass


def check_trace(tr, router, calls, children):
    """Every call once, by the child that served it, exactly; the router's copies are proxies."""
    reqs = tr.records("request")
    proxies = {r["attributes"]["client.port"]: r for r in reqs if r["pid"] == router}
    served = [r for r in reqs if r["pid"] != router]
    check_eq(sorted(r["pid"] for r in served if r["pid"] not in children.values()), [],
             "requests only from the router and its children")
    check_eq(len(served), len(calls), "requests counted (not the router's copies): one per call")
    for c in calls:
        p = proxies.get(c.port)
        check(p, f"the router's copy of the request on client port {c.port}")
        check_eq(p["kind"], "proxy", f"port {c.port}: the router's copy is a proxy span")
    check_eq(len(proxies), len([r for r in reqs if r["pid"] == router]),
             "the router traced no request twice")
    for model, pid in children.items():
        mine = sorted((r for r in served if r["pid"] == pid), key=lambda r: r["start_unix_nano"])
        theirs = [c for c in calls if c.model == model]
        check_eq(len(mine), len(theirs), f"requests child {model} (PID {pid}) served")
        for r, c in zip(mine, theirs):
            what = f"{model} request (client port {c.port})"
            check_eq(r["kind"], "http", f"{what}: counted by the child")
            t = c.timings
            check_eq(r["prompt_tokens"] + r["cached_tokens"], t["prompt_n"] + t.get("cache_n", 0),
                     f"{what}: input tokens")
            check_eq(r["cached_tokens"], t.get("cache_n", 0), f"{what}: cached tokens")
            check_eq(r["output_tokens"], t["predicted_n"], f"{what}: output tokens")
            check_eq(r["attributes"]["http.response.status_code"], 200, f"{what}: status")
            check_eq(r["stream"], c.stream, f"{what}: stream")


def check_models(tr, calls, children):
    """Each child's metrics carry its own model's name (from its GGUF), and count its calls."""
    for model, pid in children.items():
        summary = [s for s in tr.records("summary") if s["pid"] == pid]
        check(summary, f"child {model} (PID {pid}): a summary")
        named = {m["attributes"]["gen_ai.request.model"] for m in summary[0]["metrics"]
                 if "gen_ai.request.model" in m["attributes"]}
        check_eq(named, {GENERAL_NAME[model]}, f"child {model}: gen_ai.request.model")
        n = sum(m["value"] for m in summary[0]["metrics"]
                if m["name"] == "llmtap.inference.requests" and m["attributes"].get("model"))
        check_eq(n, len([c for c in calls if c.model == model]),
                 f"child {model}: llmtap.inference.requests by model")


def wait_requests(tr, n):
    wait_until(lambda: len(tr.records("request")) >= n, 20, f"{n} request records")
    time.sleep(0.5)  # nothing more may come


@test
def router_under_daemon_counts_each_request_once():
    """llmtap daemon: the router and the children it starts later, each request once. The
    daemon selects the router by its --port: its children, on loopback ports of its choosing,
    are traced with it."""
    rx = OtlpReceiver().start()
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=rx.url(), OTEL_BSP_SCHEDULE_DELAY="200")
    d = router = None
    mdir = models_dir()
    port = harness.free_port()
    try:
        d = Tracer(None, ["--no-steps", "--interval", "500ms", "--rescan", "200ms", "--port",
                          str(port)] + harness.own_selection(), env=env, command=["daemon"])
        router = LlamaServer(models_dir=mdir, port=port)
        wait_until(lambda: router.pid in attached_pids(d), 20, "the daemon to attach to the router")
        check(re.search(rf"PID {router.pid} is a router llama-server \(--models-dir {re.escape(mdir)}\)",
                        d.stderr_so_far()), f"the daemon says the router is one: {d.stderr_so_far()}")
        calls = ask_both(router, 100)
        children = children_of(router.pid)
        check_eq(set(children), {"alpha", "beta"}, "the router started a child per model")
        wait_until(lambda: set(children.values()) <= attached_pids(d), 10,
                   "the daemon to attach to both children")
        for model, pid in children.items():
            check(re.search(rf"attached to PID {pid} .*after its exec, held still while attaching",
                            d.stderr_so_far()), f"child {model} attached before its model load")
        wait_requests(d, 2 * len(calls))
        check_trace(d, router.pid, calls, children)
        check_eq(d.stop(signal.SIGTERM), 0, f"daemon exit code ({d.stderr()})")
        check_models(d, calls, children)
        # OTLP: the children's spans carry their model
        for model, pid in children.items():
            spans = [s for s in rx.spans() if s["kind"] == "SPAN_KIND_SERVER"
                     and str(s["resource"].get("process.pid")) == str(pid)]
            check_eq(len(spans), len([c for c in calls if c.model == model]),
                     f"child {model}: OTLP server spans")
            check_eq({s["attributes"].get("gen_ai.request.model") for s in spans},
                     {GENERAL_NAME[model]}, f"child {model}: the spans' gen_ai.request.model")
            check_eq(spans[0]["resource"].get("llmtap.model.name"), GENERAL_NAME[model],
                     f"child {model}: resource llmtap.model.name")
    finally:
        stop_all(d, router)
        rx.stop()
        shutil.rmtree(mdir)


@test
def router_under_run_follows_its_children():
    """llmtap run -- llama-server --models-dir DIR: the children it starts are traced too."""
    mdir = models_dir()
    port = harness.free_port()
    # the program's stdout is llmtap's: no server logs between (and inside) the JSON lines
    r = Tracer(None, ["--no-steps", "--", harness.SERVER_SHARED, "--models-dir", mdir,
                      "--port", str(port), "--log-disable"] + SERVER_ARGS, command=["run"])
    srv = Remote(port)
    router = None
    try:
        def healthy():
            check(r.proc.poll() is None, f"llmtap run exited: {r.stderr_so_far()}")
            try:
                return srv.get("/health")[0] == 200
            except OSError:
                return False
        wait_until(healthy, 60, "the router llmtap run started")
        router = r.records("attach")[0]["pid"]
        check(f"PID {router} is a router llama-server (--models-dir {mdir})" in r.stderr_so_far(),
              f"llmtap run says the program is a router: {r.stderr_so_far()}")
        calls = ask_both(srv, 200)
        children = children_of(router)
        check_eq(set(children), {"alpha", "beta"}, "the router started a child per model")
        wait_until(lambda: {a["pid"] for a in r.records("attach")} == {router, *children.values()},
                   10, "llmtap run to attach to the children")
        wait_requests(r, 2 * len(calls))
        check_trace(r, router, calls, children)
        loads = {l["pid"]: l["path"] for l in r.records("model_load") if l["ok"]}
        for model, pid in children.items():
            check_eq(loads.get(pid), os.path.join(mdir, f"{model}.gguf"),
                     f"child {model}: its model load traced")
        r.proc.send_signal(signal.SIGTERM)  # to the router, which stops its children
        check_eq(r.wait(30), 0, f"llmtap run's status is the router's ({r.stderr()})")
        check_models(r, calls, children)
        for pid in children.values():
            check(not os.path.exists(f"/proc/{pid}"), f"child {pid} exited with the router")
        ends = {s["pid"]: s["end_reason"] for s in r.records("summary")}
        check_eq(ends.get(router), "program exited with status 0", "the router's summary")
        check_eq(set(ends), {router, *children.values()}, "a summary per process")
    finally:
        if router:  # first: llmtap run then ends with it (and its stdout closes)
            kill_tree(router)
        stop_all(r)
        shutil.rmtree(mdir)


@test
def attach_to_a_router_says_what_it_is():
    """llmtap attach --pid ROUTER: a router, its children, how to trace them; proxy spans."""
    mdir = models_dir()
    router = tr = None
    try:
        router = LlamaServer(models_dir=mdir)
        first = ask(router, 300, "alpha")  # starts the alpha child
        child = children_of(router.pid)["alpha"]
        tr = Tracer(router.pid, ["--no-steps"]).wait_attached()
        # the attach record comes first (stdout), the router lines right after it (stderr)
        wait_until(lambda: "llmtap daemon" in tr.stderr_so_far(), 10, "the router lines")
        err = tr.stderr_so_far()
        for says in (f"PID {router.pid} is a router llama-server (--models-dir {mdir})",
                     f"its children: PID {child} (alpha)",
                     "llmtap attach --pid CHILD", "llmtap daemon",
                     'its requests are traced as proxy spans (kind "proxy")'):
            check(says in err, f"attach says {says!r}: {err}")
        calls = [ask(router, 301 + i, "alpha") for i in range(2)]
        wait_until(lambda: len(tr.records("request")) >= len(calls), 10, "the router's requests")
        check_eq(tr.stop(), 0, f"attach exit code ({tr.stderr()})")
        reqs = tr.records("request")
        check_eq(sorted(r["attributes"]["client.port"] for r in reqs),
                 sorted(c.port for c in calls), "the router's requests while attached")
        check_eq({r["kind"] for r in reqs}, {"proxy"}, "each a proxy span")
        check(first.port not in {r["attributes"]["client.port"] for r in reqs},
              "nothing from before the attach")
    finally:
        stop_all(tr, router)
        shutil.rmtree(mdir)


@test
def a_server_posing_as_a_router_is_counted_once_it_decodes():
    """A llama-server whose command line lost its -m (a preload library rewrites it) and
    that maps no model (--load-mode none) looks like a router when llmtap attaches; its
    first decode proves otherwise: every request is its own, with its tokens, none a proxy."""
    check(harness.HIDE_MODEL_ARG and os.path.exists(harness.HIDE_MODEL_ARG),
          "LLMTAP_HIDE_MODEL_ARG (tests/e2e/run.sh builds it) is set")
    srv = tr = None
    try:
        srv = LlamaServer(args=["--load-mode", "none"],
                          env=dict(os.environ, LD_PRELOAD=harness.HIDE_MODEL_ARG))
        with open(f"/proc/{srv.pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        check(b"-m" not in args and b"-x" in args, f"the server hides its -m: {args}")
        with open(f"/proc/{srv.pid}/maps") as f:
            check(".gguf" not in f.read(), "the server maps no model file")
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        check(f"PID {srv.pid} is a router llama-server (started without a model)"
              in tr.stderr_so_far(), f"taken for a router at first: {tr.stderr_so_far()}")
        calls = [completion(srv, 400 + i, 3 + i, i == 1) for i in range(3)]
        wait_until(lambda: len(tr.records("request")) >= len(calls), 10, "the requests")
        check(re.search(rf"PID {srv.pid} \(llama-server\) said it was a router llama-server "
                        r"\(started without a model\) but does engine work", tr.stderr_so_far()),
              f"llmtap says it is no router: {tr.stderr_so_far()}")
        check_eq(tr.stop(), 0, f"attach exit code ({tr.stderr()})")
        reqs = {r["attributes"]["client.port"]: r for r in tr.records("request")}
        check_eq(sorted(reqs), sorted(c.port for c in calls), "every request, once")
        for c in calls:
            r, t = reqs[c.port], c.timings
            check_eq(r["kind"], "http", f"port {c.port}: counted as the server's own, not a proxy")
            check_eq(r["prompt_tokens"] + r["cached_tokens"], t["prompt_n"] + t.get("cache_n", 0),
                     f"port {c.port}: input tokens")
            check_eq(r["output_tokens"], t["predicted_n"], f"port {c.port}: output tokens")
    finally:
        stop_all(tr, srv)
