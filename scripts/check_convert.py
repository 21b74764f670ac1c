#!/usr/bin/env python3
"""Check `turing convert` outputs with PyTorch and transformers (an oracle independent of Turing).

Usage: scripts/check_convert.py TURING_BINARY [WORKDIR]
Converts the shared fixtures (../shared/fixtures/checkpoints) with `turing convert`, then:
  * torch.load(weights_only=False) every .pt written; checks args / checkpoint_version / layout;
  * merges Megatron-legacy and DeepSpeed shards back to HF GPT-2 tensors in Python (per-rank [np,3,hn]
    QKV, vocab padding dropped) and compares them bitwise with gpt2-tiny;
  * loads HF outputs with transformers (GPT2LMHeadModel / LlamaForCausalLM) and compares logits with
    expected.safetensors (float32: logits_i, bf16 outputs: logits_bf16_i), tolerance 1e-4.
Exits non-zero on any failure. Run with /work/venv/bin/python, HF_HUB_OFFLINE=1.
"""
import glob, json, os, subprocess, sys, tempfile
import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.environ.get("TURING_SHARED_FIXTURES", os.path.join(HERE, "..", "..", "shared", "fixtures", "checkpoints"))
TURING = sys.argv[1]
WORK = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="turing-check-")
failures = []


def fail(msg):
    failures.append(msg); print("FAIL:", msg)


def convert(src, to, tp, pp, name, extra=()):
    out = os.path.join(WORK, name)
    subprocess.run([TURING, "convert", src, "--to", to, "--tp", str(tp), "--pp", str(pp), "--output", out, "--force", *extra],
                   check=True)
    return out


ref = load_file(os.path.join(FIX, "gpt2-tiny", "model.safetensors"))
expected = load_file(os.path.join(FIX, "expected.safetensors"))
seqs = json.load(open(os.path.join(FIX, "expected.json")))["sequences"]
C, H = 64, 4
hn = C // H


