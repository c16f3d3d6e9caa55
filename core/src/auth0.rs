//! The Auth0 client: request builders, response parsers, and the one call path that adds
//! the token, the per-request deadline, retries and the 401 refresh.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Service, UpstreamError};
use crate::gate::{GateCall, GateReply};
use crate::invite::InviteInput;
use crate::platform::{HttpRequest, HttpResponse, KvOp, Platform};
use crate::retry::{decide, Decision, Failure};
use crate::token::{
    role_kv_key, token_kv_key, Acquire, CachedToken, IsolateCache, Poll, TokenSource,
    ROLE_CACHE_TTL_SEC, TOKEN_POLL_MS,
};

/// Characters left as they are in a path segment: RFC 3986 unreserved.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (`auth0|x` → `auth0%7Cx`).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, PATH_SEGMENT).to_string()
}

/// Per-request state: the deadline, the KV writes to run after the response, and counters
/// for the log line.
#[derive(Debug)]
pub struct RequestState {
    /// No upstream call starts or waits past this instant (Unix ms).
    pub deadline_ms: Cell<u64>,
    /// KV writes for the shell to run with `wait_until`.
    pub deferred: RefCell<Vec<KvOp>>,
    /// Upstream HTTP requests sent, retries included.
    pub upstream_calls: Cell<u32>,
    /// Where the first token came from.
    pub token_source: Cell<Option<TokenSource>>,
    /// Something worth logging about a request that still succeeded.
    pub note: RefCell<Option<String>>,
    /// Management call slots granted by the gate (Unix ms), used in order.
    pub slots: RefCell<VecDeque<u64>>,
    /// A Management call has been sent: from here on the invite is finished even when the
    /// pacer has no slot left in time (unpaced; Auth0's 429s are still retried).
    pub started: Cell<bool>,
    /// Slots came from the isolate's lease, without a gate round trip.
    pub leased: Cell<bool>,
}

impl RequestState {
    /// A context whose deadline is `budget_ms` after `now_ms`.
    pub fn new(now_ms: u64, budget_ms: u64) -> Self {
        RequestState {
            deadline_ms: Cell::new(now_ms + budget_ms),
            deferred: RefCell::new(Vec::new()),
            upstream_calls: Cell::new(0),
            token_source: Cell::new(None),
            note: RefCell::new(None),
            slots: RefCell::new(VecDeque::new()),
            started: Cell::new(false),
            leased: Cell::new(false),
        }
    }

    fn defer(&self, op: KvOp) {
        self.deferred.borrow_mut().push(op);
    }

    fn note_source(&self, s: TokenSource) {
        if self.token_source.get().is_none() {
            self.token_source.set(Some(s));
        }
    }
}

/// An Auth0 user as far as the invite flow cares.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct UserSummary {
    /// `auth0|…`.
    pub user_id: String,
    /// Current app_metadata.
    #[serde(default)]
    pub app_metadata: Option<serde_json::Map<String, Value>>,
    /// How often the user has logged in; Auth0 leaves it out until the first login.
    #[serde(default)]
    pub logins_count: Option<u64>,
    /// When the user last logged in; absent until the first login.
    #[serde(default)]
    pub last_login: Option<String>,
    /// Whether the account is blocked (a revoked invite).
    #[serde(default)]
    pub blocked: Option<bool>,
    #[serde(default)]
    identities: Vec<Identity>,
}

impl UserSummary {
    /// Whether this account is an invite this service created that nobody has used yet:
    /// `app_metadata.invited` (which callers can never set) and no login on record.
    pub fn is_unaccepted_invite(&self) -> bool {
        let invited = self
            .app_metadata
            .as_ref()
            .and_then(|m| m.get("invited"))
            .and_then(Value::as_bool)
            == Some(true);
        invited && self.logins_count.unwrap_or(0) == 0 && self.last_login.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Identity {
    #[serde(default)]
    connection: String,
}

/// Outcome of `POST /api/v2/users`.
#[derive(Clone, Debug, PartialEq)]
pub enum Created {
    /// A new user with this id.
    New(String),
    /// The email is taken in this connection (409).
    Exists,
}

/// Where a password-change ticket sends the user afterwards.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketTarget {
    /// Redirect to this URL.
    ResultUrl(String),
    /// Send to this application's login page.
    ClientId(String),
    /// Auth0's default.
    Default,
}

/// Auth0's error body (`message`), or the token endpoint's (`error_description`).
pub fn error_message(resp: &HttpResponse) -> String {
    #[derive(Deserialize)]
    struct Body {
        message: Option<String>,
        error_description: Option<String>,
        error: Option<String>,
    }
    match serde_json::from_slice::<Body>(&resp.body) {
        Ok(b) => b
            .message
            .or(b.error_description)
            .or(b.error)
            .unwrap_or_else(|| format!("HTTP {}", resp.status)),
        Err(_) => format!("HTTP {}", resp.status),
    }
}

/// Auth0 refused the request for good (a 400), with its message.
fn rejected(resp: &HttpResponse) -> UpstreamError {
    UpstreamError::Rejected {
        service: Service::Auth0,
        message: error_message(resp),
    }
}

fn unexpected(resp: &HttpResponse, context: &'static str) -> UpstreamError {
    UpstreamError::Unexpected {
        service: Service::Auth0,
        status: resp.status,
        body: resp.text(),
        context,
    }
}

fn parse<T: for<'de> Deserialize<'de>>(
    resp: &HttpResponse,
    context: &'static str,
) -> Result<T, UpstreamError> {
    serde_json::from_slice(&resp.body).map_err(|_| unexpected(resp, context))
}

/// Picks the user of `connection` from a `users-by-email` answer.
pub fn pick_user(users: Vec<UserSummary>, connection: &str) -> Option<UserSummary> {
    users
        .into_iter()
        .find(|u| u.identities.iter().any(|i| i.connection == connection))
}

/// Whether an answer says the same request is still being processed: the email API's 409
/// `concurrent_idempotent_requests` (Resend: "safe to retry this request later"). It is
/// retried as it is, with the same key and link, like a 5xx; giving up on it instead ran the
/// invite again, whose new link voided the one the send in progress carries (found in a
/// review).
fn in_progress(service: Service, resp: &HttpResponse) -> bool {
    service == Service::EmailApi
        && resp.status == 409
        && serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|b| {
                b.get("name")?
                    .as_str()
                    .map(|n| n == "concurrent_idempotent_requests")
            })
            .unwrap_or(false)
}

