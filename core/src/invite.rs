//! The trusted invite: validating the request, and the flow from token to ticket.

use futures::future::{join, join_all, try_join_all};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth0::{Auth0, Created, TicketTarget};
use crate::config::{parse_web_url, Config, RoleMode, TICKET_TTL_RANGE};
use crate::email;
use crate::error::{ErrorCode, InviteError, Service, UpstreamError, ValidationError};
use crate::password;
use crate::platform::Platform;
use crate::time::rfc3339;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Fields of `POST /v1/invites`.
pub const FIELDS: &[&str] = &[
    "email",
    "name",
    "given_name",
    "family_name",
    "nickname",
    "roles",
    "user_metadata",
    "app_metadata",
    "result_url",
    "ticket_ttl_sec",
    "verification",
];
/// `app_metadata` keys the service sets itself; no caller may send them, and
/// `APP_METADATA_KEYS` may not list them.
pub const RESERVED_APP_METADATA: &[&str] = &[
    "invited",
    "invited_at",
    "invited_by",
    "invite_source",
    "invite_event",
    "revoked_at",
    "revoked_by",
];
/// Longest name accepted (Auth0's limit for `name` and `nickname`).
pub const MAX_NAME_CHARS: usize = 300;
/// How often to look a 409'd user up before giving up (Auth0 search is eventually consistent).
const LOOKUP_ATTEMPTS: u32 = 3;

/// A validated invite. Serializable: it travels in queue messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteInput {
    /// Lowercased address.
    pub email: String,
    /// Optional profile fields: (Auth0 field name, value).
    pub profile: Vec<(String, String)>,
    /// Role names, each allowed.
    pub roles: Vec<String>,
    /// Passed through.
    pub user_metadata: Option<Map<String, Value>>,
    /// Caller's app_metadata (server fields are merged in later).
    pub app_metadata: Map<String, Value>,
    /// Where the ticket sends the user.
    pub ticket_target: TicketTarget,
    /// Ticket lifetime.
    pub ticket_ttl_sec: u64,
    /// The caller vouches for the address (`email_verified: true` on creation). Payment
    /// webhooks don't: their invitee proves the address by using the emailed link.
    pub email_verified: bool,
    /// Create a password-change ticket (not needed when Auth0 sends its own email).
    pub want_ticket: bool,
    /// What to do when the address already has an account.
    pub on_existing: OnExisting,
    /// The invitee proves the address themselves (`verification` on `POST /v1/invites`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// How an invitee who must prove their address gets to: `email_verified` stays false until
/// they do, and the password link no longer marks the address verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Auth0 sends its verification email (`POST /api/v2/jobs/verification-email`).
    Email,
    /// An email-verification ticket (`POST /api/v2/tickets/email-verification`) whose URL is
    /// returned to the trusted caller, who delivers it (synchronous invites only).
    Ticket,
}

/// What the verification step produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Verified {
    /// Auth0's verification-email job.
    Job {
        /// `job_…`.
        id: String,
    },
    /// An email-verification ticket.
    Ticket {
        /// The link (a credential: never logged).
        url: String,
        /// When it expires (RFC 3339).
        expires_at: String,
    },
}

impl InviteInput {
    /// Management calls of this invite when the caches are warm: create the user, assign the
    /// roles (if any), create the ticket (if one is wanted). More (a role lookup, a 409's user
    /// lookup, a retry) are booked as they come, or counted at admission.
    pub fn management_calls(&self) -> u32 {
        1 + u32::from(!self.roles.is_empty())
            + u32::from(self.want_ticket)
            + u32::from(self.verification.is_some())
    }

    /// An invite of `email` with no roles, profile or metadata, emailed and unverified: the
    /// base the public and webhook routes fill in.
    pub fn for_email(email: &str) -> Self {
        InviteInput {
            email: email.to_string(),
            profile: Vec::new(),
            roles: Vec::new(),
            user_metadata: None,
            app_metadata: Map::new(),
            ticket_target: TicketTarget::Default,
            ticket_ttl_sec: 86_400,
            email_verified: false,
            want_ticket: false,
            on_existing: OnExisting::Update,
            verification: None,
        }
    }
}

/// What an invite does for an address that already has an account. An *unaccepted invite*
/// (created by this service, never logged in) is always carried on: roles and a fresh link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExisting {
    /// Trusted API: any other account gets 409 `account_exists`, before any change and
    /// without a link, unless `EXISTING_ACCOUNT_TICKETS=true`.
    RequireUnaccepted,
    /// Public form: roles change only on an unaccepted invite; the link still goes to the
    /// inbox (it proves the address), and the answer is the same either way.
    KeepRoles,
    /// Signed payment webhooks: the payment grants the roles, whatever the account.
    Update,
}

