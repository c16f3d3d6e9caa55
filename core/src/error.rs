//! The one error catalogue. [`ErrorCode`] lists every stable `code` the API answers with
//! (docs/API.md has the same table), each with its status; the named constructors on
//! [`ApiError`] and [`ValidationError`] are the only places that build an error answer, and
//! the `From` impls here are the only mapping from upstream and invite failures to codes.

use thiserror::Error;

/// The scopes the Management API client grant needs; named in every `upstream_auth` hint.
pub const REQUIRED_SCOPES: &str =
    "create:users read:users update:users read:roles create:roles create:role_members create:user_tickets";

/// Every stable error code, with its HTTP status. The string forms are documented in
/// docs/API.md and never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the body is not JSON, or not a JSON object.
    InvalidJson,
    /// 400: a webhook's signature is missing, wrong or stale.
    InvalidSignature,
    /// 400: a field the route does not know.
    UnknownField,
    /// 401: missing or wrong API key.
    Unauthorized,
    /// 403: the public route was called from a page not in `ALLOWED_ORIGINS`.
    OriginNotAllowed,
    /// 403: Turnstile's token is missing or siteverify refused it.
    CaptchaFailed,
    /// 404: no such route.
    NotFound,
    /// 404: the webhook's secrets are not set.
    WebhookNotConfigured,
    /// 405: wrong method.
    MethodNotAllowed,
    /// 409: the address belongs to an account that is not an unaccepted invite.
    AccountExists,
    /// 413: the body is over the route's limit.
    PayloadTooLarge,
    /// 415: wrong content type.
    UnsupportedMediaType,
    /// 422: a required field is missing.
    MissingField,
    /// 422: the address is not valid.
    InvalidEmail,
    /// 422: a field has the wrong type, length or characters, or is reserved.
    InvalidField,
    /// 422: an `app_metadata` key not in `APP_METADATA_KEYS`.
    AppMetadataKeyNotAllowed,
    /// 422: a role not in `ALLOWED_ROLES`.
    RoleNotAllowed,
    /// 422: the role does not exist in Auth0 and `AUTO_CREATE_ROLES` is off.
    RoleNotFound,
    /// 422: `result_url` is not https or not allowlisted.
    ResultUrlNotAllowed,
    /// 422: `ticket_ttl_sec` out of range.
    TtlOutOfRange,
    /// 422: Auth0 refused the invite (400).
    InviteRejected,
    /// 429: too many public sign-ups from one client.
    RateLimited,
    /// 500: a local failure (no randomness).
    InternalError,
    /// 502: Auth0 refused the client credentials or the token's scopes.
    UpstreamAuth,
    /// 502: an upstream service kept failing until the deadline.
    UpstreamUnavailable,
    /// 502: an upstream service answered something unexpected.
    UpstreamError,
    /// 502: the email API refused `EMAIL_API_KEY`.
    EmailAuth,
    /// 502: the email API refused the message (sender, domain, payload).
    EmailRejected,
    /// 503: the Worker is misconfigured; `GET /healthz` lists the problems.
    ConfigInvalid,
    /// 503: an upstream rate limit outlasted the deadline, or the tenant's pacer is booked
    /// past it.
    UpstreamRateLimited,
    /// 503: the invite queue or the gate could not take the invite; nothing was done.
    QueueUnavailable,
    /// 409: only a failed invite can be retried.
    InviteNotFailed,
    /// 404: no account this service invited has that address or user id.
    InviteeNotFound,
    /// 409: the invitee has logged in: no new link, and no revoking.
    InviteAccepted,
    /// 409: the invite was revoked (the account is blocked): no new link.
    InviteRevoked,
    /// 429: a link was sent to this address within `RESEND_INTERVAL_SEC`.
    ResendTooSoon,
}

