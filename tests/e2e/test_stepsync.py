"""End-to-end tests of a step's compute time (issue 12: asynchronous steps end at their
context's next synchronize). On the CPU backend llama_decode returns when the work is
done: the compute time must equal the submit time, and nothing else may change."""
import os
import re
import time

import harness
from harness import LlamaServer, Tracer, check, check_eq, prompt, run_concurrently, test

# STEPSYNC_WAIT_NS (user/model/stepsync.h): a synchronizing call that took longer waited
WAIT_NS = 100000
# the raw sync records --debug-events prints (user/probe/event.c)
SYNC_LINE = re.compile(r"^sync tid=\d+ ctx=(0x[0-9a-f]+) step_end=(\d+) t=(\d+)\.\.(\d+) op=(\d+) "
                       r"flags=(\d+)$")
PREEMPTED = 1


def sync_records(stderr):
    out = []
    for line in stderr.splitlines():
        m = SYNC_LINE.match(line)
        if m:
            out.append({"ctx": m.group(1), "step_end": int(m.group(2)), "start": int(m.group(3)),
                        "end": int(m.group(4)), "op": int(m.group(5)), "flags": int(m.group(6))})
    return out


def compute_matches_submit(n_requests=16, concurrency=4):
    # the model without byte tokens: older servers (b8390) reject some prompts of the other
    model = harness.MODEL_NO_HIGH_BYTES
    check(model and os.path.exists(model), "LLMTAP_MODEL_NO_HIGH_BYTES is not set (tests/e2e/run.sh sets it)")
    with LlamaServer(np=2, model=model) as srv:
        tr = Tracer(srv.pid, ["--debug-events"]).wait_attached()
        try:
            m0 = srv.metrics()
            responses = run_concurrently([lambda i=i: srv.complete(prompt(7100 + i, 6 + i % 7), 10 + i % 13)
                                          for i in range(n_requests)], concurrency)
            m1 = srv.metrics()
            time.sleep(0.3)  # the consumer drains on a 100 ms timer
        finally:
            rc = tr.stop()
        check_eq(rc, 0, f"llmtap exit code (stderr: {tr.stderr()[-2000:]})")

    steps = tr.records("step")
    syncs = sync_records(tr.stderr())
    # nothing else changed: the steps are the server's decodes, their outputs its tokens
    check_eq(len(steps), m1["n_decode_total"] - m0["n_decode_total"],
             "steps vs llamacpp:n_decode_total delta")
    check_eq(sum(s["n_outputs"] for s in steps), sum(r["timings"]["predicted_n"] for r in responses),
             "summed outputs vs the server's predicted_n")
    # llama-server reads the outputs of every step that has some (common_sampler_sample):
    # one sync record per such step, the first read after it, on the step's context
    with_outputs = [s for s in steps if s["n_outputs"] > 0]
    check(len(with_outputs) > n_requests, f"only {len(with_outputs)} steps with outputs")
    check_eq(len(syncs), len(with_outputs), "sync records vs steps whose outputs were read")
    check(all(y["ctx"] == steps[0]["ctx"] for y in syncs), "a sync record on another context")
    check(all(y["start"] >= y["step_end"] and y["end"] >= y["start"] for y in syncs),
          "a sync record before the step it ends")
    check_eq(len({y["step_end"] for y in syncs}), len(syncs), "two sync records for one step")
    waited = [y for y in syncs if y["end"] - y["start"] > WAIT_NS]
    preempted_waits = [y for y in waited if y["flags"] & PREEMPTED]

    # compute time: the first step after the attach went on before any sync record armed
    # the pairing (unknown); a sync that waited while preempted says unknown; the rest known
    unknown = [s for s in steps if s["compute_ns"] is None]
    check_eq(len([s for s in unknown if s["n_outputs"] > 0]), 1 + len(preempted_waits),
             f"steps with outputs whose compute time is unknown ({len(preempted_waits)} "
             "sync calls preempted while they took over 100 us)")
    check_eq(len(unknown), len(steps) - len(with_outputs) + 1 + len(preempted_waits),
             "steps whose compute time is unknown")
    known = [s for s in steps if s["compute_ns"] is not None]
    # CPU: the work is done when llama_decode returns, and synchronize() does not wait
    differ = [s for s in known if s["compute_ns"] != s["duration_ns"]]
    check_eq(len(differ), len(waited) - len(preempted_waits),
             "steps whose compute time is not their submit time vs sync calls that took over 100 us")
    check(len(differ) <= max(1, len(known) // 100),
          f"{len(differ)} of {len(known)} steps on the CPU backend with compute != submit")
    for s in differ:
        check(s["compute_ns"] > s["duration_ns"], f"a compute time below its submit time: {s}")
    submit = sum(s["duration_ns"] for s in known)
    compute = sum(s["compute_ns"] for s in known)
    check(abs(compute - submit) <= submit // 100,
          f"summed compute {compute} ns vs summed submit {submit} ns of the same steps")

    summary = tr.records("summary")
    check_eq(len(summary), 1, "summary records")
    check_eq(summary[0]["steps"], len(steps), "summary steps")
    check_eq(summary[0]["step_compute_duration_s"]["count"], len(known),
             "the compute histogram's count vs the steps with a known compute time")
    check_eq(summary[0]["step_compute_unknown"], len(unknown), "summary step_compute_unknown")
    check_eq(summary[0]["step_duration_s"]["count"], len(steps), "the submit histogram's count")
    check_eq(summary[0]["lost_events"], 0, "lost events")
    return len(steps), len(syncs), submit, compute


@test
def step_compute_equals_submit_on_cpu():
    """Today's llama-server on the CPU backend: every step whose outputs were read has one
    sync record, and its compute time is its submit time."""
    compute_matches_submit()


@test
def step_compute_in_embedder_own_sampler():
    """An embedder that samples on its own (llama_get_logits_ith, the sampling layer's
    probe): the one probe serves both jobs, so its tokens are counted as before and every
    step but the first (before a sync record armed the pairing) and the last (its outputs
    never read) has its compute time, its submit time on the CPU backend."""
    from test_requests import run_embedder

    tr, did = run_embedder(5, "own")
    steps = tr.records("step")
    check_eq(len(steps), did["decode_calls"], "decode calls")
    check_eq(tr.records("summary")[0]["sampled_tokens"], did["sampled"], "sampled tokens")
    check(all(s["n_outputs"] > 0 for s in steps), "a step without outputs")
    check(steps[0]["compute_ns"] is None, "the first step's compute time known before any sync")
    # the embedder never reads its last batch's outputs: no sync, unknown (not its submit)
    check(steps[-1]["compute_ns"] is None, "the last step's compute time known without a sync")
    rest = steps[1:-1]
    check(len(rest) >= 3, f"only {len(rest)} steps between the first and the last")
    check_eq([s["compute_ns"] for s in rest], [s["duration_ns"] for s in rest],
             "compute vs submit time of the steps between the first and the last")
