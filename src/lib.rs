//! The Cloudflare Worker shell of the invite service.
//!
//! It only adapts: it turns the platform's request into the core's [`HttpRequest`], builds
//! the adapters ([`platform::WorkerPlatform`]: `worker::Fetch`, KV, `Date`, `setTimeout`,
//! `getrandom`), calls [`invite_core::handle`], logs its one JSON line, hands the deferred
//! KV writes to `wait_until`, and converts the answer back. Everything else is in the core.

#[cfg(target_arch = "wasm32")]
pub mod gate_do;
#[cfg(target_arch = "wasm32")]
pub mod platform;

#[cfg(target_arch = "wasm32")]
mod entry {
    use std::rc::Rc;

    use futures::StreamExt;
    use invite_core::config::ConfigError;
    use invite_core::gate::QueuedInvite;
    use invite_core::queue::{dead_letter, process, Settle};
    use invite_core::{
        handle, BodyError, BodySource, Config, HttpRequest, InviteQueue, IsolateCache, Store,
    };
    use worker::{
        console_error, console_log, event, Context, Env, Headers, MessageBatch, MessageExt,
        QueueRetryOptionsBuilder, RawMessage, Request, Response, Result,
    };

    use crate::platform::WorkerPlatform;

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
        let config = Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()));
        let mut missing = Vec::new();
        if env.kv("TOKEN_CACHE").is_err() {
            missing.push("TOKEN_CACHE KV namespace binding is missing (see wrangler.toml)");
        }
        if env.queue("INVITE_QUEUE").is_err() {
            missing.push("INVITE_QUEUE queue producer binding is missing (see wrangler.toml)");
        }
        if env.durable_object("AUTH0_GATE").is_err() {
            missing.push("AUTH0_GATE Durable Object binding is missing (see wrangler.toml)");
        }
        match (config, missing.is_empty()) {
            (c, true) => c,
            (Ok(_), false) => Err(ConfigError {
                problems: missing.into_iter().map(String::from).collect(),
            }),
            (Err(mut e), false) => {
                e.problems.extend(missing.into_iter().map(String::from));
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

    /// The request line and headers; the body stays in the platform until a route asks for
    /// it through [`WorkerBody`].
    fn to_core(req: &Request) -> HttpRequest {
        HttpRequest {
            method: req.method().to_string(),
            url: req
                .url()
                .map(|u| u.to_string())
                .unwrap_or_else(|_| req.path()),
            headers: req.headers().entries().collect(),
            body: Vec::new(),
        }
    }

    /// The inbound body as a stream, read chunk by chunk and abandoned as soon as it passes
    /// the route's limit: an oversized body never sits in isolate memory.
    struct WorkerBody(Request);

    impl BodySource for WorkerBody {
        async fn read_limited(mut self, limit: usize) -> std::result::Result<Vec<u8>, BodyError> {
            if self.0.inner().body().is_none() {
                return Ok(Vec::new());
            }
            let mut stream = self
                .0
                .stream()
                .map_err(|e| BodyError::Unreadable(e.to_string()))?;
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| BodyError::Unreadable(e.to_string()))?;
                if out.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        }
    }

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
        let (config, platform) = environment(&env);
        let platform = Rc::new(platform);
        let cache = CACHE.with(Rc::clone);
        let config = config.as_ref();

        let core_req = to_core(&req);
        let handled = handle(core_req, WorkerBody(req), config, platform.as_ref(), &cache).await;
        console_log!("{}", handled.log);

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

        let headers = Headers::new();
        for (k, v) in &handled.response.headers {
            headers.set(k, v)?;
        }
        Ok(Response::from_bytes(handled.response.body)?
            .with_status(handled.response.status)
            .with_headers(headers))
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
                        serde_json::from_str::<QueuedInvite>(&t).map_err(|e| e.to_string())
                    });
                let msg = match parsed {
                    Ok(msg) => msg,
                    Err(e) => {
                        // Nothing can ever process it: log it and let it go.
                        console_error!(
                            "{}",
                            serde_json::json!({"level": "error", "event": "bad_queue_message", "error": e})
                        );
                        m.ack();
                        return;
                    }
                };
                if dead_letters {
                    console_error!("{}", dead_letter(&msg, platform).await);
                    m.ack();
                    return;
                }
                let Ok(cfg) = config else {
                    console_error!(
                        "{}",
                        serde_json::json!({"level": "error", "event": "invite_waiting", "invite_id": msg.id, "detail": "configuration is invalid; see /healthz"})
                    );
                    m.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(60).build());
                    return;
                };
                let (settle, log) = process(&msg, cfg, platform, cache).await;
                console_log!("{log}");
                match settle {
                    Settle::Ack => m.ack(),
                    Settle::Retry { delay_sec } => m.retry_with_options(
                        &QueueRetryOptionsBuilder::new()
                            .with_delay_seconds(delay_sec)
                            .build(),
                    ),
                    Settle::Defer { delay_sec } => {
                        // A copy with a delay, then this one is done: waiting for the pacer
                        // is not a failed attempt.
                        match platform.enqueue(std::slice::from_ref(&msg), delay_sec).await {
                            Ok(()) => m.ack(),
                            Err(_) => m.retry_with_options(
                                &QueueRetryOptionsBuilder::new()
                                    .with_delay_seconds(delay_sec)
                                    .build(),
                            ),
                        }
                    }
                }
            }
        });
        futures::future::join_all(work).await;
        Ok(())
    }
}
