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

    use invite_core::config::ConfigError;
    use invite_core::{handle, Config, HttpRequest, IsolateCache, Store};
    use worker::{
        console_error, console_log, event, Context, Env, Headers, Request, Response, Result,
    };

    use crate::platform::WorkerPlatform;

    /// Largest body the shell reads; the core answers 413 above its own, smaller limit.
    const READ_LIMIT: usize = 512 * 1024;

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

    async fn to_core(mut req: Request) -> HttpRequest {
        let headers: Vec<(String, String)> = req.headers().entries().collect();
        let url = req
            .url()
            .map(|u| u.to_string())
            .unwrap_or_else(|_| req.path());
        let declared = req
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|v| v.parse::<usize>().ok());
        // An oversized declared body is refused by the core without reading it.
        let body = if declared.is_some_and(|n| n > READ_LIMIT) {
            Vec::new()
        } else {
            req.bytes().await.unwrap_or_default()
        };
        HttpRequest {
            method: req.method().to_string(),
            url,
            headers,
            body,
        }
    }

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
        let kv = env.kv("TOKEN_CACHE").ok();
        let config = read_config(&env, kv.is_some());
        let limiter = env.rate_limiter("PUBLIC_RATE_LIMITER").ok();
        let platform = Rc::new(WorkerPlatform::new(kv).with_limiter(limiter));
        let cache = CACHE.with(Rc::clone);

        let core_req = to_core(req).await;
        let handled = handle(core_req, &config, platform.as_ref(), &cache).await;
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
