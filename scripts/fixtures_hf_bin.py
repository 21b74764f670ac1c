#!/usr/bin/env python3
"""Write the shared gpt2-tiny model as HF folders with `pytorch_model.bin` weights (no safetensors).

transformers' own `save_pretrained(safe_serialization=False)` writes them: one `pytorch_model.bin`,
and, with a small `max_shard_size`, `pytorch_model-0000K-of-0000N.bin` shards plus
`pytorch_model.bin.index.json` -- the layout transformers' Megatron converter
(`models/megatron_gpt2/convert_megatron_gpt2_checkpoint.py`) and many published GPT-2 exports use.
The weights are those of `gpt2-tiny`, so the shared expected logits (expected.safetensors) apply.

Needs transformers 4.x (5.x always writes safetensors); the committed folders were written by
transformers 4.46.3 with torch 2.15.0 (a venv with transformers 4.46.3 over /work/venv's torch).

    python scripts/fixtures_hf_bin.py [--src ../shared/fixtures/checkpoints/gpt2-tiny]
        [--out Tests/Fixtures/hf_bin]
"""
import argparse
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(ROOT, "..", "shared", "fixtures", "checkpoints", "gpt2-tiny"))
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures", "hf_bin"))
    o = ap.parse_args()
    import torch
    import transformers
    from transformers import GPT2LMHeadModel
    model = GPT2LMHeadModel.from_pretrained(o.src, torch_dtype=torch.float32)
    for name, shard in (("gpt2-tiny-bin", None), ("gpt2-tiny-bin-sharded", "400KB")):
        out = os.path.join(o.out, name)
        shutil.rmtree(out, ignore_errors=True)
        kw = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(out, safe_serialization=False, **kw)
        for f in os.listdir(out):
            if f == "generation_config.json":
                os.remove(os.path.join(out, f))
        print(name, sorted(os.listdir(out)))
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
