//! The invite service end to end on the host: the real core over a fake transport (a
//! scripted Auth0), a fake KV store, a fake clock and a deterministic random source.
//!
//! One test binary, one module per route over the shared fakes in `support`.

// Tests may parse JSON text any way (clippy.toml bans `from_str` for the wasm's sake).
#![allow(clippy::disallowed_methods)]

// Host only: proptest does not build for wasm32 (see core/Cargo.toml).
#[cfg(not(target_arch = "wasm32"))]
mod interleavings;
mod invitees;
mod invites;
mod openapi;
mod public;
mod queued;
mod security;
mod signups;
mod skew;
mod support;
mod upstream;
mod webhooks;
