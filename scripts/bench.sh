#!/usr/bin/env bash
# Turing vs its peers, llama.cpp and PyTorch, on the same machine in the same run: GPT-2-124M shape,
# 2 threads, 128-token prompts, 64 decoded tokens, batch 1 and 8, best of N after a warm-up.
# The environment is the one found: no OPENBLAS_*, OMP_*, MKL_* (or other) variable is set here;
# threads are each engine's own parameter (turing --threads, torch.set_num_threads, llama.cpp n_threads).
#
#   Turing f32 / bf16   turing bench --threads 2 --json [--score] [--dtype bfloat16] "$@"
#                       (--score and --dtype are passed when this turing's `bench --help` has them;
#                       a column or row it cannot fill prints "-")
#   llama.cpp f32/bf16  scripts/bench_peers.py: llama-cpp-python built from its PyPI sdist with
#   PyTorch f32/bf16    GGML_NATIVE=ON, GGUFs from llama.cpp's convert_hf_to_gguf.py; transformers
#                       GPT2LMHeadModel; all from one random GPT-2 124M HF folder
#                       (scripts/bench_peers_setup.sh makes the venv, folder and GGUFs once: ~10-15 min
#                       the first time, seconds after)
#
# Env: PYTHON (torch + transformers venv, default /work/venv/bin/python), PEERS=0 (Turing only),
#      PEER_REPS (default 5), ROUNDS (default 1: Turing and every peer are run that many times,
#      interleaved, and the table keeps each one's best round per metric), MODEL_DIR (default /tmp/gpt2-124m-hf), OUT (keep the JSON there),
#      TURING (a turing binary to use instead of `swift build -c release --product turing`).
# Prints one markdown table: ratio = Turing / best peer for throughput, best peer / Turing for time and
# memory (above 1: Turing is better), per dtype and best-of-each.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/work/venv/bin/python}"
MODEL_DIR="${MODEL_DIR:-/tmp/gpt2-124m-hf}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
echo "bench: JSON in $out" >&2

if [[ -n "${TURING:-}" ]]; then
    echo "bench: using TURING=$TURING (not building)" >&2
else
    swift build -c release --product turing >/dev/null
    TURING=.build/release/turing
fi
help=$("$TURING" bench --help 2>&1 || true)
score=(); grep -q -- '--score' <<<"$help" && score=(--score)
has_dtype=0; grep -q -- '--dtype' <<<"$help" && has_dtype=1 \
    || echo "bench: this turing has no bench --dtype: no Turing bf16 column" >&2
if [[ "${PEERS:-1}" != 0 ]]; then
    scripts/bench_peers_setup.sh "$MODEL_DIR" > "$out/peers-setup.txt"
fi
# ROUNDS rounds, each: Turing f32, Turing bf16, every peer; so all see the same noise on a shared
# machine. The table keeps, per engine and metric, the best round.
for r in $(seq 1 "${ROUNDS:-1}"); do
    echo "bench: round $r of ${ROUNDS:-1}" >&2
    "$TURING" bench --threads 2 --json "${score[@]}" "$@" > "$out/turing-f32.$r.json" || echo '{}' > "$out/turing-f32.$r.json"
    if [[ $has_dtype == 1 ]]; then
        "$TURING" bench --threads 2 --json "${score[@]}" --dtype bfloat16 "$@" > "$out/turing-bf16.$r.json" \
            || echo '{}' > "$out/turing-bf16.$r.json"
    else
        echo '{}' > "$out/turing-bf16.$r.json"
    fi
    if [[ "${PEERS:-1}" != 0 ]]; then
        engines=torch-f32,torch-bf16,llama-f32,llama-bf16
        [[ $r == 1 ]] && engines+=,bandwidth
        "$PY" scripts/bench_peers.py --model-dir "$MODEL_DIR" --threads 2 --reps "${PEER_REPS:-5}" --engines "$engines" \
            --llama-python "$(sed -n 's/^LLAMA_PYTHON=//p' "$out/peers-setup.txt")" > "$out/peers.$r.json" \
            || echo '{"engines": {}}' > "$out/peers.$r.json"
    else
        echo '{"engines": {}}' > "$out/peers.$r.json"
    fi
done

"$PY" - "$out" "${ROUNDS:-1}" <<'PYEOF'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
load = lambda name: [json.load(open(f"{out}/{name}.{r}.json")) for r in range(1, rounds + 1)]

def best(ds):
    """Per metric the best over rounds: max throughput, min time and RSS (keys as in both JSONs)."""
    ds = [d for d in ds if isinstance(d, dict) and d and "error" not in d]
    if not ds:
        return {}
    m = dict(ds[0])
    for k, v in ds[0].items():
        low = any(w in k.lower() for w in ("ttft", "timetofirst", "rss"))
        if isinstance(v, dict) and all(isinstance(x, (int, float)) for x in v.values()):
            m[k] = {b: (min if low else max)(d[k][b] for d in ds if b in d.get(k, {})) for b in v}
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and (low or "PerSecond" in k or "per_s" in k):
            m[k] = (min if low else max)(d[k] for d in ds if k in d)
    return m

tf, tb = best(load("turing-f32")), best(load("turing-bf16"))
prs = load("peers")
peers = dict(prs[0])
names = {k for p in prs for k in p.get("engines", {})}
eng = {k: best([p.get("engines", {}).get(k, {}) for p in prs]) for k in names}
errs = {k: [p["engines"][k]["error"] for p in prs if "error" in p.get("engines", {}).get(k, {})] for k in names}

