#!/usr/bin/env bash
# Regenerate the built-in demo model (checkpoints/demo) and the demo tasks' data (tasks/data/demo_*.jsonl)
# from nothing: corpus, tokenizer, training from scratch (about 1-2 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product turing >/dev/null
rm -rf checkpoints/demo
.build/release/turing make-demo --output checkpoints/demo --task-data tasks/data --steps 800 "$@"
