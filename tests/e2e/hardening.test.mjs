// End to end: the security review's findings where the shell or the runtime is involved, on
// the built Worker in workerd (Miniflare) with KV, the gate and the invite queue, against the
// emulator. Public and webhook requests are accepted, then processed by the queue consumer:
// emulator state is polled for.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import http from "node:http";
import {
  startEmulator, startWorker, startWorkerHttp, standardHeaders, API_KEY, STANDARD_SECRET, until } from "./harness.mjs";


let emu;
let worker;

before(async () => {
  emu = await startEmulator();
  worker = await startWorker(emu.url, { STANDARD_WEBHOOK_SECRETS: STANDARD_SECRET, PUBLIC_ROLES: "beta-tester" });
});
after(async () => {
  await worker?.stop();
  await emu?.stop();
});

/**
 * POSTs up to `total` bytes, chunked, to the Worker over a raw socket, and stops sending once
 * the status line arrives. Returns the status and how many bytes the client got to send.
 * (A raw socket, because an HTTP client aborts on the reset that follows an early answer to
 * an unread body, and loses the answer with it.)
 */
function chunkedPost(origin, path, headers, total) {
  const u = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname);
    const piece = Buffer.alloc(4 * 1024, 120);
    let received = "";
    let sent = 0;
    let done = false;
    socket.on("data", (d) => {
      received += d.toString("latin1");
      if (!done && received.includes("\r\n")) {
        done = true;
        socket.destroy();
        resolve({ status: Number(received.slice(9, 12)), sent });
      }
    });
    socket.on("error", (e) => {
      if (done) return;
      done = true;
      // workerd resets a connection whose unread body it abandoned: the server stopped reading.
      if (e.code === "ECONNRESET" || e.code === "EPIPE") resolve({ status: "reset", sent });
      else reject(e);
    });
    const head = Object.entries({ host: u.host, ...headers, "transfer-encoding": "chunked" })
      .map(([k, v]) => `${k}: ${v}\r\n`).join("");
    socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
    const pump = () => {
      while (!done && sent < total) {
        sent += piece.length;
        socket.write(`${piece.length.toString(16)}\r\n`);
        socket.write(piece);
        if (!socket.write("\r\n")) return socket.once("drain", pump);
      }
      if (!done) socket.write("0\r\n\r\n");
    };
    pump();
  });
}

// Finding 2: a 160 MB chunked POST /nope used to be read whole before its 404 (workerd grew
// from 69 to 635 MB). Now nothing is read for a 404 or a 401, and a route reads up to its limit.
test("bodies are read only by routes that take one, and never past their limit", async () => {
  const w = await startWorkerHttp(emu.url, { STANDARD_WEBHOOK_SECRETS: STANDARD_SECRET });
  const huge = 64 * 1024 * 1024;
  const json = { "content-type": "application/json" };
  const keyed = { ...json, authorization: `Bearer ${API_KEY}` };
  try {
    for (const [path, headers, status] of [
      ["/nope", {}, 404],
      ["/v1/invites", json, 401],
      ["/v1/invites", keyed, 413],
      ["/v1/public/invites", json, 413],
      ["/v1/webhooks/standard", json, 413],
    ]) {
      // The Worker answers without reading (or after `limit` bytes) and workerd drops the
      // rest of the upload, which the client may see as a reset that swallows the answer
      // (the answers themselves are checked by the core's flow tests). Reading everything
      // would take all 64 MiB.
      const big = await chunkedPost(w.url, path, headers, huge);
      assert.ok([status, "reset"].includes(big.status), `${path}: ${big.status}`);
      assert.ok(big.sent < 16 * 1024 * 1024, `${path}: ${big.sent} bytes sent before the answer`);
    }
  } finally {
    await w.stop();
  }
});

