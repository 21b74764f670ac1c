#!/usr/bin/env python3
"""Checks the optimizer state in a Megatron-LM legacy save written by `turing finetune --save-megatron`
the way Megatron-LM would restore it, with real PyTorch:

- every rank file loads with torch.load;
- the rank's parameters are the `model` dict's tensors in order (Megatron's named_parameters()), grouped as
  Megatron's _get_param_groups groups them (no weight decay for biases and 1-D tensors, groups in first-
  appearance order); torch.optim.AdamW(groups).load_state_dict(sd["optimizer"]) accepts the state
  (group sizes must match);
- each restored exp_avg / exp_avg_sq has its parameter's shape, the step equals the iteration, the groups'
  weight decay is 0 or args.weight_decay, and one AdamW step with zero gradients runs;
- opt_param_scheduler counts samples (num_steps == iteration x global batch).

    /work/venv/bin/python scripts/check_megatron_optimizer.py DIR
"""
import glob, os, sys
import torch

root = sys.argv[1]
it = open(os.path.join(root, "latest_checkpointed_iteration.txt")).read().strip()
files = sorted(glob.glob(os.path.join(root, f"iter_{int(it):07d}" if it != "release" else "release", "mp_rank_*", "model_optim_rng.pt")))
assert files, f"no rank files under {root}"

def leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, torch.Tensor): yield prefix + k, v
        elif isinstance(v, dict): yield from leaves(v, prefix + k + ".")

total = 0
for f in files:
    sd = torch.load(f, map_location="cpu", weights_only=False)
    args = sd["args"]
    named = [(n, torch.nn.Parameter(t.float().clone())) for n, t in leaves(sd["model"])]
    groups = {}
    for n, p in named:
        wd = 0.0 if n.endswith(".bias") or p.dim() == 1 else 1.0
        groups.setdefault(wd, []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "weight_decay": args.weight_decay * wd} for wd, ps in groups.items()], lr=args.lr,
                            betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_eps)
    opt.load_state_dict(sd["optimizer"])
    for g, wd in zip(opt.param_groups, groups):
        assert abs(g["weight_decay"] - args.weight_decay * wd) < 1e-12, (f, g["weight_decay"], wd)
    for n, p in named:
        st = opt.state[p]
        assert st["exp_avg"].shape == p.shape and st["exp_avg_sq"].shape == p.shape, (f, n, st["exp_avg"].shape, p.shape)
        assert int(st["step"].item()) == sd["iteration"], (f, n, st["step"], sd["iteration"])
        assert (st["exp_avg_sq"] >= 0).all(), (f, n)
        p.grad = torch.zeros_like(p)
    opt.step()
    sch = sd["opt_param_scheduler"]
    assert sch["num_steps"] == sd["iteration"] * args.global_batch_size, sch
    total += len(named)
    print(f"{os.path.relpath(f, root)}: {len(named)} parameters in {len(groups)} groups, state restored by torch.optim.AdamW.load_state_dict, step {sd['iteration']}")
print(f"OK: {len(files)} rank files, {total} parameters")
