//! Security properties a third review found broken (each test failed before its fix):
//! anonymous sign-ups can't book Auth0's rate away from API-key holders, no debug output
//! holds the Management token, and the example secrets the repository publishes are refused
//! against a real tenant.

use crate::public::{public_req, public_svc};
use crate::support::*;

/// Polls `fut` once with a waker that does nothing: as far as it gets without waiting.
fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    fut.poll(&mut cx)
}

/// Finding 1: anonymous sign-ups must not lock API-key holders out of Auth0. The consumer
/// admits an invite if its last Management call fits within 60 s, and runs a batch of
/// messages at once (`max_batch_size = 10`, `max_concurrency = 2`): ten queued public
/// sign-ups booked the tenant's pacer about ten seconds ahead on a free tenant (2 calls a
/// second), and every synchronous `POST /v1/invites` (which waits at most 8 s for its last
/// slot) was refused 503 `upstream_rate_limited` until they drained. A few sign-ups a minute
/// from a handful of addresses kept the trusted API down for good.
#[test]
fn queued_public_signups_do_not_lock_the_trusted_api_out_of_the_pacer() {
    let svc = public_svc(&[("AUTH0_MGMT_RPS", "2"), ("AUTH0_MGMT_BURST", "2")]);
    for i in 0..10 {
        let mut r = public_req(&json!({"email": format!("anon{i}@example.com")}));
        r.headers.retain(|(k, _)| k != "cf-connecting-ip");
        let (h, _) = svc.run(r);
        assert_eq!(h.response.status, 202);
    }
    // One consumer invocation takes the batch of ten and runs them at once, as the shell does.
    let batch = svc.fake.take_queued();
    assert_eq!(batch.len(), 10);
    let cfg = svc.cfg.as_ref().unwrap();
    let mut consumer = Box::pin(futures::future::join_all(
        batch.iter().map(|m| process(m, cfg, &svc.fake, &svc.cache)),
    ));
    // Each message is admitted (its slots booked) and then waits for its first slot.
    assert!(poll_once(consumer.as_mut()).is_pending());

    // Meanwhile the operator's backend invites someone, synchronously.
    let (h, body) = svc.invite(json!({"email": "vip@example.com"}));
    let outcome = (h.response.status, body["error"]["code"].clone());
    // The consumer finishes its batch (and the messages it deferred, if any).
    let settles = block_on(consumer);
    assert_eq!(
        outcome,
        (201, Value::Null),
        "a trusted invite was refused while anonymous sign-ups held the pacer: {}",
        h.log
    );
    // The sign-ups the pacer had no room for waited in the consumer, within its admission
    // budget, instead of going back to the queue (a queue send each time): all ten complete.
    for (settle, log) in &settles {
        assert_eq!(*settle, Settle::Ack, "{log}");
    }
    for msg in &batch {
        assert_eq!(svc.status(&msg.id)["status"], "completed", "{}", msg.id);
    }
    assert_eq!(svc.fake.count("POST /dbconnections/change_password"), 10);
}

/// Finding 3 (hardening): the house style's secret types print as `[redacted]`, but the cached
/// Management token (`CachedToken`, and the `KvOp::Put` that writes it to KV, which
/// `Handled.deferred` carries) derived `Debug` with the bearer token in clear: any `{:?}` of a
/// handler's result, a token cache state or a KV write (a debug log line, a test's failure
/// message, a panic payload) printed a live Management API token.
#[test]
fn debug_output_of_a_cold_invite_holds_no_token() {
    let svc = Svc::new(&[]);
    let handled = svc.serve(invite_req(&json!({"email": "cold@example.com"})));
    assert_eq!(handled.response.status, 201);
    assert!(
        !handled.deferred.is_empty(),
        "a cold invite writes its token to KV"
    );
    let printed = format!("{:?}", handled.deferred);
    assert!(
        !printed.contains("tok-1"),
        "token in Debug output: {printed}"
    );
    let token = invite_core::token::CachedToken::new("tok-secret".into(), 86_400, NOW, 300);
    assert!(!format!("{token:?}").contains("tok-secret"));
}

