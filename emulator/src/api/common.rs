//! Helpers shared by the Management API handlers: the one catalogue of named
//! error replies, JSON body parsing and validation, field accessors, the
//! `fields` projection, paging, and schema building blocks.

use serde_json::{json, Map, Value};

use crate::server::{Incoming, Reply};
use crate::state::Role;
use crate::validate::{check_payload, QTy, Schema, Ty};

pub(super) type HResult = Result<Reply, Reply>;

pub(super) fn invalid_body(message: &str) -> Reply {
    Reply::mgmt_error(400, message, Some("invalid_body"))
}

pub(super) fn invalid_query(message: &str) -> Reply {
    Reply::mgmt_error(400, message, Some("invalid_query_string"))
}

/// A path parameter that fails its format (Auth0's `invalid_uri`).
pub(super) fn invalid_uri(message: &str) -> Reply {
    Reply::mgmt_error(400, message, Some("invalid_uri"))
}

pub(crate) fn user_not_found() -> Reply {
    Reply::mgmt_error(404, "The user does not exist.", Some("inexistent_user"))
}

/// No `errorCode`: like the recorded "The role does not exist." 404, and
/// no recording shows what Auth0 puts there for jobs.
pub(super) fn job_not_found() -> Reply {
    Reply::mgmt_error(404, "The job does not exist.", None)
}

/// `GET /api/v2/users` pages through the first 1000 results only. The
/// message is Auth0's; its `errorCode` is not known, so none is sent.
pub(super) fn paging_limit() -> Reply {
    Reply::mgmt_error(
        400,
        "You can only page through the first 1000 records. See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation",
        None,
    )
}

pub(super) fn connection_not_found() -> Reply {
    Reply::mgmt_error(
        400,
        "The connection does not exist.",
        Some("inexistent_connection"),
    )
}

pub(super) fn user_exists() -> Reply {
    Reply::mgmt_error(409, "The user already exists.", Some("auth0_idp_error"))
}

/// A password holding the user's personal data, with the connection's "Personal Data" option
/// on (`password_no_personal_info` in the control API's config).
pub(super) fn personal_info_password() -> Reply {
    Reply::mgmt_error(
        400,
        "PasswordNoUserInfoError: Password contains user information",
        Some("invalid_password"),
    )
}

pub(super) fn weak_password() -> Reply {
    Reply::mgmt_error(
        400,
        "PasswordStrengthError: Password is too weak",
        Some("invalid_password"),
    )
}

/// Parses the JSON body (an empty body is `null`, as in Hapi).
pub(super) fn json_body(inc: &Incoming) -> Result<Value, Reply> {
    if inc.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&inc.body)
        .map_err(|_| invalid_body("Invalid request payload JSON format"))
}

pub(super) fn validated(inc: &Incoming, schema: &Schema) -> Result<Map<String, Value>, Reply> {
    let body = json_body(inc)?;
    check_payload(&body, schema)
        .cloned()
        .map_err(|m| invalid_body(&m))
}

pub(super) fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

pub(super) fn get_bool(m: &Map<String, Value>, k: &str) -> Option<bool> {
    m.get(k).and_then(Value::as_bool)
}

pub(super) fn get_obj(m: &Map<String, Value>, k: &str) -> Option<Map<String, Value>> {
    m.get(k).and_then(Value::as_object).cloned()
}

/// Applies `fields` / `include_fields` to a user JSON.
pub(super) fn project(user: Value, inc: &Incoming) -> Value {
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

pub(super) const FIELDS_QUERY: [(&str, QTy); 2] =
    [("fields", QTy::Str), ("include_fields", QTy::Bool)];

/// Reads page / per_page / include_totals (already validated).
pub(super) fn paging(inc: &Incoming) -> (usize, usize, bool) {
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

pub(super) fn paged_roles(roles: Vec<&Role>, inc: &Incoming) -> Value {
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

pub(super) const PAGING_QUERY: [(&str, QTy); 3] = [
    (
        "page",
        QTy::Int {
            min: 0,
            max: 1_000_000,
        },
    ),
    // "Required range: 1 <= x <= 100" for GET /roles and GET /users/{id}/roles
    // (GET /users, whose spec says 0..100, uses its own 1..100).
    ("per_page", QTy::Int { min: 1, max: 100 }),
    ("include_totals", QTy::Bool),
];

/// Refuses metadata whose field names hold `.` or `$` (at any depth), which
/// Auth0's "Metadata Field Names and Data Types" forbids. The wording of
/// Auth0's message is not public; this one names the field.
pub(super) fn check_metadata_keys(body: &Map<String, Value>) -> Result<(), Reply> {
    for prop in ["user_metadata", "app_metadata"] {
        if let Some(key) = body.get(prop).and_then(crate::validate::bad_metadata_key) {
            return Err(invalid_body(&format!(
                "Payload validation error: 'Invalid field name: {key}. Metadata field names must not contain . or $' on property {prop}."
            )));
        }
    }
    Ok(())
}

pub(super) fn insufficient_scope(expected: &[&str]) -> Reply {
    Reply::mgmt_error(
        403,
        &format!(
            "Insufficient scope, expected any of: {}",
            expected.join(",")
        ),
        Some("insufficient_scope"),
    )
}

pub(super) const fn s(min: usize, max: usize) -> Ty {
    Ty::Str {
        min,
        max: Some(max),
        format: None,
    }
}

pub(super) const EMAIL_DESC: &str = "The user's email";
