//! The trusted API's queued side (API key only): `Prefer: respond-async` invites, batches of
//! up to [`MAX_BATCH_ITEMS`], their statuses, and re-driving a failed invite. Statuses live in
//! the gate, so they are readable the moment the 202 is sent.

use serde_json::{json, Value};

use crate::auth0::Ctx;
use crate::error::{ApiError, ErrorCode, ValidationError};
use crate::gate::{GateCall, GateReply, Kind, QueuedInvite, StatusView};
use crate::http::{HttpRequest, HttpResponse};
use crate::invite::{parse_invite, InviteInput, Verification, MAX_BODY_BYTES};
use crate::platform::Platform;
use crate::queue::{accept, new_id, record, Acceptance};

/// Most invites one batch can hold; a deployment's own limit, `BATCH_MAX_INVITES`
/// ([`crate::config::Config::batch_max_invites`]), is at most this and 100 by default.
pub const MAX_BATCH_ITEMS: usize = 1000;
/// Largest batch body (1,000 invites of about 1 KiB).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Whether the caller sent `Prefer: respond-async` (RFC 7240).
pub fn prefers_async(req: &HttpRequest) -> bool {
    req.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("prefer"))
        .flat_map(|(_, v)| v.split(','))
        .any(|p| {
            p.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("respond-async"))
        })
}

/// A queued invite's answer comes later, from the status endpoint, which keeps the password
/// link only; a verification link has nowhere to go, so it is asked for synchronously.
fn queueable(input: InviteInput) -> Result<InviteInput, ValidationError> {
    if input.verification == Some(Verification::Ticket) {
        return Err(ValidationError::field(
            ErrorCode::InvalidField,
            "verification",
            "verification \"ticket\" is returned only by a synchronous invite (no Prefer: respond-async, no batch); use \"email\" here",
        ));
    }
    Ok(input)
}

fn trusted_message(id: String, input: InviteInput, label: &str) -> QueuedInvite {
    QueuedInvite::new(id.clone(), Kind::Trusted, input, None, label, id)
}

/// `POST /v1/invites` with `Prefer: respond-async`: 202 and `Location: /v1/invites/{id}`.
pub async fn invite_async<P: Platform>(
    cx: &Ctx<'_, P>,
    req: &HttpRequest,
    label: &str,
) -> Result<HttpResponse, ApiError> {
    let input = queueable(parse_invite(&req.body, cx.cfg)?)?;
    let id = new_id(cx.p, "inv")?;
    accept(
        cx,
        vec![trusted_message(id.clone(), input, label)],
        None,
        None,
        false,
    )
    .await?;
    Ok(
        HttpResponse::json(202, &json!({"id": id, "status": "queued"}))
            .with_header("location", format!("/v1/invites/{id}"))
            .with_header("preference-applied", "respond-async"),
    )
}

