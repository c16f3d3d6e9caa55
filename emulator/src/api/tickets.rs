//! Management API tickets and jobs: password-change and email-verification
//! tickets (recorded in [`State::tickets`], where their validity is worked
//! out) and verification-email jobs, which can be read back by id.

use serde_json::{json, Map, Value};

use crate::server::{Incoming, Reply};
use crate::state::{Job, State, Ticket, TicketKind};
use crate::util;
use crate::validate::{check_query, prop, prop_d, Format, Schema, Ty, NONEMPTY};

use super::common::{
    get_bool, get_str, invalid_body, invalid_query, job_not_found, user_not_found, validated,
    HResult, EMAIL_DESC,
};

/// Default lifetime Auth0 gives tickets when `ttl_sec` is absent (5 days).
const DEFAULT_TICKET_TTL: u64 = 432_000;

const URL_TY: Ty = Ty::Str {
    min: 0,
    max: None,
    format: Some(Format::AbsoluteUri),
};
/// `format: user-id` in Auth0's ticket and job schemas.
const USER_ID: Ty = Ty::Str {
    min: 1,
    max: None,
    format: Some(Format::UserId),
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
        prop_d(
            "user_id",
            USER_ID,
            "user_id of for whom the ticket should be created.",
        ),
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
        prop_d(
            "user_id",
            USER_ID,
            "user_id of for whom the ticket should be created.",
        ),
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
        prop_d(
            "user_id",
            USER_ID,
            "user_id of the user to send the verification email to.",
        ),
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

/// Builds a ticket, records it and returns the response. Issuing it makes
/// the user's older tickets of the same kind "superseded" (see
/// [`State::ticket_reason`]).
fn issue_ticket(
    state: &mut State,
    user_id: &str,
    kind: TicketKind,
    body: &Map<String, Value>,
) -> HResult {
    let email = state
        .user(user_id)
        .ok_or_else(user_not_found)?
        .email
        .clone();
    let id = util::random_alnum(32);
    let url = format!(
        "https://{}/u/{}?ticket={id}#",
        state.settings.domain,
        kind.page()
    );
    let ttl = body
        .get("ttl_sec")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_TICKET_TTL);
    let now_ms = util::now_ms();
    let mut rec = Map::new();
    rec.insert("type".into(), json!(kind.as_str()));
    rec.insert("url".into(), json!(url));
    rec.insert("result_url".into(), json!(get_str(body, "result_url")));
    rec.insert("client_id".into(), json!(get_str(body, "client_id")));
    rec.insert(
        "organization_id".into(),
        json!(get_str(body, "organization_id")),
    );
    rec.insert("ttl_sec".into(), json!(ttl));
    if kind == TicketKind::PasswordChange {
        rec.insert(
            "mark_email_as_verified".into(),
            json!(get_bool(body, "mark_email_as_verified").unwrap_or(false)),
        );
    }
    rec.insert(
        "includeEmailInRedirect".into(),
        json!(get_bool(body, "includeEmailInRedirect").unwrap_or(false)),
    );
    let expires_ms = now_ms.saturating_add(ttl.saturating_mul(1000));
    rec.insert("created_at".into(), json!(util::rfc3339_ms(now_ms)));
    rec.insert("expires_at".into(), json!(util::rfc3339_ms(expires_ms)));
    state.tickets.push(Ticket {
        id,
        kind,
        user_id: user_id.to_string(),
        email,
        url: url.clone(),
        record: rec,
        created_ms: now_ms,
        expires_ms,
        used_ms: None,
        user_deleted: false,
    });
    Ok(Reply::mgmt(201, &json!({ "ticket": url })))
}

pub(super) fn password_change_ticket(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &PASSWORD_TICKET)?;
    check_exclusive(&body)?;
    // "email: Cannot be specified when using user_id"; "You cannot send
    // user_id when specifying a connection_id" (Auth0's schema). The wording
    // of Auth0's 400 is not public.
    if body.contains_key("user_id") {
        for other in ["email", "connection_id"] {
            if body.contains_key(other) {
                return Err(invalid_body(&format!(
                    "The user_id and {other} parameters are mutually exclusive."
                )));
            }
        }
    }
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
    issue_ticket(state, &user_id, TicketKind::PasswordChange, &body)
}

pub(super) fn email_verification_ticket(state: &mut State, inc: &Incoming) -> HResult {
    let body = validated(inc, &EMAIL_TICKET)?;
    check_exclusive(&body)?;
    let id = get_str(&body, "user_id").unwrap_or_default().to_string();
    if state.user(&id).is_none() {
        return Err(user_not_found());
    }
    issue_ticket(state, &id, TicketKind::EmailVerification, &body)
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
    state.jobs.push(Job {
        id: job_id.clone(),
        job_type: "verification_email",
        created_at: created_at.clone(),
        user_id: id,
    });
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

/// `GET /api/v2/jobs/{id}`.
pub(super) fn get_job(state: &State, inc: &Incoming, id: &str) -> HResult {
    check_query(&inc.query, &[], &[]).map_err(|m| invalid_query(&m))?;
    let job = state
        .jobs
        .iter()
        .find(|j| j.id == id)
        .ok_or_else(job_not_found)?;
    Ok(Reply::mgmt(200, &job.to_json()))
}
