//! The per-tenant gate: the logic of the `Auth0Gate` Durable Object, one instance per
//! `AUTH0_DOMAIN`. It is the one place that decides when Management API calls may go (a
//! token bucket, [`Pacer`]), and the strongly consistent home of invite statuses, webhook
//! event dedupe and per-address email cooldowns.
//!
//! Everything here is synchronous and pure over a [`Ledger`] (SQLite in the Durable Object, a
//! map in tests): a Durable Object runs one event at a time, and a handler that never awaits
//! between reading and writing is atomic, so "check, then act" can't interleave.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::invite::InviteInput;

/// How long an invite's status is kept (a week: long enough to look at after a weekend).
pub const STATUS_TTL_MS: u64 = 7 * 86_400_000;
/// How long a webhook event id is remembered: Stripe retries for up to 3 days.
pub const EVENT_TTL_MS: u64 = 4 * 86_400_000;
/// How long a consumer may hold an invite before another delivery may take it over. It must
/// outlast the longest run, or a redelivery could run the invite twice at once: the pacer's
/// wait (`queue::CONSUMER_ADMIT_WAIT_MS`, 60 s), then the largest `UPSTREAM_DEADLINE_MS`
/// (60 s) from the last booked slot, then recording the outcome (about 1 s of retries), with
/// a margin. (It was 120 s, exactly the first two: found in an audit.)
pub const LEASE_MS: u64 = 150_000;
/// Spacing margin over the tenant's rate: calls arrive a little late rather than early.
pub const PACE_MARGIN: f64 = 1.02;

/// Where an invite came from; decides how its result is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `POST /v1/invites` (async or batch): the ticket URL is kept for the API key holder.
    Trusted,
    /// The public form: the link goes by email only.
    Public,
    /// A Stripe event: the link goes by email only.
    Stripe,
    /// A Standard Webhooks message: the link goes by email only.
    Standard,
}

impl Kind {
    /// Whether the link is emailed (never shown to anyone).
    pub fn emailed(self) -> bool {
        self != Kind::Trusted
    }

    /// The name used in `app_metadata.invite_source`, logs and `invited_by`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Trusted => "api",
            Kind::Public => "public_form",
            Kind::Stripe => "stripe",
            Kind::Standard => "standard",
        }
    }
}

/// One queued invite: the Cloudflare Queue message body, also kept in the ledger so an
/// operator can re-drive a failed one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueuedInvite {
    /// `inv_…`.
    pub id: String,
    /// Where it came from.
    pub kind: Kind,
    /// The validated invite.
    pub input: InviteInput,
    /// The name to greet in the email (`None`: "there").
    pub greeting: Option<String>,
    /// `app_metadata.invited_by`: the API key's label or the source.
    pub invited_by: String,
    /// The email provider's idempotency key.
    pub idempotency_key: String,
}

impl QueuedInvite {
    /// A message; `invited_by` is the API key's label, or the source for emailed invites.
    pub fn new(
        id: String,
        kind: Kind,
        input: InviteInput,
        greeting: Option<String>,
        invited_by: &str,
        idempotency_key: String,
    ) -> Self {
        QueuedInvite {
            id,
            kind,
            input,
            greeting,
            invited_by: invited_by.to_string(),
            idempotency_key,
        }
    }
}

/// Where an invite is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted, waiting for the consumer.
    Queued,
    /// A consumer holds it.
    Processing,
    /// The account is ready and the link delivered.
    Completed,
    /// It can't be done; `error_code` says why.
    Failed,
}

/// What the ledger keeps of an invite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// The message, for re-driving.
    pub message: QueuedInvite,
    /// The batch it belongs to.
    pub batch_id: Option<String>,
    /// Current status.
    pub status: Status,
    /// The stable code of the last failure.
    pub error_code: Option<String>,
    /// Deliveries that started work.
    pub attempts: u32,
    /// A consumer holds it until then (ms).
    pub lease_until_ms: u64,
    /// Accepted at (ms).
    pub created_at_ms: u64,
    /// Last change (ms).
    pub updated_at_ms: u64,
    /// Auth0 user id, once known.
    pub user_id: Option<String>,
    /// Whether this invite created the account.
    pub created: Option<bool>,
}

/// A trusted invite's link, stored in its own row that expires with the ticket: the ledger
/// drops it when the ticket stops working, whether or not anyone asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct StoredTicket {
    url: String,
    expires_at: String,
    expires_ms: u64,
}

fn ticket_key(id: &str) -> String {
    format!("tkt:{id}")
}

/// What a status request shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// `inv_…`.
    pub id: String,
    /// `queued | processing | completed | failed`.
    pub status: Status,
    /// Where it came from.
    pub kind: Kind,
    /// The invitee.
    pub email: String,
    /// The batch it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Why it failed (or why the last attempt did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Deliveries that started work.
    pub attempts: u32,
    /// Auth0 user id, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Whether this invite created the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// Completed trusted invites, while the link lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_url: Option<String>,
    /// Its expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_expires_at: Option<String>,
}

impl InviteRecord {
    /// Queued or running: it may yet send its link, or fail without sending.
    pub fn in_flight(&self) -> bool {
        matches!(self.status, Status::Queued | Status::Processing)
    }

    /// Queued, and no delivery has started it (a re-drive sets `attempts` back to 0 too).
    pub fn never_started(&self) -> bool {
        self.status == Status::Queued && self.attempts == 0
    }

    /// The view of this record at `now_ms`: a trusted invite's link only while it lives, and
    /// never one of an emailed invite (they never store it in the first place).
    fn view(&self, ledger: &impl Ledger, now_ms: u64) -> StatusView {
        let ticket = ledger
            .get(&ticket_key(&self.message.id))
            .and_then(|s| serde_json::from_slice::<StoredTicket>(s.as_bytes()).ok())
            .filter(|t| self.message.kind == Kind::Trusted && t.expires_ms > now_ms);
        StatusView {
            id: self.message.id.clone(),
            status: self.status,
            kind: self.message.kind,
            email: self.message.input.email.clone(),
            batch_id: self.batch_id.clone(),
            error_code: self.error_code.clone(),
            attempts: self.attempts,
            user_id: self.user_id.clone(),
            created: self.created,
            ticket_expires_at: ticket.as_ref().map(|t| t.expires_at.clone()),
            ticket_url: ticket.map(|t| t.url),
        }
    }
}

/// The pacer: a token bucket kept as a GCRA "theoretical arrival time", plus a pause that
/// follows a 429. Whole invites are admitted at once: their calls get consecutive slots, in
/// arrival order, so an admitted invite never waits behind one that came later.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pacer {
    /// When the bucket would be empty again if nothing else came (ms, fractional).
    pub tat_ms: f64,
    /// No call before this (ms): Auth0 said the bucket is empty until then.
    pub paused_until_ms: u64,
    /// Auth0's `X-RateLimit-Limit`, when it is below the configured burst.
    pub limit: Option<u32>,
}

