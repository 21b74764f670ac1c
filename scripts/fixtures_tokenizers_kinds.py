#!/work/venv-tok/bin/python
"""Tokenizer fixtures for every kind Turing reads (issue 14), made with the real libraries.

Writes Tests/Fixtures/tokenizers/kinds/:
  corpus.txt.bz2                the mixed test corpus (synthetic, seeded; >= 200 KB): code, whitespace runs, digits,
                                CJK, emoji + ZWJ, combining marks, \\r\\n, special-token strings. Lines split on "\\n".
  <kind>/...                    the tokenizer files of each kind (trained here on tinyshakespeare + a differently seeded
                                synthetic text; the shared data itself is never copied).
  <kind>.expected.bz2           bz2 of: per line  varint(n) ids..., then the whole file's ids the same way, then per line
                                and for the whole file varint(len) + the library's own decode (UTF-8 bytes).
                                Per-line ids use the tokenizer's default special-token rule (HF: add_special_tokens=True;
                                sentencepiece: none; tiktoken: allowed_special="all"); whole-file ids add none (HF
                                add_special_tokens=False; tiktoken still matches special-token strings).
Kinds: sp_bpe (sentencepiece BPE, identity, byte_fallback, split_digits, no whitespace removal: Llama-2-like),
  sp_unigram (sentencepiece unigram, nmt_nfkc, default whitespace removal, user-defined and control symbols, no byte
  fallback), hf_llama2 (tokenizer.json as transformers 5 writes it from sp_bpe: Metaspace + byte_fallback),
  hf_llama2_legacy (same model, the older Prepend + Replace normalizer spelling), hf_llama3 (Split regex + ByteLevel,
  256 reserved special tokens, TemplateProcessing BOS), hf_unigram_seq (normalizer Sequence NFKC/Replace/Lowercase,
  Metaspace, Unigram), hf_wordpiece (NFD/Lowercase/StripAccents, Whitespace/Punctuation/Digits, WordPiece, [CLS]/[SEP]),
  hf_precompiled (sp_unigram's vocabulary and Precompiled charsmap in a tokenizer.json, as T5/XLM-R converters write it),
  tiktoken (a bare .tiktoken rank file: Llama 3's pattern and reserved tokens at len(ranks)+i).
The HF Unigram and WordPiece trainers are not bit-for-bit repeatable (hash-map order); the committed files are the
ones the tests read, and regenerating them rewrites their expected ids consistently.
Usage: /work/venv-tok/bin/python scripts/fixtures_tokenizers_kinds.py   (venv: transformers 5.25.0, tokenizers 0.23.3,
  sentencepiece 0.2.3, tiktoken 0.14.0, protobuf)  [TURING_SHARED_DATA=/work/shared/data]
"""
import base64, bz2, json, os, random, shutil, sys

os.environ["RAYON_NUM_THREADS"] = "1"          # the HF trainers are deterministic single-threaded only
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TURING_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "kinds")
WORK = "/tmp/turing_tok_fixtures"

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

def llama3_special_tokens():
    """Llama 3.1's 256 reserved special tokens (meta-llama/llama-models tokenizer.py), in id order."""
    named = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
             "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
             "<|eot_id|>", "<|python_tag|>"]
    return named + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(named))]

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
         "you were her she there been one all we their has would when if so no will more what up out can about into "
         "than them some could time these two may first then do any like my now over such our man me even most made "
         "after also did many before must through back years where much your way well down should because each just "
         "those people how too little state good very make world still own see men work long get here between both "
         "life being under never day same another know while last might us great old year off come since against go "
         "came right used take three king queen thou thee hath doth lord sweet love death night").split()
CODE = ["def f_{n}(x, y):\n    return x * {n} + y  # comment",
        "for (int i = 0; i < {n}; ++i) {{ sum += a[i]; }}",
        "if x == {n}:\n\tprint(f\"value {{x}}\")\r\nelse:\n\t\tpass",
        "let v{n} = try JSONDecoder().decode([Int].self, from: data)   // {n}",
        "    self.layers = nn.ModuleList([Block(cfg) for _ in range({n})])",
        "SELECT name, COUNT(*) FROM t{n} WHERE id >= {n} GROUP BY name;",
        "#include <stdio.h>\nint main(void) {{ printf(\"%d\\n\", {n}); return 0; }}",
        "x_{n} = {{'key': [1, 2, 3], \"other\": None, 'n': {n}}}"]
CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音ひらがなカタカナ한국어텍스트日本語"
EMOJI = ["😀", "🚀", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇫🇷", "🇯🇵", "😶\u200d🌫️", "🦙", "✅", "❤️", "🧑🏾\u200d💻", "🙂"]
COMBINING = ["e\u0301", "a\u0300\u0323", "n\u0303", "o\u0308\u0304", "\u1100\u1161\u11a8", "नमस्ते", "ก\u0e34", "Å", "Å", "ﬁ",
             "①", "ＡＢＣ", "½", "Ⅻ", "x²", "ſ", "İ", "ß", "Ω", "ǅ"]
SPECIALS = ["<s>", "</s>", "<unk>", "<pad>", "<tool>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>",
            "<|reserved_special_token_7|>", "[CLS]", "[SEP]", "[MASK]", "<mask>", " <s> ", "<s><s>", "</s>\n"]
WS = [" ", "  ", "   ", "\t", " \t ", "        ", "\u00a0", "\u3000", "\u2003", "\x0b", "\x0c", "\u200b"]

def synth_lines(seed, target_bytes):
    rng = random.Random(seed)
    out, size = [], 0
    while size < target_bytes:
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.40:
                ws = [rng.choice(WORDS) for _ in range(rng.randint(1, 10))]
                if rng.random() < 0.3: ws[0] = ws[0].capitalize()
                if rng.random() < 0.1: ws[-1] = ws[-1].upper()
                s = " ".join(ws) + rng.choice(["", ".", ",", "!", "?", ";", ":", "'s", " --", "...", "'"])
            elif r < 0.50:
                s = rng.choice(CODE).format(n=rng.randint(0, 10 ** rng.randint(1, 6)))
            elif r < 0.58:
                s = rng.choice([str(rng.randint(0, 10 ** rng.randint(1, 14))), f"{rng.random() * 1000:.{rng.randint(1, 6)}f}",
                                f"{rng.randint(1, 31)}/{rng.randint(1, 12)}/{rng.randint(1900, 2100)}", "1,000,000", "$3.50"])
            elif r < 0.66:
                s = "".join(rng.choice(CJK) for _ in range(rng.randint(1, 12)))
            elif r < 0.72:
                s = "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4)))
            elif r < 0.78:
                s = rng.choice(WORDS) + rng.choice(COMBINING) + rng.choice(["", rng.choice(WORDS)])
            elif r < 0.86:
                s = rng.choice(SPECIALS)
            elif r < 0.93:
                s = rng.choice(WS) * rng.randint(1, 3)
            else:
                s = rng.choice(["\r", "\r\n", "\n\n", "(", ")", "[", "]", "{", "}", "\"", "'", "—", "…", "«»", "•"])
            parts.append(s)
        line = rng.choice(["", " ", "", "", "  ", "\t"]) + rng.choice(WS + [""] * 20).join(parts) if parts else ""
        line = line + rng.choice(["", "", "", " ", "\r", "  "])
        out.extend(line.split("\n"))
        size += len(line.encode("utf-8")) + 1
    return out

def varint(n, buf):
    assert n >= 0
    while True:
        b = n & 0x7F; n >>= 7
        if n: buf.append(b | 0x80)
        else: buf.append(b); return

def write_expected(kind, lines, whole, encode_line, encode_whole, decode):
    buf = bytearray()
    line_ids = [encode_line(l) for l in lines]
    whole_ids = encode_whole(whole)
    for ids in line_ids + [whole_ids]:
        varint(len(ids), buf)
        for i in ids: varint(i, buf)
    for ids in line_ids + [whole_ids]:
        d = decode(ids).encode("utf-8")
        varint(len(d), buf); buf += d
    with open(os.path.join(OUT, kind + ".expected.bz2"), "wb") as f:
        f.write(bz2.compress(bytes(buf), 9))
    lossless = sum(decode(ids) == l for ids, l in zip(line_ids, lines))
    print(f"{kind}: {sum(map(len, line_ids))} ids over {len(lines)} lines, whole file {len(whole_ids)} ids; "
          f"{lossless}/{len(lines)} lines decode to themselves")

def main():
    shakes = os.path.join(DATA, "tinyshakespeare", "input.txt")
    if not os.path.exists(shakes): sys.exit(f"shared data not found: {shakes}")
    shutil.rmtree(WORK, ignore_errors=True); os.makedirs(WORK)
    if os.path.isdir(OUT): shutil.rmtree(OUT)
    os.makedirs(OUT)
    lines = synth_lines(2024, 210_000)
    whole = "\n".join(lines)
    with open(os.path.join(OUT, "corpus.txt.bz2"), "wb") as f: f.write(bz2.compress(whole.encode("utf-8"), 9))
    train_txt = os.path.join(WORK, "train.txt")
    train_lines = open(shakes, encoding="utf-8").read().split("\n")[:20000] + synth_lines(77, 150_000)
    with open(train_txt, "w", encoding="utf-8") as f: f.write("\n".join(l for l in train_lines if l.strip()) + "\n")
    print(f"corpus {len(whole.encode())} bytes, {len(lines)} lines")

    import sentencepiece as spm
    # ---- sentencepiece BPE (Llama-2 settings) ----
    d = os.path.join(OUT, "sp_bpe"); os.makedirs(d)
    spm.SentencePieceTrainer.train(input=train_txt, model_prefix=os.path.join(WORK, "spb"), vocab_size=1200,
        model_type="bpe", byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, user_defined_symbols=["<tool>"], character_coverage=0.9995,
        allow_whitespace_only_pieces=True, minloglevel=2, num_threads=1)
    shutil.copy(os.path.join(WORK, "spb.model"), os.path.join(d, "tokenizer.model"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
    write_expected("sp_bpe", lines, whole, sp.encode, sp.encode, sp.decode)

    # ---- sentencepiece unigram (nmt_nfkc) ----
    d = os.path.join(OUT, "sp_unigram"); os.makedirs(d)
    spm.SentencePieceTrainer.train(input=train_txt, model_prefix=os.path.join(WORK, "spu"), vocab_size=1500,
        model_type="unigram", normalization_rule_name="nmt_nfkc", user_defined_symbols=["<tool>", "[MASK]"],
        control_symbols=["<ctl>"], character_coverage=0.995, minloglevel=2, num_threads=1)
    shutil.copy(os.path.join(WORK, "spu.model"), os.path.join(d, "tokenizer.model"))
    spu = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
    write_expected("sp_unigram", lines, whole, spu.encode, spu.encode, spu.decode)

    # ---- HF Llama-2 style, transformers 5 spelling (converted from sp_bpe) ----
    from transformers import AutoTokenizer
    src = os.path.join(WORK, "llama_src"); os.makedirs(src)
    shutil.copy(os.path.join(OUT, "sp_bpe", "tokenizer.model"), os.path.join(src, "tokenizer.model"))
    json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
               "add_bos_token": True, "add_eos_token": False, "legacy": False}, open(os.path.join(src, "tokenizer_config.json"), "w"))
    t = AutoTokenizer.from_pretrained(src)
    d = os.path.join(OUT, "hf_llama2"); t.save_pretrained(d)
    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    assert json.load(open(os.path.join(d, "tokenizer.json")))["pre_tokenizer"]["type"] == "Metaspace"
    hf_expected("hf_llama2", hf, lines, whole)

    # ---- HF Llama-2 style, older spelling: normalizer Prepend + Replace, no pre-tokenizer ----
    j = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
    j["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                           {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    j["pre_tokenizer"] = None
    d = os.path.join(OUT, "hf_llama2_legacy"); os.makedirs(d)
    hf = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))
    hf.save(os.path.join(d, "tokenizer.json"))
    shutil.copy(os.path.join(OUT, "hf_llama2", "tokenizer_config.json"), os.path.join(d, "tokenizer_config.json"))
    hf_expected("hf_llama2_legacy", hf, lines, whole)

    from tokenizers import (Tokenizer, models, trainers, pre_tokenizers, normalizers, decoders, processors, Regex)
    # ---- HF Llama-3 style: Split regex + ByteLevel, reserved special tokens ----
    specials = llama3_special_tokens()
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tr = trainers.BpeTrainer(vocab_size=1500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([train_txt], tr)
    n = tok.get_vocab_size()
    tok.add_special_tokens(specials)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", n)])])
    d = os.path.join(OUT, "hf_llama3"); os.makedirs(d); tok.save(os.path.join(d, "tokenizer.json"))
    hf_expected("hf_llama3", tok, lines, whole)

    # ---- tiktoken: the Llama-3 style vocabulary as a bare rank file ----
    import tiktoken, tiktoken.load
    from tokenizers.pre_tokenizers import ByteLevel as BL
    b2u = {b: c for b, c in zip(range(256), [None] * 256)}
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]; k = 0
    for b in range(256):
        if b not in bs: bs.append(b); cs.append(256 + k); k += 1
    u2b = {chr(c): b for b, c in zip(bs, cs)}
    vocab = json.loads(tok.to_str())["model"]["vocab"]
    ranks = {bytes(u2b[ch] for ch in s): i for s, i in vocab.items()}
    d = os.path.join(OUT, "tiktoken"); os.makedirs(d)
    with open(os.path.join(d, "tokenizer.tiktoken"), "w") as f:
        for b, r in sorted(ranks.items(), key=lambda x: x[1]): f.write(base64.b64encode(b).decode() + f" {r}\n")
    ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(d, "tokenizer.tiktoken"))
    enc = tiktoken.Encoding("turing_fixture", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks,
                            special_tokens={s: len(ranks) + i for i, s in enumerate(specials)})
    write_expected("tiktoken", lines, whole, lambda s: enc.encode(s, allowed_special="all"),
                   lambda s: enc.encode(s, allowed_special="all"),
                   lambda ids: enc.decode(ids))

    # ---- HF Unigram with a normalizer Sequence and Metaspace ----
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase(), normalizers.Strip(left=False, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tr = trainers.UnigramTrainer(vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>",
                                 show_progress=False)
    tok.train([train_txt], tr)
    tok.add_tokens([__import__("tokenizers").AddedToken("<tool>", normalized=True, single_word=True)])
    tok.add_special_tokens([__import__("tokenizers").AddedToken("<mask>", lstrip=True, rstrip=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1",
                                                       special_tokens=[("<s>", 1), ("</s>", 2)])
    d = os.path.join(OUT, "hf_unigram_seq"); os.makedirs(d); tok.save(os.path.join(d, "tokenizer.json"))
    hf_expected("hf_unigram_seq", tok, lines, whole)

    # ---- HF Unigram from sp_unigram with its Precompiled charsmap (as transformers' T5/XLM-R converters write it) ----
    from sentencepiece import sentencepiece_model_pb2 as pb
    proto = pb.ModelProto(); proto.ParseFromString(open(os.path.join(OUT, "sp_unigram", "tokenizer.model"), "rb").read())
    vocab = [(p.piece, p.score if p.type in (1, 4) else 0.0) for p in proto.pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.add_special_tokens(["<s>", "</s>", "<unk>"])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", 2)])
    d = os.path.join(OUT, "hf_precompiled"); os.makedirs(d); tok.save(os.path.join(d, "tokenizer.json"))
    hf_expected("hf_precompiled", tok, lines, whole)

    # ---- HF WordPiece (BERT-like, spelled with generic components) ----
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tr = trainers.WordPieceTrainer(vocab_size=1500, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                   show_progress=False)
    tok.train([train_txt], tr)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    d = os.path.join(OUT, "hf_wordpiece"); os.makedirs(d); tok.save(os.path.join(d, "tokenizer.json"))
    hf_expected("hf_wordpiece", tok, lines, whole)

def hf_expected(kind, hf, lines, whole):
    write_expected(kind, lines, whole, lambda s: hf.encode(s, add_special_tokens=True).ids,
                   lambda s: hf.encode(s, add_special_tokens=False).ids,
                   lambda ids: hf.decode(ids, skip_special_tokens=False))

if __name__ == "__main__":
    main()
