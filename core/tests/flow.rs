//! The invite service end to end on the host: the real core over a fake transport (a
//! scripted Auth0), a fake KV store, a fake clock and a deterministic random source.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::executor::block_on;
use invite_core::config::ConfigError;
use invite_core::platform::{StoreError, TransportError};
use invite_core::webhook::sign_for_test;
use invite_core::{
    handle, Clock, Config, Handled, HttpRequest, HttpResponse, IsolateCache, KvOp, RateLimit, Rng,
    Store, Transport,
};
use serde_json::{json, Value};

const NOW: u64 = 1_795_729_183_000; // 2026-11-26T21:39:43Z
const KEY: &str = "backend-key-0123456789";

/// Resolves after being polled once more, so concurrent requests really interleave.
struct YieldOnce(bool);
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

type Reply = Result<HttpResponse, TransportError>;

#[derive(Default)]
struct Fake {
    now: Cell<u64>,
    rng: Cell<u64>,
    kv: RefCell<HashMap<String, String>>,
    sent: RefCell<Vec<HttpRequest>>,
    sleeps: RefCell<Vec<u64>>,
    /// Scripted answers per "METHOD /path" (path without query), used before the defaults.
    script: RefCell<HashMap<String, VecDeque<Reply>>>,
    tokens_issued: Cell<u32>,
    yield_on_send: bool,
    /// Requests allowed per key by the fake rate limiter (`None`: no limiter).
    rate_limit: Cell<Option<u32>>,
    limited: RefCell<HashMap<String, u32>>,
}

fn json_resp(status: u16, body: Value) -> HttpResponse {
    HttpResponse::json(status, &body)
}

