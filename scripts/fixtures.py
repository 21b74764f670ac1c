#!/usr/bin/env python3
"""Generate tiny HF reference-model fixtures for Turing's Swift tests.

Writes (deterministically, seeded) into Tests/Fixtures/models/:

  gpt2-tiny-rand/        GPT2LMHeadModel, gelu_new, tied embeddings
  gpt2-tiny-erf-untied/  GPT2LMHeadModel, exact-erf gelu, untied lm_head
  llama-tiny-rand/       LlamaForCausalLM, GQA (4 q heads / 2 kv heads), untied

each containing config.json, generation_config.json, model.safetensors (HF layout,
save_pretrained(safe_serialization=True)), expected_logits.safetensors (float32
reference logits, tensors logits_<i> [len_i, 512] and ids_<i> [len_i] int64) and
expected.json (prompts, greedy generation, lm-eval style loglikelihoods and a
rolling loglikelihood), plus Tests/Fixtures/models/README.md.

How to run (from the repo root; takes ~10 s on 1 core):

    HF_HUB_OFFLINE=1 /path/to/venv/bin/python scripts/fixtures.py

Requirements: torch, transformers (5.x), safetensors, lm-eval (only for
lm_eval.utils.get_rolling_token_windows / make_disjoint_window). No network
access to the HF hub is needed: models are built from configs, never downloaded.

If those packages are not importable, the script bootstraps a venv OUTSIDE the
repo (default ~/.cache/turing-fixtures-venv, override with
$TURING_FIXTURES_VENV), pip-installs `torch transformers safetensors lm-eval`
into it (preferring a local wheel /opt/wheels/torch-*.whl for torch when
present) and re-executes itself with that interpreter. Pass --no-bootstrap to
fail instead.

Options: --out DIR (default <repo>/Tests/Fixtures/models), --check (regenerate
into a temp dir and compare logits against the committed fixtures).

Weights are seeded random, deliberately NOT the default HF init (which is
near-trivial: std 0.02, LayerNorm gains 1, biases 0):
  * every matrix / embedding ~ N(0, 0.2)
  * LayerNorm / RMSNorm gains ~ 1 + N(0, 0.1)
  * every bias ~ N(0, 0.1)
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys

REQUIRED = ("torch", "transformers", "safetensors", "lm_eval")


def _bootstrap(argv: list[str]) -> None:
    missing = []
    for mod in REQUIRED:
        try:
            __import__(mod)
        except Exception:  # noqa: BLE001
            missing.append(mod)
    if not missing:
        return
    if "--no-bootstrap" in argv or os.environ.get("TURING_FIXTURES_BOOTSTRAPPED"):
        sys.exit(f"fixtures.py: missing python packages: {missing}")
    venv = os.environ.get(
        "TURING_FIXTURES_VENV", os.path.expanduser("~/.cache/turing-fixtures-venv"))
    py = os.path.join(venv, "bin", "python")
    print(f"fixtures.py: missing {missing}; bootstrapping venv at {venv}", file=sys.stderr)
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    wheels = sorted(glob.glob("/opt/wheels/torch-*.whl"))
    torch_spec = [wheels[-1]] if wheels else [
        "torch", "--index-url", "https://download.pytorch.org/whl/cpu",
        "--extra-index-url", "https://pypi.org/simple"]
    subprocess.check_call([py, "-m", "pip", "install", "-q", *torch_spec])
    subprocess.check_call([py, "-m", "pip", "install", "-q",
                           "transformers", "safetensors", "lm-eval"])
    env = dict(os.environ, TURING_FIXTURES_BOOTSTRAPPED="1")
    os.execve(py, [py, os.path.abspath(__file__), *argv], env)


_bootstrap(sys.argv[1:])

import math  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    GenerationConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM)

import lm_eval  # noqa: E402
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512
MAX_LEN = 64
PROMPT_LENS = (1, 7, 33)
GREEDY_PROMPT = 1          # index into prompts (the length-7 prompt)
GREEDY_NEW = 12
ROLLING_LEN = 100
SEED_DATA = 1234           # prompts / loglik pairs / rolling sequence: shared by all models


def gpt2_config(activation: str, tied: bool) -> GPT2Config:
    return GPT2Config(
        vocab_size=VOCAB, n_positions=MAX_LEN, n_embd=32, n_layer=2, n_head=4,
        n_inner=None, activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=tied,
        bos_token_id=0, eos_token_id=0, scale_attn_weights=True,
        scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False)


def llama_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=88, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        max_position_embeddings=MAX_LEN, rms_norm_eps=1e-5, rope_theta=10000.0,
        hidden_act="silu", tie_word_embeddings=False, attention_bias=False,
        mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=None)


MODELS = [
    # name, model class, config factory, weight seed
    ("gpt2-tiny-rand", GPT2LMHeadModel, lambda: gpt2_config("gelu_new", True), 1001),
    ("gpt2-tiny-erf-untied", GPT2LMHeadModel, lambda: gpt2_config("gelu", False), 1002),
    ("llama-tiny-rand", LlamaForCausalLM, llama_config, 1003),
]


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial seeded weights. named_parameters() de-duplicates tied tensors,
    and the iteration order is the module definition order (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            is_norm = any(k in name for k in ("ln_", "norm"))
            if leaf == "bias":
                val = torch.randn(p.shape, generator=g) * 0.1
            elif is_norm:
                val = 1.0 + torch.randn(p.shape, generator=g) * 0.1
            else:
                val = torch.randn(p.shape, generator=g) * 0.2
            p.copy_(val.to(p.dtype))


def make_data(eos: int):
    g = torch.Generator().manual_seed(SEED_DATA)
    prompts = [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in PROMPT_LENS]
    # (context_len, continuation_len); one pair's continuation is replaced by the
    # model's own greedy tokens so is_greedy=True is exercised.
    shapes = [(5, 1), (10, 3), (20, 5), (8, 4)]
    pairs = [(torch.randint(0, VOCAB, (c,), generator=g).tolist(),
              torch.randint(0, VOCAB, (k,), generator=g).tolist()) for c, k in shapes]
    rolling = torch.randint(0, VOCAB, (ROLLING_LEN,), generator=g).tolist()
    return prompts, pairs, rolling


@torch.inference_mode()
def logits_of(model, ids: list[int]) -> torch.Tensor:
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float()  # [len, V] float32


def score(model, context: list[int], continuation: list[int], max_length: int):
    """lm-eval HFLM._loglikelihood_tokens semantics for one (context, continuation)."""
    whole = (context + continuation)[-(max_length + 1):][:-1]
    logits = logits_of(model, whole)[-len(continuation):]          # float32
    logp = torch.log_softmax(logits.double(), dim=-1)               # float64
    cont = torch.tensor(continuation)
    tok_lp = logp.gather(1, cont[:, None])[:, 0]
    greedy = bool((logp.argmax(-1) == cont).all())
    return {
        "context_ids": context,
        "continuation_ids": continuation,
        "input_ids": whole,
        "logprob": float(tok_lp.sum()),
        "is_greedy": greedy,
        "token_logprobs": [float(x) for x in tok_lp],
        "argmax_ids": [int(x) for x in logp.argmax(-1)],
    }


@torch.inference_mode()
def greedy_manual(model, prompt: list[int], n: int, margins: list | None = None) -> list[int]:
    ids = list(prompt)
    for _ in range(n):
        last = logits_of(model, ids)[-1]
        if margins is not None:
            top2 = last.topk(2).values
            margins.append(float(top2[0] - top2[1]))
        ids.append(int(last.argmax()))
    return ids[len(prompt):]


@torch.inference_mode()
def greedy_generate(model, prompt: list[int], n: int) -> list[int]:
    gc = GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=n,
                          eos_token_id=None, pad_token_id=0, bos_token_id=None,
                          num_beams=1, temperature=None, top_p=None, top_k=None)
    inp = torch.tensor([prompt], dtype=torch.long)
    out = model.generate(inp, attention_mask=torch.ones_like(inp), generation_config=gc)
    return out[0, len(prompt):].tolist()


def build(out_root: str, name: str, cls, cfg_fn, seed: int) -> None:
    d = os.path.join(out_root, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    torch.manual_seed(seed)
    cfg = cfg_fn()
    model = cls(cfg).to(torch.float32).eval()
    randomize(model, seed)
    model.save_pretrained(d, safe_serialization=True)
    if isinstance(cfg, LlamaConfig):
        # transformers 5 nests rope_theta under rope_parameters; also expose the
        # classic top-level key for simple readers (transformers reloads it fine).
        p = os.path.join(d, "config.json")
        j = json.load(open(p))
        j["rope_theta"] = j.get("rope_parameters", {}).get("rope_theta", 10000.0)
        with open(p, "w") as f:
            json.dump(j, f, indent=2, sort_keys=True)
            f.write("\n")

    # Everything below uses the model as reloaded from disk, eager attention, fp32.
    model = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
    assert model.config._attn_implementation == "eager"
    tied = model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert tied == bool(cfg.tie_word_embeddings), (name, tied)
    eos = int(model.config.eos_token_id)

    prompts, pairs, rolling = make_data(eos)
    tensors = {}
    for i, ids in enumerate(prompts):
        tensors[f"ids_{i}"] = torch.tensor(ids, dtype=torch.int64)
        tensors[f"logits_{i}"] = logits_of(model, ids).contiguous()
    save_file(tensors, os.path.join(d, "expected_logits.safetensors"),
              metadata={"format": "pt"})  # one key: safetensors metadata order is not stable

    gprompt = prompts[GREEDY_PROMPT]
    gen = greedy_generate(model, gprompt, GREEDY_NEW)
    margins: list[float] = []
    man = greedy_manual(model, gprompt, GREEDY_NEW, margins)
    assert gen == man, (name, gen, man)

    # Make pair 3 greedy: continuation = model's own argmax continuation.
    ctx3 = pairs[3][0]
    pairs[3] = (ctx3, greedy_manual(model, ctx3, len(pairs[3][1])))
    lls = [score(model, c, k, MAX_LEN) for c, k in pairs]
    assert lls[3]["is_greedy"]

    windows = [make_disjoint_window(w) for w in
               get_rolling_token_windows(token_list=rolling, prefix_token=eos,
                                         max_seq_len=MAX_LEN, context_len=1)]
    wres = [score(model, c, k, MAX_LEN) for c, k in windows]
    assert sum(len(w["continuation_ids"]) for w in wres) == ROLLING_LEN

    expected = {
        "model": name,
        "model_class": cls.__name__,
        "generator": "scripts/fixtures.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "lm_eval": getattr(lm_eval, "__version__", "unknown")},
        "weight_seed": seed,
        "data_seed": SEED_DATA,
        "attn_implementation": "eager",
        "dtype": "float32",
        "eos_token_id": eos,
        "logits_file": "expected_logits.safetensors",
        "prompts": [{"ids": p, "logits_tensor": f"logits_{i}", "ids_tensor": f"ids_{i}",
                     "argmax_last": int(tensors[f"logits_{i}"][-1].argmax())}
                    for i, p in enumerate(prompts)],
        "greedy": {"prompt_index": GREEDY_PROMPT, "prompt_ids": gprompt,
                   "max_new_tokens": GREEDY_NEW, "eos_stopping": False,
                   "generated_ids": gen,
                   "top2_logit_margins": margins},
        "loglikelihood": {
            "max_length": MAX_LEN,
            "note": ("input_ids = (context+continuation)[-(max_length+1):][:-1]; score the "
                     "last len(continuation) positions; log_softmax in float64 of float32 "
                     "logits; logprob = sum(token_logprobs); is_greedy = argmax==cont for all"),
            "pairs": lls,
        },
        "loglikelihood_rolling": {
            "token_ids": rolling,
            "prefix_token": eos,
            "max_seq_len": MAX_LEN,
            "context_len": 1,
            "note": ("windows = map(make_disjoint_window, get_rolling_token_windows(tokens, "
                     "prefix_token=eos, max_seq_len=64, context_len=1)); each window scored "
                     "like a loglikelihood pair; total = sum of window logprobs"),
            "windows": wres,
            "total_logprob": float(math.fsum(w["logprob"] for w in wres)),
        },
    }
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"{name}: greedy={gen} rolling_total={expected['loglikelihood_rolling']['total_logprob']:.6f}"
          f" windows={[len(w['input_ids']) for w in wres]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "Tests", "Fixtures", "models"))
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with --out")
    ap.add_argument("--no-bootstrap", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.logging.set_verbosity_error()

    out = tempfile.mkdtemp(prefix="turing-fixtures-") if args.check else args.out
    os.makedirs(out, exist_ok=True)
    for name, cls, cfg_fn, seed in MODELS:
        build(out, name, cls, cfg_fn, seed)
    if args.check:
        ok = True
        for name, *_ in MODELS:
            a = load_file(os.path.join(out, name, "expected_logits.safetensors"))
            b = load_file(os.path.join(args.out, name, "expected_logits.safetensors"))
            for k in sorted(a):
                diff = (a[k].double() - b[k].double()).abs().max().item()
                print(f"{name}/{k}: max|diff|={diff:.3g}")
                ok &= diff <= 1e-5
        shutil.rmtree(out)
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
