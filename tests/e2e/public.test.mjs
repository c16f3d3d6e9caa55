// End to end: the public sign-up route of the built Worker in workerd (with KV, the
// rate-limiting binding, the gate Durable Object and the invite queue), against the emulator
// (Auth0, change-password email, siteverify). The route accepts, then the queue consumer
// creates the user and sends the email shortly after: emulator state is polled for.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { startEmulator, workerOptions, until } from "./harness.mjs";

const ACCEPTED = { status: "accepted", message: "Check your inbox for a link to set your password." };
let emu;
const workers = [];

async function publicWorker(overrides = {}, limit = 1000) {
  const mf = new Miniflare(workerOptions(emu.url,
    { PUBLIC_ROLES: "beta-tester", TURNSTILE_BASE_URL: emu.url, ...overrides }, { rateLimit: limit }));
  await mf.ready;
  workers.push(mf);
  return async (body, { type = "application/json", headers = {} } = {}) => {
    const r = await mf.dispatchFetch("http://worker.test/v1/public/invites", {
      method: "POST",
      headers: { "content-type": type, accept: "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      redirect: "manual",
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* HTML or empty */ }
    return { status: r.status, headers: r.headers, text, json };
  };
}


/** Waits for `email`'s outbox to hold `n` messages, and returns them. */
const outboxOf = (email, n = 1) =>
  until(`${n} email(s) to ${email}`, () => emu.outbox(email), (m) => m.length >= n);

/**
 * A barrier: signs `email` up through `post` and waits for its email. Work accepted before it
 * has had the same time to show in the emulator, so an absence checked afterwards means
 * something.
 */
async function processedAfter(post, email) {
  const r = await post({ email });
  assert.equal(r.status, 202, `barrier sign-up ${email}: ${r.text}`);
  await outboxOf(email);
}

before(async () => { emu = await startEmulator(); });
after(async () => {
  for (const mf of workers) await mf.dispose();
  await emu?.stop();
});

test("new and existing emails get a byte-identical 202, and no second email inside the cooldown", async () => {
  const post = await publicWorker();
  const fresh = await post({ email: "public-new@example.com", name: "New" });
  assert.equal(fresh.status, 202, fresh.text);
  assert.deepEqual(fresh.json, ACCEPTED);
  // Accepted at once; the consumer creates the user, assigns the role, then emails.
  const [mail] = await outboxOf("public-new@example.com");
  assert.equal(mail.kind, "change_password");
  const [user] = await emu.users("public-new@example.com");
  assert.ok(user, "the user exists once the email is out");
  assert.deepEqual(user.roles, ["beta-tester"]);
  assert.equal(user.email_verified, false);

  // Same deployment (same gate): inside the cooldown, the same answer and nothing queued.
  const again = await post({ email: "PUBLIC-NEW@example.com" });
  assert.equal(again.status, 202);
  assert.equal(again.text, fresh.text, "byte-identical");
  await processedAfter(post, "public-new-barrier@example.com");
  const outbox = await emu.outbox("public-new@example.com");
  assert.equal(outbox.length, 1, `no second email inside the cooldown: ${JSON.stringify(outbox)}`);

  // Another deployment's gate has no cooldown: the account now exists (Auth0 answers 409),
  // and the answer is still byte-identical; the owner gets a fresh link.
  const elsewhere = await publicWorker();
  const existing = await elsewhere({ email: "public-new@example.com" });
  assert.equal(existing.status, 202);
  assert.equal(existing.text, fresh.text, "byte-identical for an existing account");
  await outboxOf("public-new@example.com", 2);
  assert.equal((await emu.users("public-new@example.com")).length, 1);
  assert.equal((await emu.outbox("public-new@example.com")).length, 2);
  for (const r of [fresh, again, existing]) {
    assert.ok(!/ticket|created|auth0\||exist/i.test(r.text), r.text);
  }
});

test("Turnstile: the always-fail and spent test secrets give 403 captcha_failed; always-pass works", async () => {
  for (const secret of ["2x0000000000000000000000000000000AA", "3x0000000000000000000000000000000AA"]) {
    const post = await publicWorker({ TURNSTILE_SECRET_KEY: secret });
    const r = await post({ email: "captcha@example.com", "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX" });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error.code, "captcha_failed");
  }
  const post = await publicWorker({ TURNSTILE_SECRET_KEY: "1x0000000000000000000000000000000AA" });
  const missing = await post({ email: "captcha@example.com" });
  assert.equal(missing.status, 403, "the token is required");
  const ok = await post({ email: "captcha@example.com", "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX" },
    { headers: { "cf-connecting-ip": "198.51.100.4" } });
  assert.equal(ok.status, 202, ok.text);
  const calls = await (await fetch(emu.url + "/__emulator/siteverify")).json();
  const last = calls.at(-1);
  assert.equal(last.response, "XXXX.DUMMY.TOKEN.XXXX");
  assert.match(last.idempotency_key, /^[0-9a-f-]{36}$/);
  assert.ok(last.remoteip, "remoteip is sent");
  // The refused attempts queued nothing; the passing one's invite is processed shortly after.
  await outboxOf("captcha@example.com");
  assert.equal((await emu.users("captcha@example.com")).length, 1, "only the passing attempt created the user");
});

test("a filled honeypot gets the same 202 and creates nothing", async () => {
  const post = await publicWorker();
  const r = await post({ email: "honeypot@example.com", website: "https://spam.example" });
  assert.deepEqual([r.status, r.json], [202, ACCEPTED]);
  await processedAfter(post, "honeypot-barrier@example.com");
  assert.equal((await emu.users("honeypot@example.com")).length, 0);
  assert.equal((await emu.outbox("honeypot@example.com")).length, 0);
});

test("going over the per-IP rate limit gives 429 with Retry-After", async () => {
  const post = await publicWorker({}, 3);
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    statuses.push((await post({ email: `limited${i}@example.com` }, { headers: { "cf-connecting-ip": "192.0.2.9" } })).status);
  }
  assert.deepEqual(statuses.slice(0, 3), [202, 202, 202]);
  assert.equal(statuses[4], 429);
  const r = await post({ email: "limited9@example.com" }, { headers: { "cf-connecting-ip": "192.0.2.9" } });
  assert.equal(r.json.error.code, "rate_limited");
  assert.ok(Number(r.headers.get("retry-after")) > 0);
});