impl ErrorCode {
    /// Every code, for the documentation test.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidJson,
        ErrorCode::InvalidSignature,
        ErrorCode::UnknownField,
        ErrorCode::Unauthorized,
        ErrorCode::OriginNotAllowed,
        ErrorCode::CaptchaFailed,
        ErrorCode::NotFound,
        ErrorCode::WebhookNotConfigured,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AccountExists,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::MissingField,
        ErrorCode::InvalidEmail,
        ErrorCode::InvalidField,
        ErrorCode::AppMetadataKeyNotAllowed,
        ErrorCode::RoleNotAllowed,
        ErrorCode::RoleNotFound,
        ErrorCode::ResultUrlNotAllowed,
        ErrorCode::TtlOutOfRange,
        ErrorCode::InviteRejected,
        ErrorCode::RateLimited,
        ErrorCode::InternalError,
        ErrorCode::UpstreamAuth,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::UpstreamError,
        ErrorCode::EmailAuth,
        ErrorCode::EmailRejected,
        ErrorCode::ConfigInvalid,
        ErrorCode::UpstreamRateLimited,
        ErrorCode::QueueUnavailable,
        ErrorCode::InviteNotFailed,
        ErrorCode::InviteeNotFound,
        ErrorCode::InviteAccepted,
        ErrorCode::InviteRevoked,
        ErrorCode::ResendTooSoon,
    ];

    /// The stable string.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "invalid_json",
            InvalidSignature => "invalid_signature",
            UnknownField => "unknown_field",
            Unauthorized => "unauthorized",
            OriginNotAllowed => "origin_not_allowed",
            CaptchaFailed => "captcha_failed",
            NotFound => "not_found",
            WebhookNotConfigured => "webhook_not_configured",
            MethodNotAllowed => "method_not_allowed",
            AccountExists => "account_exists",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            MissingField => "missing_field",
            InvalidEmail => "invalid_email",
            InvalidField => "invalid_field",
            AppMetadataKeyNotAllowed => "app_metadata_key_not_allowed",
            RoleNotAllowed => "role_not_allowed",
            RoleNotFound => "role_not_found",
            ResultUrlNotAllowed => "result_url_not_allowed",
            TtlOutOfRange => "ttl_out_of_range",
            InviteRejected => "invite_rejected",
            RateLimited => "rate_limited",
            InternalError => "internal_error",
            UpstreamAuth => "upstream_auth",
            UpstreamUnavailable => "upstream_unavailable",
            UpstreamError => "upstream_error",
            EmailAuth => "email_auth",
            EmailRejected => "email_rejected",
            ConfigInvalid => "config_invalid",
            UpstreamRateLimited => "upstream_rate_limited",
            QueueUnavailable => "queue_unavailable",
            InviteNotFailed => "invite_not_failed",
            InviteeNotFound => "invitee_not_found",
            InviteAccepted => "invite_accepted",
            InviteRevoked => "invite_revoked",
            ResendTooSoon => "resend_too_soon",
        }
    }

    /// The HTTP status this code is answered with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidJson | InvalidSignature | UnknownField => 400,
            Unauthorized => 401,
            OriginNotAllowed | CaptchaFailed => 403,
            NotFound | WebhookNotConfigured | InviteeNotFound => 404,
            MethodNotAllowed => 405,
            AccountExists | InviteNotFailed | InviteAccepted | InviteRevoked => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            MissingField
            | InvalidEmail
            | InvalidField
            | AppMetadataKeyNotAllowed
            | RoleNotAllowed
            | RoleNotFound
            | ResultUrlNotAllowed
            | TtlOutOfRange
            | InviteRejected => 422,
            RateLimited | ResendTooSoon => 429,
            InternalError => 500,
            UpstreamAuth | UpstreamUnavailable | UpstreamError | EmailAuth | EmailRejected => 502,
            ConfigInvalid | UpstreamRateLimited | QueueUnavailable => 503,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outside service the Worker calls. Errors name it, so a bad `EMAIL_API_KEY` is never
/// reported as an Auth0 problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Auth0's Authentication and Management APIs.
    Auth0,
    /// The Resend-compatible email API.
    EmailApi,
    /// Cloudflare Turnstile's siteverify.
    Turnstile,
}

impl Service {
    /// The name used in messages ("Auth0", "the email API", "Turnstile").
    pub fn display(self) -> &'static str {
        match self {
            Service::Auth0 => "Auth0",
            Service::EmailApi => "the email API",
            Service::Turnstile => "Turnstile",
        }
    }

    /// The machine-readable name (`service` in error bodies and logs).
    pub fn id(self) -> &'static str {
        match self {
            Service::Auth0 => "auth0",
            Service::EmailApi => "email_api",
            Service::Turnstile => "turnstile",
        }
    }
}

