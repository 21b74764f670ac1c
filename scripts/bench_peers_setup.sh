#!/usr/bin/env bash
# Setup for scripts/bench_peers.py (Turing's peers: llama.cpp and PyTorch on the same machine).
# Idempotent: each step is skipped when its result is already there.
#
#   1. $LLAMA_VENV (default /work/venv-llama): a venv with llama-cpp-python $LLAMA_CPP_PYTHON_VERSION
#      built here from its PyPI sdist with CMAKE_ARGS="-DGGML_NATIVE=ON" (llama.cpp compiled for this
#      CPU: AVX-512, AVX512-BF16, ...). Only llama-cpp-python is forced from source; its build tools
#      (scikit-build-core, cmake, ninja) and numpy come as wheels. The sdist is kept, unpacked, in
#      $LLAMA_VENV/src: its vendor/llama.cpp/ has convert_hf_to_gguf.py and the matching gguf-py.
#   2. MODEL_DIR (argument 1, default /tmp/gpt2-124m-hf): a GPT-2 124M HF folder. If it has no
#      model.safetensors, one is made: GPT2LMHeadModel(GPT2Config()) with torch.manual_seed(0),
#      saved as safetensors. GPT-2's real tokenizer (vocab.json, merges.txt from $TOKENIZER_DIR) is
#      added when the folder has none, with tokenizer.json written by transformers.
#   3. $GGUF_DIR (default MODEL_DIR/gguf): gpt2-124m-f32.gguf and gpt2-124m-bf16.gguf, converted by
#      llama.cpp's own convert_hf_to_gguf.py (run with $PYTHON, the torch + transformers venv, and the
#      gguf-py vendored beside the script). Redone when model.safetensors is newer.
#
# Prints the paths as KEY=VALUE lines on stdout (progress on stderr).
#
# Time (2-core Xeon, shared with other builds): step 1 about 10-15 minutes the first time (almost
# all of it compiling llama.cpp), steps 2 and 3 under a minute; a rerun with everything in place
# takes a few seconds.
#
# Usage: scripts/bench_peers_setup.sh [MODEL_DIR]
#   env: PYTHON (torch venv, default /work/venv/bin/python), LLAMA_VENV, LLAMA_CPP_PYTHON_VERSION,
#        BASE_PYTHON (interpreter for the new venv), TOKENIZER_DIR, GGUF_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/work/venv/bin/python}"
LLAMA_VENV="${LLAMA_VENV:-/work/venv-llama}"
LLAMA_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
MODEL_DIR="${1:-/tmp/gpt2-124m-hf}"
GGUF_DIR="${GGUF_DIR:-$MODEL_DIR/gguf}"
TOKENIZER_DIR="${TOKENIZER_DIR:-/work/shared/data/gpt2_tokenizer}"
if [[ -z "${BASE_PYTHON:-}" ]]; then
    # the interpreter the torch venv was made from, else python3
    home=$(sed -n 's/^home = //p' "$(dirname "$(dirname "$PY")")/pyvenv.cfg" 2>/dev/null || true)
    BASE_PYTHON=$([[ -n "$home" && -x "$home/python3" ]] && echo "$home/python3" || command -v python3)
fi
log() { echo "[bench_peers_setup $(date -u +%H:%M:%S)] $*" >&2; }
T0=$(date +%s)

# ---- 1. llama-cpp-python from its sdist ----
SRC="$LLAMA_VENV/src/llama_cpp_python-$LLAMA_VERSION"
have_llama() {
    "$LLAMA_VENV/bin/python" -c "import sys, llama_cpp; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null
}
if [[ ! -x "$LLAMA_VENV/bin/python" ]]; then
    log "creating $LLAMA_VENV with $BASE_PYTHON"
    "$BASE_PYTHON" -m venv "$LLAMA_VENV"
fi
if [[ ! -f "$SRC/vendor/llama.cpp/convert_hf_to_gguf.py" ]]; then
    mkdir -p "$LLAMA_VENV/src"
    log "downloading the llama-cpp-python $LLAMA_VERSION sdist"
    "$LLAMA_VENV/bin/pip" download -q --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_VERSION" -d "$LLAMA_VENV/src"
    tar xzf "$LLAMA_VENV/src/llama_cpp_python-$LLAMA_VERSION.tar.gz" -C "$LLAMA_VENV/src"
