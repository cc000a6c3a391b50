"""End-to-end test harness: a real llama-server, the real llmtap, the server's own numbers.

Only the Python standard library (Debian's /usr/bin/python3). Each test is a function
decorated with @test; run_all() prints one line per test and 'N passed, N failed'.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LLMTAP = os.environ.get("LLMTAP", os.path.join(ROOT, "llmtap"))
SERVER_SHARED = os.environ.get("LLAMA_SERVER_SHARED", "")
SERVER_STATIC = os.environ.get("LLAMA_SERVER_STATIC", "")
MODEL = os.environ.get("LLMTAP_MODEL", "")
MODEL_NO_HIGH_BYTES = os.environ.get("LLMTAP_MODEL_NO_HIGH_BYTES", "")

_tests = []


def test(fn):
    _tests.append(fn)
    return fn


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def check_eq(got, want, what):
    if got != want:
        raise Failure(f"{what}: got {got!r}, want {want!r}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise Failure(f"timed out after {timeout}s waiting for {what}")


class LlamaServer:
    """A llama-server on 127.0.0.1 on the tiny model.

    binary "" runs prefix alone with the server's arguments (prefix execs the server)."""

    def __init__(self, binary=None, args=(), np=2, ctx=2048, prefix=(), env=None, port=None,
                 model=None):
        self.binary = SERVER_SHARED if binary is None else binary
        self.port = port or free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
        cmd = list(prefix) + ([self.binary] if self.binary else []) + ["-m", model or MODEL, "--host", "127.0.0.1",
                              "--port", str(self.port), "-np", str(np), "-c", str(ctx),
                              "-t", "1", "--metrics", "--no-webui"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self.pid = self.proc.pid
        try:
            wait_until(self._healthy, 60, f"llama-server on port {self.port}")
        except Failure:
            self.stop()
            raise Failure(f"llama-server did not come up; log:\n{self.log_text()[-3000:]}")

    def _healthy(self):
        if self.proc.poll() is not None:
            raise Failure(f"llama-server exited with {self.proc.returncode}:\n"
                          f"{self.log_text()[-3000:]}")
        try:
            return self.get("/health")[0] == 200
        except OSError:
            return False

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, timeout=10):
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path, body, timeout=120):
        req = urllib.request.Request(self.url(path), data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def complete(self, prompt, n_predict):
        status, body = self.post("/completion", {"prompt": prompt, "n_predict": n_predict,
                                                 "ignore_eos": True, "cache_prompt": False})
        check_eq(status, 200, f"HTTP status of /completion ({body!r:.200})")
        return body

    def metrics(self):
        status, body = self.get("/metrics")
        check_eq(status, 200, "HTTP status of /metrics")
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("llamacpp:"):
                name, value = line.split()[:2]
                out[name[len("llamacpp:"):]] = float(value)
        return out

    def log_text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.unlink(self.log.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Tracer:
    """llmtap attach --json on a PID; collects the JSON records it writes (bytes that are
    not UTF-8 kept as lone surrogates, U+DC80..U+DCFF: a test can tell them)."""

    def __init__(self, pid, args=(), json_mode=True, prefix=(), env=None, command=None):
        """command: llmtap's arguments instead of `attach --pid PID ...` (e.g. a daemon)."""
        cmd = list(prefix) + [LLMTAP] + (list(command) if command else ["attach", "--pid", str(pid)]) + \
              (["--json"] if json_mode else []) + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, errors="surrogateescape", env=env)
        self.json_mode = json_mode
        self.lines = []
        self.err = ""
        self._lock = threading.Lock()
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._errt = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._errt.start()

    def _read_out(self):
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def _read_err(self):
        for line in self.proc.stderr:
            with self._lock:
                self.err += line

    def stderr_so_far(self):
        with self._lock:
            return self.err

    def records(self, kind=None):
        with self._lock:
            recs = [json.loads(l) for l in self.lines if l.startswith("{")]
        return [r for r in recs if kind is None or r["type"] == kind]

    def wait_attached(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise Failure(f"llmtap exited with {self.proc.returncode}: {self.stderr()}")
            if self.json_mode:
                return self.records("attach")
            with self._lock:
                return any("tracing PID" in l for l in self.lines)
        wait_until(ready, timeout, "llmtap to attach")
        return self

    def stop(self, sig=signal.SIGINT, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout=30):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure(f"llmtap did not exit within {timeout}s")
        self._out.join(5)
        self._errt.join(5)
        keep = os.environ.get("LLMTAP_E2E_KEEP")
        if keep:  # a directory: every tracer's output and stderr, for a failure's post-mortem
            os.makedirs(keep, exist_ok=True)
            with open(os.path.join(keep, f"llmtap-{self.proc.pid}.out"), "w") as f:
                f.write("\n".join(self.lines) + "\n")
            with open(os.path.join(keep, f"llmtap-{self.proc.pid}.err"), "w") as f:
                f.write(self.err)
        return rc

    def stderr(self):
        self._errt.join(2)
        return self.err


def run_concurrently(jobs, n_threads):
    """Run the callables in jobs on n_threads threads; their results in order."""
    out, errors, lock, idx = [None] * len(jobs), [], threading.Lock(), [0]

    def worker():
        while True:
            with lock:
                i = idx[0]
                idx[0] += 1
            if i >= len(jobs):
                return
            try:
                out[i] = jobs[i]()
            except Exception as e:  # reported below, with the others
                errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, f"client errors: {errors[:3]}")
    return out


class BackgroundLoad:
    """n_clients threads calling request(k, i) in a loop until the with-block ends.

    results holds what the calls returned, errors what they raised."""

    def __init__(self, request, n_clients):
        self.request, self.results, self.errors = request, [], []
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(k,), daemon=True)
                         for k in range(n_clients)]

    def _client(self, k):
        i = 0
        while not self._stop.is_set():
            try:
                r = self.request(k, i)
                with self._lock:
                    self.results.append(r)
            except Exception as e:  # the test decides what an error means
                self.errors.append(repr(e))
            i += 1

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join()


def run_llmtap(args, timeout=30, prefix=(), env=None):
    """Run llmtap to completion: (exit code, stdout, stderr)."""
    p = subprocess.run(list(prefix) + [LLMTAP] + list(args), capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def prompt(i, words=12):
    """A prompt of its own per request, so the server's prompt cache never hides work."""
    vocab = ["river", "stone", "cloud", "lantern", "copper", "meadow", "signal", "harbor",
             "violet", "engine", "pepper", "winter", "orbit", "canvas", "thunder", "marble"]
    return " ".join(f"{vocab[(i * 7 + k * 3) % len(vocab)]}{i}" for k in range(words))


def run_all():
    only = sys.argv[1:]
    passed = failed = 0
    for fn in _tests:
        if only and fn.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # a failed check or an unexpected error both fail the test
            failed += 1
            detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
            print(f"FAIL {fn.__name__} ({time.monotonic() - t0:.1f}s): {detail}", flush=True)
        else:
            passed += 1
            print(f"PASS {fn.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed or not passed else 0