/// What went wrong talking to an upstream service.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum UpstreamError {
    /// The service refused our credentials (Auth0's token endpoint, a 401/403 to our token,
    /// or the email API refusing `EMAIL_API_KEY`).
    #[error("{} refused the {} ({status}): {message}", .service.display(), if *.token_endpoint { "client credentials" } else { "credentials" })]
    Auth {
        /// Which service.
        service: Service,
        /// Upstream status.
        status: u16,
        /// The service's message.
        message: String,
        /// Whether Auth0's token endpoint answered.
        token_endpoint: bool,
    },
    /// The service kept answering 429 until the request deadline.
    #[error("{} rate limit outlasted the request deadline", .service.display())]
    RateLimited {
        /// Which service.
        service: Service,
        /// Seconds the caller should wait.
        retry_after_sec: u64,
    },
    /// The service kept failing (5xx, network, timeout) until the request deadline.
    #[error("{} unavailable: {detail}", .service.display())]
    Unavailable {
        /// Which service.
        service: Service,
        /// What the last attempt saw.
        detail: String,
    },
    /// The service rejected the payload (4xx), e.g. a password policy or a malformed field.
    #[error("{} rejected the request: {message}", .service.display())]
    Rejected {
        /// Which service.
        service: Service,
        /// The service's message.
        message: String,
    },
    /// A status or body we did not expect; keeps the raw body for the log.
    #[error("unexpected {} response {status} to {context}", .service.display())]
    Unexpected {
        /// Which service.
        service: Service,
        /// Upstream status.
        status: u16,
        /// Raw upstream body, for logs only.
        body: String,
        /// Which call it was.
        context: &'static str,
    },
}

impl UpstreamError {
    /// Which service failed.
    pub fn service(&self) -> Service {
        match self {
            UpstreamError::Auth { service, .. }
            | UpstreamError::RateLimited { service, .. }
            | UpstreamError::Unavailable { service, .. }
            | UpstreamError::Rejected { service, .. }
            | UpstreamError::Unexpected { service, .. } => *service,
        }
    }
}

/// A request the caller must fix.
#[derive(Clone, Debug, Error, PartialEq)]
#[error("{message}")]
pub struct ValidationError {
    /// Stable error code (its status is `code.status()`).
    pub code: ErrorCode,
    /// The offending field, when there is one.
    pub field: Option<String>,
    /// Human-readable explanation.
    pub message: String,
}

impl ValidationError {
    /// An error without a field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ValidationError {
            code,
            field: None,
            message: message.into(),
        }
    }

    /// An error naming `field`.
    pub fn field(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        ValidationError {
            code,
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// 400 `invalid_json`.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidJson, message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(max: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("body must be at most {max} bytes"),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn media_type(expected: &str) -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            format!("send Content-Type: {expected}"),
        )
    }

    /// 422 `missing_field`.
    pub fn missing(field: &str) -> Self {
        Self::field(
            ErrorCode::MissingField,
            field,
            format!("{field} is required"),
        )
    }

    /// 422 `invalid_field`: wrong type.
    pub fn wrong_type(field: &str, expected: &str) -> Self {
        Self::field(
            ErrorCode::InvalidField,
            field,
            format!("{field} must be {expected}"),
        )
    }
}

/// What went wrong with an invite.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum InviteError {
    /// The request was invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A requested role does not exist in Auth0 and `AUTO_CREATE_ROLES` is off; `true` when
    /// found out only after the account was made (a role deleted in Auth0 since its id was
    /// cached): the account exists without its roles.
    #[error("role {0} does not exist in Auth0")]
    RoleNotFound(String, bool),
    /// The address has an account that is not an unaccepted invite, and this route may not
    /// hand out a link for it.
    #[error("the address has an account that is in use")]
    AccountExists,
    /// The address is an invite that was revoked (the account is blocked).
    #[error("the invite was revoked")]
    Revoked,
    /// An upstream service failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A local failure (randomness unavailable).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A response-ready error: code (and so status), a message safe to show the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// Stable code (documented in docs/API.md).
    pub code: ErrorCode,
    /// Safe message.
    pub message: String,
    /// The offending field, if any.
    pub field: Option<String>,
    /// The upstream service that failed, if any.
    pub service: Option<Service>,
    /// Seconds for a `Retry-After` header, if any.
    pub retry_after_sec: Option<u64>,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// Detail for the log line only; never sent to the caller.
    pub log_detail: Option<String>,
}

