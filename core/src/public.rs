//! The public sign-up route, safe to expose to the internet: it never returns a ticket URL,
//! gives the same answer whether or not the account existed, and emails the link (the inbox
//! proves the address). Abuse controls: origin allowlist (CORS), per-IP rate limit,
//! Turnstile, a honeypot field and a per-address email cooldown.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::auth0::{error_message, Ctx};
use crate::config::Config;
use crate::email;
use crate::error::{ApiError, ErrorCode, Service, ValidationError};
use crate::gate::{Kind, QueuedInvite};
use crate::http::{media_type, HttpRequest, HttpResponse};
use crate::invite::{clean_name, default_ticket_target, InviteInput, OnExisting, MAX_NAME_CHARS};
use crate::page;
use crate::platform::{random_hex, Platform};
use crate::queue::{accept, new_id, Acceptance};

/// Largest accepted body.
pub const MAX_PUBLIC_BODY: usize = 8 * 1024;
/// The one success message, identical for new and existing accounts.
pub const ACCEPTED_MESSAGE: &str = "Check your inbox for a link to set your password.";
/// Seconds a rate-limited client is told to wait.
pub const RATE_LIMIT_RETRY_SEC: u64 = 60;
/// The longest Turnstile token Cloudflare issues (its server-side validation docs).
const MAX_TURNSTILE_TOKEN: usize = 2048;

/// The fields of the form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublicForm {
    /// Raw address.
    pub email: Option<String>,
    /// Optional name.
    pub name: Option<String>,
    /// `cf-turnstile-response`.
    pub captcha: Option<String>,
    /// `website`, the honeypot: humans never fill it.
    pub honeypot: Option<String>,
}

