//! Configuration: reads every variable through a lookup function, validates them all, and
//! reports every problem at once, by variable name and never by secret value.

use crate::secret::{ApiKey, Secret};
use std::collections::HashSet;
use thiserror::Error;

use crate::http::{ParseUrl, WebUrl};

/// Where roles go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleMode {
    /// Auth0 RBAC roles, assigned with `POST /api/v2/users/{id}/roles`.
    Rbac,
    /// Role names stored in `app_metadata.roles`.
    AppMetadata,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Tenant host, e.g. `acme.eu.auth0.com`.
    pub auth0_domain: String,
    /// Where requests go, without a trailing slash: `https://{AUTH0_DOMAIN}` or the override.
    pub base_url: String,
    /// Machine-to-machine application client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: Secret,
    /// Token audience.
    pub audience: String,
    /// Database connection new users are created in.
    pub connection: String,
    /// Roles a caller may request.
    pub allowed_roles: Vec<String>,
    /// Roles given when the request names none.
    pub default_roles: Vec<String>,
    /// Create roles missing in Auth0 on first use.
    pub auto_create_roles: bool,
    /// RBAC or app_metadata.
    pub role_mode: RoleMode,
    /// Default ticket redirect.
    pub result_url: Option<String>,
    /// Origins a request's `result_url` may point at.
    pub result_url_allowlist: Vec<String>,
    /// Application whose login page the ticket sends the user to (instead of a result URL).
    pub ticket_client_id: Option<String>,
    /// Default ticket lifetime.
    pub ticket_ttl_sec: u64,
    /// Refresh the token when fewer seconds than this remain.
    pub token_refresh_margin_sec: u64,
    /// Total time budget for upstream calls of one request.
    pub upstream_deadline_ms: u64,
    /// The tenant's Management API rate (`AUTH0_MGMT_RPS`, `AUTH0_MGMT_BURST`).
    pub mgmt_rate: crate::gate::Rate,
    /// Accepted API keys.
    pub api_keys: Vec<ApiKey>,
    /// `app_metadata` keys a trusted caller may set (`APP_METADATA_KEYS`).
    pub app_metadata_keys: Vec<String>,
    /// Hand out links for accounts that are not unaccepted invites (`EXISTING_ACCOUNT_TICKETS`).
    pub existing_account_tickets: bool,
    /// What revoking a pending invite does (`REVOKE_MODE`).
    pub revoke_mode: RevokeMode,
    /// At most one resent link per address in this many seconds (`RESEND_INTERVAL_SEC`).
    pub resend_interval_sec: u64,
    /// Most invites one `POST /v1/invites/batch` may hold (`BATCH_MAX_INVITES`).
    pub batch_max_invites: usize,
    /// Payment webhooks and email delivery.
    pub webhooks: WebhookConfig,
    /// The public landing-page form.
    pub public: PublicConfig,
    /// The URL parser the configuration was checked with, for URLs that arrive in requests
    /// (`result_url`): the runtime's in the Worker (see [`ParseUrl`]).
    pub parse_url: ParseUrl,
    /// What [`Config::warnings`] lists.
    warnings: Vec<String>,
}

/// What `POST /v1/invitees/{ref}/revoke` does to a pending invitee's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeMode {
    /// Block it (`blocked: true`): its links stop working, the record stays, its status
    /// reads `revoked`. Needs `update:users`.
    Block,
    /// Delete it: its links stop working and the address is free again. Needs `delete:users`.
    Delete,
}

/// Settings of the public sign-up form (`POST /v1/public/invites` and the page at `/`).
#[derive(Clone, Debug)]
pub struct PublicConfig {
    /// Roles every public sign-up gets (never from the request).
    pub roles: Vec<String>,
    /// Where a plain HTML form post is redirected (303); `None`: the built-in `/thanks`.
    pub thank_you_url: Option<String>,
    /// Turnstile site key, shown on the page.
    pub turnstile_site_key: Option<String>,
    /// Turnstile secret; when set, every public request must pass siteverify.
    pub turnstile_secret: Option<Secret>,
    /// `https://challenges.cloudflare.com` or an override (the emulator).
    pub turnstile_base_url: String,
    /// Hostnames a token must have been solved on (siteverify's `hostname`); empty: any the
    /// widget allows.
    pub turnstile_hostnames: Vec<String>,
    /// Origins whose pages may post to the public route.
    pub allowed_origins: Vec<String>,
}

/// How invite emails are sent (for webhook invites, whose link must go by email).
#[derive(Clone, Debug)]
pub enum EmailDelivery {
    /// Auth0 sends its own Change Password email (`POST /dbconnections/change_password`);
    /// no ticket URL passes through the service.
    Auth0,
    /// A Resend-compatible HTTP email API (`POST {base}/emails`) sends the repo's template,
    /// which holds the ticket URL.
    Resend {
        /// API key.
        api_key: Secret,
        /// `https://api.resend.com` or an override (the emulator).
        base_url: String,
    },
}

/// Settings of the payment webhooks and of email delivery. All optional: a webhook route
/// without secrets answers 404 `webhook_not_configured`.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// `STRIPE_WEBHOOK_SECRETS` (`whsec_…`, several for rotation).
    pub stripe_secrets: Vec<Secret>,
    /// Largest accepted age of a Stripe signature.
    pub stripe_tolerance_sec: u64,
    /// Stripe price or product id → role names.
    pub stripe_role_map: Vec<(String, Vec<String>)>,
    /// `STANDARD_WEBHOOK_SECRETS` (`whsec_<base64>`).
    pub standard_secrets: Vec<Secret>,
    /// Roles for a paid invite that names none.
    pub payment_roles: Vec<String>,
    /// How the link is emailed.
    pub delivery: EmailDelivery,
    /// Sender address for `resend`.
    pub from_email: Option<String>,
    /// Product name used in the email.
    pub product_name: String,
    /// At most one email per address in this many seconds.
    pub email_cooldown_sec: u64,
    /// The application whose login page Auth0's email and the ticket lead to.
    pub email_client_id: String,
}

