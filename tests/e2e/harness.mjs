// Test harness: the built Worker (build/index.js + wasm) in real workerd through Miniflare,
// with real (local) KV, against the Auth0 emulator over real HTTP.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { createHmac } from "node:crypto";
import { Miniflare } from "miniflare";
import { checkResponse } from "./openapi.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const API_KEY = "e2e-invite-key-0123456789";
export const OTHER_KEY = "other-invite-key-0123456789";

/** Starts the emulator cargo built (`target/debug/auth0-emulator`, or under CARGO_TARGET_DIR) on a free port. */
export async function startEmulator(extraArgs = []) {
  const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR ?? "target");
  const bin = process.env.EMULATOR_BIN ?? path.join(targetDir, "debug/auth0-emulator");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run cargo build -p auth0-emulator`);
  const proc = spawn(bin, ["--port", "0", "--domain", "emulator.local",
    "--client-id", "dev-client-id", "--client-secret", "dev-client-secret", ...extraArgs],
    { stdio: ["ignore", "pipe", "ignore"] });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("emulator did not start in 10 s")), 10_000);
    proc.once("exit", (code) => reject(new Error(`emulator exited with ${code}`)));
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  const call = async (method, p, body) => {
    const r = await fetch(url + p, {
      method, headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
    const text = await r.text();
    return text ? JSON.parse(text) : null;
  };
  return {
    url,
    stats: () => call("GET", "/__emulator/stats"),
    reset: () => call("POST", "/__emulator/reset"),
    resetStats: () => call("POST", "/__emulator/reset-stats"),
    config: (c) => call("POST", "/__emulator/config", c),
    revokeTokens: () => call("POST", "/__emulator/revoke-tokens"),
    users: (email) => call("GET", "/__emulator/users" + (email ? `?email=${encodeURIComponent(email)}` : "")),
    roles: () => call("GET", "/__emulator/roles"),
    login: (email) => call("POST", "/__emulator/login", { email }),
    outbox: (to) => call("GET", "/__emulator/outbox" + (to ? `?to=${encodeURIComponent(to)}` : "")),
    /** A Management API call with a fresh client-credentials token, to set up accounts the
     * way Auth0 holds them (not through the Worker); resolves to `{ status, json }`. */
    mgmt: async (method, p, body) => {
      const t = await (await fetch(`${url}/oauth/token`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ grant_type: "client_credentials", client_id: "dev-client-id",
          client_secret: "dev-client-secret", audience: "https://emulator.local/api/v2/" }),
      })).json();
      const r = await fetch(url + p, {
        method, headers: { authorization: `Bearer ${t.access_token}`, "content-type": "application/json" },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await r.text();
      return { status: r.status, json: text ? JSON.parse(text) : null };
    },
    stop: () => new Promise((resolve) => { proc.once("exit", resolve); proc.kill("SIGTERM"); }),
  };
}

/** The default Worker configuration for tests, pointed at `emulatorUrl`. */
export function baseBindings(emulatorUrl) {
  return {
    AUTH0_DOMAIN: "emulator.local",
    AUTH0_BASE_URL: emulatorUrl,
    AUTH0_CLIENT_ID: "dev-client-id",
    AUTH0_CLIENT_SECRET: "dev-client-secret",
    INVITE_API_KEYS: `e2e:${API_KEY},other:${OTHER_KEY}`,
    ALLOWED_ROLES: "beta-tester,early-access",
    DEFAULT_ROLES: "beta-tester",
    AUTO_CREATE_ROLES: "true",
    RESULT_URL: "https://app.example.com/welcome",
    RESULT_URL_ALLOWLIST: "https://app.example.com",
    APP_METADATA_KEYS: "plan",
    // The emulator runs without a rate limit unless a test sets one (and these with it).
    AUTH0_MGMT_RPS: "1000",
    AUTH0_MGMT_BURST: "1000",
  };
}

/**
 * The queue consumers of wrangler.toml as Miniflare options, by queue name: every
 * `[[queues.consumers]]` table's `max_batch_size`, `max_batch_timeout`, `max_retries` and
 * `dead_letter_queue` (Miniflare runs one batch at a time, so `max_concurrency` is left out).
 */
export function wranglerConsumers() {
  const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const names = { max_batch_size: "maxBatchSize", max_batch_timeout: "maxBatchTimeout",
    max_retries: "maxRetries", dead_letter_queue: "deadLetterQueue" };
  const consumers = {};
  for (const table of toml.split(/^\[\[queues\.consumers\]\]\s*$/m).slice(1)) {
    const body = table.split(/^\[/m)[0];
    const value = (key) => body.match(new RegExp(`^${key}\\s*=\\s*(.+?)\\s*$`, "m"))?.[1];
    const queue = JSON.parse(value("queue"));
    consumers[queue] = {};
    for (const [key, name] of Object.entries(names)) {
      const v = value(key);
      if (v !== undefined) consumers[queue][name] = JSON.parse(v);
    }
  }
  return consumers;
}

/** `consumers` with the `invites` queue's batch size set to `size` (when given). */
const withBatchSize = (consumers, size) => (size === undefined ? consumers
  : { ...consumers, invites: { ...consumers.invites, maxBatchSize: size } });

/**
 * Miniflare options for the built Worker: its bindings (`baseBindings` plus `overrides`;
 * `undefined` removes one), KV, and the `PUBLIC_RATE_LIMITER` binding (`rateLimit` per minute).
 * With `http`, it is also served on a free port of 127.0.0.1; `batchSize` replaces the
 * `invites` consumer's batch size.
 */
export function workerOptions(emulatorUrl, overrides = {}, { kv = true, rateLimit = 1000, http = false, batchSize } = {}) {
  const bindings = { ...baseBindings(emulatorUrl), ...overrides };
  for (const [k, v] of Object.entries(bindings)) if (v === undefined) delete bindings[k];
  return {
    // The same main module as wrangler.toml: src/entry.mjs around build/index.js.
    scriptPath: path.join(root, "src/entry.mjs"),
    modulesRoot: root,
    modules: true,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2026-04-01",
    kvNamespaces: kv ? ["TOKEN_CACHE"] : [],
    // The same queues and Durable Object as wrangler.toml (its consumers read from it).
    queueProducers: { INVITE_QUEUE: { queueName: "invites" } },
    queueConsumers: withBatchSize(wranglerConsumers(), batchSize),
    durableObjects: { AUTH0_GATE: { className: "Auth0Gate", useSQLite: true } },
    ratelimits: { PUBLIC_RATE_LIMITER: { simple: { limit: rateLimit, period: 60 } } },
    bindings,
    ...(http ? { host: "127.0.0.1", port: 0 } : {}),
  };
}

/**
 * Starts the built Worker in workerd. `overrides` replace bindings; `undefined` removes one.
 * Every answer `fetch` (and `invite`) receives is checked against docs/openapi.json
 * (tests/e2e/openapi.mjs): one the document does not describe rejects the call. `check: false`
 * turns that off, for the benchmarks (whose timings would include it).
 */
export async function startWorker(emulatorUrl, overrides = {}, { kv = true, check = true, batchSize } = {}) {
  const mf = new Miniflare(workerOptions(emulatorUrl, overrides, { kv, batchSize }));
  await mf.ready;
  const fetchWorker = async (p, init = {}) => {
    const r = await mf.dispatchFetch("http://worker.test" + p, init);
    const text = await r.text();
    if (check) checkResponse(init.method ?? "GET", p, r.status, r.headers, text);
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, text, json };
  };
  return {
    mf,
    fetch: fetchWorker,
    invite: (body, { key = API_KEY, headers = {} } = {}) => fetchWorker("/v1/invites", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
    kvKeys: async () => (await (await mf.getKVNamespace("TOKEN_CACHE")).list()).keys.map((k) => k.name),
    /** The KV keys as listed: `{ name, expiration }`, expiration in seconds since the epoch. */
    kvList: async () => (await (await mf.getKVNamespace("TOKEN_CACHE")).list()).keys,
    stop: () => mf.dispose(),
  };
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function eventually(fn, ms = 3_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const STRIPE_SECRET = "whsec_e2e_stripe_secret";
export const STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/** A Stripe-Signature header, as Stripe computes it. */
export function stripeSignature(body, secret = STRIPE_SECRET, t = Math.floor(Date.now() / 1000)) {
  const v1 = createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
  return `t=${t},v1=${v1}`;
}

/** Standard Webhooks headers for `body`. */
export function standardHeaders(id, body, secret = STANDARD_SECRET, ts = Math.floor(Date.now() / 1000)) {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const sig = createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": `v1,${sig}` };
}

/**
 * Starts the built Worker in workerd served over real HTTP on 127.0.0.1 (a free port), for
 * a real browser: like `startWorker`, plus `PUBLIC_ROLES=beta-tester` and a generous
 * `PUBLIC_RATE_LIMITER`. `overrides` replace bindings (set `ALLOWED_ORIGINS` here);
 * `undefined` removes one. `url` is the Worker's origin, without a trailing slash.
 */
export async function startWorkerHttp(emulatorUrl, overrides = {}) {
  const mf = new Miniflare(workerOptions(emulatorUrl, { PUBLIC_ROLES: "beta-tester", ...overrides }, { http: true }));
  const ready = await mf.ready; // a URL object, e.g. http://127.0.0.1:43127/
  return { mf, url: ready.origin, stop: () => mf.dispose() };
}

// (Import declarations are hoisted: this one serves the helpers appended below.)
import http from "node:http";

/**
 * A keep-alive HTTP/1.1 client for a Worker served over real HTTP (`startWorkerHttp`), for
 * timing bursts: connections stay open between requests (no pool limit), so a request's time
 * is the Worker's answer, not TCP set-up. `request(method, path, { body, headers })` sends
 * `body` as JSON unless it is a string, and resolves to `{ status, headers, text, json, ms }`,
 * `ms` being that request's own latency (from the call to the last byte of the answer).
 * Every answer is checked against docs/openapi.json (after `ms` is taken): one the document
 * does not describe rejects the request. `close()` drops the connections.
 */
export function keepAliveClient(origin) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const request = (method, p, { body, headers = {} } = {}) => new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const h = { ...headers };
    if (payload !== undefined) {
      h["content-type"] ??= "application/json";
      h["content-length"] = Buffer.byteLength(payload);
    }
    const started = performance.now();
    const req = http.request(new URL(p, origin), { method, agent, headers: h }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const ms = performance.now() - started;
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          checkResponse(method, p, res.statusCode, res.headers, text);
        } catch (e) {
          reject(e);
          return;
        }
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json, ms });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
  return { request, close: () => agent.destroy() };
}

/**
 * Where public sign-ups for `emails` stand in the emulator: `ready` counts the addresses that
 * have a user with `role` and a change-password email; `duplicateUsers` / `duplicateEmails`
 * count users and emails beyond one per address; `lastReadyAt` is the emulator's time (ms)
 * of the last of those emails; `missing` lists the addresses not ready yet.
 */
export async function signupProgress(emu, emails, role = "beta-tester") {
  const [users, outbox] = await Promise.all([emu.users(), emu.outbox()]);
  const want = new Set(emails.map((e) => e.toLowerCase()));
  const users_ = new Map();
  const roled = new Set();
  const mails = new Map();
  let lastReadyAt = 0;
  for (const u of users) {
    if (!want.has(u.email)) continue;
    users_.set(u.email, (users_.get(u.email) ?? 0) + 1);
    if ((u.roles ?? []).includes(role)) roled.add(u.email);
  }
  for (const m of outbox) {
    if (m.kind !== "change_password" || !want.has(m.to)) continue;
    mails.set(m.to, (mails.get(m.to) ?? 0) + 1);
    lastReadyAt = Math.max(lastReadyAt, Date.parse(m.at));
  }
  const extra = (counts) => [...counts.values()].reduce((n, c) => n + Math.max(0, c - 1), 0);
  const missing = [...want].filter((e) => !(users_.has(e) && roled.has(e) && mails.has(e)));
  return {
    ready: want.size - missing.length,
    total: want.size,
    duplicateUsers: extra(users_),
    duplicateEmails: extra(mails),
    lastReadyAt,
    missing,
  };
}

/** How long the queue consumer gets to do an invite's Auth0 work and email. */
export const PROCESSED_MS = 15_000;

/**
 * Polls `probe` until `ok(value)` holds (at most `ms`) and returns the value; fails naming
 * `what` and the last value seen.
 */
export async function until(what, probe, ok, ms = PROCESSED_MS) {
  let last;
  const done = await eventually(async () => ok((last = await probe())), ms);
  if (!done) throw new Error(`${what}: not within ${ms} ms; last seen ${JSON.stringify(last)}`);
  return last;
}

/**
 * Readies a Worker served over HTTP for a timed burst of public sign-ups, over `client`
 * (`keepAliveClient`): the isolate and the gate (a status lookup of an unknown invite), the
 * public route itself (one sign-up of `warmup@example.com`, waited for until the consumer has
 * done it: its user, role and email exist), and `n` keep-alive connections. A Worker serving
 * a landing page has run that route before the burst comes; the first requests through a
 * route also run on V8's baseline wasm compiler, which is not what a burst measures. Returns
 * the local runtime's floor for a burst of `n`: the slowest of `n` no-op requests
 * (`GET /healthz`) sent at once, the median of three such rounds (one round moves by ±10 ms
 * on a busy VM).
 */
export async function readyForBurst(client, emu, n) {
  const warm = await client.request("GET", "/v1/invites/inv_0000000000000000",
    { headers: { authorization: `Bearer ${API_KEY}` } });
  if (warm.status !== 404) throw new Error(`warm-up status lookup: ${warm.status} ${warm.text}`);
  const signup = await client.request("POST", "/v1/public/invites",
    { body: { email: "warmup@example.com", name: "Warm Up" } });
  if (signup.status !== 202) throw new Error(`warm-up sign-up: ${signup.status} ${signup.text}`);
  await until("the warm-up sign-up", () => signupProgress(emu, ["warmup@example.com"]), (p) => p.ready === 1, 30_000);
  await Promise.all(Array.from({ length: n }, () => client.request("GET", "/healthz")));
  const rounds = [];
  for (let i = 0; i < 3; i++) {
    const answers = await Promise.all(Array.from({ length: n }, () => client.request("GET", "/healthz")));
    rounds.push(Math.max(...answers.map((r) => r.ms)));
  }
  return rounds.sort((a, b) => a - b)[1];
}
