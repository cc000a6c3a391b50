"""End-to-end tests of why requests end (issue 12: finish reasons).

Each request runs on its own connection; llmtap's record is matched to it by the client's
TCP port and must carry the reason the server itself gave: /completion's `stop_type`
(eos, word -> "stop"; limit -> "length"), a chat completion's `finish_reason`; a client
that hangs up mid-stream is "cancelled", a refused request "error". llmtap's request
counter by finish_reason, scraped by a real Prometheus, equals the client's tally, and
the OTLP spans (decoded by the OpenTelemetry project's own code) carry the same array.
"""
import http.client
import json
import os
import time

import harness
from harness import (LlamaServer, Tracer, check, check_eq, free_port, prompt, run_concurrently,
                     test, wait_until)
from otlp_receiver import OtlpReceiver
from test_export import Prometheus
from test_otlp import otlp_env, spans_by_port
from test_requests import by_port

EOS = 2  # </s> in the tiny model's vocabulary (llama SPM)


class Req:
    """One request on its own connection. hang_up: read that many stream chunks, then close."""

    def __init__(self, srv, path, body, hang_up=None, raw=None):
        self.path, self.body = path, body
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        conn.connect()
        self.port = conn.sock.getsockname()[1]
        data = raw if raw is not None else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        self.status, self.last, self.content, self.hung_up = resp.status, {}, "", False
        if body and body.get("stream") and resp.status == 200:
            n = 0
            for line in resp:
                line = line.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                n += 1
                if hang_up is not None and n >= hang_up:
                    self.hung_up = True
                    break
                self.last = json.loads(line[6:])
        else:
            try:
                doc = json.loads(resp.read())
            except ValueError:
                doc = {}
            self.last = doc if isinstance(doc, dict) else {}
            self.content = self.last.get("content", "")
        conn.close()

    def reason(self):
        """What the server (or the client) says ended it."""
        if self.hung_up:
            return "cancelled"
        if not 200 <= self.status < 300:
            return "error"
        if "stop_type" in self.last:  # /completion
            return {"eos": "stop", "word": "stop", "limit": "length"}[self.last["stop_type"]]
        choices = self.last.get("choices") or [{}]
        return choices[0].get("finish_reason")


def completion(p, **kw):
    return dict({"prompt": p, "cache_prompt": False}, **kw)


def chat(p, **kw):
    return dict({"messages": [{"role": "user", "content": p}], "cache_prompt": False}, **kw)


def stop_word_requests(srv):
    """A greedy completion, then the same one stopped at a piece of its own text (the tiny
    model's text is random: the piece is taken from what it says)."""
    body = completion(prompt(900), n_predict=24, temperature=0, ignore_eos=True)
    first = Req(srv, "/completion", body)
    text = first.content
    for k in range(6, len(text) - 3):
        word = text[k:k + 3]
        if word.strip() == word and word and text.find(word) == k:
            return first, Req(srv, "/completion", dict(body, stop=[word]))
    raise harness.Failure(f"no stop word to take from {text!r}")


