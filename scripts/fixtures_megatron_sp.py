#!/work/venv-tok/bin/python
"""Megatron-LM's SentencePiece tokenizer classes, run over small sentencepiece models: the ids Turing must reproduce
when a checkpoint's saved args name tokenizer_type SentencePieceTokenizer, GPTSentencePieceTokenizer or
Llama2Tokenizer (issue 14).

The classes are not pip-installable (megatron-core ships megatron/core only; megatron/training/tokenizer was removed
from Megatron-LM in 32570939 "fully remove legacy tokenizer system"), so they are copied VERBATIM below from
  NVIDIA/Megatron-LM megatron/training/tokenizer/tokenizer.py at commit 6cf285b23889ab4b6b225d2896b3ed1744685119
  (lines 371-628: _SentencePieceTokenizer, _GPTSentencePieceTokenizer, _Llama2Tokenizer),
with their base class MegatronLegacyTokenizer (megatron/core/datasets/megatron_tokenizer.py, same commit) reduced to
its constructor's bookkeeping (no logging).

Writes Tests/Fixtures/tokenizers/megatron_sp/:
  ud.model          a sentencepiece BPE model trained here (seeded, single thread) on the first 4000 lines of
                    tinyshakespeare, with user-defined symbols <EOD> and <SEP> and pad enabled (pad_id 3, "<pad>"), identity normalization:
                    Megatron reuses these pieces instead of appending new ids;
  expected.json     per case: the tokenizer type, model file (relative to Tests/Fixtures/tokenizers), vocab_extra_ids,
                    vocab_size, cls/sep/eod/mask/pad/bos/eos ids (-1 where the class has none),
                    additional_special_tokens_ids, and for each test text its `tokenize` ids and `detokenize` string.
Test texts: the first 80 lines of kinds/corpus.txt.bz2 and hand-written strings holding every special string.
Usage: /work/venv-tok/bin/python scripts/fixtures_megatron_sp.py   (sentencepiece 0.2.3)
       [TURING_SHARED_DATA=/work/shared/data]
"""
import bz2, json, os, shutil, sys
from abc import ABC
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TURING_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
FIX = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")
OUT = os.path.join(FIX, "megatron_sp")
WORK = "/tmp/turing_megatron_sp"


class MegatronLegacyTokenizer(ABC):
    # megatron/core/datasets/megatron_tokenizer.py: the constructor's bookkeeping only (its warning log dropped)
    def __init__(self, *tokenizer_paths, **tokenizer_options):
        self.unique_identifiers = OrderedDict()
        self.unique_identifiers["class"] = type(self).__name__
        self.unique_identifiers["tokenizer_path"] = list(tokenizer_paths)
        for option in tokenizer_options:
            self.unique_identifiers[option] = str(tokenizer_options[option])
        self.unique_description = json.dumps(self.unique_identifiers, indent=4)
        super().__init__()