/// Whether the caller is a plain HTML form (answer with pages and redirects).
pub fn wants_html(req: &HttpRequest) -> bool {
    // Media types are case-insensitive (RFC 9110), as `parse_form` reads them.
    let accept = req
        .header_value("accept")
        .unwrap_or("")
        .to_ascii_lowercase();
    let ctype = req
        .header_value("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    accept.contains("text/html") && ctype.starts_with("application/x-www-form-urlencoded")
}

fn set(form: &mut PublicForm, key: &str, value: String) {
    let v = Some(value).filter(|v| !v.trim().is_empty());
    match key {
        "email" => form.email = v,
        "name" => form.name = v,
        "cf-turnstile-response" => form.captcha = v,
        "website" => form.honeypot = v,
        _ => {} // Extra fields from embedding pages are ignored.
    }
}

/// Parses a form-encoded or JSON body.
pub fn parse_form(req: &HttpRequest) -> Result<PublicForm, ValidationError> {
    let mut form = PublicForm::default();
    match media_type(req).as_str() {
        "application/x-www-form-urlencoded" => {
            for (k, v) in form_urlencoded::parse(&req.body) {
                set(&mut form, &k, v.into_owned());
            }
        }
        "application/json" => {
            let value: Value = serde_json::from_slice(&req.body)
                .map_err(|_| ValidationError::invalid_json("body is not valid JSON"))?;
            let Value::Object(obj) = value else {
                return Err(ValidationError::invalid_json("body must be a JSON object"));
            };
            for (k, v) in obj {
                match v {
                    Value::String(s) => set(&mut form, &k, s),
                    Value::Null => {}
                    _ if ["email", "name", "cf-turnstile-response", "website"]
                        .contains(&k.as_str()) =>
                    {
                        return Err(ValidationError::wrong_type(&k, "a string"))
                    }
                    _ => {}
                }
            }
        }
        _ => {
            return Err(ValidationError::media_type(
                "application/x-www-form-urlencoded or application/json",
            ))
        }
    }
    Ok(form)
}

/// What the `Origin` header means for this request.
#[derive(Clone, Debug, PartialEq)]
pub enum Cors {
    /// No `Origin` (curl, server to server) or the Worker's own page.
    SameOrigin,
    /// An allowlisted page: echo it in `Access-Control-Allow-Origin`.
    Allowed(String),
    /// Any other page.
    Denied,
}

/// Classifies the request's `Origin` against `ALLOWED_ORIGINS`.
pub fn cors(req: &HttpRequest, self_origin: Option<&str>, cfg: &Config) -> Cors {
    match req.header_value("origin") {
        None => Cors::SameOrigin,
        Some(o) if Some(o) == self_origin => Cors::SameOrigin,
        // A page with `Referrer-Policy: no-referrer` posts with `Origin: null`; the browser's
        // own `Sec-Fetch-Site` (not settable by scripts) still says whether it is ours.
        Some("null") if req.header_value("sec-fetch-site") == Some("same-origin") => {
            Cors::SameOrigin
        }
        Some(o) if cfg.public.allowed_origins.iter().any(|a| a == o) => {
            Cors::Allowed(o.to_string())
        }
        Some(_) => Cors::Denied,
    }
}

/// Adds the CORS headers for `cors` (always `Vary: Origin`; never `*`).
pub fn with_cors(mut resp: HttpResponse, cors: &Cors) -> HttpResponse {
    resp.headers.push(("vary".into(), "Origin".into()));
    if let Cors::Allowed(o) = cors {
        resp.headers
            .push(("access-control-allow-origin".into(), o.clone()));
    }
    resp
}

/// `OPTIONS /v1/public/invites`: the CORS preflight.
pub fn preflight(req: &HttpRequest, self_origin: Option<&str>, cfg: &Config) -> HttpResponse {
    let c = cors(req, self_origin, cfg);
    if c == Cors::Denied {
        return with_cors(
            HttpResponse {
                status: 403,
                headers: vec![],
                body: vec![],
            },
            &c,
        );
    }
    with_cors(
        HttpResponse {
            status: 204,
            headers: vec![
                ("access-control-allow-methods".into(), "POST".into()),
                ("access-control-allow-headers".into(), "content-type".into()),
                ("access-control-max-age".into(), "600".into()),
            ],
            body: vec![],
        },
        &c,
    )
}

fn accepted(cfg: &Config, html: bool) -> HttpResponse {
    if html {
        let location = cfg
            .public
            .thank_you_url
            .clone()
            .unwrap_or_else(|| "/thanks".into());
        return HttpResponse {
            status: 303,
            headers: vec![("location".into(), location)],
            body: vec![],
        };
    }
    HttpResponse::json(
        202,
        &json!({"status": "accepted", "message": ACCEPTED_MESSAGE}),
    )
}

/// A random UUID v4 (Turnstile's idempotency key).
fn uuid_v4(p: &impl Platform) -> Option<String> {
    let h = random_hex(p, 16).ok()?;
    let mut b: Vec<char> = h.chars().collect();
    b[12] = '4';
    b[16] = ['8', '9', 'a', 'b'][(b[16].to_digit(16).unwrap_or(0) & 3) as usize];
    let s: String = b.into_iter().collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..]
    ))
}

/// The rate-limit key of a client: its IPv4 address, or its IPv6 /64 (one subscriber gets a
/// whole /64, so keying on the full address gave each of them 2^64 budgets).
pub fn client_key(ip: Option<&str>) -> String {
    match ip.and_then(|s| s.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".into(),
    }
}

