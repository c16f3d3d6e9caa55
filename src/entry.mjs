// The Worker's main module, around the Rust Worker that worker-build emits (build/index.js).
//
// 1. The fetch and queue handlers are a plain object calling the Rust handlers directly.
//    build/index.js exports them as a `WorkerEntrypoint` class behind a Proxy, which workerd
//    constructs anew for every request and whose every method call goes through two more
//    Proxies: a CPU profile put that at about a third of a trivial request's CPU time. What
//    the Proxy is for is kept: after a wasm trap (a panic aborts) the module is marked broken,
//    and the next call goes through worker-build's class, which re-instantiates it.
// 2. The Auth0Gate Durable Object is a real `DurableObject` subclass around the Rust one.
//    workerd only takes RPC calls on such a subclass, and worker-build 0.8.7 doesn't emit one:
//    callers reach the gate with `stub.call(json)` (a third of a `fetch` round trip). Each
//    call runs in one SQLite transaction (`transactionSync`, which workers-rs doesn't bind).
// Nothing else lives here; the logic is in Rust (src/lib.rs, src/gate_do.rs, core/).
import { DurableObject } from "cloudflare:workers";
import RustWorker, { Auth0Gate as RustGate } from "../build/index.js";

const state = globalThis.__worker_init_state;
const { fetch: rustFetch, queue: rustQueue } = RustWorker.prototype;

/** `this` for a Rust handler: the bindings and context, or after a trap a fresh instance. */
const entrypoint = (env, ctx) => (state?.criticalError ? new RustWorker(ctx, env) : { env, ctx });

const trapped = (e) => {
  if (e instanceof WebAssembly.RuntimeError && state) state.criticalError = true;
  throw e;
};

export default {
  fetch(request, env, ctx) {
    try {
      // A Response when the answer needed no I/O (see fetch_export in src/lib.rs), else a
      // promise of one.
      const answer = rustFetch.call(entrypoint(env, ctx), request);
      return answer instanceof Promise ? answer.catch(trapped) : answer;
    } catch (e) {
      return trapped(e);
    }
  },
  queue(batch, env, ctx) {
    try {
      return rustQueue.call(entrypoint(env, ctx), batch).catch(trapped);
    } catch (e) {
      return trapped(e);
    }
  },
};

/** Thrown out of a gate call's transaction to roll it back (see `Auth0Gate.call`). */
const ROLLBACK = Symbol("rollback");

/** The Rust gate class itself, without worker-build's Proxies (see `Auth0Gate`). */
const RawGate = RustGate.prototype.constructor;

export class Auth0Gate extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.args = [ctx, env];
    // The class itself: through worker-build's Proxy every call would build two more Proxies.
    // After a failure the object switches to the Proxy, which re-instantiates the module if
    // it trapped.
    this.gate = state?.criticalError ? new RustGate(ctx, env) : new RawGate(ctx, env);
  }

  recover(e) {
    if (e instanceof WebAssembly.RuntimeError && state) state.criticalError = true;
    this.gate = new RustGate(...this.args);
    throw e;
  }

  fetch(request) {
    try {
      return this.gate.fetch(request);
    } catch (e) {
      return this.recover(e);
    }
  }

  /**
   * One gate call, in one SQLite transaction: a call that fails (its answer starts with "!":
   * a storage error met midway, say) or traps leaves none of its writes behind, where the
   * implicit transaction would keep those made before the failure.
   */
  call(body) {
    let answer;
    try {
      this.ctx.storage.transactionSync(() => {
        answer = this.gate.call(body);
        if (answer.startsWith("!")) throw ROLLBACK;
      });
    } catch (e) {
      if (e !== ROLLBACK) return this.recover(e);
    }
    return answer;
  }
}
