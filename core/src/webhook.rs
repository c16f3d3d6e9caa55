//! Webhook signature verification for Stripe and for Standard Webhooks senders. The HMAC is
//! checked on the raw body bytes, in constant time, before anything parses the body; then
//! the timestamp window. Errors say nothing that helps a forger.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::platform::hex;
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Default age limit of a Stripe signature timestamp (Stripe's own default).
pub const STRIPE_TOLERANCE_SEC: u64 = 300;
/// Allowed clock difference for Standard Webhooks, either way (the spec's default).
pub const STANDARD_TOLERANCE_SEC: u64 = 300;

/// Why a webhook was refused. Shown to the sender only as `invalid_signature`.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum WebhookError {
    /// The signature header is missing or malformed.
    #[error("signature header missing or malformed")]
    Malformed,
    /// No signature matched any configured secret.
    #[error("no signature matched")]
    NoMatch,
    /// The timestamp is outside the tolerance.
    #[error("timestamp outside the tolerance")]
    Stale,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Parses `t=<unix>,v1=<hex>,v1=<hex>,…` (other schemes such as `v0` are ignored).
fn parse_stripe_header(header: &str) -> Result<(u64, Vec<&str>), WebhookError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "t" => t = v.trim().parse::<u64>().ok(),
            "v1" => v1.push(v.trim()),
            _ => {}
        }
    }
    match t {
        Some(t) if !v1.is_empty() => Ok((t, v1)),
        _ => Err(WebhookError::Malformed),
    }
}

/// Verifies a `Stripe-Signature` header against several secrets (rotation). Returns the
/// signed timestamp.
pub fn verify_stripe(
    payload: &[u8],
    header: &str,
    secrets: &[Secret],
    now_sec: u64,
    tolerance_sec: u64,
) -> Result<u64, WebhookError> {
    let (t, candidates) = parse_stripe_header(header)?;
    let mut matched = false;
    for secret in secrets {
        let mut m = mac(secret.expose().as_bytes());
        m.update(t.to_string().as_bytes());
        m.update(b".");
        m.update(payload);
        let expected = hex(&m.finalize().into_bytes());
        for c in &candidates {
            // Same length (64 hex digits) before a constant-time comparison.
            if c.len() == expected.len() && bool::from(c.as_bytes().ct_eq(expected.as_bytes())) {
                matched = true;
            }
        }
    }
    if !matched {
        return Err(WebhookError::NoMatch);
    }
    // Both ways: a timestamp far in the future would stay "fresh" for as long as it likes.
    // A tolerance of 0 means 1 s: the check can't be switched off.
    if now_sec.abs_diff(t) > tolerance_sec.max(1) {
        return Err(WebhookError::Stale);
    }
    Ok(t)
}

/// The key of a Standard Webhooks secret: the base64 part of `whsec_<base64>`.
pub fn standard_key(secret: &Secret) -> Option<Vec<u8>> {
    let s = secret.expose();
    B64.decode(s.strip_prefix("whsec_").unwrap_or(s)).ok()
}

/// Verifies Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`) against several secrets. Returns the timestamp.
pub fn verify_standard(
    payload: &[u8],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    secrets: &[Secret],
    now_sec: u64,
) -> Result<u64, WebhookError> {
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::Malformed)?;
    if id.is_empty() || signature_header.trim().is_empty() {
        return Err(WebhookError::Malformed);
    }
    let mut matched = false;
    for secret in secrets {
        let Some(key) = standard_key(secret) else {
            continue;
        };
        let mut m = mac(&key);
        m.update(id.as_bytes());
        m.update(b".");
        m.update(timestamp.trim().as_bytes());
        m.update(b".");
        m.update(payload);
        let expected = m.finalize().into_bytes();
        for part in signature_header.split_whitespace() {
            let Some(("v1", sig)) = part.split_once(',') else {
                continue;
            };
            let Ok(sig) = B64.decode(sig) else {
                continue;
            };
            // Check the length before comparing: a truncated signature never matches.
            if sig.len() == expected.len() && bool::from(sig.ct_eq(&expected)) {
                matched = true;
            }
        }
    }
    if !matched {
        return Err(WebhookError::NoMatch);
    }
    if now_sec.abs_diff(ts) > STANDARD_TOLERANCE_SEC {
        return Err(WebhookError::Stale);
    }
    Ok(ts)
}

