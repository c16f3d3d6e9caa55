// Where the workerd process's CPU goes, native code included, for the Worker and the plain
// JavaScript baseline side by side: Linux `perf` samples each process while it serves N warm
// invites (or KIND=healthz|<path>), and the samples are grouped by what ran (our wasm and JS,
// V8's compiler, builtins and runtime, the workerd bindings, malloc, the kernel...). The V8
// inspector (profile.mjs) sees only JavaScript and wasm frames; this sees the runtime's work
// too, which is most of a request's CPU. Prints figures; asserts nothing.
//   node tests/bench/native.mjs [DIR...]     KIND=invite|healthz|<path>  N=<requests>  ROUNDS=<4>
//     AGAINST=careful  compare with careful-worker.js instead of the plain baseline
//     AGAINST=floor|cfloor  compare with the Rust floor, plain or careful (tests/bench/floor;
//                      `bash scripts/build.sh tests/bench/floor` first)
//     SYMS=<n>         also list the n native symbols that differ most, each way
// With no DIR it profiles the current build (build/ and src/entry.mjs); a DIR is laid out as
// for ab.mjs. Needs `perf` (Debian: linux-perf) and perf_event_paranoid <= 2. Figures are
// samples of `perf record -F 10000 -e cpu-clock`, N requests in ROUNDS turns, turned into ms
// per request: perf's own cost inflates them by about half, so compare rows and subjects,
// not with report.sh's figures.
// JIT code is one row: workerd offers no way to pass V8's --perf-basic-prof through
// Miniflare, so wasm and JavaScript functions are not named; the baseline's row is its JS.
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { startEmulator } from "../e2e/harness.mjs";
import { baselineOptions, carefulOptions, dirOptions, floorOptions, startSubject } from "./common.mjs";

const HZ = 10_000;
if (spawnSync("perf", ["--version"]).status !== 0) {
  console.error("native.mjs needs Linux perf (Debian: apt-get install linux-perf)");
  process.exit(1);
}
const kind = process.env.KIND ?? "invite";
const N = Number(process.env.N ?? 2000);
const ROUNDS = Number(process.env.ROUNDS ?? 4);
/** What ours is compared with (AGAINST): a name and how to start it. */
const REFERENCES = {
  js: (url) => startSubject("js", baselineOptions(url), { plain: true }),
  careful: (url) => startSubject("careful", carefulOptions(url)),
  floor: (url) => startSubject("floor", floorOptions(url), { plain: true }),
  cfloor: (url) => startSubject("cfloor", floorOptions(url, { careful: true })),
};
const against = REFERENCES[process.env.AGAINST ?? "js"];
if (!against) {
  console.error(`AGAINST must be one of ${Object.keys(REFERENCES).join(", ")}`);
  process.exit(1);
}
const SYMS = Number(process.env.SYMS ?? 0);
const dirs = process.argv.slice(2);
if (dirs.length === 0) dirs.push(".");

/** What ran, from perf's shared object and symbol. The first matching rule wins. */
const RULES = [
  ["JIT code (wasm, JS)", (dso) => dso.startsWith("[JIT]")],
  ["kernel", (dso) => dso === "[kernel.kallsyms]"],
  ["libc, other libraries", (dso) => dso !== "workerd"],
  ["wasm Liftoff frame setup", (_, s) => s.includes("WasmLiftoffFrameSetup")],
  ["V8 compiler (tier-up)", (_, s) => /compiler::|turboshaft|maglev|wasm::.*Compil/.test(s)],
  ["GC, handles", (_, s) => /Scaveng|Heap::|MarkCompact|Sweep|cppgc|HeapTracer|GlobalHandles|Traced|ArrayBufferSweeper/.test(s)],
  ["malloc (tcmalloc)", (_, s) => /tcmalloc|TCMalloc/.test(s)],
  ["V8 builtins", (_, s) => s.includes("Builtins_")],
  ["workerd bindings (jsg)", (_, s) => s.includes("jsg::")],
  ["workerd APIs", (_, s) => s.includes("workerd::api")],
  ["workerd, other", (_, s) => s.includes("workerd::")],
  ["kj (event loop, HTTP)", (_, s) => /kj::|capnp::/.test(s)],
  ["V8 runtime", (_, s) => s.includes("v8::")],
  ["other native", () => true],
];

