// End to end: the invitee lifecycle (list, look-up, resend, revoke) and the verification
// option, in workerd against the Auth0 emulator. Every answer is checked against
// docs/openapi.json by the harness.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEmulator, startWorker, API_KEY } from "./harness.mjs";

let emu;
let worker;

before(async () => {
  emu = await startEmulator();
  worker = await startWorker(emu.url);
});
after(async () => {
  await worker?.stop();
  await emu?.stop();
});

const auth = { authorization: `Bearer ${API_KEY}` };
const get = (w, p) => w.fetch(p, { headers: auth });
const post = (w, p) => w.fetch(p, { method: "POST", headers: auth });
const ref = (s) => encodeURIComponent(s);

/** The emulator's view of a ticket URL: `{ valid, reason, kind, … }`. */
async function ticket(url) {
  const id = new URL(url).searchParams.get("ticket");
  const r = await fetch(`${emu.url}/__emulator/tickets/${encodeURIComponent(id)}`);
  assert.equal(r.status, 200, `ticket ${id}: ${r.status}`);
  return r.json();
}

/** What the hosted page at a ticket's URL answers, on the emulator. */
async function hostedPage(url) {
  const u = new URL(url);
  return (await fetch(`${emu.url}${u.pathname}${u.search}`)).status;
}

/** Follows `next_cursor` from `path` to the end; returns the pages. */
async function allPages(w, path) {
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 50; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const r = await get(w, cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    assert.equal(r.status, 200, r.text);
    pages.push(r.json.invitees);
    cursor = r.json.next_cursor;
    if (!cursor) return pages;
  }
  throw new Error("no last page");
}

test("the list filters by status and pages to the end; one invitee by address or id", async () => {
  await emu.reset();
  const w = await startWorker(emu.url);
  try {
    const emails = Array.from({ length: 7 }, (_, i) => `list${i}@example.com`);
    const ids = {};
    for (const email of emails) {
      const r = await w.invite({ email });
      assert.equal(r.status, 201, r.text);
      ids[email] = r.json.user_id;
    }
    // Someone else's account (not invited here) never shows.
    assert.equal((await emu.mgmt("POST", "/api/v2/users", {
      connection: "Username-Password-Authentication", email: "stranger@example.com", password: "Str0ng!Passw0rd-x",
    })).status, 201);
    await emu.login("list0@example.com");
    await emu.login("list1@example.com");
    assert.equal((await post(w, `/v1/invitees/${ref("list2@example.com")}/revoke`)).status, 200);

    const emailsOf = (pages) => pages.flat().map((i) => i.email);
    const pending = await allPages(w, "/v1/invitees?status=pending&limit=2");
    assert.ok(pending.length >= 2, "more than one page");
    assert.ok(pending.every((p) => p.length <= 2));
    assert.deepEqual(emailsOf(pending).sort(), emails.slice(3).sort());
    assert.ok(pending.flat().every((i) => i.status === "pending" && i.source === "api" && i.delivery === "returned"));
    // Newest first.
    const created = pending.flat().map((i) => Date.parse(i.created_at));
    assert.deepEqual(created, [...created].sort((a, b) => b - a));

    const accepted = (await allPages(w, "/v1/invitees?status=accepted&limit=1")).flat();
    assert.deepEqual(accepted.map((i) => i.email).sort(), ["list0@example.com", "list1@example.com"]);
    assert.ok(accepted.every((i) => i.logins_count === 1 && i.last_login));
    const revoked = (await allPages(w, "/v1/invitees?status=revoked")).flat();
    assert.deepEqual(revoked.map((i) => i.email), ["list2@example.com"]);
    assert.equal(revoked[0].invited_by, "e2e");
    const all = emailsOf(await allPages(w, "/v1/invitees?limit=3"));
    assert.equal(all.length, 7);
    assert.deepEqual([...new Set(all)].sort(), emails.sort());

    const byEmail = await get(w, `/v1/invitees/${ref("List4@Example.com")}`);
    assert.equal(byEmail.status, 200, byEmail.text);
    assert.equal(byEmail.json.user_id, ids["list4@example.com"]);
    assert.equal(byEmail.json.status, "pending");
    const byId = await get(w, `/v1/invitees/${ref(ids["list0@example.com"])}`);
    assert.equal(byId.json.status, "accepted");
    const stranger = await get(w, `/v1/invitees/${ref("stranger@example.com")}`);
    assert.equal(stranger.status, 404);
    assert.equal(stranger.json.error.code, "invitee_not_found");

    for (const [p, status, code] of [
      ["/v1/invitees?status=active", 422, "invalid_field"],
      ["/v1/invitees?limit=0", 422, "invalid_field"],
      ["/v1/invitees?cursor=forged", 422, "invalid_field"],
      ["/v1/invitees?page=3", 400, "unknown_field"],
    ]) {
      const r = await get(w, p);
      assert.equal(r.status, status, `${p}: ${r.text}`);
      assert.equal(r.json.error.code, code);
    }
    assert.equal((await w.fetch("/v1/invitees")).status, 401);
  } finally {
    await w.stop();
  }
});

