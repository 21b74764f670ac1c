#!/work/venv/bin/python
"""HF tokenizers (GPT2TokenizerFast, Rust backend) encode throughput on tinyshakespeare, for comparison with
the Swift TokenizerBenchmarkTests (TURING_BENCH=1 swift test -c release --filter TokenizerBenchmarkTests).
Same protocol as TokenizerBenchmark.run: one warm-up encode, then best of N single-string encodes
(MB = 1e6 UTF-8 bytes). "cold" = first encode on a freshly built tokenizer (empty BPE cache).
With --swift it also runs the Swift benchmark first so both numbers come from the same session.
"""
import json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TURING_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")

def build():
    from transformers import GPT2TokenizerFast
    d = os.path.join(DATA, "gpt2_tokenizer")
    vocab = json.load(open(os.path.join(d, "gpt2-vocab.json"), encoding="utf-8"))
    lines = open(os.path.join(d, "gpt2-merges.txt"), encoding="utf-8").read().split("\n")
    merges = [tuple(l.split(" ")) for l in lines if l and not l.startswith("#version")]
    return GPT2TokenizerFast(vocab=vocab, merges=merges)

def main():
    if "--swift" in sys.argv:
        env = dict(os.environ, TURING_BENCH="1")
        r = subprocess.run(["swift", "test", "-c", "release", "--filter", "TokenizerBenchmarkTests"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        print("\n".join(l for l in (r.stdout + r.stderr).splitlines() if l.startswith("BENCH") or "error" in l))
    text = open(os.path.join(DATA, "tinyshakespeare", "input.txt"), encoding="utf-8").read()
    nbytes = len(text.encode("utf-8"))
    colds = []
    for _ in range(3):
        tok = build()
        t0 = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False); colds.append(time.perf_counter() - t0)
    backend = tok.backend_tokenizer
    best_tf, best_be = float("inf"), float("inf")
    for _ in range(5):
        t0 = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False); best_tf = min(best_tf, time.perf_counter() - t0)
        t0 = time.perf_counter(); enc = backend.encode(text, add_special_tokens=False); best_be = min(best_be, time.perf_counter() - t0)
    assert enc.ids == ids
    print(f"BENCH hf-tokenizers gpt2 tinyshakespeare {nbytes} bytes -> {len(ids)} tokens: "
          f"warm {nbytes / 1e6 / best_tf:.2f} MB/s (transformers encode), {nbytes / 1e6 / best_be:.2f} MB/s "
          f"(backend_tokenizer.encode), cold-cache {nbytes / 1e6 / min(colds):.2f} MB/s")
    bench_mixed(tok)

def bench_mixed(tok):
    """Same mixed-script text as the Swift test: fixture corpus minus shakespeare, joined, repeated to >= 1 MB."""
    fx = json.load(open(os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "gpt2_hf_ids.json"), encoding="utf-8"))
    unit = "\n".join(r["text"] for r in fx["gpt2"][:-1]) + "\n"
    text = unit * (1_000_000 // len(unit.encode("utf-8")) + 1)
    nbytes = len(text.encode("utf-8"))
    ids = tok.encode(text, add_special_tokens=False)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False); best = min(best, time.perf_counter() - t0)
    print(f"BENCH hf-tokenizers gpt2 mixed-script corpus {nbytes} bytes -> {len(ids)} tokens: warm {nbytes / 1e6 / best:.2f} MB/s")

if __name__ == "__main__":
    main()