/// `POST /v1/public/invites`, its body already read (at most [`MAX_PUBLIC_BODY`]). CORS
/// headers are added by the caller.
pub async fn invite<P: Platform>(
    cx: &Ctx<'_, P>,
    req: &HttpRequest,
    cors_result: &Cors,
) -> Result<HttpResponse, ApiError> {
    let (cfg, p) = (cx.cfg, cx.p);
    if *cors_result == Cors::Denied {
        return Err(ApiError::origin_not_allowed());
    }
    let form = parse_form(req)?;
    let html = wants_html(req);

    let ip = req.header_value("cf-connecting-ip");
    if p.allow(&format!("public-invite:{}", client_key(ip))).await == Some(false) {
        return Err(ApiError::rate_limited(RATE_LIMIT_RETRY_SEC));
    }
    if form.honeypot.is_some() {
        cx.note("honeypot filled: nothing done");
        return Ok(accepted(cfg, html));
    }
    let email = match form.email.as_deref() {
        None => return Err(ValidationError::missing("email").into()),
        Some(raw) => email::normalize(raw)
            .map_err(|why| ValidationError::field(ErrorCode::InvalidEmail, "email", why))?,
    };

    if let Some(secret) = &cfg.public.turnstile_secret {
        let Some(token) = form.captcha.as_deref() else {
            return Err(ApiError::captcha_failed());
        };
        // Cloudflare's limit: a longer token can't be valid, so no siteverify call for it.
        if token.len() > MAX_TURNSTILE_TOKEN {
            cx.note("Turnstile token over 2048 characters");
            return Err(ApiError::captcha_failed());
        }
        let mut body = json!({"secret": secret.expose(), "response": token});
        if let Some(ip) = ip {
            body["remoteip"] = json!(ip);
        }
        if let Some(key) = uuid_v4(p) {
            body["idempotency_key"] = json!(key);
        }
        let verify = HttpRequest::new(
            "POST",
            format!("{}/turnstile/v0/siteverify", cfg.public.turnstile_base_url),
        )
        .json(&body);
        let resp = cx
            .client()
            .send_retrying(Service::Turnstile, verify)
            .await?;
        let answer = serde_json::from_slice::<Value>(&resp.body).unwrap_or(Value::Null);
        let ok = resp.status == 200 && answer.get("success").and_then(Value::as_bool) == Some(true);
        if !ok {
            // Its `error-codes` say why: `invalid-input-secret` is the operator's key, not
            // the visitor's token, and would refuse every sign-up.
            let why = match answer.get("error-codes") {
                Some(codes) if resp.status == 200 => codes.to_string(),
                _ => error_message(&resp),
            };
            cx.note(format!("siteverify refused: {why}"));
            return Err(ApiError::captcha_failed());
        }
        // Cloudflare's validation guide checks where the challenge was solved: a widget can
        // serve several sites, and a token from one must not pass on another.
        let hosts = &cfg.public.turnstile_hostnames;
        let solved_on = answer.get("hostname").and_then(Value::as_str).unwrap_or("");
        if !hosts.is_empty() && !hosts.iter().any(|h| h.eq_ignore_ascii_case(solved_on)) {
            cx.note(format!(
                "siteverify: solved on {solved_on:?}, not in TURNSTILE_HOSTNAMES"
            ));
            return Err(ApiError::captcha_failed());
        }
    }

    let mut input = InviteInput::for_email(&email);
    input.profile = form
        .name
        .as_deref()
        .and_then(|n| clean_name(n, MAX_NAME_CHARS))
        .map(|n| vec![("name".to_string(), n)])
        .unwrap_or_default();
    input.roles = cfg.public.roles.clone();
    input
        .app_metadata
        .insert("invite_source".into(), json!("public_form"));
    input.ticket_target = default_ticket_target(cfg);
    input.ticket_ttl_sec = cfg.ticket_ttl_sec;
    input.on_existing = OnExisting::KeepRoles;
    let id = new_id(p, "inv")?;
    // Greeted neutrally: an anonymous caller's text never reaches somebody else's inbox.
    let message = QueuedInvite::new(
        id.clone(),
        Kind::Public,
        input,
        None,
        Kind::Public.as_str(),
        format!("public:{id}"),
    );
    // No Auth0 call on this path: the answer is the same, in bytes and in time, for new and
    // existing accounts. The gate claims the address's email window (one email per window,
    // even for concurrent sign-ups) and records the invite before the queue gets it.
    match accept(cx, vec![message], None, None, true).await? {
        Acceptance::Cooldown => cx.note("email cooldown: nothing queued"),
        _ => cx.note(format!("queued {id}")),
    }
    Ok(accepted(cfg, html))
}

/// The HTML answer to a failed plain form post, titled for what went wrong.
pub fn html_error(e: &ApiError) -> HttpResponse {
    let title = match e.code {
        ErrorCode::RateLimited => "Too many attempts",
        ErrorCode::CaptchaFailed => "Please try the check again",
        ErrorCode::MissingField | ErrorCode::InvalidEmail | ErrorCode::InvalidField => {
            "Please check your address"
        }
        ErrorCode::OriginNotAllowed => "This form can't be used from here",
        ErrorCode::PayloadTooLarge | ErrorCode::UnsupportedMediaType | ErrorCode::InvalidJson => {
            "The form could not be read"
        }
        _ => "Something went wrong",
    };
    let page = page::message(e.status(), title, &e.message);
    match e.retry_after_sec {
        Some(s) => page.with_header("retry-after", s.to_string()),
        None => page,
    }
}
