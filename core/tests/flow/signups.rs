//! Emailed invites and the public form, at their edges (each found in an audit, each failing
//! on the code before its fix): a link that must survive a run again, an email window that
//! must not swallow the next sign-up, and Turnstile's checks.

use crate::public::{form_req, public_req, public_svc};
use crate::support::*;

fn resend_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("EMAIL_DELIVERY", "resend"),
        ("EMAIL_API_KEY", "re_test_key_0123456789"),
        ("FROM_EMAIL", "Acme <hello@acme.example>"),
    ]
}

/// The public form over a Resend-like email API whose answers are lost for emails holding
/// `lost`, with `tickets` numbered tickets scripted.
fn resend_like_svc(tickets: u32, lost: &str) -> Svc {
    let mut vars = resend_vars();
    vars.push(("UPSTREAM_DEADLINE_MS", "2000"));
    let svc = public_svc(&vars);
    svc.fake.resend_like.set(true);
    svc.fake.script(
        "POST /api/v2/tickets/password-change",
        (1..=tickets).map(ticket).collect(),
    );
    *svc.fake.lose_email_answers_with.borrow_mut() = Some(lost.into());
    svc
}

fn ticket(n: u32) -> Reply {
    Ok(json_resp(
        201,
        json!({"ticket": format!("https://acme.eu.auth0.com/u/reset-password?ticket=SECRETTICKET-{n}#")}),
    ))
}

/// Auth0 keeps only an account's newest password-change ticket. The email provider took
/// the first run's email (ticket 1) but its answer was lost until the deadline, so the
/// message runs again and makes ticket 2, voiding ticket 1. Its email must go out: under the
/// invite's key alone (`public:{id}`, before the fix) Resend refused it as a repeat with
/// another payload (409 `invalid_idempotent_request`, nothing sent), the Worker read that as
/// "sent", and the inbox kept only the dead link.
#[test]
fn a_redelivered_emailed_invite_never_leaves_a_dead_link_in_the_inbox() {
    let svc = resend_like_svc(4, "SECRETTICKET-1#");

    let (h, _) = svc.run(public_req(&json!({"email": "ada@example.com"})));
    assert_eq!(h.response.status, 202);
    svc.drain();

    let made = svc.fake.count("POST /api/v2/tickets/password-change");
    assert!(made >= 2, "the message was run again: {made} tickets");
    // Only the newest ticket works.
    let live = format!("ticket=SECRETTICKET-{made}#");
    let inbox = svc.fake.inbox.borrow();
    let has_live = inbox
        .iter()
        .any(|e| e["text"].as_str().unwrap_or("").contains(&live));
    assert!(
        has_live,
        "the inbox ({} emails) holds no working link; newest is {live}; inbox: {:?}",
        inbox.len(),
        inbox
            .iter()
            .map(|e| e["text"]
                .as_str()
                .unwrap_or("")
                .lines()
                .nth(4)
                .unwrap_or(""))
            .collect::<Vec<_>>()
    );
}

/// The operator's re-drive of an invite whose emails went out but whose runs failed
/// (`POST /v1/invites/{id}/retry`): the new run's new ticket voids the emailed ones, so its
/// email must not be dropped as a repeat of the first.
#[test]
fn a_re_driven_invite_whose_first_email_went_out_gets_a_working_link() {
    // Every run's email is taken but never answered: the invite fails after its retries.
    let svc = resend_like_svc(8, "SECRETTICKET");
    let (h, _) = svc.run(public_req(&json!({"email": "ada@example.com"})));
    assert_eq!(h.response.status, 202);
    let id = svc.fake.queue.borrow()[0].1.id.clone();
    svc.drain();
    assert_eq!(svc.status(&id)["status"], "failed");

    // The network is fine again; the operator re-drives it.
    *svc.fake.lose_email_answers_with.borrow_mut() = None;
    let retry = HttpRequest::new("POST", format!("/v1/invites/{id}/retry"))
        .header("Authorization", format!("Bearer {KEY}"));
    let (h, body) = svc.run(retry);
    assert_eq!(h.response.status, 202, "{body}");
    svc.drain();
    assert_eq!(svc.status(&id)["status"], "completed");
    let made = svc.fake.count("POST /api/v2/tickets/password-change");
    let live = format!("ticket=SECRETTICKET-{made}#");
    let inbox = svc.fake.inbox.borrow();
    assert!(
        inbox
            .iter()
            .any(|e| e["text"].as_str().unwrap_or("").contains(&live)),
        "completed, but the inbox ({} emails) holds no working link (newest: {live})",
        inbox.len()
    );
}

