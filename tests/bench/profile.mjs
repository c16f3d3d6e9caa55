// CPU profile of the built Worker in workerd, through workerd's V8 inspector: samples a
// stretch of warm invites (or GET /healthz) and prints the functions with the most self time.
// Build with names kept (`KEEP_NAMES=1 bash scripts/build.sh`) to see Rust function names. Usage:
//   node tests/bench/profile.mjs [invite|public|<path without the leading slash>] [N]
// PROFILE_JS=1 profiles the JavaScript baseline (tests/bench/baseline-worker.js) doing its
// invite instead; PROFILE_ONLY=<text> lists only functions whose name or file holds it (e.g.
// "wasm"). Each Worker's line "by file" sums self time by where it ran: wasm, the JS glue
// (index.js, entry.mjs) or the runtime itself (native).
import WebSocket from "ws";
import { Miniflare } from "miniflare";
import { startEmulator, workerOptions, API_KEY } from "../e2e/harness.mjs";
import { baselineOptions } from "./common.mjs";

const what = process.argv[2] ?? "invite";
const N = Number(process.argv[3] ?? 300);
const PORT = 9239;
const emu = await startEmulator();
const options = workerOptions(emu.url, { AUTH0_MGMT_RPS: "1000", AUTH0_MGMT_BURST: "1000", PUBLIC_ROLES: "beta-tester" });
// Public sign-ups: keep the consumer out of the profile (it would run the invites meanwhile).
if (what === "public") options.queueConsumers.invites = { ...options.queueConsumers.invites, maxBatchSize: 100, maxBatchTimeout: 60 };
const JS = process.env.PROFILE_JS === "1";
const mf = new Miniflare(JS ? baselineOptions(emu.url, { inspectorPort: PORT }) : { ...options, inspectorPort: PORT });
await mf.ready;
const run = async (i) => {
  const r = what === "public"
    ? await mf.dispatchFetch("http://worker.test/v1/public/invites", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: `pub${i}@example.com`, name: "Pat" }) })
    : JS ? await mf.dispatchFetch("http://js.test/", { method: "POST", body: JSON.stringify({ email: `prof${i}@example.com` }) })
    : what !== "invite"
    ? await mf.dispatchFetch(`http://worker.test/${what}`)
    : await mf.dispatchFetch("http://worker.test/v1/invites", {
      method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ email: `prof${i}@example.com` }) });
  await r.text();
};
for (let i = 0; i < 20; i++) await run(-1 - i);
const targets = await (await fetch(`http://127.0.0.1:${PORT}/json`)).json();
const results = [];
for (const t of targets) {
  const ws = new WebSocket(t.webSocketDebuggerUrl);
  await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
  let id = 0; const pending = new Map();
  ws.on("message", (m) => { const d = JSON.parse(m); if (pending.has(d.id)) { pending.get(d.id)(d); pending.delete(d.id); } });
  const send = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
  results.push({ t, ws, send });
}
for (const { send } of results) { await send("Profiler.enable"); await send("Profiler.setSamplingInterval", { interval: 50 }); await send("Profiler.start"); }
for (let i = 0; i < N; i++) await run(i);
for (const { t, ws, send } of results) {
  const { result } = await send("Profiler.stop");
  const p = result.profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas; let total = 0;
  p.samples.forEach((s, i) => {
    const n = byId.get(s); const f = n.callFrame;
    const key = `${f.functionName || "(anon)"} ${f.url ? f.url.split("/").pop() : ""}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0)); total += dt[i] ?? 0;
  });
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]);
  const busy = rows.filter(([k]) => !k.startsWith("(idle)") && !k.startsWith("(program)")).reduce((s, [, v]) => s + v, 0);
  console.log(`\n== ${t.title} ${t.url ?? ""}: busy ${(busy / 1000 / N).toFixed(3)} ms per ${what} (sampled)`);
  const byFile = new Map();
  for (const [k, v] of rows) { if (k.startsWith("(idle)") || k.startsWith("(program)")) continue; const file = k.split(" ").pop() || "(native)"; const f = /\.wasm/.test(file) ? "wasm" : file; byFile.set(f, (byFile.get(f) ?? 0) + v); }
  console.log("  by file: " + [...byFile.entries()].sort((a, b) => b[1] - a[1]).map(([f, v]) => `${f} ${(v / 1000 / N).toFixed(3)}`).join(", "));
  const only = process.env.PROFILE_ONLY;
  for (const [k, v] of rows.filter(([k]) => !only || k.includes(only)).slice(0, 40)) console.log(`${(v / 1000 / N).toFixed(4).padStart(8)} ms  ${k.slice(0, 150)}`);
  // PROFILE_TOTAL=<a>,<b>: time in samples whose stack holds a function named like each.
  if (process.env.PROFILE_TOTAL) {
    const parent = new Map();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    for (const name of process.env.PROFILE_TOTAL.split(",")) {
      let t = 0;
      p.samples.forEach((s, i) => {
        for (let id = s; id; id = parent.get(id)) if (byId.get(id).callFrame.functionName.includes(name)) { t += dt[i] ?? 0; break; }
      });
      console.log(`   inclusive ${(t / 1000 / N).toFixed(4)} ms  ${name}`);
    }
  }
  // PROFILE_FOCUS=<part of a function name>: who calls it (three frames up), by self time.
  const focus = process.env.PROFILE_FOCUS;
  if (focus) {
    const parent = new Map();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const callers = new Map();
    p.samples.forEach((s, i) => {
      const n = byId.get(s);
      if (!n.callFrame.functionName.includes(focus)) return;
      const chain = [];
      for (let id = parent.get(s); id && chain.length < 3; id = parent.get(id)) chain.push(byId.get(id).callFrame.functionName.slice(0, 90));
      const k = chain.join(" <- ");
      callers.set(k, (callers.get(k) ?? 0) + (dt[i] ?? 0));
    });
    for (const [k, v] of [...callers.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`   ${(v / 1000 / N).toFixed(4)} ms  <- ${k}`);
  }
  ws.close();
}
await mf.dispose();
await emu.stop();
