//! The Cloudflare Worker shell of the invite service.
//!
//! It only adapts: it turns the platform's request into the core's [`HttpRequest`], builds
//! the adapters ([`platform::WorkerPlatform`]: `worker::Fetch`, KV, `Date`, `setTimeout`,
//! `getrandom`), calls [`invite_core::handle`], logs its one JSON line, hands the deferred
//! KV writes to `wait_until`, and converts the answer back. Everything else is in the core.

#[cfg(target_arch = "wasm32")]
pub mod platform;

#[cfg(target_arch = "wasm32")]
mod entry {
    use std::rc::Rc;

    use futures::StreamExt;
    use invite_core::config::ConfigError;
    use invite_core::{handle, BodyError, BodySource, Config, HttpRequest, IsolateCache, Store};
    use worker::{
        console_error, console_log, event, Context, Env, Headers, Request, Response, Result,
    };

    use crate::platform::WorkerPlatform;

    thread_local! {
        /// Isolate memory: the first tier of the token and role caches.
        static CACHE: Rc<IsolateCache> = Rc::new(IsolateCache::default());
    }

    fn read_config(env: &Env, has_kv: bool) -> std::result::Result<Config, ConfigError> {
        let config = Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()));
        if has_kv {
            return config;
        }
        let problem = "TOKEN_CACHE KV namespace binding is missing (see wrangler.toml)".to_string();
        match config {
            Ok(_) => Err(ConfigError {
                problems: vec![problem],
            }),
            Err(mut e) => {
                e.problems.push(problem);
                Err(e)
            }
        }
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
        let kv = env.kv("TOKEN_CACHE").ok();
        let config = read_config(&env, kv.is_some());
        let limiter = env.rate_limiter("PUBLIC_RATE_LIMITER").ok();
        let platform = Rc::new(WorkerPlatform::new(kv).with_limiter(limiter));
        let cache = CACHE.with(Rc::clone);

        let core_req = to_core(&req);
        let handled = handle(
            core_req,
            WorkerBody(req),
            &config,
            platform.as_ref(),
            &cache,
        )
        .await;
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
}
