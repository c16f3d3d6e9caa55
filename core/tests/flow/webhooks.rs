//! The payment webhook routes: Stripe and Standard Webhooks, exactly once per event, email delivery.

use crate::support::*;

pub(crate) const WHSEC: &str = "whsec_stripe_test_secret";
pub(crate) const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub(crate) fn webhook_svc(extra: &[(&str, &str)]) -> Svc {
    let mut vars = vec![
        (
            "STRIPE_WEBHOOK_SECRETS",
            "whsec_old_rotated_out_0000,whsec_stripe_test_secret",
        ),
        ("STANDARD_WEBHOOK_SECRETS", STD_SECRET),
        ("PAYMENT_ROLES", "beta-tester"),
        (
            "STRIPE_ROLE_MAP",
            "price_early:early-access,prod_beta:beta-tester|early-access",
        ),
    ];
    vars.extend_from_slice(extra);
    Svc::new(&vars)
}

pub(crate) fn stripe_req(event: &Value, signed_at_ms: u64) -> HttpRequest {
    let body = event.to_string().into_bytes();
    let mut r = HttpRequest::new("POST", "/v1/webhooks/stripe")
        .header(
            "Stripe-Signature",
            sign_for_test::stripe(&body, WHSEC, signed_at_ms / 1000),
        )
        .header("Content-Type", "application/json");
    r.body = body;
    r
}

pub(crate) fn checkout(id: &str, email: &str) -> Value {
    json!({"id": id, "object": "event", "type": "checkout.session.completed",
           "data": {"object": {"object": "checkout.session", "payment_status": "paid",
                               "customer_details": {"email": email, "name": "Ada Lovelace"},
                               "metadata": {"invite_roles": "early-access,admin"}}}})
}

pub(crate) fn status_of(body: &Value) -> &str {
    body["status"].as_str().unwrap_or("")
}

#[test]
fn stripe_checkout_creates_the_user_and_auth0_emails_the_link() {
    let svc = webhook_svc(&[]);
    let (h, body) = svc.run(stripe_req(&checkout("evt_1", "Ada@Example.com"), NOW));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    assert!(!String::from_utf8_lossy(&h.response.body).contains("ticket"));
    let user = svc.fake.body_of("POST /api/v2/users");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["app_metadata"]["invited_by"], "stripe");
    assert_eq!(user["app_metadata"]["invite_event"], "evt_1");
    // "admin" is not allowed and is dropped.
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles"),
        json!({"roles": ["rol_early-access"]})
    );
    assert_eq!(
        svc.fake.body_of("POST /dbconnections/change_password"),
        json!({"client_id": "client-1", "email": "ada@example.com", "connection": "Username-Password-Authentication"})
    );
    assert_eq!(
        svc.fake.count("POST /api/v2/tickets/password-change"),
        0,
        "Auth0 sends its own link"
    );

    let calls = svc.fake.sent.borrow().len();
    for _ in 0..4 {
        let (h, body) = svc.run(stripe_req(&checkout("evt_1", "Ada@Example.com"), NOW));
        assert_eq!((h.response.status, status_of(&body)), (200, "duplicate"));
    }
    assert_eq!(
        svc.fake.sent.borrow().len(),
        calls,
        "a done event makes zero calls"
    );
}

#[test]
fn stripe_signature_failures_make_no_upstream_call() {
    let svc = webhook_svc(&[]);
    let event = checkout("evt_2", "a@example.com");
    let stale = stripe_req(&event, NOW - 301_000);
    let mut tampered = stripe_req(&event, NOW);
    tampered.body = checkout("evt_2", "evil@example.com")
        .to_string()
        .into_bytes();
    let mut unknown = stripe_req(&event, NOW);
    let body = unknown.body.clone();
    unknown.headers[0].1 = sign_for_test::stripe(&body, "whsec_unknown", NOW / 1000);
    let mut missing = stripe_req(&event, NOW);
    missing.headers.remove(0);
    for req in [stale, tampered, unknown, missing] {
        let (h, body) = svc.run(req);
        assert_eq!(error_code(&h, &body), (400, "invalid_signature".into()));
        assert_eq!(
            body["error"]["message"],
            "webhook signature verification failed"
        );
    }
    assert!(svc.fake.sent.borrow().is_empty());
}

