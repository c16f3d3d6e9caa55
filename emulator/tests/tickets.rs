//! Ticket validity: the hosted pages (`/u/reset-password`,
//! `/u/email-verification`), the control endpoints
//! (`/__emulator/tickets[...]`), and the events that end a ticket: expiry,
//! use, a newer ticket, a blocked user, a deleted user.

mod common;

use std::time::Duration;

use common::{enc, ticket_id, with_delete_scope, Emu, Resp};
use serde_json::{json, Value};

const HTML: &str = "text/html; charset=utf-8";

fn page(emu: &Emu, url: &str) -> Resp {
    let path = url
        .strip_prefix("https://emulator.local")
        .unwrap_or_else(|| panic!("unexpected ticket URL {url}"));
    emu.get(path.trim_end_matches('#'), None)
}

/// The `<p id="status">` of a hosted page: "valid", "used" or the reason.
fn status_of(r: &Resp) -> String {
    let start = r.body.find("<p id=\"status\">").expect("status paragraph") + 15;
    let end = start + r.body[start..].find("</p>").expect("end of status");
    r.body[start..end].to_string()
}

fn assert_page(emu: &Emu, url: &str, code: u16, status: &str) {
    let r = page(emu, url);
    assert_eq!(r.status, code, "{url}: {}", r.body);
    assert_eq!(r.header("content-type"), Some(HTML));
    assert_eq!(status_of(&r), status, "{url}");
}

fn ticket_info(emu: &Emu, url: &str) -> Value {
    let r = emu.get(&format!("/__emulator/tickets/{}", ticket_id(url)), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn reason(emu: &Emu, url: &str) -> Value {
    ticket_info(emu, url)["reason"].clone()
}

fn redeem(emu: &Emu, url: &str, form: &str) -> Resp {
    let path = url
        .strip_prefix("https://emulator.local")
        .unwrap()
        .trim_end_matches('#');
    emu.request(
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    )
}

fn is_rfc3339_ms(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.ends_with('Z') && &s[10..11] == "T")
}

#[test]
fn a_new_ticket_is_valid_and_its_page_is_public() {
    let emu = Emu::start();
    let token = emu.token();
    let user = emu.create_user(&token, "pat@example.com");
    let uid = user["user_id"].as_str().unwrap();
    let url = emu.ticket(
        &token,
        "password-change",
        &json!({"user_id": uid, "ttl_sec": 3600}),
    );
    emu.post("/__emulator/reset-stats", None, &json!({}));

    let r = page(&emu, &url);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(HTML));
    assert_eq!(status_of(&r), "valid");
    assert!(r.body.contains("name=\"password\""));
    assert!(r.header("x-ratelimit-limit").is_none());

    let info = ticket_info(&emu, &url);
    assert_eq!(info["id"], ticket_id(&url));
    assert_eq!(info["kind"], "password_change");
    assert_eq!(info["user_id"], uid);
    assert_eq!(info["email"], "pat@example.com");
    assert_eq!(info["url"], url.as_str());
    assert!(is_rfc3339_ms(&info["created_at"]));
    assert!(is_rfc3339_ms(&info["expires_at"]));
    assert_eq!(info["used_at"], Value::Null);
    assert_eq!(info["valid"], true);
    assert_eq!(info["reason"], Value::Null);

    // Not the Management API: not counted, faulted, stormed or rate limited.
    emu.config(json!({"fail_rate": 1.0, "storm_429_ms": 60_000, "rate_limit": "1:1"}));
    for _ in 0..3 {
        assert_eq!(page(&emu, &url).status, 200);
    }
    let s = emu.stats();
    assert_eq!(s["management_requests"], 0);
    assert_eq!(s["faults_injected"], 0);
    assert_eq!(s["rate_limited"], 0);
    assert!(s["endpoints"].as_object().unwrap().values().all(|n| n == 0));
}

