//! Accept, then process. The request side records an invite in the gate (status `queued`,
//! webhook dedupe, the email cooldown) and puts it on `INVITE_QUEUE`; no Auth0 call is on its
//! path. The consumer side ([`process`]) runs each message at the pace the gate allows, and
//! settles it: completed, failed with a code, or retried; the dead-letter consumer
//! ([`dead_letter`]) marks what ran out of retries as failed.

use std::rc::Rc;

use serde_json::{json, Value};

use crate::auth0::{caller_wait_ms, Ctx, RequestState};
use crate::config::{Config, MAX_UPSTREAM_DEADLINE_MS};
use crate::delivery::{email_window, emailed_with_ticket, invite_and_email, Sent};
use crate::error::{ApiError, ErrorCode, InviteError, Service, UpstreamError};
use crate::gate::{Begin, GateCall, GateReply, Kind, QueuedInvite, LEASE_MS};
use crate::invite::run_invite;
use crate::platform::{random_hex, Platform};
use crate::time::rfc3339;
use crate::token::IsolateCache;

/// Longest a consumer waits for the pacer to admit an invite before it defers the message (a
/// consumer invocation may run for minutes; a caller would not wait this long).
pub const CONSUMER_ADMIT_WAIT_MS: u64 = 60_000;

/// How far ahead of now an invite of `kind` that makes `calls` Management calls may find the
/// tenant's pacer booked and still be admitted (`None`: up to [`CONSUMER_ADMIT_WAIT_MS`]).
/// Invites nobody holding an API key asked for (the public form, payment webhooks: the
/// emailed kinds) get a quarter of what a synchronous invite waits for its last slot (2 s by
/// default), and never so much that a synchronous invite booked right after them would miss
/// that wait ([`room_after_ms`]). The consumer admits a whole batch of messages at once, and
/// with the long wait ten anonymous sign-ups booked a free tenant about ten seconds ahead:
/// every `POST /v1/invites` and invitee call, which wait less, was refused 503 until they
/// drained, and a few sign-ups a minute kept the API-key holders out for good (found in a
/// security review). The quarter alone still did at slower rates: a synchronous invite booked
/// behind a sign-up admitted a quarter of the wait ahead missed its wait at 1 call a second
/// under a 7.4 s deadline, at 0.5 a second under 12.9 s (with the room kept: 6.1 and 10.2 s,
/// where `/healthz` warns below). An invite that finds the pacer further ahead is deferred,
/// not failed, and an idle pacer always admits it.
pub fn start_within_ms(cfg: &Config, kind: Kind, calls: u32) -> Option<u64> {
    kind.emailed().then(|| {
        let wait = caller_wait_ms(cfg.upstream_deadline_ms);
        (wait / 4).min(wait.saturating_sub(room_after_ms(cfg, calls)))
    })
}

/// Management calls of the synchronous invite an emailed one leaves room for: create the
/// user, assign the roles, make the link.
pub const SYNC_INVITE_CALLS: u32 = 3;

/// From the first slot of an invite making `calls` Management calls to the last slot of a
/// synchronous invite booked right after it, at the tenant's rate (ms, once its burst is used).
pub fn room_after_ms(cfg: &Config, calls: u32) -> u64 {
    (cfg.mgmt_rate.interval_ms() * f64::from(calls + SYNC_INVITE_CALLS - 1)).ceil() as u64
}

/// The shortest `UPSTREAM_DEADLINE_MS` at which a synchronous invite still fits behind an
/// emailed one, when the configured deadline is shorter (`None`: it fits). Below it, even an
/// emailed invite admitted on an idle pacer leaves the synchronous invites that come while it
/// runs refused 503; `/healthz` warns. Its emailed invite assigns roles and, when the link goes
/// out by Resend, makes one.
pub fn deadline_too_short(cfg: &Config) -> Option<u64> {
    let calls = 2 + u32::from(emailed_with_ticket(cfg));
    let room = room_after_ms(cfg, calls);
    if caller_wait_ms(cfg.upstream_deadline_ms) >= room {
        return None;
    }
    // `caller_wait_ms` grows with the deadline: the first one, in steps of 100 ms, that waits
    // long enough.
    let mut deadline = room.div_ceil(100) * 100;
    while caller_wait_ms(deadline) < room {
        deadline += 100;
    }
    Some(deadline)
}

