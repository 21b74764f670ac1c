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
# ROUNDS rounds (default 2), each running every engine once, so all see the same noise on a shared
# machine; the summary keeps each engine's best round.
log=$(mktemp)
for r in $(seq 1 "${ROUNDS:-2}"); do
    echo "round $r, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "pytorch      $("$PY" scripts/bench_train.py "$@")" | tee -a "$log"
    echo "turing tp1   $(run .build/release/turing train-bench "$@")" | tee -a "$log"
    echo "turing tp2   $(run .build/release/turing train-bench --tp 2 "$@")" | tee -a "$log"
    echo "turing tp2 recompute $(run .build/release/turing train-bench --tp 2 --recompute-activations "$@")" | tee -a "$log"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$log" <<'PY'
import json, sys
best = {}
for line in open(sys.argv[1]):
    name, _, js = line.partition("{")
    r = json.loads("{" + js)
    best[name.strip()] = max(best.get(name.strip(), 0), r["train_tokens_per_s"])
torch = best.get("pytorch")
for name, tps in best.items():
    print(f"best {name:22s} {tps:7.1f} tok/s" + (f"  {tps / torch:.2f}x PyTorch" if torch and name != "pytorch" else ""))
PY
