//! The emulated Auth0 endpoints: `POST /oauth/token` (client credentials) and
//! the Management API routes, with their authentication, scope checks,
//! payload validation and Auth0-shaped responses.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::server::{Incoming, Reply, AUTH_CT};
use crate::state::{Role, State, User};
use crate::util;
use crate::validate::{
    check_payload, check_query, password_ok, prop, prop_d, Format, QTy, Schema, Ty, NONEMPTY,
};

/// Default lifetime Auth0 gives tickets when `ttl_sec` is absent (5 days).
const DEFAULT_TICKET_TTL: u64 = 432_000;

// ---------------------------------------------------------------------------
// Authentication API
// ---------------------------------------------------------------------------

fn auth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json_with(
        status,
        &json!({"error": error, "error_description": description}),
        AUTH_CT,
    )
}

/// Reads the string parameters of an Authentication API JSON or form body.
/// Non-string JSON values are ignored.
fn body_params(inc: &Incoming) -> Result<HashMap<String, String>, Reply> {
    let ct = inc.content_type.to_ascii_lowercase();
    let trimmed = inc
        .body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &inc.body[i..])
        .unwrap_or(&[]);
    let is_form = ct.contains("application/x-www-form-urlencoded")
        || (!ct.contains("json") && !trimmed.starts_with(b"{"));
    let mut params = HashMap::new();
    if is_form {
        for (k, v) in url::form_urlencoded::parse(&inc.body) {
            params.insert(k.into_owned(), v.into_owned());
        }
    } else if !trimmed.is_empty() {
        let value: Value = serde_json::from_slice(trimmed)
            .map_err(|_| auth_error(400, "invalid_request", "Invalid JSON payload"))?;
        let Value::Object(obj) = value else {
            return Err(auth_error(400, "invalid_request", "Invalid JSON payload"));
        };
        for (k, v) in obj {
            if let Value::String(s) = v {
                params.insert(k, s);
            }
        }
    }
    Ok(params)
}

/// Reads the token request parameters from a JSON or form body, plus an
/// `Authorization: Basic` header.
fn token_params(inc: &Incoming) -> Result<HashMap<String, String>, Reply> {
    let mut params = body_params(inc)?;
    // client_secret_basic: credentials in an Authorization: Basic header.
    if let Some(auth) = &inc.authorization {
        if let Some((scheme, rest)) = auth.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = util::base64_decode(rest.trim())
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                if let Some((id, secret)) = decoded.split_once(':') {
                    params
                        .entry("client_id".into())
                        .or_insert_with(|| util::percent_decode(id));
                    params
                        .entry("client_secret".into())
                        .or_insert_with(|| util::percent_decode(secret));
                }
            }
        }
    }
    params.retain(|_, v| !v.is_empty());
    Ok(params)
}

/// `POST /oauth/token` with the client credentials grant.
pub fn token(state: &mut State, inc: &Incoming, now_ms: u64) -> Reply {
    let params = match token_params(inc) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let missing = |name: &str| {
        auth_error(
            400,
            "invalid_request",
            &format!("Missing required parameter: {name}"),
        )
    };
    let Some(grant_type) = params.get("grant_type") else {
        return missing("grant_type");
    };
    let Some(client_id) = params.get("client_id") else {
        return missing("client_id");
    };
    if grant_type != "client_credentials" {
        return auth_error(
            403,
            "unauthorized_client",
            &format!("Grant type '{grant_type}' not allowed for the client."),
        );
    }
    let Some(client_secret) = params.get("client_secret") else {
        return missing("client_secret");
    };
    if *client_id != state.settings.client_id || *client_secret != state.settings.client_secret {
        return auth_error(401, "access_denied", "Unauthorized");
    }
    let Some(audience) = params.get("audience") else {
        return auth_error(
            403,
            "access_denied",
            "No audience parameter was provided, and no default audience has been configured",
        );
    };
    if *audience != state.settings.audience {
        return auth_error(
            403,
            "access_denied",
            &format!("Service not found: {audience}"),
        );
    }
    let granted = state.config.scopes.clone();
    if granted.is_empty() {
        return auth_error(
            403,
            "access_denied",
            &format!(
                "Client is not authorized to access \"{audience}\". You need to create a \"client-grant\" associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"
            ),
        );
    }
    let scopes = match params.get("scope") {
        None => granted,
        Some(requested) => {
            let requested = crate::options::split_scopes(requested);
            let not_granted: Vec<&str> = requested
                .iter()
                .filter(|s| !granted.contains(s))
                .map(|s| s.as_str())
                .collect();
            if !not_granted.is_empty() {
                return auth_error(
                    403,
                    "access_denied",
                    &format!(
                        "Client has not been granted scopes: {}",
                        not_granted.join(", ")
                    ),
                );
            }
            granted
                .into_iter()
                .filter(|s| requested.contains(s))
                .collect()
        }
    };
    let scope_str = scopes.join(" ");
    let token = state.issue_token(scopes, now_ms);
    Reply::json_with(
        200,
        &json!({
            "access_token": token,
            "expires_in": state.config.token_lifetime_sec,
            "scope": scope_str,
            "token_type": "Bearer",
        }),
        AUTH_CT,
    )
}