def merge_megatron(ranks, tp, L):
    """ranks[t] = flat {legacy name with global layer numbers: tensor} -> HF GPT-2 state dict."""
    cat0 = lambda k: torch.cat([r[k] for r in ranks], 0)
    out = {"transformer.wte.weight": cat0("word")[:1000], "transformer.wpe.weight": ranks[0]["position"]}
    for i in range(L):
        p, h = f"layers.{i}.", f"transformer.h.{i}."
        for w in ("weight", "bias"):
            qs, ks, vs = [], [], []
            for r in ranks:
                x = r[p + "self_attention.query_key_value." + w]
                x = x.view(H // tp, 3, hn, *x.shape[1:])
                qs.append(x[:, 0].reshape(-1, *x.shape[3:])); ks.append(x[:, 1].reshape(-1, *x.shape[3:])); vs.append(x[:, 2].reshape(-1, *x.shape[3:]))
            fused = torch.cat([torch.cat(qs), torch.cat(ks), torch.cat(vs)])
            out[h + "attn.c_attn." + w] = fused.t().contiguous() if w == "weight" else fused
        out[h + "attn.c_proj.weight"] = torch.cat([r[p + "self_attention.dense.weight"] for r in ranks], 1).t()
        out[h + "attn.c_proj.bias"] = ranks[0][p + "self_attention.dense.bias"]
        out[h + "mlp.c_fc.weight"] = cat0(p + "mlp.dense_h_to_4h.weight").t()
        out[h + "mlp.c_fc.bias"] = cat0(p + "mlp.dense_h_to_4h.bias")
        out[h + "mlp.c_proj.weight"] = torch.cat([r[p + "mlp.dense_4h_to_h.weight"] for r in ranks], 1).t()
        out[h + "mlp.c_proj.bias"] = ranks[0][p + "mlp.dense_4h_to_h.bias"]
        for a, b in (("input_layernorm", "ln_1"), ("post_attention_layernorm", "ln_2")):
            for w in ("weight", "bias"):
                out[h + f"{b}.{w}"] = ranks[0][p + f"{a}.{w}"]
    out["transformer.ln_f.weight"] = ranks[0]["final.weight"]; out["transformer.ln_f.bias"] = ranks[0]["final.bias"]
    return out


def compare_weights(name, got, bf16=False):
    for k, v in ref.items():
        if k.endswith("attn.bias") or k.endswith("masked_bias") or k == "lm_head.weight":
            continue
        want = v.to(torch.bfloat16).float() if bf16 else v
        g = got[k].float()
        if g.shape != want.shape or not torch.equal(g, want):
            fail(f"{name}: {k} differs ({tuple(g.shape)} vs {tuple(want.shape)})"); return
    print(f"ok   {name}: all {len(got)} merged tensors bitwise equal to gpt2-tiny" + (" (bf16-rounded)" if bf16 else ""))


def check_megatron(out, tp, pp, bf16=False):
    tracker = open(os.path.join(out, "latest_checkpointed_iteration.txt")).read().strip()
    it = "release" if tracker == "release" else "iter_%07d" % int(tracker)
    ranks = [dict() for _ in range(tp)]
    offset = 0
    for p in range(pp):
        n = 0
        for t in range(tp):
            d = f"mp_rank_{t:02d}" if pp == 1 else f"mp_rank_{t:02d}_{p:03d}"
            sd = torch.load(os.path.join(out, it, d, "model_optim_rng.pt"), weights_only=False, map_location="cpu")
            a = sd["args"]
            assert sd["checkpoint_version"] == 3.0 and a.tensor_model_parallel_size == tp and a.pipeline_model_parallel_size == pp, d
            assert a.padded_vocab_size == -(-1000 // (128 * tp)) * 128 * tp and a.params_dtype == (torch.bfloat16 if bf16 else torch.float32)
            lm = sd["model"]["language_model"]
            if "embedding" in lm:
                ranks[t]["word"] = lm["embedding"]["word_embeddings"]["weight"]
                ranks[t]["position"] = lm["embedding"]["position_embeddings"]["weight"]
            if "word_embeddings_for_head" in sd["model"]:
                ranks[t]["head_copy"] = sd["model"]["word_embeddings_for_head"]["weight"]
            local = set()
            for k, v in lm["encoder"].items():
                if k.startswith("layers."):
                    _, i, rest = k.split(".", 2); local.add(int(i))
                    ranks[t][f"layers.{int(i) + offset}.{rest}"] = v
                else:
                    ranks[t]["final." + k.split(".")[-1]] = v
            n = len(local)
        offset += n
    if pp > 1:
        assert all(torch.equal(r["head_copy"], r["word"]) for r in ranks), "head copy differs"
    compare_weights(f"megatron TP{tp}xPP{pp} torch.load", merge_megatron(ranks, tp, offset), bf16)


def check_deepspeed(out, tp, pp):
    tag = open(os.path.join(out, "latest")).read().strip()
    files = sorted(glob.glob(os.path.join(out, tag, "layer_*-model_*-model_states.pt")))
    ids = sorted({int(os.path.basename(f)[6:8]) for f in files})
    mp = glob.glob(os.path.join(out, tag, "mp_rank_*_model_states.pt"))
    assert len(mp) == tp * pp, mp
    meta = torch.load(os.path.join(out, tag, "mp_rank_00_model_states.pt"), weights_only=False)
    assert meta["module"] is None and meta["args"].tensor_model_parallel_size == tp
    ranks = [dict() for _ in range(tp)]
    for t in range(tp):
        ld = lambda x: torch.load(os.path.join(out, tag, f"layer_{x:02d}-model_{t:02d}-model_states.pt"), weights_only=False)
        e = ld(ids[0]); ranks[t]["word"] = e["word_embeddings.weight"]; ranks[t]["position"] = e["position_embeddings.weight"]
        for i, x in enumerate(ids[1:-1]):
            for k, v in ld(x).items(): ranks[t][f"layers.{i}.{k}"] = v
        f = ld(ids[-1]); ranks[t]["final.weight"] = f["weight"]; ranks[t]["final.bias"] = f["bias"]
    compare_weights(f"deepspeed TP{tp}xPP{pp} torch.load", merge_megatron(ranks, tp, len(ids) - 2))


def check_hf_logits(out, name, bf16=False):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32, attn_implementation="eager").eval()
    worst = 0.0
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s["ids"]])
            got = m(ids).logits[0, :, :1000].float()
            want = expected[s["logits_bf16_key"] if bf16 else s["logits_key"]]
            worst = max(worst, (got - want).abs().max().item())
    (print if worst <= 1e-4 else fail)(f"{'ok  ' if worst <= 1e-4 else ''} {name}: transformers logits vs expected.safetensors, max |Δ| {worst:.3g}")


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        elif torch.is_tensor(v):
            out[prefix + k] = v
    return out