/// Names Auth0's documentation says `app_metadata` must not contain ("App Metadata
/// Restrictions", and its user import schema): they are the user's own attributes.
const AUTH0_APP_METADATA_NAMES: &[&str] = &[
    "__tenant",
    "_id",
    "blocked",
    "clientID",
    "created_at",
    "email_verified",
    "email",
    "globalClientID",
    "global_client_id",
    "identities",
    "lastIP",
    "lastLogin",
    "loginsCount",
    "metadata",
    "multifactor_last_modified",
    "multifactor",
    "updated_at",
    "user_id",
];

/// Every problem found in the configuration.
#[derive(Clone, Debug, Error, PartialEq)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    /// One sentence per problem, naming the variable.
    pub problems: Vec<String>,
}

/// Shortest and longest ticket lifetime accepted (1 minute to 30 days).
pub const TICKET_TTL_RANGE: (u64, u64) = (60, 2_592_000);
/// Largest `UPSTREAM_DEADLINE_MS` (a consumer's lease, `gate::LEASE_MS`, must outlast it).
pub const MAX_UPSTREAM_DEADLINE_MS: u64 = 60_000;
/// `BATCH_MAX_INVITES` when unset (see where it is read).
pub const DEFAULT_BATCH_MAX_INVITES: usize = 100;
const DEFAULT_CONNECTION: &str = "Username-Password-Authentication";
const MIN_API_KEY_LEN: usize = 16;
/// The API key in the README's examples and `.dev.vars.example`.
const PUBLISHED_API_KEY: &str = "dev-invite-key-change-me";
/// The Stripe secret in `.dev.vars.example`.
const PUBLISHED_STRIPE_SECRET: &str = "whsec_dev_stripe_secret";
/// The Standard Webhooks spec's test-vector secret, used in the README and `.dev.vars.example`.
const PUBLISHED_STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Cloudflare's dummy Turnstile secrets (developers.cloudflare.com/turnstile/troubleshooting/
/// testing): always passes, always fails, "token already spent".
const TURNSTILE_TEST_SECRETS: [&str; 3] = [
    "1x0000000000000000000000000000000AA",
    "2x0000000000000000000000000000000AA",
    "3x0000000000000000000000000000000AA",
];
/// Shortest Stripe signing secret accepted after `whsec_` (Stripe's are 32).
pub const MIN_STRIPE_SECRET_CHARS: usize = 16;
/// Shortest Standard Webhooks key accepted, in bytes (the spec's minimum).
pub const MIN_STANDARD_KEY_BYTES: usize = 24;

struct Reader<F> {
    lookup: F,
    problems: Vec<String>,
    parse_url: ParseUrl,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    /// A trimmed, non-empty value.
    fn opt(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn required(&mut self, name: &str) -> String {
        self.opt(name).unwrap_or_else(|| {
            self.problems.push(format!("{name} is missing"));
            String::new()
        })
    }

    fn number(&mut self, name: &str, default: u64, (min, max): (u64, u64)) -> u64 {
        match self.opt(name) {
            None => default,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    self.problems
                        .push(format!("{name} must be a whole number from {min} to {max}"));
                    default
                }
            },
        }
    }

    fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.opt(name).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if v == "true" || v == "1" => true,
            Some(v) if v == "false" || v == "0" => false,
            Some(_) => {
                self.problems.push(format!("{name} must be true or false"));
                default
            }
        }
    }

    fn list(&mut self, name: &str) -> Vec<String> {
        let Some(raw) = self.opt(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim) {
            if item.is_empty() {
                self.problems
                    .push(format!("{name} contains an empty entry"));
            } else if !out.iter().any(|o| o == item) {
                out.push(item.to_string());
            }
        }
        out
    }
}

