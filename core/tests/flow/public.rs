//! The public sign-up route and its pages: same answer for every address, CORS, Turnstile, limits.

use crate::support::*;

pub(crate) fn public_svc(extra: &[(&str, &str)]) -> Svc {
    let mut vars = vec![
        ("PUBLIC_ROLES", "beta-tester"),
        ("ALLOWED_ORIGINS", "https://www.example.com"),
    ];
    vars.extend_from_slice(extra);
    Svc::new(&vars)
}

pub(crate) fn public_req(body: &Value) -> HttpRequest {
    let mut r = HttpRequest::new("POST", "https://invites.example.com/v1/public/invites")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("cf-connecting-ip", "203.0.113.7");
    r.body = body.to_string().into_bytes();
    r
}

pub(crate) fn form_req(body: &str) -> HttpRequest {
    let mut r = HttpRequest::new("POST", "https://invites.example.com/v1/public/invites")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html,application/xhtml+xml")
        .header("origin", "https://invites.example.com");
    r.body = body.as_bytes().to_vec();
    r
}

#[test]
fn public_signups_get_the_same_answer_whether_or_not_the_account_exists() {
    let svc = public_svc(&[]);
    let (new_user, _) = svc.run(public_req(
        &json!({"email": "New@Example.com", "name": "New"}),
    ));
    assert_eq!(new_user.response.status, 202);
    // Accept, then process: the answer made no upstream call at all.
    assert!(svc.fake.sent.borrow().is_empty());
    assert_eq!(svc.fake.queue.borrow().len(), 1);
    svc.drain();
    let user = svc.fake.body_of("POST /api/v2/users");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["app_metadata"]["invite_source"], "public_form");
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles"),
        json!({"roles": ["rol_beta-tester"]})
    );
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);

    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(
            409,
            json!({"statusCode": 409, "message": "The user already exists."}),
        ))],
    );
    let calls = svc.fake.sent.borrow().len();
    let (existing, _) = svc.run(public_req(&json!({"email": "old@example.com"})));
    assert_eq!(existing.response.status, 202);
    assert_eq!(
        svc.fake.sent.borrow().len(),
        calls,
        "no upstream call before the answer"
    );
    svc.drain();
    assert_eq!(
        existing.response.body, new_user.response.body,
        "byte-identical"
    );
    assert_eq!(
        svc.fake.count("POST /dbconnections/change_password"),
        2,
        "the existing user gets a fresh link"
    );
    for h in [&new_user, &existing] {
        let text = String::from_utf8_lossy(&h.response.body);
        assert!(
            !text.contains("ticket") && !text.contains("created") && !text.contains("auth0|"),
            "{text}"
        );
    }
}

#[test]
fn public_signups_never_carry_a_ticket_url_even_with_resend() {
    let svc = public_svc(&[
        ("EMAIL_DELIVERY", "resend"),
        ("EMAIL_API_KEY", "re_k"),
        ("FROM_EMAIL", "a@acme.example"),
    ]);
    let (h, body) = svc.run(public_req(&json!({"email": "a@example.com"})));
    assert_eq!(h.response.status, 202, "{body}");
    svc.drain();
    assert!(!String::from_utf8_lossy(&h.response.body).contains("SECRETTICKET"));
    assert_eq!(svc.fake.count("POST /emails"), 1);
    // Nor does the stored status of a public invite.
    let ledger = format!("{:?}", svc.fake.ledger);
    assert!(!ledger.contains("SECRETTICKET"), "{ledger}");
}

#[test]
fn public_cooldown_honeypot_and_rate_limit() {
    let svc = public_svc(&[]);
    svc.run(public_req(&json!({"email": "a@example.com"})));
    let (h, _) = svc.run(public_req(&json!({"email": "A@example.com"})));
    assert_eq!(h.response.status, 202);
    assert_eq!(
        svc.fake.queue.borrow().len(),
        1,
        "within the cooldown nothing is queued"
    );
    svc.drain();
    let calls = svc.fake.sent.borrow().len();
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);

    let (h, _) = svc.run(public_req(
        &json!({"email": "bot@example.com", "website": "http://spam.example"}),
    ));
    assert_eq!(h.response.status, 202);
    assert_eq!(
        svc.fake.sent.borrow().len(),
        calls,
        "a filled honeypot creates nothing"
    );

    svc.fake.rate_limit.set(Some(2));
    let statuses: Vec<u16> = (0..3)
        .map(|i| {
            svc.run(public_req(&json!({"email": format!("r{i}@example.com")})))
                .0
                .response
                .status
        })
        .collect();
    assert_eq!(statuses, vec![202, 202, 429]);
    let (h, body) = svc.run(public_req(&json!({"email": "r9@example.com"})));
    assert_eq!(error_code(&h, &body), (429, "rate_limited".into()));
    assert_eq!(h.response.header_value("retry-after"), Some("60"));
}

