// CPU per invocation, by kind, against the 10 ms of CPU that Cloudflare's Workers Free plan
// allows each invocation (a request, or a queue consumer's batch). Prints figures, asserts
// nothing. Usage (after scripts/build.sh and `cargo build -p auth0-emulator`):
//   node tests/bench/invocations.mjs   R=<repetitions> BATCH=<consumer batch size> ONLY=<regex>
// (ONLY runs the kinds whose name matches, "consumer" for the queue consumer's.)
//
// Each figure is the CPU time of the whole local workerd process across one invocation: the
// Worker's isolate, and also what runs elsewhere at the edge (the gate's Durable Object, the
// local queue broker and KV) and the runtime's own I/O. So it is an upper bound of what the
// edge counts against the Worker, read the same way for every kind. Requests run one at a
// time on a warm Worker (each kind is sent W times first); the consumer's figure is a batch's
// invocation, from invites queued by one batch request, drained BATCH at a time. Last, a
// fresh Worker's first requests, ours, the JavaScript baselines' and the Rust floor's
// (COLD=<fresh Workers>).
import { Miniflare } from "miniflare";
import {
  startEmulator, workerOptions, wranglerConsumers, API_KEY, eventually, stripeSignature, STRIPE_SECRET,
} from "../e2e/harness.mjs";
import { baselineOptions, carefulOptions, cpuMs, floorOptions, pct, workerdPids } from "./common.mjs";

const R = Number(process.env.R ?? 15);
const W = Number(process.env.W ?? 10);
/** The `invites` consumer's batch size: wrangler.toml's, unless BATCH is set. */
const BATCH = Number(process.env.BATCH ?? wranglerConsumers().invites.maxBatchSize);
const FREE_MS = 10;
const only = new RegExp(process.env.ONLY ?? ".", "i");

const emu = await startEmulator();
const bindings = {
  PUBLIC_ROLES: "beta-tester",
  TURNSTILE_BASE_URL: emu.url,
  // Cloudflare's always-passing test secret; the emulator answers for Turnstile here.
  TURNSTILE_SECRET_KEY: "1x0000000000000000000000000000000AA",
  STRIPE_WEBHOOK_SECRETS: STRIPE_SECRET,
  PAYMENT_ROLES: "beta-tester",
  // The route's own ceiling, so that the batch of 1,000 is measured (a deployment's default
  // is 100, the most that fits Workers Free's 10 ms).
  BATCH_MAX_INVITES: "1000",
};

/** Starts the Worker (with or without its queue consumers) and finds its workerd processes. */
async function start(consumers) {
  const options = workerOptions(emu.url, bindings, { batchSize: BATCH });
  if (!consumers) options.queueConsumers = {};
  const before = workerdPids();
  const mf = new Miniflare(options);
  await mf.ready;
  return { mf, pids: workerdPids().filter((p) => !before.includes(p)) };
}