/// Whether `host` is a loopback host, where plain http is allowed: an IP address in
/// 127.0.0.0/8 or `::1` (bracketed or not), or exactly `localhost`. A name that merely starts
/// with `127.` (`127.attacker.example`) is a remote host.
pub fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Checks a `THANK_YOU_URL`: a path on this Worker (one leading `/`, never `//` or `/\`,
/// which browsers treat as another host) or an absolute https URL; never white space or
/// control characters (a CR/LF would break every redirect).
pub fn check_redirect_target(parse: ParseUrl, raw: &str) -> Result<(), &'static str> {
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters");
    }
    if let Some(rest) = raw.strip_prefix('/') {
        if rest.starts_with('/') || rest.starts_with('\\') || raw.contains('\\') {
            return Err("must be a path with one leading / (// and \\ lead to other hosts)");
        }
        return Ok(());
    }
    parse_web_url(parse, raw).map(|_| ())
}

/// Parses an absolute https URL (http only for loopback hosts).
pub fn parse_web_url(parse: ParseUrl, raw: &str) -> Result<WebUrl, &'static str> {
    let url = parse(raw).ok_or("is not an absolute URL")?;
    if url.host.is_empty() {
        return Err("has no host");
    }
    match url.scheme.as_str() {
        "https" => Ok(url),
        "http" if is_loopback(&url.host) => Ok(url),
        "http" => Err("must use https (http is allowed only for loopback hosts)"),
        _ => Err("must be an https URL"),
    }
}

fn valid_role_name(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= 50 && !name.chars().any(char::is_control)
}

fn secrets_list<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, name: &str) -> Vec<Secret> {
    r.list(name).into_iter().map(Secret::new).collect()
}

fn read_webhooks<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    allowed_roles: &[String],
    client_id: &str,
) -> WebhookConfig {
    let stripe_secrets = secrets_list(r, "STRIPE_WEBHOOK_SECRETS");
    // Stripe's secrets are whsec_ and 32 characters; an empty or tiny key is guessable.
    if stripe_secrets.iter().any(|s| {
        s.expose()
            .strip_prefix("whsec_")
            .is_none_or(|k| k.len() < MIN_STRIPE_SECRET_CHARS)
    }) {
        r.problems.push(format!(
            "STRIPE_WEBHOOK_SECRETS entries must be whsec_ followed by at least {MIN_STRIPE_SECRET_CHARS} characters"
        ));
    }
    let stripe_tolerance_sec = r.number("STRIPE_TOLERANCE_SEC", 300, (1, 86_400));
    let mut stripe_role_map = Vec::new();
    for entry in r.list("STRIPE_ROLE_MAP") {
        let Some((id, roles)) = entry.split_once(':') else {
            r.problems.push(format!(
                "STRIPE_ROLE_MAP entry {entry:?} is not in the form price_or_product_id:role|role"
            ));
            continue;
        };
        let id = id.trim();
        // Only the first entry of an id would ever apply, and an empty id never matches.
        if id.is_empty() || stripe_role_map.iter().any(|(k, _): &(String, _)| k == id) {
            r.problems.push(format!(
                "STRIPE_ROLE_MAP entry {entry:?} has an empty or repeated id: list each id once, its roles joined by |"
            ));
            continue;
        }
        let roles: Vec<String> = roles.split('|').map(|x| x.trim().to_string()).collect();
        for role in &roles {
            if !allowed_roles.contains(role) {
                r.problems.push(format!(
                    "STRIPE_ROLE_MAP maps {id} to '{role}', which is not in ALLOWED_ROLES"
                ));
            }
        }
        stripe_role_map.push((id.to_string(), roles));
    }
    let standard_secrets = secrets_list(r, "STANDARD_WEBHOOK_SECRETS");
    // The spec asks for keys of 24 to 64 bytes; an empty key was accepted before.
    if standard_secrets
        .iter()
        .any(|s| crate::webhook::standard_key(s).is_none_or(|k| k.len() < MIN_STANDARD_KEY_BYTES))
    {
        r.problems.push(format!(
            "STANDARD_WEBHOOK_SECRETS entries must be whsec_ followed by the base64 of at least {MIN_STANDARD_KEY_BYTES} bytes"
        ));
    }
    let payment_roles = r.list("PAYMENT_ROLES");
    for role in &payment_roles {
        if !allowed_roles.contains(role) {
            r.problems.push(format!(
                "PAYMENT_ROLES contains '{role}', which is not in ALLOWED_ROLES"
            ));
        }
    }
    let delivery = match r.opt("EMAIL_DELIVERY").as_deref() {
        None | Some("auth0") => EmailDelivery::Auth0,
        Some("resend") => {
            let api_key = r.opt("EMAIL_API_KEY").unwrap_or_default();
            if api_key.is_empty() {
                r.problems
                    .push("EMAIL_API_KEY is missing (needed by EMAIL_DELIVERY=resend)".into());
            }
            let base_url = match r.opt("EMAIL_API_BASE_URL") {
                None => "https://api.resend.com".to_string(),
                Some(raw) => match parse_web_url(r.parse_url, &raw) {
                    Ok(_) => raw.trim_end_matches('/').to_string(),
                    Err(why) => {
                        r.problems.push(format!("EMAIL_API_BASE_URL {why}"));
                        String::new()
                    }
                },
            };
            EmailDelivery::Resend {
                api_key: Secret::new(api_key),
                base_url,
            }
        }
        Some(_) => {
            r.problems
                .push("EMAIL_DELIVERY must be auth0 or resend".into());
            EmailDelivery::Auth0
        }
    };
    let from_email = r.opt("FROM_EMAIL");
    if matches!(delivery, EmailDelivery::Resend { .. }) && from_email.is_none() {
        r.problems
            .push("FROM_EMAIL is missing (needed by EMAIL_DELIVERY=resend)".into());
    }
    // `Name <address>` or an address, as the email API takes it: a bad one would fail every
    // email at run time instead of here.
    // (Checked only where it is used: a stale value left with EMAIL_DELIVERY=auth0 is harmless.)
    if let Some(from) = from_email
        .as_ref()
        .filter(|_| matches!(delivery, EmailDelivery::Resend { .. }))
    {
        // A display name may be quoted (`"Acme, Inc." <hello@acme.com>`).
        let address = match from
            .trim()
            .strip_suffix('>')
            .and_then(|f| f.rsplit_once('<'))
        {
            Some((name, address)) if !name.contains(['<', '>']) => address,
            Some(_) => "",
            None => from.trim(),
        };
        if crate::email::normalize(address).is_err() {
            r.problems.push(format!(
                "FROM_EMAIL must be an address or Name <address>, such as Acme <hello@acme.com>; got {from:?}"
            ));
        }
    }
    WebhookConfig {
        stripe_secrets,
        stripe_tolerance_sec,
        stripe_role_map,
        standard_secrets,
        payment_roles,
        delivery,
        from_email,
        product_name: r
            .opt("PRODUCT_NAME")
            .unwrap_or_else(|| "our product".into()),
        email_cooldown_sec: r.number("EMAIL_COOLDOWN_SEC", 600, (60, 86_400)),
        email_client_id: r
            .opt("TICKET_CLIENT_ID")
            .unwrap_or_else(|| client_id.to_string()),
    }
}

fn read_public<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    allowed_roles: &[String],
) -> PublicConfig {
    let roles = r.list("PUBLIC_ROLES");
    for role in &roles {
        if !allowed_roles.contains(role) {
            r.problems.push(format!(
                "PUBLIC_ROLES contains '{role}', which is not in ALLOWED_ROLES"
            ));
        }
    }
    let raw_thank_you = (r.lookup)("THANK_YOU_URL").filter(|v| !v.trim().is_empty());
    let mut thank_you_url = None;
    if let Some(u) = raw_thank_you {
        // Checked untrimmed: a trailing CR/LF is a problem to report, not to hide.
        match check_redirect_target(r.parse_url, u.trim_matches(' ')) {
            Ok(()) => thank_you_url = Some(u.trim_matches(' ').to_string()),
            Err(why) => r.problems.push(format!(
                "THANK_YOU_URL {why} (use a path such as /thanks or an https URL)"
            )),
        }
    }
    let turnstile_base_url = match r.opt("TURNSTILE_BASE_URL") {
        None => "https://challenges.cloudflare.com".to_string(),
        Some(raw) => match parse_web_url(r.parse_url, &raw) {
            Ok(_) => raw.trim_end_matches('/').to_string(),
            Err(why) => {
                r.problems.push(format!("TURNSTILE_BASE_URL {why}"));
                String::new()
            }
        },
    };
    let mut turnstile_hostnames = Vec::new();
    for entry in r.list("TURNSTILE_HOSTNAMES") {
        let host = entry.to_ascii_lowercase();
        let ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok && !host.starts_with('.') && !host.ends_with('.') {
            turnstile_hostnames.push(host);
        } else {
            r.problems.push(format!(
                "TURNSTILE_HOSTNAMES entries must be hostnames like www.example.com, not {entry:?}"
            ));
        }
    }
    let mut allowed_origins = Vec::new();
    for entry in r.list("ALLOWED_ORIGINS") {
        if entry == "*" {
            r.problems
                .push("ALLOWED_ORIGINS must list origins; '*' is not allowed".into());
            continue;
        }
        match (r.parse_url)(&entry) {
            Some(url) if url.origin == entry.trim_end_matches('/') => {
                allowed_origins.push(url.origin)
            }
            _ => r.problems.push(format!(
                "ALLOWED_ORIGINS entries must be origins like https://www.example.com, not {entry:?}"
            )),
        }
    }
    PublicConfig {
        roles,
        thank_you_url,
        turnstile_site_key: r.opt("TURNSTILE_SITE_KEY"),
        turnstile_secret: r.opt("TURNSTILE_SECRET_KEY").map(Secret::new),
        turnstile_base_url,
        turnstile_hostnames,
        allowed_origins,
    }
}

impl Config {
    /// Reads and validates every variable. `lookup` returns a variable's value, or `None`
    /// when unset. URLs are parsed with `parse_url` (see [`ParseUrl`]).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        parse_url: ParseUrl,
    ) -> Result<Config, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
            parse_url,
        };

        let auth0_domain = r.required("AUTH0_DOMAIN").to_ascii_lowercase();
        if !auth0_domain.is_empty()
            && (auth0_domain.contains("://")
                || auth0_domain.contains(['/', '?', '#', '@', '\\', ' '])
                || parse_url(&format!("https://{auth0_domain}")).is_none())
        {
            r.problems.push(
                "AUTH0_DOMAIN must be a host name such as acme.eu.auth0.com, without scheme or path"
                    .into(),
            );
        }
        let base_url = match r.opt("AUTH0_BASE_URL") {
            None => format!("https://{auth0_domain}"),
            Some(raw) => match parse_web_url(parse_url, &raw) {
                Ok(_) => raw.trim_end_matches('/').to_string(),
                Err(why) => {
                    r.problems.push(format!("AUTH0_BASE_URL {why}"));
                    String::new()
                }
            },
        };
        let client_id = r.required("AUTH0_CLIENT_ID");
        let client_secret = Secret::new(r.required("AUTH0_CLIENT_SECRET"));
        let audience = r
            .opt("AUTH0_AUDIENCE")
            .unwrap_or_else(|| format!("https://{auth0_domain}/api/v2/"));
        let connection = r
            .opt("AUTH0_CONNECTION")
            .unwrap_or_else(|| DEFAULT_CONNECTION.to_string());
        // Put in a user search between double quotes, as it is (`invitees::search_query`):
        // refused here, where /healthz reports it, not by the list route alone (found in an
        // audit of the docs).
        if !crate::invitees::quotable(&connection) {
            r.problems.push(
                "AUTH0_CONNECTION must not contain double quotes, backslashes or control characters"
                    .into(),
            );
        }

        let allowed_roles = r.list("ALLOWED_ROLES");
        let default_roles = r.list("DEFAULT_ROLES");
        for role in allowed_roles.iter() {
            if !valid_role_name(role) {
                r.problems.push(format!(
                    "ALLOWED_ROLES has a role name that is longer than 50 characters or has control characters: {role:?}"
                ));
            }
        }
        for role in default_roles.iter() {
            if !allowed_roles.contains(role) {
                r.problems.push(format!(
                    "DEFAULT_ROLES contains '{role}', which is not in ALLOWED_ROLES"
                ));
            }
        }
        let auto_create_roles = r.boolean("AUTO_CREATE_ROLES", false);
        let role_mode = match r.opt("ROLE_MODE").as_deref() {
            None | Some("rbac") => RoleMode::Rbac,
            Some("app_metadata") => RoleMode::AppMetadata,
            Some(_) => {
                r.problems
                    .push("ROLE_MODE must be rbac or app_metadata".into());
                RoleMode::Rbac
            }
        };

        let result_url = r.opt("RESULT_URL");
        let mut default_origin = None;
        if let Some(raw) = &result_url {
            match parse_web_url(parse_url, raw) {
                Ok(url) => default_origin = Some(url.origin),
                Err(why) => r.problems.push(format!("RESULT_URL {why}")),
            }
        }
        let mut result_url_allowlist = Vec::new();
        for entry in r.list("RESULT_URL_ALLOWLIST") {
            match parse_web_url(parse_url, &entry) {
                Ok(url) if url.origin == entry.trim_end_matches('/') => {
                    result_url_allowlist.push(url.origin)
                }
                Ok(_) => r.problems.push(format!(
                    "RESULT_URL_ALLOWLIST entries must be origins like https://app.example.com, not {entry:?}"
                )),
                Err(why) => r
                    .problems
                    .push(format!("RESULT_URL_ALLOWLIST entry {entry:?} {why}")),
            }
        }
        if result_url_allowlist.is_empty() {
            result_url_allowlist.extend(default_origin);
        }
        let ticket_client_id = r.opt("TICKET_CLIENT_ID");
        if result_url.is_some() && ticket_client_id.is_some() {
            r.problems.push(
                "RESULT_URL and TICKET_CLIENT_ID are both set; Auth0 accepts only one of them, so set one"
                    .into(),
            );
        }
        let ticket_ttl_sec = r.number("TICKET_TTL_SEC", 86_400, TICKET_TTL_RANGE);
        let token_refresh_margin_sec = r.number("TOKEN_REFRESH_MARGIN_SEC", 300, (0, 3_600));
        let upstream_deadline_ms = r.number(
            "UPSTREAM_DEADLINE_MS",
            10_000,
            (500, MAX_UPSTREAM_DEADLINE_MS),
        );
        let rps = match r.opt("AUTH0_MGMT_RPS") {
            None => 2.0,
            Some(v) => match decimal(&v) {
                Some(n) if (0.1..=10_000.0).contains(&n) => n,
                _ => {
                    r.problems.push(
                        "AUTH0_MGMT_RPS must be a number from 0.1 to 10000, with at most three decimals"
                            .into(),
                    );
                    2.0
                }
            },
        };
        let default_burst = (rps.ceil() as u64).max(2);
        let burst = r.number("AUTH0_MGMT_BURST", default_burst, (1, 100_000)) as u32;

        let mut api_keys = Vec::new();
        match r.opt("INVITE_API_KEYS") {
            None => r.problems.push("INVITE_API_KEYS is missing".into()),
            Some(raw) => {
                let mut labels = HashSet::new();
                for (i, entry) in raw.split(',').map(str::trim).enumerate() {
                    let n = i + 1;
                    let Some((label, key)) = entry.split_once(':') else {
                        r.problems.push(format!(
                            "INVITE_API_KEYS entry {n} is not in the form label:key"
                        ));
                        continue;
                    };
                    let (label, key) = (label.trim(), key.trim());
                    if label.is_empty()
                        || label.len() > 64
                        || !label
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    {
                        r.problems.push(format!(
                            "INVITE_API_KEYS entry {n} needs a label of 1 to 64 letters, digits, '-', '_' or '.'"
                        ));
                    } else if !labels.insert(label.to_string()) {
                        r.problems
                            .push(format!("INVITE_API_KEYS label '{label}' is used twice"));
                    }
                    if key.len() < MIN_API_KEY_LEN {
                        r.problems.push(format!(
                            "INVITE_API_KEYS entry {n} has a key shorter than {MIN_API_KEY_LEN} characters"
                        ));
                    } else if key.contains("$(") || key.contains('`') {
                        // `backend:$(openssl rand -hex 24)` typed at `wrangler secret put`'s
                        // prompt is stored as it is: a key anyone can read in the README
                        // (found by running the docs' deploy steps).
                        r.problems.push(format!(
                            "INVITE_API_KEYS entry {n} holds an unexpanded shell command: pipe the generated key in (see the README's deploy steps)"
                        ));
                    }
                    api_keys.push(ApiKey::new(label, key));
                }
            }
        }

        let app_metadata_keys = r.list("APP_METADATA_KEYS");
        for key in &app_metadata_keys {
            // The README promises `invited*` and `invite_*` (and `revoked_*`) to the service.
            if crate::invite::RESERVED_APP_METADATA.contains(&key.as_str())
                || ["invited", "invite_", "revoked_"]
                    .iter()
                    .any(|p| key.starts_with(p))
                || (role_mode == RoleMode::AppMetadata && key == "roles")
            {
                r.problems.push(format!(
                    "APP_METADATA_KEYS lists '{key}', which the service sets itself"
                ));
            } else if crate::invite::bad_field_name(key) {
                r.problems.push(format!(
                    "APP_METADATA_KEYS lists '{key}': Auth0 refuses field names with '.' or '$'"
                ));
            } else if AUTH0_APP_METADATA_NAMES.contains(&key.as_str()) {
                r.problems.push(format!(
                    "APP_METADATA_KEYS lists '{key}', a name Auth0 keeps out of app_metadata"
                ));
            }
        }
        let existing_account_tickets = r.boolean("EXISTING_ACCOUNT_TICKETS", false);
        let revoke_mode = match r.opt("REVOKE_MODE").as_deref() {
            None | Some("block") => RevokeMode::Block,
            Some("delete") => RevokeMode::Delete,
            Some(_) => {
                r.problems
                    .push("REVOKE_MODE must be block or delete".into());
                RevokeMode::Block
            }
        };
        let resend_interval_sec = r.number("RESEND_INTERVAL_SEC", 300, (1, 86_400));
        // 100 by default, not the 1,000 the route can take: Workers Free gives a request 10 ms
        // of CPU, and a batch of 1,000 took 30 to 33 ms locally (100: 5.6 to 7.4 ms; see
        // `tests/bench/invocations.mjs`). Stopped part way (Cloudflare's 1102), a batch has
        // recorded its invites but not queued them all, and its caller never learns the
        // batch's id. Workers Paid deployments may raise it.
        let batch_max_invites = r.number(
            "BATCH_MAX_INVITES",
            DEFAULT_BATCH_MAX_INVITES as u64,
            (1, crate::trusted::MAX_BATCH_ITEMS as u64),
        ) as usize;

        let webhooks = read_webhooks(&mut r, &allowed_roles, &client_id);
        let public = read_public(&mut r, &allowed_roles);
        // The repository publishes a few working secrets (README, .dev.vars.example, the
        // Standard Webhooks spec's test vector). Against a real tenant they would let anyone
        // use the API or forge a webhook, so a deploy that carried them over is refused
        // (found in a security review); the local emulator (a loopback AUTH0_BASE_URL) keeps
        // them.
        let real_tenant = parse_url(&base_url).is_none_or(|u| !is_loopback(&u.host));
        if real_tenant {
            if crate::secret::match_api_key(&api_keys, PUBLISHED_API_KEY).is_some() {
                r.problems.push(
                    "INVITE_API_KEYS holds the example key published in the README: generate your own (openssl rand -hex 24)".into(),
                );
            }
            let published = |list: &[Secret], value: &str| list.iter().any(|s| s.expose() == value);
            if published(&webhooks.stripe_secrets, PUBLISHED_STRIPE_SECRET) {
                r.problems.push(
                    "STRIPE_WEBHOOK_SECRETS holds the example secret from .dev.vars.example: use your endpoint's signing secret".into(),
                );
            }
            // By key, not by text: the `whsec_` prefix is optional (`webhook::standard_key`),
            // so the published secret without it is the same key.
            let published_key =
                crate::webhook::standard_key(&Secret::new(PUBLISHED_STANDARD_SECRET.to_string()));
            if webhooks
                .standard_secrets
                .iter()
                .any(|s| crate::webhook::standard_key(s) == published_key)
            {
                r.problems.push(
                    "STANDARD_WEBHOOK_SECRETS holds the Standard Webhooks spec's published test secret (also in the README): generate your own".into(),
                );
            }
        }

        if !r.problems.is_empty() {
            return Err(ConfigError {
                problems: r.problems,
            });
        }
        Ok(Config {
            auth0_domain,
            base_url,
            client_id,
            client_secret,
            audience,
            connection,
            allowed_roles,
            default_roles,
            auto_create_roles,
            role_mode,
            result_url,
            result_url_allowlist,
            ticket_client_id,
            ticket_ttl_sec,
            token_refresh_margin_sec,
            upstream_deadline_ms,
            mgmt_rate: crate::gate::Rate { rps, burst },
            api_keys,
            app_metadata_keys,
            existing_account_tickets,
            revoke_mode,
            resend_interval_sec,
            batch_max_invites,
            webhooks,
            public,
            parse_url,
            warnings: Vec::new(),
        }
        .with_warnings())
    }

    /// Settings that work but weaken the service; `/healthz` lists them (status stays 200).
    /// Found once, with the rest of the configuration: a health check only reads them (it
    /// parsed `AUTH0_BASE_URL` with the runtime's `URL` on every request).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn with_warnings(mut self) -> Self {
        self.warnings = self.find_warnings();
        self
    }

    fn find_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.public.turnstile_secret.is_none() {
            out.push(
                "TURNSTILE_SECRET_KEY is not set: the public sign-up form accepts any script that stays under the per-IP limit"
                    .to_string(),
            );
        }
        // Cloudflare's dummy secrets pass (or fail) every token: against a real tenant, the
        // form is as open as without one, or refuses every sign-up. A warning, like no secret
        // at all: a development tenant may use them on purpose.
        let real_tenant = (self.parse_url)(&self.base_url).is_none_or(|u| !is_loopback(&u.host));
        if real_tenant
            && self
                .public
                .turnstile_secret
                .as_ref()
                .is_some_and(|s| TURNSTILE_TEST_SECRETS.contains(&s.expose()))
        {
            out.push(
                "TURNSTILE_SECRET_KEY is one of Cloudflare's test secrets, which pass (or fail) every token: use your widget's secret key"
                    .to_string(),
            );
        }
        if self.public.turnstile_secret.is_some() && self.public.turnstile_site_key.is_none() {
            out.push(
                "TURNSTILE_SECRET_KEY is set without TURNSTILE_SITE_KEY: the demo page at / shows no widget, so its sign-ups fail the check (a page of your own with its widget is not affected)"
                    .to_string(),
            );
        }
        if let Some(enough) = crate::queue::deadline_too_short(self) {
            out.push(format!(
                "UPSTREAM_DEADLINE_MS={} is short for AUTH0_MGMT_RPS={}: a POST /v1/invites behind a sign-up or a payment's invite can be refused 503; set it to {enough} or more, or queue with Prefer: respond-async",
                self.upstream_deadline_ms, self.mgmt_rate.rps
            ));
        }
        if self.existing_account_tickets {
            out.push(
                "EXISTING_ACCOUNT_TICKETS=true: every API key can get a password link for any account, admins included"
                    .to_string(),
            );
        }
        out
    }
}

