// docs/openapi.json as a contract for the end-to-end suites: the document is validated
// against the OpenAPI 3.1 schema when this module loads, and `checkResponse` holds any answer
// of the Worker to it. The harness calls it on every response its clients receive, so an
// answer the document does not describe fails the test that asked for it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { Validator } from "@seriousme/openapi-schema-validator";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const DOCUMENT_FILE = path.join(root, "docs/openapi.json");
export const DOCUMENT_TEXT = readFileSync(DOCUMENT_FILE, "utf8");
export const document = JSON.parse(DOCUMENT_TEXT);

/** Validates an OpenAPI document against the OpenAPI schema; resolves to `{ valid, errors? }`. */
export async function validateDocument(doc = document) {
  // The validator may resolve references in place: hand it a copy.
  return new Validator().validate(structuredClone(doc));
}

const validity = await validateDocument();
if (!validity.valid) {
  throw new Error(`docs/openapi.json is not a valid OpenAPI document: ${JSON.stringify(validity.errors, null, 2)}`);
}

// The whole document is one schema (JSON Schema 2020-12, as OpenAPI 3.1 uses), so that the
// `$ref`s to `#/components/schemas/…` in it resolve; response schemas are compiled by pointer.
const DOCUMENT_ID = "urn:auth0-invite-worker:openapi.json";
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ ...document, $id: DOCUMENT_ID });
const validators = new Map();
const pointer = (parts) => parts.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1")).join("/");
function validatorAt(parts) {
  const at = `#/${pointer(parts)}`;
  if (!validators.has(at)) validators.set(at, ajv.compile({ $ref: DOCUMENT_ID + at }));
  return validators.get(at);
}

/** `#/components/…` in the document, as the path of keys that reaches it. */
function deref(ref) {
  if (!ref.startsWith("#/")) throw new Error(`docs/openapi.json: only local references are supported (${ref})`);
  return ref.slice(2).split("/").map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
}
const at = (parts) => parts.reduce((v, k) => v?.[k], document);

// Every JSON response schema is compiled now, not on its first use: the first compilation
// takes milliseconds, and inside a timed burst (keepAliveClient) it would delay the answers
// still arriving.
for (const [template, item] of Object.entries(document.paths)) {
  for (const [verb, op] of Object.entries(item)) {
    for (const code of Object.keys(op?.responses ?? {})) {
      let parts = ["paths", template, verb, "responses", code];
      let r = at(parts);
      while (r?.$ref) r = at((parts = deref(r.$ref)));
      if (r?.content?.["application/json"]?.schema) validatorAt([...parts, "content", "application/json", "schema"]);
    }
  }
}
for (const name of ["NotFound", "MethodNotAllowed"]) {
  validatorAt(["components", "responses", name, "content", "application/json", "schema"]);
}

const templates = Object.keys(document.paths).map((template) => ({
  template,
  exact: !template.includes("{"),
  re: new RegExp(`^${template.split("/").map((s) => (/^\{.+\}$/.test(s) ? "[^/]+" : s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("/")}$`),
}));

/** The document's path template for a concrete path (an exact path before a template). */
export function findPath(p) {
  const pathname = new URL(p, "http://worker.test").pathname;
  return (templates.find((t) => t.exact && t.template === pathname)
    ?? templates.find((t) => t.re.test(pathname)))?.template;
}

function header(headers, name) {
  if (typeof headers?.get === "function") return headers.get(name);
  const v = headers?.[name.toLowerCase()];
  return Array.isArray(v) ? v.join(", ") : v ?? null;
}

/**
 * Checks one answer of the Worker against docs/openapi.json: the operation for `method` and
 * `path` (HEAD falls back to GET's; an unlisted path must be the document's 404, a method the
 * path lacks its 405), the status, the content type and a JSON body's schema. `headers` is a
 * `Headers` or Node's header object. Throws on any mismatch.
 */
export function checkResponse(method, p, status, headers, bodyText) {
  const where = `${method} ${p} → ${status}`;
  const template = findPath(p);
  const item = template === undefined ? undefined : document.paths[template];
  const verb = method.toLowerCase();
  const op = item?.[verb] ?? (verb === "head" ? item?.get : undefined);
  let parts;
  if (op) {
    const code = String(status);
    if (!op.responses[code]) {
      throw new Error(`undescribed response: ${where} (docs/openapi.json describes ${Object.keys(op.responses).join(", ")} for ${verb === "head" && !item.head ? "get" : verb} ${template}); body: ${bodyText.slice(0, 300)}`);
    }
    parts = ["paths", template, item[verb] ? verb : "get", "responses", code];
  } else {
    const fallback = item ? ["MethodNotAllowed", 405] : ["NotFound", 404];
    if (status !== fallback[1]) {
      throw new Error(`undescribed response: ${where} (${item ? `${template} has no ${verb} operation` : "no such path in docs/openapi.json"}: only ${fallback[1]} is described)`);
    }
    parts = ["components", "responses", fallback[0]];
  }
  let described = at(parts);
  while (described?.$ref) described = at((parts = deref(described.$ref)));

  const contentType = header(headers, "content-type");
  const media = contentType?.split(";")[0].trim().toLowerCase();
  const content = described.content ?? {};
  const types = Object.keys(content);
  if (types.length === 0) {
    if (bodyText.length > 0) throw new Error(`${where}: docs/openapi.json describes no body, got ${contentType}: ${bodyText.slice(0, 300)}`);
    return;
  }
  if (method === "HEAD" && bodyText.length === 0 && !contentType) return;
  if (!types.includes(media)) {
    throw new Error(`${where}: content type ${contentType} is not described (${types.join(", ")})`);
  }
  if (method === "HEAD" || media !== "application/json") return;
  let body;
  try { body = JSON.parse(bodyText); } catch (e) {
    throw new Error(`${where}: the body is not JSON (${e.message}): ${bodyText.slice(0, 300)}`);
  }
  if (!content[media].schema) return;
  const validate = validatorAt([...parts, "content", media, "schema"]);
  if (!validate(body)) {
    throw new Error(`${where}: the body does not match docs/openapi.json: ${ajv.errorsText(validate.errors)}; body: ${bodyText.slice(0, 500)}`);
  }
}
