// The baseline for scripts/report.sh: the plain JavaScript Worker people hand-write for this
// job. It makes the same three Management calls as a warm invite (create the user, assign the
// role, create the ticket) one after the other, with the token and the role id cached in
// module memory. No validation, pacing or retries: it is the floor, not a competitor.
let token;
let roleId;

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

async function auth0(env, method, path, body) {
  const r = await fetch(env.AUTH0_BASE_URL + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return new Response("ok");
    if (pathname !== "/") return Response.json({ error: "not_found" }, { status: 404 });
    const { email } = await request.json();
    if (!token) {
      const r = await fetch(env.AUTH0_BASE_URL + "/oauth/token", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ grant_type: "client_credentials", client_id: env.AUTH0_CLIENT_ID,
          client_secret: env.AUTH0_CLIENT_SECRET, audience: `https://${env.AUTH0_DOMAIN}/api/v2/` }),
      });
      token = (await r.json()).access_token;
    }
    if (!roleId) {
      const r = await auth0(env, "GET", "/api/v2/roles?name_filter=beta-tester");
      roleId = (r.json.find((x) => x.name === "beta-tester") ?? {}).id;
    }
    const user = await auth0(env, "POST", "/api/v2/users", {
      connection: "Username-Password-Authentication", email, email_verified: true,
      password: password(),
    });
    await auth0(env, "POST", `/api/v2/users/${encodeURIComponent(user.json.user_id)}/roles`, { roles: [roleId] });
    const ticket = await auth0(env, "POST", "/api/v2/tickets/password-change", {
      user_id: user.json.user_id, result_url: "https://app.example.com/welcome", ttl_sec: 86400,
    });
    return Response.json({ user_id: user.json.user_id, ticket_url: ticket.json.ticket }, { status: 201 });
  },
};
