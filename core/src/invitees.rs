//! The invitee lifecycle (API key only): list, look up, resend and revoke. An *invitee* is an
//! Auth0 account this service created (`app_metadata.invited`, which no caller can set) in
//! the configured connection. Where an invite request (`/v1/invites/{id}`) lives for a week
//! in the gate, an invitee lives in Auth0: its status is read from Auth0 every time, never
//! kept here, so it can't disagree with the dashboard.
//!
//! Status, in this order: `revoked` (the account is blocked: by a revoke here or by an
//! admin), `accepted` (it has logged in: `logins_count` ≥ 1 or a `last_login`), else `pending`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth0::Ctx;
use crate::config::{RevokeMode, TICKET_TTL_RANGE};
use crate::delivery::{claim_window, cooldown_key, emailed_with_ticket, reclaim, send_email};
use crate::error::{ApiError, ErrorCode, InviteError, UpstreamError, ValidationError};
use crate::gate::{GateCall, GateReply, Kind, REVOKED_HOLDER};
use crate::http::HttpRequest;
use crate::invite::default_ticket_target;
use crate::platform::{random_hex, HttpResponse, Platform};
use crate::queue::record;
use crate::time::rfc3339;

/// Most invitees per page of the list.
pub const MAX_LIMIT: u32 = 100;
/// Invitees per page when the caller names no `limit`.
pub const DEFAULT_LIMIT: u32 = 50;
/// Longest user id or address accepted in a path.
const MAX_REF_CHARS: usize = 320;
/// Most ids a cursor carries: accounts created in the same millisecond as the page's last.
const MAX_CURSOR_IDS: usize = 1000;
/// How long the gate remembers an invitee revoked by deletion, so that its status still
/// reads `revoked` (Auth0 has nothing left to ask): 30 days.
pub const DELETED_KEPT_MS: u64 = 30 * 86_400_000;

/// Where an invitee is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteeStatus {
    /// Never logged in, not blocked: the link can be sent again, or the invite revoked.
    Pending,
    /// Has logged in.
    Accepted,
    /// The account is blocked.
    Revoked,
}

impl InviteeStatus {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "accepted" => Some(Self::Accepted),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// How the invitee's link reaches them, decided by where the invite came from: a trusted
/// caller got it back (and gets a resent one back), everyone else's went to the inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Returned to the API key holder.
    Returned,
    /// Emailed to the address.
    Email,
}

/// What the API says about one invitee.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Invitee {
    /// `auth0|…`.
    pub user_id: String,
    /// The address.
    pub email: String,
    /// `pending | accepted | revoked`.
    pub status: InviteeStatus,
    /// Whether Auth0 considers the address verified.
    pub email_verified: bool,
    /// When Auth0 created the account.
    pub created_at: Option<String>,
    /// `app_metadata.invited_at`.
    pub invited_at: Option<String>,
    /// `app_metadata.invited_by`: the API key's label, or the source.
    pub invited_by: Option<String>,
    /// `api | public_form | stripe | standard`.
    pub source: String,
    /// How a link reaches this invitee.
    pub delivery: Delivery,
    /// Logins so far (Auth0 leaves the field out until the first).
    pub logins_count: u64,
    /// The last login, if any.
    pub last_login: Option<String>,
    /// When it was revoked here (`app_metadata.revoked_at`), if it was.
    pub revoked_at: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The invitee in an Auth0 user, or `None` when the account is not one this service
/// invited in `connection`.
pub fn invitee_from(user: &Value, connection: &str) -> Option<Invitee> {
    let meta = user.get("app_metadata")?;
    if meta.get("invited").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let in_connection = user
        .get("identities")
        .and_then(Value::as_array)
        .is_some_and(|ids| {
            ids.iter()
                .any(|i| i.get("connection").and_then(Value::as_str) == Some(connection))
        });
    if !in_connection {
        return None;
    }
    let logins_count = user
        .get("logins_count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let blocked = user.get("blocked").and_then(Value::as_bool) == Some(true);
    // A login on record either way, as `POST /v1/invites` reads it
    // (`UserSummary::is_unaccepted_invite`): an imported account may carry `last_login` with
    // no count, and resend took it for pending while an invite refused it as used (found in
    // a security review).
    let logged_in = logins_count > 0 || text(user, "last_login").is_some();
    let status = if blocked {
        InviteeStatus::Revoked
    } else if logged_in {
        InviteeStatus::Accepted
    } else {
        InviteeStatus::Pending
    };
    let source = text(meta, "invite_source").unwrap_or_else(|| Kind::Trusted.as_str().into());
    // Only a trusted caller ever saw the first link; every other source emailed it.
    let delivery = if source == Kind::Trusted.as_str() {
        Delivery::Returned
    } else {
        Delivery::Email
    };
    Some(Invitee {
        user_id: text(user, "user_id")?,
        email: text(user, "email")?,
        status,
        email_verified: user.get("email_verified").and_then(Value::as_bool) == Some(true),
        created_at: text(user, "created_at"),
        invited_at: text(meta, "invited_at"),
        invited_by: text(meta, "invited_by"),
        source,
        delivery,
        logins_count,
        last_login: text(user, "last_login"),
        revoked_at: text(meta, "revoked_at"),
    })
}

/// An invitee named in a path: an address (it holds `@`) or an Auth0 user id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteeRef {
    /// A normalized address.
    Email(String),
    /// `auth0|…` (percent-decoded).
    UserId(String),
}

