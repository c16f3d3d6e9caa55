#!/usr/bin/env bash
# Builds the Worker into build/ with worker-build, using the local wasm-bindgen and npm's
# wasm-opt instead of worker-build's downloads. Called by wrangler ([build] in wrangler.toml),
# scripts/dev.sh and scripts/test.sh. WORKER_BUILD_NO_OPT=1 skips wasm-opt (fast dev builds);
# KEEP_NAMES=1 keeps the function names, for tests/bench/size-parts.mjs and profiles;
# STABLE=1 builds a release on the stable toolchain, with panic messages (see below).
# An argument names another crate of the workspace to build the same way, into its own build/
# (scripts/report.sh: `bash scripts/build.sh tests/bench/floor`, the benchmarks' Rust floor).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
cd "${1:-.}"
if [ "${WORKER_BUILD_NO_OPT:-0}" = "1" ]; then
  # Dev builds stay on stable: quick, and a panic logs its message ("Rust panic: ...").
  exec worker-build --release --no-opt
fi
# A release is built by a pinned nightly (scripts/toolchain.sh) with the standard library
# compiled from source (build-std) and a panic compiled to a bare trap (-Cpanic=immediate-abort):
# Rust's panic machinery (the hook, message formatting, source locations) leaves the wasm, which
# makes the bundle 21 KB gzipped (7%) smaller at the same CPU per invite (docs/PERFORMANCE.md).
# What is lost: a panic's message. None is expected (the tests fail on any 1101); a trap still
# recovers as before (src/entry.mjs re-instantiates the module). To read a panic's message,
# rebuild with STABLE=1 and reproduce it.
if [ "${STABLE:-0}" != "1" ]; then
  export RUSTUP_TOOLCHAIN="$SIZE_TOOLCHAIN"
  export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none"
fi
worker-build --release
# worker-build always keeps the name section (--debuginfo); nothing needs it at run time, and
# dropping it makes the upload about 13% smaller. The same pass runs -Oz again until it stops
# shrinking (--converge): worker-build's single -Oz pass leaves 2.2 KB gzipped (12 s here).
"$WASM_OPT_BIN" build/index_bg.wasm --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -Oz --converge $([ "${KEEP_NAMES:-0}" = "1" ] && echo -g || echo --strip-debug) -o build/index_bg.wasm
