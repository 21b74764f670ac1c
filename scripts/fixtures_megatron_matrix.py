#!/usr/bin/env python3
"""Megatron-LM version matrix: real args and real saves of gpt2-micro (scripts/fixtures_gpt2_micro.py), TP 2 x PP 2.

For one Megatron-LM release (a source tree of that tag, whose `megatron/core` is megatron-core at the
same version), on four CPU processes (gloo):
  1. Megatron-LM's own `parse_args()` + `validate_args()` turn a pretrain_gpt.py command line for the
     micro model (4 layers, hidden 32, 4 heads, 64 learned positions, tied head, NullTokenizer with 250
     tokens) into `args`; `args.model_type` and `args.padded_vocab_size` are then set the way
     `pretrain()` and `build_tokenizer()` set them (`_vocab_size_with_padding` from the tree).
  2. megatron-core's GPTModel is built from those args (`core_transformer_config_from_args`, local layer
     spec) and the HF weights are copied into each rank's shard.
  3. Megatron-LM's own `save_checkpoint()` writes the checkpoint (`--ckpt-format torch` legacy
     `mp_rank_TT_PPP/model_optim_rng.pt`, or `torch_dist` through dist_checkpointing), optimizer not
     saved (`--no-save-optim`), or with `--with-optimizer` megatron-core's standard optimizer after one
     step on zero gradients (build_optimizer). megatron-core's DistributedOptimizer cannot be built on CPU
     (it refuses parameters that are not torch.cuda tensors), so no distributed-optimizer save is written.
CPU-only shims (no CUDA in this environment): `Tensor.cuda` is the identity, `torch.cuda.synchronize`
a no-op, `torch.cuda.get_rng_state` returns the CPU generator state (what Megatron stores as
`cuda_rng_state`), a device of compute capability 9.0 is reported where validate_args asks, and
Python 3.12's `typing.override` (a no-op decorator core_v0.19 imports) is provided on Python 3.11.
core_v0.9's torch_dist writer calls a private torch function by its torch 2.4 signature; it is
bridged to torch 2.15's (adapt_torch_dcp_writer). Nothing of the saved model or args is altered.

    python scripts/fixtures_megatron_matrix.py --megatron <Megatron-LM tree at a tag> --out <dir>
        --format torch|torch_dist [--tp 2 --pp 2] [--with-optimizer] [--src gpt2-micro]
    python scripts/fixtures_megatron_matrix.py --te-names <legacy save> --out <dir>

Transformer Engine layer-spec names: TE does not install without CUDA, so no TE model runs here. A
torch_dist save of the local spec already carries TE's names (the local spec's
`sharded_state_dict_keys_map` maps `input_layernorm.` -> `self_attention.linear_qkv.layer_norm_` and
`pre_mlp_layernorm.` -> `mlp.linear_fc1.layer_norm_`, megatron/core/models/gpt/gpt_layer_specs.py).
`--te-names` rewrites a legacy save with that same map and gives every TE module the `_extra_state`
TE's `get_extra_state` returns (an `io.BytesIO` on pipeline stage 0, as TE < 1.6 wrote; a uint8
tensor on later stages, as TE >= 1.6 writes), adding `self_attention.core_attention._extra_state`;
the args and tensors stay those Megatron-LM saved.

Requirements: torch (2.x, CPU), numpy, safetensors, and what the tree imports (einops, packaging).
"""
import argparse
import os
import shutil
import sys
import warnings

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITERATION = 7
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_torch_dist import copy_into, full_mcore_tensors, hf_weights, spawn_and_list  # noqa: E402