fn path_of(url: &str) -> String {
    // Drop scheme and host: the Auth0 tenant and the email API share the fake.
    let rest = match url.split_once("://") {
        Some((_, after)) => after.find('/').map(|i| &after[i..]).unwrap_or("/"),
        None => url,
    };
    rest.split('?').next().unwrap_or("").to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Fake {
    fn new() -> Self {
        let f = Fake::default();
        f.now.set(NOW);
        f.rng.set(0x2545_F491_4F6C_DD1D);
        f
    }

    fn script(&self, route: &str, replies: Vec<Reply>) {
        self.script
            .borrow_mut()
            .entry(route.to_string())
            .or_default()
            .extend(replies);
    }

    fn default_reply(&self, req: &HttpRequest) -> HttpResponse {
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
            ("GET", "/api/v2/users-by-email") => json_resp(
                200,
                json!([
                    {"user_id": "google-oauth2|999", "identities": [{"connection": "google-oauth2"}]},
                    {"user_id": "auth0|existing1", "identities": [{"connection": "Username-Password-Authentication"}],
                     "app_metadata": {"roles": ["early-access"], "plan": "x"}},
                ]),
            ),
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

    fn routes(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .map(|r| format!("{} {}", r.method, path_of(&r.url)))
            .collect()
    }

    fn count(&self, route: &str) -> usize {
        self.routes().iter().filter(|r| *r == route).count()
    }

    fn management_calls(&self) -> usize {
        self.routes()
            .iter()
            .filter(|r| r.contains("/api/v2/"))
            .count()
    }

    fn body_of(&self, route: &str) -> Value {
        let sent = self.sent.borrow();
        let req = sent
            .iter()
            .find(|r| format!("{} {}", r.method, path_of(&r.url)) == route)
            .unwrap_or_else(|| panic!("no {route}"));
        serde_json::from_slice(&req.body).expect("json body")
    }
}

impl Transport for Fake {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        if self.yield_on_send {
            YieldOnce(false).await;
        }
        self.sent.borrow_mut().push(req.clone());
        let route = format!("{} {}", req.method, path_of(&req.url));
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
            KvOp::Delete { key } => {
                self.kv.borrow_mut().remove(key);
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
        // Time passes only once the timer is polled again, so a racing send can win.
        YieldOnce(false).await;
        self.sleeps.borrow_mut().push(ms);
        self.now.set(self.now.get() + ms);
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

fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
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
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(|k| vars.get(k).cloned())
}

fn invite_req(body: &Value) -> HttpRequest {
    let mut r = HttpRequest::new("POST", "/v1/invites")
        .header("Authorization", format!("Bearer {KEY}"))
        .header("Content-Type", "application/json");
    r.body = body.to_string().into_bytes();
    r
}

struct Svc {
    fake: Fake,
    cfg: Result<Config, ConfigError>,
    cache: Rc<IsolateCache>,
}

impl Svc {
    fn new(extra: &[(&str, &str)]) -> Self {
        Svc {
            fake: Fake::new(),
            cfg: config(extra),
            cache: Rc::new(IsolateCache::default()),
        }
    }

    /// Handles a request, then runs its deferred KV writes, as `wait_until` would.
    fn run(&self, req: HttpRequest) -> (Handled, Value) {
        let handled = block_on(handle(req, &self.cfg, &self.fake, &self.cache));
        for op in &handled.deferred {
            block_on(self.fake.apply(op)).expect("kv");
        }
        let body = serde_json::from_slice(&handled.response.body).unwrap_or(Value::Null);
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

    fn invite(&self, body: Value) -> (Handled, Value) {
        self.run(invite_req(&body))
    }
}

fn ada() -> Value {
    json!({"email": "Ada@Example.com", "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
           "roles": ["beta-tester"], "user_metadata": {"preferred_language": "en"}, "app_metadata": {"plan": "beta"},
           "result_url": "https://app.example.com/welcome", "ticket_ttl_sec": 86400})
}

fn error_code(h: &Handled, body: &Value) -> (u16, String) {
    (
        h.response.status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn happy_path_creates_user_assigns_roles_and_returns_ticket() {
    let svc = Svc::new(&[]);
    let (h, body) = svc.invite(ada());
    assert_eq!(h.response.status, 201, "{body}");
    assert_eq!(body["user_id"], "auth0|abc123");
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["created"], true);
    assert_eq!(body["roles"], json!(["beta-tester"]));
    assert_eq!(
        body["ticket_url"],
        "https://acme.eu.auth0.com/u/reset-password?ticket=SECRETTICKET#"
    );
    assert_eq!(body["ticket_expires_at"], "2026-11-27T21:39:43Z");
    assert_eq!(h.response.header_value("cache-control"), Some("no-store"));

    assert_eq!(
        svc.fake.routes(),
        vec![
            "POST /oauth/token",
            "GET /api/v2/roles",
            "POST /api/v2/users",
            "POST /api/v2/users/auth0%7Cabc123/roles",
            "POST /api/v2/tickets/password-change",
        ]
    );
    let grant = svc.fake.body_of("POST /oauth/token");
    assert_eq!(grant["grant_type"], "client_credentials");
    assert_eq!(grant["client_id"], "client-1");
    assert_eq!(grant["audience"], "https://acme.eu.auth0.com/api/v2/");

    let user = svc.fake.body_of("POST /api/v2/users");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["connection"], "Username-Password-Authentication");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["verify_email"], false);
    assert_eq!(user["given_name"], "Ada");
    assert_eq!(user["user_metadata"], json!({"preferred_language": "en"}));
    assert_eq!(user["app_metadata"]["plan"], "beta");
    assert_eq!(user["app_metadata"]["invited"], true);
    assert_eq!(user["app_metadata"]["invited_by"], "backend");
    assert_eq!(user["app_metadata"]["invited_at"], "2026-11-26T21:39:43Z");
    let pw = user["password"].as_str().unwrap();
    assert!(pw.len() >= 32 && invite_core::password::meets_policy(pw));

    assert_eq!(
        svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles"),
        json!({"roles": ["rol_beta-tester"]})
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/tickets/password-change"),
        json!({"user_id": "auth0|abc123", "result_url": "https://app.example.com/welcome", "ttl_sec": 86400,
               "mark_email_as_verified": true, "includeEmailInRedirect": false})
    );
    // The token and the role id went to KV after the response.
    let puts: Vec<_> = h.deferred.iter().map(|op| op.key().to_string()).collect();
    assert!(
        puts.iter().any(|k| k.starts_with("auth0-token:v1:")),
        "{puts:?}"
    );
    assert!(
        puts.iter()
            .any(|k| k.starts_with("auth0-role:v1:") && k.ends_with(":beta-tester")),
        "{puts:?}"
    );
    assert!(h.log.contains("\"token\":\"fetched\""), "{}", h.log);
}

#[test]
fn warm_invites_make_three_management_calls_and_no_token_request() {
    let svc = Svc::new(&[]);
    svc.invite(ada());
    let before = svc.fake.sent.borrow().len();
    let (h, _) = svc.invite(json!({"email": "grace@example.com"}));
    assert_eq!(h.response.status, 201);
    let after: Vec<String> = svc.fake.routes()[before..].to_vec();
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(!after.iter().any(|r| r.contains("/oauth/token")));
    assert!(h.log.contains("\"token\":\"memory\""), "{}", h.log);
}

#[test]
fn a_new_isolate_reads_the_token_and_roles_from_kv() {
    let svc = Svc::new(&[]);
    svc.invite(ada());
    let cold = Svc {
        fake: Fake::new(),
        cfg: config(&[]),
        cache: Rc::new(IsolateCache::default()),
    };
    *cold.fake.kv.borrow_mut() = svc.fake.kv.borrow().clone();
    let (h, _) = cold.invite(json!({"email": "grace@example.com"}));
    assert_eq!(h.response.status, 201);
    assert_eq!(cold.fake.count("POST /oauth/token"), 0);
    assert_eq!(cold.fake.count("GET /api/v2/roles"), 0);
    assert_eq!(cold.fake.management_calls(), 3);
    assert!(h.log.contains("\"token\":\"kv\""), "{}", h.log);
}

#[test]
fn a_token_in_the_refresh_window_is_replaced() {
    let svc = Svc::new(&[("TOKEN_REFRESH_MARGIN_SEC", "600")]);
    svc.invite(ada());
    assert_eq!(svc.fake.tokens_issued.get(), 1);
    svc.fake.now.set(NOW + (86_400 - 601) * 1000);
    svc.invite(json!({"email": "b@example.com"}));
    assert_eq!(svc.fake.tokens_issued.get(), 1, "still fresh");
    svc.fake.now.set(NOW + (86_400 - 599) * 1000);
    svc.invite(json!({"email": "c@example.com"}));
    assert_eq!(svc.fake.tokens_issued.get(), 2, "refresh window");
    svc.fake.now.set(NOW + 3 * 86_400 * 1000);
    svc.invite(json!({"email": "d@example.com"}));
    assert_eq!(svc.fake.tokens_issued.get(), 3, "expired");
}

#[test]
fn concurrent_requests_share_one_token_request() {
    let mut fake = Fake::new();
    fake.yield_on_send = true;
    let svc = Svc {
        fake,
        cfg: config(&[]),
        cache: Rc::new(IsolateCache::default()),
    };
    let reqs: Vec<_> = (0..5)
        .map(|i| invite_req(&json!({"email": format!("u{i}@example.com")})))
        .collect();
    let results = block_on(futures::future::join_all(
        reqs.into_iter()
            .map(|r| handle(r, &svc.cfg, &svc.fake, &svc.cache)),
    ));
    assert!(results.iter().all(|h| h.response.status == 201));
    assert_eq!(svc.fake.count("POST /oauth/token"), 1);
}

#[test]
fn revoked_token_is_dropped_from_both_tiers_and_refetched_once() {
    let svc = Svc::new(&[]);
    svc.invite(ada());
    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(
            401,
            json!({"statusCode": 401, "error": "Unauthorized", "message": "Invalid token"}),
        ))],
    );
    let (h, body) = svc.invite(json!({"email": "grace@example.com"}));
    assert_eq!(h.response.status, 201, "{body}");
    assert_eq!(svc.fake.tokens_issued.get(), 2);
    assert_eq!(svc.fake.count("POST /api/v2/users"), 3); // ada, the 401, the retry
    let ops: Vec<&str> = h
        .deferred
        .iter()
        .map(|op| match op {
            KvOp::Delete { .. } => "delete",
            KvOp::Put { key, .. } if key.starts_with("auth0-token") => "put-token",
            _ => "other",
        })
        .collect();
    assert_eq!(ops, vec!["delete", "put-token"]);
    let stored = svc
        .fake
        .kv
        .borrow()
        .values()
        .find(|v| v.contains("tok-"))
        .cloned()
        .unwrap();
    assert!(stored.contains("tok-2"));
}

