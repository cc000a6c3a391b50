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
import subprocess
import tempfile
import time

import harness
from harness import Failure, LlamaServer, Tracer, check, check_eq, test, wait_until
from test_daemon import attached_pids, check_calls, stop_all
from test_requests import chat, completion

HERE = os.path.dirname(os.path.abspath(__file__))
# deploy/kubernetes/daemonset.yaml's capabilities
DAEMONSET_CAPS = {"cap_bpf", "cap_perfmon", "cap_sys_ptrace", "cap_dac_read_search"}


class Attacker:
    """hostile_target.py MODE in a folder of its own; stop() kills it and removes the folder."""

    def __init__(self, mode, *args):
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix=f"llmtap-hostile-{mode}-")
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "hostile_target.py"),
                                      mode, self.dir] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
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
