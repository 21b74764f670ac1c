#!/usr/bin/env bash
# 7B benchmark (issue 11, item 3): a Llama-2-7B-shaped random model (32 layers, hidden 4096, 32 heads,
# SwiGLU 11008, vocabulary 32000, RMSNorm, RoPE, untied head, no biases, 4096 positions) written in
# bf16 by `turing convert --random llama2-7b` (a tensor at a time) as an HF folder and as a Megatron
# TP 2 x PP 2 save, then, one after the other in this script:
#   (i)   `cat` of each copy's files to /dev/null (the read floor, page cache as it comes),
#   (ii)  `turing generate --dtype bfloat16` from each copy (loaded streamed at TP 1 x PP 1, a layer at
#         a time: ModelSource.openStreamed): load seconds (its own timer), generation tokens/s (its
#         own timer: TOKENS greedy tokens after the prompt, prefill included), peak RSS (/usr/bin/time -v)
#         against the bf16 weights (limit 1.1x),
#   (iii) PyTorch bf16: transformers' LlamaForCausalLM from the same HF folder (/work/venv), the same
#         prompt length, a prefill forward and TOKENS - 1 greedy steps with its KV cache (past_key_values),
#         load seconds, tokens/s, peak RSS;
#   (iv)  llama.cpp bf16 (llama-cpp-python from $LLAMA_VENV, built by scripts/bench_peers_setup.sh): the HF
#         folder converted once by llama.cpp's own convert_hf_to_gguf.py --outtype bf16 (it needs a
#         tokenizer.model: one with tokenizer.bin's pieces is written beside the weights with sentencepiece's
#         own ModelProto), then the same prompt ids and TOKENS greedy tokens as PyTorch (mmap, as llama.cpp
#         loads by default: its peak RSS counts the mapped file).
# Every row gives the whole generation's tokens/s (prefill included) and the decode rate after the first
# token; the decode floor is the bf16 weights' bytes over the read bandwidth (`cat` of the files from the
# page cache is a lower bound of it).
# The load average is printed beside every row (the machine may be shared).
# Usage: scripts/bench_7b.sh [TURING_BINARY] [WORKDIR]   (default: release build, /work/big7b)
#        TOKENS=N (default 32), THREADS=N (default 2). The model files (27 GB) are kept in WORKDIR and
#        reused by later runs; delete WORKDIR to rewrite them.
set -euo pipefail
cd "$(dirname "$0")/.."
TURING=${1:-.build/release/turing}
W=${2:-/work/big7b}
PY=${PYTHON:-/work/venv/bin/python}
LLAMA_VENV=${LLAMA_VENV:-/work/venv-llama}
TOKENS=${TOKENS:-32}
THREADS=${THREADS:-2}
PROMPT="The quick brown fox jumps over the lazy dog"
[ -x "$TURING" ] || swift build -c release --product turing
[ -x /usr/bin/time ] || { echo "bench_7b: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
mkdir -p "$W"
now() { date +%s.%N; }
load() { cut -d' ' -f1 /proc/loadavg; }

# Parameters and bf16 bytes of the shape (embedding + head + 32 layers + final norm).
PARAMS=$(( 2 * 32000 * 4096 + 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096) + 4096 ))
WEIGHT_BYTES=$(( PARAMS * 2 ))

if [ ! -f "$W/hf/model.safetensors" ]; then
    /usr/bin/time -v -o "$W/convert-hf.time" "$TURING" convert --random llama2-7b --to hf --dtype bfloat16 --output "$W/hf" --force
fi
if [ ! -f "$W/megatron-tp2-pp2/latest_checkpointed_iteration.txt" ]; then
    /usr/bin/time -v -o "$W/convert-megatron.time" "$TURING" convert --random llama2-7b --to megatron --tp 2 --pp 2 --dtype bfloat16 --output "$W/megatron-tp2-pp2" --force
