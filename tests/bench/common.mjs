// What the benchmark commands share: the JavaScript baselines' Miniflare options, starting a
// Worker in workerd processes of its own and sending it requests, the workerd processes to
// read CPU time from, and percentiles.
import path from "node:path";
import { readFileSync, readdirSync } from "node:fs";
import { Miniflare } from "miniflare";
import { API_KEY, baseBindings, workerOptions } from "../e2e/harness.mjs";

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

/**
 * Miniflare options for the careful JavaScript Worker (tests/bench/careful-worker.js): the
 * plain baseline's bindings and the API key, so it takes the same request as ours.
 */
export function carefulOptions(emulatorUrl, extra = {}) {
  const plain = baselineOptions(emulatorUrl);
  return {
    ...plain,
    scriptPath: new URL("./careful-worker.js", import.meta.url).pathname,
    bindings: { ...plain.bindings, INVITE_API_KEYS: `bench:${API_KEY}` },
    ...extra,
  };
}

/**
 * Miniflare options for the Rust floor (tests/bench/floor: both JavaScript baselines in lean
 * Rust, built by `bash scripts/build.sh tests/bench/floor`), with the plain baseline's bindings,
 * and with `careful` the careful one's (the API key): it takes either baseline's request.
 */
export function floorOptions(emulatorUrl, { careful = false } = {}) {
  const dir = new URL("./floor", import.meta.url).pathname;
  return (careful ? carefulOptions : baselineOptions)(emulatorUrl, {
    scriptPath: path.join(dir, "src/entry.mjs"),
    modulesRoot: dir,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
  });
}

/**
 * Miniflare options for a copy of our Worker in `dir` (its src/entry.mjs and build/), unpaced
 * (`AUTH0_MGMT_RPS=1000`) as the benchmarks run it.
 */
export function dirOptions(emulatorUrl, dir) {
  const o = workerOptions(emulatorUrl, { AUTH0_MGMT_RPS: "1000", AUTH0_MGMT_BURST: "1000" });
  return { ...o, scriptPath: path.join(dir, "src/entry.mjs"), modulesRoot: dir };
}

/**
 * Starts a Worker from Miniflare `options` and finds the workerd processes it got. Its
 * `send(what, email)` sends an invite of `email` when `what` is "invite" (the request ours
 * takes; with `plain`, the plain baseline's bare POST /) and otherwise GETs the path `what`,
 * resolving once the answer is read; an invite answered with anything but 201 rejects.
 */
export async function startSubject(name, options, { plain = false } = {}) {
  const before = workerdPids();
  const mf = new Miniflare(options);
  await mf.ready;
  const send = (what, email) => (what !== "invite"
    ? mf.dispatchFetch(`http://worker.test/${what}`)
    : plain
      ? mf.dispatchFetch("http://worker.test/", { method: "POST", body: JSON.stringify({ email }) })
      : mf.dispatchFetch("http://worker.test/v1/invites", {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ email }),
      })).then(async (r) => {
    const text = await r.text();
    // An invite that failed did less work: its CPU would flatter whoever failed it.
    if (what === "invite" && r.status !== 201) throw new Error(`${name}: invite answered ${r.status}: ${text.slice(0, 300)}`);
    return text;
  });
  return { name, mf, pids: workerdPids().filter((p) => !before.includes(p)), send };
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
