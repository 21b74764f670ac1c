#!/usr/bin/env bash
# Turing vs PyTorch on the same machine in the same run: GPT-2-124M-shaped random model, 2 threads,
# 128-token prompts, 64 decoded tokens, batch 1 and 8, best of 3. Needs a venv with torch and
# transformers (scripts/fixtures.py makes one; default /work/venv, override with PYTHON=...).
# Turing runs twice: with the machine's OPENBLAS_CORETYPE=Haswell / OPENBLAS_L2_SIZE as set, and
# with both unset in that command alone (OpenBLAS then picks its kernels for this CPU, AVX-512 here).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/work/venv/bin/python}"
swift build -c release --product turing >/dev/null
out=$(mktemp -d)
.build/release/turing bench --threads 2 --json "$@" > "$out/turing.json"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .build/release/turing bench --threads 2 --json "$@" > "$out/turing-auto.json"
"$PY" scripts/bench_pytorch.py --threads 2 > "$out/torch.json"
"$PY" - "$out/turing.json" "$out/turing-auto.json" "$out/torch.json" <<'PYEOF'
import json, sys
t = json.load(open(sys.argv[1])); u = json.load(open(sys.argv[2])); p = json.load(open(sys.argv[3]))
def get(d, k, b=None):
    return d[k][b] if b else d[k]
rows = [("prefill tok/s, batch 1", ("prefillTokensPerSecond", "b1"), ("prefill_tokens_per_s", "b1"), True),
        ("prefill tok/s, batch 8", ("prefillTokensPerSecond", "b8"), ("prefill_tokens_per_s", "b8"), True),
        ("decode tok/s, batch 1", ("decodeTokensPerSecond", "b1"), ("decode_tokens_per_s", "b1"), True),
        ("decode tok/s, batch 8", ("decodeTokensPerSecond", "b8"), ("decode_tokens_per_s", "b8"), True),
        ("time to first token, ms", ("timeToFirstTokenMs",), ("ttft_ms_b1",), False),
        ("peak RSS, MB", ("peakRSSMB",), ("peak_rss_mb",), False)]
print("| GPT-2 124M shape, 2 threads | Turing (Haswell kernels, as set) | Turing (OpenBLAS autodetect) | PyTorch %s | ratio, as set | ratio, autodetect |" % p["torch"])
print("|---|---:|---:|---:|---:|---:|")
for name, tk, pk, higher in rows:
    a, a2, b = get(t, *tk), get(u, *tk), get(p, *pk)
    r = (lambda x: x / b) if higher else (lambda x: b / x)
    print(f"| {name} | {a:.1f} | {a2:.1f} | {b:.1f} | {r(a):.2f}x | {r(a2):.2f}x |")
print("\nratio = Turing / PyTorch for throughput, PyTorch / Turing for time and memory: above 1 means Turing is better.")
PYEOF
