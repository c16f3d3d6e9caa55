//! `GET /api/v2/users` (List or Search Users, search engine v3): the bare
//! array and `include_totals` shapes, paging and its 1000-record limit,
//! sorting, the query language, the `fields` projection, the search lag,
//! scopes and the front door (stats, 429s).

mod common;

use std::time::Duration;

use common::{enc, Emu, Resp, CONNECTION, STRONG_PASSWORD};
use serde_json::{json, Value};

fn search(emu: &Emu, token: &str, query: &str) -> Resp {
    emu.get(&format!("/api/v2/users?{query}"), Some(token))
}

/// The emails of the users a `q` search returns, sorted by email.
fn found(emu: &Emu, token: &str, q: &str) -> Vec<String> {
    let r = search(emu, token, &format!("q={}&sort=email:1", enc(q)));
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    emails(&r.json())
}

fn emails(users: &Value) -> Vec<String> {
    users
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {users}"))
        .iter()
        .map(|u| u["email"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Creates users one after the other, a few ms apart so that their
/// `created_at` values differ.
fn create_spaced(emu: &Emu, token: &str, addresses: &[&str]) -> Vec<Value> {
    addresses
        .iter()
        .map(|a| {
            std::thread::sleep(Duration::from_millis(3));
            emu.create_user(token, a)
        })
        .collect()
}

const PAGING_LIMIT: &str = "You can only page through the first 1000 records. See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation";

#[test]
fn list_is_a_bare_array_of_user_json_newest_first() {
    let emu = Emu::start();
    let token = emu.token();
    let made = create_spaced(&emu, &token, &["one@example.com", "two@example.com"]);
    let r = search(&emu, &token, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(r.header("x-ratelimit-remaining").is_some());
    // The same JSON as GET /users/{id}, newest first by default.
    assert_eq!(r.json(), json!([made[1], made[0]]));
    let id = made[0]["user_id"].as_str().unwrap();
    let one = emu.get(&format!("/api/v2/users/{}", enc(id)), Some(&token));
    assert_eq!(r.json()[1], one.json());

    // With nobody there, an empty array.
    emu.post("/__emulator/reset", None, &json!({}));
    let token = emu.token();
    assert_eq!(search(&emu, &token, "").json(), json!([]));
    let r = emu.get("/api/v2/users?search_engine=v3&q=", Some(&token));
    assert_eq!(r.json(), json!([]));
    assert_eq!(emu.stats()["endpoints"]["GET /api/v2/users"], 2);
}

#[test]
fn include_totals_shape_and_paging() {
    let emu = Emu::start();
    let token = emu.token();
    let all = ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io"];
    create_spaced(&emu, &token, &all);

    let r = search(
        &emu,
        &token,
        "include_totals=true&per_page=2&page=1&sort=email:1",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["length", "limit", "start", "total", "users"]);
    assert_eq!(v["start"], 2);
    assert_eq!(v["limit"], 2);
    assert_eq!(v["length"], 2);
    assert_eq!(v["total"], 5);
    assert_eq!(emails(&v["users"]), ["c@x.io", "d@x.io"]);

    let v = search(
        &emu,
        &token,
        "include_totals=true&per_page=2&page=2&sort=email:1",
    )
    .json();
    assert_eq!(
        (v["start"].as_u64(), v["length"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(emails(&v["users"]), ["e@x.io"]);
    let v = search(&emu, &token, "include_totals=true&per_page=2&page=3").json();
    assert_eq!(v["users"], json!([]));
    assert_eq!(v["length"], 0);
    assert_eq!(v["total"], 5);

    // Defaults: page 0, 50 per page; include_totals=false is the bare array.
    let v = search(&emu, &token, "include_totals=true").json();
    assert_eq!(
        (v["start"].as_u64(), v["limit"].as_u64()),
        (Some(0), Some(50))
    );
    let r = search(
        &emu,
        &token,
        "include_totals=false&per_page=2&page=1&sort=email:1",
    );
    assert_eq!(emails(&r.json()), ["c@x.io", "d@x.io"]);

    // total counts the matches of q, not all users.
    let v = search(
        &emu,
        &token,
        &format!(
            "include_totals=true&q={}",
            enc("email:a@x.io OR email:b@x.io")
        ),
    )
    .json();
    assert_eq!(v["total"], 2);
}

#[test]
fn paging_is_limited_to_the_first_1000_records() {
    let emu = Emu::start();
    let token = emu.token();
    let ok = |q: &str| assert_eq!(search(&emu, &token, q).status, 200, "{q}");
    let refused = |q: &str| {
        let r = search(&emu, &token, q);
        assert_eq!(r.status, 400, "{q}");
        // Auth0's message; its errorCode is not known, so none is sent.
        assert_eq!(
            r.json(),
            json!({"statusCode": 400, "error": "Bad Request", "message": PAGING_LIMIT}),
            "{q}"
        );
    };
    ok("per_page=100&page=9");
    refused("per_page=100&page=10");
    ok("per_page=50&page=19");
    refused("per_page=50&page=20");
    refused("page=20"); // per_page defaults to 50
    ok("per_page=1&page=999");
    refused("per_page=1&page=1000");
    refused("per_page=3&page=333"); // records 999-1001
    refused("include_totals=true&per_page=100&page=1000000");

    // Parameter validation, in Auth0's z-schema style.
    for (q, message) in [
        (
            "per_page=0",
            "Query validation error: 'Value 0 is less than minimum 1' on property per_page.",
        ),
        (
            "per_page=101",
            "Query validation error: 'Value 101 is greater than maximum 100' on property per_page.",
        ),
        (
            "page=-1",
            "Query validation error: 'Value -1 is less than minimum 0' on property page.",
        ),
        (
            "include_totals=yes",
            "Query validation error: 'Expected type boolean but found type string' on property include_totals.",
        ),
        (
            "connection=x",
            "Query validation error: 'Additional properties not allowed: connection'.",
        ),
    ] {
        let r = search(&emu, &token, q);
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(
            r.json(),
            json!({"statusCode":400,"error":"Bad Request","message":message,"errorCode":"invalid_query_string"}),
            "{q}"
        );
    }
}

#[test]
fn only_search_engine_v3() {
    let emu = Emu::start();
    let token = emu.token();
    assert_eq!(search(&emu, &token, "search_engine=v3").status, 200);
    for v in ["v1", "v2"] {
        let r = search(&emu, &token, &format!("search_engine={v}"));
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"statusCode":400,"error":"Bad Request",
                   "message": format!("You are not allowed to use search_engine={v}."),
                   "errorCode":"invalid_query_string"})
        );
    }
    let r = search(&emu, &token, "search_engine=v4");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "invalid_query_string");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("on property search_engine"));
}

#[test]
fn sort_orders_are_stable() {
    let emu = Emu::start();
    let token = emu.token();
    create_spaced(&emu, &token, &["c@x.io", "a@x.io", "b@x.io"]);
    let order = |sort: &str| emails(&search(&emu, &token, &format!("sort={sort}")).json());
    assert_eq!(
        emails(&search(&emu, &token, "").json()),
        ["b@x.io", "a@x.io", "c@x.io"]
    );
    assert_eq!(order("created_at:-1"), ["b@x.io", "a@x.io", "c@x.io"]);
    assert_eq!(order("created_at:1"), ["c@x.io", "a@x.io", "b@x.io"]);
    assert_eq!(order("email:1"), ["a@x.io", "b@x.io", "c@x.io"]);
    assert_eq!(order("email:-1"), ["c@x.io", "b@x.io", "a@x.io"]);
    assert_eq!(order("updated_at:1"), ["c@x.io", "a@x.io", "b@x.io"]);

    // a logs in twice, then b once; c never: it has no logins_count or
    // last_login and comes last in both directions.
    for who in ["a@x.io", "a@x.io", "b@x.io"] {
        std::thread::sleep(Duration::from_millis(3));
        let r = emu.post("/__emulator/login", None, &json!({"email": who}));
        assert_eq!(r.status, 200);
    }
    assert_eq!(order("logins_count:-1"), ["a@x.io", "b@x.io", "c@x.io"]);
    assert_eq!(order("logins_count:1"), ["b@x.io", "a@x.io", "c@x.io"]);
    assert_eq!(order("last_login:-1"), ["b@x.io", "a@x.io", "c@x.io"]);
    assert_eq!(order("last_login:1"), ["a@x.io", "b@x.io", "c@x.io"]);

    let by_nickname: Vec<String> = search(&emu, &token, "sort=nickname:1&q=email_verified:false")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["nickname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(by_nickname, ["a", "b", "c"]);

    emu.post("/__emulator/reset", None, &json!({}));
    let token = emu.token();
    // Users that all lack the sort field are in user_id order.
    for id in [
        "ccc000000000000000000000",
        "aaa000000000000000000000",
        "bbb000000000000000000000",
    ] {
        let r = emu.post(
            "/api/v2/users",
            Some(&token),
            &json!({"connection": CONNECTION, "email": format!("{}@x.io", &id[..3]), "password": STRONG_PASSWORD, "user_id": id}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let got: Vec<String> = search(&emu, &token, "sort=last_login:-1")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        [
            "auth0|aaa000000000000000000000",
            "auth0|bbb000000000000000000000",
            "auth0|ccc000000000000000000000"
        ]
    );

    for bad in ["email", "email:0", "email:asc", ":1", "picture:1"] {
        let r = search(&emu, &token, &format!("sort={}", enc(bad)));
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["errorCode"], "invalid_query_string", "{bad}");
    }
}

#[test]
fn query_language() {
    let emu = Emu::start();
    let token = emu.token();
    let ada = emu.post(
        "/api/v2/users",
        Some(&token),
        &json!({"connection": CONNECTION, "email": "Ada@Example.com", "password": STRONG_PASSWORD,
                "name": "Ada Lovelace", "given_name": "Ada", "username": "ada_l",
                "app_metadata": {"plan": "gold", "tier": 2, "beta": true, "tags": ["x", "y"],
                                 "org": {"name": "Analytical"}},
                "user_metadata": {"lang": "en"}}),
    );
    assert_eq!(ada.status, 201, "{}", ada.body);
    let ada_id = ada.json()["user_id"].as_str().unwrap().to_string();
    let bob = emu.post(
        "/api/v2/users",
        Some(&token),
        &json!({"connection": CONNECTION, "email": "bob@example.org", "password": STRONG_PASSWORD,
                "app_metadata": {"plan": "silver", "tier": 10}, "email_verified": true}),
    );
    assert_eq!(bob.status, 201);
    let bob_id = bob.json()["user_id"].as_str().unwrap().to_string();
    let cy = emu.create_user(&token, "cy@example.com");
    let cy_id = cy["user_id"].as_str().unwrap().to_string();
    let patch = |id: &str, body: Value| {
        let r = emu.send_json(
            "PATCH",
            &format!("/api/v2/users/{}", enc(id)),
            Some(&token),
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    patch(&bob_id, json!({"blocked": true}));
    patch(&cy_id, json!({"blocked": false}));
    for _ in 0..2 {
        emu.post("/__emulator/login", None, &json!({"user_id": ada_id}));
    }

    let (a, b, c) = ("ada@example.com", "bob@example.org", "cy@example.com");
    let table: Vec<(String, Vec<&str>)> = vec![
        ("email:\"ADA@example.com\"".into(), vec![a]),
        ("email:ada@example.com".into(), vec![a]),
        ("email:*@example.com".into(), vec![a, c]),
        ("email.domain:example.org".into(), vec![b]),
        ("name:\"ada lovelace\"".into(), vec![a]),
        ("name:ada*".into(), vec![a]),
        ("given_name:*".into(), vec![a]),
        ("username:ada_l".into(), vec![a]),
        ("username:ADA_L".into(), vec![]),
        (format!("user_id:\"{ada_id}\""), vec![a]),
        (
            "identities.connection:\"Username-Password-Authentication\"".into(),
            vec![a, b, c],
        ),
        ("app_metadata.plan:gold".into(), vec![a]),
        ("app_metadata.plan:Gold".into(), vec![]),
        ("app_metadata.tier:[3 TO *]".into(), vec![b]),
        ("app_metadata.tier:2".into(), vec![a]),
        ("app_metadata.tags:y".into(), vec![a]),
        ("app_metadata.beta:true".into(), vec![a]),
        ("app_metadata.org.name:Analytical".into(), vec![a]),
        ("_exists_:app_metadata.plan".into(), vec![a, b]),
        ("user_metadata.lang:en".into(), vec![a]),
        ("blocked:true".into(), vec![b]),
        ("blocked:false".into(), vec![c]),
        ("NOT _exists_:blocked".into(), vec![a]),
        ("email_verified:true".into(), vec![b]),
        ("logins_count:2".into(), vec![a]),
        ("logins_count:0".into(), vec![]),
        ("logins_count:[1 TO *]".into(), vec![a]),
        ("NOT logins_count:[1 TO *]".into(), vec![b, c]),
        ("-logins_count:>=1".into(), vec![b, c]),
        ("_exists_:last_login".into(), vec![a]),
        ("last_login:[2020-01-01 TO *]".into(), vec![a]),
        ("created_at:[2020-01-01 TO *]".into(), vec![a, b, c]),
        ("created_at:[* TO 2020-01-01]".into(), vec![]),
        ("updated_at:{* TO \"2020-01-01T00:00:00Z\"}".into(), vec![]),
        (
            "email_verified:false AND NOT blocked:true".into(),
            vec![a, c],
        ),
        (
            "app_metadata.plan:gold OR app_metadata.plan:silver".into(),
            vec![a, b],
        ),
        (
            "app_metadata.plan:gold app_metadata.plan:silver".into(),
            vec![a, b],
        ),
        (
            "app_metadata.plan:(gold OR silver) AND blocked:true".into(),
            vec![b],
        ),
        (
            "(email:cy* OR blocked:true) AND -email.domain:example.org".into(),
            vec![c],
        ),
        (
            "app_metadata.plan:* -app_metadata.plan:gold".into(),
            vec![b],
        ),
    ];
    for (q, want) in &table {
        assert_eq!(found(&emu, &token, q), *want, "{q}");
    }
}

#[test]
fn invalid_queries_are_400_invalid_query_string() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "someone@example.com");
    for (q, detail) in [
        ("email:\"open", "unterminated quote at character 7"),
        ("(email:a", "missing ')'"),
        ("foo:bar", "unsupported field 'foo'"),
        ("name:", "expected a value"),
        ("logins_count:abc", "'abc' is not a number for logins_count"),
        ("blocked:yes", "'yes' is not a boolean value for blocked"),
        ("ada", "'ada' has no field"),
        ("email:a AND", "expected a clause"),
        (
            "user_metadata.lang:e*",
            "not available on user_metadata fields",
        ),
        ("name:*ab", "at least 3 other characters"),
        (
            "created_at:2026-01-01T00:00:00Z",
            "quote values that contain ':'",
        ),
    ] {
        let r = search(&emu, &token, &format!("q={}", enc(q)));
        assert_eq!(r.status, 400, "{q}");
        let v = r.json();
        assert_eq!(v["statusCode"], 400, "{q}");
        assert_eq!(v["error"], "Bad Request", "{q}");
        assert_eq!(v["errorCode"], "invalid_query_string", "{q}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with("Invalid query string: "),
            "{q}: {message}"
        );
        assert!(message.contains(detail), "{q}: {message}");
    }
}

#[test]
fn fields_projection() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "f@example.com");
    let v = search(&emu, &token, "fields=email,user_id&include_fields=true").json();
    let mut keys: Vec<&str> = v[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["email", "user_id"]);
    let v = search(
        &emu,
        &token,
        "fields=email,identities&include_fields=false&include_totals=true",
    )
    .json();
    assert!(v["users"][0].get("email").is_none());
    assert!(v["users"][0].get("identities").is_none());
    assert!(v["users"][0].get("user_id").is_some());
}

#[test]
fn search_lag_hides_new_users_from_search_only() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "old@example.com");
    std::thread::sleep(Duration::from_millis(400));
    let cfg = emu.config(json!({"search_lag_ms": 300})).json();
    assert_eq!(cfg["search_lag_ms"], 300);

    let new = emu.create_user(&token, "new@example.com");
    // The search index has not caught up with the new user yet.
    let v = search(&emu, &token, "include_totals=true").json();
    assert_eq!(emails(&v["users"]), ["old@example.com"]);
    assert_eq!(v["total"], 1);
    assert_eq!(
        found(&emu, &token, "email:new@example.com"),
        Vec::<String>::new()
    );
    // Reads by id and by email are immediately consistent.
    let id = new["user_id"].as_str().unwrap();
    assert_eq!(
        emu.get(&format!("/api/v2/users/{}", enc(id)), Some(&token))
            .status,
        200
    );
    let r = emu.get(
        "/api/v2/users-by-email?email=new%40example.com",
        Some(&token),
    );
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    // Once the lag has passed, search sees the user.
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(
        emails(&search(&emu, &token, "").json()),
        ["new@example.com", "old@example.com"]
    );
    // Setting it back to 0 shows everything at once.
    emu.config(json!({"search_lag_ms": 0}));
    emu.create_user(&token, "newest@example.com");
    assert_eq!(
        found(&emu, &token, "email:newest@example.com"),
        ["newest@example.com"]
    );

    // Validation, and reset restores the startup value.
    for bad in [
        json!({"search_lag_ms": -1}),
        json!({"search_lag_ms": 600_001}),
        json!({"search_lag_ms": "5"}),
    ] {
        assert_eq!(
            emu.post("/__emulator/config", None, &bad).status,
            400,
            "{bad}"
        );
    }
    emu.config(json!({"search_lag_ms": 600_000}));
    emu.post("/__emulator/reset", None, &json!({}));
    assert_eq!(
        emu.get("/__emulator/config", None).json()["search_lag_ms"],
        0
    );

    // The CLI option (`--search-lag-ms`) sets the startup value.
    let emu = Emu::start_with(|o| o.search_lag_ms = 60_000);
    assert_eq!(
        emu.get("/__emulator/config", None).json()["search_lag_ms"],
        60_000
    );
    let token = emu.token();
    emu.create_user(&token, "hidden@example.com");
    assert_eq!(search(&emu, &token, "").json(), json!([]));
}

