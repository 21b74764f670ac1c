#!/usr/bin/env python3
"""`turing eval` against `lm_eval.simple_evaluate(model="hf")`: wall time and metrics on the same model and
the same N-document subsets of LAMBADA (openai), PiQA and HellaSwag (the first N of klosax's 10042 documents, read
as Turing reads them; see fixtures_lmeval.py), 0-shot, in one run.

Models: `tiny` = Tests/Fixtures/models/gpt2-tiny-tok (vocab 5000, tokenizer from ../shared/data/megatron_indexed);
`124m` = a seeded random GPT-2 124M shape (1024 positions) with the GPT-2 tokenizer from ../shared/data/gpt2_tokenizer.
Wall times include loading the model in both. lm-eval runs float32 on CPU with batch size 16 (the
compute issue's yardstick; `--lmeval-batch 1` is its default); Turing runs its release build (`swift build -c release` first).

Run: HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHON_WITH_LM_EVAL scripts/bench_eval.py [--docs 200] [--models tiny,124m] [--lmeval-batch 16]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_lmeval as fx  # noqa: E402

REPO = fx.REPO
SHARED = fx.SHARED
TASKS = ["lambada_openai", "piqa", "hellaswag"]


def make_model(kind: str, dir: Path) -> tuple[Path, Path]:
    dir.mkdir(parents=True)
    if kind == "tiny":
        for f in ["config.json", "model.safetensors"]:
            shutil.copy(REPO / "Tests/Fixtures/models/gpt2-tiny-tok" / f, dir / f)
        vocab, merges = SHARED / "megatron_indexed/gpt2-tiny-vocab.json", SHARED / "megatron_indexed/gpt2-tiny-merges.txt"
    else:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config()).save_pretrained(dir, safe_serialization=True)
        vocab, merges = SHARED / "gpt2_tokenizer/gpt2-vocab.json", SHARED / "gpt2_tokenizer/gpt2-merges.txt"
    shutil.copy(vocab, dir / "vocab.json")
    shutil.copy(merges, dir / "merges.txt")
    return vocab, merges


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--models", default="tiny,124m")
    ap.add_argument("--lmeval-batch", type=int, default=16, help="lm-eval batch size (16: the compute issue's yardstick)")
    args = ap.parse_args()
    import lm_eval
    from lm_eval.tasks import TaskManager

    turing = REPO / ".build/release/turing"
    assert turing.exists(), "build Turing first: swift build -c release"
    fx.SUBSET = args.docs
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ldata, tdata, tdir = tmp / "ldata", tmp / "tdata", tmp / "tasks"
        for d in (ldata, tdata, tdir):
            d.mkdir()
        fx.copy_task_helpers(tdir)
        for task in TASKS:
            spec = fx.TASKS[task]
            data = fx.subset(task, spec["files"], ldata)
            (tdir / f"fx_{task}.yaml").write_text(
                f"task: fx_{task}\ndataset_path: json\ndataset_name: null\n"
                f"dataset_kwargs:\n  data_files:\n    {spec['split']}: {data}\n" + spec["yaml"])
        # Turing reads the raw files (labels from the .lst) under the fixture task YAMLs' names
        for src, dst in [("lambada/lambada_test.jsonl", "lambada_openai.jsonl"), ("piqa/valid.jsonl", "piqa.jsonl"),
                         ("piqa/valid-labels.lst", "piqa-labels.lst")]:
            lines = (SHARED / src).read_text(encoding="utf-8").split("\n")[: args.docs]
            (tdata / dst).write_text("\n".join(lines) + "\n", encoding="utf-8")
        # a copy, not a symbolic link: turing refuses data files whose links lead out of their data folder
        shutil.copy(SHARED / "hellaswag/hellaswag_val_full.txt.bz2", tdata / "hellaswag_val_full.txt.bz2")
        tm = TaskManager(include_path=str(tdir))
        for kind in args.models.split(","):
            mdir = tmp / f"model-{kind}"
            vocab, merges = make_model(kind, mdir)
            t0 = time.time()
            res = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={mdir},dtype=float32", device="cpu",
                                          tasks=[f"fx_{t}" for t in TASKS], num_fewshot=0, limit=args.docs,
                                          batch_size=args.lmeval_batch, task_manager=tm)
            t_lm = time.time() - t0
            out = tmp / f"turing-{kind}"
            t0 = time.time()
            subprocess.run([str(turing), "eval", "--checkpoint", str(mdir), "--vocab-file", str(vocab), "--merge-file", str(merges),
                            "--tasks", ",".join(TASKS), "--num-fewshot", "0", "--limit", str(args.docs),
                            "--data-dir", str(tdata), "--tasks-dir", str(REPO / "Tests/Fixtures/lmeval/tasks"),
                            # --no-cache: the models are seeded, so a second run would reuse results/.cache
                            "--output", str(out), "--no-cache"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t_tu = time.time() - t0
            tres = json.loads((out / "results.json").read_text())["results"]
            for task in TASKS:
                lm = res["results"][f"fx_{task}"]
                tu = tres[task]
                for k in sorted(k for k in tu if k.endswith(",none") and "stderr" not in k):
                    rows.append((kind, task, k.split(",")[0], lm[k], tu[k]))
            rows.append((kind, "wall seconds", "", t_lm, t_tu))
    print(f"| model | task | metric | lm-eval 0.4.13 (hf, f32, batch {args.lmeval_batch}) | Turing | ")
    print("|---|---|---|---:|---:|")
    for kind, task, m, a, b in rows:
        print(f"| {kind} | {task} | {m} | {a:.6g} | {b:.6g} |" + (f" {a / b:.2f}x" if task == "wall seconds" else ""))


if __name__ == "__main__":
    main()