/// The email API refuses the message (a bad `FROM_EMAIL` domain: 422) on every try; the
/// invite ends `failed`. The person's second try minutes later, inside the email window the
/// failed invite claimed, must still be queued and emailed: before, it was answered "Check
/// your inbox" with nothing queued or recorded.
#[test]
fn a_sign_up_after_a_failed_email_is_not_silently_dropped() {
    let svc = public_svc(&resend_vars());
    for _ in 0..8 {
        svc.fake.script(
            "POST /emails",
            vec![Ok(json_resp(
                422,
                json!({"statusCode": 422, "name": "validation_error", "message": "The acme.example domain is not verified."}),
            ))],
        );
    }
    let (h, _) = svc.run(public_req(&json!({"email": "ada@example.com"})));
    assert_eq!(h.response.status, 202);
    svc.drain();
    // The operator fixes the domain; the person tries again two minutes later.
    svc.fake.now.set(svc.fake.now.get() + 120_000);
    let emails_before = svc.fake.count("POST /emails");
    let (h, _) = svc.run(public_req(&json!({"email": "ada@example.com"})));
    assert_eq!(h.response.status, 202);
    svc.drain();
    assert!(
        svc.fake.count("POST /emails") > emails_before,
        "the second sign-up was answered 202 but no email was attempted (log: {})",
        h.log
    );
}

/// The queue send fails, and so does the gate's first `Withdraw` (the Durable Object
/// restarting on a deploy): the caller gets 503 "nothing was accepted, retrying is safe", and
/// its retry must be queued. Before, the one `Withdraw` left the address's window with an
/// invite never queued, and the retry was answered 202 with nothing queued.
#[test]
fn the_retry_a_503_invites_is_not_silently_dropped() {
    let svc = public_svc(&[]);
    svc.fake.queue_sends_left.set(Some(0));
    svc.fake.gate_fails_once.borrow_mut().push("withdraw");
    let (h, body) = svc.run(public_req(&json!({"email": "ada@example.com"})));
    assert_eq!(error_code(&h, &body), (503, "queue_unavailable".into()));
    svc.fake.queue_sends_left.set(None);
    let (h, _) = svc.run(public_req(&json!({"email": "ada@example.com"})));
    assert_eq!(h.response.status, 202);
    assert_eq!(
        svc.fake.queue.borrow().len(),
        1,
        "the retry of a 503 was answered 202 with nothing queued (log: {})",
        h.log
    );
}

