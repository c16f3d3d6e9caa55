//! The emulated Auth0 endpoints: `POST /oauth/token` (client credentials) and
//! the Management API routes, with their authentication, scope checks,
//! payload validation and Auth0-shaped responses.
//!
//! One submodule per area: `auth` (Authentication API), `mgmt` (Management
//! API routing, authentication, scopes), `users`, `search` (list and
//! search users), `roles`, `tickets`
//! (tickets and jobs) and `common` (shared helpers and the one catalogue of
//! named error replies).

mod auth;
mod common;
mod mgmt;
mod roles;
mod search;
mod tickets;
mod users;

pub use auth::{change_password, change_password_unavailable, token, CHANGE_PASSWORD_SENT};
pub use mgmt::{authenticate, handle, match_route, Route};

pub(crate) use common::user_not_found;
