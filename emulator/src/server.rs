//! HTTP plumbing: the server (hyper's HTTP/1.1 server on a multi-threaded
//! tokio runtime, one task per connection), reading requests, routing to the
//! Authentication API, the Management API (through the latency / fault / 429
//! / rate-limit / auth / scope pipeline), the change-password and email
//! endpoints (latency / fault pipeline), the Turnstile siteverify stand-in,
//! the hosted ticket pages (`/u/...`) and the control API, and writing
//! responses.
//!
//! Every connection is its own task, so a new connection is served at once
//! however many keep-alive connections sit idle (tiny_http, used before, ran
//! connections on a thread pool that could leave a burst of new ones queued
//! behind idle keep-alive connections for seconds). Idle keep-alive
//! connections are never closed by the server, as pooling clients (workerd)
//! expect.
//!
//! The handlers are synchronous and share one [`State`] behind a `Mutex`.
//! They run directly on the runtime's worker threads: each holds the lock
//! briefly and never waits on I/O, so moving them to the blocking pool would
//! only add a thread hop per request. The one slow step,
//! `latency_ms`, is an async sleep taken without the lock, so a delayed
//! request never holds up another connection.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::options::Options;
use crate::state::State;
use crate::{api, control, emailapi, hosted, turnstile, util};

/// Largest request body accepted (like Hapi's default payload limit).
pub const MAX_BODY: usize = 1024 * 1024;

/// Content type of every Management API response.
pub const MGMT_CT: &str = "application/json; charset=utf-8";
/// Content type of Authentication API responses.
pub const AUTH_CT: &str = "application/json";

/// A parsed incoming request.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: String,
    /// Raw path (still percent-encoded), without the query.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub content_type: String,
    pub authorization: Option<String>,
    /// The `Idempotency-Key` header (email API).
    pub idempotency_key: Option<String>,
    pub body: Vec<u8>,
    /// The body exceeded [`MAX_BODY`] (and was dropped). Answered 413 at the
    /// point where Auth0 (Hapi) reads the payload: after authentication.
    pub body_too_large: bool,
}

impl Incoming {
    /// The last value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// The HTTP reason phrase Auth0 puts in the `error` field.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

impl Reply {
    pub fn json_with(status: u16, value: &Value, content_type: &'static str) -> Reply {
        Reply {
            status,
            content_type,
            body: serde_json::to_vec(value).unwrap_or_default(),
            headers: Vec::new(),
        }
    }

    /// A Management API JSON response.
    pub fn mgmt(status: u16, value: &Value) -> Reply {
        Reply::json_with(status, value, MGMT_CT)
    }

    /// A Management API error: `{statusCode, error, message[, errorCode]}`.
    pub fn mgmt_error(status: u16, message: &str, error_code: Option<&str>) -> Reply {
        let mut v = json!({
            "statusCode": status,
            "error": reason(status),
            "message": message,
        });
        if let (Some(code), Value::Object(m)) = (error_code, &mut v) {
            m.insert("errorCode".into(), json!(code));
        }
        Reply::mgmt(status, &v)
    }

