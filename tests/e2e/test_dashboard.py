"""End-to-end test of deploy/grafana and deploy/prometheus (issue: from a build tree to an
SRE's day): every query of the Grafana dashboard and every rule, run by a real Prometheus
(Debian's) that scrapes a real llmtap daemon tracing a real llama-server under load.

The daemon is started before the server (so the context's size is traced and the KV-cache
ratio exported), OTLP goes to a port nobody listens on (export failures and drops), and
the daemon is stopped (SIGSTOP) with a small ring buffer while the server generates (lost
events): every series the dashboard and the rules read then exists. A query that answers
nothing, or NaN, or a negative number, or zero where load was sent, fails the test; the
checker is shown to fail on broken copies of the dashboard and of the rules.
"""
import copy
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import harness
from harness import (Failure, LlamaServer, Tracer, check, check_eq, free_port, prompt,
                     run_concurrently, test, wait_until)
from test_export import Prometheus
from test_requests import Call, chat, completion

DEPLOY = os.path.join(harness.ROOT, "deploy")
DASHBOARD = os.path.join(DEPLOY, "grafana", "llmtap-dashboard.json")
RULES = os.path.join(DEPLOY, "prometheus", "llmtap-rules.yaml")
RULES_TEST = os.path.join(DEPLOY, "prometheus", "llmtap-rules.test.yaml")

# Grafana's variables as the test sets them: every model, llmtap and pod; $__rate_interval
# as Grafana would make it of a 1 s scrape interval, at least a minute here
VARIABLES = {"__rate_interval": "1m", "model": ".*", "instance": ".*", "pod": ".*",
             "target": ".*"}
WANT_VARIABLES = {"datasource", "model", "instance", "pod", "target"}
# series that may rightly be 0 (or all 0) after load: instantaneous gauges and counters of
# things the test does not cause; everything else read after load must be > 0 somewhere
MAY_BE_ZERO = ("llmtap_inference_concurrent_requests", "http_server_active_requests",
               "llmtap_queue_tasks", "llmtap_slots_busy", "otel_sdk_processor_span_queue_size",
               "llmtap_daemon_attaches_total", "llmtap_daemon_detaches_total",
               "llmtap_daemon_exec_events_lost_total", "llmtap:otlp_dropped:rate5m",
               "otel_sdk_exporter_span_exported_total")
POD, NAMESPACE = "llama-e2e-0", "inference-e2e"


class RulesPrometheus(Prometheus):
    """Debian's prometheus on loopback scraping one target every second, evaluating a rules
    file every second."""

    def api(self, path, params=()):
        """(True, data) or (False, Prometheus's error) for GET /api/v1/PATH."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(list(params))
        try:
            with urllib.request.urlopen(url, timeout=20) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as e:
            doc = json.loads(e.read() or b"{}")
        if doc.get("status") != "success":
            return False, f"{doc.get('errorType')}: {doc.get('error')}"
        return True, doc["data"]


# ---------------------------------------------------------------------------------- checks

def substitute(expr):
    """expr with Grafana's variables replaced; an unknown one is an error."""
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in VARIABLES:
            raise Failure(f"unknown variable ${name}")
        return VARIABLES[name]
    return re.sub(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)", one, expr)


def check_answer(prom, expr, what, upper=None, shown=None):
    """Run expr as an instant query: [] if its answer is plausible, else what is wrong
    (each message ends with shown, or expr)."""
    ok, data = prom.api("query", [("query", expr)])
    src = shown or expr
    if not ok:
        return [f"{what}: Prometheus refused it ({data}): {src}"]
    res = data["result"]
    if data["resultType"] == "scalar":
        res = [{"metric": {}, "value": res}]
    if not res:
        return [f"{what}: no data: {src}"]
    vals = [float(s["value"][1]) for s in res]
    derivative = "deriv(" in expr or "delta(" in expr
    errs = []
    if not all(math.isfinite(v) for v in vals):
        errs.append(f"{what}: not a number in {vals}: {src}")
    elif not derivative and min(vals) < 0:
        errs.append(f"{what}: negative value in {vals}: {src}")
    elif upper is not None and max(vals) > upper:
        errs.append(f"{what}: {max(vals)} over {upper}: {src}")
    elif not derivative and not any(m in expr for m in MAY_BE_ZERO) and max(vals) <= 0:
        errs.append(f"{what}: 0 after load: {src}")
    return errs


def panel_upper(panel):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    return {"percentunit": 1.0 + 1e-9, "s": 120.0}.get(unit)


