// A second baseline for scripts/report.sh: the plain JavaScript Worker
// (baseline-worker.js) with the care a production Worker needs and ours has, so that the
// report can tell the cost of Rust and wasm apart from the cost of that care. Per request: the
// API key compared in constant time, the address checked, a request id, one JSON log line,
// and an answer with `x-request-id` and `cache-control`. Per Management call: a timeout
// (the time left to a 10 s deadline), the status checked, and the headers ours reads
// (content type, Retry-After, the three rate-limit headers). Still no pacing, retries,
// idempotency or role management: it is a yardstick, not a competitor.
// It takes the same request and bindings as ours: POST /v1/invites, `INVITE_API_KEYS`.
let token;
let roleId;
let keys;
const KEPT = ["content-type", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"];
const enc = new TextEncoder();

class Upstream extends Error {}

/**
 * A throwaway password Auth0's "excellent" policy takes: "Aa1!" and a UUID, drawn again while
 * it holds three identical characters in a row (about one UUID in twelve does, and the
 * emulator, like Auth0, answers that with 400 PasswordStrengthError).
 */
function password() {
  for (;;) {
    const p = "Aa1!" + crypto.randomUUID();
    if (!/(.)\1\1/.test(p)) return p;
  }
}

async function call(env, deadline, method, path, body, auth = true) {
  const headers = { "content-type": "application/json" };
  if (auth) headers.authorization = `Bearer ${token}`;
  const r = await fetch(env.AUTH0_BASE_URL + path, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
  });
  const text = await r.text();
  const kept = {};
  const h = r.headers;
  for (const name of KEPT) {
    const v = h.get(name);
    if (v !== null) kept[name] = v;
  }
  if (r.status >= 400 && r.status !== 409) throw new Upstream(`${method} ${path}: ${r.status}`);
  return { status: r.status, kept, json: text ? JSON.parse(text) : null };
}

function keyMatches(env, header) {
  keys ??= (env.INVITE_API_KEYS ?? "").split(",").map((e) => enc.encode(e.slice(e.indexOf(":") + 1)));
  const presented = enc.encode(header.startsWith("Bearer ") ? header.slice(7) : "");
  let ok = false;
  for (const k of keys) if (k.length === presented.length && crypto.subtle.timingSafeEqual(k, presented)) ok = true;
  return ok;
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function answer(status, body, requestId) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "x-request-id": requestId, "cache-control": "no-store" },
  });
}

export default {
  async fetch(request, env) {
    const started = Date.now();
    const requestId = hex(crypto.getRandomValues(new Uint8Array(8)));
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return answer(200, { status: "ok" }, requestId);
    if (pathname !== "/v1/invites" || request.method !== "POST") return answer(404, { error: { code: "not_found" } }, requestId);
    let status = 201, body;
    try {
      if (!keyMatches(env, request.headers.get("authorization") ?? "")) {
        status = 401;
        body = { error: { code: "unauthorized", request_id: requestId } };
      } else {
        const input = await request.json().catch(() => null);
        const email = typeof input?.email === "string" ? input.email.trim().toLowerCase() : "";
        if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) || email.length > 254) {
          status = 400;
          body = { error: { code: "invalid_email", request_id: requestId } };
        } else {
          const deadline = started + 10_000;
          if (!token) {
            const r = await call(env, deadline, "POST", "/oauth/token", {
              grant_type: "client_credentials", client_id: env.AUTH0_CLIENT_ID,
              client_secret: env.AUTH0_CLIENT_SECRET, audience: `https://${env.AUTH0_DOMAIN}/api/v2/`,
            }, false);
            token = r.json.access_token;
          }
          if (!roleId) {
            const r = await call(env, deadline, "GET", "/api/v2/roles?name_filter=beta-tester");
            roleId = (r.json.find((x) => x.name === "beta-tester") ?? {}).id
              ?? (await call(env, deadline, "POST", "/api/v2/roles", { name: "beta-tester" })).json.id;
          }
          const user = await call(env, deadline, "POST", "/api/v2/users", {
            connection: "Username-Password-Authentication", email, email_verified: true,
            password: password(),
          });
          await call(env, deadline, "POST", `/api/v2/users/${encodeURIComponent(user.json.user_id)}/roles`, { roles: [roleId] });
          const ticket = await call(env, deadline, "POST", "/api/v2/tickets/password-change", {
            user_id: user.json.user_id, result_url: "https://app.example.com/welcome", ttl_sec: 86400,
          });
          body = { user_id: user.json.user_id, email, ticket_url: ticket.json.ticket };
        }
      }
    } catch (e) {
      if (!(e instanceof Upstream) && e?.name !== "TimeoutError") throw e;
      status = 502;
      body = { error: { code: "upstream_unavailable", request_id: requestId } };
    }
    console.log(JSON.stringify({ level: status >= 500 ? "error" : status >= 400 ? "warn" : "info", request_id: requestId, method: "POST", route: pathname, status, duration_ms: Date.now() - started }));
    return answer(status, body, requestId);
  },
};