def argv(a, cfg):
    v = ["pretrain_gpt.py",
         "--num-layers", str(cfg["n_layer"]), "--hidden-size", str(cfg["n_embd"]),
         "--num-attention-heads", str(cfg["n_head"]), "--ffn-hidden-size", str(4 * cfg["n_embd"]),
         "--seq-length", str(cfg["n_positions"]), "--max-position-embeddings", str(cfg["n_positions"]),
         "--position-embedding-type", "learned_absolute", "--openai-gelu",
         "--norm-epsilon" if a.new_args or "'--norm-epsilon'" in a.args_src else "--layernorm-epsilon", str(cfg["layer_norm_epsilon"]),
         "--tokenizer-type", "NullTokenizer", "--vocab-size", str(cfg["vocab_size"] - (0 if a.null_vocab_is_total else 1)),
         "--tensor-model-parallel-size", str(a.tp), "--pipeline-model-parallel-size", str(a.pp),
         "--micro-batch-size", "1", "--global-batch-size", "1", "--train-iters", "10", "--lr", "1e-4",
         "--attention-dropout", "0", "--hidden-dropout", "0", "--transformer-impl", "local",
         "--use-cpu-initialization", "--no-gradient-accumulation-fusion", "--no-masked-softmax-fusion",
         "--no-bias-dropout-fusion", "--no-bias-gelu-fusion", "--no-persist-layer-norm",
         "--save", a.out, "--save-interval", "1", "--no-save-optim", "--no-save-rng"]
    if a.mcore_flag:
        v += ["--use-mcore-models"]
    if a.with_optimizer:
        v.remove("--no-save-optim")
        v += ["--weight-decay", "0", "--clip-grad", "0"]
    if a.format == "torch_dist":
        v += ["--ckpt-format", "torch_dist"] if a.new_args else ["--use-dist-ckpt", "--dist-ckpt-format", "torch_dist"]
    elif a.new_args:
        v += ["--ckpt-format", "torch"]
    # Flags a 2023 release (megatron/arguments.py) does not know are left out with their value.
    if a.new_args:
        return v
    out, i = [v[0]], 1
    while i < len(v):
        takes_value = i + 1 < len(v) and not v[i + 1].startswith("--")
        if f"'{v[i]}'" in a.args_src:
            out += v[i:i + 1 + takes_value]
        else:
            print("not in this release:", v[i])
        i += 1 + takes_value
    return out