/// Reads the `{ref}` segment of `/v1/invitees/{ref}` (percent-encoded: `auth0%7C…`).
pub fn parse_ref(segment: &str) -> Result<InviteeRef, ApiError> {
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::invitee_not_found())?;
    if decoded.chars().any(char::is_control) {
        return Err(ApiError::invitee_not_found());
    }
    let s = decoded.trim();
    if s.is_empty() || s.chars().count() > MAX_REF_CHARS {
        return Err(ApiError::invitee_not_found());
    }
    if s.contains('@') {
        crate::email::normalize(s)
            .map(InviteeRef::Email)
            .map_err(|why| {
                ValidationError::field(ErrorCode::InvalidEmail, "email", why.to_string()).into()
            })
    } else {
        Ok(InviteeRef::UserId(s.to_string()))
    }
}

/// What `/v1/invitees…` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `GET /v1/invitees`.
    List,
    /// `GET /v1/invitees/{ref}`.
    Show(String),
    /// `POST /v1/invitees/{ref}/resend`.
    Resend(String),
    /// `POST /v1/invitees/{ref}/revoke`.
    Revoke(String),
}

/// The keyset cursor of the list: the `created_at` of the last invitee shown, and the ids
/// shown with exactly that `created_at` (the next page starts at or before it, without
/// them). Auth0's `page`/`per_page` reach only the first 1,000 matches; a keyset reaches all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// `created_at` of the last invitee shown.
    t: String,
    /// The ids shown with that `created_at`.
    x: Vec<String>,
}

impl Cursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a cursor this API returned; anything else is refused.
    pub fn decode(raw: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let c: Cursor = serde_json::from_slice(&bytes).ok()?;
        let ts_ok = is_timestamp(&c.t);
        let ids_ok = c.x.len() <= MAX_CURSOR_IDS
            && c.x
                .iter()
                .all(|id| !id.is_empty() && id.len() <= MAX_REF_CHARS && quotable(id));
        (ts_ok && ids_ok).then_some(c)
    }

    /// The cursor after a page of Auth0 users (all of them, shown or not), given the one it
    /// started from; `None` when the last one can't be put in a query.
    fn after(page: &[Value], from: Option<&Cursor>) -> Option<Cursor> {
        fn created(u: &Value) -> Option<&str> {
            u.get("created_at").and_then(Value::as_str)
        }
        let last = created(page.last()?)?.to_string();
        let mut x: Vec<String> = match from {
            Some(c) if c.t == last => c.x.clone(),
            _ => Vec::new(),
        };
        for u in page.iter().filter(|u| created(u) == Some(last.as_str())) {
            x.push(u.get("user_id").and_then(Value::as_str)?.to_string());
        }
        let c = Cursor { t: last, x };
        // The same checks as a cursor coming back: one this API can't read is never handed out.
        Cursor::decode(&c.encode()).is_some().then_some(c)
    }
}

