"""End-to-end tests of `llmtap attach` against a real llama-server (issue: foundation)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness

from harness import (SERVER_SHARED, SERVER_STATIC, BackgroundLoad, LlamaServer, Tracer,
                     bpf_program_ids, check,
                     check_eq, prompt, run_concurrently, run_llmtap, test, wait_until)


def send_load(srv, n_requests, concurrency, first=0):
    """n_requests completions, each with its own prompt and length, `concurrency` at a time."""
    return run_concurrently([lambda i=i: srv.complete(prompt(first + i, 6 + i % 9), 8 + (i * 5) % 17)
                             for i in range(n_requests)], concurrency)


def check_llama_version(srv, attach):
    """The llama.cpp llmtap names is the one the server reports (/props build_info
    "b<number>-<commit>"), and libllama's file version where it is a shared library."""
    status, body = srv.get("/props")
    check_eq(status, 200, "GET /props")
    build_info = json.loads(body)["build_info"]
    check(re.fullmatch(r"b\d+-[0-9a-f]{4,12}", build_info), f"the server's build_info {build_info}")
    want = build_info
    m = re.search(r"/libllama\.so\.([0-9.]+)$", attach["library"])
    if m:
        want += f" (libllama {m.group(1)})"
        check_eq(attach["resource"].get("llmtap.llama_cpp.library_version"), m.group(1),
                 "resource llmtap.llama_cpp.library_version")
    check_eq(attach.get("llama_cpp"), want, "the llama.cpp version in the attach record")
    check_eq(attach["resource"].get("llmtap.llama_cpp.commit"), build_info.split("-")[1],
             "resource llmtap.llama_cpp.commit")
    check_eq(attach["resource"].get("llmtap.llama_cpp.build"), build_info.split("-")[0][1:],
             "resource llmtap.llama_cpp.build")


def steps_match_server(binary, expect_in_executable, env=None):
    with LlamaServer(binary, np=2) as srv:
        tr = Tracer(srv.pid, env=env).wait_attached()
        attach = tr.records("attach")[0]
        check_eq(attach["in_executable"], expect_in_executable, "attach.in_executable")
        check_eq((attach["model"], attach["model_architecture"]), ("llmtap-tiny-llama", "llama"),
                 "the model named in the mapped GGUF file's header")
        check(attach["layers"].startswith("engine"), f"layers attached: {attach['layers']}")
        check_llama_version(srv, attach)
        m0 = srv.metrics()
        responses = send_load(srv, 12, 4)
        m1 = srv.metrics()
        time.sleep(0.3)  # the consumer drains on a 100 ms timer
        check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")

    steps = tr.records("step")
    n_decode = m1["n_decode_total"] - m0["n_decode_total"]
    check(n_decode > 0, "the server counted no decode calls")
    check_eq(len(steps), n_decode, "llama_decode calls seen by llmtap vs llamacpp:n_decode_total delta")
    check(all(s["op"] == "decode" and s["ret"] == 0 for s in steps), "a step failed or was not a decode")
    check(all(s["pid"] == srv.pid for s in steps), "a step from another process")

    # every decoded token: the prompt tokens not in cache, then each sampled token but the last
    want_tokens = sum(r["timings"]["prompt_n"] + r["timings"]["predicted_n"] - 1 for r in responses)
    check_eq(sum(s["n_tokens"] for s in steps), want_tokens,
             "summed batch tokens vs the server's timings (prompt_n + predicted_n - 1 per request)")
    server_tokens = (m1["prompt_tokens_total"] - m0["prompt_tokens_total"] +
                     m1["tokens_predicted_total"] - m0["tokens_predicted_total"] - len(responses))
    check_eq(want_tokens, server_tokens, "timings vs /metrics token counters")
    # one output (logits row) per sampled token
    check_eq(sum(s["n_outputs"] for s in steps),
             sum(r["timings"]["predicted_n"] for r in responses), "summed outputs vs predicted_n")
    for s in steps:
        check(1 <= s["n_seqs"] <= 2, f"n_seqs {s['n_seqs']} outside the 2 slots")
        check_eq(sum(r["n_tokens"] for r in s["seqs"]), s["n_tokens"], "runs cover the batch")
        check(all(0 <= r["seq"] < 2 for r in s["seqs"]), f"seq id outside the slots: {s['seqs']}")
        check(s["duration_ns"] > 0, "a step of zero duration")

    summary = tr.records("summary")
    check_eq(len(summary), 1, "summary records")
    check_eq(summary[0]["steps"], len(steps), "summary steps")
    check_eq(summary[0]["tokens"], want_tokens, "summary tokens")
    check_eq(summary[0]["lost_events"], 0, "lost events")
    check_eq(summary[0]["end_reason"], "interrupted (SIGINT)", "end reason")