/// Body of Auth0's answer to a change-password request, whether or not the
/// user exists.
pub const CHANGE_PASSWORD_SENT: &str = "We've just sent you an email to reset your password.";

/// The answer to a change-password request hit by fault injection.
pub fn change_password_unavailable() -> Reply {
    auth_error(
        503,
        "temporarily_unavailable",
        "The service is temporarily unavailable.",
    )
}

/// `POST /dbconnections/change_password`: "sends" Auth0's Change Password
/// email. Public (no token). Answers the same 200 whether or not the user
/// exists; only an existing user gets an outbox entry.
pub fn change_password(state: &mut State, inc: &Incoming) -> Reply {
    if inc.body_too_large {
        return auth_error(413, "invalid_request", "Request payload too large");
    }
    let params = match body_params(inc) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let Some(client_id) = get("client_id") else {
        return auth_error(
            400,
            "invalid_request",
            "Missing required parameter: client_id",
        );
    };
    if client_id != state.settings.client_id
        && !state
            .settings
            .public_client_ids
            .iter()
            .any(|c| c == client_id)
    {
        return auth_error(400, "invalid_request", "Unknown client");
    }
    let Some(email) = get("email") else {
        return auth_error(400, "invalid_request", "Missing required parameter: email");
    };
    let connection = get("connection");
    if connection != Some(state.settings.connection_name.as_str()) {
        return auth_error(400, "invalid_request", "connection not found");
    }
    let connection = state.settings.connection_name.clone();
    let wanted = email.to_lowercase();
    let user = state
        .users
        .iter()
        .find(|u| u.connection == connection && u.email.as_deref() == Some(wanted.as_str()));
    if let Some(user) = user {
        let mut entry = Map::new();
        entry.insert(
            "id".into(),
            json!(format!("msg_{}", util::random_alnum(16))),
        );
        entry.insert("kind".into(), json!("change_password"));
        entry.insert("to".into(), json!(user.email));
        entry.insert("user_id".into(), json!(user.user_id));
        entry.insert("connection".into(), json!(connection));
        entry.insert("client_id".into(), json!(client_id));
        if let Some(org) = get("organization") {
            entry.insert("organization".into(), json!(org));
        }
        entry.insert("user_exists".into(), json!(true));
        entry.insert("at".into(), json!(util::now_rfc3339()));
        state.outbox.push(Value::Object(entry));
    }
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: CHANGE_PASSWORD_SENT.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Management API: routing, authentication, scopes
// ---------------------------------------------------------------------------

/// A matched Management API route (ids already percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    CreateUser,
    GetUser(String),
    PatchUser(String),
    UsersByEmail,
    ListRoles,
    CreateRole,
    ListUserRoles(String),
    AssignUserRoles(String),
    PasswordChangeTicket,
    EmailVerificationTicket,
    VerificationEmailJob,
}

