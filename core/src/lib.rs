//! The invite service's functional core: configuration, input validation, the Auth0
//! Management API client with its token cache and retry policy, and the HTTP API.
//!
//! Nothing here imports `worker`. Everything from the outside world (HTTP transport,
//! key-value store, clock, randomness) comes in through the traits in [`platform`], so the
//! whole service runs and is tested natively with `cargo test`.

// Tests may parse JSON text any way (clippy.toml bans `from_str` for the wasm's sake).
#![cfg_attr(test, allow(clippy::disallowed_methods))]
#![warn(missing_docs)]

pub mod api;
pub mod auth0;
pub mod config;
pub mod delivery;
pub mod email;
pub mod error;
pub mod gate;
pub mod http;
pub mod invite;
pub mod invitees;
pub mod page;
pub mod password;
pub mod payments;
pub mod platform;
pub mod public;
pub mod queue;
pub mod retry;
pub mod secret;
pub mod time;
pub mod token;
pub mod trusted;
pub mod webhook;

pub use api::{handle, Handled};
pub use config::Config;
pub use http::{BodyError, BodySource};
pub use platform::{
    Clock, Gate, HttpRequest, HttpResponse, InviteQueue, KvOp, Platform, RateLimit, Rng, Store,
    Transport,
};
pub use token::IsolateCache;