fi
# A llama2.c-format tokenizer with the model's 32000 tokens (<unk>, <s>, </s>, 256 byte tokens, the
# printable ASCII characters, then filler pieces): generation needs one; its pieces do not matter here.
if [ ! -f "$W/tokenizer.bin" ]; then
"$PY" - "$W/tokenizer.bin" <<'PY'
import struct, sys
pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)] + [bytes([c]) for c in range(32, 127)]
pieces += [b"x%d" % i for i in range(32000 - len(pieces))]
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<i", max(len(p) for p in pieces)))
    for i, p in enumerate(pieces):
        f.write(struct.pack("<fi", -float(i), len(p)) + p)
PY
fi
# A SentencePiece tokenizer.model with the same pieces, for llama.cpp's converter (BPE, byte fallback).
if [ ! -f "$W/hf/tokenizer.model" ]; then
"$PY" -c "import google.protobuf" 2>/dev/null || "$PY" -m pip install -q protobuf
"$PY" - "$W/hf/tokenizer.model" <<'PY'
import sys
from sentencepiece import sentencepiece_model_pb2 as pb
m = pb.ModelProto()
m.trainer_spec.model_type = pb.TrainerSpec.BPE
m.trainer_spec.vocab_size = 32000
m.trainer_spec.byte_fallback = True
m.normalizer_spec.name = "identity"
m.normalizer_spec.add_dummy_prefix = True
pieces = [("<unk>", pb.ModelProto.SentencePiece.UNKNOWN), ("<s>", pb.ModelProto.SentencePiece.CONTROL),
          ("</s>", pb.ModelProto.SentencePiece.CONTROL)]
pieces += [("<0x%02X>" % i, pb.ModelProto.SentencePiece.BYTE) for i in range(256)]
pieces += [("\u2581" if c == 32 else chr(c), pb.ModelProto.SentencePiece.NORMAL) for c in range(32, 127)]
pieces += [("x%d" % i, pb.ModelProto.SentencePiece.NORMAL) for i in range(32000 - len(pieces))]
for i, (p, t) in enumerate(pieces):
    sp = m.pieces.add(); sp.piece = p; sp.score = -float(i); sp.type = t
open(sys.argv[1], "wb").write(m.SerializeToString())
PY
fi
LLAMA_SRC=$(ls -d "$LLAMA_VENV"/src/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | head -1 || true)
GGUF="$W/gguf/llama2-7b-bf16.gguf"
if [ -n "$LLAMA_SRC" ] && [ ! -s "$GGUF" ]; then
    mkdir -p "$W/gguf"
    PYTHONPATH="$LLAMA_SRC/gguf-py" "$PY" "$LLAMA_SRC/convert_hf_to_gguf.py" "$W/hf" --outtype bf16 --outfile "$GGUF.tmp" \
        > "$W/gguf/convert.log" 2>&1 || { tail -20 "$W/gguf/convert.log" >&2; exit 1; }
    mv "$GGUF.tmp" "$GGUF"
