// End to end: signed payment webhooks against the built Worker in workerd and the emulator.
// A verified new event is accepted (recorded in the gate, put on the invite queue) and
// answered at once; the queue consumer does the Auth0 work and the email shortly after, so
// each test follows the invite's status (GET /v1/invites/{id}) before checking the emulator.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import {
  startEmulator, startWorker, stripeSignature, standardHeaders, eventually, API_KEY, STRIPE_SECRET,
} from "./harness.mjs";

let emu;
let worker;
const WEBHOOKS = {
  STRIPE_WEBHOOK_SECRETS: `whsec_retired_secret_0000,${STRIPE_SECRET}`,
  STANDARD_WEBHOOK_SECRETS: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  PAYMENT_ROLES: "beta-tester",
};
/** How long the queue consumer gets to settle a healthy invite. */
const PROCESSED_MS = 15_000;
/**
 * How long a failing invite takes to reach the dead-letter queue: the consumer's attempts
 * (each retrying the failing call within its own budget), the queue's retries after 2, 4 and
 * 8 s, then the dead-letter consumer.
 */
const DEAD_LETTER_MS = 60_000;

before(async () => {
  emu = await startEmulator();
  worker = await startWorker(emu.url, WEBHOOKS);
});
after(async () => {
  await worker?.stop();
  await emu?.stop();
});
beforeEach(async () => {
  await emu.config({ fail_rate: 0, fail_next: 0, storm_429_ms: 0 });
});

const checkout = (id, email, roles = "early-access") => JSON.stringify({
  id, object: "event", type: "checkout.session.completed",
  data: { object: { object: "checkout.session", payment_status: "paid",
    customer_details: { email, name: "Ada Lovelace" }, metadata: { invite_roles: roles } } },
});

const deliver = (w, body, signature = stripeSignature(body)) => w.fetch("/v1/webhooks/stripe", {
  method: "POST", body, headers: { "content-type": "application/json", "stripe-signature": signature },
});

const withKey = { authorization: `Bearer ${API_KEY}` };

/** Asserts a 200 `accepted` answer and returns its invite id. */
function acceptedId(r) {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json?.status, "accepted", r.text);
  assert.match(r.json.invite_id ?? "", /^inv_[0-9a-f]{16}$/, r.text);
  return r.json.invite_id;
}

/** GET /v1/invites/{id} with the API key: the status view. */
async function inviteStatus(w, id) {
  const r = await w.fetch(`/v1/invites/${id}`, { headers: withKey });
  assert.equal(r.status, 200, `GET /v1/invites/${id}: ${r.text}`);
  return r.json;
}

/** Polls the invite until its status is one of `statuses` (at most `ms`); returns its view. */
async function settled(w, id, statuses = ["completed", "failed"], ms = PROCESSED_MS) {
  let last;
  const done = await eventually(async () => statuses.includes((last = await inviteStatus(w, id)).status), ms);
  assert.ok(done, `invite ${id} not ${statuses.join(" or ")} within ${ms} ms; last seen ${JSON.stringify(last)}`);
  return last;
}

/** Waits for the invite to complete; fails with its status view otherwise. */
async function completed(w, id, ms = PROCESSED_MS) {
  const view = await settled(w, id, ["completed", "failed"], ms);
  assert.equal(view.status, "completed", `invite ${id}: ${JSON.stringify(view)}`);
  return view;
}

