//! Payment webhooks: Stripe and Standard Webhooks events turned into invites whose link goes
//! by email, exactly once per event.
//!
//! Each event id is recorded in KV (`processing`, then `done` for [`DONE_TTL_SEC`]). A done
//! event answers `duplicate` with zero Auth0 calls. Failures the sender should retry (Auth0
//! or the email API down or rate limited past the deadline) answer 5xx and leave the event
//! unmarked; permanent ones (the invite was rejected) answer 200 and are marked done.

use serde_json::{json, Map, Value};

use crate::auth0::Ctx;
use crate::config::Config;
use crate::delivery::{invite_and_email, Delivered, Sent};
use crate::email;
use crate::error::{ApiError, ErrorCode, InviteError, Service, UpstreamError};
use crate::http::{HttpRequest, HttpResponse};
use crate::invite::{clean_name, default_ticket_target, InviteInput, OnExisting, MAX_NAME_CHARS};
use crate::platform::{KvOp, Platform};
use crate::token::IsolateCache;
use crate::webhook::{verify_standard, verify_stripe};

/// How long a processed event id is remembered: Stripe retries for up to 3 days.
pub const DONE_TTL_SEC: u64 = 4 * 86_400;
/// How long a `processing` mark holds off a concurrent delivery in another isolate.
pub const PROCESSING_TTL_SEC: u64 = 120;
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
/// `PAYMENT_ROLES` when none is left.
fn filter_roles(cfg: &Config, requested: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in requested {
        let r = r.trim().to_string();
        if cfg.allowed_roles.contains(&r) && !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
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
    let (email, name, roles) = match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
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
            (email, name, roles)
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
        roles: filter_roles(cfg, roles),
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
        roles: filter_roles(cfg, roles),
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

/// Releases the in-isolate claim on an event however processing ends.
struct Claim<'a> {
    cache: &'a IsolateCache,
    key: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.cache.end_event(&self.key);
    }
}

async fn mark<P: Platform>(p: &P, key: &str, value: &str, ttl_sec: u64) {
    let _ = p
        .apply(&KvOp::Put {
            key: key.to_string(),
            value: value.to_string(),
            ttl_sec,
        })
        .await;
}

async fn process<P: Platform>(
    cx: &Ctx<'_, P>,
    source: &'static str,
    decision: Decision,
) -> Result<HttpResponse, ApiError> {
    let (p, cache) = (cx.p, cx.cache);
    let invite = match decision {
        Decision::Ignored => return Ok(status("ignored")),
        Decision::Skipped(reason) => {
            cx.note(format!("skipped: {reason}"));
            return Ok(skipped(reason));
        }
        Decision::Invite(i) => i,
    };
    let key = format!("webhook:v1:{source}:{}", invite.event_id);
    match p.get(&key).await {
        Ok(Some(v)) if v == "done" => return Ok(status("duplicate")),
        Ok(Some(_)) => return Err(ApiError::event_in_progress()),
        _ => {}
    }
    if !cache.begin_event(&key) {
        return Err(ApiError::event_in_progress());
    }
    let _claim = Claim {
        cache,
        key: key.clone(),
    };
    mark(p, &key, "processing", PROCESSING_TTL_SEC).await;

    let email = match email::normalize(&invite.email) {
        Ok(e) => e,
        Err(_) => {
            // No redelivery can fix the address: done, and said why.
            mark(p, &key, "done", DONE_TTL_SEC).await;
            cx.note(format!(
                "event {} can never succeed: the customer email is not a valid address",
                invite.event_id
            ));
            return Ok(skipped("customer email is not a valid address"));
        }
    };
    let mut app_metadata = Map::new();
    app_metadata.insert("invite_source".into(), json!(source));
    app_metadata.insert("invite_event".into(), json!(invite.event_id));
    let input = InviteInput {
        email,
        profile: invite
            .name
            .iter()
            .map(|n| ("name".to_string(), n.clone()))
            .collect(),
        roles: invite.roles.clone(),
        user_metadata: None,
        app_metadata,
        ticket_target: default_ticket_target(cx.cfg),
        ticket_ttl_sec: cx.cfg.ticket_ttl_sec,
        email_verified: false,
        want_ticket: false,
        on_existing: OnExisting::Update,
    };
    // A signed sender's customer is greeted by the (cleaned) name they gave the sender.
    let outcome = invite_and_email(cx, input, invite.name.as_deref(), source, &key).await;

    match outcome {
        Ok(Delivered { created, sent }) => {
            mark(p, &key, "done", DONE_TTL_SEC).await;
            Ok(HttpResponse::json(
                200,
                &json!({"status": "processed", "email": if sent == Sent::Sent { "sent" } else { "cooldown" }, "created": created}),
            ))
        }
        Err(e) if is_permanent(&e) => {
            mark(p, &key, "done", DONE_TTL_SEC).await;
            cx.note(format!(
                "event {} can never succeed, marked done: {e}",
                invite.event_id
            ));
            let api: ApiError = e.into();
            Ok(HttpResponse::json(
                200,
                &json!({"status": "failed", "reason": api.code.as_str()}),
            ))
        }
        Err(e) => {
            // Leave the event unmarked so the sender's next delivery completes it.
            let _ = p.apply(&KvOp::Delete { key }).await;
            Err(e.into())
        }
    }
}

/// Failures no redelivery can fix: answer 200 so the sender stops. Only Auth0 refusing the
/// invite itself (already retried without the optional fields) is one. A missing role, a bad
/// email API key or an unreachable service can be fixed by the operator within the sender's
/// retry window (Stripe retries for 3 days), so those stay retryable (5xx) and are logged.
fn is_permanent(e: &InviteError) -> bool {
    matches!(
        e,
        InviteError::Invalid(_)
            | InviteError::Upstream(UpstreamError::Rejected {
                service: Service::Auth0,
                ..
            })
    )
}