/// Cleans a free-text name the same way for every route: trims, drops control and
/// bidirectional-override characters (CR/LF included), folds runs of white space into one
/// space, and keeps at most `max` characters. `None` when nothing is left.
pub fn clean_name(raw: &str, max: usize) -> Option<String> {
    let mut out = String::new();
    let mut pending_space = false;
    for c in raw.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        // Bidi embeddings, overrides and isolates can make text read differently than it is.
        if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
        {
            continue;
        }
        if out.chars().count() >= max {
            break;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
            if out.chars().count() >= max {
                break;
            }
        }
        out.push(c);
    }
    let out = out.trim_end().to_string();
    (!out.is_empty()).then_some(out)
}

/// What the caller gets back.
#[derive(Clone, Debug, PartialEq)]
pub struct InviteOutcome {
    /// Auth0 user id.
    pub user_id: String,
    /// Normalized email.
    pub email: String,
    /// Whether this request created the user.
    pub created: bool,
    /// Roles given in this request.
    pub roles: Vec<String>,
    /// The password-change link, when one was asked for.
    pub ticket_url: Option<String>,
    /// When the link expires (RFC 3339).
    pub ticket_expires_at: String,
    /// The verification job or ticket, when `verification` was asked for.
    pub verification: Option<Verified>,
}

fn bad(code: ErrorCode, field: &str, message: impl Into<String>) -> ValidationError {
    ValidationError::field(code, field, message)
}

/// How deep metadata may nest. The body is read with serde_json's limit of 128 levels, and
/// the invite travels on inside the gate's call and the queue's message, a few levels deeper:
/// metadata 123 levels deep passed here and was refused there, answered 503 "retrying is
/// safe" for ever (found by fuzzing). Auth0 sets no depth; 32 is far past any real use.
pub const MAX_METADATA_DEPTH: usize = 32;

/// Auth0 refuses a metadata field name holding `.` or `$`, at any depth ("Metadata field
/// names and data types", auth0.com/docs). Sent on, such an invite failed at user creation,
/// or, queued, only when it ran; the emulator now refuses them too (it had stored them, so no
/// test could see it).
pub(crate) fn bad_field_name(name: &str) -> bool {
    name.contains(['.', '$'])
}

/// `metadata`, unless it nests deeper than [`MAX_METADATA_DEPTH`] or names a field Auth0
/// refuses ([`bad_field_name`]); both are reported at once, by name.
fn checked_metadata(
    field: &str,
    metadata: Map<String, Value>,
) -> Result<Map<String, Value>, ValidationError> {
    /// The depth of an object of `fields`, and the first field name in it Auth0 refuses.
    fn object(fields: &Map<String, Value>) -> (usize, Option<&str>) {
        let mut bad = fields
            .keys()
            .map(String::as_str)
            .find(|n| bad_field_name(n));
        let mut deepest = 0;
        for v in fields.values() {
            let (d, b) = value(v);
            deepest = deepest.max(d);
            bad = bad.or(b);
        }
        (1 + deepest, bad)
    }
    fn value(v: &Value) -> (usize, Option<&str>) {
        match v {
            Value::Object(m) => object(m),
            Value::Array(a) => a
                .iter()
                .map(value)
                .fold((1, None), |(d, b), (vd, vb)| (d.max(1 + vd), b.or(vb))),
            _ => (0, None),
        }
    }
    // The object itself is the first level.
    let (depth, bad) = object(&metadata);
    if depth > MAX_METADATA_DEPTH {
        return Err(ValidationError::field(
            ErrorCode::InvalidField,
            field,
            format!("{field} nests deeper than {MAX_METADATA_DEPTH} levels"),
        ));
    }
    if let Some(name) = bad {
        return Err(ValidationError::field(
            ErrorCode::InvalidField,
            field,
            format!(
                "{field} has a field named '{name}': Auth0 refuses field names with '.' or '$'"
            ),
        ));
    }
    Ok(metadata)
}

fn type_error(field: &str, expected: &str) -> ValidationError {
    ValidationError::wrong_type(field, expected)
}

/// Where a ticket sends the user when the request names no `result_url`: `RESULT_URL`, else
/// `TICKET_CLIENT_ID`'s login page, else Auth0's default.
pub fn default_ticket_target(cfg: &Config) -> TicketTarget {
    match (&cfg.result_url, &cfg.ticket_client_id) {
        (Some(u), _) => TicketTarget::ResultUrl(u.clone()),
        (None, Some(c)) => TicketTarget::ClientId(c.clone()),
        (None, None) => TicketTarget::Default,
    }
}