/// Whether `t` is a timestamp as Auth0 writes `created_at` (`2026-11-26T21:39:43.123Z`,
/// the fraction optional): a cursor's bound goes into the search, and a made-up one would
/// reach Auth0 instead of being refused here (found in an audit).
fn is_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>, lo: u32, hi: u32| {
        b.get(r).is_some_and(|d| {
            d.iter().all(u8::is_ascii_digit)
                && (lo..=hi).contains(&d.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
        })
    };
    let fraction = match b.get(19..) {
        Some([b'Z']) => true,
        Some([b'.', rest @ .., b'Z']) => {
            (1..=9).contains(&rest.len()) && rest.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    num(0..4, 0, 9999)
        && at(4, b'-')
        && num(5..7, 1, 12)
        && at(7, b'-')
        && num(8..10, 1, 31)
        && at(10, b'T')
        && num(11..13, 0, 23)
        && at(13, b':')
        && num(14..16, 0, 59)
        && at(16, b':')
        && num(17..19, 0, 60)
        && fraction
}

/// Whether `s` can go between double quotes in a query as it is. Every value put in a query
/// comes from Auth0 or the configuration; one that can't be quoted is refused, never escaped
/// by hand.
pub(crate) fn quotable(s: &str) -> bool {
    !s.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// The Auth0 user search (v3 query syntax) for invitees of `connection` with `status`,
/// after `cursor`.
pub fn search_query(
    connection: &str,
    status: Option<InviteeStatus>,
    cursor: Option<&Cursor>,
) -> String {
    let mut q = format!("app_metadata.invited:true AND identities.connection:\"{connection}\"");
    match status {
        None => {}
        Some(InviteeStatus::Pending) => q.push_str(
            " AND NOT blocked:true AND NOT logins_count:[1 TO *] AND NOT _exists_:last_login",
        ),
        Some(InviteeStatus::Accepted) => {
            q.push_str(" AND NOT blocked:true AND (logins_count:[1 TO *] OR _exists_:last_login)")
        }
        Some(InviteeStatus::Revoked) => q.push_str(" AND blocked:true"),
    }
    if let Some(c) = cursor {
        q.push_str(&format!(" AND created_at:[* TO \"{}\"]", c.t));
        if !c.x.is_empty() {
            let ids: Vec<String> = c.x.iter().map(|id| format!("user_id:\"{id}\"")).collect();
            q.push_str(&format!(" AND NOT ({})", ids.join(" OR ")));
        }
    }
    q
}

/// The list's query parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    /// Only invitees in this status.
    pub status: Option<InviteeStatus>,
    /// Page size.
    pub limit: u32,
    /// Where to go on from.
    pub cursor: Option<Cursor>,
}

/// Reads `status`, `limit` and `cursor` from the request URL; every problem by name.
pub fn parse_list_query(url: &str) -> Result<ListQuery, ValidationError> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let query = query.split('#').next().unwrap_or("");
    let mut out = ListQuery {
        status: None,
        limit: DEFAULT_LIMIT,
        cursor: None,
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "status" => {
                out.status = Some(InviteeStatus::parse(&v).ok_or_else(|| {
                    ValidationError::field(
                        ErrorCode::InvalidField,
                        "status",
                        "status must be pending, accepted or revoked",
                    )
                })?)
            }
            "limit" => {
                out.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ValidationError::field(
                            ErrorCode::InvalidField,
                            "limit",
                            format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                        )
                    })?
            }
            "cursor" => {
                out.cursor = Some(Cursor::decode(&v).ok_or_else(|| {
                    ValidationError::field(
                        ErrorCode::InvalidField,
                        "cursor",
                        "cursor must be a next_cursor this API returned",
                    )
                })?)
            }
            other => {
                return Err(ValidationError::field(
                    ErrorCode::UnknownField,
                    other,
                    format!("unknown query parameter '{other}'; allowed: status, limit, cursor"),
                ))
            }
        }
    }
    Ok(out)
}

/// The action a path under `/v1/invitees` names, or `None` for no such route.
pub fn action_of(path: &str) -> Option<Action> {
    if path == "/v1/invitees" {
        return Some(Action::List);
    }
    let rest = path.strip_prefix("/v1/invitees/")?;
    let mut parts = rest.split('/');
    let id = parts.next().filter(|s| !s.is_empty())?.to_string();
    let action = match (parts.next(), parts.next()) {
        (None, _) => Action::Show(id),
        (Some("resend"), None) => Action::Resend(id),
        (Some("revoke"), None) => Action::Revoke(id),
        _ => return None,
    };
    Some(action)
}

fn json_of(invitee: &Invitee) -> Value {
    serde_json::to_value(invitee).unwrap_or(Value::Null)
}

/// The gate's keys for what it remembers of a deleted invitee: its address (hashed: no
/// addresses in keys) and its user id.
fn memory_keys(invitee: &Invitee) -> Vec<String> {
    vec![
        format!("deleted:{}", cooldown_key(&invitee.email)),
        format!("deleted:id:{}", invitee.user_id),
    ]
}

/// An invitee as the gate remembers it (its own JSON, written at deletion): read field by
/// field rather than with a derived deserializer, which cost 4 KB of wasm for this one use.
fn remembered(v: &Value) -> Option<Invitee> {
    let opt = |k: &str| text(v, k);
    Some(Invitee {
        user_id: opt("user_id")?,
        email: opt("email")?,
        status: InviteeStatus::Revoked,
        email_verified: v.get("email_verified").and_then(Value::as_bool) == Some(true),
        created_at: opt("created_at"),
        invited_at: opt("invited_at"),
        invited_by: opt("invited_by"),
        delivery: if opt("delivery").as_deref() == Some("email") {
            Delivery::Email
        } else {
            Delivery::Returned
        },
        source: opt("source")?,
        logins_count: v.get("logins_count").and_then(Value::as_u64).unwrap_or(0),
        last_login: opt("last_login"),
        revoked_at: opt("revoked_at"),
    })
}

