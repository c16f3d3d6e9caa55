//! Payment webhooks: Stripe and Standard Webhooks events turned into invites whose link goes
//! by email, exactly once per event.
//!
//! Each event id is recorded in KV (`processing`, then `done` for [`DONE_TTL_SEC`]). A done
//! event answers `duplicate` with zero Auth0 calls. Failures the sender should retry (Auth0
//! or the email API down or rate limited past the deadline) answer 5xx and leave the event
//! unmarked; permanent ones (the invite was rejected) answer 200 and are marked done.

use serde_json::{json, Map, Value};

use crate::api::check_body_size;
use crate::auth0::{Auth0, RequestCtx};
use crate::config::{Config, EmailDelivery};
use crate::delivery::{send_invite_email, Sent};
use crate::email;
use crate::error::{ApiError, Auth0Error, InviteError};
use crate::invite::{default_ticket_target, run_invite, InviteInput};
use crate::platform::{HttpRequest, HttpResponse, KvOp, Platform};
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
    /// Customer name, if any.
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
        name: name.map(str::to_string),
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
        name: str_at(data, &["name"]).map(str::to_string),
        roles: filter_roles(cfg, roles),
    })
}

fn status(s: &str) -> HttpResponse {
    HttpResponse::json(200, &json!({ "status": s }))
}

fn skipped(reason: &str) -> HttpResponse {
    HttpResponse::json(200, &json!({ "status": "skipped", "reason": reason }))
}

fn invalid_signature(e: impl std::fmt::Display) -> ApiError {
    ApiError {
        log_detail: Some(e.to_string()),
        ..ApiError::new(
            400,
            "invalid_signature",
            "webhook signature verification failed",
        )
    }
}

fn not_configured(name: &str) -> ApiError {
    ApiError::new(
        404,
        "webhook_not_configured",
        format!("this webhook is off: set {name} to enable it"),
    )
}

/// `POST /v1/webhooks/stripe`.
pub async fn stripe<P: Platform>(
    req: &HttpRequest,
    cfg: &Config,
    p: &P,
    cache: &std::rc::Rc<IsolateCache>,
    ctx: &RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let w = &cfg.webhooks;
    if w.stripe_secrets.is_empty() {
        return Err(not_configured("STRIPE_WEBHOOK_SECRETS"));
    }
    check_body_size(req, MAX_WEBHOOK_BYTES)?;
    let header = req.header_value("stripe-signature").unwrap_or("");
    verify_stripe(
        &req.body,
        header,
        &w.stripe_secrets,
        p.now_ms() / 1000,
        w.stripe_tolerance_sec,
    )
    .map_err(invalid_signature)?;
    let event: Value = serde_json::from_slice(&req.body)
        .map_err(|_| ApiError::new(400, "invalid_json", "event body is not JSON"))?;
    process("stripe", stripe_decision(&event, cfg), cfg, p, cache, ctx).await
}

