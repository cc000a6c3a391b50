"""End-to-end tests of hostile targets (DESIGN.md §7): processes beside a traced llama-server
that turn the files they map against `llmtap daemon`, which reads every process's files.

Three attackers (tests/e2e/hostile_target.py), all started before the daemon:
  - fifo:    maps a copy of a library, chroots into a folder it owns and puts a FIFO where
             the library's path leads in its new root (a path-based open blocks for good);
  - symlink: the same with a symbolic link to the host's libllama, outside its root (a
             path-based open parses that file, and offers to probe it);
  - cut:     maps an ELF file with a 48 MiB (sparse) symbol table and cuts the file to one
             page and back, again and again (a mapping of it faults: SIGBUS).
The daemon runs twice: as root (llmtap opens /proc/PID/map_files: the file mapped, whatever
the path names) and with only the DaemonSet's four capabilities (no CAP_SYS_ADMIN: the path
is resolved inside the target's root, and a FIFO or link there is refused, said once).
Each time it must trace the normal server with exact per-request accounting, never block,
never die, and never attach to an attacker.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import harness
from harness import Failure, LlamaServer, Tracer, check, check_eq, test, wait_until
from test_daemon import attached_pids, check_calls, detached_pids, stop_all
from test_requests import chat, completion

HERE = os.path.dirname(os.path.abspath(__file__))
# deploy/kubernetes/daemonset.yaml's capabilities
DAEMONSET_CAPS = {"cap_bpf", "cap_perfmon", "cap_sys_ptrace", "cap_dac_read_search"}


class Attacker:
    """hostile_target.py MODE in a folder of its own; stop() kills it and removes the folder."""

    def __init__(self, mode, *args, env=None):
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix=f"llmtap-hostile-{mode}-")
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "hostile_target.py"),
                                      mode, self.dir] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, start_new_session=True)
        self.pid = self.proc.pid
        line = self.proc.stdout.readline()  # "" if it died
        if line.strip() != "ready":
            self.stop()
            raise Failure(f"the {mode} attacker did not start: {self.proc.stderr.read()}")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def requests_of(d, pid):
    """pid's request records by client port (the daemon traces every llama.cpp process of
    the machine: other servers' too)."""
    reqs = {}
    for r in d.records("request"):
        if r["pid"] == pid:
            port = r["attributes"]["client.port"]
            check(port not in reqs, f"two requests of PID {pid} on client port {port}")
            reqs[port] = r
    return reqs


def lines_about(d, pid):
    return [l for l in d.stderr_so_far().splitlines() if re.search(rf"\bPID {pid}\b", l)]


def daemonset_prefix():
    """capsh keeping only the DaemonSet's capabilities in the bounding set (uid 0 stays):
    what the daemon has in its pod."""
    out = subprocess.run(["capsh", "--print"], capture_output=True, text=True, check=True).stdout
    bset = re.search(r"^Bounding set =(.*)$", out, re.M).group(1).split(",")
    drop = ",".join(c for c in bset if c not in DAEMONSET_CAPS)
    return ["capsh", f"--drop={drop}", "--", "-c", 'exec "$0" "$@"']


def traced_exactly_beside(srv, attackers, prefix, told):
    """A daemon (under prefix) traces srv exactly while the attackers run; told: attacker mode
    -> what its one line must say (None: nothing told)."""
    d = Tracer(None, ["--no-steps", "--interval", "500ms", "--rescan", "500ms"] + harness.own_selection(),
               prefix=prefix, command=["daemon"])
    try:
        wait_until(lambda: srv.pid in attached_pids(d), 30, "the daemon to attach to the server")
        calls = [completion(srv, 6000 + i, 3 + i, i == 1) for i in range(3)] + [chat(srv, 6100, 4, False)]
        time.sleep(2.5)  # five rescans: a reason told at each would show
        check(d.proc.poll() is None, f"the daemon is alive: {d.stderr_so_far()[-2000:]}")
        reqs = requests_of(d, srv.pid)
        check_calls(calls, reqs, srv.pid)
        check_eq(len(reqs), len(calls), "requests the daemon saw")
        attached = attached_pids(d)
        for a in attackers:
            check(a.pid not in attached, f"the daemon attached to the {a.mode} attacker: "
                                         f"{lines_about(d, a.pid)}")
            lines = lines_about(d, a.pid)
            want = told.get(a.mode)
            print(f"    {a.mode} attacker: {lines or 'nothing told'}")
            if a.mode == "cut":  # cut while read, or read whole between two cuts: either way once
                check(len(lines) <= 1 and all("cut short" in l for l in lines),
                      f"the cut file, told at most once: {lines}")
            elif want is None:
                check_eq(lines, [], f"the {a.mode} attacker: nothing to tell")
            else:
                check_eq(len(lines), 1, f"the {a.mode} attacker: told once ({lines})")
                check(want in lines[0], f"the {a.mode} attacker's reason: {lines[0]!r}, want {want!r}")
        check_eq(d.stop(signal.SIGTERM), 0, f"daemon exit code ({d.stderr()[-2000:]})")
    finally:
        stop_all(d)


