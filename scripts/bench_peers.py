#!/usr/bin/env python3
"""Turing's peers on this machine, in this run: PyTorch (f32, bf16) and llama.cpp (f32, bf16 GGUF).

Same model for every engine: one GPT-2 124M HF folder (scripts/bench_peers_setup.sh makes a random
one, seed 0, with GPT-2's real tokenizer, and its GGUF f32/bf16 conversions by llama.cpp's own
convert_hf_to_gguf.py). Same prompts for every engine: random token ids from numpy's
default_rng(--seed). Threads: --threads (2) given to each engine as its own parameter
(torch.set_num_threads, llama.cpp n_threads / n_threads_batch); no environment variable is set or
changed: the environment is the one found.

Measured per engine, each in its own subprocess (so peak RSS is per engine and dtype), each number
the best (min time) of --reps timed runs after one warm-up run (medians reported alongside):
  * prefill tokens/s: a --prompt-len (128) token prompt, batch 1 and 8, KV cache built, logits of the
    last position only (what generation needs; transformers `logits_to_keep=1`, llama.cpp
    logits_all=False)
  * time to first token, ms, batch 1: that prompt forward + argmax of the last logits
  * decode tokens/s, batch 1 and 8: --new-tokens (64) greedy steps with the KV cache after the prompt
    (steps only timed), one token per sequence per step, argmax each step
  * scoring tokens/s, batch 1: one forward of the 128-token prompt with logits at every position
    (transformers: plain forward, use_cache=False; llama.cpp: logits_all=True, eval of 128 tokens, its
    own subprocess so the generation process's RSS is not doubled)
  * peak RSS, MB (getrusage ru_maxrss of the engine's process, model load included)
llama.cpp runs through llama-cpp-python's bindings of the llama.cpp C API (--llama-api c, default):
llama_decode on a batch holding one sequence per row (n_seq_max = batch, one KV stream each),
llama.cpp's own context defaults otherwise (mmap, flash attention auto, f16 KV cache), logits of the
last position per sequence for prefill/decode, of every position for scoring. --llama-api high uses
llama-cpp-python's Llama class instead (Llama.eval; batch 1 only; its defaults, flash attention off;
logits_all=True for scoring, which also copies all logits into numpy).
PyTorch: transformers GPT2LMHeadModel.from_pretrained(dtype=...) with its default attention
(sdpa), torch.inference_mode().

Also: the machine's read bandwidth on --threads threads (a small C loop, gcc -O3 -march=native
-fopenmp, summing a 1 GiB buffer; numpy on one thread if no compiler), and the batch-1 decode floor:
bytes of weights one decode step reads (all blocks + final norm + the tied LM head over the whole
vocabulary + one embedding row) / bandwidth, for f32 and bf16.

Prints one JSON object to stdout (progress on stderr).

Usage (after scripts/bench_peers_setup.sh):
    /work/venv/bin/python scripts/bench_peers.py --model-dir /tmp/gpt2-124m-hf
    /work/venv/bin/python scripts/bench_peers.py --model-dir /tmp/gpt2-124m-hf --engines torch-f32,llama-f32 --reps 3
The running python needs torch + transformers; llama.cpp runs with --llama-python
(default /work/venv-llama/bin/python, made by the setup script).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ENGINES = ["torch-f32", "torch-bf16", "llama-f32", "llama-bf16"]


def log(*a):
    print("[bench_peers]", *a, file=sys.stderr, flush=True)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def timed(fn, reps):
    """One warm-up, then reps runs. fn returns the seconds to count, or None to count its whole time."""
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = fn()
        out.append(r if isinstance(r, float) else time.perf_counter() - t0)
    return out


def peak_rss_mb():
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024, 1)


def prompts_for(batch, length, vocab, seed):
    import numpy as np
    return np.random.default_rng(seed).integers(0, vocab, size=(batch, length), dtype=np.int64)


def rate(tokens, seconds):
    return round(tokens / seconds, 2)


# ---------------------------------------------------------------------------------------------
# PyTorch worker
# ---------------------------------------------------------------------------------------------
def worker_torch(a):
    import inspect
    import torch
    import transformers
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(a.threads)
    transformers.logging.set_verbosity_error()
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    t0 = time.perf_counter()
    try:
        model = GPT2LMHeadModel.from_pretrained(a.model_dir, dtype=dtype)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        model = GPT2LMHeadModel.from_pretrained(a.model_dir, torch_dtype=dtype)
    model = model.eval()
    load_s = time.perf_counter() - t0
    assert next(model.parameters()).dtype == dtype
    vocab = model.config.vocab_size
    params = inspect.signature(model.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"
    keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
    keep1 = {keep_kw: 1} if keep_kw else {}

    def get_cache(out):
        return getattr(out, "cache", None) if cache_kw == "cache" else out.past_key_values

    batches = [int(b) for b in a.batches.split(",")]
    prompts = {b: torch.from_numpy(prompts_for(b, a.prompt_len, vocab, a.seed)) for b in batches}
    log(f"torch {torch.__version__} {a.dtype}: loaded in {load_s:.1f}s, threads={torch.get_num_threads()}, "
        f"attention={model.config._attn_implementation}")
    res = {"engine": "pytorch", "dtype": a.dtype, "torch": torch.__version__,
           "transformers": transformers.__version__, "threads": torch.get_num_threads(),
           "attn_implementation": model.config._attn_implementation, "load_seconds": round(load_s, 3),
           "prefill_logits": keep_kw or "all", "torch_config": torch.__config__.show().splitlines()[:12]}
    pre, pre_med, dec, dec_med, sc, sc_med = {}, {}, {}, {}, {}, {}
    with torch.inference_mode():
        for b in batches:
            ids = prompts[b]
            ts = timed(lambda: model(input_ids=ids, use_cache=True, **keep1), a.reps)
            pre[f"b{b}"], pre_med[f"b{b}"] = rate(b * a.prompt_len, min(ts)), rate(b * a.prompt_len, median(ts))
            log(f"torch {a.dtype} prefill b{b}: {pre[f'b{b}']} tok/s")
        ids1 = prompts[batches[0]][:1]

        def first_token():
            out = model(input_ids=ids1, use_cache=True, **keep1)
            return out.logits[:, -1, :].argmax(-1)
        tt = timed(first_token, a.reps)
        log(f"torch {a.dtype} ttft: {min(tt)*1e3:.1f} ms")

        for b in batches:
            ids = prompts[b]

            def run_decode():
                out = model(input_ids=ids, use_cache=True, **keep1)
                past = get_cache(out)
                nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
                t_start = time.perf_counter()
                for _ in range(a.new_tokens):
                    out = model(input_ids=nxt, use_cache=True, **{cache_kw: past})
                    past = get_cache(out)
                    nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
                dt = time.perf_counter() - t_start
                assert past.get_seq_length() == a.prompt_len + a.new_tokens
                return dt
            ts = timed(run_decode, a.reps)
            dec[f"b{b}"], dec_med[f"b{b}"] = rate(b * a.new_tokens, min(ts)), rate(b * a.new_tokens, median(ts))
            log(f"torch {a.dtype} decode b{b}: {dec[f'b{b}']} tok/s")

        for b in [1]:
            ids = prompts[batches[0]][:1] if b == 1 else prompts[b]

            def score():
                out = model(input_ids=ids, use_cache=False)
                assert out.logits.shape[1] == a.prompt_len
            ts = timed(score, a.reps)
            sc[f"b{b}"], sc_med[f"b{b}"] = rate(b * a.prompt_len, min(ts)), rate(b * a.prompt_len, median(ts))
            log(f"torch {a.dtype} score b{b}: {sc[f'b{b}']} tok/s")
    res.update({"prefill_tokens_per_s": pre, "prefill_tokens_per_s_median": pre_med,
                "ttft_ms_b1": round(min(tt) * 1e3, 3), "ttft_ms_b1_median": round(median(tt) * 1e3, 3),
                "decode_tokens_per_s": dec, "decode_tokens_per_s_median": dec_med,
                "score_tokens_per_s": sc, "score_tokens_per_s_median": sc_med,
                "peak_rss_mb": peak_rss_mb()})
    return res


# ---------------------------------------------------------------------------------------------
# llama.cpp worker (runs under the llama venv's python: only numpy + llama_cpp imported)
# ---------------------------------------------------------------------------------------------
def worker_llama(a):
    import numpy as np
    import llama_cpp
    from llama_cpp import Llama

    score_mode = a.mode == "score"
    n_ctx = 256
    while n_ctx < a.prompt_len + a.new_tokens:
        n_ctx *= 2
    t0 = time.perf_counter()
    llm = Llama(model_path=a.gguf, n_threads=a.threads, n_threads_batch=a.threads, n_ctx=n_ctx,
                n_batch=512, n_ubatch=512, logits_all=score_mode, seed=a.seed, verbose=False)
    load_s = time.perf_counter() - t0
    n_vocab = llm.n_vocab()
    prompt = prompts_for(1, a.prompt_len, n_vocab, a.seed)[0].tolist()
    sysinfo = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    log(f"llama.cpp (llama-cpp-python {llama_cpp.__version__}) {a.dtype} {a.mode}: loaded in {load_s:.2f}s")
    res = {"engine": "llama.cpp", "dtype": a.dtype, "llama_cpp_python": llama_cpp.__version__,
           "system_info": sysinfo, "threads": a.threads, "n_ctx": n_ctx, "gguf": a.gguf,
           "load_seconds": round(load_s, 3)}

    def last_argmax():
        p = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.ctypeslib.as_array(p, shape=(n_vocab,)).argmax())

    if score_mode:
        def score():
            llm.reset()
            llm.eval(prompt)
            assert llm.n_tokens == a.prompt_len
        ts = timed(score, a.reps)
        res["score_tokens_per_s"] = {"b1": rate(a.prompt_len, min(ts))}
        res["score_tokens_per_s_median"] = {"b1": rate(a.prompt_len, median(ts))}
        log(f"llama {a.dtype} score b1: {res['score_tokens_per_s']['b1']} tok/s")
    else:
        def prefill():
            llm.reset()
            llm.eval(prompt)
        ts = timed(prefill, a.reps)
        res["prefill_tokens_per_s"] = {"b1": rate(a.prompt_len, min(ts))}
        res["prefill_tokens_per_s_median"] = {"b1": rate(a.prompt_len, median(ts))}
        log(f"llama {a.dtype} prefill b1: {res['prefill_tokens_per_s']['b1']} tok/s")

        def first_token():
            llm.reset()
            llm.eval(prompt)
            last_argmax()
        tt = timed(first_token, a.reps)
        res["ttft_ms_b1"] = round(min(tt) * 1e3, 3)
        res["ttft_ms_b1_median"] = round(median(tt) * 1e3, 3)
        log(f"llama {a.dtype} ttft: {res['ttft_ms_b1']} ms")

        def run_decode():
            llm.reset()
            llm.eval(prompt)
            tok = last_argmax()
            t_start = time.perf_counter()
            for _ in range(a.new_tokens):
                llm.eval([tok])
                tok = last_argmax()
            dt = time.perf_counter() - t_start
            assert llm.n_tokens == a.prompt_len + a.new_tokens
            return dt
        ts = timed(run_decode, a.reps)
        res["decode_tokens_per_s"] = {"b1": rate(a.new_tokens, min(ts))}
        res["decode_tokens_per_s_median"] = {"b1": rate(a.new_tokens, median(ts))}
        log(f"llama {a.dtype} decode b1: {res['decode_tokens_per_s']['b1']} tok/s")
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def worker_llama_lowlevel(a):
    """llama.cpp through llama-cpp-python's C API bindings: one context per batch size with
    n_seq_max = batch (one KV stream per sequence), llama.cpp's own context defaults otherwise
    (flash attention auto, f16 KV cache, kv_unified off). Each decode step is one llama_decode of
    one token per sequence."""
    import ctypes
    import numpy as np
    import llama_cpp as L

    quiet = L.llama_log_callback(lambda level, text, user: None)  # keep a reference while llama.cpp may log
    L.llama_log_set(quiet, ctypes.c_void_p(0))
    L.llama_backend_init()
    t0 = time.perf_counter()
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = L.llama_model_load_from_file(a.gguf.encode(), mp)
    assert model, f"could not load {a.gguf}"
    load_s = time.perf_counter() - t0
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    per_seq = 256
    while per_seq < a.prompt_len + a.new_tokens:
        per_seq *= 2
    batches = [int(b) for b in a.batches.split(",")]
    sysinfo = L.llama_print_system_info().decode(errors="replace").strip()
    log(f"llama.cpp (llama-cpp-python {L.__version__}, C API) {a.dtype} {a.mode}: loaded in {load_s:.2f}s")
    res = {"engine": "llama.cpp", "api": "llama-cpp-python C API (llama_decode)", "dtype": a.dtype,
           "llama_cpp_python": L.__version__, "system_info": sysinfo, "threads": a.threads,
           "gguf": a.gguf, "load_seconds": round(load_s, 3)}

    def context(b, logits_all):
        cp = L.llama_context_default_params()
        cp.n_ctx = b * per_seq
        cp.n_batch = cp.n_ubatch = max(512, b * a.prompt_len)
        cp.n_seq_max = b
        cp.n_threads = cp.n_threads_batch = a.threads
        ctx = L.llama_init_from_model(model, cp)
        assert ctx, "llama_init_from_model failed"
        res["flash_attn_type"] = int(cp.flash_attn_type)
        res["kv_unified"] = bool(cp.kv_unified)
        return ctx

    def fill(batch, seqs, start, logits_all):
        n = 0
        for s, toks in enumerate(seqs):
            for i, t in enumerate(toks):
                batch.token[n] = int(t)
                batch.pos[n] = start + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = s
                batch.logits[n] = 1 if (logits_all or i == len(toks) - 1) else 0
                n += 1
        batch.n_tokens = n

    def decode(ctx, batch):
        rc = L.llama_decode(ctx, batch)
        assert rc == 0, f"llama_decode returned {rc}"

    def argmaxes(ctx, b):
        return np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(b, n_vocab)).argmax(-1)

    pre, pre_med, dec, dec_med, sc, sc_med = {}, {}, {}, {}, {}, {}
    if a.mode == "score":
        ctx = context(1, True)
        mem = L.llama_get_memory(ctx)
        batch = L.llama_batch_init(max(512, a.prompt_len), 0, 1)
        prompt = prompts_for(1, a.prompt_len, n_vocab, a.seed)

        def score():
            L.llama_memory_clear(mem, True)
            fill(batch, prompt, 0, True)
            decode(ctx, batch)
            np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(a.prompt_len, n_vocab))
        ts = timed(score, a.reps)
        sc["b1"], sc_med["b1"] = rate(a.prompt_len, min(ts)), rate(a.prompt_len, median(ts))
        log(f"llama {a.dtype} score b1: {sc['b1']} tok/s")
        res.update({"score_tokens_per_s": sc, "score_tokens_per_s_median": sc_med})
        L.llama_batch_free(batch)
        L.llama_free(ctx)
    else:
        for b in batches:
            ctx = context(b, False)
            mem = L.llama_get_memory(ctx)
            batch = L.llama_batch_init(max(512, b * a.prompt_len), 0, 1)
            prompts = prompts_for(b, a.prompt_len, n_vocab, a.seed)

            def prefill():
                L.llama_memory_clear(mem, True)
                fill(batch, prompts, 0, False)
                decode(ctx, batch)
                return argmaxes(ctx, b)
            ts = timed(prefill, a.reps)  # returns the argmaxes, not a float: whole call timed
            pre[f"b{b}"], pre_med[f"b{b}"] = rate(b * a.prompt_len, min(ts)), rate(b * a.prompt_len, median(ts))
            log(f"llama {a.dtype} prefill b{b}: {pre[f'b{b}']} tok/s")
            if b == 1:
                tt = ts  # prefill already ends with the argmax: it is the time to first token
                res["ttft_ms_b1"] = round(min(tt) * 1e3, 3)
                res["ttft_ms_b1_median"] = round(median(tt) * 1e3, 3)

            def run_decode():
                nxt = prefill()
                t_start = time.perf_counter()
                for step in range(a.new_tokens):
                    fill(batch, [[t] for t in nxt], a.prompt_len + step, False)
                    decode(ctx, batch)
                    nxt = argmaxes(ctx, b)
                return time.perf_counter() - t_start
            ts = timed(run_decode, a.reps)
            dec[f"b{b}"], dec_med[f"b{b}"] = rate(b * a.new_tokens, min(ts)), rate(b * a.new_tokens, median(ts))
            log(f"llama {a.dtype} decode b{b}: {dec[f'b{b}']} tok/s")
            L.llama_batch_free(batch)
            L.llama_free(ctx)
        res.update({"prefill_tokens_per_s": pre, "prefill_tokens_per_s_median": pre_med,
                    "decode_tokens_per_s": dec, "decode_tokens_per_s_median": dec_med})
    L.llama_model_free(model)
    res["peak_rss_mb"] = peak_rss_mb()
    return res


# ---------------------------------------------------------------------------------------------
# memory bandwidth and the decode floor
# ---------------------------------------------------------------------------------------------
BW_C = r"""
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int threads = atoi(argv[1]), reps = atoi(argv[2]);
    size_t bytes = (size_t)atol(argv[3]), n = bytes / sizeof(uint64_t);
    uint64_t *buf = aligned_alloc(64, n * sizeof(uint64_t));
    omp_set_num_threads(threads);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = i;           /* first touch by the reading thread */
    double best = 1e30, sum_t = 0; uint64_t check = 0;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = omp_get_wtime();
        uint64_t s = 0;
        #pragma omp parallel for schedule(static) reduction(+:s)
        for (size_t i = 0; i < n; i++) s += buf[i];
        double t = omp_get_wtime() - t0;
        check += s;
        if (r > 0) { if (t < best) best = t; sum_t += t; }   /* run 0 is the warm-up */
    }
    printf("{\"threads\": %d, \"bytes\": %zu, \"best_gbps\": %.3f, \"mean_gbps\": %.3f, \"check\": %llu}\n",
           threads, n * sizeof(uint64_t), bytes / best / 1e9, bytes / (sum_t / reps) / 1e9,
           (unsigned long long)(check & 0xff));
    free(buf);
    return 0;
}
"""


def bandwidth(threads, reps, sizes):
    """Read bandwidth, GB/s, on `threads` threads (and 1) over buffers of the given sizes in bytes."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc:
        d = tempfile.mkdtemp(prefix="bench_peers_bw")
        try:
            src, exe = os.path.join(d, "bw.c"), os.path.join(d, "bw")
            open(src, "w").write(BW_C)
            subprocess.run([cc, "-O3", "-march=native", "-fopenmp", src, "-o", exe], check=True)
            runs = []
            for nbytes in sizes:
                for t in sorted({1, threads}):
                    r = json.loads(subprocess.run([exe, str(t), str(reps), str(int(nbytes))], check=True,
                                                  capture_output=True, text=True).stdout)
                    runs.append(r)
                    log(f"read bandwidth, {t} thread(s), {nbytes/1e6:.0f} MB: {r['best_gbps']:.2f} GB/s "
                        f"(best of {reps})")
            return {"method": f"C read loop (uint64 sum, {os.path.basename(cc)} -O3 -march=native -fopenmp, "
                              f"OpenMP threads set in the program)", "runs": runs, "threads": threads,
                    "gbps_by_bytes": {str(r["bytes"]): r["best_gbps"] for r in runs if r["threads"] == threads}}
        finally:
            shutil.rmtree(d, ignore_errors=True)
    import numpy as np
    out = {"method": "numpy int64 sum, 1 thread (no C compiler)", "threads": 1, "gbps_by_bytes": {}}
    for nbytes in sizes:
        buf = np.ones(int(nbytes) // 8, dtype=np.int64)
        ts = timed(lambda: buf.sum(), reps)
        out["gbps_by_bytes"][str(buf.nbytes)] = round(buf.nbytes / min(ts) / 1e9, 3)
    return out


def weight_bytes(model_dir):
    """Parameters one batch-1 decode step reads: block matrices + tied LM head (whole vocabulary), and
    vectors (biases, layer norms, final norm, one wte row and one wpe row)."""
    c = json.load(open(os.path.join(model_dir, "config.json")))
    h, L, V = c["n_embd"], c["n_layer"], c["vocab_size"]
    ff = c.get("n_inner") or 4 * h
    mat = L * (h * 3 * h + h * h + h * ff + ff * h) + V * h
    vec = L * (3 * h + h + ff + h + 4 * h) + 2 * h + 2 * h
    # f32: everything 4 bytes; bf16: matrices 2 bytes, 1-D tensors 4 (as in the GGUF; PyTorch has them at 2)
    return {"matrix_params": mat, "vector_params": vec, "layers": L, "hidden": h,
            "f32": mat * 4 + vec * 4, "bf16": mat * 2 + vec * 4}


def decode_floor(wb, bw, prompt_len, new_tokens):
    """Batch-1 decode floor = weight bytes per token / read bandwidth. Two bandwidths: over 1 GiB (DRAM;
    the classic floor) and over a buffer the size of the weights (what a decode step actually streams;
    higher when the weights fit in the last-level cache)."""
    by = {int(k): v for k, v in bw["gbps_by_bytes"].items()}
    dram = by[max(by)]
    ctx = prompt_len + new_tokens / 2                               # mean context over the decode steps
    out = {"weights_read_per_token": {k: wb[k] for k in ("matrix_params", "vector_params")},
           "dram_gbps": dram, "mean_context": ctx}
    for name, kvb in (("f32", 4), ("bf16", 2)):
        wbytes = wb[name]
        same = by[min(by, key=lambda n: abs(n - wbytes))]         # measured at about the weights' size
        kv = 2 * wb["layers"] * wb["hidden"] * ctx * kvb           # K and V read at the mean context
        out[name] = {"bytes_per_token": wbytes, "with_kv_bytes_per_token": int(wbytes + kv),
                     "floor_ms": round(wbytes / (dram * 1e9) * 1e3, 3),
                     "ceiling_tokens_per_s": round(dram * 1e9 / wbytes, 1),
                     "gbps_at_weight_size": same,
                     "floor_ms_at_weight_size": round(wbytes / (same * 1e9) * 1e3, 3),
                     "ceiling_tokens_per_s_at_weight_size": round(same * 1e9 / wbytes, 1)}
    return out


# ---------------------------------------------------------------------------------------------
def cpu_info():
    info = {"machine": platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        txt = open("/proc/cpuinfo").read()
        first = txt.split("\n\n")[0]
        kv = dict((k.strip(), v.strip()) for k, v in (l.split(":", 1) for l in first.splitlines() if ":" in l))
        flags = set(kv.get("flags", "").split())
        interesting = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq",
                       "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16",
                       "amx_int8", "avx512_vbmi"]
        info.update({"model_name": kv.get("model name"), "family": kv.get("cpu family"),
                     "model": kv.get("model"), "stepping": kv.get("stepping"),
                     "cache_size": kv.get("cache size"),
                     "flags_summary": " ".join(f for f in interesting if f in flags),
                     "hypervisor": "hypervisor" in flags})
        for l in open("/proc/meminfo"):
            if l.startswith("MemTotal"):
                info["mem_total_gib"] = round(int(l.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    try:
        info["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return info


def run_worker(python, argv, timeout):
    cmd = [python, os.path.abspath(__file__)] + argv
    log("run:", " ".join(cmd))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout)
    if p.returncode != 0:
        return {"error": f"exit {p.returncode}", "command": " ".join(cmd)}
    r = json.loads(p.stdout)
    r["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return r


METRICS = ("prefill_tokens_per_s", "decode_tokens_per_s", "score_tokens_per_s", "ttft_ms_b1", "peak_rss_mb",
           "score_peak_rss_mb")


def merge_rounds(rs):
    """Per metric, the best over rounds (max throughput, min time); RSS: the smallest."""
    ok = [r for r in rs if "error" not in r]
    if not ok:
        return rs[0]
    m = dict(ok[0])
    for k, v in ok[0].items():
        if isinstance(v, dict) and "tokens_per_s" in k:
            m[k] = {b: max(r[k][b] for r in ok if b in r.get(k, {})) for b in v}
        elif k.startswith("ttft_ms") or k.endswith("rss_mb"):
            m[k] = min(r[k] for r in ok if k in r)
    if len(rs) > 1:
        m["rounds"] = {"ok": len(ok), "run": len(rs),
                       "per_round": [{k: r.get(k) for k in METRICS if k in r} for r in ok]}
    return m


def run_engine(e, a, common, gguf_dir):
    kind, dtype = e.split("-")
    try:
        if kind == "torch":
            r = run_worker(sys.executable, common + ["--worker", "torch", "--dtype", dtype,
                                                     "--batches", a.batches], a.timeout)
        elif kind == "llama":
            gguf = os.path.join(gguf_dir, f"gpt2-124m-{dtype}.gguf")
            if not os.path.exists(gguf) or not os.path.exists(a.llama_python):
                return {"error": f"missing {gguf} or {a.llama_python}: run scripts/bench_peers_setup.sh"}
            base = common + ["--worker", "llama", "--dtype", dtype, "--gguf", gguf,
                             "--llama-api", a.llama_api, "--batches", a.batches]
            r = run_worker(a.llama_python, base + ["--mode", "gen"], a.timeout)
            s = run_worker(a.llama_python, base + ["--mode", "score"], a.timeout)
            if "error" in s:
                r["score_error"] = s["error"]
            else:
                r["score_tokens_per_s"] = s["score_tokens_per_s"]
                r["score_tokens_per_s_median"] = s["score_tokens_per_s_median"]
                r["score_peak_rss_mb"] = s["peak_rss_mb"]
        else:
            raise ValueError(f"unknown engine {e}")
    except Exception as ex:  # keep going: a partial table beats none
        r = {"error": f"{type(ex).__name__}: {ex}"}
    if "error" in r:
        log(f"{e}: {r['error']}")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default="/tmp/gpt2-124m-hf")
    ap.add_argument("--gguf-dir", default=None, help="default MODEL_DIR/gguf (gpt2-124m-{f32,bf16}.gguf)")
    ap.add_argument("--llama-python", default=os.environ.get("LLAMA_PYTHON", "/work/venv-llama/bin/python"))
    ap.add_argument("--engines", default=",".join(ENGINES) + ",bandwidth")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="timed runs after one warm-up; best and median reported")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every engine's subprocess this many times, interleaved; per metric the best "
                         "round is kept (noisy shared machines)")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--llama-api", choices=["c", "high"], default="c",
                    help="c: llama-cpp-python's C API bindings (llama_decode; batch 1 and 8, llama.cpp's "
                         "context defaults); high: its Llama class (batch 1 only, Llama's defaults)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per engine subprocess")
    # internal: one engine in this process
    ap.add_argument("--worker", choices=["torch", "llama"], help=argparse.SUPPRESS)
    ap.add_argument("--dtype", choices=["f32", "bf16"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["gen", "score"], default="gen", help=argparse.SUPPRESS)
    ap.add_argument("--gguf", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        if a.worker == "torch":
            r = worker_torch(a)
        else:
            r = worker_llama(a) if a.llama_api == "high" else worker_llama_lowlevel(a)
        print(json.dumps(r))
        return

    gguf_dir = a.gguf_dir or os.path.join(a.model_dir, "gguf")
    engines = [e for e in a.engines.split(",") if e]
    common = ["--threads", str(a.threads), "--reps", str(a.reps), "--prompt-len", str(a.prompt_len),
              "--new-tokens", str(a.new_tokens), "--seed", str(a.seed), "--model-dir", a.model_dir]
    t_start = time.time()
    out = {"benchmark": "bench_peers", "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": " ".join([sys.executable] + sys.argv), "cpu": cpu_info(),
           "python": platform.python_version(), "threads": a.threads, "reps": a.reps, "rounds": a.rounds,
           "prompt_len": a.prompt_len, "new_tokens": a.new_tokens, "batches": a.batches,
           "model_dir": a.model_dir,
           "env_thread_vars": {k: v for k, v in os.environ.items()
                               if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOMP", "KMP_"))},
           "engines": {}}
    per_engine = {e: [] for e in engines if e != "bandwidth"}
    for rnd in range(a.rounds):
        if a.rounds > 1:
            log(f"round {rnd + 1} of {a.rounds}")
        for e in per_engine:
            per_engine[e].append(run_engine(e, a, common, gguf_dir))
    for e, rs in per_engine.items():
        out["engines"][e] = merge_rounds(rs)
    if "bandwidth" in engines:
        wb = weight_bytes(a.model_dir)
        bw = bandwidth(a.threads, reps=5, sizes=[1 << 30, wb["f32"], wb["bf16"]])
        bw["gbps"] = bw["gbps_by_bytes"][str(max(int(k) for k in bw["gbps_by_bytes"]))]
        out["bandwidth"] = bw
        out["decode_floor_b1"] = decode_floor(wb, bw, a.prompt_len, a.new_tokens)
        for k in ("f32", "bf16"):
            f = out["decode_floor_b1"][k]
            log(f"decode floor b1 {k}: {f['floor_ms']} ms/token (1 GiB bandwidth), at most "
                f"{f['ceiling_tokens_per_s']} tok/s; at the weights' size {f['gbps_at_weight_size']} GB/s: "
                f"{f['floor_ms_at_weight_size']} ms, {f['ceiling_tokens_per_s_at_weight_size']} tok/s")
    out["wall_seconds"] = round(time.time() - t_start, 1)
    try:
        out["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
