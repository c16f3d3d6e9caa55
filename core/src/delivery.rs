//! Emailing the set-password link, behind one interface: Auth0's own Change Password email,
//! or the repo's template through a Resend-compatible HTTP email API. A per-address cooldown
//! in KV keeps the service from being used to flood an inbox. [`invite_and_email`] is the
//! one flow the public and webhook routes share: it never hands its caller the ticket URL.

use askama::Template;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth0::{error_message, Auth0, Ctx};
use crate::config::{Config, EmailDelivery};
use crate::error::{InviteError, Service, UpstreamError};
use crate::gate::{GateCall, GateReply};
use crate::invite::{run_invite, InviteInput};
use crate::platform::{hex, HttpRequest, Platform};

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

/// The values of the invite email. askama compiles the templates and fills them in one
/// pass: an inserted value is never read again as template text, so a name holding
/// `{{ ticket_url }}` stays that literal text. The HTML part escapes every value.
#[derive(Template)]
#[template(path = "invite_email.html")]
struct HtmlEmail<'a> {
    product_name: &'a str,
    greeting_name: &'a str,
    ticket_url: &'a str,
    expires_at: &'a str,
}

/// The plain-text part: the same values, unescaped.
#[derive(Template)]
#[template(path = "invite_email.txt", escape = "none")]
struct TextEmail<'a> {
    product_name: &'a str,
    greeting_name: &'a str,
    ticket_url: &'a str,
    expires_at: &'a str,
}

/// Fills the templates. `name` must already be cleaned ([`crate::invite::clean_name`]);
/// `None` greets with a neutral "there".
pub fn render(
    product: &str,
    name: Option<&str>,
    ticket_url: &str,
    expires_at: &str,
) -> Result<Email, String> {
    let greeting_name = name.unwrap_or("there");
    let html = HtmlEmail {
        product_name: product,
        greeting_name,
        ticket_url,
        expires_at,
    }
    .render()
    .map_err(|e| format!("email template: {e}"))?;
    let text = TextEmail {
        product_name: product,
        greeting_name,
        ticket_url,
        expires_at,
    }
    .render()
    .map_err(|e| format!("email template: {e}"))?;
    Ok(Email {
        subject: format!("Your {product} account is ready"),
        html,
        text,
    })
}

/// An address's email window: its key in the gate and its length (`EMAIL_COOLDOWN_SEC`).
pub fn email_window(cfg: &Config, email: &str) -> (String, u64) {
    (cooldown_key(email), cfg.webhooks.email_cooldown_sec * 1000)
}

/// The gate's key of an address's email window (hashed: no addresses in keys).
pub fn cooldown_key(email: &str) -> String {
    let d = Sha256::digest(email.as_bytes());
    let short = hex(&d[..12]);
    format!("email-cooldown:v1:{short}")
}

/// What a claim of an address's email window found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// This invite holds the window: it makes the link and sends it.
    Mine,
    /// Another invite emailed the address within the window: no link, no email.
    Held,
    /// Another invite holds the window and is still queued or running: it may yet fail
    /// without sending, so this one waits for it.
    HolderRunning,
}

/// The gate's answer to a claim of an email window that is a claim at all.
pub(crate) struct WindowClaim {
    /// This owner holds the window now.
    pub claimed: bool,
    /// When refused: how long the window still holds.
    pub retry_after_ms: Option<u64>,
    /// When refused: the invite holding it is still queued or running.
    pub holder_running: bool,
}

/// Claims `owner`'s window `key` for `ttl_ms` (`what` names the claim in errors).
/// `Err(Revoked)` when a revoke holds the window ([`GateCall::HoldWindows`]); without an
/// answer from the gate, or with another answer than `Claimed`, an error: no claim, nothing
/// to send (a version-skew review found the resend and the claim before a send going on with
/// any other reply).
pub(crate) async fn claim_window<P: Platform>(
    cx: &Ctx<'_, P>,
    key: String,
    ttl_ms: u64,
    owner: &str,
    what: &str,
) -> Result<WindowClaim, InviteError> {
    let claim = GateCall::ClaimEmail {
        key,
        ttl_ms,
        owner: owner.to_string(),
    };
    match cx.p.gate(claim).await {
        Ok(GateReply::Claimed { revoked: true, .. }) => Err(InviteError::Revoked),
        Ok(GateReply::Claimed {
            claimed,
            retry_after_ms,
            holder_running,
            ..
        }) => Ok(WindowClaim {
            claimed,
            retry_after_ms,
            holder_running,
        }),
        Ok(other) => Err(InviteError::Internal(format!(
            "gate answered {} to {what}",
            other.kind()
        ))),
        Err(e) => Err(InviteError::Internal(format!(
            "gate unreachable for {what}: {e}"
        ))),
    }
}

