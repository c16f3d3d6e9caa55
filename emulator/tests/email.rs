//! Auth0's `POST /dbconnections/change_password`, the fake Resend-style
//! email API (`POST /emails`), the outbox filter, and fault injection on both.

mod common;

use common::{Emu, CONNECTION};
use serde_json::{json, Value};

const SENT: &str = "We've just sent you an email to reset your password.";

fn change_password(emu: &Emu, body: &Value) -> common::Resp {
    emu.post("/dbconnections/change_password", None, body)
}

fn cp_body(email: &str) -> Value {
    json!({"client_id": "dev-client-id", "email": email, "connection": CONNECTION})
}

/// `POST /emails` with an optional API key and idempotency key.
fn send_email(emu: &Emu, key: Option<&str>, idem: Option<&str>, body: &Value) -> common::Resp {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    if let Some(i) = idem {
        headers.push(("Idempotency-Key", i));
    }
    let body = serde_json::to_vec(body).expect("serialize");
    emu.request("POST", "/emails", &headers, Some(&body))
}

fn mail(to: Value) -> Value {
    json!({
        "from": "Acme <hello@acme.example>",
        "to": to,
        "subject": "Your account is ready",
        "html": "<p>Hi</p>",
        "text": "Hi",
    })
}

fn outbox(emu: &Emu, query: &str) -> Vec<Value> {
    let r = emu.get(&format!("/__emulator/outbox{query}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default()
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

#[test]
fn change_password_for_an_existing_user() {
    let emu = Emu::start();
    let token = emu.token();
    let user = emu.create_user(&token, "ada@example.com");
    let before = outbox(&emu, "").len();

    // Public endpoint: no bearer token. The email is matched case-insensitively.
    let r = change_password(&emu, &cp_body("Ada@Example.com"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, SENT);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

    let all = outbox(&emu, "");
    assert_eq!(all.len(), before + 1);
    let entry = &all[all.len() - 1];
    assert_eq!(entry["kind"], "change_password");
    assert_eq!(entry["to"], "ada@example.com");
    assert_eq!(entry["connection"], CONNECTION);
    assert_eq!(entry["client_id"], "dev-client-id");
    assert_eq!(entry["user_exists"], true);
    assert_eq!(entry["user_id"], user["user_id"]);
    assert!(entry.get("organization").is_none());
    assert!(is_rfc3339(&entry["at"]), "{entry}");

    // Form-encoded, with an organization.
    let form = format!(
        "client_id=dev-client-id&email={}&connection={}&organization=org_123",
        common::enc("ada@example.com"),
        CONNECTION
    );
    let r = emu.request(
        "POST",
        "/dbconnections/change_password",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    );
    assert_eq!((r.status, r.body.as_str()), (200, SENT));
    let sent = outbox(&emu, "?kind=change_password");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["organization"], "org_123");
}

#[test]
fn change_password_does_not_reveal_unknown_users() {
    let emu = Emu::start();
    let r = change_password(&emu, &cp_body("nobody@example.com"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, SENT);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(outbox(&emu, "").is_empty(), "nothing is sent");
}

#[test]
fn change_password_errors() {
    let emu = Emu::start_with(|o| o.public_client_ids = vec!["spa-client".into()]);
    let err = |body: Value| {
        let r = change_password(&emu, &body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        (r.status, r.json())
    };
    let e = |d: &str| json!({"error": "invalid_request", "error_description": d});

    assert_eq!(
        err(json!({"email": "a@b.co", "connection": CONNECTION})),
        (400, e("Missing required parameter: client_id"))
    );
    assert_eq!(
        err(json!({"client_id": "", "email": "a@b.co", "connection": CONNECTION})),
        (400, e("Missing required parameter: client_id"))
    );
    assert_eq!(
        err(json!({"client_id": "other", "email": "a@b.co", "connection": CONNECTION})),
        (400, e("Unknown client"))
    );
    assert_eq!(
        err(json!({"client_id": "dev-client-id", "connection": CONNECTION})),
        (400, e("Missing required parameter: email"))
    );
    assert_eq!(
        err(json!({"client_id": "dev-client-id", "email": "a@b.co"})),
        (400, e("connection not found"))
    );
    assert_eq!(
        err(json!({"client_id": "dev-client-id", "email": "a@b.co", "connection": "other-db"})),
        (400, e("connection not found"))
    );

    // A --public-client-ids client is accepted.
    let r = change_password(
        &emu,
        &json!({"client_id": "spa-client", "email": "a@b.co", "connection": CONNECTION}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        emu.get("/__emulator/config", None).json()["public_client_ids"],
        json!(["spa-client"])
    );

    // Other methods: 404.
    let r = emu.get("/dbconnections/change_password", None);
    assert_eq!(r.status, 404);
}

#[test]
fn email_api_key() {
    let emu = Emu::start();
    let r = send_email(&emu, None, None, &mail(json!("a@b.co")));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"statusCode":401,"name":"missing_api_key","message":"Missing API key in the authorization header."})
    );
    let r = emu.request(
        "POST",
        "/emails",
        &[("Authorization", "Basic cmVfZGV2X2tleTo=")],
        Some(b"{}"),
    );
    assert_eq!(r.status, 401);

    let r = send_email(&emu, Some("re_wrong"), None, &mail(json!("a@b.co")));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"statusCode":403,"name":"invalid_api_key","message":"API key is invalid"})
    );
    assert!(outbox(&emu, "").is_empty());

    // --email-api-key changes the accepted key.
    let emu = Emu::start_with(|o| o.email_api_key = "re_custom".into());
    assert_eq!(
        send_email(&emu, Some("re_dev_key"), None, &mail(json!("a@b.co"))).status,
        403
    );
    assert_eq!(
        send_email(&emu, Some("re_custom"), None, &mail(json!("a@b.co"))).status,
        200
    );
}