#[test]
fn a_second_401_is_reported_as_upstream_auth() {
    let svc = Svc::new(&[]);
    let unauthorized = || {
        Ok(json_resp(
            401,
            json!({"statusCode": 401, "error": "Unauthorized", "message": "Invalid token"}),
        ))
    };
    svc.fake
        .script("POST /api/v2/users", vec![unauthorized(), unauthorized()]);
    let (h, body) = svc.invite(ada());
    assert_eq!(error_code(&h, &body), (502, "upstream_auth".into()));
    assert_eq!(svc.fake.tokens_issued.get(), 2);
}

#[test]
fn missing_scope_and_bad_credentials_explain_what_to_fix() {
    let svc = Svc::new(&[]);
    svc.fake.script("GET /api/v2/roles", vec![Ok(json_resp(403, json!({"statusCode": 403, "error": "Forbidden", "message": "Insufficient scope, expected any of: read:roles", "errorCode": "insufficient_scope"})))]);
    let (h, body) = svc.invite(ada());
    assert_eq!(error_code(&h, &body), (502, "upstream_auth".into()));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("create:user_tickets"));
    assert!(h.log.contains("Insufficient scope"), "{}", h.log);
    assert_eq!(svc.fake.count("POST /api/v2/users"), 0);

    let svc = Svc::new(&[]);
    svc.fake.script(
        "POST /oauth/token",
        vec![Ok(json_resp(
            401,
            json!({"error": "access_denied", "error_description": "Unauthorized"}),
        ))],
    );
    let (h, body) = svc.invite(ada());
    assert_eq!(error_code(&h, &body), (502, "upstream_auth".into()));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("AUTH0_CLIENT_SECRET"));
    assert!(!body.to_string().contains("client-secret-value"));
}

#[test]
fn existing_user_is_found_in_the_configured_connection() {
    let svc = Svc::new(&[]);
    // Real 409s may lack errorCode: the status decides.
    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(
            409,
            json!({"statusCode": 409, "error": "Conflict", "message": "The user already exists."}),
        ))],
    );
    let (h, body) = svc.invite(ada());
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(body["created"], false);
    assert_eq!(body["user_id"], "auth0|existing1");
    assert!(svc.fake.sent.borrow().iter().any(|r| r
        .url
        .ends_with("/api/v2/users-by-email?email=ada%40example.com")));
    assert_eq!(
        svc.fake.count("POST /api/v2/users/auth0%7Cexisting1/roles"),
        1
    );
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 1);
}

#[test]
fn rate_limits_are_waited_out_within_the_deadline() {
    let svc = Svc::new(&[]);
    let limited = |reset: u64| {
        Ok(json_resp(429, json!({"statusCode": 429, "error": "Too Many Requests", "message": "Global limit has been reached", "errorCode": "too_many_requests"}))
        .with_header("x-ratelimit-limit", "2").with_header("x-ratelimit-remaining", "0").with_header("x-ratelimit-reset", reset.to_string()))
    };
    svc.fake.script(
        "POST /api/v2/users",
        vec![limited(NOW / 1000 + 2), limited(NOW / 1000 + 3)],
    );
    svc.fake.script(
        "POST /api/v2/tickets/password-change",
        vec![Ok(json_resp(429, json!({})).with_header("retry-after", "1"))],
    );
    let (h, body) = svc.invite(ada());
    assert_eq!(h.response.status, 201, "{body}");
    let sleeps = svc.fake.sleeps.borrow().clone();
    assert_eq!(
        &sleeps[..2],
        &[2_000, 1_000],
        "X-RateLimit-Reset, then the next reset"
    );
    assert!(sleeps.contains(&1_000), "Retry-After");
    assert!(svc.fake.now.get() - NOW < 10_000);
}

#[test]
fn a_rate_limit_that_outlasts_the_deadline_gives_503_with_retry_after() {
    let svc = Svc::new(&[("UPSTREAM_DEADLINE_MS", "3000")]);
    let limited = || Ok(json_resp(429, json!({})).with_header("retry-after", "2"));
    svc.fake
        .script("POST /api/v2/users", (0..10).map(|_| limited()).collect());
    let (h, body) = svc.invite(ada());
    assert_eq!(error_code(&h, &body), (503, "upstream_rate_limited".into()));
    assert_eq!(h.response.header_value("retry-after"), Some("2"));
    assert_eq!(
        svc.fake.count("POST /api/v2/users"),
        2,
        "one retry fitted in 3 s"
    );
    assert!(svc.fake.now.get() - NOW <= 3_000);
}

#[test]
fn server_errors_and_network_failures_are_retried_then_reported() {
    let svc = Svc::new(&[]);
    svc.fake.script(
        "POST /api/v2/users",
        vec![
            Ok(json_resp(503, json!({}))),
            Err(TransportError("connection reset".into())),
        ],
    );
    let (h, _) = svc.invite(ada());
    assert_eq!(h.response.status, 201);
    assert_eq!(svc.fake.count("POST /api/v2/users"), 3);

    let svc = Svc::new(&[("UPSTREAM_DEADLINE_MS", "1500")]);
    svc.fake.script(
        "POST /api/v2/users",
        (0..20).map(|_| Ok(json_resp(500, json!({})))).collect(),
    );
    let (h, body) = svc.invite(ada());
    assert_eq!(error_code(&h, &body), (502, "upstream_unavailable".into()));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("retrying the same invite is safe"));
    assert!(svc.fake.now.get() - NOW <= 1_500);
}

#[test]
fn auth0_400_becomes_invite_rejected_with_its_message() {
    let svc = Svc::new(&[]);
    svc.fake.script("POST /api/v2/users", vec![Ok(json_resp(400, json!({"statusCode": 400, "error": "Bad Request", "message": "PasswordStrengthError: Password is too weak", "errorCode": "invalid_password"})))]);
    let (h, body) = svc.invite(ada());
    assert_eq!(error_code(&h, &body), (422, "invite_rejected".into()));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("PasswordStrengthError"));
}