impl ApiError {
    /// A new error without field, retry hint or log detail.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            service: None,
            retry_after_sec: None,
            allow: None,
            log_detail: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// Adds a detail for the log line.
    pub fn logged(mut self, detail: impl Into<String>) -> Self {
        self.log_detail = Some(detail.into());
        self
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "send a valid API key as Authorization: Bearer <key>",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(path: &str) -> Self {
        // The path is echoed back; cap it so a huge URL does not make a huge answer.
        Self::new(
            ErrorCode::NotFound,
            format!("no route for {}", truncate(path, 200)),
        )
    }

    /// 405 `method_not_allowed`, with the `Allow` header.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::new(
                ErrorCode::MethodNotAllowed,
                format!("method not allowed; use {allow}"),
            )
        }
    }

    /// 503 `config_invalid`: a generic answer; the problems go to the log and `/healthz`.
    pub fn config_invalid(problems: &str) -> Self {
        Self::new(
            ErrorCode::ConfigInvalid,
            "the service is misconfigured; its operator can see why at GET /healthz",
        )
        .logged(problems.to_string())
    }

    /// 403 `origin_not_allowed`.
    pub fn origin_not_allowed() -> Self {
        Self::new(
            ErrorCode::OriginNotAllowed,
            "this origin may not use the sign-up form; add it to ALLOWED_ORIGINS",
        )
    }

    /// 403 `captcha_failed`.
    pub fn captcha_failed() -> Self {
        Self::new(
            ErrorCode::CaptchaFailed,
            "the captcha check failed; please try again",
        )
    }

    /// 429 `rate_limited`.
    pub fn rate_limited(retry_after_sec: u64) -> Self {
        ApiError {
            retry_after_sec: Some(retry_after_sec),
            ..Self::new(
                ErrorCode::RateLimited,
                "too many sign-ups from this address; try again later",
            )
        }
    }

    /// 400 `invalid_signature`; the reason goes to the log only.
    pub fn invalid_signature(reason: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::InvalidSignature,
            "webhook signature verification failed",
        )
        .logged(reason.to_string())
    }

    /// 404 `invitee_not_found`.
    pub fn invitee_not_found() -> Self {
        Self::new(
            ErrorCode::InviteeNotFound,
            "no account invited by this service has that address or user id",
        )
    }

    /// 409 `invite_accepted`: what `action` would do is refused for an account in use.
    pub fn invite_accepted(action: &str) -> Self {
        Self::new(
            ErrorCode::InviteAccepted,
            format!(
                "the invitee has logged in, so the invite can't be {action}; manage the account in Auth0"
            ),
        )
    }

    /// 503 `queue_unavailable` for an invitee route that needs the gate before it does
    /// anything (a resend's email window, a revoke's hold); the reason goes to the log.
    pub fn gate_unreachable(detail: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::QueueUnavailable,
            "the gate could not be reached; nothing was done, retrying is safe",
        )
        .logged(detail)
    }

    /// 409 `invite_revoked`.
    pub fn invite_revoked() -> Self {
        Self::new(
            ErrorCode::InviteRevoked,
            "the invite was revoked (the account is blocked); unblock it in Auth0 first to send a link",
        )
    }

    /// 429 `resend_too_soon`, with `Retry-After`.
    pub fn resend_too_soon(retry_after_sec: u64) -> Self {
        ApiError {
            retry_after_sec: Some(retry_after_sec.max(1)),
            ..Self::new(
                ErrorCode::ResendTooSoon,
                "a link was sent to this address recently; try again after the Retry-After delay",
            )
        }
    }

    /// 404 `webhook_not_configured`.
    pub fn webhook_not_configured(variable: &str) -> Self {
        Self::new(
            ErrorCode::WebhookNotConfigured,
            format!("this webhook is off: set {variable} to enable it"),
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError {
            field: e.field,
            ..ApiError::new(e.code, e.message)
        }
    }
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::Invalid(v) => v.into(),
            InviteError::RoleNotFound(name, after_account) => ApiError {
                field: Some("roles".into()),
                ..ApiError::new(
                    ErrorCode::RoleNotFound,
                    if after_account {
                        format!(
                            "role '{name}' does not exist in Auth0 (it was deleted there); the account exists without its roles, and a link made at the same time was not delivered (it voids the earlier ones): create the role or set AUTO_CREATE_ROLES=true, then retry the same invite (safe)"
                        )
                    } else {
                        format!(
                            "role '{name}' does not exist in Auth0; create it there or set AUTO_CREATE_ROLES=true"
                        )
                    },
                )
            },
            InviteError::AccountExists => ApiError {
                field: Some("email".into()),
                ..ApiError::new(
                    ErrorCode::AccountExists,
                    "this address already has an account that has been used, so no link was created; \
                     the person can reset their password from the login page (set \
                     EXISTING_ACCOUNT_TICKETS=true to allow links for such accounts)",
                )
            },
            InviteError::Revoked => ApiError {
                field: Some("email".into()),
                ..ApiError::invite_revoked()
            },
            InviteError::Internal(detail) => ApiError::new(
                ErrorCode::InternalError,
                "internal error; retrying is safe",
            )
            .logged(detail),
            InviteError::Upstream(a) => a.into(),
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        let detail = e.to_string();
        let service = e.service();
        let who = service.display();
        let mut out = match &e {
            UpstreamError::Auth {
                token_endpoint: true,
                ..
            } => ApiError::new(
                ErrorCode::UpstreamAuth,
                format!(
                    "Auth0 refused the client credentials: check AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET, and that the application is authorized for the Management API (AUTH0_AUDIENCE) with the scopes: {REQUIRED_SCOPES}"
                ),
            ),
            UpstreamError::Auth {
                service: Service::EmailApi,
                ..
            } => ApiError::new(
                ErrorCode::EmailAuth,
                "the email API refused EMAIL_API_KEY: check the key and its sending permission",
            ),
            UpstreamError::Auth { .. } => ApiError::new(
                ErrorCode::UpstreamAuth,
                format!(
                    "{who} refused the Management API token: check that the client grant has the scopes: {REQUIRED_SCOPES}; a change takes effect within a minute, and retrying the same invite is safe"
                ),
            ),
            UpstreamError::RateLimited {
                retry_after_sec, ..
            } => ApiError {
                retry_after_sec: Some(*retry_after_sec),
                ..ApiError::new(
                    ErrorCode::UpstreamRateLimited,
                    format!(
                        "{who} rate limit reached; retry after the Retry-After delay (retrying the same invite is safe)"
                    ),
                )
            },
            UpstreamError::Unavailable { .. } => ApiError::new(
                ErrorCode::UpstreamUnavailable,
                format!(
                    "{who} did not answer successfully before the deadline; retrying the same invite is safe"
                ),
            ),
            UpstreamError::Rejected {
                service: Service::EmailApi,
                message,
            } => ApiError::new(
                ErrorCode::EmailRejected,
                format!(
                    "the email API refused the message ({}): check FROM_EMAIL and the sending domain",
                    truncate(message, 200)
                ),
            ),
            UpstreamError::Rejected { message, .. } => ApiError::new(
                ErrorCode::InviteRejected,
                format!("{who} rejected the invite: {}", truncate(message, 300)),
            ),
            UpstreamError::Unexpected { .. } => ApiError::new(
                ErrorCode::UpstreamError,
                format!("{who} answered unexpectedly; retrying the same invite is safe"),
            ),
        };
        out.service = Some(service);
        out.log_detail = Some(match e {
            UpstreamError::Unexpected { body, .. } => format!("{detail}: {}", truncate(&body, 300)),
            _ => detail,
        });
        out
    }
}

