// CPU per request of several builds of the Worker side by side, with the JavaScript baseline
// (tests/bench/baseline-worker.js), in one run: the way to tell whether a change to the shell
// or the core saves CPU, since CPU time on a VM drifts by a quarter between runs.
//   node tests/bench/ab.mjs DIR [DIR...]      KIND=invite|healthz|<path>  R=<rounds>
//                                             PER=<requests a round>  LAT=<emulator ms a call>
//                                             WARM=<requests each first, 60>
//                                             FLOOR=1 (the Rust floor, plain and careful, as well)
// Each DIR holds a copy of the Worker as it is deployed: src/entry.mjs and build/ (e.g.
// `mkdir -p /tmp/a/src && cp -r build /tmp/a/ && cp src/entry.mjs /tmp/a/src/` after
// scripts/build.sh, once per version). A DIR may also hold a plain JavaScript Worker as
// src/entry.mjs, to take the baseline apart the same way. Each figure is the median over R
// rounds of PER (200) requests of the CPU time of that build's workerd process (all threads, from
// /proc/<pid>/task/*/schedstat, in nanoseconds), and the median of its ratio to the
// baseline's figure in the same round. Prints figures; asserts nothing.
import path from "node:path";
import { startEmulator } from "../e2e/harness.mjs";
import { baselineOptions, cpuMs, dirOptions, floorOptions, pct, startSubject } from "./common.mjs";
const emu = await startEmulator();
// With latency, invites overlap less with the pacer's leases (report.sh runs at 25 ms).
if (process.env.LAT) await emu.config({ latency_ms: Number(process.env.LAT) });
const dirs = process.argv.slice(2);
const kind = process.env.KIND ?? "invite";
const subjects = [];
for (const d of dirs) subjects.push(await startSubject(path.basename(d), dirOptions(emu.url, d)));
// The Rust floor (tests/bench/floor; `bash scripts/build.sh tests/bench/floor` first).
if (process.env.FLOOR === "1") {
  subjects.push(await startSubject("floor", floorOptions(emu.url), { plain: true }));
  if (kind === "invite") subjects.push(await startSubject("cfloor", floorOptions(emu.url, { careful: true })));
}
subjects.push(await startSubject("js", baselineOptions(emu.url), { plain: true }));
for (const s of subjects) {
  s.run = (email) => s.send(kind, email);
  s.xs = [];
}
const WARM = Number(process.env.WARM ?? 60);
for (const s of subjects) for (let i = 0; i < WARM; i++) await s.run(`warm-${s.name}-${i}@example.com`);
const R = Number(process.env.R ?? 9), PER = Number(process.env.PER ?? 200);
// The order turns every round, so that no build always runs just after another or at the
// same point of a round; CPU time on this VM drifts within a run too.
for (let r = 0; r < R; r++) for (let k = 0; k < subjects.length; k++) {
  const s = subjects[(k + r) % subjects.length];
  const t = cpuMs(s.pids);
  for (let i = 0; i < PER; i++) await s.run(`r${r}-${s.name}-${i}@example.com`);
  s.xs.push((cpuMs(s.pids) - t) / PER);
}
// The paired figure: each build's CPU over the baseline's in the same round, the median of
// those ratios. It holds still when the machine speeds up or slows down during the run.
const base = subjects[subjects.length - 1];
for (const s of subjects) {
  const ratio = pct(s.xs.map((x, r) => x / base.xs[r]), 0.5);
  console.log(`${s.name.padEnd(8)} median ${pct(s.xs, 0.5).toFixed(3)} ms  ${ratio.toFixed(3)}× js  [${s.xs.map((x) => x.toFixed(2)).join(" ")}]`);
}
for (const s of subjects) await s.mf.dispose();
await emu.stop();
