// docs/openapi.json: served by the Worker, a valid OpenAPI 3.1 document, and strict enough
// that an answer it does not describe fails (the harness checks every answer against it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEmulator, startWorker } from "./harness.mjs";
import { checkResponse, document, validateDocument } from "./openapi.mjs";

let emu, w;
before(async () => {
  emu = await startEmulator();
  w = await startWorker(emu.url);
});
after(async () => {
  await w?.stop();
  await emu?.stop();
});

test("GET /openapi.json serves the document, cacheable", async () => {
  const r = await w.fetch("/openapi.json");
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "application/json");
  assert.equal(r.headers.get("cache-control"), "public, max-age=3600");
  assert.deepEqual(r.json, document);
  const head = await w.fetch("/openapi.json", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.text, "");
  const post = await w.fetch("/openapi.json", { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});

test("the document is a valid OpenAPI 3.1 document", async () => {
  assert.equal(document.openapi, "3.1.0");
  assert.deepEqual(await validateDocument(), { valid: true });
  const broken = structuredClone(document);
  delete broken.info;
  assert.equal((await validateDocument(broken)).valid, false, "the validator does refuse a broken one");
});

test("an answer the document does not describe is refused", () => {
  const json = { "content-type": "application/json; charset=utf-8" };
  const ok = JSON.stringify({ status: "ok" });
  checkResponse("GET", "/healthz", 200, json, ok);
  checkResponse("HEAD", "/healthz", 200, json, "");
  assert.throws(() => checkResponse("GET", "/healthz", 418, json, ok), /undescribed response/);
  assert.throws(() => checkResponse("POST", "/v1/invites", 204, {}, ""), /undescribed response/);
  assert.throws(() => checkResponse("GET", "/nowhere", 200, json, ok), /undescribed response/);
  assert.throws(() => checkResponse("DELETE", "/healthz", 200, json, ok), /undescribed response/);
  // A described status with the wrong body or content type is refused too.
  assert.throws(() => checkResponse("GET", "/healthz", 200, json, JSON.stringify({ status: "fine" })), /does not match/);
  assert.throws(() => checkResponse("GET", "/healthz", 200, { "content-type": "text/plain" }, "ok"), /content type/);
  const error = (code) => JSON.stringify({ error: { code, message: "m", request_id: "r" } });
  checkResponse("GET", "/v1/invites/inv_1", 404, json, error("not_found"));
  assert.throws(() => checkResponse("GET", "/v1/invites/inv_1", 404, json, error("no_such_code")), /does not match/);
});