// A declared length over the route's limit is refused before any of the body is read (the
// shell reads a declared body in one arrayBuffer(), so it must never start on an oversized
// one): the 413 arrives while the client has sent nothing but the headers and 9 bytes.
test("a declared Content-Length over the limit is refused unread", async () => {
  const w = await startWorkerHttp(emu.url);
  const u = new URL(w.url);
  try {
    const answer = await new Promise((resolve, reject) => {
      const socket = net.connect(Number(u.port), u.hostname, () => {
        socket.write(
          `POST /v1/invites HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${API_KEY}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n{"email":`,
        );
      });
      let received = "";
      const timer = setTimeout(() => { socket.destroy(); resolve(received || "no answer within 5 s"); }, 5_000);
      socket.on("data", (d) => {
        received += d.toString("latin1");
        if (received.includes("\r\n\r\n")) { clearTimeout(timer); socket.destroy(); resolve(received); }
      });
      socket.on("error", (e) => { clearTimeout(timer); reject(e); });
    });
    assert.match(answer, /^HTTP\/1\.1 413 /, answer.slice(0, 120));
  } finally {
    await w.stop();
  }
});

// Finding 3: any API key could get a password-reset link for any existing account.
test("an account that has logged in gets 409 account_exists, no link and no role", async () => {
  const first = await worker.invite({ email: "used@example.com", roles: ["beta-tester"] });
  assert.equal(first.status, 201, first.text);
  const again = await worker.invite({ email: "used@example.com", roles: ["beta-tester"] });
  assert.equal(again.status, 200, "an unaccepted invite gets a fresh link");
  assert.ok(again.json.ticket_url);
  await emu.login("used@example.com");
  const [before] = await emu.users("used@example.com");
  const refused = await worker.invite({ email: "used@example.com", roles: ["early-access"] });
  assert.equal(refused.status, 409, refused.text);
  assert.equal(refused.json.error.code, "account_exists");
  assert.ok(!refused.text.includes("ticket"), refused.text);
  const [after] = await emu.users("used@example.com");
  assert.equal(after.tickets.length, before.tickets.length, "no new ticket");
  assert.deepEqual(after.roles, before.roles, "no new role");

  const admin = await worker.invite({ email: "meta@example.com", app_metadata: { plan: "x", is_admin: true } });
  assert.equal(admin.status, 422);
  assert.deepEqual([admin.json.error.code, admin.json.error.field], ["app_metadata_key_not_allowed", "app_metadata.is_admin"]);
  assert.equal((await emu.users("meta@example.com")).length, 0);
});

// Findings 1 and 11 through the real email API path: the attacker's name never reaches the
// victim's email, and a used account keeps the roles an administrator left it.
test("public sign-ups for a used account: neutral email, one link, no role change", async () => {
  const w = await startWorker(emu.url, {
    PUBLIC_ROLES: "early-access",
    EMAIL_DELIVERY: "resend",
    EMAIL_API_BASE_URL: emu.url,
    EMAIL_API_KEY: "re_dev_key",
    FROM_EMAIL: "Acme <hello@acme.example>",
  });
  try {
    const created = await worker.invite({ email: "victim@example.com", roles: ["beta-tester"] });
    assert.equal(created.status, 201, created.text);
    await emu.login("victim@example.com");
    const name = "Ada\r\n… unlock it here: https://evil.example/unlock?next={{ticket_url}}";
    const r = await w.fetch("/v1/public/invites", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "victim@example.com", name }),
    });
    assert.equal(r.status, 202, r.text);
    // The consumer updates the account (or not), then emails: once the email is out, the
    // account is in its final state.
    const outbox = await until("the link emailed to victim@example.com",
      () => emu.outbox("victim@example.com"), (m) => m.length >= 1);
    assert.equal(outbox.length, 1, JSON.stringify(outbox));
    const [mail] = outbox;
    assert.ok(mail, "the owner of the inbox gets the link");
    assert.equal(mail.kind, "email");
    assert.ok(!mail.text.includes("evil.example") && !mail.html.includes("evil.example"), mail.text);
    assert.match(mail.text, /Hi there,/);
    assert.equal((mail.text.match(/reset-password\?ticket=/g) ?? []).length, 1);
    const [user] = await emu.users("victim@example.com");
    assert.deepEqual(user.roles, ["beta-tester"], "PUBLIC_ROLES not added to a used account");
  } finally {
    await w.stop();
  }
});

