#!/usr/bin/env bash
# The kernel choice, measured on this machine: Turing's kernels against oneDNN (Debian libdnnl-dev) and
# OpenBLAS (libopenblas-dev) where installed, on the shapes of a GPT-2-124M layer at a 128-token prompt
# and at decode. Environment as found. Usage: scripts/bench_kernels.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
flags=(); libs=()
[ -f /usr/include/oneapi/dnnl/dnnl.h ] && { flags+=(-DWITH_DNNL); libs+=(-ldnnl); }
pkg-config --exists openblas 2>/dev/null && { flags+=(-DWITH_OPENBLAS $(pkg-config --cflags openblas)); libs+=($(pkg-config --libs openblas)); }
# Turing timed in a binary that links no BLAS (OpenBLAS's threads spin after process start); the peers in another
cc -O3 -ISources/C/CKernels/include -o "$out/bench_kernels" scripts/bench_kernels/bench_kernels.c Sources/C/CKernels/*.c -lpthread -lm
if [ ${#libs[@]} -gt 0 ]; then
    cc -O3 -DPEERS "${flags[@]}" -ISources/C/CKernels/include -o "$out/bench_peers" scripts/bench_kernels/bench_kernels.c Sources/C/CKernels/*.c "${libs[@]}" -lpthread -lm
fi
grep -m1 "model name" /proc/cpuinfo
# shape and how many copies of its weights to stream (more than the L3 holds, as a model's weights), or 1
threads=${1:-2}
for run in "128 2304 768 60" "128 768 3072 60" "1024 3072 768 1" "1 2304 768 1" "1 50257 768 1" "128 50257 768 3"; do
    read -r m n k copies <<< "$run"; shape="$m $n $k"
    "$out/bench_kernels" $shape 20 "$threads" "$copies"
    [ -x "$out/bench_peers" ] && "$out/bench_peers" $shape 20 "$threads" | tail -n +2
    echo
done
