"""End-to-end tests of `llmtap daemon` (issue: node-wide daemon).

Three real llama-servers: one plain, one in its own mount and PID namespace whose binary and
libraries exist only at a path the host does not have (like a container), one started after
the daemon. Every request is matched to the daemon's JSON record by the client's TCP port and
checked against the server's own `timings`; OTLP carries each process under its own resource.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import harness
from harness import LlamaServer, Tracer, check, check_eq, test, wait_until
from otlp_receiver import OtlpReceiver, Reply, decode, metric_points
from test_requests import by_port, chat, completion

CTR_DIR = "/mnt/llmtap-ctr"  # exists only inside the namespaced server's mount namespace


def daemon(args=(), env=None):
    """The daemon, on the llama-servers of this test only (its cgroup: not the host's others)."""
    return Tracer(None, ["--no-steps", "--interval", "500ms"] + harness.own_selection() + list(args),
                  env=env, command=["daemon"])


def attached_pids(d):
    return {int(m) for m in re.findall(r"attached to PID (\d+)", d.stderr_so_far())}


def detached_pids(d):
    return {int(m) for m in re.findall(r"detached from PID (\d+)", d.stderr_so_far())}


def namespaced_server():
    """llama-server in new mount and PID namespaces, run from CTR_DIR (a tmpfs inside the
    namespace with the build bind-mounted into it): its maps name files the host lacks."""
    build = os.path.dirname(harness.SERVER_SHARED)
    script = (f"mount -t tmpfs tmpfs /mnt && mkdir -p {CTR_DIR} && "
              f"mount --bind {build} {CTR_DIR} && "
              f"LD_LIBRARY_PATH={CTR_DIR} exec {CTR_DIR}/llama-server \"$@\"")
    return LlamaServer(binary="", prefix=["unshare", "--mount", "--pid", "--fork", "--mount-proc",
                                          "--propagation", "private", "sh", "-c", script, "sh"])


def server_pid(srv):
    """The llama-server process itself (under unshare and sh, for the namespaced one)."""
    def find():
        out = subprocess.run(["pgrep", "-s", str(srv.proc.pid), "-x", "llama-server"],
                             capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None
    wait_until(find, 10, "the llama-server process")
    return find()


def stop_all(d, *servers):
    """The finally of every test here: the daemon (or run) first, then the servers left."""
    if d and d.proc.poll() is None:
        d.stop(signal.SIGKILL)
    for srv in servers:
        if srv and srv.proc.poll() is None:
            srv.stop()


def check_calls(calls, reqs, pid):
    for c in calls:
        r = reqs.get(c.port)
        check(r, f"no daemon record for client port {c.port} (server PID {pid})")
        what = f"PID {pid} port {c.port}"
        check_eq(r["pid"], pid, f"{what}: pid")
        check_eq(r["prompt_tokens"] + r["cached_tokens"], c.timings["prompt_n"] + c.timings.get("cache_n", 0),
                 f"{what}: input tokens")
        check_eq(r["cached_tokens"], c.timings.get("cache_n", 0), f"{what}: cached tokens")
        check_eq(r["output_tokens"], c.timings["predicted_n"], f"{what}: output tokens")
        check_eq(r["attributes"]["http.response.status_code"], 200, f"{what}: status")


@test
def daemon_traces_three_servers_each_under_its_own_resource():
    check(not os.path.exists(CTR_DIR), f"{CTR_DIR} must not exist on the host")
    rx = OtlpReceiver().start()
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=rx.url(), OTEL_METRIC_EXPORT_INTERVAL="1000",
               OTEL_BSP_SCHEDULE_DELAY="200", K8S_NODE_NAME="node-7")
    a = LlamaServer(np=2)
    b = namespaced_server()
    d = c = None
    try:
        pid_a, pid_b = a.pid, server_pid(b)
        maps = open(f"/proc/{pid_b}/maps").read()
        check(f"{CTR_DIR}/libllama" in maps, "the namespaced server maps libllama from its own path")
        d = daemon(env=env)
        wait_until(lambda: {pid_a, pid_b} <= attached_pids(d), 20, "the daemon to attach to both")
        # started after the daemon, with what a pod manifest passes through the downward API
        c = LlamaServer(np=2, env=dict(os.environ, K8S_POD_NAME="chat-7f9c", POD_NAMESPACE="inference",
                                       OTEL_RESOURCE_ATTRIBUTES="team=ml,k8s.deployment.name=chat"))
        wait_until(lambda: c.pid in attached_pids(d), 10, "the daemon to attach to the new server")
        calls = {}
        for srv, pid in ((a, pid_a), (b, pid_b), (c, c.pid)):
            calls[pid] = [completion(srv, 4000 + pid % 97 * 10 + i, 3 + i, i % 2 == 1) for i in range(3)] + \
                         [chat(srv, 4500 + pid % 97 * 10 + i, 4, i == 1) for i in range(2)]
        time.sleep(1.2)
        reqs = by_port(d)
        for pid, cs in calls.items():
            check_calls(cs, reqs, pid)
        check_eq(len([r for r in reqs.values() if r["endpoint"] in ("chat", "completion")]), 15,
                 "inference requests the daemon saw (three servers, five each)")
        check(re.search(rf"attached to PID {c.pid} .*after its exec, held still while attaching",
                        d.stderr_so_far()), "the new server was held still while the probes went on")
        loads = [r for r in d.records("model_load") if r["pid"] == c.pid]
        check(loads and loads[0]["ok"], "the server started after the daemon: its model load is traced")
        inits = [r for r in d.records("context_init") if r["pid"] == c.pid]
        check(inits and inits[-1]["n_ctx"] == 2048, "and its context size")
        # a periodic export (every second) while all three are traced: the gauge shows 3
        wait_until(lambda: 3.0 in [p["value"] for p in rx.metric_points("llmtap.daemon.targets")], 10,
                   "an export of the daemon's own metrics with three targets")

        c.stop()
        wait_until(lambda: c.pid in detached_pids(d), 10, "the daemon to detach from the exited server")
        check(re.search(rf"detached from PID {c.pid} \(llama-server\): target exited, \d+ requests",
                        d.stderr_so_far()), "the detach line says why")
        ours = d.new_programs()
        check_eq(d.stop(signal.SIGTERM), 0, f"daemon exit code ({d.stderr()})")
        check_eq(detached_pids(d), {pid_a, pid_b, c.pid}, "every target detached")
        wait_until(lambda: not harness.bpf_program_ids() & ours, 10, "no llmtap programs left")
        check_eq(a.get("/health")[0], 200, "server a serves on")
        check_eq(b.get("/health")[0], 200, "server b serves on")
    finally:
        stop_all(d, a, b, c)
        rx.stop()

    # the daemon's own health, under its own resource
    own = [p for p in rx.metric_points("llmtap.daemon.attaches")
           if p["resource"].get("service.name") == "llmtap"]
    check(own, "the daemon exports its own metrics")
    last = max(p["timeUnixNano"] for p in own)
    check_eq(sum(p["value"] for p in own if p["timeUnixNano"] == last
                 and p["attributes"].get("outcome") == "attached"), 3.0, "llmtap.daemon.attaches")
    targets = [p["value"] for p in rx.metric_points("llmtap.daemon.targets")]
    check(3.0 in targets, f"llmtap.daemon.targets reached 3: {targets}")
    sent = [p for p in rx.metric_points("otel.sdk.exporter.span.exported")
            if p["resource"].get("service.name") == "llmtap" and not p["attributes"]]
    check(sent and max(p["value"] for p in sent) > 0, "the shared sender's exported spans")

    spans = [s for s in rx.spans() if s["kind"] == "SPAN_KIND_SERVER"]
    by_pid = {}
    for s in spans:
        by_pid.setdefault(s["resource"]["process.pid"], []).append(s)
    check_eq(set(by_pid), {pid_a, pid_b, c.pid}, "OTLP resources: one per server")
    instances = {ss[0]["resource"]["service.instance.id"] for ss in by_pid.values()}
    check_eq(len(instances), 3, "three service.instance.id")
    for pid, ss in by_pid.items():
        check_eq(len({s["resource"]["service.instance.id"] for s in ss}), 1, f"PID {pid}: one resource")
        check_eq(ss[0]["resource"]["k8s.node.name"], "node-7", "k8s.node.name from K8S_NODE_NAME")
        ports = {s["attributes"]["client.port"] for s in ss}
        check({c_.port for c_ in calls[pid]} <= ports, f"PID {pid}: every request's span")
    check_eq(by_pid[pid_b][0]["resource"]["process.executable.path"], f"{CTR_DIR}/llama-server",
             "the namespaced server's executable, as it sees it")
    rc = by_pid[c.pid][0]["resource"]
    check_eq((rc.get("k8s.pod.name"), rc.get("k8s.namespace.name"), rc.get("team"),
              rc.get("k8s.deployment.name")), ("chat-7f9c", "inference", "ml", "chat"),
             "the target's own environment names its pod and adds its attributes")
    check("k8s.pod.name" not in by_pid[pid_a][0]["resource"], "a target without them has none")
    check_eq(rc["host.name"], "node-7", "host.name from the daemon's K8S_NODE_NAME")


@test
def daemon_shares_a_slow_collector_fairly():
    """A collector slower than the export interval: every source (each target, the daemon's
    own health) still gets its metrics through in turn, the newest replacing its waiting one."""
    rx = OtlpReceiver(script=lambda signal, n, req: Reply(200, None, 1.5) if signal == "metrics"
                      else 200).start()
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=rx.url(), OTEL_METRIC_EXPORT_INTERVAL="1000",
               OTEL_TRACES_EXPORTER="none", LLMTAP_OTLP_FLUSH_TIMEOUT="1s")
    a, b = LlamaServer(np=1), LlamaServer(np=1)
    d = None
    try:
        d = daemon(env=env)
        wait_until(lambda: {a.pid, b.pid} <= attached_pids(d), 20, "the daemon to attach to both")
        time.sleep(7.0)  # exports take 1.5 s each: about four, three sources every second
        before_stop = [r.data for r in rx.requests("metrics")]
        check_eq(d.stop(signal.SIGTERM), 0, f"daemon exit code ({d.stderr()})")
    finally:
        stop_all(d, a, b)
        rx.stop()
    sources = {}
    for body in decode("metrics", before_stop):
        res = metric_points([body])[0]["resource"]
        key = "daemon" if res.get("service.name") == "llmtap" else res.get("process.pid")
        sources[key] = sources.get(key, 0) + 1
    check(len(before_stop) >= 3, f"metric exports before the stop: {len(before_stop)}")
    check_eq(set(sources), {a.pid, b.pid, "daemon"},
             f"the sources whose metrics got through a slow collector ({sources})")
    m = re.search(r"(\d+) spans and (\d+) data points dropped", d.stderr())
    check(m and int(m.group(2)) > 0, f"superseded waiting bodies are counted as dropped: {d.stderr()}")


