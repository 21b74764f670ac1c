#!/usr/bin/env python3
"""Training reference for Turing's backward pass and AdamW (issue 6), from real PyTorch.

Trains Tests/Fixtures/models/gpt2-tiny-rand (HF GPT2LMHeadModel, tied, gelu_new) and llama-tiny-rand
(LlamaForCausalLM: RMSNorm, RoPE, SwiGLU, GQA, untied) for 20 steps on
seeded random batches (B=2, T=16; the second sequence's first 5 positions masked out of the loss),
torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1 on tensors of rank >= 2,
0 on biases and norm gains), no clipping, mean cross-entropy over unmasked positions.
Writes Tests/Fixtures/training/[llama_]expected.json (batches, losses) and [llama_]first_step_grads.safetensors
(the first step's gradients under Turing's canonical names: q/k/v split out of c_attn and
transposed from Conv1D to [out, in]).

The `micro_` variants train Megatron's way for the parallel tests (gradient accumulation, data
parallelism, 1F1B): the global batch of 2 is two micro-batches of one sequence, the loss is the mean
over micro-batches of each micro-batch's masked mean, and gradients are clipped to global norm 1.0
(torch.nn.utils.clip_grad_norm_) before the step; `grad_norms` records the norm before clipping.

    HF_HUB_OFFLINE=1 /work/venv/bin/python scripts/fixtures_training.py
"""
import json, os
import torch
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out = os.path.join(root, "Tests/Fixtures/training")
os.makedirs(out, exist_ok=True)
def canonical_grads_gpt2(m):
    C = m.config.n_embd
    out = {}
    sd = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
    out["embedding.word.weight"] = sd["transformer.wte.weight"]
    out["embedding.position.weight"] = sd["transformer.wpe.weight"]
    for i in range(m.config.n_layer):
        h = f"transformer.h.{i}."
        p = f"layers.{i}."
        out[p + "norm1.weight"] = sd[h + "ln_1.weight"]; out[p + "norm1.bias"] = sd[h + "ln_1.bias"]
        w = sd[h + "attn.c_attn.weight"].t()            # [3C, C]
        b = sd[h + "attn.c_attn.bias"]
        for j, n in enumerate("qkv"):
            out[p + f"attn.{n}.weight"] = w[j * C:(j + 1) * C].contiguous()
            out[p + f"attn.{n}.bias"] = b[j * C:(j + 1) * C].contiguous()
        out[p + "attn.out.weight"] = sd[h + "attn.c_proj.weight"].t().contiguous(); out[p + "attn.out.bias"] = sd[h + "attn.c_proj.bias"]
        out[p + "norm2.weight"] = sd[h + "ln_2.weight"]; out[p + "norm2.bias"] = sd[h + "ln_2.bias"]
        out[p + "mlp.fc1.weight"] = sd[h + "mlp.c_fc.weight"].t().contiguous(); out[p + "mlp.fc1.bias"] = sd[h + "mlp.c_fc.bias"]
        out[p + "mlp.fc2.weight"] = sd[h + "mlp.c_proj.weight"].t().contiguous(); out[p + "mlp.fc2.bias"] = sd[h + "mlp.c_proj.bias"]
    out["final_norm.weight"] = sd["transformer.ln_f.weight"]; out["final_norm.bias"] = sd["transformer.ln_f.bias"]
    return {k: v.contiguous() for k, v in out.items()}


def canonical_grads_llama(m):
    sd = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
    out = {"embedding.word.weight": sd["model.embed_tokens.weight"], "final_norm.weight": sd["model.norm.weight"],
           "lm_head.weight": sd["lm_head.weight"]}
    for i in range(m.config.num_hidden_layers):
        h, p = f"model.layers.{i}.", f"layers.{i}."
        out[p + "norm1.weight"] = sd[h + "input_layernorm.weight"]
        out[p + "norm2.weight"] = sd[h + "post_attention_layernorm.weight"]
        for a, b in [("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("out", "o_proj")]:
            out[p + f"attn.{a}.weight"] = sd[h + f"self_attn.{b}.weight"]
        for a, b in [("gate", "gate_proj"), ("up", "up_proj"), ("fc2", "down_proj")]:
            out[p + f"mlp.{a}.weight"] = sd[h + f"mlp.{b}.weight"]
    return {k: v.contiguous() for k, v in out.items()}

def run(src_rel, cls, canon, prefix, micro=False):
    src = os.path.join(root, src_rel)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = cls.from_pretrained(src, attn_implementation="eager", dtype=torch.float32)
    model.train()
    V = model.config.vocab_size
    B, T, STEPS = 2, 16, 20
    g = torch.Generator().manual_seed(4321)
    pool = [torch.randint(0, V, (B, T + 1), generator=g) for _ in range(4)]
    batches = [pool[i % 4] for i in range(STEPS)]   # 4 batches cycled, so the loss visibly falls
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, :5] = False

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)

    losses, norms = [], []
    for step, ids in enumerate(batches):
        inp, tgt = ids[:, :-1], ids[:, 1:]
        logits = model(inp).logits
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), reduction="none").reshape(B, T)
        if micro:
            loss = sum(ce[b][mask[b]].mean() for b in range(B)) / B
        else:
            loss = ce[mask].mean()
        opt.zero_grad()
        loss.backward()
        if step == 0:   # before clipping
            save_file(canon(model), os.path.join(out, prefix + "first_step_grads.safetensors"), metadata={"format": "pt"})
        if micro:
            norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item())
        opt.step()
        losses.append(loss.item())

    json.dump({"model": src_rel, "B": B, "T": T, "steps": STEPS,
               "optimizer": {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "decay": "rank >= 2"},
               "mask": mask.tolist(), "batches": [b.tolist() for b in batches], "losses": losses,
               "micro_batch": 1 if micro else B, "clip_grad": 1.0 if micro else 0.0, "grad_norms": norms,
               "versions": {"torch": torch.__version__}},
              open(os.path.join(out, prefix + "expected.json"), "w"), indent=None)
    print(src_rel, "losses", losses[0], "->", losses[-1])


from transformers import LlamaForCausalLM
run("Tests/Fixtures/models/gpt2-tiny-rand", GPT2LMHeadModel, canonical_grads_gpt2, "")
run("Tests/Fixtures/models/llama-tiny-rand", LlamaForCausalLM, canonical_grads_llama, "llama_")
run("Tests/Fixtures/models/gpt2-tiny-rand", GPT2LMHeadModel, canonical_grads_gpt2, "micro_", micro=True)
run("Tests/Fixtures/models/llama-tiny-rand", LlamaForCausalLM, canonical_grads_llama, "llama_micro_", micro=True)
