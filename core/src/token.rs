//! The Management API token cache policy and the per-isolate memory tier.
//!
//! Tokens live in two tiers: this isolate's memory ([`IsolateCache`]) and KV. A cached
//! entry is trusted only until its own `refresh_at_ms`, never by KV's TTL, which is merely
//! garbage collection (and can't go below 60 s).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::UpstreamError;
use crate::platform::hex;

/// KV refuses `expiration_ttl` below this.
pub const KV_MIN_TTL_SEC: u64 = 60;
/// How long role ids stay cached.
pub const ROLE_CACHE_TTL_SEC: u64 = 3_600;

/// A Management API access token and when to stop using it. `Debug` leaves the token out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedToken {
    /// The bearer token.
    #[serde(rename = "t")]
    pub access_token: String,
    /// When Auth0 says it expires (Unix ms).
    #[serde(rename = "e")]
    pub expires_at_ms: u64,
    /// When we stop using it and fetch a new one (Unix ms).
    #[serde(rename = "r")]
    pub refresh_at_ms: u64,
    /// When it was fetched (Unix ms; 0 in entries written before it was kept).
    #[serde(rename = "i", default)]
    pub issued_at_ms: u64,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("access_token", &"[redacted]")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("refresh_at_ms", &self.refresh_at_ms)
            .field("issued_at_ms", &self.issued_at_ms)
            .finish()
    }
}

/// How old a token refused with 403 must be to be replaced ([`CachedToken::may_be_stale`]).
pub const STALE_SCOPES_AFTER_MS: u64 = 60_000;

impl CachedToken {
    /// A token fetched at `now_ms` that lives `expires_in` seconds. The refresh margin is
    /// capped at half the lifetime, so a short-lived token is still used for a while.
    pub fn new(access_token: String, expires_in: u64, now_ms: u64, margin_sec: u64) -> Self {
        let margin = margin_sec.min(expires_in / 2);
        // Saturating: `expires_in` is the token endpoint's number.
        let at = |secs: u64| now_ms.saturating_add(secs.saturating_mul(1000));
        CachedToken {
            access_token,
            expires_at_ms: at(expires_in),
            refresh_at_ms: at(expires_in - margin),
            issued_at_ms: now_ms,
        }
    }

    /// Whether a 403 to it may be its scopes, not the call's: a token keeps the scopes it was
    /// issued with, so after the operator fixes the client grant only a new token has them.
    /// A token refused a minute or more after it was fetched is replaced (the grant may have
    /// changed since); a younger one is not, so a grant that is still wrong costs at most one
    /// token a minute (Auth0's machine-to-machine tokens are a monthly quota).
    pub fn may_be_stale(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.issued_at_ms) >= STALE_SCOPES_AFTER_MS
    }

    /// Usable at `now_ms`: outside the refresh window.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms < self.refresh_at_ms
    }

    /// KV `expiration_ttl` for this entry: until the refresh point, never below KV's minimum.
    pub fn kv_ttl_sec(&self, now_ms: u64) -> u64 {
        (self.refresh_at_ms.saturating_sub(now_ms) / 1000).max(KV_MIN_TTL_SEC)
    }
}

/// Where the token used for a request came from (logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// This isolate's memory.
    Memory,
    /// Workers KV.
    Kv,
    /// A fresh client-credentials grant.
    Fetched,
}

impl TokenSource {
    /// Name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Memory => "memory",
            TokenSource::Kv => "kv",
            TokenSource::Fetched => "fetched",
        }
    }
}

/// KV key for the token of one tenant, client and audience, so a configuration change never
/// picks up another tenant's token.
pub fn token_kv_key(base_url: &str, client_id: &str, audience: &str) -> String {
    let digest = Sha256::digest(format!("{base_url}\n{client_id}\n{audience}").as_bytes());
    let short = hex(&digest[..8]);
    format!("auth0-token:v1:{short}")
}

/// KV key for a role id.
pub fn role_kv_key(base_url: &str, name: &str) -> String {
    let digest = Sha256::digest(base_url.as_bytes());
    let short = hex(&digest[..4]);
    format!("auth0-role:v1:{short}:{name}")
}

/// How often a request waiting for another request's token fetch looks again.
pub const TOKEN_POLL_MS: u64 = 10;