# ---- verbatim from Megatron-LM megatron/training/tokenizer/tokenizer.py @ 6cf285b2, lines 371-628 ----
class _SentencePieceTokenizer(MegatronLegacyTokenizer):
    """SentencePieceTokenizer-Megatron wrapper"""

    def __init__(self, model_file, vocab_extra_ids=0):
        super().__init__(model_file, vocab_extra_ids=vocab_extra_ids)

        import sentencepiece

        self.tokenizer = sentencepiece.SentencePieceProcessor(model_file=model_file)
        self._initalize(vocab_extra_ids)

    def _populate_vocab(self):
        self._vocab = {}
        self._inv_vocab = {}

        for i in range(len(self.tokenizer)):
            t = self.tokenizer.id_to_piece(i)
            self._inv_vocab[i] = t
            self._vocab[t] = i

    def _initalize(self, vocab_extra_ids):
        self._populate_vocab()
        self._special_tokens = {}
        self._inv_special_tokens = {}

        self._t5_tokens = []

        def _add_special_token(t):
            if t not in self._vocab:
                next_id = len(self._vocab)
                self._vocab[t] = next_id
                self._inv_vocab[next_id] = t
            self._special_tokens[t] = self._vocab[t]
            self._inv_special_tokens[self._vocab[t]] = t

        _add_special_token('<CLS>')
        self._cls_id = self._vocab['<CLS>']
        _add_special_token('<SEP>')
        self._sep_id = self._vocab['<SEP>']
        _add_special_token('<EOD>')
        self._eod_id = self._vocab['<EOD>']
        _add_special_token('<MASK>')
        self._mask_id = self._vocab['<MASK>']

        pad_id = self.tokenizer.pad_id()
        try:
            pad_token = self.tokenizer.id_to_piece(pad_id)
        except IndexError:
            pad_token = '<PAD>'
        _add_special_token(pad_token)
        self._pad_id = self._vocab[pad_token]

        bos_id = self.tokenizer.bos_id()
        try:
            bos_token = self.tokenizer.id_to_piece(bos_id)
        except IndexError:
            bos_token = '<BOS>'
        _add_special_token(bos_token)
        self._bos_id = self._vocab[bos_token]

        eos_id = self.tokenizer.eos_id()
        try:
            eos_token = self.tokenizer.id_to_piece(eos_id)
        except IndexError:
            eos_token = '<EOS>'
        _add_special_token(eos_token)
        self._eos_id = self._vocab[eos_token]

        for i in range(vocab_extra_ids):
            t = "<extra_id_{}>".format(i)
            _add_special_token(t)
            self._t5_tokens += [t]

    @property
    def vocab_size(self):
        return len(self._vocab)

    @property
    def vocab(self):
        return self._vocab

    @property
    def inv_vocab(self):
        return self._inv_vocab

    @property
    def decoder(self):
        return self._inv_vocab

    @property
    def encoder(self):
        return self._vocab

    # From:
    # https://github.com/NVIDIA/NeMo/blob/c8fa217e811d60d11d014827c7f3845ff6c99ae7/nemo/collections/common/tokenizers/sentencepiece_tokenizer.py#L89
    def tokenize(self, text):
        ids = []
        idx = 0

        while 1:
            indices = {}
            for token in self._special_tokens:
                try:
                    indices[token] = text[idx:].index(token)
                except ValueError:
                    continue
            if len(indices) == 0:
                break

            next_token = min(indices, key=indices.get)
            next_idx = idx + indices[next_token]

            ids.extend(self.tokenizer.encode_as_ids(text[idx:next_idx]))
            ids.append(self._special_tokens[next_token])
            idx = next_idx + len(next_token)

        ids.extend(self.tokenizer.encode_as_ids(text[idx:]))
        return ids

    # From:
    # https://github.com/NVIDIA/NeMo/blob/c8fa217e811d60d11d014827c7f3845ff6c99ae7/nemo/collections/common/tokenizers/sentencepiece_tokenizer.py#L125
    def detokenize(self, ids):
        text = ""
        last_i = 0

        for i, id in enumerate(ids):
            if id in self._inv_special_tokens:
                text += self.tokenizer.decode_ids(ids[last_i:i]) + " "
                text += self._inv_special_tokens[id] + " "
                last_i = i + 1

        text += self.tokenizer.decode_ids(ids[last_i:])
        return text

    def offsets(self, ids: list[int], text: str) -> list[int]:
        return [p.begin for p in self.tokenizer.decode_ids_as_immutable_proto(ids).pieces]

    @property
    def cls(self):
        return self._cls_id

    @property
    def sep(self):
        return self._sep_id

    @property
    def pad(self):
        return self._pad_id

    @property
    def bos(self):
        return self._bos_id

    @property
    def eod(self):
        return self._eod_id

    @property
    def eos(self):
        return self._eos_id

    @property
    def mask(self):
        return self._mask_id

    @property
    def additional_special_tokens_ids(self):
        return [self.vocab[k] for k in self._t5_tokens]


class _GPTSentencePieceTokenizer(_SentencePieceTokenizer):
    """SentencePieceTokenizer-Megatron wrapper"""

    def __init__(self, model_file):
        super().__init__(model_file, vocab_extra_ids=0)

    def _initalize(self, vocab_extra_ids):
        self._populate_vocab()

        self._pad_id = self.tokenizer.pad_id()
        self._bos_id = self.tokenizer.bos_id()
        self._eos_id = self.tokenizer.eos_id()

    def tokenize(self, text):
        return self.tokenizer.encode_as_ids(text)

    def detokenize(self, ids):
        return self.tokenizer.decode_ids(ids)

    @property
    def cls(self):
        return -1

    @property
    def sep(self):
        return -1

    @property
    def mask(self):
        return -1

    @property
    def eod(self):
        return self._eos_id

    @property
    def additional_special_tokens_ids(self):
        return None


class _Llama2Tokenizer(_SentencePieceTokenizer):
    """SentencePieceTokenizer-Megatron wrapper"""

    def __init__(self, model_file):
        super().__init__(model_file, vocab_extra_ids=0)

    def _initalize(self, vocab_extra_ids):
        self._populate_vocab()

        # BOS / EOS token IDs
        self.n_words: int = self.tokenizer.vocab_size()
        self.bos_id: int = self.tokenizer.bos_id()
        self.eos_id: int = self.tokenizer.eos_id()
        self.pad_id: int = self.tokenizer.pad_id()
        assert self.tokenizer.vocab_size() == self.tokenizer.get_piece_size()

    def tokenize(self, s: str, bos=True, eos=False):
        '''Default args for text completion, not chat/dialog.'''
        assert type(s) is str
        t = self.tokenizer.encode(s)
        if bos:
            t = [self.bos_id] + t
        if eos:
            t = t + [self.eos_id]
        return t

    def detokenize(self, ids):
        return self.tokenizer.decode_ids(ids)

    @property
    def cls(self):
        return -1

    @property
    def sep(self):
        return -1

    @property
    def mask(self):
        return -1

    @property
    def eod(self):
        return self.eos_id

    @property
    def additional_special_tokens_ids(self):
        return None
