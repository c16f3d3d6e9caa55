//! Management API rate limiting: a token bucket (Auth0's global limit model)
//! and the `x-ratelimit-*` header values it produces.
//!
//! Header semantics follow Auth0's documentation: `x-ratelimit-limit` is the
//! bucket size, `x-ratelimit-remaining` the whole tokens left after this
//! request, and `x-ratelimit-reset` the Unix epoch second at which the bucket
//! has a token again (when empty) or is full again (otherwise).

use std::fmt;
use std::time::Instant;

/// How the management API is rate limited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimitSetting {
    /// No limit (headers still sent, with a nominal limit of 1000).
    None,
    /// Token bucket refilled at `rps` tokens per second, holding at most `burst`.
    Bucket { rps: f64, burst: u32 },
    /// Auth0's Essentials and Professional plans: a bucket per group of endpoints
    /// ([`ESSENTIALS_GROUPS`], chosen by [`essentials_group`]), no global one.
    Essentials,
}

/// The Essentials and Professional plans' Management API groups that an invite service
/// reaches, as Auth0's "Rate Limit Configurations: Essentials and Professional" lists them
/// (burst, sustained): Write Users (`POST`, `PATCH`, `DELETE` on users) 20, 200/minute; Read
/// Users (`GET` users) 40, 500/minute; All other endpoints combined 10, 150/minute (tickets,
/// role assignments, roles, jobs and the rest).
pub const ESSENTIALS_GROUPS: [(&str, f64, u32); 3] = [
    ("write users", 200.0 / 60.0, 20),
    ("read users", 500.0 / 60.0, 40),
    ("all other endpoints", 150.0 / 60.0, 10),
];

/// Which of [`ESSENTIALS_GROUPS`] a route template (`"POST /api/v2/users"`) counts against.
/// `users-by-email` is left in "all other endpoints": Auth0's table names only the users
/// endpoints themselves.
pub fn essentials_group(template: Option<&str>) -> usize {
    match template {
        Some("POST /api/v2/users" | "PATCH /api/v2/users/{id}" | "DELETE /api/v2/users/{id}") => 0,
        Some("GET /api/v2/users" | "GET /api/v2/users/{id}") => 1,
        _ => 2,
    }
}

/// Nominal values sent in the headers when rate limiting is off.
pub const UNLIMITED_LIMIT: u64 = 1000;

impl RateLimitSetting {
    /// Auth0 free tenants: 2 requests per second, burst 2.
    pub const FREE: RateLimitSetting = RateLimitSetting::Bucket { rps: 2.0, burst: 2 };

    /// Parses `none`, `free`, `essentials` or `RPS:BURST` (e.g. `15:50`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" | "" => return Ok(RateLimitSetting::None),
            "free" => return Ok(Self::FREE),
            "essentials" => return Ok(RateLimitSetting::Essentials),
            _ => {}
        }
        let (rps, burst) = s.split_once(':').ok_or_else(|| {
            format!("invalid rate limit '{s}': expected none, free, essentials or RPS:BURST")
        })?;
        let rps: f64 = rps
            .trim()
            .parse()
            .map_err(|_| format!("invalid rate limit '{s}': RPS must be a number"))?;
        let burst: u32 = burst
            .trim()
            .parse()
            .map_err(|_| format!("invalid rate limit '{s}': BURST must be a whole number"))?;
        Self::bucket(rps, burst)
    }

    /// A validated bucket setting.
    pub fn bucket(rps: f64, burst: u32) -> Result<Self, String> {
        if !(rps.is_finite() && rps > 0.0) {
            return Err("rate limit rps must be a number greater than 0".into());
        }
        if burst < 1 {
            return Err("rate limit burst must be at least 1".into());
        }
        Ok(RateLimitSetting::Bucket { rps, burst })
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            RateLimitSetting::None => serde_json::Value::String("none".into()),
            RateLimitSetting::Bucket { rps, burst } => {
                serde_json::json!({"rps": rps, "burst": burst})
            }
            RateLimitSetting::Essentials => serde_json::Value::String("essentials".into()),
        }
    }
}

