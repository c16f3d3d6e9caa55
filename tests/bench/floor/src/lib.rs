//! The Rust floor: tests/bench/baseline-worker.js (the plain JavaScript Worker of the
//! benchmarks) in Rust, as lean as this stack allows, to show what running as a Rust Worker
//! costs before any of the care the real Worker takes (no API key, validation, pacing,
//! retries, timeouts, log line or request id). For `scripts/report.sh` only; never deployed.
//!
//! Lean means the real Worker's own techniques: the runtime's `Request` taken as it is (no
//! `worker::Request`, which builds `request.cf`), one JavaScript call per outbound request,
//! per inbound body and per answer (src/glue.js), and typed JSON (no `serde_json::Value`).
//! Same three Management calls in the same order, the token and the role id cached in the
//! isolate's memory.
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use worker::Env;

#[wasm_bindgen(module = "/src/glue.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn call(method: &str, url: &str, token: &str, body: &[u8]) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = readBody)]
    async fn read_body(request: &JsValue) -> Result<JsValue, JsValue>;
    fn answer(status: u16, body: &[u8]) -> JsValue;
    #[wasm_bindgen(js_name = pathOf)]
    fn path_of(request: &JsValue) -> String;
    fn uuid() -> String;
}

thread_local! {
    static TOKEN: RefCell<Option<String>> = const { RefCell::new(None) };
    static ROLE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The baseline's throwaway password: "Aa1!" and a UUID, drawn again while it holds three
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

async fn send(method: &str, url: &str, token: &str, body: &[u8]) -> Result<Vec<u8>, JsValue> {
    Ok(js_sys::Uint8Array::from(call(method, url, token, body).await?).to_vec())
}

fn bad(e: serde_json::Error) -> JsValue {
    JsValue::from_str(&e.to_string())
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
struct Answer<'a> {
    user_id: &'a str,
    ticket_url: &'a str,
}

/// The fetch export, called by src/entry.mjs.
#[wasm_bindgen(js_name = fetch)]
pub fn fetch_export(request: web_sys::Request, env: Env, _ctx: JsValue) -> JsValue {
    wasm_bindgen_futures::future_to_promise(handle(request, env)).into()
}

async fn handle(request: web_sys::Request, env: Env) -> Result<JsValue, JsValue> {
    let request: &JsValue = request.as_ref();
    let path = path_of(request);
    if path == "/healthz" {
        return Ok(answer(200, b"ok"));
    }
    if path != "/" {
        return Ok(answer(404, br#"{"error":"not_found"}"#));
    }
    let body = js_sys::Uint8Array::from(read_body(request).await?).to_vec();
    let input: Input = serde_json::from_slice(&body).map_err(bad)?;
    let var = |name: &str| {
        env.var(name)
            .map(|v| v.to_string())
            .map_err(|e| JsValue::from_str(&e.to_string()))
    };
    let base = var("AUTH0_BASE_URL")?;
    if TOKEN.with(|t| t.borrow().is_none()) {
        let grant = Grant {
            grant_type: "client_credentials",
            client_id: var("AUTH0_CLIENT_ID")?,
            client_secret: var("AUTH0_CLIENT_SECRET")?,
            audience: format!("https://{}/api/v2/", var("AUTH0_DOMAIN")?),
        };
        let url = format!("{base}/oauth/token");
        let answer = send("POST", &url, "", &serde_json::to_vec(&grant).map_err(bad)?).await?;
        let token: Token = serde_json::from_slice(&answer).map_err(bad)?;
        TOKEN.with(|t| *t.borrow_mut() = Some(token.access_token));
    }
    let token = TOKEN.with(|t| t.borrow().clone()).unwrap_or_default();
    if ROLE.with(|r| r.borrow().is_none()) {
        let url = format!("{base}/api/v2/roles?name_filter=beta-tester");
        let roles: Vec<Role> =
            serde_json::from_slice(&send("GET", &url, &token, b"").await?).map_err(bad)?;
        let id = roles
            .into_iter()
            .find(|r| r.name == "beta-tester")
            .map(|r| r.id);
        ROLE.with(|r| *r.borrow_mut() = Some(id.unwrap_or_default()));
    }
    let role = ROLE.with(|r| r.borrow().clone()).unwrap_or_default();
    let new_user = NewUser {
        connection: "Username-Password-Authentication",
        email: &input.email,
        email_verified: true,
        password: password(),
    };
    let url = format!("{base}/api/v2/users");
    let created = send(
        "POST",
        &url,
        &token,
        &serde_json::to_vec(&new_user).map_err(bad)?,
    )
    .await?;
    let user: User = serde_json::from_slice(&created).map_err(bad)?;
    let id = String::from(js_sys::encode_uri_component(&user.user_id));
    let url = format!("{base}/api/v2/users/{id}/roles");
    send(
        "POST",
        &url,
        &token,
        &serde_json::to_vec(&Roles { roles: [&role] }).map_err(bad)?,
    )
    .await?;
    let ticket = TicketRequest {
        user_id: &user.user_id,
        result_url: "https://app.example.com/welcome",
        ttl_sec: 86400,
    };
    let url = format!("{base}/api/v2/tickets/password-change");
    let ticket: Ticket = serde_json::from_slice(
        &send(
            "POST",
            &url,
            &token,
            &serde_json::to_vec(&ticket).map_err(bad)?,
        )
        .await?,
    )
    .map_err(bad)?;
    let answer_body = Answer {
        user_id: &user.user_id,
        ticket_url: &ticket.ticket,
    };
    Ok(answer(201, &serde_json::to_vec(&answer_body).map_err(bad)?))
}
