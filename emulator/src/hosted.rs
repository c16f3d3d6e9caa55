//! Stand-ins for the Universal Login pages that ticket URLs open:
//! `/u/reset-password?ticket=ID` and `/u/email-verification?ticket=ID`.
//!
//! `GET` shows whether the ticket still works, the way a user clicking the
//! link would find out: 200 with a page for a valid ticket, 400 with a page
//! naming the reason for an invalid one ("expired", "superseded", "used",
//! "user deleted", "unknown"; see [`State::ticket_reason`]).
//! `POST` redeems it: a new password (form field `password`, checked against
//! the connection's policy) for a reset ticket, or the email verification
//! itself; the ticket is then "used". A new password also lifts the user's
//! block: Auth0's "Block and unblock users" page says that resetting a
//! password through the Management API removes an administrator's block. The
//! pessimistic reading of it, so that a revoke that leaves a link alive fails
//! its tests here rather than in production.
//!
//! No authentication, not counted in the stats, never rate limited, faulted
//! or delayed: these pages belong to Universal Login, not the Management API.

use crate::server::{Incoming, Reply};
use crate::state::{State, TicketKind};
use crate::util;
use crate::validate::password_has_personal_info;

/// Content type of the hosted pages.
pub const HTML_CT: &str = "text/html; charset=utf-8";

/// Whether `path` is one of the hosted ticket pages.
pub fn is_hosted(path: &str) -> bool {
    kind_for(path).is_some()
}

fn kind_for(path: &str) -> Option<TicketKind> {
    match path {
        "/u/reset-password" => Some(TicketKind::PasswordChange),
        "/u/email-verification" => Some(TicketKind::EmailVerification),
        _ => None,
    }
}

/// Handles a request to a hosted ticket page.
pub fn handle(state: &mut State, inc: &Incoming) -> Reply {
    let Some(kind) = kind_for(&inc.path) else {
        return Reply::not_found();
    };
    match inc.method.as_str() {
        "GET" => show(state, inc, kind),
        "POST" => redeem(state, inc, kind),
        _ => page(405, "Method Not Allowed", "method not allowed", "", ""),
    }
}

fn title(kind: TicketKind) -> &'static str {
    match kind {
        TicketKind::PasswordChange => "Change your password",
        TicketKind::EmailVerification => "Verify your email",
    }
}

/// The index of the ticket named by `?ticket=` if it exists and is of the
/// page's kind (a reset ticket opened on the verification page is unknown
/// there), or the reason it cannot be used.
fn find(state: &State, inc: &Incoming, kind: TicketKind) -> Result<usize, &'static str> {
    let id = inc.query_param("ticket").unwrap_or_default();
    let index = state
        .tickets
        .iter()
        .position(|t| t.id == id && t.kind == kind)
        .ok_or("unknown")?;
    match state.ticket_reason(&state.tickets[index], util::now_ms()) {
        None => Ok(index),
        Some(reason) => Err(reason),
    }
}

fn explain(reason: &str) -> &'static str {
    match reason {
        "expired" => "This link has expired.",
        "superseded" => "This link is no longer valid: a newer one was issued.",
        "used" => "This link has already been used.",
        "user deleted" => "This account no longer exists.",
        _ => "This link is not valid.",
    }
}

fn show(state: &State, inc: &Incoming, kind: TicketKind) -> Reply {
    if let Err(reason) = find(state, inc, kind) {
        return page(400, title(kind), reason, explain(reason), "");
    }
    let form = match kind {
        TicketKind::PasswordChange => {
            "<form method=\"post\"><label>New password <input type=\"password\" name=\"password\"></label> <button>Change password</button></form>"
        }
        TicketKind::EmailVerification => {
            "<form method=\"post\"><button>Verify my email</button></form>"
        }
    };
    page(200, title(kind), "valid", "This link is valid.", form)
}

fn redeem(state: &mut State, inc: &Incoming, kind: TicketKind) -> Reply {
    if inc.body_too_large {
        return page(413, title(kind), "too large", "The form is too large.", "");
    }
    let index = match find(state, inc, kind) {
        Ok(i) => i,
        Err(reason) => return page(400, title(kind), reason, explain(reason), ""),
    };
    if kind == TicketKind::PasswordChange {
        let password = url::form_urlencoded::parse(&inc.body)
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if password.is_empty() {
            return page(400, title(kind), "valid", "Enter a new password.", "");
        }
        // The ticket stays valid after a rejected password, as on Auth0's
        // page, which lets the user try again.
        if !state.config.password_ok(&password) {
            return page(
                400,
                title(kind),
                "valid",
                "PasswordStrengthError: Password is too weak",
                "",
            );
        }
        let user_id = &state.tickets[index].user_id;
        if state.config.password_no_personal_info
            && state
                .user(user_id)
                .is_some_and(|u| password_has_personal_info(&password, &u.personal_data()))
        {
            return page(
                400,
                title(kind),
                "valid",
                "PasswordNoUserInfoError: Password contains user information",
                "",
            );
        }
    }
    let now = util::now_ms();
    let ticket = &mut state.tickets[index];
    ticket.used_ms = Some(now);
    let verify = match kind {
        TicketKind::EmailVerification => true,
        TicketKind::PasswordChange => ticket
            .record
            .get("mark_email_as_verified")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    };
    let result_url = ticket
        .record
        .get("result_url")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let user_id = ticket.user_id.clone();
    // The password itself is never stored; only its side effects are.
    if let Some(user) = state.user_mut(&user_id) {
        if verify {
            user.email_verified = true;
        }
        if kind == TicketKind::PasswordChange && user.blocked == Some(true) {
            user.blocked = Some(false);
        }
        user.updated_at = util::rfc3339_ms(now);
    }
    let done = match kind {
        TicketKind::PasswordChange => "Your password has been changed.",
        TicketKind::EmailVerification => "Your email address was successfully verified.",
    };
    let link = result_url
        .map(|u| format!("<p><a href=\"{0}\">{0}</a></p>", escape(&u)))
        .unwrap_or_default();
    page(200, title(kind), "used", done, &link)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small page. `status` (the ticket's state or the reason it is invalid)
/// is in `<p id="status">` so that tests can read it.
fn page(code: u16, title: &str, status: &str, message: &str, extra: &str) -> Reply {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n<body><h1>{t}</h1>\n<p id=\"message\">{m}</p>\n<p id=\"status\">{s}</p>\n{extra}\n</body></html>\n",
        t = escape(title),
        m = escape(message),
        s = escape(status),
    );
    Reply {
        status: code,
        content_type: HTML_CT,
        body: html.into_bytes(),
        headers: Vec::new(),
    }
}
