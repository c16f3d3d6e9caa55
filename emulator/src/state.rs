//! The in-memory model: users, roles, tickets (and their validity), jobs,
//! issued tokens, the outbox of "sent" messages, request counters and the
//! runtime configuration. One [`State`]
//! lives behind an `Arc<Mutex<_>>` shared by all worker threads.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use crate::options::Options;
use crate::ratelimit::{Limiter, RateLimitSetting};
use crate::util;

/// Endpoint templates counted in `/__emulator/stats`.
pub const ENDPOINTS: &[&str] = &[
    "POST /oauth/token",
    "POST /api/v2/users",
    "GET /api/v2/users",
    "GET /api/v2/users/{id}",
    "PATCH /api/v2/users/{id}",
    "DELETE /api/v2/users/{id}",
    "GET /api/v2/users-by-email",
    "GET /api/v2/roles",
    "POST /api/v2/roles",
    "GET /api/v2/users/{id}/roles",
    "POST /api/v2/users/{id}/roles",
    "POST /api/v2/tickets/password-change",
    "POST /api/v2/tickets/email-verification",
    "POST /api/v2/jobs/verification-email",
    "GET /api/v2/jobs/{id}",
    "POST /dbconnections/change_password",
    "POST /emails",
    "POST /turnstile/v0/siteverify",
];

/// How long the email API remembers an `Idempotency-Key` (24 h, as Resend).
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 3600 * 1000;

/// Settings fixed at startup.
#[derive(Debug, Clone)]
pub struct Settings {
    pub domain: String,
    pub audience: String,
    pub client_id: String,
    pub client_secret: String,
    pub connection_name: String,
    /// A stable `con_...` id derived from the connection name.
    pub connection_id: String,
    /// Further client ids accepted by `/dbconnections/change_password`.
    pub public_client_ids: Vec<String>,
    /// The key the email API accepts.
    pub email_api_key: String,
    /// The startup options, restored by `/__emulator/reset`.
    pub defaults: Options,
}

impl Settings {
    pub fn from_options(opts: &Options) -> Self {
        Settings {
            domain: opts.domain.clone(),
            audience: format!("https://{}/api/v2/", opts.domain),
            client_id: opts.client_id.clone(),
            client_secret: opts.client_secret.clone(),
            connection_name: opts.connection.clone(),
            connection_id: connection_id_for(&opts.connection),
            public_client_ids: opts.public_client_ids.clone(),
            email_api_key: opts.email_api_key.clone(),
            defaults: opts.clone(),
        }
    }
}

fn connection_id_for(name: &str) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let digest = util::md5(name.as_bytes());
    let id: String = digest
        .iter()
        .take(16)
        .map(|b| ALNUM[(*b as usize) % 62] as char)
        .collect();
    format!("con_{id}")
}

/// Configuration that the control API can change at runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub token_lifetime_sec: u64,
    pub latency_ms: u64,
    pub fail_rate: f64,
    pub fail_next: u64,
    /// Epoch ms until which every management request gets 429 (0 = none).
    pub storm_until_ms: u64,
    /// Scopes put into tokens issued from now on.
    pub scopes: Vec<String>,
    /// Users created less than this many ms ago are left out of
    /// `GET /api/v2/users` (Auth0's user search is eventually consistent).
    pub search_lag_ms: u64,
    /// The connection's "Personal Data" password option (off by default, as in Auth0): a
    /// password may not contain the user's name, nickname, username, `user_metadata`'s
    /// `name`, `first` or `last`, or the part of the email before the @.
    pub password_no_personal_info: bool,
    /// The connection's minimum password length (10, the "excellent" level's, by default;
    /// the Flexible Password Policy allows up to 72).
    pub password_min_length: usize,
    /// The Flexible Password Policy's "sequential characters: block" (off by default).
    pub password_block_sequential: bool,
}

impl RuntimeConfig {
    /// Whether `pw` passes the connection's strength policy as now configured.
    pub fn password_ok(&self, pw: &str) -> bool {
        crate::validate::password_ok(pw, self.password_min_length, self.password_block_sequential)
    }
}

