//! The core's ports implemented on the Workers runtime: outbound `fetch`, the `TOKEN_CACHE`
//! KV namespace, `Date.now()`, `setTimeout` and `crypto.getRandomValues` (via getrandom), and
//! the runtime's URL parser.

use invite_core::gate::{GateCall, GateReply, QueuedInvite};
use invite_core::http::WebUrl;
use invite_core::platform::{StoreError, TransportError};
use invite_core::queue::SEND_MAX_MESSAGES;
use invite_core::{
    Clock, Gate, HttpRequest, HttpResponse, InviteQueue, KvOp, RateLimit, Rng, Store, Transport,
};
use js_sys::{Function, Promise};
use std::cell::OnceCell;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::web_sys;
use worker::{Env, Stub};

/// The Workers implementation of every port. Bindings are looked up when first used, so a
/// request that needs none (a health check, a 404) pays for none.
pub struct WorkerPlatform {
    env: Option<Env>,
    /// The tenant (`AUTH0_DOMAIN`): names the gate's Durable Object instance.
    tenant: Option<String>,
    kv: OnceCell<Option<RawKv>>,
    rpc: OnceCell<Option<GateRpc>>,
}

thread_local! {
    /// The gate class takes no RPC (main module `build/index.js`): use `fetch`. Learnt once
    /// per isolate (the platform is built per request), so one failed RPC and one warning.
    static RPC_BROKEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl WorkerPlatform {
    /// Adapters over `env`'s bindings, for the tenant `tenant`.
    pub fn new(env: Env, tenant: Option<String>) -> Self {
        WorkerPlatform {
            env: Some(env),
            tenant,
            kv: OnceCell::new(),
            rpc: OnceCell::new(),
        }
    }

    /// Adapters with no bindings at all (the wasm32 tests of the other ports).
    pub fn detached() -> Self {
        WorkerPlatform {
            env: None,
            tenant: None,
            kv: OnceCell::new(),
            rpc: OnceCell::new(),
        }
    }

    fn kv(&self) -> Result<&RawKv, StoreError> {
        self.kv
            .get_or_init(|| self.raw_binding("TOKEN_CACHE"))
            .as_ref()
            .ok_or_else(|| StoreError("TOKEN_CACHE binding is missing".into()))
    }

    /// One gate per tenant: every isolate and the consumer reach the same instance.
    fn gate_stub_new(&self) -> Option<Stub> {
        let ns = self.env.as_ref()?.durable_object("AUTH0_GATE").ok()?;
        ns.id_from_name(self.tenant.as_deref()?)
            .ok()?
            .get_stub()
            .ok()
    }

    fn gate_rpc_handle(&self) -> Option<&GateRpc> {
        self.rpc
            .get_or_init(|| self.gate_stub_new().map(|s| s.into_rpc::<GateRpc>()))
            .as_ref()
    }
}

impl Transport for WorkerPlatform {
    /// One outbound call through `src/glue.js`: fetch, the body as bytes, the headers the
    /// core reads and the timeout (`AbortSignal.timeout`), as one promise. Built from Rust,
    /// the same call took three awaits (fetch, `arrayBuffer()`, a timer) and a dozen calls
    /// across the boundary for headers; a CPU profile of a warm invite showed that glue.
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, TransportError> {
        // fetch would refuse a line break in a header too.
        let headers = header_lines(&req.headers)
            .ok_or_else(|| TransportError("a header holds a line break".into()))?;
        let err = |e: JsValue| TransportError(js_error_text(&e));
        let promise = upstream(
            &req.method,
            &req.url,
            &headers,
            &req.body,
            timeout_ms as f64,
        )
        .map_err(err)?;
        let answer: js_sys::Array = JsFuture::from(promise).await.map_err(err)?.unchecked_into();
        let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
        let kept = answer.get(1).as_string().unwrap_or_default();
        let mut lines = kept.split('\n');
        let mut headers = Vec::new();
        while let (Some(k), Some(v)) = (lines.next(), lines.next()) {
            headers.push((k.to_string(), v.to_string()));
        }
        let body = answer
            .get(2)
            .unchecked_into::<js_sys::Uint8Array>()
            .to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

#[wasm_bindgen::prelude::wasm_bindgen(module = "/src/glue.js")]
extern "C" {
    /// One outbound call (see src/glue.js).
    #[wasm_bindgen(catch)]
    fn upstream(
        method: &str,
        url: &str,
        headers: &str,
        body: &[u8],
        timeout_ms: f64,
    ) -> Result<Promise, JsValue>;

    /// The inbound body up to `limit` bytes, or `null` past it (see src/glue.js).
    #[wasm_bindgen(catch, js_name = readBody)]
    pub fn read_body(request: &web_sys::Request, limit: f64) -> Result<Promise, JsValue>;

    /// A `Response` (see src/glue.js).
    #[wasm_bindgen(catch)]
    pub fn respond(status: u16, headers: &str, body: &[u8]) -> Result<web_sys::Response, JsValue>;

    /// The runtime's parse of an absolute URL, "scheme\nhost\norigin\nhref" or "" (see
    /// src/glue.js).
    #[wasm_bindgen(js_name = parseUrl)]
    fn parse_url_parts(raw: &str) -> String;

    /// One `sendBatch` of text messages, their JSON texts joined by "\n" (see src/glue.js).
    #[wasm_bindgen(catch, js_name = sendTexts)]
    fn send_texts(queue: &RawQueue, joined: &str, delay_seconds: u32) -> Result<Promise, JsValue>;
}

/// [`invite_core::http::ParseUrl`] with the runtime's own URL parser, which implements the
/// same standard as the `url` crate the host's tests use; the bundle carries no parser.
pub fn parse_url(raw: &str) -> Option<WebUrl> {
    let parts = parse_url_parts(raw);
    let mut parts = parts.split('\n').map(str::to_string);
    let url = WebUrl {
        scheme: parts.next()?,
        host: parts.next()?,
        origin: parts.next()?,
        href: parts.next()?,
    };
    parts.next().is_none().then_some(url)
}

/// Headers as the glue takes them: "name\nvalue\n" pairs. `None` if a name or value holds a
/// line break (the separator), which no valid header does.
pub fn header_lines(headers: &[(String, String)]) -> Option<String> {
    let mut out = String::new();
    for (k, v) in headers {
        if k.contains('\n') || v.contains('\n') {
            return None;
        }
        out.push_str(k);
        out.push('\n');
        out.push_str(v);
        out.push('\n');
    }
    Some(out)
}

/// Awaits a JS promise; a rejection as text.
async fn settled(promise: Promise) -> Result<JsValue, String> {
    JsFuture::from(promise).await.map_err(|e| js_error_text(&e))
}

/// A variable or secret as text: `Ok(None)` when unset, `Err` for a value that is no text.
/// wrangler passes an unquoted TOML value (`AUTH0_MGMT_RPS = 15`, `AUTO_CREATE_ROLES = true`)
/// as a JSON number or boolean, which `Env::var` does not read: it counted as unset, and the
/// default applied without a word (found in an audit). A number or a boolean is read
/// as the text it was written as; a list or a table is refused, for the configuration check
/// to name (read as JSON text, `["a","b"]` would have split into roles `["a"` and `"b"]`).
pub fn var_text(env: &worker::Env, name: &str) -> Result<Option<String>, NotText> {
    let env: &JsValue = env;
    let v = js_sys::Reflect::get(env, &JsValue::from_str(name)).map_err(|_| NotText)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    if let Some(s) = v.as_string() {
        return Ok(Some(s));
    }
    if v.as_bool().is_some() || v.as_f64().is_some() {
        return Ok(js_sys::JSON::stringify(&v).ok().and_then(|s| s.as_string()));
    }
    Err(NotText)
}

/// A variable that is a list or a table (see [`var_text`]).
#[derive(Debug)]
pub struct NotText;

/// A thrown JS value as text (an `Error`'s message, or the value itself).
pub fn js_error_text(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown JavaScript error".into())
}

/// KV on the raw binding: `worker::kv` builds a put's options through serde-wasm-bindgen,
/// the bundle's largest use of that crate (3.3 KB gzipped with what it pulled in).
impl Store for WorkerPlatform {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        // `get(key)` resolves to the value as text, or null when there is none.
        let promise = self
            .kv()?
            .get(key)
            .map_err(|e| StoreError(js_error_text(&e)))?;
        Ok(settled(promise).await.map_err(StoreError)?.as_string())
    }

    async fn apply(&self, op: &KvOp) -> Result<(), StoreError> {
        let kv = self.kv()?;
        match op {
            KvOp::Put {
                key,
                value,
                ttl_sec,
            } => {
                // A number: `JsValue::from(u64)` would be a BigInt, which KV refuses.
                let options = Self::js_object(&[("expirationTtl", JsValue::from(*ttl_sec as f64))]);
                let promise = kv
                    .put(key, value, &options)
                    .map_err(|e| StoreError(js_error_text(&e)))?;
                settled(promise).await.map(drop).map_err(StoreError)
            }
        }
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// The gate's RPC surface (`src/entry.mjs` exposes `call` on the `DurableObject`).
    #[wasm_bindgen(extends = js_sys::Object)]
    pub type GateRpc;

    #[wasm_bindgen(method, catch)]
    fn call(this: &GateRpc, body: &str) -> Result<Promise, JsValue>;

    /// The stub's `fetch(url, init)`, the fallback when the class takes no RPC.
    #[wasm_bindgen(method, catch, js_name = fetch)]
    fn fetch_with(
        this: &GateRpc,
        url: &str,
        init: &web_sys::RequestInit,
    ) -> Result<Promise, JsValue>;
}

impl WorkerPlatform {
    /// One gate call over RPC.
    async fn gate_rpc(&self, body: &str) -> Result<String, String> {
        let rpc = self
            .gate_rpc_handle()
            .ok_or("AUTH0_GATE binding is missing")?;
        settled(rpc.call(body).map_err(|e| js_error_text(&e))?)
            .await?
            .as_string()
            .ok_or_else(|| "gate answered a non-string".into())
    }

    /// One gate call over `fetch`, for a deployment whose main module is `build/index.js`
    /// itself (its Durable Object class can't take RPC).
    async fn gate_fetch(&self, body: &str) -> Result<String, String> {
        let stub = self
            .gate_rpc_handle()
            .ok_or("AUTH0_GATE binding is missing")?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&JsValue::from_str(body));
        let resp: web_sys::Response = settled(
            stub.fetch_with("https://gate/call", &init)
                .map_err(|e| js_error_text(&e))?,
        )
        .await?
        .unchecked_into();
        let text = settled(resp.text().map_err(|e| js_error_text(&e))?)
            .await?
            .as_string()
            .unwrap_or_default();
        if resp.status() != 200 {
            return Err(format!("gate answered {}: {text}", resp.status()));
        }
        Ok(text)
    }
}

impl Gate for WorkerPlatform {
    async fn gate(&self, call: GateCall) -> Result<GateReply, String> {
        let body = serde_json::to_string(&call).map_err(|e| e.to_string())?;
        let text = if RPC_BROKEN.with(|b| b.get()) {
            self.gate_fetch(&body).await?
        } else {
            match self.gate_rpc(&body).await {
                Ok(t) => t,
                Err(e) if e.contains("does not support RPC") => {
                    worker::console_warn!(
                        "{}",
                        serde_json::json!({"level": "warn", "event": "gate_rpc_unavailable", "detail": "main module is not src/entry.mjs; the gate is called with fetch"})
                    );
                    RPC_BROKEN.with(|b| b.set(true));
                    self.gate_fetch(&body).await?
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(err) = text.strip_prefix('!') {
            return Err(format!("gate: {err}"));
        }
        serde_json::from_slice(text.as_bytes()).map_err(|e| format!("gate reply: {e}"))
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A queue producer binding, as the runtime gives it.
    type RawQueue;

    #[wasm_bindgen(method, catch)]
    fn send(this: &RawQueue, body: &str, options: &JsValue) -> Result<Promise, JsValue>;

    /// A KV namespace binding, as the runtime gives it.
    type RawKv;

    #[wasm_bindgen(method, catch)]
    fn get(this: &RawKv, key: &str) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn put(this: &RawKv, key: &str, value: &str, options: &JsValue) -> Result<Promise, JsValue>;

    /// A rate limiting binding, as the runtime gives it.
    type RawLimiter;

    #[wasm_bindgen(method, catch)]
    fn limit(this: &RawLimiter, options: &JsValue) -> Result<Promise, JsValue>;
}

impl WorkerPlatform {
    /// A binding as the runtime gives it. One message and one rate-limit check are single
    /// JS calls on these: `worker::Queue` and `worker::RateLimiter` go through
    /// serde-wasm-bindgen for their options and answers, on every sign-up's request path.
    fn raw_binding<T: JsCast>(&self, name: &str) -> Option<T> {
        let env: &JsValue = self.env.as_ref()?;
        js_sys::Reflect::get(env, &JsValue::from_str(name))
            .ok()
            .filter(|v| v.is_object())
            .map(JsCast::unchecked_into)
    }

    /// An object `{ key: value, ... }` of numbers and strings.
    fn js_object(fields: &[(&str, JsValue)]) -> JsValue {
        let o = js_sys::Object::new();
        for (k, v) in fields {
            let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), v);
        }
        o.into()
    }
}

impl InviteQueue for WorkerPlatform {
    async fn enqueue(&self, messages: &[QueuedInvite], delay_sec: u32) -> Result<(), String> {
        let queue: RawQueue = self
            .raw_binding("INVITE_QUEUE")
            .ok_or("INVITE_QUEUE binding is missing")?;
        if let [message] = messages {
            // One message (a sign-up, a webhook, an async invite): one `send`.
            let body = serde_json::to_string(message).map_err(|e| e.to_string())?;
            let options = if delay_sec > 0 {
                Self::js_object(&[("delaySeconds", JsValue::from(delay_sec))])
            } else {
                JsValue::UNDEFINED
            };
            settled(queue.send(&body, &options).map_err(|e| js_error_text(&e))?).await?;
            return Ok(());
        }
        // Sent as JSON text, `text` typed (see src/glue.js): the consumer parses exactly what
        // was sent (maps included), and the core's pieces (`queue::send_size`) count the text.
        // Compact JSON holds no raw newline, so the texts travel joined by one.
        for chunk in messages.chunks(SEND_MAX_MESSAGES) {
            let mut joined = String::new();
            for m in chunk {
                if !joined.is_empty() {
                    joined.push('\n');
                }
                let text = serde_json::to_string(m).map_err(|e| e.to_string())?;
                debug_assert!(!text.contains('\n'), "compact JSON holds no raw newline");
                joined.push_str(&text);
            }
            let promise = send_texts(&queue, &joined, delay_sec).map_err(|e| js_error_text(&e))?;
            settled(promise).await?;
        }
        Ok(())
    }
}

impl RateLimit for WorkerPlatform {
    async fn allow(&self, key: &str) -> Option<bool> {
        let limiter: RawLimiter = self.raw_binding("PUBLIC_RATE_LIMITER")?;
        // If the binding itself fails, let the request through rather than block sign-ups.
        let options = Self::js_object(&[("key", JsValue::from_str(key))]);
        let outcome = JsFuture::from(limiter.limit(&options).ok()?).await.ok()?;
        js_sys::Reflect::get(&outcome, &JsValue::from_str("success"))
            .ok()?
            .as_bool()
    }
}

impl Clock for WorkerPlatform {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    async fn sleep(&self, ms: u64) {
        sleep_ms(ms).await
    }
}

impl Rng for WorkerPlatform {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        fill_random(buf)
    }
}

/// Wall-clock milliseconds from `Date.now()`.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

thread_local! {
    /// Bytes drawn from the platform CSPRNG ahead of need, so that a request's request id,
    /// retry jitter and invite ids cost one `crypto.getRandomValues` call between many
    /// requests instead of one each (each is a JS call into the runtime's RNG).
    static RANDOM_POOL: std::cell::RefCell<(Vec<u8>, usize)> =
        const { std::cell::RefCell::new((Vec::new(), 0)) };
}

/// How many random bytes are drawn at a time.
const RANDOM_POOL_BYTES: usize = 1024;

/// Random bytes from the platform CSPRNG (through a per-isolate pool; each byte is handed
/// out once and the pool is zeroed as it is used).
pub fn fill_random(buf: &mut [u8]) -> Result<(), String> {
    if buf.len() > RANDOM_POOL_BYTES / 4 {
        return getrandom::fill(buf).map_err(|e| e.to_string());
    }
    RANDOM_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (bytes, used) = &mut *pool;
        if bytes.len() != RANDOM_POOL_BYTES || *used + buf.len() > RANDOM_POOL_BYTES {
            // Filled before it is kept: a failed draw leaves the pool empty, never zeros.
            let mut fresh = vec![0u8; RANDOM_POOL_BYTES];
            getrandom::fill(&mut fresh).map_err(|e| e.to_string())?;
            *bytes = fresh;
            *used = 0;
        }
        let taken = &mut bytes[*used..*used + buf.len()];
        buf.copy_from_slice(taken);
        taken.fill(0);
        *used += buf.len();
        Ok(())
    })
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// The runtime's `setTimeout` (its id is a number in workerd, an object in Node).
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: f64) -> JsValue;

    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// Clears a `setTimeout` when its future is dropped (e.g. a timeout that lost a race).
struct ClearOnDrop(JsValue);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        clear_timeout(&self.0);
    }
}

/// Resolves after `ms` milliseconds.
///
/// Not `worker::Delay`: it unwraps `setTimeout`'s result as a number, which panics where the
/// id is an object (Node, where the wasm32 tests run). This version never panics and clears
/// its timer when dropped (every upstream call races one: most are cleared).
pub async fn sleep_ms(ms: u64) {
    let mut id = JsValue::UNDEFINED;
    let promise = Promise::new(&mut |resolve: Function, _reject: Function| {
        id = set_timeout(&resolve, ms as f64);
    });
    let _guard = ClearOnDrop(id);
    let _ = JsFuture::from(promise).await;
}
