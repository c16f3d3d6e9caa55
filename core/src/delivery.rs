//! Emailing the set-password link, behind one interface: Auth0's own Change Password email,
//! or the repo's template through a Resend-compatible HTTP email API. A per-address cooldown
//! in KV keeps the service from being used to flood an inbox.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth0::{error_message, Auth0};
use crate::config::{Config, EmailDelivery};
use crate::error::Auth0Error;
use crate::platform::{HttpRequest, KvOp, Platform};

const HTML_TEMPLATE: &str = include_str!("../templates/invite_email.html");
const TEXT_TEMPLATE: &str = include_str!("../templates/invite_email.txt");

/// What happened to the email.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Handed to the provider.
    Sent,
    /// Skipped: this address got one within the cooldown.
    Cooldown,
}

/// The message for one invitee.
#[derive(Clone, Debug, PartialEq)]
pub struct Email {
    /// Subject line.
    pub subject: String,
    /// HTML part.
    pub html: String,
    /// Plain-text part.
    pub text: String,
}

/// Escapes text for HTML content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills the templates. Every value is HTML-escaped in the HTML part.
pub fn render(product: &str, name: Option<&str>, ticket_url: &str, expires_at: &str) -> Email {
    let greeting = name.unwrap_or("there");
    let fill = |tpl: &str, esc: fn(&str) -> String| {
        tpl.replace("{{product_name}}", &esc(product))
            .replace("{{greeting_name}}", &esc(greeting))
            .replace("{{ticket_url}}", &esc(ticket_url))
            .replace("{{expires_at}}", &esc(expires_at))
    };
    Email {
        subject: format!("Your {product} account is ready"),
        html: fill(HTML_TEMPLATE, html_escape),
        text: fill(TEXT_TEMPLATE, str::to_string),
    }
}

/// KV key of an address's cooldown (hashed: no addresses in key listings).
pub fn cooldown_key(email: &str) -> String {
    let d = Sha256::digest(email.as_bytes());
    let short: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("email-cooldown:v1:{short}")
}

/// Sends the link to `email`, unless it got one within the cooldown. `ticket` is the ticket
/// URL and its expiry (RFC 3339), needed by the `resend` delivery; `idempotency_key` lets
/// the provider drop a repeated send.
pub async fn send_invite_email<P: Platform>(
    client: &Auth0<'_, P>,
    cfg: &Config,
    p: &P,
    email: &str,
    name: Option<&str>,
    ticket: Option<(&str, &str)>,
    idempotency_key: &str,
) -> Result<Sent, Auth0Error> {
    let key = cooldown_key(email);
    if matches!(p.get(&key).await, Ok(Some(_))) {
        return Ok(Sent::Cooldown);
    }
    let w = &cfg.webhooks;
    match &w.delivery {
        EmailDelivery::Auth0 => {
            let req = HttpRequest::new(
                "POST",
                format!("{}/dbconnections/change_password", cfg.base_url),
            )
            .json(&json!({"client_id": w.email_client_id, "email": email, "connection": cfg.connection}));
            let resp = client.send_retrying(req).await?;
            if !(200..300).contains(&resp.status) {
                return Err(Auth0Error::Rejected {
                    message: format!("change_password: {}", error_message(&resp)),
                });
            }
        }
        EmailDelivery::Resend { api_key, base_url } => {
            let Some((url, expires_at)) = ticket else {
                return Err(Auth0Error::Rejected {
                    message: "no ticket to email".into(),
                });
            };
            let msg = render(&w.product_name, name, url, expires_at);
            let req = HttpRequest::new("POST", format!("{base_url}/emails"))
                .header("authorization", format!("Bearer {}", api_key.expose()))
                .header("idempotency-key", idempotency_key)
                .json(&json!({
                    "from": w.from_email.as_deref().unwrap_or_default(),
                    "to": [email],
                    "subject": msg.subject,
                    "html": msg.html,
                    "text": msg.text,
                }));
            let resp = client.send_retrying(req).await?;
            match resp.status {
                // 409: this idempotency key was already used, i.e. the email went out on an
                // earlier attempt whose answer we lost.
                200..=299 | 409 => {}
                401 | 403 => {
                    return Err(Auth0Error::Auth {
                        status: resp.status,
                        message: format!(
                            "email API refused EMAIL_API_KEY: {}",
                            error_message(&resp)
                        ),
                        token_endpoint: false,
                    })
                }
                _ => {
                    return Err(Auth0Error::Rejected {
                        message: format!("email API: {}", error_message(&resp)),
                    })
                }
            }
        }
    }
    // Awaited rather than deferred: a redelivery right after must see it.
    let _ = p
        .apply(&KvOp::Put {
            key,
            value: "1".into(),
            ttl_sec: w.email_cooldown_sec.max(60),
        })
        .await;
    Ok(Sent::Sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_escapes_html_but_not_text() {
        let e = render(
            "Acme <Beta>",
            Some("Ada & Co"),
            "https://t.example/u?ticket=a&b=c#",
            "2026-11-27T00:00:00Z",
        );
        assert_eq!(e.subject, "Your Acme <Beta> account is ready");
        assert!(e.html.contains("Welcome to Acme &lt;Beta&gt;"));
        assert!(e.html.contains("Hi Ada &amp; Co,"));
        assert!(e
            .html
            .contains("href=\"https://t.example/u?ticket=a&amp;b=c#\""));
        assert!(e.text.contains("https://t.example/u?ticket=a&b=c#"));
        assert!(e.text.contains("Hi Ada & Co,"));
        assert!(!e.html.contains("{{") && !e.text.contains("{{"));
        assert!(render("X", None, "u", "t").text.contains("Hi there,"));
    }

    #[test]
    fn cooldown_keys_hide_the_address() {
        let k = cooldown_key("ada@example.com");
        assert!(k.starts_with("email-cooldown:v1:") && !k.contains("ada"));
        assert_ne!(k, cooldown_key("grace@example.com"));
    }
}
