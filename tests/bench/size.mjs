// The bundle's size: what `wrangler deploy` uploads for the Worker (the wasm and the JS around
// it), each gzipped at level 9. Prints the figures; with --check, exits 1 above the budget.
// scripts/test.sh runs it with --check after the build; scripts/report.sh prints it.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

/**
 * The ceiling the test command enforces, in bytes gzipped (wasm + JS). It is the size the
 * bundle has today plus a small margin, so that growth is a decision, not an accident.
 * Issue #9's goal is 200 KB; see the README's performance section for where it stands.
 * +8,000 B: the embedded OpenAPI document (docs/openapi.json, served at GET /openapi.json;
 * measured +7,024 B, from 300,615 to 307,639 B).
 * +16,000 B: the invitee lifecycle (list, look-up, resend, revoke, verification; issue #10),
 * measured +24,635 B, from 308,017 to 332,652 B, of which 3,250 B are its OpenAPI text.
 * -16,000 B: shell glue in JavaScript (src/glue.js) and no float parser (the two `f64` parses
 * were its only users, with a 17 KB table), measured from 330,986 to 316,156 B.
 * -22,000 B: URLs parsed by the runtime's own `URL` (src/glue.js) instead of the `url` crate,
 * measured from 316,059 to 293,551 B.
 * -10,000 B: email addresses lower-cased as ASCII (they are accepted only as ASCII), which
 * took Unicode's case tables out, measured from 293,551 to 282,835 B.
 * -2,000 B: the OpenAPI document embedded without its indentation (core/build.rs), measured
 * from 282,835 to 281,186 B.
 * -3,000 B: the gate's Durable Object class exports `fetch` only (`#[durable_object(fetch)]`),
 * not the alarm, connect and WebSocket handlers it never uses, measured from 281,186 to
 * 277,780 B.
 * +3,000 B: nothing lost when a queue send or the gate fails (a reliability audit: the gate
 * withdraws what was not queued, a batch names its unsent items, an outcome is recorded,
 * tried three times, before its message is acknowledged), measured from 277,763 to
 * 281,031 B; of it, trying the outcome three times instead of once is about 620 B.
 * +2,000 B: the other fixes of those audits (revoke retires sent links, batches sent in
 * pieces Queues takes, the consumer's KV writes, configuration checks, unquoted [vars], a
 * payment's Stripe modes), measured from 281,031 to 282,753 B.
 * +3,000 B: the fixes of a second round of audits (a gate call answered whole or not at all;
 * an emailed link's idempotency key per link; a failed invite's email window taken over;
 * Turnstile's token length, error codes and hostnames; a scope-refused token replaced; a
 * batch's repeated address refused), measured from 282,662 to 285,603 B; with what a fuzz
 * and a review of them found (metadata depth, a batch's other keys, a send in progress
 * retried as it is, no blind KV delete), 287,860 B.
 * +2,000 B: what an audit of the docs against the code found in the code (AUTH0_CONNECTION
 * checked with the configuration, an invite waiting for a valid configuration says so, no
 * `paced` code), measured from 287,860 to 288,172 B; the margin is for the next fix.
 * +2,000 B: what a model test of interleavings found (a revoke holds the email windows and
 * every sender claims its window again before it sends; a withdrawn invite's tombstone; a
 * re-drive's re-fail tried three times; no send without a claim), measured from 288,172 to
 * 290,297 B.
 * +3,000 B: what a third round of audits found (an invite the gate recorded but no queue
 * message carries is sent again by a duplicate delivery or a retry; anonymous invites book the
 * pacer at most 2 s ahead and wait in the consumer; the repository's example secrets refused
 * against a real tenant; metadata field names Auth0 refuses; a role assignment's 400 taken
 * as stale ids once), measured from 290,681 to 293,802 B; with what a review of them found
 * (a dead letter waits for another copy's lease; a neutral greeting for payments), 294,221 B.
 * (A check of buyers' names with Unicode's `is_alphanumeric` had cost 2,000 B more.)
 * +1,000 B: what a review of version skew and a run of the docs' examples found (a record the
 * gate can't read is an error, not a missing one; only `Claimed` claims a window; a batch of
 * refused items names no batch; an unexpanded shell command as an API key), measured from
 * 294,221 to 295,266 B.
 * -2,000 B: a batch's queue sends as one `sendBatch` of text messages through src/glue.js
 * instead of worker's `Queue::send_batch` (which converts through serde-wasm-bindgen),
 * measured from 295,827 to 293,475 B.
 * +1,000 B: a throwaway password holds none of the invitee's personal data (Auth0's
 * "Personal Data" password option refused one-letter local parts nearly two times in three),
 * measured from 293,481 to 294,117 B.
 * +1,000 B: a batch's size a setting (`BATCH_MAX_INVITES`, 100 by default, for Workers
 * Free's 10 ms), a 429's pause kept in the gate's storage across the object's replacement,
 * and emailed invites leaving a synchronous invite room at any rate, with a `/healthz`
 * warning where the deadline can't (at 0.5 calls a second, anonymous sign-ups could refuse
 * every synchronous invite at the default deadline), measured from 294,817 to 295,341 B; with
 * a role named in Auth0 in another case reported by that name (it was a 502 "retrying is
 * safe"), 295,835 B.
 * -20,000 B: release builds without Rust's panic machinery (scripts/build.sh: a pinned
 * nightly, build-std, -Cpanic=immediate-abort -Zlocation-detail=none), measured from 295,818
 * to 274,479 B. A `STABLE=1` build is over this budget by design: it is for reading a panic.
 * -3,000 B: KV read and written on the raw binding instead of `worker::kv` (its put options
 * go through serde-wasm-bindgen), measured from 274,479 to 271,154 B.
 * -2,000 B: the dead-letter path's one `serde_json::from_str` made `from_slice` (it had brought
 * serde_json's second reader back; clippy.toml now bans `from_str`), measured from 271,154 to
 * 269,165 B.
 */
export const BUDGET_GZIP_BYTES = 271_000;

export const FILES = ["build/index_bg.wasm", "build/index.js", "src/entry.mjs"];

export function bundleSizes() {
  const rows = FILES.map((f) => {
    const raw = readFileSync(f);
    return { file: f, raw: raw.length, gzip: gzipSync(raw, { level: 9 }).length };
  });
  const total = rows.reduce((s, r) => ({ raw: s.raw + r.raw, gzip: s.gzip + r.gzip }), { raw: 0, gzip: 0 });
  return { rows, total };
}

export function printSizes({ rows, total }) {
  const kib = (n) => `${(n / 1024).toFixed(1).padStart(7)} KiB`;
  for (const r of rows) console.log(`${r.file.padEnd(22)} ${kib(r.raw)}   gzip ${kib(r.gzip)}`);
  console.log(`${"bundle".padEnd(22)} ${kib(total.raw)}   gzip ${kib(total.gzip)} (${total.gzip} B; budget ${BUDGET_GZIP_BYTES} B, goal 200 KB)`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = bundleSizes();
  printSizes(sizes);
  if (process.argv.includes("--check") && sizes.total.gzip > BUDGET_GZIP_BYTES) {
    console.error(`bundle is ${sizes.total.gzip} B gzipped, over the budget of ${BUDGET_GZIP_BYTES} B (tests/bench/size.mjs)`);
    process.exit(1);
  }
}