#[test]
fn missing_roles_are_created_only_when_allowed() {
    let svc = Svc::new(&[]);
    svc.fake
        .script("GET /api/v2/roles", vec![Ok(json_resp(200, json!([])))]);
    let (h, body) = svc.invite(ada());
    assert_eq!(error_code(&h, &body), (422, "role_not_found".into()));
    assert_eq!(
        svc.fake.count("POST /api/v2/users"),
        0,
        "nothing created before roles resolve"
    );

    let svc = Svc::new(&[("AUTO_CREATE_ROLES", "true")]);
    svc.fake.script(
        "GET /api/v2/roles",
        vec![Ok(json_resp(
            200,
            json!({"roles": [], "start": 0, "limit": 50, "total": 0}),
        ))],
    );
    let (h, _) = svc.invite(ada());
    assert_eq!(h.response.status, 201);
    assert_eq!(
        svc.fake.body_of("POST /api/v2/roles")["name"],
        "beta-tester"
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles"),
        json!({"roles": ["rol_new_beta-tester"]})
    );
}

#[test]
fn app_metadata_role_mode_stores_names_and_merges_on_reinvite() {
    let svc = Svc::new(&[("ROLE_MODE", "app_metadata")]);
    let (h, _) = svc.invite(ada());
    assert_eq!(h.response.status, 201);
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users")["app_metadata"]["roles"],
        json!(["beta-tester"])
    );
    assert_eq!(svc.fake.count("GET /api/v2/roles"), 0);
    assert!(!svc.fake.routes().iter().any(|r| r.ends_with("/roles")));

    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(409, json!({"statusCode": 409})))],
    );
    let (h, body) = svc.invite(ada());
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(
        svc.fake.body_of("PATCH /api/v2/users/auth0%7Cexisting1"),
        json!({"app_metadata": {"roles": ["early-access", "beta-tester"]}})
    );
}

#[test]
fn ticket_goes_to_the_configured_client_when_there_is_no_result_url() {
    let svc = Svc::new(&[
        ("RESULT_URL", ""),
        ("RESULT_URL_ALLOWLIST", ""),
        ("TICKET_CLIENT_ID", "spa-client"),
    ]);
    let (h, body) = svc.invite(json!({"email": "a@example.com", "ticket_ttl_sec": 3600}));
    assert_eq!(h.response.status, 201, "{body}");
    let t = svc.fake.body_of("POST /api/v2/tickets/password-change");
    assert_eq!(t["client_id"], "spa-client");
    assert_eq!(t["ttl_sec"], 3600);
    assert!(t.get("result_url").is_none());
}