/// Finds the id of the role named exactly `name` in a `GET /roles` answer (a bare array, or
/// `{roles: [...]}` with `include_totals`): `Ok(None)` when the list has no such role, `Err`
/// when the answer is no list at all. (Both were "no such role", which told the operator to
/// create a role that exists, or made the Worker try: found in an audit.)
pub fn pick_role(body: &Value, name: &str) -> Result<Option<String>, NotAList> {
    let list = body
        .as_array()
        .or_else(|| body.get("roles").and_then(Value::as_array))
        .ok_or(NotAList)?;
    Ok(list
        .iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|r| r.get("id").and_then(Value::as_str))
        .map(str::to_string))
}

/// What to do about a role Auth0 names in another case.
const SAME_NAMES: &str = "name roles in ALLOWED_ROLES (and DEFAULT_ROLES, PUBLIC_ROLES, PAYMENT_ROLES) exactly as Auth0 does, case included";

/// The name of a listed role that differs from `name` only in ASCII case, if any.
fn near_role(body: &Value, name: &str) -> Option<String> {
    body.as_array()
        .or_else(|| body.get("roles").and_then(Value::as_array))?
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str))
        .find(|n| *n != name && n.eq_ignore_ascii_case(name))
        .map(str::to_string)
}

/// An answer that should have been a list and was not.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAList;

/// The body of a password-change ticket request. `mark_verified`: using the link proves the
/// address (false when the invitee verifies it separately).
pub fn ticket_body(
    user_id: &str,
    target: &TicketTarget,
    ttl_sec: u64,
    mark_verified: bool,
) -> Value {
    let mut body = json!({
        "user_id": user_id,
        "ttl_sec": ttl_sec,
        "mark_email_as_verified": mark_verified,
        "includeEmailInRedirect": false,
    });
    target.apply(&mut body);
    body
}

/// The body of an email-verification ticket request (the same target as the password link).
pub fn verification_ticket_body(user_id: &str, target: &TicketTarget, ttl_sec: u64) -> Value {
    let mut body = json!({"user_id": user_id, "ttl_sec": ttl_sec, "includeEmailInRedirect": false});
    target.apply(&mut body);
    body
}

impl TicketTarget {
    /// Sets `result_url` or `client_id` on a ticket request body (Auth0 takes one of them).
    fn apply(&self, body: &mut Value) {
        match self {
            TicketTarget::ResultUrl(u) => body["result_url"] = json!(u),
            TicketTarget::ClientId(c) => body["client_id"] = json!(c),
            TicketTarget::Default => {}
        }
    }
}

/// How long a caller's invite may wait for its last Management slot, out of `budget_ms` left
/// before its deadline: the rest is for the calls themselves after it.
pub fn caller_wait_ms(budget_ms: u64) -> u64 {
    budget_ms.saturating_sub((budget_ms / 3).min(2_000))
}

/// Everything a route handler works with, passed first: the configuration, the platform,
/// the isolate's caches and this request's state.
pub struct Ctx<'a, P: Platform> {
    /// The validated configuration.
    pub cfg: &'a Config,
    /// The host's ports.
    pub p: &'a P,
    /// Isolate memory: token, role ids, in-flight events.
    pub cache: &'a Rc<IsolateCache>,
    /// This request's deadline, deferred writes and log counters.
    pub state: &'a RequestState,
}

impl<'a, P: Platform> Ctx<'a, P> {
    /// The Auth0 (and other upstream) client for this request.
    pub fn client(&self) -> Auth0<'a, P> {
        Auth0 {
            cfg: self.cfg,
            p: self.p,
            cache: self.cache,
            ctx: self.state,
        }
    }

    /// Records something worth logging about a request that still succeeded.
    pub fn note(&self, s: impl Into<String>) {
        *self.state.note.borrow_mut() = Some(s.into());
    }
}

/// The Auth0 client for one request.
pub struct Auth0<'a, P: Platform> {
    cfg: &'a Config,
    p: &'a P,
    cache: &'a Rc<IsolateCache>,
    ctx: &'a RequestState,
}

