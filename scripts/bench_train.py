#!/usr/bin/env python3
"""PyTorch training-step baseline for `turing train-bench`: GPT2LMHeadModel (eager attention, random
init, float32), forward + backward + AdamW, batch 4 x 128 tokens, torch.set_num_threads(2), best of 3
after a warm-up. Prints JSON. Usage: /work/venv/bin/python scripts/bench_train.py [--layers 12 ...]"""
import argparse, json, resource, time, os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from transformers import GPT2Config, GPT2LMHeadModel
ap = argparse.ArgumentParser()
for k, v in [("layers", 12), ("hidden", 768), ("heads", 12), ("vocab", 50257), ("batch", 4), ("seq_length", 128), ("threads", 2), ("reps", 3)]:
    ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = GPT2LMHeadModel(GPT2Config(n_layer=a.layers, n_embd=a.hidden, n_head=a.heads, vocab_size=a.vocab, n_positions=max(1024, a.seq_length),
                               resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, activation_function="gelu_new"), ).float()
m.config._attn_implementation = "eager"
m.train()
opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
ids = torch.randint(0, a.vocab, (a.batch, a.seq_length + 1))
best = float("inf")
for r in range(a.reps + 1):
    t0 = time.perf_counter()
    out = m(ids[:, :-1])
    loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
    dt = time.perf_counter() - t0
    if r > 0: best = min(best, dt)
print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "train_tokens_per_s": a.batch * a.seq_length / best, "step_seconds": best,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