#[test]
fn plain_form_posts_are_redirected_to_the_thank_you_page() {
    let svc = public_svc(&[]);
    let (h, _) = svc.run(form_req("email=form%40example.com&name=Form+User&website="));
    assert_eq!(h.response.status, 303);
    assert_eq!(h.response.header_value("location"), Some("/thanks"));
    svc.drain();
    assert_eq!(svc.fake.body_of("POST /api/v2/users")["name"], "Form User");
    let svc = public_svc(&[("THANK_YOU_URL", "https://www.example.com/thanks")]);
    let (h, _) = svc.run(form_req("email=form%40example.com"));
    assert_eq!(
        h.response.header_value("location"),
        Some("https://www.example.com/thanks")
    );
    let (h, _) = svc.run(form_req("email=not-an-email"));
    assert_eq!(h.response.status, 422);
    assert!(h
        .response
        .header_value("content-type")
        .unwrap()
        .starts_with("text/html"));
}

#[test]
fn turnstile_is_verified_server_side() {
    let svc = public_svc(&[
        (
            "TURNSTILE_SECRET_KEY",
            "2x0000000000000000000000000000000AA",
        ),
        ("TURNSTILE_BASE_URL", "https://ts.example"),
    ]);
    let (h, body) = svc.run(public_req(&json!({"email": "a@example.com"})));
    assert_eq!(
        error_code(&h, &body),
        (403, "captcha_failed".into()),
        "token required"
    );
    svc.fake.script(
        "POST /turnstile/v0/siteverify",
        vec![Ok(json_resp(
            200,
            json!({"success": false, "error-codes": ["invalid-input-response"]}),
        ))],
    );
    let (h, body) = svc.run(public_req(
        &json!({"email": "a@example.com", "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX"}),
    ));
    assert_eq!(error_code(&h, &body), (403, "captcha_failed".into()));
    let verify = svc.fake.body_of("POST /turnstile/v0/siteverify");
    assert_eq!(verify["response"], "XXXX.DUMMY.TOKEN.XXXX");
    assert_eq!(verify["remoteip"], "203.0.113.7");
    assert_eq!(verify["idempotency_key"].as_str().unwrap().len(), 36);
    assert_eq!(svc.fake.count("POST /api/v2/users"), 0);
    let (h, _) = svc.run(public_req(
        &json!({"email": "a@example.com", "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX"}),
    ));
    assert_eq!(h.response.status, 202);
    assert!(!h.log.contains("2x0000000000000000000000000000000AA"));
}