/// Test helpers that sign payloads the way the senders do (for unit and end-to-end tests).
pub mod sign_for_test {
    use super::*;

    /// A `Stripe-Signature` header value for `payload` signed at `t`.
    pub fn stripe(payload: &[u8], secret: &str, t: u64) -> String {
        let mut m = mac(secret.as_bytes());
        m.update(format!("{t}.").as_bytes());
        m.update(payload);
        format!("t={t},v1={}", hex(&m.finalize().into_bytes()))
    }

    /// A `webhook-signature` header value (`v1,<base64>`).
    pub fn standard(id: &str, timestamp: u64, payload: &[u8], secret: &str) -> String {
        let key = standard_key(&Secret::new(secret)).unwrap_or_default();
        let mut m = mac(&key);
        m.update(format!("{id}.{timestamp}.").as_bytes());
        m.update(payload);
        format!("v1,{}", B64.encode(m.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::sign_for_test;
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const SECRET: &str = "whsec_test_secret";
    const PAYLOAD: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;

    fn secrets(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::new(*s)).collect()
    }

    fn check_stripe(
        payload: &[u8],
        header: &str,
        keys: &[&str],
        expected: Result<u64, WebhookError>,
    ) {
        assert_eq!(
            verify_stripe(payload, header, &secrets(keys), NOW, STRIPE_TOLERANCE_SEC),
            expected,
            "{header}"
        );
    }

    #[test]
    fn stripe_valid_signature() {
        let header = sign_for_test::stripe(PAYLOAD, SECRET, NOW);
        check_stripe(PAYLOAD, &header, &[SECRET], Ok(NOW));
    }

    #[test]
    fn stripe_malformed_headers() {
        for header in [
            "",
            "bad_header",
            "t=",
            "t=abc,v1=00",
            &format!("t={NOW}"),
            "v1=abcdef",
            &format!("t={NOW},v0=deadbeef"),
        ] {
            check_stripe(PAYLOAD, header, &[SECRET], Err(WebhookError::Malformed));
        }
    }

    #[test]
    fn stripe_wrong_signature_and_tampered_body() {
        let header = sign_for_test::stripe(PAYLOAD, SECRET, NOW);
        check_stripe(
            PAYLOAD,
            &format!("t={NOW},v1={}", "0".repeat(64)),
            &[SECRET],
            Err(WebhookError::NoMatch),
        );
        check_stripe(
            br#"{"id":"evt_test_webhook","object":"evil"}"#,
            &header,
            &[SECRET],
            Err(WebhookError::NoMatch),
        );
        check_stripe(
            PAYLOAD,
            &header,
            &["whsec_other"],
            Err(WebhookError::NoMatch),
        );
        // A truncated signature never matches.
        check_stripe(
            PAYLOAD,
            &header[..header.len() - 2],
            &[SECRET],
            Err(WebhookError::NoMatch),
        );
    }

    #[test]
    fn stripe_old_timestamp() {
        let header = sign_for_test::stripe(PAYLOAD, SECRET, NOW - 301);
        check_stripe(PAYLOAD, &header, &[SECRET], Err(WebhookError::Stale));
        let header = sign_for_test::stripe(PAYLOAD, SECRET, NOW - 300);
        check_stripe(PAYLOAD, &header, &[SECRET], Ok(NOW - 300));
        // Regression (finding 7): tolerance 0 used to switch the age check off.
        let old = sign_for_test::stripe(PAYLOAD, SECRET, NOW - 30 * 86_400);
        assert_eq!(
            verify_stripe(PAYLOAD, &old, &secrets(&[SECRET]), NOW, 0),
            Err(WebhookError::Stale)
        );
        // ... and timestamps far in the future were accepted.
        let future = sign_for_test::stripe(PAYLOAD, SECRET, NOW + 301);
        check_stripe(PAYLOAD, &future, &[SECRET], Err(WebhookError::Stale));
        let near = sign_for_test::stripe(PAYLOAD, SECRET, NOW + 300);
        check_stripe(PAYLOAD, &near, &[SECRET], Ok(NOW + 300));
    }

    #[test]
    fn stripe_several_signatures_one_valid_and_rotation_and_whitespace() {
        let good = sign_for_test::stripe(PAYLOAD, SECRET, NOW);
        let v1 = good.split("v1=").nth(1).unwrap();
        let header = format!(
            "t={NOW},v1={},v1={v1},v0={}",
            "a".repeat(64),
            "b".repeat(64)
        );
        check_stripe(PAYLOAD, &header, &[SECRET], Ok(NOW));
        check_stripe(PAYLOAD, &good, &["whsec_new_secret", SECRET], Ok(NOW));
        check_stripe(
            PAYLOAD,
            &format!("  t={NOW} , v1={v1}  "),
            &[SECRET],
            Ok(NOW),
        );
    }

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: u64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn check_standard(sig: &str, keys: &[&str], now: u64, expected: Result<u64, WebhookError>) {
        let got = verify_standard(
            VECTOR_BODY,
            VECTOR_ID,
            &VECTOR_TS.to_string(),
            sig,
            &secrets(keys),
            now,
        );
        assert_eq!(got, expected, "{sig}");
    }

    #[test]
    fn standard_webhooks_spec_vector() {
        check_standard(VECTOR_SIG, &[VECTOR_SECRET], VECTOR_TS, Ok(VECTOR_TS));
        assert_eq!(
            sign_for_test::standard(VECTOR_ID, VECTOR_TS, VECTOR_BODY, VECTOR_SECRET),
            VECTOR_SIG
        );
        // Several signatures, one valid; a rotated secret.
        check_standard(
            &format!("v1,Zm9v {VECTOR_SIG} v2,abc"),
            &["whsec_Zm9vYmFyYmF6", VECTOR_SECRET],
            VECTOR_TS,
            Ok(VECTOR_TS),
        );
    }

    #[test]
    fn standard_webhooks_rejections() {
        check_standard(
            "v1,",
            &[VECTOR_SECRET],
            VECTOR_TS,
            Err(WebhookError::NoMatch),
        );
        check_standard(
            "",
            &[VECTOR_SECRET],
            VECTOR_TS,
            Err(WebhookError::Malformed),
        );
        check_standard(
            &VECTOR_SIG[..VECTOR_SIG.len() - 8],
            &[VECTOR_SECRET],
            VECTOR_TS,
            Err(WebhookError::NoMatch),
        );
        check_standard(
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            &[VECTOR_SECRET],
            VECTOR_TS,
            Err(WebhookError::NoMatch),
        );
        check_standard(
            VECTOR_SIG,
            &["whsec_Zm9vYmFyYmF6"],
            VECTOR_TS,
            Err(WebhookError::NoMatch),
        );
        check_standard(
            VECTOR_SIG,
            &[VECTOR_SECRET],
            VECTOR_TS + 301,
            Err(WebhookError::Stale),
        );
        check_standard(
            VECTOR_SIG,
            &[VECTOR_SECRET],
            VECTOR_TS - 301,
            Err(WebhookError::Stale),
        );
        let tampered = verify_standard(
            br#"{"test": 2432232315}"#,
            VECTOR_ID,
            "1614265330",
            VECTOR_SIG,
            &secrets(&[VECTOR_SECRET]),
            VECTOR_TS,
        );
        assert_eq!(tampered, Err(WebhookError::NoMatch));
        let bad_ts = verify_standard(
            VECTOR_BODY,
            VECTOR_ID,
            "soon",
            VECTOR_SIG,
            &secrets(&[VECTOR_SECRET]),
            VECTOR_TS,
        );
        assert_eq!(bad_ts, Err(WebhookError::Malformed));
    }
}