test("a signed checkout.session.completed gives a user, roles and one email", async () => {
  const r = await deliver(worker, checkout("evt_e2e_1", "Paid.Customer@Example.com"));
  const id = acceptedId(r);
  assert.ok(!r.text.includes("ticket"), "no link in the response");
  const view = await completed(worker, id);
  assert.equal(view.kind, "stripe", JSON.stringify(view));
  assert.equal(view.email, "paid.customer@example.com", JSON.stringify(view));
  assert.ok(!JSON.stringify(view).includes("ticket"), `no link in the status: ${JSON.stringify(view)}`);
  const [user] = await emu.users("paid.customer@example.com");
  assert.ok(user, "the user exists");
  assert.deepEqual(user.roles, ["early-access"]);
  assert.equal(user.app_metadata.invite_source, "stripe");
  assert.equal(user.email_verified, false);
  const mail = await emu.outbox("paid.customer@example.com");
  assert.equal(mail.length, 1, JSON.stringify(mail));
  assert.equal(mail[0].kind, "change_password");
});

test("the same event 5 times, and twice at once, gives 1 user, 1 assignment, 1 email", async () => {
  await emu.resetStats();
  const body = checkout("evt_e2e_dup", "dup@example.com");
  const first = await Promise.all([deliver(worker, body), deliver(worker, body)]);
  const answers = JSON.stringify(first.map((r) => [r.status, r.text]));
  assert.deepEqual(first.map((r) => r.status), [200, 200], answers);
  assert.deepEqual(first.map((r) => r.json?.status).sort(), ["accepted", "duplicate"],
    `exactly one of two concurrent deliveries is accepted: ${answers}`);
  const id = acceptedId(first.find((r) => r.json.status === "accepted"));
  assert.deepEqual(first.find((r) => r.json.status === "duplicate").json, { status: "duplicate" });
  for (let i = 0; i < 5; i++) {
    const r = await deliver(worker, body);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { status: "duplicate" }, `redelivery ${i + 1}: ${r.text}`);
  }
  await completed(worker, id);
  const users = await emu.users("dup@example.com");
  assert.equal(users.length, 1, JSON.stringify(users));
  assert.deepEqual(users[0].roles, ["early-access"]);
  const mail = await emu.outbox("dup@example.com");
  assert.equal(mail.length, 1, JSON.stringify(mail));
  const s = await emu.stats();
  assert.equal(s.endpoints["POST /api/v2/users"], 1, JSON.stringify(s.endpoints));
  assert.equal(s.endpoints["POST /api/v2/users/{id}/roles"], 1, JSON.stringify(s.endpoints));
  assert.equal(s.endpoints["POST /dbconnections/change_password"], 1, JSON.stringify(s.endpoints));
});

test("stale, tampered and unknown-secret deliveries get 400 with zero Auth0 calls", async () => {
  await emu.resetStats();
  const body = checkout("evt_e2e_bad", "bad@example.com");
  const stale = stripeSignature(body, STRIPE_SECRET, Math.floor(Date.now() / 1000) - 600);
  const tampered = checkout("evt_e2e_bad", "attacker@example.com");
  const cases = [
    [body, stale],
    [tampered, stripeSignature(body)],
    [body, stripeSignature(body, "whsec_not_ours")],
    [body, "t=1,v1=deadbeef"],
  ];
  for (const [b, sig] of cases) {
    const r = await deliver(worker, b, sig);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, "invalid_signature");
  }
  const s = await emu.stats();
  assert.equal(s.token_requests + s.management_requests, 0);
  assert.equal((await emu.outbox("bad@example.com")).length, 0);
});

test("an unhandled event type gets 200 ignored", async () => {
  const body = JSON.stringify({ id: "evt_e2e_other", type: "customer.subscription.updated", data: { object: {} } });
  const r = await deliver(worker, body);
  assert.deepEqual([r.status, r.json], [200, { status: "ignored" }]);
});

