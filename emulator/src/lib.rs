//! A local emulator of the Auth0 Authentication API (client credentials
//! token endpoint) and the Management API endpoints an invite service uses:
//! users (including search and deletion), roles, role assignment, tickets
//! and verification-email jobs, the hosted pages that ticket links open, plus
//! Auth0's `POST /dbconnections/change_password` and a fake Resend-style
//! email API (`POST /emails`) whose messages land in an outbox, and a
//! stand-in for Cloudflare Turnstile's `POST /turnstile/v0/siteverify`.
//!
//! It answers like Auth0 (status codes, error bodies, `errorCode`s,
//! `x-ratelimit-*` headers), keeps everything in memory, and adds a control
//! API under `/__emulator/` for tests (stats, reset, fault injection, rate
//! limits, 429 storms, search lag, token revocation, simulated user logins,
//! ticket validity, inspection of stored data).
//!
//! Start it in-process with [`start`]:
//!
//! ```no_run
//! let handle = auth0_emulator::start(auth0_emulator::Options {
//!     port: 0,
//!     ..Default::default()
//! })
//! .expect("bind");
//! println!("{}", handle.base_url());
//! ```

pub mod api;
pub mod control;
pub mod emailapi;
pub mod hosted;
pub mod options;
pub mod query;
pub mod ratelimit;
pub mod server;
pub mod state;
pub mod turnstile;
pub mod util;
pub mod validate;

pub use options::{parse_args, Command, Options, USAGE};
pub use ratelimit::RateLimitSetting;
pub use server::{start, Handle};
