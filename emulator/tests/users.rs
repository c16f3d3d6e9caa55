//! Users: create, read, patch, users-by-email and their validation errors.

mod common;

use common::{enc, Emu, CONNECTION, STRONG_PASSWORD};
use serde_json::json;

fn is_rfc3339_ms(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && &s[10..11] == "T" && &s[19..20] == "."
}

#[test]
fn create_user_shape() {
    let emu = Emu::start();
    let token = emu.token();
    let r = emu.post(
        "/api/v2/users",
        Some(&token),
        &json!({
            "connection": CONNECTION,
            "email": "Chuck@Example.com",
            "password": STRONG_PASSWORD,
            "given_name": "Chuck",
            "app_metadata": {"invited": true},
        }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let u = r.json();
    let user_id = u["user_id"].as_str().unwrap();
    let hex = user_id.strip_prefix("auth0|").expect("auth0| prefix");
    assert_eq!(hex.len(), 24);
    assert!(hex
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(u["email"], "chuck@example.com");
    assert_eq!(u["email_verified"], false);
    assert_eq!(u["name"], "chuck@example.com");
    assert_eq!(u["nickname"], "chuck");
    assert_eq!(u["given_name"], "Chuck");
    assert_eq!(u["app_metadata"], json!({"invited": true}));
    assert!(u.get("family_name").is_none());
    assert!(u.get("user_metadata").is_none());
    assert!(u.get("blocked").is_none());
    assert!(u.get("password").is_none());
    assert_eq!(
        u["identities"],
        json!([{"connection": CONNECTION, "user_id": hex, "provider": "auth0", "isSocial": false}])
    );
    assert_eq!(
        u["picture"],
        "https://s.gravatar.com/avatar/0b79e7da7bc7877560620cf8f2cc93ae?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2Fch.png"
    );
    assert!(is_rfc3339_ms(u["created_at"].as_str().unwrap()));
    assert_eq!(u["created_at"], u["updated_at"]);
    assert!(!r.body.contains(STRONG_PASSWORD));

    // GET by URL-encoded id returns the same user.
    let r = emu.get(&format!("/api/v2/users/{}", enc(user_id)), Some(&token));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), u);

    // verify_email defaults to true for an unverified email: one outbox entry.
    let outbox = emu.get("/__emulator/outbox", None).json();
    assert_eq!(outbox.as_array().unwrap().len(), 1);
    assert_eq!(outbox[0]["to"], "chuck@example.com");
    assert_eq!(outbox[0]["type"], "verification_email");

    // A verified user gets no verification email by default.
    let r = emu.post(
        "/api/v2/users",
        Some(&token),
        &json!({"connection": CONNECTION, "email": "v@example.com", "password": STRONG_PASSWORD, "email_verified": true}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["email_verified"], true);
    assert_eq!(
        emu.get("/__emulator/outbox", None)
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn duplicate_email_conflict_is_case_insensitive() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "dup@example.com");
    let r = emu.post(
        "/api/v2/users",
        Some(&token),
        &json!({"connection": CONNECTION, "email": "DUP@Example.COM", "password": STRONG_PASSWORD}),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"statusCode":409,"error":"Conflict","message":"The user already exists.","errorCode":"auth0_idp_error"})
    );
}

#[test]
fn create_user_validation_errors() {
    let emu = Emu::start();
    let token = emu.token();
    let post = |body: serde_json::Value| emu.post("/api/v2/users", Some(&token), &body);
    let bad = |msg: &str| json!({"statusCode":400,"error":"Bad Request","message":msg,"errorCode":"invalid_body"});

    let r = post(
        json!({"connection": CONNECTION, "email": "a@example.com", "password": STRONG_PASSWORD, "foo": 1}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        bad("Payload validation error: 'Additional properties not allowed: foo'.")
    );

    let r = post(json!({"email": "a@example.com", "password": STRONG_PASSWORD}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        bad("Payload validation error: 'Missing required property: connection'.")
    );

    let r = post(
        json!({"connection": CONNECTION, "email": "not-an-email", "password": STRONG_PASSWORD}),
    );
    assert_eq!(r.json(), bad("Payload validation error: 'Object didn't pass validation for format email: not-an-email' on property email (The user's email)."));

    let r = post(
        json!({"connection": CONNECTION, "email": "a@example.com", "password": STRONG_PASSWORD, "name": 5}),
    );
    assert_eq!(r.json(), bad("Payload validation error: 'Expected type string but found type integer' on property name."));

    let r = post(
        json!({"connection": CONNECTION, "email": "a@example.com", "password": STRONG_PASSWORD, "name": "x".repeat(301)}),
    );
    assert_eq!(r.json(), bad("Payload validation error: 'String is too long (301 chars), maximum 300' on property name."));

    let r = emu.request(
        "POST",
        "/api/v2/users",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        Some(b"{not json"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), bad("Invalid request payload JSON format"));

    let r = post(
        json!({"connection": "Other-DB", "email": "a@example.com", "password": STRONG_PASSWORD}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"statusCode":400,"error":"Bad Request","message":"The connection does not exist.","errorCode":"inexistent_connection"})
    );

    for weak in [
        "short1A!",
        "alllowercaseletters",
        "Aaaa1111bbbb",
        "abcdefgh12",
    ] {
        let r = post(json!({"connection": CONNECTION, "email": "a@example.com", "password": weak}));
        assert_eq!(r.status, 400, "{weak}");
        assert_eq!(
            r.json(),
            json!({"statusCode":400,"error":"Bad Request","message":"PasswordStrengthError: Password is too weak","errorCode":"invalid_password"}),
            "{weak}"
        );
    }
    // Nothing was created.
    assert_eq!(emu.get("/__emulator/users", None).json(), json!([]));
}

#[test]
fn get_unknown_user_404() {
    let emu = Emu::start();
    let token = emu.token();
    let r = emu.get(
        "/api/v2/users/auth0%7C000000000000000000000000",
        Some(&token),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"statusCode":404,"error":"Not Found","message":"The user does not exist.","errorCode":"inexistent_user"})
    );
}

