#!/usr/bin/env bash
# Builds the Worker into build/ with worker-build, using the local wasm-bindgen and npm's
# wasm-opt instead of worker-build's downloads. Called by wrangler ([build] in wrangler.toml),
# scripts/dev.sh and scripts/test.sh. WORKER_BUILD_NO_OPT=1 skips wasm-opt (fast dev builds);
# KEEP_NAMES=1 keeps the function names, for tests/bench/size-parts.mjs and profiles.
set -euo pipefail
cd "$(dirname "$0")/.."
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
if [ "${WORKER_BUILD_NO_OPT:-0}" = "1" ]; then
  exec worker-build --release --no-opt
fi
worker-build --release
# worker-build always keeps the name section (--debuginfo); nothing needs it at run time, and
# dropping it makes the upload about 13% smaller. The same pass runs -Oz again until it stops
# shrinking (--converge): worker-build's single -Oz pass leaves 2.2 KB gzipped (12 s here).
"$WASM_OPT_BIN" build/index_bg.wasm --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -Oz --converge $([ "${KEEP_NAMES:-0}" = "1" ] && echo -g || echo --strip-debug) -o build/index_bg.wasm