def rank_main(rank, world, a, port):
    import torch
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), CUDA_DEVICE_MAX_CONNECTIONS="1")
    sys.path.insert(0, a.megatron)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    import typing
    if not hasattr(typing, "override"):   # core_v0.19 uses Python 3.12's typing.override (a no-op decorator)
        typing.override = lambda f: f
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    torch.cuda.synchronize = lambda *args, **kwargs: None
    torch.cuda.current_device = lambda: "cpu"
    torch.cuda.get_rng_state = lambda *args, **kwargs: torch.get_rng_state()
    import types
    torch.cuda.get_device_properties = lambda *args, **kwargs: types.SimpleNamespace(major=9, minor=0, name="cpu", total_memory=0, multi_processor_count=1)
    torch.cuda.get_device_capability = lambda *args, **kwargs: (9, 0)
    if a.stub_te:
        stub_transformer_engine_and_apex()
    cfg, w = hf_weights(a.src)
    sys.argv = argv(a, cfg)
    if a.new_args:
        from megatron.training.arguments import parse_args, validate_args, core_transformer_config_from_args
        from megatron.training.global_vars import set_global_variables
        from megatron.training.checkpointing import save_checkpoint
        try:
            from megatron.training.tokenizer.tokenizer import _vocab_size_with_padding
        except ImportError:   # core_v0.19: the tokenizers moved to megatron.core
            from megatron.core.tokenizers.utils.build_tokenizer import vocab_size_with_padding as _vocab_size_with_padding
    else:
        from megatron.arguments import parse_args, validate_args, core_transformer_config_from_args
        from megatron.global_vars import set_global_variables
        from megatron.checkpointing import save_checkpoint
        from megatron.tokenizer.tokenizer import _vocab_size_with_padding
    from megatron.core import parallel_state
    from megatron.core.enums import ModelType
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    adapt_torch_dcp_writer()
    args = parse_args()
    validate_args(args, {})
    args.model_type = ModelType.encoder_or_decoder                       # pretrain() sets it
    args.padded_vocab_size = _vocab_size_with_padding(cfg["vocab_size"], args)   # build_tokenizer() sets it
    set_global_variables(args, build_tokenizer=False)
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=a.tp, pipeline_model_parallel_size=a.pp)
    tc = core_transformer_config_from_args(args)
    pp_rank, tp_rank = parallel_state.get_pipeline_model_parallel_rank(), parallel_state.get_tensor_model_parallel_rank()
    padded, L, tp = args.padded_vocab_size, cfg["n_layer"], a.tp
    model = GPTModel(config=tc, transformer_layer_spec=get_gpt_layer_local_spec(), vocab_size=padded,
                     max_sequence_length=args.max_position_embeddings, pre_process=pp_rank == 0, post_process=pp_rank == a.pp - 1,
                     share_embeddings_and_output_weights=not args.untie_embeddings_and_output_weights,
                     position_embedding_type=args.position_embedding_type)
    copy_into(model, full_mcore_tensors(cfg, w, padded), tp, tp_rank, pp_rank * (L // a.pp))
    optimizer = None
    if a.with_optimizer:
        model, optimizer = build_optimizer(args, model, tc)
    save_checkpoint(ITERATION, [model], optimizer, None, 0) if a.new_args else save_checkpoint(ITERATION, [model], optimizer, None)
    torch.distributed.barrier()
    parallel_state.destroy_model_parallel()
    torch.distributed.destroy_process_group()


def stub_transformer_engine_and_apex():
    """megatron-core 0.4 (Dec 2023) imports transformer_engine unconditionally (TENorm in
    transformer_block.py) and its FusedLayerNorm wants apex; neither installs without CUDA. Empty stand-in
    modules let the imports succeed: the local layer spec instantiates no TE class except the final
    LayerNorm, which megatron-core 0.4 always builds with te.pytorch.LayerNorm (a torch LayerNorm stands in:
    same parameters, `weight` and `bias`), and apex's kernels would only run in a forward pass, which a
    save does not do."""
    import importlib.machinery
    import types
    import torch

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    class Unavailable(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("Transformer Engine stand-in: not available on CPU")

    class LayerNorm(torch.nn.LayerNorm):
        """te.pytorch.LayerNorm's parameters are `weight` and `bias`, as here."""
        def __init__(self, hidden_size, eps=1e-5, **kwargs):
            super().__init__(hidden_size, eps=eps)

    te = module("transformer_engine")
    te.pytorch = module("transformer_engine.pytorch", Linear=Unavailable, LayerNormLinear=Unavailable,
                        DotProductAttention=Unavailable, LayerNorm=LayerNorm, RMSNorm=Unavailable,
                        LayerNormMLP=Unavailable)
    te.common = module("transformer_engine.common")
    te.common.recipe = module("transformer_engine.common.recipe", DelayedScaling=Unavailable, Format=types.SimpleNamespace(E4M3=1, HYBRID=2))
    class NoKernel:
        @staticmethod
        def apply(*args, **kwargs):
            raise RuntimeError("apex stand-in: no fused kernels on CPU")

    apex = module("apex")
    apex.normalization = module("apex.normalization")
    apex.normalization.fused_layer_norm = module("apex.normalization.fused_layer_norm",
                                                 FusedLayerNormAffineFunction=NoKernel, FusedRMSNormAffineFunction=NoKernel)
    import importlib.metadata as md
    real_version = md.version
    md.version = lambda name: "0.12.0" if name == "transformer-engine" else real_version(name)


def adapt_torch_dcp_writer():
    """core_v0.9's async torch_dist writer calls torch's private
    `filesystem._write_item(stream, data, write_item, storage_key)` (torch 2.4 signature); torch >= 2.6
    takes `(transforms, stream, data, write_item, storage_key, serialization_format)`. Bridge the old call
    to the new function with no transforms and the torch.save format -- what torch 2.4 wrote."""
    import inspect
    try:
        import megatron.core.dist_checkpointing.strategies.filesystem_async as fa
    except ImportError:
        return
    import torch.distributed.checkpoint.filesystem as fs
    if "transforms" not in inspect.signature(fs._write_item).parameters or "_write_item(stream, data, write_item, storage_key)" not in inspect.getsource(fa):
        return
    new = fs._write_item
    fa._write_item = lambda stream, data, write_item, storage_key: new(
        fs._StorageWriterTransforms(), stream, data, write_item, storage_key, fs.SerializationFormat.TORCH_SAVE)


def build_optimizer(args, model, tc):
    """megatron-core's DDP wrapper and (standard, not distributed) optimizer as Megatron-LM's get_model() and
    setup_model_and_optimizer() build them (config by Megatron-LM's get_megatron_optimizer_config), then one
    step on zero gradients so that the Adam moments exist; --weight-decay 0 and zero gradients leave the
    weights as they were. The optimizer's few bookkeeping tensors made with device='cuda' are made on the
    CPU; --clip-grad 0 because gradient clipping asserts CUDA tensors."""
    import torch

    def on_cpu(f):
        def g(*args, **kwargs):
            d = kwargs.get("device")
            if d is not None and str(d).startswith("cuda"):
                kwargs["device"] = "cpu"
            return f(*args, **kwargs)
        return g
    for n in ("tensor", "zeros", "empty", "ones", "full", "arange"):
        setattr(torch, n, on_cpu(getattr(torch, n)))
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
    from megatron.core.optimizer import get_megatron_optimizer
    from megatron.training.training import get_megatron_optimizer_config
    ddp = DistributedDataParallel(config=tc, ddp_config=DistributedDataParallelConfig(use_distributed_optimizer=False), module=model)
    got = get_megatron_optimizer_config(args)
    config, overrides = got if isinstance(got, tuple) else (got, None)
    opt = get_megatron_optimizer(config, [ddp], **({"config_overrides": overrides} if overrides is not None else {}))
    ddp.zero_grad_buffer()
    opt.step()
    return ddp, opt


def main():
    if "--te-names" in sys.argv:
        p = argparse.ArgumentParser()
        p.add_argument("--te-names", required=True)
        p.add_argument("--out", required=True)
        a = p.parse_args()
        if os.path.exists(a.out):
            shutil.rmtree(a.out)
        return te_names(a.te_names, a.out)
    p = argparse.ArgumentParser()
    p.add_argument("--megatron", required=True, help="Megatron-LM source tree at a release tag")
    p.add_argument("--src", default=os.path.join(ROOT, "Tests/Fixtures/megatron_matrix/gpt2-micro"))
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=["torch", "torch_dist"], default="torch")
    p.add_argument("--tp", type=int, default=2)
    p.add_argument("--pp", type=int, default=2)
    p.add_argument("--with-optimizer", action="store_true", help="save the (standard) optimizer state too")
    a = p.parse_args()
    a.megatron = os.path.abspath(a.megatron)
    a.out = os.path.abspath(a.out)
    a.new_args = os.path.exists(os.path.join(a.megatron, "megatron/training/arguments.py"))
    src = a.args_src = open(os.path.join(a.megatron, "megatron/training/arguments.py" if a.new_args else "megatron/arguments.py")).read()
    a.mcore_flag = "--use-mcore-models" in src
    block = open(os.path.join(a.megatron, "megatron/core/transformer/transformer_block.py")).read()
    a.stub_te = "\nfrom megatron.core.transformer.custom_layers.transformer_engine import" in block
    # NullTokenizer: up to core_v0.17 `--vocab-size N` means N ids + an end-of-document token (N + 1);
    # from core_v0.18 (commit c9dfe34798) it means N tokens, the last being end-of-document.
    null = os.path.join(a.megatron, "megatron/core/tokenizers/text/libraries/null_tokenizer.py")
    a.null_vocab_is_total = os.path.exists(null) and "self._vocab_size - 1" in open(null).read()
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    spawn_and_list(rank_main, a)


if __name__ == "__main__":
    sys.exit(main())
