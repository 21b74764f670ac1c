#!/usr/bin/env bash
# scripts/fuzz.sh TARGET SECONDS [libFuzzer args...]: run one libFuzzer target (Fuzz/FuzzTargets.swift)
# for SECONDS, seeded from the repository's fixtures (.build-fuzz/seeds/TARGET, built on first use by
# scripts/fuzz_seeds.sh), at low priority (nice). TARGET=all runs every target for SECONDS each.
# Builds once, debug, -sanitize=fuzzer,address, into .build-fuzz. A crash leaves crash-* in
# .build-fuzz/crashes/TARGET and exits non-zero: turn it into a regression test.
# FUZZ_SKIP="a b" leaves targets out of `all`.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?usage: scripts/fuzz.sh TARGET SECONDS}
SECONDS_EACH=${2:-20}
shift 2 || true
TARGETS="zip pickle torchfile torchdist safetensors hfconfig megatronargs llama2c llama2ctok gpt2tok tokjson hftokjson sentencepiece tiktoken taskyaml jsonl requests tracker idx"
BIN=.build-fuzz/debug/turing-fuzz
if [[ ! -x $BIN || ${FUZZ_REBUILD:-0} == 1 ]]; then
    TURING_FUZZ=1 nice swift build -c debug --scratch-path .build-fuzz --product turing-fuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >&2
fi
scripts/fuzz_seeds.sh >/dev/null
export TURING_FUZZ_HF_WEIGHTS=$PWD/Tests/Fixtures/models/gpt2-tiny-rand/model.safetensors
export TURING_FUZZ_TOKENIZER=$PWD/checkpoints/demo
export SWIFT_BACKTRACE=enable=no   # libFuzzer handles crashes (Swift's backtracer would hold its pipe)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
run() {
    local t=$1 work=.build-fuzz/corpus/$1 crashes=.build-fuzz/crashes/$1
    shift
    mkdir -p "$work" "$crashes"
    echo "fuzz $t: ${SECONDS_EACH}s" >&2
    TURING_FUZZ_TARGET=$t nice -n 10 "$BIN" "$work" ".build-fuzz/seeds/$t" -max_total_time="$SECONDS_EACH" \
        -timeout=10 -rss_limit_mb=3072 -max_len=65536 -artifact_prefix="$crashes/" -print_final_stats=1 "$@" 2>&1 |
        grep -E "^(==[0-9]+==ERROR|SUMMARY|stat::number_of_executed_units|stat::peak_rss|Done )|crash-|timeout-|oom-|deadly signal" || true
    if ls "$crashes"/crash-* "$crashes"/timeout-* "$crashes"/oom-* >/dev/null 2>&1; then echo "fuzz $t: FAILED (see $crashes)" >&2; return 1; fi
}
status=0
if [[ $TARGET == all ]]; then
    for t in $TARGETS; do [[ " ${FUZZ_SKIP:-} " == *" $t "* ]] && { echo "fuzz $t: skipped (FUZZ_SKIP)" >&2; continue; }; run "$t" "$@" || status=1; done
else run "$TARGET" "$@" || status=1; fi
exit $status
