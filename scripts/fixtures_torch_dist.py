#!/usr/bin/env python3
"""Write a megatron-core `torch_dist` checkpoint of the shared gpt2-tiny model for Turing's tests.

megatron-core itself builds the model (GPTModel, local layer spec: input_layernorm, linear_qkv,
linear_proj, pre_mlp_layernorm, linear_fc1, linear_fc2, learned positions, tied embeddings) on
TP x PP ranks that are CPU processes (gloo), copies the HF weights into each rank's shard, and saves
with megatron.core.dist_checkpointing.save(..., 'torch_dist'), the way Megatron-LM's save_checkpoint
does: model.sharded_state_dict() plus the common state (args, checkpoint_version, iteration) that goes
to common.pt. Output: <out>/latest_checkpointed_iteration.txt and <out>/iter_0000007/ with
metadata.json, common.pt, .metadata and __R_I.distcp files (layer tensors stacked on a leading
num_layers axis, one chunk per layer and TP rank, spread over the ranks' files).

    /work/venv/bin/python scripts/fixtures_torch_dist.py [--src .../fixtures/checkpoints/gpt2-tiny]
        [--out Tests/Fixtures/torch_dist/mcore-tp2-pp2] [--tp 2 --pp 2]

Requirements: torch, safetensors, megatron-core (tested with 0.16.0, `pip install --no-deps`).
"""
import argparse
import json
import os
import shutil
import sys
import warnings

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITERATION = 7


def hf_weights(src):
    from safetensors.torch import load_file
    cfg = json.load(open(os.path.join(src, "config.json")))
    sd = load_file(os.path.join(src, "model.safetensors"))
    return cfg, {k.removeprefix("transformer."): v for k, v in sd.items()}


def full_mcore_tensors(cfg, w, padded_vocab):
    """Global (TP 1) megatron-core tensors under local-spec names with an explicit layer index."""
    import torch
    C, H = cfg["n_embd"], cfg["n_head"]
    hn = C // H
    out = {}
    wte = w["wte.weight"]
    out["embedding.word_embeddings.weight"] = torch.cat([wte, torch.zeros(padded_vocab - wte.shape[0], C)])
    out["embedding.position_embeddings.weight"] = w["wpe.weight"]
    for i in range(cfg["n_layer"]):
        p, q = f"h.{i}.", f"decoder.layers.{i}."
        out[q + "input_layernorm.weight"] = w[p + "ln_1.weight"]
        out[q + "input_layernorm.bias"] = w[p + "ln_1.bias"]
        # HF Conv1D c_attn is [C, 3C] with columns [Q | K | V]; mcore rows are per head [q_h; k_h; v_h].
        qkv = w[p + "attn.c_attn.weight"].t().reshape(3, H, hn, C).permute(1, 0, 2, 3).reshape(3 * C, C)
        out[q + "self_attention.linear_qkv.weight"] = qkv.contiguous()
        out[q + "self_attention.linear_qkv.bias"] = w[p + "attn.c_attn.bias"].reshape(3, H, hn).permute(1, 0, 2).reshape(3 * C).contiguous()
        out[q + "self_attention.linear_proj.weight"] = w[p + "attn.c_proj.weight"].t().contiguous()
        out[q + "self_attention.linear_proj.bias"] = w[p + "attn.c_proj.bias"]
        out[q + "pre_mlp_layernorm.weight"] = w[p + "ln_2.weight"]
        out[q + "pre_mlp_layernorm.bias"] = w[p + "ln_2.bias"]
        out[q + "mlp.linear_fc1.weight"] = w[p + "mlp.c_fc.weight"].t().contiguous()
        out[q + "mlp.linear_fc1.bias"] = w[p + "mlp.c_fc.bias"]
        out[q + "mlp.linear_fc2.weight"] = w[p + "mlp.c_proj.weight"].t().contiguous()
        out[q + "mlp.linear_fc2.bias"] = w[p + "mlp.c_proj.bias"]
    out["decoder.final_layernorm.weight"] = w["ln_f.weight"]
    out["decoder.final_layernorm.bias"] = w["ln_f.bias"]
    return out


def copy_into(model, full, tp, tp_rank, offset):
    """Fill a megatron-core GPTModel stage (local spec) with its TP piece of the global tensors `full`;
    `offset` is the stage's first layer. The untied output layer takes the word embedding's piece."""
    import torch

    def shard(name, t):
        if name.endswith("word_embeddings.weight") or any(s in name for s in ("linear_qkv.weight", "linear_qkv.bias", "linear_fc1.weight", "linear_fc1.bias")):
            return t.chunk(tp, 0)[tp_rank]
        if any(s in name for s in ("linear_proj.weight", "linear_fc2.weight")):
            return t.chunk(tp, 1)[tp_rank]
        return t

    with torch.no_grad():
        for name, p in model.named_parameters():
            g = name
            if name.startswith("decoder.layers."):
                i = int(name.split(".")[2])
                g = name.replace(f"decoder.layers.{i}.", f"decoder.layers.{i + offset}.", 1)
            if name == "output_layer.weight":
                g = "embedding.word_embeddings.weight"
            v = shard(g, full[g])
            assert p.shape == v.shape, (name, p.shape, v.shape)
            p.copy_(v)


