//! The fakes every flow test runs over: a scripted Auth0 (and email API, siteverify), KV, a
//! clock, a deterministic random source and a rate limiter; `Svc::run` checks the invariants
//! (no token, ticket, secret or API key in any log line) on every call.
#![allow(dead_code)]

pub use std::cell::{Cell, RefCell};
pub use std::collections::{HashMap, VecDeque};
pub use std::future::Future;
pub use std::pin::Pin;
pub use std::rc::Rc;
pub use std::task::{Context, Poll};

pub use futures::executor::block_on;
pub use invite_core::config::ConfigError;
pub use invite_core::gate::{self, GateCall, GateReply, MemoryLedger, QueuedInvite};
pub use invite_core::platform::{StoreError, TransportError};
pub use invite_core::queue::{dead_letter, process, unreadable, waiting_for_config, Settle};
pub use invite_core::webhook::sign_for_test;
pub use invite_core::{
    handle, BodyError, BodySource, Clock, Config, Handled, HttpRequest, HttpResponse, IsolateCache,
    KvOp, RateLimit, Rng, Store, Transport,
};
pub use invite_core::{Gate, InviteQueue};
pub use serde_json::{json, Value};
pub const NOW: u64 = 1_795_729_183_000; // 2026-11-26T21:39:43Z
pub const KEY: &str = "backend-key-0123456789";

/// Resolves after being polled once more, so concurrent requests really interleave.
pub struct YieldOnce(pub bool);
impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

pub type Reply = Result<HttpResponse, TransportError>;

