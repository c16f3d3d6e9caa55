// End to end: signed payment webhooks against the built Worker in workerd and the emulator.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startEmulator, startWorker, stripeSignature, standardHeaders, STRIPE_SECRET } from "./harness.mjs";

let emu;
let worker;
const WEBHOOKS = {
  STRIPE_WEBHOOK_SECRETS: `whsec_retired_secret_0000,${STRIPE_SECRET}`,
  STANDARD_WEBHOOK_SECRETS: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  PAYMENT_ROLES: "beta-tester",
};

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

test("a signed checkout.session.completed gives a user, roles and one email", async () => {
  const r = await deliver(worker, checkout("evt_e2e_1", "Paid.Customer@Example.com"));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, "processed");
  assert.ok(!r.text.includes("ticket"), "no link in the response");
  const [user] = await emu.users("paid.customer@example.com");
  assert.deepEqual(user.roles, ["early-access"]);
  assert.equal(user.app_metadata.invite_source, "stripe");
  assert.equal(user.email_verified, false);
  const mail = await emu.outbox("paid.customer@example.com");
  assert.equal(mail.length, 1);
  assert.equal(mail[0].kind, "change_password");
});

test("the same event 5 times, and twice at once, gives 1 user, 1 assignment, 1 email", async () => {
  await emu.resetStats();
  const body = checkout("evt_e2e_dup", "dup@example.com");
  const first = await Promise.all([deliver(worker, body), deliver(worker, body)]);
  const statuses = first.map((r) => r.status).sort();
  assert.ok(statuses.includes(200), JSON.stringify(first.map((r) => r.text)));
  for (let i = 0; i < 5; i++) {
    const r = await deliver(worker, body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, "duplicate");
  }
  const s = await emu.stats();
  assert.equal((await emu.users("dup@example.com")).length, 1);
  assert.equal(s.endpoints["POST /api/v2/users/{id}/roles"], 1);
  assert.equal((await emu.outbox("dup@example.com")).length, 1);
  assert.equal(s.endpoints["POST /api/v2/users"], 1);
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

test("with Auth0 down the delivery gets 5xx and is not marked; the redelivery completes", async () => {
  const w = await startWorker(emu.url, { ...WEBHOOKS, UPSTREAM_DEADLINE_MS: "1500" });
  try {
    const body = checkout("evt_e2e_down", "outage@example.com");
    await emu.config({ fail_rate: 1 });
    const down = await deliver(w, body);
    assert.ok(down.status >= 500, down.text);
    const kv = await w.mf.getKVNamespace("TOKEN_CACHE");
    assert.equal(await kv.get("webhook:v1:stripe:evt_e2e_down"), null, "not marked done");
    await emu.config({ fail_rate: 0 });
    const again = await deliver(w, body);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.status, "processed");
    assert.equal((await emu.outbox("outage@example.com")).length, 1);
    assert.equal((await emu.users("outage@example.com")).length, 1);
  } finally {
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
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, "processed");
    const [user] = await emu.users("std@example.com");
    assert.deepEqual(user.roles, ["early-access"]);
    const [mail] = await emu.outbox("std@example.com");
    assert.equal(mail.kind, "email");
    assert.equal(mail.subject, "Your Acme Beta account is ready");
    const link = user.tickets.at(-1).url ?? user.tickets.at(-1).ticket;
    assert.ok(mail.text.includes(link), "the email holds the ticket link");
    const again = await w.fetch("/v1/webhooks/standard", {
      method: "POST", body, headers: { "content-type": "application/json", ...standardHeaders("msg_e2e_1", body) },
    });
    assert.equal(again.json.status, "duplicate");
    assert.equal((await emu.outbox("std@example.com")).length, 1);
  } finally {
    await w.stop();
  }
});