/// Finds the invitee named by `segment`: in Auth0, else among those revoked by deletion that
/// the gate still remembers.
async fn find<P: Platform>(cx: &Ctx<'_, P>, segment: &str) -> Result<Invitee, ApiError> {
    let client = cx.client();
    let connection = &cx.cfg.connection;
    let wanted = parse_ref(segment)?;
    let found = match &wanted {
        InviteeRef::Email(email) => client
            .users_by_email::<Value>(email)
            .await?
            .iter()
            .find_map(|u| invitee_from(u, connection)),
        InviteeRef::UserId(id) => client
            .user(id)
            .await?
            .and_then(|u| invitee_from(&u, connection)),
    };
    if let Some(invitee) = found {
        return Ok(invitee);
    }
    let key = match &wanted {
        InviteeRef::Email(email) => format!("deleted:{}", cooldown_key(email)),
        InviteeRef::UserId(id) => format!("deleted:id:{id}"),
    };
    match cx.p.gate(GateCall::Recall { key }).await {
        Ok(GateReply::Recalled { value: Some(v) }) => serde_json::from_slice::<Value>(v.as_bytes())
            .ok()
            .and_then(|v| remembered(&v))
            .ok_or_else(ApiError::invitee_not_found),
        Ok(_) => Err(ApiError::invitee_not_found()),
        Err(e) => {
            cx.note(format!(
                "gate unreachable, deleted invitees not looked up: {e}"
            ));
            Err(ApiError::invitee_not_found())
        }
    }
}

/// Runs `action` (its method already checked by the router).
pub async fn handle<P: Platform>(
    cx: &Ctx<'_, P>,
    action: Action,
    req: &HttpRequest,
    label: &str,
) -> Result<HttpResponse, ApiError> {
    match action {
        Action::List => list(cx, req).await,
        Action::Show(r) => show(cx, &r).await,
        Action::Resend(r) => resend(cx, &r).await,
        Action::Revoke(r) => revoke(cx, &r, label).await,
    }
}

/// `GET /v1/invitees?status=&limit=&cursor=`: newest first.
async fn list<P: Platform>(cx: &Ctx<'_, P>, req: &HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = parse_list_query(&req.url)?;
    if !quotable(&cx.cfg.connection) {
        return Err(ApiError::config_invalid(
            "AUTH0_CONNECTION can't be used in a user search",
        ));
    }
    let q = search_query(&cx.cfg.connection, query.status, query.cursor.as_ref());
    let (users, total) = cx.client().search_users(&q, query.limit).await?;
    // The search already narrowed it; this keeps a stray match (another connection of the
    // same account) out of the answer.
    let page: Vec<Invitee> = users
        .iter()
        .filter_map(|u| invitee_from(u, &cx.cfg.connection))
        .collect();
    let more = total > users.len() as u64 && !users.is_empty();
    let next = if more {
        let c = Cursor::after(&users, query.cursor.as_ref()).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UpstreamError,
                "Auth0 returned a user this list can't page past; narrow it with status",
            )
            .logged("a user without created_at, or more than 1000 sharing one")
        })?;
        Some(c.encode())
    } else {
        None
    };
    Ok(HttpResponse::json(
        200,
        &json!({
            "invitees": page.iter().map(json_of).collect::<Vec<_>>(),
            "next_cursor": next,
        }),
    ))
}

/// `GET /v1/invitees/{ref}`.
async fn show<P: Platform>(cx: &Ctx<'_, P>, segment: &str) -> Result<HttpResponse, ApiError> {
    let invitee = find(cx, segment).await?;
    Ok(HttpResponse::json(200, &json_of(&invitee)))
}