/// Validates a JSON invite body against the configuration.
pub fn parse_invite(body: &[u8], cfg: &Config) -> Result<InviteInput, ValidationError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ValidationError::invalid_json(format!("body is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(ValidationError::invalid_json("body must be a JSON object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ValidationError::field(
            ErrorCode::UnknownField,
            unknown,
            format!(
                "unknown field '{unknown}'; allowed fields: {}",
                FIELDS.join(", ")
            ),
        ));
    }

    let email = match obj.remove("email") {
        None | Some(Value::Null) => return Err(ValidationError::missing("email")),
        Some(Value::String(s)) => {
            email::normalize(&s).map_err(|why| bad(ErrorCode::InvalidEmail, "email", why))?
        }
        Some(_) => return Err(type_error("email", "a string")),
    };

    let mut profile = Vec::new();
    for (field, max) in [
        ("name", 300),
        ("given_name", 150),
        ("family_name", 150),
        ("nickname", 300),
    ] {
        match obj.remove(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                // The same cleaning as every other route; a trusted caller is told when it
                // would change anything but the outer white space, rather than corrected.
                let s = s.trim();
                match clean_name(s, max) {
                    Some(clean) if clean == s => profile.push((field.to_string(), clean)),
                    _ => {
                        return Err(bad(
                            ErrorCode::InvalidField,
                            field,
                            format!("{field} must be 1 to {max} characters without control characters or repeated spaces"),
                        ))
                    }
                }
            }
            Some(_) => return Err(type_error(field, "a string")),
        }
    }

    let roles = match obj.remove("roles") {
        None | Some(Value::Null) => cfg.default_roles.clone(),
        Some(Value::Array(items)) => {
            let mut roles: Vec<String> = Vec::new();
            for item in items {
                let Value::String(name) = item else {
                    return Err(type_error("roles", "an array of role names"));
                };
                let name = name.trim().to_string();
                if !cfg.allowed_roles.contains(&name) {
                    return Err(bad(
                        ErrorCode::RoleNotAllowed,
                        "roles",
                        format!(
                            "role '{name}' is not allowed; allowed roles: {}",
                            cfg.allowed_roles.join(", ")
                        ),
                    ));
                }
                if !roles.contains(&name) {
                    roles.push(name);
                }
            }
            roles
        }
        Some(_) => return Err(type_error("roles", "an array of role names")),
    };

    let user_metadata = match obj.remove("user_metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(checked_metadata("user_metadata", m)?),
        Some(_) => return Err(type_error("user_metadata", "an object")),
    };
    let app_metadata = match obj.remove("app_metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => checked_metadata("app_metadata", m)?,
        Some(_) => return Err(type_error("app_metadata", "an object")),
    };
    let mut reserved: Vec<&str> = RESERVED_APP_METADATA.to_vec();
    if cfg.role_mode == RoleMode::AppMetadata {
        reserved.push("roles");
    }
    if let Some(key) = reserved.iter().find(|k| app_metadata.contains_key(**k)) {
        return Err(bad(
            ErrorCode::InvalidField,
            &format!("app_metadata.{key}"),
            format!("app_metadata.{key} is set by the service and can't be sent"),
        ));
    }
    // app_metadata is where Auth0 apps keep authorization data (`is_admin`, `permissions`):
    // only the keys the operator allows may be set by a caller.
    if let Some(key) = app_metadata
        .keys()
        .find(|k| !cfg.app_metadata_keys.iter().any(|a| a == *k))
    {
        return Err(bad(
            ErrorCode::AppMetadataKeyNotAllowed,
            &format!("app_metadata.{key}"),
            if cfg.app_metadata_keys.is_empty() {
                format!("app_metadata.{key} is not allowed: APP_METADATA_KEYS lists no keys")
            } else {
                format!(
                    "app_metadata.{key} is not allowed; allowed keys: {}",
                    cfg.app_metadata_keys.join(", ")
                )
            },
        ));
    }

    let ticket_target = match obj.remove("result_url") {
        None | Some(Value::Null) => default_ticket_target(cfg),
        Some(Value::String(raw)) => {
            let url = parse_web_url(cfg.parse_url, &raw).map_err(|why| {
                bad(
                    ErrorCode::ResultUrlNotAllowed,
                    "result_url",
                    format!("result_url {why}"),
                )
            })?;
            if !cfg.result_url_allowlist.contains(&url.origin) {
                return Err(bad(
                    ErrorCode::ResultUrlNotAllowed,
                    "result_url",
                    format!("the origin {} is not in RESULT_URL_ALLOWLIST", url.origin),
                ));
            }
            TicketTarget::ResultUrl(url.href)
        }
        Some(_) => return Err(type_error("result_url", "a string")),
    };

    let verification = match obj.remove("verification") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) if v == "email" => Some(Verification::Email),
        Some(Value::String(v)) if v == "ticket" => Some(Verification::Ticket),
        Some(_) => {
            return Err(bad(
                ErrorCode::InvalidField,
                "verification",
                "verification must be \"email\" (Auth0 sends its verification email) or \"ticket\" (a verification link is returned)",
            ))
        }
    };

    let (min, max) = TICKET_TTL_RANGE;
    let ticket_ttl_sec = match obj.remove("ticket_ttl_sec") {
        None | Some(Value::Null) => cfg.ticket_ttl_sec,
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                return Err(bad(
                    ErrorCode::TtlOutOfRange,
                    "ticket_ttl_sec",
                    format!("ticket_ttl_sec must be a whole number from {min} to {max}"),
                ))
            }
        },
    };

    Ok(InviteInput {
        email,
        profile,
        roles,
        user_metadata,
        app_metadata,
        ticket_target,
        ticket_ttl_sec,
        // With a verification step the caller does not vouch for the address.
        email_verified: verification.is_none(),
        want_ticket: true,
        on_existing: OnExisting::RequireUnaccepted,
        verification,
    })
}

