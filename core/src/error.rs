//! The error types of the Auth0 and invite layers, and the one place that maps them to an
//! HTTP status and a stable machine-readable `code` ([`ApiError`]).

use thiserror::Error;

/// The scopes the Management API client grant needs; named in every `upstream_auth` hint.
pub const REQUIRED_SCOPES: &str =
    "create:users read:users update:users read:roles create:roles create:role_members create:user_tickets";

/// What went wrong talking to Auth0.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum Auth0Error {
    /// Auth0 refused our client credentials (token endpoint) or our token (401/403).
    #[error("Auth0 refused the {} ({status}): {message}", if *.token_endpoint { "client credentials" } else { "access token" })]
    Auth {
        /// Upstream status.
        status: u16,
        /// Auth0's message.
        message: String,
        /// Whether the token endpoint answered.
        token_endpoint: bool,
    },
    /// Auth0 kept answering 429 until the request deadline.
    #[error("Auth0 rate limit outlasted the request deadline")]
    RateLimited {
        /// Seconds the caller should wait.
        retry_after_sec: u64,
    },
    /// Auth0 kept failing (5xx, network, timeout) until the request deadline.
    #[error("Auth0 unavailable: {detail}")]
    Unavailable {
        /// What the last attempt saw.
        detail: String,
    },
    /// Auth0 rejected the payload (400), e.g. a password policy or a malformed field.
    #[error("Auth0 rejected the request: {message}")]
    Rejected {
        /// Auth0's message.
        message: String,
    },
    /// A status or body we did not expect; keeps the raw body for the log.
    #[error("unexpected Auth0 response {status} to {context}")]
    Unexpected {
        /// Upstream status.
        status: u16,
        /// Raw upstream body, for logs only.
        body: String,
        /// Which call it was.
        context: &'static str,
    },
}

/// A request the caller must fix.
#[derive(Clone, Debug, Error, PartialEq)]
#[error("{message}")]
pub struct ValidationError {
    /// HTTP status (400, 413, 415 or 422).
    pub status: u16,
    /// Stable error code.
    pub code: &'static str,
    /// The offending field, when there is one.
    pub field: Option<String>,
    /// Human-readable explanation.
    pub message: String,
}

impl ValidationError {
    /// A 422 naming `field`.
    pub fn field(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ValidationError {
            status: 422,
            code,
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
}

/// What went wrong with an invite.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum InviteError {
    /// The request was invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A requested role does not exist in Auth0 and `AUTO_CREATE_ROLES` is off.
    #[error("role {0} does not exist in Auth0")]
    RoleNotFound(String),
    /// Auth0 failed.
    #[error(transparent)]
    Auth0(#[from] Auth0Error),
    /// A local failure (randomness unavailable).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A response-ready error: status, stable code and a message safe to show the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable code (documented in docs/API.md).
    pub code: &'static str,
    /// Safe message.
    pub message: String,
    /// The offending field, if any.
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header, if any.
    pub retry_after_sec: Option<u64>,
    /// Detail for the log line only; never sent to the caller.
    pub log_detail: Option<String>,
}

impl ApiError {
    /// A new error without field, retry hint or log detail.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_sec: None,
            log_detail: None,
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError {
            field: e.field,
            ..ApiError::new(e.status, e.code, e.message)
        }
    }
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::Invalid(v) => v.into(),
            InviteError::RoleNotFound(name) => ApiError {
                field: Some("roles".into()),
                ..ApiError::new(
                    422,
                    "role_not_found",
                    format!(
                        "role '{name}' does not exist in Auth0; create it there or set AUTO_CREATE_ROLES=true"
                    ),
                )
            },
            InviteError::Internal(detail) => ApiError {
                log_detail: Some(detail),
                ..ApiError::new(500, "internal_error", "internal error; retrying is safe")
            },
            InviteError::Auth0(a) => a.into(),
        }
    }
}

impl From<Auth0Error> for ApiError {
    fn from(e: Auth0Error) -> Self {
        let detail = e.to_string();
        let mut out = match &e {
            Auth0Error::Auth { token_endpoint: true, .. } => ApiError::new(
                502,
                "upstream_auth",
                format!(
                    "Auth0 refused the client credentials: check AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET, and that the application is authorized for the Management API ({}) with the scopes: {REQUIRED_SCOPES}",
                    "AUTH0_AUDIENCE"
                ),
            ),
            Auth0Error::Auth { .. } => ApiError::new(
                502,
                "upstream_auth",
                format!(
                    "Auth0 refused the Management API token: check that the client grant has the scopes: {REQUIRED_SCOPES}"
                ),
            ),
            Auth0Error::RateLimited { retry_after_sec } => ApiError {
                retry_after_sec: Some(*retry_after_sec),
                ..ApiError::new(
                    503,
                    "upstream_rate_limited",
                    "Auth0 rate limit reached; retry after the Retry-After delay (retrying the same invite is safe)",
                )
            },
            Auth0Error::Unavailable { .. } => ApiError::new(
                502,
                "upstream_unavailable",
                "Auth0 did not answer successfully before the deadline; retrying the same invite is safe",
            ),
            Auth0Error::Rejected { message } => ApiError::new(
                422,
                "invite_rejected",
                format!("Auth0 rejected the invite: {message}"),
            ),
            Auth0Error::Unexpected { .. } => ApiError::new(
                502,
                "upstream_error",
                "Auth0 answered unexpectedly; retrying the same invite is safe",
            ),
        };
        out.log_detail = Some(match e {
            Auth0Error::Unexpected { body, .. } => format!("{detail}: {}", truncate(&body, 300)),
            _ => detail,
        });
        out
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