// A run must end before its lease does (see `gate::LEASE_MS`), outcome recorded included.
const _: () = assert!(LEASE_MS >= CONSUMER_ADMIT_WAIT_MS + MAX_UPSTREAM_DEADLINE_MS + 10_000);

/// A new invite id, `inv_` and 16 random hex digits.
pub fn new_id(p: &impl Platform, prefix: &str) -> Result<String, ApiError> {
    random_hex(p, 8)
        .map(|h| format!("{prefix}_{h}"))
        .map_err(|e| {
            ApiError::new(ErrorCode::InternalError, "internal error; retrying is safe").logged(e)
        })
}

/// What accepting an invite came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Acceptance {
    /// Recorded and queued.
    Queued,
    /// A send failed after earlier ones went out (a batch of more than 100): the first
    /// `queued` invites are queued, the rest were withdrawn and must be sent again.
    Partly {
        /// How many, from the start, are queued.
        queued: usize,
    },
    /// The webhook event was accepted before (its invite id).
    Duplicate(Option<String>),
    /// The address got an email within the cooldown: nothing queued.
    Cooldown,
}

/// Records `invites` in the gate and queues them. `event` dedupes a webhook delivery;
/// `cooldown` claims the address's email window (public form).
pub async fn accept<P: Platform>(
    cx: &Ctx<'_, P>,
    invites: Vec<QueuedInvite>,
    batch_id: Option<String>,
    event: Option<String>,
    cooldown: bool,
) -> Result<Acceptance, ApiError> {
    let window = cooldown
        .then(|| invites.first())
        .flatten()
        .map(|i| email_window(cx.cfg, &i.input.email));
    let call = GateCall::Accept {
        invites: invites.clone(),
        batch_id,
        event: event.clone(),
        cooldown: window.clone(),
    };
    match cx.p.gate(call).await {
        Ok(GateReply::Accepted) => {}
        Ok(GateReply::Duplicate { invite_id, requeue }) => {
            // The event's invite never started: its message may be lost (see
            // `GateReply::Duplicate`), so it goes out again; when that send fails the answer is
            // 503, for the sender to retry once more.
            if let Some(m) = requeue {
                if let Err(e) = cx.p.enqueue(std::slice::from_ref(&m), 0).await {
                    return Err(unavailable(format!("duplicate's requeue failed: {e}")));
                }
                cx.note(format!("duplicate: {} sent again (not started)", m.id));
            }
            return Ok(Acceptance::Duplicate(invite_id));
        }
        Ok(GateReply::Cooldown) => return Ok(Acceptance::Cooldown),
        Ok(other) => return Err(unavailable(format!("gate answered {}", other.kind()))),
        Err(e) => return Err(unavailable(format!("gate unreachable: {e}"))),
    }
    let mut queued = 0;
    while queued < invites.len() {
        let end = queued + send_size(&invites[queued..]);
        let Err(e) = cx.p.enqueue(&invites[queued..end], 0).await else {
            queued = end;
            continue;
        };
        // Recorded but not queued: take back what was not sent, the webhook event and the
        // email window with it, so that the answer is true and a retry is accepted as new.
        // (Marking them failed instead left the event claimed: the sender's retry was
        // answered "duplicate" and the invite never ran.)
        let withdraw = GateCall::Withdraw {
            ids: invites[queued..].iter().map(|i| i.id.clone()).collect(),
            event: event.filter(|_| queued == 0),
            cooldown: window.map(|(key, _)| key).filter(|_| queued == 0),
        };
        // Tried three times, as an outcome is: left undone, the email window stays with an
        // invite that was never queued, and the caller's retry is answered 202 with nothing
        // queued (found in an audit).
        let withdrawn = match record(cx, withdraw).await {
            Ok(()) => String::new(),
            Err(g) => format!(
                "; not withdrawn ({g}): a duplicate delivery sends it again, as does POST /v1/invites/{{id}}/retry"
            ),
        };
        let detail = format!("queue send failed after {queued} queued: {e}{withdrawn}");
        if queued == 0 {
            return Err(unavailable(detail));
        }
        cx.note(detail);
        return Ok(Acceptance::Partly { queued });
    }
    Ok(Acceptance::Queued)
}