#[test]
fn stripe_events_we_do_not_act_on() {
    let svc = webhook_svc(&[]);
    let other = json!({"id": "evt_3", "type": "customer.created", "data": {"object": {}}});
    let (_, body) = svc.run(stripe_req(&other, NOW));
    assert_eq!(body, json!({"status": "ignored"}));
    let mut unpaid = checkout("evt_4", "a@example.com");
    unpaid["data"]["object"]["payment_status"] = json!("unpaid");
    assert_eq!(
        svc.run(stripe_req(&unpaid, NOW)).1,
        json!({"status": "ignored"})
    );
    let renewal = json!({"id": "evt_5", "type": "invoice.paid", "data": {"object": {"billing_reason": "subscription_cycle", "customer_email": "a@example.com"}}});
    assert_eq!(
        svc.run(stripe_req(&renewal, NOW)).1,
        json!({"status": "ignored"})
    );
    let mut no_email = checkout("evt_6", "x");
    no_email["data"]["object"]["customer_details"] = json!({});
    let (h, body) = svc.run(stripe_req(&no_email, NOW));
    assert_eq!((h.response.status, status_of(&body)), (200, "skipped"));
    assert!(svc.fake.sent.borrow().is_empty());
}

#[test]
fn stripe_invoice_roles_come_from_the_price_map() {
    let svc = webhook_svc(&[]);
    let invoice = json!({"id": "evt_7", "type": "invoice.paid", "data": {"object": {
        "billing_reason": "subscription_create", "customer_email": "grace@example.com", "customer_name": "Grace Hopper",
        "lines": {"data": [{"price": {"id": "price_other", "product": "prod_beta"}}, {"pricing": {"price_details": {"price": "price_early", "product": "prod_x"}}}]}}}});
    let (h, body) = svc.run(stripe_req(&invoice, NOW));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body} {}",
        h.log
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users")["name"],
        "Grace Hopper"
    );
    let roles = svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles");
    assert_eq!(
        roles,
        json!({"roles": ["rol_beta-tester", "rol_early-access"]})
    );
}

#[test]
fn retryable_failures_answer_5xx_and_leave_the_event_unmarked() {
    let svc = webhook_svc(&[("UPSTREAM_DEADLINE_MS", "1000")]);
    svc.fake.script(
        "POST /api/v2/users",
        (0..20).map(|_| Ok(json_resp(503, json!({})))).collect(),
    );
    let (h, body) = svc.run(stripe_req(&checkout("evt_8", "down@example.com"), NOW));
    assert_eq!(error_code(&h, &body), (502, "upstream_unavailable".into()));
    assert!(
        !svc.fake.kv.borrow().keys().any(|k| k.contains("evt_8")),
        "not marked"
    );
    svc.fake.script.borrow_mut().clear();
    let (h, body) = svc.run(stripe_req(
        &checkout("evt_8", "down@example.com"),
        svc.fake.now.get(),
    ));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);
}

#[test]
fn permanent_failures_answer_200_and_are_not_retried() {
    let svc = webhook_svc(&[]);
    let refusal = || {
        Ok(json_resp(
            400,
            json!({"statusCode": 400, "message": "Payload validation error"}),
        ))
    };
    // Refused with the name, and again without it: this invite can never succeed.
    svc.fake
        .script("POST /api/v2/users", vec![refusal(), refusal()]);
    let (h, body) = svc.run(stripe_req(&checkout("evt_9", "bad@example.com"), NOW));
    assert_eq!(
        (h.response.status, body),
        (
            200,
            json!({"status": "failed", "reason": "invite_rejected"})
        )
    );
    let (_, body) = svc.run(stripe_req(&checkout("evt_9", "bad@example.com"), NOW));
    assert_eq!(body, json!({"status": "duplicate"}));
}