test("Svix header names are accepted on the Standard Webhooks route", async () => {
  const body = JSON.stringify({ type: "invite.requested", data: { email: "svix@example.com" } });
  const std = standardHeaders("msg_svix_e2e", body);
  const r = await worker.fetch("/v1/webhooks/standard", {
    method: "POST", body,
    headers: { "content-type": "application/json", "svix-id": std["webhook-id"],
      "svix-timestamp": std["webhook-timestamp"], "svix-signature": std["webhook-signature"] },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json?.status, "accepted", r.text);
  const id = r.json.invite_id;
  assert.match(id ?? "", /^inv_[0-9a-f]{16}$/, r.text);
  const view = await until(`invite ${id} settled`, async () => {
    const s = await worker.fetch(`/v1/invites/${id}`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(s.status, 200, s.text);
    return s.json;
  }, (v) => ["completed", "failed"].includes(v.status));
  assert.equal(view.status, "completed", JSON.stringify(view));
  assert.equal((await emu.users("svix@example.com")).length, 1);
});

test("favicon and the error pages of a plain form post", async () => {
  const icon = await worker.fetch("/favicon.ico");
  assert.equal(icon.status, 204);
  const page = await worker.fetch("/v1/public/invites", {
    method: "POST", body: "email=nope",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html" },
  });
  assert.equal(page.status, 422);
  assert.match(page.text, /<title>Please check your address<\/title>/);
});

test("an unquoted number or boolean in [vars] is read; any other type is reported by name", async () => {
  // wrangler passes `TICKET_TTL_SEC = 604800` (no quotes) as a JSON number, which was taken
  // for unset: the default applied, and /healthz said ok.
  const w = await startWorker(emu.url, { TICKET_TTL_SEC: 604800, AUTO_CREATE_ROLES: false });
  try {
    assert.equal((await w.fetch("/healthz")).status, 200);
    const r = await w.invite({ email: "unquoted@example.com" });
    assert.equal(r.status, 201, r.text);
    const days = (Date.parse(r.json.ticket_expires_at) - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7, `${r.json.ticket_expires_at}: ${days} days`);
  } finally {
    await w.stop();
  }
  const bad = await startWorker(emu.url,
    { UPSTREAM_DEADLINE_MS: { ms: 5000 }, ALLOWED_ROLES: ["beta-tester", "early-access"] }, { check: false });
  try {
    const h = await bad.fetch("/healthz");
    assert.equal(h.status, 503, h.text);
    assert.match(h.text, /UPSTREAM_DEADLINE_MS must be text/);
    assert.match(h.text, /ALLOWED_ROLES must be text/);
  } finally {
    await bad.stop();
  }
});

test("an upstream's redirect is not followed: the request's body goes nowhere else", async () => {
  const seen = [];
  const listen = (handler) => new Promise((resolve) => {
    const s = http.createServer(handler);
    s.listen(0, "127.0.0.1", () => resolve(s));
  });
  const other = await listen((req, res) => {
    let body = "";
    req.on("data", (d) => { body += d; });
    req.on("end", () => { seen.push(body); res.writeHead(500).end("{}"); });
  });
  const otherUrl = `http://localhost:${other.address().port}`;
  const redirecting = await listen((req, res) => {
    res.writeHead(307, { location: `${otherUrl}${req.url}` }).end();
  });
  const w = await startWorker(emu.url, { AUTH0_BASE_URL: `http://127.0.0.1:${redirecting.address().port}` });
  try {
    const r = await w.invite({ email: "redirected@example.com" });
    assert.equal(r.status, 502, r.text);
    assert.deepEqual(seen, [], "the client secret was posted to the redirect's target");
  } finally {
    await w.stop();
    redirecting.close();
    other.close();
  }
});

test("a batch over Queues' 256 KB a send is sent in pieces, not refused", async () => {
  // Dense in quotes: sent as `json`, Queues would count each twice and refuse a send the core
  // measured as fitting.
  const meta = { tags: Array(600).fill("") };
  const invites = Array.from({ length: 100 }, (_, i) => ({ email: `piece${i}@example.com`, user_metadata: meta }));
  const r = await worker.fetch("/v1/invites/batch", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ invites }),
  });
  assert.equal(r.status, 202, r.text.slice(0, 300));
  assert.equal(r.json.queued, 100);
});