/// Queues takes at most 100 messages and 256 KB in one send (a batch over it was refused
/// whole, every time, as if the queue were down: found in an audit).
pub const SEND_MAX_MESSAGES: usize = 100;
/// The bytes of message bodies in one send, under Queues' 256 KB with room for its framing.
pub const SEND_MAX_BYTES: usize = 224 * 1024;

/// How many of `invites`, from the first, go in one send (at least one: a single message is
/// at most [`crate::invite::MAX_BODY_BYTES`] and a little more, far under Queues' 128 KB).
fn send_size(invites: &[QueuedInvite]) -> usize {
    if invites.len() == 1 {
        return 1;
    }
    let mut bytes = 0;
    for (n, i) in invites.iter().take(SEND_MAX_MESSAGES).enumerate() {
        bytes += serde_json::to_vec(i).map_or(0, |v| v.len());
        if n > 0 && bytes > SEND_MAX_BYTES {
            return n;
        }
    }
    invites.len().min(SEND_MAX_MESSAGES)
}

fn unavailable(detail: String) -> ApiError {
    ApiError::new(
        ErrorCode::QueueUnavailable,
        "the invite could not be queued; nothing was done, retrying is safe",
    )
    .logged(detail)
}

/// What to do with a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Settle {
    /// Done with it (completed, failed for good, or a redelivery of a settled invite).
    Ack,
    /// Deliver it again after `delay_sec` (counts against the queue's retries).
    Retry {
        /// Seconds.
        delay_sec: u32,
    },
    /// Not started: the pacer is booked further than this consumer may wait. Send a copy
    /// after `delay_sec` and acknowledge this one (a wait is not a failed attempt).
    Defer {
        /// Seconds.
        delay_sec: u32,
    },
}

/// Whether a failure can never succeed however often it is tried.
fn permanent(e: &InviteError) -> bool {
    matches!(
        e,
        InviteError::Invalid(_)
            | InviteError::AccountExists
            | InviteError::Revoked
            | InviteError::Upstream(UpstreamError::Rejected {
                service: Service::Auth0,
                ..
            })
    )
}

/// Processes one queued invite. Returns what to do with the message and a log line.
pub async fn process<P: Platform>(
    msg: &QueuedInvite,
    cfg: &Config,
    p: &P,
    cache: &Rc<IsolateCache>,
) -> (Settle, String) {
    let started = p.now_ms();
    // The admission wait comes on top of the Auth0 work's own budget (reset once admitted).
    let state = RequestState::new(started, CONSUMER_ADMIT_WAIT_MS + cfg.upstream_deadline_ms);
    let cx = Ctx {
        cfg,
        p,
        cache,
        state: &state,
    };
    let (settle, outcome, code) = run(&cx, msg).await;
    // The cache writes a request defers past its answer (the token, role ids): a consumer has no caller waiting, so they are made here. (They were
    // dropped: every cold consumer fetched a token again, found in an audit.)
    let mut kv_failed = Vec::new();
    for op in state.deferred.take() {
        if let Err(e) = p.apply(&op).await {
            kv_failed.push(format!("{}: {}", op.key(), e.0));
        }
    }
    let mut log = json!({
        "level": if matches!(settle, Settle::Retry { .. }) { "warn" } else { "info" },
        "event": "invite_processed",
        "invite_id": msg.id,
        "kind": msg.kind.as_str(),
        "outcome": outcome,
        "upstream_calls": state.upstream_calls.get(),
        "duration_ms": p.now_ms().saturating_sub(started),
    });
    if let Some(c) = code {
        log["code"] = json!(c);
    }
    if let Some(n) = state.note.take() {
        log["detail"] = json!(n);
    }
    if !kv_failed.is_empty() {
        log["kv_write_failed"] = json!(kv_failed);
    }
    (settle, crate::http::json_text(&log))
}

