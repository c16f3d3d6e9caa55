//! The Authentication API: `POST /oauth/token` (client credentials grant) and
//! `POST /dbconnections/change_password`, with their `{error,
//! error_description}` replies.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::server::{Incoming, Reply, AUTH_CT};
use crate::state::State;
use crate::util;

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