impl fmt::Display for RateLimitSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitSetting::None => write!(f, "none"),
            RateLimitSetting::Bucket { rps, burst } => write!(f, "{rps}:{burst}"),
            RateLimitSetting::Essentials => write!(f, "essentials"),
        }
    }
}

/// Values for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    /// Unix epoch seconds.
    pub reset: u64,
}

impl RateHeaders {
    pub fn to_pairs(self) -> Vec<(&'static str, String)> {
        vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", self.reset.to_string()),
        ]
    }
}

/// The limiter state. With [`RateLimitSetting::Essentials`] it holds one limiter per group
/// and every call names its route's template.
#[derive(Debug)]
pub struct Limiter {
    setting: RateLimitSetting,
    tokens: f64,
    last: Instant,
    groups: Vec<Limiter>,
}

fn ceil_secs(ms: f64) -> u64 {
    (ms / 1000.0).ceil().max(0.0) as u64
}

impl Limiter {
    /// A limiter with a full bucket.
    pub fn new(setting: RateLimitSetting) -> Self {
        let tokens = match setting {
            RateLimitSetting::None | RateLimitSetting::Essentials => 0.0,
            RateLimitSetting::Bucket { burst, .. } => burst as f64,
        };
        let groups = match setting {
            RateLimitSetting::Essentials => ESSENTIALS_GROUPS
                .iter()
                .map(|&(_, rps, burst)| Limiter::new(RateLimitSetting::Bucket { rps, burst }))
                .collect(),
            _ => Vec::new(),
        };
        Limiter {
            setting,
            tokens,
            last: Instant::now(),
            groups,
        }
    }

    /// The limiter a request to `template` counts against: its group's under
    /// [`RateLimitSetting::Essentials`], else this one.
    pub fn for_route(&mut self, template: Option<&str>) -> &mut Limiter {
        if self.groups.is_empty() {
            self
        } else {
            &mut self.groups[essentials_group(template)]
        }
    }

    pub fn setting(&self) -> RateLimitSetting {
        self.setting
    }