/// Matches `method` and the path after `/api/v2`. Returns the route and its
/// stats template. Wrong methods on known paths don't match (→ 404).
pub fn match_route(method: &str, rest: &str) -> Option<(Route, &'static str)> {
    let rest = rest.strip_prefix('/')?;
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let id = |s: &str| util::percent_decode(s);
    let m = method;
    Some(match segs.as_slice() {
        ["users"] if m == "POST" => (Route::CreateUser, "POST /api/v2/users"),
        ["users", u] if m == "GET" => (Route::GetUser(id(u)), "GET /api/v2/users/{id}"),
        ["users", u] if m == "PATCH" => (Route::PatchUser(id(u)), "PATCH /api/v2/users/{id}"),
        ["users-by-email"] if m == "GET" => (Route::UsersByEmail, "GET /api/v2/users-by-email"),
        ["roles"] if m == "GET" => (Route::ListRoles, "GET /api/v2/roles"),
        ["roles"] if m == "POST" => (Route::CreateRole, "POST /api/v2/roles"),
        ["users", u, "roles"] if m == "GET" => {
            (Route::ListUserRoles(id(u)), "GET /api/v2/users/{id}/roles")
        }
        ["users", u, "roles"] if m == "POST" => (
            Route::AssignUserRoles(id(u)),
            "POST /api/v2/users/{id}/roles",
        ),
        ["tickets", "password-change"] if m == "POST" => (
            Route::PasswordChangeTicket,
            "POST /api/v2/tickets/password-change",
        ),
        ["tickets", "email-verification"] if m == "POST" => (
            Route::EmailVerificationTicket,
            "POST /api/v2/tickets/email-verification",
        ),
        ["jobs", "verification-email"] if m == "POST" => (
            Route::VerificationEmailJob,
            "POST /api/v2/jobs/verification-email",
        ),
        _ => return None,
    })
}

fn insufficient_scope(expected: &[&str]) -> Reply {
    Reply::mgmt_error(
        403,
        &format!(
            "Insufficient scope, expected any of: {}",
            expected.join(",")
        ),
        Some("insufficient_scope"),
    )
}

impl Route {
    /// Checks the token's scopes. Each inner list is an "any of" group; all
    /// groups must be satisfied; the first unsatisfied group is reported.
    pub fn check_scopes(&self, scopes: &[String]) -> Result<(), Reply> {
        let groups: &[&[&str]] = match self {
            Route::CreateUser => &[&["create:users"]],
            Route::GetUser(_) | Route::UsersByEmail => &[&["read:users"]],
            Route::PatchUser(_) | Route::VerificationEmailJob => &[&["update:users"]],
            Route::ListRoles => &[&["read:roles"]],
            Route::CreateRole => &[&["create:roles"]],
            Route::ListUserRoles(_) => &[&["read:users"], &["read:roles"]],
            Route::AssignUserRoles(_) => &[&["create:role_members", "update:users"]],
            Route::PasswordChangeTicket | Route::EmailVerificationTicket => {
                &[&["create:user_tickets"]]
            }
        };
        for group in groups {
            if !group.iter().any(|g| scopes.iter().any(|s| s == g)) {
                return Err(insufficient_scope(group));
            }
        }
        Ok(())
    }
}

/// Checks the bearer token; returns its scopes.
pub fn authenticate(state: &State, inc: &Incoming, now_ms: u64) -> Result<Vec<String>, Reply> {
    let missing = || Reply::mgmt_error(401, "Missing authentication", None);
    let header = inc.authorization.as_deref().ok_or_else(missing)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(missing());
    }
    let invalid = |msg: &str| {
        Reply::mgmt(
            401,
            &json!({
                "statusCode": 401,
                "error": "Unauthorized",
                "message": msg,
                "attributes": {"error": msg},
            }),
        )
    };
    let info = state
        .tokens
        .get(token)
        .ok_or_else(|| invalid("Invalid token"))?;
    if now_ms >= info.expires_at_ms {
        return Err(invalid(
            "Expired token received for JSON Web Token validation",
        ));
    }
    Ok(info.scopes.clone())
}

/// Runs the handler for a route that passed authentication and scope checks.
pub fn handle(state: &mut State, route: Route, inc: &Incoming) -> Reply {
    let result = match route {
        Route::CreateUser => create_user(state, inc),
        Route::GetUser(id) => get_user(state, inc, &id),
        Route::PatchUser(id) => patch_user(state, inc, &id),
        Route::UsersByEmail => users_by_email(state, inc),
        Route::ListRoles => list_roles(state, inc),
        Route::CreateRole => create_role(state, inc),
        Route::ListUserRoles(id) => list_user_roles(state, inc, &id),
        Route::AssignUserRoles(id) => assign_user_roles(state, inc, &id),
        Route::PasswordChangeTicket => password_change_ticket(state, inc),
        Route::EmailVerificationTicket => email_verification_ticket(state, inc),
        Route::VerificationEmailJob => verification_email_job(state, inc),
    };
    result.unwrap_or_else(|e| e)
}

type HResult = Result<Reply, Reply>;

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

fn invalid_body(message: &str) -> Reply {
    Reply::mgmt_error(400, message, Some("invalid_body"))
}

fn invalid_query(message: &str) -> Reply {
    Reply::mgmt_error(400, message, Some("invalid_query_string"))
}

fn user_not_found() -> Reply {
    Reply::mgmt_error(404, "The user does not exist.", Some("inexistent_user"))
}