/// The `POST /api/v2/users` body for an invite.
pub fn create_user_body(
    cfg: &Config,
    input: &InviteInput,
    password: &str,
    invited_by: &str,
    now_ms: u64,
) -> Value {
    let mut app_metadata = input.app_metadata.clone();
    app_metadata.insert("invited".into(), json!(true));
    app_metadata.insert("invited_at".into(), json!(rfc3339(now_ms)));
    app_metadata.insert("invited_by".into(), json!(invited_by));
    if cfg.role_mode == RoleMode::AppMetadata {
        app_metadata.insert("roles".into(), json!(input.roles));
    }
    let mut body = json!({
        "connection": cfg.connection,
        "email": input.email,
        "password": password,
        "email_verified": input.email_verified,
        "verify_email": false,
        "app_metadata": app_metadata,
    });
    for (field, value) in &input.profile {
        body[field.as_str()] = json!(value);
    }
    if let Some(m) = &input.user_metadata {
        body["user_metadata"] = Value::Object(m.clone());
    }
    body
}

/// What Auth0's "Personal Data" password option checks a new account's password against:
/// the part of the email before the @, the profile fields sent (but the picture), and
/// `user_metadata`'s `name`, `first` and `last` (see [`password::generate`]).
fn personal_data(input: &InviteInput) -> Vec<&str> {
    let mut out: Vec<&str> = input.email.split('@').take(1).collect();
    out.extend(
        input
            .profile
            .iter()
            .filter(|(field, _)| field != "picture")
            .map(|(_, value)| value.as_str()),
    );
    if let Some(m) = &input.user_metadata {
        out.extend(
            ["name", "first", "last"]
                .iter()
                .filter_map(|k| m.get(*k)?.as_str()),
        );
    }
    out
}

