// The JavaScript half of the Rust shell (src/platform.rs, src/lib.rs): the three things
// every request does with the runtime's objects, each as one call from Rust.
//
// Why in JavaScript: done from Rust through web-sys, each step was a string of calls across
// the wasm boundary (a Headers built one `set` at a time, five `get`s for five headers, a
// stream read as a promise, a lock and two property reads per chunk), and every awaited
// promise cost two wasm-bindgen closures and a microtask. Measured side by side in workerd,
// a minimal Rust handler making a warm invite's three calls cost about 0.4 ms of CPU more
// than the same handler in JavaScript. Here each step is one call, and strings cross once
// each way. No logic lives here: what to send, what to read and what it means stay in Rust.
//
// One more helper is here for size, not speed: `parseUrl` lends the Rust side the runtime's
// own URL parser, so the wasm carries none (the `url` crate and what it pulled in were 22.5 KB
// of the gzipped bundle).

/** Response headers the core looks at, in the order `send` returns them. */
const KEPT = ["content-type", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"];

/**
 * Sends `method url` with `headers` ("name\nvalue\n" pairs, newline-separated) and `body`
 * (bytes, empty for none). Gives up after `timeoutMs` (the request's remaining deadline).
 * Resolves to `[status, kept headers ("name\nvalue\n" pairs), body bytes]`; rejects with an
 * Error whose message says what went wrong (never the request's headers or body).
 */
export async function upstream(method, url, headers, body, timeoutMs) {
  // `redirect: "manual"`: none of these APIs redirects, and a followed 307 would post the
  // body (a client secret, a ticket link in an email) to wherever it pointed; the runtime
  // strips only `Authorization`. A 3xx comes back as what it is, an unexpected answer.
  const init = { method, headers: pairs(headers), signal: AbortSignal.timeout(timeoutMs), redirect: "manual" };
  // The view points into wasm memory, which may move; fetch gets its own copy.
  if (body.length > 0) init.body = body.slice();
  let resp, bytes;
  try {
    resp = await fetch(url, init);
    bytes = new Uint8Array(await resp.arrayBuffer());
  } catch (e) {
    if (e?.name === "TimeoutError") throw new Error(`no answer within ${timeoutMs} ms`);
    throw e instanceof Error ? e : new Error(String(e));
  }
  let kept = "";
  const got = resp.headers;
  for (const name of KEPT) {
    const value = got.get(name);
    if (value !== null) kept += `${name}\n${value}\n`;
  }
  return [resp.status, kept, bytes];
}

/** "a\n1\nb\n2\n" as [["a", "1"], ["b", "2"]]. */
function pairs(text) {
  const parts = text.split("\n");
  const out = [];
  for (let i = 0; i + 1 < parts.length; i += 2) out.push([parts[i], parts[i + 1]]);
  return out;
}

/**
 * The request's body, at most `limit` bytes: `null` when it is larger. A declared
 * `Content-Length` over the limit is refused unread, and otherwise read in one `arrayBuffer()`;
 * without one (chunked) it is read chunk by chunk and cancelled as soon as it passes the
 * limit, so an oversized body never sits in isolate memory. Rejects when it can't be read.
 */
export async function readBody(request, limit) {
  if (request.body === null) return new Uint8Array(0);
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\s*\d+\s*$/.test(declared)) {
    if (Number(declared) > limit) return null;
    const bytes = new Uint8Array(await request.arrayBuffer());
    return bytes.length > limit ? null : bytes;
  }
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      // Stop the upload here: nothing more is read or kept.
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A `Response` of `status`, `headers` ("name\nvalue\n" pairs) and `body` (bytes, empty for none). */
export function respond(status, headers, body) {
  // The view points into wasm memory, which may move; the Response gets its own copy.
  return new Response(body.length > 0 ? body.slice() : null, { status, headers: pairs(headers) });
}

/**
 * Parses `raw` as an absolute URL with the runtime's `URL` (the WHATWG URL Standard).
 * Returns "scheme\nhost\norigin\nhref", or "" when it is not an absolute URL. No part can
 * hold the separator: the parser drops tabs and newlines from its input and percent-encodes
 * what it keeps.
 */
export function parseUrl(raw) {
  let u;
  try {
    u = new URL(raw);
  } catch {
    return "";
  }
  return `${u.protocol.slice(0, -1)}\n${u.hostname}\n${u.origin}\n${u.href}`;
}

/**
 * Sends the messages in `joined` to `queue` in one `sendBatch`, each as text (the consumer
 * parses exactly what was sent; as `json`, the default, Queues would count every quote and
 * backslash twice against its 256 KB a send). `joined` is the messages' JSON texts separated
 * by "\n", which compact JSON never holds raw: one string across the boundary for the whole
 * send, where building each message from Rust took several crossings (and worker's
 * `Queue::send_batch` converts through serde-wasm-bindgen).
 */
export function sendTexts(queue, joined, delaySeconds) {
  const messages = joined.split("\n").map((body) => ({ body, contentType: "text" }));
  return queue.sendBatch(messages, delaySeconds > 0 ? { delaySeconds } : undefined);
}