/** Adds a perf.data file's samples to `counts` (per category) and `syms` (per native symbol). */
function categorize(file, counts, syms) {
  const out = spawnSync("perf", ["report", "-i", file, "--no-children", "--sort", "dso,sym", "-g", "none", "-q", "--stdio", "-F", "sample,dso,sym"], { encoding: "utf8", maxBuffer: 1 << 28 });
  for (const line of out.stdout.split("\n")) {
    const m = line.match(/^\s*(\d+)\s+(\[JIT\] tid \d+|\S+)\s+(.*)$/);
    if (!m) continue;
    const [name] = RULES.find(([, test]) => test(m[2], m[3]));
    counts[name] += Number(m[1]);
    const sym = m[2].startsWith("[JIT]") ? "[JIT code]" : m[3].replace(/^\[.\]\s*/, "").trim();
    syms.set(sym, (syms.get(sym) ?? 0) + Number(m[1]));
  }
}

const emu = await startEmulator();
const subjects = [];
for (const d of dirs) subjects.push(await startSubject(d === "." ? "ours" : path.basename(d), dirOptions(emu.url, d)));
subjects.push(await against(emu.url));
for (const s of subjects) s.run = (email) => s.send(kind, email);
const scratch = mkdtempSync(path.join(tmpdir(), "native-"));
try {
  for (const s of subjects) for (let i = 0; i < 100; i++) await s.run(`warm-${s.name}-${i}@example.com`);
  // In rounds whose order turns, as in ab.mjs: the VM's speed drifts during a run.
  for (const s of subjects) {
    s.counts = Object.fromEntries(RULES.map(([name]) => [name, 0]));
    s.syms = new Map();
  }
  for (let r = 0; r < ROUNDS; r++) for (let k = 0; k < subjects.length; k++) {
    const s = subjects[(k + r) % subjects.length];
    const file = path.join(scratch, `${s.name}-${r}.data`);
    const perf = spawn("perf", ["record", "-q", "-e", "cpu-clock", "-F", String(HZ), "-o", file, "-p", s.pids.join(",")], { stdio: "ignore" });
    await new Promise((res) => setTimeout(res, 500)); // perf attaches
    for (let i = 0; i < N / ROUNDS; i++) await s.run(`n-${s.name}-${r}-${i}@example.com`);
    perf.kill("SIGINT");
    await new Promise((res) => perf.on("exit", res));
    if (!existsSync(file)) throw new Error(`perf recorded nothing: is /proc/sys/kernel/perf_event_paranoid above 2? (try: perf record -e cpu-clock -p ${s.pids[0]})`);
    categorize(file, s.counts, s.syms);
  }
} finally {
  for (const s of subjects) await s.mf.dispose();
  await emu.stop();
  rmSync(scratch, { recursive: true, force: true });
}

const ms = (samples) => (samples * 1000) / HZ / N;
const base = subjects[subjects.length - 1];
const names = RULES.map(([name]) => name).filter((n) => subjects.some((s) => s.counts[n] > 0));
names.sort((a, b) => (subjects[0].counts[b] - base.counts[b]) - (subjects[0].counts[a] - base.counts[a]));
const col = (x) => x.toFixed(3).padStart(8);
console.log(`CPU per ${kind} request by what ran, ms (perf samples at ${HZ} Hz over ${N} requests; perf inflates them)`);
console.log(`${"".padEnd(26)}${subjects.map((s) => s.name.padStart(8)).join("")}${subjects.slice(0, -1).map((s) => ` ${s.name}-${base.name}`.padStart(10)).join("")}`);
for (const n of [...names, "total"]) {
  const v = (s) => (n === "total" ? Object.values(s.counts).reduce((a, b) => a + b, 0) : s.counts[n]);
  console.log(`${n.padEnd(26)}${subjects.map((s) => col(ms(v(s)))).join("")}${subjects.slice(0, -1).map((s) => `${(ms(v(s) - v(base)) >= 0 ? "+" : "") + ms(v(s) - v(base)).toFixed(3)}`.padStart(10)).join("")}`);
}
if (SYMS > 0) {
  // The symbols whose samples differ most between the first subject and the baseline.
  const first = subjects[0];
  const all = new Set([...first.syms.keys(), ...base.syms.keys()]);
  const diff = [...all].map((k) => [k, (first.syms.get(k) ?? 0) - (base.syms.get(k) ?? 0)]).sort((a, b) => b[1] - a[1]);
  console.log(`\nsymbols, ${first.name} - ${base.name}, ms per request: the ${SYMS} largest differences each way`);
  for (const [k, d] of [...diff.slice(0, SYMS), ...diff.slice(-SYMS).reverse()]) console.log(`${(d >= 0 ? "+" : "") + ms(d).toFixed(4)}  ${k.slice(0, 150)}`);
}
