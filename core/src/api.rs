//! The HTTP API: routing, authentication, reading the body, the error shape and the log
//! line. The Worker shell converts its request (headers only) into an [`HttpRequest`], passes
//! the body as a [`BodySource`], calls [`handle`], and sends back what it gets.

use std::rc::Rc;

use serde_json::{json, Value};

use crate::auth0::{Ctx, RequestState};
use crate::config::{Config, ConfigError};
use crate::error::{ApiError, ErrorCode, ValidationError};
use crate::http::{check_declared_size, check_json_type, BodyError, BodySource};
use crate::invite::{parse_invite, run_invite, Verified, MAX_BODY_BYTES};
use crate::invitees::{self, Action};
use crate::payments::MAX_WEBHOOK_BYTES;
use crate::platform::{random_hex, HttpRequest, HttpResponse, KvOp, Platform};
use crate::public::MAX_PUBLIC_BODY;
use crate::secret::{bearer_token, match_api_key};
use crate::token::IsolateCache;
use crate::{page, payments, public, trusted};

/// The result of handling one request.
#[derive(Debug)]
pub struct Handled {
    /// What to send back.
    pub response: HttpResponse,
    /// KV writes to run after responding (`wait_until`).
    pub deferred: Vec<KvOp>,
    /// One JSON log line, empty when [`Handled::quiet`] (then it is not built at all). Never
    /// holds a token, secret, password or ticket URL.
    pub log: String,
    /// Whether the line is routine and left out of the log: a passing health check (probes
    /// come every few seconds) and a path that is no route at all (scanners probing for
    /// `/wp-login.php` and the like). Either would outnumber the invites in the log, and
    /// building and writing a line is most of such a request's own CPU time; Cloudflare's
    /// analytics count both by status without it. A failing health check, a wrong method on
    /// a real route and every API answer are logged.
    pub quiet: bool,
}

struct Outcome {
    response: Result<HttpResponse, ApiError>,
    label: Option<String>,
    /// CORS headers to add to whatever the answer is.
    cors: Option<public::Cors>,
    /// Answer errors with an HTML page (a plain form post).
    html_errors: bool,
}

impl Outcome {
    fn plain(response: Result<HttpResponse, ApiError>) -> Self {
        Outcome {
            response,
            label: None,
            cors: None,
            html_errors: false,
        }
    }

    fn labelled(response: Result<HttpResponse, ApiError>, label: &str) -> Self {
        Outcome {
            label: Some(label.to_string()),
            ..Outcome::plain(response)
        }
    }
}

