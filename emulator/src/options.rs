//! Startup options and the command-line parser.
//!
//! [`Options::default`] gives the documented CLI defaults, so in-process tests
//! can start from it and override single fields.

use crate::ratelimit::RateLimitSetting;

/// Everything the emulator is configured with at startup.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Tenant host used in the audience (`https://{domain}/api/v2/`) and ticket URLs.
    pub domain: String,
    pub client_id: String,
    pub client_secret: String,
    /// Scopes granted to the client.
    pub scopes: Vec<String>,
    /// Name of the single database connection.
    pub connection: String,
    pub token_lifetime_sec: u64,
    pub latency_ms: u64,
    pub rate_limit: RateLimitSetting,
    /// Share (0..=1) of management, change-password and email API requests answered 503.
    pub fail_rate: f64,
    /// How long (ms) a new user stays out of `GET /api/v2/users` results.
    pub search_lag_ms: u64,
    /// Client ids, besides `client_id`, accepted by `POST /dbconnections/change_password`.
    pub public_client_ids: Vec<String>,
    /// The API key accepted by the fake email API (`POST /emails`).
    pub email_api_key: String,
    /// Worker threads of the async runtime that serves the connections (each
    /// connection is a task on them; `latency_ms` doesn't occupy a thread).
    pub threads: usize,
    /// Log one line per request to stderr.
    pub log_requests: bool,
}

pub const DEFAULT_SCOPES: &str =
    "create:users read:users update:users read:roles create:roles create:role_members create:user_tickets";

impl Default for Options {
    fn default() -> Self {
        Options {
            host: "127.0.0.1".into(),
            port: 8788,
            domain: "emulator.local".into(),
            client_id: "dev-client-id".into(),
            client_secret: "dev-client-secret".into(),
            scopes: split_scopes(DEFAULT_SCOPES),
            connection: "Username-Password-Authentication".into(),
            token_lifetime_sec: 86_400,
            latency_ms: 0,
            rate_limit: RateLimitSetting::None,
            fail_rate: 0.0,
            search_lag_ms: 0,
            public_client_ids: Vec::new(),
            email_api_key: "re_dev_key".into(),
            threads: 16,
            log_requests: true,
        }
    }
}

/// Largest `search_lag_ms` accepted (10 minutes, like `latency_ms`).
pub const MAX_SEARCH_LAG_MS: u64 = 600_000;

/// Splits a space (or comma) separated scope list, dropping duplicates.
pub fn split_scopes(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in s.split(|c: char| c.is_whitespace() || c == ',') {
        if !scope.is_empty() && !out.iter().any(|x| x == scope) {
            out.push(scope.to_string());
        }
    }
    out
}

pub const USAGE: &str = "\
auth0-emulator: local emulator of the Auth0 Authentication and Management API endpoints

USAGE:
    auth0-emulator [OPTIONS]

OPTIONS:
    --host HOST              address to bind [default: 127.0.0.1]
    --port PORT              port to bind, 0 picks a free one [default: 8788]
    --domain DOMAIN          tenant host used in the audience and ticket URLs [default: emulator.local]
    --client-id ID           client id accepted by /oauth/token [default: dev-client-id]
    --client-secret SECRET   client secret accepted by /oauth/token [default: dev-client-secret]
    --scopes \"S1 S2 ...\"     scopes granted to the client
                             [default: create:users read:users update:users read:roles
                              create:roles create:role_members create:user_tickets]
    --connection NAME        the database connection [default: Username-Password-Authentication]
    --token-lifetime SECS    access token lifetime [default: 86400]
    --latency-ms MS          delay added to every Auth0 API request [default: 0]
    --rate-limit SPEC        none | free (2/s, burst 2) | essentials | RPS:BURST [default: none]
    --fail-rate RATE         share (0.0-1.0) of management, change-password and email API
                             requests answered 503 [default: 0.0]
    --search-lag-ms MS       new users stay out of GET /api/v2/users search results for this
                             long, as Auth0's search is eventually consistent [default: 0]
    --public-client-ids A,B  more client ids accepted by /dbconnections/change_password
                             (besides --client-id) [default: none]
    --email-api-key KEY      API key accepted by the fake email API, POST /emails [default: re_dev_key]
    --threads N              worker threads of the runtime serving all connections; a delayed
                             (--latency-ms) request doesn't hold one [default: 16]
    --quiet                  don't log requests to stderr
    -h, --help               print this help

Control API (no auth): GET /__emulator/stats, POST /__emulator/reset, POST /__emulator/reset-stats,
GET|POST /__emulator/config, POST /__emulator/revoke-tokens, GET /__emulator/users[?email=],
POST /__emulator/login {email|user_id}, GET /__emulator/roles, GET /__emulator/outbox[?to=][&kind=],
GET /__emulator/tickets[?user_id=|?email=], GET /__emulator/tickets/ID
Hosted ticket pages (no auth): GET|POST /u/reset-password?ticket=ID, GET|POST /u/email-verification?ticket=ID
";

/// What the command line asks for.
// Built once per process; boxing `Options` would only complicate callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Command {
    Run(Options),
    Help,
}