#[test]
fn resend_delivery_emails_the_ticket_with_the_template() {
    let svc = webhook_svc(&[
        ("EMAIL_DELIVERY", "resend"),
        ("EMAIL_API_KEY", "re_test_key"),
        ("FROM_EMAIL", "Acme <hello@acme.example>"),
        ("PRODUCT_NAME", "Acme Beta"),
        ("EMAIL_API_BASE_URL", "https://email.example"),
    ]);
    let (h, body) = svc.run(stripe_req(&checkout("evt_10", "ada@example.com"), NOW));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    assert!(!h.log.contains("re_test_key"));
    let sent = svc.fake.sent.borrow();
    let email = sent
        .iter()
        .find(|r| r.url == "https://email.example/emails")
        .expect("email sent");
    assert_eq!(
        email.header_value("authorization"),
        Some("Bearer re_test_key")
    );
    assert_eq!(
        email.header_value("idempotency-key"),
        Some("webhook:v1:stripe:evt_10")
    );
    let msg: Value = serde_json::from_slice(&email.body).unwrap();
    assert_eq!(msg["to"], json!(["ada@example.com"]));
    assert_eq!(msg["from"], "Acme <hello@acme.example>");
    assert_eq!(msg["subject"], "Your Acme Beta account is ready");
    assert!(msg["html"]
        .as_str()
        .unwrap()
        .contains("ticket=SECRETTICKET#"));
    assert!(msg["text"].as_str().unwrap().contains("Hi Ada Lovelace,"));
    drop(sent);
    assert_eq!(svc.fake.count("POST /api/v2/tickets/password-change"), 1);
}

#[test]
fn one_email_per_address_within_the_cooldown() {
    let svc = webhook_svc(&[]);
    svc.run(stripe_req(&checkout("evt_11", "ada@example.com"), NOW));
    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(409, json!({"statusCode": 409})))],
    );
    let (_, body) = svc.run(stripe_req(&checkout("evt_12", "ada@example.com"), NOW));
    assert_eq!(body["email"], "cooldown", "{body}");
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);
}

pub(crate) fn standard_req(id: &str, ts: u64, msg: &Value) -> HttpRequest {
    let body = msg.to_string().into_bytes();
    let mut r = HttpRequest::new("POST", "/v1/webhooks/standard")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            sign_for_test::standard(id, ts, &body, STD_SECRET),
        )
        .header("content-type", "application/json");
    r.body = body;
    r
}

#[test]
fn standard_webhooks_invite_requested() {
    let svc = webhook_svc(&[]);
    let msg = json!({"type": "invite.requested", "data": {"email": "Lin@Example.com", "name": "Lin", "roles": ["early-access", "root"]}});
    let (h, body) = svc.run(standard_req("msg_1", NOW / 1000, &msg));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users")["app_metadata"]["invite_source"],
        "standard"
    );
    assert_eq!(
        svc.fake.body_of("POST /api/v2/users/auth0%7Cabc123/roles"),
        json!({"roles": ["rol_early-access"]})
    );
    assert_eq!(
        svc.run(standard_req("msg_1", NOW / 1000, &msg)).1,
        json!({"status": "duplicate"})
    );
    let other = json!({"type": "user.deleted", "data": {}});
    assert_eq!(
        svc.run(standard_req("msg_2", NOW / 1000, &other)).1,
        json!({"status": "ignored"})
    );
    let (h, body) = svc.run(standard_req("msg_3", NOW / 1000 - 400, &msg));
    assert_eq!(error_code(&h, &body), (400, "invalid_signature".into()));
}

#[test]
fn webhooks_without_secrets_are_off() {
    let svc = Svc::new(&[]);
    let (h, body) = svc.run(stripe_req(&checkout("evt_1", "a@example.com"), NOW));
    assert_eq!(
        error_code(&h, &body),
        (404, "webhook_not_configured".into())
    );
}

/// Regression (finding 9): a 301-character buyer name made Auth0 refuse the invite, the event
/// was marked done, and the paying customer never got an account.
#[test]
fn buyer_names_are_cleaned_and_a_refused_name_does_not_lose_the_invite() {
    let svc = webhook_svc(&[]);
    let mut event = checkout("evt_long", "buyer@example.com");
    let long = format!("  Ada\r\nBcc: x@evil.example {}  ", "L".repeat(400));
    event["data"]["object"]["customer_details"]["name"] = json!(long);
    let (h, body) = svc.run(stripe_req(&event, NOW));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    let sent = svc.fake.body_of("POST /api/v2/users");
    let name = sent["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 300);
    assert!(name.starts_with("Ada Bcc: x@evil.example LLL"), "{name}");

    // Auth0 refuses the (clean) name for a reason of its own: retried without it, and the
    // customer still gets the account and the email.
    let svc = webhook_svc(&[]);
    svc.fake.script(
        "POST /api/v2/users",
        vec![Ok(json_resp(
            400,
            json!({"statusCode": 400, "message": "Payload validation error: name"}),
        ))],
    );
    let (h, body) = svc.run(stripe_req(&checkout("evt_name", "c@example.com"), NOW));
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );
    let creates: Vec<Value> = svc
        .fake
        .sent
        .borrow()
        .iter()
        .filter(|r| r.url.ends_with("/api/v2/users"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0]["name"], "Ada Lovelace");
    assert!(creates[1].get("name").is_none());
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 1);
    assert!(h.log.contains("invited without it"), "{}", h.log);
}