/// At most `max` characters of `s`.
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_in_the_api_reference_with_its_status() {
        let doc = include_str!("../../docs/API.md");
        for code in ErrorCode::ALL {
            let row = format!("| {} | `{}` |", code.status(), code.as_str());
            assert!(doc.contains(&row), "docs/API.md lacks the row {row}");
        }
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
    }

    #[test]
    fn every_code_is_in_the_openapi_documents_error_code_enum() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/openapi.json")).expect("JSON");
        let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("components.schemas.ErrorCode.enum")
            .iter()
            .map(|c| c.as_str().expect("a string"))
            .collect();
        for code in ErrorCode::ALL {
            assert!(
                listed.contains(&code.as_str()),
                "docs/openapi.json's ErrorCode enum lacks {code}"
            );
        }
        assert_eq!(
            listed.len(),
            ErrorCode::ALL.len(),
            "codes the Worker never answers"
        );
    }

    #[test]
    fn upstream_errors_name_the_service_that_failed() {
        let e: ApiError = UpstreamError::Auth {
            service: Service::EmailApi,
            status: 401,
            message: "bad key".into(),
            token_endpoint: false,
        }
        .into();
        assert_eq!(e.code, ErrorCode::EmailAuth);
        assert!(e.message.contains("EMAIL_API_KEY") && !e.message.contains("Auth0"));
        let e: ApiError = UpstreamError::Unavailable {
            service: Service::Turnstile,
            detail: "HTTP 503".into(),
        }
        .into();
        assert_eq!(
            (e.code, e.service),
            (ErrorCode::UpstreamUnavailable, Some(Service::Turnstile))
        );
        assert!(e.message.starts_with("Turnstile did not answer"));
        assert!(!e.message.contains("Auth0"));
    }
}
