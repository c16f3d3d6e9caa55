#!/usr/bin/env bash
# Prints size and latency figures for the Worker (see tests/bench/report.mjs). Builds first
# unless build/ already holds a Worker (set REBUILD=1 to force).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${REBUILD:-0}" = "1" ] || [ ! -f build/index_bg.wasm ]; then bash scripts/build.sh; fi
# The Rust floor (tests/bench/floor), one of the report's references: a few seconds once the
# Worker's dependencies are built.
if [ "${REBUILD:-0}" = "1" ] || [ ! -f tests/bench/floor/build/index_bg.wasm ]; then
  bash scripts/build.sh tests/bench/floor
fi
cargo build -q -p auth0-emulator
node tests/bench/report.mjs
