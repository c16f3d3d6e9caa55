#!/usr/bin/env bash
# Burst benchmark: N public sign-ups at once against the built Worker, with the Auth0
# emulator limited to LIMIT Management calls per second (burst LIMIT) and the Worker's pacer set
# to the same rate. Prints answer latency, drain time, the rate achieved, 429s and duplicates
# (see tests/bench/burst.mjs). A report, not a test: it exits 0 whether or not goals are met.
# Usage: scripts/burst.sh [N] [LIMIT]   (defaults: 60 sign-ups, 2 rps, a free Auth0 tenant)
# Builds first unless build/ already holds a Worker (set REBUILD=1 to force).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${REBUILD:-0}" = "1" ] || [ ! -f build/index_bg.wasm ]; then bash scripts/build.sh; fi
cargo build -q -p auth0-emulator
node tests/bench/burst.mjs "$@"