    fn refill(&mut self, now: Instant) {
        if let RateLimitSetting::Bucket { rps, burst } = self.setting {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rps).min(burst as f64);
        }
        self.last = now;
    }

    fn headers(&self, now_ms: u64) -> RateHeaders {
        match self.setting {
            RateLimitSetting::None | RateLimitSetting::Essentials => RateHeaders {
                limit: UNLIMITED_LIMIT,
                remaining: UNLIMITED_LIMIT,
                reset: now_ms / 1000 + 1,
            },
            RateLimitSetting::Bucket { rps, burst } => {
                let remaining = self.tokens.floor().max(0.0) as u64;
                let wait_secs = if remaining == 0 {
                    (1.0 - self.tokens).max(0.0) / rps
                } else {
                    (burst as f64 - self.tokens).max(0.0) / rps
                };
                RateHeaders {
                    limit: burst as u64,
                    remaining,
                    reset: ceil_secs(now_ms as f64 + wait_secs * 1000.0),
                }
            }
        }
    }

    /// Takes one token if available. Returns whether the request may proceed
    /// and the headers to send with the response.
    pub fn try_acquire(&mut self, now: Instant, now_ms: u64) -> (bool, RateHeaders) {
        self.refill(now);
        let allowed = match self.setting {
            RateLimitSetting::None | RateLimitSetting::Essentials => true,
            RateLimitSetting::Bucket { .. } => {
                if self.tokens >= 1.0 {
                    self.tokens -= 1.0;
                    true
                } else {
                    false
                }
            }
        };
        (allowed, self.headers(now_ms))
    }

    /// Current header values without taking a token.
    pub fn peek(&mut self, now: Instant, now_ms: u64) -> RateHeaders {
        self.refill(now);
        self.headers(now_ms)
    }

    /// Headers for a response during a 429 storm that ends at `storm_end_ms`.
    pub fn storm_headers(&self, storm_end_ms: u64) -> RateHeaders {
        let limit = match self.setting {
            RateLimitSetting::None | RateLimitSetting::Essentials => UNLIMITED_LIMIT,
            RateLimitSetting::Bucket { burst, .. } => burst as u64,
        };
        RateHeaders {
            limit,
            remaining: 0,
            reset: ceil_secs(storm_end_ms as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parse_settings() {
        assert_eq!(RateLimitSetting::parse("none"), Ok(RateLimitSetting::None));
        assert_eq!(RateLimitSetting::parse("free"), Ok(RateLimitSetting::FREE));
        assert_eq!(
            RateLimitSetting::parse("15:50"),
            Ok(RateLimitSetting::Bucket {
                rps: 15.0,
                burst: 50
            })
        );
        assert!(RateLimitSetting::parse("0:5").is_err());
        assert!(RateLimitSetting::parse("5:0").is_err());
        assert!(RateLimitSetting::parse("fast").is_err());
    }

    #[test]
    fn essentials_limits_groups_of_endpoints_apart() {
        assert_eq!(
            RateLimitSetting::parse("Essentials"),
            Ok(RateLimitSetting::Essentials)
        );
        let mut l = Limiter::new(RateLimitSetting::Essentials);
        let (t0, ms) = (Instant::now(), 1_000_000_000_000);
        let ticket = Some("POST /api/v2/tickets/password-change");
        let roles = Some("POST /api/v2/users/{id}/roles");
        // Tickets and role assignments share "all other endpoints": a burst of 10.
        for i in 0..10 {
            let endpoint = if i % 2 == 0 { ticket } else { roles };
            let (ok, h) = l.for_route(endpoint).try_acquire(t0, ms);
            assert!(ok, "call {i}");
            assert_eq!(h.limit, 10);
        }
        assert!(
            !l.for_route(ticket).try_acquire(t0, ms).0,
            "the 11th other call"
        );
        // Creating users has a bucket of its own, as does reading them.
        let (ok, h) = l.for_route(Some("POST /api/v2/users")).try_acquire(t0, ms);
        assert!(ok);
        assert_eq!(h.limit, 20);
        let (ok, h) = l.for_route(Some("GET /api/v2/users")).try_acquire(t0, ms);
        assert!(ok);
        assert_eq!(h.limit, 40);
        // 150 a minute: one token back after 0.4 s.
        assert!(
            l.for_route(ticket)
                .try_acquire(t0 + Duration::from_millis(400), ms + 400)
                .0
        );
    }

    #[test]
    fn bucket_empties_and_refills() {
        let mut l = Limiter::new(RateLimitSetting::FREE);
        let t0 = Instant::now();
        let ms = 1_000_000_000_000;
        let (ok, h) = l.try_acquire(t0, ms);
        assert!(ok);
        assert_eq!((h.limit, h.remaining), (2, 1));
        let (ok, h) = l.try_acquire(t0, ms);
        assert!(ok);
        assert_eq!(h.remaining, 0);
        let (ok, h) = l.try_acquire(t0, ms);
        assert!(!ok);
        // One token comes back after 0.5 s.
        assert_eq!(h.reset, ms / 1000 + 1);
        let (ok, _) = l.try_acquire(t0 + Duration::from_millis(500), ms + 500);
        assert!(ok);
    }

    #[test]
    fn unlimited_always_allows() {
        let mut l = Limiter::new(RateLimitSetting::None);
        for _ in 0..100 {
            let (ok, h) = l.try_acquire(Instant::now(), 5_000);
            assert!(ok);
            assert_eq!(h.limit, UNLIMITED_LIMIT);
        }
    }
}