/// The routes, decided from the method and path alone, before any body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Landing,
    Thanks,
    Favicon,
    Healthz,
    OpenApi,
    PublicInvite,
    PublicPreflight,
    Invite,
    Batch,
    InviteStatus,
    InviteRetry,
    BatchStatus,
    Invitees,
    Invitee,
    InviteeResend,
    InviteeRevoke,
    Webhook(&'static str),
    WrongMethod(&'static str),
    NotFound,
}

fn classify(method: &str, path: &str) -> Route {
    let get = matches!(method, "GET" | "HEAD");
    match path {
        "/" if get => Route::Landing,
        "/thanks" if get => Route::Thanks,
        "/favicon.ico" if get => Route::Favicon,
        "/healthz" if get => Route::Healthz,
        "/openapi.json" if get => Route::OpenApi,
        "/" | "/thanks" | "/favicon.ico" | "/healthz" | "/openapi.json" => {
            Route::WrongMethod("GET, HEAD")
        }
        "/v1/public/invites" => match method {
            "POST" => Route::PublicInvite,
            "OPTIONS" => Route::PublicPreflight,
            _ => Route::WrongMethod("POST, OPTIONS"),
        },
        "/v1/invites" if method == "POST" => Route::Invite,
        "/v1/invites/batch" if method == "POST" => Route::Batch,
        "/v1/invites/batch" => Route::WrongMethod("POST"),
        p if p.starts_with("/v1/invites/") && p.ends_with("/retry") => match method {
            "POST" => Route::InviteRetry,
            _ => Route::WrongMethod("POST"),
        },
        p if p.starts_with("/v1/invites/") => match method {
            "GET" | "HEAD" => Route::InviteStatus,
            _ => Route::WrongMethod("GET, HEAD"),
        },
        p if p == "/v1/invitees" || p.starts_with("/v1/invitees/") => {
            match (invitees::action_of(p), method) {
                (Some(Action::List), "GET" | "HEAD") => Route::Invitees,
                (Some(Action::Show(_)), "GET" | "HEAD") => Route::Invitee,
                (Some(Action::Resend(_)), "POST") => Route::InviteeResend,
                (Some(Action::Revoke(_)), "POST") => Route::InviteeRevoke,
                (Some(Action::List | Action::Show(_)), _) => Route::WrongMethod("GET, HEAD"),
                (Some(Action::Resend(_) | Action::Revoke(_)), _) => Route::WrongMethod("POST"),
                (None, _) => Route::NotFound,
            }
        }
        p if p.starts_with("/v1/batches/") => match method {
            "GET" | "HEAD" => Route::BatchStatus,
            _ => Route::WrongMethod("GET, HEAD"),
        },
        "/v1/webhooks/stripe" if method == "POST" => Route::Webhook("stripe"),
        "/v1/webhooks/standard" if method == "POST" => Route::Webhook("standard"),
        "/v1/invites" | "/v1/webhooks/stripe" | "/v1/webhooks/standard" => {
            Route::WrongMethod("POST")
        }
        _ => Route::NotFound,
    }
}

/// The path of an inbound URL and the Worker's own origin. Inbound URLs are absolute in the
/// Worker (the origin matters for CORS); tests may pass a bare path.
///
/// The runtime hands the Worker its URL already serialized by the WHATWG URL parser: scheme
/// and host lower-case, no default port, the path percent-encoded and dot segments resolved.
/// So the two parts are cut out of that string, not parsed again: parsing it with the `url`
/// crate, twice a request (routing in the shell, then here), was about a tenth of a warm
/// invite's CPU time in the Worker in a profile. A unit test checks the cut against the
/// `url` crate's parse.
fn request_path(url: &str) -> (String, Option<String>) {
    let before_query = url.split(['?', '#']).next().unwrap_or("");
    let Some((scheme, rest)) = before_query.split_once("://") else {
        return (before_query.to_string(), None);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    // `user:password@` is part of the URL, never of its origin.
    let host = authority.rsplit('@').next().unwrap_or(authority);
    (path.to_string(), Some(format!("{scheme}://{host}")))
}

/// The request headers the route for `method` and `url` reads (lower-case names); no route
/// reads any other. The shell copies just these across the JS boundary: copying every
/// header of every request was the largest fixed cost in a CPU profile. The flow tests hand
/// the core only these too, so a route that starts reading an undeclared header fails them.
pub fn inbound_headers(method: &str, url: &str) -> &'static [&'static str] {
    match classify(method, &request_path(url).0) {
        Route::Landing
        | Route::Thanks
        | Route::Favicon
        | Route::Healthz
        | Route::OpenApi
        | Route::WrongMethod(_)
        | Route::NotFound => &[],
        Route::PublicPreflight => &["origin", "sec-fetch-site"],
        Route::PublicInvite => &[
            "origin",
            "sec-fetch-site",
            "accept",
            "content-type",
            "content-length",
            "cf-connecting-ip",
        ],
        Route::Invite
        | Route::Batch
        | Route::InviteStatus
        | Route::InviteRetry
        | Route::BatchStatus => &["authorization", "content-type", "content-length", "prefer"],
        Route::Invitees | Route::Invitee | Route::InviteeResend | Route::InviteeRevoke => {
            &["authorization"]
        }
        Route::Webhook(_) => &[
            "content-length",
            "stripe-signature",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-id",
            "svix-timestamp",
            "svix-signature",
        ],
    }
}

/// Handles one inbound request. `body` is read only by a route that takes one, after the
/// checks that need no body (configuration, API key, origin, webhook switch), and never past
/// that route's limit.
pub async fn handle<P: Platform>(
    req: HttpRequest,
    body: impl BodySource,
    config: &Result<Config, ConfigError>,
    p: &P,
    cache: &Rc<IsolateCache>,
) -> Handled {
    let started = p.now_ms();
    let request_id = random_hex(p, 8).unwrap_or_else(|_| "0".repeat(16));
    // Inbound URLs are absolute in the Worker (the origin matters for CORS); tests may pass
    // a bare path.
    let (path, self_origin) = request_path(&req.url);
    let budget = config.as_ref().map(|c| c.upstream_deadline_ms).unwrap_or(0);
    let state = RequestState::new(started, budget);
    let route = classify(&req.method, &path);
    let method = req.method.clone();

    let outcome = dispatch(
        route,
        &path,
        req,
        body,
        self_origin.as_deref(),
        config,
        p,
        cache,
        &state,
    )
    .await;
    let (mut response, error) = match outcome.response {
        Ok(r) => (r, None),
        Err(e) if outcome.html_errors => (public::html_error(&e), Some(e)),
        Err(e) => (error_response(&e, &request_id), Some(e)),
    };
    if let Some(c) = &outcome.cors {
        response = public::with_cors(response, c);
    }
    response
        .headers
        .push(("x-request-id".into(), request_id.clone()));
    if response.header_value("cache-control").is_none() {
        response
            .headers
            .push(("cache-control".into(), "no-store".into()));
    }

    let quiet = (route == Route::Healthz && response.status == 200) || route == Route::NotFound;
    if quiet {
        return Handled {
            quiet,
            response,
            deferred: state.deferred.take(),
            log: String::new(),
        };
    }
    let mut log = json!({
        "level": if response.status >= 500 { "error" } else if response.status >= 400 { "warn" } else { "info" },
        "request_id": request_id,
        "method": method,
        "route": crate::error::truncate(&path, 200),
        "status": response.status,
        "upstream_calls": state.upstream_calls.get(),
        "duration_ms": p.now_ms().saturating_sub(started),
    });
    if let Some(e) = &error {
        log["code"] = json!(e.code.as_str());
        if let Some(s) = e.service {
            log["service"] = json!(s.id());
        }
    }
    if let Some(d) = error
        .and_then(|e| e.log_detail)
        .or_else(|| state.note.take())
    {
        log["detail"] = json!(d);
    }
    if let Some(l) = outcome.label {
        log["key"] = json!(l);
    }
    if let Some(s) = state.token_source.get() {
        log["token"] = json!(s.as_str());
    }
    if state.leased.get() {
        log["slots"] = json!("lease");
    }
    Handled {
        quiet,
        response,
        deferred: state.deferred.take(),
        log: crate::http::json_text(&log),
    }
}

/// Reads the body into `req`: refused by its declared length before reading, and by its
/// actual length while reading (never more than `limit + 1` bytes are kept).
async fn read_body(
    req: &mut HttpRequest,
    body: impl BodySource,
    limit: usize,
) -> Result<(), ValidationError> {
    check_declared_size(req, limit)?;
    req.body = match body.read_limited(limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(ValidationError::too_large(limit)),
        Err(BodyError::Unreadable(why)) => {
            return Err(ValidationError::invalid_json(format!(
                "the body could not be read: {why}"
            )))
        }
    };
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn dispatch<P: Platform>(
    route: Route,
    path: &str,
    mut req: HttpRequest,
    body: impl BodySource,
    self_origin: Option<&str>,
    config: &Result<Config, ConfigError>,
    p: &P,
    cache: &Rc<IsolateCache>,
    state: &RequestState,
) -> Outcome {
    match route {
        Route::Thanks => {
            return Outcome::plain(Ok(page::message(
                200,
                "Check your inbox",
                public::ACCEPTED_MESSAGE,
            )))
        }
        Route::Favicon => return Outcome::plain(Ok(page::favicon())),
        Route::WrongMethod(allow) => {
            return Outcome::plain(Err(ApiError::method_not_allowed(allow)))
        }
        Route::NotFound => return Outcome::plain(Err(ApiError::not_found(path))),
        Route::Healthz => return Outcome::plain(Ok(healthz(config))),
        Route::OpenApi => return Outcome::plain(Ok(openapi())),
        _ => {}
    }
    let cfg = match config {
        Ok(c) => c,
        // The problems are for the operator (log, /healthz), not for every caller.
        Err(e) => return Outcome::plain(Err(ApiError::config_invalid(&e.to_string()))),
    };
    let cx = Ctx {
        cfg,
        p,
        cache,
        state,
    };
    match route {
        Route::Landing => Outcome::plain(Ok(page::landing(cfg))),
        Route::PublicPreflight => Outcome::plain(Ok(public::preflight(&req, self_origin, cfg))),
        Route::PublicInvite => {
            let cors = public::cors(&req, self_origin, cfg);
            let html_errors = public::wants_html(&req);
            let response = separate(async {
                if cors == public::Cors::Denied {
                    return Err(ApiError::origin_not_allowed());
                }
                read_body(&mut req, body, MAX_PUBLIC_BODY).await?;
                public::invite(&cx, &req, &cors).await
            })
            .await;
            Outcome {
                response,
                label: Some("public".into()),
                html_errors,
                cors: Some(cors),
            }
        }
        Route::Invite
        | Route::Batch
        | Route::InviteStatus
        | Route::InviteRetry
        | Route::BatchStatus
        | Route::Invitees
        | Route::Invitee
        | Route::InviteeResend
        | Route::InviteeRevoke => {
            let Some(label) = bearer_token(req.header_value("authorization"))
                .and_then(|key| match_api_key(&cfg.api_keys, key))
                .map(str::to_string)
            else {
                return Outcome::plain(Err(ApiError::unauthorized()));
            };
            let response = separate(async {
                match route {
                    Route::InviteStatus => return separate(trusted::status(&cx, path)).await,
                    Route::BatchStatus => return separate(trusted::batch_status(&cx, path)).await,
                    Route::InviteRetry => return separate(trusted::retry(&cx, path)).await,
                    _ => {}
                }
                // `classify` routed this path here only with the action's method.
                if let Some(action) = invitees::action_of(path) {
                    return separate(invitees::handle(&cx, action, &req, &label)).await;
                }
                check_json_type(&req)?;
                if route == Route::Batch {
                    read_body(&mut req, body, trusted::MAX_BATCH_BYTES).await?;
                    return separate(trusted::batch(&cx, &req, &label)).await;
                }
                read_body(&mut req, body, MAX_BODY_BYTES).await?;
                if trusted::prefers_async(&req) {
                    separate(trusted::invite_async(&cx, &req, &label)).await
                } else {
                    separate(invite_authorized(&cx, &req, &label)).await
                }
            })
            .await;
            Outcome::labelled(response, &label)
        }
        Route::Webhook(source) => {
            let response = separate(async {
                payments::enabled(cfg, source)?;
                read_body(&mut req, body, MAX_WEBHOOK_BYTES).await?;
                if source == "stripe" {
                    payments::stripe(&cx, &req).await
                } else {
                    payments::standard(&cx, &req).await
                }
            })
            .await;
            Outcome::labelled(response, source)
        }
        // Answered before the configuration was needed.
        Route::Thanks
        | Route::Favicon
        | Route::WrongMethod(_)
        | Route::NotFound
        | Route::Healthz
        | Route::OpenApi => Outcome::plain(Err(ApiError::not_found(path))),
    }
}

/// A route's work as a future of its own, behind a pointer: its state machine becomes a
/// function of its own instead of part of the request's. V8 compiles a wasm function whole
/// the first time it is called, and the request's state machine held every route (63 KB of
/// wasm in one function, 12 KB now), so a new isolate's first request, even a health check,
/// compiled them all: its first `GET /healthz` went from 10.2 to 7.2 ms of CPU
/// (tests/bench/invocations.mjs), and routes a deployment never uses are never compiled.
fn separate<'a, T>(
    f: impl std::future::Future<Output = T> + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>> {
    Box::pin(f)
}

/// docs/openapi.json, the OpenAPI 3.1 description of this API, as `GET /openapi.json` serves it:
/// without the file's indentation (core/build.rs).
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// `GET /openapi.json`: the document, cacheable (it changes only with a deploy).
fn openapi() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "public, max-age=3600".into()),
        ],
        body: OPENAPI_JSON.as_bytes().to_vec(),
    }
}

