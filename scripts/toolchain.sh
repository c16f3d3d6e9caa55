# The toolchain of release builds, sourced by scripts/setup.sh (which installs it) and
# scripts/build.sh (which uses it). A dated nightly, because build-std and
# -Cpanic=immediate-abort are unstable; everything else (tests, clippy, dev builds) uses stable.
# To move it: install the new date with rust-src and the wasm32 target, run scripts/test.sh and
# tests/bench/size.mjs, and record the size in tests/bench/size.mjs. Not every nightly has the
# wasm32 standard library (nightly-2026-05-19 has none).
SIZE_TOOLCHAIN=nightly-2026-05-20