@test
def decode_calls_and_tokens_match_server_shared():
    steps_match_server(SERVER_SHARED, False)


@test
def decode_calls_and_tokens_match_server_static():
    check(SERVER_STATIC, "LLAMA_SERVER_STATIC is not set")
    steps_match_server(SERVER_STATIC, True)


@test
def decode_calls_and_tokens_match_server_perf_links():
    """The same with a perf-event link per probe, as on kernels without uprobe_multi."""
    steps_match_server(SERVER_SHARED, False, env=dict(os.environ, LLMTAP_NO_UPROBE_MULTI="1"))


@test
def detaches_quickly():
    """Ctrl-C to exit: with uprobe_multi links, detaching does not wait once per probe."""
    with LlamaServer(np=1) as srv:
        tr = Tracer(srv.pid).wait_attached()
        t0 = time.monotonic()
        check_eq(tr.stop(signal.SIGTERM), 0, "llmtap exit code after SIGTERM")
        elapsed = time.monotonic() - t0
    check(elapsed < 2.0, f"llmtap took {elapsed:.2f}s to detach and exit")
    check_eq(tr.records("summary")[0]["end_reason"], "terminated (SIGTERM)", "end reason")


@test
def a_thread_id_traces_its_process():
    """`--pid` given one of the server's thread ids (what top -H shows) traces the process."""
    with LlamaServer(np=1) as srv:
        tids = [int(t) for t in os.listdir(f"/proc/{srv.pid}/task") if int(t) != srv.pid]
        check(tids, "llama-server has no threads besides its main one")
        tr = Tracer(tids[0]).wait_attached()
        check_eq(tr.records("attach")[0]["pid"], srv.pid, "the process traced")
        m0 = srv.metrics()
        send_load(srv, 2, 1, first=900)
        m1 = srv.metrics()
        time.sleep(0.3)
        check_eq(tr.stop(), 0, "llmtap exit code")
    check(f"{tids[0]} is a thread of process {srv.pid}" in tr.stderr(), f"stderr: {tr.stderr()!r}")
    check_eq(len(tr.records("step")), m1["n_decode_total"] - m0["n_decode_total"], "steps")


@test
def console_view_live_lines_and_duration():
    with LlamaServer(np=1) as srv:
        m0 = srv.metrics()
        tr = Tracer(srv.pid, ["--duration", "3s", "--interval", "500ms"], json_mode=False)
        tr.wait_attached()
        send_load(srv, 4, 1, first=100)
        m1 = srv.metrics()
        check_eq(tr.wait(15), 0, f"llmtap exit code (stderr: {tr.stderr()})")
    out = "\n".join(tr.lines)
    live = [l for l in tr.lines if re.match(r"\d\d:\d\d:\d\d  ", l)]
    check(len(live) >= 5, f"expected a live line per 500ms over 3s, got {len(live)}:\n{out}")
    busy = [l for l in live if " decode " in l and "tokens" in l and "p99" in l]
    check(busy, f"no live line with engine steps:\n{out}")
    check("ended: duration elapsed" in out, f"no summary with the end reason:\n{out}")
    steps_line = [l for l in tr.lines if l.strip().startswith("steps ")]
    check(steps_line, f"no steps line in the summary:\n{out}")
    n = int(steps_line[0].split()[1])
    check_eq(n, m1["n_decode_total"] - m0["n_decode_total"], "summary steps vs n_decode_total delta")