fn check_rejected(svc: &Svc, req: HttpRequest, status: u16, code: &str, field: Option<&str>) {
    let (h, body) = svc.run(req);
    assert_eq!(error_code(&h, &body), (status, code.to_string()), "{body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
    assert_eq!(
        body["error"]["request_id"].as_str(),
        h.response.header_value("x-request-id")
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_reaches_no_upstream() {
    let svc = Svc::new(&[]);
    let with = |patch: Value| {
        let mut b = ada();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        invite_req(&b)
    };
    let mut no_auth = invite_req(&ada());
    no_auth.headers.retain(|(k, _)| k != "Authorization");
    check_rejected(&svc, no_auth, 401, "unauthorized", None);
    let mut wrong = invite_req(&ada());
    wrong.headers[0].1 = "Bearer backend-key-0123456788".into();
    let (h, _) = svc.run(wrong.clone());
    assert_eq!(
        h.response.header_value("www-authenticate"),
        Some("Bearer realm=\"invites\"")
    );
    check_rejected(&svc, wrong, 401, "unauthorized", None);

    let mut big = invite_req(&json!({"email": "a@example.com", "name": "x".repeat(17_000)}));
    check_rejected(&svc, big.clone(), 413, "payload_too_large", None);
    big.body.clear();
    big.headers.push(("Content-Length".into(), "20000".into()));
    check_rejected(&svc, big, 413, "payload_too_large", None);
    let mut text = invite_req(&ada());
    text.headers[1].1 = "text/plain".into();
    check_rejected(&svc, text, 415, "unsupported_media_type", None);
    let mut broken = invite_req(&ada());
    broken.body = b"{\"email\": ".to_vec();
    check_rejected(&svc, broken, 400, "invalid_json", None);
    check_rejected(
        &svc,
        invite_req(&json!(["a@example.com"])),
        400,
        "invalid_json",
        None,
    );
    check_rejected(
        &svc,
        with(json!({"emial": "x"})),
        400,
        "unknown_field",
        Some("emial"),
    );
    check_rejected(
        &svc,
        invite_req(&json!({"name": "x"})),
        422,
        "missing_field",
        Some("email"),
    );
    check_rejected(
        &svc,
        with(json!({"email": "not-an-email"})),
        422,
        "invalid_email",
        Some("email"),
    );
    check_rejected(
        &svc,
        with(json!({"email": format!("{}@example.com", "a".repeat(250))})),
        422,
        "invalid_email",
        Some("email"),
    );
    check_rejected(
        &svc,
        with(json!({"email": 42})),
        422,
        "invalid_field",
        Some("email"),
    );
    check_rejected(
        &svc,
        with(json!({"roles": ["admin"]})),
        422,
        "role_not_allowed",
        Some("roles"),
    );
    check_rejected(
        &svc,
        with(json!({"roles": "beta-tester"})),
        422,
        "invalid_field",
        Some("roles"),
    );
    check_rejected(
        &svc,
        with(json!({"result_url": "https://evil.example.net/x"})),
        422,
        "result_url_not_allowed",
        Some("result_url"),
    );
    check_rejected(
        &svc,
        with(json!({"result_url": "http://app.example.com/welcome"})),
        422,
        "result_url_not_allowed",
        Some("result_url"),
    );
    check_rejected(
        &svc,
        with(json!({"ticket_ttl_sec": 10})),
        422,
        "ttl_out_of_range",
        Some("ticket_ttl_sec"),
    );
    check_rejected(
        &svc,
        with(json!({"ticket_ttl_sec": 99_999_999})),
        422,
        "ttl_out_of_range",
        Some("ticket_ttl_sec"),
    );
    check_rejected(
        &svc,
        with(json!({"app_metadata": {"invited_by": "me"}})),
        422,
        "invalid_field",
        Some("app_metadata"),
    );
    check_rejected(
        &svc,
        with(json!({"user_metadata": []})),
        422,
        "invalid_field",
        Some("user_metadata"),
    );
    check_rejected(
        &svc,
        with(json!({"given_name": "x".repeat(151)})),
        422,
        "invalid_field",
        Some("given_name"),
    );
    check_rejected(
        &svc,
        HttpRequest::new("GET", "/v1/invites"),
        405,
        "method_not_allowed",
        None,
    );
    check_rejected(
        &svc,
        HttpRequest::new("POST", "/v2/invites"),
        404,
        "not_found",
        None,
    );
    assert!(
        svc.fake.sent.borrow().is_empty(),
        "bad input must not reach Auth0"
    );

    let (h, _) = svc.run(HttpRequest::new("PUT", "/v1/invites"));
    assert_eq!(h.response.header_value("allow"), Some("POST"));
    let (h, _) = svc.run(with(
        json!({"result_url": "https://other.example.com/done"}),
    ));
    assert_eq!(h.response.status, 201, "a second allowlisted origin works");
}

#[test]
fn invalid_config_is_reported_whole() {
    let svc = Svc {
        fake: Fake::new(),
        cfg: Config::from_lookup(|k| (k == "AUTH0_DOMAIN").then(|| "acme.auth0.com".to_string())),
        cache: Rc::new(IsolateCache::default()),
    };
    let (h, body) = svc.run(HttpRequest::new("GET", "/healthz"));
    assert_eq!(h.response.status, 503);
    assert_eq!(body["status"], "config_invalid");
    assert_eq!(body["problems"].as_array().unwrap().len(), 3);
    let (h, body) = svc.invite(ada());
    assert_eq!(error_code(&h, &body), (500, "config_invalid".into()));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("AUTH0_CLIENT_SECRET is missing"));

    let ok = Svc::new(&[]);
    let (h, body) = ok.run(HttpRequest::new("GET", "/healthz"));
    assert_eq!((h.response.status, body), (200, json!({"status": "ok"})));
}

#[test]
fn a_stale_cached_role_id_is_looked_up_again() {
    let svc = Svc::new(&[]);
    svc.invite(ada());
    svc.fake.script(
        "POST /api/v2/users/auth0%7Cabc123/roles",
        vec![Ok(json_resp(
            404,
            json!({"statusCode": 404, "error": "Not Found", "message": "The role does not exist."}),
        ))],
    );
    let (h, body) = svc.invite(json!({"email": "grace@example.com"}));
    assert_eq!(h.response.status, 201, "{body}");
    assert_eq!(
        svc.fake.count("GET /api/v2/roles"),
        2,
        "resolved again after the 404"
    );
    assert_eq!(svc.fake.count("POST /api/v2/users/auth0%7Cabc123/roles"), 3);
}

// ---------------------------------------------------------------- payment webhooks

const WHSEC: &str = "whsec_stripe_test_secret";
const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn webhook_svc(extra: &[(&str, &str)]) -> Svc {
    let mut vars = vec![
        (
            "STRIPE_WEBHOOK_SECRETS",
            "whsec_old_rotated_out,whsec_stripe_test_secret",
        ),
        ("STANDARD_WEBHOOK_SECRETS", STD_SECRET),
        ("PAYMENT_ROLES", "beta-tester"),
        (
            "STRIPE_ROLE_MAP",
            "price_early:early-access,prod_beta:beta-tester|early-access",
        ),
    ];
    vars.extend_from_slice(extra);
    Svc::new(&vars)
}

fn stripe_req(event: &Value, signed_at_ms: u64) -> HttpRequest {
    let body = event.to_string().into_bytes();
    let mut r = HttpRequest::new("POST", "/v1/webhooks/stripe")
        .header(
            "Stripe-Signature",
            sign_for_test::stripe(&body, WHSEC, signed_at_ms / 1000),
        )
        .header("Content-Type", "application/json");
    r.body = body;
    r
}

fn checkout(id: &str, email: &str) -> Value {
    json!({"id": id, "object": "event", "type": "checkout.session.completed",
           "data": {"object": {"object": "checkout.session", "payment_status": "paid",
                               "customer_details": {"email": email, "name": "Ada Lovelace"},
                               "metadata": {"invite_roles": "early-access,admin"}}}})
}

fn status_of(body: &Value) -> &str {
    body["status"].as_str().unwrap_or("")
}

#[test]
fn stripe_checkout_creates_the_user_and_auth0_emails_the_link() {
    let svc = webhook_svc(&[]);
    let (h, body) = svc.run(stripe_req(&checkout("evt_1", "Ada@Example.com"), NOW));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    assert!(!String::from_utf8_lossy(&h.response.body).contains("ticket"));
    let user = svc.fake.body_of("POST /api/v2/users");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["app_metadata"]["invited_by"], "stripe");
    assert_eq!(user["app_metadata"]["invite_event"], "evt_1");
    // "admin" is not allowed and is dropped.
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles"),
        json!({"roles": ["rol_early-access"]})
    );
    assert_eq!(
        svc.fake.body_of("POST /dbconnections/change_password"),
        json!({"client_id": "client-1", "email": "ada@example.com", "connection": "Username-Password-Authentication"})
    );
    assert_eq!(
        svc.fake.count("POST /api/v2/tickets/password-change"),
        0,
        "Auth0 sends its own link"
    );

    let calls = svc.fake.sent.borrow().len();
    for _ in 0..4 {
        let (h, body) = svc.run(stripe_req(&checkout("evt_1", "Ada@Example.com"), NOW));
        assert_eq!((h.response.status, status_of(&body)), (200, "duplicate"));
    }
    assert_eq!(
        svc.fake.sent.borrow().len(),
        calls,
        "a done event makes zero calls"
    );
}