test("a resend returns a new link and the old one stops working; a second one is too soon", async () => {
  const first = await worker.invite({ email: "resend@example.com" });
  assert.equal(first.status, 201, first.text);
  assert.equal((await ticket(first.json.ticket_url)).valid, true);

  const again = await post(worker, `/v1/invitees/${ref("resend@example.com")}/resend`);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.delivery, "returned");
  assert.notEqual(again.json.ticket_url, first.json.ticket_url);
  const [fresh, old] = [await ticket(again.json.ticket_url), await ticket(first.json.ticket_url)];
  assert.equal(fresh.valid, true);
  assert.equal(old.valid, false);
  assert.equal(old.reason, "superseded");
  assert.equal(await hostedPage(again.json.ticket_url), 200);
  assert.equal(await hostedPage(first.json.ticket_url), 400);

  const soon = await post(worker, `/v1/invitees/${ref(first.json.user_id)}/resend`);
  assert.equal(soon.status, 429, soon.text);
  assert.equal(soon.json.error.code, "resend_too_soon");
  const wait = Number(soon.headers.get("retry-after"));
  assert.ok(wait >= 295 && wait <= 300, `Retry-After ${wait}: what is left of RESEND_INTERVAL_SEC`);
  assert.equal((await ticket(again.json.ticket_url)).valid, true, "a refused resend keeps the link");

  await emu.login("resend@example.com");
  const accepted = await post(worker, `/v1/invitees/${ref("resend@example.com")}/resend`);
  assert.equal(accepted.status, 409);
  assert.equal(accepted.json.error.code, "invite_accepted");
});

test("an emailed invite's resend goes to the inbox, never to the caller", async () => {
  // An invitee from a payment webhook whose first email is long past.
  const created = await emu.mgmt("POST", "/api/v2/users", {
    connection: "Username-Password-Authentication", email: "paid@example.com", password: "Str0ng!Passw0rd-x",
    app_metadata: { invited: true, invite_source: "stripe", invited_by: "stripe", invited_at: "2026-11-01T00:00:00.000Z" },
  });
  assert.equal(created.status, 201);
  const r = await post(worker, `/v1/invitees/${ref("paid@example.com")}/resend`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.delivery, "email");
  assert.equal(r.json.source, "stripe");
  assert.ok(!("ticket_url" in r.json) && !r.text.includes("ticket="), r.text);
  const mails = (await emu.outbox("paid@example.com")).filter((m) => m.kind === "change_password");
  assert.equal(mails.length, 1);
  const soon = await post(worker, `/v1/invitees/${ref("paid@example.com")}/resend`);
  assert.equal(soon.status, 429);
  assert.equal((await emu.outbox("paid@example.com")).filter((m) => m.kind === "change_password").length, 1);
});

test("revoke blocks a pending invite: its link stops working and a resend is refused", async () => {
  const inv = await worker.invite({ email: "revoke@example.com" });
  assert.equal(inv.status, 201, inv.text);
  const r = await post(worker, `/v1/invitees/${ref("revoke@example.com")}/revoke`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, "revoked");
  assert.equal(r.json.action, "blocked");
  assert.ok(r.json.revoked_at);
  const [user] = await emu.users("revoke@example.com");
  assert.equal(user.blocked, true);
  assert.equal(user.app_metadata.revoked_by, "e2e");
  // A block alone leaves a link working, and setting a password through it lifts the block
  // (the emulator's reading of Auth0's documentation): the revoke retired it.
  const t = await ticket(inv.json.ticket_url);
  assert.equal(t.valid, false);
  assert.equal(t.reason, "superseded");
  const u = new URL(inv.json.ticket_url);
  const redeem = await fetch(`${emu.url}${u.pathname}${u.search}`, {
    method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "password=Another-Pass-42",
  });
  assert.equal(redeem.status, 400);
  assert.equal((await emu.users("revoke@example.com"))[0].blocked, true);
  await assert.rejects(emu.login("revoke@example.com"), /401/);

  const resend = await post(worker, `/v1/invitees/${ref("revoke@example.com")}/resend`);
  assert.equal(resend.status, 409);
  assert.equal(resend.json.error.code, "invite_revoked");
  const twice = await post(worker, `/v1/invitees/${ref("revoke@example.com")}/revoke`);
  assert.equal(twice.status, 200);
  assert.equal(twice.json.action, "none");
  const status = await get(worker, `/v1/invitees/${ref(inv.json.user_id)}`);
  assert.equal(status.json.status, "revoked");

  // An account in use is not revoked here.
  assert.equal((await worker.invite({ email: "inuse@example.com" })).status, 201);
  await emu.login("inuse@example.com");
  const inUse = await post(worker, `/v1/invitees/${ref("inuse@example.com")}/revoke`);
  assert.equal(inUse.status, 409);
  assert.equal(inUse.json.error.code, "invite_accepted");
  assert.equal((await emu.users("inuse@example.com"))[0].blocked ?? false, false);
});

