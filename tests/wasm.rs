//! What only runs on wasm32: the Workers adapters for randomness, the clock and timers, and
//! the shell's JavaScript glue for bodies, responses and URLs (src/glue.js), run under
//! `wasm-bindgen-test-runner` (Node). KV and fetch are covered end to end in workerd.
#![cfg(target_arch = "wasm32")]

use auth0_invite_worker::platform::{
    fill_random, header_lines, now_ms, parse_url, read_body, respond, WorkerPlatform,
};
use invite_core::{password, time, Clock, Store};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;
use worker::worker_sys::web_sys;

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
        let pw = password::generate(&p, &["a", "jo"]).expect("password");
        assert!(password::meets_policy(&pw), "{pw}");
        assert!(!pw.contains(['a', 'A']), "{pw}");
        assert!(!pw.to_ascii_lowercase().contains("jo"), "{pw}");
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

/// A POST to `read_body` with `body` and, if given, a declared `Content-Length`. A `Request`
/// built in JavaScript exposes no `Content-Length` of its own (Node's, like workerd's for a
/// chunked upload), so without one the body is read as a stream.
fn request(body: Option<&str>, declared: Option<&str>) -> web_sys::Request {
    let init = web_sys::RequestInit::new();
    let headers = web_sys::Headers::new().unwrap();
    if let Some(n) = declared {
        headers.set("content-length", n).unwrap();
    }
    init.set_headers(&headers);
    match body {
        Some(b) => {
            init.set_method("POST");
            init.set_body(&wasm_bindgen::JsValue::from_str(b));
        }
        None => init.set_method("GET"),
    }
    web_sys::Request::new_with_str_and_init("https://worker.test/v1/invites", &init).unwrap()
}

async fn read(req: &web_sys::Request, limit: usize) -> Option<Vec<u8>> {
    let value = JsFuture::from(read_body(req, limit as f64).unwrap())
        .await
        .unwrap();
    (!value.is_null()).then(|| js_sys::Uint8Array::new(&value).to_vec())
}

#[wasm_bindgen_test]
async fn the_body_is_read_up_to_its_limit_and_refused_past_it() {
    // Streamed (no declared length): the limit itself fits, one byte more does not.
    assert_eq!(
        read(&request(Some("hello"), None), 5).await,
        Some(b"hello".to_vec())
    );
    assert_eq!(read(&request(Some("hello"), None), 4).await, None);
    // Declared over the limit: refused before reading.
    assert_eq!(read(&request(Some("hi"), Some("1000000")), 10).await, None);
    // Declared within the limit: read in one go.
    assert_eq!(
        read(&request(Some("hi"), Some("2")), 10).await,
        Some(b"hi".to_vec())
    );
    // No body at all.
    assert_eq!(read(&request(None, None), 10).await, Some(Vec::new()));
}

#[wasm_bindgen_test]
async fn responses_carry_status_headers_and_bytes() {
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-request-id".to_string(), "abc".to_string()),
    ];
    let lines = header_lines(&headers).unwrap();
    let resp = respond(201, &lines, br#"{"ok":true}"#).unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.headers().get("x-request-id").unwrap().as_deref(),
        Some("abc")
    );
    let text = JsFuture::from(resp.text().unwrap()).await.unwrap();
    assert_eq!(text.as_string().as_deref(), Some(r#"{"ok":true}"#));
    // No body: a null body, not an empty string.
    let empty = respond(204, "", b"").unwrap();
    assert!(empty.body().is_none());
    // A line break can't be carried: the glue's separator.
    let bad = vec![("x-a".to_string(), "1\nx-b: 2".to_string())];
    assert_eq!(header_lines(&bad), None);
}

#[wasm_bindgen_test]
fn the_runtime_url_parser_meets_the_shared_table() {
    // The same table the host's `url`-crate parser meets (invite_core::http::check_url_parser).
    invite_core::http::check_url_parser(parse_url);
    // Where the two differ: the runtime converts a host that is not ASCII to punycode.
    let idn = parse_url("https://bücher.example/").expect("an IDN host parses");
    assert_eq!(idn.origin, "https://xn--bcher-kva.example");
}