@test
def finish_reasons_match_the_server():
    """EOS (forced by a logit bias), n_predict / max_tokens, a stop string, the context
    limit, a client that hangs up mid-stream, and errors: each request's finish reason is
    the server's own, in the JSON record and the OTLP span; the counter by finish_reason
    (a real Prometheus) equals the client's tally."""
    prom_port = free_port()
    with OtlpReceiver() as rx, LlamaServer(np=2, ctx=512) as srv:
        env = otlp_env(rx.url())
        tr = Tracer(srv.pid, ["--no-steps", "--prometheus", f"127.0.0.1:{prom_port}"],
                    env=env).wait_attached()
        prom = Prometheus(f"127.0.0.1:{prom_port}")
        try:
            calls = list(stop_word_requests(srv))
            # the rest two at a time, on the server's two slots
            jobs = [
                lambda: Req(srv, "/completion", completion(prompt(901), n_predict=32,
                                                           logit_bias=[[EOS, 100.0]])),
                lambda: Req(srv, "/v1/chat/completions", chat(prompt(902), max_tokens=32,
                                                              stream=True,
                                                              logit_bias={str(EOS): 100.0})),
                lambda: Req(srv, "/completion", completion(prompt(903), n_predict=8,
                                                           ignore_eos=True)),
                lambda: Req(srv, "/completion", completion(prompt(904), n_predict=5,
                                                           ignore_eos=True, stream=True)),
                lambda: Req(srv, "/v1/chat/completions", chat(prompt(905), max_tokens=6,
                                                              ignore_eos=True)),
                # no limit but the slot's context (256 of 512 with 2 slots; no context shift)
                lambda: Req(srv, "/completion", completion(prompt(906), n_predict=-1,
                                                           ignore_eos=True)),
                lambda: Req(srv, "/completion", completion(prompt(907), n_predict=100000,
                                                           ignore_eos=True, stream=True),
                            hang_up=3),
                lambda: Req(srv, "/completion", completion(prompt(908, words=400), n_predict=4)),
                lambda: Req(srv, "/completion", None, raw=b"{not json"),
            ]
            calls += run_concurrently(jobs, 2)
            eos, word, ctx_full = calls[2], calls[1], calls[7]
            # the server is idle again: the cancelled task was taken off its slot
            wait_until(lambda: srv.metrics().get("requests_processing", 1) == 0, 20,
                       "the server to be idle")
            want = {c.port: c.reason() for c in calls}
            # the server did say each of these, or the test proves nothing
            check_eq(sorted(set(want.values())), ["cancelled", "error", "length", "stop"],
                     f"the reasons the requests got ({want})")
            check_eq(eos.last.get("stop_type"), "eos", "the logit bias forced EOS")
            check_eq(word.last.get("stop_type"), "word", "the stop string stopped it")
            check(ctx_full.last.get("truncated") and ctx_full.last.get("stop_type") == "limit",
                  f"the context limit ended it ({ctx_full.last.get('stop_type')})")
            tally = {}
            for r in want.values():
                tally[r] = tally.get(r, 0) + 1
            wait_until(lambda: len(by_port(tr).keys() & want.keys()) == len(calls), 20,
                       "llmtap's request records")

            def counted():
                got = {m["finish_reason"]: v for m, v in prom.query(
                    "sum by (finish_reason) (llmtap_inference_requests_total)")
                    if "finish_reason" in m}
                return got if got == {k: float(v) for k, v in tally.items()} else None
            try:
                wait_until(counted, 20, "Prometheus to have the counter by finish_reason")
            except harness.Failure:
                q = "sum by (finish_reason) (llmtap_inference_requests_total)"
                raise harness.Failure(f"{q}: {prom.query(q)}; the client's tally: {tally}")
            wait_until(lambda: len(spans_by_port(rx.spans()).keys() & want.keys()) == len(calls),
                       20, "a span for every request")
        finally:
            prom.stop()
            check_eq(tr.stop(), 0, f"llmtap exit code ({tr.stderr()})")

    summary = tr.records("summary")[0]["finish_reasons"]
    check_eq({k: v for k, v in summary.items() if v}, tally, "the summary's finish_reasons")
    recs = by_port(tr)
    spans = spans_by_port(rx.spans())
    for c in calls:
        what = f"{c.path} on port {c.port} ({want[c.port]})"
        rec = recs.get(c.port)
        check(rec, f"no record for {what}")
        check_eq(rec["attributes"].get("gen_ai.response.finish_reasons"), [want[c.port]],
                 f"{what}: finish reasons in the JSON record")
        check_eq(spans[c.port]["attributes"].get("gen_ai.response.finish_reasons"),
                 [want[c.port]], f"{what}: finish reasons in the OTLP span")
        # the limit it asked for (n_predict, max_tokens); none asked, or none: left out
        asked = (c.body or {}).get("n_predict", (c.body or {}).get("max_tokens"))
        got = rec["attributes"].get("gen_ai.request.max_tokens")
        if c.status == 200:
            check_eq(got, asked if asked and asked > 0 else None, f"{what}: max_tokens")
        else:
            check(got in (None, asked), f"{what}: max_tokens {got}, asked {asked}")