#[test]
fn cors_allowlist_and_preflight() {
    let svc = public_svc(&[]);
    let mut foreign = public_req(&json!({"email": "a@example.com"}));
    foreign
        .headers
        .push(("origin".into(), "https://evil.example".into()));
    let (h, body) = svc.run(foreign);
    assert_eq!(error_code(&h, &body), (403, "origin_not_allowed".into()));
    assert_eq!(h.response.header_value("vary"), Some("Origin"));
    assert_eq!(h.response.header_value("access-control-allow-origin"), None);

    let mut allowed = public_req(&json!({"email": "a@example.com"}));
    allowed
        .headers
        .push(("origin".into(), "https://www.example.com".into()));
    let (h, _) = svc.run(allowed);
    assert_eq!(h.response.status, 202);
    assert_eq!(
        h.response.header_value("access-control-allow-origin"),
        Some("https://www.example.com")
    );

    // `Origin: null` counts as our own page only when the browser says so.
    let mut null_origin = form_req("email=null%40example.com");
    null_origin.headers.retain(|(k, _)| k != "origin");
    null_origin.headers.push(("origin".into(), "null".into()));
    let (h, _) = svc.run(null_origin.clone());
    assert_eq!(h.response.status, 403);
    null_origin
        .headers
        .push(("sec-fetch-site".into(), "same-origin".into()));
    let (h, _) = svc.run(null_origin);
    assert_eq!(h.response.status, 303);

    let preflight = |origin: &str| {
        HttpRequest::new("OPTIONS", "https://invites.example.com/v1/public/invites")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let (h, _) = svc.run(preflight("https://www.example.com"));
    assert_eq!(h.response.status, 204);
    assert_eq!(
        h.response.header_value("access-control-allow-origin"),
        Some("https://www.example.com")
    );
    assert_eq!(
        h.response.header_value("access-control-allow-headers"),
        Some("content-type")
    );
    let (h, _) = svc.run(preflight("https://evil.example"));
    assert_eq!(h.response.status, 403);
    assert_eq!(h.response.header_value("access-control-allow-origin"), None);
}

#[test]
fn public_bad_input() {
    let svc = public_svc(&[]);
    let mut big = public_req(&json!({"email": "a@example.com", "name": "x".repeat(9000)}));
    let (h, body) = svc.run(big.clone());
    assert_eq!(error_code(&h, &body), (413, "payload_too_large".into()));
    big.body = b"email=a@example.com".to_vec();
    big.headers[0].1 = "text/plain".into();
    let (h, body) = svc.run(big);
    assert_eq!(
        error_code(&h, &body),
        (415, "unsupported_media_type".into())
    );
    let (h, body) = svc.run(public_req(&json!({"email": "nope"})));
    assert_eq!(error_code(&h, &body), (422, "invalid_email".into()));
    let (h, body) = svc.run(public_req(&json!({"name": "x"})));
    assert_eq!(error_code(&h, &body), (422, "missing_field".into()));
    assert!(svc.fake.sent.borrow().is_empty());
}

#[test]
fn landing_and_thank_you_pages() {
    let svc = public_svc(&[("PRODUCT_NAME", "Acme <Beta>")]);
    let (h, _) = svc.run(HttpRequest::new("GET", "https://invites.example.com/"));
    let html = String::from_utf8_lossy(&h.response.body).into_owned();
    assert_eq!(h.response.status, 200);
    assert!(
        html.contains("<form id=\"invite-form\" method=\"post\" action=\"/v1/public/invites\">")
    );
    assert!(html.contains("Join Acme &#60;Beta&#62;"));
    assert!(
        !html.contains("cf-turnstile\""),
        "no widget without a site key"
    );
    let svc = public_svc(&[("TURNSTILE_SITE_KEY", "1x00000000000000000000AA")]);
    let (h, _) = svc.run(HttpRequest::new("GET", "https://invites.example.com/"));
    assert!(String::from_utf8_lossy(&h.response.body)
        .contains("data-sitekey=\"1x00000000000000000000AA\""));
    let (h, _) = svc.run(HttpRequest::new(
        "GET",
        "https://invites.example.com/thanks",
    ));
    assert!(String::from_utf8_lossy(&h.response.body)
        .contains("Check your inbox for a link to set your password."));
}

/// Regression (finding 1): with `EMAIL_DELIVERY=resend`, an anonymous sign-up for an
/// existing address with a name holding `{{ticket_url}}` put the victim's live link inside the
/// attacker's URL. Now the public email greets neutrally and renders in one pass.
#[test]
fn an_anonymous_name_never_reaches_the_email() {
    let svc = public_svc(&[
        ("EMAIL_DELIVERY", "resend"),
        ("EMAIL_API_KEY", "re_test_key_0123456789"),
        ("FROM_EMAIL", "Acme <hello@acme.example>"),
    ]);
    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(
            409,
            json!({"statusCode": 409, "message": "The user already exists."}),
        ))],
    );
    svc.fake.existing_user_logged_in();
    let name =
        "Ada\r\n… unlock it here: https://evil.example/unlock?next={{ticket_url}} {{ expires_at }}";
    let (h, _) = svc.run(public_req(
        &json!({"email": "victim@example.com", "name": name}),
    ));
    svc.drain();
    assert_eq!(h.response.status, 202);
    let email = svc.fake.body_of("POST /emails");
    let (text, html) = (
        email["text"].as_str().unwrap(),
        email["html"].as_str().unwrap(),
    );
    assert!(
        !text.contains("evil.example") && !html.contains("evil.example"),
        "{text}"
    );
    assert!(text.contains("Hi there,"), "{text}");
    assert_eq!(text.matches("SECRETTICKET").count(), 1);
    assert_eq!(html.matches("SECRETTICKET").count(), 2);
    assert!(!text.contains("{{") && !html.contains("{{"));
}