/// `POST /v1/invites/batch`: `{"invites": [ … ]}`, each item validated like a single invite.
/// Valid items are queued; each item's answer is its id or its error.
pub async fn batch<P: Platform>(
    cx: &Ctx<'_, P>,
    req: &HttpRequest,
    label: &str,
) -> Result<HttpResponse, ApiError> {
    let value: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ValidationError::invalid_json(format!("body is not valid JSON: {e}")))?;
    // The body holds `invites` alone, as a single invite holds only its own fields: a key
    // sent for nothing (a misspelt option) is refused, not ignored.
    if let Some(other) = value
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "invites"))
    {
        return Err(ValidationError::field(
            ErrorCode::InvalidField,
            other,
            format!("unknown field '{other}'; send {{\"invites\": [ … ]}}"),
        )
        .into());
    }
    let items = match value.get("invites") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(ValidationError::field(
                ErrorCode::InvalidField,
                "invites",
                "send {\"invites\": [ … ]}, an array of invites",
            )
            .into())
        }
    };
    let most = cx.cfg.batch_max_invites;
    if items.is_empty() || items.len() > most {
        return Err(ValidationError::field(
            ErrorCode::InvalidField,
            "invites",
            format!("a batch holds 1 to {most} invites (BATCH_MAX_INVITES); send the rest in further batches"),
        )
        .into());
    }
    let batch_id = new_id(cx.p, "bat")?;
    let mut messages = Vec::new();
    let mut answers = Vec::with_capacity(items.len());
    // The addresses queued so far, each with its item's index.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let bytes = item.to_string().into_bytes();
        // Each item is held to a single invite's limit: it becomes one queue message.
        let checked = if bytes.len() > MAX_BODY_BYTES {
            Err(ValidationError::too_large(MAX_BODY_BYTES))
        } else {
            parse_invite(&bytes, cx.cfg).and_then(queueable)
        };
        // One address once: Auth0 keeps only an account's newest link, so a second item for
        // it would void the link the first one's status shows (found in an audit).
        let checked =
            checked.and_then(|input| match seen.iter().find(|(e, _)| *e == input.email) {
                Some((_, first)) => Err(ValidationError::field(
                    ErrorCode::InvalidField,
                    "email",
                    format!("the same address as item {first}: one link per address"),
                )),
                None => Ok(input),
            });
        match checked {
            Ok(input) => {
                seen.push((input.email.clone(), index));
                let id = new_id(cx.p, "inv")?;
                answers.push(json!({"index": index, "id": id, "status": "queued"}));
                messages.push(trusted_message(id, input, label));
            }
            Err(e) => {
                let mut err = json!({"code": e.code.as_str(), "message": e.message});
                if let Some(f) = e.field {
                    err["field"] = json!(f);
                }
                answers.push(json!({"index": index, "error": err}));
            }
        }
    }
    let mut queued = messages.len();
    if queued > 0 {
        if let Acceptance::Partly { queued: sent } =
            accept(cx, messages, Some(batch_id.clone()), None, false).await?
        {
            // Those not sent were withdrawn: they are answered like an item that was refused,
            // to be sent again, and the batch's status does not list them. The answers with an
            // id are the messages, in order, so the unsent are those after the first `sent`.
            for a in answers
                .iter_mut()
                .filter(|a| a.get("id").is_some())
                .skip(sent)
            {
                *a = json!({"index": a["index"], "error": {
                    "code": ErrorCode::QueueUnavailable.as_str(),
                    "message": "the invite could not be queued; nothing was done for it, send it again",
                }});
            }
            queued = sent;
        }
    }
    if queued == 0 {
        // Every item refused: nothing was recorded, so there is no batch to follow (a 202
        // named one whose `Location` answered 404; found by running the docs' examples).
        return Ok(HttpResponse::json(
            200,
            &json!({"queued": 0, "rejected": items.len(), "items": answers}),
        ));
    }
    Ok(HttpResponse::json(
        202,
        &json!({"batch_id": batch_id, "queued": queued, "rejected": items.len() - queued, "items": answers}),
    )
    .with_header("location", format!("/v1/batches/{batch_id}")))
}

fn id_in(path: &str, prefix: &str, suffix: &str) -> Option<String> {
    let id = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then(|| id.to_string())
}

fn unknown(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no such {what} (statuses are kept for 7 days)"),
    )
}

async fn ask<P: Platform>(cx: &Ctx<'_, P>, call: GateCall) -> Result<GateReply, ApiError> {
    cx.p.gate(call).await.map_err(|e| {
        ApiError::new(
            ErrorCode::QueueUnavailable,
            "the status store could not be reached; try again",
        )
        .logged(e)
    })
}

/// `GET /v1/invites/{id}`.
pub async fn status<P: Platform>(cx: &Ctx<'_, P>, path: &str) -> Result<HttpResponse, ApiError> {
    let id = id_in(path, "/v1/invites/", "").ok_or_else(|| unknown("invite"))?;
    match ask(cx, GateCall::Status { id }).await? {
        GateReply::Status { invite: Some(view) } => Ok(HttpResponse::json(200, &json!(view))),
        _ => Err(unknown("invite")),
    }
}