test("REVOKE_MODE=delete deletes the account (with the delete:users scope)", async () => {
  const w = await startWorker(emu.url, { REVOKE_MODE: "delete" });
  try {
    const inv = await w.invite({ email: "delete@example.com" });
    assert.equal(inv.status, 201, inv.text);
    // Without the scope: nothing changes, and the answer says what to grant.
    const denied = await post(w, `/v1/invitees/${ref("delete@example.com")}/revoke`);
    assert.equal(denied.status, 502, denied.text);
    assert.equal(denied.json.error.code, "upstream_auth");
    assert.match(denied.json.error.message, /delete:users/);
    assert.equal((await emu.users("delete@example.com")).length, 1);

    const scopes = "create:users read:users update:users delete:users read:roles create:roles create:role_members create:user_tickets";
    await emu.config({ scopes });
    await emu.revokeTokens();
    try {
      const r = await post(w, `/v1/invitees/${ref("delete@example.com")}/revoke`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.action, "deleted");
      assert.equal((await emu.users("delete@example.com")).length, 0);
      assert.equal((await ticket(inv.json.ticket_url)).reason, "user deleted");
      // Auth0 keeps nothing; the status still says revoked, and a resend is refused.
      const gone = await get(w, `/v1/invitees/${ref(inv.json.user_id)}`);
      assert.equal(gone.status, 200, gone.text);
      assert.equal(gone.json.status, "revoked");
      const resend = await post(w, `/v1/invitees/${ref("delete@example.com")}/resend`);
      assert.equal(resend.status, 409, "a later resend is refused");
      assert.equal(resend.json.error.code, "invite_revoked");
    } finally {
      await emu.config({ scopes: scopes.replace(" delete:users", "") });
    }
  } finally {
    await w.stop();
  }
});

test("verification: Auth0's job and the verification ticket reach the emulator with the right fields", async () => {
  const job = await worker.invite({ email: "verify.job@example.com", verification: "email" });
  assert.equal(job.status, 201, job.text);
  assert.equal(job.json.verification.method, "email");
  assert.match(job.json.verification.job_id, /^job_/);
  const [u1] = await emu.users("verify.job@example.com");
  assert.equal(u1.email_verified, false);
  assert.equal(u1.tickets[0].mark_email_as_verified, false);
  const mails = (await emu.outbox("verify.job@example.com")).filter((m) => m.kind === "verification_email");
  assert.equal(mails.length, 1);
  assert.equal(mails[0].user_id, job.json.user_id);

  const tkt = await worker.invite({ email: "verify.ticket@example.com", verification: "ticket", ticket_ttl_sec: 3600 });
  assert.equal(tkt.status, 201, tkt.text);
  assert.equal(tkt.json.verification.method, "ticket");
  assert.match(tkt.json.verification.ticket_url, /\/u\/email-verification\?ticket=/);
  const v = await ticket(tkt.json.verification.ticket_url);
  assert.equal(v.valid, true);
  assert.equal(v.kind, "email_verification");
  const [u2] = await emu.users("verify.ticket@example.com");
  const sent = u2.tickets.find((t) => t.type === "email_verification");
  assert.equal(sent.result_url, "https://app.example.com/welcome");
  assert.equal(sent.ttl_sec, 3600);
  assert.equal(u2.email_verified, false);

  const queued = await worker.invite({ email: "verify.async@example.com", verification: "ticket" },
    { headers: { prefer: "respond-async" } });
  assert.equal(queued.status, 422);
  assert.equal(queued.json.error.field, "verification");
});