#[derive(Default)]
pub struct Fake {
    pub now: Cell<u64>,
    pub rng: Cell<u64>,
    pub kv: RefCell<HashMap<String, String>>,
    pub sent: RefCell<Vec<HttpRequest>>,
    pub sleeps: RefCell<Vec<u64>>,
    /// Scripted answers per "METHOD /path" (path without query), used before the defaults.
    pub script: RefCell<HashMap<String, VecDeque<Reply>>>,
    pub tokens_issued: Cell<u32>,
    pub yield_on_send: bool,
    /// Requests allowed per key by the fake rate limiter (`None`: no limiter).
    pub rate_limit: Cell<Option<u32>>,
    pub limited: RefCell<HashMap<String, u32>>,
    /// Logins of the existing user `auth0|existing1` (0: an unaccepted invite).
    pub existing_logins: Cell<u64>,
    /// Whether `auth0|existing1` was created by this service (`app_metadata.invited`).
    pub existing_invited: Cell<bool>,
    /// The gate's storage (the Durable Object's SQLite in the Worker).
    pub ledger: MemoryLedger,
    /// Messages on the invite queue: (deliver at ms, message).
    pub queue: RefCell<VecDeque<(u64, QueuedInvite)>>,
    /// Gate calls made, by op.
    pub gate_calls: RefCell<Vec<String>>,
    /// Nanoseconds spent in this fake's gate and queue (the native bench leaves them out of
    /// the core's own figure: the gate runs in the Durable Object, the queue is Cloudflare's).
    pub gate_and_queue_ns: Cell<u64>,
    /// Make the gate unreachable.
    pub gate_down: Cell<bool>,
    /// Gate calls (by op) that fail as if the Durable Object were unreachable (it resets on
    /// every deploy), while the others are answered.
    pub gate_fails: RefCell<Vec<&'static str>>,
    /// Gate calls (by op) that fail once each, as a Durable Object restarting under a call.
    pub gate_fails_once: RefCell<Vec<&'static str>>,
    /// Calls of this kind to let through before the gate answers one of them with this reply
    /// instead of its own (another version's answer, say).
    pub gate_odd_reply: RefCell<Option<(&'static str, usize, GateReply)>>,
    /// Queue sends that succeed before every later one fails (`None`: none fail), as when the
    /// account's daily queue operations are used up.
    pub queue_sends_left: Cell<Option<u32>>,
    /// Each queue send: its messages and the bytes of their bodies (JSON, as the shell sends).
    pub sends: RefCell<Vec<(usize, usize)>>,
    /// The timeout the core gave each send, in order.
    pub timeouts: RefCell<Vec<u64>>,
    /// How long Auth0 takes to answer, per "METHOD /path" (default: no time). An answer slower
    /// than the send's timeout is a transport error once the timeout has passed, as on Workers.
    pub answer_ms: RefCell<HashMap<String, u64>>,
    /// Management calls bearing one of these tokens get this answer, as Auth0 answers a token
    /// that lacks a scope (or was revoked) whatever the call.
    pub refused_tokens: RefCell<HashMap<String, (u16, Value)>>,
    /// Answer `POST /emails` as Resend documents its `Idempotency-Key`: the same key
    /// with the same payload answers the first answer without sending again; the same key
    /// with another payload is `409 invalid_idempotent_request` and sends nothing.
    pub resend_like: Cell<bool>,
    /// Payload of each idempotency key the provider has seen.
    pub email_keys: RefCell<HashMap<String, Vec<u8>>>,
    /// Emails the provider actually sent (the invitee's inbox).
    pub inbox: RefCell<Vec<Value>>,
    /// Emails whose body holds this text are sent, but their answer never comes back
    /// (a connection reset after the provider took the request).
    pub lose_email_answers_with: RefCell<Option<String>>,
}

pub fn json_resp(status: u16, body: Value) -> HttpResponse {
    HttpResponse::json(status, &body)
}

pub fn path_of(url: &str) -> String {
    // Drop scheme and host: the Auth0 tenant and the email API share the fake.
    let rest = match url.split_once("://") {
        Some((_, after)) => after.find('/').map(|i| &after[i..]).unwrap_or("/"),
        None => url,
    };
    rest.split('?').next().unwrap_or("").to_string()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Fake {
    pub fn new() -> Self {
        let f = Fake::default();
        f.now.set(NOW);
        f.rng.set(0x2545_F491_4F6C_DD1D);
        f.existing_invited.set(true);
        f
    }

    /// Makes the existing user `auth0|existing1` one that has logged in.
    pub fn existing_user_logged_in(&self) {
        self.existing_logins.set(3);
    }

    pub fn script(&self, route: &str, replies: Vec<Reply>) {
        self.script
            .borrow_mut()
            .entry(route.to_string())
            .or_default()
            .extend(replies);
    }

    pub fn default_reply(&self, req: &HttpRequest) -> HttpResponse {
        let path = path_of(&req.url);
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        match (req.method.as_str(), path.as_str()) {
            ("POST", "/oauth/token") => {
                self.tokens_issued.set(self.tokens_issued.get() + 1);
                json_resp(
                    200,
                    json!({"access_token": format!("tok-{}", self.tokens_issued.get()), "expires_in": 86400, "token_type": "Bearer"}),
                )
            }
            ("GET", "/api/v2/roles") => {
                let name = query_param(&req.url, "name_filter").unwrap_or_default();
                // Like Auth0: a case-insensitive filter that may return near matches.
                json_resp(
                    200,
                    json!([
                        {"id": format!("rol_{name}-admin"), "name": format!("{name}-admin")},
                        {"id": format!("rol_{name}"), "name": name},
                    ]),
                )
            }
            ("POST", "/api/v2/roles") => json_resp(
                200,
                json!({"id": format!("rol_new_{}", body["name"].as_str().unwrap_or("")), "name": body["name"]}),
            ),
            ("POST", "/api/v2/users") => json_resp(
                201,
                json!({
                    "user_id": "auth0|abc123", "email": body["email"],
                    "identities": [{"connection": body["connection"], "user_id": "abc123", "provider": "auth0", "isSocial": false}]
                }),
            ),
            ("GET", "/api/v2/users-by-email") => {
                let mut existing = json!({"user_id": "auth0|existing1", "identities": [{"connection": "Username-Password-Authentication"}],
                     "app_metadata": {"roles": ["early-access"], "plan": "x"}});
                if self.existing_invited.get() {
                    existing["app_metadata"]["invited"] = json!(true);
                }
                let logins = self.existing_logins.get();
                if logins > 0 {
                    existing["logins_count"] = json!(logins);
                    existing["last_login"] = json!("2026-11-20T10:00:00.000Z");
                }
                json_resp(
                    200,
                    json!([
                        {"user_id": "google-oauth2|999", "identities": [{"connection": "google-oauth2"}]},
                        existing,
                    ]),
                )
            }
            ("POST", p) if p.ends_with("/roles") => HttpResponse {
                status: 204,
                headers: vec![(
                    "content-type".into(),
                    "application/json; charset=utf-8".into(),
                )],
                body: vec![],
            },
            ("PATCH", _) => json_resp(200, json!({"user_id": "auth0|existing1"})),
            ("POST", "/api/v2/tickets/password-change") => json_resp(
                201,
                json!({"ticket": "https://acme.eu.auth0.com/u/reset-password?ticket=SECRETTICKET#"}),
            ),
            ("POST", "/dbconnections/change_password") => HttpResponse {
                status: 200,
                headers: vec![],
                body: b"We've just sent you an email to reset your password.".to_vec(),
            },
            ("POST", "/emails") => json_resp(200, json!({"id": "email-1"})),
            ("POST", "/turnstile/v0/siteverify") => {
                json_resp(200, json!({"success": true, "error-codes": []}))
            }
            _ => json_resp(
                404,
                json!({"statusCode": 404, "error": "Not Found", "message": "Not Found"}),
            ),
        }
    }

    pub fn routes(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .map(|r| format!("{} {}", r.method, path_of(&r.url)))
            .collect()
    }

    pub fn count(&self, route: &str) -> usize {
        self.routes().iter().filter(|r| *r == route).count()
    }

    /// Takes every queued message, as one consumer invocation would a batch.
    pub fn take_queued(&self) -> Vec<QueuedInvite> {
        self.queue.borrow_mut().drain(..).map(|(_, m)| m).collect()
    }

    pub fn management_calls(&self) -> usize {
        self.routes()
            .iter()
            .filter(|r| r.contains("/api/v2/"))
            .count()
    }

    pub fn body_of(&self, route: &str) -> Value {
        let sent = self.sent.borrow();
        let req = sent
            .iter()
            .find(|r| format!("{} {}", r.method, path_of(&r.url)) == route)
            .unwrap_or_else(|| panic!("no {route}"));
        serde_json::from_slice(&req.body).expect("json body")
    }
}

impl Transport for Fake {
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, TransportError> {
        if self.yield_on_send {
            YieldOnce(false).await;
        }
        self.timeouts.borrow_mut().push(timeout_ms);
        self.sent.borrow_mut().push(req.clone());
        let route = format!("{} {}", req.method, path_of(&req.url));
        let takes = self.answer_ms.borrow().get(&route).copied().unwrap_or(0);
        if takes >= timeout_ms {
            self.now.set(self.now.get() + timeout_ms);
            return Err(TransportError(format!("no answer within {timeout_ms} ms")));
        }
        self.now.set(self.now.get() + takes);
        if path_of(&req.url).starts_with("/api/v2/") {
            let bearer = req
                .header_value("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            if let Some((status, body)) =
                bearer.and_then(|t| self.refused_tokens.borrow().get(&t).cloned())
            {
                return Ok(json_resp(status, body));
            }
        }
        if self.resend_like.get() && route == "POST /emails" {
            return self.resend_like_reply(&req);
        }
        let scripted = self
            .script
            .borrow_mut()
            .get_mut(&route)
            .and_then(VecDeque::pop_front);
        match scripted {
            Some(reply) => reply,
            None => Ok(self.default_reply(&req)),
        }
    }
}

impl Fake {
    /// Resend's documented idempotency semantics, with answers optionally lost.
    fn resend_like_reply(&self, req: &HttpRequest) -> Reply {
        let key = req.header_value("idempotency-key").map(str::to_string);
        let seen = key
            .as_ref()
            .and_then(|k| self.email_keys.borrow().get(k).cloned());
        let reply = match seen {
            Some(prev) if prev == req.body => json_resp(200, json!({"id": "email-first"})),
            Some(_) => json_resp(
                409,
                json!({"statusCode": 409, "name": "invalid_idempotent_request",
                       "message": "This idempotency key has already been used on a request that had a different payload."}),
            ),
            None => {
                if let Some(k) = key {
                    self.email_keys.borrow_mut().insert(k, req.body.clone());
                }
                self.inbox
                    .borrow_mut()
                    .push(serde_json::from_slice(&req.body).unwrap_or(Value::Null));
                json_resp(200, json!({"id": "email-first"}))
            }
        };
        let lost = self
            .lose_email_answers_with
            .borrow()
            .as_deref()
            .is_some_and(|m| String::from_utf8_lossy(&req.body).contains(m));
        if lost {
            return Err(TransportError(
                "connection reset after the request was sent".into(),
            ));
        }
        Ok(reply)
    }
}

impl Store for Fake {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.kv.borrow().get(key).cloned())
    }
    async fn apply(&self, op: &KvOp) -> Result<(), StoreError> {
        match op {
            KvOp::Put {
                key,
                value,
                ttl_sec,
            } => {
                assert!(*ttl_sec >= 60, "KV rejects expiration_ttl below 60");
                self.kv.borrow_mut().insert(key.clone(), value.clone());
            }
        }
        Ok(())
    }
}

impl Clock for Fake {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
    async fn sleep(&self, ms: u64) {
        // Time passes only once the timer is polled again, so a racing send can win. Sleeps
        // that overlap end at their own instant (they don't add up).
        let until = self.now.get() + ms;
        YieldOnce(false).await;
        self.sleeps.borrow_mut().push(ms);
        self.now.set(self.now.get().max(until));
    }
}

/// Adds the time from its making to its drop to a counter.
struct Timed<'a>(&'a Cell<u64>, std::time::Instant);

