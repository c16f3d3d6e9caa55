// End to end: the built Worker in workerd (Miniflare) with real KV, against the Auth0
// emulator over HTTP. Run by scripts/test.sh after the build; `node --test tests/e2e/`.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startEmulator, startWorker, eventually, sleep, API_KEY, OTHER_KEY } from "./harness.mjs";

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
beforeEach(async () => {
  await emu.config({ storm_429_ms: 0, fail_next: 0, fail_rate: 0, token_lifetime_sec: 86400 });
});

const ada = (email = "Ada@Example.com") => ({
  email, name: "Ada Lovelace", given_name: "Ada", family_name: "Lovelace",
  roles: ["beta-tester"], user_metadata: { preferred_language: "en" }, app_metadata: { plan: "beta" },
  result_url: "https://app.example.com/welcome", ticket_ttl_sec: 86400,
});

test("happy path: user, roles and ticket exist in Auth0", async () => {
  // The result URL reaches Auth0 as the runtime's URL parser serializes it.
  const r = await worker.invite({ ...ada("Happy.Path@Example.com"), result_url: "HTTPS://App.Example.com/welcome" });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.email, "happy.path@example.com");
  assert.equal(r.json.created, true);
  assert.deepEqual(r.json.roles, ["beta-tester"]);
  assert.match(r.json.user_id, /^auth0\|[0-9a-f]{24}$/);
  assert.match(r.json.ticket_url, /^https:\/\/emulator\.local\/u\/reset-password\?ticket=[A-Za-z0-9]+#$/);
  assert.ok(Date.parse(r.json.ticket_expires_at) > Date.now() + 86_000_000);
  assert.equal(r.headers.get("cache-control"), "no-store");
  assert.match(r.headers.get("x-request-id"), /^[0-9a-f]{16}$/);

  const [user] = await emu.users("happy.path@example.com");
  assert.equal(user.user_id, r.json.user_id);
  assert.equal(user.email_verified, true);
  assert.equal(user.given_name, "Ada");
  assert.deepEqual(user.user_metadata, { preferred_language: "en" });
  assert.equal(user.app_metadata.plan, "beta");
  assert.equal(user.app_metadata.invited, true);
  assert.equal(user.app_metadata.invited_by, "e2e");
  assert.deepEqual(user.roles, ["beta-tester"]);
  assert.equal(user.tickets.length, 1);
  const t = user.tickets[0];
  assert.equal(t.url ?? t.ticket, r.json.ticket_url);
  assert.equal(t.result_url, "https://app.example.com/welcome");
  assert.equal(t.ttl_sec, 86400);
  assert.equal(t.mark_email_as_verified, true);
  assert.equal(t.includeEmailInRedirect, false);

  // The token reached KV off the response path, expiring before the token does: the
  // emulator's tokens last a day, and the refresh margin comes off (KV takes at least 60 s).
  const cached = await eventually(async () => (await worker.kvList()).find((k) => k.name.startsWith("auth0-token:v1:")));
  assert.ok(cached, "token cached in KV");
  const left = cached.expiration - Date.now() / 1000;
  assert.ok(left > 60 && left < 86_400, `token's KV entry expires in ${left} s`);
});

test("under the strictest password policy a connection can have, one-letter addresses and short names still get accounts", async () => {
  // The throwaway password holds no part of the address before the @ nor a name (Auth0's
  // Personal Data option: a random draw held a one-letter local part nearly two times in
  // three, refused with 400 PasswordNoUserInfoError), has the Flexible Password Policy's
  // largest minimum, 72, and no sequence such as `abc` (40 characters had about one in forty).
  await emu.config({ password_no_personal_info: true, password_min_length: 72, password_block_sequential: true });
  try {
    for (const letter of "bcdefghijklmnopqrstu") {
      const r = await worker.invite({ email: `${letter}@personal-data.example.com`, name: "Jo", nickname: "x", roles: ["beta-tester"] });
      assert.equal(r.status, 201, `${letter}: ${r.text}`);
    }
  } finally {
    await emu.config({ password_no_personal_info: false, password_min_length: 10, password_block_sequential: false });
  }
});

test("re-invite: 200, created false, same user, fresh ticket", async () => {
  const first = await worker.invite(ada("again@example.com"));
  assert.equal(first.status, 201, first.text);
  const second = await worker.invite({ email: "AGAIN@example.com", roles: ["early-access"] }, { key: OTHER_KEY });
  assert.equal(second.status, 200, second.text);
  assert.equal(second.json.created, false);
  assert.equal(second.json.user_id, first.json.user_id);
  assert.notEqual(second.json.ticket_url, first.json.ticket_url);
  const users = await emu.users("again@example.com");
  assert.equal(users.length, 1);
  assert.deepEqual([...users[0].roles].sort(), ["beta-tester", "early-access"]);
});

