"""End-to-end tests of `llmtap top` under tmux (issue: profiling views)."""
import os
import re
import subprocess
import threading
import time

from harness import (LLMTAP, LlamaServer, check, check_eq, prompt, run_llmtap, test, wait_until)


def tmux(*args):
    return subprocess.run(["tmux", *args], capture_output=True, text=True)


def screen(session):
    return tmux("capture-pane", "-p", "-t", session).stdout


@test
def top_shows_requests_and_slots_under_load():
    session = f"llmtap-top-{os.getpid()}"
    with LlamaServer(np=2, ctx=8192) as srv:
        tmux("kill-session", "-t", session)
        tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "30",
             f"{LLMTAP} top --pid {srv.pid} --interval 300ms; echo EXITED $?; sleep 30")
        try:
            wait_until(lambda: "llmtap top" in screen(session), 15, "the top screen")
            done = []
            # two long generations keep both slots busy; then a few short ones
            load = [threading.Thread(target=lambda i=i: done.append(srv.complete(prompt(9000 + i, 12), 3000)))
                    for i in range(2)]
            for t in load:
                t.start()
            wait_until(lambda: screen(session).count("generating") == 2, 20, "two generating slots")
            busy = screen(session)
            tmux("send-keys", "-t", session, "s")
            wait_until(lambda: "sort (by elapsed)" in screen(session), 5, "the sort key")
            tmux("send-keys", "-t", session, "p")
            wait_until(lambda: "PAUSED" in screen(session), 5, "the pause key")
            tmux("send-keys", "-t", session, "p")
            for t in load:
                t.join()
            # the frame that counts them (the next one's interval may have no request to show)
            idle = wait_until(lambda: (lambda s: s if re.search(r"total 2\b", s) else None)(screen(session)),
                              10, "two requests counted")
            # a smaller terminal: the next frame fits it
            tmux("resize-window", "-t", session, "-x", "90", "-y", "16")
            wait_until(lambda: len(screen(session).splitlines()) <= 16 and
                       "llmtap top" in screen(session), 10, "a redraw at 90x16")
            small = screen(session)
            tmux("send-keys", "-t", session, "q")
            wait_until(lambda: "EXITED" in screen(session), 10, "llmtap to quit")
            after = screen(session)
        finally:
            tmux("kill-session", "-t", session)
    for fragment in ("SLOT", "STATE", "REQUEST", "ROUTE", f"PID {srv.pid} (llama-server)",
                     "model llmtap-tiny-llama", "layers engine,sampling,server,http"):
        check(fragment in busy, f"{fragment!r} not on the screen:\n{busy}")
    rows = [l.split() for l in busy.splitlines() if re.match(r"\s+\d+ generating ", l)]
    check_eq(sorted(int(r[0]) for r in rows), [0, 1], f"slot rows while busy:\n{busy}")
    check(all(r[3] == "/completion" for r in rows), f"routes on the slot rows:\n{busy}")
    check(re.search(r"active 2\b", busy), f"two active requests while busy:\n{busy}")
    check(re.search(r"ttft p50 \d", idle) and "failed 0" in idle, f"the requests line:\n{idle}")
    outs = sum(d["timings"]["predicted_n"] for d in done)
    check(outs == 6000, f"the server generated {outs} tokens")
    lines = small.splitlines()
    # the header (over 90 columns) is cut, not wrapped: the keys line comes right after it
    check(lines[0].startswith("llmtap top") and lines[1].startswith("keys:"),
          f"lines not cut to 90 columns:\n{small}")
    check("SLOT" in small, f"the slot table after the resize:\n{small}")
    check("EXITED 0" in after, f"llmtap top's exit after q:\n{after}")
    check("llmtap summary" in after and "requests    2" in after, f"the summary after q:\n{after}")


@test
def top_without_a_terminal_prints_lines():
    with LlamaServer(np=1) as srv:
        rc, out, err = run_llmtap(["top", "--pid", str(srv.pid), "--duration", "1500ms",
                                   "--interval", "500ms"])
    check_eq(rc, 0, f"exit code ({err})")
    check("\033[" not in out, "escape sequences on a pipe")
    check(len([l for l in out.splitlines() if re.match(r"\d\d:\d\d:\d\d  ", l)]) >= 2,
          f"no plain interval lines:\n{out}")
