//! Version skew between the previous release (8824eb1) and this one: the gate protocol, the
//! queue message and the ledger records read by the other version. `old` holds the
//! 8824eb1 gate protocol exactly as it derived its serde (copied, doc comments dropped); the
//! stored types (`QueuedInvite`, `InviteRecord`, `Status`, `Kind`, `Rate`, `SlotLease`,
//! `StatusView`, `Pacer`) are unchanged since, so both versions share them.

use crate::support::*;
use crate::webhooks::{checkout, stripe_req, webhook_svc, RESEND};
use invite_core::gate::{Begin, InviteRecord, Kind, Ledger, Status, LEASE_MS};

#[allow(dead_code)]
mod old {
    use invite_core::gate::{QueuedInvite, Rate, SlotLease, StatusView};
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum GateCall {
        Reserve {
            calls: u32,
            max_wait_ms: u64,
            rate: Rate,
            #[serde(default)]
            lease: bool,
        },
        RateLimited {
            reset_ms: u64,
            limit: Option<u32>,
            rate: Rate,
        },
        Accept {
            invites: Vec<QueuedInvite>,
            batch_id: Option<String>,
            event: Option<String>,
            cooldown: Option<(String, u64)>,
        },
        Withdraw {
            ids: Vec<String>,
            event: Option<String>,
            cooldown: Option<String>,
        },
        Begin {
            id: String,
            message: Option<QueuedInvite>,
        },
        Complete {
            id: String,
            user_id: String,
            created: bool,
            ticket: Option<(String, String, u64)>,
        },
        Release {
            id: String,
            code: Option<String>,
        },
        Fail {
            id: String,
            code: Option<String>,
        },
        ClaimEmail {
            key: String,
            ttl_ms: u64,
            owner: String,
        },
        Remember {
            keys: Vec<String>,
            value: String,
            ttl_ms: u64,
            #[serde(default)]
            windows: Option<String>,
        },
        HoldWindows {
            key: String,
            ttl_ms: u64,
        },
        Recall {
            key: String,
        },
        ReleaseEmail {
            key: String,
            owner: String,
        },
        Status {
            id: String,
        },
        Batch {
            id: String,
        },
        Redrive {
            id: String,
        },
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Begin {
        Run { attempt: u32 },
        Settled,
        Held { retry_after_ms: u64 },
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum GateReply {
        Reserved {
            slots: Vec<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            lease: Option<SlotLease>,
        },
        Busy {
            retry_after_ms: u64,
        },
        Accepted,
        Duplicate {
            invite_id: Option<String>,
        },
        Cooldown,
        Begin(Begin),
        Done,
        Claimed {
            claimed: bool,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            retry_after_ms: Option<u64>,
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            revoked: bool,
        },
        Status {
            invite: Option<StatusView>,
        },
        Batch {
            invites: Option<Vec<StatusView>>,
        },
        Recalled {
            value: Option<String>,
        },
        Redrive {
            message: Option<QueuedInvite>,
        },
    }
}

/// A payment invite accepted by this version, and its queued message.
fn queued_payment(svc: &Svc, event: &str) -> QueuedInvite {
    let (h, body) = svc.run(stripe_req(&checkout(event, "ada@example.com"), NOW));
    assert_eq!(h.response.status, 200, "{body}");
    let (_, msg) = svc.fake.queue.borrow().back().cloned().expect("queued");
    msg
}

fn wire<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

/// Every call and reply one version writes, the other reads: new fields are optional, no
/// variant was added, none renamed.
#[test]
fn each_version_reads_the_others_calls_and_replies() {
    let svc = webhook_svc(&[]);
    let m = queued_payment(&svc, "evt_wire");
    let rate = invite_core::gate::Rate { rps: 2.0, burst: 2 };
    // New caller -> old gate: `start_within_ms` is ignored (the old gate books as before).
    let call = GateCall::Reserve {
        calls: 3,
        max_wait_ms: 60_000,
        rate,
        lease: true,
        start_within_ms: Some(2_000),
    };
    let read: old::GateCall = serde_json::from_str(&wire(&call)).unwrap();
    assert!(matches!(read, old::GateCall::Reserve { calls: 3, .. }));
    // Old caller -> new gate: no bound.
    let call = old::GateCall::Reserve {
        calls: 3,
        max_wait_ms: 60_000,
        rate,
        lease: true,
    };
    let read: GateCall = serde_json::from_str(&wire(&call)).unwrap();
    assert!(matches!(
        read,
        GateCall::Reserve {
            start_within_ms: None,
            ..
        }
    ));
    // New gate -> old caller: `requeue` and `waiting` are dropped, `Held` answers a `Fail`.
    for reply in [
        GateReply::Duplicate {
            invite_id: Some(m.id.clone()),
            requeue: Some(m.clone()),
        },
        GateReply::Begin(Begin::Held {
            retry_after_ms: 5_000,
        }),
        GateReply::Busy {
            retry_after_ms: 1_000,
        },
    ] {
        let read: Result<old::GateReply, _> = serde_json::from_str(&wire(&reply));
        assert!(read.is_ok(), "{}", wire(&reply));
    }
    let read: old::GateReply = serde_json::from_str(&wire(&GateReply::Duplicate {
        invite_id: Some(m.id.clone()),
        requeue: Some(m.clone()),
    }))
    .unwrap();
    assert_eq!(
        read,
        old::GateReply::Duplicate {
            invite_id: Some(m.id.clone())
        }
    );
    // Old gate -> new caller: the new fields take their defaults (the old behaviour).
    let read: GateReply = serde_json::from_str(&wire(&old::GateReply::Duplicate {
        invite_id: Some(m.id.clone()),
    }))
    .unwrap();
    assert!(matches!(read, GateReply::Duplicate { requeue: None, .. }));
    let read: GateReply = serde_json::from_str(&wire(&old::GateReply::Redrive {
        message: Some(m.clone()),
    }))
    .unwrap();
    assert!(matches!(
        read,
        GateReply::Redrive {
            message: Some(_),
            ..
        }
    ));
    // An unknown reply (a later version's) is an error, which every caller takes for an
    // unreachable gate, never for success.
    assert!(serde_json::from_str::<GateReply>(r#""withdrawn""#).is_err());
    assert!(serde_json::from_str::<GateReply>(r#"{"begin":{"paused":{}}}"#).is_err());
}

/// The old dead-letter consumer takes the new gate's `Held` answer to its `Fail` for "not
/// recorded": it retries (the DLQ's max_retries), it does not acknowledge.
#[test]
fn the_old_dead_letter_consumer_retries_a_held_fail() {
    let svc = webhook_svc(&[]);
    let m = queued_payment(&svc, "evt_held");
    let l = &svc.fake.ledger;
    let now = svc.fake.now.get();
    gate::handle(
        GateCall::Begin {
            id: m.id.clone(),
            message: None,
        },
        now,
        l,
    );
    let reply = gate::answer(
        &wire(&old::GateCall::Fail {
            id: m.id.clone(),
            code: None,
        }),
        now + 1_000,
        l,
    )
    .unwrap();
    let read: old::GateReply = serde_json::from_str(&reply).unwrap();
    // 8824eb1's mark_failed: `recorded = matches!(reply, Ok(Done))`, else Retry 30 s.
    assert!(matches!(
        read,
        old::GateReply::Begin(old::Begin::Held { .. })
    ));
    assert_ne!(read, old::GateReply::Done);
}

/// The previous release's retry route sends whatever `message` a Redrive carries, and when that
/// send fails marks the invite failed (`Fail` with `queue_unavailable`): it knows only the
/// failed invites a Redrive put back. This version's gate also answers a queued invite no
/// delivery has started with its message (`waiting`, a field the old route does not read):
/// on a failed send the old route fails an invite whose message is still queued, and that
/// message is then acknowledged as settled without running. A new meaning needs a new
/// field: the old route must see `message: None` there (its 409, as before).
#[test]
fn an_old_retry_route_never_sees_a_waiting_invites_message() {
    let svc = webhook_svc(&[]);
    let m = queued_payment(&svc, "evt_redrive");
    let l = &svc.fake.ledger;
    let now = svc.fake.now.get();
    let reply = gate::answer(&wire(&old::GateCall::Redrive { id: m.id.clone() }), now, l).unwrap();
    let read: old::GateReply = serde_json::from_str(&reply).unwrap();
    // What the old route then did (its queue send failed).
    if let old::GateReply::Redrive { message: Some(_) } = read {
        gate::answer(
            &wire(&old::GateCall::Fail {
                id: m.id.clone(),
                code: Some("queue_unavailable".into()),
            }),
            now,
            l,
        )
        .unwrap();
    }
    // The invite's own message, still in the queue, must still run.
    let begin = gate::handle(
        GateCall::Begin {
            id: m.id.clone(),
            message: Some(m.clone()),
        },
        now + 1_000,
        l,
    );
    assert_eq!(
        begin,
        GateReply::Begin(Begin::Run { attempt: 1 }),
        "old route read {reply}"
    );
    // This version's route still gets the waiting copy.
    let reply = gate::handle(GateCall::Redrive { id: m.id.clone() }, now + 2_000, l);
    assert!(matches!(reply, GateReply::Redrive { .. }), "{reply:?}");
}

/// A payment message the previous release queued carries the buyer's name as `greeting`
/// (8824eb1: `invite.name.clone()`, a stranger's text). This version stopped writing it
/// (ea3c625, from a security review) but its consumer still greets with whatever a message
/// carries: every such message consumed after the deploy, and every re-drive, duplicate
/// requeue or waiting retry of the ledger's copy for 7 days, puts the text at the top of a
/// genuine email.
#[test]
fn a_payment_message_from_the_previous_release_greets_no_one() {
    let svc = webhook_svc(&RESEND);
    let pitch = "Your refund is waiting: call +1 555 0100 or visit refunds.example";
    queued_payment(&svc, "evt_old_greeting");
    // As 8824eb1 queued it.
    svc.fake.queue.borrow_mut().back_mut().unwrap().1.greeting = Some(pitch.into());
    svc.drain();
    let sent = svc.fake.sent.borrow();
    let email = sent
        .iter()
        .find(|r| r.url == "https://email.example/emails")
        .expect("email sent");
    let msg: Value = serde_json::from_slice(&email.body).unwrap();
    let text = msg["text"].as_str().unwrap();
    assert!(!text.contains("refund"), "{text}");
    assert!(text.contains("Hi there,"), "{text}");
}

/// A record this version can't read (a later version's: a new `Status` or `Kind`, say, during
/// a rollback) is not "no record". Read as missing, `Begin` made a new record from the
/// message and ran it, overwriting the later version's (a completed invite ran again), and
/// `Fail`/`Complete` answered `done` having recorded nothing: the dead-letter consumer
/// acknowledged and the invite was lost with `recorded: true` in its log line. The call is
/// an error instead, which every caller retries within its bounds (and the Durable Object
/// rolls back).
#[test]
fn a_record_this_version_cannot_read_is_not_taken_for_a_missing_one() {
    let svc = webhook_svc(&[]);
    let m = queued_payment(&svc, "evt_unreadable");
    let l = &svc.fake.ledger;
    let now = svc.fake.now.get();
    let key = format!("inv:{}", m.id);
    let rec: InviteRecord = serde_json::from_str(&l.get(&key).unwrap()).unwrap();
    assert_eq!(rec.status, Status::Queued);
    assert_eq!(rec.message.kind, Kind::Stripe);
    // A later version wrote a status this one does not know.
    let later = l
        .get(&key)
        .unwrap()
        .replace(r#""status":"queued""#, r#""status":"cancelled""#);
    assert_ne!(later, l.get(&key).unwrap());
    l.put(&key, &later, None, now + 86_400_000);
    for call in [
        GateCall::Begin {
            id: m.id.clone(),
            message: Some(m.clone()),
        },
        GateCall::Fail {
            id: m.id.clone(),
            code: None,
        },
        GateCall::Complete {
            id: m.id.clone(),
            user_id: "auth0|1".into(),
            created: true,
            ticket: None,
        },
        GateCall::Release {
            id: m.id.clone(),
            code: None,
        },
        GateCall::Redrive { id: m.id.clone() },
        GateCall::Withdraw {
            ids: vec![m.id.clone()],
            event: None,
            cooldown: None,
        },
    ] {
        let out = gate::answer(&wire(&call), now + LEASE_MS, l);
        assert!(out.is_err(), "{} answered {out:?}", wire(&call));
        assert_eq!(
            l.get(&key).as_deref(),
            Some(later.as_str()),
            "{}",
            wire(&call)
        );
    }
    // A withdrawn invite's tombstone (an empty record) is not unreadable.
    l.put(&key, "", None, now + 86_400_000);
    let out = gate::answer(
        &wire(&GateCall::Begin {
            id: m.id.clone(),
            message: Some(m.clone()),
        }),
        now,
        l,
    );
    assert_eq!(out.as_deref(), Ok(r#"{"begin":"settled"}"#));
}

/// A message with a `Kind` this version does not know (a later version's) is retried, not
/// acknowledged; on the dead-letter queue its invite is marked failed by id.
#[test]
fn a_message_of_an_unknown_kind_is_retried_then_failed_by_id() {
    let svc = webhook_svc(&[]);
    let m = queued_payment(&svc, "evt_kind");
    let raw = wire(&m).replace(r#""kind":"stripe""#, r#""kind":"sms""#);
    let err = serde_json::from_str::<QueuedInvite>(&raw)
        .unwrap_err()
        .to_string();
    let (settle, _) = block_on(unreadable(Some(&raw), &err, false, &svc.fake));
    assert_eq!(settle, Settle::Retry { delay_sec: 60 });
    let (settle, line) = block_on(unreadable(Some(&raw), &err, true, &svc.fake));
    assert_eq!(settle, Settle::Ack, "{line}");
    assert_eq!(svc.status(&m.id)["status"], "failed");
}