/// `GET /healthz`: 200 with any warnings, or 503 listing every problem by name.
fn healthz(config: &Result<Config, ConfigError>) -> HttpResponse {
    match config {
        Ok(cfg) => {
            let warnings = cfg.warnings();
            if warnings.is_empty() {
                HttpResponse::json(200, &json!({"status": "ok"}))
            } else {
                HttpResponse::json(200, &json!({"status": "ok", "warnings": warnings}))
            }
        }
        Err(e) => HttpResponse::json(
            503,
            &json!({"status": "config_invalid", "problems": e.problems}),
        ),
    }
}

async fn invite_authorized<P: Platform>(
    cx: &Ctx<'_, P>,
    req: &HttpRequest,
    label: &str,
) -> Result<HttpResponse, ApiError> {
    let input = parse_invite(&req.body, cx.cfg)?;
    let client = cx.client();
    // The whole invite is admitted by the tenant's pacer first (one gate round trip), or
    // refused with an honest Retry-After before any Auth0 call.
    client.admit(&input).await?;
    let out = run_invite(&client, cx.cfg, cx.p, input, label).await?;
    let mut body = json!({
        "user_id": out.user_id,
        "email": out.email,
        "created": out.created,
        "roles": out.roles,
        "ticket_url": out.ticket_url,
        "ticket_expires_at": out.ticket_expires_at,
    });
    match out.verification {
        None => {}
        Some(Verified::Job { id }) => {
            body["verification"] = json!({"method": "email", "job_id": id})
        }
        Some(Verified::Ticket { url, expires_at }) => {
            body["verification"] =
                json!({"method": "ticket", "ticket_url": url, "ticket_expires_at": expires_at})
        }
    }
    Ok(HttpResponse::json(
        if out.created { 201 } else { 200 },
        &body,
    ))
}