fn connection_not_found() -> Reply {
    Reply::mgmt_error(
        400,
        "The connection does not exist.",
        Some("inexistent_connection"),
    )
}

fn user_exists() -> Reply {
    Reply::mgmt_error(409, "The user already exists.", Some("auth0_idp_error"))
}

fn weak_password() -> Reply {
    Reply::mgmt_error(
        400,
        "PasswordStrengthError: Password is too weak",
        Some("invalid_password"),
    )
}

/// Parses the JSON body (an empty body is `null`, as in Hapi).
fn json_body(inc: &Incoming) -> Result<Value, Reply> {
    if inc.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&inc.body)
        .map_err(|_| invalid_body("Invalid request payload JSON format"))
}

fn validated(inc: &Incoming, schema: &Schema) -> Result<Map<String, Value>, Reply> {
    let body = json_body(inc)?;
    check_payload(&body, schema)
        .cloned()
        .map_err(|m| invalid_body(&m))
}

fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn get_bool(m: &Map<String, Value>, k: &str) -> Option<bool> {
    m.get(k).and_then(Value::as_bool)
}

fn get_obj(m: &Map<String, Value>, k: &str) -> Option<Map<String, Value>> {
    m.get(k).and_then(Value::as_object).cloned()
}

/// Applies `fields` / `include_fields` to a user JSON.
fn project(user: Value, inc: &Incoming) -> Value {
    let Some(fields) = inc.query_param("fields").filter(|f| !f.is_empty()) else {
        return user;
    };
    let include = inc.query_param("include_fields") != Some("false");
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    match user {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| wanted.contains(&k.as_str()) == include)
                .collect(),
        ),
        other => other,
    }
}

const FIELDS_QUERY: [(&str, QTy); 2] = [("fields", QTy::Str), ("include_fields", QTy::Bool)];

/// Reads page / per_page / include_totals (already validated).
fn paging(inc: &Incoming) -> (usize, usize, bool) {
    let page = inc
        .query_param("page")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    let per_page = inc
        .query_param("per_page")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(50);
    let totals = inc.query_param("include_totals") == Some("true");
    (page, per_page, totals)
}

fn paged_roles(roles: Vec<&Role>, inc: &Incoming) -> Value {
    let (page, per_page, totals) = paging(inc);
    let total = roles.len();
    let start = page.saturating_mul(per_page);
    let items: Vec<Value> = roles
        .into_iter()
        .skip(start)
        .take(per_page)
        .map(Role::to_json)
        .collect();
    if totals {
        json!({"roles": items, "start": start, "limit": per_page, "total": total})
    } else {
        Value::Array(items)
    }
}

const PAGING_QUERY: [(&str, QTy); 3] = [
    (
        "page",
        QTy::Int {
            min: 0,
            max: 1_000_000,
        },
    ),
    ("per_page", QTy::Int { min: 0, max: 100 }),
    ("include_totals", QTy::Bool),
];

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

const fn s(min: usize, max: usize) -> Ty {
    Ty::Str {
        min,
        max: Some(max),
        format: None,
    }
}

const EMAIL: Ty = Ty::Str {
    min: 0,
    max: Some(254),
    format: Some(Format::Email),
};
const EMAIL_DESC: &str = "The user's email";
const PHONE: Ty = Ty::Str {
    min: 0,
    max: None,
    format: Some(Format::E164),
};
const PHONE_DESC: &str = "The user's phone number (following the E.164 recommendation)";

const USER_CREATE: Schema = Schema {
    props: &[
        prop_d("email", EMAIL, EMAIL_DESC),
        prop_d("phone_number", PHONE, PHONE_DESC),
        prop("user_metadata", Ty::Object),
        prop("blocked", Ty::Bool),
        prop("email_verified", Ty::Bool),
        prop("phone_verified", Ty::Bool),
        prop("app_metadata", Ty::Object),
        prop("given_name", s(1, 150)),
        prop("family_name", s(1, 150)),
        prop("name", s(1, 300)),
        prop("nickname", s(1, 300)),
        prop("picture", s(1, 2000)),
        prop("user_id", s(1, 255)),
        prop("connection", NONEMPTY),
        prop("password", s(1, 1000)),
        prop("verify_email", Ty::Bool),
        prop("username", s(1, 128)),
    ],
    required: &["connection"],
    min_props: 0,
};

