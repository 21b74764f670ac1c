#!/usr/bin/env python3
"""Expected outputs of lm-evaluation-harness for Turing's `eval` fidelity tests.

Writes (deterministically) into the repository:

  Tests/Fixtures/models/gpt2-tiny-tok/   config.json + model.safetensors: a seeded random GPT2LMHeadModel
                                         (vocab 5000, n_embd 32, 2 layers, 256 positions) whose tokenizer is
                                         ../shared/data/megatron_indexed/gpt2-tiny-{vocab.json,merges.txt}
                                         (never copied into the repository: tests pass --vocab-file/--merge-file)
  Tests/Fixtures/lmeval/pyrandom.json    CPython random.Random outputs (getrandbits, sample, randrange, random, choices)
  Tests/Fixtures/lmeval/functions.json   lm-eval's helpers on edge cases: hellaswag preprocess/process_docs, count_words,
                                         count_bytes, exact_match options, the generate_until stop-string cut
  Tests/Fixtures/lmeval/two_streams.txt.bz2  two concatenated bzip2 streams (Python's bz2) for BZip2Tests
  Tests/Fixtures/lmeval/<task>_<k>shot.json
                                         lm-eval's metrics (with stderr) and, per document, the contexts and
                                         continuations it scored, the log-likelihoods, is_greedy and per-doc metrics

How: the model is saved with the tokenizer into a temp dir; each task is a custom lm-eval YAML replicating the
built-in task's prompt (lambada_openai, piqa, winogrande, boolq, wic, anli_r1, race, hellaswag) with `dataset_path: json`
pointing at the first SUBSET lines of the shared data file (labels from .lst files merged in, string labels mapped
to SuperGLUE/ANLI integers, RACE rows grouped per article as EleutherAI/race has them), run through `lm_eval.simple_evaluate`
with `model="hf"`, float32, limit LIMIT, num_fewshot 0/1/3, log_samples. The Swift tests build the same subsets
from ../shared/data (the first SUBSET lines) and must reproduce every prompt, decision and metric.

Three tasks go beyond lm-eval's built-in definitions, each over a local json built from the shared file:
  hellaswag           all 10042 documents of klosax's hellaswag_val_full.txt.bz2 read into HF Rowan/hellaswag's
                      fields (activity_label = text before the first ": ", ctx_a = the rest, ctx_b = "", endings,
                      label), then lm-eval's own hellaswag/utils.py process_docs (copied unchanged) and hellaswag.yaml's
                      prompt; validation only, so shots come from validation (self excluded).
  lambada_openai_gen  generate_until over the LAMBADA subset: lambada's context, until ["\n", ".", ","], max_gen_toks 8,
                      greedy, exact_match (ignore_case, ignore_punctuation) against " " + last word.
  demo_facts_gen      generate_until on the trained demo model (checkpoints/demo, exported to an HF GPT-2 folder by
                      `demo_to_hf`) over tasks/data/demo_facts.jsonl: until "\n", max_gen_toks 8, exact_match with
                      regexes_to_ignore [" "] and ignore_punctuation against the right choice (the model gets most right).
  tinyshakespeare     loglikelihood_rolling over the blank-line-separated speeches of the first 300 lines of
                      tinyshakespeare/input.txt (all of them, 0-shot): word_perplexity, byte_perplexity, bits_per_byte.

Run: HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 /work/venv/bin/python scripts/fixtures_lmeval.py [TASK...]
(about 1 minute for all tasks; lm-eval 0.4.13, torch, transformers; the model and outputs are deterministic)
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TURING_SHARED_DATA", REPO.parent / "shared" / "data"))
TOK = SHARED / "megatron_indexed"
SUBSET = 60
LIMIT = 20
SHOTS = [0, 1, 3]

# task -> (source files relative to SHARED, lm-eval YAML body after dataset_kwargs; optional kind: ll (default),
# gen or rolling; subset: source lines; limit; shots)
TASKS = {
    "lambada_openai": dict(split="test", files=["lambada/lambada_test.jsonl"], yaml="""
