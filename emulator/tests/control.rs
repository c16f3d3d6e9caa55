//! Rate limiting, fault injection, 429 storms, stats and reset.

mod common;

use common::Emu;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn rl(r: &common::Resp) -> (u64, u64, u64) {
    let h = |n: &str| -> u64 {
        r.header(n)
            .unwrap_or_else(|| panic!("missing {n}"))
            .parse()
            .unwrap()
    };
    (
        h("x-ratelimit-limit"),
        h("x-ratelimit-remaining"),
        h("x-ratelimit-reset"),
    )
}

#[test]
fn rate_limit_free_tier() {
    let emu = Emu::start();
    let token = emu.token();
    let cfg = emu.config(json!({"rate_limit": "free"})).json();
    assert_eq!(cfg["rate_limit"], json!({"rps": 2.0, "burst": 2}));

    let r1 = emu.get("/api/v2/roles", Some(&token));
    let r2 = emu.get("/api/v2/roles", Some(&token));
    let r3 = emu.get("/api/v2/roles", Some(&token));
    assert_eq!((r1.status, r2.status, r3.status), (200, 200, 429));
    assert_eq!(rl(&r1).0, 2);
    assert_eq!(rl(&r1).1, 1);
    assert_eq!(rl(&r2).1, 0);
    let (limit, remaining, reset) = rl(&r3);
    assert_eq!((limit, remaining), (2, 0));
    let now = now_secs();
    assert!(reset >= now && reset <= now + 2, "reset {reset} now {now}");
    assert_eq!(
        r3.json(),
        json!({"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"})
    );
    assert!(r3.header("retry-after").is_none());

    // The token endpoint is not rate limited.
    assert_eq!(
        emu.token_request(&json!({
        "grant_type": "client_credentials", "client_id": "dev-client-id",
        "client_secret": "dev-client-secret", "audience": common::AUDIENCE}))
            .status,
        200
    );

    // After the bucket refills (2/s), requests pass again.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
    assert_eq!(emu.stats()["rate_limited"], 1);
}

#[test]
fn rate_limit_headers_when_unlimited() {
    let emu = Emu::start();
    let token = emu.token();
    let r = emu.get("/api/v2/roles", Some(&token));
    let (limit, remaining, reset) = rl(&r);
    assert_eq!((limit, remaining), (1000, 1000));
    assert!(reset >= now_secs());
    // Also on errors.
    let r = emu.get("/api/v2/roles", None);
    assert_eq!(r.status, 401);
    rl(&r);
}

#[test]
fn fail_next_gives_503() {
    let emu = Emu::start();
    let token = emu.token();
    emu.config(json!({"fail_next": 2}));
    for _ in 0..2 {
        let r = emu.get("/api/v2/roles", Some(&token));
        assert_eq!(r.status, 503);
        assert_eq!(
            r.json(),
            json!({"statusCode":503,"error":"Service Unavailable","message":"The service is temporarily unavailable."})
        );
        rl(&r);
    }
    // The token endpoint is never faulted.
    emu.config(json!({"fail_next": 1}));
    let fresh = emu.token();
    assert_eq!(emu.get("/api/v2/roles", Some(&fresh)).status, 503);
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
    assert_eq!(emu.stats()["faults_injected"], 3);

    emu.config(json!({"fail_rate": 1.0}));
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 503);
    emu.config(json!({"fail_rate": 0.0}));
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
}

#[test]
fn storm_429() {
    let emu = Emu::start();
    let token = emu.token();
    emu.config(json!({"storm_429_ms": 400}));
    let r = emu.get("/api/v2/roles", Some(&token));
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["errorCode"], "too_many_requests");
    let (_, remaining, reset) = rl(&r);
    assert_eq!(remaining, 0);
    assert!(reset >= now_secs() && reset <= now_secs() + 2);
    // Even unauthenticated requests are answered 429 during a storm.
    assert_eq!(emu.get("/api/v2/roles", None).status, 429);
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);

    emu.config(json!({"storm_429_ms": 60_000}));
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 429);
    emu.config(json!({"storm_429_ms": 0}));
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
}

#[test]
fn stats_count_every_arrival() {
    let emu = Emu::start();
    let token = emu.token();
    emu.get("/api/v2/users-by-email?email=a%40b.co", Some(&token));
    emu.get("/api/v2/users-by-email?email=a%40b.co", None); // 401 still counts
    emu.post(
        "/api/v2/users/auth0%7Cx/roles",
        Some(&token),
        &json!({"roles": ["rol_1"]}),
    );
    emu.get("/api/v2/nothing", Some(&token));
    let s = emu.stats();
    assert_eq!(s["endpoints"]["POST /oauth/token"], 1);
    assert_eq!(s["endpoints"]["GET /api/v2/users-by-email"], 2);
    assert_eq!(s["endpoints"]["POST /api/v2/users/{id}/roles"], 1);
    assert_eq!(s["endpoints"]["POST /api/v2/users"], 0);
    assert_eq!(s["token_requests"], 1);
    assert_eq!(s["management_requests"], 4);
    assert_eq!(s["rate_limited"], 0);
    assert_eq!(s["faults_injected"], 0);

    // Control calls are not counted.
    emu.get("/__emulator/users", None);
    assert_eq!(emu.stats()["management_requests"], 4);

    assert_eq!(
        emu.post("/__emulator/reset-stats", None, &json!({})).status,
        200
    );
    let s = emu.stats();
    assert_eq!(s["management_requests"], 0);
    assert_eq!(s["endpoints"]["GET /api/v2/users-by-email"], 0);
    // Data survives reset-stats.
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
}

#[test]
fn reset_clears_everything() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "gone@example.com");
    emu.create_role(&token, "gone");
    emu.config(json!({"rate_limit": {"rps": 100, "burst": 100}, "latency_ms": 5, "scopes": ["read:users"]}));

    assert_eq!(emu.post("/__emulator/reset", None, &json!({})).status, 200);
    assert_eq!(emu.get("/__emulator/users", None).json(), json!([]));
    assert_eq!(emu.get("/__emulator/roles", None).json(), json!([]));
    assert_eq!(emu.get("/__emulator/outbox", None).json(), json!([]));
    assert_eq!(emu.stats()["token_requests"], 0);
    let cfg = emu.get("/__emulator/config", None).json();
    assert_eq!(cfg["rate_limit"], "none");
    assert_eq!(cfg["latency_ms"], 0);
    assert_eq!(cfg["scopes"].as_array().unwrap().len(), 7);
    // Issued tokens are gone too.
    assert_eq!(
        emu.get("/api/v2/roles", Some(&token)).json()["message"],
        "Invalid token"
    );
}

#[test]
fn config_validation_and_latency() {
    let emu = Emu::start();
    for bad in [
        json!({"nope": 1}),
        json!({"fail_rate": 2}),
        json!({"rate_limit": "fast"}),
        json!([1]),
    ] {
        let r = emu.post("/__emulator/config", None, &bad);
        assert_eq!(r.status, 400, "{bad}");
    }
    let token = emu.token();
    emu.config(json!({"latency_ms": 150}));
    let t = std::time::Instant::now();
    assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    // Control API is not delayed.
    let t = std::time::Instant::now();
    emu.stats();
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[test]
fn concurrent_requests_with_latency_do_not_serialize() {
    let emu = Emu::start();
    let token = emu.token();
    emu.config(json!({"latency_ms": 200}));
    let t = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(emu.get("/api/v2/roles", Some(&token)).status, 200));
        }
    });
    // Four 200 ms requests on four threads: well under 4 × 200 ms.
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
}