const USER_PATCH: Schema = Schema {
    props: &[
        prop("blocked", Ty::Bool),
        prop("email_verified", Ty::Bool),
        prop_d("email", EMAIL, EMAIL_DESC),
        prop_d("phone_number", PHONE, PHONE_DESC),
        prop("phone_verified", Ty::Bool),
        prop("user_metadata", Ty::Object),
        prop("app_metadata", Ty::Object),
        prop("given_name", s(1, 150)),
        prop("family_name", s(1, 150)),
        prop("name", s(1, 300)),
        prop("nickname", s(1, 300)),
        prop("picture", s(1, 2000)),
        prop("verify_email", Ty::Bool),
        prop("verify_phone_number", Ty::Bool),
        prop("password", s(1, 1000)),
        prop("connection", NONEMPTY),
        prop("client_id", NONEMPTY),
        prop("username", s(1, 128)),
    ],
    required: &[],
    min_props: 1,
};

fn create_user(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &USER_CREATE)?;
    let connection = get_str(&body, "connection").unwrap_or_default();
    if connection != state.settings.connection_name {
        return Err(connection_not_found());
    }
    let Some(email) = get_str(&body, "email") else {
        return Err(invalid_body(
            "Payload validation error: 'Missing required property: email'.",
        ));
    };
    let Some(password) = get_str(&body, "password") else {
        return Err(invalid_body(
            "Payload validation error: 'Missing required property: password'.",
        ));
    };
    if !password_ok(password) {
        return Err(weak_password());
    }
    let email = email.to_lowercase();
    if state
        .users
        .iter()
        .any(|u| u.connection == connection && u.email.as_deref() == Some(email.as_str()))
    {
        return Err(user_exists());
    }
    let local_id = match get_str(&body, "user_id") {
        Some(id) => id.strip_prefix("auth0|").unwrap_or(id).to_string(),
        None => util::random_hex(12),
    };
    let user_id = format!("auth0|{local_id}");
    if state.user(&user_id).is_some() {
        return Err(user_exists());
    }
    let username = get_str(&body, "username").map(str::to_string);
    if let Some(name) = &username {
        if state.users.iter().any(|u| {
            u.username
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }) {
            return Err(Reply::mgmt_error(
                409,
                "The username provided is in use already.",
                Some("auth0_idp_error"),
            ));
        }
    }

    let email_verified = get_bool(&body, "email_verified").unwrap_or(false);
    let verify_email = get_bool(&body, "verify_email").unwrap_or(!email_verified);
    let local_part = email.split('@').next().unwrap_or_default().to_string();
    let now = util::now_rfc3339();
    let user = User {
        user_id: user_id.clone(),
        local_id,
        connection: connection.to_string(),
        email_verified,
        username,
        phone_number: get_str(&body, "phone_number").map(str::to_string),
        phone_verified: get_bool(&body, "phone_verified"),
        name: Some(get_str(&body, "name").unwrap_or(&email).to_string()),
        nickname: Some(
            get_str(&body, "nickname")
                .map(str::to_string)
                .unwrap_or(local_part),
        ),
        picture: Some(
            get_str(&body, "picture")
                .map(str::to_string)
                .unwrap_or_else(|| util::gravatar_url(&email)),
        ),
        given_name: get_str(&body, "given_name").map(str::to_string),
        family_name: get_str(&body, "family_name").map(str::to_string),
        user_metadata: get_obj(&body, "user_metadata"),
        app_metadata: get_obj(&body, "app_metadata"),
        blocked: get_bool(&body, "blocked"),
        email: Some(email),
        created_at: now.clone(),
        updated_at: now,
        role_ids: Vec::new(),
        tickets: Vec::new(),
    };
    let out = user.to_json();
    state.users.push(user);
    if verify_email {
        state.send_verification_email(&user_id, "user_created", None);
    }
    Ok(Reply::mgmt(201, &out))
}

fn get_user(state: &State, inc: &Incoming, id: &str) -> HResult {
    check_query(&inc.query, &FIELDS_QUERY, &[]).map_err(|m| invalid_query(&m))?;
    let user = state.user(id).ok_or_else(user_not_found)?;
    Ok(Reply::mgmt(200, &project(user.to_json(), inc)))
}

fn merge_metadata(target: &mut Option<Map<String, Value>>, patch: Map<String, Value>) {
    let map = target.get_or_insert_with(Map::new);
    for (k, v) in patch {
        if v.is_null() {
            map.remove(&k);
        } else {
            map.insert(k, v);
        }
    }
}