impl<'a, P: Platform> Auth0<'a, P> {
    /// The request's deadline (Unix ms).
    pub fn deadline_ms(&self) -> u64 {
        self.ctx.deadline_ms.get()
    }

    fn jitter(&self) -> f64 {
        let mut b = [0u8; 4];
        match self.p.fill(&mut b) {
            Ok(()) => u32::from_le_bytes(b) as f64 / u32::MAX as f64,
            Err(_) => 0.5,
        }
    }

    /// Sends once, bounded by the deadline.
    async fn send_once(&self, req: HttpRequest) -> Result<HttpResponse, String> {
        let remaining = self.ctx.deadline_ms.get().saturating_sub(self.p.now_ms());
        if remaining == 0 {
            return Err("request deadline reached".into());
        }
        self.ctx
            .upstream_calls
            .set(self.ctx.upstream_calls.get() + 1);
        self.p.send(req, remaining).await.map_err(|e| e.0)
    }

    /// Sends `req` to `service`, retrying 429, 5xx and network errors until the deadline.
    /// Returns the first other answer.
    pub async fn send_retrying(
        &self,
        service: Service,
        req: HttpRequest,
    ) -> Result<HttpResponse, UpstreamError> {
        let mut attempt = 0;
        let paced = service == Service::Auth0 && req.url.contains("/api/v2/");
        loop {
            if paced {
                self.pace().await?;
            }
            let outcome = match self.send_once(req.clone()).await {
                Ok(r) if r.status != 429 && r.status < 500 && !in_progress(service, &r) => {
                    return Ok(r)
                }
                other => other,
            };
            let (failure, detail) = match &outcome {
                Ok(r) if r.status == 429 => (
                    Failure::RateLimited {
                        retry_after: r.header_value("retry-after"),
                        ratelimit_reset: r.header_value("x-ratelimit-reset"),
                    },
                    "429 Too Many Requests".to_string(),
                ),
                Ok(r) => (Failure::Transient, format!("HTTP {}", r.status)),
                Err(e) => (Failure::Transient, e.clone()),
            };
            let now = self.p.now_ms();
            if let (true, Ok(r)) = (paced, &outcome) {
                if r.status == 429 {
                    self.report_rate_limited(r, now).await;
                }
            }
            // Auth0's user search gives up on a query after two seconds with a 503 ("Search
            // queries time out (HTTP status code 503) if they're not completed in two
            // seconds", User Search Best Practices): the same query will likely time out
            // again, and every try takes a slot of the tenant's rate. It is tried twice.
            if attempt >= 1 && is_user_search(&req) && matches!(&outcome, Ok(r) if r.status == 503)
            {
                return Err(UpstreamError::Unavailable {
                    service,
                    detail: "Auth0's user search timed out twice (503)".into(),
                });
            }
            match decide(
                &failure,
                attempt,
                now,
                self.ctx.deadline_ms.get(),
                self.jitter(),
            ) {
                Decision::RetryAfter(ms) => self.p.sleep(ms).await,
                Decision::GiveUp { wait_ms } => {
                    return Err(match failure {
                        Failure::RateLimited { .. } => UpstreamError::RateLimited {
                            service,
                            retry_after_sec: wait_ms.div_ceil(1000).max(1),
                        },
                        Failure::Transient => UpstreamError::Unavailable { service, detail },
                    })
                }
            }
            attempt += 1;
        }
    }

    /// Asks the gate for slots for a whole invite's `calls` Management calls, before any of
    /// them. Refused (nothing reserved, nothing sent) when the last slot would leave too little
    /// of the deadline: a 503 with an honest `Retry-After` instead of a half-done invite.
    pub async fn admit(&self, input: &InviteInput) -> Result<(), UpstreamError> {
        let now = self.p.now_ms();
        let budget = self.ctx.deadline_ms.get().saturating_sub(now);
        self.admit_within(input, caller_wait_ms(budget)).await
    }

    /// [`Auth0::admit`] with an explicit longest wait for the last slot (the queue consumer
    /// may wait longer than a caller would). The invite's calls are its warm calls plus one
    /// lookup per role in neither cache.
    pub async fn admit_within(
        &self,
        input: &InviteInput,
        max_wait_ms: u64,
    ) -> Result<(), UpstreamError> {
        self.admit_starting_within(input, max_wait_ms, None).await
    }

