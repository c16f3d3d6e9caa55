//! The invitee lifecycle over the scripted Auth0: list (keyset paging over the user search),
//! look-up, resend (delivered the way the first link was, limited per address) and revoke;
//! and the verification option of `POST /v1/invites`.

use crate::support::*;

const CONN: &str = "Username-Password-Authentication";

/// An Auth0 user as `GET /api/v2/users/{id}` answers, invited by this service unless
/// `extra` says otherwise (`app_metadata` keys are merged).
fn user(id: &str, email: &str, extra: Value) -> Value {
    let mut u = json!({
        "user_id": id, "email": email, "email_verified": true,
        "created_at": "2026-11-20T10:00:00.000Z", "updated_at": "2026-11-20T10:00:00.000Z",
        "identities": [{"connection": CONN, "user_id": id.trim_start_matches("auth0|"), "provider": "auth0", "isSocial": false}],
        "app_metadata": {"invited": true, "invited_at": "2026-11-20T10:00:00.000Z", "invited_by": "backend"},
    });
    for (k, v) in extra.as_object().unwrap() {
        if k == "app_metadata" {
            for (mk, mv) in v.as_object().unwrap() {
                u["app_metadata"][mk] = mv.clone();
            }
        } else {
            u[k] = v.clone();
        }
    }
    u
}

fn get(path: &str) -> HttpRequest {
    HttpRequest::new("GET", path).header("Authorization", format!("Bearer {KEY}"))
}

fn post(path: &str) -> HttpRequest {
    HttpRequest::new("POST", path).header("Authorization", format!("Bearer {KEY}"))
}

/// `users-by-email` answers with these accounts.
fn by_email(svc: &Svc, users: Vec<Value>) {
    svc.fake.script(
        "GET /api/v2/users-by-email",
        vec![Ok(json_resp(200, Value::Array(users)))],
    );
}

fn sent_url(svc: &Svc, route: &str) -> String {
    svc.fake
        .sent
        .borrow()
        .iter()
        .rfind(|r| format!("{} {}", r.method, path_of(&r.url)) == route)
        .map(|r| r.url.clone())
        .unwrap_or_else(|| panic!("no {route}"))
}

#[test]
fn verification_by_email_leaves_the_address_unverified_and_starts_auth0s_job() {
    let svc = Svc::new(&[]);
    svc.fake.script(
        "POST /api/v2/jobs/verification-email",
        vec![Ok(json_resp(
            201,
            json!({"type": "verification_email", "status": "pending", "created_at": "2026-11-26T21:39:43.000Z", "id": "job_LUdmtO6C0M42uqSz"}),
        ))],
    );
    let (h, body) = svc.invite(json!({"email": "ada@example.com", "verification": "email"}));
    assert_eq!(h.response.status, 201, "{body}");
    assert_eq!(
        body["verification"],
        json!({"method": "email", "job_id": "job_LUdmtO6C0M42uqSz"})
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users")["email_verified"],
        false
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/tickets/password-change")["mark_email_as_verified"],
        false
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/jobs/verification-email"),
        json!({"user_id": "auth0|abc123"})
    );
    // The role's look-up (a cold cache), the user, the role, the password link and the job.
    assert_eq!(svc.fake.management_calls(), 5);
}

