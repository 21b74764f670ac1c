#!/usr/bin/env python3
"""Write the pickles Turing's PickleTests read for megatron-core's safe globals.

Megatron-LM (`megatron/core/safe_globals.py`, SAFE_GLOBALS) declares these safe to unpickle in its
checkpoints: SimpleNamespace, pathlib.PosixPath, numpy _reconstruct/ndarray/dtype, argparse.Namespace,
its enums (ModelType, AttnBackend, CudaGraphScope, RerunDiagnostic, RerunMode, RerunState),
OptimizerConfig, io.BytesIO, signal.Signals, torch._C.Generator. This script pickles an args
Namespace holding one of each, with CPython's own pickle (protocols 2 and 4), so the Swift tests
compare against what Python really writes. The megatron classes are stand-ins registered under
megatron-core's module paths (pickle records only module + name + value / fields), so megatron-core
itself is not needed. With torch importable it also writes `megatron_safe.pt` (torch.save of
{'args': ..., 'rng_state': [{'torch_rng_state': ..., 'generator': torch.Generator}]}).

    python3 scripts/fixtures_pickles.py [--out Tests/Fixtures/pickles]
"""
import argparse
import dataclasses
import enum
import io
import os
import pathlib
import pickle
import signal
import sys
import types

import numpy as np


def module(name):
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        n = ".".join(parts[:i])
        sys.modules.setdefault(n, types.ModuleType(n))
    return sys.modules[name]


def register(cls, mod):
    cls.__module__ = mod
    cls.__qualname__ = cls.__name__
    setattr(module(mod), cls.__name__, cls)
    return cls


class ModelType(enum.Enum):
    encoder_or_decoder = 1


class RerunMode(str, enum.Enum):
    DISABLED = "disabled"
    VALIDATE_RESULTS = "validate_results"


class RerunState(enum.Enum):
    NOT_RUNNING_YET = 0
    INITIAL_RUN = 1


class AttnBackend(enum.Enum):
    flash = 1
    auto = 5


class CudaGraphScope(enum.Enum):
    full_iteration = 1
    attn = 2


@dataclasses.dataclass
class OptimizerConfig:
    optimizer: str = "adam"
    lr: float = 3e-4
    use_distributed_optimizer: bool = True


register(ModelType, "megatron.core.enums")
register(RerunMode, "megatron.core.rerun_state_machine")
register(RerunState, "megatron.core.rerun_state_machine")
register(AttnBackend, "megatron.core.transformer.enums")
register(CudaGraphScope, "megatron.core.transformer.enums")
register(OptimizerConfig, "megatron.core.optimizer.optimizer_config")


def args():
    np.random.seed(3)
    return argparse.Namespace(
        exit_signal=signal.SIGTERM, save=pathlib.PosixPath("/ckpt/run1"), rel=pathlib.PosixPath("runs/a"),
        model_type=ModelType.encoder_or_decoder, rerun_mode=RerunMode.DISABLED, rerun_state=RerunState.INITIAL_RUN,
        attention_backend=AttnBackend.auto, cuda_graph_scope=[CudaGraphScope.attn], buf=io.BytesIO(b"abc"),
        opt=OptimizerConfig(), rng=np.random.get_state(), signals=[signal.SIGUSR2, signal.Signals(2)],
        sn=types.SimpleNamespace(k=1), hidden_size=64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests/Fixtures/pickles"))
    o = ap.parse_args()
    os.makedirs(o.out, exist_ok=True)
    for p in (2, 4):
        with open(os.path.join(o.out, f"megatron_safe_p{p}.pkl"), "wb") as f:
            pickle.dump(args(), f, protocol=p)
    try:
        import torch
    except ImportError:
        print("torch not importable: megatron_safe.pt not written")
        return
    g = torch.Generator()
    g.manual_seed(5)
    torch.save({"args": args(), "rng_state": [{"torch_rng_state": torch.get_rng_state()[:16], "generator": g}],
                "extra": {"decoder.layers.0.self_attention.core_attention._extra_state": io.BytesIO(b"te")}},
               os.path.join(o.out, "megatron_safe.pt"))


if __name__ == "__main__":
    main()
