//! Management API tickets and jobs: password-change and email-verification
//! tickets (recorded on the user) and verification-email jobs.

use serde_json::{json, Map, Value};

use crate::server::{Incoming, Reply};
use crate::state::State;
use crate::util;
use crate::validate::{prop, prop_d, Format, Schema, Ty, NONEMPTY};

use super::common::{
    get_bool, get_str, invalid_body, user_not_found, validated, HResult, EMAIL_DESC,
};

/// Default lifetime Auth0 gives tickets when `ttl_sec` is absent (5 days).
const DEFAULT_TICKET_TTL: u64 = 432_000;

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

pub(super) fn password_change_ticket(state: &mut State, inc: &Incoming) -> HResult {
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

pub(super) fn email_verification_ticket(state: &mut State, inc: &Incoming) -> HResult {
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

pub(super) fn verification_email_job(state: &mut State, inc: &Incoming) -> HResult {
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