/// Cloudflare's server-side validation guide checks the answer's `hostname` against what
/// it expects: with `TURNSTILE_HOSTNAMES` set, a token solved on another site is refused.
#[test]
fn a_token_solved_on_another_hostname_is_refused() {
    let svc = public_svc(&[
        ("TURNSTILE_SECRET_KEY", "turnstile-secret-0123456789"),
        (
            "TURNSTILE_HOSTNAMES",
            "www.example.com, Invites.Example.com",
        ),
    ]);
    let verified = |host: &str| {
        Ok(json_resp(
            200,
            json!({"success": true, "error-codes": [], "hostname": host,
                   "action": "", "challenge_ts": "2026-11-26T21:39:00.000Z"}),
        ))
    };
    svc.fake.script(
        "POST /turnstile/v0/siteverify",
        vec![verified("evil.example"), verified("invites.example.com")],
    );
    let sign_up = || {
        svc.run(public_req(
            &json!({"email": "ada@example.com", "cf-turnstile-response": "tok"}),
        ))
    };
    let (h, body) = sign_up();
    assert_eq!(
        error_code(&h, &body),
        (403, "captcha_failed".into()),
        "a token for evil.example was accepted"
    );
    assert!(h.log.contains("not in TURNSTILE_HOSTNAMES"), "{}", h.log);
    let (h, _) = sign_up();
    assert_eq!(h.response.status, 202, "a listed hostname, in any case");

    let bad = Svc::new(&[("TURNSTILE_HOSTNAMES", "https://www.example.com")]);
    let problems = bad.cfg.unwrap_err().problems;
    assert!(
        problems.iter().any(|p| p.contains("TURNSTILE_HOSTNAMES")),
        "{problems:?}"
    );
}

/// Turnstile tokens are at most 2048 characters (Cloudflare's docs): a longer one can't be
/// valid and costs no siteverify call (before: a round trip, up to 8 KiB forwarded).
#[test]
fn an_overlong_turnstile_token_is_refused_without_a_siteverify_call() {
    let svc = public_svc(&[("TURNSTILE_SECRET_KEY", "turnstile-secret-0123456789")]);
    let (h, body) = svc.run(public_req(
        &json!({"email": "ada@example.com", "cf-turnstile-response": "x".repeat(5000)}),
    ));
    assert_eq!(error_code(&h, &body), (403, "captcha_failed".into()));
    assert_eq!(
        svc.fake.count("POST /turnstile/v0/siteverify"),
        0,
        "a 5000-character token was sent to siteverify"
    );
}

/// docs/API.md: "429 `rate_limited` (with `Retry-After`)", for a plain HTML form post too
/// (its page had none).
#[test]
fn a_rate_limited_form_post_still_says_when_to_retry() {
    let svc = public_svc(&[]);
    svc.fake.rate_limit.set(Some(0));
    let (h, _) = svc.run(form_req("email=a%40example.com"));
    assert_eq!(h.response.status, 429);
    assert_eq!(h.response.header_value("retry-after"), Some("60"));
}

/// siteverify refusing a token says why in `error-codes` (`invalid-input-secret`: the
/// operator's key is wrong and every sign-up fails), and the log line says it too (it said
/// only "siteverify refused: HTTP 200").
#[test]
fn a_siteverify_refusal_logs_its_error_codes() {
    let svc = public_svc(&[("TURNSTILE_SECRET_KEY", "turnstile-secret-0123456789")]);
    svc.fake.script(
        "POST /turnstile/v0/siteverify",
        vec![Ok(json_resp(
            200,
            json!({"success": false, "error-codes": ["invalid-input-secret"]}),
        ))],
    );
    let (h, body) = svc.run(public_req(
        &json!({"email": "ada@example.com", "cf-turnstile-response": "tok"}),
    ));
    assert_eq!(error_code(&h, &body), (403, "captcha_failed".into()));
    assert!(h.log.contains("invalid-input-secret"), "{}", h.log);
}

/// Resend answers `409 concurrent_idempotent_requests` while a request with the same key
/// is still in progress ("it is safe to retry this request later"), and nothing says that one
/// will succeed: the email is tried again. (Every 409 was read as "sent": the invite was
/// recorded `completed` with no email confirmed.)
#[test]
fn a_concurrent_idempotent_request_409_is_not_taken_for_a_sent_email() {
    let svc = public_svc(&resend_vars());
    svc.fake.script(
        "POST /emails",
        vec![
            Err(TransportError("no answer within 5000 ms".into())),
            Ok(json_resp(
                409,
                json!({"statusCode": 409, "name": "concurrent_idempotent_requests",
                       "message": "Same idempotency key used while original request is still in progress."}),
            )),
        ],
    );
    let (h, _) = svc.run(public_req(&json!({"email": "ada@example.com"})));
    assert_eq!(h.response.status, 202);
    svc.drain();
    assert!(
        svc.fake.count("POST /emails") >= 3,
        "after 409 concurrent_idempotent_requests the email was never tried again ({} tries)",
        svc.fake.count("POST /emails")
    );
}