@test
def target_exit_ends_with_summary():
    srv = LlamaServer(np=1)
    try:
        tr = Tracer(srv.pid).wait_attached()
        send_load(srv, 2, 1, first=200)
        n_decode = srv.metrics()["n_decode_total"]
    finally:
        srv.stop()
    check_eq(tr.wait(10), 0, f"llmtap exit code after the target exited (stderr: {tr.stderr()})")
    summary = tr.records("summary")
    check(summary, "no summary after the target exited")
    check_eq(summary[0]["end_reason"], "target exited", "end reason")
    check_eq(summary[0]["steps"], n_decode, "steps traced vs the server's n_decode_total")


@test
def sigkill_under_load_leaves_server_serving():
    with LlamaServer(np=2) as srv:
        def request(k, i):
            return srv.post("/completion", {"prompt": prompt(1000 * k + i, 8), "n_predict": 24,
                                            "ignore_eos": True})[0]

        with BackgroundLoad(request, 4) as load:
            time.sleep(1)
            tr = Tracer(srv.pid).wait_attached()
            wait_until(lambda: tr.records("step"), 10, "steps under load")
            ours = tr.new_programs()
            check(ours, "no llmtap programs loaded while attached")
            tr.proc.send_signal(signal.SIGKILL)
            tr.wait(10)
            time.sleep(2)  # keep the load going after the kill
        errors, statuses = load.errors, load.results
        check(not errors, f"requests failed after SIGKILL: {errors[:3]}")
        check(statuses and all(s == 200 for s in statuses),
              f"non-200 responses: {[s for s in statuses if s != 200][:5]}")
        check_eq(srv.get("/health")[0], 200, "server health after SIGKILL")
        # the kernel frees an exited llmtap's programs after a grace period
        wait_until(lambda: not bpf_program_ids() & ours, 10, "BPF programs to go away with llmtap")
        # and the server can be traced again, exactly
        tr2 = Tracer(srv.pid).wait_attached()
        m0 = srv.metrics()
        send_load(srv, 2, 1, first=300)
        m1 = srv.metrics()
        time.sleep(0.3)
        check_eq(tr2.stop(), 0, "second llmtap exit code")
        check_eq(len(tr2.records("step")), m1["n_decode_total"] - m0["n_decode_total"],
                 "steps after re-attaching")


@test
def renamed_library_in_another_mount_namespace():
    """libllama under another file name, reachable only inside the target's mount namespace."""
    bindir = os.path.dirname(SERVER_SHARED)
    hidden = tempfile.mkdtemp(prefix="llmtap-ns-")  # empty on the host; a tmpfs inside
    script = (
        'set -e; mount -t tmpfs none "$D"; mkdir "$D/bin"; cp -a "$B"/. "$D/bin/"; '
        'rm "$D/bin/libllama.so.0"; mv "$D/bin/libllama.so.0.5.0" "$D/bin/libllama.v9-renamed.so"; '
        'ln -s libllama.v9-renamed.so "$D/bin/libllama.so.0"; '
        'export LD_LIBRARY_PATH="$D/bin"; exec "$D/bin/llama-server" "$@"')
    prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"]
    env = dict(os.environ, D=hidden, B=bindir)
    try:
        with LlamaServer(binary="", prefix=prefix, env=env, np=1) as srv:
            check(not os.listdir(hidden), "the namespace's files leaked to the host")
            tr = Tracer(srv.pid).wait_attached()
            lib = tr.records("attach")[0]["library"]
            check_eq(lib, os.path.join(hidden, "bin", "libllama.v9-renamed.so"), "library found")
            m0 = srv.metrics()
            send_load(srv, 3, 1, first=400)
            m1 = srv.metrics()
            time.sleep(0.3)
            check_eq(tr.stop(), 0, f"llmtap exit code (stderr: {tr.stderr()})")
            check_eq(len(tr.records("step")), m1["n_decode_total"] - m0["n_decode_total"],
                     "steps in the other namespace vs n_decode_total delta")
    finally:
        os.rmdir(hidden)


def one_line_error(rc, err, want_rc, *fragments):
    check_eq(rc, want_rc, f"exit code (stderr: {err!r})")
    lines = err.strip().splitlines()
    check_eq(len(lines), 1, f"error lines in {err!r}")
    for f in fragments:
        check(f in lines[0], f"{f!r} not in the error {lines[0]!r}")