#[test]
fn verification_by_ticket_returns_the_link_to_the_trusted_caller_only_synchronously() {
    let svc = Svc::new(&[]);
    svc.fake.script(
        "POST /api/v2/tickets/email-verification",
        vec![Ok(json_resp(
            201,
            json!({"ticket": "https://acme.eu.auth0.com/u/email-verification?ticket=SECRETTICKETV#"}),
        ))],
    );
    let (h, body) = svc.invite(
        json!({"email": "ada@example.com", "verification": "ticket", "ticket_ttl_sec": 3600}),
    );
    assert_eq!(h.response.status, 201, "{body}");
    assert_eq!(body["verification"]["method"], "ticket");
    assert_eq!(
        body["verification"]["ticket_url"],
        "https://acme.eu.auth0.com/u/email-verification?ticket=SECRETTICKETV#"
    );
    assert_eq!(
        body["verification"]["ticket_expires_at"],
        "2026-11-26T22:39:43Z"
    );
    let sent = svc.fake.body_of("POST /api/v2/tickets/email-verification");
    assert_eq!(sent["user_id"], "auth0|abc123");
    assert_eq!(sent["ttl_sec"], 3600);
    assert_eq!(sent["result_url"], "https://app.example.com/welcome");
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users")["email_verified"],
        false
    );

    // Without verification nothing changes: verified address, no fourth call, no field.
    let svc = Svc::new(&[]);
    let (_, body) = svc.invite(json!({"email": "ada@example.com"}));
    assert!(body.get("verification").is_none(), "{body}");
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users")["email_verified"],
        true
    );
    assert_eq!(
        svc.fake.management_calls(),
        4,
        "a cold role look-up and three calls"
    );

    // A queued invite has no way to hand the verification link back.
    let svc = Svc::new(&[]);
    let (h, body) = svc.run(
        invite_req(&json!({"email": "ada@example.com", "verification": "ticket"}))
            .header("Prefer", "respond-async"),
    );
    assert_eq!(error_code(&h, &body), (422, "invalid_field".into()));
    assert_eq!(body["error"]["field"], "verification");
    let mut batch = HttpRequest::new("POST", "/v1/invites/batch")
        .header("Authorization", format!("Bearer {KEY}"))
        .header("Content-Type", "application/json");
    batch.body = json!({"invites": [{"email": "a@example.com", "verification": "ticket"}, {"email": "b@example.com", "verification": "email"}]})
        .to_string()
        .into_bytes();
    let (h, body) = svc.run(batch);
    assert_eq!(h.response.status, 202, "{body}");
    assert_eq!(body["items"][0]["error"]["field"], "verification");
    assert_eq!(body["queued"], 1);
    for bad in [json!("yes"), json!(true), json!({"method": "email"})] {
        let (h, body) = svc.invite(json!({"email": "a@example.com", "verification": bad}));
        assert_eq!(
            error_code(&h, &body),
            (422, "invalid_field".into()),
            "{bad}"
        );
    }
    assert_eq!(svc.fake.management_calls(), 0);
}

#[test]
fn the_list_pages_newest_first_with_a_keyset_cursor() {
    let svc = Svc::new(&[]);
    let a = user(
        "auth0|a",
        "a@example.com",
        json!({"created_at": "2026-11-22T10:00:00.000Z"}),
    );
    let b = user(
        "auth0|b",
        "b@example.com",
        json!({"created_at": "2026-11-21T10:00:00.000Z"}),
    );
    let c = user(
        "auth0|c",
        "c@example.com",
        json!({"created_at": "2026-11-21T10:00:00.000Z"}),
    );
    svc.fake.script(
        "GET /api/v2/users",
        vec![
            Ok(json_resp(
                200,
                json!({"start": 0, "limit": 2, "length": 2, "users": [a, b], "total": 3}),
            )),
            Ok(json_resp(
                200,
                json!({"start": 0, "limit": 2, "length": 1, "users": [c], "total": 1}),
            )),
        ],
    );
    let (h, body) = svc.run(get("/v1/invitees?status=pending&limit=2"));
    assert_eq!(h.response.status, 200, "{body}");
    let ids: Vec<&str> = body["invitees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auth0|a", "auth0|b"]);
    assert_eq!(body["invitees"][0]["status"], "pending");
    assert_eq!(body["invitees"][0]["source"], "api");
    assert_eq!(body["invitees"][0]["delivery"], "returned");
    assert_eq!(body["invitees"][0]["logins_count"], 0);
    let url = sent_url(&svc, "GET /api/v2/users");
    assert_eq!(query_param(&url, "search_engine").as_deref(), Some("v3"));
    assert_eq!(query_param(&url, "per_page").as_deref(), Some("2"));
    assert_eq!(query_param(&url, "include_totals").as_deref(), Some("true"));
    assert_eq!(query_param(&url, "sort").as_deref(), Some("created_at:-1"));
    assert_eq!(
        query_param(&url, "q").unwrap(),
        format!("app_metadata.invited:true AND identities.connection:\"{CONN}\" AND NOT blocked:true AND NOT logins_count:[1 TO *] AND NOT _exists_:last_login")
    );

    let cursor = body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (h, body) = svc.run(get(&format!(
        "/v1/invitees?status=pending&limit=2&cursor={cursor}"
    )));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(body["invitees"][0]["user_id"], "auth0|c");
    assert_eq!(body["next_cursor"], Value::Null, "the last page");
    let q = query_param(&sent_url(&svc, "GET /api/v2/users"), "q").unwrap();
    assert!(
        q.ends_with(
            " AND created_at:[* TO \"2026-11-21T10:00:00.000Z\"] AND NOT (user_id:\"auth0|b\")"
        ),
        "{q}"
    );
}