/// `GET /v1/batches/{id}`: counts by status and every item.
pub async fn batch_status<P: Platform>(
    cx: &Ctx<'_, P>,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    let id = id_in(path, "/v1/batches/", "").ok_or_else(|| unknown("batch"))?;
    let GateReply::Batch {
        invites: Some(invites),
    } = ask(cx, GateCall::Batch { id: id.clone() }).await?
    else {
        return Err(unknown("batch"));
    };
    let count = |s: &str| {
        invites
            .iter()
            .filter(|v: &&StatusView| json!(v.status) == json!(s))
            .count()
    };
    Ok(HttpResponse::json(
        200,
        &json!({
            "batch_id": id,
            "total": invites.len(),
            "queued": count("queued"),
            "processing": count("processing"),
            "completed": count("completed"),
            "failed": count("failed"),
            "invites": invites,
        }),
    ))
}

/// `POST /v1/invites/{id}/retry`: queues a failed invite again, or sends again the message of
/// a queued one that no delivery has started (it may never have reached the queue: its
/// status said `queued` for good, and this route refused it; found by a chaos soak).
pub async fn retry<P: Platform>(cx: &Ctx<'_, P>, path: &str) -> Result<HttpResponse, ApiError> {
    let id = id_in(path, "/v1/invites/", "/retry").ok_or_else(|| unknown("invite"))?;
    let found = match ask(cx, GateCall::Redrive { id: id.clone() }).await? {
        GateReply::Redrive {
            message: Some(m), ..
        } => Some((m, false)),
        GateReply::Redrive {
            waiting: Some(m), ..
        } => Some((*m, true)),
        _ => None,
    };
    match found {
        Some((message, waiting)) => {
            if let Err(e) = cx.p.enqueue(std::slice::from_ref(&message), 0).await {
                if waiting {
                    return Err(ApiError::new(
                        ErrorCode::QueueUnavailable,
                        "the invite could not be queued; it is unchanged, retrying is safe",
                    )
                    .logged(e));
                }
                // The gate marked it queued before the send: mark it failed again, or the
                // retry this answer invites would be refused (409) with nothing queued.
                let refail = GateCall::Fail {
                    id: id.clone(),
                    code: Some(ErrorCode::QueueUnavailable.as_str().into()),
                };
                // Tried three times, as an outcome is (once, a gate blip left it `queued`
                // with no message, for good: found by an interleaving test).
                let (message, detail) = match record(cx, refail).await {
                    Ok(()) => (
                        "the invite could not be queued; it is still failed, retrying is safe",
                        e,
                    ),
                    Err(g) => (
                        "the invite could not be queued, nor marked failed again: its status says queued, and retrying is safe",
                        format!("{e}; not marked failed again: {g}"),
                    ),
                };
                return Err(ApiError::new(ErrorCode::QueueUnavailable, message).logged(detail));
            }
            Ok(
                HttpResponse::json(202, &json!({"id": id, "status": "queued"}))
                    .with_header("location", format!("/v1/invites/{id}")),
            )
        }
        None => match ask(cx, GateCall::Status { id }).await? {
            GateReply::Status { invite: Some(v) } => Err(ApiError::new(
                ErrorCode::InviteNotFailed,
                format!(
                    "only a failed invite, or a queued one no delivery has started, can be retried; this one is {}",
                    json!(v.status).as_str().unwrap_or("")
                ),
            )),
            _ => Err(unknown("invite")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_respond_async_is_recognized_among_other_preferences() {
        let req = |v: &str| HttpRequest::new("POST", "/v1/invites").header("Prefer", v);
        assert!(prefers_async(&req("respond-async")));
        assert!(prefers_async(&req(
            "return=minimal, Respond-Async; wait=10"
        )));
        assert!(!prefers_async(&req("return=minimal")));
        assert!(!prefers_async(&HttpRequest::new("POST", "/v1/invites")));
    }

    #[test]
    fn ids_come_only_from_the_expected_segment() {
        assert_eq!(
            id_in("/v1/invites/inv_ab12", "/v1/invites/", "").as_deref(),
            Some("inv_ab12")
        );
        assert_eq!(
            id_in("/v1/invites/inv_ab12/retry", "/v1/invites/", "/retry").as_deref(),
            Some("inv_ab12")
        );
        assert_eq!(id_in("/v1/invites/a/b", "/v1/invites/", ""), None);
        assert_eq!(id_in("/v1/invites/", "/v1/invites/", ""), None);
    }
}
