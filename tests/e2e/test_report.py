"""End-to-end tests of `llmtap report`: a real recording as one HTML page, checked against
the server's own numbers and rendered by headless Chromium (the screenshot is kept)."""
import html as htmllib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import LLMTAP, LlamaServer, check, check_eq, run_concurrently, run_llmtap, test
import test_requests as req

ARTIFACTS = os.environ.get("LLMTAP_ARTIFACTS", "/var/cache/llmtap/artifacts")


def summary(page, key):
    """The text of the element with id=key (the report names every summary number)."""
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % re.escape(key), page)
    check(m is not None, f"no id=\"{key}\" in the report")
    return m.group(1)


def fmt_ms(ms):
    """A latency as the report writes it."""
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    if ms < 10000:
        return f"{ms:.0f} ms"
    return f"{ms / 1e3:.2f} s"


def nearest_rank(values, q):
    v = sorted(values)
    return v[max(math.ceil(q * len(v) - 1e-9), 1) - 1]


def screenshot(page_path, png_path):
    """Headless Chromium renders the page to png_path; its output, for a failure message."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    check(chromium is not None, "no chromium on PATH (Debian's chromium package; tools/install-deps.sh)")
    profile = tempfile.mkdtemp(prefix="llmtap-chromium-")
    try:
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={profile}", "--window-size=1200,2400",
                            f"--screenshot={png_path}", "file://" + os.path.abspath(page_path)],
                           capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return p.returncode, (p.stdout + p.stderr)[-2000:]


@test
def report_renders_a_recording():
    tmp = tempfile.mkdtemp(prefix="llmtap-report-")
    trace, page = os.path.join(tmp, "trace.json"), os.path.join(tmp, "report.html")
    with LlamaServer(np=2, ctx=4096) as srv:
        p = subprocess.Popen([LLMTAP, "record", "--pid", str(srv.pid), "--duration", "4s", "-o", trace],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        calls = run_concurrently([lambda i=i: req.completion(srv, 9000 + i, 8 + 3 * i, i % 2 == 1)
                                  for i in range(10)], 4)
        _, err = p.communicate(timeout=30)
    check_eq(p.returncode, 0, f"llmtap record exit code ({err})")

    rc, out, err = run_llmtap(["report", trace, "-o", page])
    check_eq(rc, 0, f"llmtap report exit code (stdout {out!r}, stderr {err!r})")
    with open(page, encoding="utf-8") as f:
        text = f.read()
    with open(trace) as f:
        doc = json.load(f)

    # one self-contained page
    check(text.startswith("<!DOCTYPE html>"), "the page does not start with <!DOCTYPE html>")
    check(text.rstrip().endswith("</html>"), "the page does not end with </html>")
    check_eq(text.count("<svg"), text.count("</svg>"), "<svg> elements closed")
    check(text.count("<svg") >= 8, "fewer than eight charts")
    for bad in ("<script", "src=", "<link", "url(", "@import"):
        check(bad not in text, f"the page is not self-contained: it holds {bad!r}")

    # the summary against the server's own accounting of each request
    timings = [c.timings for c in calls]
    check_eq(int(summary(text, "sum-requests")), len(calls), "requests")
    check_eq(int(summary(text, "sum-ok")), len(calls), "requests ok")
    check_eq(int(summary(text, "sum-failed")), 0, "requests failed")
    check_eq(int(summary(text, "sum-output-tokens")), sum(t["predicted_n"] for t in timings),
             "output tokens (the sum of timings.predicted_n)")
    check_eq(int(summary(text, "sum-prompt-tokens")), sum(t["prompt_n"] for t in timings),
             "prompt tokens (the sum of timings.prompt_n)")
    check_eq(int(summary(text, "sum-cached-tokens")), sum(t["cache_n"] for t in timings),
             "cached tokens (the sum of timings.cache_n)")
    check_eq(int(summary(text, "ttft-n")), len(calls), "requests with a time to first token")
    check_eq(int(summary(text, "tpot-n")), len(calls), "requests with a time per output token")

    # and against the trace it was made from
    events = doc["traceEvents"]
    steps = [e for e in events if e["ph"] == "X" and e["cat"] == "step"]
    check_eq(int(summary(text, "sum-steps")), len(steps), "steps")
    reqs = [e["args"] for e in events if e["ph"] == "X" and e["cat"] == "request"]
    for key, field in (("ttft", "ttft_ms"), ("duration", "http_ms")):
        values = [r[field] for r in reqs]
        for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
            check_eq(summary(text, f"{key}-{name}"), fmt_ms(nearest_rank(values, q)),
                     f"{name} of {field}")
    slowest = max(reqs, key=lambda r: r["http_ms"])
    check(re.search(r'<tr><td class="num">1</td><td class="num">%d</td>' % slowest["request"], text),
          f"request {slowest['request']} ({slowest['http_ms']} ms) is not first in the slowest table")
    model = doc["otherData"]["model"]
    check(f"<title>llmtap report: {htmllib.escape(model)}</title>" in text, f"the title names {model!r}")

    # what the on-call engineer sees
    os.makedirs(ARTIFACTS, exist_ok=True)
    png = os.path.join(ARTIFACTS, "report.png")
    if os.path.exists(png):
        os.unlink(png)
    shutil.copy(page, os.path.join(ARTIFACTS, "report.html"))
    rc, log = screenshot(page, png)
    check(os.path.exists(png), f"chromium wrote no screenshot (exit {rc}): {log}")
    with open(png, "rb") as f:
        head = f.read(8)
    check_eq(head, b"\x89PNG\r\n\x1a\n", "the screenshot's PNG signature")
    size = os.path.getsize(png)
    check(size > 20 * 1024, f"the screenshot is {size} bytes: a blank page?")
    shutil.rmtree(tmp, ignore_errors=True)


@test
def report_errors():
    tmp = tempfile.mkdtemp(prefix="llmtap-report-")
    page = os.path.join(tmp, "r.html")
    rc, _, err = run_llmtap(["report", os.path.join(tmp, "missing.json"), "-o", page])
    check_eq(rc, 1, "report of a missing file")
    check("cannot read" in err and "missing.json" in err, f"error: {err!r}")
    notes = os.path.join(tmp, "notes.json")
    with open(notes, "w") as f:
        f.write('[{"ph": "X", "name": "not llmtap"}]\n')
    rc, _, err = run_llmtap(["report", notes, "-o", page])
    check_eq(rc, 1, "report of a JSON array")
    check("not a trace-event JSON object" in err, f"error: {err!r}")
    check(not os.path.exists(page), "a report was written for a bad trace")
    rc, _, err = run_llmtap(["report", notes])
    check_eq(rc, 2, "report without -o")
    shutil.rmtree(tmp, ignore_errors=True)
