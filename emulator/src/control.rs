//! The control API under `/__emulator/`: counters, reset, runtime
//! configuration (latency, faults, rate limits, 429 storms, scopes, search
//! lag), token revocation, simulated user logins, and read access to the
//! stored users, roles, tickets (with their validity) and outbox (filterable
//! by recipient and kind) and the recorded Turnstile siteverify calls.
//! No authentication, no rate limiting, not counted in the stats.

use serde_json::{json, Map, Value};

use crate::options::{split_scopes, MAX_SEARCH_LAG_MS};
use crate::ratelimit::RateLimitSetting;
use crate::server::{Incoming, Reply};
use crate::state::State;
use crate::util;

/// The IP address recorded as `last_ip` by a simulated login.
pub const LOGIN_IP: &str = "127.0.0.1";

fn bad_request(message: &str) -> Reply {
    Reply::mgmt_error(400, message, None)
}

/// Handles a `/__emulator/...` request.
pub fn handle(state: &mut State, inc: &Incoming) -> Reply {
    let name = inc.path.trim_start_matches("/__emulator/");
    match (inc.method.as_str(), name) {
        ("GET", "stats") => Reply::mgmt(200, &state.stats.to_json()),
        ("POST", "reset") => {
            state.reset();
            Reply::mgmt(200, &json!({"ok": true}))
        }
        ("POST", "reset-stats") => {
            state.stats = crate::state::Stats::new();
            Reply::mgmt(200, &json!({"ok": true}))
        }
        ("GET", "config") => Reply::mgmt(200, &config_json(state)),
        ("POST", "config") => update_config(state, inc),
        ("POST", "revoke-tokens") => {
            let revoked = state.tokens.len();
            state.tokens.clear();
            Reply::mgmt(200, &json!({"revoked": revoked}))
        }
        ("GET", "users") => {
            let filter = inc.query_param("email").map(str::to_lowercase);
            let users: Vec<Value> = state
                .users
                .iter()
                .filter(|u| match &filter {
                    None => true,
                    Some(e) => u.email.as_deref() == Some(e.as_str()),
                })
                .map(|u| state.user_debug_json(u))
                .collect();
            Reply::mgmt(200, &Value::Array(users))
        }
        ("POST", "login") => login(state, inc),
        ("GET", "roles") => {
            let roles: Vec<Value> = state.roles.iter().map(|r| r.to_json()).collect();
            Reply::mgmt(200, &Value::Array(roles))
        }
        ("GET", "outbox") => {
            let to = inc.query_param("to").filter(|t| !t.trim().is_empty());
            let kind = inc.query_param("kind").filter(|k| !k.is_empty());
            Reply::mgmt(200, &Value::Array(state.outbox_filtered(to, kind)))
        }
        ("GET", "siteverify") => Reply::mgmt(200, &Value::Array(state.siteverify.clone())),
        ("GET", "tickets") => list_tickets(state, inc),
        ("GET", rest) if rest.starts_with("tickets/") => {
            let id = util::percent_decode(&rest["tickets/".len()..]);
            match state.ticket(&id) {
                Some(t) => Reply::mgmt(200, &state.ticket_json(t, util::now_ms())),
                None => Reply::mgmt_error(404, "The ticket does not exist.", None),
            }
        }
        _ => Reply::not_found(),
    }
}

/// `GET /__emulator/tickets[?user_id=][&email=]`: tickets oldest first, each
/// with its validity. `email` (case-insensitive) finds the tickets of the
/// users that have that email now and of deleted users that had it when
/// the ticket was issued. Both filters given must both hold.
fn list_tickets(state: &State, inc: &Incoming) -> Reply {
    let user_id = inc.query_param("user_id").filter(|v| !v.is_empty());
    let email = inc
        .query_param("email")
        .filter(|v| !v.trim().is_empty())
        .map(|e| e.trim().to_lowercase());
    let owners: Vec<&str> = match &email {
        None => Vec::new(),
        Some(e) => state
            .users
            .iter()
            .filter(|u| u.email.as_deref() == Some(e.as_str()))
            .map(|u| u.user_id.as_str())
            .collect(),
    };
    let now = util::now_ms();
    let tickets: Vec<Value> = state
        .tickets
        .iter()
        .filter(|t| user_id.is_none_or(|id| t.user_id == id))
        .filter(|t| match &email {
            None => true,
            Some(e) => {
                (owners.contains(&t.user_id.as_str()) && !t.user_deleted)
                    || (t.user_deleted && t.email.as_deref() == Some(e.as_str()))
            }
        })
        .map(|t| state.ticket_json(t, now))
        .collect();
    Reply::mgmt(200, &Value::Array(tickets))
}

