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
# the same model under another general.name (a router's second model)
MODEL_B = os.environ.get("LLMTAP_MODEL_B", "")
# another attention shape: 2 KV heads of 4, heads of 32, 3 layers (tools/make-model.sh --gqa)
MODEL_GQA = os.environ.get("LLMTAP_MODEL_GQA", "")
# LD_PRELOAD library: a llama-server whose /proc/PID/cmdline lost its -m (tests/e2e/hide-model-arg.c)
HIDE_MODEL_ARG = os.environ.get("LLMTAP_HIDE_MODEL_ARG", "")

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

    binary "" runs prefix alone with the server's arguments (prefix execs the server).
    models_dir: a router llama-server (--models-dir, no model of its own) instead."""

    def __init__(self, binary=None, args=(), np=2, ctx=2048, prefix=(), env=None, port=None,
                 model=None, models_dir=None):
        self.binary = SERVER_SHARED if binary is None else binary
        self.port = port or free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
        source = ["--models-dir", models_dir] if models_dir else ["-m", model or MODEL]
        cmd = list(prefix) + ([self.binary] if self.binary else []) + source + ["--host", "127.0.0.1",
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


def bpf_program_ids():
    """The ids of the BPF programs loaded on the host that are llmtap's by name (any llmtap's)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    return {p["id"] for p in json.loads(out.stdout or "[]")
            if p.get("name", "") in ("probe_enter", "probe_exit", "probe_session", "on_exec")}


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

    def new_programs(self):
        """The BPF programs this llmtap holds (the prog_id of its file descriptors), so that
        no other llmtap of the host is counted."""
        ids = set()
        fdinfo = f"/proc/{self.proc.pid}/fdinfo"
        for fd in os.listdir(fdinfo):
            try:
                with open(os.path.join(fdinfo, fd)) as f:
                    ids |= {int(l.split()[1]) for l in f if l.startswith("prog_id:")}
            except OSError:
                pass  # closed meanwhile
        return ids & bpf_program_ids()

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


# Every process a test starts is the test's: the runner forks the test into a process group
# and a cgroup (v2) of its own, both inherited by everything the test starts (a setsid or a
# new PID namespace leaves the group, never the cgroup), and marks the run in the
# environment. When the test ends (passed, failed or timed out) the runner kills the cgroup
# and the group; at the end of the run nothing marked as the run's may be left.
RUN_ENV = "LLMTAP_E2E_RUN"          # the run's id, in every process the run starts
CGROUP_ENV = "LLMTAP_E2E_CGROUP"    # the test's cgroup path, as /proc/PID/cgroup shows it
TEST_TIMEOUT = float(os.environ.get("LLMTAP_E2E_TIMEOUT", "900"))


def cgroup2_root():
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified in a hybrid
    setup), if it is and is writable."""
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, where, kind = line.split()[:3]
            if kind == "cgroup2" and os.access(where, os.W_OK):
                return where
    return None


def own_cgroup():
    """The running test's cgroup path (as in /proc/PID/cgroup), or None without cgroups."""
    return os.environ.get(CGROUP_ENV) or None


def own_selection():
    """`llmtap daemon` options that select only the llama.cpp processes this test started."""
    cg = own_cgroup()
    return ["--cgroup", cg] if cg else []


def _procs_of(cgdir):
    pids = []
    for d, _, files in os.walk(cgdir):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return pids


def _describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        return f"PID {pid}: {cmd[:160]}"
    except OSError:
        return f"PID {pid}: (gone)"


def marked_pids(run_id):
    """Processes whose environment names this run (but not this one)."""
    mark = f"{RUN_ENV}={run_id}".encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if mark in f.read().split(b"\0"):
                    out.append(int(d))
        except OSError:
            pass
    return out


class RunGroups:
    """The run's cgroup, /<root>/llmtap-e2e-<id>, with a child cgroup per test."""

    def __init__(self):
        self.id = f"{os.getpid()}-{int(time.time())}"
        os.environ[RUN_ENV] = self.id
        root = cgroup2_root()
        self.dir = None
        if root:
            try:
                self.dir = os.path.join(root, f"llmtap-e2e-{self.id}")
                os.mkdir(self.dir)
                self.root = root
            except OSError as e:
                print(f"e2e: no cgroup of the run ({e}); process groups only", flush=True)
                self.dir = None
        else:
            print("e2e: no writable cgroup v2 hierarchy; process groups only", flush=True)

    def enter(self, name):
        """In the test's child process: its own process group and cgroup."""
        os.setpgid(0, 0)
        if self.dir:
            cg = os.path.join(self.dir, name)
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write("0")
            os.environ[CGROUP_ENV] = "/" + os.path.relpath(cg, self.root)

    def prepare(self, name):
        if self.dir:
            os.mkdir(os.path.join(self.dir, name))

    def kill(self, name, pgid):
        """Kill everything of the test: its cgroup, its process group. What was left, said."""
        cg = os.path.join(self.dir, name) if self.dir else None
        left = [p for p in (_procs_of(cg) if cg else []) if p != pgid]
        left = [_describe(p) for p in left]
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if cg:
            try:
                with open(os.path.join(cg, "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:  # before Linux 5.14: one by one
                for p in _procs_of(cg):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + 10
            while _procs_of(cg) and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                os.rmdir(cg)
            except OSError as e:
                left.append(f"(its cgroup {cg} stays: {e})")
        return left

    def finish(self):
        """At the end of the run: nothing the run started may be left. Returns what was."""
        left = sorted(set(marked_pids(self.id)) | set(_procs_of(self.dir) if self.dir else []))
        said = [_describe(p) for p in left]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.dir:
            deadline = time.monotonic() + 10
            while _procs_of(self.dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            for d, _, _ in sorted(os.walk(self.dir), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(d)
                except OSError as e:
                    said.append(f"(cgroup {d} stays: {e})")
        return said


def _run_one(groups, fn):
    """fn in a child process of its own; True if it passed. Kills what it left, always."""
    name = fn.__name__
    t0 = time.monotonic()
    groups.prepare(name)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        rc = 1
        try:
            groups.enter(name)
            fn()
        except BaseException as e:  # a failed check or an unexpected error both fail the test
            detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
            print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {detail}", flush=True)
        else:
            rc = 0
            print(f"PASS {name} ({time.monotonic() - t0:.1f}s)", flush=True)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
    ok, deadline = False, t0 + TEST_TIMEOUT
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                ok = os.waitstatus_to_exitcode(status) == 0
                break
            if time.monotonic() > deadline:
                print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): timed out after "
                      f"{TEST_TIMEOUT:.0f}s (LLMTAP_E2E_TIMEOUT)", flush=True)
                break
            time.sleep(0.1)
    finally:  # also on Ctrl-C: the test's processes go with it
        left = groups.kill(name, pid)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        if left:
            print(f"    {name} left {len(left)} processes running, killed: " + "; ".join(left),
                  flush=True)
    return ok


def run_all():
    only = sys.argv[1:]
    unknown = set(only) - {fn.__name__ for fn in _tests}
    if unknown:
        print(f"e2e: no such tests: {' '.join(sorted(unknown))}", flush=True)
        return 1
    groups = RunGroups()
    passed = failed = 0
    try:
        for fn in _tests:
            if only and fn.__name__ not in only:
                continue
            if _run_one(groups, fn):
                passed += 1
            else:
                failed += 1
    finally:
        left = groups.finish()
    print(f"{passed} passed, {failed} failed", flush=True)
    if left:
        print(f"FAIL the run left {len(left)} processes running (killed now):\n    " +
              "\n    ".join(left), flush=True)
        return 1
    return 1 if failed or not passed else 0
