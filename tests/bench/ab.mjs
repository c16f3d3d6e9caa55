// CPU per request of several builds of the Worker side by side, with the JavaScript baseline
// (tests/bench/baseline-worker.js), in one run: the way to tell whether a change to the shell
// or the core saves CPU, since CPU time on a VM drifts by a quarter between runs.
//   node tests/bench/ab.mjs DIR [DIR...]      KIND=invite|healthz|<path>  R=<rounds>
// Each DIR holds a copy of the Worker as it is deployed: src/entry.mjs and build/ (e.g.
// `mkdir -p /tmp/a/src && cp -r build /tmp/a/ && cp src/entry.mjs /tmp/a/src/` after
// scripts/build.sh, once per version). Each figure is the median over R alternating rounds of
// 200 requests of the CPU time of that build's workerd process (all threads, from
// /proc/<pid>/task/*/schedstat, in nanoseconds). Prints figures; asserts nothing.
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { Miniflare } from "miniflare";
import { startEmulator, workerOptions, API_KEY } from "../e2e/harness.mjs";
import { baselineOptions, pct, workerdPids } from "./common.mjs";
const cpuNs = (pids) => pids.reduce((sum, pid) => { try { return sum + readdirSync(`/proc/${pid}/task`).reduce((s, t) => s + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]), 0); } catch { return sum; } }, 0);
const emu = await startEmulator();
const dirs = process.argv.slice(2);
const kind = process.env.KIND ?? "invite";
const subjects = [];
for (const d of dirs) {
  const before = workerdPids();
  const o = workerOptions(emu.url, { AUTH0_MGMT_RPS: "1000", AUTH0_MGMT_BURST: "1000" });
  const mf = new Miniflare({ ...o, scriptPath: path.join(d, "src/entry.mjs"), modulesRoot: d });
  await mf.ready;
  const pids = workerdPids().filter((p) => !before.includes(p));
  const run = (e) => (kind === "invite" ? mf.dispatchFetch("http://worker.test/v1/invites", { method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ email: e }) }) : mf.dispatchFetch("http://worker.test/" + kind)).then((r) => r.text());
  subjects.push({ name: path.basename(d), mf, pids, run, xs: [] });
}
{
  const before = workerdPids();
  const js = new Miniflare(baselineOptions(emu.url));
  await js.ready;
  const pids = workerdPids().filter((p) => !before.includes(p));
  subjects.push({ name: "js", mf: js, pids, run: (e) => (kind === "invite" ? js.dispatchFetch("http://js.test/", { method: "POST", body: JSON.stringify({ email: e }) }) : js.dispatchFetch("http://js.test/" + kind)).then((r) => r.text()), xs: [] });
}
for (const s of subjects) for (let i = 0; i < 60; i++) await s.run(`warm-${s.name}-${i}@example.com`);
const R = Number(process.env.R ?? 9), PER = 200;
for (let r = 0; r < R; r++) for (const s of subjects) {
  const t = cpuNs(s.pids);
  for (let i = 0; i < PER; i++) await s.run(`r${r}-${s.name}-${i}@example.com`);
  s.xs.push((cpuNs(s.pids) - t) / PER / 1e6);
}
for (const s of subjects) console.log(`${s.name.padEnd(8)} median ${pct(s.xs, 0.5).toFixed(3)} ms  [${s.xs.map((x) => x.toFixed(2)).join(" ")}]`);
for (const s of subjects) await s.mf.dispose();
await emu.stop();
