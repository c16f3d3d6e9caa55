//! HTTP plumbing: the tiny_http server, its worker threads, reading requests,
//! routing to the Authentication API, the Management API (through the
//! latency / fault / 429 / rate-limit / auth / scope pipeline), the
//! change-password and email endpoints (latency / fault pipeline), the
//! Turnstile siteverify stand-in, the hosted ticket pages (`/u/...`) and the
//! control API, and writing responses.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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

/// State shared by the worker threads.
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
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
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
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stops accepting requests and joins the worker threads.
    pub fn shutdown(self) {
        drop(self);
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the server and starts the worker threads.
pub fn start(opts: Options) -> io::Result<Handle> {
    let server = tiny_http::Server::http((opts.host.as_str(), opts.port))
        .map_err(|e| io::Error::other(e.to_string()))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("server is not bound to an IP address"))?;
    let server = Arc::new(server);
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(&opts)),
        log_requests: opts.log_requests,
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..opts.threads.max(1) {
        let server = Arc::clone(&server);
        let shared = Arc::clone(&shared);
        let stopping = Arc::clone(&stopping);
        let t = std::thread::Builder::new()
            .name(format!("auth0-emulator-{i}"))
            .spawn(move || worker(&server, &shared, &stopping))?;
        threads.push(t);
    }
    Ok(Handle {
        addr,
        host: opts.host,
        server,
        threads,
        stopping,
    })
}

fn worker(server: &tiny_http::Server, shared: &Shared, stopping: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(rq) => serve(shared, rq),
            Err(_) => {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
            }
        }
    }
}

fn header_value(rq: &tiny_http::Request, name: &'static str) -> Option<String> {
    rq.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

fn serve(shared: &Shared, mut rq: tiny_http::Request) {
    let started = Instant::now();
    let method = rq.method().as_str().to_ascii_uppercase();
    let url = rq.url().to_string();
    let (path, raw_query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url.clone(), String::new()),
    };
    let query: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let content_type = header_value(&rq, "Content-Type").unwrap_or_default();
    let authorization = header_value(&rq, "Authorization");
    let idempotency_key = header_value(&rq, "Idempotency-Key");

    let mut body = Vec::new();
    let read = rq
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body);

    let reply = match read {
        Err(_) => Reply::mgmt_error(400, "Invalid request payload", None),
        Ok(_) => {
            let body_too_large = body.len() > MAX_BODY;
            if body_too_large {
                body = Vec::new();
            }
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
            dispatch(shared, &inc)
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

    let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", reply.content_type) {
        resp.add_header(h);
    }
    for (k, v) in &reply.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    let _ = rq.respond(resp);
}

fn sleep_ms(ms: u64) {
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Routes a request to the right API.
pub fn dispatch(shared: &Shared, inc: &Incoming) -> Reply {
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
        sleep_ms(latency);
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
        );
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
        );
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
        return management(shared, inc);
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
fn faultable(
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
    sleep_ms(latency);
    let mut st = shared.lock();
    if st.take_fault() {
        return on_fault();
    }
    handler(&mut st, inc)
}

/// The Management API pipeline: latency, faults, 429 storm, rate limit,
/// authentication, scope, handler. Every answer carries `x-ratelimit-*`.
fn management(shared: &Shared, inc: &Incoming) -> Reply {
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
    sleep_ms(latency);

    let mut st = shared.lock();
    let now = Instant::now();
    let now_ms = util::now_ms();

    // (2) fault injection
    if st.take_fault() {
        let h = st.limiter.peek(now, now_ms);
        return Reply::mgmt_error(503, "The service is temporarily unavailable.", None)
            .with_headers(h.to_pairs());
    }

    // (3) 429 storm
    if st.config.storm_until_ms > now_ms {
        st.stats.rate_limited += 1;
        let h = st.limiter.storm_headers(st.config.storm_until_ms);
        return too_many().with_headers(h.to_pairs());
    }

    // (4) token bucket
    let (allowed, rate) = st.limiter.try_acquire(now, now_ms);
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
