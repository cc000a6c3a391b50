"""Review (r2) proofs. A header EOS llama.cpp does not use: llama-server's --override-kv
sets tokenizer.ggml.eos_token_id for its vocabulary (llama_model_loader::get_key honours
overrides), so the GGUF header's EOS id llmtap calls 'sure' end-of-generation may be an
ordinary token to the server. On b7698 "</s>" (the tiny model's header EOS, id 2) is not
among the texts llama.cpp makes EOG by name, so with the EOS overridden to another id a
limit that ends a generation on token 2 is "length" to the server (its own stop_type,
which llmtap reads on b7698), and llmtap must not say "stop"."""
import os

import harness
from harness import LlamaServer, Tracer, check, check_eq, test, wait_until
from test_finish import Req, completion
from test_kvmem import compat_server
from test_requests import by_port

B7698 = "79efbb133964"
FORCED = 2  # "</s>": the header's EOS id
OTHER_EOS = 1000  # what the server is told its EOS is


@test
def review_r2_finish_header_eos_overridden():
    """A generation a limit ends on the header's EOS token, which the server was told is
    not its EOS: the server says "length"; llmtap's finish reason must be that or unknown."""
    model = harness.MODEL_NO_HIGH_BYTES
    check(model and os.path.exists(model), "LLMTAP_MODEL_NO_HIGH_BYTES is not set")
    # --no-direct-io: b7698 reads the model with direct I/O by default (no mapping: no vocabulary)
    args = ["--no-direct-io", "--override-kv", f"tokenizer.ggml.eos_token_id=int:{OTHER_EOS}"]
    with LlamaServer(binary=compat_server(B7698), model=model, np=1, args=args) as srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        try:
            calls = [Req(srv, "/completion", completion("Hello there", n_predict=n,
                                                        logit_bias=[[FORCED, 100.0]],
                                                        n_probs=0, return_tokens=True))
                     for n in (1, 3)]
            wait_until(lambda: len(by_port(tr).keys() & {c.port for c in calls}) == len(calls),
                       20, "llmtap's request records")
        finally:
            rc = tr.stop()
        log = srv.log_text()
    check_eq(rc, 0, f"llmtap exit code ({tr.stderr()[-2000:]})")
    # the server's EOG set lacks token 2: the test proves something only then
    check(f"- {OTHER_EOS} " in log and f"- {FORCED} (" not in log,
          f"the server's EOG tokens (log):\n{[l for l in log.splitlines() if 'EOG' in l or ' - ' in l][:20]}")
    # llmtap read the model's vocabulary (the file is mapped), or the test proves nothing
    check(tr.records("attach") and tr.records("attach")[0].get("model"),
          f"llmtap saw no model file ({tr.records('attach')})")
    recs = by_port(tr)
    for c in calls:
        check_eq(c.last.get("tokens", [])[-1:], [FORCED], f"the forced last token ({c.last})")
        check_eq(c.reason(), "length", f"the server's reason ({c.last.get('stop_type')})")
        got = recs[c.port]["attributes"].get("gen_ai.response.finish_reasons")
        check(got in (None, ["length"]),
              f"llmtap says {got} for a request the server ended with 'length'")


@test
def review_r2_attach_without_uprobe_sessions():
    """The sync rows are OPT sites; uprobe sessions only make them cheaper. A kernel that
    refuses a session link (EINVAL: here an LD_PRELOAD shim on llmtap's bpf(2) calls says
    so for BPF_TRACE_UPROBE_SESSION only) must leave llmtap attached with its classic
    probes (or at least without the sync sites), not fail the attach."""
    import subprocess
    import tempfile
    src = os.path.join(os.path.dirname(__file__), "review", "no_uprobe_session.c")
    so = os.path.join(tempfile.mkdtemp(prefix="llmtap-r2-"), "no_uprobe_session.so")
    out = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", so, src, "-ldl"],
                         capture_output=True, text=True)
    check_eq(out.returncode, 0, f"building the shim: {out.stderr}")
    with LlamaServer(np=1) as srv:
        tr = Tracer(srv.pid, ["--no-steps"], env=dict(os.environ, LD_PRELOAD=so))
        try:
            wait_until(lambda: tr.records("attach") or tr.proc.poll() is not None, 20,
                       "llmtap to attach or exit")
            check(tr.proc.poll() is None and tr.records("attach"),
                  f"llmtap did not attach without uprobe sessions: {tr.stderr()[-600:]}")
            srv.complete("Hello", 4)
        finally:
            tr.stop()


