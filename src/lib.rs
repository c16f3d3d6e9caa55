//! The Cloudflare Worker shell of the invite service.
//!
//! It only adapts: it turns the platform's request into the core's [`HttpRequest`], builds
//! the adapters ([`platform::WorkerPlatform`]: `glue.js`'s `upstream`, KV, `Date`,
//! `setTimeout`, `getrandom`, the gate, the queue), calls [`invite_core::handle`], logs its one JSON line, hands the deferred
//! KV writes to `wait_until`, and converts the answer back. Everything else is in the core.

#[cfg(target_arch = "wasm32")]
pub mod gate_do;
#[cfg(target_arch = "wasm32")]
pub mod platform;

#[cfg(target_arch = "wasm32")]
mod entry {
    use std::rc::Rc;

    use invite_core::api::inbound_headers;
    use invite_core::config::ConfigError;
    use invite_core::gate::QueuedInvite;
    use invite_core::platform::random_hex;
    use invite_core::queue::{dead_letter, process, unreadable, waiting_for_config, Settle};
    use invite_core::{
        handle, BodyError, BodySource, Config, HttpRequest, HttpResponse, InviteQueue,
        IsolateCache, Store,
    };
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    use worker::worker_sys::web_sys;
    use worker::{
        console_error, console_log, event, Context, Env, MessageBatch, MessageExt,
        QueueRetryOptionsBuilder, RawMessage, Result,
    };

    use crate::platform::{header_lines, js_error_text, read_body, respond, WorkerPlatform};

    thread_local! {
        /// Isolate memory: the first tier of the token and role caches.
        static CACHE: Rc<IsolateCache> = Rc::new(IsolateCache::default());
    }

    thread_local! {
        /// The validated configuration. An isolate's environment never changes, so it is read
        /// and checked once (every variable and binding, all problems by name) and kept.
        static CONFIG: std::cell::RefCell<Option<Rc<std::result::Result<Config, ConfigError>>>> =
            const { std::cell::RefCell::new(None) };
    }

    fn read_config(env: &Env) -> std::result::Result<Config, ConfigError> {
        let not_text = std::cell::RefCell::new(Vec::new());
        let config = Config::from_lookup(
            |name| {
                crate::platform::var_text(env, name).unwrap_or_else(|_| {
                    not_text.borrow_mut().push(format!(
                        "{name} must be text, a number or true/false in wrangler.toml, not a list or a table (lists are comma-separated text)"
                    ));
                    None
                })
            },
            crate::platform::parse_url,
        );
        let mut missing = not_text.into_inner();
        missing.dedup();
        if env.kv("TOKEN_CACHE").is_err() {
            missing.push("TOKEN_CACHE KV namespace binding is missing (see wrangler.toml)".into());
        }
        if env.queue("INVITE_QUEUE").is_err() {
            missing
                .push("INVITE_QUEUE queue producer binding is missing (see wrangler.toml)".into());
        }
        if env.durable_object("AUTH0_GATE").is_err() {
            missing.push("AUTH0_GATE Durable Object binding is missing (see wrangler.toml)".into());
        }
        match (config, missing.is_empty()) {
            (c, true) => c,
            (Ok(_), false) => Err(ConfigError { problems: missing }),
            (Err(mut e), false) => {
                e.problems.extend(missing);
                Err(e)
            }
        }
    }

    /// Everything a handler needs from the environment: the configuration (read once per
    /// isolate) and the adapters, which reach their bindings only when used.
    fn environment(env: &Env) -> (Rc<std::result::Result<Config, ConfigError>>, WorkerPlatform) {
        let config = CONFIG.with(|c| {
            c.borrow_mut()
                .get_or_insert_with(|| Rc::new(read_config(env)))
                .clone()
        });
        let domain = config
            .as_ref()
            .as_ref()
            .ok()
            .map(|c| c.auth0_domain.clone());
        (config, WorkerPlatform::new(env.clone(), domain))
    }