/// A plain decimal number (`2`, `0.5`, `12.125`: digits, then at most three decimals).
///
/// Not `str::parse::<f64>`: this was its only use in the Worker besides one SQL read, and it
/// brought the float parser and its 17 KB table of powers of five into the bundle.
fn decimal(v: &str) -> Option<f64> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (v.contains('.') && !digits(frac)) || frac.len() > 3 || int.len() > 9 {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let thousandths: u64 = format!("{frac:0<3}").parse().ok()?;
    Some((whole * 1000 + thousandths) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("AUTH0_DOMAIN", "acme.eu.auth0.com"),
        ("AUTH0_CLIENT_ID", "cid"),
        ("AUTH0_CLIENT_SECRET", "s3cr3t-value-never-printed"),
        ("INVITE_API_KEYS", "backend:0123456789abcdef0123"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = MINIMAL
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn defaults() {
        let c = Config::from_lookup(lookup(MINIMAL), crate::http::host_parse_url).expect("valid");
        assert_eq!(c.base_url, "https://acme.eu.auth0.com");
        assert_eq!(c.audience, "https://acme.eu.auth0.com/api/v2/");
        assert_eq!(c.connection, "Username-Password-Authentication");
        assert_eq!(c.role_mode, RoleMode::Rbac);
        assert_eq!(c.ticket_ttl_sec, 86_400);
        assert_eq!(c.token_refresh_margin_sec, 300);
        assert_eq!(c.upstream_deadline_ms, 10_000);
        assert!(!c.auto_create_roles);
        assert_eq!(c.api_keys.len(), 1);
        assert!(c.result_url_allowlist.is_empty());
        assert_eq!(c.batch_max_invites, 100);
    }

    #[test]
    fn full_configuration() {
        let c = Config::from_lookup(
            lookup(&with(&[
                ("AUTH0_BASE_URL", "http://127.0.0.1:8788/"),
                ("ALLOWED_ROLES", "beta-tester, early-access,beta-tester"),
                ("DEFAULT_ROLES", "beta-tester"),
                ("AUTO_CREATE_ROLES", "true"),
                ("ROLE_MODE", "app_metadata"),
                ("RESULT_URL", "https://app.example.com/welcome"),
                (
                    "INVITE_API_KEYS",
                    "old:aaaaaaaaaaaaaaaaaaaa, new:bbbbbbbbbbbbbbbbbbbb",
                ),
            ])),
            crate::http::host_parse_url,
        )
        .expect("valid");
        assert_eq!(c.base_url, "http://127.0.0.1:8788");
        assert_eq!(c.allowed_roles, vec!["beta-tester", "early-access"]);
        assert_eq!(c.result_url_allowlist, vec!["https://app.example.com"]);
        assert_eq!(c.role_mode, RoleMode::AppMetadata);
        assert_eq!(c.api_keys.len(), 2);
    }

    #[test]
    fn collects_every_problem_without_secret_values() {
        let err = Config::from_lookup(
            lookup(&[
                ("AUTH0_BASE_URL", "http://auth0.example.com"),
                ("ALLOWED_ROLES", "beta-tester,,x"),
                ("DEFAULT_ROLES", "admin"),
                ("AUTO_CREATE_ROLES", "yes"),
                ("ROLE_MODE", "groups"),
                ("RESULT_URL", "https://app.example.com/w"),
                ("TICKET_CLIENT_ID", "abc"),
                ("RESULT_URL_ALLOWLIST", "https://app.example.com/path"),
                ("TICKET_TTL_SEC", "5"),
                ("TOKEN_REFRESH_MARGIN_SEC", "-1"),
                ("UPSTREAM_DEADLINE_MS", "ten"),
                ("BATCH_MAX_INVITES", "1001"),
                ("INVITE_API_KEYS", "a:short-key-1, a:tiny, nolabel"),
            ]),
            crate::http::host_parse_url,
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "AUTH0_DOMAIN is missing",
            "AUTH0_CLIENT_ID is missing",
            "AUTH0_CLIENT_SECRET is missing",
            "AUTH0_BASE_URL must use https",
            "ALLOWED_ROLES contains an empty entry",
            "DEFAULT_ROLES contains 'admin'",
            "AUTO_CREATE_ROLES must be true or false",
            "ROLE_MODE must be rbac or app_metadata",
            "RESULT_URL and TICKET_CLIENT_ID are both set",
            "RESULT_URL_ALLOWLIST entries must be origins",
            "TICKET_TTL_SEC must be a whole number from 60 to 2592000",
            "TOKEN_REFRESH_MARGIN_SEC must be",
            "UPSTREAM_DEADLINE_MS must be",
            "BATCH_MAX_INVITES must be a whole number from 1 to 1000",
            "INVITE_API_KEYS entry 1 has a key shorter than 16",
            "INVITE_API_KEYS label 'a' is used twice",
            "INVITE_API_KEYS entry 3 is not in the form label:key",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(err.problems.len(), 18, "{all}");
        assert!(
            !all.contains("short-key-1") && !all.contains("tiny"),
            "{all}"
        );
    }

    #[test]
    fn rates_are_plain_decimals() {
        for (v, want) in [
            ("2", Some(2.0)),
            ("0.5", Some(0.5)),
            ("12.125", Some(12.125)),
            ("10000", Some(10_000.0)),
            ("007", Some(7.0)),
            ("1.", None),
            (".5", None),
            ("1.2345", None),
            ("1e2", None),
            ("+2", None),
            ("-2", None),
            (" 2", None),
            ("2.5.1", None),
            ("", None),
            ("1234567890", None),
        ] {
            assert_eq!(decimal(v), want, "{v:?}");
        }
        assert!(problems(&[("AUTH0_MGMT_RPS", "0.05")]).contains("AUTH0_MGMT_RPS must be"));
        assert!(problems(&[("AUTH0_MGMT_RPS", "1.5e1")]).contains("at most three decimals"));
        assert_eq!(problems(&[("AUTH0_MGMT_RPS", "0.1")]), "");
        assert_eq!(problems(&[("AUTH0_MGMT_RPS", "15")]), "");
    }

    #[test]
    fn domain_must_be_a_host() {
        let err = Config::from_lookup(
            lookup(&with(&[("AUTH0_DOMAIN", "https://acme.auth0.com/")])),
            crate::http::host_parse_url,
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].starts_with("AUTH0_DOMAIN must be a host name"));
    }

    fn problems(extra: &[(&'static str, &'static str)]) -> String {
        match Config::from_lookup(lookup(&with(extra)), crate::http::host_parse_url) {
            Ok(_) => String::new(),
            Err(e) => e.problems.join("\n"),
        }
    }

    /// A connection name goes between double quotes in the invitee list's user search: one
    /// that can't is a problem /healthz reports, not a surprise of the list route alone.
    #[test]
    fn a_connection_that_cant_be_quoted_is_refused() {
        for (value, ok) in [
            ("Username-Password-Authentication", true),
            ("my db", true),
            ("a\"b", false),
            ("a\\b", false),
            ("a\u{7}b", false),
        ] {
            let p = problems(&[("AUTH0_CONNECTION", value)]);
            assert_eq!(p.is_empty(), ok, "{value:?}: {p}");
        }
    }

    /// Regression (finding 4): `whsec_` alone passed, and forged deliveries signed with an
    /// empty key were processed.
    #[test]
    fn empty_or_tiny_webhook_secrets_are_refused() {
        for (var, value, ok) in [
            ("STRIPE_WEBHOOK_SECRETS", "whsec_", false),
            ("STRIPE_WEBHOOK_SECRETS", "whsec_short", false),
            ("STRIPE_WEBHOOK_SECRETS", "nowhsec_0123456789abcdef", false),
            ("STRIPE_WEBHOOK_SECRETS", "whsec_0123456789abcdef", true),
            ("STANDARD_WEBHOOK_SECRETS", "whsec_", false),
            ("STANDARD_WEBHOOK_SECRETS", "whsec_Zm9vYmFy", false),
            ("STANDARD_WEBHOOK_SECRETS", "whsec_!!!", false),
            (
                "STANDARD_WEBHOOK_SECRETS",
                "whsec_c2VjcmV0LW9mLWF0LWxlYXN0LTI0LWJ5dGVz",
                true,
            ),
        ] {
            let p = problems(&[(var, value)]);
            assert_eq!(p.is_empty(), ok, "{var}={value}: {p}");
            if !ok {
                assert!(p.starts_with(var), "{p}");
                assert!(value.len() < 12 || !p.contains(value), "{p}");
            }
        }
    }

    /// Regression (finding 5): `http://127.attacker.example` counted as loopback.
    #[test]
    fn loopback_means_a_loopback_address_or_localhost() {
        for (host, expected) in [
            ("127.0.0.1", true),
            ("127.1.2.3", true),
            ("[::1]", true),
            ("::1", true),
            ("localhost", true),
            ("LOCALHOST", true),
            ("127.attacker.example", false),
            ("127.0.0.1.nip.io", false),
            ("localhost.example", false),
            ("10.0.0.1", false),
            ("[::2]", false),
        ] {
            assert_eq!(is_loopback(host), expected, "{host}");
        }
        assert!(
            problems(&[("AUTH0_BASE_URL", "http://127.attacker.example")])
                .contains("must use https")
        );
        assert!(problems(&[("AUTH0_BASE_URL", "http://127.0.0.1:8788")]).is_empty());
    }

    /// Regression (finding 6): open redirects and CR/LF in THANK_YOU_URL.
    #[test]
    fn thank_you_url_is_a_local_path_or_an_https_url() {
        for (value, ok) in [
            ("/thanks", true),
            ("/thanks?x=1#y", true),
            ("https://www.example.com/thanks", true),
            ("//evil.example/x", false),
            ("/\\evil.example/x", false),
            ("/ok\\..\\x", false),
            ("/thanks\r\nSet-Cookie: a=b", false),
            ("http://www.example.com/thanks", false),
            ("javascript:alert(1)", false),
            ("thanks", false),
        ] {
            let p = problems(&[("THANK_YOU_URL", value)]);
            assert_eq!(p.is_empty(), ok, "{value:?}: {p}");
        }
    }

    /// Regression (finding 7): STRIPE_TOLERANCE_SEC=0 switched the age check off.
    #[test]
    fn stripe_tolerance_has_a_floor() {
        assert!(problems(&[("STRIPE_TOLERANCE_SEC", "0")])
            .contains("STRIPE_TOLERANCE_SEC must be a whole number from 1"));
        assert!(problems(&[("STRIPE_TOLERANCE_SEC", "1")]).is_empty());
    }

    #[test]
    fn app_metadata_keys_leave_out_the_names_auth0_reserves() {
        for (keys, key) in [
            ("plan,blocked", "blocked"),
            ("plan,email", "email"),
            ("user_id", "user_id"),
            ("loginsCount", "loginsCount"),
            ("__tenant", "__tenant"),
        ] {
            let p = problems(&[("APP_METADATA_KEYS", keys)]);
            assert!(
                p.contains(&format!(
                    "APP_METADATA_KEYS lists '{key}', a name Auth0 keeps out"
                )),
                "{key}: {p}"
            );
        }
        assert!(problems(&[("APP_METADATA_KEYS", "plan,blocked_reason,emails")]).is_empty());
    }

    #[test]
    fn app_metadata_keys_never_include_the_service_keys() {
        assert!(problems(&[("APP_METADATA_KEYS", "plan,company,invitee_tier")]).is_empty());
        let p = problems(&[("APP_METADATA_KEYS", "plan,invited_by")]);
        assert!(p.contains("APP_METADATA_KEYS lists 'invited_by'"), "{p}");
        let p = problems(&[("INVITE_API_KEYS", "backend:$(openssl rand -hex 24)")]);
        assert!(
            p.contains("entry 1 holds an unexpanded shell command"),
            "{p}"
        );
        assert!(!p.contains("openssl"), "never the value: {p}");
        let p = problems(&[("APP_METADATA_KEYS", "plan,tier.level,$set")]);
        assert!(
            p.contains("APP_METADATA_KEYS lists 'tier.level': Auth0 refuses"),
            "{p}"
        );
        assert!(
            p.contains("APP_METADATA_KEYS lists '$set': Auth0 refuses"),
            "{p}"
        );
        // The README reserves `invited*` and `invite_*` (found in an audit: only the names
        // in use were refused).
        for key in ["invite_channel", "invitedness", "revoked_reason"] {
            let p = problems(&[("APP_METADATA_KEYS", key)]);
            assert!(
                p.contains(&format!("APP_METADATA_KEYS lists '{key}'")),
                "{key}: {p}"
            );
        }
    }

    /// Found in an audit: each of these passed, and failed later (every email) or never
    /// applied (a repeated or empty id).
    #[test]
    fn from_email_stripe_role_map_and_domain_are_checked_by_name() {
        let resend = |from: &'static str| {
            problems(&[
                ("EMAIL_DELIVERY", "resend"),
                ("EMAIL_API_KEY", "re_k"),
                ("FROM_EMAIL", from),
            ])
        };
        for from in [
            "hello@acme.com",
            "Acme <hello@acme.com>",
            "Acme Beta <hello@acme.com>",
            "\"Acme, Inc.\" <hello@acme.com>",
        ] {
            assert_eq!(resend(from), "", "{from}");
        }
        // Not checked where it is not used.
        assert_eq!(problems(&[("FROM_EMAIL", "not an address")]), "");
        for from in [
            "not an address",
            "Acme <hello>",
            "Acme hello@acme.com>",
            "<a@b.com> <c@d.com>",
        ] {
            assert!(
                resend(from).contains("FROM_EMAIL must be an address"),
                "{from}"
            );
        }
        for map in ["price_1:beta-tester,price_1:early-access", ":beta-tester"] {
            let p = problems(&[
                ("ALLOWED_ROLES", "beta-tester,early-access"),
                ("STRIPE_ROLE_MAP", map),
            ]);
            assert!(p.contains("empty or repeated id"), "{map}: {p}");
        }
        assert_eq!(
            problems(&[
                ("ALLOWED_ROLES", "beta-tester,early-access"),
                (
                    "STRIPE_ROLE_MAP",
                    "price_1:beta-tester,price_2:early-access|beta-tester"
                ),
            ]),
            ""
        );
        for domain in [
            "acme.eu.auth0.com?x=1",
            "acme.eu.auth0.com#x",
            "user@acme.eu.auth0.com",
        ] {
            assert!(
                problems(&[("AUTH0_DOMAIN", domain)]).contains("AUTH0_DOMAIN must be a host name"),
                "{domain}"
            );
        }
    }
}
