// Prints figures about the built Worker: bundle size, and warm-invite latency through workerd
// (Miniflare) against the emulator, with a no-I/O baseline (/healthz) from the same run.
// Not a test: it asserts nothing. Run with scripts/report.sh.
import { statSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { startEmulator, startWorker } from "../e2e/harness.mjs";

const N = Number(process.env.REPORT_N ?? 200);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const fmt = (ms) => `${ms.toFixed(2)} ms`;

for (const f of ["build/index_bg.wasm", "build/index.js"]) {
  const raw = statSync(f).size;
  const gz = gzipSync(readFileSync(f), { level: 9 }).length;
  console.log(`${f.padEnd(22)} ${(raw / 1024).toFixed(1).padStart(7)} KiB   gzip ${(gz / 1024).toFixed(1).padStart(6)} KiB`);
}

const emu = await startEmulator();
const worker = await startWorker(emu.url);
try {
  const time = async (fn) => { const t = performance.now(); await fn(); return performance.now() - t; };
  await worker.invite({ email: "warmup@example.com" });
  await emu.resetStats();

  const base = [];
  for (let i = 0; i < N; i++) base.push(await time(() => worker.fetch("/healthz")));
  const inv = [];
  for (let i = 0; i < N; i++) inv.push(await time(() => worker.invite({ email: `bench${i}@example.com` })));
  const s = await emu.stats();
  console.log(`\nwarm invites: ${N}, Auth0 calls per invite ${(s.management_requests / N).toFixed(2)}, token requests ${s.token_requests}`);
  console.log(`baseline GET /healthz   p50 ${fmt(pct(base, 0.5))}  p95 ${fmt(pct(base, 0.95))}`);
  console.log(`POST /v1/invites (warm) p50 ${fmt(pct(inv, 0.5))}  p95 ${fmt(pct(inv, 0.95))}  (${(pct(inv, 0.5) / pct(base, 0.5)).toFixed(1)}x baseline)`);

  // With 25 ms of latency per Auth0 call, a sequential client pays 3 x 25 ms; we pay 2.
  const LAT = 25;
  await emu.config({ latency_ms: LAT });
  const slow = [];
  for (let i = 0; i < 30; i++) slow.push(await time(() => worker.invite({ email: `slow${i}@example.com` })));
  const p50 = pct(slow, 0.5);
  console.log(`with ${LAT} ms per Auth0 call: p50 ${fmt(p50)} = ${(p50 / LAT).toFixed(2)} round trips on the critical path (sequential would be 3)`);
} finally {
  await emu.config({ latency_ms: 0 }).catch(() => {});
  await worker.stop();
  await emu.stop();
}
