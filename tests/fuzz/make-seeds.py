#!/usr/bin/env python3
"""Write the fuzzers' seed corpora (tests/fuzz/corpus/NAME/): a few small real inputs.
Run from the repository root; the ELF seed needs clang. The output is committed."""
import os, struct, subprocess, tempfile

D = "tests/fuzz/corpus"

def put(name, fn, data):
    os.makedirs(f"{D}/{name}", exist_ok=True)
    with open(f"{D}/{name}/{fn}", "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)

# ---- gguf: v3 headers with the keys llmtap reads, and a v2 one
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b
def gguf(version, kvs, n_tensors=0):
    out = b"GGUF" + struct.pack("<I", version) + struct.pack("<QQ", n_tensors, len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", 9 if t == "i32s" else t)
        if t == 8: out += gstr(v)
        elif t == 4: out += struct.pack("<I", v)
        elif t == 10: out += struct.pack("<Q", v)
        elif t == 9:  # array of strings
            out += struct.pack("<IQ", 8, len(v)) + b"".join(gstr(x) for x in v)
        elif t == "i32s":  # array of int32
            out += struct.pack("<IQ", 5, len(v))
            out += b"".join(struct.pack("<i", x) for x in v)
    return out
put("gguf", "v3", gguf(3, [("general.architecture", 8, "llama"), ("general.name", 8, "tiny"),
                          ("llama.context_length", 4, 4096)], 2))
put("gguf", "v3-array", gguf(3, [("general.architecture", 8, "qwen2"),
                                ("tokenizer.ggml.tokens", 9, ["a", "b", "<s>"]),
                                ("qwen2.context_length", 10, 32768), ("general.name", 8, "q")]))
put("gguf", "v2", gguf(2, [("general.architecture", 8, "llama")]))
# the attention shape and the vocabulary's end-of-generation facts
put("gguf", "v3-model", gguf(3, [("qwen3.attention.key_length", 4, 128),
                                ("general.architecture", 8, "qwen3"), ("general.name", 8, "m"),
                                ("qwen3.context_length", 4, 4096), ("qwen3.block_count", 4, 2),
                                ("qwen3.embedding_length", 4, 64),
                                ("qwen3.attention.head_count", 4, 4),
                                ("qwen3.attention.head_count_kv", "i32s", [2, 2]),
                                ("tokenizer.ggml.tokens", 9, ["<unk>", "<s>", "</s>", "a", "<|im_end|>"]),
                                ("tokenizer.ggml.token_type", "i32s", [2, 3, 3, 1, 1]),
                                ("tokenizer.ggml.eos_token_id", 4, 2),
                                ("tokenizer.ggml.eot_token_id", 4, 4)]))

# ---- elf: a small shared library and a small executable, with symbols
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "f.c")
    with open(src, "w") as f:
        f.write("int llama_decode(int x){return x+1;}\nstatic int f(int x){return x*2;}\n"
                "int llama_tokenize(int x){return f(x);}\nvoid _start(void){for(;;);}\n")
    for name, flags in (("shared", ["-shared", "-fPIC"]), ("static", ["-static"])):
        out = os.path.join(tmp, name)
        subprocess.run(["clang", "-O1", "-nostdlib", "-Wl,--build-id=none",
                        "-Wl,-z,max-page-size=4096", "-Wl,-z,noseparate-code", *flags, src,
                        "-o", out], check=True)
        put("elf", name, open(out, "rb").read())

# ---- events: one request through the HTTP, server, engine and sampling layers
V = 3
def hdr(kind, size): return struct.pack("<HHI", V, kind, size)
def rec(b): return struct.pack("<H", len(b)) + b
def http(op, ts, value=0, value2=0, s0=b"", s1=b"", tid=20):
    body = struct.pack("<IIQIiiIII", 7, tid, ts, op, value, value2, len(s0), len(s1), 0)
    body += s0.ljust(48, b"\0") + s1.ljust(128, b"\0")
    return rec(hdr(5, 8 + len(body)) + body)
def srv(op, ts, task, slot, err=-1, msg=b"", ctx=0xc0, tid=20):
    body = struct.pack("<IIQIiiiIIQ", 7, tid, ts, op, task, slot, err, len(msg), 0, ctx)
    body += msg.ljust(160, b"\0")
    return rec(hdr(4, 8 + len(body)) + body)
def step(ts, runs, flags=0, ret=0):
    n_tokens = sum(r[1] for r in runs)
    body = struct.pack("<IIQQQiIiIII", 7, 1, 0xc0, ts, ts + 2000000, ret, 0, n_tokens,
                       len(runs), flags, len(runs))
    mask = [0] * 4
    for r in runs: mask[r[0] // 64] |= 1 << (r[0] % 64)
    body += struct.pack("<4Q", *mask)
    rr = b"".join(struct.pack("<iIiiII", s, n, p, p + n - 1, 1, 0) for s, n, p in runs)
    body += rr.ljust(16 * 24, b"\0")
    return rec(hdr(1, 8 + len(body)) + body)
def sample(ts, seq, token):
    body = struct.pack("<IIQQQiiiI", 7, 1, 0xc0, ts, ts + 100000, 0, seq, token, 0)
    return rec(hdr(2, 8 + len(body)) + body)
def kv(ts, op, args):
    body = struct.pack("<IIQQI4iI", 7, 1, 0xc0, ts, op, *args, 0)
    return rec(hdr(3, 8 + len(body)) + body)
def call(op, ts, ret, text=b"", params=(0, 0, 0, 0), seq=-1):
    body = struct.pack("<IIQQIiqQQ4III", 7, 1, ts, ts + 5000000, op, seq, ret, 0xc0, 0,
                       *params, len(text), 0)
    body += text.ljust(128, b"\0") + struct.pack("<II", 0, 0) + bytes(136)
    return rec(hdr(6, 8 + len(body)) + body)
MS = 1000000
one = (call(6, 1 * MS, 0x1000, b"/models/tiny.gguf") + call(7, 2 * MS, 0xc0, b"", (4096, 2048, 512, 2))
       + http(0, 10 * MS, 40000, 8080, b"127.0.0.1") + http(1, 11 * MS, 0, 0, b"POST", b"/completion")
       + srv(0, 12 * MS, 1, -1) + srv(2, 13 * MS, 1, 0, tid=1) + kv(13 * MS, 0, (0, 0, -1, 0))
       + step(14 * MS, [(0, 7, 0)]) + sample(17 * MS, 0, 42)
       + step(18 * MS, [(0, 1, 7)]) + sample(21 * MS, 0, 43)
       + srv(5, 21 * MS, 1, 0, tid=1) + srv(3, 22 * MS, 1, 0, tid=1)
       + http(2, 23 * MS, 200) + http(3, 24 * MS, 1))
put("events", "one-request", one)
two = (http(0, 10 * MS, 40001, 8080, b"::1", tid=21) + http(1, 11 * MS, 0, 0, b"POST", b"/v1/chat/completions", tid=21)
       + srv(0, 12 * MS, 5, -1, tid=21) + srv(1, 12 * MS, 5, -1, tid=1) + srv(2, 15 * MS, 5, 1, tid=1)
       + step(16 * MS, [(1, 3, 0), (0, 1, 9)]) + srv(4, 19 * MS, 5, 1, 1, b"context full", tid=1)
       + call(1, 20 * MS, 4096, b"/tmp/slot.bin", seq=1) + http(2, 21 * MS, 500, tid=21)
       + http(3, 22 * MS, 0, tid=21))
put("events", "error-and-cache", two)
# a step's compute time: a sync that waited, a second step first, a sync for a step gone
def sync(step_ts, start, end, flags=0, op=0):
    body = struct.pack("<IIQQQQII", 7, 1, 0xc0, step_ts + 2000000, start, end, op, flags)
    return rec(hdr(7, 8 + len(body)) + body)
syncs = (step(14 * MS, [(0, 7, 0)]) + sync(14 * MS, 16 * MS, 19 * MS)
         + step(20 * MS, [(0, 1, 7)]) + step(23 * MS, [(0, 1, 8)]) + sync(20 * MS, 26 * MS, 26 * MS)
         + sync(23 * MS, 26 * MS, 30 * MS, 1, 2) + step(31 * MS, [(0, 1, 9)]))
put("events", "step-sync", syncs)

# ---- proc: maps lines, cgroup texts, a stat line
put("proc", "maps", "55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 1311031 /usr/bin/llama-server\n"
    "7f2a1c000000-7f2a1c400000 r-xp 00021000 fd:00 262147 /opt/llama/libllama.so (deleted)\n"
    "7f2a1d000000-7f2a1d001000 rw-p 00000000 00:00 0 \n"
    "7ffd6f1e0000-7ffd6f201000 rw-p 00000000 00:00 0                          [stack]\n")
put("proc", "cgroup-docker", "0::/system.slice/docker-4c3ad6d0e5b58d91a6ae6d86f2b7a0c5bb2b7bb1b7e0a7c0b3c2a6f1e3d2c1b0.scope\n")
put("proc", "cgroup-k8s", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
    "1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-"
    "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0.scope\n"
    "12:memory:/kubepods/besteffort/pod0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9/abc\n")
put("proc", "stat", "1234 (llama-server) S 1 1234 1234 0 -1 4194560 2630 0 0 0 12 4 0 0 20 0 "
    "9 0 918273 1183744000 12000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n")
put("proc", "cmdline-router", b"llama-server\0--models-dir\0/srv/models\0--port\08080\0"
    b"LLAMA_ARG_MODELS_PRESET=/etc/m.ini\0")
put("proc", "cmdline-child", b"llama-server\0--alias\0alpha\0--model=/m/a.gguf\0"
    b"LLAMA_SERVER_ROUTER_PORT=8080\0")

# ---- otel: NAME=VALUE lines
put("otel", "endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318\n"
    "OTEL_EXPORTER_OTLP_HEADERS=api-key=s%20ecret,x-tenant=a\n"
    "OTEL_RESOURCE_ATTRIBUTES=service.name=llm,deployment.environment=prod,k=%C3%A9\n"
    "OTEL_TRACES_SAMPLER=traceidratio\nOTEL_TRACES_SAMPLER_ARG=0.25\n"
    "OTEL_METRIC_EXPORT_INTERVAL=15000\nOTEL_BSP_MAX_QUEUE_SIZE=4096\n"
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta\nOTEL_EXPORTER_OTLP_COMPRESSION=gzip\n")
put("otel", "per-signal", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://t.example:4318/v1/traces\n"
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=https://m.example/v1/metrics\n"
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=5000\nOTEL_EXPORTER_OTLP_METRICS_HEADERS=a=b\n"
    "OTEL_EXPORTER_OTLP_CERTIFICATE=/etc/ca.pem\nOTEL_METRICS_EXPORTER=none\nOTEL_SDK_DISABLED=false\n"
    "OTEL_BSP_SCHEDULE_DELAY=500\nOTEL_BSP_MAX_EXPORT_BATCH_SIZE=64\nOTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\n")

# ---- prom: request heads
put("prom", "get", "GET /metrics HTTP/1.1\r\nHost: localhost:9464\r\nAccept: text/plain\r\n\r\n")
put("prom", "head-healthz", "HEAD /healthz?x=1 HTTP/1.0\r\n\r\n")
put("prom", "post", "POST /metrics HTTP/1.1\n\n")

# ---- report: a small recording as sink_trace.c writes it
ev = ['{"ph":"M","pid":7,"name":"process_name","args":{"name":"llama-server (PID 7)"}}',
      '{"ph":"M","pid":7,"tid":1,"name":"thread_name","args":{"name":"engine steps"}}',
      '{"ph":"M","pid":7,"tid":1000,"name":"thread_name","args":{"name":"slot 0"}}',
      '{"ph":"b","pid":7,"tid":1000,"cat":"queue","name":"queued","id":1,"ts":490000.000}',
      '{"ph":"e","pid":7,"tid":1000,"cat":"queue","name":"queued","id":1,"ts":500000.000}',
      '{"ph":"X","pid":7,"tid":1000,"cat":"request","name":"POST /completion","ts":500000.000,'
      '"dur":20000.000,"args":{"request":1,"status":200,"stream":true,"client_port":40001,'
      '"prompt_tokens":7,"cached_tokens":3,"output_tokens":11,"ttft_ms":10.000,"queue_ms":10.000,"http_ms":100.000}}',
      '{"ph":"X","pid":7,"tid":1000,"cat":"phase","name":"prefill","ts":500000.000,"dur":0.000}',
      '{"ph":"X","pid":7,"tid":1000,"cat":"phase","name":"generation","ts":500000.000,"dur":20000.000}',
      '{"ph":"X","pid":7,"tid":1,"cat":"step","name":"decode","ts":510000.000,"dur":2000.000,'
      '"args":{"kind":"prefill","n_tokens":7,"n_seqs":1,"n_outputs":1,"ret":0}}',
      '{"ph":"C","pid":7,"name":"batch tokens","ts":510000.000,"args":{"tokens":7}}',
      '{"ph":"C","pid":7,"name":"kv cells","ts":1000000.000,"args":{"cells":40}}',
      '{"ph":"C","pid":7,"name":"requests","ts":1000000.000,"args":{"active":1,"queued":0}}',
      '{"ph":"i","s":"t","pid":7,"tid":1000,"name":"cache_save","ts":700000.000,"args":{"value":1}}',
      '{"ph":"i","s":"t","pid":7,"tid":1000,"name":"failed","ts":520000.000,"args":{"value":1}}']
put("report", "small.json", '{"displayTimeUnit":"ms","otherData":{"producer":"llmtap 0.1.0",'
    '"start_unix_nano":1795332002950247540,"library":"/opt/llama/libllama.so","model":"tiny"},'
    '"traceEvents":[\n' + ",\n".join(ev) + "\n]}\n")