    /// The request line and the headers its route reads ([`inbound_headers`]); the body stays
    /// in the platform until the route asks for it through [`WorkerBody`]. Copying every
    /// header across the JS boundary was the largest fixed cost per request in a CPU profile;
    /// a health check or a 404 now copies none.
    fn to_core(req: &web_sys::Request) -> HttpRequest {
        let (method, url) = (req.method(), req.url());
        let wanted = inbound_headers(&method, &url);
        let mut headers = Vec::with_capacity(wanted.len());
        if !wanted.is_empty() {
            let all = req.headers();
            for name in wanted {
                if let Ok(Some(v)) = all.get(name) {
                    headers.push((name.to_string(), v));
                }
            }
        }
        HttpRequest {
            method,
            url,
            headers,
            body: Vec::new(),
        }
    }

    /// The inbound body, read only when a route asks, and never past the route's limit
    /// (`readBody` in src/glue.js: a declared size over the limit is refused unread, a chunked
    /// body is abandoned as soon as it passes it, so an oversized body never sits in isolate
    /// memory).
    struct WorkerBody(web_sys::Request);

    impl BodySource for WorkerBody {
        async fn read_limited(self, limit: usize) -> std::result::Result<Vec<u8>, BodyError> {
            let unreadable = |e: wasm_bindgen::JsValue| BodyError::Unreadable(js_error_text(&e));
            let promise = read_body(&self.0, limit as f64).map_err(unreadable)?;
            let bytes = JsFuture::from(promise).await.map_err(unreadable)?;
            if bytes.is_null() {
                return Err(BodyError::TooLarge);
            }
            Ok(bytes.unchecked_into::<js_sys::Uint8Array>().to_vec())
        }
    }

    /// The fetch export (what `#[event(fetch)]` would generate, minus two costs a CPU profile
    /// showed on every request):
    /// - it takes the runtime's own `Request` and answers its own `Response`: `worker::Request`
    ///   reads `request.cf` (a JS object built on access) and parses the URL, which no route
    ///   needs;
    /// - it polls the handler once before making a promise: a route that needs no I/O (a
    ///   health check, a 404, a refused key) is answered then and there, without
    ///   `future_to_promise`'s task, promise and microtask. A handler that is still waiting
    ///   is handed to `future_to_promise`, whose first poll registers the real waker (every
    ///   future re-registers its waker on each poll, so the no-op one is never relied on).
    #[wasm_bindgen::prelude::wasm_bindgen(js_name = fetch)]
    pub fn fetch_export(
        req: web_sys::Request,
        env: Env,
        ctx: worker::worker_sys::Context,
    ) -> wasm_bindgen::JsValue {
        use std::future::Future;
        use std::task::Poll;
        let mut handler = Box::pin(handle_fetch(req, env, Context::new(ctx)));
        let mut first = std::task::Context::from_waker(std::task::Waker::noop());
        match handler.as_mut().poll(&mut first) {
            Poll::Ready(answer) => settle(answer),
            Poll::Pending => {
                wasm_bindgen_futures::future_to_promise(async move { Ok(settle(handler.await)) })
                    .into()
            }
        }
    }

    /// The handler's answer as a JS value; an error building it is logged and answered 500.
    fn settle(answer: Result<web_sys::Response>) -> wasm_bindgen::JsValue {
        match answer {
            Ok(resp) => resp.into(),
            Err(e) => {
                // The one error shape, with a request id of its own (the handler's is lost).
                let request_id =
                    random_hex(&WorkerPlatform::detached(), 8).unwrap_or_else(|_| "0".repeat(16));
                console_error!(
                    "{}",
                    serde_json::json!({"level": "error", "event": "response_failed", "request_id": request_id, "error": e.to_string()})
                );
                let body = serde_json::json!({"error": {"code": "internal_error", "message": "the answer could not be built; retrying is safe", "request_id": request_id}});
                let headers = [("cache-control".to_string(), "no-store".to_string())];
                let answer = HttpResponse::json(500, &body);
                js_response(
                    answer.status,
                    &[&answer.headers[..], &headers].concat(),
                    &answer.body,
                )
                .map(Into::into)
                .unwrap_or(wasm_bindgen::JsValue::UNDEFINED)
            }
        }
    }