/// `POST /__emulator/login` with `{"email": ...}` (case-insensitive) or
/// `{"user_id": ...}`: simulates a successful login of that user. Bumps
/// `logins_count`, sets `last_login` to now and `last_ip` to [`LOGIN_IP`],
/// and answers 200 with the user as the Management API returns it. 400 for
/// a bad body, 404 when no user matches, 401 when the user is blocked (and
/// then nothing changes).
fn login(state: &mut State, inc: &Incoming) -> Reply {
    const SHAPE: &str =
        "login body must be a JSON object with exactly one of \"email\" or \"user_id\"";
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&inc.body) else {
        return bad_request(SHAPE);
    };
    if let Some(other) = body.keys().find(|k| *k != "email" && *k != "user_id") {
        return bad_request(&format!("unknown login key '{other}'"));
    }
    let wanted = |key: &str| match body.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.as_str())),
        Some(_) => Err(bad_request(&format!("{key} must be a non-empty string"))),
    };
    let (email, user_id) = match (wanted("email"), wanted("user_id")) {
        (Err(r), _) | (_, Err(r)) => return r,
        (Ok(e), Ok(u)) => (e, u),
    };
    let found = match (email, user_id) {
        (Some(email), None) => {
            let email = email.to_lowercase();
            state
                .users
                .iter_mut()
                .find(|u| u.email.as_deref() == Some(email.as_str()))
        }
        (None, Some(id)) => state.users.iter_mut().find(|u| u.user_id == id),
        _ => return bad_request(SHAPE),
    };
    let Some(user) = found else {
        return crate::api::user_not_found();
    };
    if user.blocked == Some(true) {
        return Reply::mgmt_error(401, "The user is blocked and cannot log in.", None);
    }
    user.record_login(LOGIN_IP, util::now_rfc3339());
    Reply::mgmt(200, &user.to_json())
}

/// The effective runtime configuration.
pub fn config_json(state: &State) -> Value {
    let now = util::now_ms();
    let storm_left = state.config.storm_until_ms.saturating_sub(now);
    json!({
        "domain": state.settings.domain,
        "audience": state.settings.audience,
        "client_id": state.settings.client_id,
        "connection": state.settings.connection_name,
        "connection_id": state.settings.connection_id,
        "public_client_ids": state.settings.public_client_ids,
        "token_lifetime_sec": state.config.token_lifetime_sec,
        "latency_ms": state.config.latency_ms,
        "rate_limit": state.limiter.setting().to_json(),
        "fail_rate": state.config.fail_rate,
        "fail_next": state.config.fail_next,
        "storm_429_ms": storm_left,
        "scopes": state.config.scopes,
        "search_lag_ms": state.config.search_lag_ms,
        "password_no_personal_info": state.config.password_no_personal_info,
        "password_min_length": state.config.password_min_length,
        "password_block_sequential": state.config.password_block_sequential,
    })
}

fn as_u64(key: &str, v: &Value) -> Result<u64, String> {
    v.as_u64()
        .ok_or_else(|| format!("{key} must be a non-negative integer"))
}

fn parse_rate_limit(v: &Value) -> Result<RateLimitSetting, String> {
    match v {
        Value::String(s) => RateLimitSetting::parse(s),
        Value::Object(m) => {
            for k in m.keys() {
                if k != "rps" && k != "burst" {
                    return Err(format!("rate_limit: unknown key '{k}'"));
                }
            }
            let rps = m
                .get("rps")
                .and_then(Value::as_f64)
                .ok_or("rate_limit.rps must be a number")?;
            let burst = m
                .get("burst")
                .and_then(Value::as_u64)
                .and_then(|b| u32::try_from(b).ok())
                .ok_or("rate_limit.burst must be a positive integer")?;
            RateLimitSetting::bucket(rps, burst)
        }
        Value::Null => Ok(RateLimitSetting::None),
        _ => Err(
            "rate_limit must be \"none\", \"free\", \"RPS:BURST\" or {\"rps\":N,\"burst\":N}"
                .into(),
        ),
    }
}

fn parse_scopes(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(split_scopes(s)),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                let s = item.as_str().ok_or("scopes must be an array of strings")?;
                for scope in split_scopes(s) {
                    if !out.contains(&scope) {
                        out.push(scope);
                    }
                }
            }
            Ok(out)
        }
        _ => Err("scopes must be an array of strings".into()),
    }
}

