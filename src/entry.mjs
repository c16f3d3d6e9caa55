// The Worker's main module. It re-exports the Rust Worker that worker-build emits
// (build/index.js: the fetch and queue handlers) and declares the Auth0Gate Durable Object as
// a real `DurableObject` subclass around the Rust one. workerd only takes RPC calls on such a
// subclass, and worker-build 0.8.7 doesn't emit one, so this is the one place that does:
// callers reach the gate with `stub.call(json)` (a third of a `fetch` round trip). Nothing
// else lives here; the logic is in Rust (src/gate_do.rs, core/src/gate.rs).
import { DurableObject } from "cloudflare:workers";
import worker, { Auth0Gate as RustGate } from "../build/index.js";

export default worker;

export class Auth0Gate extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.gate = new RustGate(ctx, env);
  }

  fetch(request) {
    return this.gate.fetch(request);
  }

  call(body) {
    return this.gate.call(body);
  }
}