/// How long a lease of slots is good for (see [`Pacer::lease`]).
pub const SLOT_LEASE_MS: u64 = 250;

/// Slots booked ahead for one isolate, to use without a gate round trip until `until_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotLease {
    /// One per call, all at or before the instant they were granted.
    pub slots: Vec<u64>,
    /// When the rest stop being good (Unix ms).
    pub until_ms: u64,
}

/// The tenant's rate: `AUTH0_MGMT_RPS` and `AUTH0_MGMT_BURST`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Calls per second.
    pub rps: f64,
    /// Calls that may go at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// How far apart the pacer books calls once the burst is used (ms): the rate's spacing,
    /// [`PACE_MARGIN`] wider.
    pub fn interval_ms(&self) -> f64 {
        PACE_MARGIN * 1000.0 / self.rps.max(0.01)
    }
}

impl Pacer {
    /// Slots (Unix ms) for `calls` Management calls, the first no earlier than `now_ms`. When
    /// the last slot would be more than `max_wait_ms` away, nothing is reserved and the answer
    /// is how long until it would fit (`Err(ms)`).
    pub fn reserve(
        &mut self,
        rate: Rate,
        now_ms: u64,
        calls: u32,
        max_wait_ms: u64,
    ) -> Result<Vec<u64>, u64> {
        let interval = rate.interval_ms();
        let tolerance = f64::from(self.usable_burst(rate) - 1) * interval;
        let floor = (now_ms.max(self.paused_until_ms)) as f64;
        let mut tat = self.tat_ms;
        let mut slots = Vec::with_capacity(calls as usize);
        for _ in 0..calls {
            let slot = floor.max(tat - tolerance);
            tat = tat.max(slot) + interval;
            slots.push(slot.ceil() as u64);
        }
        let last = slots.last().copied().unwrap_or(now_ms);
        let wait = last.saturating_sub(now_ms);
        if wait > max_wait_ms {
            return Err(wait - max_wait_ms);
        }
        self.tat_ms = tat;
        Ok(slots)
    }

    /// How long from `now_ms` until a call booked now could go: 0 when the bucket has room,
    /// else how far ahead the schedule is booked (or paused).
    pub fn first_wait_ms(&self, rate: Rate, now_ms: u64) -> u64 {
        let interval = rate.interval_ms();
        let tolerance = f64::from(self.usable_burst(rate) - 1) * interval;
        let first = (now_ms.max(self.paused_until_ms) as f64).max(self.tat_ms - tolerance);
        (first.ceil() as u64).saturating_sub(now_ms)
    }

    /// The burst the schedule may use: one less than the tenant's. Slots assume calls leave
    /// on time; a burst's calls leave a little late, and Auth0's full bucket does not refill
    /// while it waits for them, so the call right after a burst would find it one short (the
    /// burst benchmark saw exactly that 429). The steady rate is unchanged.
    fn usable_burst(&self, rate: Rate) -> u32 {
        rate.burst
            .min(self.limit.unwrap_or(u32::MAX))
            .saturating_sub(1)
            .max(1)
    }

    /// Slots a caller may hand out on its own (without asking the gate again) until
    /// `now_ms + SLOT_LEASE_MS`: booked like any others, and granted only when the bucket has
    /// room for all of them at once, so nobody is waiting behind them. Its size is the rate's
    /// share of `SLOT_LEASE_MS`, at most a quarter of the burst: none on a free tenant (2 a second),
    /// three on 15 a second, 250 on 1,000. Slots used late stay within the limit (their
    /// tokens were set aside; a bucket never refills past its size); unused ones are
    /// capacity nobody was waiting for.
    pub fn lease(&mut self, rate: Rate, now_ms: u64) -> Option<SlotLease> {
        let by_rate = (rate.rps * SLOT_LEASE_MS as f64 / 1000.0).floor() as u32;
        let size = by_rate.min(self.usable_burst(rate) / 4);
        if size == 0 {
            return None;
        }
        let slots = self.reserve(rate, now_ms, size, 0).ok()?;
        Some(SlotLease {
            slots,
            until_ms: now_ms + SLOT_LEASE_MS,
        })
    }

    /// Auth0 answered 429 (or said no call is left): nobody calls before `reset_ms`, and then
    /// at the steady rate.
    pub fn rate_limited(&mut self, rate: Rate, reset_ms: u64, limit: Option<u32>) {
        let interval = rate.interval_ms();
        self.limit = limit.filter(|l| *l > 0 && *l < rate.burst);
        let tolerance = f64::from(self.usable_burst(rate) - 1) * interval;
        self.paused_until_ms = self.paused_until_ms.max(reset_ms);
        self.tat_ms = self.tat_ms.max(reset_ms as f64 + tolerance);
    }
}

/// The gate's storage: records as JSON under string keys, each with an expiry and an
/// optional group (a batch id) to list by. Synchronous, as SQLite in a Durable Object is.
pub trait Ledger {
    /// A record.
    fn get(&self, key: &str) -> Option<String>;
    /// Writes a record.
    fn put(&self, key: &str, value: &str, group: Option<&str>, expire_at_ms: u64);
    /// The records of a group, oldest first.
    fn group(&self, group: &str) -> Vec<String>;
    /// When a live record expires (Unix ms).
    fn expiry(&self, key: &str) -> Option<u64>;
    /// Takes `key` for `value` until `expire_at_ms` unless a record holds it already: then
    /// nothing is written and the holder's value comes back. (The Durable Object does it in
    /// one SQL statement.)
    fn claim(&self, key: &str, value: &str, expire_at_ms: u64) -> Option<String> {
        if let Some(held) = self.get(key) {
            return Some(held);
        }
        self.put(key, value, None, expire_at_ms);
        None
    }
    /// Drops expired records. A ledger whose reads already skip expired rows may do it
    /// lazily (the Durable Object's deletes at most once a minute).
    fn purge(&self, now_ms: u64);
    /// A storage error met since the ledger was opened for this call, if any. The methods
    /// above cannot fail (a read that fails finds nothing, a write that fails is lost), so a
    /// ledger that can fail says so here, and [`answer`] turns the whole call into an error
    /// instead of answering it as done from half its reads and writes.
    fn fault(&self) -> Option<String> {
        None
    }
}

/// Runs one gate call sent as JSON and returns the reply as JSON: what the Durable Object does
/// with each call it receives. An error when the call is unreadable or the ledger met a
/// storage error ([`Ledger::fault`]): the caller then treats the gate as unavailable (it
/// retries, or answers 503 with what to do), and the Durable Object rolls back the call's
/// writes (`src/entry.mjs` runs it in one SQLite transaction).
pub fn answer(body: &str, now_ms: u64, ledger: &impl Ledger) -> Result<String, String> {
    let call: GateCall =
        serde_json::from_slice(body.as_bytes()).map_err(|e| format!("bad gate call: {e}"))?;
    let reply = try_handle(call, now_ms, ledger)?;
    if let Some(fault) = ledger.fault() {
        return Err(format!("gate storage: {fault}"));
    }
    serde_json::to_string(&reply).map_err(|e| format!("gate reply: {e}"))
}