/// Claims the address's email window in the gate (strongly consistent) for the invite
/// `owner` ([`Claim`]). Claiming again for the same owner succeeds (a retry). A revoke that
/// holds the window is `Err(Revoked)` (found in a review: a re-drive then completed as if
/// inside a cooldown). Without an answer from the gate the invite fails, to be retried by
/// the queue: sending unclaimed made a ticket that voided the link in the inbox, and when
/// that email then failed, the inbox kept only the dead link (found by an interleaving test).
async fn claim_email<P: Platform>(
    cx: &Ctx<'_, P>,
    owner: &str,
    email: &str,
) -> Result<Claim, InviteError> {
    let (key, ttl_ms) = email_window(cx.cfg, email);
    let c = claim_window(cx, key, ttl_ms, owner, "the email window's claim").await?;
    Ok(if c.claimed {
        Claim::Mine
    } else if c.holder_running {
        // Not yet sent: relying on it, this invite completed without its email, and when the
        // holder then failed nobody had a working link (found by an interleaving test: an
        // invite whose email failed retried after its window ended, found a newer sign-up
        // holding it, and completed; the newer one then failed).
        Claim::HolderRunning
    } else {
        Claim::Held
    })
}

/// Claims `owner`'s window `key` again right before its link goes out, which also restarts the
/// window at the send. A revoke that took the window meanwhile ([`GateCall::HoldWindows`])
/// makes its throwaway ticket after it, or has made it after this link: either way this link
/// must not reach a blocked account (`Err(Revoked)`; found by an interleaving test, in which
/// it did). A window another invite took meanwhile (a delete-mode revoke gave it back) does
/// not stop the send: a second email beats a dead link.
pub(crate) async fn reclaim<P: Platform>(
    cx: &Ctx<'_, P>,
    key: String,
    ttl_ms: u64,
    owner: &str,
) -> Result<(), InviteError> {
    let c = claim_window(cx, key, ttl_ms, owner, "the claim before the send").await?;
    if !c.claimed {
        cx.note("email window taken meanwhile; sent anyway");
    }
    Ok(())
}

/// Gives the address's window back after a failed invite: nothing was sent in it.
async fn release_email<P: Platform>(cx: &Ctx<'_, P>, owner: &str, email: &str) {
    let release = GateCall::ReleaseEmail {
        key: cooldown_key(email),
        owner: owner.to_string(),
    };
    let _ = cx.p.gate(release).await;
}

