#!/work/venv/bin/python
"""Tokenizer fixtures for Tests/TokenizersTests (offline; uses only the shared data files).

Writes Tests/Fixtures/tokenizers/:
  gpt2_hf_ids.json         {"gpt2": [{text, ids}], "gpt2_tiny": [...], "gpt2_fuzz": [...]} from HF GPT2TokenizerFast
                           (tokenizers backend) built from gpt2-vocab.json/merges.txt and the Megatron tiny vocab.
  gpt2-tiny-tokenizer.json HF tokenizer.json of the tiny vocab (tok.backend_tokenizer.save).
  llama2c_ids.json         [{text, ids, sentencepiece_ids, sentencepiece_agrees}] where ids come from an
                           independent Python re-implementation of llama2.c run.c encode() (bos=1, eos=0) over
                           tok512.bin, and sentencepiece_ids from tok512.model (if sentencepiece is importable).
Usage: /work/venv/bin/python scripts/fixtures_tokenizers.py  [TURING_SHARED_DATA=/work/shared/data]
"""
import json, os, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TURING_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")

CORPUS = [
    "Hello world", " Hello world", "Hello, world!", "hello   world", "I'm they'll we'd you've she's it't we're",
    "I'M THEY'LL WE'D", "don't won't can't shouldn't", "'s 't 're 've 'm 'll 'd", "''''", "rock'n'roll O'Neil's",
    "'hello' \"quoted\"", "  leading spaces", "trailing spaces   ", "   ", " ", "\t", "\t\tx", "a\tb\t\tc",
    "\n", "\n\n", "\n\n\n", "line1\nline2\r\nline3\r", " \n \n ", "a \n b", "x\n\n\n\ny", "end\n",
    "3", "1234567890", "3.14159 2.71828", "1,000,000 and $100.00", "abc123def456", "42nd 3rd 1st",
    "!!!!!!", "?!?!...---===", "(a) [b] {c} <d>", "a+b=c; x*y/z", "#include <stdio.h>\nint main() { return 0; }",
    "https://example.com/path?q=1&r=2#frag", "email@example.com",
    "<|endoftext|>", "a<|endoftext|>b", "Hello<|endoftext|>\n\nWorld", " <|endoftext|> ", "<|endoftext|><|endoftext|>",
    "<|endoftext", "<|endoftext|", "<|ENDOFTEXT|>",
    "café naïve résumé", "cafe\u0301 e\u0301\u0301 \u0301\u0301x", "\u212b \u00c5 A\u030a \u2126 \u03a9 \u212a",
    "Führer Straße", "Cửa Việt", "нещо на Български", "Ελληνικά γράμματα", "日本語のテキスト", "我想在apple工作1314151天～",
    "한국어 텍스트", "\u1100\u1161\u11a8", "नमस्ते दुनिया", "ภาษาไทย", "العربية", "עברית", "தமிழ்",
    "🚀 (normal) 😶\u200d🌫️ ✅", "👍🏽 👨\u200d👩\u200d👧\u200d👦 🇫🇷🇩🇪", "🦙🦙🦙", "😀" * 5,
    "ＡＢＣ１２３", "ﬁﬂ", "Ⅻ ² ½ ⅔ ①", "x² + y² = z²",
    "\u00a0nbsp\u00a0\u00a0x", "ideographic\u3000space", "zero\u200bwidth", "nel\u0085line", "sep\u2028\u2029x",
    "fs\x1cgs\x1drs\x1eus\x1f", "nul\x00del\x7f", "\ue000private", "tab\t \tmix \t",
    "a" * 300, "!" * 300, " " * 40 + "x", "\n" * 20, "word " * 50,
]

def fuzz_strings(n=300, seed=1234):
    """Seeded random strings over a pool of ASCII, whitespace variants, and code points whose general category
    is the same in Unicode 3.2 and today (so Oniguruma's and Swift's Unicode tables agree on them)."""
    import random, unicodedata
    rng = random.Random(seed)
    stable = [chr(c) for c in range(0xA0, 0x3400)
              if unicodedata.ucd_3_2_0.category(chr(c)) not in ("Cn", "Cs", "Co")
              and unicodedata.ucd_3_2_0.category(chr(c)) == unicodedata.category(chr(c))]
    stable += [chr(c) for c in (0x4E00, 0x4E8C, 0x6587, 0xAC00, 0xD55C, 0x1F600, 0x1F999, 0x10400, 0x1D400, 0x20000)]
    ws = [" ", " ", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\xa0", "\u1680", "\u2003", "\u2028", "\u3000", "\x1c"]
    ascii_ = [chr(c) for c in range(0x21, 0x7F)] + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "<|endoftext|>"]
    out = []
    for _ in range(n):
        k = rng.randint(0, 30)
        parts = []
        for _ in range(k):
            r = rng.random()
            parts.append(rng.choice(ws) if r < 0.3 else rng.choice(ascii_) if r < 0.65 else rng.choice(stable))
        out.append("".join(parts))
    return out

def gpt2_fast(vocab_path, merges_path):
    from transformers import GPT2TokenizerFast
    vocab = json.load(open(vocab_path, encoding="utf-8"))
    lines = open(merges_path, encoding="utf-8").read().split("\n")
    merges = [tuple(l.split(" ")) for l in lines if l and not l.startswith("#version")]
    tok = GPT2TokenizerFast(vocab=vocab, merges=merges)
    assert len(tok) == len(vocab), (len(tok), len(vocab))
    return tok

