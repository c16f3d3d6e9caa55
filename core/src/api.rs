//! The HTTP API: routing, authentication, the error shape and the log line. The Worker shell
//! converts its request into an [`HttpRequest`], calls [`handle`], and sends back what it gets.

use std::rc::Rc;

use serde_json::{json, Value};

use crate::auth0::{Auth0, RequestCtx};
use crate::config::origin_of;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::error::ValidationError;
use crate::invite::{parse_invite, run_invite, MAX_BODY_BYTES};
use crate::platform::{random_hex, HttpRequest, HttpResponse, KvOp, Platform};
use crate::secret::{bearer_token, match_api_key};
use crate::token::IsolateCache;
use crate::{page, payments, public};

/// The result of handling one request.
#[derive(Debug)]
pub struct Handled {
    /// What to send back.
    pub response: HttpResponse,
    /// KV writes to run after responding (`wait_until`).
    pub deferred: Vec<KvOp>,
    /// One JSON log line. Never holds a token, secret, password or ticket URL.
    pub log: String,
}

struct Outcome {
    response: Result<HttpResponse, ApiError>,
    label: Option<String>,
    /// CORS headers to add to whatever the answer is.
    cors: Option<public::Cors>,
    /// Answer errors with an HTML page (a plain form post).
    html_errors: bool,
}

/// Handles one inbound request.
pub async fn handle<P: Platform>(
    req: HttpRequest,
    config: &Result<Config, ConfigError>,
    p: &P,
    cache: &Rc<IsolateCache>,
) -> Handled {
    let started = p.now_ms();
    let request_id = random_hex(p, 8).unwrap_or_else(|_| "0".repeat(16));
    // Inbound URLs are absolute in the Worker (the origin matters for CORS); tests may pass
    // a bare path.
    let (path, self_origin) = match url::Url::parse(&req.url) {
        Ok(u) => (u.path().to_string(), Some(origin_of(&u))),
        Err(_) => (
            req.url.split(['?', '#']).next().unwrap_or("").to_string(),
            None,
        ),
    };
    let budget = config.as_ref().map(|c| c.upstream_deadline_ms).unwrap_or(0);
    let ctx = RequestCtx::new(started, budget);

    let outcome = route(&req, &path, self_origin.as_deref(), config, p, cache, &ctx).await;
    let (mut response, code, detail) = match outcome.response {
        Ok(r) => (r, None, None),
        Err(e) if outcome.html_errors => {
            (public::html_error(&e), Some(e.code), e.log_detail.clone())
        }
        Err(e) => (
            error_response(&e, &request_id),
            Some(e.code),
            e.log_detail.clone(),
        ),
    };
    if let Some(c) = &outcome.cors {
        response = public::with_cors(response, c);
    }
    response
        .headers
        .push(("x-request-id".into(), request_id.clone()));
    response
        .headers
        .push(("cache-control".into(), "no-store".into()));

    let mut log = json!({
        "level": if response.status >= 500 { "error" } else if response.status >= 400 { "warn" } else { "info" },
        "request_id": request_id,
        "method": req.method,
        "route": path,
        "status": response.status,
        "upstream_calls": ctx.upstream_calls.get(),
        "duration_ms": p.now_ms().saturating_sub(started),
    });
    if let Some(c) = code {
        log["code"] = json!(c);
    }
    if let Some(d) = detail.or_else(|| ctx.note.take()) {
        log["detail"] = json!(d);
    }
    if let Some(l) = outcome.label {
        log["key"] = json!(l);
    }
    if let Some(s) = ctx.token_source.get() {
        log["token"] = json!(s.as_str());
    }
    Handled {
        response,
        deferred: ctx.deferred.take(),
        log: log.to_string(),
    }
}

async fn route<P: Platform>(
    req: &HttpRequest,
    path: &str,
    self_origin: Option<&str>,
    config: &Result<Config, ConfigError>,
    p: &P,
    cache: &Rc<IsolateCache>,
    ctx: &RequestCtx,
) -> Outcome {
    let plain = |response| Outcome {
        response,
        label: None,
        cors: None,
        html_errors: false,
    };
    match (path, req.method.as_str()) {
        ("/", "GET" | "HEAD") => plain(match config {
            Ok(cfg) => Ok(page::landing(cfg)),
            Err(e) => Err(config_invalid(e)),
        }),
        ("/thanks", "GET" | "HEAD") => plain(Ok(page::message(
            200,
            "Check your inbox",
            public::ACCEPTED_MESSAGE,
        ))),
        ("/v1/public/invites", "OPTIONS" | "POST") => {
            let cfg = match config {
                Ok(c) => c,
                Err(e) => return plain(Err(config_invalid(e))),
            };
            if req.method == "OPTIONS" {
                return plain(Ok(public::preflight(req, self_origin, cfg)));
            }
            let cors = public::cors(req, self_origin, cfg);
            let response = public::invite(req, &cors, cfg, p, cache, ctx).await;
            Outcome {
                response,
                label: Some("public".into()),
                html_errors: public::wants_html(req),
                cors: Some(cors),
            }
        }
        ("/v1/public/invites", _) => plain(Err(method_not_allowed("POST, OPTIONS"))),
        ("/healthz", "GET" | "HEAD") => plain(Ok(match config {
            Ok(_) => HttpResponse::json(200, &json!({"status": "ok"})),
            Err(e) => HttpResponse::json(
                503,
                &json!({"status": "config_invalid", "problems": e.problems}),
            ),
        })),
        ("/v1/invites", "POST") => invite(req, config, p, cache, ctx).await,
        ("/v1/webhooks/stripe" | "/v1/webhooks/standard", "POST") => {
            let cfg = match config {
                Ok(c) => c,
                Err(e) => return plain(Err(config_invalid(e))),
            };
            let source = if path.ends_with("stripe") {
                "stripe"
            } else {
                "standard"
            };
            let response = if source == "stripe" {
                payments::stripe(req, cfg, p, cache, ctx).await
            } else {
                payments::standard(req, cfg, p, cache, ctx).await
            };
            Outcome {
                response,
                label: Some(source.to_string()),
                cors: None,
                html_errors: false,
            }
        }
        ("/v1/webhooks/stripe" | "/v1/webhooks/standard", _) => {
            plain(Err(method_not_allowed("POST")))
        }
        ("/healthz", _) => plain(Err(method_not_allowed("GET, HEAD"))),
        ("/v1/invites", _) => plain(Err(method_not_allowed("POST"))),
        _ => plain(Err(ApiError::new(
            404,
            "not_found",
            format!("no route for {path}"),
        ))),
    }
}

