#!/usr/bin/env bash
# MPI end to end: `mpirun -np N turing <cmd> --tp T --pp P` must print exactly what the in-process
# run prints at the same layout (and at TP 1 x PP 1 with -np 1), byte for byte; a wrong process
# count and a failing rank must end the job with a clear error instead of hanging.
# Uses stories260K from the shared data ($TURING_SHARED_DATA, default ../shared/data); the output
# comparisons skip, saying so, when it is absent. Builds in debug unless TURING_BIN is given.
# Prints "N passed, M failed" last; exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TURING_BIN:-}" ]; then
  swift build --product turing >/dev/null || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
  TURING_BIN=.build/debug/turing
fi
T="$TURING_BIN"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
SHARED="${TURING_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
CKPT="$SHARED/models/stories260K/stories260K.bin"
LIMIT=120      # seconds: nothing here may hang
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
passed=0; failed=0
ok()   { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# same NAME NP LAYOUT-FLAGS... -- COMMAND-ARGS...: the in-process run and `mpirun -np NP` must exit
# 0 and print the same stdout; @OUT@ in the arguments is an output file, compared too.
same() {
  local name=$1 np=$2; shift 2
  local lay=(); while [ "$1" != "--" ]; do lay+=("$1"); shift; done; shift
  local out_a="$work/$name.a" out_b="$work/$name.b"
  timeout $LIMIT "$T" "${@//@OUT@/$out_a.file}" "${lay[@]}" > "$out_a" 2>"$work/$name.a.err"; local rc_a=$?
  timeout $LIMIT "${MPIRUN[@]}" -np "$np" "$T" "${@//@OUT@/$out_b.file}" "${lay[@]}" > "$out_b" 2>"$work/$name.b.err"; local rc_b=$?
  if [ $rc_a -ne 0 ] || [ $rc_b -ne 0 ]; then
    fail "$name: exit codes in-process $rc_a, mpirun $rc_b"; tail -5 "$work/$name.a.err" "$work/$name.b.err"; return
  fi
  if [ ! -s "$out_a" ] && [ ! -s "$out_a.file" ]; then fail "$name: no output"; return; fi
  if ! cmp -s "$out_a" "$out_b"; then fail "$name: stdout differs"; diff "$out_a" "$out_b" | head -10; return; fi
  if [ -e "$out_a.file" ] || [ -e "$out_b.file" ]; then
    if ! cmp -s "$out_a.file" "$out_b.file"; then fail "$name: output file differs"; diff "$out_a.file" "$out_b.file" | head -10; return; fi
  fi
  ok "$name"
}

score_in="$work/pairs.jsonl"
cat > "$score_in" <<'JSONL'
{"context": "Lily went to the park. She saw a big dog. The dog", "continuation": " was happy to see her."}
{"context": "Lily went to the park. She saw a big dog. The dog", "continuation": " ate the moon with a spoon."}
{"context": "Once upon a time, there was a ", "continuation": "little girl named Lily."}
{"context": "", "continuation": "Tom had a red ball."}
JSONL
rolling_in="$work/texts.jsonl"
cat > "$rolling_in" <<'JSONL'
{"text": "Once upon a time, there was a little boy named Tim. He liked to play with his toy car every day."}
{"text": "The sun was hot."}
JSONL

# A Megatron save (the demo model converted at TP 2 x PP 2; no shared data needed): under mpirun each
# process reads only its own shard (LoadOptions.rank), in-process the engine is built from the pieces;
# the outputs must still be the same.
MEG="$work/meg"; DEMO=checkpoints/demo
if timeout $LIMIT "$T" convert "$DEMO" --to megatron --tp 2 --pp 2 --output "$MEG" >/dev/null 2>"$work/meg.err"; then
  VOCAB=(--vocab-file "$DEMO/vocab.json" --merge-file "$DEMO/merges.txt")
  demo_in="$work/demo.jsonl"
  printf '%s\n' '{"context": "The capital of", "continuation": " France is Paris."}' '{"context": "", "continuation": "Dogs bark."}' > "$demo_in"
  for lay in "2 2" "2 1" "1 2"; do
    set -- $lay; tp=$1; pp=$2; np=$((tp * pp))
    same "megatron-generate-tp${tp}pp${pp}" $np --tp $tp --pp $pp -- generate --checkpoint "$MEG" "${VOCAB[@]}" --prompt "The capital of" --max-tokens 20
    same "megatron-score-tp${tp}pp${pp}" $np --tp $tp --pp $pp -- score --checkpoint "$MEG" "${VOCAB[@]}" --requests "$demo_in" --output @OUT@
  done
  # eval: each process still reads only its shard; the weights hash (read a layer at a time) and the
  # metrics must equal the in-process run's.
  ev=(eval --checkpoint "$MEG" "${VOCAB[@]}" --tasks demo_facts,demo_count --tasks-dir tasks --limit 30 --no-cache --tp 2 --pp 2)
  timeout $LIMIT "$T" "${ev[@]}" --output "$work/ev.a" > "$work/ev.a.out" 2>"$work/ev.a.err"; rc_a=$?
  timeout $LIMIT "${MPIRUN[@]}" -np 4 "$T" "${ev[@]}" --output "$work/ev.b" > "$work/ev.b.out" 2>"$work/ev.b.err"; rc_b=$?
  hash_a=$(grep -o '"weights_hash" *: *"[^"]*"' "$work/ev.a/results.json" 2>/dev/null)
  hash_b=$(grep -o '"weights_hash" *: *"[^"]*"' "$work/ev.b/results.json" 2>/dev/null)
  if [ $rc_a -ne 0 ] || [ $rc_b -ne 0 ]; then fail "megatron-eval-tp2pp2: exit codes in-process $rc_a, mpirun $rc_b"; tail -3 "$work/ev.a.err" "$work/ev.b.err"
  elif [ -z "$hash_a" ] || [ "$hash_a" != "$hash_b" ]; then fail "megatron-eval-tp2pp2: weights hash '$hash_a' vs '$hash_b'"
  elif ! cmp -s "$work/ev.a.out" "$work/ev.b.out"; then fail "megatron-eval-tp2pp2: stdout differs"; diff "$work/ev.a.out" "$work/ev.b.out" | head -10
  else ok "megatron-eval-tp2pp2 ($hash_a)"; fi
else
  fail "convert the demo model to a Megatron save"; tail -3 "$work/meg.err"
fi

if [ -f "$CKPT" ]; then
  for lay in "1 1" "2 1" "1 2" "2 2"; do
    set -- $lay; tp=$1; pp=$2; np=$((tp * pp))
    same "generate-greedy-tp${tp}pp${pp}" $np --tp $tp --pp $pp -- generate --checkpoint "$CKPT" --prompt "Once upon a time" --max-tokens 60
    same "generate-sampled-batch-tp${tp}pp${pp}" $np --tp $tp --pp $pp -- generate --checkpoint "$CKPT" \
      --prompt "Once upon a time" --prompt "Tom and Lily" --prompt "The cat" --max-tokens 40 --temperature 0.8 --top-p 0.9 --seed 7
    same "score-tp${tp}pp${pp}" $np --tp $tp --pp $pp -- score --checkpoint "$CKPT" --requests "$score_in" --output @OUT@
    same "score-rolling-tp${tp}pp${pp}" $np --tp $tp --pp $pp -- score --checkpoint "$CKPT" --requests "$rolling_in" --output @OUT@ --rolling
  done
  same "generate-microbatches-tp1pp2" 2 --tp 1 --pp 2 --micro-batches 3 -- generate --checkpoint "$CKPT" \
    --prompt "Once upon a time" --prompt "Tom and Lily" --prompt "The cat" --max-tokens 30
  # rank 0 alone writes: the output file appears once, stdout is one copy
  n=$(timeout $LIMIT "${MPIRUN[@]}" -np 4 "$T" generate --checkpoint "$CKPT" --prompt "Once upon a time" --max-tokens 20 --tp 2 --pp 2 2>/dev/null | grep -c "Once upon a time")
  if [ "$n" = 1 ]; then ok "only rank 0 prints"; else fail "only rank 0 prints: the prompt appeared $n times"; fi

  # wrong process count: every rank names the constraint, the job fails, nothing hangs
  timeout $LIMIT "${MPIRUN[@]}" --tag-output -np 3 "$T" generate --checkpoint "$CKPT" --prompt "x" --max-tokens 5 --tp 2 --pp 2 >"$work/np.out" 2>&1; rc=$?
  k=$(grep "mpirun started 3 processes but --tp 2 x --pp 2 needs 4" "$work/np.out" | grep -o '^\[[0-9]*,[0-9]*\]' | sort -u | wc -l)
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$k" = 3 ]; then ok "wrong process count (exit $rc, 3 ranks report it)"
  else fail "wrong process count: exit $rc, $k of 3 ranks reported it"; cat "$work/np.out" | head -20; fi
else
  echo "SKIP output comparisons: $CKPT not found (set TURING_SHARED_DATA)"
fi

# an error after MPI is up (here on every rank: no such checkpoint) aborts the job, no hang
timeout $LIMIT "${MPIRUN[@]}" -np 2 "$T" generate --checkpoint "$work/missing.bin" --prompt "x" --tp 2 >"$work/err.out" 2>&1; rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "missing.bin" "$work/err.out" && grep -q "MPI_Abort" "$work/err.out"; then ok "failing rank aborts the job (exit $rc)"
else fail "failing rank aborts the job: exit $rc"; head -20 "$work/err.out"; fi

# a rank that never arrives: the others time out (TURING_MPI_TIMEOUT) and abort instead of hanging
timeout $LIMIT env TURING_MPI_TIMEOUT=3 TURING_MPI_TEST_STALL_RANK=1 "${MPIRUN[@]}" -np 2 "$T" bench --layers 2 --hidden 64 --heads 4 --vocab 128 \
  --prompt-length 8 --decode-tokens 2 --reps 1 --batch 1 --tp 2 --json >"$work/stall.out" 2>&1; rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "did not arrive within 3 s" "$work/stall.out"; then ok "hung rank: the others time out and abort (exit $rc)"
else fail "hung rank: exit $rc"; head -20 "$work/stall.out"; fi

# a tiny random model needs no tokenizer or shared data: bench runs under mpirun at TP 2 and PP 2
for lay in "--tp 2" "--pp 2"; do
  if timeout $LIMIT "${MPIRUN[@]}" -np 2 "$T" bench --layers 2 --hidden 64 --heads 4 --vocab 128 --prompt-length 8 --decode-tokens 4 \
       --reps 1 $lay --json >"$work/bench.out" 2>"$work/bench.err" && grep -q '"decode_b1"' "$work/bench.out"; then ok "bench under mpirun $lay"
  else fail "bench under mpirun $lay"; tail -5 "$work/bench.err"; fi
done

# training over MPI against PyTorch (Tests/Fixtures/training, scripts/fixtures_training.py): first-step
# gradients, gradient norm and 20 losses within 1e-4 relative, one rank per process
FX=Tests/Fixtures
for spec in "gpt2-tiny-rand micro_ 4 --tp 2 --pp 2" "llama-tiny-rand llama_micro_ 4 --tp 2 --pp 2" \
            "gpt2-tiny-rand micro_ 4 --tp 2 --dp 2" "llama-tiny-rand llama_micro_ 4 --pp 2 --dp 2 --recompute-activations"; do
  set -- $spec; m=$1; pre=$2; np=$3; shift 3
  if timeout $LIMIT "${MPIRUN[@]}" -np $np "$T" train-check --model $FX/models/$m --reference $FX/training/${pre}expected.json \
       --gradients $FX/training/${pre}first_step_grads.safetensors "$@" >"$work/tc.out" 2>"$work/tc.err" && grep -q '"passed":true' "$work/tc.out"; then
    ok "train-check $m $* over $np MPI processes: $(grep -o '"worst_gradient_relative":[^,]*' "$work/tc.out"), $(grep -o '"worst_loss_relative":[^,}]*' "$work/tc.out")"
  else fail "train-check $m $* over $np MPI processes"; cat "$work/tc.out"; tail -5 "$work/tc.err"; fi
done

# finetune under mpirun prints the losses of the in-process run at the same layout, and saves the same checkpoint
ftdata="$work/ft.jsonl"
for i in $(seq 1 40); do echo '{"text": "the sky is blue. the grass is green. a lemon is sour. one two three four five."}'; done > "$ftdata"
ft=(finetune --checkpoint checkpoints/demo --data "$ftdata" --seq-length 24 --micro-batch 2 --global-batch 8 --steps 3 --lr 1e-3 --tp 2 --pp 2)
timeout $LIMIT "$T" "${ft[@]}" --save "$work/ft-a" 2>"$work/ft-a.err" | sed 's/ | [0-9]* tok\/s.*//' > "$work/ft-a.out"; rc_a=${PIPESTATUS[0]}
timeout $LIMIT "${MPIRUN[@]}" -np 4 "$T" "${ft[@]}" --save "$work/ft-b" 2>"$work/ft-b.err" | sed 's/ | [0-9]* tok\/s.*//' > "$work/ft-b.out"; rc_b=${PIPESTATUS[0]}
if [ $rc_a -eq 0 ] && [ $rc_b -eq 0 ] && [ "$(wc -l < "$work/ft-a.out")" = 3 ] && cmp -s "$work/ft-a.out" "$work/ft-b.out" \
   && cmp -s "$work/ft-a/iter_0000003/model.safetensors" "$work/ft-b/iter_0000003/model.safetensors"; then ok "finetune TP 2 x PP 2: mpirun = in-process (losses, saved weights)"
else fail "finetune TP 2 x PP 2 under mpirun: exit $rc_a/$rc_b"; diff "$work/ft-a.out" "$work/ft-b.out" | head; tail -3 "$work/ft-a.err" "$work/ft-b.err"; fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