/// A role the operator has not created yet is fixable within Stripe's retry window: the
/// event stays retryable (5xx, unmarked) instead of being marked done.
#[test]
fn a_missing_role_keeps_the_event_retryable() {
    let svc = webhook_svc(&[]);
    svc.fake
        .script("GET /api/v2/roles", vec![Ok(json_resp(200, json!([])))]);
    let (h, body) = svc.run(stripe_req(&checkout("evt_role", "r@example.com"), NOW));
    assert_eq!(error_code(&h, &body), (422, "role_not_found".into()));
    assert!(svc.fake.kv.borrow().keys().all(|k| !k.contains("evt_role")));
    let (_, body) = svc.run(stripe_req(&checkout("evt_role", "r@example.com"), NOW));
    assert_eq!(status_of(&body), "processed", "{body}");
}

/// Svix delivers Standard Webhooks with `svix-*` header names (same scheme). Signed here as
/// Svix documents it: HMAC-SHA256 over `{svix_id}.{svix_timestamp}.{body}` with the base64
/// part of the `whsec_` secret, sent as `v1,<base64>`; and the spec's own test vector.
#[test]
fn svix_header_names_are_accepted() {
    let svc = webhook_svc(&[]);
    let msg = json!({"type": "invite.requested", "data": {"email": "svix@example.com"}});
    let body = msg.to_string().into_bytes();
    let ts = NOW / 1000;
    let mut r = HttpRequest::new("POST", "/v1/webhooks/standard")
        .header("svix-id", "msg_svix_1")
        .header("svix-timestamp", ts.to_string())
        .header(
            "svix-signature",
            sign_for_test::standard("msg_svix_1", ts, &body, STD_SECRET),
        )
        .header("content-type", "application/json");
    r.body = body;
    let (h, body) = svc.run(r);
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "processed"),
        "{body}"
    );

    // The Standard Webhooks spec vector, under Svix's header names.
    let mut svc = webhook_svc(&[]);
    svc.fake.now.set(1_614_265_330_000);
    svc.cache = Rc::new(IsolateCache::default());
    let mut r = HttpRequest::new("POST", "/v1/webhooks/standard")
        .header("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
        .header("svix-timestamp", "1614265330")
        .header(
            "svix-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
    r.body = br#"{"test": 2432232314}"#.to_vec();
    let (h, body) = svc.run(r);
    assert_eq!(
        (h.response.status, status_of(&body)),
        (200, "ignored"),
        "{body}"
    );
}

/// Errors name the service that failed: a bad `EMAIL_API_KEY` used to reach callers as
/// "Auth0 refused the Management API token".
#[test]
fn a_refused_email_api_key_is_reported_as_the_email_api() {
    let svc = webhook_svc(&[
        ("EMAIL_DELIVERY", "resend"),
        ("EMAIL_API_KEY", "re_bad_key_0123456789"),
        ("FROM_EMAIL", "Acme <hello@acme.example>"),
    ]);
    svc.fake.script(
        "POST /emails",
        vec![Ok(json_resp(
            401,
            json!({"name": "validation_error", "message": "API key is invalid"}),
        ))],
    );
    let (h, body) = svc.run(stripe_req(&checkout("evt_key", "k@example.com"), NOW));
    assert_eq!(error_code(&h, &body), (502, "email_auth".into()), "{body}");
    assert_eq!(body["error"]["service"], "email_api");
    assert!(!body["error"]["message"].as_str().unwrap().contains("Auth0"));
    // Not marked done: fixing the key lets the next delivery complete it.
    assert!(svc.fake.kv.borrow().keys().all(|k| !k.contains("evt_key")));
}