/// A request to the gate. On the wire as serde's default, externally tagged JSON
/// (`{"reserve":{…}}`): an internally tagged enum (`{"op":"reserve",…}`) made serde buffer
/// every call and reply into its generic `Content` first, 27 KB of wasm for nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateCall {
    /// Slots for `calls` Management calls within `max_wait_ms`.
    Reserve {
        /// How many calls.
        calls: u32,
        /// The longest acceptable wait for the last one.
        max_wait_ms: u64,
        /// The tenant's rate.
        rate: Rate,
        /// The caller can hold a [`SlotLease`] for later calls.
        #[serde(default)]
        lease: bool,
        /// Only if the first call can go within this many ms (`None`: any, within
        /// `max_wait_ms`): an anonymous sign-up may not book the pacer far ahead of the
        /// callers who hold an API key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_within_ms: Option<u64>,
    },
    /// Auth0 answered 429: pause everyone until `reset_ms`.
    RateLimited {
        /// When Auth0 has a call again (ms).
        reset_ms: u64,
        /// `X-RateLimit-Limit`, if sent.
        limit: Option<u32>,
        /// The tenant's rate.
        rate: Rate,
    },
    /// Record invites as queued. `event` dedupes a webhook delivery; `cooldown` claims an
    /// address's email window for the (single) invite.
    Accept {
        /// The invites.
        invites: Vec<QueuedInvite>,
        /// Their batch.
        batch_id: Option<String>,
        /// `source:event_id` of a webhook delivery.
        event: Option<String>,
        /// An address key and its window (ms).
        cooldown: Option<(String, u64)>,
    },
    /// Undoes an [`GateCall::Accept`] whose queue send failed: the invites still `queued` are
    /// forgotten, and the webhook event and the email window are given back if the first of
    /// `ids` holds them, so the caller's retry is accepted as new ("nothing was done").
    Withdraw {
        /// The invites that were not sent.
        ids: Vec<String>,
        /// `source:event_id`, as accepted.
        event: Option<String>,
        /// The address key of the email window, as accepted.
        cooldown: Option<String>,
    },
    /// A consumer wants to work on an invite.
    Begin {
        /// The invite.
        id: String,
        /// The message, in case the ledger lost it.
        message: Option<QueuedInvite>,
    },
    /// Done: the account is ready and the link delivered.
    Complete {
        /// The invite.
        id: String,
        /// Auth0 user id.
        user_id: String,
        /// Whether this invite created the account.
        created: bool,
        /// Trusted invites: the link, its expiry (RFC 3339) and expiry (ms).
        ticket: Option<(String, String, u64)>,
    },
    /// A retryable failure: the consumer lets go; `code` is kept for the dead-letter queue.
    Release {
        /// The invite.
        id: String,
        /// Why; `None` (waiting for the pacer is no failure) keeps the last error's code.
        code: Option<String>,
    },
    /// It can never succeed, or its retries ran out.
    Fail {
        /// The invite.
        id: String,
        /// Why.
        code: Option<String>,
    },
    /// Claims an address's email window for `owner` (an invite id); false when another
    /// invite holds it. Claiming again for the same owner succeeds (a retry).
    ClaimEmail {
        /// The address key (hashed).
        key: String,
        /// The window (ms).
        ttl_ms: u64,
        /// The invite that sends.
        owner: String,
    },
    /// Keeps `value` under each of `keys` for `ttl_ms` (what a deleted invitee was).
    Remember {
        /// Hashed or opaque keys.
        keys: Vec<String>,
        /// The value.
        value: String,
        /// How long.
        ttl_ms: u64,
        /// An address key whose email windows (sending and resending) are given back,
        /// whoever holds them: its account was deleted, and every link sent with it.
        #[serde(default)]
        windows: Option<String>,
    },
    /// Takes an address's email windows (sending and resending) for a revoke, whoever holds
    /// them, until `ttl_ms` from now: an invite or resend in flight for the address claims
    /// its window again right before it sends, finds it held by [`REVOKED_HOLDER`], and sends
    /// nothing. The revoke then makes its throwaway ticket, which voids any link made before.
    HoldWindows {
        /// The address key (hashed).
        key: String,
        /// How long.
        ttl_ms: u64,
    },
    /// What [`GateCall::Remember`] keeps under `key`, while it lives.
    Recall {
        /// The key.
        key: String,
    },
    /// Gives an address's window back, if `owner` holds it (its send failed: a retry must not
    /// wait out a window nothing was sent in).
    ReleaseEmail {
        /// The address key (hashed).
        key: String,
        /// The holder.
        owner: String,
    },
    /// An invite's status.
    Status {
        /// The invite.
        id: String,
    },
    /// A batch's statuses.
    Batch {
        /// The batch.
        id: String,
    },
    /// Puts a failed invite back in the queue (the caller sends the returned message).
    Redrive {
        /// The invite.
        id: String,
    },
}

/// What a consumer should do with an invite it was handed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Begin {
    /// Work on it; this is attempt `attempt`.
    Run {
        /// 1 for the first delivery that started work.
        attempt: u32,
    },
    /// Already completed or failed: acknowledge, do nothing (a redelivery).
    Settled,
    /// Another delivery holds it: try again later.
    Held {
        /// Until its lease ends.
        retry_after_ms: u64,
    },
}

/// The gate's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateReply {
    /// Call at these instants (Unix ms).
    Reserved {
        /// One slot per call.
        slots: Vec<u64>,
        /// Slots for later calls, when asked for and the bucket has room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<SlotLease>,
    },
    /// Not within the wait asked for.
    Busy {
        /// How much longer it would take.
        retry_after_ms: u64,
    },
    /// Recorded.
    Accepted,
    /// This webhook event was seen before.
    Duplicate {
        /// The invite it made.
        invite_id: Option<String>,
        /// That invite's message, when no delivery has started it yet: the caller sends it
        /// again. A message may be missing (the first delivery's send failed and its
        /// `Withdraw` got no answer, or the isolate died between `Accept` and the send), and
        /// a second copy of one that is not does nothing (`Begin` answers `Held` or
        /// `Settled`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requeue: Option<QueuedInvite>,
    },
    /// The address got an email within its window: nothing queued.
    Cooldown,
    /// What to do with an invite.
    Begin(Begin),
    /// Done.
    Done,
    /// The email window was free and is now claimed.
    Claimed {
        /// false: inside the window, don't send.
        claimed: bool,
        /// When refused: how long the window still holds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// Refused because a revoke holds the window ([`GateCall::HoldWindows`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        revoked: bool,
        /// Refused, and the invite holding the window is still queued or running: it may yet
        /// fail without sending, so an invite that would rely on its email waits for it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        holder_running: bool,
    },
    /// An invite's status.
    Status {
        /// `None`: unknown (or expired).
        invite: Option<StatusView>,
    },
    /// A batch.
    Batch {
        /// `None`: unknown (or expired).
        invites: Option<Vec<StatusView>>,
    },
    /// What was remembered under a key (`None`: nothing, or it expired).
    Recalled {
        /// The value.
        value: Option<String>,
    },
    /// The message to send again.
    Redrive {
        /// A failed invite, queued again. `None`: unknown, or not failed.
        message: Option<QueuedInvite>,
        /// The message of an invite that was queued and no delivery had started: its status
        /// is unchanged, and its message may never have reached the queue (a send that failed
        /// while the gate could not take the invite back, or an isolate that died between the
        /// two). A field of its own, not `message`: the previous release's retry route reads
        /// `message` as a failed invite queued again, and when its send failed marked the
        /// invite failed, whose message still queued then ran nothing (a version-skew
        /// review).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waiting: Option<Box<QueuedInvite>>,
    },
}