#[test]
fn the_list_shows_only_this_services_invitees_and_checks_its_parameters_first() {
    let svc = Svc::new(&[]);
    let mine = user(
        "auth0|a",
        "a@example.com",
        json!({"logins_count": 2, "last_login": "2026-11-25T09:00:00.000Z"}),
    );
    let other = user(
        "auth0|x",
        "x@example.com",
        json!({"app_metadata": {"invited": false}}),
    );
    svc.fake.script(
        "GET /api/v2/users",
        vec![Ok(json_resp(
            200,
            json!({"start": 0, "limit": 50, "length": 2, "users": [mine, other], "total": 2}),
        ))],
    );
    let (_, body) = svc.run(get("/v1/invitees?status=accepted"));
    assert_eq!(body["invitees"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["invitees"][0]["status"], "accepted");
    assert_eq!(
        body["invitees"][0]["last_login"],
        "2026-11-25T09:00:00.000Z"
    );
    assert_eq!(body["next_cursor"], Value::Null);

    let svc = Svc::new(&[]);
    for (url, want, field) in [
        ("/v1/invitees?status=all", (422, "invalid_field"), "status"),
        ("/v1/invitees?limit=500", (422, "invalid_field"), "limit"),
        ("/v1/invitees?cursor=abc", (422, "invalid_field"), "cursor"),
        // Well-formed, but its bound is no timestamp: refused here, not sent to Auth0.
        (
            "/v1/invitees?cursor=eyJ0IjoiVFRUVCIsIngiOltdfQ",
            (422, "invalid_field"),
            "cursor",
        ),
        ("/v1/invitees?page=1", (400, "unknown_field"), "page"),
    ] {
        let (h, body) = svc.run(get(url));
        assert_eq!(error_code(&h, &body), (want.0, want.1.into()), "{url}");
        assert_eq!(body["error"]["field"], field, "{url}");
    }
    let (h, _) = svc.run(HttpRequest::new("GET", "/v1/invitees"));
    assert_eq!(h.response.status, 401);
    let (h, _) = svc.run(post("/v1/invitees"));
    assert_eq!(h.response.status, 405);
    assert_eq!(h.response.header_value("allow"), Some("GET, HEAD"));
    assert_eq!(svc.fake.management_calls(), 0);
}

/// Auth0 refusing a look-up (400) is 422 invite_rejected with its message, as the docs say
/// of every route here, not a 502.
#[test]
fn a_refused_look_up_is_invite_rejected() {
    let svc = Svc::new(&[]);
    svc.fake.script(
        "GET /api/v2/users-by-email",
        vec![Ok(json_resp(
            400,
            json!({"statusCode": 400, "error": "Bad Request", "message": "Object didn't pass validation for format email: ada@example", "errorCode": "invalid_query_string"}),
        ))],
    );
    let (h, body) = svc.run(get("/v1/invitees/ada%40example.com"));
    assert_eq!(
        error_code(&h, &body),
        (422, "invite_rejected".into()),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("format email"),
        "{body}"
    );
}

#[test]
fn one_invitee_by_address_or_user_id() {
    let svc = Svc::new(&[]);
    let social = json!({"user_id": "google-oauth2|9", "email": "ada@example.com", "identities": [{"connection": "google-oauth2"}],
                        "app_metadata": {"invited": true}});
    by_email(
        &svc,
        vec![social, user("auth0|a", "ada@example.com", json!({}))],
    );
    let (h, body) = svc.run(get("/v1/invitees/Ada%40Example.com"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(body["user_id"], "auth0|a");
    assert_eq!(body["status"], "pending");
    assert_eq!(
        query_param(&sent_url(&svc, "GET /api/v2/users-by-email"), "email").as_deref(),
        Some("ada@example.com")
    );

    svc.fake.script(
        "GET /api/v2/users/auth0%7Ca",
        vec![Ok(json_resp(
            200,
            user(
                "auth0|a",
                "ada@example.com",
                json!({"blocked": true, "app_metadata": {"revoked_at": "2026-11-26T00:00:00Z"}}),
            ),
        ))],
    );
    let (h, body) = svc.run(get("/v1/invitees/auth0%7Ca"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    assert_eq!(body["revoked_at"], "2026-11-26T00:00:00Z");

    // Not found, not this service's, or not an address: the same 404 for the first two.
    svc.fake.script(
        "GET /api/v2/users/auth0%7Cnope",
        vec![Ok(json_resp(
            404,
            json!({"statusCode": 404, "error": "Not Found", "message": "The user does not exist."}),
        ))],
    );
    let (h, body) = svc.run(get("/v1/invitees/auth0%7Cnope"));
    assert_eq!(error_code(&h, &body), (404, "invitee_not_found".into()));
    by_email(
        &svc,
        vec![user(
            "auth0|z",
            "z@example.com",
            json!({"app_metadata": {"invited": false}}),
        )],
    );
    let (h, body) = svc.run(get("/v1/invitees/z@example.com"));
    assert_eq!(error_code(&h, &body), (404, "invitee_not_found".into()));
    let (h, body) = svc.run(get("/v1/invitees/z@@example.com"));
    assert_eq!(error_code(&h, &body), (422, "invalid_email".into()));
}

#[test]
fn a_resend_returns_a_fresh_link_to_the_trusted_caller_once_per_interval() {
    let svc = Svc::new(&[("RESEND_INTERVAL_SEC", "120")]);
    let ada = user("auth0|a", "ada@example.com", json!({}));
    by_email(&svc, vec![ada.clone()]);
    let (h, body) = svc.run(post("/v1/invitees/ada%40example.com/resend"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(body["delivery"], "returned");
    assert_eq!(
        body["ticket_url"],
        "https://acme.eu.auth0.com/u/reset-password?ticket=SECRETTICKET#"
    );
    assert_eq!(body["ticket_expires_at"], "2026-11-27T21:39:43Z");
    let ticket = svc.fake.body_of("POST /api/v2/tickets/password-change");
    assert_eq!(ticket["user_id"], "auth0|a");
    assert_eq!(ticket["result_url"], "https://app.example.com/welcome");
    assert_eq!(
        ticket["mark_email_as_verified"], false,
        "the caller hands it on"
    );

    // Within the interval: refused before any new link (the one just sent keeps working),
    // with the time the window still holds.
    svc.fake.now.set(svc.fake.now.get() + 50_000);
    svc.fake.script(
        "GET /api/v2/users/auth0%7Ca",
        vec![Ok(json_resp(200, ada.clone()))],
    );
    let (h, body) = svc.run(post("/v1/invitees/auth0%7Ca/resend"));
    assert_eq!(error_code(&h, &body), (429, "resend_too_soon".into()));
    assert_eq!(h.response.header_value("retry-after"), Some("70"));
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 1);

    svc.fake.now.set(svc.fake.now.get() + 71_000);
    svc.fake
        .script("GET /api/v2/users/auth0%7Ca", vec![Ok(json_resp(200, ada))]);
    let (h, body) = svc.run(post("/v1/invitees/auth0%7Ca/resend"));
    assert_eq!(h.response.status, 200, "{body}");
}

#[test]
fn a_resend_of_an_emailed_invite_goes_to_the_inbox_never_to_the_caller() {
    let svc = Svc::new(&[
        ("EMAIL_DELIVERY", "resend"),
        ("EMAIL_API_KEY", "re_k"),
        ("FROM_EMAIL", "a@acme.example"),
    ]);
    let grace = user(
        "auth0|g",
        "grace@example.com",
        json!({"email_verified": false, "app_metadata": {"invite_source": "public_form", "invited_by": "public_form"}}),
    );
    by_email(&svc, vec![grace.clone()]);
    let (h, body) = svc.run(post("/v1/invitees/grace%40example.com/resend"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(body["delivery"], "email");
    assert_eq!(body["source"], "public_form");
    assert!(body.get("ticket_url").is_none(), "{body}");
    assert!(!String::from_utf8_lossy(&h.response.body).contains("SECRETTICKET"));
    let email = svc.fake.body_of("POST /emails");
    assert_eq!(email["to"], json!(["grace@example.com"]));
    assert!(email["text"].as_str().unwrap().contains("SECRETTICKET"));
    assert_eq!(
        svc.fake.body_of("POST /api/v2/tickets/password-change")["mark_email_as_verified"],
        true,
        "using the emailed link proves the address"
    );
    let claims = |svc: &Svc| {
        svc.fake
            .gate_calls
            .borrow()
            .iter()
            .filter(|c| *c == "claim_email")
            .count()
    };
    assert_eq!(
        claims(&svc),
        2,
        "one window per resend: claimed before the ticket, again before the send"
    );
    // The address's email window now holds: the next resend is refused, nothing is sent.
    by_email(&svc, vec![grace]);
    let (h, body) = svc.run(post("/v1/invitees/grace%40example.com/resend"));
    assert_eq!(error_code(&h, &body), (429, "resend_too_soon".into()));
    assert_eq!(h.response.header_value("retry-after"), Some("600"));
    assert_eq!(svc.fake.count("POST /emails"), 1);
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 1);
}

/// A claim of the email window answered with anything but `Claimed` (another version's
/// answer, say) is no claim: the resend stops, before its ticket or before its email, with
/// 503, and nothing is sent (found in a version-skew review: any other reply went on).
#[test]
fn a_claim_answered_otherwise_than_claimed_sends_nothing() {
    // The resend's own claim (skip 0), then the claim right before the send (skip 1).
    for (skip, tickets) in [(0, 0), (1, 1)] {
        let svc = Svc::new(&[
            ("EMAIL_DELIVERY", "resend"),
            ("EMAIL_API_KEY", "re_test_key"),
            ("EMAIL_API_BASE_URL", "https://email.example"),
            ("FROM_EMAIL", "a@acme.example"),
        ]);
        let grace = user(
            "auth0|g",
            "grace@example.com",
            json!({"app_metadata": {"invite_source": "public_form", "invited_by": "public_form"}}),
        );
        by_email(&svc, vec![grace]);
        *svc.fake.gate_odd_reply.borrow_mut() = Some(("claim_email", skip, GateReply::Done));
        let (h, body) = svc.run(post("/v1/invitees/grace%40example.com/resend"));
        assert_eq!(
            error_code(&h, &body),
            (503, "queue_unavailable".into()),
            "{skip}: {body}"
        );
        assert_eq!(svc.fake.count("POST /emails"), 0, "{skip}");
        assert_eq!(
            svc.fake.count("POST /api/v2/tickets/password-change"),
            tickets,
            "{skip}"
        );
    }
}

#[test]
fn accepted_and_revoked_invites_get_no_new_link() {
    let svc = Svc::new(&[]);
    for (extra, code) in [
        (
            json!({"logins_count": 1, "last_login": "2026-11-25T09:00:00.000Z"}),
            "invite_accepted",
        ),
        (json!({"blocked": true}), "invite_revoked"),
    ] {
        by_email(&svc, vec![user("auth0|a", "a@example.com", extra)]);
        let (h, body) = svc.run(post("/v1/invitees/a@example.com/resend"));
        assert_eq!(error_code(&h, &body), (409, code.into()));
    }
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 0);
    let (h, _) = svc.run(get("/v1/invitees/a@example.com/resend"));
    assert_eq!(h.response.status, 405);
    assert_eq!(h.response.header_value("allow"), Some("POST"));
}

#[test]
fn revoking_blocks_a_pending_invite_and_is_idempotent() {
    let svc = Svc::new(&[]);
    let ada = user("auth0|a", "ada@example.com", json!({}));
    by_email(&svc, vec![ada.clone()]);
    svc.fake.script(
        "PATCH /api/v2/users/auth0%7Ca",
        vec![Ok(json_resp(
            200,
            user("auth0|a", "ada@example.com", json!({"blocked": true, "app_metadata": {"revoked_at": "2026-11-26T21:39:43Z", "revoked_by": "backend"}})),
        ))],
    );
    let (h, body) = svc.run(post("/v1/invitees/ada@example.com/revoke"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["action"].as_str()),
        (Some("revoked"), Some("blocked"))
    );
    assert_eq!(body["revoked_at"], "2026-11-26T21:39:43Z");
    assert_eq!(
        svc.fake.body_of("PATCH /api/v2/users/auth0%7Ca"),
        json!({"blocked": true, "app_metadata": {"revoked_at": "2026-11-26T21:39:43Z", "revoked_by": "backend"}})
    );
    // The links already sent are retired first, by a ticket nobody sees: the shortest one
    // Auth0 allows, made before the block, its URL in no answer (nor log: `Svc::run`).
    let routes = svc.fake.routes();
    let ticket = routes
        .iter()
        .position(|r| r == "POST /api/v2/tickets/password-change");
    let patch = routes
        .iter()
        .position(|r| r == "PATCH /api/v2/users/auth0%7Ca");
    assert!(ticket.is_some() && ticket < patch, "{routes:?}");
    let retire = svc.fake.body_of("POST /api/v2/tickets/password-change");
    assert_eq!(
        (&retire["user_id"], &retire["ttl_sec"]),
        (&json!("auth0|a"), &json!(60))
    );
    assert!(!String::from_utf8_lossy(&h.response.body).contains("SECRETTICKET"));
    // Again: nothing to do, the same answer.
    by_email(
        &svc,
        vec![user("auth0|a", "ada@example.com", json!({"blocked": true}))],
    );
    let (h, body) = svc.run(post("/v1/invitees/ada@example.com/revoke"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["action"].as_str()),
        (Some("revoked"), Some("none"))
    );
    assert_eq!(svc.fake.count("PATCH /api/v2/users/auth0%7Ca"), 1);
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 1);

    // An account in use is never revoked here.
    by_email(
        &svc,
        vec![user(
            "auth0|a",
            "ada@example.com",
            json!({"logins_count": 4}),
        )],
    );
    let (h, body) = svc.run(post("/v1/invitees/ada@example.com/revoke"));
    assert_eq!(error_code(&h, &body), (409, "invite_accepted".into()));
    assert_eq!(svc.fake.count("PATCH /api/v2/users/auth0%7Ca"), 1);
}

#[test]
fn revoking_deletes_the_account_when_configured() {
    let svc = Svc::new(&[("REVOKE_MODE", "delete")]);
    svc.fake.script(
        "GET /api/v2/users/auth0%7Ca",
        vec![Ok(json_resp(
            200,
            user("auth0|a", "ada@example.com", json!({})),
        ))],
    );
    svc.fake.script(
        "DELETE /api/v2/users/auth0%7Ca",
        vec![Ok(HttpResponse {
            status: 204,
            headers: vec![],
            body: vec![],
        })],
    );
    let (h, body) = svc.run(post("/v1/invitees/auth0%7Ca/revoke"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["action"].as_str()),
        (Some("revoked"), Some("deleted"))
    );
    assert_eq!(svc.fake.count("DELETE /api/v2/users/auth0%7Ca"), 1);
    assert_eq!(svc.fake.count("PATCH /api/v2/users/auth0%7Ca"), 0);

    // Auth0 has nothing left; the gate remembers it: still `revoked`, by id or address.
    let gone = || {
        Ok(json_resp(
            404,
            json!({"statusCode": 404, "error": "Not Found", "message": "The user does not exist."}),
        ))
    };
    svc.fake
        .script("GET /api/v2/users/auth0%7Ca", vec![gone(), gone()]);
    let (h, body) = svc.run(get("/v1/invitees/auth0%7Ca"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["email"].as_str()),
        (Some("revoked"), Some("ada@example.com"))
    );
    by_email(&svc, vec![]);
    let (h, body) = svc.run(post("/v1/invitees/ada@example.com/resend"));
    assert_eq!(error_code(&h, &body), (409, "invite_revoked".into()));
    let (h, body) = svc.run(post("/v1/invitees/auth0%7Ca/revoke"));
    assert_eq!(
        (h.response.status, body["action"].as_str()),
        (200, Some("none"))
    );
    assert_eq!(svc.fake.count("DELETE /api/v2/users/auth0%7Ca"), 1);
    // Only for a while.
    svc.fake.now.set(svc.fake.now.get() + 31 * 86_400_000);
    svc.fake.script("GET /api/v2/users/auth0%7Ca", vec![gone()]);
    let (h, body) = svc.run(get("/v1/invitees/auth0%7Ca"));
    assert_eq!(error_code(&h, &body), (404, "invitee_not_found".into()));

    let bad = Svc::new(&[("REVOKE_MODE", "erase")]);
    let problems = bad.cfg.unwrap_err().problems;
    assert!(
        problems.iter().any(|p| p.contains("REVOKE_MODE")),
        "{problems:?}"
    );
}

/// Deleting an invitee takes every link sent to it along, so its address's email windows are
/// given back: invited again within the window, the address gets its link (found in an
/// audit: the new account got none until the window ended, and a paid one none at all).
#[test]
fn a_deleted_invitee_invited_again_within_the_window_gets_a_link() {
    let svc = crate::public::public_svc(&[("REVOKE_MODE", "delete")]);
    let sign_up = || {
        let (h, _) = svc.run(crate::public::public_req(
            &json!({"email": "ada@example.com"}),
        ));
        assert_eq!(h.response.status, 202);
        svc.drain();
    };
    sign_up();
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);

    by_email(&svc, vec![user("auth0|a", "ada@example.com", json!({}))]);
    svc.fake.script(
        "DELETE /api/v2/users/auth0%7Ca",
        vec![Ok(HttpResponse {
            status: 204,
            headers: vec![],
            body: vec![],
        })],
    );
    let (h, body) = svc.run(post("/v1/invitees/ada@example.com/revoke"));
    assert_eq!(
        (h.response.status, body["action"].as_str()),
        (200, Some("deleted")),
        "{body}"
    );

    sign_up();
    assert_eq!(svc.fake.count("POST /api/v2/users"), 2);
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 2);
    // The window is the new link's now: a third sign-up sends nothing.
    sign_up();
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 2);
}

#[test]
fn a_failed_resend_gives_the_window_back() {
    let svc = Svc::new(&[]);
    let ada = user("auth0|a", "ada@example.com", json!({}));
    by_email(&svc, vec![ada.clone()]);
    svc.fake.script(
        "POST /api/v2/tickets/password-change",
        vec![Ok(json_resp(
            400,
            json!({"statusCode": 400, "error": "Bad Request", "message": "Payload validation error"}),
        ))],
    );
    let (h, body) = svc.run(post("/v1/invitees/ada@example.com/resend"));
    assert_eq!(h.response.status, 422, "{body}");
    // Retrying at once is not "too soon": nothing reached the invitee.
    by_email(&svc, vec![ada]);
    let (h, body) = svc.run(post("/v1/invitees/ada@example.com/resend"));
    assert_eq!(h.response.status, 200, "{body}");
    assert!(body["ticket_url"].is_string());
}

/// Without the gate a resend makes no link, which would void the invitee's current one only
/// for the send to stop at the claim right before it (a review found that order): 503, and
/// nothing is done.
#[test]
fn a_resend_without_the_gate_makes_no_link() {
    let svc = Svc::new(&[]);
    by_email(&svc, vec![user("auth0|a", "ada@example.com", json!({}))]);
    svc.fake.gate_fails.borrow_mut().push("claim_email");
    let (h, body) = svc.run(post("/v1/invitees/ada@example.com/resend"));
    assert_eq!(error_code(&h, &body), (503, "queue_unavailable".into()));
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 0);
}

#[test]
fn a_revoked_invite_is_not_reinvited_by_the_trusted_api() {
    let svc = Svc::new(&[]);
    svc.fake
        .script("POST /api/v2/users", vec![conflict_reply()]);
    by_email(
        &svc,
        vec![user("auth0|a", "ada@example.com", json!({"blocked": true}))],
    );
    let (h, body) = svc.invite(json!({"email": "ada@example.com"}));
    assert_eq!(error_code(&h, &body), (409, "invite_revoked".into()));
    assert_eq!(body["error"]["field"], "email");
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 0);
    assert_eq!(svc.fake.count("POST /api/v2/users/auth0%7Ca/roles"), 0);
}