def check_dashboard_structure(dash):
    """What Grafana needs to import the dashboard and show every panel on its grid."""
    errs = []
    check(dash.get("schemaVersion", 0) >= 36, f"schemaVersion {dash.get('schemaVersion')}")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    check_eq(set(variables), WANT_VARIABLES, "template variables")
    check_eq((variables["datasource"]["type"], variables["datasource"]["query"]),
             ("datasource", "prometheus"), "the datasource variable")
    ids, cells = set(), {}
    for p in dash["panels"]:
        check(p["id"] not in ids, f"panel id {p['id']} twice")
        ids.add(p["id"])
        g = p["gridPos"]
        check(g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0,
              f"{p['title']}: off the grid {g}")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                check((x, y) not in cells, f"{p['title']} overlaps {cells.get((x, y))}")
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        check(p.get("title") and p.get("description"), f"panel {p['id']}: title and description")
        for who in [p] + p["targets"]:
            check_eq(who["datasource"], {"type": "prometheus", "uid": "${datasource}"},
                     f"{p['title']}: datasource")
        refs = [t["refId"] for t in p["targets"]]
        check(refs and len(set(refs)) == len(refs), f"{p['title']}: refIds {refs}")
    return errs


def dashboard_queries(dash):
    """(what, expr, upper bound) of every panel target and every variable's query."""
    out = []
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            out.append((f"variable {v['name']}", v["query"]["query"], None))
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"], panel_upper(p)))
    return out


def check_dashboard(prom, dash):
    """Every query of dash against prom: the list of what is wrong."""
    errs = []
    for what, expr, upper in dashboard_queries(dash):
        try:
            q = substitute(expr)
        except Failure as e:
            errs.append(f"{what}: {e}: {expr}")
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q, re.S)
        if m:  # a variable: the label's values among the series the selector picks
            ok, data = prom.api(f"label/{m.group(2)}/values", [("match[]", m.group(1))])
            if not ok or not data:
                errs.append(f"{what}: no values ({data}): {expr}")
            continue
        errs += check_answer(prom, q, what, upper, shown=expr)
    return errs


def split_top(expr, words):
    """expr split at the binary operators in words that stand outside any brackets."""
    parts, depth, start, i, quote = [], 0, 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            quote = None if c == quote and expr[i - 1] != "\\" else quote
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = re.match(r"\b(" + "|".join(words) + r")\b", expr[i:])
            if m and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_")):
                parts.append(expr[start:i])
                i += len(m.group(1))
                start = i
                continue
        i += 1
    return [p.strip() for p in parts + [expr[start:]]]


def alert_quantities(expr):
    """What an alert compares: its expression without the threshold comparisons."""
    parts = split_top(expr.strip(), ("and", "or", "unless"))
    if len(parts) > 1:
        return [q for p in parts for q in alert_quantities(p)]
    m = re.fullmatch(r"(.*\S)\s*(?:>=|<=|==|!=|>|<)\s*(?:bool\s+)?-?[0-9.]+", parts[0], re.S)
    return [m.group(1)] if m else parts


def check_rules(prom, rules):
    """Every recording rule's series and expression, every alert's quantities (rules as
    Prometheus's /api/v1/rules gives them): what is wrong."""
    errs = []
    for r in rules:
        expr = r["query"]
        if r["type"] == "recording":
            errs += check_answer(prom, r["name"], f"recorded series {r['name']}")
            errs += check_answer(prom, expr, f"recording rule {r['name']}")
        else:
            for q in alert_quantities(expr):
                errs += check_answer(prom, q, f"alert {r['name']}")
    return errs


def promtool(*args, cwd=None):
    p = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    return p.returncode, p.stdout + p.stderr


# ------------------------------------------------------------------------------------ test

def bad_grammar(srv, i):
    """A request llama-server refuses with 400: its grammar does not parse."""
    return Call(srv, "/completion", {"prompt": prompt(900 + i, 4), "n_predict": 2,
                                     "grammar": "root ::= (("})


def wave(srv, k, shift=False):
    """Seven requests at once on two slots (so some wait): completions and chats, streamed
    and not, one refused with 400; shift: one long enough to shift the context."""
    base = 100 * (k + 1)
    jobs = [lambda i=i: completion(srv, base + i, 12 + i, i % 2 == 1) for i in range(3)]
    jobs += [lambda: chat(srv, base + 5, 10, True), lambda: chat(srv, base + 6, 8, False),
             lambda: bad_grammar(srv, base)]
    jobs.append((lambda: completion(srv, base + 7, 300, False)) if shift
                else (lambda: completion(srv, base + 8, 16, False)))
    return run_concurrently(jobs, len(jobs))


