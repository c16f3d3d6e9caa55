// Burst benchmark: N public sign-ups at once against the built Worker (workerd via Miniflare,
// served over real HTTP), with the Auth0 emulator limited to LIMIT Management calls per second
// (burst LIMIT) and the Worker's pacer set to the same rate. Waits until every address has its
// user, its role and one email, then prints what it took against the goals. A report, not a
// test: it exits 0 whether or not the goals are met. Run with scripts/burst.sh [N] [LIMIT].
// BURST_VERBOSE=1 also shows the Worker's log lines. EMULATOR_RATE=essentials limits the
// emulator like an Essentials or Professional tenant (groups of endpoints; see its README)
// instead of LIMIT:LIMIT, and PACER=RPS:BURST sets the Worker's pacer instead of LIMIT:LIMIT:
// `EMULATOR_RATE=essentials PACER=2.5:10 scripts/burst.sh 60 2.5` tries the README's advice.
import { Miniflare } from "miniflare";
import {
  startEmulator, workerOptions, keepAliveClient, signupProgress, sleep, readyForBurst,
} from "../e2e/harness.mjs";
import { pct } from "./common.mjs";

const N = Number(process.argv[2] ?? 60);
const LIMIT = Number(process.argv[3] ?? 2);
if (!Number.isInteger(N) || N < 1 || !(LIMIT > 0)) {
  console.error("usage: burst.mjs [N >= 1] [LIMIT > 0]");
  process.exit(2);
}
const ROLE = "beta-tester";
const EMULATOR_RATE = process.env.EMULATOR_RATE ?? `${LIMIT}:${LIMIT}`;
const [PACER_RPS, PACER_BURST] = (process.env.PACER ?? `${LIMIT}:${LIMIT}`).split(":");
const WAIT_MS = Math.ceil((N * 3) / LIMIT + 60) * 1000;
const GOAL = { rate: 0.95, rateLimited: 0.01, answerMs: 100 };

const verdict = (ok) => (ok ? "goal met" : "goal missed");

// The Worker's log lines: kept out of the table (shown with BURST_VERBOSE=1), and the
// consumer's outcomes counted.
const outcomes = {};
function handleRuntimeStdio(stdout, stderr) {
  for (const stream of [stdout, stderr]) {
    let buf = "";
    stream.on("data", (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (process.env.BURST_VERBOSE === "1") console.log(line);
        try {
          const j = JSON.parse(line);
          if (j.event === "invite_processed") outcomes[j.outcome] = (outcomes[j.outcome] ?? 0) + 1;
        } catch { /* not a JSON line */ }
      }
    });
  }
}

