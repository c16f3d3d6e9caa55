#!/usr/bin/env bash
# Command 2: run every check. Installs what is missing, then: rustfmt, clippy (host and
# wasm32), the host unit and flow tests, the wasm32 tests, one release build of the Worker
# (through `wrangler deploy --dry-run`, which also checks the deploy configuration),
# and the end-to-end suite (built Worker in workerd + KV, against the Auth0 emulator).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

SETUP_BROWSER=1 bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo clippy (wasm32)"
cargo clippy -p auth0-invite-worker -p invite-core -p rust-floor-worker --all-targets \
  --target wasm32-unknown-unknown -- -D warnings

step "unit and flow tests (host)"
cargo test --workspace
# The core's benchmark (core/benches/invite.rs), once, small and unoptimized: it keeps working.
N=200 cargo test -q -p invite-core --bench invite

step "wasm32 tests (wasm-bindgen-test in Node)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --release -p auth0-invite-worker --target wasm32-unknown-unknown --test wasm

step "build the Worker as \`wrangler deploy\` would (--dry-run: no account, nothing uploaded)"
# wrangler runs scripts/build.sh (wrangler.toml's [build]), so this is the one release build;
# it also checks that wrangler.toml and the bundle are what a deploy accepts.
WRANGLER_SEND_METRICS=false npx wrangler deploy --dry-run \
  --outdir "${CARGO_TARGET_DIR:-target}/deploy-dry-run"
cargo build -p auth0-emulator

step "bundle size budget (wasm + JS, gzip -9)"
node tests/bench/size.mjs --check

step "end-to-end tests (workerd via Miniflare + Auth0 emulator)"
node --test --test-concurrency=1 tests/e2e/