/// The one error shape: `{"error": {"code", "message", "request_id", "field"?, "service"?}}`.
pub fn error_response(e: &ApiError, request_id: &str) -> HttpResponse {
    let mut body =
        json!({"error": {"code": e.code.as_str(), "message": e.message, "request_id": request_id}});
    if let Some(f) = &e.field {
        body["error"]["field"] = Value::String(f.clone());
    }
    if let Some(s) = e.service {
        body["error"]["service"] = json!(s.id());
    }
    let mut resp = HttpResponse::json(e.status(), &body);
    if e.code == ErrorCode::Unauthorized {
        resp = resp.with_header("www-authenticate", "Bearer realm=\"invites\"");
    }
    if let Some(s) = e.retry_after_sec {
        resp = resp.with_header("retry-after", s.to_string());
    }
    if let Some(allow) = e.allow {
        resp = resp.with_header("allow", allow);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("docs/openapi.json is JSON")
    }

    /// Whether the concrete `path` fits the document's path `template` (`{id}` is one
    /// non-empty segment).
    fn fits(template: &str, path: &str) -> bool {
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
    }

    /// A request each route answers. The match is exhaustive, so a new route does not
    /// compile until it has a probe here (and then the test asks the document for it).
    fn probe(route: Route) -> (&'static str, &'static str) {
        match route {
            Route::Landing => ("GET", "/"),
            Route::Thanks => ("GET", "/thanks"),
            Route::Favicon => ("GET", "/favicon.ico"),
            Route::Healthz => ("GET", "/healthz"),
            Route::OpenApi => ("GET", "/openapi.json"),
            Route::PublicInvite => ("POST", "/v1/public/invites"),
            Route::PublicPreflight => ("OPTIONS", "/v1/public/invites"),
            Route::Invite => ("POST", "/v1/invites"),
            Route::Batch => ("POST", "/v1/invites/batch"),
            Route::InviteStatus => ("GET", "/v1/invites/inv_0123456789abcdef"),
            Route::InviteRetry => ("POST", "/v1/invites/inv_0123456789abcdef/retry"),
            Route::BatchStatus => ("GET", "/v1/batches/bat_0123456789abcdef"),
            Route::Invitees => ("GET", "/v1/invitees"),
            Route::Invitee => ("GET", "/v1/invitees/auth0%7C0123456789abcdef"),
            Route::InviteeResend => ("POST", "/v1/invitees/auth0%7C0123456789abcdef/resend"),
            Route::InviteeRevoke => ("POST", "/v1/invitees/auth0%7C0123456789abcdef/revoke"),
            Route::Webhook("stripe") => ("POST", "/v1/webhooks/stripe"),
            Route::Webhook(_) => ("POST", "/v1/webhooks/standard"),
            Route::WrongMethod(_) => ("DELETE", "/healthz"),
            Route::NotFound => ("GET", "/wp-login.php"),
        }
    }

    const ROUTES: &[Route] = &[
        Route::Landing,
        Route::Thanks,
        Route::Favicon,
        Route::Healthz,
        Route::OpenApi,
        Route::PublicInvite,
        Route::PublicPreflight,
        Route::Invite,
        Route::Batch,
        Route::InviteStatus,
        Route::InviteRetry,
        Route::BatchStatus,
        Route::Invitees,
        Route::Invitee,
        Route::InviteeResend,
        Route::InviteeRevoke,
        Route::Webhook("stripe"),
        Route::Webhook("standard"),
    ];

    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for &route in ROUTES {
            let (method, path) = probe(route);
            assert_eq!(classify(method, path), route, "{method} {path}");
            let described = paths.iter().any(|(template, item)| {
                fits(template, path) && item.get(method.to_ascii_lowercase()).is_some()
            });
            assert!(described, "docs/openapi.json lacks {method} {path}");
            if method == "GET" {
                assert_eq!(classify("HEAD", path), route, "HEAD {path}");
            }
        }
        // And the other way round: every operation described is one the Worker routes.
        for (template, item) in paths {
            let path = template
                .replace("{id}", "inv_0123456789abcdef")
                .replace("{ref}", "auth0%7C0123456789abcdef");
            for (method, op) in item.as_object().expect("path item") {
                if !op.is_object() || !op.get("responses").is_some_and(Value::is_object) {
                    continue;
                }
                let route = classify(&method.to_ascii_uppercase(), &path);
                assert!(
                    !matches!(route, Route::WrongMethod(_) | Route::NotFound),
                    "{method} {template} is described but not routed"
                );
                assert!(
                    op["responses"].get("405").is_some(),
                    "{method} {template} lacks its 405"
                );
            }
        }
        // What is no route is not described (the document's 404 and 405 cover it).
        let (method, path) = probe(Route::NotFound);
        assert_eq!(classify(method, path), Route::NotFound);
        assert!(!paths.contains_key(path));
        let (method, path) = probe(Route::WrongMethod("GET, HEAD"));
        assert_eq!(classify(method, path), Route::WrongMethod("GET, HEAD"));
        assert!(paths[path].get(method.to_ascii_lowercase()).is_none());
    }

    #[test]
    fn inbound_urls_are_cut_as_the_url_crate_parses_them() {
        for url in [
            "http://worker.test/v1/invites",
            "https://invites.example.com/v1/invites/inv_1/retry?x=1&y=%20#frag",
            "https://invites.example.com:8443/healthz",
            "http://127.0.0.1:8787/",
            "http://[::1]:8787/v1/public/invites?",
            "https://user:pass@invites.example.com/openapi.json",
            "https://invites.example.com",
            "https://invites.example.com?q=1",
            "https://invites.example.com/v1/invitees/auth0%7C123/resend",
            "https://invites.example.com/a%2Fb/%40",
        ] {
            let parsed = url::Url::parse(url).unwrap();
            assert_eq!(
                request_path(url),
                (
                    parsed.path().to_string(),
                    Some(parsed.origin().ascii_serialization())
                ),
                "{url}"
            );
        }
        assert_eq!(
            request_path("/v1/invites?x#y"),
            ("/v1/invites".into(), None)
        );
    }

    #[test]
    fn the_openapi_document_is_served_before_the_configuration_is_needed() {
        assert_eq!(classify("GET", "/openapi.json"), Route::OpenApi);
        assert_eq!(classify("HEAD", "/openapi.json"), Route::OpenApi);
        assert_eq!(
            classify("POST", "/openapi.json"),
            Route::WrongMethod("GET, HEAD")
        );
        assert!(inbound_headers("GET", "https://w.example/openapi.json").is_empty());
        let r = openapi();
        assert_eq!(r.header_value("content-type"), Some("application/json"));
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).ok(),
            Some(document())
        );
    }
}