/// Nor by a sign-up on the public form: the same 202 as ever, then no role, no ticket and
/// no email for the blocked account (found in an audit: a stranger could do the resend the
/// API refuses). The invite's status says why.
#[test]
fn a_revoked_invite_is_not_revived_by_a_public_sign_up() {
    let svc = crate::public::public_svc(&[]);
    svc.fake
        .script("POST /api/v2/users", vec![conflict_reply()]);
    by_email(
        &svc,
        vec![user("auth0|a", "ada@example.com", json!({"blocked": true}))],
    );
    let (h, _) = svc.run(crate::public::public_req(
        &json!({"email": "ada@example.com"}),
    ));
    assert_eq!(h.response.status, 202);
    let logs = svc.drain().join("\n");
    assert!(logs.contains("\"code\":\"invite_revoked\""), "{logs}");
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 0);
    assert_eq!(svc.fake.count("POST /api/v2/users/auth0%7Ca/roles"), 0);
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 0);
    // The address's email window still holds: another anonymous sign-up queues nothing and
    // costs no Auth0 call.
    let calls = svc.fake.management_calls();
    let (h, _) = svc.run(crate::public::public_req(
        &json!({"email": "ada@example.com"}),
    ));
    assert_eq!(h.response.status, 202);
    assert!(svc.fake.queue.borrow().is_empty());
    svc.drain();
    assert_eq!(svc.fake.management_calls(), calls);
}