fi
PROMPT_TOKENS=$(( ${#PROMPT} + 2 ))   # BOS + dummy-prefix space + one token per character (no merges in this vocabulary)

echo "# 7B-shaped bf16 ($PARAMS parameters, $WEIGHT_BYTES bytes of bf16 weights; RSS limit 1.1x = $(( WEIGHT_BYTES * 11 / 10 )) bytes)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, threads $THREADS, $PROMPT_TOKENS-token prompt, $TOKENS tokens"
printf '| run | load avg | load s | tokens/s (all) | decode tokens/s | peak RSS (GB) | RSS / bf16 weights |\n|---|---:|---:|---:|---:|---:|---:|\n'
for copy in hf megatron-tp2-pp2; do
    bytes=$(find "$W/$copy" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}')
    la=$(load); t0=$(now); find "$W/$copy" -type f -exec cat {} + > /dev/null; t1=$(now)
    printf '| cat %s (%.2f GB: %.1f GB/s) | %s | %.1f | | | | |\n' "$copy" "$(echo "$bytes / 1000000000" | bc -l)" \
        "$(echo "$bytes / 1000000000 / ($t1 - $t0)" | bc -l)" "$la" "$(echo "$t1 - $t0" | bc -l)"
    la=$(load)
    /usr/bin/time -v -o "$W/generate-$copy.time" "$TURING" generate --checkpoint "$W/$copy" --tokenizer "$W/tokenizer.bin" \
        --dtype bfloat16 --threads "$THREADS" --max-tokens "$TOKENS" --temperature 0 --prompt "$PROMPT" > "$W/generate-$copy.out" 2> "$W/generate-$copy.err"
    loaded=$(sed -n 's/.*\[model loaded in \([0-9.]*\) s\].*/\1/p' "$W/generate-$copy.err")
    tps=$(sed -n 's/.*\[\([0-9]*\) tokens in [0-9.]* s, \([0-9.]*\) tokens\/s.*/\2 (\1 tokens)/p' "$W/generate-$copy.err")
    dps=$(sed -n 's/.*then decode \([0-9.]*\) tokens\/s.*/\1/p' "$W/generate-$copy.err")
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/generate-$copy.time")
    printf '| turing load + generate, %s | %s | %s | %s | %s | %.2f | %.3f |\n' "$copy" "$la" "$loaded" "$tps" "$dps" \
        "$(echo "$rss_kb * 1024 / 1000000000" | bc -l)" "$(echo "$rss_kb * 1024 / $WEIGHT_BYTES" | bc -l)"
done
la=$(load)
"$PY" - "$W/hf" "$PROMPT_TOKENS" "$TOKENS" "$THREADS" "$WEIGHT_BYTES" "$la" <<'PY'
import resource, sys, time, torch
from transformers import LlamaForCausalLM
hf, prompt_tokens, tokens, threads, weight_bytes, la = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(threads)
t0 = time.perf_counter()
model = LlamaForCausalLM.from_pretrained(hf, dtype=torch.bfloat16)
model.eval()
t1 = time.perf_counter()
ids = torch.tensor([[1] + [3 + 32 + (i * 7) % 95 for i in range(prompt_tokens - 1)]])
with torch.no_grad():
    t2 = time.perf_counter()
    out = model(ids, use_cache=True)
    tok = out.logits[:, -1].argmax(-1, keepdim=True)
    t3 = time.perf_counter()
    for _ in range(tokens - 1):
        out = model(tok, past_key_values=out.past_key_values, use_cache=True)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
    t4 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("| pytorch %s bf16 load + generate, hf | %s | %.1f | %.2f (%d tokens) | %.2f | %.2f | %.3f |" % (
    torch.__version__, la, t1 - t0, tokens / (t4 - t2), tokens, (tokens - 1) / (t4 - t3), rss / 1000000000, rss / weight_bytes))
PY
if [ -s "$GGUF" ]; then
la=$(load)
"$LLAMA_VENV/bin/python" - "$GGUF" "$PROMPT_TOKENS" "$TOKENS" "$THREADS" "$WEIGHT_BYTES" "$la" <<'PY'
import resource, sys, time
import numpy as np, llama_cpp
from llama_cpp import Llama
gguf, prompt_tokens, tokens, threads, weight_bytes, la = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
t0 = time.perf_counter()
llm = Llama(model_path=gguf, n_threads=threads, n_threads_batch=threads, n_ctx=256, n_batch=256, verbose=False)
t1 = time.perf_counter()
n_vocab = llm.n_vocab()
def argmax():
    return int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,)).argmax())
ids = [1] + [3 + 32 + (i * 7) % 95 for i in range(prompt_tokens - 1)]
t2 = time.perf_counter()
llm.eval(ids)
tok = argmax()
t3 = time.perf_counter()
for _ in range(tokens - 1):
    llm.eval([tok])
    tok = argmax()
t4 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("| llama.cpp (llama-cpp-python %s) bf16 load + generate, gguf | %s | %.1f | %.2f (%d tokens) | %.2f | %.2f | %.3f |" % (
    llama_cpp.__version__, la, t1 - t0, tokens / (t4 - t2), tokens, (tokens - 1) / (t4 - t3), rss / 1000000000, rss / weight_bytes))
PY
else
    echo "bench_7b: no llama.cpp row (no llama-cpp-python source under $LLAMA_VENV: scripts/bench_peers_setup.sh builds it)" >&2
fi