test("oversized, malformed and wrong-content-type bodies", async () => {
  const post = await publicWorker();
  const cases = [
    [{ email: "a@example.com", name: "x".repeat(9000) }, "application/json", 413, "payload_too_large"],
    ["{oops", "application/json", 400, "invalid_json"],
    ["email=a@example.com", "text/plain", 415, "unsupported_media_type"],
    [{ email: "not-an-email" }, "application/json", 422, "invalid_email"],
  ];
  for (const [body, type, status, code] of cases) {
    const r = await post(body, { type });
    assert.equal(r.status, status, r.text);
    assert.equal(r.json.error.code, code);
    assert.ok(!/ticket/i.test(r.text));
  }
});

test("a form post from a page not on ALLOWED_ORIGINS gets 403 origin_not_allowed", async () => {
  const post = await publicWorker({ ALLOWED_ORIGINS: "https://www.example.com" });
  const denied = await post({ email: "cors@example.com" }, { headers: { origin: "https://evil.example" } });
  assert.equal(denied.status, 403);
  assert.equal(denied.json.error.code, "origin_not_allowed");
  assert.equal(denied.headers.get("access-control-allow-origin"), null);
  const allowed = await post({ email: "cors@example.com" }, { headers: { origin: "https://www.example.com" } });
  assert.equal(allowed.status, 202);
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://www.example.com");
  assert.match(allowed.headers.get("vary"), /Origin/);
});
