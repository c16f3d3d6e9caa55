//! Token endpoint and Management API authentication / authorization.

mod common;

use common::{Emu, AUDIENCE};
use serde_json::json;
use std::time::Duration;

fn grant(secret: &str, audience: &str) -> serde_json::Value {
    json!({
        "grant_type": "client_credentials",
        "client_id": "dev-client-id",
        "client_secret": secret,
        "audience": audience,
    })
}

#[test]
fn token_grant_ok() {
    let emu = Emu::start();
    let r = emu.token_request(&grant("dev-client-secret", AUDIENCE));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    let token = v["access_token"].as_str().unwrap();
    assert!(token.len() >= 40, "token too short: {token}");
    assert_eq!(v["expires_in"], 86400);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(
        v["scope"],
        "create:users read:users update:users read:roles create:roles create:role_members create:user_tickets"
    );
    // Two grants give two different tokens.
    let other = emu.token();
    assert_ne!(other, token);
}

#[test]
fn token_form_encoded_body() {
    let emu = Emu::start();
    let body = format!(
        "grant_type=client_credentials&client_id=dev-client-id&client_secret=dev-client-secret&audience={}",
        common::enc(AUDIENCE)
    );
    let r = emu.request(
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    // The token works against the Management API.
    let r = emu.get("/api/v2/roles", Some(&token));
    assert_eq!(r.status, 200);
}

#[test]
fn token_errors() {
    let emu = Emu::start();
    let r = emu.token_request(&grant("wrong", AUDIENCE));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"error":"access_denied","error_description":"Unauthorized"})
    );

    let r = emu.token_request(&grant("dev-client-secret", "https://other.example/api/v2/"));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"error":"access_denied","error_description":"Service not found: https://other.example/api/v2/"})
    );

    let r = emu.token_request(
        &json!({"grant_type":"client_credentials","client_secret":"x","audience":AUDIENCE}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error":"invalid_request","error_description":"Missing required parameter: client_id"})
    );

    let mut body = grant("dev-client-secret", AUDIENCE);
    body["grant_type"] = json!("password");
    let r = emu.token_request(&body);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"error":"unauthorized_client","error_description":"Grant type 'password' not allowed for the client."})
    );

    // No token was issued by any of these.
    assert_eq!(emu.stats()["token_requests"], 4);
}

#[test]
fn missing_and_invalid_token() {
    let emu = Emu::start();
    let r = emu.get("/api/v2/roles", None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"statusCode":401,"error":"Unauthorized","message":"Missing authentication"})
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(r.header("x-ratelimit-limit").is_some());

    let r = emu.request(
        "GET",
        "/api/v2/roles",
        &[("Authorization", "Basic abc")],
        None,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Missing authentication");

    let r = emu.get("/api/v2/roles", Some("not-a-real-token"));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"statusCode":401,"error":"Unauthorized","message":"Invalid token","attributes":{"error":"Invalid token"}})
    );
}

#[test]
fn expired_token() {
    let emu = Emu::start();
    emu.config(json!({"token_lifetime_sec": 1}));
    let r = emu.token_request(&grant("dev-client-secret", AUDIENCE));
    assert_eq!(r.json()["expires_in"], 1);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    let r = emu.get("/api/v2/roles", Some(&token));
    assert_eq!(r.status, 401);
    let msg = "Expired token received for JSON Web Token validation";
    assert_eq!(
        r.json(),
        json!({"statusCode":401,"error":"Unauthorized","message":msg,"attributes":{"error":msg}})
    );
}

#[test]
fn revoked_tokens_are_invalid() {
    let emu = Emu::start();
    let token = emu.token();
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
    assert_eq!(
        emu.post("/__emulator/revoke-tokens", None, &json!({}))
            .status,
        200
    );
    let r = emu.get("/api/v2/roles", Some(&token));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Invalid token");
}

#[test]
fn missing_scope() {
    let emu = Emu::start();
    let old = emu.token();
    emu.config(json!({"scopes": ["read:users", "read:roles"]}));
    let token = emu.token();
    let r = emu.post(
        "/api/v2/users",
        Some(&token),
        &json!({"connection": common::CONNECTION, "email":"a@example.com", "password": common::STRONG_PASSWORD}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: create:users","errorCode":"insufficient_scope"})
    );
    // A token issued before the change keeps its scopes.
    let r = emu.post("/api/v2/roles", Some(&old), &json!({"name": "r1"}));
    assert_eq!(r.status, 200);

    // Assigning roles accepts either create:role_members or update:users.
    let r = emu.post(
        "/api/v2/users/auth0%7Cx/roles",
        Some(&token),
        &json!({"roles":["rol_x"]}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "Insufficient scope, expected any of: create:role_members,update:users"
    );

    // Listing a user's roles needs read:users and read:roles.
    emu.config(json!({"scopes": "read:users"}));
    let token = emu.token();
    let r = emu.get("/api/v2/users/auth0%7Cx/roles", Some(&token));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "Insufficient scope, expected any of: read:roles"
    );
}