#[test]
fn patch_merges_metadata() {
    let emu = Emu::start();
    let token = emu.token();
    let r = emu.post(
        "/api/v2/users",
        Some(&token),
        &json!({"connection": CONNECTION, "email": "p@example.com", "password": STRONG_PASSWORD,
                "app_metadata": {"a": 1, "b": 2}, "user_metadata": {"lang": "en"}}),
    );
    let id = r.json()["user_id"].as_str().unwrap().to_string();
    let r = emu.send_json(
        "PATCH",
        &format!("/api/v2/users/{}", enc(&id)),
        Some(&token),
        &json!({"app_metadata": {"b": null, "c": 3}, "name": "Pat", "blocked": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let u = r.json();
    assert_eq!(u["app_metadata"], json!({"a": 1, "c": 3}));
    assert_eq!(u["user_metadata"], json!({"lang": "en"}));
    assert_eq!(u["name"], "Pat");
    assert_eq!(u["blocked"], true);
    assert_eq!(
        emu.get(&format!("/api/v2/users/{}", enc(&id)), Some(&token))
            .json(),
        u
    );

    let r = emu.send_json(
        "PATCH",
        &format!("/api/v2/users/{}", enc(&id)),
        Some(&token),
        &json!({"password": "weak"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "invalid_password");
}

#[test]
fn users_by_email() {
    let emu = Emu::start();
    let token = emu.token();
    let u = emu.create_user(&token, "Find.Me@Example.com");

    let r = emu.get(
        "/api/v2/users-by-email?email=find.me%40example.com",
        Some(&token),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([u]));

    // Exact (case-sensitive) match against the stored lowercase email.
    let r = emu.get(
        "/api/v2/users-by-email?email=Find.Me%40Example.com",
        Some(&token),
    );
    assert_eq!(r.json(), json!([]));

    let r = emu.get(
        "/api/v2/users-by-email?email=nobody%40example.com",
        Some(&token),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([]));

    let r = emu.get("/api/v2/users-by-email", Some(&token));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "invalid_query_string");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Query validation error: '"));
}

#[test]
fn oversized_body_is_413_after_authentication() {
    let emu = Emu::start();
    let big = vec![b' '; 1024 * 1024 + 10];
    let r = emu.request(
        "POST",
        "/api/v2/users",
        &[("Content-Type", "application/json")],
        Some(&big),
    );
    assert_eq!(r.status, 401);
    let token = emu.token();
    let auth = format!("Bearer {token}");
    let r = emu.request(
        "POST",
        "/api/v2/users",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        Some(&big),
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "Request Entity Too Large");
    assert!(r.header("x-ratelimit-limit").is_some());
    assert_eq!(emu.stats()["endpoints"]["POST /api/v2/users"], 2);
}

#[test]
fn patch_blocked_and_metadata_removal() {
    let emu = Emu::start();
    let token = emu.token();
    let r = emu.post(
        "/api/v2/users",
        Some(&token),
        &json!({"connection": CONNECTION, "email": "m@example.com", "password": STRONG_PASSWORD,
                "app_metadata": {"plan": "gold", "nested": {"a": 1, "b": 2}}}),
    );
    let id = r.json()["user_id"].as_str().unwrap().to_string();
    let path = format!("/api/v2/users/{}", enc(&id));
    let patch = |body: serde_json::Value| {
        let r = emu.send_json("PATCH", &path, Some(&token), &body);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };

    // blocked is set both ways, and shown from then on.
    assert_eq!(patch(json!({"blocked": true}))["blocked"], true);
    assert_eq!(patch(json!({"blocked": false}))["blocked"], false);
    assert_eq!(emu.get(&path, Some(&token)).json()["blocked"], false);

    // Only the first level merges: a nested object is replaced whole.
    let u = patch(json!({"app_metadata": {"nested": {"c": 3}, "extra": [1]}}));
    assert_eq!(
        u["app_metadata"],
        json!({"plan": "gold", "nested": {"c": 3}, "extra": [1]})
    );
    // null removes a key.
    let u = patch(json!({"app_metadata": {"extra": null, "missing": null}}));
    assert_eq!(
        u["app_metadata"],
        json!({"plan": "gold", "nested": {"c": 3}})
    );
    // An empty object removes the metadata completely (Auth0's docs).
    let u = patch(json!({"app_metadata": {}}));
    assert!(u.get("app_metadata").is_none(), "{u}");
    assert!(emu
        .get(&path, Some(&token))
        .json()
        .get("app_metadata")
        .is_none());
    // Nulls alone don't create metadata.
    let u = patch(json!({"user_metadata": {"x": null}}));
    assert!(u.get("user_metadata").is_none(), "{u}");
    let u = patch(json!({"user_metadata": {"x": 1}}));
    assert_eq!(u["user_metadata"], json!({"x": 1}));

    // A non-boolean blocked is a payload error.
    let r = emu.send_json("PATCH", &path, Some(&token), &json!({"blocked": "yes"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Payload validation error: 'Expected type boolean but found type string' on property blocked."
    );
}