impl GateReply {
    /// The reply's name, for a log note about an answer that made no sense where it came.
    /// (Not `Debug`: that would print addresses, and pull every nested type's `Debug` into
    /// the bundle.)
    pub fn kind(&self) -> &'static str {
        match self {
            GateReply::Reserved { .. } => "reserved",
            GateReply::Busy { .. } => "busy",
            GateReply::Accepted => "accepted",
            GateReply::Duplicate { .. } => "duplicate",
            GateReply::Cooldown => "cooldown",
            GateReply::Begin(_) => "begin",
            GateReply::Done => "done",
            GateReply::Claimed { .. } => "claimed",
            GateReply::Status { .. } => "status",
            GateReply::Batch { .. } => "batch",
            GateReply::Redrive { .. } => "redrive",
            GateReply::Recalled { .. } => "recalled",
        }
    }
}

fn invite_key(id: &str) -> String {
    format!("inv:{id}")
}

fn load(ledger: &impl Ledger, id: &str) -> Option<InviteRecord> {
    ledger
        .get(&invite_key(id))
        .and_then(|s| serde_json::from_slice(s.as_bytes()).ok())
}

fn store(ledger: &impl Ledger, rec: &InviteRecord) {
    if let Ok(json) = serde_json::to_string(rec) {
        ledger.put(
            &invite_key(&rec.message.id),
            &json,
            rec.batch_id.as_deref(),
            rec.created_at_ms + STATUS_TTL_MS,
        );
    }
}

/// The pacer's key. The Durable Object keeps this one in memory, not in storage
/// (`src/gate_do.rs`): it changes on every reservation.
pub const PACER_KEY: &str = "pacer";

/// The pacer as it stood at Auth0's last 429, kept in storage until the pause ends. The
/// pacer itself is in the object's memory, and a deploy replaces the object busy or not: the
/// new one started with a fresh pacer and sent calls straight into the pause Auth0 had asked
/// for, each drawing another 429.
const PAUSED_PACER_KEY: &str = "pacer:paused";

fn pacer(ledger: &impl Ledger) -> Pacer {
    ledger
        .get(PACER_KEY)
        .or_else(|| ledger.get(PAUSED_PACER_KEY))
        .and_then(|s| serde_json::from_slice(s.as_bytes()).ok())
        .unwrap_or_default()
}

/// The pacer never expires.
const PACER_KEPT_UNTIL: u64 = u64::MAX / 2;

/// Saves the pacer; its JSON, for a caller that keeps it elsewhere too.
fn save_pacer(ledger: &impl Ledger, p: &Pacer) -> Option<String> {
    let json = serde_json::to_string(p).ok()?;
    ledger.put(PACER_KEY, &json, None, PACER_KEPT_UNTIL);
    Some(json)
}

fn new_record(message: QueuedInvite, batch_id: Option<String>, now_ms: u64) -> InviteRecord {
    InviteRecord {
        message,
        batch_id,
        status: Status::Queued,
        error_code: None,
        attempts: 0,
        lease_until_ms: 0,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        user_id: None,
        created: None,
    }
}

/// [`handle`], unless the call works on an invite whose record this version can't read (a
/// later version's during a rollback, a new `Status` or `Kind` say, or a damaged row): then
/// an error, which every caller takes for an unreachable gate and retries within its bounds
/// (the message after 5 s, then its dead letter after 30 s), until a version that reads it
/// answers. Read as missing, `Begin` made a new record from the message and ran it again over
/// the later version's, and `Fail` answered `done` having recorded nothing, so the
/// dead-letter consumer acknowledged (found in a version-skew review). A withdrawn invite's
/// tombstone (an empty value) is readable.
pub fn try_handle(call: GateCall, now_ms: u64, ledger: &impl Ledger) -> Result<GateReply, String> {
    let ids = match &call {
        GateCall::Begin { id, .. }
        | GateCall::Complete { id, .. }
        | GateCall::Release { id, .. }
        | GateCall::Fail { id, .. }
        | GateCall::Redrive { id } => std::slice::from_ref(id),
        GateCall::Withdraw { ids, .. } => ids.as_slice(),
        _ => &[],
    };
    for id in ids {
        if let Some(v) = ledger.get(&invite_key(id)).filter(|v| !v.is_empty()) {
            if let Err(e) = serde_json::from_slice::<InviteRecord>(v.as_bytes()) {
                return Err(format!("unreadable record {id}: {e}"));
            }
        }
    }
    Ok(handle(call, now_ms, ledger))
}

