"""End-to-end tests of the exporters: a real Prometheus scrapes llmtap (issue: export)."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from harness import (Failure, LlamaServer, Tracer, check, check_eq, free_port, prompt,
                     run_concurrently, run_llmtap, test, wait_until)


class Prometheus:
    """Debian's prometheus on loopback, scraping one target every second."""

    def __init__(self, target, rules=None):
        """rules: a rules file to evaluate every second too."""
        self.dir = tempfile.mkdtemp(prefix="llmtap-prom-")
        self.port = free_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    + (f"rule_files:\n  - {rules}\n" if rules else "")
                    + "scrape_configs:\n  - job_name: llmtap\n"
                    f"    static_configs:\n      - targets: ['{target}']\n")
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._ready(), 30, "prometheus to start")

    def _ready(self):
        check(self.proc.poll() is None, "prometheus exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, q):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read())
        check_eq(doc["status"], "success", f"query {q}")
        return [(s["metric"], float(s["value"][1])) for s in doc["data"]["result"]]

    def scalar(self, q):
        res = self.query(q)
        return res[0][1] if len(res) == 1 else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@test
def prometheus_scrapes_llmtap():
    port = free_port()
    with LlamaServer(np=2) as srv:
        tr = Tracer(srv.pid, ["--no-steps", "--prometheus", f"127.0.0.1:{port}"]).wait_attached()
        prom = Prometheus(f"127.0.0.1:{port}")
        try:
            wait_until(lambda: prom.scalar('up{job="llmtap"}') == 1, 30, "the first scrape")
            jobs = [lambda i=i: srv.post("/completion", {"prompt": prompt(700 + i, 8), "n_predict": 16 + i,
                                                         "ignore_eos": True, "stream": False})
                    for i in range(12)]
            answers = []
            for wave in range(3):  # over several scrapes, so that rate() sees the counter grow
                answers += run_concurrently(jobs[4 * wave:4 * wave + 4], 4)
                time.sleep(1.5)
            check(all(a[0] == 200 for a in answers), "requests failed")
            n = len(answers)
            wait_until(lambda: prom.scalar("sum(llmtap_inference_requests_total)") == n, 30,
                       f"Prometheus to see {n} requests")
            # rate() needs two scrapes of the series after it appeared
            rate = prom.scalar("sum(rate(llmtap_inference_requests_total[1m]))")
            p95 = prom.scalar("histogram_quantile(0.95, sum by (le) "
                              "(rate(http_server_request_duration_seconds_bucket[1m])))")
            p99 = prom.scalar("histogram_quantile(0.99, sum by (le) "
                              "(rate(gen_ai_server_time_to_first_token_seconds_bucket[1m])))")
            concurrent = prom.scalar("max_over_time(llmtap_inference_concurrent_requests[1m])")
            tps = prom.scalar("sum(llmtap_inference_tokens_per_second_sum) / "
                              "sum(llmtap_inference_tokens_per_second_count)")
            out_tokens = prom.scalar('sum(gen_ai_client_token_usage_sum{gen_ai_token_type="output"})')
            les = sorted({float(m["le"]) for m, _ in
                          prom.query("http_server_request_duration_seconds_bucket")})
        finally:
            prom.stop()
        check_eq(tr.stop(), 0, "llmtap exit code")
    reqs = [r for r in tr.records("request") if r["endpoint"] == "completion"]
    check_eq(len(reqs), n, "requests llmtap traced")
    check(rate and rate > 0, f"rate() of the request counter: {rate}")
    durations = sorted((r["duration_ns"] / 1e9) for r in reqs)
    # histogram_quantile interpolates inside a bucket: at most the upper bound of the bucket
    # the slowest request fell in (exposed by llmtap as the series' le labels)
    top = min(le for le in les if le >= durations[-1])
    check(p95 and 0 < p95 <= top, f"p95 request duration {p95} vs max {durations[-1]} "
          f"(its bucket's upper bound {top})")
    ttfts = sorted(r["ttft_ns"] / 1e9 for r in reqs)
    check(p99 and 0 < p99 <= 2 * ttfts[-1] + 0.001, f"p99 time to first token {p99} vs max {ttfts[-1]}")
    check(concurrent is not None and concurrent >= 0, f"concurrent requests gauge: {concurrent}")
    want_tps = [r["output_tokens"] / (r["children"][-1]["duration_ns"] / 1e9) for r in reqs]
    check(tps and abs(tps - sum(want_tps) / len(want_tps)) <= 1e-6 * tps,
          f"average tokens/s {tps} vs llmtap's own {sum(want_tps) / len(want_tps)}")
    check_eq(out_tokens, sum(a[1]["timings"]["predicted_n"] for a in answers),
             "output tokens in Prometheus vs the server's timings")


def in_container_cgroup(pid, cid):
    """Move pid into a cgroup named like a Docker container's; returns the cleanup."""
    for base, leaf in (("/sys/fs/cgroup/pids", f"docker/{cid}"),  # cgroup v1 hierarchy
                       ("/sys/fs/cgroup", f"llmtap-test/docker-{cid}.scope")):  # cgroup v2
        if not os.path.isdir(base) or not os.access(base, os.W_OK):
            continue
        path = os.path.join(base, leaf)
        try:
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        except OSError:
            continue

        def cleanup():
            try:
                with open(os.path.join(base, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                pass  # the process is gone
            for d in (path, os.path.dirname(path)):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        return cleanup
    raise Failure("no writable cgroup hierarchy to put the server in")


@test
def resource_of_the_target():
    """The resource: service, process, host, container id from the cgroup, the model; the
    OTEL_* environment overrides; Prometheus shows it as target_info."""
    cid = "4f1c" * 16
    port = free_port()
    env = dict(os.environ, OTEL_SERVICE_NAME="chat-backend",
               OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=prod,team=llm%20infra")
    with LlamaServer(np=1) as srv:
        cleanup = in_container_cgroup(srv.pid, cid)
        try:
            tr = Tracer(srv.pid, ["--no-steps", "--prometheus", f"127.0.0.1:{port}"], env=env)
            tr.wait_attached()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                body = r.read().decode()
            check_eq(tr.stop(), 0, "llmtap exit code")
            rc, _, err = run_llmtap(["attach", "--pid", str(srv.pid)],
                                    env=dict(os.environ, OTEL_RESOURCE_ATTRIBUTES="novalue"))
        finally:
            cleanup()
    res = tr.records("attach")[0]["resource"]
    want = {"service.name": "chat-backend", "process.pid": str(srv.pid),
            "process.executable.name": "llama-server", "container.id": cid,
            "llmtap.model.name": "llmtap-tiny-llama", "llmtap.model.architecture": "llama",
            "deployment.environment.name": "prod", "team": "llm infra",
            "telemetry.sdk.name": "llmtap", "host.name": socket.gethostname()}
    for k, v in want.items():
        check_eq(res.get(k), v, f"resource {k}")
    check(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                       res.get("service.instance.id", "")), f"service.instance.id {res}")
    info = [l for l in body.splitlines() if l.startswith("target_info{")]
    check_eq(len(info), 1, "target_info series")
    for frag in (f'container_id="{cid}"', 'service_name="chat-backend"', 'team="llm infra"'):
        check(frag in info[0], f"{frag} not in {info[0]}")
    check_eq(rc, 1, "exit code with a malformed OTEL_RESOURCE_ATTRIBUTES")
    check("OTEL_RESOURCE_ATTRIBUTES" in err and len(err.strip().splitlines()) == 1, f"error: {err!r}")
