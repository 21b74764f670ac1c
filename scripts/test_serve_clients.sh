#!/usr/bin/env bash
# Python clients of `turing serve` (the openai package, lm-eval 0.4.13 local-completions, Megatron's CLI and HELM's
# request shapes): scripts/test_serve_clients.py, in a venv made here from PyPI (about 800 MB, no torch; kept in
# .build/ so a second run reuses it). Python is a test-time client only; the server is the Swift binary.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TURING_CLIENT_VENV:-.build/serve-clients-venv}"
if ! "$VENV/bin/python" -c "import lm_eval, openai, tenacity, aiohttp" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "lm-eval[api]==0.4.13" "openai>=1.40,<4"
fi
[ -x "${TURING_BIN:-.build/debug/turing}" ] || swift build --product turing
export TURING_SHARED_DATA="${TURING_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
TURING_BIN="${TURING_BIN:-.build/debug/turing}" "$VENV/bin/python" scripts/test_serve_clients.py "$@"
