#!/usr/bin/env bash
# Parallel layouts on this machine in one run (issue 4.6): the GPT-2-124M-shaped random model
# (`turing bench`: 128-token prompts, 64 decoded tokens, batch 1 and 8, best of 3) at
#   TP 1            one process, 2 BLAS threads
#   TP 2 in-process two rank threads, 1 BLAS thread each (ShardedEngine)
#   PP 2 in-process two stage threads, 1 BLAS thread each, micro-batches (default 2)
#   TP 2 mpirun     `mpirun -np 2`, one rank per process, 1 BLAS thread each (DistributedEngine)
#   PP 2 mpirun     `mpirun -np 2`, micro-batches as in-process
# and prints a Markdown table: scoring tok/s (logits for every position), prefill tok/s (last
# position only), decode tok/s, and rank 0's time inside communication calls per layer (per
# forward for scoring, per decode step), waiting for the peer included.
# Extra arguments go to every `turing bench` (e.g. --reps 1 --decode-tokens 16 for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product turing >/dev/null
B=.build/release/turing
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
common=(--json --score "$@")
$B bench --threads 2 "${common[@]}" > "$out/tp1.json"
$B bench --tp 2 "${common[@]}" > "$out/tp2.json"
$B bench --pp 2 "${common[@]}" > "$out/pp2.json"
"${MPIRUN[@]}" -np 2 $B bench --tp 2 "${common[@]}" > "$out/tp2mpi.json"
"${MPIRUN[@]}" -np 2 $B bench --pp 2 "${common[@]}" > "$out/pp2mpi.json"
python3 - "$out" <<'PYEOF'
import json, sys, os
d = sys.argv[1]
runs = [("TP 1, 2 BLAS threads", "tp1"), ("TP 2 in-process", "tp2"), ("PP 2 in-process, 2 micro-batches", "pp2"),
        ("TP 2, mpirun -np 2", "tp2mpi"), ("PP 2, mpirun -np 2, 2 micro-batches", "pp2mpi")]
res = {k: json.load(open(os.path.join(d, k + ".json"))) for _, k in runs}
def f(x): return "-" if x is None else f"{x:.1f}"
def g(x): return "-" if x is None else f"{x:.3f}"
print("| GPT-2 124M shape | score tok/s b1 | score tok/s b8 | prefill tok/s b1 | prefill tok/s b8 | decode tok/s b1 | decode tok/s b8 | comm ms/layer: score b8 | comm ms/layer/step: decode b1 | decode b8 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, k in runs:
    r = res[k]; c = r.get("communicationMsPerLayer") or {}
    s = r.get("scoreTokensPerSecond") or {}
    print(f"| {name} | {f(s.get('b1'))} | {f(s.get('b8'))} | {f(r['prefillTokensPerSecond'].get('b1'))} | {f(r['prefillTokensPerSecond'].get('b8'))} "
          f"| {f(r['decodeTokensPerSecond'].get('b1'))} | {f(r['decodeTokensPerSecond'].get('b8'))} "
          f"| {g(c.get('score_b8'))} | {g(c.get('decode_b1'))} | {g(c.get('decode_b8'))} |")
print("\ncomm ms/layer: rank 0's wall time inside communication calls (TP all-reduces, stage send/recv, over MPI also the")
print("logits broadcast; waiting for the peer included) / rank 0's layers. In-process sends do not wait for the receiver; MPI's do.")
PYEOF