fi
if ! have_llama; then
    log "building llama-cpp-python $LLAMA_VERSION from source (GGML_NATIVE=ON); log: $LLAMA_VENV/build.log"
    t=$(date +%s)
    CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$LLAMA_VENV/bin/pip" install -v --no-cache-dir --no-binary llama-cpp-python \
        "$LLAMA_VENV/src/llama_cpp_python-$LLAMA_VERSION.tar.gz" > "$LLAMA_VENV/build.log" 2>&1 \
        || { tail -40 "$LLAMA_VENV/build.log" >&2; exit 1; }
    have_llama
    log "llama-cpp-python built in $(( $(date +%s) - t )) s"
fi

# ---- 2. the HF folder ----
mkdir -p "$MODEL_DIR"
if [[ ! -f "$MODEL_DIR/model.safetensors" ]]; then
    log "making a random GPT-2 124M (seed 0) in $MODEL_DIR"
    "$PY" - "$MODEL_DIR" <<'PYEOF'
import sys, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
GPT2LMHeadModel(GPT2Config()).save_pretrained(sys.argv[1], safe_serialization=True)
PYEOF
fi
if [[ ! -f "$MODEL_DIR/tokenizer.json" ]]; then
    log "adding GPT-2's tokenizer from $TOKENIZER_DIR"
    [[ -f "$MODEL_DIR/vocab.json" ]] || cp "$TOKENIZER_DIR/gpt2-vocab.json" "$MODEL_DIR/vocab.json"
    [[ -f "$MODEL_DIR/merges.txt" ]] || cp "$TOKENIZER_DIR/gpt2-merges.txt" "$MODEL_DIR/merges.txt"
    chmod u+w "$MODEL_DIR/vocab.json" "$MODEL_DIR/merges.txt"
    "$PY" - "$MODEL_DIR" <<'PYEOF'
import sys
from transformers import AutoTokenizer
d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d)  # GPT-2's tokenizer from vocab.json + merges.txt (config.json says gpt2)
assert tok("Hello world")["input_ids"] == [15496, 995], tok("Hello world")
tok.save_pretrained(d)  # adds tokenizer.json and tokenizer_config.json
PYEOF
fi

# convert_hf_to_gguf.py's GPT-2 reads config.json's n_ctx, which OpenAI's GPT-2 configs have and
# transformers >= 5 no longer writes: add it (= n_positions) when missing.
"$PY" - "$MODEL_DIR/config.json" <<'PYEOF'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
if c.get("model_type") == "gpt2" and "n_ctx" not in c:
    c["n_ctx"] = c["n_positions"]
    json.dump(c, open(p, "w"), indent=2)
PYEOF

# ---- 3. GGUF f32 and bf16 with llama.cpp's converter ----
mkdir -p "$GGUF_DIR"
for t in f32 bf16; do
    out="$GGUF_DIR/gpt2-124m-$t.gguf"
    if [[ ! -s "$out" || "$MODEL_DIR/model.safetensors" -nt "$out" || "$MODEL_DIR/config.json" -nt "$out" ]]; then
        log "converting to $out"
        "$PY" "$SRC/vendor/llama.cpp/convert_hf_to_gguf.py" "$MODEL_DIR" --outtype "$t" \
            --outfile "$out.tmp" > "$GGUF_DIR/convert-$t.log" 2>&1 \
            || { tail -30 "$GGUF_DIR/convert-$t.log" >&2; exit 1; }
        mv "$out.tmp" "$out"
    fi
done

log "done in $(( $(date +%s) - T0 )) s"
echo "LLAMA_PYTHON=$LLAMA_VENV/bin/python"
echo "LLAMA_CPP_PYTHON=$LLAMA_VERSION"
echo "LLAMA_CPP_SRC=$SRC"
echo "MODEL_DIR=$MODEL_DIR"
echo "GGUF_F32=$GGUF_DIR/gpt2-124m-f32.gguf"
echo "GGUF_BF16=$GGUF_DIR/gpt2-124m-bf16.gguf"
