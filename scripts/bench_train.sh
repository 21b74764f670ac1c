#!/usr/bin/env bash
# Training throughput and peak memory, same machine, one after the other: PyTorch's step
# (scripts/bench_train.py, GPT2LMHeadModel, 2 threads) against `turing train-bench` at TP 1 and TP 2
# (in-process ranks, one core each) and TP 2 with activation recomputation, GPT-2 124M shape,
# batch 4 x 128, forward + backward + AdamW, best of 3 after a warm-up.
# The environment as found: nothing is set or unset here.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product turing >/dev/null
PY=${PYTHON:-/work/venv/bin/python}
run() { "$@"; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pytorch      $("$PY" scripts/bench_train.py "$@")"
echo "turing tp1   $(run .build/release/turing train-bench "$@")"
echo "turing tp2   $(run .build/release/turing train-bench --tp 2 "$@")"
echo "turing tp2 recompute $(run .build/release/turing train-bench --tp 2 --recompute-activations "$@")"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