output_type: loglikelihood
test_split: test
doc_to_text: "{{text.split(' ')[:-1]|join(' ')}}"
doc_to_target: "{{' '+text.split(' ')[-1]}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""),
    "piqa": dict(split="validation", files=["piqa/valid.jsonl", "piqa/valid-labels.lst"], yaml="""
output_type: multiple_choice
validation_split: validation
test_split: null
doc_to_text: "Question: {{goal}}\\nAnswer:"
doc_to_target: label
doc_to_choice: "{{[sol1, sol2]}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""),
    "winogrande": dict(split="validation", files=["winogrande/dev.jsonl"], yaml="""
output_type: multiple_choice
validation_split: validation
doc_to_text: !function preprocess_winogrande.doc_to_text
doc_to_target: !function preprocess_winogrande.doc_to_target
doc_to_choice: !function preprocess_winogrande.doc_to_choice
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""),
    "boolq": dict(split="validation", files=["boolq/val.jsonl"], yaml="""
output_type: multiple_choice
validation_split: validation
doc_to_text: "{{passage}}\\nQuestion: {{question}}?\\nAnswer:"
doc_to_target: label
doc_to_choice: ["no", "yes"]
metric_list:
  - metric: acc
"""),
    "wic": dict(split="validation", files=["wic/val.jsonl"], yaml="""
output_type: multiple_choice
validation_split: validation
doc_to_text: "Sentence 1: {{sentence1}}\\nSentence 2: {{sentence2}}\\nQuestion: Is the word '{{sentence1[start1:end1]}}' used in the same way in the two sentences above?\\nAnswer:"
doc_to_target: label
doc_to_choice: ['no', 'yes']
metric_list:
  - metric: acc
"""),
    "anli_r1": dict(split="test", files=["anli/R1/test.jsonl"], yaml="""
output_type: multiple_choice
test_split: test
doc_to_text: "{{context}}\\nQuestion: {{hypothesis}} True, False, or Neither?\\nAnswer:"
doc_to_target: "{{['True', 'Neither', 'False'][label]}}"
doc_to_choice:
  - "True"
  - "Neither"
  - "False"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""),
    "race": dict(split="test", files=["race/test/middle.jsonl"], yaml="""
output_type: multiple_choice
test_split: test
doc_to_text: !function preprocess_race.doc_to_text
doc_to_target: !function preprocess_race.doc_to_target
doc_to_choice: !function preprocess_race.doc_to_choice
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""),
}

TASKS["hellaswag"] = dict(split="validation", files=["hellaswag/hellaswag_val_full.txt.bz2"], yaml="""
output_type: multiple_choice
validation_split: validation
test_split: null
process_docs: !function hellaswag_utils.process_docs
doc_to_text: "{{query}}"
doc_to_target: "{{label}}"
doc_to_choice: "choices"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""")
TASKS["lambada_openai_gen"] = dict(split="test", files=["lambada/lambada_test.jsonl"], kind="gen", yaml="""
output_type: generate_until
test_split: test
doc_to_text: "{{text.split(' ')[:-1]|join(' ')}}"
doc_to_target: "{{' '+text.split(' ')[-1]}}"
generation_kwargs:
  until: ["\\n", ".", ","]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: true
""")
TASKS["tinyshakespeare"] = dict(split="test", files=["tinyshakespeare/input.txt"], kind="rolling", subset=300, limit=100,
                                shots=[0], yaml="""
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
  - metric: byte_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
  - metric: bits_per_byte
    aggregation: bits_per_byte
    higher_is_better: false
""")

TASKS["demo_facts_gen"] = dict(split="test", files=["demo_facts.jsonl"], root=REPO / "tasks/data", kind="gen", model="demo",
                               yaml="""
output_type: generate_until
test_split: test
doc_to_text: "{{query}}"
doc_to_target: gold
doc_to_choice: choices
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    regexes_to_ignore: [" "]
    ignore_punctuation: true
""")