/// Media types are case-insensitive: a form post whose content type is written in capitals
/// still gets the HTML page, not JSON (found by fuzzing).
#[test]
fn a_form_post_in_capitals_still_gets_html() {
    let svc = public_svc(&[]);
    let mut req = form_req("email=not-an-address");
    req.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    let req = req.header("Content-Type", "Application/X-WWW-Form-Urlencoded");
    let (h, _) = svc.run(req);
    assert_eq!(h.response.status, 422);
    assert!(
        h.response
            .header_value("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        h.response.headers
    );
}

/// Resend's `409 concurrent_idempotent_requests` says a send under this key (this link) is
/// still in progress, and it will most likely go out: the same request is tried again (same
/// key, same link), not the invite. Failing the run on it (the first fix) ran the invite
/// again, whose new ticket voided the link of the send in progress (found in a review).
#[test]
fn a_concurrent_idempotent_409_retries_the_same_link_not_a_new_ticket() {
    let svc = public_svc(&resend_vars());
    svc.fake.script(
        "POST /api/v2/tickets/password-change",
        (1..=4).map(ticket).collect(),
    );
    svc.fake.script(
        "POST /emails",
        vec![
            // Resend took the request; the answer did not come back in time.
            Err(TransportError("no answer within 5000 ms".into())),
            // The Worker's retry, same key: the first is still being sent.
            Ok(json_resp(
                409,
                json!({"statusCode": 409, "name": "concurrent_idempotent_requests",
                       "message": "Same idempotency key used while original request is still in progress."}),
            )),
        ],
    );
    let (h, _) = svc.run(public_req(&json!({"email": "ada@example.com"})));
    assert_eq!(h.response.status, 202);
    svc.drain();
    let keys: Vec<String> = svc
        .fake
        .sent
        .borrow()
        .iter()
        .filter(|r| path_of(&r.url) == "/emails")
        .map(|r| r.header_value("idempotency-key").unwrap_or("").to_string())
        .collect();
    let tickets = svc.fake.count("POST /api/v2/tickets/password-change");
    let mut distinct = keys.clone();
    distinct.dedup();
    assert!(
        tickets == 1 && distinct.len() == 1,
        "the in-progress send of link 1 is followed by {} more ticket(s) and email keys {keys:?}: \
         the person gets a dead link and a live one",
        tickets - 1
    );
}

/// Resend (and the emulator) refuse an `Idempotency-Key` over 256 characters (400
/// `invalid_idempotency_key`). The per-link key adds 17 characters to the invite's key
/// (`webhook:standard:{webhook-id}`), whose length the sender decides: a long base is hashed,
/// or the paid invite would end `failed` (found in a review).
#[test]
fn the_per_link_idempotency_key_stays_within_resends_256_characters() {
    let svc = crate::webhooks::webhook_svc(&resend_vars());
    let id = format!("msg_{}", "x".repeat(226)); // 230 characters
    let msg = json!({"type": "invite.requested", "data": {"email": "lin@example.com"}});
    let (h, body) = svc.run(crate::webhooks::standard_req(&id, NOW / 1000, &msg));
    assert_eq!(h.response.status, 200, "{body}");
    svc.drain();
    let sent = svc.fake.sent.borrow();
    let key = sent
        .iter()
        .find(|r| path_of(&r.url) == "/emails")
        .and_then(|r| r.header_value("idempotency-key"))
        .unwrap_or("")
        .to_string();
    assert!(
        key.len() <= 256,
        "Idempotency-Key of {} characters: Resend answers 400 invalid_idempotency_key",
        key.len()
    );
}