/// A validated config change; applied only when everything parsed.
#[derive(Default)]
struct ConfigChange {
    token_lifetime_sec: Option<u64>,
    latency_ms: Option<u64>,
    rate_limit: Option<RateLimitSetting>,
    fail_rate: Option<f64>,
    fail_next: Option<u64>,
    storm_429_ms: Option<u64>,
    scopes: Option<Vec<String>>,
    search_lag_ms: Option<u64>,
    password_no_personal_info: Option<bool>,
    password_min_length: Option<usize>,
    password_block_sequential: Option<bool>,
}

fn parse_change(body: &Map<String, Value>) -> Result<ConfigChange, String> {
    let mut c = ConfigChange::default();
    for (k, v) in body {
        match k.as_str() {
            "token_lifetime_sec" => {
                let n = as_u64(k, v)?;
                if n == 0 {
                    return Err("token_lifetime_sec must be at least 1".into());
                }
                c.token_lifetime_sec = Some(n);
            }
            "latency_ms" => {
                let n = as_u64(k, v)?;
                if n > 600_000 {
                    return Err("latency_ms must be at most 600000".into());
                }
                c.latency_ms = Some(n);
            }
            "rate_limit" => c.rate_limit = Some(parse_rate_limit(v)?),
            "fail_rate" => {
                let r = v.as_f64().ok_or("fail_rate must be a number")?;
                if !(0.0..=1.0).contains(&r) {
                    return Err("fail_rate must be between 0 and 1".into());
                }
                c.fail_rate = Some(r);
            }
            "fail_next" => c.fail_next = Some(as_u64(k, v)?),
            "storm_429_ms" => c.storm_429_ms = Some(as_u64(k, v)?),
            "scopes" => c.scopes = Some(parse_scopes(v)?),
            "search_lag_ms" => {
                let n = as_u64(k, v)?;
                if n > MAX_SEARCH_LAG_MS {
                    return Err(format!("search_lag_ms must be at most {MAX_SEARCH_LAG_MS}"));
                }
                c.search_lag_ms = Some(n);
            }
            "password_no_personal_info" => {
                c.password_no_personal_info = Some(
                    v.as_bool()
                        .ok_or("password_no_personal_info must be true or false")?,
                )
            }
            "password_min_length" => {
                let n = as_u64(k, v)?;
                if !(1..=128).contains(&n) {
                    return Err("password_min_length must be 1 to 128".into());
                }
                c.password_min_length = Some(n as usize);
            }
            "password_block_sequential" => {
                c.password_block_sequential = Some(
                    v.as_bool()
                        .ok_or("password_block_sequential must be true or false")?,
                )
            }
            other => return Err(format!("unknown config key '{other}'")),
        }
    }
    Ok(c)
}

fn update_config(state: &mut State, inc: &Incoming) -> Reply {
    let body: Value = if inc.body.iter().all(|b| b.is_ascii_whitespace()) {
        Value::Object(Map::new())
    } else {
        match serde_json::from_slice(&inc.body) {
            Ok(v) => v,
            Err(_) => return bad_request("config body must be a JSON object"),
        }
    };
    let Some(obj) = body.as_object() else {
        return bad_request("config body must be a JSON object");
    };
    let change = match parse_change(obj) {
        Ok(c) => c,
        Err(m) => return bad_request(&m),
    };
    if let Some(v) = change.token_lifetime_sec {
        state.config.token_lifetime_sec = v;
    }
    if let Some(v) = change.latency_ms {
        state.config.latency_ms = v;
    }
    if let Some(v) = change.rate_limit {
        state.set_rate_limit(v);
    }
    if let Some(v) = change.fail_rate {
        state.config.fail_rate = v;
    }
    if let Some(v) = change.fail_next {
        state.config.fail_next = v;
    }
    if let Some(v) = change.storm_429_ms {
        state.config.storm_until_ms = if v == 0 {
            0
        } else {
            util::now_ms().saturating_add(v)
        };
    }
    if let Some(v) = change.scopes {
        state.config.scopes = v;
    }
    if let Some(v) = change.password_no_personal_info {
        state.config.password_no_personal_info = v;
    }
    if let Some(v) = change.password_min_length {
        state.config.password_min_length = v;
    }
    if let Some(v) = change.password_block_sequential {
        state.config.password_block_sequential = v;
    }
    if let Some(v) = change.search_lag_ms {
        state.config.search_lag_ms = v;
    }
    Reply::mgmt(200, &config_json(state))
}