def demo_to_hf(dir: Path):
    """checkpoints/demo (a Turing save: canonical names, PyTorch Linear [out, in]) as an HF GPT2LMHeadModel folder."""
    import torch
    from safetensors.torch import load_file
    from transformers import GPT2Config, GPT2LMHeadModel

    ckpt = REPO / "checkpoints/demo"
    it = (ckpt / "turing_latest.txt").read_text().strip()
    src = ckpt / (it if it.startswith("iter_") else f"iter_{int(it):07d}")
    c = json.loads((src / "turing_config.json").read_text())
    assert c["activation"] == "gelu_tanh" and c["norm"] == "layernorm" and c["tied_embeddings"], c
    w = load_file(src / "model.safetensors")
    cfg = GPT2Config(vocab_size=c["vocab_size"], n_positions=c["max_positions"], n_embd=c["hidden_size"],
                     n_layer=c["num_layers"], n_head=c["num_heads"], n_inner=c["ffn_size"],
                     layer_norm_epsilon=c["norm_epsilon"], activation_function="gelu_new",
                     bos_token_id=c["bos_token"], eos_token_id=c["eos_token"])
    sd = {"transformer.wte.weight": w["embedding.word.weight"], "transformer.wpe.weight": w["embedding.position.weight"],
          "transformer.ln_f.weight": w["final_norm.weight"], "transformer.ln_f.bias": w["final_norm.bias"]}
    for i in range(c["num_layers"]):
        p, h = f"layers.{i}.", f"transformer.h.{i}."
        sd[h + "attn.c_attn.weight"] = torch.cat([w[p + f"attn.{x}.weight"] for x in "qkv"], 0).t().contiguous()
        sd[h + "attn.c_attn.bias"] = torch.cat([w[p + f"attn.{x}.bias"] for x in "qkv"], 0)
        for hf, tu in [("attn.c_proj", "attn.out"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")]:
            sd[h + hf + ".weight"] = w[p + tu + ".weight"].t().contiguous()
            sd[h + hf + ".bias"] = w[p + tu + ".bias"]
        for hf, tu in [("ln_1", "norm1"), ("ln_2", "norm2")]:
            sd[h + hf + ".weight"] = w[p + tu + ".weight"]
            sd[h + hf + ".bias"] = w[p + tu + ".bias"]
    model = GPT2LMHeadModel(cfg).eval()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing), (missing, unexpected)
    model.tie_weights()
    model.save_pretrained(dir, safe_serialization=True)
    shutil.copy(ckpt / "vocab.json", dir / "vocab.json")
    shutil.copy(ckpt / "merges.txt", dir / "merges.txt")


def paragraphs(text: str) -> list[str]:
    """Turing's `paragraphs` format: runs of non-blank lines, joined by "\n"."""
    out, cur = [], []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for l in lines:
        l = l[:-1] if l.endswith("\r") else l
        if l.strip(" \t") == "":
            if cur:
                out.append("\n".join(cur))
            cur = []
        else:
            cur.append(l)
    if cur:
        out.append("\n".join(cur))
    return out


def hellaswag_docs(path: Path) -> list[dict]:
    """Turing's `hellaswag_text` format: klosax's 6 lines per document into HF Rowan/hellaswag's fields."""
    import bz2
    lines = bz2.decompress(path.read_bytes()).decode("utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()
    assert len(lines) % 6 == 0, len(lines)
    docs = []
    for i in range(0, len(lines), 6):
        label, ctx = lines[i].split(": ", 1)
        docs.append({"activity_label": label, "ctx_a": ctx, "ctx_b": "", "ctx": ctx,
                     "endings": lines[i + 2:i + 6], "label": str(int(lines[i + 1]))})
    return docs


WINOGRANDE_PY = '''
def doc_to_text(doc):
    answer_to_num = {"1": 0, "2": 1}
    return answer_to_num[doc["answer"]]


def doc_to_target(doc):
    idx = doc["sentence"].index("_") + 1
    return doc["sentence"][idx:].strip()


def doc_to_choice(doc):
    idx = doc["sentence"].index("_")
    options = [doc["option1"], doc["option2"]]
    return [doc["sentence"][:idx] + opt for opt in options]
'''


def subset(task: str, files: list[str], out: Path) -> Path:
    n = TASKS[task].get("subset", SUBSET)
    if task == "hellaswag":
        docs = hellaswag_docs(SHARED / files[0])
    elif task == "tinyshakespeare":
        docs = [{"text": p} for p in paragraphs("\n".join((SHARED / files[0]).read_text(encoding="utf-8").split("\n")[:n]) + "\n")]
    else:
        root = TASKS[task].get("root", SHARED)
        docs = [json.loads(l) for l in (root / files[0]).read_text(encoding="utf-8").split("\n")[:n] if l.strip()]
    if len(files) > 1:
        labels = (SHARED / files[1]).read_text().split("\n")[:SUBSET]
        for d, l in zip(docs, labels):
            d["label"] = int(l)
    if task == "boolq":
        for d in docs:  # SuperGLUE's label is 0/1; the shared file has a boolean label
            d["label"] = int(bool(d["label"]))
    if task == "wic":
        for d in docs:
            d["label"] = {"false": 0, "true": 1}[d["label"]]
    if task == "anli_r1":  # original ANLI files: premise in "context", label e/n/c (HF facebook/anli: 0/1/2)
        for d in docs:
            d["label"] = {"e": 0, "n": 1, "c": 2}[d["label"]]
    if task == "race":  # EleutherAI/race shape: one doc per article, problems as a Python-literal string
        grouped = []
        for d in docs:
            prob = {"question": d["question"], "options": d["options"], "answer": d["answer"]}
            if grouped and grouped[-1]["article"] == d["article"]:
                grouped[-1]["_p"].append(prob)
            else:
                grouped.append({"article": d["article"], "_p": [prob]})
        docs = [{"article": g["article"], "problems": repr(g["_p"])} for g in grouped]
    p = out / f"{task}.jsonl"
    p.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return p


def build_model(dir: Path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(5)
    cfg = GPT2Config(vocab_size=5000, n_positions=256, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=4999, eos_token_id=4999, activation_function="gelu_new")
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
            elif "ln" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.2)
    model.save_pretrained(dir, safe_serialization=True)
    shutil.copy(TOK / "gpt2-tiny-vocab.json", dir / "vocab.json")
    shutil.copy(TOK / "gpt2-tiny-merges.txt", dir / "merges.txt")
    # vocab.json + merges.txt alone: AutoTokenizer makes GPT2Tokenizer with <|endoftext|> (4999) as BOS/EOS


def pyrandom_fixture(path: Path):
    """CPython random.Random outputs for PyRandomTests (seeded, one generator consumed in sequence)."""
    import random
    out = {}
    for seed in [0, 1, 1234, 42, 2**40 + 7]:
        r = random.Random(seed)
        out[str(seed)] = {
            "u32": [r.getrandbits(32) for _ in range(5)],
            "sample_10_3": r.sample(range(10), 3),
            "sample_60_4": r.sample(range(60), 4),
            "sample_1000_8": r.sample(range(1000), 8),
            "sample_5_5": r.sample(range(5), 5),
            "randbelow_7": [r.randrange(7) for _ in range(5)],
            "random": [r.random() for _ in range(3)],
            "choices_20": [r.choices(range(20), k=6)],
        }
    path.write_text(json.dumps(out, indent=1))


def functions_fixture(path: Path):
    """lm-eval's own helpers on edge cases, for FunctionFixtureTests: hellaswag preprocess and process_docs,
    count_words / count_bytes, exact_match with its options, and the generate_until text cut."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.utils import postprocess_generated_text
    from lm_eval.tasks.hellaswag.utils import preprocess, process_docs
    import datasets

    texts = ["  Roof: a man [title] climbs.  ", "[header] How to [step] do it [substeps] now", "a [b [c] d] e", "x [unclosed",
             "a [x\ny] b", "one  two   three    four", " [title] [title]x", "Ünïcode [ß] ÉTÉ", "tabs\tand\u00a0nbsp ", ""]
    docs = [{"activity_label": "Roof shingle removal", "ctx_a": "A man is on a roof.", "ctx_b": "he PULLS up McDonald's.",
             "endings": ["is [title] ok.", "  two  spaces", "[x] gone", "Ünïcode"], "label": "2"},
            {"activity_label": "Family Life", "ctx_a": "Ask the toddler [step] what.", "ctx_b": "",
             "endings": ["a", "b", "c", "d"], "label": "0"},
            {"activity_label": "X", "ctx_a": "", "ctx_b": "éCOLE élan", "endings": ["a", "b", "c", "d"], "label": "3"}]
    processed = list(process_docs(datasets.Dataset.from_list(docs)))
    words = ["", " ", "a", " a", "a ", "a  b\n\nc", "\u00a0x\u2003y\x1cz", "First Citizen:\nBefore we proceed"]
    em_cases = []
    for pred, ref, opts in [(" Blue.", "blue", {}), (" Blue.", " blue", {"ignore_case": True, "ignore_punctuation": True}),
                            (" blue .", "blue", {"regexes_to_ignore": [" "], "ignore_punctuation": True}),
                            ("It's", "its", {"ignore_punctuation": True}), ("ÉTÉ", "été", {"ignore_case": True}),
                            ("a-b", "ab", {}), ("x", "x", {}), ("x ", "x", {})]:
        em_cases.append({"prediction": pred, "reference": ref, "options": opts,
                         "exact_match": float(exact_match_hf_evaluate(predictions=[pred], references=[ref], **opts)["exact_match"])})
    cuts = []
    for text, stops in [("abc. def\nghi", ["\n", "."]), ("xaby", ["b", "ab"]), ("xaby", ["ab", "b"]), ("no stop", ["\n"]),
                        ("a\r\nb", ["\n"]), ("end<|endoftext|>more", ["\n", "<|endoftext|>"])]:
        cuts.append({"text": text, "stops": stops, "result": postprocess_generated_text(text, stops, None)})
    out = {"hellaswag_preprocess": [{"in": t, "out": preprocess(t)} for t in texts],
           "hellaswag_docs": [{"in": d, "query": p["query"], "choices": p["choices"], "gold": p["gold"]} for d, p in zip(docs, processed)],
           "count_words": [{"in": w, "words": ConfigurableTask.count_words(w), "bytes": ConfigurableTask.count_bytes(w)} for w in words],
           "exact_match": em_cases, "generate_cut": cuts}
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    # two concatenated bzip2 streams (as `cat a.bz2 b.bz2`): BZip2Tests expects "first stream\nsecond é\n"
    import bz2
    (path.parent / "two_streams.txt.bz2").write_bytes(bz2.compress(b"first stream\n") + bz2.compress("second é\n".encode()))


def copy_task_helpers(tdir: Path):
    """The Python files the custom task YAMLs name with !function."""
    (tdir / "preprocess_winogrande.py").write_text(WINOGRANDE_PY)
    import lm_eval.tasks.race.preprocess_race as race_py
    shutil.copy(race_py.__file__, tdir / "preprocess_race.py")
    import lm_eval.tasks.hellaswag.utils as hellaswag_py  # lm-eval's own process_docs, unchanged
    shutil.copy(hellaswag_py.__file__, tdir / "hellaswag_utils.py")


def main():
    import lm_eval
    from lm_eval.tasks import TaskManager

    out_models = REPO / "Tests/Fixtures/models/gpt2-tiny-tok"
    out_lmeval = REPO / "Tests/Fixtures/lmeval"
    out_models.mkdir(parents=True, exist_ok=True)
    out_lmeval.mkdir(parents=True, exist_ok=True)
    pyrandom_fixture(out_lmeval / "pyrandom.json")
    functions_fixture(out_lmeval / "functions.json")
    only = sys.argv[1:] or list(TASKS)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mdir = tmp / "model"; mdir.mkdir()
        build_model(mdir)
        demo_dir = tmp / "demo"; demo_dir.mkdir()
        demo_to_hf(demo_dir)
        model_dirs = {"tiny": mdir, "demo": demo_dir}
        for f in ["config.json", "model.safetensors"]:
            shutil.copy(mdir / f, out_models / f)
        tdir = tmp / "tasks"; tdir.mkdir()
        copy_task_helpers(tdir)
        ddir = tmp / "data"; ddir.mkdir()
        for task in only:
            spec = TASKS[task]
            data = subset(task, spec["files"], ddir)
            (tdir / f"fx_{task}.yaml").write_text(
                f"task: fx_{task}\ndataset_path: json\ndataset_name: null\n"
                f"dataset_kwargs:\n  data_files:\n    {spec['split']}: {data}\n" + spec["yaml"])
        tm = TaskManager(include_path=str(tdir))
        for task in only:
            evaluate_task(task, model_dirs[TASKS[task].get('model', 'tiny')], tm, out_lmeval)


def evaluate_task(task: str, model_dir: Path, tm, out_lmeval: Path, prefix: str = "", shots=None):
    """Runs lm-eval --model hf on one fixture task and writes <prefix><task>_<k>shot.json."""
    import lm_eval
    kind, limit = TASKS[task].get("kind", "ll"), TASKS[task].get("limit", LIMIT)
    for k in (shots or TASKS[task].get("shots", SHOTS)):
        res = lm_eval.simple_evaluate(
            model="hf", model_args=f"pretrained={model_dir},dtype=float32",
            tasks=[f"fx_{task}"], num_fewshot=k, limit=limit, log_samples=True, task_manager=tm, batch_size=1, device="cpu",
            random_seed=0, numpy_random_seed=1234, torch_random_seed=1234, fewshot_random_seed=1234)
        name = f"fx_{task}"
        metrics = {m: v for m, v in res["results"][name].items() if m != "alias"}
        docs = []
        for s in sorted(res["samples"][name], key=lambda s: s["doc_id"]):
            args = [list(x) if isinstance(x, (list, tuple)) else [x[f"arg_{i}"] for i in range(len(x))]
                    for x in s["arguments"]]
            d = {"doc_id": s["doc_id"]}
            if kind == "ll":
                d.update(requests=[{"context": a[0], "continuation": a[1]} for a in args],
                         loglikelihoods=[r[0][0] for r in s["resps"]], is_greedy=[bool(r[0][1]) for r in s["resps"]],
                         metrics={m: s[m] for m in s.get("metrics", []) if m in s})
            elif kind == "gen":  # arguments: (context, generation_kwargs); resps: [[text]]
                d.update(requests=[{"context": a[0], "continuation": ""} for a in args], generated=s["resps"][0][0],
                         filtered=s["filtered_resps"][0], loglikelihoods=[], is_greedy=[],
                         metrics={"exact_match": s["exact_match"]})
            else:  # rolling: arguments (text,); per-doc metrics (ll, words) / (ll, bytes)
                d.update(requests=[{"context": "", "continuation": a[0]} for a in args],
                         loglikelihoods=[s["word_perplexity"][0]], is_greedy=[], metrics={},
                         words=s["word_perplexity"][1], bytes=s["byte_perplexity"][1])
            d["target"] = s["target"]  # last, as in the fixtures written before the other kinds
            docs.append(d)
        out = {"task": task, "num_fewshot": k, "limit": limit, "subset_lines": TASKS[task].get("subset", SUBSET),
               "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4",
               "metrics": metrics, "n_samples": res.get("n-samples", {}).get(name), "docs": docs}
        (out_lmeval / f"{prefix}{task}_{k}shot.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
        print(task, k, metrics, file=sys.stderr)


if __name__ == "__main__":
    main()