def compare_with_fixture(out, fixture, tp, pp):
    """Our Megatron files vs the same model written by transformers' own Megatron tool (the fixture)."""
    n = extra = 0
    for p in range(pp):
        for t in range(tp):
            d = f"mp_rank_{t:02d}" if pp == 1 else f"mp_rank_{t:02d}_{p:03d}"
            ours = flatten(torch.load(os.path.join(out, "release", d, "model_optim_rng.pt"), weights_only=False)["model"])
            theirs = flatten(torch.load(os.path.join(FIX, fixture, "release", d, "model_optim_rng.pt"), weights_only=False)["model"])
            extra += len(set(theirs) - set(ours))
            for k, v in ours.items():
                if k not in theirs:
                    fail(f"{fixture} {d}: {k} is not in the reference writer's file"); continue
                w = theirs[k]
                if "word_embeddings" in k:   # padding rows: ours zeros, the tool's copies of row 999
                    rows = v.shape[0]; real = max(0, min(rows, 1000 - t * rows))
                    v, w = v[:real], w[:real]
                if v.shape != w.shape or not torch.equal(v, w.contiguous()):
                    fail(f"{fixture} {d}: {k} differs"); continue
                n += 1
    print(f"ok   gpt2-tiny -> megatron TP{tp}xPP{pp}: {n} tensors bitwise equal to {fixture} (transformers' Megatron writer), "
          f"real vocab rows only; {extra} tensors there that Megatron-LM does not write at this layout (word_embeddings_for_head at PP 1)")


gpt2 = os.path.join(FIX, "gpt2-tiny")
check_megatron(convert(gpt2, "megatron", 2, 2, "hf-to-megatron-tp2-pp2"), 2, 2)
check_megatron(convert(gpt2, "megatron", 4, 1, "hf-to-megatron-tp4-pp1", ["--iteration", "3000"]), 4, 1)
compare_with_fixture(os.path.join(WORK, "hf-to-megatron-tp2-pp2"), "megatron-legacy-tp2-pp2", 2, 2)
compare_with_fixture(convert(gpt2, "megatron", 4, 2, "hf-to-megatron-tp4-pp2"), "megatron-legacy-tp4-pp2", 4, 2)
compare_with_fixture(convert(gpt2, "megatron", 1, 1, "hf-to-megatron-tp1-pp1"), "megatron-legacy-tp1-pp1", 1, 1)
check_megatron(convert(gpt2, "megatron", 2, 1, "hf-to-megatron-bf16", ["--dtype", "bfloat16"]), 2, 1, bf16=True)
check_deepspeed(convert(gpt2, "deepspeed", 2, 2, "hf-to-deepspeed-tp2-pp2"), 2, 2)
# Against the folder DeepSpeed 0.19.8's PipelineEngine itself wrote: same file names, same tensors (real vocab rows).
ours_ds = convert(gpt2, "deepspeed", 2, 2, "hf-to-deepspeed-tp2-pp2-it3000", ["--iteration", "3000"])
ref_dir = os.path.join(FIX, "deepspeed-tp2-pp2", "global_step3000")
ref_files = sorted(f for f in os.listdir(ref_dir) if f.startswith("layer_"))
our_files = sorted(f for f in os.listdir(os.path.join(ours_ds, "global_step3000")) if f.startswith("layer_"))
if ref_files != our_files:
    fail(f"deepspeed layer files differ: {our_files} vs {ref_files}")
