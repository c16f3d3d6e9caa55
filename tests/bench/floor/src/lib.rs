//! The Rust floor: the benchmarks' JavaScript Workers in Rust, as lean as this stack allows,
//! to show what running as a Rust Worker costs before anything else this project does. For
//! `scripts/report.sh` and `tests/bench/ab.mjs` only; never deployed.
//!
//! - `POST /` is tests/bench/baseline-worker.js, the plain JavaScript Worker: the same three
//!   Management calls in the same order, the token and the role id cached in the isolate's
//!   memory, no care at all.
//! - `POST /v1/invites` is tests/bench/careful-worker.js: the same with the care the careful
//!   JavaScript Worker takes (the API key compared in constant time, the address checked, a
//!   request id, a timeout per call, the status checked and five response headers read, one
//!   JSON log line, `x-request-id` and `cache-control` on the answer). Still no pacing,
//!   retries, idempotency, configuration check or role management: ours has all of those.
//!
//! Lean means the real Worker's own techniques: the runtime's `Request` taken as it is (no
//! `worker::Request`, which builds `request.cf`), one JavaScript call per outbound request, per
//! inbound body and per answer (src/glue.js), and typed JSON (no `serde_json::Value`).
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use subtle::ConstantTimeEq;
use wasm_bindgen::prelude::*;
use worker::Env;

#[wasm_bindgen(module = "/src/glue.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn call(
        method: &str,
        url: &str,
        token: &str,
        body: &[u8],
        timeout_ms: f64,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = readBody)]
    async fn read_body(request: &JsValue) -> Result<JsValue, JsValue>;
    fn answer(status: u16, body: &[u8], request_id: &str) -> JsValue;
    fn route(request: &JsValue) -> String;
    fn header(request: &JsValue, name: &str) -> String;
    fn uuid() -> String;
    fn log(line: &str);
}

thread_local! {
    static TOKEN: RefCell<Option<String>> = const { RefCell::new(None) };
    static ROLE: RefCell<Option<String>> = const { RefCell::new(None) };
    static KEYS: RefCell<Option<Vec<Vec<u8>>>> = const { RefCell::new(None) };
}

#[derive(Deserialize)]
struct Input {
    email: String,
}
#[derive(Serialize)]
struct Grant {
    grant_type: &'static str,
    client_id: String,
    client_secret: String,
    audience: String,
}
#[derive(Deserialize)]
struct Token {
    access_token: String,
}
#[derive(Deserialize)]
struct Role {
    id: String,
    name: String,
}
#[derive(Serialize)]
struct NewUser<'a> {
    connection: &'a str,
    email: &'a str,
    email_verified: bool,
    password: String,
}
#[derive(Deserialize)]
struct User {
    user_id: String,
}
#[derive(Serialize)]
struct Roles<'a> {
    roles: [&'a str; 1],
}
#[derive(Serialize)]
struct TicketRequest<'a> {
    user_id: &'a str,
    result_url: &'a str,
    ttl_sec: u32,
}
#[derive(Deserialize)]
struct Ticket {
    ticket: String,
}
#[derive(Serialize)]
struct Invited<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    ticket_url: &'a str,
}
#[derive(Serialize)]
struct LogLine<'a> {
    level: &'a str,
    request_id: &'a str,
    method: &'a str,
    route: &'a str,
    status: u16,
    duration_ms: f64,
}

