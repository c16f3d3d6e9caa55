//! Roles, role assignment, tickets and verification-email jobs.

mod common;

use common::{enc, Emu};
use serde_json::json;

#[test]
fn roles_create_list_filter_duplicate() {
    let emu = Emu::start();
    let token = emu.token();
    let r = emu.post(
        "/api/v2/roles",
        Some(&token),
        &json!({"name": "beta-tester", "description": "Beta"}),
    );
    assert_eq!(r.status, 200);
    let role = r.json();
    let id = role["id"].as_str().unwrap();
    assert!(id.starts_with("rol_") && id.len() == 20, "{id}");
    assert!(id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        role,
        json!({"id": id, "name": "beta-tester", "description": "Beta"})
    );
    emu.create_role(&token, "early-access");

    // Bare array by default.
    let all = emu.get("/api/v2/roles", Some(&token)).json();
    assert_eq!(all.as_array().unwrap().len(), 2);

    // name_filter is a case-insensitive substring match.
    let r = emu.get("/api/v2/roles?name_filter=BETA", Some(&token));
    assert_eq!(r.json(), json!([role]));

    let r = emu.get(
        "/api/v2/roles?name_filter=beta-tester&include_totals=true&per_page=50",
        Some(&token),
    );
    assert_eq!(
        r.json(),
        json!({"roles": [role], "start": 0, "limit": 50, "total": 1})
    );

    let r = emu.get(
        "/api/v2/roles?per_page=1&page=1&include_totals=true",
        Some(&token),
    );
    let v = r.json();
    assert_eq!(
        (v["start"].clone(), v["limit"].clone(), v["total"].clone()),
        (json!(1), json!(1), json!(2))
    );
    assert_eq!(v["roles"].as_array().unwrap().len(), 1);

    let r = emu.post(
        "/api/v2/roles",
        Some(&token),
        &json!({"name": "Beta-Tester"}),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"statusCode":409,"error":"Conflict","message":"Role name already exists"})
    );

    let r = emu.post(
        "/api/v2/roles",
        Some(&token),
        &json!({"name": "x", "permissions": []}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "invalid_body");

    let r = emu.post("/api/v2/roles", Some(&token), &json!({"name": ""}));
    assert_eq!(r.status, 400);
}