fn config_invalid(e: &ConfigError) -> ApiError {
    ApiError {
        log_detail: Some(e.to_string()),
        ..ApiError::new(
            500,
            "config_invalid",
            format!("the service is misconfigured: {}", e.problems.join("; ")),
        )
    }
}

fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError {
        // Carried to the Allow header by error_response.
        log_detail: Some(format!("allow: {allow}")),
        ..ApiError::new(
            405,
            "method_not_allowed",
            format!("method not allowed; use {allow}"),
        )
    }
}

async fn invite<P: Platform>(
    req: &HttpRequest,
    config: &Result<Config, ConfigError>,
    p: &P,
    cache: &Rc<IsolateCache>,
    ctx: &RequestCtx,
) -> Outcome {
    let cfg = match config {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                response: Err(config_invalid(e)),
                label: None,
                cors: None,
                html_errors: false,
            }
        }
    };
    let Some(label) = bearer_token(req.header_value("authorization"))
        .and_then(|key| match_api_key(&cfg.api_keys, key))
        .map(str::to_string)
    else {
        return Outcome {
            response: Err(ApiError::new(
                401,
                "unauthorized",
                "send a valid API key as Authorization: Bearer <key>",
            )),
            label: None,
            cors: None,
            html_errors: false,
        };
    };
    let response = invite_authorized(req, cfg, p, cache, ctx, &label).await;
    Outcome {
        response,
        label: Some(label),
        cors: None,
        html_errors: false,
    }
}

/// Refuses a body over `max` bytes, by its declared length or its actual one.
pub fn check_body_size(req: &HttpRequest, max: usize) -> Result<(), ValidationError> {
    let declared = req
        .header_value("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) || req.body.len() > max {
        return Err(ValidationError {
            status: 413,
            code: "payload_too_large",
            field: None,
            message: format!("body must be at most {max} bytes"),
        });
    }
    Ok(())
}

/// Checks the body's size and JSON content type.
pub fn check_json_body(req: &HttpRequest, max: usize) -> Result<(), ValidationError> {
    check_body_size(req, max)?;
    let ctype = req.header_value("content-type").unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ValidationError {
            status: 415,
            code: "unsupported_media_type",
            field: None,
            message: "send Content-Type: application/json".into(),
        });
    }
    Ok(())
}

async fn invite_authorized<P: Platform>(
    req: &HttpRequest,
    cfg: &Config,
    p: &P,
    cache: &Rc<IsolateCache>,
    ctx: &RequestCtx,
    label: &str,
) -> Result<HttpResponse, ApiError> {
    check_json_body(req, MAX_BODY_BYTES)?;
    let input = parse_invite(&req.body, cfg)?;
    let client = Auth0::new(cfg, p, cache, ctx);
    let out = run_invite(&client, cfg, p, input, label).await?;
    Ok(HttpResponse::json(
        if out.created { 201 } else { 200 },
        &json!({
            "user_id": out.user_id,
            "email": out.email,
            "created": out.created,
            "roles": out.roles,
            "ticket_url": out.ticket_url,
            "ticket_expires_at": out.ticket_expires_at,
        }),
    ))
}

/// The one error shape: `{"error": {"code", "message", "request_id", "field"?}}`.
pub fn error_response(e: &ApiError, request_id: &str) -> HttpResponse {
    let mut body =
        json!({"error": {"code": e.code, "message": e.message, "request_id": request_id}});
    if let Some(f) = &e.field {
        body["error"]["field"] = Value::String(f.clone());
    }
    let mut resp = HttpResponse::json(e.status, &body);
    if e.status == 401 {
        resp = resp.with_header("www-authenticate", "Bearer realm=\"invites\"");
    }
    if let Some(s) = e.retry_after_sec {
        resp = resp.with_header("retry-after", s.to_string());
    }
    if e.status == 405 {
        if let Some(allow) = e
            .log_detail
            .as_deref()
            .and_then(|d| d.strip_prefix("allow: "))
        {
            resp = resp.with_header("allow", allow);
        }
    }
    resp
}
