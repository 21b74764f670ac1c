#!/usr/bin/env python3
"""Bounded load test of `turing serve` on 127.0.0.1 (standard library only; run it, it is not part of CI).

Serves a model (default: a seeded random GPT-2-124M made with `turing convert --random gpt2-124m`, GPT-2's tokenizer
from ../shared/data/gpt2_tokenizer), runs every prompt alone first (greedy, the reference), then 1, 8 and 32 concurrent
streams (SSE) of distinct token-id prompts. Every streamed answer must equal its single-request run (text and token
count): nothing lost or mixed up. Reports p50/p99 request latency and time to first token, aggregate tokens/s (all
generated tokens over the wall time) and decode tokens/s (tokens after each stream's first, over the span from the first
first-token to the last token), and checks that 8 concurrent greedy streams decode at >= 4x one stream's rate.

Usage: python3 scripts/bench_serve.py [--turing .build/release/turing] [--checkpoint DIR --vocab-file F --merge-file F]
       [--max-tokens 32] [--prompt-tokens 16] [--dtype float32]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TURING_SHARED_DATA", REPO.parent / "shared" / "data"))


def start(turing: str, args: list[str]):
    proc = subprocess.Popen([turing, "serve", "--port", "0", *args], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("listening on "):
            host, port = line.split("//")[1].strip().split(":")
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, host, int(port)
    raise RuntimeError(f"turing serve exited with {proc.wait()}")


def complete(host, port, prompt, max_tokens, stream):
    """One request; returns (text, completion_tokens, latency, time to first token, token arrival times)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": stream,
                       "stream_options": {"include_usage": True}} if stream else
                      {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    c = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:300]}")
    if not stream:
        j = json.loads(r.read())
        t = time.perf_counter() - t0
        return j["choices"][0]["text"], j["usage"]["completion_tokens"], t, None, []
    text, n, arrivals = "", 0, []
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        j = json.loads(data)
        if j.get("usage"):
            n = j["usage"]["completion_tokens"]
        for ch in j["choices"]:
            text += ch["text"]
            arrivals.append(time.perf_counter())
    t = time.perf_counter() - t0
    c.close()
    return text, n, t, arrivals[0] - t0 if arrivals else None, arrivals


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--turing", default=str(REPO / ".build" / "release" / "turing"))
    ap.add_argument("--checkpoint")
    ap.add_argument("--vocab-file", default=str(SHARED / "gpt2_tokenizer" / "gpt2-vocab.json"))
    ap.add_argument("--merge-file", default=str(SHARED / "gpt2_tokenizer" / "gpt2-merges.txt"))
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    ckpt = a.checkpoint
    if not ckpt:
        ckpt = str(Path(tmp.name) / "gpt2-124m")
        subprocess.run([a.turing, "convert", "--random", "gpt2-124m", "--to", "megatron", "--output", ckpt], check=True, capture_output=True)
    proc, host, port = start(a.turing, ["--checkpoint", ckpt, "--vocab-file", a.vocab_file, "--merge-file", a.merge_file,
                                        "--max-batch", "32", "--max-queue", "256", "--dtype", a.dtype])
    ok = True
    try:
        rng = random.Random(1234)
        prompts = [[rng.randrange(256, 50000) for _ in range(a.prompt_tokens)] for _ in range(32)]
        complete(host, port, prompts[0], 4, False)   # warm-up
        ref = [complete(host, port, p, a.max_tokens, False)[:2] for p in prompts]
        print(f"model {ckpt if a.checkpoint else 'random gpt2-124m'} ({a.dtype}), prompts of {a.prompt_tokens} tokens, "
              f"{a.max_tokens} greedy tokens each; single-request references done")
        rates = {}
        for conc in [1, 8, 32]:
            out = [None] * conc
            def run(i):
                out[i] = complete(host, port, prompts[i], a.max_tokens, True)
            th = [threading.Thread(target=run, args=(i,)) for i in range(conc)]
            t0 = time.perf_counter()
            for t in th:
                t.start()
            for t in th:
                t.join()
            wall = time.perf_counter() - t0
            same = all(out[i][0] == ref[i][0] and out[i][1] == ref[i][1] for i in range(conc))
            ok &= same
            total = sum(o[1] for o in out)
            first = min(o[4][0] for o in out)
            last = max(o[4][-1] for o in out)
            decode = sum(o[1] - 1 for o in out) / max(last - first, 1e-9)
            rates[conc] = decode
            lat = [o[2] for o in out]
            ttft = [o[3] for o in out]
            print(f"{conc:2d} streams: {'all equal their single runs' if same else 'MISMATCH with single runs'}; "
                  f"latency p50 {pct(lat, 50):.3f} s p99 {pct(lat, 99):.3f} s; first token p50 {pct(ttft, 50):.3f} s p99 {pct(ttft, 99):.3f} s; "
                  f"aggregate {total / wall:.1f} tok/s; decode {decode:.1f} tok/s")
        ratio = rates[8] / rates[1]
        print(f"decode throughput at 8 streams / 1 stream: {ratio:.2f}x (needs >= 4)")
        ok &= ratio >= 4
    finally:
        proc.terminate()
        proc.wait()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
