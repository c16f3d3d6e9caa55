//! The Cloudflare Turnstile siteverify stand-in
//! (`POST /turnstile/v0/siteverify`) and its recorded calls.

mod common;

use common::Emu;
use serde_json::{json, Value};

const PATH: &str = "/turnstile/v0/siteverify";
const PASS: &str = "1x0000000000000000000000000000000AA";
const FAIL: &str = "2x0000000000000000000000000000000AA";
const SPENT: &str = "3x0000000000000000000000000000000AA";
const TOKEN: &str = "XXXX.DUMMY.TOKEN.XXXX";
const UUID: &str = "123e4567-e89b-12d3-a456-426614174000";

fn verify_json(emu: &Emu, body: &Value) -> Value {
    let r = emu.post(PATH, None, body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

fn verify_form(emu: &Emu, form: &str) -> Value {
    let r = emu.request(
        "POST",
        PATH,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

fn codes(v: &Value) -> Value {
    v["error-codes"].clone()
}

fn recorded(emu: &Emu) -> Vec<Value> {
    let r = emu.get("/__emulator/siteverify", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default()
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

#[test]
fn always_pass_secret_json_and_form() {
    let emu = Emu::start();
    let v = verify_json(&emu, &json!({"secret": PASS, "response": TOKEN}));
    assert_eq!(v["success"], true);
    assert!(is_rfc3339(&v["challenge_ts"]), "{v}");
    assert_eq!(v["hostname"], "example.com");
    assert_eq!(v["error-codes"], json!([]));
    assert_eq!(v["action"], "");
    assert_eq!(v["cdata"], "");
    assert_eq!(v.as_object().map(|m| m.len()), Some(6), "{v}");

    let v = verify_form(
        &emu,
        &format!("secret={PASS}&response=abc%2Bdef&remoteip=203.0.113.7&idempotency_key={UUID}"),
    );
    assert_eq!(v["success"], true, "{v}");
}

#[test]
fn always_fail_and_spent_secrets() {
    let emu = Emu::start();
    let fail = json!({"success": false, "error-codes": ["invalid-input-response"]});
    let spent = json!({"success": false, "error-codes": ["timeout-or-duplicate"]});
    assert_eq!(
        verify_json(&emu, &json!({"secret": FAIL, "response": TOKEN})),
        fail
    );
    assert_eq!(
        verify_form(&emu, &format!("secret={FAIL}&response={TOKEN}")),
        fail
    );
    assert_eq!(
        verify_json(&emu, &json!({"secret": SPENT, "response": TOKEN})),
        spent
    );
    assert_eq!(
        verify_form(&emu, &format!("secret={SPENT}&response={TOKEN}")),
        spent
    );
}

#[test]
fn input_errors() {
    let emu = Emu::start();
    let one = |code: &str| json!([code]);

    // Secret.
    let v = verify_json(&emu, &json!({"response": TOKEN}));
    assert_eq!(v["success"], false);
    assert_eq!(codes(&v), one("missing-input-secret"));
    let v = verify_form(&emu, &format!("response={TOKEN}"));
    assert_eq!(codes(&v), one("missing-input-secret"));
    let v = verify_json(
        &emu,
        &json!({"secret": "0x4AAAAAAABBBBBB", "response": TOKEN}),
    );
    assert_eq!(v["success"], false);
    assert_eq!(codes(&v), one("invalid-input-secret"));
    let v = verify_form(&emu, &format!("secret=nope&response={TOKEN}"));
    assert_eq!(codes(&v), one("invalid-input-secret"));

    // Response: missing, empty, too long (2048 is still fine).
    let v = verify_json(&emu, &json!({"secret": PASS}));
    assert_eq!(v["success"], false);
    assert_eq!(codes(&v), one("missing-input-response"));
    let v = verify_form(&emu, &format!("secret={PASS}&response="));
    assert_eq!(codes(&v), one("missing-input-response"));
    let v = verify_json(&emu, &json!({"secret": PASS, "response": "a".repeat(2048)}));
    assert_eq!(v["success"], true, "{v}");
    let v = verify_json(&emu, &json!({"secret": PASS, "response": "a".repeat(2049)}));
    assert_eq!(v["success"], false);
    assert_eq!(codes(&v), one("invalid-input-response"));
    let long = "a".repeat(2049);
    let v = verify_form(&emu, &format!("secret={PASS}&response={long}"));
    assert_eq!(codes(&v), one("invalid-input-response"));

    // Idempotency key.
    let v = verify_json(
        &emu,
        &json!({"secret": PASS, "response": TOKEN, "idempotency_key": "not-a-uuid"}),
    );
    assert_eq!(v["success"], false);
    assert_eq!(codes(&v), one("invalid-idempotency-key"));
    let v = verify_form(
        &emu,
        &format!("secret={PASS}&response={TOKEN}&idempotency_key=12345"),
    );
    assert_eq!(codes(&v), one("invalid-idempotency-key"));
    let v = verify_json(
        &emu,
        &json!({"secret": PASS, "response": TOKEN, "idempotency_key": UUID.to_uppercase()}),
    );
    assert_eq!(v["success"], true, "{v}");
}

#[test]
fn malformed_json_is_a_bad_request_with_200() {
    let emu = Emu::start();
    let r = emu.request(
        "POST",
        PATH,
        &[("Content-Type", "application/json")],
        Some(b"{not json"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"success": false, "error-codes": ["bad-request"]})
    );
    assert_eq!(emu.get(PATH, None).status, 405);
}

#[test]
fn calls_are_recorded_in_order_without_the_secret() {
    let emu = Emu::start();
    assert!(recorded(&emu).is_empty());
    verify_json(
        &emu,
        &json!({"secret": PASS, "response": "tok-1", "remoteip": "203.0.113.7", "idempotency_key": UUID}),
    );
    verify_form(&emu, &format!("secret={FAIL}&response=tok-2"));
    verify_json(&emu, &json!({"secret": SPENT, "response": "tok-3"}));
    verify_form(&emu, "secret=s3cr3t-value&response=tok-4");
    verify_json(&emu, &json!({"response": "tok-5"}));
    verify_json(&emu, &json!({"secret": PASS}));

    let calls = recorded(&emu);
    assert_eq!(calls.len(), 6);
    let kinds: Vec<&str> = calls
        .iter()
        .map(|c| c["secret_kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "always-pass",
            "always-fail",
            "spent",
            "invalid",
            "missing",
            "always-pass"
        ]
    );
    let first = &calls[0];
    assert_eq!(first["response"], "tok-1");
    assert_eq!(first["remoteip"], "203.0.113.7");
    assert_eq!(first["idempotency_key"], UUID);
    assert_eq!(first["success"], true);
    assert!(is_rfc3339(&first["at"]), "{first}");
    assert_eq!(calls[1]["response"], "tok-2");
    assert_eq!(calls[1]["remoteip"], Value::Null);
    assert_eq!(calls[1]["idempotency_key"], Value::Null);
    assert_eq!(calls[1]["success"], false);
    assert_eq!(calls[5]["response"], Value::Null);
    assert_eq!(calls[5]["success"], false);
    for c in &calls {
        assert_eq!(c.as_object().map(|m| m.len()), Some(6), "{c}");
        assert!(c.get("secret").is_none());
    }
    let raw = emu.get("/__emulator/siteverify", None).body;
    assert!(!raw.contains("s3cr3t-value"));
    assert!(!raw.contains(PASS));

    let r = emu.post("/__emulator/reset", None, &json!({}));
    assert_eq!(r.status, 200);
    assert!(recorded(&emu).is_empty());
}

#[test]
fn counted_in_stats_but_never_faulted() {
    let emu = Emu::start();
    emu.config(json!({"fail_rate": 1.0, "rate_limit": "1:1", "storm_429_ms": 60000}));
    for _ in 0..3 {
        let v = verify_json(&emu, &json!({"secret": PASS, "response": TOKEN}));
        assert_eq!(v["success"], true);
    }
    let s = emu.stats();
    assert_eq!(s["endpoints"]["POST /turnstile/v0/siteverify"], 3);
    assert_eq!(s["faults_injected"], 0);
    assert_eq!(s["management_requests"], 0);
    emu.post("/__emulator/reset-stats", None, &json!({}));
    assert_eq!(emu.stats()["endpoints"]["POST /turnstile/v0/siteverify"], 0);
}
