#!/usr/bin/python3
"""Loop the busy-server scenario to chase a rare mismatch (not part of `make test`).

    tests/e2e/run.sh is not used: set the environment it sets, then
    LLAMA_SERVER_SHARED=$(tools/build-llama.sh shared) LLMTAP_MODEL=$(tools/make-model.sh) \\
    LLMTAP=$PWD/llmtap python3 tests/e2e/stress_busy.py 200 [--pin]

Each round: a 2-slot llama-server under 3 looping clients, llmtap attached at a random
moment for a random while (steps on). A record whose tokens or seed differ from its
client's is a failure; the round's records and the clients' requests go to
/tmp/llmtap-stress/ROUND/. --pin runs the server and llmtap on CPU 0 only.
(Session 3: 200 rounds, 84 pinned: no mismatch.)
"""
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BackgroundLoad, LlamaServer, Tracer  # noqa: E402
import test_requests as T  # noqa: E402


def round_(n, pin):
    prefix = ("taskset", "-c", "0") if pin else ()
    with LlamaServer(np=2, ctx=4096, prefix=prefix) as srv:
        def request(k, i):
            return T.completion(srv, 3000 + 100 * k + i + n * 1000, 40, stream=(i % 2 == 1))
        with BackgroundLoad(request, 3) as load:
            time.sleep(random.uniform(0.3, 1.2))
            tr = Tracer(srv.pid, [], prefix=prefix).wait_attached()
            time.sleep(random.uniform(0.5, 2.0))
            tr.stop()
    done = {c.port: c for c in load.results}
    bad = []
    for r in tr.records("request"):
        c = done.get(r["attributes"]["client.port"])
        if not r["complete"] or c is None:
            continue
        t = c.timings
        if ((r["cached_tokens"], r["prompt_tokens"], r["output_tokens"]) !=
                (t["cache_n"], t["prompt_n"], t["predicted_n"]) or
                r["attributes"].get("gen_ai.request.seed") != c.body["seed"]):
            bad.append((r["attributes"]["client.port"], r["prompt_tokens"], t["prompt_n"]))
    if bad:
        out = f"/tmp/llmtap-stress/{n}"
        os.makedirs(out, exist_ok=True)
        with open(f"{out}/llmtap.jsonl", "w") as f:
            f.write("\n".join(tr.lines) + "\n")
        with open(f"{out}/clients.json", "w") as f:
            json.dump([dict(port=c.port, body=c.body, timings=c.timings) for c in load.results], f)
        print(n, "MISMATCH", bad, "->", out, flush=True)
        return False
    print(n, "ok", len(tr.records("request")), flush=True)
    return True


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ok = [round_(n, "--pin" in sys.argv[2:]) for n in range(int(sys.argv[1]))]
    sys.exit(0 if all(ok) else 1)
