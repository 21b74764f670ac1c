#!/usr/bin/env python3
"""PyTorch CPU baseline benchmark for a GPT-2-124M-shaped model (random init, float32).

Measures, with transformers GPT2LMHeadModel (eager attention) under torch.inference_mode():
  * prefill tokens/s for a --prompt-len (128) token prompt at batch 1 and batch 8
  * time to first token (batch 1): prompt forward + argmax of the last logits
  * decode tokens/s with KV cache (past_key_values; named `cache` in transformers 5.2x) for --new-tokens (64) greedy tokens at
    batch 1 and batch 8: a manual loop feeding one token per sequence per step
  * peak RSS (resource.getrusage ru_maxrss)
Each measurement is warmed up once, then --reps (3) timed runs; the best (min time) is the
headline number, the median is reported alongside (`*_median`). On a shared 2-core box other
processes (e.g. Swift builds) make 2-thread OpenMP runs very noisy; compare with --threads 1.
Prints one JSON object to stdout (progress goes to stderr).

Usage:
    /work/venv/bin/python scripts/bench_pytorch.py                       # GPT-2 124M shape, 2 threads
    /work/venv/bin/python scripts/bench_pytorch.py --threads 1 --reps 3
    /work/venv/bin/python scripts/bench_pytorch.py --layers 2 --hidden 128 --heads 4 --vocab 512   # quick
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def timed(fn, reps: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--positions", type=int, default=1024)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batches", type=str, default="1,8")
    ap.add_argument("--reps", type=int, default=3,
                    help="timed runs after one warm-up; best (min time) and median are reported")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    assert args.prompt_len + args.new_tokens <= args.positions

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    transformers.logging.set_verbosity_error()
    cfg = GPT2Config(vocab_size=args.vocab, n_positions=args.positions, n_embd=args.hidden,
                     n_layer=args.layers, n_head=args.heads, activation_function="gelu_new",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=True)
    t0 = time.perf_counter()
    model = GPT2LMHeadModel._from_config(cfg, attn_implementation="eager", dtype=torch.float32).eval()
    build_s = time.perf_counter() - t0
    assert model.config._attn_implementation == "eager"
    n_params = sum(p.numel() for p in model.parameters())
    log(f"built model: {n_params/1e6:.1f}M params in {build_s:.1f}s, threads={torch.get_num_threads()}")

    # transformers >= 5.2x renamed forward(past_key_values=) / output.past_key_values to `cache`
    # (the old name still works but warns). Use whichever this version has.
    import inspect
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def get_cache(out):
        return getattr(out, "cache", None) if cache_kw == "cache" else out.past_key_values

    batches = [int(b) for b in args.batches.split(",")]
    g = torch.Generator().manual_seed(args.seed + 1)
    prompts = {b: torch.randint(0, args.vocab, (b, args.prompt_len), generator=g) for b in batches}
    res: dict = {}

    with torch.inference_mode():
        # ---- prefill (logits for every position, like a scoring / prompt pass) ----
        prefill = {}
        for b in batches:
            ids = prompts[b]
            ts = timed(lambda: model(input_ids=ids, use_cache=True), args.reps)
            s = min(ts)
            prefill[b] = {"seconds": s, "tokens_per_s": b * args.prompt_len / s,
                          "median_tokens_per_s": b * args.prompt_len / median(ts)}
            log(f"prefill b={b}: {s*1e3:.1f} ms, {prefill[b]['tokens_per_s']:.1f} tok/s")

        # ---- time to first token, batch 1 ----
        ids1 = prompts[batches[0]][:1]

        def first_token():
            out = model(input_ids=ids1, use_cache=True)
            return out.logits[:, -1, :].argmax(-1)

        ttft_all = timed(first_token, args.reps)
        ttft = min(ttft_all)
        log(f"ttft b=1: {ttft*1e3:.1f} ms")

        # ---- decode with KV cache ----
        decode = {}
        for b in batches:
            ids = prompts[b]

            def run_decode():
                out = model(input_ids=ids, use_cache=True)
                past = get_cache(out)
                nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
                t_start = time.perf_counter()
                for _ in range(args.new_tokens):
                    out = model(input_ids=nxt, use_cache=True, **{cache_kw: past})
                    past = get_cache(out)
                    nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
                dt = time.perf_counter() - t_start  # decode steps only (prefill excluded)
                assert past.get_seq_length() == args.prompt_len + args.new_tokens
                return dt

            run_decode()  # warm-up
            ts = [run_decode() for _ in range(args.reps)]
            s = min(ts)
            decode[b] = {"seconds": s, "tokens_per_s": b * args.new_tokens / s,
                         "median_tokens_per_s": b * args.new_tokens / median(ts),
                         "ms_per_step": s / args.new_tokens * 1e3}
            log(f"decode b={b}: {s:.2f} s, {decode[b]['tokens_per_s']:.1f} tok/s")

    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_rss_mb = ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024
    res = {
        "framework": "pytorch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "model": {"layers": args.layers, "hidden": args.hidden, "heads": args.heads,
                  "vocab": args.vocab, "positions": args.positions, "params": n_params,
                  "dtype": "float32", "attn_implementation": "eager", "init": "random"},
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
        "reps": args.reps,
        "cache_kwarg": cache_kw,
        "prefill_tokens_per_s": {f"b{b}": round(v["tokens_per_s"], 2) for b, v in prefill.items()},
        "prefill_seconds": {f"b{b}": round(v["seconds"], 5) for b, v in prefill.items()},
        "prefill_tokens_per_s_median": {f"b{b}": round(v["median_tokens_per_s"], 2)
                                        for b, v in prefill.items()},
        "ttft_ms_b1": round(ttft * 1e3, 3),
        "ttft_ms_b1_median": round(median(ttft_all) * 1e3, 3),
        "decode_tokens_per_s": {f"b{b}": round(v["tokens_per_s"], 2) for b, v in decode.items()},
        "decode_tokens_per_s_median": {f"b{b}": round(v["median_tokens_per_s"], 2)
                                       for b, v in decode.items()},
        "decode_ms_per_step": {f"b{b}": round(v["ms_per_step"], 3) for b, v in decode.items()},
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