@test
def daemon_traces_on_beside_hostile_targets():
    build = os.path.dirname(harness.SERVER_SHARED)
    lib = os.path.join(build, "libggml-base.so")  # any library without llama_decode
    libllama = os.path.realpath(os.path.join(build, "libllama.so"))
    srv = LlamaServer(np=2)
    attackers = []
    try:
        for mode, args in (("fifo", [lib]), ("symlink", [lib, libllama]), ("cut", [])):
            attackers.append(Attacker(mode, *args))
        # root: map_files reads what each maps, whatever its path names: nothing to refuse
        traced_exactly_beside(srv, attackers, (), {})
        # the DaemonSet's capabilities: no map_files; the paths, resolved in each root, refused
        for a in attackers:
            check(a.proc.poll() is None, f"the {a.mode} attacker still runs")
        fifo, link = (f"skipped its mapped file {a.dir}/lib.so: " for a in attackers[:2])
        traced_exactly_beside(srv, attackers, daemonset_prefix(), {
            "fifo": fifo + "a FIFO at that path, not the file it maps",
            "symlink": link + "a symbolic link at that path, not the file it maps",
        })
        check_eq(srv.get("/health")[0], 200, "the server serves on")
    finally:
        for a in attackers:
            a.stop()
        srv.stop()


# --- a target that lies: its name, its model's name, its identity ---------------------------

# general.name of the ident attacker's model: 70 bytes, an ESC sequence, an invalid byte, then
# three-byte characters from byte 6 on, so that a cut at 64 bytes splits one
EVIL_NAME = b"\x1b[31m\xff" + "模型".encode() * 10 + "模".encode() + b"!"
EVIL_COMM = b"\x1b[31mevil"
# an OTEL_SERVICE_NAME with an OSC sequence (a terminal title) and a lone lead byte
EVIL_SERVICE = b"svc\x1b]0;pwned\x07\xc3"
CLAIMED = {"container.id": "c0ffee" * 10 + "c0ff", "k8s.pod.uid": "00000000-0000-4000-8000-000000000001"}


def instance_id_of(d, pid):
    m = re.search(rf"attached to PID {pid} .*service\.instance\.id (\S+)", d.stderr_so_far())
    check(m, f"the attach line of PID {pid} names its service.instance.id")
    return m.group(1)


def scrape(port, path="/metrics", timeout=5):
    """(status, body bytes, seconds taken)."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read(), time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.read(), time.monotonic() - t0


def labels_of(line):
    """A Prometheus text line's labels (values unescaped)."""
    inner = line[line.index("{") + 1:line.rindex("}")]
    return {k: re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)
            for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', inner)}


