// What the benchmark commands share: the JavaScript baseline Worker's Miniflare options, the
// workerd processes to read CPU time from, and percentiles.
import { readFileSync, readdirSync } from "node:fs";
import { baseBindings } from "../e2e/harness.mjs";

/**
 * Miniflare options for the plain JavaScript Worker (tests/bench/baseline-worker.js) against
 * the emulator at `emulatorUrl`, with the same Auth0 settings as ours; `extra` adds options.
 */
export function baselineOptions(emulatorUrl, extra = {}) {
  const { AUTH0_BASE_URL, AUTH0_DOMAIN, AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET } = baseBindings(emulatorUrl);
  return {
    modules: true,
    scriptPath: new URL("./baseline-worker.js", import.meta.url).pathname,
    compatibilityDate: "2026-04-01",
    bindings: { AUTH0_BASE_URL, AUTH0_DOMAIN, AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET },
    ...extra,
  };
}

/** The workerd processes running now (Linux /proc), by pid. */
export const workerdPids = () => readdirSync("/proc").filter((d) => /^\d+$/.test(d)).filter((pid) => {
  try { return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("workerd"); } catch { return false; }
});

/**
 * CPU time of `pids` (all their threads) in ms, from /proc/<pid>/task/<tid>/schedstat, whose
 * first field is nanoseconds on the CPU. /proc/<pid>/stat counts 10 ms clock ticks, a tenth
 * of a 200-request round of health checks.
 */
export const cpuMs = (pids) => pids.reduce((sum, pid) => {
  try {
    return sum + readdirSync(`/proc/${pid}/task`).reduce((s, t) => s + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]), 0) / 1e6;
  } catch { return sum; }
}, 0);

/** The `p` quantile (0..1) of `xs`. */
export const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