/// Parses `args` (without the program name). Accepts `--flag value` and
/// `--flag=value`.
pub fn parse_args<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut opts = Options::default();
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--quiet" => {
                opts.log_requests = false;
                continue;
            }
            _ => {}
        }
        let known = [
            "--host",
            "--port",
            "--domain",
            "--client-id",
            "--client-secret",
            "--scopes",
            "--connection",
            "--token-lifetime",
            "--latency-ms",
            "--rate-limit",
            "--fail-rate",
            "--search-lag-ms",
            "--public-client-ids",
            "--email-api-key",
            "--threads",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown argument '{arg}'"));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("missing value for {flag}"))?,
        };
        let num = |what: &str| -> Result<u64, String> {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{what} must be a whole number, got '{value}'"))
        };
        match flag.as_str() {
            "--host" => opts.host = value.clone(),
            "--port" => {
                opts.port = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("--port must be 0-65535, got '{value}'"))?
            }
            "--domain" => opts.domain = value.clone(),
            "--client-id" => opts.client_id = value.clone(),
            "--client-secret" => opts.client_secret = value.clone(),
            "--scopes" => opts.scopes = split_scopes(&value),
            "--connection" => opts.connection = value.clone(),
            "--token-lifetime" => {
                let n = num("--token-lifetime")?;
                if n == 0 {
                    return Err("--token-lifetime must be at least 1".into());
                }
                opts.token_lifetime_sec = n;
            }
            "--latency-ms" => opts.latency_ms = num("--latency-ms")?,
            "--rate-limit" => opts.rate_limit = RateLimitSetting::parse(&value)?,
            "--fail-rate" => {
                let r: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("--fail-rate must be a number, got '{value}'"))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err("--fail-rate must be between 0.0 and 1.0".into());
                }
                opts.fail_rate = r;
            }
            "--search-lag-ms" => {
                let n = num("--search-lag-ms")?;
                if n > MAX_SEARCH_LAG_MS {
                    return Err(format!(
                        "--search-lag-ms must be at most {MAX_SEARCH_LAG_MS}"
                    ));
                }
                opts.search_lag_ms = n;
            }
            "--public-client-ids" => opts.public_client_ids = split_scopes(&value),
            "--email-api-key" => opts.email_api_key = value.trim().to_string(),
            "--threads" => {
                let n = num("--threads")?;
                if !(1..=256).contains(&n) {
                    return Err("--threads must be between 1 and 256".into());
                }
                opts.threads = n as usize;
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    if opts.domain.trim().is_empty() {
        return Err("--domain must not be empty".into());
    }
    if opts.client_id.is_empty() || opts.client_secret.is_empty() {
        return Err("--client-id and --client-secret must not be empty".into());
    }
    if opts.connection.is_empty() {
        return Err("--connection must not be empty".into());
    }
    if opts.email_api_key.is_empty() || opts.email_api_key.contains(char::is_whitespace) {
        return Err("--email-api-key must be non-empty and without spaces".into());
    }
    Ok(Command::Run(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse_args(args.iter().copied()) {
            Ok(Command::Run(o)) => o,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = run(&[]);
        assert_eq!(o.port, 8788);
        assert_eq!(o.search_lag_ms, 0);
        assert_eq!(o.scopes.len(), 7);
        assert_eq!(o.rate_limit, RateLimitSetting::None);
        assert!(o.public_client_ids.is_empty());
        assert_eq!(o.email_api_key, "re_dev_key");
    }

    #[test]
    fn email_flags() {
        let o = run(&[
            "--public-client-ids",
            "spa-1, spa-2,,spa-1",
            "--email-api-key=re_test_123",
        ]);
        assert_eq!(o.public_client_ids, vec!["spa-1", "spa-2"]);
        assert_eq!(o.email_api_key, "re_test_123");
        assert!(parse_args(["--email-api-key", ""]).is_err());
    }

    #[test]
    fn flags() {
        let o = run(&[
            "--port",
            "0",
            "--rate-limit=free",
            "--scopes",
            "read:users create:users",
            "--fail-rate",
            "0.5",
            "--search-lag-ms=250",
            "--quiet",
        ]);
        assert_eq!(o.search_lag_ms, 250);
        assert_eq!(o.port, 0);
        assert_eq!(o.rate_limit, RateLimitSetting::FREE);
        assert_eq!(o.scopes, vec!["read:users", "create:users"]);
        assert_eq!(o.fail_rate, 0.5);
        assert!(!o.log_requests);
    }

    #[test]
    fn errors_and_help() {
        assert!(matches!(parse_args(["--help"]), Ok(Command::Help)));
        assert!(parse_args(["--bogus"]).is_err());
        assert!(parse_args(["--port"]).is_err());
        assert!(parse_args(["--fail-rate", "2"]).is_err());
        assert!(parse_args(["--rate-limit", "x"]).is_err());
        assert!(parse_args(["--search-lag-ms", "-1"]).is_err());
        assert!(parse_args(["--search-lag-ms", "600001"]).is_err());
    }
}