#[test]
fn stripe_signature_failures_make_no_upstream_call() {
    let svc = webhook_svc(&[]);
    let event = checkout("evt_2", "a@example.com");
    let stale = stripe_req(&event, NOW - 301_000);
    let mut tampered = stripe_req(&event, NOW);
    tampered.body = checkout("evt_2", "evil@example.com")
        .to_string()
        .into_bytes();
    let mut unknown = stripe_req(&event, NOW);
    let body = unknown.body.clone();
    unknown.headers[0].1 = sign_for_test::stripe(&body, "whsec_unknown", NOW / 1000);
    let mut missing = stripe_req(&event, NOW);
    missing.headers.remove(0);
    for req in [stale, tampered, unknown, missing] {
        let (h, body) = svc.run(req);
        assert_eq!(error_code(&h, &body), (400, "invalid_signature".into()));
        assert_eq!(
            body["error"]["message"],
            "webhook signature verification failed"
        );
    }
    assert!(svc.fake.sent.borrow().is_empty());
}

#[test]
fn stripe_events_we_do_not_act_on() {
    let svc = webhook_svc(&[]);
    let other = json!({"id": "evt_3", "type": "customer.created", "data": {"object": {}}});
    let (_, body) = svc.run(stripe_req(&other, NOW));
    assert_eq!(body, json!({"status": "ignored"}));
    let mut unpaid = checkout("evt_4", "a@example.com");
    unpaid["data"]["object"]["payment_status"] = json!("unpaid");
    assert_eq!(
        svc.run(stripe_req(&unpaid, NOW)).1,
        json!({"status": "ignored"})
    );
    let renewal = json!({"id": "evt_5", "type": "invoice.paid", "data": {"object": {"billing_reason": "subscription_cycle", "customer_email": "a@example.com"}}});
    assert_eq!(
        svc.run(stripe_req(&renewal, NOW)).1,
        json!({"status": "ignored"})
    );
    let mut no_email = checkout("evt_6", "x");
    no_email["data"]["object"]["customer_details"] = json!({});
    let (h, body) = svc.run(stripe_req(&no_email, NOW));
    assert_eq!((h.response.status, status_of(&body)), (200, "skipped"));
    assert!(svc.fake.sent.borrow().is_empty());
}

#[test]
fn stripe_invoice_roles_come_from_the_price_map() {
    let svc = webhook_svc(&[]);
    let invoice = json!({"id": "evt_7", "type": "invoice.paid", "data": {"object": {
        "billing_reason": "subscription_create", "customer_email": "grace@example.com", "customer_name": "Grace Hopper",
        "lines": {"data": [{"price": {"id": "price_other", "product": "prod_beta"}}, {"pricing": {"price_details": {"price": "price_early", "product": "prod_x"}}}]}}}});
    let (h, body) = svc.run(stripe_req(&invoice, NOW));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body} {}",
        h.log
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users")["name"],
        "Grace Hopper"
    );
    let roles = svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles");
    assert_eq!(
        roles,
        json!({"roles": ["rol_beta-tester", "rol_early-access"]})
    );
}

#[test]
fn retryable_failures_answer_5xx_and_leave_the_event_unmarked() {
    let svc = webhook_svc(&[("UPSTREAM_DEADLINE_MS", "1000")]);
    svc.fake.script(
        "POST /api/v2/users",
        (0..20).map(|_| Ok(json_resp(503, json!({})))).collect(),
    );
    let (h, body) = svc.run(stripe_req(&checkout("evt_8", "down@example.com"), NOW));
    assert_eq!(error_code(&h, &body), (502, "upstream_unavailable".into()));
    assert!(
        !svc.fake.kv.borrow().keys().any(|k| k.contains("evt_8")),
        "not marked"
    );
    svc.fake.script.borrow_mut().clear();
    let (h, body) = svc.run(stripe_req(
        &checkout("evt_8", "down@example.com"),
        svc.fake.now.get(),
    ));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);
}

#[test]
fn permanent_failures_answer_200_and_are_not_retried() {
    let svc = webhook_svc(&[]);
    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(
            400,
            json!({"statusCode": 400, "message": "Payload validation error"}),
        ))],
    );
    let (h, body) = svc.run(stripe_req(&checkout("evt_9", "bad@example.com"), NOW));
    assert_eq!(
        (h.response.status, body),
        (
            200,
            json!({"status": "failed", "reason": "invite_rejected"})
        )
    );
    let (_, body) = svc.run(stripe_req(&checkout("evt_9", "bad@example.com"), NOW));
    assert_eq!(body, json!({"status": "duplicate"}));
}

#[test]
fn resend_delivery_emails_the_ticket_with_the_template() {
    let svc = webhook_svc(&[
        ("EMAIL_DELIVERY", "resend"),
        ("EMAIL_API_KEY", "re_test_key"),
        ("FROM_EMAIL", "Acme <hello@acme.example>"),
        ("PRODUCT_NAME", "Acme Beta"),
        ("EMAIL_API_BASE_URL", "https://email.example"),
    ]);
    let (h, body) = svc.run(stripe_req(&checkout("evt_10", "ada@example.com"), NOW));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    assert!(!h.log.contains("re_test_key"));
    let sent = svc.fake.sent.borrow();
    let email = sent
        .iter()
        .find(|r| r.url == "https://email.example/emails")
        .expect("email sent");
    assert_eq!(
        email.header_value("authorization"),
        Some("Bearer re_test_key")
    );
    assert_eq!(
        email.header_value("idempotency-key"),
        Some("webhook:v1:stripe:evt_10")
    );
    let msg: Value = serde_json::from_slice(&email.body).unwrap();
    assert_eq!(msg["to"], json!(["ada@example.com"]));
    assert_eq!(msg["from"], "Acme <hello@acme.example>");
    assert_eq!(msg["subject"], "Your Acme Beta account is ready");
    assert!(msg["html"]
        .as_str()
        .unwrap()
        .contains("ticket=SECRETTICKET#"));
    assert!(msg["text"].as_str().unwrap().contains("Hi Ada Lovelace,"));
    drop(sent);
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 1);
}

#[test]
fn one_email_per_address_within_the_cooldown() {
    let svc = webhook_svc(&[]);
    svc.run(stripe_req(&checkout("evt_11", "ada@example.com"), NOW));
    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(409, json!({"statusCode": 409})))],
    );
    let (_, body) = svc.run(stripe_req(&checkout("evt_12", "ada@example.com"), NOW));
    assert_eq!(body["email"], "cooldown", "{body}");
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);
}

