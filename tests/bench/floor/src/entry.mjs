// The floor's main module: the Rust fetch export called directly, as src/entry.mjs does for
// the Worker (without worker-build's per-request WorkerEntrypoint and Proxies).
import RustWorker from "../build/index.js";

const { fetch: rustFetch } = RustWorker.prototype;

export default {
  fetch(request, env, ctx) {
    return rustFetch.call({ env, ctx }, request);
  },
};