impl RuntimeConfig {
    pub fn from_options(opts: &Options) -> Self {
        RuntimeConfig {
            token_lifetime_sec: opts.token_lifetime_sec,
            latency_ms: opts.latency_ms,
            fail_rate: opts.fail_rate,
            fail_next: 0,
            storm_until_ms: 0,
            scopes: opts.scopes.clone(),
            search_lag_ms: opts.search_lag_ms,
            password_no_personal_info: false,
            password_min_length: 10,
            password_block_sequential: false,
        }
    }
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub expires_at_ms: u64,
    pub scopes: Vec<String>,
}

/// A role.
#[derive(Debug, Clone)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

impl Role {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        Value::Object(m)
    }
}

/// A database-connection user. The password is never stored.
#[derive(Debug, Clone)]
pub struct User {
    pub user_id: String,
    /// The part after `auth0|`, also the identity's `user_id`.
    pub local_id: String,
    pub connection: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub username: Option<String>,
    pub phone_number: Option<String>,
    pub phone_verified: Option<bool>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub user_metadata: Option<Map<String, Value>>,
    pub app_metadata: Option<Map<String, Value>>,
    pub blocked: Option<bool>,
    pub created_at: String,
    pub updated_at: String,
    /// Successful logins so far (`POST /__emulator/login`). A user that has
    /// never logged in shows neither `logins_count` nor `last_login`, as in
    /// Auth0.
    pub logins_count: u64,
    /// When the user last logged in (RFC 3339 with milliseconds).
    pub last_login: Option<String>,
    /// The IP address of the last login.
    pub last_ip: Option<String>,
    /// Assigned role ids, in assignment order.
    pub role_ids: Vec<String>,
}

impl User {
    /// What Auth0's "Personal Data" password option keeps out of a password: the name,
    /// nickname and username, `user_metadata`'s `name`, `first` and `last`, and the part of
    /// the email before the @ (whole: Auth0 does not split it at dots).
    pub fn personal_data(&self) -> Vec<&str> {
        let mut out: Vec<&str> = [&self.name, &self.nickname, &self.username]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if let Some(local) = self.email.as_deref().and_then(|e| e.split('@').next()) {
            out.push(local);
        }
        if let Some(m) = &self.user_metadata {
            out.extend(
                ["name", "first", "last"]
                    .iter()
                    .filter_map(|k| m.get(*k)?.as_str()),
            );
        }
        out
    }

    /// The user as the Management API returns it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        if let Some(b) = self.blocked {
            put("blocked", json!(b));
        }
        put("created_at", json!(self.created_at));
        if let Some(e) = &self.email {
            put("email", json!(e));
        }
        put("email_verified", json!(self.email_verified));
        if let Some(v) = &self.family_name {
            put("family_name", json!(v));
        }
        if let Some(v) = &self.given_name {
            put("given_name", json!(v));
        }
        put(
            "identities",
            json!([{
                "connection": self.connection,
                "user_id": self.local_id,
                "provider": "auth0",
                "isSocial": false
            }]),
        );
        if let Some(v) = &self.last_ip {
            put("last_ip", json!(v));
        }
        if let Some(v) = &self.last_login {
            put("last_login", json!(v));
        }
        if self.logins_count > 0 {
            put("logins_count", json!(self.logins_count));
        }
        if let Some(v) = &self.name {
            put("name", json!(v));
        }
        if let Some(v) = &self.nickname {
            put("nickname", json!(v));
        }
        if let Some(v) = &self.phone_number {
            put("phone_number", json!(v));
        }
        if let Some(v) = self.phone_verified {
            put("phone_verified", json!(v));
        }
        if let Some(v) = &self.picture {
            put("picture", json!(v));
        }
        put("updated_at", json!(self.updated_at));
        put("user_id", json!(self.user_id));
        if let Some(v) = &self.user_metadata {
            put("user_metadata", Value::Object(v.clone()));
        }
        if let Some(v) = &self.username {
            put("username", json!(v));
        }
        if let Some(v) = &self.app_metadata {
            put("app_metadata", Value::Object(v.clone()));
        }
        Value::Object(m)
    }

    /// Records a successful login from `ip` at `at` (RFC 3339): one more
    /// `logins_count`, and `last_login` / `last_ip` set.
    pub fn record_login(&mut self, ip: &str, at: String) {
        self.logins_count += 1;
        self.last_login = Some(at);
        self.last_ip = Some(ip.to_string());
    }
}

