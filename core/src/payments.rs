//! Payment webhooks: Stripe and Standard Webhooks events turned into invites whose link goes
//! by email, exactly once per event.
//!
//! A verified event is accepted, not processed: its id is recorded in the gate (strongly
//! consistent, so a redelivery anywhere answers `duplicate`), the invite is queued, and the
//! sender gets 200 at once. The queue consumer does the Auth0 work at the tenant's pace and
//! retries failures; what runs out of retries is marked `failed` with its reason.

use serde_json::{json, Value};

use crate::auth0::Ctx;
use crate::config::Config;
use crate::email;
use crate::error::{ApiError, ErrorCode};
use crate::gate::{Kind, QueuedInvite};
use crate::http::{HttpRequest, HttpResponse};
use crate::invite::{clean_name, default_ticket_target, InviteInput, OnExisting, MAX_NAME_CHARS};
use crate::platform::Platform;
use crate::queue::{accept, new_id, Acceptance};
use crate::webhook::{verify_standard, verify_stripe};

/// Largest accepted webhook body.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// An invite requested by a webhook event.
#[derive(Clone, Debug, PartialEq)]
pub struct PaidInvite {
    /// The sender's event id (the idempotency key).
    pub event_id: String,
    /// Raw address from the event.
    pub email: String,
    /// Customer name, cleaned ([`clean_name`]), if any.
    pub name: Option<String>,
    /// Allowed role names.
    pub roles: Vec<String>,
}

/// What to do with an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Not an event we act on: 200 `ignored`.
    Ignored,
    /// Handled type but nothing to do: 200 `skipped` with the reason.
    Skipped(&'static str),
    /// Invite this customer.
    Invite(PaidInvite),
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.trim().is_empty())
}