#[test]
fn email_is_recorded() {
    let emu = Emu::start();
    let mut body = mail(json!("Lin <Lin@Example.com>"));
    body["reply_to"] = json!("support@acme.example");
    body["tags"] = json!([{"name": "category", "value": "invite"}]);
    body["scheduled_whatever"] = json!({"ignored": true});
    let r = send_email(&emu, Some("re_dev_key"), None, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    let id = v["id"].as_str().expect("id").to_string();
    assert_eq!(v.as_object().map(|m| m.len()), Some(1));
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(parts, vec![8, 4, 4, 4, 12], "{id}");

    let all = outbox(&emu, "");
    assert_eq!(all.len(), 1);
    let e = &all[0];
    assert_eq!(e["kind"], "email");
    assert_eq!(e["id"], id.as_str());
    assert_eq!(e["to"], json!(["Lin <Lin@Example.com>"]));
    assert_eq!(e["from"], "Acme <hello@acme.example>");
    assert_eq!(e["subject"], "Your account is ready");
    assert_eq!(e["html"], "<p>Hi</p>");
    assert_eq!(e["text"], "Hi");
    assert_eq!(e["reply_to"], json!(["support@acme.example"]));
    assert_eq!(e["tags"], json!([{"name": "category", "value": "invite"}]));
    assert!(e.get("scheduled_whatever").is_none());
    assert!(is_rfc3339(&e["at"]), "{e}");

    // text only, array of recipients; html is then null.
    let r = send_email(
        &emu,
        Some("re_dev_key"),
        None,
        &json!({"from": "a@acme.example", "to": ["x@example.com", "y@example.com"], "subject": "s", "text": "t"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let e = &outbox(&emu, "?to=y@example.com")[0];
    assert_eq!(e["to"], json!(["x@example.com", "y@example.com"]));
    assert_eq!(e["html"], Value::Null);
}

#[test]
fn email_validation() {
    let emu = Emu::start();
    let check = |body: Value, message: &str| {
        let r = send_email(&emu, Some("re_dev_key"), None, &body);
        assert_eq!(r.status, 422, "{body} -> {}", r.body);
        assert_eq!(
            r.json(),
            json!({"statusCode": 422, "name": "validation_error", "message": message}),
            "{body}"
        );
    };
    let without = |k: &str| {
        let mut b = mail(json!("a@b.co"));
        if let Some(m) = b.as_object_mut() {
            m.remove(k);
        }
        b
    };
    let with = |k: &str, v: Value| {
        let mut b = mail(json!("a@b.co"));
        b[k] = v;
        b
    };
    let format = "The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.";
    check(without("from"), "Missing `from` field.");
    check(
        with("from", json!("not an address")),
        &format!("Invalid `from` field. {format}"),
    );
    check(without("to"), "Missing `to` field.");
    check(with("to", json!([])), "Missing `to` field.");
    check(
        with("to", json!(["ok@b.co", "nope"])),
        &format!("Invalid `to` field. {format}"),
    );
    check(
        with("to", json!([1])),
        "Invalid `to` field. Expected a string or an array of strings.",
    );
    let many: Vec<String> = (0..51).map(|i| format!("u{i}@example.com")).collect();
    check(
        with("to", json!(many)),
        "Too many recipients in `to` field. The maximum is 50.",
    );
    check(without("subject"), "Missing `subject` field.");
    check(
        with("subject", json!(5)),
        "Invalid `subject` field. Expected a string.",
    );
    let mut no_content = without("html");
    if let Some(m) = no_content.as_object_mut() {
        m.remove("text");
    }
    check(no_content, "Missing `html` or `text` field.");
    check(
        with("headers", json!({"X-A": 1})),
        "Invalid `headers` field. Expected an object with string values.",
    );
    let r = emu.request(
        "POST",
        "/emails",
        &[("Authorization", "Bearer re_dev_key")],
        Some(b"{not json"),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["name"], "validation_error");

    // 50 recipients are fine.
    let fifty: Vec<String> = (0..50).map(|i| format!("u{i}@example.com")).collect();
    let r = send_email(&emu, Some("re_dev_key"), None, &with("to", json!(fifty)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(outbox(&emu, "").len(), 1, "failed requests record nothing");

    // Other methods: 405.
    assert_eq!(emu.get("/emails", Some("re_dev_key")).status, 405);
}

#[test]
fn email_idempotency_key() {
    let emu = Emu::start();
    let body = mail(json!("idem@example.com"));
    let first = send_email(&emu, Some("re_dev_key"), Some("invite/evt_1"), &body);
    assert_eq!(first.status, 200);
    let again = send_email(&emu, Some("re_dev_key"), Some("invite/evt_1"), &body);
    assert_eq!(again.status, 200);
    assert_eq!(first.json()["id"], again.json()["id"]);
    assert_eq!(outbox(&emu, "?to=idem@example.com").len(), 1);
    assert_eq!(
        outbox(&emu, "")[0]["idempotency_key"],
        json!("invite/evt_1")
    );

    // Another key, or none, sends again.
    let other = send_email(&emu, Some("re_dev_key"), Some("invite/evt_2"), &body);
    assert_ne!(other.json()["id"], first.json()["id"]);
    send_email(&emu, Some("re_dev_key"), None, &body);
    send_email(&emu, Some("re_dev_key"), None, &body);
    assert_eq!(outbox(&emu, "?to=idem@example.com").len(), 4);

    // Too long a key.
    let long = "k".repeat(257);
    let r = send_email(&emu, Some("re_dev_key"), Some(&long), &body);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"statusCode":400,"name":"invalid_idempotency_key","message":"The key must be between 1-256 chars."})
    );

    // A reset forgets the keys.
    emu.post("/__emulator/reset", None, &json!({}));
    let after = send_email(&emu, Some("re_dev_key"), Some("invite/evt_1"), &body);
    assert_ne!(after.json()["id"], first.json()["id"]);
    assert_eq!(outbox(&emu, "").len(), 1);
}

#[test]
fn outbox_order_filter_and_reset() {
    let emu = Emu::start();
    let token = emu.token();
    // 1: verification email (verify_email defaults to true).
    emu.create_user(&token, "one@example.com");
    // 2: change password.
    assert_eq!(
        change_password(&emu, &cp_body("one@example.com")).status,
        200
    );
    // 3: email to two recipients, one of them one@example.com.
    assert_eq!(
        send_email(
            &emu,
            Some("re_dev_key"),
            None,
            &mail(json!(["Two <two@example.com>", "ONE@example.com"]))
        )
        .status,
        200
    );
    // 4: email to someone else.
    send_email(
        &emu,
        Some("re_dev_key"),
        None,
        &mail(json!("three@example.com")),
    );

    let kinds = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let all = outbox(&emu, "");
    assert_eq!(
        kinds(&all),
        vec!["verification_email", "change_password", "email", "email"]
    );
    // Verification entries keep their fields and gain kind/at.
    assert_eq!(all[0]["type"], "verification_email");
    assert_eq!(all[0]["at"], all[0]["created_at"]);

    let one = outbox(&emu, &format!("?to={}", common::enc("One@Example.com")));
    assert_eq!(
        kinds(&one),
        vec!["verification_email", "change_password", "email"]
    );
    assert_eq!(outbox(&emu, "?to=two%40example.com").len(), 1);
    assert_eq!(outbox(&emu, "?to=nobody%40example.com").len(), 0);
    assert_eq!(
        kinds(&outbox(&emu, "?to=one%40example.com&kind=email")),
        vec!["email"]
    );

    assert_eq!(emu.post("/__emulator/reset", None, &json!({})).status, 200);
    assert!(outbox(&emu, "").is_empty());
}

#[test]
fn auth0_down_switch() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "down@example.com");
    let before = outbox(&emu, "").len();

    emu.config(json!({"fail_rate": 1.0}));
    let r = emu.get("/api/v2/roles", Some(&token));
    assert_eq!(r.status, 503);
    assert_eq!(
        emu.post("/api/v2/users", Some(&token), &json!({})).status,
        503
    );

    let r = change_password(&emu, &cp_body("down@example.com"));
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!({"error":"temporarily_unavailable","error_description":"The service is temporarily unavailable."})
    );
    // Even invalid requests: the fault comes first.
    assert_eq!(change_password(&emu, &json!({})).status, 503);

    let r = send_email(
        &emu,
        Some("re_dev_key"),
        None,
        &mail(json!("down@example.com")),
    );
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!({"statusCode":503,"name":"service_unavailable","message":"The service is temporarily unavailable."})
    );
    assert_eq!(send_email(&emu, None, None, &json!({})).status, 503);

    // Never the token endpoint nor the control API.
    emu.token();
    assert_eq!(emu.get("/__emulator/users", None).status, 200);
    assert_eq!(
        outbox(&emu, "").len(),
        before,
        "nothing recorded while down"
    );
    assert_eq!(emu.stats()["faults_injected"], 6);

    emu.config(json!({"fail_rate": 0}));
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
    assert_eq!(
        change_password(&emu, &cp_body("down@example.com")).status,
        200
    );
    assert_eq!(
        send_email(
            &emu,
            Some("re_dev_key"),
            None,
            &mail(json!("down@example.com"))
        )
        .status,
        200
    );
    assert_eq!(outbox(&emu, "").len(), before + 2);
}