def spawn_and_list(rank_main, a):
    """Run rank_main on TP x PP processes (gloo), then print every file written under a.out with its size."""
    import torch.multiprocessing as mp
    mp.spawn(rank_main, args=(a.tp * a.pp, a, 29500 + os.getpid() % 1000), nprocs=a.tp * a.pp, join=True)
    for d, _, fs in sorted(os.walk(a.out)):
        for f in sorted(fs):
            print(os.path.getsize(os.path.join(d, f)), os.path.relpath(os.path.join(d, f), a.out))


def rank_main(rank, world, a, port):
    import argparse as ap
    import torch
    import torch.nn.functional as F
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    # CPU-only torch: megatron-core moves the tied embedding to the GPU before its first all-reduce
    # (LanguageModule.setup_embeddings_and_output_layer); keep it on the CPU (gloo) instead.
    # Likewise its async writer synchronises CUDA streams before copying shards to the CPU: a no-op here.
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.cuda.synchronize = lambda *args, **kwargs: None
    torch.cuda.current_device = lambda: "cpu"
    from megatron.core import dist_checkpointing, parallel_state
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig

    parallel_state.initialize_model_parallel(tensor_model_parallel_size=a.tp, pipeline_model_parallel_size=a.pp)
    cfg, w = hf_weights(a.src)
    C, L, tp = cfg["n_embd"], cfg["n_layer"], a.tp
    padded = (cfg["vocab_size"] + 128 * tp - 1) // (128 * tp) * (128 * tp)
    full = full_mcore_tensors(cfg, w, padded)
    tc = TransformerConfig(num_layers=L, hidden_size=C, num_attention_heads=cfg["n_head"], ffn_hidden_size=4 * C,
                           layernorm_epsilon=cfg["layer_norm_epsilon"], add_bias_linear=True,
                           activation_func=lambda x: F.gelu(x, approximate="tanh"),
                           tensor_model_parallel_size=tp, pipeline_model_parallel_size=a.pp,
                           use_cpu_initialization=True, perform_initialization=False, params_dtype=torch.float32,
                           pipeline_dtype=torch.float32)
    pp_rank, tp_rank = parallel_state.get_pipeline_model_parallel_rank(), parallel_state.get_tensor_model_parallel_rank()
    model = GPTModel(config=tc, transformer_layer_spec=get_gpt_layer_local_spec(), vocab_size=padded,
                     max_sequence_length=cfg["n_positions"], pre_process=pp_rank == 0, post_process=pp_rank == a.pp - 1,
                     share_embeddings_and_output_weights=True, position_embedding_type="learned_absolute")
    copy_into(model, full, tp, tp_rank, pp_rank * (L // a.pp))
    args = ap.Namespace(num_layers=L, hidden_size=C, ffn_hidden_size=4 * C, num_attention_heads=cfg["n_head"],
                        kv_channels=C // cfg["n_head"], max_position_embeddings=cfg["n_positions"],
                        seq_length=cfg["n_positions"], padded_vocab_size=padded, make_vocab_size_divisible_by=128,
                        tensor_model_parallel_size=tp, pipeline_model_parallel_size=a.pp,
                        untie_embeddings_and_output_weights=False, position_embedding_type="learned_absolute",
                        normalization="LayerNorm", layernorm_epsilon=cfg["layer_norm_epsilon"],
                        add_bias_linear=True, add_qkv_bias=True, swiglu=False, openai_gelu=True, squared_relu=False,
                        group_query_attention=False, num_query_groups=None, apply_layernorm_1p=False,
                        params_dtype=torch.float32, fp16=False, bf16=False, ckpt_format="torch_dist",
                        transformer_impl="local", iteration=ITERATION)
    state = {"model": model.sharded_state_dict(), "args": args, "checkpoint_version": 3.0, "iteration": ITERATION}
    it_dir = os.path.join(a.out, "iter_%07d" % ITERATION)
    if rank == 0:
        os.makedirs(it_dir, exist_ok=True)
    torch.distributed.barrier()
    dist_checkpointing.save(state, it_dir, sharded_strategy=("torch_dist", 1))
    torch.distributed.barrier()
    if rank == 0:
        with open(os.path.join(a.out, "latest_checkpointed_iteration.txt"), "w") as f:
            f.write(str(ITERATION))
    parallel_state.destroy_model_parallel()
    torch.distributed.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--src", default=os.path.join(os.path.dirname(ROOT), "shared/fixtures/checkpoints/gpt2-tiny"))
    p.add_argument("--out", default=os.path.join(ROOT, "Tests/Fixtures/torch_dist/mcore-tp2-pp2"))
    p.add_argument("--tp", type=int, default=2)
    p.add_argument("--pp", type=int, default=2)
    a = p.parse_args()
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    spawn_and_list(rank_main, a)


if __name__ == "__main__":
    sys.exit(main())