fn conflict_reply() -> Reply {
    Ok(json_resp(
        409,
        json!({"statusCode": 409, "error": "Conflict", "message": "The user already exists."}),
    ))
}

/// Auth0's user search answers 503 when a query takes more than two seconds ("Search queries
/// time out (HTTP status code 503) if they're not completed in two seconds", User Search Best
/// Practices). The list tries the same query twice, not until its deadline: every try takes
/// one of the tenant's Management calls. Other calls keep their retries.
#[test]
fn a_user_search_that_times_out_is_tried_twice() {
    let svc = Svc::new(&[]);
    let timeout = || {
        Ok(json_resp(
            503,
            json!({"statusCode": 503, "error": "Service Unavailable"}),
        ))
    };
    svc.fake
        .script("GET /api/v2/users", (0..5).map(|_| timeout()).collect());
    let (h, body) = svc.run(get("/v1/invitees?status=pending"));
    assert_eq!(
        error_code(&h, &body),
        (502, "upstream_unavailable".into()),
        "{body}"
    );
    assert_eq!(svc.fake.count("GET /api/v2/users"), 2);

    // A look-up by id is no search: a 503 there is retried as before.
    svc.fake.script(
        "GET /api/v2/users/auth0%7Ca",
        vec![
            timeout(),
            timeout(),
            Ok(json_resp(200, user("auth0|a", "a@example.com", json!({})))),
        ],
    );
    let (h, body) = svc.run(get("/v1/invitees/auth0%7Ca"));
    assert_eq!(h.response.status, 200, "{body}");
    assert_eq!(svc.fake.count("GET /api/v2/users/auth0%7Ca"), 3);
}