/// Runs one gate call at `now_ms` (an unreadable record reads as none: see [`try_handle`]).
pub fn handle(call: GateCall, now_ms: u64, ledger: &impl Ledger) -> GateReply {
    match call {
        GateCall::Reserve {
            calls,
            max_wait_ms,
            rate,
            lease,
            start_within_ms,
        } => {
            let mut p = pacer(ledger);
            // Nothing is booked when the schedule is further ahead than the caller may start.
            let late =
                start_within_ms.map_or(0, |w| p.first_wait_ms(rate, now_ms).saturating_sub(w));
            if late > 0 {
                return GateReply::Busy {
                    retry_after_ms: late,
                };
            }
            match p.reserve(rate, now_ms, calls, max_wait_ms) {
                Ok(slots) => {
                    // Only while nobody waits: this invite's own calls can all go now.
                    let idle = slots.last().is_none_or(|s| *s <= now_ms);
                    let lease = if lease && idle {
                        p.lease(rate, now_ms)
                    } else {
                        None
                    };
                    save_pacer(ledger, &p);
                    GateReply::Reserved { slots, lease }
                }
                Err(retry_after_ms) => GateReply::Busy { retry_after_ms },
            }
        }
        GateCall::RateLimited {
            reset_ms,
            limit,
            rate,
        } => {
            let mut p = pacer(ledger);
            p.rate_limited(rate, reset_ms, limit);
            if let Some(json) = save_pacer(ledger, &p) {
                if p.paused_until_ms > now_ms {
                    ledger.put(PAUSED_PACER_KEY, &json, None, p.paused_until_ms);
                }
            }
            GateReply::Done
        }
        GateCall::Accept {
            invites,
            batch_id,
            event,
            cooldown,
        } => {
            ledger.purge(now_ms);
            let first = invites.first().map(|i| i.id.as_str()).unwrap_or("");
            if let Some(event) = &event {
                let key = format!("evt:{event}");
                if let Some(id) = ledger.claim(&key, first, now_ms + EVENT_TTL_MS) {
                    // Never started: its message may never have reached the queue, and the
                    // sender's retries would all be answered `duplicate` (found by the chaos
                    // soak's review). Sent again, it runs once (`Begin` dedupes).
                    let requeue = load(ledger, &id)
                        .filter(InviteRecord::never_started)
                        .map(|r| r.message);
                    return GateReply::Duplicate {
                        invite_id: Some(id).filter(|s| !s.is_empty()),
                        requeue,
                    };
                }
            }
            if let Some((key, ttl_ms)) = &cooldown {
                let key = format!("cool:{key}");
                if claim_window(ledger, &key, first, now_ms + ttl_ms).is_some() {
                    return GateReply::Cooldown;
                }
            }
            if let Some(b) = &batch_id {
                ledger.put(
                    &format!("batch:{b}"),
                    &invites.len().to_string(),
                    None,
                    now_ms + STATUS_TTL_MS,
                );
            }
            for message in invites {
                store(ledger, &new_record(message, batch_id.clone(), now_ms));
            }
            GateReply::Accepted
        }
        GateCall::Withdraw {
            ids,
            event,
            cooldown,
        } => {
            for id in &ids {
                // Only if nothing took it up: a send that failed may still have been delivered.
                // So it leaves a tombstone (an empty record) that `Begin` answers `Settled`:
                // a message delivered after all must not run the invite the caller's retry
                // runs again (forgotten, its record was made anew from the message, and one
                // webhook event ran twice: found by an interleaving test).
                if load(ledger, id).is_some_and(|r| r.status == Status::Queued) {
                    ledger.put(&invite_key(id), "", None, now_ms + STATUS_TTL_MS);
                }
            }
            let first = ids.first().map(String::as_str).unwrap_or("");
            // The claims go back only with the invite they were for: one a consumer already
            // took up keeps its event id and window, so the sender's retry is answered
            // `duplicate` (or inside the window), not run a second time (found in a review).
            // A tombstone, not the record's status, says so: a retried Withdraw finds it too.
            let withdrawn = ledger.get(&invite_key(first)).is_some_and(|v| v.is_empty());
            let claims = [
                event.map(|e| format!("evt:{e}")).filter(|_| withdrawn),
                cooldown.map(|c| format!("cool:{c}")).filter(|_| withdrawn),
            ];
            for key in claims.into_iter().flatten() {
                if ledger.get(&key).as_deref() == Some(first) {
                    // Expired at once, as ReleaseEmail does.
                    ledger.put(&key, first, None, now_ms);
                }
            }
            ledger.purge(now_ms);
            GateReply::Done
        }
        GateCall::Begin { id, message } => {
            if ledger.get(&invite_key(&id)).is_some_and(|v| v.is_empty()) {
                return GateReply::Begin(Begin::Settled); // withdrawn
            }
            let mut rec = match (load(ledger, &id), message) {
                (Some(r), _) => r,
                // The ledger lost it (expired, or storage reset): the message is the truth.
                (None, Some(m)) => new_record(m, None, now_ms),
                (None, None) => return GateReply::Begin(Begin::Settled),
            };
            match rec.status {
                Status::Completed | Status::Failed => return GateReply::Begin(Begin::Settled),
                Status::Processing if rec.lease_until_ms > now_ms => {
                    return GateReply::Begin(Begin::Held {
                        retry_after_ms: rec.lease_until_ms - now_ms,
                    })
                }
                _ => {}
            }
            rec.status = Status::Processing;
            rec.attempts += 1;
            rec.lease_until_ms = now_ms + LEASE_MS;
            rec.updated_at_ms = now_ms;
            store(ledger, &rec);
            GateReply::Begin(Begin::Run {
                attempt: rec.attempts,
            })
        }
        GateCall::Complete {
            id,
            user_id,
            created,
            ticket,
        } => {
            if let Some(mut rec) = load(ledger, &id) {
                rec.status = Status::Completed;
                rec.error_code = None;
                rec.lease_until_ms = 0;
                rec.updated_at_ms = now_ms;
                rec.user_id = Some(user_id);
                rec.created = Some(created);
                if rec.message.kind == Kind::Trusted {
                    if let Some((url, expires_at, expires_ms)) = ticket {
                        let t = StoredTicket {
                            url,
                            expires_at,
                            expires_ms,
                        };
                        if let Ok(json) = serde_json::to_string(&t) {
                            ledger.put(&ticket_key(&id), &json, None, expires_ms);
                        }
                    }
                }
                store(ledger, &rec);
            }
            GateReply::Done
        }
        GateCall::Release { id, code } => {
            if let Some(mut rec) = load(ledger, &id) {
                if rec.status == Status::Processing {
                    rec.status = Status::Queued;
                }
                rec.error_code = code.or(rec.error_code);
                rec.lease_until_ms = 0;
                rec.updated_at_ms = now_ms;
                store(ledger, &rec);
            }
            GateReply::Done
        }
        GateCall::Fail { id, code } => {
            if let Some(mut rec) = load(ledger, &id) {
                // A dead letter (no code) while a delivery holds the invite is another copy's
                // (a retry or a duplicate delivery sends copies, each with its own retries):
                // failed under the holder's lease, the retry its log asks for ran the invite
                // twice at once (found in a review). The holder settles it; the dead letter
                // looks again when the lease ends.
                if code.is_none() && rec.status == Status::Processing && rec.lease_until_ms > now_ms
                {
                    return GateReply::Begin(Begin::Held {
                        retry_after_ms: rec.lease_until_ms - now_ms,
                    });
                }
                if rec.status != Status::Completed {
                    rec.status = Status::Failed;
                    rec.error_code = code
                        .or(rec.error_code)
                        .or_else(|| Some("retries_exhausted".into()));
                    rec.lease_until_ms = 0;
                    rec.updated_at_ms = now_ms;
                    store(ledger, &rec);
                }
            }
            GateReply::Done
        }
        GateCall::ClaimEmail { key, ttl_ms, owner } => {
            ledger.purge(now_ms);
            let key = format!("cool:{key}");
            match claim_window(ledger, &key, &owner, now_ms + ttl_ms) {
                Some(holder) => GateReply::Claimed {
                    claimed: false,
                    retry_after_ms: ledger.expiry(&key).map(|e| e.saturating_sub(now_ms)),
                    revoked: holder == REVOKED_HOLDER,
                    holder_running: load(ledger, &holder).is_some_and(|r| r.in_flight()),
                },
                None => GateReply::Claimed {
                    claimed: true,
                    retry_after_ms: None,
                    revoked: false,
                    holder_running: false,
                },
            }
        }
        GateCall::Remember {
            keys,
            value,
            ttl_ms,
            windows,
        } => {
            for key in keys {
                ledger.put(&format!("mem:{key}"), &value, None, now_ms + ttl_ms);
            }
            for key in windows
                .iter()
                .flat_map(|k| [format!("cool:{k}"), format!("cool:resend:{k}")])
            {
                // Not a window an invite still queued or running holds: it will send its
                // own link, and the next sign-up would send another at once (found by an
                // interleaving test).
                let running = |h: &str| load(ledger, h).is_some_and(|r| r.in_flight());
                if let Some(holder) = ledger.get(&key).filter(|h| !running(h)) {
                    // Expired at once, as ReleaseEmail does.
                    ledger.put(&key, &holder, None, now_ms);
                }
            }
            GateReply::Done
        }
        GateCall::HoldWindows { key, ttl_ms } => {
            for key in [format!("cool:{key}"), format!("cool:resend:{key}")] {
                ledger.put(&key, REVOKED_HOLDER, None, now_ms + ttl_ms);
            }
            GateReply::Done
        }
        GateCall::Recall { key } => {
            ledger.purge(now_ms);
            GateReply::Recalled {
                value: ledger.get(&format!("mem:{key}")),
            }
        }
        GateCall::ReleaseEmail { key, owner } => {
            let key = format!("cool:{key}");
            if ledger.get(&key).as_deref() == Some(owner.as_str()) {
                // Expired at once: reads skip it, the next purge drops it.
                ledger.put(&key, &owner, None, now_ms);
            }
            GateReply::Done
        }
        GateCall::Status { id } => {
            ledger.purge(now_ms);
            GateReply::Status {
                invite: load(ledger, &id).map(|r| r.view(ledger, now_ms)),
            }
        }
        GateCall::Batch { id } => {
            if ledger.get(&format!("batch:{id}")).is_none() {
                return GateReply::Batch { invites: None };
            }
            ledger.purge(now_ms);
            let invites = ledger
                .group(&id)
                .iter()
                .filter_map(|s| serde_json::from_slice::<InviteRecord>(s.as_bytes()).ok())
                .map(|r| r.view(ledger, now_ms))
                .collect();
            GateReply::Batch {
                invites: Some(invites),
            }
        }
        GateCall::Redrive { id } => match load(ledger, &id) {
            Some(mut rec) if rec.status == Status::Failed => {
                rec.status = Status::Queued;
                rec.attempts = 0;
                rec.updated_at_ms = now_ms;
                store(ledger, &rec);
                GateReply::Redrive {
                    message: Some(rec.message),
                    waiting: None,
                }
            }
            // Sent again as it is: a copy of a message still in the queue runs nothing
            // twice (`Begin` answers `Held`, then `Settled`).
            Some(rec) if rec.never_started() => GateReply::Redrive {
                message: None,
                waiting: Some(Box::new(rec.message)),
            },
            _ => GateReply::Redrive {
                message: None,
                waiting: None,
            },
        },
    }
}

