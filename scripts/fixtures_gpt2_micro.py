#!/usr/bin/env python3
"""A micro GPT-2 (HF folder) and transformers' logits for it: the source model of the Megatron-LM
version matrix (scripts/fixtures_megatron_matrix.py), small enough that a dozen sharded saves of it
can be committed.

vocab 250 (Megatron's NullTokenizer with --vocab-size 249: 249 ids + end-of-document), 64 positions,
hidden 32, 4 layers, 4 heads, gelu_new, tied head; seeded random weights with LayerNorm gains
1 + N(0, 0.1) and non-zero biases (not HF's initialisation, so every tensor matters).
Writes <out>/gpt2-micro/{config.json,model.safetensors} and <out>/expected.json (token ids) +
<out>/expected.safetensors (float32 logits `logits_i`, [len_i, 250]) from GPT2LMHeadModel (eager).

    python scripts/fixtures_gpt2_micro.py [--out Tests/Fixtures/megatron_matrix]
"""
import argparse
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests/Fixtures/megatron_matrix"))
    o = ap.parse_args()
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(16)
    cfg = GPT2Config(vocab_size=250, n_positions=64, n_embd=32, n_layer=4, n_head=4, activation_function="gelu_new",
                     layer_norm_epsilon=1e-5, bos_token_id=249, eos_token_id=249, tie_word_embeddings=True,
                     attn_implementation="eager")
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("ln_1.weight") or n.endswith("ln_2.weight") or n.endswith("ln_f.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif n.endswith(".bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    d = os.path.join(o.out, "gpt2-micro")
    model.save_pretrained(d)
    for f in os.listdir(d):
        if f == "generation_config.json":
            os.remove(os.path.join(d, f))
    g = torch.Generator().manual_seed(7)
    seqs = [torch.randint(0, 250, (n,), generator=g).tolist() for n in (5, 17, 64)]
    tensors, meta = {}, []
    with torch.no_grad():
        for i, ids in enumerate(seqs):
            tensors[f"logits_{i}"] = model(torch.tensor([ids])).logits[0].float().contiguous()
            meta.append({"ids": ids, "logits_key": f"logits_{i}"})
    save_file(tensors, os.path.join(o.out, "expected.safetensors"))
    json.dump({"model": "gpt2-micro", "producer": f"transformers {transformers.__version__}, torch {torch.__version__}, "
               "GPT2LMHeadModel(attn_implementation='eager'), float32", "sequences": meta},
              open(os.path.join(o.out, "expected.json"), "w"), indent=1)
    print(sorted(os.listdir(d)), {k: list(v.shape) for k, v in tensors.items()})


if __name__ == "__main__":
    main()