test("with Auth0 down the delivery is accepted, the invite fails after its retries, and a re-drive completes it", async (t) => {
  // A short per-attempt budget: each delivery gives up on Auth0 after 1.5 s, so the four
  // deliveries and the queue's back-off (2, 4, 8 s) end in the dead-letter queue in ~25 s.
  const w = await startWorker(emu.url, { ...WEBHOOKS, UPSTREAM_DEADLINE_MS: "1500" });
  try {
    const body = checkout("evt_e2e_down", "outage@example.com");
    await emu.config({ fail_rate: 1 });
    // No Auth0 call on the request path: the outage doesn't show in the answer.
    const id = acceptedId(await deliver(w, body));
    const started = Date.now();

    // The consumer retries (2, 4, 8 s), then the dead-letter consumer marks it failed.
    const failed = await settled(w, id, ["completed", "failed"], DEAD_LETTER_MS);
    t.diagnostic(`invite ${id} ${failed.status} after ${((Date.now() - started) / 1000).toFixed(1)} s, ` +
      `${failed.attempts} attempt(s)`);
    assert.equal(failed.status, "failed", JSON.stringify(failed));
    assert.equal(failed.error_code, "upstream_unavailable", JSON.stringify(failed));
    assert.ok(failed.attempts >= 1 && failed.attempts <= 4,
      `one delivery plus at most 3 retries: ${JSON.stringify(failed)}`);
    assert.equal((await emu.users("outage@example.com")).length, 0);
    assert.equal((await emu.outbox("outage@example.com")).length, 0);

    // Stripe's redelivery of the same event is a duplicate: the invite is re-driven instead.
    const redelivered = await deliver(w, body);
    assert.equal(redelivered.status, 200, redelivered.text);
    assert.deepEqual(redelivered.json, { status: "duplicate" }, redelivered.text);

    await emu.config({ fail_rate: 0 });
    const retry = await w.fetch(`/v1/invites/${id}/retry`, { method: "POST", headers: withKey });
    assert.equal(retry.status, 202, retry.text);
    assert.equal(retry.json?.id, id, retry.text);
    const done = await completed(w, id);
    assert.ok(!done.error_code, `a completed invite has no error code: ${JSON.stringify(done)}`);
    assert.equal((await emu.users("outage@example.com")).length, 1);
    const mail = await emu.outbox("outage@example.com");
    assert.equal(mail.length, 1, JSON.stringify(mail));
  } finally {
    await emu.config({ fail_rate: 0 });
    await w.stop();
  }
});

test("Standard Webhooks invite.requested, with the link emailed through the email API", async () => {
  const w = await startWorker(emu.url, {
    ...WEBHOOKS,
    EMAIL_DELIVERY: "resend",
    EMAIL_API_BASE_URL: emu.url,
    EMAIL_API_KEY: "re_dev_key",
    FROM_EMAIL: "Acme <hello@acme.example>",
    PRODUCT_NAME: "Acme Beta",
  });
  try {
    const body = JSON.stringify({ type: "invite.requested", data: { email: "std@example.com", name: "Lin", roles: ["early-access", "root"] } });
    const r = await w.fetch("/v1/webhooks/standard", {
      method: "POST", body, headers: { "content-type": "application/json", ...standardHeaders("msg_e2e_1", body) },
    });
    const id = acceptedId(r);
    const view = await completed(w, id);
    assert.equal(view.kind, "standard", JSON.stringify(view));
    const [user] = await emu.users("std@example.com");
    assert.ok(user, "the user exists");
    assert.deepEqual(user.roles, ["early-access"]);
    const [mail] = await emu.outbox("std@example.com");
    assert.ok(mail, "the email is in the outbox");
    assert.equal(mail.kind, "email");
    assert.equal(mail.subject, "Your Acme Beta account is ready");
    const link = user.tickets.at(-1).url ?? user.tickets.at(-1).ticket;
    assert.ok(mail.text.includes(link), "the email holds the ticket link");
    const again = await w.fetch("/v1/webhooks/standard", {
      method: "POST", body, headers: { "content-type": "application/json", ...standardHeaders("msg_e2e_1", body) },
    });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, { status: "duplicate" }, again.text);
    assert.equal((await inviteStatus(w, id)).status, "completed");
    assert.equal((await emu.outbox("std@example.com")).length, 1);
  } finally {
    await w.stop();
  }
});
