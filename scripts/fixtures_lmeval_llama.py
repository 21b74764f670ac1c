#!/usr/bin/env python3
"""lm-eval `--model hf` on a tiny Llama-style model with a SentencePiece tokenizer (issue 14: lm-eval's BOS rules).

Writes:
  Tests/Fixtures/models/llama-tiny-sp/   config.json + model.safetensors: a seeded random LlamaForCausalLM (vocab 1200,
                                         hidden 32, 2 layers, 4 heads / 2 kv heads, 128 positions, untied head), and the
                                         tokenizer transformers 5 saves for the SentencePiece BPE model of
                                         Tests/Fixtures/tokenizers/kinds/sp_bpe (tokenizer.json: Metaspace + byte
                                         fallback + a TemplateProcessing that adds <s>; tokenizer_config.json;
                                         tokenizer.model, the sentencepiece file itself, as Llama exports ship it).
  Tests/Fixtures/lmeval/llama_<task>_<k>shot.json  lm-eval's results on it (same layout as scripts/fixtures_lmeval.py),
                                         for lambada_openai (0, 1 shots), piqa (0, 1), lambada_openai_gen (0) and
                                         tinyshakespeare (loglikelihood_rolling, 0): lm-eval prepends BOS to every
                                         context (HFLM.tok_encode with the tokenizer's add_special_tokens default) and
                                         conditions empty contexts on BOS (prefix_token_id).
Run: /work/venv-lmeval/bin/python scripts/fixtures_lmeval_llama.py   (after scripts/fixtures_tokenizers_kinds.py)
"""
import json, shutil, sys, tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_lmeval as F  # noqa: E402  (sets the HF offline environment)

TASKS = {"lambada_openai": [0, 1], "piqa": [0, 1], "lambada_openai_gen": [0], "tinyshakespeare": [0]}


def build(dir: Path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    kinds = F.REPO / "Tests/Fixtures/tokenizers/kinds"
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(kinds / "hf_llama2" / f, dir / f)
    shutil.copy(kinds / "sp_bpe" / "tokenizer.model", dir / "tokenizer.model")
    vocab = len(json.load(open(dir / "tokenizer.json"))["model"]["vocab"])
    torch.manual_seed(11)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
                      bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, torch_dtype="float32")
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.3)
    model.save_pretrained(dir, safe_serialization=True)


def main():
    from lm_eval.tasks import TaskManager
    out_model = F.REPO / "Tests/Fixtures/models/llama-tiny-sp"
    out_lmeval = F.REPO / "Tests/Fixtures/lmeval"
    if out_model.exists():
        shutil.rmtree(out_model)
    out_model.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mdir = tmp / "model"; mdir.mkdir()
        build(mdir)
        for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "tokenizer.model"]:
            shutil.copy(mdir / f, out_model / f)
        tdir = tmp / "tasks"; tdir.mkdir()
        F.copy_task_helpers(tdir)
        ddir = tmp / "data"; ddir.mkdir()
        for task in TASKS:
            spec = F.TASKS[task]
            data = F.subset(task, spec["files"], ddir)
            (tdir / f"fx_{task}.yaml").write_text(
                f"task: fx_{task}\ndataset_path: json\ndataset_name: null\n"
                f"dataset_kwargs:\n  data_files:\n    {spec['split']}: {data}\n" + spec["yaml"])
        tm = TaskManager(include_path=str(tdir))
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(mdir)
        ids = tok("Hello world").input_ids
        assert ids[0] == tok.bos_token_id == 1, ids   # the BOS lm-eval relies on
        for task, shots in TASKS.items():
            F.evaluate_task(task, mdir, tm, out_lmeval, prefix="llama_", shots=shots)


if __name__ == "__main__":
    main()