    /// 204 with an empty body, still labelled JSON as Auth0 does.
    pub fn no_content() -> Reply {
        Reply {
            status: 204,
            content_type: MGMT_CT,
            body: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn not_found() -> Reply {
        Reply::mgmt_error(404, "Not Found", None)
    }

    pub fn with_headers(mut self, headers: Vec<(&'static str, String)>) -> Reply {
        self.headers.extend(headers);
        self
    }
}

/// State shared by the connection tasks.
pub struct Shared {
    state: Mutex<State>,
    log_requests: bool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running emulator. Dropping it (or calling [`Handle::shutdown`]) stops it.
pub struct Handle {
    addr: SocketAddr,
    host: String,
    /// `None` only once stopped.
    runtime: Option<Runtime>,
    /// The accept loop, which only ends if it panics.
    accept: Option<JoinHandle<()>>,
}

impl Handle {
    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The socket address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT` with the configured host and the bound port.
    pub fn base_url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port())
        } else {
            format!("http://{}:{}", self.host, self.port())
        }
    }

    /// Blocks until the server stops (it only stops through `shutdown`).
    pub fn wait(mut self) {
        if let (Some(rt), Some(accept)) = (&self.runtime, self.accept.take()) {
            let _ = rt.block_on(accept);
        }
    }

    /// Stops accepting requests, closes every connection and joins the
    /// runtime's threads.
    pub fn shutdown(self) {
        drop(self);
    }

    fn stop(&mut self) {
        let Some(rt) = self.runtime.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Dropped inside some other async runtime, where blocking on the
            // threads is not allowed: stop without waiting for them.
            rt.shutdown_background();
        } else {
            // Cancels every task (dropping the listener and the connections)
            // and joins the worker threads.
            drop(rt);
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the server and starts its runtime; `opts.threads` is the number of
/// the runtime's worker threads.
pub fn start(opts: Options) -> io::Result<Handle> {
    let listener = std::net::TcpListener::bind((opts.host.as_str(), opts.port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .thread_name("auth0-emulator")
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        TcpListener::from_std(listener)?
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(&opts)),
        log_requests: opts.log_requests,
    });
    let accept = runtime.spawn(accept_loop(listener, shared));
    Ok(Handle {
        addr,
        host: opts.host,
        runtime: Some(runtime),
        accept: Some(accept),
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, Arc::clone(&shared)));
            }
            Err(e) => {
                // A connection that failed before it was accepted, or no file
                // descriptors left: neither is fatal, so pause and go on.
                if shared.log_requests {
                    eprintln!("accept failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection, with keep-alive, until the client closes it.
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    // Responses go out in one write; don't let Nagle hold back the next one.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |rq| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(serve(&shared, rq).await) }
    });
    // No header-read timeout (it would need a timer): like tiny_http before,
    // an idle keep-alive connection stays open until the client closes it, so
    // a pooling client never sends a request into a connection being closed.
    let _ = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn header_value(headers: &HeaderMap, name: impl hyper::header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Reads the whole body; past [`MAX_BODY`] it keeps reading (so the client
/// can finish sending and read the answer) but drops the data and says so.
async fn read_body(mut body: hyper::body::Incoming) -> Result<(Vec<u8>, bool), hyper::Error> {
    let mut data = Vec::new();
    let mut too_large = false;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame?.into_data() else {
            continue; // trailers
        };
        if too_large {
            continue;
        }
        if data.len() + chunk.len() > MAX_BODY {
            too_large = true;
            data = Vec::new();
        } else {
            data.extend_from_slice(&chunk);
        }
    }
    Ok((data, too_large))
}

async fn serve(shared: &Shared, rq: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = rq.into_parts();
    let method = parts.method.as_str().to_ascii_uppercase();
    let path = parts.uri.path().to_string();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let content_type = header_value(&parts.headers, CONTENT_TYPE).unwrap_or_default();
    let authorization = header_value(&parts.headers, AUTHORIZATION);
    let idempotency_key = header_value(&parts.headers, "idempotency-key");

    let reply = match read_body(body).await {
        Err(_) => Reply::mgmt_error(400, "Invalid request payload", None),
        Ok((body, body_too_large)) => {
            let inc = Incoming {
                method: method.clone(),
                path: path.clone(),
                query,
                content_type,
                authorization,
                idempotency_key,
                body,
                body_too_large,
            };
            dispatch(shared, &inc).await
        }
    };

    if shared.log_requests {
        eprintln!(
            "{} {} {} {}ms",
            method,
            path,
            reply.status,
            started.elapsed().as_millis()
        );
    }

    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(reply.content_type) {
        headers.insert(CONTENT_TYPE, v);
    }
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    resp
}

/// The `latency_ms` delay: an async sleep, so other connections go on.
async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Routes a request to the right API.
pub async fn dispatch(shared: &Shared, inc: &Incoming) -> Reply {
    if inc.path == "/oauth/token" {
        if inc.method != "POST" {
            return auth_not_found();
        }
        let latency = {
            let mut st = shared.lock();
            st.stats.token_requests += 1;
            st.stats.hit("POST /oauth/token");
            st.config.latency_ms
        };
        sleep_ms(latency).await;
        if inc.body_too_large {
            return too_large();
        }
        let mut st = shared.lock();
        return api::token(&mut st, inc, util::now_ms());
    }
    if inc.path == "/dbconnections/change_password" {
        if inc.method != "POST" {
            return auth_not_found();
        }
        return faultable(
            shared,
            inc,
            "POST /dbconnections/change_password",
            api::change_password_unavailable,
            api::change_password,
        )
        .await;
    }
    if inc.path == "/emails" {
        if inc.method != "POST" {
            return emailapi::method_not_allowed();
        }
        return faultable(
            shared,
            inc,
            "POST /emails",
            emailapi::unavailable,
            emailapi::send,
        )
        .await;
    }
    if inc.path == "/turnstile/v0/siteverify" {
        // Counted, but no latency, fault, storm or rate limit.
        if inc.method != "POST" {
            return turnstile::method_not_allowed();
        }
        let mut st = shared.lock();
        st.stats.hit("POST /turnstile/v0/siteverify");
        return turnstile::siteverify(&mut st, inc);
    }
    if hosted::is_hosted(&inc.path) {
        // Universal Login's pages, not the Management API: no token, no
        // stats, no latency, faults or rate limit.
        let mut st = shared.lock();
        return hosted::handle(&mut st, inc);
    }
    if inc.path == "/api/v2" || inc.path.starts_with("/api/v2/") {
        return management(shared, inc).await;
    }
    if inc.path.starts_with("/__emulator/") {
        if inc.body_too_large {
            return too_large();
        }
        let mut st = shared.lock();
        return control::handle(&mut st, inc);
    }
    Reply::not_found()
}

fn auth_not_found() -> Reply {
    Reply::json_with(
        404,
        &json!({"statusCode":404,"error":"Not Found","message":"Not Found"}),
        AUTH_CT,
    )
}

/// The pipeline of the change-password and email endpoints: count the
/// arrival, latency (slept without the lock), fault injection (`fail_next`,
/// `fail_rate` → `on_fault`), then the handler. No rate limit, no storm.
async fn faultable(
    shared: &Shared,
    inc: &Incoming,
    template: &'static str,
    on_fault: fn() -> Reply,
    handler: fn(&mut State, &Incoming) -> Reply,
) -> Reply {
    let latency = {
        let mut st = shared.lock();
        st.stats.hit(template);
        st.config.latency_ms
    };
    sleep_ms(latency).await;
    let mut st = shared.lock();
    if st.take_fault() {
        return on_fault();
    }
    handler(&mut st, inc)
}

/// The Management API pipeline: latency, faults, 429 storm, rate limit,
/// authentication, scope, handler. Every answer carries `x-ratelimit-*`.
async fn management(shared: &Shared, inc: &Incoming) -> Reply {
    let route = api::match_route(&inc.method, &inc.path["/api/v2".len()..]);

    // Count the arrival, then sleep without holding the lock.
    let latency = {
        let mut st = shared.lock();
        st.stats.management_requests += 1;
        if let Some((_, template)) = &route {
            st.stats.hit(template);
        }
        st.config.latency_ms
    };
    sleep_ms(latency).await;

    let mut st = shared.lock();
    let now = Instant::now();
    let now_ms = util::now_ms();

    let template = route.as_ref().map(|(_, t)| *t);

    // (2) fault injection
    if st.take_fault() {
        let h = st.limiter.for_route(template).peek(now, now_ms);
        return Reply::mgmt_error(503, "The service is temporarily unavailable.", None)
            .with_headers(h.to_pairs());
    }

    // (3) 429 storm
    if st.config.storm_until_ms > now_ms {
        st.stats.rate_limited += 1;
        let storm_until_ms = st.config.storm_until_ms;
        let h = st.limiter.for_route(template).storm_headers(storm_until_ms);
        return too_many().with_headers(h.to_pairs());
    }

    // (4) token bucket
    let (allowed, rate) = st.limiter.for_route(template).try_acquire(now, now_ms);
    if !allowed {
        st.stats.rate_limited += 1;
        return too_many().with_headers(rate.to_pairs());
    }
    let rate = rate.to_pairs();

    let Some((route, _)) = route else {
        return Reply::not_found().with_headers(rate);
    };

    // (5) authentication
    let scopes = match api::authenticate(&st, inc, now_ms) {
        Ok(s) => s,
        Err(reply) => return reply.with_headers(rate),
    };

    // (6) scope
    if let Err(reply) = route.check_scopes(&scopes) {
        return reply.with_headers(rate);
    }

    // (7) handler
    if inc.body_too_large {
        return too_large().with_headers(rate);
    }
    api::handle(&mut st, route, inc).with_headers(rate)
}

fn too_large() -> Reply {
    Reply::mgmt_error(
        413,
        &format!("Payload content length greater than maximum allowed: {MAX_BODY}"),
        None,
    )
}

fn too_many() -> Reply {
    Reply::mgmt_error(
        429,
        "Global limit has been reached",
        Some("too_many_requests"),
    )
}