/// `POST /v1/invitees/{ref}/resend`: a fresh link for a pending invitee, delivered the way
/// the first one was. The new password-change ticket makes Auth0 drop the older links.
async fn resend<P: Platform>(cx: &Ctx<'_, P>, segment: &str) -> Result<HttpResponse, ApiError> {
    let invitee = find(cx, segment).await?;
    match invitee.status {
        InviteeStatus::Accepted => return Err(ApiError::invite_accepted("sent again")),
        InviteeStatus::Revoked => return Err(ApiError::invite_revoked()),
        InviteeStatus::Pending => {}
    }
    let cfg = cx.cfg;
    let owner = random_hex(cx.p, 8)
        .map(|h| format!("rsd_{h}"))
        .map_err(|e| {
            ApiError::new(ErrorCode::InternalError, "internal error; retrying is safe").logged(e)
        })?;
    // The window is claimed before the ticket is made: a refused resend must not replace the
    // link the invitee already has. An emailed resend claims the address's email window
    // itself (the same one invite emails use), so the send below can't be held back by it.
    let interval_ms = cfg.resend_interval_sec * 1000;
    let (key, ttl_ms) = match invitee.delivery {
        Delivery::Email => (
            cooldown_key(&invitee.email),
            interval_ms.max(cfg.webhooks.email_cooldown_sec * 1000),
        ),
        Delivery::Returned => (
            format!("resend:{}", cooldown_key(&invitee.email)),
            interval_ms,
        ),
    };
    let claimed_key = key.clone();
    // Before any ticket, which would void the link the invitee has: the claim right before
    // the send needs the gate too, so going on without it only broke that link.
    match claim_window(cx, key, ttl_ms, &owner, "the resend's claim").await {
        Err(InviteError::Revoked) => return Err(ApiError::invite_revoked()),
        Err(e) => return Err(ApiError::gate_unreachable(e.to_string())),
        Ok(c) if !c.claimed => {
            let left = c.retry_after_ms.unwrap_or(ttl_ms);
            return Err(ApiError::resend_too_soon(left.div_ceil(1000)));
        }
        Ok(_) => {}
    }
    match deliver(cx, &invitee, &owner, (&claimed_key, ttl_ms)).await {
        Ok(body) => Ok(HttpResponse::json(200, &body)),
        Err(e) => {
            // Nothing may have reached the invitee: give the window back, so retrying (which
            // the error says is safe) is not refused as too soon.
            let release = GateCall::ReleaseEmail {
                key: claimed_key,
                owner,
            };
            if let Err(why) = cx.p.gate(release).await {
                cx.note(format!("resend window not released: {why}"));
            }
            Err(e)
        }
    }
}

/// Makes the new link and delivers it; the answer's body. `window` (key, length) is claimed
/// again between the two ([`reclaim`]): a revoke meanwhile stops the delivery.
async fn deliver<P: Platform>(
    cx: &Ctx<'_, P>,
    invitee: &Invitee,
    owner: &str,
    window: (&str, u64),
) -> Result<Value, ApiError> {
    let before_delivery = || async {
        match reclaim(cx, window.0.to_string(), window.1, owner).await {
            Err(InviteError::Revoked) => Err(ApiError::invite_revoked()),
            // Nothing was sent yet: without the gate's word, a revoke may be under way
            // (found in a review), so the resend stops here and the caller retries.
            Err(e) => Err(ApiError::gate_unreachable(e.to_string())),
            Ok(()) => Ok(()),
        }
    };
    let cfg = cx.cfg;
    let client = cx.client();
    let target = default_ticket_target(cfg);
    let ttl_sec = cfg.ticket_ttl_sec;
    let expires_at = rfc3339(cx.p.now_ms() + ttl_sec * 1000);
    let mut body = json_of(invitee);
    match invitee.delivery {
        Delivery::Returned => {
            // The caller hands this link on, so using it proves nothing about the address.
            let url = client
                .password_change_ticket(&invitee.user_id, &target, ttl_sec, false)
                .await?;
            before_delivery().await?;
            body["ticket_url"] = json!(url);
            body["ticket_expires_at"] = json!(expires_at);
        }
        Delivery::Email => {
            let url = if emailed_with_ticket(cfg) {
                Some(
                    client
                        .password_change_ticket(&invitee.user_id, &target, ttl_sec, true)
                        .await?,
                )
            } else {
                None
            };
            let ticket = url.as_deref().map(|u| (u, expires_at.as_str()));
            before_delivery().await?;
            send_email(cx, &invitee.email, None, ticket, owner).await?;
        }
    }
    Ok(body)
}