impl<'a> Timed<'a> {
    fn start(counter: &'a Cell<u64>) -> Self {
        Timed(counter, std::time::Instant::now())
    }
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        self.0
            .set(self.0.get() + self.1.elapsed().as_nanos() as u64);
    }
}

impl Gate for Fake {
    async fn gate(&self, call: GateCall) -> Result<GateReply, String> {
        let _timed = Timed::start(&self.gate_and_queue_ns);
        if self.gate_down.get() {
            return Err("gate down".into());
        }
        // The call's name: its one key on the wire (`{"reserve":{…}}`).
        let op = match serde_json::to_value(&call).unwrap() {
            serde_json::Value::Object(m) => m.keys().next().unwrap().clone(),
            serde_json::Value::String(s) => s,
            other => panic!("a gate call is an object or a name: {other}"),
        };
        if self.gate_fails.borrow().contains(&op.as_str()) {
            return Err(format!("gate: {op} failed"));
        }
        let once = self.gate_fails_once.borrow().iter().position(|o| *o == op);
        if let Some(i) = once {
            self.gate_fails_once.borrow_mut().remove(i);
            return Err(format!("gate: {op} failed once"));
        }
        let mut odd = self.gate_odd_reply.borrow_mut();
        if let Some((_, skip, _)) = odd.as_mut().filter(|(o, ..)| *o == op) {
            if *skip == 0 {
                let (o, _, reply) = odd.take().unwrap();
                self.gate_calls.borrow_mut().push(o.to_string());
                return Ok(reply);
            }
            *skip -= 1;
        }
        drop(odd);
        self.gate_calls.borrow_mut().push(op);
        gate::try_handle(call, self.now.get(), &self.ledger)
    }
}