test("a missing role is created in Auth0 on first use", async () => {
  await emu.reset();
  const w = await startWorker(emu.url);
  try {
    assert.equal((await emu.roles()).length, 0);
    const r = await w.invite({ email: "roles@example.com", roles: ["early-access"] });
    assert.equal(r.status, 201, r.text);
    const roles = await emu.roles();
    assert.deepEqual(roles.map((x) => x.name), ["early-access"]);
    assert.equal((await emu.stats()).endpoints["POST /api/v2/roles"], 1);
    assert.deepEqual((await emu.users("roles@example.com"))[0].roles, ["early-access"]);
  } finally {
    await w.stop();
  }
});

test("50 concurrent invites make exactly 1 token request; warm invites make 3 Management calls each", async () => {
  await emu.reset();
  const w = await startWorker(emu.url); // a new isolate with empty memory and empty KV
  try {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => w.invite({ email: `bulk${i}@example.com` })));
    for (const r of results) assert.equal(r.status, 201, r.text);
    assert.equal((await emu.stats()).token_requests, 1);

    await emu.resetStats();
    for (let i = 0; i < 5; i++) {
      const r = await w.invite({ email: `warm${i}@example.com` });
      assert.equal(r.status, 201, r.text);
    }
    const s = await emu.stats();
    assert.equal(s.token_requests, 0);
    assert.equal(s.management_requests, 15);
    assert.equal(s.endpoints["POST /api/v2/users"], 5);
    assert.equal(s.endpoints["POST /api/v2/users/{id}/roles"], 5);
    assert.equal(s.endpoints["POST /api/v2/tickets/password-change"], 5);
  } finally {
    await w.stop();
  }
});

test("a token in its refresh window is replaced", async () => {
  const w = await startWorker(emu.url, { TOKEN_REFRESH_MARGIN_SEC: "1" });
  try {
    await emu.config({ token_lifetime_sec: 4 });
    await emu.resetStats();
    assert.equal((await w.invite({ email: "expiry1@example.com" })).status, 201);
    assert.equal((await w.invite({ email: "expiry2@example.com" })).status, 201);
    assert.equal((await emu.stats()).token_requests, 1, "fresh token reused");
    await sleep(3_200); // refresh point: 4 s lifetime minus 1 s margin
    assert.equal((await w.invite({ email: "expiry3@example.com" })).status, 201);
    assert.equal((await emu.stats()).token_requests, 2, "refreshed");
  } finally {
    await w.stop();
  }
});

test("a revoked token gives 401, then exactly one refetch", async () => {
  assert.equal((await worker.invite({ email: "before-revoke@example.com" })).status, 201);
  await emu.revokeTokens();
  await emu.resetStats();
  const r = await worker.invite({ email: "after-revoke@example.com" });
  assert.equal(r.status, 201, r.text);
  const s = await emu.stats();
  assert.equal(s.token_requests, 1);
  assert.equal(s.endpoints["POST /api/v2/users"], 2, "the 401, then the retry");
});

test("a 429 storm within the deadline is waited out", async () => {
  assert.equal((await worker.invite({ email: "prewarm-storm@example.com" })).status, 201);
  await emu.config({ storm_429_ms: 1500 });
  const started = Date.now();
  const r = await worker.invite({ email: "storm@example.com" });
  assert.equal(r.status, 201, r.text);
  assert.ok(Date.now() - started >= 1000, "it waited for the storm");
  assert.ok((await emu.stats()).rate_limited >= 1);
});

test("a 429 storm that outlasts the deadline gives 503 with Retry-After", async () => {
  const w = await startWorker(emu.url, { UPSTREAM_DEADLINE_MS: "2000" });
  try {
    await emu.config({ storm_429_ms: 20_000 });
    const started = Date.now();
    const r = await w.invite({ email: "long-storm@example.com" });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "upstream_rate_limited");
    assert.ok(Number(r.headers.get("retry-after")) >= 1);
    assert.ok(Date.now() - started < 4_000, "bounded by the deadline");
  } finally {
    await emu.config({ storm_429_ms: 0 });
    await w.stop();
  }
});

test("an Auth0 that does not answer in time gives 502, bounded by the deadline", async () => {
  // Every call is cut off at what is left of UPSTREAM_DEADLINE_MS (the fetch's own timeout):
  // the first one takes it all, and the answer says a retry is safe.
  const w = await startWorker(emu.url, { UPSTREAM_DEADLINE_MS: "1000" });
  try {
    await emu.config({ latency_ms: 5_000 });
    const started = Date.now();
    const r = await w.invite({ email: "silent@example.com" });
    const took = Date.now() - started;
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.code, "upstream_unavailable");
    assert.ok(took >= 900 && took < 3_000, `answered after ${took} ms`);
  } finally {
    await emu.config({ latency_ms: 0 });
    await w.stop();
  }
});