async fn run<P: Platform>(
    cx: &Ctx<'_, P>,
    msg: &QueuedInvite,
) -> (Settle, &'static str, Option<String>) {
    let begin = GateCall::Begin {
        id: msg.id.clone(),
        message: Some(msg.clone()),
    };
    let attempt = match cx.p.gate(begin).await {
        Ok(GateReply::Begin(Begin::Run { attempt })) => attempt,
        Ok(GateReply::Begin(Begin::Settled)) => return (Settle::Ack, "settled_before", None),
        // Another delivery works on it (a duplicate, or one that died with its lease): look
        // again when the lease ends. A wait, not a failed attempt: a retry would spend the
        // queue's max_retries on it.
        Ok(GateReply::Begin(Begin::Held { retry_after_ms })) => {
            return (
                Settle::Defer {
                    delay_sec: secs(retry_after_ms),
                },
                "held_elsewhere",
                None,
            )
        }
        Ok(other) => {
            cx.note(format!("gate answered {}", other.kind()));
            return (Settle::Retry { delay_sec: 5 }, "gate_error", None);
        }
        Err(e) => {
            cx.note(format!("gate unreachable: {e}"));
            return (Settle::Retry { delay_sec: 5 }, "gate_error", None);
        }
    };

    // The whole invite is admitted before its first Management call.
    let client = cx.client();
    let mut input = msg.input.clone();
    if msg.kind.emailed() {
        input.want_ticket = emailed_with_ticket(cx.cfg);
    }
    let start_within = start_within_ms(cx.cfg, msg.kind, input.management_calls());
    let admit_from = cx.p.now_ms();
    let refused = loop {
        let budget =
            CONSUMER_ADMIT_WAIT_MS.saturating_sub(cx.p.now_ms().saturating_sub(admit_from));
        match client
            .admit_starting_within(&input, budget, start_within)
            .await
        {
            Err(UpstreamError::RateLimited {
                retry_after_sec, ..
            }) => {
                // An emailed invite waits here, while its admission budget lasts, for the
                // schedule to come within its bound: deferred through the queue, each wait
                // cost a queue send (a burst of sign-ups made hundreds) and a second's
                // rounding. Sleeping costs no CPU.
                let wait_ms = retry_after_sec.saturating_mul(1000);
                if start_within.is_some() && wait_ms < budget {
                    cx.p.sleep(wait_ms).await;
                    continue;
                }
                break Some(retry_after_sec);
            }
            _ => break None,
        }
    };
    if let Some(retry_after_sec) = refused {
        // Waiting for the pacer is no error: the status keeps the last one, if any (it said
        // `paced`, a code no document lists, and a dead letter then ended with it).
        release(cx, msg, None).await;
        let delay_sec = u32::try_from(retry_after_sec)
            .unwrap_or(u32::MAX)
            .clamp(1, 600);
        return (Settle::Defer { delay_sec }, "deferred", None);
    }
    // Admitted: the Auth0 work gets UPSTREAM_DEADLINE_MS from its last booked slot, like a
    // request would, and the queue's retries do the rest.
    let last_slot = cx.state.slots.borrow().back().copied().unwrap_or(0);
    cx.state
        .deadline_ms
        .set(last_slot.max(cx.p.now_ms()) + cx.cfg.upstream_deadline_ms);

    let result = if msg.kind.emailed() {
        invite_and_email(
            cx,
            &msg.id,
            msg.input.clone(),
            // Not a payment's: the previous release queued the buyer's name there (a
            // stranger's text), and its messages, like the ledger's copies that a re-drive or
            // a duplicate's requeue sends for a week, still carry it (a version-skew review).
            msg.greeting
                .as_deref()
                .filter(|_| !matches!(msg.kind, Kind::Stripe | Kind::Standard)),
            &msg.invited_by,
            &msg.idempotency_key,
        )
        .await
        .map(|d| {
            d.map(|d| {
                if d.sent == Sent::Cooldown {
                    cx.note("email cooldown: no email");
                }
                (d.user_id, d.created, None)
            })
        })
    } else {
        run_invite(&client, cx.cfg, cx.p, msg.input.clone(), &msg.invited_by)
            .await
            .map(|o| {
                let expires_ms = cx.p.now_ms() + msg.input.ticket_ttl_sec * 1000;
                let ticket = o.ticket_url.map(|u| (u, rfc3339(expires_ms), expires_ms));
                Some((o.user_id, o.created, ticket))
            })
    };

    match result {
        // Another invite holds the address's email window and has not settled: it may yet
        // fail without sending, and then this one takes the window over and sends. A wait,
        // not a failed attempt, like the pacer's.
        Ok(None) => {
            cx.note("email window held by an invite still running: waiting for it");
            release(cx, msg, None).await;
            (
                Settle::Defer {
                    delay_sec: HOLDER_WAIT_SEC,
                },
                "deferred",
                None,
            )
        }
        Ok(Some((user_id, created, ticket))) => {
            let complete = GateCall::Complete {
                id: msg.id.clone(),
                user_id,
                created,
                ticket,
            };
            if let Err(e) = record(cx, complete).await {
                cx.note(format!("not recorded as completed ({e})"));
                // A trusted invite's link reaches its caller only through its status: run it
                // again once the lease has lapsed (a new link; this one was never shown). An
                // emailed invite's link is in the inbox, and a run again would make a new
                // ticket that voids it, with the email provider dropping the repeated send
                // by its idempotency key: its status stays behind instead.
                if !msg.kind.emailed() {
                    return (after_lease(), "unrecorded", None);
                }
            }
            (Settle::Ack, "completed", None)
        }
        Err(e) => {
            let api: ApiError = e.clone().into();
            let code = api.code.as_str().to_string();
            cx.note(e.to_string());
            if permanent(&e) {
                let fail = GateCall::Fail {
                    id: msg.id.clone(),
                    code: Some(code.clone()),
                };
                if let Err(g) = record(cx, fail).await {
                    // Its status would say `processing` for good, and it could not be retried.
                    cx.note(format!("{e}; not recorded as failed ({g})"));
                    return (after_lease(), "unrecorded", Some(code));
                }
                return (Settle::Ack, "failed", Some(code));
            }
            release(cx, msg, Some(&code)).await;
            // Rate limits say when; other failures back off 2, 4, 8 … s.
            let delay_sec = match api.retry_after_sec {
                Some(s) => u32::try_from(s).unwrap_or(600).clamp(1, 600),
                None => 2u32.saturating_pow(attempt.min(9)),
            };
            (Settle::Retry { delay_sec }, "retrying", Some(code))
        }
    }
}