/// Who holds an address's email windows for a revoke ([`GateCall::HoldWindows`]).
pub const REVOKED_HOLDER: &str = "revoked";

/// Claims an address's email window (`cool:…`) for `owner`, an invite id, until
/// `expire_at_ms`; `None` when it is `owner`'s now (taken, or already held by it), else who
/// holds it. A window held by an invite that ended `failed` is taken over: whatever it did or
/// did not send, the new invite sends a link of its own. (Kept, it answered the person's next
/// sign-up "check your inbox" with nothing queued, after a failed email: found in an audit.)
fn claim_window(ledger: &impl Ledger, key: &str, owner: &str, expire_at_ms: u64) -> Option<String> {
    let holder = ledger.claim(key, owner, expire_at_ms)?;
    if holder == owner {
        // Claimed again by its owner (the run, then right before the send): the window
        // starts again, so that it runs from the email, not from the sign-up that was queued
        // minutes before (found by an interleaving test: two emails 330 s apart).
        ledger.put(key, owner, None, expire_at_ms);
        return None;
    }
    // Not for a revoked account, which no invite will email: the window keeps its anonymous
    // sign-ups from costing Auth0 calls.
    let revoked = Some(ErrorCode::InviteRevoked.as_str());
    if load(ledger, &holder)
        .is_some_and(|r| r.status == Status::Failed && r.error_code.as_deref() != revoked)
    {
        ledger.put(key, owner, None, expire_at_ms);
        return None;
    }
    Some(holder)
}

/// An in-memory [`Ledger`], for tests and for anything without a Durable Object.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    rows: std::cell::RefCell<Vec<Row>>,
}

/// Key, value, group, expiry.
type Row = (String, String, Option<String>, u64);

impl Ledger for MemoryLedger {
    fn get(&self, key: &str) -> Option<String> {
        self.rows
            .borrow()
            .iter()
            .find(|r| r.0 == key)
            .map(|r| r.1.clone())
    }
    fn put(&self, key: &str, value: &str, group: Option<&str>, expire_at_ms: u64) {
        let mut rows = self.rows.borrow_mut();
        let row = (
            key.to_string(),
            value.to_string(),
            group.map(str::to_string),
            expire_at_ms,
        );
        match rows.iter_mut().find(|r| r.0 == key) {
            Some(r) => *r = row,
            None => rows.push(row),
        }
    }
    fn group(&self, group: &str) -> Vec<String> {
        self.rows
            .borrow()
            .iter()
            .filter(|r| r.2.as_deref() == Some(group))
            .map(|r| r.1.clone())
            .collect()
    }
    fn expiry(&self, key: &str) -> Option<u64> {
        self.rows.borrow().iter().find(|r| r.0 == key).map(|r| r.3)
    }
    fn purge(&self, now_ms: u64) {
        self.rows.borrow_mut().retain(|r| r.3 > now_ms);
    }
}