#[test]
fn a_newer_ticket_supersedes_older_ones_of_its_kind() {
    let emu = Emu::start();
    let token = emu.token();
    let uid = emu.create_user(&token, "s@example.com")["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = emu.create_user(&token, "o@example.com")["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pw1 = emu.ticket(&token, "password-change", &json!({"user_id": uid}));
    let ev1 = emu.ticket(&token, "email-verification", &json!({"user_id": uid}));
    let pw2 = emu.ticket(&token, "password-change", &json!({"user_id": uid}));
    // Another user's ticket supersedes nothing of this user's.
    emu.ticket(&token, "password-change", &json!({"user_id": other}));

    assert_eq!(reason(&emu, &pw1), "superseded");
    assert_eq!(reason(&emu, &pw2), Value::Null);
    assert_eq!(reason(&emu, &ev1), Value::Null);
    assert_page(&emu, &pw1, 400, "superseded");
    assert!(page(&emu, &pw1).body.contains("a newer one was issued"));
    assert_page(&emu, &pw2, 200, "valid");
    assert_page(&emu, &ev1, 200, "valid");

    let ev2 = emu.ticket(&token, "email-verification", &json!({"user_id": uid}));
    assert_page(&emu, &ev1, 400, "superseded");
    assert_page(&emu, &ev2, 200, "valid");
    assert_page(&emu, &pw2, 200, "valid");

    // The user's tickets, oldest first.
    let r = emu.get(&format!("/__emulator/tickets?user_id={}", enc(&uid)), None);
    assert_eq!(r.status, 200);
    let list = r.json();
    let summary: Vec<(String, Value)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["kind"].as_str().unwrap().to_string(), t["reason"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("password_change".to_string(), json!("superseded")),
            ("email_verification".to_string(), json!("superseded")),
            ("password_change".to_string(), Value::Null),
            ("email_verification".to_string(), Value::Null),
        ]
    );
    // The same by email (any case), and the whole list without a filter.
    let by_email = emu
        .get("/__emulator/tickets?email=S%40Example.com", None)
        .json();
    assert_eq!(by_email, list);
    let all = emu.get("/__emulator/tickets", None).json();
    assert_eq!(all.as_array().unwrap().len(), 5);
    assert_eq!(
        emu.get("/__emulator/tickets?email=nobody%40example.com", None)
            .json(),
        json!([])
    );

    // /__emulator/users shows the recorded tickets with their validity too.
    let users = emu
        .get("/__emulator/users?email=s%40example.com", None)
        .json();
    let t = &users[0]["tickets"][0];
    assert_eq!(t["type"], "password_change");
    assert_eq!(t["url"], pw1.as_str());
    assert_eq!(t["id"], ticket_id(&pw1));
    assert_eq!(t["valid"], false);
    assert_eq!(t["reason"], "superseded");
}

#[test]
fn an_expired_ticket_is_invalid() {
    let emu = Emu::start();
    let token = emu.token();
    let uid = emu.create_user(&token, "e@example.com")["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = emu.ticket(
        &token,
        "email-verification",
        &json!({"user_id": uid, "ttl_sec": 1}),
    );
    assert_page(&emu, &url, 200, "valid");
    std::thread::sleep(Duration::from_millis(1100));
    assert_page(&emu, &url, 400, "expired");
    let info = ticket_info(&emu, &url);
    assert_eq!(info["valid"], false);
    assert_eq!(info["reason"], "expired");
    // Expired beats superseded: a newer ticket doesn't change the reason.
    emu.ticket(&token, "email-verification", &json!({"user_id": uid}));
    assert_eq!(reason(&emu, &url), "expired");
}