fn patch_user(state: &mut State, inc: &Incoming, id: &str) -> HResult {
    let body = validated(inc, &USER_PATCH)?;
    let connection_name = state.settings.connection_name.clone();
    let existing = state.user(id).ok_or_else(user_not_found)?;
    if let Some(c) = get_str(&body, "connection") {
        if c != connection_name {
            return Err(connection_not_found());
        }
    }
    if let Some(pw) = get_str(&body, "password") {
        if !password_ok(pw) {
            return Err(weak_password());
        }
    }
    let new_email = get_str(&body, "email").map(str::to_lowercase);
    let email_changed = new_email.is_some() && new_email != existing.email;
    if let Some(e) = &new_email {
        if email_changed
            && state.users.iter().any(|u| {
                u.user_id != id
                    && u.connection == existing.connection
                    && u.email.as_deref() == Some(e)
            })
        {
            return Err(user_exists());
        }
    }
    if let Some(name) = get_str(&body, "username") {
        if state.users.iter().any(|u| {
            u.user_id != id
                && u.username
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }) {
            return Err(Reply::mgmt_error(
                409,
                "The username provided is in use already.",
                Some("auth0_idp_error"),
            ));
        }
    }

    let user = state.user_mut(id).ok_or_else(user_not_found)?;
    let set = |field: &mut Option<String>, key: &str| {
        if let Some(v) = get_str(&body, key) {
            *field = Some(v.to_string());
        }
    };
    set(&mut user.given_name, "given_name");
    set(&mut user.family_name, "family_name");
    set(&mut user.name, "name");
    set(&mut user.nickname, "nickname");
    set(&mut user.picture, "picture");
    set(&mut user.phone_number, "phone_number");
    set(&mut user.username, "username");
    if let Some(b) = get_bool(&body, "blocked") {
        user.blocked = Some(b);
    }
    if let Some(b) = get_bool(&body, "phone_verified") {
        user.phone_verified = Some(b);
    }
    if email_changed {
        user.email = new_email;
        user.email_verified = false;
    }
    if let Some(b) = get_bool(&body, "email_verified") {
        user.email_verified = b;
    }
    if let Some(m) = get_obj(&body, "user_metadata") {
        merge_metadata(&mut user.user_metadata, m);
    }
    if let Some(m) = get_obj(&body, "app_metadata") {
        merge_metadata(&mut user.app_metadata, m);
    }
    user.updated_at = util::now_rfc3339();
    let out = user.to_json();
    if email_changed && get_bool(&body, "verify_email") == Some(true) {
        state.send_verification_email(id, "email_changed", None);
    }
    Ok(Reply::mgmt(200, &out))
}

fn users_by_email(state: &State, inc: &Incoming) -> HResult {
    let allowed = [FIELDS_QUERY[0], FIELDS_QUERY[1], ("email", QTy::Str)];
    check_query(&inc.query, &allowed, &["email"]).map_err(|m| invalid_query(&m))?;
    let email = inc.query_param("email").unwrap_or_default();
    let users: Vec<Value> = state
        .users
        .iter()
        .filter(|u| u.email.as_deref() == Some(email))
        .map(|u| project(u.to_json(), inc))
        .collect();
    Ok(Reply::mgmt(200, &Value::Array(users)))
}

// ---------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------

const ROLE_CREATE: Schema = Schema {
    props: &[prop("name", s(1, 50)), prop("description", s(0, 140))],
    required: &["name"],
    min_props: 0,
};

fn list_roles(state: &State, inc: &Incoming) -> HResult {
    let allowed = [
        PAGING_QUERY[0],
        PAGING_QUERY[1],
        PAGING_QUERY[2],
        ("name_filter", QTy::Str),
    ];
    check_query(&inc.query, &allowed, &[]).map_err(|m| invalid_query(&m))?;
    let filter = inc
        .query_param("name_filter")
        .unwrap_or_default()
        .to_lowercase();
    let roles: Vec<&Role> = state
        .sorted_roles(None)
        .into_iter()
        .filter(|r| r.name.to_lowercase().contains(&filter))
        .collect();
    Ok(Reply::mgmt(200, &paged_roles(roles, inc)))
}

fn create_role(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &ROLE_CREATE)?;
    let name = get_str(&body, "name").unwrap_or_default().to_string();
    if state
        .roles
        .iter()
        .any(|r| r.name.to_lowercase() == name.to_lowercase())
    {
        return Err(Reply::mgmt_error(409, "Role name already exists", None));
    }
    let role = Role {
        id: format!("rol_{}", util::random_alnum(16)),
        name,
        description: get_str(&body, "description").map(str::to_string),
    };
    let out = role.to_json();
    state.roles.push(role);
    Ok(Reply::mgmt(200, &out))
}