def stop_word_on_a_limit(srv_args, body, limited, what):
    """Two greedy completions: one a limit ends (limited(answer)), then the same with its
    last token's text as a stop string. The server finds the word, then the limit found on
    the same token sets its stop_type over it: it answers "limit" ("length") with
    stopping_word set. llmtap reads the server's own stop_type (what it sees itself, a
    whole stop-string check last, would not tell). Both must be the server's reason."""
    with LlamaServer(**srv_args) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        try:
            first = Req(srv, "/completion", body)
            toks = first.last.get("tokens") or []
            check(limited(first.last) and toks, f"{what} ended the first one ({first.last})")
            status, piece = srv.post("/detokenize", {"tokens": toks[-1:]})
            word = piece.get("content", "")
            check(status == 200 and word.strip() and word not in first.content[:-len(word)],
                  f"the last token's text, found nowhere before it ({word!r}, {first.content!r})")
            second = Req(srv, "/completion", dict(body, stop=[word]))
            check_eq(second.last.get("stopping_word"), word, "the server found the stop word")
            check_eq(second.last.get("stop_type"), "limit", "the server's stop_type")
            want = {c.port: c.reason() for c in (first, second)}
            wait_until(lambda: len(by_port(tr).keys() & want.keys()) == 2, 20,
                       "llmtap's request records")
        finally:
            check_eq(tr.stop(), 0, f"llmtap exit code ({tr.stderr()})")
    recs = by_port(tr)
    for c, case in ((first, what), (second, f"a stop word on the token {what} ended on")):
        got = recs[c.port]["attributes"].get("gen_ai.response.finish_reasons")
        check(got == [want[c.port]], f"{case}: llmtap says {got}, the server {want[c.port]!r} "
              f"(stop_type {c.last.get('stop_type')}, stopping_word {c.last.get('stopping_word')!r})")


@test
def finish_stop_word_overridden_by_a_limit():
    """Review (issue 12): a stop string found on the very token at which n_indent ends the
    generation (t_max_predict_ms overrides a word the same way)."""
    g = 'root ::= "Q\\n" [a-z] [a-z] [a-z] [a-z] [a-z] [a-z] [a-z] [a-z]'
    body = completion(prompt(930), n_predict=32, temperature=0, grammar=g, n_indent=1,
                      return_tokens=True)
    stop_word_on_a_limit({"np": 2, "ctx": 512}, body,
                         lambda a: a.get("stop_type") == "limit", "n_indent")


@test
def finish_reasons_of_several_choices():
    """Review (issue 12): chat completions with n choices (llama-server's child tasks, one
    slot each): llmtap's array is the server's choices' reasons in index order, or none."""
    with LlamaServer(np=3, ctx=1536) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        calls = []
        try:
            for i, extra in enumerate(({"ignore_eos": True}, {"logit_bias": {str(EOS): 100.0}},
                                       {"logit_bias": {str(EOS): 7.0}, "temperature": 1.0})):
                calls.append(Req(srv, "/v1/chat/completions",
                                 chat(prompt(940 + i), max_tokens=6, n=3, seed=5 + i, **extra)))
            ports = {c.port for c in calls}
            wait_until(lambda: len(by_port(tr).keys() & ports) == len(calls), 20,
                       "llmtap's request records")
        finally:
            check_eq(tr.stop(), 0, f"llmtap exit code ({tr.stderr()})")
    recs = by_port(tr)
    for c in calls:
        choices = sorted(c.last.get("choices") or [], key=lambda ch: ch.get("index", 0))
        want = [ch.get("finish_reason") for ch in choices]
        check_eq(len(want), 3, f"three choices ({c.last})")
        got = recs[c.port]["attributes"].get("gen_ai.response.finish_reasons")
        check_eq(got, want, f"port {c.port}: llmtap's finish reasons")


@test
def finish_stop_word_on_the_context_limit():
    """Review (issue 12): a stop string found on the token that fills the slot's context."""
    body = completion(prompt(950), n_predict=-1, temperature=0, ignore_eos=True,
                      return_tokens=True)
    stop_word_on_a_limit({"np": 1, "ctx": 256}, body,
                         lambda a: a.get("truncated") and a.get("stop_type") == "limit",
                         "the context")
