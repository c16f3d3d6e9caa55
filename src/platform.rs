//! The core's ports implemented on the Workers runtime: outbound `fetch`, the `TOKEN_CACHE`
//! KV namespace, `Date.now()`, `setTimeout` and `crypto.getRandomValues` (via getrandom).

use std::time::Duration;

use invite_core::platform::{StoreError, TransportError};
use invite_core::{Clock, HttpRequest, HttpResponse, KvOp, Rng, Store, Transport};
use worker::kv::KvStore;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

/// The Workers implementation of every port.
pub struct WorkerPlatform {
    kv: Option<KvStore>,
}

impl WorkerPlatform {
    /// Adapters over the given KV namespace (`None` when the binding is missing).
    pub fn new(kv: Option<KvStore>) -> Self {
        WorkerPlatform { kv }
    }

    fn kv(&self) -> Result<&KvStore, StoreError> {
        self.kv
            .as_ref()
            .ok_or_else(|| StoreError("TOKEN_CACHE binding is missing".into()))
    }
}

impl Transport for WorkerPlatform {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let err = |e: worker::Error| TransportError(e.to_string());
        let headers = Headers::new();
        for (k, v) in &req.headers {
            headers.set(k, v).map_err(err)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(req.method.clone()))
            .with_headers(headers);
        if !req.body.is_empty() {
            let body = js_sys::Uint8Array::from(req.body.as_slice());
            init.with_body(Some(body.into()));
        }
        let request = Request::new_with_init(&req.url, &init).map_err(err)?;
        let mut resp = Fetch::Request(request).send().await.map_err(err)?;
        let headers = resp.headers().entries().collect();
        let status = resp.status_code();
        let body = resp.bytes().await.map_err(err)?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

impl Store for WorkerPlatform {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.kv()?
            .get(key)
            .text()
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    async fn apply(&self, op: &KvOp) -> Result<(), StoreError> {
        let kv = self.kv()?;
        let err = |e: worker::kv::KvError| StoreError(e.to_string());
        match op {
            KvOp::Put {
                key,
                value,
                ttl_sec,
            } => kv
                .put(key, value.as_str())
                .map_err(err)?
                .expiration_ttl(*ttl_sec)
                .execute()
                .await
                .map_err(err),
            KvOp::Delete { key } => kv.delete(key).await.map_err(err),
        }
    }
}

impl Clock for WorkerPlatform {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await
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

/// Random bytes from the platform CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| e.to_string())
}