/// What a ticket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    PasswordChange,
    EmailVerification,
}

impl TicketKind {
    /// The name used in ticket records and the control API.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::PasswordChange => "password_change",
            TicketKind::EmailVerification => "email_verification",
        }
    }

    /// The hosted page that redeems it: `/u/{page}?ticket=...`.
    pub fn page(self) -> &'static str {
        match self {
            TicketKind::PasswordChange => "reset-password",
            TicketKind::EmailVerification => "email-verification",
        }
    }
}

/// A password-change or email-verification ticket. Tickets live in
/// [`State::tickets`], not on the user, so that a deleted user's tickets
/// can still say why they stopped working.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The `ticket=` value of its URL.
    pub id: String,
    pub kind: TicketKind,
    pub user_id: String,
    /// The user's email when the ticket was issued (finds a deleted user's
    /// tickets by email).
    pub email: Option<String>,
    pub url: String,
    /// The request as recorded: `{type,url,result_url,client_id,
    /// organization_id,ttl_sec,mark_email_as_verified?,
    /// includeEmailInRedirect,created_at,expires_at}`.
    pub record: Map<String, Value>,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// When the hosted page redeemed it.
    pub used_ms: Option<u64>,
    /// The user was deleted. A flag rather than a look-up, so that a new
    /// user created later with the same `user_id` does not revive it.
    pub user_deleted: bool,
}

/// A job (only verification emails are modelled).
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub job_type: &'static str,
    pub created_at: String,
    pub user_id: String,
}

impl Job {
    /// The job as `GET /api/v2/jobs/{id}` returns it. The email was "sent"
    /// when the job was created, so the job is `completed` by the time
    /// anyone reads it; only the 201 of its creation says `pending`, as
    /// Auth0's does.
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.job_type,
            "status": "completed",
            "created_at": self.created_at,
            "id": self.id,
        })
    }
}

/// Request counters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub endpoints: BTreeMap<&'static str, u64>,
    pub token_requests: u64,
    pub management_requests: u64,
    pub rate_limited: u64,
    pub faults_injected: u64,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            endpoints: ENDPOINTS.iter().map(|e| (*e, 0)).collect(),
            ..Default::default()
        }
    }

    pub fn hit(&mut self, template: &'static str) {
        *self.endpoints.entry(template).or_insert(0) += 1;
    }

    pub fn to_json(&self) -> Value {
        json!({
            "endpoints": self.endpoints,
            "token_requests": self.token_requests,
            "management_requests": self.management_requests,
            "rate_limited": self.rate_limited,
            "faults_injected": self.faults_injected,
        })
    }
}

/// Tokens kept after expiry so that they are reported as "Expired"; beyond
/// this many stored tokens, long-expired ones are dropped.
const TOKEN_PRUNE_THRESHOLD: usize = 10_000;

/// The whole emulator state.
#[derive(Debug)]
pub struct State {
    pub settings: Settings,
    pub config: RuntimeConfig,
    pub limiter: Limiter,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    /// Every ticket issued since the last reset, oldest first (including
    /// those of deleted users).
    pub tickets: Vec<Ticket>,
    pub jobs: Vec<Job>,
    pub tokens: HashMap<String, TokenInfo>,
    pub outbox: Vec<Value>,
    /// Email API idempotency keys: key → (message id, first use in epoch ms, the payload).
    pub email_idempotency: HashMap<String, (String, u64, Value)>,
    /// Turnstile siteverify calls, oldest first (never the secret).
    pub siteverify: Vec<Value>,
    pub stats: Stats,
}

impl State {
    pub fn new(opts: &Options) -> Self {
        State {
            settings: Settings::from_options(opts),
            config: RuntimeConfig::from_options(opts),
            limiter: Limiter::new(opts.rate_limit),
            users: Vec::new(),
            roles: Vec::new(),
            tickets: Vec::new(),
            jobs: Vec::new(),
            tokens: HashMap::new(),
            outbox: Vec::new(),
            email_idempotency: HashMap::new(),
            siteverify: Vec::new(),
            stats: Stats::new(),
        }
    }