/// Finding 1 at slower rates: emailed invites could find the pacer booked up to a quarter
/// of a caller's wait ahead, and a synchronous invite booked behind one of them then missed
/// its own wait unless that wait held a quarter of itself and both invites' calls: at 1 call
/// a second under a 7.4 s deadline, at 0.5 a second under 12.9 s (the default is 10 s; a
/// tenant shared with other apps may get 0.5). Sign-ups trickling in kept such a tenant's
/// `POST /v1/invites` refused 503. The bound now leaves room for the synchronous invite's
/// calls too, and `/healthz` warns where even a sign-up run on an idle pacer leaves none: at
/// the warning's figure the trusted invite goes through while ten sign-ups wait, whether the
/// pacer was idle or already booked a quarter of the wait ahead when they came; 100 ms below
/// it the warning shows, and the invite behind a sign-up is refused.
#[test]
fn at_any_rate_sign_ups_leave_a_synchronous_invite_room_where_healthz_says_so() {
    for rps in ["2", "1", "0.5"] {
        let svc_with = |deadline: u64| {
            public_svc(&[
                ("AUTH0_MGMT_RPS", rps),
                ("AUTH0_MGMT_BURST", "2"),
                ("UPSTREAM_DEADLINE_MS", &deadline.to_string()),
            ])
        };
        let enough = invite_core::queue::deadline_too_short(svc_with(500).cfg.as_ref().unwrap())
            .expect("500 ms is short at any of these rates");
        for (deadline, booked_ahead, fits) in [
            (enough, false, true),
            (enough, true, true),
            (enough - 100, false, false),
        ] {
            let svc = svc_with(deadline);
            let case = format!("rps {rps}, deadline {deadline}, booked ahead {booked_ahead}");
            let (_, health) = svc.run(HttpRequest::new("GET", "/healthz"));
            let warned = health["warnings"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w.as_str().unwrap().starts_with("UPSTREAM_DEADLINE_MS"))
            });
            assert_eq!(warned, !fits, "{case}: {health}");
            // The token and the role id cached, then the pacer idle again.
            let (h, _) = svc.invite(json!({"email": "warm@example.com"}));
            assert_eq!(h.response.status, 201);
            svc.fake.now.set(svc.fake.now.get() + 60_000);
            let cfg = svc.cfg.as_ref().unwrap();
            if booked_ahead {
                // Other work holds the pacer: its next free slot a quarter of the wait ahead,
                // as far as emailed invites could once find it booked and still start.
                let slots = match block_on(svc.fake.gate(GateCall::Reserve {
                    calls: 20,
                    max_wait_ms: 600_000,
                    rate: cfg.mgmt_rate,
                    lease: false,
                    start_within_ms: None,
                })) {
                    Ok(GateReply::Reserved { slots, .. }) => slots,
                    other => panic!("{other:?}"),
                };
                let next_free = slots.last().unwrap() + cfg.mgmt_rate.interval_ms() as u64;
                let quarter = invite_core::auth0::caller_wait_ms(deadline) / 4;
                svc.fake.now.set(next_free - quarter);
            }
            for i in 0..10 {
                let mut r = public_req(&json!({"email": format!("anon{i}@example.com")}));
                r.headers.retain(|(k, _)| k != "cf-connecting-ip");
                assert_eq!(svc.run(r).0.response.status, 202);
            }
            let batch = svc.fake.take_queued();
            let mut consumer = Box::pin(futures::future::join_all(
                batch.iter().map(|m| process(m, cfg, &svc.fake, &svc.cache)),
            ));
            assert!(poll_once(consumer.as_mut()).is_pending());
            let (h, body) = svc.invite(json!({"email": "vip@example.com"}));
            let settles = block_on(consumer);
            let expected = if fits {
                (201, Value::Null)
            } else {
                (503, json!("upstream_rate_limited"))
            };
            assert_eq!(
                (h.response.status, body["error"]["code"].clone()),
                expected,
                "{case}: {}",
                h.log
            );
            for (settle, log) in &settles {
                assert_eq!(*settle, Settle::Ack, "{case}: {log}");
            }
        }
    }
}

