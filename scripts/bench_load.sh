#!/usr/bin/env bash
# Load benchmark (issue 3): a GPT-2-124M-shaped random checkpoint written by `turing convert` at
# Megatron TP 4 x PP 2, then, in one run on this machine:
#   (ii)  warm-cache `cat` of all its files to /dev/null (best of 3 after a warm-up read),
#   (iii) `turing convert --load-only` (load + TP/PP merge to canonical f32) and a full re-split
#         `turing convert --to megatron --tp 2 --pp 1` (load + write), wall time and peak RSS
#         (/usr/bin/time -v), best of 3,
#   (iv)  torch.load(weights_only=False) of the same 8 shard files in the venv's PyTorch.
# Usage: scripts/bench_load.sh [TURING_BINARY] [WORKDIR]   (default: release build, /tmp/turing-bench-load)
set -euo pipefail
cd "$(dirname "$0")/.."
TURING=${1:-.build/release/turing}
W=${2:-/tmp/turing-bench-load}
PY=${PYTHON:-/work/venv/bin/python}
[ -x "$TURING" ] || swift build -c release --product turing
rm -rf "$W"; mkdir -p "$W"
"$TURING" convert --random gpt2-124m --to megatron --tp 4 --pp 2 --output "$W/src" 2>/dev/null
BYTES=$(find "$W/src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
PARAM_BYTES=$((124439808 * 4))
now() { date +%s.%N; }
best() { sort -g | head -1; }

find "$W/src" -type f -exec cat {} + > /dev/null   # warm the page cache
cat_s=$(for i in 1 2 3; do t0=$(now); find "$W/src" -type f -exec cat {} + > /dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; done | best)

# The copy floor: read every file into freshly allocated memory (page faults + copy, what any loader
# that owns its tensors pays), best of 3, in the venv's Python (numpy.empty + readinto).
read_s=$("$PY" - "$W/src" <<'PY'
import glob, os, sys, time, numpy as np
files = sorted(glob.glob(sys.argv[1] + "/**/*.pt", recursive=True))
best = 1e9
for _ in range(3):
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
load_best=""; load_rss=0; inproc_best=""
for i in 1 2 3; do
    read -r s kb < <(run_timed "$TURING" convert "$W/src" --load-only)
    ip=$(grep -o 'loaded .* in [0-9.]* s' "$W/err" | awk '{print $(NF-1)}')
    if [ -z "$load_best" ] || (( $(echo "$s < $load_best" | bc -l) )); then load_best=$s; fi
    if [ -z "$inproc_best" ] || (( $(echo "$ip < $inproc_best" | bc -l) )); then inproc_best=$ip; fi
    (( kb > load_rss )) && load_rss=$kb
done
conv_best=""; conv_rss=0
for i in 1 2 3; do
    rm -rf "$W/dst"
    read -r s kb < <(run_timed "$TURING" convert "$W/src" --to megatron --tp 2 --pp 1 --output "$W/dst")
    if [ -z "$conv_best" ] || (( $(echo "$s < $conv_best" | bc -l) )); then conv_best=$s; fi
    (( kb > conv_rss )) && conv_rss=$kb
done
"$TURING" convert "$W/dst" --load-only 2>&1 | sed 's/^/re-split output check: /'

read -r torch_s torch_rss < <("$PY" - "$W/src" <<'PY'
import glob, resource, sys, time, torch
torch.set_num_threads(2)
files = sorted(glob.glob(sys.argv[1] + "/release/*/model_optim_rng.pt"))
best = 1e9
for _ in range(3):
    t0 = time.perf_counter()
    sds = [torch.load(f, weights_only=False, map_location="cpu") for f in files]
    best = min(best, time.perf_counter() - t0)
    del sds
print(best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
PY
)
mb() { echo "scale=1; $1 / 1000000" | bc -l; }
rate() { echo "scale=1; $BYTES / $1 / 1000000" | bc -l; }
echo
echo "GPT-2-124M shape, Megatron TP 4 x PP 2, float32: $(mb "$BYTES") MB in 8 files ($(mb $PARAM_BYTES) MB of f32 parameters; the rest is vocab padding and the tied head copy)"
echo
echo "| step | seconds | MB/s of files | peak RSS MB | RSS / files | RSS / f32 params |"
echo "|---|---:|---:|---:|---:|---:|"
printf "| cat all files, warm cache | %.3f | %s | - | - | - |\n" "$cat_s" "$(rate "$cat_s")"
printf "| read all files into fresh memory (numpy.empty + readinto) | %.3f | %s | - | - | - |\n" "$read_s" "$(rate "$read_s")"
printf "| turing convert --load-only (merge to canonical) | %.3f | %s | %.1f | %.2f | %.2f |\n" "$load_best" "$(rate "$load_best")" "$(echo "$load_rss/1024" | bc -l)" "$(echo "$load_rss*1024/$BYTES" | bc -l)" "$(echo "$load_rss*1024/$PARAM_BYTES" | bc -l)"
printf "| same, in-process load only (no process start) | %.3f | %s | - | - | - |\n" "$inproc_best" "$(rate "$inproc_best")"
printf "| turing convert -> TP 2 x PP 1 (load + write) | %.3f | %s | %.1f | %.2f | %.2f |\n" "$conv_best" "$(rate "$conv_best")" "$(echo "$conv_rss/1024" | bc -l)" "$(echo "$conv_rss*1024/$BYTES" | bc -l)" "$(echo "$conv_rss*1024/$PARAM_BYTES" | bc -l)"
printf "| torch.load of the 8 shards (PyTorch %s, in-process, no startup) | %.3f | %s | %.1f | %.2f | %.2f |\n" "$("$PY" -c 'import torch; print(torch.__version__)')" "$torch_s" "$(rate "$torch_s")" "$(echo "$torch_rss/1024" | bc -l)" "$(echo "$torch_rss*1024/$BYTES" | bc -l)" "$(echo "$torch_rss*1024/$PARAM_BYTES" | bc -l)"
echo
printf "turing load / cat: %.2fx wall, %.2fx in-process   (target: within 2x)\n" "$(echo "$load_best / $cat_s" | bc -l)" "$(echo "$inproc_best / $cat_s" | bc -l)"
printf "turing in-process load / read into fresh memory: %.2fx\n" "$(echo "$inproc_best / $read_s" | bc -l)"
printf "turing in-process load / torch.load: %.2fx\n" "$(echo "$inproc_best / $torch_s" | bc -l)"
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; the machine is shared, so compare rows of one run)"