#[cfg(test)]
impl MemoryLedger {
    /// What replacing the Durable Object loses (a deploy, an eviction): what it keeps in
    /// memory, the pacer ([`PACER_KEY`]).
    pub fn replace_object(&self) {
        self.rows.borrow_mut().retain(|r| r.0 != PACER_KEY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FREE: Rate = Rate { rps: 2.0, burst: 2 };

    fn check_slots(p: &mut Pacer, now: u64, calls: u32, expected: &[u64]) {
        let got = p.reserve(FREE, now, calls, 60_000).unwrap();
        let rel: Vec<u64> = got.iter().map(|s| s - now).collect();
        assert_eq!(rel, expected);
    }

    const PAID: Rate = Rate {
        rps: 15.0,
        burst: 50,
    };

    #[test]
    fn a_fresh_bucket_allows_its_burst_less_one_then_the_rate() {
        let mut p = Pacer::default();
        // A burst of 2 schedules as 1: one every 510 ms (500 ms plus the 2% margin).
        check_slots(&mut p, 1_000_000, 3, &[0, 510, 1020]);
        check_slots(&mut p, 1_000_000, 3, &[1530, 2040, 2550]);
        // After a quiet spell the next call goes at once again.
        check_slots(&mut p, 1_010_000, 1, &[0]);
        // A paid tenant's burst of 50: 49 at once, then one every 68 ms.
        let mut p = Pacer::default();
        let slots = p.reserve(PAID, 0, 51, 60_000).unwrap();
        assert_eq!((slots[48], slots[49], slots[50]), (0, 68, 136));
    }

    #[test]
    fn whole_invites_are_admitted_in_arrival_order_or_not_at_all() {
        let mut p = Pacer::default();
        let now = 5_000_000;
        for _ in 0..6 {
            p.reserve(FREE, now, 3, 10_000).unwrap();
        }
        let before = p.clone();
        // 18 calls booked (the last at 8.67 s): 3 more would end at 10.2 s, past 10 s, so
        // none of them is.
        let err = p.reserve(FREE, now, 3, 10_000).unwrap_err();
        assert!(err > 0 && err < 2_000, "{err}");
        assert_eq!(p, before, "a refusal reserves nothing");
    }

    #[test]
    fn leases_are_granted_only_with_room_and_never_on_a_free_tenant() {
        let now = 9_000_000;
        // Free tenant (2 a second): never a lease, the gate sees every invite.
        let mut p = Pacer::default();
        assert_eq!(p.lease(FREE, now), None);
        // 15 a second, burst 50: three slots (a quarter second's worth), all usable now.
        let mut p = Pacer::default();
        let lease = p.lease(PAID, now).expect("room for a lease");
        assert_eq!(lease.slots, vec![now; 3]);
        assert_eq!(lease.until_ms, now + SLOT_LEASE_MS);
        // Leased slots are booked: after the burst's room is gone, no lease, and the next
        // slots are paced as if the leased calls had gone.
        let mut p = Pacer::default();
        p.reserve(PAID, now, 47, 0).unwrap();
        assert_eq!(
            p.lease(PAID, now),
            None,
            "46 + 3 would pass the usable burst of 49"
        );
        let mut q = Pacer::default();
        q.lease(PAID, now).unwrap();
        let after_lease = q.reserve(PAID, now, 47, 60_000).unwrap();
        let plain = Pacer::default().reserve(PAID, now, 50, 60_000).unwrap();
        assert_eq!(after_lease, plain[3..].to_vec());
    }

    #[test]
    fn the_gate_leases_only_when_asked_and_nobody_waits() {
        let l = MemoryLedger::default();
        let now = 11_000_000;
        let reserve = |lease: bool, calls: u32| {
            handle(
                GateCall::Reserve {
                    calls,
                    max_wait_ms: 60_000,
                    rate: PAID,
                    lease,
                    start_within_ms: None,
                },
                now,
                &l,
            )
        };
        match reserve(false, 3) {
            GateReply::Reserved { lease: None, .. } => {}
            other => panic!("not asked, not leased: {other:?}"),
        }
        match reserve(true, 3) {
            GateReply::Reserved {
                lease: Some(lease), ..
            } => assert_eq!(lease.slots.len(), 3),
            other => panic!("asked with room: {other:?}"),
        }
        // Use up the burst: this invite waits for its slots, so no lease comes with them.
        match reserve(true, 45) {
            GateReply::Reserved { slots, lease } => {
                assert!(*slots.last().unwrap() > now);
                assert_eq!(lease, None);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Regression: the pacer lives in the Durable Object's memory, and an object replaced
    /// during a pause (a deploy) forgot it: its first caller got slots at once, into Auth0's
    /// pause. The pause is kept in storage until it ends.
    #[test]
    fn a_429_pause_outlives_the_objects_replacement() {
        let l = MemoryLedger::default();
        let now = 9_000_000;
        let reserve = |at: u64| match handle(
            GateCall::Reserve {
                calls: 1,
                max_wait_ms: 60_000,
                rate: FREE,
                lease: false,
                start_within_ms: None,
            },
            at,
            &l,
        ) {
            GateReply::Reserved { slots, .. } => slots[0],
            other => panic!("{other:?}"),
        };
        let limited = GateCall::RateLimited {
            reset_ms: now + 3_000,
            limit: Some(2),
            rate: FREE,
        };
        assert_eq!(handle(limited, now, &l), GateReply::Done);
        l.replace_object();
        assert_eq!(reserve(now + 10), now + 3_000, "still paused");
        // After the pause a new object starts with a fresh pacer, as before.
        l.replace_object();
        assert_eq!(reserve(now + 60_000), now + 60_000);
    }

    #[test]
    fn a_429_pauses_everyone_until_the_reset() {
        let mut p = Pacer::default();
        let now = 7_000_000;
        p.rate_limited(FREE, now + 3_000, Some(2));
        check_slots(&mut p, now, 2, &[3_000, 3_510]);
    }

    fn queued(id: &str, kind: Kind) -> QueuedInvite {
        QueuedInvite {
            id: id.into(),
            kind,
            input: crate::invite::InviteInput::for_email("a@example.com"),
            greeting: None,
            invited_by: "t".into(),
            idempotency_key: id.into(),
        }
    }

    fn accept(l: &MemoryLedger, id: &str, kind: Kind, event: Option<&str>, now: u64) -> GateReply {
        handle(
            GateCall::Accept {
                invites: vec![queued(id, kind)],
                batch_id: None,
                event: event.map(str::to_string),
                cooldown: None,
            },
            now,
            l,
        )
    }

    #[test]
    fn an_invite_runs_once_and_a_redelivery_is_settled() {
        let l = MemoryLedger::default();
        assert_eq!(
            accept(&l, "inv_1", Kind::Trusted, None, 0),
            GateReply::Accepted
        );
        let begin = |now| {
            handle(
                GateCall::Begin {
                    id: "inv_1".into(),
                    message: None,
                },
                now,
                &l,
            )
        };
        assert_eq!(begin(10), GateReply::Begin(Begin::Run { attempt: 1 }));
        assert_eq!(
            begin(20),
            GateReply::Begin(Begin::Held {
                retry_after_ms: LEASE_MS - 10
            })
        );
        handle(
            GateCall::Complete {
                id: "inv_1".into(),
                user_id: "auth0|1".into(),
                created: true,
                ticket: Some(("https://t/x".into(), "2026".into(), 1_000)),
            },
            30,
            &l,
        );
        assert_eq!(begin(40), GateReply::Begin(Begin::Settled));
        let GateReply::Status { invite: Some(v) } =
            handle(GateCall::Status { id: "inv_1".into() }, 50, &l)
        else {
            panic!()
        };
        assert_eq!(
            (v.status, v.ticket_url.as_deref()),
            (Status::Completed, Some("https://t/x"))
        );
        // Not after the ticket's own expiry.
        let GateReply::Status { invite: Some(v) } =
            handle(GateCall::Status { id: "inv_1".into() }, 1_000, &l)
        else {
            panic!()
        };
        assert_eq!(v.ticket_url, None);
        assert!(
            !format!("{l:?}").contains("https://t/x"),
            "the link itself is gone"
        );
    }

    #[test]
    fn events_and_cooldowns_are_claimed_once() {
        let l = MemoryLedger::default();
        assert_eq!(
            accept(&l, "inv_a", Kind::Stripe, Some("stripe:evt_1"), 0),
            GateReply::Accepted
        );
        assert!(matches!(
            accept(&l, "inv_b", Kind::Stripe, Some("stripe:evt_1"), 5),
            GateReply::Duplicate { invite_id: Some(id), requeue: Some(m) } if id == "inv_a" && m.id == "inv_a"
        ));
        let claim = |owner: &str, now| {
            handle(
                GateCall::ClaimEmail {
                    key: "k".into(),
                    ttl_ms: 600_000,
                    owner: owner.into(),
                },
                now,
                &l,
            )
        };
        let taken = GateReply::Claimed {
            claimed: true,
            retry_after_ms: None,
            revoked: false,
            holder_running: false,
        };
        assert_eq!(claim("inv_1", 0), taken);
        assert_eq!(
            claim("inv_1", 1),
            taken,
            "a retry, which starts the window again"
        );
        assert_eq!(
            claim("inv_2", 1),
            GateReply::Claimed {
                claimed: false,
                retry_after_ms: Some(600_000),
                revoked: false,
                holder_running: false,
            },
            "held, for the rest of the window"
        );
        assert_eq!(claim("inv_2", 600_001), taken, "after the window");

        // A revoke takes both windows, whoever holds them: the holder's claim before its
        // send is refused, and says why.
        handle(
            GateCall::HoldWindows {
                key: "k".into(),
                ttl_ms: 150_000,
            },
            600_002,
            &l,
        );
        assert_eq!(
            claim("inv_2", 600_003),
            GateReply::Claimed {
                claimed: false,
                retry_after_ms: Some(149_999),
                revoked: true,
                holder_running: false,
            }
        );
        let resend = handle(
            GateCall::ClaimEmail {
                key: "resend:k".into(),
                ttl_ms: 300_000,
                owner: "rsd_1".into(),
            },
            600_003,
            &l,
        );
        assert!(
            matches!(resend, GateReply::Claimed { revoked: true, .. }),
            "{resend:?}"
        );
    }

    /// A ledger whose reads or writes fail, as SQLite's can (a full database, say): a read
    /// finds nothing, a write is lost, and either is remembered as the fault.
    #[derive(Default)]
    struct Faulty {
        inner: MemoryLedger,
        reads: bool,
        writes: bool,
        fault: std::cell::RefCell<Option<String>>,
    }

    impl Faulty {
        fn failed(&self, op: &str, fails: bool) -> bool {
            if fails {
                *self.fault.borrow_mut() = Some(format!("{op}: database or disk is full"));
            }
            fails
        }
    }

    impl Ledger for Faulty {
        fn get(&self, key: &str) -> Option<String> {
            (!self.failed("get", self.reads))
                .then(|| self.inner.get(key))
                .flatten()
        }
        fn put(&self, key: &str, value: &str, group: Option<&str>, expire_at_ms: u64) {
            if !self.failed("put", self.writes) {
                self.inner.put(key, value, group, expire_at_ms);
            }
        }
        fn group(&self, group: &str) -> Vec<String> {
            if self.failed("group", self.reads) {
                return Vec::new();
            }
            self.inner.group(group)
        }
        fn expiry(&self, key: &str) -> Option<u64> {
            (!self.failed("expiry", self.reads))
                .then(|| self.inner.expiry(key))
                .flatten()
        }
        fn purge(&self, now_ms: u64) {
            self.inner.purge(now_ms);
        }
        fn fault(&self) -> Option<String> {
            self.fault.borrow().clone()
        }
    }

    #[test]
    fn a_storage_error_makes_the_whole_call_an_error_never_a_reply() {
        // A webhook's invite: a lost write of its event id or its record, answered
        // `accepted`, would let the redelivery run it twice or leave no status to find.
        let call = serde_json::to_string(&GateCall::Accept {
            invites: vec![queued("inv_1", Kind::Stripe)],
            batch_id: None,
            event: Some("stripe:evt_1".into()),
            cooldown: Some(("addr".into(), 60_000)),
        })
        .unwrap();
        let check = |reads: bool, writes: bool| {
            let l = Faulty {
                reads,
                writes,
                ..Faulty::default()
            };
            answer(&call, 1_000, &l)
        };
        assert_eq!(check(false, false), Ok(r#""accepted""#.to_string()));
        for (reads, writes) in [(true, false), (false, true), (true, true)] {
            let err = check(reads, writes).unwrap_err();
            assert!(err.starts_with("gate storage: "), "{reads} {writes}: {err}");
        }
        let l = Faulty::default();
        assert!(answer("{", 0, &l).unwrap_err().starts_with("bad gate call"));
    }

    /// Waiting for the pacer (a release without a code) is no error: the status keeps the last
    /// real one, and a dead letter ends with it, or with `retries_exhausted`. (It said `paced`,
    /// a code no document lists.)
    #[test]
    fn a_release_without_a_code_keeps_the_last_error() {
        let l = MemoryLedger::default();
        let code_of = |id: &str| match handle(GateCall::Status { id: id.into() }, 9, &l) {
            GateReply::Status { invite: Some(v) } => v.error_code,
            other => panic!("{other:?}"),
        };
        let release = |id: &str, code: Option<&str>| {
            handle(
                GateCall::Begin {
                    id: id.into(),
                    message: None,
                },
                1,
                &l,
            );
            handle(
                GateCall::Release {
                    id: id.into(),
                    code: code.map(str::to_string),
                },
                2,
                &l,
            );
        };
        accept(&l, "inv_a", Kind::Public, None, 0);
        release("inv_a", Some("upstream_unavailable"));
        release("inv_a", None);
        assert_eq!(code_of("inv_a").as_deref(), Some("upstream_unavailable"));
        accept(&l, "inv_b", Kind::Public, None, 0);
        release("inv_b", None);
        assert_eq!(code_of("inv_b"), None);
        handle(
            GateCall::Fail {
                id: "inv_b".into(),
                code: None,
            },
            3,
            &l,
        );
        assert_eq!(code_of("inv_b").as_deref(), Some("retries_exhausted"));
    }

    #[test]
    fn emailed_invites_never_show_a_ticket() {
        let l = MemoryLedger::default();
        accept(&l, "inv_p", Kind::Public, None, 0);
        handle(
            GateCall::Complete {
                id: "inv_p".into(),
                user_id: "auth0|1".into(),
                created: true,
                ticket: Some(("https://t/secret".into(), "2026".into(), u64::MAX)),
            },
            1,
            &l,
        );
        let reply = handle(GateCall::Status { id: "inv_p".into() }, 2, &l);
        assert!(!serde_json::to_string(&reply).unwrap().contains("secret"));
    }
}