    /// Clears all data and counters and restores the startup configuration.
    pub fn reset(&mut self) {
        let defaults = self.settings.defaults.clone();
        *self = State::new(&defaults);
    }

    /// Decides whether this request gets an injected 503: `fail_next` first
    /// (consumed), then `fail_rate`. Counts the fault.
    pub fn take_fault(&mut self) -> bool {
        let fault = if self.config.fail_next > 0 {
            self.config.fail_next -= 1;
            true
        } else {
            self.config.fail_rate > 0.0 && util::random_f64() < self.config.fail_rate
        };
        if fault {
            self.stats.faults_injected += 1;
        }
        fault
    }

    pub fn set_rate_limit(&mut self, setting: RateLimitSetting) {
        self.limiter = Limiter::new(setting);
    }

    /// Issues a token with the given scopes, valid for the configured lifetime.
    pub fn issue_token(&mut self, scopes: Vec<String>, now_ms: u64) -> String {
        if self.tokens.len() >= TOKEN_PRUNE_THRESHOLD {
            let cutoff = now_ms.saturating_sub(3_600_000);
            self.tokens.retain(|_, t| t.expires_at_ms > cutoff);
        }
        let token = util::random_alnum(64);
        let expires_at_ms =
            now_ms.saturating_add(self.config.token_lifetime_sec.saturating_mul(1000));
        self.tokens.insert(
            token.clone(),
            TokenInfo {
                expires_at_ms,
                scopes,
            },
        );
        token
    }

