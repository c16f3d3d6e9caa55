// The floor's JavaScript half: one call per outbound request, per inbound body and per
// answer, as src/glue.js is for the Worker itself. Nothing else: what to send and what the
// answers mean stay in Rust (src/lib.rs).

/** Response headers the careful route reads, as ours and tests/bench/careful-worker.js do. */
const KEPT = ["content-type", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"];

/**
 * Sends `method url` as the plain baseline does (with `timeoutMs` > 0, as the careful one
 * does: a timeout, and the headers in KEPT read). Resolves to `[status, kept headers
 * ("name\nvalue\n" pairs), body bytes]`.
 */
export async function call(method, url, token, body, timeoutMs) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const init = { method, headers };
  if (timeoutMs > 0) init.signal = AbortSignal.timeout(timeoutMs);
  // The view points into wasm memory, which may move; fetch gets its own copy.
  if (body.length > 0) init.body = body.slice();
  const r = await fetch(url, init);
  const bytes = new Uint8Array(await r.arrayBuffer());
  let kept = "";
  if (timeoutMs > 0) {
    for (const name of KEPT) {
      const v = r.headers.get(name);
      if (v !== null) kept += `${name}\n${v}\n`;
    }
  }
  return [r.status, kept, bytes];
}

/** The inbound body's bytes. */
export async function readBody(request) {
  return new Uint8Array(await request.arrayBuffer());
}

/** A JSON answer; with a request id, with the careful route's headers. */
export function answer(status, body, requestId) {
  const headers = { "content-type": "application/json" };
  if (requestId) {
    headers["content-type"] = "application/json; charset=utf-8";
    headers["x-request-id"] = requestId;
    headers["cache-control"] = "no-store";
  }
  return new Response(body.slice(), { status, headers });
}

/** The request's method and path, as "METHOD /path". */
export function route(request) {
  return `${request.method} ${new URL(request.url).pathname}`;
}

/** One request header ("" when absent). */
export function header(request, name) {
  return request.headers.get(name) ?? "";
}

/** A random UUID, for the throwaway password. */
export function uuid() {
  return crypto.randomUUID();
}

/** A log line. */
export function log(line) {
  console.log(line);
}
