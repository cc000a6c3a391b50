"""The compatibility slice: llmtap's accounting on whichever llama-server LLAMA_SERVER_SHARED is.

Finish reasons too: the server's own (stop_type, finish_reason) or none, never another.

tests/compat/run.sh runs compat_accuracy_under_concurrency once per llama.cpp version of
tests/compat/versions and builds COMPAT.md from the result each run writes to
$LLMTAP_COMPAT_OUT. The rule it checks is the product's: on every llama.cpp a request's
token counts are exact, or explicitly unknown ("attribution": "unattributed", the counts
null), never a wrong number; where the server layer attached, every request is exact.

The oracle is the server's own accounting, per request (`timings`, `usage`) and in total
(/metrics). Servers before `timings.cache_n` existed (b5640) give the prompt's total instead
(`usage.prompt_tokens`, or `tokens_evaluated` on /completion): the cached count is that
total less `timings.prompt_n`, as those servers compute it themselves.

The model is the tiny one whose vocabulary has no byte tokens (LLMTAP_MODEL_NO_HIGH_BYTES):
its random output is always whole UTF-8. b9842's chat parser answers a stream whose output
ends inside a character with an error (HTTP 500, "does not match the expected peg-native
format") and no timings, which leaves nothing to compare with.
"""
import http.client
import json
import os
import time

import harness
from harness import LlamaServer, Tracer, check, prompt, run_concurrently, test

N_CLIENTS = 16
N_SLOTS = 4
COUNTS = ("prompt_tokens", "cached_tokens", "output_tokens")


class Call:
    """One request on its own connection: the client port, the status, the server's final
    record (the answer, or a stream's last chunk carrying timings) and its usage."""

    def __init__(self, srv, path, body):
        self.path, self.body = path, body
        self.chat = path.startswith("/v1/chat")
        self.stream = bool(body.get("stream"))
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        conn.connect()
        self.port = conn.sock.getsockname()[1]
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        self.status = resp.status
        self.final, self.usage, self.last, self.finish = {}, None, None, None
        if self.stream and resp.status == 200:
            for line in resp:
                line = line.decode().strip()
                if line:
                    self.last = line
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "timings" in chunk:
                    self.final = chunk
                self.usage = chunk.get("usage") or self.usage
                self.finish = server_finish(chunk) or self.finish
        else:
            doc = json.loads(resp.read() or b"{}")
            self.final = doc if isinstance(doc, dict) else {}
            self.usage = self.final.get("usage")
            self.finish = server_finish(self.final)
        conn.close()

    def what(self):
        return f"{self.path} stream={self.stream} port {self.port}"


def server_finish(doc):
    """The reason the server gives in an answer or a chunk: /completion's stop_type, a chat
    completion's finish_reason (OpenAI's names); None when it gives none."""
    if not isinstance(doc, dict):
        return None
    stop_type = doc.get("stop_type")
    if stop_type in ("eos", "word"):
        return "stop"
    if stop_type == "limit":
        return "length"
    choices = doc.get("choices")
    if choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
        return choices[0]["finish_reason"]
    return None


def judge_max_tokens(r, c):
    """'told' (the n_predict / max_tokens it asked for), 'unknown' (left out), 'wrong'."""
    got = (r.get("attributes") or {}).get("gen_ai.request.max_tokens")
    if got is None:
        return "unknown"
    return "told" if got == c.body.get("n_predict") else "wrong"


def judge_finish(r, c):
    """'told' (llmtap's reason is the server's), 'unknown' (llmtap gives none), 'wrong'."""
    got = (r.get("attributes") or {}).get("gen_ai.response.finish_reasons")
    if got is None:
        return "unknown"
    return "told" if got == [c.finish] else "wrong"


def server_counts(c):
    """(prompt_tokens, cached_tokens, output_tokens) of a request as the server counts them."""
    check(c.status == 200, f"{c.what()}: HTTP {c.status}")
    t = c.final.get("timings")
    check(t and "prompt_n" in t and "predicted_n" in t,
          f"{c.what()}: no timings in {c.final!r:.300} (the last line: {c.last!r:.300})")
    prompt_n, predicted_n = t["prompt_n"], t["predicted_n"]
    total = c.usage["prompt_tokens"] if c.usage else c.final.get("tokens_evaluated")
    if "cache_n" in t:
        cache_n = t["cache_n"]
    else:  # before timings.cache_n (b5640): the prompt's total less what was decoded
        check(total is not None, f"{c.what()}: neither timings.cache_n nor a prompt total")
        cache_n = total - prompt_n
    # the server's fields must agree with each other, or the oracle is not one
    if c.usage:
        check(c.usage["prompt_tokens"] == prompt_n + cache_n and
              c.usage["completion_tokens"] == predicted_n,
              f"{c.what()}: the server's usage {c.usage} disagrees with its timings {t}")
    return prompt_n, cache_n, predicted_n