fn standard_req(id: &str, ts: u64, msg: &Value) -> HttpRequest {
    let body = msg.to_string().into_bytes();
    let mut r = HttpRequest::new("POST", "/v1/webhooks/standard")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            sign_for_test::standard(id, ts, &body, STD_SECRET),
        )
        .header("content-type", "application/json");
    r.body = body;
    r
}

#[test]
fn standard_webhooks_invite_requested() {
    let svc = webhook_svc(&[]);
    let msg = json!({"type": "invite.requested", "data": {"email": "Lin@Example.com", "name": "Lin", "roles": ["early-access", "root"]}});
    let (h, body) = svc.run(standard_req("msg_1", NOW / 1000, &msg));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users")["app_metadata"]["invite_source"],
        "standard"
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles"),
        json!({"roles": ["rol_early-access"]})
    );
    assert_eq!(
        svc.run(standard_req("msg_1", NOW / 1000, &msg)).1,
        json!({"status": "duplicate"})
    );
    let other = json!({"type": "user.deleted", "data": {}});
    assert_eq!(
        svc.run(standard_req("msg_2", NOW / 1000, &other)).1,
        json!({"status": "ignored"})
    );
    let (h, body) = svc.run(standard_req("msg_3", NOW / 1000 - 400, &msg));
    assert_eq!(error_code(&h, &body), (400, "invalid_signature".into()));
}

#[test]
fn webhooks_without_secrets_are_off() {
    let svc = Svc::new(&[]);
    let (h, body) = svc.run(stripe_req(&checkout("evt_1", "a@example.com"), NOW));
    assert_eq!(
        error_code(&h, &body),
        (404, "webhook_not_configured".into())
    );
}

// ---------------------------------------------------------------- public sign-up form

fn public_svc(extra: &[(&str, &str)]) -> Svc {
    let mut vars = vec![
        ("PUBLIC_ROLES", "beta-tester"),
        ("ALLOWED_ORIGINS", "https://www.example.com"),
    ];
    vars.extend_from_slice(extra);
    Svc::new(&vars)
}

fn public_req(body: &Value) -> HttpRequest {
    let mut r = HttpRequest::new("POST", "https://invites.example.com/v1/public/invites")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("cf-connecting-ip", "203.0.113.7");
    r.body = body.to_string().into_bytes();
    r
}

fn form_req(body: &str) -> HttpRequest {
    let mut r = HttpRequest::new("POST", "https://invites.example.com/v1/public/invites")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html,application/xhtml+xml")
        .header("origin", "https://invites.example.com");
    r.body = body.as_bytes().to_vec();
    r
}

#[test]
fn public_signups_get_the_same_answer_whether_or_not_the_account_exists() {
    let svc = public_svc(&[]);
    let (new_user, _) = svc.run(public_req(
        &json!({"email": "New@Example.com", "name": "New"}),
    ));
    assert_eq!(new_user.response.status, 202);
    let user = svc.fake.body_of("POST /api/v2/users");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["app_metadata"]["invite_source"], "public_form");
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles"),
        json!({"roles": ["rol_beta-tester"]})
    );
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);

    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(
            409,
            json!({"statusCode": 409, "message": "The user already exists."}),
        ))],
    );
    let (existing, _) = svc.run(public_req(&json!({"email": "old@example.com"})));
    assert_eq!(existing.response.status, 202);
    assert_eq!(
        existing.response.body, new_user.response.body,
        "byte-identical"
    );
    assert_eq!(
        svc.fake.count("POST /dbconnections/change_password"),
        2,
        "the existing user gets a fresh link"
    );
    for h in [&new_user, &existing] {
        let text = String::from_utf8_lossy(&h.response.body);
        assert!(
            !text.contains("ticket") && !text.contains("created") && !text.contains("auth0|"),
            "{text}"
        );
    }
}

#[test]
fn public_signups_never_carry_a_ticket_url_even_with_resend() {
    let svc = public_svc(&[
        ("EMAIL_DELIVERY", "resend"),
        ("EMAIL_API_KEY", "re_k"),
        ("FROM_EMAIL", "a@acme.example"),
    ]);
    let (h, body) = svc.run(public_req(&json!({"email": "a@example.com"})));
    assert_eq!(h.response.status, 202, "{body}");
    assert!(!String::from_utf8_lossy(&h.response.body).contains("SECRETTICKET"));
    assert_eq!(svc.fake.count("POST /emails"), 1);
}

#[test]
fn public_cooldown_honeypot_and_rate_limit() {
    let svc = public_svc(&[]);
    svc.run(public_req(&json!({"email": "a@example.com"})));
    let calls = svc.fake.sent.borrow().len();
    let (h, _) = svc.run(public_req(&json!({"email": "A@example.com"})));
    assert_eq!(h.response.status, 202);
    assert_eq!(
        svc.fake.sent.borrow().len(),
        calls,
        "within the cooldown nothing is called or sent"
    );

    let (h, _) = svc.run(public_req(
        &json!({"email": "bot@example.com", "website": "http://spam.example"}),
    ));
    assert_eq!(h.response.status, 202);
    assert_eq!(
        svc.fake.sent.borrow().len(),
        calls,
        "a filled honeypot creates nothing"
    );

    svc.fake.rate_limit.set(Some(2));
    let statuses: Vec<u16> = (0..3)
        .map(|i| {
            svc.run(public_req(&json!({"email": format!("r{i}@example.com")})))
                .0
                .response
                .status
        })
        .collect();
    assert_eq!(statuses, vec![202, 202, 429]);
    let (h, body) = svc.run(public_req(&json!({"email": "r9@example.com"})));
    assert_eq!(error_code(&h, &body), (429, "rate_limited".into()));
    assert_eq!(h.response.header_value("retry-after"), Some("60"));
}

#[test]
fn plain_form_posts_are_redirected_to_the_thank_you_page() {
    let svc = public_svc(&[]);
    let (h, _) = svc.run(form_req("email=form%40example.com&name=Form+User&website="));
    assert_eq!(h.response.status, 303);
    assert_eq!(h.response.header_value("location"), Some("/thanks"));
    assert_eq!(svc.fake.body_of("POST /api/v2/users")["name"], "Form User");
    let svc = public_svc(&[("THANK_YOU_URL", "https://www.example.com/thanks")]);
    let (h, _) = svc.run(form_req("email=form%40example.com"));
    assert_eq!(
        h.response.header_value("location"),
        Some("https://www.example.com/thanks")
    );
    let (h, _) = svc.run(form_req("email=not-an-email"));
    assert_eq!(h.response.status, 422);
    assert!(h
        .response
        .header_value("content-type")
        .unwrap()
        .starts_with("text/html"));
}