#[test]
fn fail_next_is_shared_and_rate_limits_do_not_apply() {
    let emu = Emu::start();
    let token = emu.token();
    // fail_next counts management, change-password and email requests in arrival order.
    emu.config(json!({"fail_next": 2}));
    assert_eq!(change_password(&emu, &cp_body("x@example.com")).status, 503);
    assert_eq!(
        send_email(
            &emu,
            Some("re_dev_key"),
            None,
            &mail(json!("x@example.com"))
        )
        .status,
        503
    );
    assert_eq!(
        send_email(
            &emu,
            Some("re_dev_key"),
            None,
            &mail(json!("x@example.com"))
        )
        .status,
        200
    );
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);

    // Rate limits and 429 storms only hit the Management API.
    emu.config(json!({"rate_limit": {"rps": 0.001, "burst": 1}, "storm_429_ms": 60_000}));
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 429);
    for _ in 0..3 {
        assert_eq!(change_password(&emu, &cp_body("x@example.com")).status, 200);
        let r = send_email(
            &emu,
            Some("re_dev_key"),
            None,
            &mail(json!("x@example.com")),
        );
        assert_eq!(r.status, 200);
        assert!(r.header("x-ratelimit-limit").is_none());
    }
}

#[test]
fn stats_count_email_endpoints() {
    let emu = Emu::start();
    change_password(&emu, &cp_body("a@example.com"));
    change_password(&emu, &json!({})); // 400 still counts
    send_email(&emu, None, None, &json!({})); // 401 still counts
    send_email(
        &emu,
        Some("re_dev_key"),
        None,
        &mail(json!("a@example.com")),
    );
    emu.get("/emails", None); // 405: not a counted template
    let s = emu.stats();
    assert_eq!(s["endpoints"]["POST /dbconnections/change_password"], 2);
    assert_eq!(s["endpoints"]["POST /emails"], 2);
    assert_eq!(s["management_requests"], 0);
    assert_eq!(s["token_requests"], 0);

    emu.post("/__emulator/reset-stats", None, &json!({}));
    let s = emu.stats();
    assert_eq!(s["endpoints"]["POST /dbconnections/change_password"], 0);
    assert_eq!(s["endpoints"]["POST /emails"], 0);
}

/// Resend: "409 invalid_idempotent_request - this idempotency key has already been
/// used on a request that had a different payload". The emulator answers 200 with the first
/// email's id, so the Worker's handling of that 409 (read as "sent") is never exercised, and
/// a second link under the same key silently disappears locally too.
#[test]
fn email_idempotency_key_reused_with_another_payload_is_409() {
    let emu = Emu::start();
    let first = send_email(
        &emu,
        Some("re_dev_key"),
        Some("public:inv_1"),
        &mail(json!("idem2@example.com")),
    );
    assert_eq!(first.status, 200);
    let mut other = mail(json!("idem2@example.com"));
    other["text"] = json!("Hi, here is another link");
    let again = send_email(&emu, Some("re_dev_key"), Some("public:inv_1"), &other);
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["name"], "invalid_idempotent_request");
}