def valid_exposition(body):
    """body, strictly UTF-8, as `promtool check metrics` accepts it: its text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Failure(f"/metrics is not UTF-8: {e}: {body[max(0, e.start - 80):e.end + 20]!r}")
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode == 0, f"promtool check metrics: exit {p.returncode}: {out[-2000:]}")
    return text


def check_stderr_terminal_safe(d):
    err = d.stderr_so_far()
    bad = sorted({c for c in err if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f
                  or 0xdc80 <= ord(c) <= 0xdcff})  # surrogates: bytes that were not UTF-8
    check(not bad, f"the daemon's stderr holds control characters or invalid UTF-8 {bad}: "
                   f"{[l for l in err.splitlines() if any(c in l for c in bad)][:3]!r}")


@test
def daemon_tells_a_lying_target_apart():
    """A fake target (it loads libllama, so the daemon attaches to it) maps a GGUF whose
    general.name holds an ESC sequence, an invalid byte and multi-byte characters, calls
    itself ESC[31mevil, and claims the normal server's identity in its environment. The
    daemon's stderr stays terminal-safe, its /metrics valid UTF-8 that promtool accepts,
    the fake target's target_info has its own pid, instance, container and pod, and the
    normal server's requests are counted exactly throughout."""
    libllama = os.path.realpath(os.path.join(os.path.dirname(harness.SERVER_SHARED), "libllama.so"))
    prom = harness.free_port()
    srv = LlamaServer(np=2)
    d = liar = None
    try:
        d = Tracer(None, ["--no-steps", "--interval", "500ms", "--rescan", "500ms",
                          "--prometheus", f"127.0.0.1:{prom}"], command=["daemon"])
        wait_until(lambda: srv.pid in attached_pids(d), 30, "the daemon to attach to the server")
        srv_id = instance_id_of(d, srv.pid)
        claims = dict(CLAIMED, **{"process.pid": "1", "service.instance.id": srv_id})
        env = {k.encode(): v.encode() for k, v in os.environ.items()}
        env[b"OTEL_RESOURCE_ATTRIBUTES"] = ",".join(f"{k}={v}" for k, v in claims.items()).encode()
        env[b"OTEL_SERVICE_NAME"] = EVIL_SERVICE
        liar = Attacker("ident", libllama, EVIL_NAME.hex(), EVIL_COMM.hex(), env=env)
        calls = [completion(srv, 6200 + i, 3 + i, i == 1) for i in range(2)]
        wait_until(lambda: liar.pid in attached_pids(d), 20, "the daemon to attach to the fake target")
        calls += [completion(srv, 6210, 4, False), chat(srv, 6211, 3, True)]
        time.sleep(1.2)  # two publications of the metrics
        check(d.proc.poll() is None, f"the daemon is alive: {d.stderr_so_far()[-2000:]}")
        print(f"    fake target: {lines_about(d, liar.pid)}")
        check_stderr_terminal_safe(d)
        check(any("\\x1b[31mevil" in l for l in lines_about(d, liar.pid)),
              f"its name shown escaped: {lines_about(d, liar.pid)}")

        status, body, _ = scrape(prom)
        check_eq(status, 200, "HTTP status of /metrics")
        text = valid_exposition(body)
        infos = [labels_of(l) for l in text.splitlines() if l.startswith("target_info{")]
        mine = [i for i in infos if i.get("llmtap_model_name") is not None
                and i.get("process_executable_name", "").endswith("evil")]
        check_eq(len(mine), 1, f"the fake target's target_info: {infos}")
        info = mine[0]
        print(f"    its target_info: {info}")
        check_eq(info.get("process_pid"), str(liar.pid), "its process_pid: its own")
        check(not any(i.get("process_pid") == "1" for i in infos), "no target_info claims PID 1")
        check(info.get("service_instance_id") not in (srv_id, None), "its service_instance_id: not the server's")
        check_eq([i.get("process_pid") for i in infos if i.get("service_instance_id") == srv_id],
                 [str(srv.pid)], "the server's instance id: the server's alone")
        check(info.get("container_id") != CLAIMED["container.id"], "its container_id: not the claimed one")
        check(info.get("k8s_pod_uid") != CLAIMED["k8s.pod.uid"], "its k8s_pod_uid: not the claimed one")
        name, real = info["llmtap_model_name"], EVIL_NAME.decode("utf-8", errors="replace")
        check(name and real.startswith(name), f"its model name {name!r}: a prefix of {real!r}")

        liar.stop()
        wait_until(lambda: liar.pid in detached_pids(d), 10, "the daemon to detach from the fake target")
        calls += [completion(srv, 6220 + i, 3, i == 0) for i in range(2)]
        time.sleep(1.2)
        check_calls(calls, requests_of(d, srv.pid), srv.pid)
        check_eq(len(requests_of(d, srv.pid)), len(calls), "requests the daemon saw")
        valid_exposition(scrape(prom)[1])
        check_eq(d.stop(signal.SIGTERM), 0, f"daemon exit code ({d.stderr()[-2000:]})")
        check_stderr_terminal_safe(d)
    finally:
        stop_all(d)
        if liar:
            liar.stop()
        srv.stop()


# --- a client that holds the daemon's Prometheus endpoint -----------------------------------

class Slowloris:
    """n_idle connections to port that never send, n_drip that send a request head a byte
    every 200 ms; both kinds reopened when the server drops them, until stop()."""

    HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4096

    def __init__(self, port, n_idle=40, n_drip=4):
        self.port, self.drops = port, 0
        self.idle = [self._open() for _ in range(n_idle)]
        self.drip = [[self._open(), 0] for _ in range(n_drip)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self):
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", self.port))
        except OSError:
            pass  # a backlog full: tried again next round
        s.setblocking(False)
        return s

    @staticmethod
    def closed(s):
        try:
            return s.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _run(self):
        while not self._stop.wait(0.2):
            for i, s in enumerate(self.idle):
                if self.closed(s):
                    s.close()
                    self.drops += 1
                    self.idle[i] = self._open()
            for d in self.drip:
                try:
                    d[0].send(self.HEAD[d[1] % len(self.HEAD):][:1])
                    d[1] += 1
                except OSError:
                    d[0].close()
                    self.drops += 1
                    d[:] = [self._open(), 0]

    def stop(self):
        self._stop.set()
        self._thread.join()
        for s in self.idle + [d[0] for d in self.drip]:
            s.close()


@test
def daemon_prometheus_answers_beside_a_slowloris():
    """40 idle connections and 4 sending a byte every 200 ms on the daemon's --prometheus:
    each scrape still answers within a second, /healthz says 200, and the server's requests
    are counted exactly."""
    prom = harness.free_port()
    srv = LlamaServer(np=2)
    d = loris = None
    try:
        d = Tracer(None, ["--no-steps", "--interval", "500ms", "--prometheus", f"127.0.0.1:{prom}"],
                   command=["daemon"])
        wait_until(lambda: srv.pid in attached_pids(d), 30, "the daemon to attach to the server")
        wait_until(lambda: scrape(prom, "/healthz")[0] == 200, 10, "/healthz to say 200")
        loris = Slowloris(prom)
        calls = []
        taken = []
        for k in range(6):
            calls.append(completion(srv, 6300 + k, 3, k % 2 == 1))
            time.sleep(0.5)  # a head of 4 KiB at 5 bytes a second: never whole
            status, body, s = scrape(prom, timeout=5)
            taken.append(round(s, 3))
            check_eq(status, 200, f"scrape {k}: HTTP status")
            valid_exposition(body)
            check(s < 1.0, f"scrape {k} took {s:.2f}s beside the slowloris (all: {taken})")
            status, _, s = scrape(prom, "/healthz", timeout=5)
            check_eq(status, 200, f"/healthz {k}")
            check(s < 1.0, f"/healthz {k} took {s:.2f}s")
        print(f"    scrapes took {taken} s; connections the daemon dropped: {loris.drops}")
        check(d.proc.poll() is None, f"the daemon is alive: {d.stderr_so_far()[-2000:]}")
        time.sleep(1.0)
        text = scrape(prom)[1].decode()
        served = [l for l in text.splitlines() if l.startswith("llmtap_inference_requests_total{")
                  and f'process_pid="{srv.pid}"' in l]
        check_eq(sum(float(l.rsplit(" ", 1)[1]) for l in served), float(len(calls)),
                 f"the server's requests on /metrics: {served}")
        loris.stop()
        loris = None
        reqs = requests_of(d, srv.pid)
        check_calls(calls, reqs, srv.pid)
        check_eq(len(reqs), len(calls), "requests the daemon saw")
        check_eq(d.stop(signal.SIGTERM), 0, f"daemon exit code ({d.stderr()[-2000:]})")
    finally:
        if loris:
            loris.stop()
        stop_all(d)
        srv.stop()
