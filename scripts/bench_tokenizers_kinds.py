#!/work/venv-tok/bin/python
"""Single-thread encode throughput of every tokenizer kind: Turing against the reference libraries, same run.

For each kind of Tests/Fixtures/tokenizers/kinds (see scripts/fixtures_tokenizers_kinds.py) on its 210 KB corpus:
  - HF `tokenizers` (Rust) on the kind's tokenizer.json (for sp_bpe: the tokenizer.json transformers converts from
    it, hf_llama2; for sp_unigram: hf_precompiled, its vocabulary and charsmap converted as the T5/XLM-R converters
    write it; for tiktoken: the same vocabulary as hf_llama3), RAYON_NUM_THREADS=1;
  - the kind's own library where it is not `tokenizers` (sentencepiece, tiktoken);
  - Turing: `turing tokenize --tokenizer DIR --bench` (release build), single thread.
Protocol (as TokenizerBenchmark.run): one warm-up encode, then the best of REPEATS timed runs, for the whole file as
one string and for the file line by line; MB/s with 1 MB = 1e6 UTF-8 bytes. The whole table is measured ROUNDS
times (default 3) and each cell keeps its best: this VM's speed drifts by up to 1.5x over minutes, which a single
round turns into a ratio of two different moments. Prints a Markdown table.
Usage: swift build -c release --product turing && scripts/bench_tokenizers_kinds.py [REPEATS=5]
       (TURING_BIN=path: another turing binary, e.g. a copy built before a change; ROUNDS=n)
"""
import bz2, json, os, subprocess, sys, time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "kinds")
TURING = os.environ.get("TURING_BIN") or os.path.join(ROOT, ".build", "release", "turing")
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def best(f, arg):
    f(arg)
    t = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter(); f(arg); t = min(t, time.perf_counter() - t0)
    return t


def rates(enc, whole, lines):
    mb = len(whole.encode()) / 1e6
    return mb / best(enc, whole), mb / best(lambda ls: [enc(l) for l in ls], lines)


def main():
    whole = bz2.decompress(open(os.path.join(KINDS, "corpus.txt.bz2"), "rb").read()).decode()
    lines = whole.split("\n")
    best = {}   # kind -> [turing whole, turing lines, hf (whole, lines), own (name, (whole, lines))], best over rounds
    def keep(kind, tw, tl, hf, own):
        b = best.setdefault(kind, [0.0, 0.0, None, None])
        b[0], b[1] = max(b[0], tw), max(b[1], tl)
        if hf: b[2] = tuple(max(x, y) for x, y in zip(hf, b[2] or (0, 0)))
        if own: b[3] = (own[0], tuple(max(x, y) for x, y in zip(own[1], (b[3] or ("", (0, 0)))[1])))
    for _ in range(ROUNDS):
        measure(keep, whole, lines)
    rows = [(k, *v) for k, v in best.items()]
    print("| kind | Turing whole / lines MB/s | HF tokenizers whole / lines | x (lines) | own library whole / lines | x (lines) |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, tw, tl, hf, own in rows:
        hfs = f"{hf[0]:.2f} / {hf[1]:.2f}" if hf else "-"
        hfx = f"{tl / hf[1]:.1f}" if hf else "-"
        owns = f"{own[0]} {own[1][0]:.2f} / {own[1][1]:.2f}" if own else "-"
        ownx = f"{tl / own[1][1]:.1f}" if own else "-"
        print(f"| {kind} | {tw:.2f} / {tl:.2f} | {hfs} | {hfx} | {owns} | {ownx} |")


def measure(keep, whole, lines):
    import sentencepiece as spm, tiktoken, tiktoken.load
    from tokenizers import Tokenizer
    hf_for = {"sp_bpe": "hf_llama2", "tiktoken": "hf_llama3", "sp_unigram": "hf_precompiled"}
    for kind in ["sp_bpe", "sp_unigram", "hf_llama2", "hf_llama2_legacy", "hf_llama3", "hf_unigram_seq", "hf_wordpiece", "hf_precompiled", "tiktoken"]:
        d = os.path.join(KINDS, kind)
        hf_kind = hf_for.get(kind, kind)
        hf = None
        if hf_kind:
            t = Tokenizer.from_file(os.path.join(KINDS, hf_kind, "tokenizer.json"))
            hf = rates(lambda s: t.encode(s, add_special_tokens=False).ids, whole, lines)
        own = None
        if kind.startswith("sp_"):
            sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"), num_threads=1)
            own = ("sentencepiece", rates(sp.encode, whole, lines))
        if kind == "tiktoken":
            ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(d, "tokenizer.tiktoken"))
            enc = tiktoken.Encoding("bench", pat_str=PATTERN, mergeable_ranks=ranks,
                                    special_tokens={s: len(ranks) + i for i, s in enumerate(SPECIALS)})
            own = ("tiktoken", rates(lambda s: enc.encode(s, allowed_special="all"), whole, lines))
        r = subprocess.run([TURING, "tokenize", "--tokenizer", d, "--bench", "--repeats", str(REPEATS)],
                           input=whole.encode(), capture_output=True, check=True)
        tj = json.loads(r.stdout)
        keep(kind, tj["whole_mb_s"], tj["lines_mb_s"], hf, own)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from fixtures_tokenizers_kinds import LLAMA3_PATTERN as PATTERN, llama3_special_tokens
    SPECIALS = llama3_special_tokens()
    main()