/// State shared by all requests in one isolate: the memory tier of the token and role
/// caches, and the single in-flight token request.
///
/// Waiting requests poll on their own timer rather than being woken by the fetching request:
/// workerd cancels a request whose only pending work is a promise another request resolves
/// ("the Worker's code had hung"), and a wake-up from another request would run the waiter
/// in that request's I/O context.
#[derive(Default)]
pub struct IsolateCache {
    token: RefCell<Option<CachedToken>>,
    /// Generation of the running token fetch, if one is running.
    flight: Cell<Option<u64>>,
    /// The last finished fetch: its generation and outcome.
    finished: RefCell<Option<(u64, Result<CachedToken, UpstreamError>)>>,
    generation: Cell<u64>,
    roles: RefCell<HashMap<String, (String, u64)>>,
    /// Management call slots the gate leased to this isolate (see `gate::Pacer::lease`).
    slot_lease: RefCell<Option<crate::gate::SlotLease>>,
}

/// What a request should do to get a token.
pub enum Acquire {
    /// Use this token from memory.
    Ready(CachedToken),
    /// Another request is fetching (this generation); sleep and [`IsolateCache::poll`].
    Busy(u64),
    /// You fetch it; finish the guard (dropping it, on cancellation, frees the slot).
    Lead(FlightGuard),
}

/// What a waiting request sees when it looks again.
pub enum Poll {
    /// The fetch it waited for finished with this outcome.
    Done(Result<CachedToken, UpstreamError>),
    /// Still running.
    Running,
    /// Abandoned (the fetching request was cancelled): start over.
    Abandoned,
}

impl IsolateCache {
    /// `calls` slots from this isolate's lease, if it holds that many and is still good at
    /// `now_ms`; otherwise nothing is taken.
    pub fn take_slots(&self, calls: u32, now_ms: u64) -> Option<Vec<u64>> {
        let mut lease = self.slot_lease.borrow_mut();
        let l = lease.as_mut()?;
        if now_ms >= l.until_ms {
            *lease = None;
            return None;
        }
        if calls == 0 || l.slots.len() < calls as usize {
            return None;
        }
        Some(l.slots.drain(..calls as usize).collect())
    }

    /// Keeps a lease the gate granted (it replaces what is left of an older one).
    pub fn keep_slots(&self, lease: crate::gate::SlotLease) {
        *self.slot_lease.borrow_mut() = Some(lease);
    }

    /// Drops the lease: Auth0 said 429, and the gate's pause applies to leased calls too.
    pub fn drop_slots(&self) {
        *self.slot_lease.borrow_mut() = None;
    }

    /// Decides how to get a token at `now_ms`.
    pub fn acquire(self: &Rc<Self>, now_ms: u64) -> Acquire {
        if let Some(t) = self.token.borrow().as_ref().filter(|t| t.is_fresh(now_ms)) {
            return Acquire::Ready(t.clone());
        }
        if let Some(gen) = self.flight.get() {
            return Acquire::Busy(gen);
        }
        let gen = self.generation.get() + 1;
        self.generation.set(gen);
        self.flight.set(Some(gen));
        Acquire::Lead(FlightGuard {
            cache: self.clone(),
            gen,
        })
    }

    /// How the fetch of generation `gen` is doing.
    pub fn poll(&self, gen: u64) -> Poll {
        if let Some((g, outcome)) = self.finished.borrow().as_ref() {
            if *g == gen {
                return Poll::Done(outcome.clone());
            }
        }
        if self.flight.get() == Some(gen) {
            Poll::Running
        } else {
            Poll::Abandoned
        }
    }

    /// Drops the memory token if it is still `access_token` (a 401 proved it dead). Returns
    /// whether it was dropped.
    pub fn invalidate_token(&self, access_token: &str) -> bool {
        let mut t = self.token.borrow_mut();
        if t.as_ref().is_some_and(|c| c.access_token == access_token) {
            *t = None;
            true
        } else {
            false
        }
    }

    /// A cached role id, if fresh.
    pub fn role_id(&self, name: &str, now_ms: u64) -> Option<String> {
        self.roles
            .borrow()
            .get(name)
            .filter(|(_, exp)| now_ms < *exp)
            .map(|(id, _)| id.clone())
    }

    /// Remembers a role id until `expires_at_ms`.
    pub fn put_role(&self, name: &str, id: &str, expires_at_ms: u64) {
        self.roles
            .borrow_mut()
            .insert(name.to_string(), (id.to_string(), expires_at_ms));
    }

    /// Forgets every role id (after Auth0 said one does not exist).
    pub fn clear_roles(&self) {
        self.roles.borrow_mut().clear();
    }
}

/// Held by the request that fetches the token.
pub struct FlightGuard {
    cache: Rc<IsolateCache>,
    gen: u64,
}

