//! The ports through which the core reaches the outside world (the plain HTTP types that
//! cross them live in the leaf module [`crate::http`]). The Worker shell implements them with `src/glue.js`'s `upstream`,
//! KV, `Date`, the gate's Durable Object, the queue and `getrandom`; tests implement them with fakes.
#![allow(async_fn_in_trait)] // The futures are deliberately not `Send`: Workers can't meet it.

use std::fmt;

use crate::gate::{GateCall, GateReply, QueuedInvite};
pub use crate::http::{HttpRequest, HttpResponse};

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
    /// Sends one request and returns whatever the server answered, or an error if no whole
    /// answer came within `timeout_ms` (the request's remaining deadline). The timeout is the
    /// transport's to keep: on Workers it is the fetch's own `AbortSignal`, which costs less
    /// than racing a second timer from the core.
    async fn send(&self, req: HttpRequest, timeout_ms: u64)
        -> Result<HttpResponse, TransportError>;
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

/// The per-tenant gate (the `Auth0Gate` Durable Object): runs [`crate::gate::handle`] where
/// every isolate, the queue consumer and the synchronous API see the same state.
pub trait Gate {
    /// Sends one call; `Err` when the gate can't be reached.
    async fn gate(&self, call: GateCall) -> Result<GateReply, String>;
}

/// The invite queue (`INVITE_QUEUE`).
pub trait InviteQueue {
    /// Sends messages, delivered after `delay_sec`.
    async fn enqueue(&self, messages: &[QueuedInvite], delay_sec: u32) -> Result<(), String>;
}

/// Everything the core needs from its host.
pub trait Platform: Transport + Store + Clock + Rng + RateLimit + Gate + InviteQueue {}
impl<T: Transport + Store + Clock + Rng + RateLimit + Gate + InviteQueue> Platform for T {}

/// A key-value write the core asks for, to be run after the response (`wait_until`). `Debug`
/// leaves the value out: it may be the Management API token.
#[derive(Clone, PartialEq)]
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
}

impl std::fmt::Debug for KvOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvOp::Put { key, ttl_sec, .. } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value", &"[redacted]")
                .field("ttl_sec", ttl_sec)
                .finish(),
        }
    }
}

impl KvOp {
    /// The key the op writes.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Put { key, .. } => key,
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
    Ok(hex(&buf))
}

/// `bytes` as lower-case hex. Not `format!("{b:02x}")` per byte: request ids and cache keys
/// are made on every request.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out 0x00, 0x01, ... 0xff, 0x00, ...
    struct Counting(std::cell::Cell<u8>);

    impl Rng for Counting {
        fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
            for b in buf {
                *b = self.0.get();
                self.0.set(self.0.get().wrapping_add(1));
            }
            Ok(())
        }
    }

    #[test]
    fn random_hex_is_two_lowercase_digits_per_byte() {
        let rng = Counting(std::cell::Cell::new(0x09));
        assert_eq!(random_hex(&rng, 3).unwrap(), "090a0b");
        rng.0.set(0xfe);
        assert_eq!(random_hex(&rng, 3).unwrap(), "feff00");
        assert_eq!(random_hex(&rng, 0).unwrap(), "");
        // Every byte value, against the standard formatting.
        rng.0.set(0);
        let all = random_hex(&rng, 256).unwrap();
        let expected: String = (0..=255u8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(all, expected);
    }
}
