//! Retry-delay decisions for Auth0 calls: how long to wait after a 429 or a transient
//! failure, and whether that wait still fits in the request's deadline. Pure functions.

/// First backoff step for transient failures.
pub const BACKOFF_BASE_MS: u64 = 200;
/// Largest single backoff step.
pub const BACKOFF_CAP_MS: u64 = 4_000;
/// Shortest wait after a 429 whose reset time is already past.
pub const MIN_RATE_LIMIT_WAIT_MS: u64 = 100;
/// Most attempts of one call, whatever the deadline.
pub const MAX_ATTEMPTS: u32 = 10;
/// Longest wait a 429's headers are believed for (an hour): a larger one is more likely a
/// broken header than a real pause, and it would reach the caller's `Retry-After` as is.
pub const MAX_RATE_LIMIT_WAIT_MS: u64 = 3_600_000;

/// Why an attempt failed in a way that may be retried.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure<'a> {
    /// HTTP 429, with the headers that say when to come back.
    RateLimited {
        /// `Retry-After`, if sent (seconds).
        retry_after: Option<&'a str>,
        /// `X-RateLimit-Reset`, if sent (Unix seconds).
        ratelimit_reset: Option<&'a str>,
    },
    /// 5xx or a network error.
    Transient,
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Sleep this long, then try again.
    RetryAfter(u64),
    /// Stop; the wait would not fit before the deadline. For a 429 this carries how long the
    /// caller should wait (ms) before trying the whole request again.
    GiveUp {
        /// Suggested wait for the caller.
        wait_ms: u64,
    },
}

/// How long to wait after `failure` on attempt number `attempt` (0-based).
///
/// 429: `Retry-After` seconds, else `X-RateLimit-Reset` minus now, else backoff.
/// Transient: exponential backoff from [`BACKOFF_BASE_MS`], capped at [`BACKOFF_CAP_MS`],
/// with "equal jitter" (half fixed, half random) from `jitter` in `0..=1`.
pub fn delay_ms(failure: &Failure<'_>, attempt: u32, now_ms: u64, jitter: f64) -> u64 {
    if let Failure::RateLimited {
        retry_after,
        ratelimit_reset,
    } = failure
    {
        // Saturating: the numbers come from the upstream's headers.
        if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
            return secs
                .saturating_mul(1000)
                .clamp(MIN_RATE_LIMIT_WAIT_MS, MAX_RATE_LIMIT_WAIT_MS);
        }
        if let Some(reset) = ratelimit_reset.and_then(|v| v.trim().parse::<u64>().ok()) {
            return reset
                .saturating_mul(1000)
                .saturating_sub(now_ms)
                .clamp(MIN_RATE_LIMIT_WAIT_MS, MAX_RATE_LIMIT_WAIT_MS);
        }
    }
    let step = BACKOFF_BASE_MS
        .saturating_mul(1u64 << attempt.min(20))
        .min(BACKOFF_CAP_MS);
    let jitter = jitter.clamp(0.0, 1.0);
    step / 2 + ((step / 2) as f64 * jitter) as u64
}

/// Decides whether to retry: only when another attempt is allowed and the wait ends before
/// `deadline_ms`.
pub fn decide(
    failure: &Failure<'_>,
    attempt: u32,
    now_ms: u64,
    deadline_ms: u64,
    jitter: f64,
) -> Decision {
    let wait = delay_ms(failure, attempt, now_ms, jitter);
    if attempt + 1 < MAX_ATTEMPTS && now_ms.saturating_add(wait) < deadline_ms {
        Decision::RetryAfter(wait)
    } else {
        Decision::GiveUp { wait_ms: wait }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn rl<'a>(retry_after: Option<&'a str>, reset: Option<&'a str>) -> Failure<'a> {
        Failure::RateLimited {
            retry_after,
            ratelimit_reset: reset,
        }
    }

    fn check(failure: Failure<'_>, attempt: u32, jitter: f64, expected: u64) {
        assert_eq!(
            delay_ms(&failure, attempt, NOW, jitter),
            expected,
            "{failure:?} #{attempt}"
        );
    }

    #[test]
    fn retry_after_wins() {
        check(rl(Some("3"), Some("1700000010")), 0, 0.5, 3_000);
        check(rl(Some(" 1 "), None), 4, 0.5, 1_000);
        check(rl(Some("0"), None), 0, 0.5, MIN_RATE_LIMIT_WAIT_MS);
        // Numbers no real pause has: bounded, not overflowed (debug builds panicked on it).
        check(
            rl(Some("18446744073709551615"), None),
            0,
            0.5,
            MAX_RATE_LIMIT_WAIT_MS,
        );
        check(rl(Some("86400"), None), 0, 0.5, MAX_RATE_LIMIT_WAIT_MS);
        check(
            rl(None, Some("18446744073709551615")),
            0,
            0.5,
            MAX_RATE_LIMIT_WAIT_MS,
        );
    }

    #[test]
    fn ratelimit_reset_when_no_retry_after() {
        check(rl(None, Some("1700000002")), 0, 0.5, 2_000);
        check(
            rl(Some("Wed, 21 Oct 2015 07:28:00 GMT"), Some("1700000001")),
            0,
            0.5,
            1_000,
        );
        // A reset in the past still waits a little instead of hammering.
        check(rl(None, Some("1699999990")), 0, 0.5, MIN_RATE_LIMIT_WAIT_MS);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        check(Failure::Transient, 0, 0.0, 100);
        check(Failure::Transient, 0, 1.0, 200);
        check(Failure::Transient, 1, 0.0, 200);
        check(Failure::Transient, 2, 1.0, 800);
        check(Failure::Transient, 10, 1.0, BACKOFF_CAP_MS);
        check(Failure::Transient, 63, 0.0, BACKOFF_CAP_MS / 2);
        // A 429 without any header backs off the same way.
        check(rl(None, None), 1, 1.0, 400);
        check(rl(Some("soon"), Some("later")), 0, 0.0, 100);
    }

    #[test]
    fn deadline_bounds_retries() {
        let f = rl(Some("2"), None);
        assert_eq!(
            decide(&f, 0, NOW, NOW + 2_500, 0.5),
            Decision::RetryAfter(2_000)
        );
        assert_eq!(
            decide(&f, 0, NOW, NOW + 2_000, 0.5),
            Decision::GiveUp { wait_ms: 2_000 }
        );
        assert_eq!(
            decide(
                &Failure::Transient,
                MAX_ATTEMPTS - 1,
                NOW,
                NOW + 60_000,
                0.0
            ),
            Decision::GiveUp {
                wait_ms: BACKOFF_CAP_MS / 2
            }
        );
    }
}