    /// A runtime `Response` from the core's status, headers and body (`respond` in
    /// src/glue.js: one call).
    fn js_response(
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> std::result::Result<web_sys::Response, wasm_bindgen::JsValue> {
        let lines = header_lines(headers)
            .ok_or_else(|| wasm_bindgen::JsValue::from_str("a header holds a line break"))?;
        respond(status, &lines, body)
    }

    /// The fetch handler.
    async fn handle_fetch(
        req: web_sys::Request,
        env: Env,
        ctx: Context,
    ) -> Result<web_sys::Response> {
        let (config, platform) = environment(&env);
        let platform = Rc::new(platform);
        let cache = CACHE.with(Rc::clone);
        let config = config.as_ref();

        let core_req = to_core(&req);
        let handled = handle(core_req, WorkerBody(req), config, platform.as_ref(), &cache).await;
        if !handled.quiet {
            console_log!("{}", handled.log);
        }

        if !handled.deferred.is_empty() {
            let platform = platform.clone();
            let ops = handled.deferred;
            ctx.wait_until(async move {
                for op in ops {
                    // A failed cache write costs one extra token request later; never the invite.
                    if let Err(e) = platform.apply(&op).await {
                        console_error!(
                            "{}",
                            serde_json::json!({"level": "warn", "event": "kv_write_failed", "key": op.key(), "error": e.0})
                        );
                    }
                }
            });
        }

        let r = &handled.response;
        js_response(r.status, &r.headers, &r.body)
            .map_err(|e| worker::Error::RustError(js_error_text(&e)))
    }

    /// Acks, retries or defers one message as the core decided. A deferral sends a delayed
    /// copy, then acks this one (waiting for the pacer is not a failed attempt); without the
    /// copy (`copy` is `None`, or its send fails) the message is retried after the same delay.
    async fn settle_message(
        m: &RawMessage,
        settle: Settle,
        copy: Option<(&WorkerPlatform, &QueuedInvite)>,
    ) {
        let retry = |delay_sec| {
            m.retry_with_options(
                &QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(delay_sec)
                    .build(),
            )
        };
        match settle {
            Settle::Ack => m.ack(),
            Settle::Retry { delay_sec } => retry(delay_sec),
            Settle::Defer { delay_sec } => match copy {
                Some((p, msg))
                    if p.enqueue(std::slice::from_ref(msg), delay_sec)
                        .await
                        .is_ok() =>
                {
                    m.ack()
                }
                _ => retry(delay_sec),
            },
        }
    }

    /// The dead-letter queue's name (`dead_letter_queue` in wrangler.toml).
    const DLQ: &str = "invites-dlq";

    /// The queue consumers: `invites` (do the work) and `invites-dlq` (mark it failed).
    /// Every message is acked or retried on its own and the handler always returns `Ok`: an
    /// `Err` would make the runtime redeliver the whole batch, acked messages included.
    #[event(queue)]
    async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
        let (config, platform) = environment(&env);
        let config = config.as_ref();
        let cache = CACHE.with(Rc::clone);
        let dead_letters = batch.queue() == DLQ;
        let messages: Vec<RawMessage> = batch.raw_iter().collect();
        let work = messages.iter().map(|m| {
            let (config, platform, cache) = (config, &platform, &cache);
            async move {
                // Sent as JSON text (see WorkerPlatform::enqueue).
                let parsed = m
                    .body()
                    .as_string()
                    .ok_or_else(|| "not a text message".to_string())
                    .and_then(|t| {
                        serde_json::from_slice::<QueuedInvite>(t.as_bytes())
                            .map_err(|e| e.to_string())
                    });
                let msg = match parsed {
                    Ok(msg) => msg,
                    Err(e) => {
                        let raw = m.body().as_string();
                        let (settle, line) =
                            unreadable(raw.as_deref(), &e, dead_letters, platform).await;
                        console_error!("{line}");
                        return settle_message(m, settle, None).await;
                    }
                };
                let (settle, line) = if dead_letters {
                    let (settle, line) = dead_letter(&msg, platform).await;
                    console_error!("{line}");
                    (settle, None)
                } else {
                    match config {
                        Ok(cfg) => {
                            let (settle, log) = process(&msg, cfg, platform, cache).await;
                            (settle, Some(log))
                        }
                        Err(_) => {
                            let (settle, line) = waiting_for_config(&msg, platform).await;
                            console_error!("{line}");
                            (settle, None)
                        }
                    }
                };
                if let Some(log) = line {
                    console_log!("{log}");
                }
                settle_message(m, settle, Some((platform, &msg))).await;
            }
        });
        futures::future::join_all(work).await;
        Ok(())
    }
}