/// `POST /v1/webhooks/standard`.
pub async fn standard<P: Platform>(
    req: &HttpRequest,
    cfg: &Config,
    p: &P,
    cache: &std::rc::Rc<IsolateCache>,
    ctx: &RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let w = &cfg.webhooks;
    if w.standard_secrets.is_empty() {
        return Err(not_configured("STANDARD_WEBHOOK_SECRETS"));
    }
    check_body_size(req, MAX_WEBHOOK_BYTES)?;
    let id = req.header_value("webhook-id").unwrap_or("").trim();
    verify_standard(
        &req.body,
        id,
        req.header_value("webhook-timestamp").unwrap_or(""),
        req.header_value("webhook-signature").unwrap_or(""),
        &w.standard_secrets,
        p.now_ms() / 1000,
    )
    .map_err(invalid_signature)?;
    let msg: Value = serde_json::from_slice(&req.body)
        .map_err(|_| ApiError::new(400, "invalid_json", "message body is not JSON"))?;
    process(
        "standard",
        standard_decision(&msg, id, cfg),
        cfg,
        p,
        cache,
        ctx,
    )
    .await
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
    source: &str,
    decision: Decision,
    cfg: &Config,
    p: &P,
    cache: &std::rc::Rc<IsolateCache>,
    ctx: &RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let invite = match decision {
        Decision::Ignored => return Ok(status("ignored")),
        Decision::Skipped(reason) => {
            *ctx.note.borrow_mut() = Some(format!("skipped: {reason}"));
            return Ok(skipped(reason));
        }
        Decision::Invite(i) => i,
    };
    let key = format!("webhook:v1:{source}:{}", invite.event_id);
    match p.get(&key).await {
        Ok(Some(v)) if v == "done" => return Ok(status("duplicate")),
        Ok(Some(_)) => return Err(in_progress()),
        _ => {}
    }
    if !cache.begin_event(&key) {
        return Err(in_progress());
    }
    let _claim = Claim {
        cache,
        key: key.clone(),
    };
    mark(p, &key, "processing", PROCESSING_TTL_SEC).await;

    let email = match email::normalize(&invite.email) {
        Ok(e) => e,
        Err(_) => {
            mark(p, &key, "done", DONE_TTL_SEC).await;
            return Ok(skipped("customer email is not a valid address"));
        }
    };
    let client = Auth0::new(cfg, p, cache, ctx);
    let want_ticket = matches!(cfg.webhooks.delivery, EmailDelivery::Resend { .. });
    let mut app_metadata = Map::new();
    app_metadata.insert("invite_source".into(), json!(source));
    app_metadata.insert("invite_event".into(), json!(invite.event_id));
    let input = InviteInput {
        email: email.clone(),
        profile: invite.name.iter().map(|n| ("name", n.clone())).collect(),
        roles: invite.roles.clone(),
        user_metadata: None,
        app_metadata,
        ticket_target: default_ticket_target(cfg),
        ticket_ttl_sec: cfg.ticket_ttl_sec,
        email_verified: false,
        want_ticket,
    };

    let outcome = async {
        let out = run_invite(&client, cfg, p, input, source).await?;
        let ticket = out
            .ticket_url
            .as_deref()
            .map(|u| (u, out.ticket_expires_at.as_str()));
        let sent = send_invite_email(
            &client,
            cfg,
            p,
            &email,
            invite.name.as_deref(),
            ticket,
            &key,
        )
        .await?;
        Ok::<_, InviteError>((out.created, sent))
    }
    .await;

    match outcome {
        Ok((created, sent)) => {
            mark(p, &key, "done", DONE_TTL_SEC).await;
            Ok(HttpResponse::json(
                200,
                &json!({"status": "processed", "email": if sent == Sent::Sent { "sent" } else { "cooldown" }, "created": created}),
            ))
        }
        Err(e) if is_permanent(&e) => {
            mark(p, &key, "done", DONE_TTL_SEC).await;
            *ctx.note.borrow_mut() =
                Some(format!("event {} failed for good: {e}", invite.event_id));
            let api: ApiError = e.into();
            Ok(HttpResponse::json(
                200,
                &json!({"status": "failed", "reason": api.code}),
            ))
        }
        Err(e) => {
            // Leave the event unmarked so the sender's next delivery completes it.
            let _ = p.apply(&KvOp::Delete { key }).await;
            Err(e.into())
        }
    }
}

fn in_progress() -> ApiError {
    ApiError {
        retry_after_sec: Some(30),
        ..ApiError::new(
            409,
            "event_in_progress",
            "this event is being processed; it will be retried",
        )
    }
}

/// Failures no redelivery can fix: answer 200 so the sender stops.
fn is_permanent(e: &InviteError) -> bool {
    matches!(
        e,
        InviteError::Invalid(_)
            | InviteError::RoleNotFound(_)
            | InviteError::Auth0(Auth0Error::Rejected { .. })
    )
}