def check_llama_cpp_cases(tok, d):
    inp = open(os.path.join(d, "ggml-vocab-gpt-2.gguf.inp"), encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    out = open(os.path.join(d, "ggml-vocab-gpt-2.gguf.out"), encoding="utf-8").read().split("\n")
    n = 0
    for text, line in zip(inp, out):
        if text == "" and line == "" and n == len(out) - 1:
            break
        assert tok.encode(text, add_special_tokens=False) == [int(x) for x in line.split()], repr(text)
        n += 1
    print(f"HF agrees with llama.cpp's {n} GPT-2 cases")

# ---- llama2.c run.c encode(), re-implemented independently from the C source ----
def load_tok_bin(path):
    b = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", b, 0)
    pos, pieces, scores = 4, [], []
    while pos < len(b):
        score, n = struct.unpack_from("<fi", b, pos); pos += 8
        pieces.append(b[pos:pos + n]); scores.append(score); pos += n
    return pieces, scores

def llama2c_encode(pieces, scores, text, bos=True, eos=False):
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    toks = [1] if bos else []
    data = text.encode("utf-8")
    if data:
        toks.append(lookup[b" "])
    buf = b""
    for i, c in enumerate(data):
        if c & 0xC0 != 0x80:
            buf = b""
        buf += bytes([c])
        nxt = data[i + 1] if i + 1 < len(data) else 0
        if nxt & 0xC0 == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            toks.append(lookup[buf])
        else:
            toks.extend(x + 3 for x in buf)
        buf = b""
    while True:
        best = (-1e10, -1, -1)
        for i in range(len(toks) - 1):
            j = lookup.get(pieces[toks[i]] + pieces[toks[i + 1]])
            if j is not None and scores[j] > best[0]:
                best = (scores[j], j, i)
        if best[2] < 0:
            break
        toks[best[2]:best[2] + 2] = [best[1]]
    if eos:
        toks.append(2)
    return toks

LLAMA_CORPUS = [
    "Once upon a time", "Once upon a time, there was a little girl named Lily.",
    "Lily's mom said, \"Lily, let's go to the park.\"", "She loved to play outside in the park.\nOne day, she saw a big, red ball.",
    "", " ", "  two spaces", "a  b", "Hello\nworld", "The end.\n", "héllo wörld", "日本語", "😀 emoji", "Tom and Ben",
    "12345 apples", "Don't worry, Lily. We can help you.", "ÿ\u00ff€", "First Citizen:\nBefore we proceed any further, hear me speak.",
]

def main():
    os.makedirs(OUT, exist_ok=True)
    gdir = os.path.join(DATA, "gpt2_tokenizer")
    tok = gpt2_fast(os.path.join(gdir, "gpt2-vocab.json"), os.path.join(gdir, "gpt2-merges.txt"))
    check_llama_cpp_cases(tok, gdir)
    shakes = "".join(open(os.path.join(DATA, "tinyshakespeare", "input.txt"), encoding="utf-8").readlines()[:200])
    corpus = CORPUS + [shakes]
    mdir = os.path.join(DATA, "megatron_indexed")
    tiny = gpt2_fast(os.path.join(mdir, "gpt2-tiny-vocab.json"), os.path.join(mdir, "gpt2-tiny-merges.txt"))
    tiny.backend_tokenizer.save(os.path.join(OUT, "gpt2-tiny-tokenizer.json"))
    fx = {"gpt2": [], "gpt2_tiny": [], "gpt2_fuzz": []}
    for t in fuzz_strings():
        ids = tok.encode(t, add_special_tokens=False)
        assert tok.decode(ids) == t, repr(t)
        fx["gpt2_fuzz"].append({"text": t, "ids": ids})
    for t in corpus:
        ids = tok.encode(t, add_special_tokens=False)
        assert tok.decode(ids) == t, repr(t)
        fx["gpt2"].append({"text": t, "ids": ids})
        fx["gpt2_tiny"].append({"text": t, "ids": tiny.encode(t, add_special_tokens=False)})
    with open(os.path.join(OUT, "gpt2_hf_ids.json"), "w", encoding="utf-8") as f:
        json.dump(fx, f, ensure_ascii=False, separators=(",", ":"))
    print(f"wrote {len(corpus)} GPT-2 cases (+ tiny vocab)")

    sdir = os.path.join(DATA, "models", "stories260K")
    pieces, scores = load_tok_bin(os.path.join(sdir, "tok512.bin"))
    try:
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=os.path.join(sdir, "tok512.model"))
    except Exception as e:  # noqa: BLE001
        print("sentencepiece unavailable:", e); sp = None
    rows, agree = [], 0
    for t in LLAMA_CORPUS:
        ids = llama2c_encode(pieces, scores, t)
        row = {"text": t, "ids": ids, "ids_eos": llama2c_encode(pieces, scores, t, bos=True, eos=True)}
        if sp is not None:
            sids = [1] + sp.encode(t)
            row["sentencepiece_ids"] = sids
            row["sentencepiece_agrees"] = sids == ids
            agree += sids == ids
        rows.append(row)
    with open(os.path.join(OUT, "llama2c_ids.json"), "w", encoding="utf-8") as f:
        json.dump({"vocab_size": len(pieces), "cases": rows}, f, ensure_ascii=False, separators=(",", ":"))
    print(f"wrote {len(rows)} llama2.c cases; sentencepiece agrees on {agree}/{len(rows)}" if sp else "")
    for r in rows:
        if sp is not None and not r["sentencepiece_agrees"]:
            print("  differs:", repr(r["text"]), r["ids"], r["sentencepiece_ids"])

if __name__ == "__main__":
    sys.exit(main())
