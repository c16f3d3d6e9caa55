//! What the core's own work costs per request, natively: the invite service's logic over the
//! flow tests' fakes (a scripted Auth0 that answers at once, a fake KV, clock and random
//! source), without the runtime, the JS boundary or V8. Prints figures; asserts nothing but
//! that the requests succeed.
//!   cargo bench -p invite-core --bench invite          N=<invites, default 20000>
//! Requests go into `handle` as the shell passes them. `cargo bench` builds with the
//! release profile (opt-level "z", LTO), as the Worker's wasm is. Set against
//! `scripts/report.sh`'s CPU per invite in workerd, this tells how much of that is the core's
//! logic at all (docs/PERFORMANCE.md). `scripts/test.sh` runs it once, small and unoptimized
//! (`N=200 cargo test --bench invite`), so that it keeps working.
// The flow tests' fakes; the bench uses a few of the names they export for the tests.
#[allow(unused_imports)]
#[path = "../tests/flow/support.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use support::*;

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let s = Svc::new(&[]);
    // As the shell calls `handle` (`Svc::serve`, not `Svc::run`, whose checks and parsing of
    // the answer are the tests' work, not the Worker's).
    let serve = |req: HttpRequest| s.serve(req).response;
    let invite = |i: usize| {
        let mut req = HttpRequest::new("POST", "https://invites.example.com/v1/invites")
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json");
        req.body = format!(
            r#"{{"email":"bench{i}@example.com","name":"Ada Lovelace","roles":["beta-tester"]}}"#
        )
        .into_bytes();
        let r = serve(req);
        assert_eq!(r.status, 201, "{}", r.text());
    };
    // Warm: the token and the role id cached, as in a warm isolate.
    for i in 0..100 {
        invite(i);
    }
    s.fake.sent.borrow_mut().clear();
    // The fake keeps every request it was sent: counted and dropped every 1,000 invites.
    let mut calls = 0;
    let t = Instant::now();
    for i in 0..n {
        invite(100 + i);
        if i % 1000 == 999 || i == n - 1 {
            calls += s.fake.management_calls();
            s.fake.sent.borrow_mut().clear();
        }
    }
    let per_invite = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let calls = calls as f64 / n as f64;

    // The fake's own share: its answers to one warm invite's Management calls, replayed.
    s.fake.sent.borrow_mut().clear();
    invite(100 + n);
    let sent: Vec<HttpRequest> = s.fake.sent.borrow().clone();
    let t = Instant::now();
    for _ in 0..n {
        for req in &sent {
            black_box(s.fake.default_reply(black_box(req)));
        }
    }
    let fake = t.elapsed().as_secs_f64() * 1e6 / n as f64;

    let health = HttpRequest::new("GET", "https://invites.example.com/healthz");
    let t = Instant::now();
    for _ in 0..n {
        assert_eq!(serve(health.clone()).status, 200);
    }
    let per_health = t.elapsed().as_secs_f64() * 1e6 / n as f64;

    // A batch of 100 (`BATCH_MAX_INVITES`' default), queued: validated, recorded in the
    // gate and sent, as `POST /v1/invites/batch` does; no Auth0 call.
    // Each batch on a Worker of its own: the fake gate keeps its records in a list, which
    // would slow every later batch. The fake gate's and queue's time is left out.
    let batches = (n / 100).max(20);
    let workers: Vec<Svc> = (0..batches).map(|_| Svc::new(&[])).collect();
    let batch = |s: &Svc, b: usize| {
        let mut req = HttpRequest::new("POST", "https://invites.example.com/v1/invites/batch")
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json");
        let items: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"email":"batch{b}x{i}@example.com","roles":["beta-tester"]}}"#))
            .collect();
        req.body = format!(r#"{{"invites":[{}]}}"#, items.join(",")).into_bytes();
        let r = s.serve(req).response;
        assert_eq!(r.status, 202, "{}", r.text());
    };
    batch(&s, usize::MAX);
    let t = Instant::now();
    for (b, s) in workers.iter().enumerate() {
        batch(s, b);
    }
    let fakes: u64 = workers.iter().map(|s| s.fake.gate_and_queue_ns.get()).sum();
    let per_batch = (t.elapsed().as_nanos() as u64 - fakes) as f64 / 1e3 / batches as f64;
    let fakes_per_batch = fakes as f64 / 1e3 / batches as f64;

    let build = if cfg!(debug_assertions) {
        "a debug build: no figure to compare; use cargo bench"
    } else {
        "release profile"
    };
    println!("core, natively, over {n} requests each ({build}):");
    println!("  warm invite      {per_invite:7.1} µs, {calls:.2} Management calls (of which the fake Auth0 answering them: {fake:.1} µs)");
    println!("  GET /healthz     {per_health:7.1} µs");
    println!(
        "  batch of 100     {per_batch:7.1} µs ({:.2} µs an invite; the fake gate and queue besides: {fakes_per_batch:.1} µs)",
        per_batch / 100.0
    );
}