impl FlightGuard {
    /// Stores the outcome (the token in memory on success) for the waiting requests.
    pub fn finish(self, result: Result<CachedToken, UpstreamError>) {
        if let Ok(t) = &result {
            *self.cache.token.borrow_mut() = Some(t.clone());
        }
        *self.cache.finished.borrow_mut() = Some((self.gen, result));
        // Drop clears the flight.
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if self.cache.flight.get() == Some(self.gen) {
            self.cache.flight.set(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn freshness_and_refresh_window() {
        let t = CachedToken::new("tok".into(), 86_400, NOW, 300);
        assert!(t.is_fresh(NOW));
        assert!(t.is_fresh(NOW + (86_400 - 301) * 1000));
        assert!(
            !t.is_fresh(NOW + (86_400 - 300) * 1000),
            "inside the refresh window"
        );
        assert!(!t.is_fresh(NOW + 86_400 * 1000), "expired");
        assert_eq!(t.kv_ttl_sec(NOW), 86_100);
        assert_eq!(t.kv_ttl_sec(NOW + 86_000 * 1000), 100);
        assert_eq!(t.kv_ttl_sec(NOW + 86_050 * 1000), KV_MIN_TTL_SEC);
    }

    #[test]
    fn short_lived_tokens_cap_the_margin() {
        let t = CachedToken::new("tok".into(), 4, NOW, 300);
        assert_eq!(t.refresh_at_ms, NOW + 2_000);
        assert!(t.is_fresh(NOW + 1_999));
        assert!(!t.is_fresh(NOW + 2_000));
        assert_eq!(t.kv_ttl_sec(NOW), KV_MIN_TTL_SEC);
    }

    #[test]
    fn an_absurd_lifetime_saturates_instead_of_overflowing() {
        let t = CachedToken::new("tok".into(), u64::MAX, NOW, 300);
        assert_eq!(t.expires_at_ms, u64::MAX);
        assert!(t.is_fresh(NOW + 365 * 86_400_000));
        assert!(t.kv_ttl_sec(NOW) > 86_400);
    }

    #[test]
    fn kv_value_round_trips() {
        let t = CachedToken::new("tok".into(), 100, NOW, 10);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<CachedToken>(&json).unwrap(), t);
    }

    #[test]
    fn keys_separate_tenants_and_clients() {
        let a = token_kv_key("https://a.auth0.com", "c1", "aud");
        assert_eq!(a, token_kv_key("https://a.auth0.com", "c1", "aud"));
        assert_ne!(a, token_kv_key("https://b.auth0.com", "c1", "aud"));
        assert_ne!(a, token_kv_key("https://a.auth0.com", "c2", "aud"));
        assert!(a.starts_with("auth0-token:v1:"));
    }

    #[test]
    fn single_flight_and_invalidation() {
        let cache = Rc::new(IsolateCache::default());
        let Acquire::Lead(guard) = cache.acquire(NOW) else {
            panic!("first caller leads")
        };
        let Acquire::Busy(gen) = cache.acquire(NOW) else {
            panic!("second caller waits")
        };
        assert!(matches!(cache.poll(gen), Poll::Running));
        let t = CachedToken::new("tok".into(), 100, NOW, 10);
        guard.finish(Ok(t.clone()));
        assert!(matches!(cache.poll(gen), Poll::Done(Ok(ref r)) if *r == t));
        assert!(matches!(cache.acquire(NOW), Acquire::Ready(r) if r == t));
        assert!(!cache.invalidate_token("other"));
        assert!(cache.invalidate_token("tok"));
        assert!(matches!(cache.acquire(NOW), Acquire::Lead(_)));
    }

    #[test]
    fn waiters_see_the_leaders_error() {
        let cache = Rc::new(IsolateCache::default());
        let Acquire::Lead(guard) = cache.acquire(NOW) else {
            panic!("leads")
        };
        let Acquire::Busy(gen) = cache.acquire(NOW) else {
            panic!("waits")
        };
        let err = UpstreamError::Unavailable {
            service: crate::error::Service::Auth0,
            detail: "down".into(),
        };
        guard.finish(Err(err.clone()));
        assert!(matches!(cache.poll(gen), Poll::Done(Err(ref e)) if *e == err));
        assert!(
            matches!(cache.acquire(NOW), Acquire::Lead(_)),
            "the next request tries again"
        );
    }

    #[test]
    fn cancelled_leader_frees_the_slot() {
        let cache = Rc::new(IsolateCache::default());
        let lead = cache.acquire(NOW);
        let Acquire::Busy(gen) = cache.acquire(NOW) else {
            panic!("waits")
        };
        drop(lead);
        assert!(matches!(cache.poll(gen), Poll::Abandoned));
        assert!(matches!(cache.acquire(NOW), Acquire::Lead(_)));
    }

    #[test]
    fn role_cache_expires() {
        let cache = IsolateCache::default();
        cache.put_role("beta-tester", "rol_1", NOW + 1000);
        assert_eq!(cache.role_id("beta-tester", NOW).as_deref(), Some("rol_1"));
        assert_eq!(cache.role_id("beta-tester", NOW + 1000), None);
    }
}
