// The floor's JavaScript half: one call per outbound request, per inbound body and per
// answer, as src/glue.js is for the Worker itself. Nothing else: what to send and what the
// answers mean stay in Rust (src/lib.rs).

/** POSTs or GETs `url` as the plain baseline does; resolves to the answer's bytes. */
export async function call(method, url, token, body) {
  const init = { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } };
  // The view points into wasm memory, which may move; fetch gets its own copy.
  if (body.length > 0) init.body = body.slice();
  const r = await fetch(url, init);
  return new Uint8Array(await r.arrayBuffer());
}

/** The inbound body's bytes. */
export async function readBody(request) {
  return new Uint8Array(await request.arrayBuffer());
}

/** A JSON answer. */
export function answer(status, body) {
  return new Response(body.slice(), { status, headers: { "content-type": "application/json" } });
}

/** The request's path. */
export function pathOf(request) {
  return new URL(request.url).pathname;
}

/** A random UUID, for the throwaway password. */
export function uuid() {
  return crypto.randomUUID();
}
