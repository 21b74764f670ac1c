#!/usr/bin/env bash
# scripts/fuzz_seeds.sh: seed corpora for scripts/fuzz.sh, from the repository's fixtures (and
# ../shared/fixtures when present), into .build-fuzz/seeds/TARGET (never committed). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
S=.build-fuzz/seeds
SHARED=${TURING_SHARED_DATA:-../shared/data}
FIX=$(dirname "$SHARED")/fixtures/checkpoints
[[ -f $S/.done ]] && exit 0
mkdir -p $S/{zip,pickle,torchfile,torchdist,safetensors,hfconfig,megatronargs,llama2c,llama2ctok,gpt2tok,tokjson,hftokjson,sentencepiece,tiktoken,taskyaml,jsonl,requests,tracker,idx}
small() { find "$@" -type f -size -64k 2>/dev/null | head -12; }
# torch.save zips and their pickles (shared fixtures), DCP metadata
i=0; for f in $(small "$FIX" -name "*.pt"); do cp "$f" $S/zip/$i.pt; cp "$f" $S/torchfile/$i.pt
    python3 - "$f" "$S/pickle/$i.pkl" <<'PY' || true
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); n = [x for x in z.namelist() if x.endswith("data.pkl")][0]
open(sys.argv[2], "wb").write(z.read(n))
PY
    i=$((i+1)); done
i=0; for f in $(find "$FIX" Tests/Fixtures -name ".metadata" -size -64k 2>/dev/null | head -6); do cp "$f" $S/torchdist/$i.metadata; i=$((i+1)); done
# repo fixtures: small .pt files and pickles
i=0; for f in $(small Tests/Fixtures -name "*.pt"); do cp "$f" $S/zip/r$i.pt; cp "$f" $S/torchfile/r$i.pt; i=$((i+1)); done
i=0; for f in $(small Tests/Fixtures/pickles -name "*.pkl"); do cp "$f" $S/pickle/r$i.pkl; i=$((i+1)); done
# tokenizer kinds (repo fixtures)
i=0; for f in $(find Tests/Fixtures -name tokenizer.json -size -160k); do cp "$f" $S/hftokjson/$i.json; i=$((i+1)); done
i=0; for f in $(find Tests/Fixtures -name tokenizer.model -size -600k); do cp "$f" $S/sentencepiece/$i.model; i=$((i+1)); done
i=0; for f in $(find Tests/Fixtures -name "*.tiktoken" -size -600k); do cp "$f" $S/tiktoken/$i.tiktoken; i=$((i+1)); done
# safetensors and HF configs (repo fixtures)
i=0; for f in $(small Tests/Fixtures/models -name "*.safetensors"); do cp "$f" $S/safetensors/$i.safetensors; i=$((i+1)); done
i=0; for f in Tests/Fixtures/models/*/config.json; do cp "$f" $S/hfconfig/$i.json; i=$((i+1)); done
printf 'hidden_size=64\nnum_attention_heads=4\nnum_layers=2\ntensor_model_parallel_size=2\n' > $S/megatronargs/0
printf 'ffn_hidden_size=256\nlayernorm_epsilon=1e-5\nswiglu=true\nposition_embedding_type=rope\n' > $S/megatronargs/1
# llama2.c: a valid tiny model (dim 4, hidden 8, 1 layer, 1 head, vocab 4, seq 4) and a tokenizer
python3 - $S/llama2c/0.bin <<'PY'
import struct, sys
dim, hid, L, H, G, V, P = 4, 8, 1, 1, 1, 4, 4
n = V*dim + L*dim + 4*L*dim*dim + L*dim + 3*L*hid*dim + dim + P*(dim//H)
open(sys.argv[1], "wb").write(struct.pack("<7i", dim, hid, L, H, G, V, P) + struct.pack(f"<{n}f", *([0.01]*n)))
PY
[[ -f $SHARED/models/stories260K/tok512.bin ]] && cp "$SHARED/models/stories260K/tok512.bin" $S/llama2ctok/0.bin
python3 - $S/llama2ctok/1.bin <<'PY'
import struct, sys
toks = [b"<unk>", b"<s>", b"</s>", b"a", b"b", b"ab", b" "]
out = struct.pack("<i", 8)
for i, t in enumerate(toks): out += struct.pack("<fi", float(i), len(t)) + t
open(sys.argv[1], "wb").write(out)
PY
# GPT-2 tokenizers: vocab.json NUL merges.txt; tokenizer.json
{ cat checkpoints/demo/vocab.json; printf '\0'; cat checkpoints/demo/merges.txt; } > $S/gpt2tok/0
python3 - checkpoints/demo/vocab.json checkpoints/demo/merges.txt $S/tokjson/0.json <<'PY'
import json, sys
v = json.load(open(sys.argv[1])); m = [l for l in open(sys.argv[2]).read().split("\n")[1:] if l]
json.dump({"version": "1.0", "added_tokens": [{"id": v["<|endoftext|>"], "content": "<|endoftext|>", "special": True,
           "single_word": False, "lstrip": False, "rstrip": False, "normalized": False}],
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": v, "merges": m}}, open(sys.argv[3], "w"))
PY
# tasks, their data, tracker contents, indexed datasets
i=0; for f in tasks/*.yaml Tests/Fixtures/lmeval/tasks/*.yaml; do cp "$f" $S/taskyaml/$i.yaml; i=$((i+1)); done
i=0; for f in tasks/data/*.jsonl; do head -c 8000 "$f" > $S/jsonl/$i.jsonl; i=$((i+1)); done
printf '{"context": "the sky is", "continuation": " blue"}\n{"context": "", "continuation": "<|endoftext|>Hello"}\n{"text": "a b"}\n' > $S/requests/0.jsonl
printf '{"context": "Caf", "continuation": "\\u00e9 au lait"}\n\n{"context": "  ", "continuation": "x"}\n' > $S/requests/1.jsonl
printf 'release' > $S/tracker/0; printf '100\n' > $S/tracker/1; printf 'global_step3000' > $S/tracker/2
python3 - $S/idx/0.idx <<'PY'
import struct, sys
sizes = [3, 5, 2]; ptrs = [0, 6, 16]
out = b"MMIDIDX\x00\x00" + struct.pack("<QB", 1, 8) + struct.pack("<QQ", len(sizes), len(sizes) + 1)
out += struct.pack(f"<{len(sizes)}i", *sizes) + struct.pack(f"<{len(ptrs)}q", *ptrs) + struct.pack(f"<{len(sizes)+1}q", *range(len(sizes)+1))
open(sys.argv[1], "wb").write(out)
PY
touch $S/.done
