#!/usr/bin/env bash
# Prints size and latency figures for the Worker (see tests/bench/report.mjs). Builds first
# unless build/ already holds a Worker (set REBUILD=1 to force).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${REBUILD:-0}" = "1" ] || [ ! -f build/index_bg.wasm ]; then bash scripts/build.sh; fi
cargo build -q -p auth0-emulator
node tests/bench/report.mjs