fn bad(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// The baselines' throwaway password: "Aa1!" and a UUID, drawn again while it holds three
/// identical characters in a row (the emulator, like Auth0, refuses those).
fn password() -> String {
    loop {
        let p = format!("Aa1!{}", uuid());
        if !p
            .as_bytes()
            .windows(3)
            .any(|w| w[0] == w[1] && w[1] == w[2])
        {
            return p;
        }
    }
}

/// How the Management calls are made: plainly, or (careful) against a deadline (Unix ms),
/// with the status checked and the rate-limit headers read.
#[derive(Clone, Copy)]
struct Calls {
    deadline_ms: Option<f64>,
}

impl Calls {
    async fn send(
        self,
        method: &str,
        url: &str,
        token: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, JsValue> {
        let timeout = match self.deadline_ms {
            Some(d) => (d - js_sys::Date::now()).max(1.0),
            None => 0.0,
        };
        let answer = js_sys::Array::from(&call(method, url, token, body, timeout).await?);
        let status = answer.get(0).as_f64().unwrap_or(0.0);
        let kept = answer.get(1).as_string().unwrap_or_default();
        if self.deadline_ms.is_some() {
            // What the careful JS Worker does with them: nothing but read them.
            std::hint::black_box(kept.split('\n').count());
            if status >= 400.0 && status != 409.0 {
                return Err(JsValue::from_str("upstream"));
            }
        }
        Ok(js_sys::Uint8Array::from(answer.get(2)).to_vec())
    }

    /// POSTs `body` as JSON.
    async fn post(self, url: &str, token: &str, body: &impl Serialize) -> Result<Vec<u8>, JsValue> {
        self.send("POST", url, token, &serde_json::to_vec(body).map_err(bad)?)
            .await
    }

    /// The three Management calls (and the token and role id when memory has none).
    async fn invite(self, env: &Env, email: &str) -> Result<(String, String), JsValue> {
        let var = |name: &str| env.var(name).map(|v| v.to_string()).map_err(bad);
        let base = var("AUTH0_BASE_URL")?;
        if TOKEN.with(|t| t.borrow().is_none()) {
            let grant = Grant {
                grant_type: "client_credentials",
                client_id: var("AUTH0_CLIENT_ID")?,
                client_secret: var("AUTH0_CLIENT_SECRET")?,
                audience: format!("https://{}/api/v2/", var("AUTH0_DOMAIN")?),
            };
            let url = format!("{base}/oauth/token");
            let answer = self.post(&url, "", &grant).await?;
            let token: Token = serde_json::from_slice(&answer).map_err(bad)?;
            TOKEN.with(|t| *t.borrow_mut() = Some(token.access_token));
        }
        let token = TOKEN.with(|t| t.borrow().clone()).unwrap_or_default();
        if ROLE.with(|r| r.borrow().is_none()) {
            let url = format!("{base}/api/v2/roles?name_filter=beta-tester");
            let roles: Vec<Role> =
                serde_json::from_slice(&self.send("GET", &url, &token, b"").await?).map_err(bad)?;
            let mut id = roles
                .into_iter()
                .find(|r| r.name == "beta-tester")
                .map(|r| r.id);
            if id.is_none() && self.deadline_ms.is_some() {
                let url = format!("{base}/api/v2/roles");
                let made = self
                    .send("POST", &url, &token, br#"{"name":"beta-tester"}"#)
                    .await?;
                id = Some(serde_json::from_slice::<Role>(&made).map_err(bad)?.id);
            }
            ROLE.with(|r| *r.borrow_mut() = Some(id.unwrap_or_default()));
        }
        let role = ROLE.with(|r| r.borrow().clone()).unwrap_or_default();
        let new_user = NewUser {
            connection: "Username-Password-Authentication",
            email,
            email_verified: true,
            password: password(),
        };
        let url = format!("{base}/api/v2/users");
        let created = self.post(&url, &token, &new_user).await?;
        let user: User = serde_json::from_slice(&created).map_err(bad)?;
        let id = String::from(js_sys::encode_uri_component(&user.user_id));
        let url = format!("{base}/api/v2/users/{id}/roles");
        let roles = Roles { roles: [&role] };
        self.post(&url, &token, &roles).await?;
        let ticket = TicketRequest {
            user_id: &user.user_id,
            result_url: "https://app.example.com/welcome",
            ttl_sec: 86400,
        };
        let url = format!("{base}/api/v2/tickets/password-change");
        let answer = self.post(&url, &token, &ticket).await?;
        let ticket: Ticket = serde_json::from_slice(&answer).map_err(bad)?;
        Ok((user.user_id, ticket.ticket))
    }
}

/// The fetch export, called by src/entry.mjs.
#[wasm_bindgen(js_name = fetch)]
pub fn fetch_export(request: web_sys::Request, env: Env, _ctx: JsValue) -> JsValue {
    wasm_bindgen_futures::future_to_promise(handle(request, env)).into()
}

async fn handle(request: web_sys::Request, env: Env) -> Result<JsValue, JsValue> {
    let request: &JsValue = request.as_ref();
    match route(request).as_str() {
        "GET /healthz" => Ok(answer(200, b"ok", "")),
        "POST /" => {
            let body = js_sys::Uint8Array::from(read_body(request).await?).to_vec();
            let input: Input = serde_json::from_slice(&body).map_err(bad)?;
            let (user_id, ticket_url) = Calls { deadline_ms: None }
                .invite(&env, &input.email)
                .await?;
            let invited = Invited {
                user_id: &user_id,
                email: None,
                ticket_url: &ticket_url,
            };
            Ok(answer(201, &serde_json::to_vec(&invited).map_err(bad)?, ""))
        }
        "POST /v1/invites" => careful(request, &env).await,
        _ => Ok(answer(404, br#"{"error":"not_found"}"#, "")),
    }
}

/// tests/bench/careful-worker.js's invite.
async fn careful(request: &JsValue, env: &Env) -> Result<JsValue, JsValue> {
    let started = js_sys::Date::now();
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(bad)?;
    let request_id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let error = |status: u16, code: &str| {
        let body = format!(r#"{{"error":{{"code":"{code}","request_id":"{request_id}"}}}}"#);
        (status, body.into_bytes())
    };
    let (status, body) = if !key_matches(env, &header(request, "authorization")) {
        error(401, "unauthorized")
    } else {
        let body = js_sys::Uint8Array::from(read_body(request).await?).to_vec();
        let email = serde_json::from_slice::<Input>(&body)
            .map(|i| i.email.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !plausible_address(&email) {
            error(400, "invalid_email")
        } else {
            let calls = Calls {
                deadline_ms: Some(started + 10_000.0),
            };
            match calls.invite(env, &email).await {
                Ok((user_id, ticket_url)) => {
                    let invited = Invited {
                        user_id: &user_id,
                        email: Some(&email),
                        ticket_url: &ticket_url,
                    };
                    (201, serde_json::to_vec(&invited).map_err(bad)?)
                }
                Err(_) => error(502, "upstream_unavailable"),
            }
        }
    };
    let level = match status {
        500.. => "error",
        400.. => "warn",
        _ => "info",
    };
    let line = LogLine {
        level,
        request_id: &request_id,
        method: "POST",
        route: "/v1/invites",
        status,
        duration_ms: js_sys::Date::now() - started,
    };
    log(&String::from_utf8(serde_json::to_vec(&line).map_err(bad)?).map_err(bad)?);
    Ok(answer(status, &body, &request_id))
}

/// `INVITE_API_KEYS` ("name:key,..."), read once, against the bearer token, in constant time.
fn key_matches(env: &Env, authorization: &str) -> bool {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let keys = keys.get_or_insert_with(|| {
            let all = env
                .var("INVITE_API_KEYS")
                .map(|v| v.to_string())
                .unwrap_or_default();
            all.split(',')
                .map(|e| {
                    e.split_once(':')
                        .map_or(e, |(_, key)| key)
                        .as_bytes()
                        .to_vec()
                })
                .collect()
        });
        let presented = authorization
            .strip_prefix("Bearer ")
            .unwrap_or("")
            .as_bytes();
        let mut ok = false;
        for key in keys.iter() {
            ok |= key.len() == presented.len() && bool::from(key.as_slice().ct_eq(presented));
        }
        ok
    })
}

/// The careful JS Worker's check: `^[^\s@]+@[^\s@]+\.[^\s@]+$`, at most 254 bytes.
fn plausible_address(email: &str) -> bool {
    let part = |s: &str| !s.is_empty() && !s.contains(|c: char| c == '@' || c.is_whitespace());
    email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            part(local)
                && domain
                    .rsplit_once('.')
                    .is_some_and(|(a, b)| part(a) && part(b))
        })
}