#[test]
fn assign_and_list_user_roles() {
    let emu = Emu::start();
    let token = emu.token();
    let user = emu.create_user(&token, "member@example.com");
    let uid = enc(user["user_id"].as_str().unwrap());
    let role = emu.create_role(&token, "beta-tester");
    let rid = role["id"].as_str().unwrap();

    let r = emu.post(
        &format!("/api/v2/users/{uid}/roles"),
        Some(&token),
        &json!({"roles": [rid]}),
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.body, "");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    // Idempotent.
    let r = emu.post(
        &format!("/api/v2/users/{uid}/roles"),
        Some(&token),
        &json!({"roles": [rid, rid]}),
    );
    assert_eq!(r.status, 204);

    let r = emu.get(&format!("/api/v2/users/{uid}/roles"), Some(&token));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([role]));
    let r = emu.get(
        &format!("/api/v2/users/{uid}/roles?include_totals=true&per_page=50"),
        Some(&token),
    );
    assert_eq!(
        r.json(),
        json!({"roles": [role], "start": 0, "limit": 50, "total": 1})
    );

    let users = emu
        .get("/__emulator/users?email=member@example.com", None)
        .json();
    assert_eq!(users[0]["roles"], json!(["beta-tester"]));

    // Errors.
    let r = emu.post(
        &format!("/api/v2/users/{uid}/roles"),
        Some(&token),
        &json!({"roles": ["rol_doesnotexist00"]}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"statusCode":404,"error":"Not Found","message":"The role does not exist."})
    );
    let r = emu.post(
        "/api/v2/users/auth0%7Cnope/roles",
        Some(&token),
        &json!({"roles": [rid]}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errorCode"], "inexistent_user");
    let r = emu.post(
        &format!("/api/v2/users/{uid}/roles"),
        Some(&token),
        &json!({"roles": []}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "invalid_body");
    let r = emu.post(
        &format!("/api/v2/users/{uid}/roles"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status, 400);
    let r = emu.get("/api/v2/users/auth0%7Cnope/roles", Some(&token));
    assert_eq!(r.status, 404);
}

#[test]
fn password_change_ticket() {
    let emu = Emu::start();
    let token = emu.token();
    let user = emu.create_user(&token, "ticket@example.com");
    let uid = user["user_id"].as_str().unwrap();

    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"user_id": uid, "result_url": "https://app.example.com/welcome", "ttl_sec": 3600,
                "mark_email_as_verified": true, "includeEmailInRedirect": false}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.json()["ticket"].as_str().unwrap().to_string();
    let rest = url
        .strip_prefix("https://emulator.local/u/reset-password?ticket=")
        .expect("ticket URL prefix");
    let id = rest.strip_suffix('#').expect("trailing #");
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));

    let users = emu.get("/__emulator/users", None).json();
    let t = &users[0]["tickets"][0];
    assert_eq!(t["type"], "password_change");
    assert_eq!(t["url"], url.as_str());
    assert_eq!(t["result_url"], "https://app.example.com/welcome");
    assert_eq!(t["ttl_sec"], 3600);
    assert_eq!(t["mark_email_as_verified"], true);

    // result_url and client_id are mutually exclusive.
    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"user_id": uid, "result_url": "https://app.example.com/", "client_id": "abc"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"statusCode":400,"error":"Bad Request","message":"The client_id and result_url parameters are mutually exclusive.","errorCode":"invalid_body"})
    );

    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"user_id": uid, "result_url": "not a url"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "invalid_body");

    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"user_id": "auth0|nope"}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errorCode"], "inexistent_user");

    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"ttl_sec": -1, "user_id": uid}),
    );
    assert_eq!(r.status, 400);

    let r = emu.post("/api/v2/tickets/password-change", Some(&token), &json!({}));
    assert_eq!(r.status, 400);

    // email + connection_id instead of user_id.
    let cfg = emu.get("/__emulator/config", None).json();
    let r = emu.post(
        "/api/v2/tickets/password-change",
        Some(&token),
        &json!({"email": "ticket@example.com", "connection_id": cfg["connection_id"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn email_verification_ticket_and_job() {
    let emu = Emu::start();
    let token = emu.token();
    let user = emu.create_user(&token, "verify@example.com");
    let uid = user["user_id"].as_str().unwrap();

    let r = emu.post(
        "/api/v2/tickets/email-verification",
        Some(&token),
        &json!({"user_id": uid, "result_url": "https://app.example.com/verified", "ttl_sec": 3600}),
    );
    assert_eq!(r.status, 201);
    let url = r.json()["ticket"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://emulator.local/u/email-verification?ticket="));
    assert!(url.ends_with('#'));

    let before = emu
        .get("/__emulator/outbox", None)
        .json()
        .as_array()
        .unwrap()
        .len();
    let r = emu.post(
        "/api/v2/jobs/verification-email",
        Some(&token),
        &json!({"user_id": uid, "identity": {"user_id": &uid[6..], "provider": "auth0"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let job = r.json();
    assert_eq!(job["type"], "verification_email");
    assert_eq!(job["status"], "pending");
    assert!(job["id"].as_str().unwrap().starts_with("job_"));
    assert_eq!(job["id"].as_str().unwrap().len(), 20);
    let outbox = emu.get("/__emulator/outbox", None).json();
    assert_eq!(outbox.as_array().unwrap().len(), before + 1);
    assert_eq!(outbox[before]["job_id"], job["id"]);

    let r = emu.post(
        "/api/v2/jobs/verification-email",
        Some(&token),
        &json!({"user_id": "auth0|nope"}),
    );
    assert_eq!(r.status, 404);
    let r = emu.post("/api/v2/jobs/verification-email", Some(&token), &json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Payload validation error: 'Missing required property: user_id'."
    );
}

#[test]
fn unknown_routes_and_methods_404() {
    let emu = Emu::start();
    let token = emu.token();
    let nf = json!({"statusCode":404,"error":"Not Found","message":"Not Found"});
    for (m, p) in [
        ("GET", "/api/v2/nothing"),
        ("DELETE", "/api/v2/roles"),
        ("PUT", "/api/v2/users"),
    ] {
        let auth = format!("Bearer {token}");
        let r = emu.request(m, p, &[("Authorization", &auth)], None);
        assert_eq!(r.status, 404, "{m} {p}");
        assert_eq!(r.json(), nf);
        assert!(r.header("x-ratelimit-remaining").is_some());
    }
    assert_eq!(emu.get("/elsewhere", None).status, 404);
}

#[test]
fn verification_email_job_and_ticket_follow_the_recordings() {
    let emu = Emu::start();
    let token = emu.token();
    let user = emu.create_user(&token, "job@example.com");
    let uid = user["user_id"].as_str().unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };

    // jobs_verification_email_201.json: exactly type, status, created_at, id.
    let r = emu.post(
        "/api/v2/jobs/verification-email",
        Some(&token),
        &json!({"user_id": uid, "identity": {"user_id": &uid[6..], "provider": "auth0"}}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let job = r.json();
    assert_eq!(keys(&job), ["created_at", "id", "status", "type"]);
    assert_eq!(job["status"], "pending");
    let job_id = job["id"].as_str().unwrap();
    assert!(job_id[4..].chars().all(|c| c.is_ascii_alphanumeric()));

    // The email is in the outbox, filterable by kind.
    let r = emu.get("/__emulator/outbox?kind=verification_email", None);
    let mails = r.json();
    let from_job: Vec<&serde_json::Value> = mails
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["job_id"] == job["id"])
        .collect();
    assert_eq!(from_job.len(), 1);
    assert_eq!(from_job[0]["kind"], "verification_email");
    assert_eq!(from_job[0]["reason"], "job");
    assert_eq!(from_job[0]["to"], "job@example.com");
    assert_eq!(from_job[0]["user_id"], uid);
    assert_eq!(
        emu.get("/__emulator/outbox?kind=change_password", None)
            .json(),
        json!([])
    );

    // GET /api/v2/jobs/{id}: the same job, completed by now.
    let r = emu.get(&format!("/api/v2/jobs/{job_id}"), Some(&token));
    assert_eq!(r.status, 200, "{}", r.body);
    let read = r.json();
    assert_eq!(keys(&read), ["created_at", "id", "status", "type"]);
    assert_eq!(read["id"], job["id"]);
    assert_eq!(read["type"], "verification_email");
    assert_eq!(read["created_at"], job["created_at"]);
    assert_eq!(read["status"], "completed");
    let r = emu.get("/api/v2/jobs/job_0000000000000000", Some(&token));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"statusCode":404,"error":"Not Found","message":"The job does not exist."})
    );
    let r = emu.get(&format!("/api/v2/jobs/{job_id}?x=1"), Some(&token));
    assert_eq!(r.status, 400);
    let s = emu.stats();
    assert_eq!(s["endpoints"]["GET /api/v2/jobs/{id}"], 3);

    // Reading a job takes create:users or read:users.
    for (scopes, status) in [
        (json!(["create:users"]), 200),
        (json!(["read:users"]), 200),
        (json!(["update:users", "create:user_tickets"]), 403),
    ] {
        emu.config(json!({ "scopes": scopes }));
        let t = emu.token();
        let r = emu.get(&format!("/api/v2/jobs/{job_id}"), Some(&t));
        assert_eq!(r.status, status, "{scopes}");
        if status == 403 {
            assert_eq!(
                r.json()["message"],
                "Insufficient scope, expected any of: create:users,read:users"
            );
        }
    }

    // tickets_email_verification_201.json: only "ticket", a 32-character id
    // and a trailing '#'.
    let r = emu.post(
        "/api/v2/tickets/email-verification",
        Some(&token),
        &json!({"result_url": "https://example.com/verify-email", "user_id": uid, "ttl_sec": 3600}),
    );
    assert_eq!(r.status, 201);
    let body = r.json();
    assert_eq!(keys(&body), ["ticket"]);
    let url = body["ticket"].as_str().unwrap();
    let id = url
        .strip_prefix("https://emulator.local/u/email-verification?ticket=")
        .and_then(|rest| rest.strip_suffix('#'))
        .expect("ticket URL shape");
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
}