#[test]
fn scope_auth_and_front_door() {
    let emu = Emu::start();
    let token = emu.token();
    emu.create_user(&token, "s@example.com");

    assert_eq!(emu.get("/api/v2/users", None).status, 401);
    emu.config(json!({"scopes": ["create:users", "update:users"]}));
    let weak = emu.token();
    let r = search(&emu, &weak, "q=email%3As%40example.com");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: read:users","errorCode":"insufficient_scope"})
    );

    // Rate limited and stormed like every Management call.
    emu.config(json!({"storm_429_ms": 60_000}));
    let r = search(&emu, &token, "");
    assert_eq!(r.status, 429);
    assert!(r.header("x-ratelimit-reset").is_some());
    emu.config(json!({"storm_429_ms": 0, "rate_limit": "1:1"}));
    assert_eq!(search(&emu, &token, "").status, 200);
    assert_eq!(search(&emu, &token, "").status, 429);

    let s = emu.stats();
    assert_eq!(s["endpoints"]["GET /api/v2/users"], 5);
    assert_eq!(s["rate_limited"], 2);
}

/// The query shapes an invitee listing sends (invited users of one
/// connection, by status, after a keyset cursor of `created_at` plus the ids
/// already seen at that instant) select what they mean.
#[test]
fn keyset_cursor_queries() {
    let emu = Emu::start();
    let token = emu.token();
    let mut ids = Vec::new();
    for (i, email) in ["p1@x.io", "p2@x.io", "acc@x.io", "rev@x.io", "other@x.io"]
        .iter()
        .enumerate()
    {
        std::thread::sleep(Duration::from_millis(3));
        let invited = i < 4;
        let r = emu.post(
            "/api/v2/users",
            Some(&token),
            &json!({"connection": CONNECTION, "email": email, "password": STRONG_PASSWORD,
                    "app_metadata": {"invited": invited}}),
        );
        assert_eq!(r.status, 201);
        ids.push(r.json()["user_id"].as_str().unwrap().to_string());
    }
    emu.post("/__emulator/login", None, &json!({"email": "acc@x.io"}));
    let r = emu.send_json(
        "PATCH",
        &format!("/api/v2/users/{}", enc(&ids[3])),
        Some(&token),
        &json!({"blocked": true}),
    );
    assert_eq!(r.status, 200);

    let base = format!("app_metadata.invited:true AND identities.connection:\"{CONNECTION}\"");
    let page = |q: &str| -> (Vec<String>, u64) {
        let r = search(
            &emu,
            &token,
            &format!(
                "q={}&search_engine=v3&sort=created_at:-1&page=0&per_page=2&include_totals=true",
                enc(q)
            ),
        );
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        let v = r.json();
        (emails(&v["users"]), v["total"].as_u64().unwrap())
    };
    assert_eq!(page(&base), (vec!["rev@x.io".into(), "acc@x.io".into()], 4));
    let pending = format!("{base} AND NOT blocked:true AND NOT logins_count:[1 TO *]");
    assert_eq!(
        page(&pending),
        (vec!["p2@x.io".into(), "p1@x.io".into()], 2)
    );
    let accepted = format!("{base} AND NOT blocked:true AND logins_count:[1 TO *]");
    assert_eq!(page(&accepted), (vec!["acc@x.io".into()], 1));
    let revoked = format!("{base} AND blocked:true");
    assert_eq!(page(&revoked), (vec!["rev@x.io".into()], 1));

    // Next page after acc@x.io: created at or before it, minus the ids seen.
    let acc = emu
        .get(&format!("/api/v2/users/{}", enc(&ids[2])), Some(&token))
        .json();
    let t = acc["created_at"].as_str().unwrap();
    let next = format!(
        "{base} AND created_at:[* TO \"{t}\"] AND NOT (user_id:\"{}\" OR user_id:\"{}\")",
        ids[2], ids[3]
    );
    assert_eq!(page(&next), (vec!["p2@x.io".into(), "p1@x.io".into()], 2));
}