/// Regression (finding 11): the public route gave `PUBLIC_ROLES` back to any existing
/// account, undoing an administrator's removal. Roles now change only on unaccepted invites;
/// the answer is the same bytes either way.
#[test]
fn public_signups_change_roles_only_on_unaccepted_invites() {
    let conflict = || {
        Ok(json_resp(
            409,
            json!({"statusCode": 409, "message": "The user already exists."}),
        ))
    };
    let svc = public_svc(&[]);
    svc.fake.script("POST /api/v2/users", vec![conflict()]);
    let (unaccepted, _) = svc.run(public_req(&json!({"email": "pending@example.com"})));
    svc.drain();
    assert_eq!(
        svc.fake.count("POST /api/v2/users/auth0%7Cexisting1/roles"),
        1
    );

    let svc = public_svc(&[]);
    svc.fake.existing_user_logged_in();
    svc.fake.script("POST /api/v2/users", vec![conflict()]);
    let (used, _) = svc.run(public_req(&json!({"email": "used@example.com"})));
    svc.drain();
    assert_eq!(
        svc.fake.count("POST /api/v2/users/auth0%7Cexisting1/roles"),
        0
    );
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);
    assert_eq!(
        (used.response.status, &used.response.body),
        (202, &unaccepted.response.body)
    );
}

/// Regression (finding 8): the limit was keyed on the whole IPv6 address, so ten addresses of
/// one /64 got ten answers under a 5-per-minute limit.
#[test]
fn ipv6_clients_are_limited_by_their_64() {
    let svc = public_svc(&[]);
    svc.fake.rate_limit.set(Some(5));
    let mut statuses = Vec::new();
    for i in 0..10 {
        let mut req = public_req(&json!({"email": format!("v6-{i}@example.com")}));
        req.headers.retain(|(k, _)| k != "cf-connecting-ip");
        req = req.header("cf-connecting-ip", format!("2001:db8:1:2:{i:x}::{i:x}"));
        statuses.push(svc.run(req).0.response.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
    // Another /64 has its own budget.
    let mut req = public_req(&json!({"email": "other64@example.com"}));
    req.headers.retain(|(k, _)| k != "cf-connecting-ip");
    let (h, _) = svc.run(req.header("cf-connecting-ip", "2001:db8:1:3::1"));
    assert_eq!(h.response.status, 202);
}

#[test]
fn failed_form_posts_get_pages_titled_for_the_problem() {
    let svc = public_svc(&[]);
    let (h, _) = svc.run(form_req("email=not-an-email"));
    let page = h.response.text();
    assert!(
        page.contains("<title>Please check your address</title>"),
        "{page}"
    );
    assert!(!page.contains("Check your inbox"), "{page}");
    svc.fake.rate_limit.set(Some(0));
    let (h, _) = svc.run(form_req("email=a%40example.com"));
    assert_eq!(h.response.status, 429);
    assert!(h
        .response
        .text()
        .contains("<title>Too many attempts</title>"));
}

#[test]
fn a_turnstile_outage_is_reported_as_turnstile() {
    let svc = public_svc(&[
        ("TURNSTILE_SECRET_KEY", "turnstile-secret"),
        ("UPSTREAM_DEADLINE_MS", "500"),
    ]);
    for _ in 0..20 {
        svc.fake.script(
            "POST /turnstile/v0/siteverify",
            vec![Ok(json_resp(503, json!({})))],
        );
    }
    let (h, body) = svc.run(public_req(
        &json!({"email": "a@example.com", "cf-turnstile-response": "tok"}),
    ));
    assert_eq!(error_code(&h, &body), (502, "upstream_unavailable".into()));
    assert_eq!(body["error"]["service"], "turnstile");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Turnstile"),
        "{body}"
    );
}
