//! What only runs on wasm32: the Workers adapters for randomness, the clock and timers, run
//! under `wasm-bindgen-test-runner` (Node). KV and fetch are covered end to end in workerd.
#![cfg(target_arch = "wasm32")]

use auth0_invite_worker::platform::{fill_random, now_ms, WorkerPlatform};
use invite_core::{password, time, Clock, Store};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn getrandom_gives_distinct_nonzero_bytes() {
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    fill_random(&mut a).expect("getrandom on wasm32");
    fill_random(&mut b).expect("getrandom on wasm32");
    assert_ne!(a, b);
    assert_ne!(a, [0u8; 32]);
}

#[wasm_bindgen_test]
fn pooled_random_bytes_are_never_handed_out_twice_or_zeroed() {
    // Small draws come from a 1 KiB pool: cross several refills, and mix in large draws
    // (which bypass it). Every 16-byte draw must be distinct and none all zeros.
    let mut seen = std::collections::HashSet::new();
    for i in 0..400 {
        let mut small = [0u8; 16];
        fill_random(&mut small).expect("pooled draw");
        assert_ne!(small, [0u8; 16], "draw {i}");
        assert!(seen.insert(small), "draw {i} repeated an earlier one");
        if i % 97 == 0 {
            let mut large = [0u8; 512];
            fill_random(&mut large).expect("direct draw");
            assert!(large.iter().any(|&b| b != 0));
        }
    }
}

#[wasm_bindgen_test]
fn passwords_from_the_platform_rng_meet_the_policy() {
    let p = WorkerPlatform::detached();
    for _ in 0..200 {
        let pw = password::generate(&p).expect("password");
        assert!(password::meets_policy(&pw), "{pw}");
    }
}

#[wasm_bindgen_test]
fn clock_is_wall_time_in_milliseconds() {
    let now = now_ms();
    let js = js_sys::Date::now() as u64;
    assert!(js.abs_diff(now) < 1_000);
    // Between 2025 and 2100.
    assert!(now > 1_735_689_600_000 && now < 4_102_444_800_000, "{now}");
    assert!(time::rfc3339(now).ends_with('Z'));
}

#[wasm_bindgen_test]
async fn sleep_waits_on_a_real_timer() {
    let p = WorkerPlatform::detached();
    let start = p.now_ms();
    p.sleep(50).await;
    assert!(p.now_ms() - start >= 45, "slept {} ms", p.now_ms() - start);
}

#[wasm_bindgen_test]
async fn missing_kv_binding_is_an_error_not_a_panic() {
    let p = WorkerPlatform::detached();
    assert!(p.get("anything").await.is_err());
}

#[wasm_bindgen_test]
async fn a_timeout_that_loses_a_race_is_cleared() {
    use futures::future::{select, Either};
    use std::pin::pin;
    let p = WorkerPlatform::detached();
    let start = p.now_ms();
    let fast = pin!(p.sleep(10));
    let slow = pin!(p.sleep(60_000));
    assert!(matches!(select(fast, slow).await, Either::Left(_)));
    assert!(p.now_ms() - start < 1_000);
}
