#!/usr/bin/env bash
# Load benchmark (issue 3): a GPT-2-124M-shaped random checkpoint written by `turing convert` at
# Megatron TP 4 x PP 2, then, in one run on this machine (page cache warm, best of RUNS each):
#   (i)   `cat` of all its files to /dev/null, and a read of every file into fresh memory (numpy),
#   (ii)  the target: `turing convert SRC --load-only --tp 2 --pp 1`, load + re-split to TP 2 x PP 1
#         in-process (seconds and MB/s of files, from the command's own timer, and wall time with
#         process start), peak RSS (/usr/bin/time -v) against the f32 weights,
#   (iii) for reference: load to canonical (`--load-only`) and load + re-split + write
#         (`convert --to megatron --tp 2 --pp 1`),
#   (iv)  torch.load(weights_only=False) of the same 8 shard files in the venv's PyTorch.
# Usage: scripts/bench_load.sh [TURING_BINARY] [WORKDIR]   (default: release build, /tmp/turing-bench-load)
#        RUNS=N (default 5): repetitions per row; the machine may be shared, so rows are best of N.
set -euo pipefail
cd "$(dirname "$0")/.."
TURING=${1:-.build/release/turing}
W=${2:-/tmp/turing-bench-load}
PY=${PYTHON:-/work/venv/bin/python}
RUNS=${RUNS:-5}
[ -x "$TURING" ] || swift build -c release --product turing
rm -rf "$W"; mkdir -p "$W"
"$TURING" convert --random gpt2-124m --to megatron --tp 4 --pp 2 --output "$W/src" 2>/dev/null
BYTES=$(find "$W/src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
PARAM_BYTES=$((124439808 * 4))
now() { date +%s.%N; }
best() { sort -g | head -1; }

find "$W/src" -type f -exec cat {} + > /dev/null   # warm the page cache
cat_s=$(for i in $(seq "$RUNS"); do t0=$(now); find "$W/src" -type f -exec cat {} + > /dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; done | best)

# The copy floor: read every file into freshly allocated memory (page faults + copy, what any loader
# that owns its tensors pays), best of 3, in the venv's Python (numpy.empty + readinto).
read_s=$("$PY" - "$W/src" "$RUNS" <<'PY'
import glob, os, sys, time, numpy as np
files = sorted(glob.glob(sys.argv[1] + "/**/*.pt", recursive=True))
best = 1e9
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    bufs = []
    for f in files:
        b = np.empty(os.path.getsize(f), dtype=np.uint8)
        with open(f, "rb", buffering=0) as fh: fh.readinto(memoryview(b))
        bufs.append(b)
    best = min(best, time.perf_counter() - t0)
    del bufs
print(best)
PY
)

run_timed() {   # prints "seconds peak_rss_kb"
    /usr/bin/time -v "$@" > /dev/null 2> "$W/err"
    local s kb
    s=$(grep "Elapsed (wall clock)" "$W/err" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    kb=$(grep "Maximum resident set size" "$W/err" | awk '{print $NF}')
    echo "$s $kb"
}
best_of() {   # best_of ARGS...: sets B_WALL B_INPROC B_RSS (max over runs) from RUNS runs
    B_WALL=""; B_INPROC=""; B_RSS=0
    for i in $(seq "$RUNS"); do
        [ -n "${OUT_DIR:-}" ] && rm -rf "$OUT_DIR"
        read -r s kb < <(run_timed "$@")
        ip=$(grep -o ' in [0-9.]* s' "$W/err" | head -1 | awk '{print $2}' || true)
        if [ -z "$B_WALL" ] || (( $(echo "$s < $B_WALL" | bc -l) )); then B_WALL=$s; fi
        if [ -n "$ip" ] && { [ -z "$B_INPROC" ] || (( $(echo "$ip < $B_INPROC" | bc -l) )); }; then B_INPROC=$ip; fi
        if (( kb > B_RSS )); then B_RSS=$kb; fi
    done
}
best_of "$TURING" convert "$W/src" --load-only --tp 2 --pp 1
split_wall=$B_WALL; split_s=$B_INPROC; split_rss=$B_RSS
best_of "$TURING" convert "$W/src" --load-only
load_best=$B_WALL; inproc_best=$B_INPROC; load_rss=$B_RSS
OUT_DIR="$W/dst" best_of "$TURING" convert "$W/src" --to megatron --tp 2 --pp 1 --output "$W/dst"
conv_best=$B_WALL; conv_rss=$B_RSS
"$TURING" convert "$W/dst" --load-only 2>&1 | sed 's/^/re-split output check: /'

read -r torch_s torch_rss < <("$PY" - "$W/src" "$RUNS" <<'PY'
import glob, resource, sys, time, torch
torch.set_num_threads(2)
files = sorted(glob.glob(sys.argv[1] + "/release/*/model_optim_rng.pt"))
best = 1e9
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    sds = [torch.load(f, weights_only=False, map_location="cpu") for f in files]
    best = min(best, time.perf_counter() - t0)
    del sds
print(best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
PY
)
mb() { echo "scale=1; $1 / 1000000" | bc -l; }
rate() { echo "scale=1; $BYTES / $1 / 1000000" | bc -l; }
row() {   # label seconds rss_kb
    if [ "$3" = "-" ]; then printf "| %s | %.3f | %s | - | - |\n" "$1" "$2" "$(rate "$2")"
    else printf "| %s | %.3f | %s | %.1f | %.2f |\n" "$1" "$2" "$(rate "$2")" "$(echo "$3/1024" | bc -l)" "$(echo "$3*1024/$PARAM_BYTES" | bc -l)"; fi
}
echo
echo "GPT-2-124M shape, Megatron TP 4 x PP 2, float32: $(mb "$BYTES") MB in 8 files ($(mb $PARAM_BYTES) MB of f32 parameters; the rest is vocab padding and the tied head copy); best of $RUNS"
echo
echo "| step | seconds | MB/s of files | peak RSS MB | RSS / f32 weights |"
echo "|---|---:|---:|---:|---:|"
row "\`cat\` all files to /dev/null" "$cat_s" -
row "read all files into fresh memory (numpy.empty + readinto)" "$read_s" -
row "**turing: load + re-split to TP 2 x PP 1, in-process**" "$split_s" "$split_rss"
row "same, wall (\`convert --load-only --tp 2 --pp 1\`, with process start)" "$split_wall" "$split_rss"
row "turing: load to canonical f32, in-process (\`--load-only\`)" "$inproc_best" "$load_rss"
row "turing: load + re-split + write TP 2 x PP 1 files, wall (\`convert --to megatron\`)" "$conv_best" "$conv_rss"
row "torch.load of the 8 shards (PyTorch $("$PY" -c 'import torch; print(torch.__version__)'), in-process)" "$torch_s" "$torch_rss"
echo
printf "load + re-split / cat: %.2fx in-process, %.2fx wall   (target: within 2x)\n" "$(echo "$split_s / $cat_s" | bc -l)" "$(echo "$split_wall / $cat_s" | bc -l)"
printf "load + re-split / read into fresh memory: %.2fx;  / torch.load: %.2fx\n" "$(echo "$split_s / $read_s" | bc -l)" "$(echo "$split_s / $torch_s" | bc -l)"
printf "peak RSS / f32 weights: %.2fx   (target: under 1.3x)\n" "$(echo "$split_rss*1024/$PARAM_BYTES" | bc -l)"
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; the machine may be shared, so compare rows of one run)"
