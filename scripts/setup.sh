#!/usr/bin/env bash
# Installs what building and testing need, skipping whatever is already there:
# the wasm32 target, rustfmt/clippy, the release builds' pinned nightly (scripts/toolchain.sh:
# minimal profile, rust-src and the wasm32 target, about a minute), worker-build,
# wasm-bindgen-cli at the Cargo.lock version, the npm packages (wrangler, miniflare, binaryen's wasm-opt, playwright-core) and Debian's
# Chromium for the browser tests. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for comp in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$comp"; then
    say "rustup component add $comp"
    rustup component add "$comp"
  fi
done

source scripts/toolchain.sh
if ! rustup run "$SIZE_TOOLCHAIN" rustc --print sysroot >/dev/null 2>&1 \
  || ! rustup component list --installed --toolchain "$SIZE_TOOLCHAIN" | grep -q '^rust-src' \
  || ! rustup target list --installed --toolchain "$SIZE_TOOLCHAIN" | grep -qx wasm32-unknown-unknown; then
  say "rustup toolchain install $SIZE_TOOLCHAIN (release builds; about a minute, once)"
  rustup toolchain install "$SIZE_TOOLCHAIN" --profile minimal --component rust-src \
    --target wasm32-unknown-unknown
fi

if [ "$(worker-build --version 2>/dev/null || true)" != "$WORKER_BUILD_VERSION" ]; then
  say "cargo install worker-build $WORKER_BUILD_VERSION (about 10 minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

# The CLI must match the wasm-bindgen library exactly. No --locked: its lockfile pins a
# webpki-roots version the registry may lack.
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WB_VERSION" ] \
  || ! command -v wasm-bindgen-test-runner >/dev/null; then
  say "cargo install wasm-bindgen-cli $WB_VERSION (about 7 minutes, once)"
  cargo install wasm-bindgen-cli --version "$WB_VERSION" --force
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
fi

# Chromium for the browser end-to-end tests (tests/e2e/browser.test.mjs drives it with
# playwright-core; Playwright downloads nothing). Only for the test command (SETUP_BROWSER=1).
# Elsewhere than Debian/Ubuntu, install Chromium yourself and set CHROMIUM_PATH.
if [ "${SETUP_BROWSER:-0}" = "1" ] && [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
    say "apt-get install chromium (for the browser tests)"
    ${SUDO:-} apt-get update && ${SUDO:-} apt-get install -y --no-install-recommends chromium
  else
    echo "Chromium is needed by the browser tests: install it and set CHROMIUM_PATH" >&2
    exit 1
  fi
fi