/// Auth0 documents no invalidation of links on a block, and says a password reset through the
/// Management API lifts it: a blocked user's reset link still works, and using it unblocks.
#[test]
fn a_blocked_users_tickets_keep_working_and_a_reset_lifts_the_block() {
    let emu = Emu::start();
    let token = emu.token();
    let uid = emu.create_user(&token, "b@example.com")["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pw = emu.ticket(&token, "password-change", &json!({"user_id": uid}));
    let ev = emu.ticket(&token, "email-verification", &json!({"user_id": uid}));
    let path = format!("/api/v2/users/{}", enc(&uid));
    let r = emu.send_json("PATCH", &path, Some(&token), &json!({"blocked": true}));
    assert_eq!(
        (r.status, &r.json()["blocked"]),
        (200, &json!(true)),
        "{}",
        r.body
    );
    assert_page(&emu, &pw, 200, "valid");
    assert_page(&emu, &ev, 200, "valid");
    assert_eq!(redeem(&emu, &pw, "password=Another-Pass-42").status, 200);
    let user = emu.get(&path, Some(&token));
    assert_eq!(user.json()["blocked"], false, "{}", user.body);
    // Only a newer ticket retires a link.
    let old = emu.ticket(&token, "password-change", &json!({"user_id": uid}));
    emu.ticket(&token, "password-change", &json!({"user_id": uid}));
    assert_page(&emu, &old, 400, "superseded");
}

#[test]
fn deleting_a_user() {
    let emu = Emu::start_with(with_delete_scope);
    let token = emu.token();
    let user = emu.create_user(&token, "gone@example.com");
    let uid = user["user_id"].as_str().unwrap().to_string();
    let path = format!("/api/v2/users/{}", enc(&uid));
    let url = emu.ticket(&token, "password-change", &json!({"user_id": uid}));
    let job = emu.post(
        "/api/v2/jobs/verification-email",
        Some(&token),
        &json!({"user_id": uid}),
    );
    assert_eq!(job.status, 201);

    let auth = format!("Bearer {token}");
    let r = emu.request("DELETE", &path, &[("Authorization", &auth)], None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, "");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(r.header("x-ratelimit-remaining").is_some());

    // Gone everywhere...
    let r = emu.get(&path, Some(&token));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"statusCode":404,"error":"Not Found","message":"The user does not exist.","errorCode":"inexistent_user"})
    );
    assert_eq!(emu.get("/api/v2/users", Some(&token)).json(), json!([]));
    assert_eq!(
        emu.get(
            "/api/v2/users-by-email?email=gone%40example.com",
            Some(&token)
        )
        .json(),
        json!([])
    );
    assert_eq!(emu.get("/__emulator/users", None).json(), json!([]));
    let r = emu.send_json("PATCH", &path, Some(&token), &json!({"name": "x"}));
    assert_eq!(r.status, 404);
    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"user_id": uid}),
    );
    assert_eq!(r.status, 404);

    // ...except its tickets, which now say why they stopped working.
    assert_page(&emu, &url, 400, "user deleted");
    let info = ticket_info(&emu, &url);
    assert_eq!(info["valid"], false);
    assert_eq!(info["reason"], "user deleted");
    let by_email = emu
        .get("/__emulator/tickets?email=gone%40example.com", None)
        .json();
    assert_eq!(by_email, json!([info]));
    let by_id = emu
        .get(&format!("/__emulator/tickets?user_id={}", enc(&uid)), None)
        .json();
    assert_eq!(by_id, json!([info]));
    // The job can still be read.
    let job_id = job.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        emu.get(&format!("/api/v2/jobs/{job_id}"), Some(&token))
            .status,
        200
    );

    // A second DELETE (or one for an id that never existed) is still 204,
    // as in Auth0.
    let r = emu.request("DELETE", &path, &[("Authorization", &auth)], None);
    assert_eq!(r.status, 204);
    let r = emu.request(
        "DELETE",
        "/api/v2/users/auth0%7Cnever",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(emu.stats()["endpoints"]["DELETE /api/v2/users/{id}"], 3);

    // A new user with the same email does not revive the old tickets, and
    // the email filter lists both users' tickets.
    let again = emu.create_user(&token, "gone@example.com");
    let new_url = emu.ticket(
        &token,
        "password-change",
        &json!({"user_id": again["user_id"]}),
    );
    assert_eq!(reason(&emu, &url), "user deleted");
    assert_eq!(reason(&emu, &new_url), Value::Null);
    let both = emu
        .get("/__emulator/tickets?email=gone%40example.com", None)
        .json();
    assert_eq!(both.as_array().unwrap().len(), 2);

    // Unknown query parameters are refused like elsewhere.
    let r = emu.request(
        "DELETE",
        &format!("{path}?force=true"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "invalid_query_string");
}

#[test]
fn delete_needs_the_delete_users_scope() {
    // The default scopes (the invite Worker's grant) don't include it.
    let emu = Emu::start();
    let token = emu.token();
    let uid = emu.create_user(&token, "keep@example.com")["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = format!("Bearer {token}");
    let r = emu.request(
        "DELETE",
        &format!("/api/v2/users/{}", enc(&uid)),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: delete:users","errorCode":"insufficient_scope"})
    );
    let r = emu.request("DELETE", &format!("/api/v2/users/{}", enc(&uid)), &[], None);
    assert_eq!(r.status, 401);
    assert_eq!(
        emu.get("/__emulator/users", None)
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn unknown_tickets() {
    let emu = Emu::start();
    let token = emu.token();
    let uid = emu.create_user(&token, "u@example.com")["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pw = emu.ticket(&token, "password-change", &json!({"user_id": uid}));
    for path in [
        "/u/reset-password?ticket=nope".to_string(),
        "/u/reset-password".to_string(),
        "/u/email-verification?ticket=".to_string(),
        // A reset ticket is unknown to the verification page.
        format!("/u/email-verification?ticket={}", ticket_id(&pw)),
    ] {
        let r = emu.get(&path, None);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.header("content-type"), Some(HTML));
        assert_eq!(status_of(&r), "unknown", "{path}");
    }
    let r = emu.get("/__emulator/tickets/nope", None);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"statusCode":404,"error":"Not Found","message":"The ticket does not exist."})
    );
    let r = emu.request("PUT", "/u/reset-password?ticket=x", &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(emu.get("/u/other", None).status, 404);

    // Reset forgets tickets.
    emu.post("/__emulator/reset", None, &json!({}));
    assert_page(&emu, &pw, 400, "unknown");
    assert_eq!(emu.get("/__emulator/tickets", None).json(), json!([]));
}

#[test]
fn redeeming_a_password_ticket() {
    let emu = Emu::start();
    let token = emu.token();
    let uid = emu.create_user(&token, "r@example.com")["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = emu.ticket(
        &token,
        "password-change",
        &json!({"user_id": uid, "mark_email_as_verified": true,
                "result_url": "https://app.example.com/welcome?a=1&b=2"}),
    );
    // A weak or missing password is refused and the ticket stays valid.
    let r = redeem(&emu, &url, "password=weak");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("PasswordStrengthError"));
    let r = redeem(&emu, &url, "");
    assert_eq!(r.status, 400);
    assert_eq!(reason(&emu, &url), Value::Null);

    let r = redeem(&emu, &url, "password=Another-Pass-42");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some(HTML));
    assert_eq!(status_of(&r), "used");
    assert!(r
        .body
        .contains("https://app.example.com/welcome?a=1&amp;b=2"));
    let info = ticket_info(&emu, &url);
    assert_eq!(info["reason"], "used");
    assert!(is_rfc3339_ms(&info["used_at"]));
    assert_page(&emu, &url, 400, "used");
    assert_eq!(redeem(&emu, &url, "password=Another-Pass-43").status, 400);

    // mark_email_as_verified applied; the password is never echoed.
    let u = emu
        .get(&format!("/api/v2/users/{}", enc(&uid)), Some(&token))
        .json();
    assert_eq!(u["email_verified"], true);
    assert!(!u.to_string().contains("Another-Pass-42"));
}

#[test]
fn redeeming_an_email_verification_ticket() {
    let emu = Emu::start();
    let token = emu.token();
    let uid = emu.create_user(&token, "v@example.com")["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = emu.ticket(&token, "email-verification", &json!({"user_id": uid}));
    let r = page(&emu, &url);
    assert_eq!(status_of(&r), "valid");
    // Looking at the page changes nothing.
    let path = format!("/api/v2/users/{}", enc(&uid));
    assert_eq!(emu.get(&path, Some(&token)).json()["email_verified"], false);

    let r = redeem(&emu, &url, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("successfully verified"));
    assert_eq!(emu.get(&path, Some(&token)).json()["email_verified"], true);
    assert_page(&emu, &url, 400, "used");
}
