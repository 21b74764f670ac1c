#!/usr/bin/env python3
"""Clients nobody on this team wrote, against `turing serve` (run by scripts/test_serve_clients.sh, which makes the venv).

  openai     the `openai` package: models.list(), greedy and seeded completions equal to `turing generate`,
             streaming (chunks add up to the non-streamed text), echo + logprobs (max_tokens 0), token-id prompts,
             stop strings, a wrong API key (401 -> AuthenticationError)                               [demo model]
  megatron   Megatron-LM's tools/text_generation_cli.py request and error handling (response.json()['message']),
             HELM's MegatronClient request and parsing                                                [demo model]
  shutdown   SIGTERM with requests in flight: every one answered 200, exit status 0                   [demo model]
  lmeval     lm-eval 0.4.13 `local-completions` (token-id prompts at batch 1 / 1 concurrent and batch 4 / 4
             concurrent, text prompts at batch 2 / 2 concurrent) over LAMBADA, PiQA and HellaSwag (first 20 documents
             of the 60-document subsets of ../shared/data, 0-shot) on Tests/Fixtures/models/gpt2-tiny-tok: accuracies and
             per-document decisions identical to `turing eval` and to lm-eval `--model hf` (Tests/Fixtures/lmeval), per-
             document log-likelihoods bit for bit those of `turing eval` (it scores each continuation after its cached
             context, the server whole prompts: the same bits, attention's decode variant being the product path bit for
             bit), perplexities within 1e-12 relative of it (aggregated in another order). Skipped, saying so, when
             ../shared/data is absent.

Usage: python scripts/test_serve_clients.py [openai megatron shutdown lmeval]   (TURING_BIN: the binary, default
.build/debug/turing; TURING_SHARED_DATA: the shared data folder)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TURING_SHARED_DATA", REPO.parent / "shared" / "data"))
TURING = os.environ.get("TURING_BIN", str(REPO / ".build" / "debug" / "turing"))
DEMO = str(REPO / "checkpoints" / "demo")
TINY = str(REPO / "Tests" / "Fixtures" / "models" / "gpt2-tiny-tok")
TINY_TOK = ["--vocab-file", str(SHARED / "megatron_indexed" / "gpt2-tiny-vocab.json"),
            "--merge-file", str(SHARED / "megatron_indexed" / "gpt2-tiny-merges.txt")]
failures: list[str] = []


def check(cond: bool, what: str):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


class Server:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([TURING, "serve", "--port", "0", *args], stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"turing serve exited ({self.proc.wait()}): {''.join(self.log)}")
            self.log.append(line)
            if line.startswith("listening on "):
                self.url = line.split()[-1].strip()
                break
        threading.Thread(target=lambda: [self.log.append(l) for l in self.proc.stderr], daemon=True).start()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def generate(prompt: str, *args: str) -> str:
    out = subprocess.run([TURING, "generate", "--checkpoint", DEMO, "--prompt", prompt, *args],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(prompt) and out.endswith("\n"), out
    return out[len(prompt):-1]


def test_openai():
    import openai
    s = Server("--checkpoint", DEMO, "--api-key", "k3y", "--model-name", "demo")
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="k3y")
        check([m.id for m in client.models.list()] == ["demo"], "openai: models.list() names the served model")
        for prompt in ["the cat", "a dog says"]:
            r = client.completions.create(model="demo", prompt=prompt, max_tokens=20, temperature=0)
            check(r.choices[0].text == generate(prompt, "--max-tokens", "20"), f"openai: greedy {prompt!r} equals turing generate")
            r = client.completions.create(model="demo", prompt=prompt, max_tokens=20, temperature=0.9, seed=7)
            seeded = r.choices[0].text
            check(seeded == generate(prompt, "--max-tokens", "20", "--temperature", "0.9", "--seed", "7"),
                  f"openai: seed 7 {prompt!r} equals turing generate --seed 7")
            chunks = list(client.completions.create(model="demo", prompt=prompt, max_tokens=20, temperature=0.9, seed=7, stream=True,
                                                    stream_options={"include_usage": True}))
            text = "".join(c.choices[0].text for c in chunks if c.choices)
            check(text == seeded, f"openai: streamed chunks of {prompt!r} add up to the non-streamed text")
            check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0, "openai: stream_options.include_usage gives usage last")
        r = client.completions.create(model="demo", prompt="the cat says meow .", max_tokens=0, echo=True, logprobs=3)
        lp = r.choices[0].logprobs
        n = r.usage.prompt_tokens
        check(r.choices[0].text == "the cat says meow ." and len(lp.token_logprobs) == n and lp.token_logprobs[0] is None
              and all(len(t) >= 3 for t in lp.top_logprobs[1:]), "openai: echo + logprobs with max_tokens 0 scores every prompt token")
        check(all(t[tok] == l for tok, l, t in zip(lp.tokens[1:], lp.token_logprobs[1:], lp.top_logprobs[1:])),
              "openai: top_logprobs hold the actual token with its log-probability")
        ids = client.post("/../tokenize", body={"prompt": "the cat"}, cast_to=object)["tokens"]
        a = client.completions.create(model="demo", prompt=ids, max_tokens=10, temperature=0).choices[0].text
        b = client.completions.create(model="demo", prompt="the cat", max_tokens=10, temperature=0).choices[0].text
        check(a == b, "openai: a token-id prompt gives the text prompt's completion")
        multi = client.completions.create(model="demo", prompt=[ids, ids], max_tokens=5, temperature=0, n=2)
        check(len(multi.choices) == 4 and sorted(c.index for c in multi.choices) == [0, 1, 2, 3], "openai: list of id lists x n=2 gives 4 choices")
        st = client.completions.create(model="demo", prompt="the cat", max_tokens=30, temperature=0, stop=[" ."])
        check(st.choices[0].text == generate("the cat", "--max-tokens", "30", "--stop", " .") and st.choices[0].finish_reason == "stop",
              "openai: stop string cuts the text as turing generate --stop")
        try:
            openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0).completions.create(model="demo", prompt="x", max_tokens=1)
            check(False, "openai: a wrong API key is refused")
        except openai.AuthenticationError:
            check(True, "openai: a wrong API key is refused (401 -> AuthenticationError)")
        try:
            client.completions.create(model="demo", prompt="x", max_tokens=1, temperature=5)
            check(False, "openai: temperature 5 is refused")
        except openai.BadRequestError as e:
            check(e.body.get("param") == "temperature" if isinstance(e.body, dict) else False, f"openai: temperature 5 -> BadRequestError naming the param ({e.body})")
    finally:
        check(s.stop() == 0, "openai: SIGTERM -> exit status 0")


def test_megatron():
    import requests
    s = Server("--checkpoint", DEMO)
    try:
        url = s.url + "/api"
        headers = {"Content-Type": "application/json"}   # tools/text_generation_cli.py
        data = {"prompts": ["the cat"], "tokens_to_generate": 8}
        response = requests.put(url, data=json.dumps(data), headers=headers)
        check(response.status_code == 200 and response.json()["text"][0].startswith("the cat"), "megatron cli: text[0] is the prompt and its continuation")
        response = requests.put(url, data=json.dumps({"prompts": ["the cat"], "tokens_to_generate": -3}), headers=headers)
        check(response.status_code != 200 and response.json()["message"] == "tokens_to_generate must be an integer greater than or equal to 0",
              "megatron cli: an error prints response.json()['message'] with Megatron's text")
        # HELM's MegatronClient: PUT with a JSON string body, json.loads(response.text) must be a dict
        raw = {"prompts": ["the cow"], "tokens_to_generate": 6, "temperature": 1.0, "top_k": 1}
        out = json.loads(requests.request(method="PUT", url=url, headers={"Content-Type": "application/json; charset=UTF-8"}, data=json.dumps(raw)).text)
        check(isinstance(out, dict) and len(out["text"]) == 1 and out["text"][0][len("the cow"):] == generate("the cow", "--max-tokens", "6"),
              "helm: text[0][len(prompt):] is the greedy (top_k 1) continuation")
        out = requests.put(url, json={"prompts": ["the cat says"], "tokens_to_generate": 2, "logprobs": True, "top_k": 1}).json()
        check(len(out["logprobs"][0]) == len(out["tokens"][0]) - 1 and len(out["segments"][0]) == len(out["tokens"][0]),
              "megatron: logprobs for every token after the first, one segment per token")
    finally:
        check(s.stop() == 0, "megatron: SIGTERM -> exit status 0")


def test_shutdown():
    import requests
    s = Server("--checkpoint", DEMO, "--max-batch", "4")
    results: list[int] = []
    def one(i):
        r = requests.post(s.url + "/v1/completions", json={"prompt": "the cat", "max_tokens": 100, "temperature": 1, "seed": i, "n": 4})
        results.append(r.status_code if r.ok and len(r.json()["choices"]) == 4 else -r.status_code)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    # every request in flight (its 4 sequences submitted: 24 live), so none is still being read when the
    # signal comes (a connection whose request was not yet read is closed at shutdown, as an idle one)
    deadline = time.time() + 30
    while time.time() < deadline:
        h = requests.get(s.url + "/health").json()
        if h["live"] >= 24 and h["active"] > 0:
            break
        time.sleep(0.002)
    rc = s.stop()
    for t in threads:
        t.join()
    check(rc == 0 and results == [200] * 6, f"shutdown: SIGTERM mid-generation finished all 6 requests (statuses {results}) and exited {rc}")


def lmeval_tasks(tmp: Path):
    sys.path.insert(0, str(REPO / "scripts"))
    import fixtures_lmeval as fx
    tdir, ddir = tmp / "tasks", tmp / "data"
    tdir.mkdir(); ddir.mkdir()
    fx.copy_task_helpers(tdir)
    names = ["lambada_openai", "piqa", "hellaswag"]
    for task in names:
        spec = fx.TASKS[task]
        data = fx.subset(task, spec["files"], ddir)
        (tdir / f"fx_{task}.yaml").write_text(f"task: fx_{task}\ndataset_path: json\ndataset_name: null\n"
                                              f"dataset_kwargs:\n  data_files:\n    {spec['split']}: {data}\n" + spec["yaml"])
    return tdir, names


def close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def test_lmeval():
    if not (SHARED / "lambada").exists():
        print(f"skip lmeval: {SHARED} is absent (set TURING_SHARED_DATA)")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tdir, names = lmeval_tasks(tmp)
        tm = TaskManager(include_path=str(tdir))
        ref_dir = tmp / "turing_eval"
        subprocess.run([TURING, "eval", "--checkpoint", TINY, *TINY_TOK, "--tasks", ",".join(names), "--limit", "20", "--shots", "0",
                        "--output", str(ref_dir), "--no-cache"], check=True, capture_output=True)
        ref = json.loads((ref_dir / "results.json").read_text())["results"]
        ref_docs = {t: {d["doc_id"]: d for d in map(json.loads, (ref_dir / f"samples_{t}.jsonl").read_text().splitlines())} for t in names}
        s = Server("--checkpoint", TINY, *TINY_TOK, "--model-name", "gpt2-tiny-tok", "--max-batch", "8")
        try:
            for tokenized, batch, conc in [(True, 1, 1), (True, 4, 4), (False, 2, 2)]:
                res = lm_eval.simple_evaluate(
                    model="local-completions",
                    model_args=f"base_url={s.url}/v1/completions,model=gpt2-tiny-tok,tokenizer_backend=remote,tokenized_requests={tokenized},"
                               f"max_length=257,num_concurrent={conc},max_retries=1",
                    tasks=[f"fx_{t}" for t in names], num_fewshot=0, limit=20, batch_size=batch, log_samples=True, task_manager=tm,
                    random_seed=0, numpy_random_seed=1234, torch_random_seed=1234, fewshot_random_seed=1234)
                how = f"lm-eval local-completions ({'token ids' if tokenized else 'text'}, batch {batch}, {conc} concurrent)"
                for t in names:
                    got = res["results"][f"fx_{t}"]
                    fixture = json.loads((REPO / "Tests" / "Fixtures" / "lmeval" / f"{t}_0shot.json").read_text())
                    for metric in [m for m in got if "," in m]:
                        g, r, f = got[metric], ref[t][metric], fixture["metrics"][metric]
                        if metric.startswith("acc"):
                            check(g == r == f, f"{how}: {t} {metric} = {g} (turing eval {r}, lm-eval hf {f})")
                        else:
                            check(close(g, r, 1e-12) and close(g, f, 1e-5), f"{how}: {t} {metric} = {g} (turing eval {r}, lm-eval hf {f})")
                    docs = sorted(res["samples"][f"fx_{t}"], key=lambda d: d["doc_id"])
                    same = all([bool(x[0][1]) for x in d["resps"]] == ref_docs[t][d["doc_id"]]["is_greedy"]
                               and all(x[0][0] == l for x, l in zip(d["resps"], ref_docs[t][d["doc_id"]]["loglikelihoods"]))
                               for d in docs)
                    check(len(docs) == 20 and same, f"{how}: {t} per-document log-likelihoods (bit for bit) and is_greedy equal turing eval's")
        finally:
            check(s.stop() == 0, "lmeval: SIGTERM -> exit status 0")


if __name__ == "__main__":
    which = sys.argv[1:] or ["openai", "megatron", "shutdown", "lmeval"]
    for name in which:
        globals()[f"test_{name}"]()
    print(f"{len(failures)} failure(s)" + ("".join(f"\n  {f}" for f in failures)))
    sys.exit(1 if failures else 0)