#[test]
fn turnstile_is_verified_server_side() {
    let svc = public_svc(&[
        (
            "TURNSTILE_SECRET_KEY",
            "2x0000000000000000000000000000000AA",
        ),
        ("TURNSTILE_BASE_URL", "https://ts.example"),
    ]);
    let (h, body) = svc.run(public_req(&json!({"email": "a@example.com"})));
    assert_eq!(
        error_code(&h, &body),
        (403, "captcha_failed".into()),
        "token required"
    );
    svc.fake.script(
        "POST /turnstile/v0/siteverify",
        vec![Ok(json_resp(
            200,
            json!({"success": false, "error-codes": ["invalid-input-response"]}),
        ))],
    );
    let (h, body) = svc.run(public_req(
        &json!({"email": "a@example.com", "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX"}),
    ));
    assert_eq!(error_code(&h, &body), (403, "captcha_failed".into()));
    let verify = svc.fake.body_of("POST /turnstile/v0/siteverify");
    assert_eq!(verify["response"], "XXXX.DUMMY.TOKEN.XXXX");
    assert_eq!(verify["remoteip"], "203.0.113.7");
    assert_eq!(verify["idempotency_key"].as_str().unwrap().len(), 36);
    assert_eq!(svc.fake.count("POST /api/v2/users"), 0);
    let (h, _) = svc.run(public_req(
        &json!({"email": "a@example.com", "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX"}),
    ));
    assert_eq!(h.response.status, 202);
    assert!(!h.log.contains("2x0000000000000000000000000000000AA"));
}

#[test]
fn cors_allowlist_and_preflight() {
    let svc = public_svc(&[]);
    let mut foreign = public_req(&json!({"email": "a@example.com"}));
    foreign
        .headers
        .push(("origin".into(), "https://evil.example".into()));
    let (h, body) = svc.run(foreign);
    assert_eq!(error_code(&h, &body), (403, "origin_not_allowed".into()));
    assert_eq!(h.response.header_value("vary"), Some("Origin"));
    assert_eq!(h.response.header_value("access-control-allow-origin"), None);

    let mut allowed = public_req(&json!({"email": "a@example.com"}));
    allowed
        .headers
        .push(("origin".into(), "https://www.example.com".into()));
    let (h, _) = svc.run(allowed);
    assert_eq!(h.response.status, 202);
    assert_eq!(
        h.response.header_value("access-control-allow-origin"),
        Some("https://www.example.com")
    );

    // `Origin: null` counts as our own page only when the browser says so.
    let mut null_origin = form_req("email=null%40example.com");
    null_origin.headers.retain(|(k, _)| k != "origin");
    null_origin.headers.push(("origin".into(), "null".into()));
    let (h, _) = svc.run(null_origin.clone());
    assert_eq!(h.response.status, 403);
    null_origin
        .headers
        .push(("sec-fetch-site".into(), "same-origin".into()));
    let (h, _) = svc.run(null_origin);
    assert_eq!(h.response.status, 303);

    let preflight = |origin: &str| {
        HttpRequest::new("OPTIONS", "https://invites.example.com/v1/public/invites")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let (h, _) = svc.run(preflight("https://www.example.com"));
    assert_eq!(h.response.status, 204);
    assert_eq!(
        h.response.header_value("access-control-allow-origin"),
        Some("https://www.example.com")
    );
    assert_eq!(
        h.response.header_value("access-control-allow-headers"),
        Some("content-type")
    );
    let (h, _) = svc.run(preflight("https://evil.example"));
    assert_eq!(h.response.status, 403);
    assert_eq!(h.response.header_value("access-control-allow-origin"), None);
}

#[test]
fn public_bad_input() {
    let svc = public_svc(&[]);
    let mut big = public_req(&json!({"email": "a@example.com", "name": "x".repeat(9000)}));
    let (h, body) = svc.run(big.clone());
    assert_eq!(error_code(&h, &body), (413, "payload_too_large".into()));
    big.body = b"email=a@example.com".to_vec();
    big.headers[0].1 = "text/plain".into();
    let (h, body) = svc.run(big);
    assert_eq!(
        error_code(&h, &body),
        (415, "unsupported_media_type".into())
    );
    let (h, body) = svc.run(public_req(&json!({"email": "nope"})));
    assert_eq!(error_code(&h, &body), (422, "invalid_email".into()));
    let (h, body) = svc.run(public_req(&json!({"name": "x"})));
    assert_eq!(error_code(&h, &body), (422, "missing_field".into()));
    assert!(svc.fake.sent.borrow().is_empty());
}

#[test]
fn landing_and_thank_you_pages() {
    let svc = public_svc(&[("PRODUCT_NAME", "Acme <Beta>")]);
    let (h, _) = svc.run(HttpRequest::new("GET", "https://invites.example.com/"));
    let html = String::from_utf8_lossy(&h.response.body).into_owned();
    assert_eq!(h.response.status, 200);
    assert!(
        html.contains("<form id=\"invite-form\" method=\"post\" action=\"/v1/public/invites\">")
    );
    assert!(html.contains("Join Acme &lt;Beta&gt;"));
    assert!(
        !html.contains("cf-turnstile\""),
        "no widget without a site key"
    );
    let svc = public_svc(&[("TURNSTILE_SITE_KEY", "1x00000000000000000000AA")]);
    let (h, _) = svc.run(HttpRequest::new("GET", "https://invites.example.com/"));
    assert!(String::from_utf8_lossy(&h.response.body)
        .contains("data-sitekey=\"1x00000000000000000000AA\""));
    let (h, _) = svc.run(HttpRequest::new(
        "GET",
        "https://invites.example.com/thanks",
    ));
    assert!(String::from_utf8_lossy(&h.response.body)
        .contains("Check your inbox for a link to set your password."));
}
