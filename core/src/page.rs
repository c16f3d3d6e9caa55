//! The demo landing page (`GET /`), the built-in thank-you page (`GET /thanks`), and the
//! HTML answer for a form post that failed. No framework, inline CSS, works without
//! JavaScript. The templates are compiled by askama, which escapes every value.

use askama::Template;

use crate::config::{parse_web_url, Config};
use crate::http::HttpResponse;

/// Where Turnstile's widget script lives.
pub const TURNSTILE_SCRIPT: &str = "https://challenges.cloudflare.com/turnstile/v0/api.js";

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing<'a> {
    product_name: &'a str,
    turnstile_site_key: Option<&'a str>,
    turnstile_script: &'a str,
}

#[derive(Template)]
#[template(path = "thanks.html")]
struct Message<'a> {
    title: &'a str,
    message: &'a str,
}

/// The page's Content-Security-Policy. `form_target` is the origin a plain form post may be
/// redirected to besides our own (an absolute `THANK_YOU_URL`): `form-action` also governs
/// where the 303 after the post may lead, so without it the visitor stayed on the form.
fn csp(form_target: Option<&str>) -> String {
    let form_action = match form_target {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'self'; script-src 'self' 'unsafe-inline' https://challenges.cloudflare.com; \
         frame-src https://challenges.cloudflare.com; style-src 'unsafe-inline'; \
         img-src 'self' data:; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

fn html(status: u16, body: String, form_target: Option<&str>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("content-security-policy".into(), csp(form_target)),
            ("x-content-type-options".into(), "nosniff".into()),
            // Not `no-referrer`: with it, browsers send `Origin: null` on the page's own form post.
            (
                "referrer-policy".into(),
                "strict-origin-when-cross-origin".into(),
            ),
        ],
        body: body.into_bytes(),
    }
}

/// The origin of an absolute `THANK_YOU_URL` (a path needs nothing beyond `'self'`).
fn thank_you_origin(cfg: &Config) -> Option<String> {
    let target = cfg.public.thank_you_url.as_deref()?;
    parse_web_url(cfg.parse_url, target).ok().map(|u| u.origin)
}

/// The sign-up page.
pub fn landing(cfg: &Config) -> HttpResponse {
    let page = Landing {
        product_name: &cfg.webhooks.product_name,
        turnstile_site_key: cfg.public.turnstile_site_key.as_deref(),
        turnstile_script: TURNSTILE_SCRIPT,
    };
    match page.render() {
        Ok(body) => html(200, body, thank_you_origin(cfg).as_deref()),
        Err(_) => message(
            500,
            "Something went wrong",
            "the page could not be rendered",
        ),
    }
}

/// A short page with a title and a message (thank-you, or a failed form post).
pub fn message(status: u16, title: &str, message: &str) -> HttpResponse {
    let body = Message { title, message }
        .render()
        .unwrap_or_else(|_| "Something went wrong".to_string());
    html(status, body, None)
}

/// `GET /favicon.ico`: no icon, and no error for the browser to log.
pub fn favicon() -> HttpResponse {
    HttpResponse {
        status: 204,
        headers: vec![("cache-control".into(), "public, max-age=86400".into())],
        body: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_values_are_escaped() {
        let r = message(400, "<b>Oops</b>", "a & \"b\"");
        let body = r.text();
        assert!(
            body.contains("<title>&#60;b&#62;Oops&#60;/b&#62;</title>")
                || body.contains("<title>&lt;b&gt;Oops&lt;/b&gt;</title>"),
            "{body}"
        );
        assert!(!body.contains("<b>Oops"));
        assert!(!body.contains("a & \"b\""));
    }

    #[test]
    fn form_action_allows_only_ourselves_and_the_thank_you_origin() {
        assert!(csp(None).contains("form-action 'self';"));
        assert!(csp(Some("https://www.example.com"))
            .contains("form-action 'self' https://www.example.com;"));
    }
}