# ---- end of the verbatim copy ----


TEXTS = [
    "", " ", "<EOD>", "hello<EOD>world", "hello <EOD> world", "<EOD><EOD>", "a<CLS>b<SEP>c<MASK>d<PAD>e",
    "<s>start</s>", " <s> spaced </s> ", "<pad> and <unk> and <BOS><EOS>", "<extra_id_0>", "<extra_id_1><extra_id_10>x",
    "t5 <extra_id_11> span <extra_id_2> end", "<extra_id_99> not one", "<EO<EOD>D>", "<<SEP>>", "<SEP",
    "mixed 日本語<EOD>émoji 👩‍💻<MASK>\r\n tail", "line one\nline two<EOD>\n", "   leading spaces<CLS>",
]


def value(t, name):
    """t.pad / t.bos / t.eos; _Llama2Tokenizer's inherited properties read attributes it never sets (AttributeError
    in Megatron too), so its own pad_id / bos_id / eos_id attributes are recorded instead."""
    try: return getattr(t, name)
    except AttributeError: return getattr(t, name + "_id")


def main():
    import sentencepiece as spm
    shakes = os.path.join(DATA, "tinyshakespeare", "input.txt")
    if not os.path.exists(shakes): sys.exit(f"shared data not found: {shakes}")
    shutil.rmtree(WORK, ignore_errors=True); os.makedirs(WORK); os.makedirs(OUT, exist_ok=True)
    train = os.path.join(WORK, "train.txt")
    with open(train, "w", encoding="utf-8") as f:
        f.write("\n".join(l for l in open(shakes, encoding="utf-8").read().split("\n")[:4000] if l.strip()) + "\n")
    spm.SentencePieceTrainer.train(input=train, model_prefix=os.path.join(WORK, "ud"), vocab_size=400, model_type="bpe",
        user_defined_symbols=["<EOD>", "<SEP>"], pad_id=3, pad_piece="<pad>", byte_fallback=True,
        character_coverage=1.0, normalization_rule_name="identity", minloglevel=2, num_threads=1, seed_sentencepiece_size=100000)
    shutil.copy(os.path.join(WORK, "ud.model"), os.path.join(OUT, "ud.model"))
    corpus = bz2.decompress(open(os.path.join(FIX, "kinds", "corpus.txt.bz2"), "rb").read()).decode().split("\n")
    texts = TEXTS + corpus[:80]
    cases = [("SentencePieceTokenizer", "kinds/sp_bpe/tokenizer.model", 0),
             ("SentencePieceTokenizer", "kinds/sp_bpe/tokenizer.model", 12),
             ("SentencePieceTokenizer", "kinds/sp_unigram/tokenizer.model", 3),
             ("SentencePieceTokenizer", "megatron_sp/ud.model", 2),
             ("GPTSentencePieceTokenizer", "kinds/sp_bpe/tokenizer.model", 0),
             ("GPTSentencePieceTokenizer", "megatron_sp/ud.model", 0),
             ("Llama2Tokenizer", "kinds/sp_bpe/tokenizer.model", 0)]
    out = []
    for kind, model, extra in cases:
        path = os.path.join(FIX, model)
        if kind == "SentencePieceTokenizer": t = _SentencePieceTokenizer(path, vocab_extra_ids=extra)
        elif kind == "GPTSentencePieceTokenizer": t = _GPTSentencePieceTokenizer(path)
        else: t = _Llama2Tokenizer(path)
        ids = [list(map(int, t.tokenize(s))) for s in texts]
        out.append({"tokenizer_type": kind, "model": model, "vocab_extra_ids": extra, "vocab_size": t.vocab_size,
                    "cls": t.cls, "sep": t.sep, "eod": t.eod, "mask": t.mask,
                    "pad": value(t, "pad"), "bos": value(t, "bos"), "eos": value(t, "eos"),
                    "additional_special_tokens_ids": t.additional_special_tokens_ids,
                    "texts": [{"text": s, "ids": i, "detokenize": t.detokenize(i)} for s, i in zip(texts, ids)]})
        print(kind, model, extra, "vocab", t.vocab_size, "eod", t.eod)
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
