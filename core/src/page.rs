//! The demo landing page (`GET /`), the built-in thank-you page (`GET /thanks`), and the
//! HTML answer for a form post that failed. No framework, inline CSS, works without
//! JavaScript.

use crate::config::Config;
use crate::delivery::html_escape;
use crate::platform::HttpResponse;

const LANDING: &str = include_str!("../templates/landing.html");
const THANKS: &str = include_str!("../templates/thanks.html");
/// Where Turnstile's widget script lives.
pub const TURNSTILE_SCRIPT: &str = "https://challenges.cloudflare.com/turnstile/v0/api.js";

fn html(status: u16, body: String) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            (
                "content-security-policy".into(),
                "default-src 'self'; script-src 'self' 'unsafe-inline' https://challenges.cloudflare.com; \
                 frame-src https://challenges.cloudflare.com; style-src 'unsafe-inline'; \
                 img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                    .into(),
            ),
            ("x-content-type-options".into(), "nosniff".into()),
            // Not `no-referrer`: with it, browsers send `Origin: null` on the page's own form post.
            ("referrer-policy".into(), "strict-origin-when-cross-origin".into()),
        ],
        body: body.into_bytes(),
    }
}

/// The sign-up page.
pub fn landing(cfg: &Config) -> HttpResponse {
    let (script, widget) = match &cfg.public.turnstile_site_key {
        Some(key) => (
            format!("<script src=\"{TURNSTILE_SCRIPT}\" async defer></script>"),
            format!(
                "<div class=\"cf-turnstile\" data-sitekey=\"{}\"></div>",
                html_escape(key)
            ),
        ),
        None => (String::new(), String::new()),
    };
    html(
        200,
        LANDING
            .replace("{{product_name}}", &html_escape(&cfg.webhooks.product_name))
            .replace("{{turnstile_script}}", &script)
            .replace("{{turnstile_widget}}", &widget),
    )
}

/// A short page with a title and a message (thank-you, or a failed form post).
pub fn message(status: u16, title: &str, message: &str) -> HttpResponse {
    html(
        status,
        THANKS
            .replace("{{title}}", &html_escape(title))
            .replace("{{message}}", &html_escape(message)),
    )
}
