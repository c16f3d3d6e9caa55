//! Logins: `logins_count` / `last_login` / `last_ip` on users and the
//! `POST /__emulator/login` control endpoint.

mod common;

use common::{enc, Emu, Resp};
use serde_json::{json, Value};

const LOGIN_FIELDS: [&str; 3] = ["logins_count", "last_login", "last_ip"];

fn is_rfc3339_ms(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && &s[10..11] == "T" && &s[19..20] == "."
}

fn assert_never_logged_in(u: &Value, what: &str) {
    for f in LOGIN_FIELDS {
        assert!(u.get(f).is_none(), "{what}: unexpected {f} in {u}");
    }
}

fn login(emu: &Emu, body: Value) -> Resp {
    emu.post("/__emulator/login", None, &body)
}

fn login_raw(emu: &Emu, body: &[u8]) -> Resp {
    emu.request(
        "POST",
        "/__emulator/login",
        &[("Content-Type", "application/json")],
        Some(body),
    )
}

/// The user as the debug listing shows it, found by email.
fn debug_user(emu: &Emu, email: &str) -> Value {
    let r = emu.get(&format!("/__emulator/users?email={}", enc(email)), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()[0].clone()
}

#[test]
fn new_user_has_no_login_fields() {
    let emu = Emu::start();
    let token = emu.token();
    let created = emu.create_user(&token, "fresh@example.com");
    assert_never_logged_in(&created, "POST /users");
    let id = created["user_id"].as_str().unwrap().to_string();

    let r = emu.get(&format!("/api/v2/users/{}", enc(&id)), Some(&token));
    assert_eq!(r.status, 200);
    assert_never_logged_in(&r.json(), "GET /users/{id}");

    let r = emu.get(
        "/api/v2/users-by-email?email=fresh%40example.com",
        Some(&token),
    );
    assert_eq!(r.status, 200);
    assert_never_logged_in(&r.json()[0], "GET /users-by-email");

    let r = emu.send_json(
        "PATCH",
        &format!("/api/v2/users/{}", enc(&id)),
        Some(&token),
        &json!({"given_name": "Fresh"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_never_logged_in(&r.json(), "PATCH /users/{id}");

    assert_never_logged_in(&debug_user(&emu, "fresh@example.com"), "/__emulator/users");
}

#[test]
fn login_by_email_then_user_id_counts_up() {
    let emu = Emu::start();
    let token = emu.token();
    let created = emu.create_user(&token, "Log.In@Example.com");
    let id = created["user_id"].as_str().unwrap().to_string();
    let get_path = format!("/api/v2/users/{}", enc(&id));
    let by_email = "/api/v2/users-by-email?email=log.in%40example.com";

    // First login, by email in another case.
    let r = login(&emu, json!({"email": "LOG.IN@example.COM"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let u1 = r.json();
    assert_eq!(u1["user_id"], id.as_str());
    assert_eq!(u1["logins_count"], 1);
    assert_eq!(u1["last_ip"], "127.0.0.1");
    let last1 = u1["last_login"].as_str().expect("last_login").to_string();
    assert!(is_rfc3339_ms(&last1), "{last1}");
    assert!(last1.as_str() >= created["created_at"].as_str().unwrap());
    assert_eq!(u1["created_at"], created["created_at"]);
    // The answer is the Management API user, not the debug listing.
    assert!(u1.get("roles").is_none() && u1.get("tickets").is_none());

    let r = emu.get(&get_path, Some(&token));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), u1);
    let r = emu.get(by_email, Some(&token));
    assert_eq!(r.json(), json!([u1]));
    assert_eq!(debug_user(&emu, "log.in@example.com")["logins_count"], 1);

    // Second login, by user_id.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = login(&emu, json!({"user_id": id}));
    assert_eq!(r.status, 200, "{}", r.body);
    let u2 = r.json();
    assert_eq!(u2["logins_count"], 2);
    assert_eq!(u2["last_ip"], "127.0.0.1");
    let last2 = u2["last_login"].as_str().expect("last_login");
    assert!(is_rfc3339_ms(last2), "{last2}");
    assert!(last2 > last1.as_str(), "{last2} after {last1}");

    let r = emu.get(&get_path, Some(&token));
    assert_eq!(r.json()["logins_count"], 2);
    assert_eq!(r.json()["last_login"], last2);
    let r = emu.get(by_email, Some(&token));
    assert_eq!(r.json()[0]["logins_count"], 2);
    assert_eq!(r.json()[0]["last_login"], last2);
    assert_eq!(debug_user(&emu, "log.in@example.com")["logins_count"], 2);

    // A later PATCH keeps the login fields.
    let r = emu.send_json("PATCH", &get_path, Some(&token), &json!({"name": "Lo"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["logins_count"], 2);
    assert_eq!(r.json()["last_login"], last2);
}

#[test]
fn blocked_user_cannot_log_in() {
    let emu = Emu::start();
    let token = emu.token();
    let u = emu.create_user(&token, "blocked@example.com");
    let id = u["user_id"].as_str().unwrap().to_string();
    let r = emu.send_json(
        "PATCH",
        &format!("/api/v2/users/{}", enc(&id)),
        Some(&token),
        &json!({"blocked": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    for body in [
        json!({"email": "blocked@example.com"}),
        json!({"user_id": id}),
    ] {
        let r = login(&emu, body);
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(
            r.json(),
            json!({"statusCode":401,"error":"Unauthorized","message":"The user is blocked and cannot log in."})
        );
    }
    assert_never_logged_in(&debug_user(&emu, "blocked@example.com"), "blocked user");

    // Unblocked, the user can log in again.
    emu.send_json(
        "PATCH",
        &format!("/api/v2/users/{}", enc(&id)),
        Some(&token),
        &json!({"blocked": false}),
    );
    let r = login(&emu, json!({"user_id": id}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["logins_count"], 1);
}

#[test]
fn login_bad_bodies_are_400() {
    let emu = Emu::start();
    let token = emu.token();
    let u = emu.create_user(&token, "bad@example.com");
    let id = u["user_id"].as_str().unwrap();

    let shape = "login body must be a JSON object with exactly one of \"email\" or \"user_id\"";
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", shape),
        (b"{not json", shape),
        (b"[]", shape),
        (b"\"bad@example.com\"", shape),
        (b"{}", shape),
    ];
    for (body, message) in cases {
        let r = login_raw(&emu, body);
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            r.body
        );
        assert_eq!(
            r.json(),
            json!({"statusCode":400,"error":"Bad Request","message":message})
        );
    }

    let both = login(&emu, json!({"email": "bad@example.com", "user_id": id}));
    assert_eq!(both.status, 400, "{}", both.body);
    assert_eq!(both.json()["message"], shape);

    let unknown = login(&emu, json!({"email": "bad@example.com", "ip": "10.0.0.1"}));
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["message"], "unknown login key 'ip'");

    for (body, message) in [
        (json!({"email": 5}), "email must be a non-empty string"),
        (json!({"email": ""}), "email must be a non-empty string"),
        (
            json!({"user_id": null}),
            "user_id must be a non-empty string",
        ),
    ] {
        let r = login(&emu, body);
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["message"], message);
    }

    // Nothing was recorded.
    assert_never_logged_in(&debug_user(&emu, "bad@example.com"), "after bad bodies");
    // Only POST exists.
    assert_eq!(emu.get("/__emulator/login", None).status, 404);
}

#[test]
fn login_unknown_user_is_404() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "known@example.com");
    let not_found = json!({"statusCode":404,"error":"Not Found","message":"The user does not exist.","errorCode":"inexistent_user"});
    for body in [
        json!({"email": "unknown@example.com"}),
        json!({"user_id": "auth0|000000000000000000000000"}),
        // user_id matching is exact.
        json!({"user_id": "known@example.com"}),
    ] {
        let r = login(&emu, body);
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.json(), not_found);
    }
}

#[test]
fn fields_projection_covers_login_fields() {
    let emu = Emu::start();
    let token = emu.token();
    let u = emu.create_user(&token, "proj@example.com");
    let id = u["user_id"].as_str().unwrap().to_string();
    let path = format!("/api/v2/users/{}", enc(&id));

    // Before any login, asking for the login fields gives nothing for them.
    let r = emu.get(
        &format!("{path}?fields=user_id,logins_count,last_login"),
        Some(&token),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"user_id": id}));

    assert_eq!(login(&emu, json!({"user_id": id})).status, 200);

    let r = emu.get(
        &format!("{path}?fields=logins_count,last_login,last_ip"),
        Some(&token),
    );
    let v = r.json();
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    assert_eq!(v["logins_count"], 1);
    assert_eq!(v["last_ip"], "127.0.0.1");
    assert!(is_rfc3339_ms(v["last_login"].as_str().unwrap()));

    let r = emu.get(
        &format!("{path}?fields=logins_count,last_login,last_ip&include_fields=false"),
        Some(&token),
    );
    let v = r.json();
    assert_never_logged_in(&v, "include_fields=false");
    assert_eq!(v["user_id"], id.as_str());
    assert_eq!(v["email"], "proj@example.com");

    let r = emu.get(
        "/api/v2/users-by-email?email=proj%40example.com&fields=email,logins_count",
        Some(&token),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!([{"email": "proj@example.com", "logins_count": 1}])
    );
}

#[test]
fn login_is_not_counted_faulted_or_rate_limited() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "ctl@example.com");
    emu.post("/__emulator/reset-stats", None, &json!({}));
    emu.config(json!({"fail_rate": 1.0, "rate_limit": "1:1", "storm_429_ms": 60000}));
    for n in 1..=3 {
        let r = login(&emu, json!({"email": "ctl@example.com"}));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["logins_count"], n);
        assert!(r.header("x-ratelimit-limit").is_none());
    }
    let stats = emu.stats();
    assert_eq!(stats["management_requests"], 0);
    assert_eq!(stats["faults_injected"], 0);
    assert_eq!(stats["rate_limited"], 0);
    let total: u64 = stats["endpoints"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 0);
}