fn list_user_roles(state: &State, inc: &Incoming, id: &str) -> HResult {
    check_query(&inc.query, &PAGING_QUERY, &[]).map_err(|m| invalid_query(&m))?;
    let user = state.user(id).ok_or_else(user_not_found)?;
    let roles = state.sorted_roles(Some(&user.role_ids));
    Ok(Reply::mgmt(200, &paged_roles(roles, inc)))
}

const ASSIGN_ROLES: Schema = Schema {
    props: &[prop(
        "roles",
        Ty::StrArray {
            min_items: 1,
            item_min: 1,
        },
    )],
    required: &["roles"],
    min_props: 0,
};

fn assign_user_roles(state: &mut State, inc: &Incoming, id: &str) -> HResult {
    let body = validated(inc, &ASSIGN_ROLES)?;
    let ids: Vec<String> = body
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if state.user(id).is_none() {
        return Err(user_not_found());
    }
    if ids.iter().any(|r| state.role(r).is_none()) {
        return Err(Reply::mgmt_error(404, "The role does not exist.", None));
    }
    let user = state.user_mut(id).ok_or_else(user_not_found)?;
    for r in ids {
        if !user.role_ids.contains(&r) {
            user.role_ids.push(r);
        }
    }
    Ok(Reply::no_content())
}

// ---------------------------------------------------------------------------
// Tickets and jobs
// ---------------------------------------------------------------------------

const URL_TY: Ty = Ty::Str {
    min: 0,
    max: None,
    format: Some(Format::AbsoluteUri),
};
const TTL: Ty = Ty::Int {
    min: Some(0),
    max: None,
};

const PASSWORD_TICKET: Schema = Schema {
    props: &[
        prop_d(
            "result_url",
            URL_TY,
            "URL the user will be redirected to once ticket is used.",
        ),
        prop("user_id", NONEMPTY),
        prop("client_id", NONEMPTY),
        prop("organization_id", NONEMPTY),
        prop("connection_id", NONEMPTY),
        prop_d(
            "email",
            Ty::Str {
                min: 0,
                max: Some(254),
                format: Some(Format::Email),
            },
            EMAIL_DESC,
        ),
        prop("ttl_sec", TTL),
        prop("mark_email_as_verified", Ty::Bool),
        prop("includeEmailInRedirect", Ty::Bool),
    ],
    required: &[],
    min_props: 0,
};

const EMAIL_TICKET: Schema = Schema {
    props: &[
        prop_d(
            "result_url",
            URL_TY,
            "URL the user will be redirected to once ticket is used.",
        ),
        prop("user_id", NONEMPTY),
        prop("client_id", NONEMPTY),
        prop("organization_id", NONEMPTY),
        prop("ttl_sec", TTL),
        prop("includeEmailInRedirect", Ty::Bool),
        prop("identity", Ty::Identity),
    ],
    required: &["user_id"],
    min_props: 0,
};

const VERIFICATION_JOB: Schema = Schema {
    props: &[
        prop("user_id", NONEMPTY),
        prop("client_id", NONEMPTY),
        prop("identity", Ty::Identity),
        prop("organization_id", NONEMPTY),
    ],
    required: &["user_id"],
    min_props: 0,
};

fn check_exclusive(body: &Map<String, Value>) -> Result<(), Reply> {
    if body.contains_key("result_url") {
        for other in ["client_id", "organization_id"] {
            if body.contains_key(other) {
                return Err(invalid_body(&format!(
                    "The {other} and result_url parameters are mutually exclusive."
                )));
            }
        }
    }
    Ok(())
}