/// `POST /v1/invitees/{ref}/revoke`: blocks (or deletes, with `REVOKE_MODE=delete`) a pending
/// invitee's account, so its links stop working. Revoking again answers the same.
async fn revoke<P: Platform>(
    cx: &Ctx<'_, P>,
    segment: &str,
    label: &str,
) -> Result<HttpResponse, ApiError> {
    let invitee = find(cx, segment).await?;
    match invitee.status {
        InviteeStatus::Accepted => return Err(ApiError::invite_accepted("revoked")),
        InviteeStatus::Revoked => {
            let mut body = json_of(&invitee);
            body["action"] = json!("none");
            return Ok(HttpResponse::json(200, &body));
        }
        InviteeStatus::Pending => {}
    }
    let client = cx.client();
    let (mut revoked, action) = match cx.cfg.revoke_mode {
        RevokeMode::Block => {
            // First the address's email windows: an invite or resend in flight claims its
            // window again before it sends, and now finds the revoke there. Any link it made
            // before this point is voided by the ticket below. (Found by an interleaving test:
            // a paid invite racing a revoke emailed a working link to the blocked account.)
            // Without the hold the race is open again: nothing is done, the caller retries.
            let key = cooldown_key(&invitee.email);
            let hold = GateCall::HoldWindows {
                key: key.clone(),
                ttl_ms: (cx.cfg.webhooks.email_cooldown_sec * 1000).max(crate::gate::LEASE_MS),
            };
            record(cx, hold).await.map_err(ApiError::gate_unreachable)?;
            // Retire the links already sent first: a block does not (Auth0 documents no such
            // thing, and says a password reset through the Management API lifts the block),
            // but Auth0 keeps only an account's newest password-change ticket. This one is
            // made to be thrown away: never returned, logged or kept. (Found in an audit:
            // a revoked invitee's emailed link could undo the revoke.)
            let blocked = async {
                client
                    .password_change_ticket(
                        &invitee.user_id,
                        &default_ticket_target(cx.cfg),
                        TICKET_TTL_RANGE.0,
                        false,
                    )
                    .await?;
                let now = rfc3339(cx.p.now_ms());
                let patch = json!({
                    "blocked": true,
                    "app_metadata": {"revoked_at": now, "revoked_by": label},
                });
                let user = client
                    .patch_user(&invitee.user_id, &patch)
                    .await?
                    .ok_or_else(ApiError::invitee_not_found)?;
                Ok::<_, ApiError>((user, now))
            };
            let (user, now) = match blocked.await {
                Ok(done) => done,
                Err(e) => {
                    // Not revoked: give the windows back, or the address would read as
                    // revoked for the hold's length (found in a review).
                    for key in [key.clone(), format!("resend:{key}")] {
                        let release = GateCall::ReleaseEmail {
                            key,
                            owner: REVOKED_HOLDER.into(),
                        };
                        if let Err(g) = cx.p.gate(release).await {
                            cx.note(format!("revoke's hold not released: {g}"));
                        }
                    }
                    return Err(e);
                }
            };
            let revoked = invitee_from(&user, &cx.cfg.connection).unwrap_or(Invitee {
                status: InviteeStatus::Revoked,
                revoked_at: Some(now),
                ..invitee
            });
            (revoked, "blocked")
        }
        RevokeMode::Delete => {
            let deleted = client.delete_user(&invitee.user_id).await.map_err(|e| {
                let auth = matches!(e, UpstreamError::Auth { .. });
                let mut out = ApiError::from(e);
                if auth {
                    out.message = "Auth0 refused to delete the user: REVOKE_MODE=delete needs the delete:users scope in the client grant".into();
                }
                out
            })?;
            if !deleted {
                return Err(ApiError::invitee_not_found());
            }
            let gone = Invitee {
                status: InviteeStatus::Revoked,
                revoked_at: Some(rfc3339(cx.p.now_ms())),
                ..invitee
            };
            // Auth0 keeps nothing of a deleted user: the gate remembers it for a while, so its
            // status still reads `revoked` and a resend is refused as revoked. The links sent
            // went with the account, so the address's email windows are given back: a new
            // invite for it gets its link now, not when the window ends.
            let remember = GateCall::Remember {
                keys: memory_keys(&gone),
                value: serde_json::to_string(&gone).unwrap_or_default(),
                ttl_ms: DELETED_KEPT_MS,
                windows: Some(cooldown_key(&gone.email)),
            };
            if let Err(e) = cx.p.gate(remember).await {
                cx.note(format!(
                    "gate unreachable, deleted invitee not remembered: {e}"
                ));
            }
            (gone, "deleted")
        }
    };
    // Auth0 answered with the account as it is now; a login between the look-up and the
    // block would show here as `accepted` with `blocked`. Say revoked: the block holds.
    revoked.status = InviteeStatus::Revoked;
    let mut body = json_of(&revoked);
    body["action"] = json!(action);
    Ok(HttpResponse::json(200, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(extra: Value) -> Value {
        let mut u = json!({
            "user_id": "auth0|a1", "email": "ada@example.com", "email_verified": true,
            "created_at": "2026-11-20T10:00:00.000Z",
            "identities": [{"connection": "Username-Password-Authentication", "provider": "auth0"}],
            "app_metadata": {"invited": true, "invited_at": "2026-11-20T10:00:00.000Z", "invited_by": "backend"},
        });
        for (k, v) in extra.as_object().unwrap() {
            if k == "app_metadata" {
                for (mk, mv) in v.as_object().unwrap() {
                    u["app_metadata"][mk] = mv.clone();
                }
            } else {
                u[k] = v.clone();
            }
        }
        u
    }

    const CONN: &str = "Username-Password-Authentication";

    #[test]
    fn status_is_revoked_then_accepted_then_pending() {
        let check = |extra: Value, want: Option<InviteeStatus>| {
            assert_eq!(
                invitee_from(&user(extra.clone()), CONN).map(|i| i.status),
                want,
                "{extra}"
            );
        };
        check(json!({}), Some(InviteeStatus::Pending));
        check(json!({"logins_count": 0}), Some(InviteeStatus::Pending));
        check(
            json!({"logins_count": 0, "last_login": null}),
            Some(InviteeStatus::Pending),
        );
        // An imported account: a login on record without a count.
        check(
            json!({"last_login": "2026-01-05T10:00:00.000Z"}),
            Some(InviteeStatus::Accepted),
        );
        check(
            json!({"logins_count": 2, "last_login": "x"}),
            Some(InviteeStatus::Accepted),
        );
        check(json!({"blocked": true}), Some(InviteeStatus::Revoked));
        check(
            json!({"blocked": true, "logins_count": 2}),
            Some(InviteeStatus::Revoked),
        );
        check(
            json!({"blocked": false, "logins_count": 1}),
            Some(InviteeStatus::Accepted),
        );
        // Not this service's, or not this connection's: not an invitee.
        check(json!({"app_metadata": {"invited": false}}), None);
        check(json!({"app_metadata": {"invited": "true"}}), None);
        check(
            json!({"identities": [{"connection": "google-oauth2"}]}),
            None,
        );
    }

    #[test]
    fn a_remembered_invitee_reads_back_as_it_was_written_but_revoked() {
        for extra in [
            json!({}),
            json!({"app_metadata": {"invite_source": "stripe", "revoked_at": "2026-11-26T00:00:00Z"}}),
            json!({"logins_count": 0, "last_login": null, "email_verified": false}),
        ] {
            let i = invitee_from(&user(extra), CONN).unwrap();
            let back = remembered(&json_of(&i)).unwrap();
            assert_eq!(
                back,
                Invitee {
                    status: InviteeStatus::Revoked,
                    ..i
                }
            );
        }
        assert_eq!(remembered(&json!({"user_id": "auth0|1"})), None);
    }

    #[test]
    fn delivery_follows_the_source() {
        let d = |source: Option<&str>| {
            let extra = match source {
                Some(s) => json!({"app_metadata": {"invite_source": s}}),
                None => json!({}),
            };
            let i = invitee_from(&user(extra), CONN).unwrap();
            (i.source, i.delivery)
        };
        assert_eq!(d(None), ("api".into(), Delivery::Returned));
        assert_eq!(
            d(Some("public_form")),
            ("public_form".into(), Delivery::Email)
        );
        assert_eq!(d(Some("stripe")), ("stripe".into(), Delivery::Email));
        assert_eq!(d(Some("standard")), ("standard".into(), Delivery::Email));
    }

    #[test]
    fn refs_are_addresses_or_user_ids() {
        assert_eq!(
            parse_ref("auth0%7C123").unwrap(),
            InviteeRef::UserId("auth0|123".into())
        );
        assert_eq!(
            parse_ref("Ada%40Example.com").unwrap(),
            InviteeRef::Email("ada@example.com".into())
        );
        assert_eq!(
            parse_ref("ada@example.com").unwrap(),
            InviteeRef::Email("ada@example.com".into())
        );
        assert_eq!(
            parse_ref("not@an@address").unwrap_err().code,
            ErrorCode::InvalidEmail
        );
        for bad in ["%20", "%0Aauth0", "%FF%FE"] {
            assert_eq!(
                parse_ref(bad).unwrap_err().code,
                ErrorCode::InviteeNotFound,
                "{bad}"
            );
        }
    }

    #[test]
    fn actions_by_path() {
        let check = |path: &str, want: Option<Action>| assert_eq!(action_of(path), want, "{path}");
        check("/v1/invitees", Some(Action::List));
        check(
            "/v1/invitees/auth0%7C1",
            Some(Action::Show("auth0%7C1".into())),
        );
        check(
            "/v1/invitees/a%40b.c/resend",
            Some(Action::Resend("a%40b.c".into())),
        );
        check("/v1/invitees/x/revoke", Some(Action::Revoke("x".into())));
        check("/v1/invitees/", None);
        check("/v1/invitees/x/delete", None);
        check("/v1/invitees/x/resend/again", None);
        check("/v1/invitees//resend", None);
    }

    #[test]
    fn list_queries_are_checked_by_name() {
        let q = parse_list_query("https://w.example/v1/invitees?status=pending&limit=2").unwrap();
        assert_eq!((q.status, q.limit), (Some(InviteeStatus::Pending), 2));
        let q = parse_list_query("/v1/invitees").unwrap();
        assert_eq!((q.status, q.limit, q.cursor), (None, DEFAULT_LIMIT, None));
        let err = |url: &str| parse_list_query(url).unwrap_err();
        let e = err("/v1/invitees?status=active");
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidField, Some("status"))
        );
        for limit in ["0", "101", "x", "-1"] {
            let e = err(&format!("/v1/invitees?limit={limit}"));
            assert_eq!(e.field.as_deref(), Some("limit"), "{limit}");
        }
        let e = err("/v1/invitees?cursor=bm90LWEtY3Vyc29y");
        assert_eq!(e.field.as_deref(), Some("cursor"));
        let e = err("/v1/invitees?page=2");
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::UnknownField, Some("page"))
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_they_could_not_quote() {
        let c = Cursor {
            t: "2026-11-20T10:00:00.000Z".into(),
            x: vec!["auth0|a".into(), "auth0|b".into()],
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let forged = Cursor {
            t: "2026\" OR blocked:false".into(),
            x: vec![],
        };
        assert_eq!(Cursor::decode(&forged.encode()), None);
        let forged = Cursor {
            t: "2026-11-20T10:00:00.000Z".into(),
            x: vec!["a\" OR \"b".into()],
        };
        assert_eq!(Cursor::decode(&forged.encode()), None);
    }

    #[test]
    fn a_cursors_bound_is_a_timestamp_as_auth0_writes_one() {
        for t in [
            "2026-11-20T10:00:00.000Z",
            "2026-11-20T10:00:00Z",
            "2026-01-31T23:59:59.123456Z",
        ] {
            assert!(is_timestamp(t), "{t}");
        }
        for t in [
            "",
            "TTTT",
            "::::",
            "Z",
            "2026",
            "2026-",
            "2026-11-20",
            "2026-99-99T99:99:99.999Z",
            "2026-11-20T10:00:00.000",
            "2026-11-20T10:00:00.Z",
            "2026-11-20T10:00:00.000+01:00",
            "2026-11-20 10:00:00Z",
            "2026-11-20T10:00:00.0000000000Z",
        ] {
            assert!(!is_timestamp(t), "{t}");
            let c = Cursor {
                t: t.into(),
                x: vec![],
            };
            assert_eq!(Cursor::decode(&c.encode()), None, "{t}");
        }
    }

    #[test]
    fn a_cursor_carries_the_ids_of_its_last_instant() {
        let u = |id: &str, t: &str| json!({"user_id": id, "created_at": t});
        let t3 = "2026-11-22T10:00:00.000Z";
        let t2 = "2026-11-21T10:00:00.000Z";
        let page = vec![u("auth0|1", t3), u("auth0|2", t2), u("auth0|3", t2)];
        let c = Cursor::after(&page, None).unwrap();
        assert_eq!(
            (c.t.as_str(), c.x.clone()),
            (t2, vec!["auth0|2".into(), "auth0|3".into()])
        );
        // A run of one instant across pages keeps every id already shown.
        let c2 = Cursor::after(&[u("auth0|4", t2)], Some(&c)).unwrap();
        assert_eq!(c2.x, vec!["auth0|2", "auth0|3", "auth0|4"]);
        let later = [u("auth0|5", "2026-11-20T10:00:00.000Z")];
        assert_eq!(Cursor::after(&later, Some(&c2)).unwrap().x, vec!["auth0|5"]);
        assert_eq!(Cursor::after(&[], None), None);
        // Nothing this API could not read back is handed out.
        assert_eq!(Cursor::after(&[json!({"user_id": "auth0|6"})], None), None);
        assert_eq!(Cursor::after(&[u("a\"b", t2)], None), None);
    }

    #[test]
    fn search_queries_by_status_and_cursor() {
        let c = Cursor {
            t: "2026-11-20T10:00:00.000Z".into(),
            x: vec!["auth0|a".into(), "auth0|b".into()],
        };
        let base = "app_metadata.invited:true AND identities.connection:\"DB\"";
        let check = |status, cursor: Option<&Cursor>, tail: &str| {
            assert_eq!(search_query("DB", status, cursor), format!("{base}{tail}"));
        };
        check(None, None, "");
        check(
            Some(InviteeStatus::Pending),
            None,
            " AND NOT blocked:true AND NOT logins_count:[1 TO *] AND NOT _exists_:last_login",
        );
        check(
            Some(InviteeStatus::Accepted),
            None,
            " AND NOT blocked:true AND (logins_count:[1 TO *] OR _exists_:last_login)",
        );
        check(Some(InviteeStatus::Revoked), None, " AND blocked:true");
        check(
            None,
            Some(&c),
            " AND created_at:[* TO \"2026-11-20T10:00:00.000Z\"] AND NOT (user_id:\"auth0|a\" OR user_id:\"auth0|b\")",
        );
    }
}