@test
def dashboard_and_rules_answer_on_real_prometheus():
    """Every dashboard query and every rule answers, plausibly, on a real Prometheus scraping
    a real daemon under load; promtool checks and unit-tests the rules; broken copies of the
    dashboard and the rules make the checker fail."""
    # promtool: the rules parse, and their unit tests pass
    rc, out = promtool("test", "rules", RULES_TEST)
    check_eq(rc, 0, f"promtool test rules:\n{out}")
    rc, out = promtool("check", "rules", RULES)
    check_eq(rc, 0, f"promtool check rules:\n{out}")
    n_rules = int(re.search(r"SUCCESS: (\d+) rules found", out).group(1))
    with open(DASHBOARD) as f:
        dash = json.load(f)
    check_dashboard_structure(dash)

    port, mport, dead = free_port(), free_port(), free_port()
    d = srv = prom = None
    stopped = False
    try:
        d = Tracer(None, ["--no-steps", "--interval", "500ms", "--port", str(port),
                          "--exe", "*llama-server", "--prometheus", f"127.0.0.1:{mport}",
                          "--ringbuf-size", "64k", "--otlp-endpoint", f"http://127.0.0.1:{dead}",
                          "--otlp-interval", "1s"], command=["daemon"])
        wait_until(lambda: "daemon watching" in d.stderr_so_far(), 20, "the daemon to start")
        env = dict(os.environ, K8S_POD_NAME=POD, POD_NAMESPACE=NAMESPACE)
        srv = LlamaServer(np=2, ctx=512, args=["--context-shift"], port=port, env=env)
        wait_until(lambda: f"attached to PID {srv.pid} " in d.stderr_so_far(), 20,
                   "the daemon to attach to the server")
        prom = RulesPrometheus(f"127.0.0.1:{mport}", RULES)
        wait_until(lambda: prom.scalar('up{job="llmtap"}') == 1, 30, "the first scrape")

        calls = wave(srv, 0) + wave(srv, 1)
        time.sleep(1.5)
        # lost events: the daemon stopped while the server generates into a 64 KiB ring
        # (big enough that the waves around it lose nothing: their counts are checked)
        os.kill(d.proc.pid, signal.SIGSTOP)
        stopped = True
        lost_phase = run_concurrently([lambda i=i: completion(srv, 50 + i, 300, False)
                                       for i in range(2)], 2)
        os.kill(d.proc.pid, signal.SIGCONT)
        stopped = False
        time.sleep(1.5)
        calls += wave(srv, 2, shift=True)  # context shifts in two scrapes: rate() sees them
        time.sleep(1.5)
        calls += wave(srv, 3, shift=True)
        check(all(c.status == 200 for c in lost_phase), "requests while llmtap was stopped")
        bad = [c for c in calls if c.path == "/completion" and c.body.get("grammar")]
        check(all(c.status == 400 for c in bad) and all(c.status == 200 for c in calls
                                                        if c not in bad),
              f"statuses: {[c.status for c in calls]}")
        n = len(calls)
        wait_until(lambda: (prom.scalar("sum(llmtap_inference_requests_total)") or 0) >= n, 30,
                   f"Prometheus to see the {n} requests")
        wait_until(lambda: prom.query('ALERTS{alertname="LlmtapEventsLost", alertstate="firing"}'),
                   30, "the lost events alert")
        time.sleep(2)  # two more evaluations of every rule

        # the rules file as Prometheus loaded it: every rule there and healthy
        ok, data = prom.api("rules")
        check(ok, f"GET /api/v1/rules: {data}")
        rules = [r for g in data["groups"] for r in g["rules"]]
        check_eq(len(rules), n_rules, "rules Prometheus loaded, vs promtool's count")
        unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        check(not unhealthy, f"rules that failed to evaluate: {unhealthy}")

        errs = check_dashboard(prom, dash) + check_rules(prom, rules)
        check(not errs, f"{len(errs)} queries failed:\n  " + "\n  ".join(errs))
        n_alert_q = sum(len(alert_quantities(r["query"])) for r in rules if r["type"] == "alerting")
        print(f"    {len(dashboard_queries(dash))} dashboard queries, "
              f"{2 * sum(r['type'] == 'recording' for r in rules)} recording-rule queries, "
              f"{n_alert_q} alert quantities answered", flush=True)

        # what the rules say of this load: a 400 in each wave of 7 is over 5% of the
        # requests, the collector is down, events were lost; the tiny model is fast
        alerts = {(a["labels"]["alertname"], a["state"]) for a in prom.api("alerts")[1]["alerts"]}
        print(f"    alerts: {sorted(alerts)}", flush=True)
        for want in (("LlmtapErrorRatioHigh", "pending"), ("LlmtapOtlpExportFailing", "pending"),
                     ("LlmtapEventsLost", "firing")):
            check(want in alerts, f"alert {want} not in {sorted(alerts)}")
        for quiet in ("LlmtapTimeToFirstTokenHigh", "LlmtapDaemonAttachFailing", "LlmtapQueueGrowing"):
            check(all(name != quiet for name, _ in alerts), f"alert {quiet} in {sorted(alerts)}")
        check(("LlmtapDown", "firing") not in alerts, "LlmtapDown fired")

        # a few exact answers
        check_eq(prom.scalar('sum(llmtap_inference_requests_total{status="400"})'), float(len(bad)),
                 "requests answered 400, as Prometheus counts them")
        check_eq(prom.scalar(f'count(target_info{{k8s_pod_name="{POD}", '
                             f'k8s_namespace_name="{NAMESPACE}", process_pid="{srv.pid}"}})'),
                 1.0, "the server's target_info names its pod")
        ratio = prom.scalar("max(llmtap:error_ratio:rate5m)")
        check(ratio is not None and 0.05 < ratio < 0.5,
              f"error ratio {ratio} for {len(bad)} errors in {n} requests")

        # the checker fails on broken copies: a misspelt metric, a syntax error, an unknown
        # variable, a negative answer in the dashboard; a misspelt metric in the rules
        broken = copy.deepcopy(dash)
        target = next(t for p in broken["panels"] for t in p.get("targets", [])
                      if "llmtap_inference_requests_total" in t["expr"])
        for expr, why in ((target["expr"].replace("llmtap_inference_requests_total",
                                                  "llmtap_inference_request_total"), "no data"),
                          ("sum(rate(llmtap_inference_requests_total[$__rate_interval])", "refused"),
                          ('sum(llmtap_inference_requests_total{model=~"$modle"})',
                           "unknown variable $modle"),
                          ("-1 * sum(llmtap_inference_requests_total)", "negative")):
            target["expr"] = expr
            errs = [e for e in check_dashboard(prom, broken) if e.endswith(": " + expr)]
            check(len(errs) == 1 and why in errs[0], f"the checker on {expr!r}: {errs}")
        broken_rules = copy.deepcopy(rules)
        r = next(r for r in broken_rules if r["name"] == "llmtap:ttft_seconds:p99_5m")
        r["query"] = r["query"].replace("time_to_first_token", "time_to_first_tokens")
        errs = check_rules(prom, broken_rules)
        check(any("recording rule llmtap:ttft_seconds:p99_5m: no data" in e for e in errs),
              f"the checker on a rule with a misspelt metric: {errs}")
        a = next(r for r in broken_rules if r["name"] == "LlmtapOtlpExportFailing")
        a["query"] = a["query"].replace("llmtap_otlp_export_failures_total",
                                        "llmtap_otlp_export_failure_total")
        check(any("alert LlmtapOtlpExportFailing" in e for e in check_rules(prom, broken_rules)),
              "the checker on an alert with a misspelt metric")
    finally:
        if d is not None and stopped:
            os.kill(d.proc.pid, signal.SIGCONT)
        if prom is not None:
            prom.stop()
        if srv is not None:
            srv.stop()
        if d is not None:
            d.stop()

    # promtool fails on a rules file that does not parse, and its unit tests on a changed
    # threshold
    tmp = tempfile.mkdtemp(prefix="llmtap-rules-")
    try:
        text = open(RULES).read()
        shutil.copy(RULES_TEST, tmp)
        with open(os.path.join(tmp, "llmtap-rules.yaml"), "w") as f:
            f.write(text.replace("llmtap:ttft_seconds:p99_5m > 2", "llmtap:ttft_seconds:p99_5m > 2)"))
        rc, out = promtool("check", "rules", os.path.join(tmp, "llmtap-rules.yaml"))
        check(rc != 0 and "parse error" in out, f"promtool check rules on a syntax error: {rc} {out}")
        with open(os.path.join(tmp, "llmtap-rules.yaml"), "w") as f:
            f.write(text.replace("llmtap:ttft_seconds:p99_5m > 2", "llmtap:ttft_seconds:p99_5m > 20"))
        rc, out = promtool("test", "rules", os.path.join(tmp, "llmtap-rules.test.yaml"))
        check(rc != 0 and "LlmtapTimeToFirstTokenHigh" in out,
              f"promtool test rules on a changed threshold: {rc} {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