/// How long an emailed invite waits before it looks again at an email window another invite,
/// still queued or running, holds.
const HOLDER_WAIT_SEC: u32 = 10;

/// Deliver it again once this run's lease has lapsed, so that the redelivery runs it.
fn after_lease() -> Settle {
    Settle::Retry {
        delay_sec: secs(LEASE_MS) + 1,
    }
}

/// Records an invite's outcome in the gate, trying three times over about a second: the
/// outcome is the one thing the run can't redo cheaply.
pub(crate) async fn record<P: Platform>(cx: &Ctx<'_, P>, call: GateCall) -> Result<(), String> {
    let mut last = String::new();
    for wait_ms in [0, 200, 800] {
        if wait_ms > 0 {
            cx.p.sleep(wait_ms).await;
        }
        match cx.p.gate(call.clone()).await {
            Ok(GateReply::Done) => return Ok(()),
            Ok(other) => last = format!("gate answered {}", other.kind()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Lets go of the invite; `code` (`None`: keep the last one) is what a dead letter will say.
async fn release<P: Platform>(cx: &Ctx<'_, P>, msg: &QueuedInvite, code: Option<&str>) {
    let _ =
        cx.p.gate(GateCall::Release {
            id: msg.id.clone(),
            code: code.map(str::to_string),
        })
        .await;
}

fn secs(ms: u64) -> u32 {
    u32::try_from(ms.div_ceil(1000))
        .unwrap_or(600)
        .clamp(1, 600)
}

/// The dead-letter consumer: the message ran out of retries. Its invite is marked `failed`
/// with the last error's code, and one line is logged. When the gate can't be reached the
/// message is retried (the dead-letter queue's own `max_retries`): acknowledged, it would
/// leave the invite `queued` or `processing` for good, where it can't be retried.
pub async fn dead_letter<P: Platform>(msg: &QueuedInvite, p: &P) -> (Settle, String) {
    mark_failed(&msg.id, msg.kind.as_str(), p).await
}

/// A message this version can't read: sent by another deploy, or damaged (`why`: the parse
/// error). On the invites queue it is retried after a minute, since a rollback may read it,
/// until it goes to the dead-letter queue (`dead`); there its invite, when the message's `id`
/// can be read, is marked failed like any dead letter, so that its status says so and a
/// re-drive sends the gate's own copy. (It was acknowledged at once, the invite left `queued`
/// for good.)
pub async fn unreadable<P: Platform>(
    raw: Option<&str>,
    why: &str,
    dead: bool,
    p: &P,
) -> (Settle, String) {
    let id = raw
        // `from_slice`, as every parse in the Worker: `from_str` would bring serde_json's
        // second reader into the bundle for this one line (2.0 KB gzipped).
        .and_then(|t| serde_json::from_slice::<Value>(t.as_bytes()).ok())
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
        .filter(|id| id.starts_with("inv_"));
    match (dead, id) {
        (true, Some(id)) => mark_failed(&id, "unreadable", p).await,
        (dead, id) => {
            let line = json!({
                "level": "error",
                "event": "bad_queue_message",
                "invite_id": id,
                "error": why,
                "hint": if dead { "no invite id: dropped" } else { "retried, then dead-lettered" },
            });
            let settle = if dead {
                Settle::Ack
            } else {
                Settle::Retry { delay_sec: 60 }
            };
            (settle, line.to_string())
        }
    }
}

/// A message the consumer can't run because the configuration is invalid (a bad deploy): it
/// is retried after a minute, and its invite's status says `config_invalid`, so that if the
/// retries run out first it ends `failed` with that code, for the operator to fix and re-drive
/// (it ended `retries_exhausted`, with no hint of the cause: found in an audit of the docs).
pub async fn waiting_for_config<P: Platform>(msg: &QueuedInvite, p: &P) -> (Settle, String) {
    let code = ErrorCode::ConfigInvalid.as_str();
    let _ = p
        .gate(GateCall::Release {
            id: msg.id.clone(),
            code: Some(code.to_string()),
        })
        .await;
    let line = json!({
        "level": "error",
        "event": "invite_waiting",
        "invite_id": msg.id,
        "code": code,
        "detail": "configuration is invalid; see /healthz",
    });
    (Settle::Retry { delay_sec: 60 }, line.to_string())
}

/// How long a dead letter waits before it tries the gate again, when the gate could not
/// record its invite's failure. With the dead-letter queue's `max_retries = 100`
/// (wrangler.toml) a dead letter outlasts about 8 hours of the gate being unreachable, inside
/// Workers Free's 24 hours of retention. Past its last retry Queues deletes it ("Without a DLQ
/// configured, messages that reach the retry limit are deleted permanently"), leaving its
/// invite `queued` or `processing`: at 30 s and 5 retries that came after about 3 minutes
/// (found by a review of Cloudflare's limits against the code).
pub const DEAD_LETTER_RETRY_SEC: u32 = 300;

/// Marks a dead letter's invite failed; retried when the gate can't record it.
async fn mark_failed<P: Platform>(id: &str, kind: &str, p: &P) -> (Settle, String) {
    let call = GateCall::Fail {
        id: id.to_string(),
        code: None,
    };
    let reply = p.gate(call).await;
    // Another delivery holds the invite (a copy of this message): it settles it, and this
    // dead letter looks again once its lease has ended.
    if let Ok(GateReply::Begin(Begin::Held { retry_after_ms })) = reply {
        let line = json!({
            "level": "warn",
            "event": "dead_letter_held",
            "invite_id": id,
            "kind": kind,
            "retry_after_ms": retry_after_ms,
        })
        .to_string();
        return (
            Settle::Retry {
                delay_sec: secs(retry_after_ms) + 1,
            },
            line,
        );
    }
    let recorded = matches!(reply, Ok(GateReply::Done));
    let code = match p.gate(GateCall::Status { id: id.to_string() }).await {
        Ok(GateReply::Status { invite: Some(view) }) => view.error_code,
        _ => None,
    };
    let line = json!({
        "level": "error",
        "event": "invite_failed",
        "invite_id": id,
        "kind": kind,
        "code": code.unwrap_or_else(|| "retries_exhausted".into()),
        "recorded": recorded,
        "hint": "fix the cause, then POST /v1/invites/{id}/retry with an API key",
    })
    .to_string();
    let settle = if recorded {
        Settle::Ack
    } else {
        Settle::Retry {
            delay_sec: DEAD_LETTER_RETRY_SEC,
        }
    };
    (settle, line)
}