    pub fn user(&self, user_id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.user_id == user_id)
    }

    pub fn user_mut(&mut self, user_id: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.user_id == user_id)
    }

    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// Roles sorted by name (case-insensitive), then id.
    pub fn sorted_roles<'a>(&'a self, ids: Option<&[String]>) -> Vec<&'a Role> {
        let mut roles: Vec<&Role> = match ids {
            None => self.roles.iter().collect(),
            Some(ids) => ids.iter().filter_map(|id| self.role(id)).collect(),
        };
        roles.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.id.cmp(&b.id))
        });
        roles
    }

    /// The user JSON plus role names and tickets, for the control API.
    pub fn user_debug_json(&self, user: &User) -> Value {
        let mut v = user.to_json();
        if let Value::Object(m) = &mut v {
            let names: Vec<&str> = user
                .role_ids
                .iter()
                .filter_map(|id| self.role(id))
                .map(|r| r.name.as_str())
                .collect();
            m.insert("roles".into(), json!(names));
            let now = util::now_ms();
            let tickets: Vec<Value> = self
                .tickets
                .iter()
                .filter(|t| t.user_id == user.user_id && !t.user_deleted)
                .map(|t| {
                    let mut rec = t.record.clone();
                    let reason = self.ticket_reason(t, now);
                    rec.insert("id".into(), json!(t.id));
                    rec.insert("valid".into(), json!(reason.is_none()));
                    rec.insert("reason".into(), json!(reason));
                    Value::Object(rec)
                })
                .collect();
            m.insert("tickets".into(), Value::Array(tickets));
        }
        v
    }

    pub fn ticket(&self, id: &str) -> Option<&Ticket> {
        self.tickets.iter().find(|t| t.id == id)
    }

    /// Why a ticket no longer works, or `None` while it is valid. Permanent
    /// reasons come first.
    ///
    /// - `user deleted`: its user was deleted
    /// - `used`: the hosted page redeemed it
    /// - `expired`: its `ttl_sec` ran out
    /// - `superseded`: a newer ticket of the same kind exists for the same
    ///   user (Auth0 invalidates older reset and verification links)
    ///
    /// Blocking a user leaves its tickets working: Auth0 documents no such
    /// invalidation, and says that resetting a password through the
    /// Management API lifts an administrator's block (see `hosted::redeem`).
    pub fn ticket_reason(&self, t: &Ticket, now_ms: u64) -> Option<&'static str> {
        if t.user_deleted {
            return Some("user deleted");
        }
        if t.used_ms.is_some() {
            return Some("used");
        }
        if now_ms >= t.expires_ms {
            return Some("expired");
        }
        let newer = self
            .tickets
            .iter()
            .skip_while(|other| other.id != t.id)
            .skip(1)
            .any(|other| other.user_id == t.user_id && other.kind == t.kind);
        if newer {
            return Some("superseded");
        }
        None
    }

    /// A ticket as the control API shows it.
    pub fn ticket_json(&self, t: &Ticket, now_ms: u64) -> Value {
        let reason = self.ticket_reason(t, now_ms);
        json!({
            "id": t.id,
            "kind": t.kind.as_str(),
            "user_id": t.user_id,
            "email": t.email,
            "url": t.url,
            "created_at": util::rfc3339_ms(t.created_ms),
            "expires_at": util::rfc3339_ms(t.expires_ms),
            "used_at": t.used_ms.map(util::rfc3339_ms),
            "valid": reason.is_none(),
            "reason": reason,
        })
    }

    /// Deletes a user. Its tickets stay, marked, so that their reason reads
    /// "user deleted". Returns whether the user existed.
    pub fn delete_user(&mut self, user_id: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|u| u.user_id != user_id);
        if self.users.len() == before {
            return false;
        }
        for t in self.tickets.iter_mut().filter(|t| t.user_id == user_id) {
            t.user_deleted = true;
        }
        true
    }

    /// Records a verification email as "sent".
    pub fn send_verification_email(&mut self, user_id: &str, reason: &str, job_id: Option<&str>) {
        let to = self.user(user_id).and_then(|u| u.email.clone());
        let mut entry = Map::new();
        entry.insert(
            "id".into(),
            json!(format!("msg_{}", util::random_alnum(16))),
        );
        entry.insert("kind".into(), json!("verification_email"));
        entry.insert("type".into(), json!("verification_email"));
        entry.insert("to".into(), json!(to));
        entry.insert("user_id".into(), json!(user_id));
        entry.insert("reason".into(), json!(reason));
        if let Some(j) = job_id {
            entry.insert("job_id".into(), json!(j));
        }
        let now = util::now_rfc3339();
        entry.insert("at".into(), json!(now));
        entry.insert("created_at".into(), json!(now));
        self.outbox.push(Value::Object(entry));
    }

    /// Outbox entries, in order, optionally only those addressed to `to`
    /// (case-insensitive; matches a string `to`, an element of an array `to`,
    /// or the address inside `Name <address>`) and of the given `kind`.
    pub fn outbox_filtered(&self, to: Option<&str>, kind: Option<&str>) -> Vec<Value> {
        let to = to.map(|t| t.trim().to_lowercase());
        self.outbox
            .iter()
            .filter(|e| kind.is_none_or(|k| e.get("kind").and_then(Value::as_str) == Some(k)))
            .filter(|e| match &to {
                None => true,
                Some(want) => match e.get("to") {
                    Some(Value::String(s)) => address_matches(s, want),
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|s| address_matches(s, want)),
                    _ => false,
                },
            })
            .cloned()
            .collect()
    }
}

/// Whether a recipient (`a@b.co` or `Name <a@b.co>`) is the lowercased `want`.
fn address_matches(recipient: &str, want: &str) -> bool {
    let r = recipient.trim().to_lowercase();
    if r == want {
        return true;
    }
    match (r.rfind('<'), r.ends_with('>')) {
        (Some(i), true) => r[i + 1..r.len() - 1].trim() == want,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_id_is_stable() {
        let a = connection_id_for("Username-Password-Authentication");
        assert_eq!(a, connection_id_for("Username-Password-Authentication"));
        assert!(a.starts_with("con_"));
        assert_eq!(a.len(), 20);
    }

    #[test]
    fn recipients_match() {
        assert!(address_matches("A@B.co", "a@b.co"));
        assert!(address_matches("Ada <A@b.co>", "a@b.co"));
        assert!(!address_matches("Ada <x@b.co>", "a@b.co"));
        assert!(!address_matches("ab.co", "a@b.co"));
    }

    #[test]
    fn stats_start_with_every_endpoint() {
        let s = Stats::new().to_json();
        assert_eq!(s["endpoints"]["POST /api/v2/users/{id}/roles"], 0);
        assert_eq!(
            s["endpoints"].as_object().map(|m| m.len()),
            Some(ENDPOINTS.len())
        );
    }
}