impl InviteQueue for Fake {
    async fn enqueue(&self, messages: &[QueuedInvite], delay_sec: u32) -> Result<(), String> {
        let _timed = Timed::start(&self.gate_and_queue_ns);
        if let Some(left) = self.queue_sends_left.get() {
            if left == 0 {
                return Err("Queue send failed: Too Many Requests".into());
            }
            self.queue_sends_left.set(Some(left - 1));
        }
        let bytes = messages
            .iter()
            .map(|m| serde_json::to_vec(m).unwrap().len())
            .sum();
        self.sends.borrow_mut().push((messages.len(), bytes));
        let at = self.now.get() + u64::from(delay_sec) * 1000;
        self.queue
            .borrow_mut()
            .extend(messages.iter().map(|m| (at, m.clone())));
        Ok(())
    }
}

impl RateLimit for Fake {
    async fn allow(&self, key: &str) -> Option<bool> {
        let limit = self.rate_limit.get()?;
        let mut hits = self.limited.borrow_mut();
        let n = hits.entry(key.to_string()).or_insert(0);
        *n += 1;
        Some(*n <= limit)
    }
}

impl Rng for Fake {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        for b in buf {
            let mut x = self.rng.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng.set(x);
            *b = (x >> 32) as u8;
        }
        Ok(())
    }
}