const emu = await startEmulator(["--quiet"]);
let mf;
let client;
try {
  await emu.config({ rate_limit: EMULATOR_RATE });
  mf = new Miniflare({
    ...workerOptions(emu.url, {
      PUBLIC_ROLES: ROLE, AUTH0_MGMT_RPS: PACER_RPS, AUTH0_MGMT_BURST: PACER_BURST,
    }, { http: true, rateLimit: Math.max(1000, N * 2) }),
    handleRuntimeStdio,
  });
  const origin = (await mf.ready).origin;
  client = keepAliveClient(origin);

  // A Worker that has served the route before (the isolate, the gate, one sign-up done, N
  // keep-alive connections; see `readyForBurst`), and the local runtime's own floor for a
  // burst of N: the slowest of N no-op requests at once.
  const floor = await readyForBurst(client, emu, N);
  for (const k of Object.keys(outcomes)) delete outcomes[k]; // the warm-up's
  await emu.resetStats();

  const width = String(N - 1).length;
  const emails = Array.from({ length: N }, (_, i) => `burst${String(i).padStart(width, "0")}@example.com`);
  const firstRequestAt = Date.now();
  const answers = await Promise.all(emails.map((email, i) =>
    client.request("POST", "/v1/public/invites", { body: { email, name: `Burst ${i}` } })));
  const ms = answers.map((r) => r.ms);
  const accepted = answers.filter((r) => r.status === 202).length;
  const others = {};
  for (const r of answers) if (r.status !== 202) others[r.status] = (others[r.status] ?? 0) + 1;

  // Drain: until every address has its user, its role and its email (or the wait runs out).
  const deadline = Date.now() + WAIT_MS;
  let progress = await signupProgress(emu, emails, ROLE);
  let stats = await emu.stats();
  while (progress.ready < N && Date.now() < deadline) {
    await sleep(250);
    [progress, stats] = await Promise.all([signupProgress(emu, emails, ROLE), emu.stats()]);
  }
  const drained = progress.ready === N;
  const drainMs = (drained ? progress.lastReadyAt : Date.now()) - firstRequestAt;
  // Counted over the drain window, from the stats read when the last address was ready.
  const calls = stats.management_requests;
  const rateLimited = stats.rate_limited;
  await sleep(2_000); // late arrivals would be duplicates
  const settled = await signupProgress(emu, emails, ROLE);

  const perSec = calls / (drainMs / 1000);
  const ratio = perSec / LIMIT;
  const share429 = calls ? rateLimited / calls : 0;
  const maxMs = Math.max(...ms);
  const dupes = settled.duplicateUsers + settled.duplicateEmails;

  const rows = [
    ["invites completed", `${settled.ready} / ${N}${drained ? "" : ` (gave up after ${WAIT_MS / 1000} s)`}`, "", ""],
    ["answers 202", `${accepted} / ${N}${Object.keys(others).length ? ` (others: ${JSON.stringify(others)})` : ""}`, "", ""],
    ["answer latency max", `${maxMs.toFixed(1)} ms`, `<= ${GOAL.answerMs} ms`, verdict(accepted === N && maxMs <= GOAL.answerMs)],
    ["answer latency p50", `${pct(ms, 0.5).toFixed(1)} ms`, "", ""],
    [`  (floor: ${N} no-op requests)`, `${floor.toFixed(1)} ms`, "", ""],
    ["time to drain", `${(drainMs / 1000).toFixed(1)} s`, "", ""],
    ["Management calls", `${calls} (${(calls / N).toFixed(2)} per invite)`, "", ""],
    ["Management calls per second", `${perSec.toFixed(2)} = ${(ratio * 100).toFixed(1)}% of ${LIMIT}`, `>= ${GOAL.rate * 100}%`, verdict(drained && ratio >= GOAL.rate)],
    ["429s received", `${rateLimited} = ${(share429 * 100).toFixed(2)}% of calls`, `<= ${GOAL.rateLimited * 100}%`, verdict(share429 <= GOAL.rateLimited)],
    ["duplicates (users / emails)", `${settled.duplicateUsers} / ${settled.duplicateEmails}`, "0", verdict(dupes === 0)],
    ["consumer outcomes", Object.entries(outcomes).map(([k, v]) => `${k} ${v}`).join(", ") || "-", "", ""],
  ];
  const w = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c].length)));
  console.log(`\nburst: ${N} public sign-ups at once; Auth0 emulator ${EMULATOR_RATE}; Worker pacer ${PACER_RPS}/${PACER_BURST}\n`);
  console.log(`${"measure".padEnd(w[0])}  ${"value".padEnd(w[1])}  goal`);
  for (const [a, b, c, d] of rows) console.log(`${a.padEnd(w[0])}  ${b.padEnd(w[1])}  ${c.padEnd(w[2])}  ${d}`.trimEnd());
  if (!drained) console.log(`\nnot ready: ${progress.missing.slice(0, 10).join(", ")}${progress.missing.length > 10 ? ", …" : ""}`);
  console.log(`\nlatency: each request's own time over kept-alive HTTP connections; the floor is what the`);
  console.log(`same burst of no-op requests costs in this single-threaded local runtime.`);
} finally {
  client?.close();
  await mf?.dispose();
  await emu.stop();
}