/// Sends the link to `email` through `EMAIL_DELIVERY`, the address's window already claimed
/// by the caller ([`invite_and_email`], or a resend that claimed it itself). `ticket` is the
/// ticket URL and its expiry (RFC 3339), needed by the `resend` delivery; `idempotency_key`
/// lets the provider drop a repeated send.
pub async fn send_email<P: Platform>(
    cx: &Ctx<'_, P>,
    email: &str,
    name: Option<&str>,
    ticket: Option<(&str, &str)>,
    idempotency_key: &str,
) -> Result<(), InviteError> {
    let cfg = cx.cfg;
    let client = cx.client();
    let w = &cfg.webhooks;
    match &w.delivery {
        EmailDelivery::Auth0 => send_auth0_email(&client, cfg, email).await?,
        EmailDelivery::Resend { api_key, base_url } => {
            let Some((url, expires_at)) = ticket else {
                return Err(InviteError::Internal("no ticket to email".into()));
            };
            let msg =
                render(&w.product_name, name, url, expires_at).map_err(InviteError::Internal)?;
            // One key per link: a repeat of this send keeps it, so the provider drops the
            // repeat, and a new link (which voids the one sent before) has its own. Under the
            // invite's key alone, a run again after an email went out sent the new link as a
            // repeat, which Resend drops or refuses (409 `invalid_idempotent_request`): the
            // inbox kept only the dead link (found in an audit).
            // Resend takes keys of up to 256 characters; a webhook's id, part of the invite's
            // key, is the sender's to choose, so a long one is hashed (found in a review).
            let base = if idempotency_key.len() > 200 {
                hex(&Sha256::digest(idempotency_key.as_bytes())[..16])
            } else {
                idempotency_key.to_string()
            };
            let key = format!("{base}:{}", hex(&Sha256::digest(url.as_bytes())[..8]));
            let req = HttpRequest::new("POST", format!("{base_url}/emails"))
                .header("authorization", format!("Bearer {}", api_key.expose()))
                .header("idempotency-key", &key)
                .json(&json!({
                    "from": w.from_email.as_deref().unwrap_or_default(),
                    "to": [email],
                    "subject": msg.subject,
                    "html": msg.html,
                    "text": msg.text,
                }));
            let resp = client.send_retrying(Service::EmailApi, req).await?;
            match resp.status {
                // 409 `invalid_idempotent_request`: this link's key was used already, i.e. the
                // email went out on an earlier attempt whose answer was lost. (A send still in
                // progress, `concurrent_idempotent_requests`, is retried by `send_retrying`.)
                200..=299 | 409 => {}
                401 | 403 => {
                    return Err(UpstreamError::Auth {
                        service: Service::EmailApi,
                        status: resp.status,
                        message: error_message(&resp),
                        token_endpoint: false,
                    }
                    .into())
                }
                _ => {
                    return Err(UpstreamError::Rejected {
                        service: Service::EmailApi,
                        message: error_message(&resp),
                    }
                    .into())
                }
            }
        }
    }
    Ok(())
}

/// Auth0's own Change Password email (`POST /dbconnections/change_password`).
async fn send_auth0_email<P: Platform>(
    client: &Auth0<'_, P>,
    cfg: &Config,
    email: &str,
) -> Result<(), UpstreamError> {
    let req = HttpRequest::new(
        "POST",
        format!("{}/dbconnections/change_password", cfg.base_url),
    )
    .json(&json!({"client_id": cfg.webhooks.email_client_id, "email": email, "connection": cfg.connection}));
    let resp = client.send_retrying(Service::Auth0, req).await?;
    if !(200..300).contains(&resp.status) {
        return Err(UpstreamError::Rejected {
            service: Service::Auth0,
            message: format!("change_password: {}", error_message(&resp)),
        });
    }
    Ok(())
}

/// Whether an emailed invite needs a ticket: only our own template carries the link; Auth0's
/// Change Password email makes its own.
pub fn emailed_with_ticket(cfg: &Config) -> bool {
    matches!(cfg.webhooks.delivery, EmailDelivery::Resend { .. })
}

/// What an emailed invite's caller learns. It has no ticket URL: only the invitee's inbox
/// ever gets the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The Auth0 user.
    pub user_id: String,
    /// Whether this invite created the account.
    pub created: bool,
    /// Whether the email went out or the cooldown held it back.
    pub sent: Sent,
}