let n = 0;
const email = (tag) => `${tag}${n++}@example.com`;
/** Addresses the synchronous invites made accounts for, to look up. */
const made = [];
const keyed = { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" };
const json = (body) => JSON.stringify(body);

/** Each kind: a function that makes one request (a fresh address each time). */
const kinds = {
  "GET /healthz": () => ["/healthz"],
  "invite, synchronous (warm)": () => {
    made.push(email("s"));
    return ["/v1/invites", { method: "POST", headers: keyed, body: json({ email: made.at(-1) }) }];
  },
  "invite, queued (Prefer: respond-async)": () => ["/v1/invites", { method: "POST", headers: { ...keyed, prefer: "respond-async" }, body: json({ email: email("q") }) }],
  "public sign-up (with Turnstile)": () => ["/v1/public/invites", { method: "POST", headers: { "content-type": "application/json", "cf-connecting-ip": `203.0.113.${n % 200}` }, body: json({ email: email("p"), name: "Pat", "cf-turnstile-response": "token" }) }],
  "Stripe webhook": () => {
    const body = json({ id: `evt_${n}`, object: "event", type: "checkout.session.completed",
      data: { object: { object: "checkout.session", payment_status: "paid", customer_details: { email: email("w"), name: "Ada" } } } });
    return ["/v1/webhooks/stripe", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": stripeSignature(body) }, body }];
  },
  "batch of 100 invites": () => ["/v1/invites/batch", { method: "POST", headers: keyed, body: json({ invites: Array.from({ length: 100 }, () => ({ email: email("b") })) }) }],
  "batch of 1,000 invites": () => ["/v1/invites/batch", { method: "POST", headers: keyed, body: json({ invites: Array.from({ length: 1000 }, () => ({ email: email("B") })) }) }],
  "GET /v1/invitees (a page of 50)": () => ["/v1/invitees?status=pending&limit=50", { headers: keyed }],
  "GET /v1/invitees/{email}": () => [`/v1/invitees/${encodeURIComponent(made[n++ % made.length])}`, { headers: keyed }],
};

const rows = [];
const row = (kind, xs, note = "") => {
  const med = pct(xs, 0.5), max = Math.max(...xs);
  rows.push({ kind, med, max, note });
};

{
  const { mf, pids } = await start(false);
  for (const [kind, make] of Object.entries(kinds).filter(([k]) => only.test(k))) {
    const once = async () => {
      const [path, init] = make();
      const r = await mf.dispatchFetch(`http://worker.test${path}`, init);
      const text = await r.text();
      if (r.status >= 300) throw new Error(`${kind}: ${r.status} ${text.slice(0, 300)}`);
    };
    for (let i = 0; i < W; i++) await once();
    const xs = [];
    for (let i = 0; i < R; i++) {
      const c0 = cpuMs(pids);
      await once();
      xs.push(cpuMs(pids) - c0);
    }
    row(kind, xs);
  }
  await mf.dispose();
}

if (only.test("queue consumer")) {
  // The consumer: BATCH × R invites queued by one batch request, drained BATCH at a time;
  // the CPU from the request to the last account, less what the batch request itself costs
  // (the first part's "batch of 100" figure, per invite), over R invocations.
  const { mf, pids } = await start(true);
  // (Without a "batch of 100" figure from this run, the consumer's figure includes queueing.)
  const queueing = (rows.find((r) => r.kind === "batch of 100 invites")?.med ?? 0) / 100;
  const users = async () => (await emu.users()).length;
  const post = (count) => mf.dispatchFetch("http://worker.test/v1/invites/batch", {
    method: "POST", headers: keyed, body: json({ invites: Array.from({ length: count }, () => ({ email: email("c") })) }),
  }).then((r) => r.text());
  // Warm the consumer.
  let base = await users();
  await post(BATCH * 3);
  await eventually(async () => (await users()) >= base + BATCH * 3, 60_000);
  await new Promise((r) => setTimeout(r, 1500));
  const xs = [];
  for (let i = 0; i < 3; i++) {
    base = await users();
    const c0 = cpuMs(pids);
    await post(BATCH * R);
    await eventually(async () => (await users()) >= base + BATCH * R, 120_000);
    await new Promise((r) => setTimeout(r, 1500));
    xs.push((cpuMs(pids) - c0 - queueing * BATCH * R) / R);
  }
  row(`queue consumer, a batch of ${BATCH}`, xs, `(each a mean over ${R} batches)`);
  await mf.dispose();
}
if (only.test("first requests")) {
  // A fresh Worker's first requests: the health check (the configuration read, the first
  // code run), then invites (the first fetches a token and the role ids and writes KV). V8
  // compiles wasm lazily, a function when it is first called, so these carry the compiling
  // of the code they run; the JavaScript Workers' figures are the same requests to them.
  const subjects = [
    ["ours", (o) => o, (mf, e) => mf.dispatchFetch("http://worker.test/v1/invites", { method: "POST", headers: keyed, body: json({ email: e }) })],
    ["plain JS Worker", () => baselineOptions(emu.url), (mf, e) => mf.dispatchFetch("http://worker.test/", { method: "POST", body: json({ email: e }) })],
    ["careful JS Worker", () => carefulOptions(emu.url), (mf, e) => mf.dispatchFetch("http://worker.test/v1/invites", { method: "POST", headers: keyed, body: json({ email: e }) })],
    // The Rust floor (tests/bench/floor; `bash scripts/build.sh tests/bench/floor` first).
    ["Rust floor", () => floorOptions(emu.url), (mf, e) => mf.dispatchFetch("http://worker.test/", { method: "POST", body: json({ email: e }) })],
    ["careful Rust floor", () => floorOptions(emu.url, { careful: true }), (mf, e) => mf.dispatchFetch("http://worker.test/v1/invites", { method: "POST", headers: keyed, body: json({ email: e }) })],
  ];
  const COLD = Number(process.env.COLD ?? 5);
  for (const [name, options, invite] of subjects) {
    const xs = [[], [], []];
    for (let i = 0; i < COLD; i++) {
      const base = workerOptions(emu.url, bindings);
      base.queueConsumers = {};
      const before = workerdPids();
      const mf = new Miniflare(options(base));
      await mf.ready;
      const pids = workerdPids().filter((p) => !before.includes(p));
      const steps = [() => mf.dispatchFetch("http://worker.test/healthz"), () => invite(mf, email("f")), () => invite(mf, email("f"))];
      for (const [k, step] of steps.entries()) {
        const c0 = cpuMs(pids);
        const r = await step();
        const text = await r.text();
        if (r.status >= 300) throw new Error(`${name}: ${r.status} ${text.slice(0, 200)}`);
        xs[k].push(cpuMs(pids) - c0);
      }
      await mf.dispose();
    }
    row(`${name}: a fresh Worker's first request (/healthz)`, xs[0], `(${COLD} fresh Workers)`);
    row(`${name}: then its first invite`, xs[1]);
    row(`${name}: then its second invite`, xs[2]);
  }
}
await emu.stop();

console.log(`\nCPU per invocation, whole workerd process (an upper bound of the Worker's own; see the file), ms:`);
console.log(`${"kind".padEnd(58)} ${"median".padStart(7)} ${"max".padStart(7)}   Workers Free: ${FREE_MS} ms`);
for (const { kind, med, max, note } of rows) {
  const fits = max <= FREE_MS ? "fits" : med <= FREE_MS ? "median fits, max over" : "over";
  console.log(`${kind.padEnd(58)} ${med.toFixed(2).padStart(7)} ${max.toFixed(2).padStart(7)}   ${fits} ${note}`);
}