/// Builds a ticket, records it on the user and returns the response.
fn issue_ticket(
    state: &mut State,
    user_id: &str,
    kind: &str,
    path: &str,
    body: &Map<String, Value>,
) -> HResult {
    let url = format!(
        "https://{}/u/{path}?ticket={}#",
        state.settings.domain,
        util::random_alnum(32)
    );
    let ttl = body
        .get("ttl_sec")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_TICKET_TTL);
    let now_ms = util::now_ms();
    let mut rec = Map::new();
    rec.insert("type".into(), json!(kind));
    rec.insert("url".into(), json!(url));
    rec.insert("result_url".into(), json!(get_str(body, "result_url")));
    rec.insert("client_id".into(), json!(get_str(body, "client_id")));
    rec.insert(
        "organization_id".into(),
        json!(get_str(body, "organization_id")),
    );
    rec.insert("ttl_sec".into(), json!(ttl));
    if kind == "password_change" {
        rec.insert(
            "mark_email_as_verified".into(),
            json!(get_bool(body, "mark_email_as_verified").unwrap_or(false)),
        );
    }
    rec.insert(
        "includeEmailInRedirect".into(),
        json!(get_bool(body, "includeEmailInRedirect").unwrap_or(false)),
    );
    rec.insert("created_at".into(), json!(util::rfc3339_ms(now_ms)));
    rec.insert(
        "expires_at".into(),
        json!(util::rfc3339_ms(
            now_ms.saturating_add(ttl.saturating_mul(1000))
        )),
    );
    let user = state.user_mut(user_id).ok_or_else(user_not_found)?;
    user.tickets.push(Value::Object(rec));
    Ok(Reply::mgmt(201, &json!({ "ticket": url })))
}

fn password_change_ticket(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &PASSWORD_TICKET)?;
    check_exclusive(&body)?;
    let user_id = if let Some(id) = get_str(&body, "user_id") {
        state.user(id).ok_or_else(user_not_found)?.user_id.clone()
    } else {
        let missing = |p: &str| {
            invalid_body(&format!(
                "Payload validation error: 'Missing required property: {p}'."
            ))
        };
        let email = get_str(&body, "email");
        let conn = get_str(&body, "connection_id");
        let (email, conn) = match (email, conn) {
            (Some(e), Some(c)) => (e.to_lowercase(), c),
            (Some(_), None) => return Err(missing("connection_id")),
            (None, Some(_)) => return Err(missing("email")),
            (None, None) => return Err(missing("user_id")),
        };
        if conn != state.settings.connection_id {
            return Err(Reply::mgmt_error(
                404,
                "The connection does not exist.",
                Some("inexistent_connection"),
            ));
        }
        state
            .users
            .iter()
            .find(|u| u.email.as_deref() == Some(email.as_str()))
            .ok_or_else(user_not_found)?
            .user_id
            .clone()
    };
    issue_ticket(state, &user_id, "password_change", "reset-password", &body)
}

fn email_verification_ticket(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &EMAIL_TICKET)?;
    check_exclusive(&body)?;
    let id = get_str(&body, "user_id").unwrap_or_default().to_string();
    if state.user(&id).is_none() {
        return Err(user_not_found());
    }
    issue_ticket(
        state,
        &id,
        "email_verification",
        "email-verification",
        &body,
    )
}

fn verification_email_job(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &VERIFICATION_JOB)?;
    let id = get_str(&body, "user_id").unwrap_or_default().to_string();
    if state.user(&id).is_none() {
        return Err(user_not_found());
    }
    let job_id = format!("job_{}", util::random_alnum(16));
    let created_at = util::now_rfc3339();
    state.send_verification_email(&id, "job", Some(&job_id));
    Ok(Reply::mgmt(
        201,
        &json!({
            "type": "verification_email",
            "status": "pending",
            "created_at": created_at,
            "id": job_id,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            match_route("GET", "/users/auth0%7Cabc").map(|r| r.0),
            Some(Route::GetUser("auth0|abc".into()))
        );
        assert_eq!(
            match_route("POST", "/users/auth0%7Cabc/roles").map(|r| r.1),
            Some("POST /api/v2/users/{id}/roles")
        );
        assert!(match_route("DELETE", "/users/x").is_none());
        assert!(match_route("POST", "/users/").is_none());
        assert!(match_route("GET", "/nope").is_none());
        assert!(match_route("GET", "").is_none());
    }

    #[test]
    fn scope_groups() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(Route::AssignUserRoles("x".into())
            .check_scopes(&s(&["update:users"]))
            .is_ok());
        assert!(Route::ListUserRoles("x".into())
            .check_scopes(&s(&["read:users"]))
            .is_err());
        assert!(Route::ListUserRoles("x".into())
            .check_scopes(&s(&["read:users", "read:roles"]))
            .is_ok());
    }

    #[test]
    fn metadata_merge() {
        let mut target = Some(
            json!({"a": 1, "b": 2})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let patch = json!({"b": null, "c": 3})
            .as_object()
            .cloned()
            .unwrap_or_default();
        merge_metadata(&mut target, patch);
        assert_eq!(
            Value::Object(target.unwrap_or_default()),
            json!({"a":1,"c":3})
        );
    }
}