/// Keeps the allowed roles of `requested`, in order, without duplicates; falls back to
/// `PAYMENT_ROLES` when none is left, if `fallback`.
fn filter_roles(
    cfg: &Config,
    requested: impl IntoIterator<Item = String>,
    fallback: bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in requested {
        let r = r.trim().to_string();
        if cfg.allowed_roles.contains(&r) && !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() && fallback {
        cfg.webhooks.payment_roles.clone()
    } else {
        out
    }
}

/// Decides what a (verified) Stripe event asks for.
pub fn stripe_decision(event: &Value, cfg: &Config) -> Decision {
    let Some(id) = str_at(event, &["id"]) else {
        return Decision::Skipped("event has no id");
    };
    let kind = str_at(event, &["type"]).unwrap_or_default();
    let obj = event
        .get("data")
        .and_then(|d| d.get("object"))
        .unwrap_or(&Value::Null);
    let (email, name, roles, fallback) = match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            // Setup mode saves a card and charges nothing, yet says `no_payment_required`
            // (found in an audit: it granted access).
            if str_at(obj, &["mode"]) == Some("setup") {
                return Decision::Ignored;
            }
            if kind == "checkout.session.completed"
                && !matches!(
                    str_at(obj, &["payment_status"]),
                    Some("paid" | "no_payment_required")
                )
            {
                // Delayed payment methods: wait for async_payment_succeeded.
                return Decision::Ignored;
            }
            let email = str_at(obj, &["customer_details", "email"])
                .or_else(|| str_at(obj, &["customer_email"]));
            let name = str_at(obj, &["customer_details", "name"]);
            let roles: Vec<String> = str_at(obj, &["metadata", "invite_roles"])
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            // A subscription's roles come from its prices (STRIPE_ROLE_MAP, on `invoice.paid`),
            // when they are mapped: its Checkout grants none of PAYMENT_ROLES on top (found in
            // an audit: every subscriber also got the one-off purchase's roles).
            let fallback = str_at(obj, &["mode"]) != Some("subscription")
                || cfg.webhooks.stripe_role_map.is_empty();
            (email, name, roles, fallback)
        }
        "invoice.paid" => {
            if str_at(obj, &["billing_reason"]) != Some("subscription_create") {
                return Decision::Ignored;
            }
            let mut roles = Vec::new();
            let lines = obj
                .get("lines")
                .and_then(|l| l.get("data"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for line in &lines {
                // Older API versions put the price on the line, newer ones under `pricing`.
                let ids = [
                    str_at(line, &["price", "id"]),
                    str_at(line, &["price", "product"]),
                    str_at(line, &["pricing", "price_details", "price"]),
                    str_at(line, &["pricing", "price_details", "product"]),
                ];
                for id in ids.into_iter().flatten() {
                    if let Some((_, mapped)) =
                        cfg.webhooks.stripe_role_map.iter().find(|(k, _)| k == id)
                    {
                        roles.extend(mapped.iter().cloned());
                    }
                }
            }
            (
                str_at(obj, &["customer_email"]),
                str_at(obj, &["customer_name"]),
                roles,
                true,
            )
        }
        _ => return Decision::Ignored,
    };
    let Some(email) = email else {
        return Decision::Skipped("event has no customer email");
    };
    Decision::Invite(PaidInvite {
        event_id: id.to_string(),
        email: email.to_string(),
        name: name.and_then(|n| clean_name(n, MAX_NAME_CHARS)),
        roles: filter_roles(cfg, roles, fallback),
    })
}

/// Decides what a (verified) Standard Webhooks `invite.requested` message asks for.
pub fn standard_decision(msg: &Value, webhook_id: &str, cfg: &Config) -> Decision {
    if str_at(msg, &["type"]) != Some("invite.requested") {
        return Decision::Ignored;
    }
    let data = msg.get("data").unwrap_or(&Value::Null);
    let Some(email) = str_at(data, &["email"]) else {
        return Decision::Skipped("data.email is missing");
    };
    let roles: Vec<String> = data
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Decision::Invite(PaidInvite {
        event_id: webhook_id.to_string(),
        email: email.to_string(),
        name: str_at(data, &["name"]).and_then(|n| clean_name(n, MAX_NAME_CHARS)),
        roles: filter_roles(cfg, roles, true),
    })
}

fn status(s: &str) -> HttpResponse {
    HttpResponse::json(200, &json!({ "status": s }))
}

fn skipped(reason: &str) -> HttpResponse {
    HttpResponse::json(200, &json!({ "status": "skipped", "reason": reason }))
}

/// `POST /v1/webhooks/stripe`, its body already read (at most [`MAX_WEBHOOK_BYTES`]).
pub async fn stripe<P: Platform>(
    cx: &Ctx<'_, P>,
    req: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let w = &cx.cfg.webhooks;
    verify_stripe(
        &req.body,
        req.header_value("stripe-signature").unwrap_or(""),
        &w.stripe_secrets,
        cx.p.now_ms() / 1000,
        w.stripe_tolerance_sec,
    )
    .map_err(ApiError::invalid_signature)?;
    let event: Value = serde_json::from_slice(&req.body)
        .map_err(|_| ApiError::new(ErrorCode::InvalidJson, "event body is not JSON"))?;
    process(cx, "stripe", stripe_decision(&event, cx.cfg)).await
}

/// The Standard Webhooks headers, in either spelling: `webhook-*` (the spec) or `svix-*`
/// (Svix, which most senders deliver through; same scheme). Returns id, timestamp, signature.
pub fn standard_headers(req: &HttpRequest) -> (&str, &str, &str) {
    let get = |name: &str| {
        req.header_value(&format!("webhook-{name}"))
            .or_else(|| req.header_value(&format!("svix-{name}")))
            .unwrap_or("")
    };
    (get("id").trim(), get("timestamp"), get("signature"))
}

/// `POST /v1/webhooks/standard`, its body already read (at most [`MAX_WEBHOOK_BYTES`]).
pub async fn standard<P: Platform>(
    cx: &Ctx<'_, P>,
    req: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (id, timestamp, signature) = standard_headers(req);
    verify_standard(
        &req.body,
        id,
        timestamp,
        signature,
        &cx.cfg.webhooks.standard_secrets,
        cx.p.now_ms() / 1000,
    )
    .map_err(ApiError::invalid_signature)?;
    let msg: Value = serde_json::from_slice(&req.body)
        .map_err(|_| ApiError::new(ErrorCode::InvalidJson, "message body is not JSON"))?;
    process(cx, "standard", standard_decision(&msg, id, cx.cfg)).await
}

/// Whether a webhook route is on, and the variable that turns it on.
pub fn enabled(cfg: &Config, source: &str) -> Result<(), ApiError> {
    let (on, var) = match source {
        "stripe" => (
            !cfg.webhooks.stripe_secrets.is_empty(),
            "STRIPE_WEBHOOK_SECRETS",
        ),
        _ => (
            !cfg.webhooks.standard_secrets.is_empty(),
            "STANDARD_WEBHOOK_SECRETS",
        ),
    };
    if on {
        Ok(())
    } else {
        Err(ApiError::webhook_not_configured(var))
    }
}

async fn process<P: Platform>(
    cx: &Ctx<'_, P>,
    source: &'static str,
    decision: Decision,
) -> Result<HttpResponse, ApiError> {
    let invite = match decision {
        Decision::Ignored => return Ok(status("ignored")),
        Decision::Skipped(reason) => {
            cx.note(format!("skipped: {reason}"));
            return Ok(skipped(reason));
        }
        Decision::Invite(i) => i,
    };
    let Ok(email) = email::normalize(&invite.email) else {
        // No redelivery can fix the address: said why, nothing queued.
        cx.note(format!(
            "event {} can never succeed: the customer email is not a valid address",
            invite.event_id
        ));
        return Ok(skipped("customer email is not a valid address"));
    };
    let kind = if source == "stripe" {
        Kind::Stripe
    } else {
        Kind::Standard
    };
    let mut input = InviteInput::for_email(&email);
    input.profile = invite
        .name
        .iter()
        .map(|n| ("name".to_string(), n.clone()))
        .collect();
    input.roles = invite.roles.clone();
    input
        .app_metadata
        .insert("invite_source".into(), json!(source));
    input
        .app_metadata
        .insert("invite_event".into(), json!(invite.event_id));
    input.ticket_target = default_ticket_target(cx.cfg);
    input.ticket_ttl_sec = cx.cfg.ticket_ttl_sec;
    input.on_existing = OnExisting::Update;
    let event = format!("{source}:{}", invite.event_id);
    let id = new_id(cx.p, "inv")?;
    // The email greets neutrally ("Hi there"), as the public form's does: the buyer types
    // both the address and the name, so a name there was a stranger's text at the top of a
    // genuine email to anyone (a $0 Checkout would do; found in a security review, and a
    // review of a filter for names that read as names found look-alikes of every character
    // it refused). The account keeps the name. The event id keys the email provider's
    // idempotency.
    let message = QueuedInvite::new(
        id.clone(),
        kind,
        input,
        None,
        kind.as_str(),
        format!("webhook:{event}"),
    );
    // Exactly once: the gate records the event id (strongly consistent, one writer) before
    // the invite is queued; a redelivery finds it.
    match accept(cx, vec![message], None, Some(event), false).await? {
        Acceptance::Duplicate(_) => Ok(status("duplicate")),
        _ => Ok(HttpResponse::json(
            200,
            &json!({"status": "accepted", "invite_id": id}),
        )),
    }
}