def dig(d, *ks):
    for k in ks:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return None
        d = d[k]
    return d if isinstance(d, (int, float)) else None

# row: name, Turing keys, peer keys, higher is better
rows = [("prefill tok/s, batch 1", ("prefillTokensPerSecond", "b1"), ("prefill_tokens_per_s", "b1"), True),
        ("prefill tok/s, batch 8", ("prefillTokensPerSecond", "b8"), ("prefill_tokens_per_s", "b8"), True),
        ("decode tok/s, batch 1", ("decodeTokensPerSecond", "b1"), ("decode_tokens_per_s", "b1"), True),
        ("decode tok/s, batch 8", ("decodeTokensPerSecond", "b8"), ("decode_tokens_per_s", "b8"), True),
        ("time to first token, ms", ("timeToFirstTokenMs",), ("ttft_ms_b1",), False),
        ("scoring tok/s, batch 1 (all logits)", ("scoreTokensPerSecond", "b1"), ("score_tokens_per_s", "b1"), True),
        ("peak RSS of generation, MB (the peers' with their load)", ("peakRSSMB",), ("peak_rss_mb",), False),
        ("peak RSS while scoring, MB", ("scorePeakRSSMB",), ("score_peak_rss_mb",), False)]
peer_cols = [("llama.cpp f32", "llama-f32"), ("llama.cpp bf16", "llama-bf16"),
             ("PyTorch f32", "torch-f32"), ("PyTorch bf16", "torch-bf16")]

def fmt(x):
    return "-" if x is None else (f"{x:.1f}" if x < 1000 else f"{x:.0f}")

def ratio(t, peer_vals, higher):
    vals = [(v, n) for v, n in peer_vals if v is not None]
    if t is None or not vals:
        return "-"
    v, n = (max if higher else min)(vals)
    r = t / v if higher else v / t
    return f"{r:.2f}x ({n})"

print("| GPT-2 124M shape, 2 threads | Turing f32 | Turing bf16 | llama.cpp f32 | llama.cpp bf16 | PyTorch f32 "
      "| PyTorch bf16 | Turing f32 / best f32 peer | Turing bf16 / best bf16 peer | best Turing / best peer |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, tk, pk, higher in rows:
    t32, t16 = dig(tf, *tk), dig(tb, *tk)
    pv = {col: dig(eng.get(key, {}), *pk) for col, key in peer_cols}
    f32_peers = [(pv["llama.cpp f32"], "llama.cpp"), (pv["PyTorch f32"], "PyTorch")]
    b16_peers = [(pv["llama.cpp bf16"], "llama.cpp"), (pv["PyTorch bf16"], "PyTorch")]
    all_peers = [(v, c) for c, v in pv.items()]
    ts = [x for x in (t32, t16) if x is not None]
    tbest = (max(ts) if higher else min(ts)) if ts else None
    cells = [fmt(t32), fmt(t16)] + [fmt(pv[c]) for c, _ in peer_cols] + \
            [ratio(t32, f32_peers, higher), ratio(t16, b16_peers, higher), ratio(tbest, all_peers, higher)]
    print(f"| {name} | " + " | ".join(cells) + " |")

print("\nratio = Turing / peer for throughput, peer / Turing for time and memory: above 1 means Turing is better; "
      "the best peer is named. \"-\": not measured (or that run failed).")
cpu = peers.get("cpu", {})
if cpu:
    print(f"\nCPU: {cpu.get('model_name')} (family {cpu.get('family')} model {cpu.get('model')}), "
          f"{cpu.get('logical_cpus')} logical CPUs; {cpu.get('flags_summary')}")
v = {k: eng.get(k, {}) for k in ("torch-f32", "llama-f32")}
if v["torch-f32"].get("torch") or v["llama-f32"].get("llama_cpp_python"):
    print(f"Peers: torch {v['torch-f32'].get('torch', '-')}, transformers {v['torch-f32'].get('transformers', '-')} "
          f"(attention {v['torch-f32'].get('attn_implementation', '-')}), "
          f"llama-cpp-python {v['llama-f32'].get('llama_cpp_python', '-')} (llama.cpp built with GGML_NATIVE=ON)")
bw, fl = peers.get("bandwidth"), peers.get("decode_floor_b1")
if bw and fl:
    print(f"Read bandwidth, 2 threads, 1 GiB buffer: {bw['gbps']:.1f} GB/s ({bw['method']}).")
    for k in ("f32", "bf16"):
        f = fl[k]
        print(f"Batch-1 decode floor {k}: {f['bytes_per_token']/1e6:.0f} MB of weights per token -> "
              f"{f['floor_ms']:.1f} ms, at most {f['ceiling_tokens_per_s']:.0f} tok/s at the 1 GiB bandwidth; "
              f"{f['floor_ms_at_weight_size']:.1f} ms, at most {f['ceiling_tokens_per_s_at_weight_size']:.0f} tok/s "
              f"at the {f['gbps_at_weight_size']:.1f} GB/s measured over a buffer of the weights' size.")
errs = {k: v for k, v in errs.items() if v}
if errs:
    print(f"Peer errors: {errs}")
print(f"Best of {rounds} round(s) per engine and metric; JSON in {out}.")
PYEOF
