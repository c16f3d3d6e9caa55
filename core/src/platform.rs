//! The ports through which the core reaches the outside world, and the plain HTTP types
//! that cross them. The Worker shell implements them with `worker::Fetch`, KV, `Date` and
//! `getrandom`; tests implement them with fakes.
#![allow(async_fn_in_trait)] // The futures are deliberately not `Send`: Workers can't meet it.

use std::fmt;

/// An HTTP request as the core sees it, inbound or outbound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpRequest {
    /// Upper-case method, e.g. `POST`.
    pub method: String,
    /// Absolute URL for outbound requests; path plus query for inbound ones.
    pub url: String,
    /// Header names are compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Raw body bytes (empty when there is none).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// Builds a request with no headers and no body.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        HttpRequest {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(self, value: &serde_json::Value) -> Self {
        let mut req = self.header("content-type", "application/json");
        req.body = value.to_string().into_bytes();
        req
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// An HTTP response as the core sees it, inbound or outbound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names are compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Raw body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        HttpResponse {
            status,
            headers: vec![(
                "content-type".to_string(),
                "application/json; charset=utf-8".to_string(),
            )],
            body: value.to_string().into_bytes(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A failure below HTTP: DNS, connection refused, reset, TLS.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportError(pub String);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key-value store failure (KV unavailable, quota, invalid TTL).
#[derive(Clone, Debug, PartialEq)]
pub struct StoreError(pub String);

/// Sends outbound HTTP requests.
pub trait Transport {
    /// Sends one request and returns whatever the server answered.
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// Reads the key-value store. Writes go through [`KvOp`]s, which the shell runs off the
/// response path.
pub trait Store {
    /// Reads a key.
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Applies one write.
    async fn apply(&self, op: &KvOp) -> Result<(), StoreError>;
}

/// Time: the wall clock and a timer.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Resolves after `ms` milliseconds.
    async fn sleep(&self, ms: u64);
}

/// A cryptographically secure random source.
pub trait Rng {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), String>;
}

/// A per-key rate limiter (the Workers rate-limiting binding).
pub trait RateLimit {
    /// `Some(true)` if `key` may proceed, `Some(false)` if it is over the limit, `None` when
    /// no limiter is configured.
    async fn allow(&self, _key: &str) -> Option<bool> {
        None
    }
}

/// Everything the core needs from its host.
pub trait Platform: Transport + Store + Clock + Rng + RateLimit {}
impl<T: Transport + Store + Clock + Rng + RateLimit> Platform for T {}

/// A key-value write the core asks for, to be run after the response (`wait_until`).
#[derive(Clone, Debug, PartialEq)]
pub enum KvOp {
    /// Store `value` under `key`, expiring after `ttl_sec` (at least 60, as KV requires).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Seconds until KV drops it.
        ttl_sec: u64,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

impl KvOp {
    /// The key the op writes.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Put { key, .. } | KvOp::Delete { key } => key,
        }
    }
}

/// Draws a uniformly random integer in `0..bound` (rejection sampling, no modulo bias).
pub fn random_below(rng: &impl Rng, bound: u32) -> Result<u32, String> {
    if bound == 0 {
        return Ok(0);
    }
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b)?;
        let v = u32::from_le_bytes(b);
        if v < zone {
            return Ok(v % bound);
        }
    }
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(rng: &impl Rng, n: usize) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    rng.fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
