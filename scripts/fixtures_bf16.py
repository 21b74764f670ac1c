#!/usr/bin/env python3
"""The bf16 yardstick: PyTorch-bf16 (`model.to(torch.bfloat16)`) against PyTorch-f32 on the repo's
tiny fixture models (Tests/Fixtures/models) and, when present, the shared tiny GPT-2
(../shared/fixtures/checkpoints/gpt2-tiny). For seeded token sequences it writes, per model, the
f32 log-prob of every next token and the largest |bf16 - f32| over them (`yardstick`), to
Tests/Fixtures/bf16/expected.json. Turing at --dtype bfloat16 must stay within 1.5x the yardstick.

    HF_HUB_OFFLINE=1 /work/venv/bin/python scripts/fixtures_bf16.py
"""
import json, os, sys
import torch
import transformers
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {name: os.path.join(ROOT, "Tests/Fixtures/models", name) for name in ["gpt2-tiny-rand", "gpt2-tiny-erf-untied", "llama-tiny-rand"]}
shared = os.path.join(ROOT, "..", "shared", "fixtures", "checkpoints", "gpt2-tiny")
if os.path.isdir(shared):
    MODELS["shared:gpt2-tiny"] = shared

torch.manual_seed(0)
torch.set_num_threads(1)
out = {"torch": torch.__version__, "transformers": transformers.__version__, "models": {}}
for name, path in MODELS.items():
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
    cfg = model.config
    vocab = cfg.vocab_size
    npos = getattr(cfg, "n_positions", None) or cfg.max_position_embeddings
    g = torch.Generator().manual_seed(1234)
    seqs = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in (npos, npos // 2, 9)]
    half = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval().to(torch.bfloat16)
    entries, worst = [], 0.0
    with torch.inference_mode():
        for ids in seqs:
            x = torch.tensor([ids])
            lp32 = torch.log_softmax(model(x).logits.float(), -1)[0]
            lp16 = torch.log_softmax(half(x).logits.float(), -1)[0]
            t = torch.tensor(ids[1:])
            a = lp32[:-1].gather(1, t[:, None])[:, 0]
            b = lp16[:-1].gather(1, t[:, None])[:, 0]
            worst = max(worst, (a - b).abs().max().item())
            entries.append({"ids": ids, "logprobs_f32": [float(v) for v in a]})
    out["models"][name] = {"path": os.path.relpath(path, ROOT), "sequences": entries, "yardstick": worst}
    print(f"{name}: PyTorch bf16 vs f32, max |d logprob| = {worst:.5f}", file=sys.stderr)
os.makedirs(os.path.join(ROOT, "Tests/Fixtures/bf16"), exist_ok=True)
with open(os.path.join(ROOT, "Tests/Fixtures/bf16/expected.json"), "w") as f:
    json.dump(out, f, indent=1)