@test
def error_no_such_pid():
    rc, _, err = run_llmtap(["attach", "--pid", "999999"])
    one_line_error(rc, err, 1, "no process with PID 999999")


@test
def error_not_root():
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
              "--bounding-set=-all"]
    rc, _, err = run_llmtap(["attach", "--pid", "1"], prefix=prefix)
    one_line_error(rc, err, 1, "needs root", "CAP_BPF", "CAP_PERFMON")


def hiding(path):
    """A prefix that runs a command in a mount namespace where path is an empty tmpfs:
    the kernel feature behind it looks absent, for that command only."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            f'mount -t tmpfs none {path} && exec "$@"', "sh"]


@test
def error_kernel_without_btf():
    rc, _, err = run_llmtap(["attach", "--pid", "1"], prefix=hiding("/sys/kernel/btf"))
    one_line_error(rc, err, 1, "no BTF", "CONFIG_DEBUG_INFO_BTF")


@test
def error_kernel_without_uprobes():
    rc, _, err = run_llmtap(["attach", "--pid", "1"], prefix=hiding("/sys/bus/event_source/devices"))
    one_line_error(rc, err, 1, "no uprobe support", "CONFIG_UPROBE_EVENTS")


@test
def error_no_llama_in_target():
    sleeper = subprocess.Popen(["sleep", "60"])

    def libc_mapped():
        with open(f"/proc/{sleeper.pid}/maps") as f:
            return "libc.so.6" in f.read()
    try:
        wait_until(libc_mapped, 5, "sleep to map libc")
        rc, _, err = run_llmtap(["attach", "--pid", str(sleeper.pid)])
    finally:
        sleeper.kill()
        sleeper.wait()
    one_line_error(rc, err, 1, f"no llama.cpp in PID {sleeper.pid} (sleep)", "searched:",
                   "libc.so.6", "llama_decode")


@test
def error_stripped_static_server():
    check(SERVER_STATIC, "LLAMA_SERVER_STATIC is not set")
    tmp = tempfile.mkdtemp(prefix="llmtap-strip-")
    stripped = os.path.join(tmp, "llama-server")
    try:
        subprocess.run(["strip", "-o", stripped, SERVER_STATIC], check=True)
        with LlamaServer(binary=stripped, np=1) as srv:
            rc, _, err = run_llmtap(["attach", "--pid", str(srv.pid)])
            one_line_error(rc, err, 1, "no llama.cpp in PID", f"{stripped} is stripped")
            check_eq(srv.get("/health")[0], 200, "server health after the failed attach")
    finally:
        shutil.rmtree(tmp)


@test
def usage_errors_and_help():
    for args, fragment in ([[], "Usage: llmtap COMMAND"],
                           [["attach"], "give --pid PID"],
                           [["attach", "--pid", "12x"], "is not a process ID"],
                           [["attach", "--pid", "1", "--duration", "soon"], "not a positive duration"],
                           [["attach", "--pid", "1", "--ringbuf-size", "3000"], "power of two"],
                           [["frobnicate"], "unknown command 'frobnicate'"]):
        rc, _, err = run_llmtap(args)
        check_eq(rc, 2, f"exit code of llmtap {' '.join(args)}")
        check(fragment in err, f"{fragment!r} not in {err!r}")
    rc, out, _ = run_llmtap(["attach", "--help"])
    check_eq(rc, 0, "attach --help exit code")
    for fragment in ("--pid", "--duration", "--json", "Examples:", "Exit status"):
        check(fragment in out, f"{fragment!r} not in attach --help")
    # every command's --help at 80 columns: no long or hand-broken line, examples at the end
    p = subprocess.run([sys.executable, os.path.join(harness.ROOT, "tests", "help-check.py"),
                        harness.LLMTAP], capture_output=True, text=True, timeout=60)
    check_eq(p.returncode, 0, f"tests/help-check.py: {p.stdout}{p.stderr}")
    rc, out, _ = run_llmtap(["--version"])
    check(rc == 0 and out.startswith("llmtap "), f"--version: {rc} {out!r}")