@test
def daemon_reattaches_a_restarted_server_and_selects():
    """kill -9 and a restart on the same port: the new process is traced; --port and --exe
    select; stopping the daemon leaves no probes behind."""
    a = LlamaServer(np=1)
    other = LlamaServer(np=1)
    a2 = d = None
    try:
        prom = harness.free_port()
        d = daemon(["--port", str(a.port), "--exe", "*llama-server", "--prometheus", f"127.0.0.1:{prom}"])
        wait_until(lambda: a.pid in attached_pids(d), 20, "the daemon to attach to the selected server")
        wait_until(lambda: f"not tracing PID {other.pid}: it listens on no --port" in d.stderr_so_far(),
                   10, "the other server left out, with the reason")
        first = completion(a, 4800, 3, False)
        os.killpg(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        wait_until(lambda: a.pid in detached_pids(d), 10, "the daemon to detach from the killed server")
        a2 = LlamaServer(np=1, port=a.port)
        wait_until(lambda: a2.pid in attached_pids(d), 20, "the daemon to attach to the restarted server")
        second = completion(a2, 4801, 4, False)
        time.sleep(1.0)
        reqs = by_port(d)
        check_calls([first], reqs, a.pid)
        check_calls([second], reqs, a2.pid)
        check(other.pid not in {r["pid"] for r in reqs.values()}, "the unselected server is not traced")
        # Prometheus: the live target's series and target_info, the exited one's gone
        time.sleep(0.6)
        text = urllib.request.urlopen(f"http://127.0.0.1:{prom}/metrics", timeout=5).read().decode()
        served = [l for l in text.splitlines() if l.startswith("llmtap_inference_requests_total{")]
        check(served and all(f'process_pid="{a2.pid}"' in l for l in served),
              f"only the live target's series: {served}")
        check_eq(sum(float(l.rsplit(" ", 1)[1]) for l in served), 1.0, "its request count")
        infos = [l for l in text.splitlines() if l.startswith("target_info{")]
        check_eq(len(infos), 2, f"target_info of the live target and of the daemon: {infos}")
        check(any(f'process_pid="{a2.pid}"' in l for l in infos), "target_info of the live target")
        check(any('service_name="llmtap"' in l for l in infos), "the daemon's own target_info")
        check(re.search(r'^llmtap_daemon_targets\{[^}]*\} 1$', text, re.M), "the daemon's own gauge: 1 target")
        check_eq(d.stderr_so_far().count(f"not tracing PID {other.pid}"), 1, "told once")
        ours = d.new_programs()
        check(ours, "the daemon's programs are loaded")
        check_eq(d.stop(signal.SIGINT), 0, "daemon exit code")
        wait_until(lambda: not harness.bpf_program_ids() & ours, 10, "no llmtap programs left")
        check_eq(other.get("/health")[0], 200, "the other server serves on")
    finally:
        stop_all(d, a, a2, other)


def run_server(port, np=2, ctx=2048, extra=()):
    """`llmtap run --json` starting a llama-server (the Tracer runs llmtap run)."""
    args = ["-m", harness.MODEL, "--host", "127.0.0.1", "--port", str(port), "-np", str(np),
            "-c", str(ctx), "-t", "1", "--metrics", "--no-webui"]
    return Tracer(None, ["--no-steps"] + list(extra) + ["--", harness.SERVER_SHARED] + args,
                  command=["run"])


class Remote:
    """Enough of LlamaServer for the request helpers: a server llmtap run started."""

    def __init__(self, port):
        self.port = port

    def get(self, path, timeout=10):
        return LlamaServer.get(self, path, timeout)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


@test
def run_traces_from_the_first_instruction():
    """llmtap run: model load and context size, exact requests, signals and the exit status
    passed through."""
    port = harness.free_port()
    r = run_server(port, np=3)
    srv = Remote(port)

    def healthy():
        check(r.proc.poll() is None, f"llmtap run exited: {r.stderr_so_far()}")
        try:
            return srv.get("/health")[0] == 200
        except OSError:
            return False
    wait_until(healthy, 60, "the server llmtap run started")
    calls = [completion(srv, 4900 + i, 3 + i, i == 1) for i in range(3)] + [chat(srv, 4950, 5, False)]
    time.sleep(1.2)
    loads = r.records("model_load")
    check(loads and all(l["ok"] for l in loads), "model load traced")
    check_eq(loads[-1]["path"], harness.MODEL, "the model file")
    check(all(l["duration_ns"] > 0 for l in loads), "model load time")
    inits = r.records("context_init")
    check(inits, "context creation traced")
    check_eq((inits[-1]["n_ctx"], inits[-1]["n_seq_max"]), (2048, 3), "context size and slots")
    attach = r.records("attach")[0]
    check_eq(attach["comm"], "llama-server", "the program's name, not llmtap's")
    check_eq(attach["resource"]["process.executable.path"], harness.SERVER_SHARED, "its executable")
    reqs = by_port(r)
    check_calls(calls, reqs, attach["pid"])
    server = attach["pid"]
    r.proc.send_signal(signal.SIGTERM)  # forwarded: the server shuts down, llmtap follows
    check_eq(r.wait(30), 0, f"llmtap run's status is the server's ({r.stderr()})")
    check(not os.path.exists(f"/proc/{server}"), "the server exited")
    summary = r.records("summary")[0]
    check_eq(summary["end_reason"], "program exited with status 0", "end reason")

    # a signal that kills the program: 128 + N, as a shell would say
    port = harness.free_port()
    r = run_server(port, np=1)
    srv = Remote(port)
    wait_until(healthy, 60, "the second server")
    os.kill(r.records("attach")[0]["pid"], signal.SIGKILL)
    check_eq(r.wait(30), 128 + signal.SIGKILL, "llmtap run's status after SIGKILL")

    for argv, says in ((["/nonexistent/llama-server"], "no such program"),
                       (["true"], "no llama.cpp"),
                       ([], "which program?")):
        rc, _, err = harness.run_llmtap(["run", "--"] + argv)
        check_eq(rc, 2 if not argv else 1, f"exit code of run {argv}")
        check(says in err, f"run {argv}: {err!r}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


@test
def daemon_memory_is_bounded_and_freed_on_detach():
    """Each target costs the daemon a bounded amount of memory, given back when it detaches:
    after the first attach/detach cycle, more cycles do not grow it."""
    # (an AddressSanitizer build would hold freed memory in its quarantine: none here)
    d = daemon([], env=dict(os.environ, ASAN_OPTIONS="quarantine_size_mb=0"))
    try:
        time.sleep(1.0)
        idle = rss_kib(d.proc.pid)
        sizes = []
        for k in range(4):
            srv = LlamaServer(np=1)
            wait_until(lambda: srv.pid in attached_pids(d), 20, "the daemon to attach")
            attached = rss_kib(d.proc.pid)
            srv.stop()
            wait_until(lambda: srv.pid in detached_pids(d), 10, "the daemon to detach")
            time.sleep(0.3)
            sizes.append((attached, rss_kib(d.proc.pid)))
        print(f"    daemon RSS: {idle} KiB idle; attached/detached per cycle: {sizes}")
        # an AddressSanitizer build (the README's sanitizer run) has redzones and a quarantine
        scale = 4 if "libasan" in open(f"/proc/{d.proc.pid}/maps").read() else 1
        for attached, _ in sizes:
            check(attached - idle < 16 * 1024 * scale,
                  f"one target costs under {16 * scale} MiB ({attached - idle} KiB)")
        check(sizes[-1][1] - sizes[0][1] < 1024 * scale,
              f"memory is given back on detach (after cycle 1: {sizes[0][1]} KiB, after 4: {sizes[-1][1]} KiB)")
        check_eq(d.stop(signal.SIGTERM), 0, "daemon exit code")
    finally:
        stop_all(d)


@test
def daemon_tail_capture_per_target():
    """--tail in the daemon: SIGUSR1 writes one capture per traced process, each holding
    only its own requests."""
    out = tempfile.mkdtemp(prefix="llmtap-dtail-")
    a, b = LlamaServer(np=1), LlamaServer(np=1)
    d = None
    try:
        d = daemon(["--tail", "30s", "--tail-dir", out])
        wait_until(lambda: {a.pid, b.pid} <= attached_pids(d), 20, "the daemon to attach to both")
        calls = {a.pid: [completion(a, 5000 + i, 3, False) for i in range(2)],
                 b.pid: [completion(b, 5100 + i, 4, False) for i in range(3)]}
        time.sleep(0.5)
        d.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: len(os.listdir(out)) >= 2, 10, "a capture per process")
        check_eq(d.stop(signal.SIGTERM), 0, "daemon exit code")
        for pid, cs in calls.items():
            files = [f for f in os.listdir(out) if f.startswith(f"llmtap-tail-{pid}-")]
            check_eq(len(files), 1, f"PID {pid}'s capture")
            with open(os.path.join(out, files[0])) as f:
                events = json.load(f)["traceEvents"]
            reqs = {e["args"]["client_port"]: e for e in events if e["ph"] == "X" and e["cat"] == "request"}
            check_eq(set(reqs), {c.port for c in cs}, f"PID {pid}: its own requests, all of them")
            for c in cs:
                check_eq(reqs[c.port]["args"]["output_tokens"], c.timings["predicted_n"], "tokens")
    finally:
        stop_all(d, a, b)
        shutil.rmtree(out, ignore_errors=True)