/// Creates (or finds) the user, gives the roles and creates the ticket.
///
/// With warm caches the critical path is two round trips: create the user, then assign
/// roles and create the ticket at the same time.
pub async fn run_invite<P: Platform>(
    client: &Auth0<'_, P>,
    cfg: &Config,
    p: &P,
    input: InviteInput,
    invited_by: &str,
) -> Result<InviteOutcome, InviteError> {
    let password = password::generate(p, &personal_data(&input)).map_err(InviteError::Internal)?;

    // The token and the role ids are read at the same time.
    let rbac_roles = cfg.role_mode == RoleMode::Rbac && !input.roles.is_empty();
    let (token, cached) = join(
        client.token(None),
        join_all(
            input
                .roles
                .iter()
                .filter(|_| rbac_roles)
                .map(|r| client.cached_role(r)),
        ),
    )
    .await;
    token?;
    let mut roles_given = input.roles.clone();
    let mut role_ids: Vec<String> =
        try_join_all(input.roles.iter().filter(|_| rbac_roles).zip(cached).map(
            |(name, hit)| async move {
                match hit {
                    Some(id) => Ok(id),
                    None => client
                        .resolve_role(name)
                        .await?
                        .ok_or_else(|| InviteError::RoleNotFound(name.clone(), false)),
                }
            },
        ))
        .await?;

    let now = p.now_ms();
    let body = create_user_body(cfg, &input, &password, invited_by, now);
    let (user_id, created, existing_meta) = match client.create_user(&body).await? {
        Created::New(id) => (id, true, None),
        Created::Exists => {
            let mut found = None;
            for attempt in 0..LOOKUP_ATTEMPTS {
                found = client.user_by_email(&input.email).await?;
                if found.is_some() || attempt + 1 == LOOKUP_ATTEMPTS {
                    break;
                }
                let wait = 250 * u64::from(attempt + 1);
                if p.now_ms() + wait >= client.deadline_ms() {
                    break;
                }
                p.sleep(wait).await;
            }
            let user = found.ok_or_else(|| UpstreamError::Unavailable {
                service: Service::Auth0,
                detail: format!(
                    "Auth0 said the user exists but no user of connection {} was found",
                    cfg.connection
                ),
            })?;
            let unaccepted = user.is_unaccepted_invite();
            // A revoked (blocked) account stays as an administrator left it: the trusted API
            // gets no link for it (a link to a blocked account would not work anyway), an
            // anonymous sign-up does not revive it with the roles and the emailed link a
            // resend would be refused, and a payment ends `failed` with `invite_revoked` for
            // the operator to see, rather than `completed` with an email the customer can't
            // use (found in audits). Unblock it in Auth0, then invite or re-drive it again.
            if user.blocked == Some(true) {
                return Err(InviteError::Revoked);
            }
            let change_roles = match input.on_existing {
                _ if unaccepted => true,
                OnExisting::RequireUnaccepted if cfg.existing_account_tickets => true,
                // Before any change: no role, no ticket for an account someone uses.
                OnExisting::RequireUnaccepted => return Err(InviteError::AccountExists),
                OnExisting::KeepRoles => false,
                OnExisting::Update => true,
            };
            if !change_roles {
                role_ids.clear();
                roles_given.clear();
            }
            (
                user.user_id,
                false,
                Some(user.app_metadata.unwrap_or_default()),
            )
        }
    };

    let roles_step = async {
        match (cfg.role_mode, existing_meta) {
            (RoleMode::Rbac, _) if !role_ids.is_empty() => {
                if client.assign_roles(&user_id, &role_ids, false).await? {
                    return Ok(());
                }
                // A cached role id was stale: look every role up again, then retry once.
                let mut fresh = Vec::with_capacity(input.roles.len());
                for name in &input.roles {
                    match client.resolve_role(name).await? {
                        Some(id) => fresh.push(id),
                        None => return Err(InviteError::RoleNotFound(name.clone(), true)),
                    }
                }
                if client.assign_roles(&user_id, &fresh, true).await? {
                    Ok(())
                } else {
                    Err(UpstreamError::Unexpected {
                        service: Service::Auth0,
                        status: 404,
                        body: String::new(),
                        context: "POST /api/v2/users/{id}/roles",
                    }
                    .into())
                }
            }
            (RoleMode::AppMetadata, Some(meta)) if !roles_given.is_empty() => {
                let mut roles: Vec<String> = meta
                    .get("roles")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                for r in &roles_given {
                    if !roles.contains(r) {
                        roles.push(r.clone());
                    }
                }
                Ok(client
                    .patch_app_metadata(&user_id, json!({ "roles": roles }))
                    .await?)
            }
            _ => Ok(()),
        }
    };
    // The password link marks the address verified only when the caller vouched for it.
    let mark_verified = input.verification.is_none();
    let ticket_step = async {
        if input.want_ticket {
            client
                .password_change_ticket(
                    &user_id,
                    &input.ticket_target,
                    input.ticket_ttl_sec,
                    mark_verified,
                )
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let verify_step = async {
        match input.verification {
            None => Ok(None),
            Some(Verification::Email) => client
                .verification_email_job(&user_id)
                .await
                .map(|id| Some(Verified::Job { id })),
            Some(Verification::Ticket) => client
                .email_verification_ticket(&user_id, &input.ticket_target, input.ticket_ttl_sec)
                .await
                .map(|url| {
                    Some(Verified::Ticket {
                        url,
                        expires_at: rfc3339(now + input.ticket_ttl_sec * 1000),
                    })
                }),
        }
    };
    let (roles_done, (ticket, verified)): (Result<(), InviteError>, _) =
        join(roles_step, join(ticket_step, verify_step)).await;
    roles_done?;
    let ticket_url = ticket?;
    let verification = verified?;

    Ok(InviteOutcome {
        user_id,
        email: input.email,
        created,
        roles: roles_given,
        ticket_url,
        ticket_expires_at: rfc3339(now + input.ticket_ttl_sec * 1000),
        verification,
    })
}