test("a batch over BATCH_MAX_INVITES (100 unless raised) is refused whole, naming the setting", async () => {
  const batch = (n) => worker.fetch("/v1/invites/batch", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ invites: Array.from({ length: n }, (_, i) => ({ email: `cap${n}-${i}@example.com` })) }),
  });
  const r = await batch(101);
  assert.equal(r.status, 422, r.text.slice(0, 300));
  assert.equal(r.json.error.code, "invalid_field");
  assert.match(r.json.error.message, /1 to 100 invites \(BATCH_MAX_INVITES\)/);
  const w = await startWorker(emu.url, { BATCH_MAX_INVITES: "101" });
  try {
    const raised = await w.fetch("/v1/invites/batch", {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ invites: Array.from({ length: 101 }, (_, i) => ({ email: `raised-${i}@example.com` })) }),
    });
    assert.equal(raised.status, 202, raised.text.slice(0, 300));
    assert.equal(raised.json.queued, 101);
  } finally {
    await w.stop();
  }
});

test("/healthz warns when UPSTREAM_DEADLINE_MS can't fit an invite behind a sign-up at AUTH0_MGMT_RPS", async () => {
  const w = await startWorker(emu.url, { AUTH0_MGMT_RPS: "0.5", AUTH0_MGMT_BURST: "2" });
  try {
    const r = await w.fetch("/healthz");
    assert.equal(r.status, 200, r.text);
    const warning = r.json.warnings.find((x) => x.startsWith("UPSTREAM_DEADLINE_MS"));
    assert.ok(warning, r.text);
    assert.match(warning, /UPSTREAM_DEADLINE_MS=10000 is short for AUTH0_MGMT_RPS=0\.5/);
    assert.match(warning, /set it to 10200 or more/);
  } finally {
    await w.stop();
  }
  const fine = await worker.fetch("/healthz");
  assert.ok(!(fine.json.warnings ?? []).some((x) => x.startsWith("UPSTREAM_DEADLINE_MS")), fine.text);
});

test("a role named in Auth0 in another case than ALLOWED_ROLES is a 422 naming it, not a 502", async () => {
  // The emulator refuses a role whose name differs only in case as existing (409), and the
  // Worker looks roles up by their exact name.
  const made = await emu.mgmt("POST", "/api/v2/roles", { name: "VIP-Club", description: "made in Auth0" });
  assert.equal(made.status, 200, JSON.stringify(made.json));
  const w = await startWorker(emu.url, { ALLOWED_ROLES: "beta-tester,vip-club" });
  try {
    const r = await w.invite({ email: "vip-case@example.com", roles: ["vip-club"] });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.error.code, "invite_rejected");
    assert.match(r.json.error.message, /'vip-club'.*'VIP-Club'/);
    assert.equal((await emu.users("vip-case@example.com")).length, 0, "no account made");
  } finally {
    await w.stop();
  }
  const off = await startWorker(emu.url, { ALLOWED_ROLES: "beta-tester,vip-club", AUTO_CREATE_ROLES: "false" });
  try {
    const r = await off.invite({ email: "vip-case@example.com", roles: ["vip-club"] });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.error.code, "invite_rejected");
    assert.match(r.json.error.message, /'VIP-Club'/);
  } finally {
    await off.stop();
  }
});
