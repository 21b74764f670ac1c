#!/usr/bin/env python3
"""lm-eval 0.4.13's exact loglikelihood rules, one case per branch of TemplateLM.loglikelihood and
_encode_pair, recorded from lm-eval itself (HFLM on the demo model exported to HF GPT-2, float32):

  Tests/Fixtures/lmeval/branches.json   per case: context, continuation, the token ids lm-eval scored
                                        (context_enc, continuation_enc, captured at _loglikelihood_tokens),
                                        its (logprob, is_greedy), or the exception it raised.

Branches (lm_eval/api/model.py): context == "" with the continuation's first token != prefix_token_id
-> ([prefix], cont); == prefix -> (cont[:1], cont[1:]); otherwise _encode_pair: trailing whitespace of the
context moved to the continuation (n_spaces = len(context) - len(context.rstrip())), whole = enc(ctx+cont),
context_enc = enc(ctx), continuation_enc = whole[len(context_enc):] (also when the context becomes empty).
Needs no ../shared. Run: /work/venv-lmeval/bin/python scripts/fixtures_lmeval_branches.py
"""
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_lmeval import REPO, demo_to_hf  # noqa: E402

CASES = [
    ("The capital", " of France"),            # plain
    ("The capital ", "of France"),            # one trailing space moves
    ("The capital \n\t ", "of France"),       # several trailing whitespace characters move
    ("", "Hello world"),                       # empty context, first token is not the prefix
    ("", "<|endoftext|>Hello world"),          # empty context, continuation starts with the prefix token
    ("", "<|endoftext|>"),                     # ... and is only the prefix token (empty continuation left)
    ("   ", "Hello"),                          # whitespace-only context: empty after the move
    ("hello wor", "ld"),                       # the boundary falls inside a word
    ("Caf", "é au lait"),                     # inside a multi-byte character's word
    ("Hello", ""),                             # empty continuation
    ("", ""),                                  # both empty
]


def main():
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    torch.manual_seed(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "demo"; d.mkdir()
        demo_to_hf(d)
        lm = HFLM(pretrained=str(d), dtype="float32", batch_size=1, device="cpu")
        seen = []
        orig = lm._loglikelihood_tokens

        def capture(reqs, **kw):
            seen.extend((list(c), list(x)) for _, c, x in reqs)
            return orig(reqs, **kw)

        lm._loglikelihood_tokens = capture
        for ctx, cont in CASES:
            seen.clear()
            case = {"context": ctx, "continuation": cont, "prefix_token_id": lm.prefix_token_id}
            try:
                (lp, greedy), = lm.loglikelihood([Instance("loglikelihood", {}, (ctx, cont), 0)], disable_tqdm=True)
                case.update(context_enc=seen[0][0], continuation_enc=seen[0][1], logprob=lp, is_greedy=bool(greedy))
            except Exception as e:  # lm-eval itself fails on this input: recorded, Turing must refuse it
                case.update(error=type(e).__name__, message=str(e)[:200])
                if seen:
                    case.update(context_enc=seen[0][0], continuation_enc=seen[0][1])
            out.append(case)
    path = REPO / "Tests/Fixtures/lmeval/branches.json"
    path.write_text(json.dumps({"lm_eval": "0.4.13", "model": "checkpoints/demo as HF GPT-2, float32", "cases": out},
                               indent=1, ensure_ascii=False) + "\n")
    print(path)


if __name__ == "__main__":
    main()