/// The gate's side of finding 1: `start_within_ms` admits on an idle schedule (however many
/// calls the invite needs) and refuses, with how long until it would fit, one booked further
/// ahead; without it a reservation may still wait up to its `max_wait_ms`.
#[test]
fn a_reservation_may_be_bounded_by_how_far_ahead_the_schedule_is_booked() {
    let ledger = MemoryLedger::default();
    let rate = gate::Rate { rps: 2.0, burst: 2 };
    let reserve = |calls: u32, start_within_ms: Option<u64>| {
        gate::handle(
            GateCall::Reserve {
                calls,
                max_wait_ms: 60_000,
                rate,
                lease: false,
                start_within_ms,
            },
            NOW,
            &ledger,
        )
    };
    // Idle: admitted even when its own calls span longer than the bound.
    assert!(matches!(reserve(6, Some(0)), GateReply::Reserved { .. }));
    // Now booked about 3 s ahead: refused under a 1 s bound, with the wait left.
    match reserve(3, Some(1_000)) {
        GateReply::Busy { retry_after_ms } => {
            assert!(
                (1_000..=3_000).contains(&retry_after_ms),
                "{retry_after_ms}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Within a generous bound, or with none, it is booked as before.
    assert!(matches!(
        reserve(1, Some(10_000)),
        GateReply::Reserved { .. }
    ));
    assert!(matches!(reserve(1, None), GateReply::Reserved { .. }));
}

/// Finding 4: the secrets this repository publishes (README's curl lines and signing snippet,
/// `.dev.vars.example`, the Standard Webhooks spec's test vector) were valid configuration
/// against a real tenant: all pass the length checks. A deploy that carried them over (say,
/// `wrangler secret bulk` of a `.dev.vars` file) gave everyone the trusted API (links for
/// unaccepted invites, revokes) and forged payment webhooks, which grant roles to any existing
/// account. Such a configuration is now refused by name; the emulator (loopback) keeps them.
#[test]
fn published_example_secrets_are_refused_against_a_real_tenant() {
    for (var, value) in [
        ("INVITE_API_KEYS", "dev:dev-invite-key-change-me"),
        ("STRIPE_WEBHOOK_SECRETS", "whsec_dev_stripe_secret"),
        (
            "STANDARD_WEBHOOK_SECRETS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
    ] {
        let svc = Svc::new(&[(var, value)]);
        let (h, body) = svc.run(HttpRequest::new("GET", "/healthz"));
        assert_eq!(h.response.status, 503, "{var}: {body}");
        let problems = body["problems"].to_string();
        assert!(problems.contains(var), "{problems}");
        assert!(
            !problems.contains(value.trim_start_matches("dev:")),
            "{problems}"
        );
        let (h, body) = svc.run(
            HttpRequest::new("GET", "/v1/invitees")
                .header("authorization", "Bearer dev-invite-key-change-me"),
        );
        assert_eq!(error_code(&h, &body), (503, "config_invalid".into()));
        // Against the local emulator they are what they are for.
        let local = Svc::new(&[(var, value), ("AUTH0_BASE_URL", "http://127.0.0.1:8788")]);
        let (h, body) = local.run(HttpRequest::new("GET", "/healthz"));
        assert_eq!(h.response.status, 200, "{var}: {body}");
    }
}

/// Cloudflare's dummy Turnstile secrets pass (or fail) every token: against a real tenant
/// `/healthz` warns (still 200, like no secret at all: a development tenant may use them on
/// purpose); against the local emulator they are what they are for.
#[test]
fn turnstile_test_secrets_are_warned_about_against_a_real_tenant() {
    let secret = (
        "TURNSTILE_SECRET_KEY",
        "1x0000000000000000000000000000000AA",
    );
    let warned = |extra: &[(&str, &str)]| {
        let (h, body) = Svc::new(extra).run(HttpRequest::new("GET", "/healthz"));
        assert_eq!(h.response.status, 200, "{body}");
        body["warnings"]
            .to_string()
            .contains("one of Cloudflare's test secrets")
    };
    assert!(warned(&[secret]));
    assert!(!warned(&[
        secret,
        ("AUTH0_BASE_URL", "http://127.0.0.1:8788")
    ]));
    assert!(!warned(&[(
        "TURNSTILE_SECRET_KEY",
        "0x4AAAAAAAreal-secret-key"
    )]));
}

/// Nor does the debug output of the requests a cold invite sends, which carry the client
/// secret (the token request's body), the Management token (`Authorization`) and the API key
/// the invite came with.
#[test]
fn debug_output_of_requests_holds_no_secret() {
    let svc = Svc::new(&[]);
    let mut inbound = invite_req(&json!({"email": "cold@example.com"}));
    let (h, _) = svc.run(inbound.clone());
    assert_eq!(h.response.status, 201);
    inbound.body = b"{}".to_vec();
    let printed = format!("{inbound:?} {:?}", svc.fake.sent.borrow());
    for secret in [KEY, "client-secret-value", "tok-1"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(
        printed.contains("authorization"),
        "header names stay: {printed}"
    );
}

/// `STANDARD_WEBHOOK_SECRETS` takes a key with or without its `whsec_` prefix
/// (`webhook::standard_key`), so the published test secret without it is the same key, and
/// it was accepted against a real tenant: anyone could sign Standard Webhooks with it (found
/// in a review of the check).
#[test]
fn the_published_standard_secret_is_refused_without_its_prefix_too() {
    let svc = Svc::new(&[(
        "STANDARD_WEBHOOK_SECRETS",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )]);
    let (h, body) = svc.run(HttpRequest::new("GET", "/healthz"));
    assert_eq!(h.response.status, 503, "{body}");
    assert!(
        body["problems"].to_string().contains(
            "STANDARD_WEBHOOK_SECRETS holds the Standard Webhooks spec's published test secret"
        ),
        "{body}"
    );
}
