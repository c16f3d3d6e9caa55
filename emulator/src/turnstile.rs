//! A local stand-in for Cloudflare Turnstile's server-side validation,
//! `POST /turnstile/v0/siteverify`, driven by Cloudflare's published dummy
//! secret keys. Every call is recorded (without the secret) so tests can
//! read back what the Worker sent through `GET /__emulator/siteverify`.

use serde_json::{json, Map, Value};

use crate::server::{Incoming, Reply};
use crate::state::State;
use crate::util;

/// Content type of every siteverify response.
pub const TURNSTILE_CT: &str = "application/json";

/// Dummy secret: every token passes.
pub const SECRET_ALWAYS_PASS: &str = "1x0000000000000000000000000000000AA";
/// Dummy secret: every token fails.
pub const SECRET_ALWAYS_FAIL: &str = "2x0000000000000000000000000000000AA";
/// Dummy secret: every token is reported as already spent.
pub const SECRET_SPENT: &str = "3x0000000000000000000000000000000AA";

/// Longest `response` token Cloudflare accepts.
pub const MAX_RESPONSE_LEN: usize = 2048;

/// What kind of secret a call carried (the secret itself is never kept).
fn secret_kind(secret: Option<&str>) -> &'static str {
    match secret {
        None => "missing",
        Some(SECRET_ALWAYS_PASS) => "always-pass",
        Some(SECRET_ALWAYS_FAIL) => "always-fail",
        Some(SECRET_SPENT) => "spent",
        Some(_) => "invalid",
    }
}

/// `8-4-4-4-12` hex digits, either case.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The request fields. Empty strings count as absent.
#[derive(Debug, Default)]
struct Params {
    secret: Option<String>,
    response: Option<String>,
    remoteip: Option<String>,
    idempotency_key: Option<String>,
}

impl Params {
    fn set(&mut self, key: &str, value: String) {
        let value = Some(value).filter(|v| !v.is_empty());
        match key {
            "secret" => self.secret = value,
            "response" => self.response = value,
            "remoteip" => self.remoteip = value,
            "idempotency_key" => self.idempotency_key = value,
            _ => {}
        }
    }
}

/// Reads a JSON or form body. `Err(())` for a malformed JSON body or one
/// whose known fields are not strings (Cloudflare's `bad-request`).
fn params(inc: &Incoming) -> Result<Params, ()> {
    let mut p = Params::default();
    let ct = inc.content_type.to_ascii_lowercase();
    let trimmed = inc
        .body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &inc.body[i..])
        .unwrap_or(&[]);
    let is_json = ct.contains("json")
        || (!ct.contains("application/x-www-form-urlencoded") && trimmed.starts_with(b"{"));
    if !is_json {
        for (k, v) in url::form_urlencoded::parse(&inc.body) {
            p.set(&k, v.into_owned());
        }
        return Ok(p);
    }
    if trimmed.is_empty() {
        return Ok(p);
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(trimmed) else {
        return Err(());
    };
    for (k, v) in obj {
        match v {
            Value::String(s) => p.set(&k, s),
            Value::Null => {}
            _ if matches!(
                k.as_str(),
                "secret" | "response" | "remoteip" | "idempotency_key"
            ) =>
            {
                return Err(())
            }
            _ => {}
        }
    }
    Ok(p)
}

fn failure(code: &str) -> Value {
    json!({"success": false, "error-codes": [code]})
}

/// The answer for a call, given its parsed fields.
fn verdict(p: &Params) -> Value {
    let kind = secret_kind(p.secret.as_deref());
    if kind == "missing" {
        return failure("missing-input-secret");
    }
    if kind == "invalid" {
        return failure("invalid-input-secret");
    }
    let Some(response) = &p.response else {
        return failure("missing-input-response");
    };
    if response.chars().count() > MAX_RESPONSE_LEN {
        return failure("invalid-input-response");
    }
    if p.idempotency_key.as_deref().is_some_and(|k| !is_uuid(k)) {
        return failure("invalid-idempotency-key");
    }
    match kind {
        "always-pass" => json!({
            "success": true,
            "challenge_ts": util::now_rfc3339(),
            "hostname": "example.com",
            "error-codes": [],
            "action": "",
            "cdata": "",
        }),
        "always-fail" => failure("invalid-input-response"),
        _ => failure("timeout-or-duplicate"),
    }
}

/// `POST /turnstile/v0/siteverify`. Always 200 with JSON.
pub fn siteverify(state: &mut State, inc: &Incoming) -> Reply {
    let parsed = if inc.body_too_large {
        Err(())
    } else {
        params(inc)
    };
    let (p, body) = match parsed {
        Ok(p) => {
            let body = verdict(&p);
            (p, body)
        }
        Err(()) => (Params::default(), failure("bad-request")),
    };
    let success = body["success"].as_bool().unwrap_or(false);
    let mut entry = Map::new();
    entry.insert(
        "secret_kind".into(),
        json!(secret_kind(p.secret.as_deref())),
    );
    entry.insert("response".into(), json!(p.response));
    entry.insert("remoteip".into(), json!(p.remoteip));
    entry.insert("idempotency_key".into(), json!(p.idempotency_key));
    entry.insert("success".into(), json!(success));
    entry.insert("at".into(), json!(util::now_rfc3339()));
    state.siteverify.push(Value::Object(entry));
    Reply::json_with(200, &body, TURNSTILE_CT)
}

/// Any method other than POST on the siteverify path.
pub fn method_not_allowed() -> Reply {
    Reply::json_with(405, &failure("bad-request"), TURNSTILE_CT)
        .with_headers(vec![("Allow", "POST".to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_uuid("123E4567-E89B-12D3-A456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
        assert!(!is_uuid("not-a-uuid"));
    }

    #[test]
    fn secret_kinds() {
        assert_eq!(secret_kind(None), "missing");
        assert_eq!(secret_kind(Some(SECRET_ALWAYS_PASS)), "always-pass");
        assert_eq!(secret_kind(Some(SECRET_ALWAYS_FAIL)), "always-fail");
        assert_eq!(secret_kind(Some(SECRET_SPENT)), "spent");
        assert_eq!(secret_kind(Some("0x4AAAAAAA")), "invalid");
    }
}