test("Auth0 5xx is retried", async () => {
  await emu.config({ fail_next: 2 });
  const r = await worker.invite({ email: "flaky@example.com" });
  assert.equal(r.status, 201, r.text);
  assert.ok((await emu.stats()).faults_injected >= 2);
});

test("a wrong or missing API key gives 401 with WWW-Authenticate", async () => {
  await emu.resetStats();
  for (const headers of [{ authorization: "Bearer wrong-key-0123456789" }, { authorization: "" }, { authorization: `Basic ${API_KEY}` }]) {
    const r = await worker.invite({ email: "x@example.com" }, { headers });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error.code, "unauthorized");
    assert.match(r.headers.get("www-authenticate"), /^Bearer/);
  }
  assert.equal((await emu.stats()).management_requests, 0);
});

test("bad input gets a clear JSON error with a stable code and reaches no upstream", async () => {
  await emu.resetStats();
  const cases = [
    [JSON.stringify({ email: "a@example.com", name: "x".repeat(17_000) }), {}, 413, "payload_too_large"],
    ["{not json", {}, 400, "invalid_json"],
    [{ email: "a@example.com", emial: "typo" }, {}, 400, "unknown_field", "emial"],
    [{ name: "no email" }, {}, 422, "missing_field", "email"],
    [{ email: "not-an-email" }, {}, 422, "invalid_email", "email"],
    [{ email: `${"a".repeat(250)}@example.com` }, {}, 422, "invalid_email", "email"],
    [{ email: "a@example.com", roles: ["admin"] }, {}, 422, "role_not_allowed", "roles"],
    [{ email: "a@example.com", result_url: "https://evil.example.net/" }, {}, 422, "result_url_not_allowed", "result_url"],
    // Parsed by the runtime's URL (src/glue.js): the host is what follows the userinfo.
    [{ email: "a@example.com", result_url: "https://app.example.com@evil.example.net/" }, {}, 422, "result_url_not_allowed", "result_url"],
    [{ email: "a@example.com", result_url: "http://app.example.com/welcome" }, {}, 422, "result_url_not_allowed", "result_url"],
    [{ email: "a@example.com", ticket_ttl_sec: 5 }, {}, 422, "ttl_out_of_range", "ticket_ttl_sec"],
    [{ email: "a@example.com" }, { "content-type": "text/plain" }, 415, "unsupported_media_type"],
  ];
  for (const [body, headers, status, code, field] of cases) {
    const r = await worker.invite(body, { headers });
    assert.equal(r.status, status, `${code}: ${r.text}`);
    assert.equal(r.json.error.code, code);
    assert.equal(r.json.error.field, field);
    assert.equal(r.json.error.request_id, r.headers.get("x-request-id"));
    assert.ok(r.json.error.message.length > 0);
  }
  const get = await worker.fetch("/v1/invites");
  assert.equal(get.status, 405);
  assert.equal(get.json.error.code, "method_not_allowed");
  assert.equal(get.headers.get("allow"), "POST");
  const missing = await worker.fetch("/v1/nothing-here", { method: "POST" });
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, "not_found");
  assert.equal((await emu.stats()).management_requests, 0);
});

test("invalid configuration is reported whole, by name, never by value", async () => {
  const w = await startWorker(emu.url, {
    AUTH0_CLIENT_SECRET: undefined,
    AUTH0_BASE_URL: "http://auth0.example.com",
    INVITE_API_KEYS: "ops:tiny-k",
    DEFAULT_ROLES: "admin",
    TICKET_TTL_SEC: "1",
  }, { kv: false });
  try {
    const h = await w.fetch("/healthz");
    assert.equal(h.status, 503);
    assert.equal(h.json.status, "config_invalid");
    const problems = h.json.problems.join("\n");
    for (const needle of ["AUTH0_CLIENT_SECRET is missing", "AUTH0_BASE_URL", "INVITE_API_KEYS entry 1",
      "DEFAULT_ROLES contains 'admin'", "TICKET_TTL_SEC", "TOKEN_CACHE KV namespace binding is missing"]) {
      assert.ok(problems.includes(needle), `${needle} in ${problems}`);
    }
    assert.ok(!problems.includes("tiny-k"), "no secret values");
    // Only /healthz names the problems; every other route answers a generic 503.
    const r = await w.invite({ email: "a@example.com" });
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, "config_invalid");
    assert.ok(!r.text.includes("AUTH0_CLIENT_SECRET"), r.text);
  } finally {
    await w.stop();
  }
  const ok = await worker.fetch("/healthz");
  assert.equal(ok.status, 200);
  assert.equal(ok.json.status, "ok");
  assert.match(ok.json.warnings[0], /^TURNSTILE_SECRET_KEY is not set/);
});