n = 0
for f in ref_files:
    a = torch.load(os.path.join(ours_ds, "global_step3000", f), weights_only=False)
    b = torch.load(os.path.join(ref_dir, f), weights_only=False)
    if list(a.keys()) != list(b.keys()):
        fail(f"{f}: keys {list(a)} vs {list(b)}"); continue
    t = int(f.split("model_")[1][:2])
    for k in a:
        x, y = a[k], b[k]
        if k == "word_embeddings.weight":
            real = max(0, min(x.shape[0], 1000 - t * x.shape[0])); x, y = x[:real], y[:real]
        if x.shape != y.shape or not torch.equal(x, y):
            fail(f"{f}: {k} differs")
        n += 1
sorted_mp = sorted(f for f in os.listdir(os.path.join(ours_ds, "global_step3000")) if f.startswith("mp_rank_"))
if sorted_mp != sorted(f for f in os.listdir(ref_dir) if f.startswith("mp_rank_")):
    fail(f"deepspeed mp_rank files differ: {sorted_mp}")
print(f"ok   gpt2-tiny -> deepspeed TP2xPP2: same {len(ref_files)} layer files and mp_rank files as deepspeed-tp2-pp2 (DeepSpeed's own writer), {n} tensors bitwise equal (real vocab rows)")
check_hf_logits(convert(os.path.join(FIX, "megatron-legacy-tp4-pp2"), "hf", 1, 1, "megatron-tp4pp2-to-hf"), "megatron-legacy-tp4-pp2 -> hf")
check_hf_logits(convert(os.path.join(FIX, "deepspeed-old-tp2-pp2"), "hf", 1, 1, "deepspeed-old-to-hf"), "deepspeed-old-tp2-pp2 -> hf")
check_hf_logits(convert(os.path.join(FIX, "megatron-legacy-bf16-tp2-pp1"), "hf", 1, 1, "megatron-bf16-to-hf"), "megatron-legacy-bf16 -> hf (bf16)", bf16=True)
check_hf_logits(convert(os.path.join(WORK, "hf-to-megatron-tp2-pp2"), "hf", 1, 1, "roundtrip-to-hf"), "gpt2-tiny -> megatron TP2xPP2 -> hf")
# Llama: an HF Llama fixture converted to Megatron TP2xPP2 and back; transformers logits must agree.
llama_fix = os.path.join(HERE, "..", "Tests", "Fixtures", "models")
llamas = [d for d in glob.glob(os.path.join(llama_fix, "*")) if os.path.isdir(d) and '"llama"' in open(os.path.join(d, "config.json")).read()]
if llamas:
    from transformers import AutoModelForCausalLM
    src = llamas[0]
    back = convert(convert(src, "megatron", 2, 2, "llama-to-megatron"), "hf", 1, 1, "llama-back-to-hf")
    ids = torch.arange(0, 20).unsqueeze(0) % AutoModelForCausalLM.from_pretrained(src).config.vocab_size
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(src, torch_dtype=torch.float32).eval()(ids).logits
        b = AutoModelForCausalLM.from_pretrained(back, torch_dtype=torch.float32).eval()(ids).logits
    d = (a - b).abs().max().item()
    (print if d == 0 else fail)(f"{'ok  ' if d == 0 else ''} {os.path.basename(src)} (llama) -> megatron TP2xPP2 -> hf: logits max |Δ| {d:.3g}")
print(f"{'FAILED' if failures else 'ALL OK'}: {len(failures)} failures; outputs in {WORK}")
sys.exit(1 if failures else 0)