def throwing_server():
    """A llama-server whose next ggml_backend_sched_synchronize throws once a flag file
    exists: (the server, the flag's path). The shim is named like ggml's Vulkan backend,
    whose synchronize does throw (VK_CHECK): to llmtap the process has a backend that
    may throw through a synchronize."""
    import subprocess
    import tempfile
    src = os.path.join(os.path.dirname(__file__), "review", "throw_in_synchronize.cpp")
    d = tempfile.mkdtemp(prefix="llmtap-r2-")
    so = os.path.join(d, "libggml-vulkan.so")
    out = subprocess.run(["c++", "-shared", "-fPIC", "-O1", "-o", so, src, "-ldl"],
                         capture_output=True, text=True)
    check_eq(out.returncode, 0, f"building the shim: {out.stderr}")
    flag = os.path.join(d, "throw")
    env = dict(os.environ, LD_PRELOAD=so, R2_THROW_FLAG=flag)
    return LlamaServer(np=1, env=env), flag


def throw_once(srv, flag):
    """One request during which synchronize throws: llama-server's update_slots catches it
    (decode() failed, abort_all_slots) and goes on serving."""
    import http.client
    open(flag, "w").close()
    try:
        srv.post("/completion", {"prompt": "Hello there", "n_predict": 4, "cache_prompt": False})
    except (OSError, http.client.HTTPException):
        pass  # the server closed the connection: told below
    wait_until(lambda: srv.proc.poll() is not None or "decode() failed" in srv.log_text(), 10,
               "the server to handle the exception or die")
    check(not os.path.exists(flag), "the shim did not throw (no synchronize during the request)")
    check(srv.proc.poll() is None,
          f"llama-server died ({srv.proc.returncode}): {srv.log_text()[-600:]}")
    check_eq(srv.get("/health")[0], 200, "llama-server health after the exception")
    check("decode() failed" in srv.log_text(), "the server's own handler caught it")


@test
def review_r2_synchronize_exception_control():
    """Control: without llmtap, an exception out of llama_synchronize reaches llama-server's
    handler and the server survives (what the next test holds llmtap to)."""
    srv, flag = throwing_server()
    with srv:
        throw_once(srv, flag)


@test
def review_r2_synchronize_exception_with_llmtap():
    """ggml-vulkan's synchronize throws (VK_CHECK); llama-server catches it (yield_to_queue
    rethrows it to update_slots' catch). A return probe on the call would turn it into
    std::terminate: with a backend whose synchronize may throw (not the host's, not
    ggml-cuda's, which abort), llmtap leaves the sync sites off, says so, and the
    exception reaches the server's handler; every step's compute time is unknown."""
    srv, flag = throwing_server()
    with srv:
        tr = Tracer(srv.pid, ["--no-steps"]).wait_attached()
        try:  # as the control: the first synchronize is a sampler's (a warm-up request
            # would make it the prompt cache's save, which llama-server does not catch)
            throw_once(srv, flag)
            srv.complete("after", 2)
        finally:
            tr.stop()
    check("no step compute time: a call that synchronizes may throw in libggml-vulkan.so"
          in tr.stderr(), f"llmtap says why it left the sync sites off ({tr.stderr()[-400:]})")
    summary = tr.records("summary")[0]
    check(summary["steps"] > 0 and summary["step_compute_unknown"] == summary["steps"],
          f"every step's compute time unknown ({summary['steps']} steps, "
          f"{summary['step_compute_unknown']} unknown)")