    /// [`Auth0::admit_within`], refused as well when the tenant's schedule is booked more
    /// than `start_within_ms` ahead (`None`: no such bound). An idle schedule always admits.
    pub async fn admit_starting_within(
        &self,
        input: &InviteInput,
        max_wait_ms: u64,
        start_within_ms: Option<u64>,
    ) -> Result<(), UpstreamError> {
        let calls = input.management_calls() + self.uncached_roles(&input.roles).await;
        if self.use_lease(calls) {
            return Ok(());
        }
        match self.reserve(calls, max_wait_ms, start_within_ms).await {
            Some(GateReply::Busy { retry_after_ms }) => Err(UpstreamError::RateLimited {
                service: Service::Auth0,
                retry_after_sec: retry_after_ms.div_ceil(1000).max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Takes `calls` slots from the isolate's lease, if it holds them: no gate round trip.
    fn use_lease(&self, calls: u32) -> bool {
        match self.cache.take_slots(calls, self.p.now_ms()) {
            Some(slots) => {
                self.ctx.slots.borrow_mut().extend(slots);
                self.ctx.leased.set(true);
                true
            }
            None => false,
        }
    }

    /// Reserves slots, and asks for a lease for later calls; `None` when the gate can't be
    /// reached (fail open: Auth0's own 429s are still handled).
    async fn reserve(
        &self,
        calls: u32,
        max_wait_ms: u64,
        start_within_ms: Option<u64>,
    ) -> Option<GateReply> {
        let call = GateCall::Reserve {
            calls,
            max_wait_ms,
            rate: self.cfg.mgmt_rate,
            lease: true,
            start_within_ms,
        };
        match self.p.gate(call).await {
            Ok(GateReply::Reserved { slots, lease }) => {
                self.ctx.slots.borrow_mut().extend(slots);
                if let Some(lease) = lease {
                    self.cache.keep_slots(lease);
                }
                None
            }
            Ok(busy @ GateReply::Busy { .. }) => Some(busy),
            Ok(other) => {
                *self.ctx.note.borrow_mut() = Some(format!("gate answered {}", other.kind()));
                None
            }
            Err(e) => {
                *self.ctx.note.borrow_mut() = Some(format!("gate unreachable, unpaced: {e}"));
                None
            }
        }
    }

    /// Waits for this call's slot, reserving one more when the invite's are used up.
    async fn pace(&self) -> Result<(), UpstreamError> {
        if self.ctx.slots.borrow().is_empty() && !self.use_lease(1) {
            let now = self.p.now_ms();
            let max_wait_ms = self.ctx.deadline_ms.get().saturating_sub(now + 500);
            if let Some(GateReply::Busy { retry_after_ms }) =
                self.reserve(1, max_wait_ms, None).await
            {
                if !self.ctx.started.get() {
                    return Err(UpstreamError::RateLimited {
                        service: Service::Auth0,
                        retry_after_sec: retry_after_ms.div_ceil(1000).max(1),
                    });
                }
                // Never half-done for want of a slot: a started invite goes on unpaced.
                *self.ctx.note.borrow_mut() =
                    Some("pacer full: finished the started invite unpaced".into());
            }
        }
        self.ctx.started.set(true);
        let slot = self.ctx.slots.borrow_mut().pop_front();
        if let Some(slot) = slot {
            let now = self.p.now_ms();
            if slot > now {
                self.p.sleep(slot - now).await;
            }
        }
        Ok(())
    }

    /// Tells the gate that Auth0 said 429: everyone waits for the reset.
    async fn report_rate_limited(&self, resp: &HttpResponse, now_ms: u64) {
        let header = |n: &str| {
            resp.header_value(n)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let reset_ms = header("x-ratelimit-reset")
            .map(|s| s.saturating_mul(1000))
            .or_else(|| {
                header("retry-after").map(|s| now_ms.saturating_add(s.saturating_mul(1000)))
            })
            .unwrap_or(now_ms + 1000)
            // A reset far away is more likely a clock problem than a real pause.
            .min(now_ms + 60_000);
        let limit = header("x-ratelimit-limit").and_then(|l| u32::try_from(l).ok());
        self.cache.drop_slots();
        let _ = self
            .p
            .gate(GateCall::RateLimited {
                reset_ms,
                limit,
                rate: self.cfg.mgmt_rate,
            })
            .await;
    }

    /// A client-credentials grant.
    async fn fetch_token(&self) -> Result<CachedToken, UpstreamError> {
        let req =
            HttpRequest::new("POST", format!("{}/oauth/token", self.cfg.base_url)).json(&json!({
                "grant_type": "client_credentials",
                "client_id": self.cfg.client_id,
                "client_secret": self.cfg.client_secret.expose(),
                "audience": self.cfg.audience,
            }));
        let resp = self.send_retrying(Service::Auth0, req).await?;
        match resp.status {
            200 => {
                #[derive(Deserialize)]
                struct Grant {
                    access_token: String,
                    expires_in: u64,
                }
                // The body holds the token: never keep it in an error.
                let g: Grant =
                    serde_json::from_slice(&resp.body).map_err(|_| UpstreamError::Unexpected {
                        service: Service::Auth0,
                        status: 200,
                        body: "[token response withheld]".into(),
                        context: "POST /oauth/token",
                    })?;
                Ok(CachedToken::new(
                    g.access_token,
                    g.expires_in,
                    self.p.now_ms(),
                    self.cfg.token_refresh_margin_sec,
                ))
            }
            401 | 403 => Err(UpstreamError::Auth {
                service: Service::Auth0,
                status: resp.status,
                message: error_message(&resp),
                token_endpoint: true,
            }),
            // Any other success (or a redirect, not followed) may hold a token too: withheld.
            // (Only a 200's was: a 203 from a proxy put the token in the log line.)
            status @ 201..=399 => Err(UpstreamError::Unexpected {
                service: Service::Auth0,
                status,
                body: "[token response withheld]".into(),
                context: "POST /oauth/token",
            }),
            _ => Err(unexpected(&resp, "POST /oauth/token")),
        }
    }

    /// A usable token: memory, else KV, else a grant shared by every request of this
    /// isolate that needs one at the same moment. `avoid` is a token just refused by Auth0.
    pub async fn token(&self, avoid: Option<&str>) -> Result<CachedToken, UpstreamError> {
        loop {
            match self.cache.acquire(self.p.now_ms()) {
                Acquire::Ready(t) => {
                    self.ctx.note_source(TokenSource::Memory);
                    return Ok(t);
                }
                Acquire::Busy(gen) => loop {
                    if self.p.now_ms() + TOKEN_POLL_MS >= self.ctx.deadline_ms.get() {
                        return Err(UpstreamError::Unavailable {
                            service: Service::Auth0,
                            detail: "waited for another request's token fetch until the deadline"
                                .into(),
                        });
                    }
                    self.p.sleep(TOKEN_POLL_MS).await;
                    match self.cache.poll(gen) {
                        Poll::Running => continue,
                        Poll::Done(result) => {
                            self.ctx.note_source(TokenSource::Memory);
                            return result;
                        }
                        Poll::Abandoned => break, // the fetching request was cancelled
                    }
                },
                Acquire::Lead(guard) => {
                    // Hashed here, not before the loop: a warm call (the memory tier) needs
                    // no key, and a profile found the hash and its formatting on every
                    // Management call.
                    let key =
                        token_kv_key(&self.cfg.base_url, &self.cfg.client_id, &self.cfg.audience);
                    if let Ok(Some(raw)) = self.p.get(&key).await {
                        if let Ok(t) = serde_json::from_slice::<CachedToken>(raw.as_bytes()) {
                            if t.is_fresh(self.p.now_ms()) && Some(t.access_token.as_str()) != avoid
                            {
                                self.ctx.note_source(TokenSource::Kv);
                                guard.finish(Ok(t.clone()));
                                return Ok(t);
                            }
                        }
                    }
                    let result = self.fetch_token().await;
                    if let Ok(t) = &result {
                        self.ctx.note_source(TokenSource::Fetched);
                        if let Ok(value) = serde_json::to_string(t) {
                            self.ctx.defer(KvOp::Put {
                                key,
                                value,
                                ttl_sec: t.kv_ttl_sec(self.p.now_ms()),
                            });
                        }
                    }
                    guard.finish(result.clone());
                    return result;
                }
            }
        }
    }

    /// One Management API call: adds the token, retries within the deadline, and on a 401 (or
    /// a 403 to a token a minute old, [`CachedToken::may_be_stale`])
    /// drops the token from memory, gets a new one (KV's copy is replaced, not deleted) and
    /// tries once more.
    pub async fn management(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse, UpstreamError> {
        let mut token = self.token(None).await?;
        let mut refreshed = false;
        loop {
            let mut req =
                HttpRequest::new(method, format!("{}{}", self.cfg.base_url, path_and_query))
                    .header("authorization", format!("Bearer {}", token.access_token));
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = self.send_retrying(Service::Auth0, req).await?;
            match resp.status {
                // 401: revoked or expired. 403 to a token a minute old or more: perhaps the
                // scopes it was issued with, the client grant fixed since (a 403 kept the
                // token until its refresh point, about a day: found in an audit).
                401 | 403
                    if !refreshed
                        && (resp.status == 401 || token.may_be_stale(self.p.now_ms())) =>
                {
                    refreshed = true;
                    // Dropped from memory only. KV is left alone: `token` skips the refused
                    // token there, and the new one's `Put` replaces it. A delete here could
                    // remove the token another isolate has just fetched, and every isolate
                    // would fetch its own (found in a review).
                    self.cache.invalidate_token(&token.access_token);
                    token = self.token(Some(&token.access_token)).await?;
                }
                401 | 403 => {
                    return Err(UpstreamError::Auth {
                        service: Service::Auth0,
                        status: resp.status,
                        message: error_message(&resp),
                        token_endpoint: false,
                    })
                }
                _ => return Ok(resp),
            }
        }
    }

    /// `POST /api/v2/users`.
    pub async fn create_user(&self, body: &Value) -> Result<Created, UpstreamError> {
        let resp = self.management("POST", "/api/v2/users", Some(body)).await?;
        match resp.status {
            200 | 201 => {
                let u: UserSummary = parse(&resp, "POST /api/v2/users")?;
                Ok(Created::New(u.user_id))
            }
            // Decided by the status alone: real 409s may lack errorCode and the message varies.
            409 => Ok(Created::Exists),
            400 => Err(rejected(&resp)),
            _ => Err(unexpected(&resp, "POST /api/v2/users")),
        }
    }

    /// `GET /api/v2/users-by-email`, narrowed to the configured connection.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserSummary>, UpstreamError> {
        let users = self.users_by_email(email).await?;
        Ok(pick_user(users, &self.cfg.connection))
    }

    /// `GET /api/v2/users-by-email`: every account of the address (any connection).
    pub async fn users_by_email<T: for<'de> Deserialize<'de>>(
        &self,
        email: &str,
    ) -> Result<Vec<T>, UpstreamError> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("email", email)
            .finish();
        let resp = self
            .management("GET", &format!("/api/v2/users-by-email?{query}"), None)
            .await?;
        match resp.status {
            200 => {}
            // Auth0 refusing the request (say, an address it does not take) is a refusal
            // (422 invite_rejected), as on every other call, not a 502.
            400 => return Err(rejected(&resp)),
            _ => return Err(unexpected(&resp, "GET /api/v2/users-by-email")),
        }
        parse(&resp, "GET /api/v2/users-by-email")
    }

    /// How many of `roles` are in neither cache: each costs a Management call (a lookup) that
    /// the invite's admission must book too.
    async fn uncached_roles(&self, roles: &[String]) -> u32 {
        if self.cfg.role_mode != crate::config::RoleMode::Rbac {
            return 0;
        }
        let mut n = 0;
        for r in roles {
            if self.cached_role(r).await.is_none() {
                n += 1;
            }
        }
        n
    }

    /// The id of the role named exactly `name`, from the caches or `GET /api/v2/roles`.
    pub async fn cached_role(&self, name: &str) -> Option<String> {
        let now = self.p.now_ms();
        if let Some(id) = self.cache.role_id(name, now) {
            return Some(id);
        }
        let raw = self
            .p
            .get(&role_kv_key(&self.cfg.base_url, name))
            .await
            .ok()??;
        self.cache
            .put_role(name, &raw, now + ROLE_CACHE_TTL_SEC * 1000);
        Some(raw)
    }

    fn remember_role(&self, name: &str, id: &str) {
        self.cache
            .put_role(name, id, self.p.now_ms() + ROLE_CACHE_TTL_SEC * 1000);
        self.ctx.defer(KvOp::Put {
            key: role_kv_key(&self.cfg.base_url, name),
            value: id.to_string(),
            ttl_sec: ROLE_CACHE_TTL_SEC,
        });
    }

    /// Looks a role up in Auth0 (exact name), creating it when allowed. `Ok(None)`: it does
    /// not exist and may not be created.
    pub async fn resolve_role(&self, name: &str) -> Result<Option<String>, UpstreamError> {
        // A role Auth0 listed whose name differs from `name` only in ASCII case.
        let mut near = None;
        for _ in 0..2 {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("name_filter", name)
                .append_pair("per_page", "100")
                .finish();
            let resp = self
                .management("GET", &format!("/api/v2/roles?{query}"), None)
                .await?;
            if resp.status != 200 {
                return Err(unexpected(&resp, "GET /api/v2/roles"));
            }
            let list: Value = parse(&resp, "GET /api/v2/roles")?;
            let found = pick_role(&list, name)
                .map_err(|NotAList| unexpected(&resp, "GET /api/v2/roles"))?;
            if let Some(id) = found {
                self.remember_role(name, &id);
                return Ok(Some(id));
            }
            near = near_role(&list, name).or(near);
            if !self.cfg.auto_create_roles {
                // Not `role_not_found` ("create it there"): one by that name is there, in
                // another case, and creating ours may well be refused as existing.
                return match near {
                    Some(other) => Err(UpstreamError::Rejected {
                        service: Service::Auth0,
                        message: format!(
                            "it has no role named exactly '{name}', but has '{other}': {SAME_NAMES}"
                        ),
                    }),
                    None => Ok(None),
                };
            }
            let body = json!({"name": name, "description": "Created by auth0-invite-worker"});
            let resp = self
                .management("POST", "/api/v2/roles", Some(&body))
                .await?;
            match resp.status {
                200 | 201 => {
                    #[derive(Deserialize)]
                    struct Role {
                        id: String,
                    }
                    let role: Role = parse(&resp, "POST /api/v2/roles")?;
                    self.remember_role(name, &role.id);
                    return Ok(Some(role.id));
                }
                // Created by a concurrent request: look it up again.
                409 => continue,
                _ => return Err(unexpected(&resp, "POST /api/v2/roles")),
            }
        }
        // Twice refused as existing, twice not found by its exact name: with a role named
        // like it in another case ("Beta" for `beta`), retrying can never help, and the
        // invite was answered 502 "retrying is safe" (the emulator holds role names unique
        // regardless of case; whether Auth0 does is not documented). Said as it is instead.
        match near {
            Some(other) => Err(UpstreamError::Rejected {
                service: Service::Auth0,
                message: format!(
                    "it refused to create role '{name}' as existing, and its role of that name is '{other}': {SAME_NAMES}"
                ),
            }),
            None => Err(UpstreamError::Unavailable {
                service: Service::Auth0,
                detail: format!("role '{name}' conflicted on create but was not found"),
            }),
        }
    }

    /// `POST /api/v2/users/{id}/roles`. `Ok(false)`: a role id (from a cache) may no longer
    /// exist, and the role caches are cleared, for the caller to look the roles up again and
    /// make its `last_try`. Auth0's answer for a deleted role's id is recorded nowhere: the
    /// emulator answers 404, but Auth0's API specification lists no 404 for this call, only
    /// 204, 400, 401, 403 and 429 (found by an audit of the emulator). So a 400 before the
    /// last try is taken as stale ids too; had it meant the request, the last try gets the
    /// same 400, reported as such. Without that, a role deleted and recreated in Auth0 would
    /// have failed every invite with its role until the cached id expired.
    pub async fn assign_roles(
        &self,
        user_id: &str,
        role_ids: &[String],
        last_try: bool,
    ) -> Result<bool, UpstreamError> {
        let path = format!("/api/v2/users/{}/roles", encode_segment(user_id));
        let resp = self
            .management("POST", &path, Some(&json!({ "roles": role_ids })))
            .await?;
        match resp.status {
            // 204 carries `Content-Type: application/json` and no body: never parse it.
            200..=299 => Ok(true),
            400 if last_try => Err(rejected(&resp)),
            400 | 404 => {
                self.cache.clear_roles();
                Ok(false)
            }
            _ => Err(unexpected(&resp, "POST /api/v2/users/{id}/roles")),
        }
    }

    /// `PATCH /api/v2/users/{id}` with `app_metadata` (merged by Auth0 at the first level).
    pub async fn patch_app_metadata(
        &self,
        user_id: &str,
        app_metadata: Value,
    ) -> Result<(), UpstreamError> {
        let path = format!("/api/v2/users/{}", encode_segment(user_id));
        let resp = self
            .management(
                "PATCH",
                &path,
                Some(&json!({ "app_metadata": app_metadata })),
            )
            .await?;
        match resp.status {
            200..=299 => Ok(()),
            400 => Err(rejected(&resp)),
            _ => Err(unexpected(&resp, "PATCH /api/v2/users/{id}")),
        }
    }

    /// `POST /api/v2/tickets/password-change`; returns the ticket URL.
    pub async fn password_change_ticket(
        &self,
        user_id: &str,
        target: &TicketTarget,
        ttl_sec: u64,
        mark_verified: bool,
    ) -> Result<String, UpstreamError> {
        let body = ticket_body(user_id, target, ttl_sec, mark_verified);
        self.ticket("/api/v2/tickets/password-change", &body).await
    }

    /// `POST /api/v2/tickets/email-verification`; returns the ticket URL.
    pub async fn email_verification_ticket(
        &self,
        user_id: &str,
        target: &TicketTarget,
        ttl_sec: u64,
    ) -> Result<String, UpstreamError> {
        let body = verification_ticket_body(user_id, target, ttl_sec);
        self.ticket("/api/v2/tickets/email-verification", &body)
            .await
    }

    /// `POST /api/v2/jobs/verification-email`: Auth0 emails its verification link; returns
    /// the job id.
    pub async fn verification_email_job(&self, user_id: &str) -> Result<String, UpstreamError> {
        const CONTEXT: &str = "POST /api/v2/jobs/verification-email";
        let resp = self
            .management(
                "POST",
                "/api/v2/jobs/verification-email",
                Some(&json!({ "user_id": user_id })),
            )
            .await?;
        match resp.status {
            200..=299 => {
                #[derive(Deserialize)]
                struct Job {
                    id: String,
                }
                Ok(parse::<Job>(&resp, CONTEXT)?.id)
            }
            400 => Err(rejected(&resp)),
            _ => Err(unexpected(&resp, CONTEXT)),
        }
    }

    /// `GET /api/v2/users/{id}`; `None` on 404.
    pub async fn user(&self, user_id: &str) -> Result<Option<Value>, UpstreamError> {
        let path = format!("/api/v2/users/{}", encode_segment(user_id));
        let resp = self.management("GET", &path, None).await?;
        match resp.status {
            200 => parse(&resp, "GET /api/v2/users/{id}").map(Some),
            // 400: not a user id Auth0 could hold (a malformed one), so no such user either.
            400 | 404 => Ok(None),
            _ => Err(unexpected(&resp, "GET /api/v2/users/{id}")),
        }
    }

    /// `GET /api/v2/users` with a v3 search query `q`, newest first, one page of `per_page`
    /// with totals: `(users, total matches)`.
    pub async fn search_users(
        &self,
        q: &str,
        per_page: u32,
    ) -> Result<(Vec<Value>, u64), UpstreamError> {
        const CONTEXT: &str = "GET /api/v2/users";
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .append_pair("search_engine", "v3")
            .append_pair("sort", "created_at:-1")
            .append_pair("page", "0")
            .append_pair("per_page", &per_page.to_string())
            .append_pair("include_totals", "true")
            .finish();
        let resp = self
            .management("GET", &format!("/api/v2/users?{query}"), None)
            .await?;
        match resp.status {
            200 => {
                #[derive(Deserialize)]
                struct Page {
                    users: Vec<Value>,
                    #[serde(default)]
                    total: u64,
                }
                let page: Page = parse(&resp, CONTEXT)?;
                Ok((page.users, page.total))
            }
            400 => Err(rejected(&resp)),
            _ => Err(unexpected(&resp, CONTEXT)),
        }
    }

    /// `PATCH /api/v2/users/{id}` with any body; the user as Auth0 returns it, `None` on 404.
    pub async fn patch_user(
        &self,
        user_id: &str,
        body: &Value,
    ) -> Result<Option<Value>, UpstreamError> {
        let path = format!("/api/v2/users/{}", encode_segment(user_id));
        let resp = self.management("PATCH", &path, Some(body)).await?;
        match resp.status {
            200..=299 => parse(&resp, "PATCH /api/v2/users/{id}").map(Some),
            404 => Ok(None),
            400 => Err(rejected(&resp)),
            _ => Err(unexpected(&resp, "PATCH /api/v2/users/{id}")),
        }
    }

    /// `DELETE /api/v2/users/{id}`; `false` when there was no such user.
    pub async fn delete_user(&self, user_id: &str) -> Result<bool, UpstreamError> {
        let path = format!("/api/v2/users/{}", encode_segment(user_id));
        let resp = self.management("DELETE", &path, None).await?;
        match resp.status {
            // 204 has no body: never parse it.
            200..=299 => Ok(true),
            404 => Ok(false),
            400 => Err(rejected(&resp)),
            _ => Err(unexpected(&resp, "DELETE /api/v2/users/{id}")),
        }
    }

    /// A ticket request; returns the ticket URL, and never keeps a body holding one.
    async fn ticket(&self, path: &'static str, body: &Value) -> Result<String, UpstreamError> {
        let resp = self.management("POST", path, Some(body)).await?;
        match resp.status {
            200..=299 => {
                #[derive(Deserialize)]
                struct Ticket {
                    ticket: String,
                }
                // The body holds the ticket URL: never keep it in an error.
                serde_json::from_slice::<Ticket>(&resp.body)
                    .map(|t| t.ticket)
                    .map_err(|_| UpstreamError::Unexpected {
                        service: Service::Auth0,
                        status: resp.status,
                        body: "[ticket response withheld]".into(),
                        context: path,
                    })
            }
            400 => Err(rejected(&resp)),
            _ => Err(unexpected(&resp, path)),
        }
    }
}

/// `GET /api/v2/users?…`: a user search, which Auth0 times out after two seconds.
fn is_user_search(req: &HttpRequest) -> bool {
    req.method == "GET"
        && req
            .url
            .split_once("/api/v2/users?")
            .is_some_and(|(_, q)| q.contains("q="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn user_ids_are_encoded_as_one_path_segment() {
        assert_eq!(encode_segment("auth0|abc123"), "auth0%7Cabc123");
        assert_eq!(
            encode_segment("google-oauth2|1/2 x"),
            "google-oauth2%7C1%2F2%20x"
        );
        assert_eq!(encode_segment("a.b_c~d-e"), "a.b_c~d-e");
    }

    #[test]
    fn ticket_fields() {
        let t = ticket_body(
            "auth0|x",
            &TicketTarget::ResultUrl("https://a.example/w".into()),
            600,
            true,
        );
        assert_eq!(
            t,
            json!({"user_id": "auth0|x", "ttl_sec": 600, "mark_email_as_verified": true,
                   "includeEmailInRedirect": false, "result_url": "https://a.example/w"})
        );
        let t = ticket_body("auth0|x", &TicketTarget::ClientId("cid".into()), 600, false);
        assert_eq!(t["client_id"], "cid");
        assert_eq!(t["mark_email_as_verified"], false);
        assert!(t.get("result_url").is_none());
        assert!(ticket_body("u", &TicketTarget::Default, 60, true)
            .get("client_id")
            .is_none());
    }

    #[test]
    fn error_messages_from_every_shape() {
        let mgmt = r#"{"statusCode":400,"error":"Bad Request","message":"PasswordStrengthError: Password is too weak","errorCode":"invalid_password"}"#;
        assert_eq!(
            error_message(&resp(400, mgmt)),
            "PasswordStrengthError: Password is too weak"
        );
        // Recorded 409s and 404s have no errorCode.
        let conflict =
            r#"{"statusCode":409,"error":"Conflict","message":"The user already exists."}"#;
        assert_eq!(
            error_message(&resp(409, conflict)),
            "The user already exists."
        );
        let token = r#"{"error":"access_denied","error_description":"Unauthorized"}"#;
        assert_eq!(error_message(&resp(401, token)), "Unauthorized");
        assert_eq!(
            error_message(&resp(502, "<html>bad gateway</html>")),
            "HTTP 502"
        );
        assert_eq!(error_message(&resp(503, "")), "HTTP 503");
    }

    #[test]
    fn roles_from_bare_arrays_and_totals_objects() {
        let bare = json!([{"id": "rol_1", "name": "beta-tester-2"}, {"id": "rol_2", "name": "beta-tester"}]);
        assert_eq!(pick_role(&bare, "beta-tester"), Ok(Some("rol_2".into())));
        let totals = json!({"roles": [{"id": "rol_9", "name": "test-role14"}], "start": 0, "limit": 50, "total": 1});
        assert_eq!(pick_role(&totals, "test-role14"), Ok(Some("rol_9".into())));
        assert_eq!(
            pick_role(&totals, "Test-Role14"),
            Ok(None),
            "exact match only"
        );
        assert_eq!(pick_role(&json!({"unexpected": true}), "x"), Err(NotAList));
        assert_eq!(pick_role(&json!({"roles": {}}), "x"), Err(NotAList));
    }

    #[test]
    fn users_by_email_picks_the_configured_connection() {
        // Shape of recordings/users_by_email_200.json, plus a social account for the same address.
        let users: Vec<UserSummary> = serde_json::from_value(json!([
            {"user_id": "google-oauth2|1", "identities": [{"connection": "google-oauth2", "provider": "google-oauth2"}]},
            {"user_id": "auth0|63d17c4f62d6dbc216a6e8ed", "email": "chuck212@example.com",
             "identities": [{"connection": "Username-Password-Authentication", "user_id": "63d17c4f62d6dbc216a6e8ed", "provider": "auth0", "isSocial": false}],
             "app_metadata": {"facts": ["a"]}}
        ]))
        .unwrap();
        let u = pick_user(users.clone(), "Username-Password-Authentication").unwrap();
        assert_eq!(u.user_id, "auth0|63d17c4f62d6dbc216a6e8ed");
        assert_eq!(u.app_metadata.unwrap()["facts"], json!(["a"]));
        assert!(pick_user(users, "Other-DB").is_none());
    }
}
