#!/usr/bin/env bash
# Turing vs PyTorch on the same machine in the same run: GPT-2-124M-shaped random model, 2 threads,
# 128-token prompts, 64 decoded tokens, batch 1 and 8, best of 3. Needs a venv with torch and
# transformers (scripts/fixtures.py makes one; default /work/venv, override with PYTHON=...).
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as the machine sets them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/work/venv/bin/python}"
swift build -c release --product turing >/dev/null
out=$(mktemp -d)
.build/release/turing bench --threads 2 --json "$@" > "$out/turing.json"
"$PY" scripts/bench_pytorch.py --threads 2 > "$out/torch.json"
"$PY" - "$out/turing.json" "$out/torch.json" <<'PYEOF'
import json, sys
t = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
rows = [("prefill tok/s, batch 1", t["prefillTokensPerSecond"]["b1"], p["prefill_tokens_per_s"]["b1"], True),
        ("prefill tok/s, batch 8", t["prefillTokensPerSecond"]["b8"], p["prefill_tokens_per_s"]["b8"], True),
        ("decode tok/s, batch 1", t["decodeTokensPerSecond"]["b1"], p["decode_tokens_per_s"]["b1"], True),
        ("decode tok/s, batch 8", t["decodeTokensPerSecond"]["b8"], p["decode_tokens_per_s"]["b8"], True),
        ("time to first token, ms", t["timeToFirstTokenMs"], p["ttft_ms_b1"], False),
        ("peak RSS, MB", t["peakRSSMB"], p["peak_rss_mb"], False)]
print("| GPT-2 124M shape, 2 threads | Turing | PyTorch %s | Turing / PyTorch |" % p["torch"])
print("|---|---:|---:|---:|")
for name, a, b, higher in rows:
    ratio = a / b if higher else b / a
    print(f"| {name} | {a:.1f} | {b:.1f} | {ratio:.2f}x{'' if higher else ' (lower is better)'} |")
PYEOF