pub fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut vars: HashMap<String, String> = [
        ("AUTH0_DOMAIN", "acme.eu.auth0.com"),
        ("AUTH0_CLIENT_ID", "client-1"),
        ("AUTH0_CLIENT_SECRET", "client-secret-value"),
        (
            "INVITE_API_KEYS",
            &format!("backend:{KEY},admin:admin-key-0123456789"),
        ),
        ("ALLOWED_ROLES", "beta-tester,early-access"),
        ("DEFAULT_ROLES", "beta-tester"),
        ("RESULT_URL", "https://app.example.com/welcome"),
        (
            "RESULT_URL_ALLOWLIST",
            "https://app.example.com,https://other.example.com",
        ),
        ("APP_METADATA_KEYS", "plan"),
        // A paid tenant's rate, so that only the pacing tests wait for slots.
        ("AUTH0_MGMT_RPS", "1000"),
        ("AUTH0_MGMT_BURST", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(|k| vars.get(k).cloned(), invite_core::http::host_parse_url)
}

pub fn invite_req(body: &Value) -> HttpRequest {
    let mut r = HttpRequest::new("POST", "/v1/invites")
        .header("Authorization", format!("Bearer {KEY}"))
        .header("Content-Type", "application/json");
    r.body = body.to_string().into_bytes();
    r
}

pub struct Svc {
    pub fake: Fake,
    pub cfg: Result<Config, ConfigError>,
    pub cache: Rc<IsolateCache>,
}

impl Svc {
    pub fn new(extra: &[(&str, &str)]) -> Self {
        Svc {
            fake: Fake::new(),
            cfg: config(extra),
            cache: Rc::new(IsolateCache::default()),
        }
    }

    /// Handles a request as the shell does, then runs its deferred KV writes, as `wait_until`
    /// would.
    pub fn serve(&self, mut req: HttpRequest) -> Handled {
        // The body goes in through the body port, as the shell passes it.
        let body = std::mem::take(&mut req.body);
        // Only the headers the route declares, as the shell copies them.
        let wanted = invite_core::api::inbound_headers(&req.method, &req.url);
        req.headers
            .retain(|(k, _)| wanted.iter().any(|w| k.eq_ignore_ascii_case(w)));
        let handled = block_on(handle(req, body, &self.cfg, &self.fake, &self.cache));
        for op in &handled.deferred {
            block_on(self.fake.apply(op)).expect("kv");
        }
        handled
    }

    /// [`Svc::serve`], then the answer's body parsed and the invariants checked.
    pub fn run(&self, req: HttpRequest) -> (Handled, Value) {
        let handled = self.serve(req);
        let body = serde_json::from_slice(&handled.response.body).unwrap_or(Value::Null);
        assert_eq!(
            handled.quiet,
            handled.log.is_empty(),
            "a line exactly when the answer is logged: {}",
            handled.log
        );
        assert!(
            !handled.log.contains("tok-"),
            "token in log: {}",
            handled.log
        );
        assert!(
            !handled.log.contains("SECRETTICKET"),
            "ticket in log: {}",
            handled.log
        );
        assert!(
            !handled.log.contains("client-secret-value"),
            "secret in log"
        );
        assert!(!handled.log.contains(KEY), "api key in log");
        (handled, body)
    }

    pub fn invite(&self, body: Value) -> (Handled, Value) {
        self.run(invite_req(&body))
    }

    /// Runs the queue consumer until the queue is empty, as Cloudflare Queues would deliver:
    /// retries after their delay, and after `max_retries` (3) failed deliveries a message goes
    /// to the dead-letter consumer. Returns the consumer's log lines.
    pub fn drain(&self) -> Vec<String> {
        let mut logs = Vec::new();
        let mut deliveries: HashMap<String, u32> = HashMap::new();
        for _ in 0..10_000 {
            let next = {
                let mut q = self.fake.queue.borrow_mut();
                let i = (0..q.len()).min_by_key(|i| q[*i].0);
                i.and_then(|i| q.remove(i))
            };
            let Some((at, msg)) = next else { break };
            if at > self.fake.now.get() {
                self.fake.now.set(at);
            }
            let cfg = self.cfg.as_ref().expect("valid config");
            let (settle, log) = block_on(process(&msg, cfg, &self.fake, &self.cache));
            assert!(
                !log.contains("SECRETTICKET") && !log.contains("tok-"),
                "{log}"
            );
            logs.push(log);
            let n = deliveries.entry(msg.id.clone()).or_default();
            match settle {
                Settle::Ack => {}
                Settle::Defer { delay_sec } => {
                    block_on(self.fake.enqueue(&[msg], delay_sec)).unwrap();
                }
                Settle::Retry { delay_sec } => {
                    *n += 1;
                    if *n > 3 {
                        // (A dead letter the gate could not record is retried by the DLQ's
                        // consumer; here the gate always answers.)
                        logs.push(block_on(dead_letter(&msg, &self.fake)).1);
                    } else {
                        block_on(self.fake.enqueue(&[msg], delay_sec)).unwrap();
                    }
                }
            }
        }
        logs
    }

    /// An invite's status, as the gate holds it.
    pub fn status(&self, id: &str) -> Value {
        let reply = gate::handle(
            GateCall::Status { id: id.to_string() },
            self.fake.now.get(),
            &self.fake.ledger,
        );
        match reply {
            GateReply::Status { invite } => serde_json::to_value(invite).unwrap(),
            other => panic!("a status call answers a status: {other:?}"),
        }
    }
}

pub fn ada() -> Value {
    json!({"email": "Ada@Example.com", "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
           "roles": ["beta-tester"], "user_metadata": {"preferred_language": "en"}, "app_metadata": {"plan": "beta"},
           "result_url": "https://app.example.com/welcome", "ticket_ttl_sec": 86400})
}

pub fn error_code(h: &Handled, body: &Value) -> (u16, String) {
    (
        h.response.status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}