/// The one "invite, then email the link" flow of the public and webhook routes. The name in
/// `input.profile` must come from [`crate::invite::clean_name`]; `greeting` is the name to
/// greet with (`None` for anonymous callers: their text never reaches someone's inbox). When
/// Auth0 refuses the invite for good (400) and it carried optional profile fields, it is
/// retried once without them: a bad name must not lose a paid invite.
///
/// The address's email window is claimed first, before any ticket is made: Auth0 keeps only
/// an account's newest password-change ticket, so a second invite inside the window (Stripe
/// sends `checkout.session.completed` and `invoice.paid` for one subscription) that made a
/// ticket and then skipped its email would void the link already in the inbox. Inside the
/// window the account and its roles are still brought up to date, with no ticket and no email,
/// once the invite holding the window has settled: while it is queued or running this
/// returns `None`, for the consumer to wait (it may yet fail without sending).
pub async fn invite_and_email<P: Platform>(
    cx: &Ctx<'_, P>,
    owner: &str,
    mut input: InviteInput,
    greeting: Option<&str>,
    invited_by: &str,
    idempotency_key: &str,
) -> Result<Option<Delivered>, InviteError> {
    let claimed = match claim_email(cx, owner, &input.email).await? {
        Claim::HolderRunning => return Ok(None),
        claim => claim == Claim::Mine,
    };
    input.want_ticket = claimed && emailed_with_ticket(cx.cfg);
    input.email_verified = false;
    let email = input.email.clone();
    let client = cx.client();
    let out = match run_invite(&client, cx.cfg, cx.p, input.clone(), invited_by).await {
        Err(InviteError::Upstream(UpstreamError::Rejected {
            service: Service::Auth0,
            message,
        })) if !input.profile.is_empty() => {
            cx.note(format!(
                "Auth0 refused the profile ({message}); invited without it"
            ));
            input.profile.clear();
            run_invite(&client, cx.cfg, cx.p, input, invited_by).await
        }
        other => other,
    };
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            // Nothing was sent in the window: give it back, so a retry or another invite
            // can send. Not for a revoked account, which no retry will email: released, it
            // let every anonymous sign-up for the address cost Auth0 calls again (found in a
            // review).
            if claimed && !matches!(e, InviteError::Revoked) {
                release_email(cx, owner, &email).await;
            }
            return Err(e);
        }
    };
    if !claimed {
        return Ok(Some(Delivered {
            user_id: out.user_id,
            created: out.created,
            sent: Sent::Cooldown,
        }));
    }
    let ticket = out
        .ticket_url
        .as_deref()
        .map(|u| (u, out.ticket_expires_at.as_str()));
    let (key, ttl_ms) = email_window(cx.cfg, &email);
    reclaim(cx, key, ttl_ms, owner).await?;
    send_email(cx, &email, greeting, ticket, idempotency_key).await?;
    Ok(Some(Delivered {
        user_id: out.user_id,
        created: out.created,
        sent: Sent::Sent,
    }))
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
        )
        .unwrap();
        assert_eq!(e.subject, "Your Acme <Beta> account is ready");
        assert!(e.html.contains("Welcome to Acme &#60;Beta&#62;"));
        assert!(e.html.contains("Hi Ada &#38; Co,"));
        assert!(e
            .html
            .contains("href=\"https://t.example/u?ticket=a&#38;b=c#\""));
        assert!(e.text.contains("https://t.example/u?ticket=a&b=c#"));
        assert!(e.text.contains("Hi Ada & Co,"));
        assert!(!e.html.contains("{{") && !e.text.contains("{{"));
        assert!(render("X", None, "u", "t")
            .unwrap()
            .text
            .contains("Hi there,"));
    }

    /// Regression (security review, finding 1): successive replacements expanded a name
    /// holding a placeholder, putting the victim's live link inside the attacker's URL.
    #[test]
    fn a_placeholder_in_a_name_is_never_expanded() {
        let url = "https://t.example/u/reset-password?ticket=LIVE#";
        for name in [
            "unlock it here: https://evil.example/unlock?next={{ticket_url}}",
            "{{ ticket_url }} {{expires_at}} {{ product_name }}",
            "{% if true %}{{ticket_url}}{% endif %}",
        ] {
            let e = render("Acme", Some(name), url, "2026-11-28T00:00:00Z").unwrap();
            assert_eq!(e.text.matches(url).count(), 1, "{}", e.text);
            assert_eq!(e.html.matches("ticket=LIVE").count(), 2, "{}", e.html);
            assert!(!e.text.contains("next=https://t.example"), "{}", e.text);
            assert!(e.text.contains(name), "the name stays literal text");
        }
    }

    #[test]
    fn cooldown_keys_hide_the_address() {
        let k = cooldown_key("ada@example.com");
        assert!(k.starts_with("email-cooldown:v1:") && !k.contains("ada"));
        assert_ne!(k, cooldown_key("grace@example.com"));
    }
}