def workload(srv):
    """32 requests for 16 concurrent clients: /completion and chat, streamed and not, each
    its own n_predict; half of them share one of three long prompt prefixes."""
    jobs = []
    for i in range(2 * N_CLIENTS):
        chat, stream = i % 2 == 1, (i // 2) % 2 == 1
        n_predict = 4 + (i * 7) % 29 if i % 8 < 6 else -1  # -1: EOS ends it (request())
        text = prompt(3000 + i, 6 + i % 5)
        if i % 4 >= 2:  # a shared prefix, then words of its own
            text = prompt(3500 + i % 3, 24) + " " + text
        jobs.append(lambda chat=chat, stream=stream, n=n_predict, text=text, i=i:
                    request(srv, chat, stream, n, text, i))
    return jobs


def request(srv, chat, stream, n_predict, text, i):
    """n_predict -1: no limit, end-of-generation forced by a logit bias after a few tokens'
    worth of chance (the tiny model's EOS is token 2)."""
    body = {"n_predict": n_predict, "ignore_eos": True, "stream": stream, "seed": 100 + i,
            "temperature": 0.5, "cache_prompt": True}
    if n_predict < 0:
        body = dict(body, n_predict=64, ignore_eos=False)
        body["logit_bias"] = {"2": 100.0} if chat else [[2, 100.0]]
    if not chat:
        return Call(srv, "/completion", dict(body, prompt=text))
    body = dict(body, max_tokens=body["n_predict"], messages=[{"role": "user", "content": text}])
    if stream:
        body["stream_options"] = {"include_usage": True}
    return Call(srv, "/v1/chat/completions", body)


def judge(r, truth):
    """'exact', 'unattributed', 'wrong' (a number that is not the server's) or 'partial'
    (some counts null on a request not marked unattributed), and why when not exact. A
    count llmtap gives must be the server's; an unknown one is null, and then the request
    is unattributed."""
    got = tuple(r.get(k) for k in COUNTS)
    attribution = r.get("attribution")  # absent before the sinks wrote it: judged by the numbers
    wrong = [f"{k} {g} (server: {w})" for k, g, w in zip(COUNTS, got, truth) if g is not None and g != w]
    attrs = r.get("attributes", {})
    total = (truth[0] + truth[1], truth[2], truth[1])
    for k, w in zip(("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                     "gen_ai.usage.cache_read.input_tokens"), total):
        if attrs.get(k) is not None and attrs[k] != w:
            wrong.append(f"{k} {attrs[k]} (server: {w})")
    if wrong:
        return "wrong", "; ".join(wrong)
    if None not in got:
        if attribution == "unattributed":
            return "wrong", f"unattributed, yet carries counts {got}"
        return "exact", None
    if attribution == "unattributed" and got == (None, None, None):
        return "unattributed", None
    # no wrong number, but neither exact nor said to be unknown
    return "partial", f"counts {got}, attribution {attribution!r}"


def write_result(result):
    path = os.environ.get("LLMTAP_COMPAT_OUT")
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(path + ".tmp", path)


@test
def compat_accuracy_under_concurrency():
    """4 slots, 16 concurrent clients. Steps == the server's n_decode_total delta; every
    request exact or explicitly unattributed, none wrong; all exact where the server
    layer attached. Writes what it found to $LLMTAP_COMPAT_OUT (tests/compat/run.sh)."""
    result = {"server": harness.SERVER_SHARED, "llama_cpp": None, "layers": [], "steps": None,
              "n_decode_delta": None, "requests": 0, "exact": 0, "unattributed": 0, "wrong": 0,
              "partial": 0, "unseen": 0, "failures": [], "llmtap_warnings": [], "passed": False, "error": None,
              "finish": {"told": 0, "unknown": 0, "wrong": 0}, "finish_failures": [],
              "max_tokens": {"told": 0, "unknown": 0, "wrong": 0}}
    try:
        run(result)
        result["passed"] = True
    except BaseException as e:
        result["error"] = str(e) if str(e) else repr(e)
        raise
    finally:
        write_result(result)


def run(result):
    model = harness.MODEL_NO_HIGH_BYTES
    check(model and os.path.exists(model), "LLMTAP_MODEL_NO_HIGH_BYTES is not set (tests/e2e/run.sh sets it)")
    with LlamaServer(np=N_SLOTS, ctx=N_SLOTS * 1024, model=model) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        attach = tr.records("attach")[0]
        result["llama_cpp"] = attach.get("llama_cpp")
        result["layers"] = [l for l in attach["layers"].split(",") if l]
        m0 = srv.metrics()
        calls = run_concurrently(workload(srv), N_CLIENTS)
        # a prefix seen, then asked again while its slot is idle: the prompt cache serves it
        for i, chat in enumerate((False, True)):
            calls.append(request(srv, chat, False, 5, prompt(3600 + i, 24) + " " + prompt(3610 + i, 4), 90 + i))
            calls.append(request(srv, chat, True, 6, prompt(3600 + i, 24) + " " + prompt(3620 + i, 4), 92 + i))
        m1 = srv.metrics()
        time.sleep(0.3)  # the consumer drains on a 100 ms timer
        rc = tr.stop()
    result["llmtap_warnings"] = [l for l in tr.stderr().splitlines() if "warning" in l]
    check(rc == 0, f"llmtap exit code {rc} (stderr: {tr.stderr()})")

    summary = tr.records("summary")
    check(len(summary) == 1, f"{len(summary)} summary records")
    # steps: the summary's count of engine calls (decode; the tiny llama model never encodes),
    # the server's: every llama_decode it made (n_decode_total), over the same time
    result["steps"] = summary[0]["steps"]
    result["n_decode_delta"] = int(m1["n_decode_total"] - m0["n_decode_total"])
    result["lost_events"] = summary[0]["lost_events"]

    truths = [server_counts(c) for c in calls]
    # the oracle against the server's totals: every decoded prompt token and output counted
    for k, name in ((0, "prompt_tokens_total"), (2, "tokens_predicted_total")):
        check(sum(t[k] for t in truths) == m1[name] - m0[name],
              f"the requests' timings vs the server's {name} delta ({m1[name] - m0[name]:.0f})")
    check(any(t[1] > 0 for t in truths), "no request reused the prompt cache")

    records = {}
    for r in tr.records("request"):
        port = r.get("attributes", {}).get("client.port")
        if port is not None:
            check(port not in records, f"two llmtap requests on client port {port}")
            records[port] = r
    result["requests"] = len(calls)
    for c, truth in zip(calls, truths):
        r = records.get(c.port)
        if r is None:
            verdict, why = "unseen", "no llmtap request record on its client port"
        else:
            verdict, why = judge(r, truth)
        result[verdict] += 1
        if r is not None:
            f = judge_finish(r, c)
            result["finish"][f] += 1
            result["max_tokens"][judge_max_tokens(r, c)] += 1
            if f == "wrong":
                result["finish_failures"].append({
                    "request": c.what(), "server": c.finish,
                    "llmtap": r["attributes"].get("gen_ai.response.finish_reasons")})
        if why:
            result["failures"].append({
                "request": c.what(), "verdict": verdict, "why": why,
                "server": dict(zip(COUNTS, truth)),
                "llmtap": {k: r.get(k) for k in COUNTS + ("attribution",)} if r else None})

    problems = []
    if result["steps"] != result["n_decode_delta"]:
        problems.append(f"steps {result['steps']} vs the server's n_decode_total delta "
                        f"{result['n_decode_delta']}")
    if result["lost_events"]:
        problems.append(f"{result['lost_events']} lost events")
    if result["wrong"] or result["partial"] or result["unseen"]:
        problems.append(f"of {len(calls)} requests {result['wrong']} wrong, {result['partial']} "
                        f"partial, {result['unseen']} unseen; first: {result['failures'][:3]}")
    if result["max_tokens"]["wrong"]:
        problems.append(f"{result['max_tokens']['wrong']} max_tokens not the one asked for")
    if result["finish"]["wrong"]:
        problems.append(f"{result['finish']['wrong']} finish reasons not the server's; first: "
                        f"{result['finish_failures'][:3]}")
    check({c.finish for c in calls} == {"stop", "length"},
          f"the server's finish reasons {sorted({str(c.finish) for c in calls})}: want stop and length")
    if "server" in result["layers"] and result["finish"]["told"] != len(calls):
        problems.append(f"the server layer attached, yet only {result['finish']['told']} of "
                        f"{len(calls)} finish reasons told (the build's server_slot::stop is "
                        "in user/target/layout.c)")
    if "server" in result["layers"] and result["exact"] != len(calls):
        problems.append(f"the server layer attached, yet only {result['exact']} of {len(calls)} "
                        "requests exact")
    check(not problems, f"llama.cpp {result['llama_cpp']} (layers {','.join(result['layers'])}): " +
          "; ".join(problems))
