//! Property tests for the core's parsers and renderers: arbitrary and adversarial input never
//! panics, and what comes out keeps the invariants the rest of the service relies on.
//!
//! Each block runs a bounded number of cases (see [`cases`]); failures are not persisted to
//! disk, so a failing run prints the shrunk input and leaves the tree untouched.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use invite_core::auth0::TicketTarget;
use invite_core::config::{
    check_redirect_target, is_loopback, parse_web_url, RoleMode, TICKET_TTL_RANGE,
};
use invite_core::delivery::render;
use invite_core::email::{normalize, MAX_EMAIL_LEN};
use invite_core::error::ErrorCode;
use invite_core::http::host_parse_url;
use invite_core::http::{check_declared_size, check_json_type, media_type};
use invite_core::invite::{
    clean_name, parse_invite, FIELDS, MAX_NAME_CHARS, RESERVED_APP_METADATA,
};
use invite_core::public::{client_key, cors, parse_form, Cors};
use invite_core::secret::{bearer_token, match_api_key, ApiKey, Secret};
use invite_core::webhook::{sign_for_test, verify_standard, verify_stripe, WebhookError};
use invite_core::{page, Config, HttpRequest};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{Map, Value};
use url::{Host, Url};

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// A bounded run that never writes regression files into the source tree.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const TICKET_URL: &str = "https://t.example/u/reset-password?ticket=LIVE#";
const EXPIRES_AT: &str = "2026-11-28T00:00:00Z";
const STRIPE_SECRET: &str = "whsec_prop_test_secret_0123456789";

/// The minimal valid configuration (as in `tests/flow/support.rs`), plus `extra`; an empty
/// value unsets a variable.
fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("AUTH0_DOMAIN", "acme.eu.auth0.com"),
        ("AUTH0_CLIENT_ID", "client-1"),
        ("AUTH0_CLIENT_SECRET", "client-secret-value"),
        ("INVITE_API_KEYS", "backend:backend-key-0123456789"),
        ("ALLOWED_ROLES", "beta-tester,early-access"),
        ("DEFAULT_ROLES", "beta-tester"),
        ("RESULT_URL", "https://app.example.com/welcome"),
        (
            "RESULT_URL_ALLOWLIST",
            "https://app.example.com,https://other.example.com",
        ),
        ("APP_METADATA_KEYS", "plan,company"),
        (
            "ALLOWED_ORIGINS",
            "https://www.example.com,http://localhost:8080",
        ),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.retain(|_, v| !v.is_empty());
    vars
}

fn config(extra: &[(&str, &str)]) -> Config {
    let vars = vars(extra);
    Config::from_lookup(|k| vars.get(k).cloned(), host_parse_url)
        .expect("the test configuration is valid")
}

/// Roles go to Auth0 RBAC; `roles` is an ordinary allowed app_metadata key.
fn rbac_config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| config(&[("APP_METADATA_KEYS", "plan,company,roles")]))
}

/// Roles go to `app_metadata.roles`, which callers may then not send.
fn app_metadata_config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| config(&[("ROLE_MODE", "app_metadata")]))
}

/// Strings made of the given fragments and of arbitrary unicode, concatenated.
fn fragments(parts: &'static [&'static str], max_parts: usize) -> BoxedStrategy<String> {
    prop::collection::vec(
        prop_oneof![
            3 => select(parts).prop_map(String::from),
            1 => any::<String>(),
        ],
        0..=max_parts,
    )
    .prop_map(|v| v.concat())
    .boxed()
}

/// Fragments that matter to templates, HTML and header values.
const NAME_PARTS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{{ ticket_url }}",
    "{{ticket_url}}",
    "ticket_url",
    "expires_at",
    "product_name",
    "greeting_name",
    "<",
    ">",
    "<script>",
    "</p>",
    "&",
    "&amp;",
    "&#60;",
    "\"",
    "'",
    "\r",
    "\n",
    "\r\n",
    "\t",
    " ",
    "  ",
    "\u{0}",
    "\u{85}",
    "\u{a0}",
    "\u{202e}",
    "\u{2066}",
    "\u{200f}",
    "\u{3000}",
    "Ada",
    "Lovelace",
    "é",
    "名前",
    "🙂",
];

fn name_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => fragments(NAME_PARTS, 8),
        1 => any::<String>(),
        1 => "[A-Za-z]{1,12}( [A-Za-z]{1,12}){0,2}",
        1 => "[a ]{140,320}",
    ]
    .boxed()
}

/// Addresses that are often valid, plus near misses and noise.
fn email_string() -> BoxedStrategy<String> {
    const PARTS: &[&str] = &[
        "@", ".", "..", "a", "Z", "0", "-", "+", "_", "xn--", " ", "\n", "é", "\u{212a}",
        "example", "com", "co", "1",
    ];
    prop_oneof![
        6 => (
            "[ \t]{0,2}",
            "[A-Za-z0-9]([A-Za-z0-9_+'=-]|\\.[A-Za-z0-9]){0,12}",
            "[A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?",
            "(com|ORG|io|co\\.uk|x1)",
        )
            .prop_map(|(ws, local, domain, tld)| format!("{ws}{local}@{domain}.{tld}{ws}")),
        2 => fragments(PARTS, 10),
        1 => any::<String>(),
        1 => "[a-z]{50,70}@[a-z]{60,63}\\.[a-z]{60,63}\\.[a-z]{60,63}\\.com",
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Mostly values of the right type, sometimes anything.
fn or_any(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![12 => s, 1 => json_value()].boxed()
}

fn invite_object() -> BoxedStrategy<Map<String, Value>> {
    let email = or_any(email_string().prop_map(Value::from).boxed());
    let name = or_any(
        prop_oneof![3 => "[A-Za-z]{1,12}( [A-Za-z]{1,12}){0,2}", 1 => name_string()]
            .prop_map(Value::from)
            .boxed(),
    );
    let role = prop_oneof![
        4 => select(
            &["beta-tester", "early-access", " early-access ", "admin", "", "Beta-Tester"][..]
        )
            .prop_map(Value::from),
        1 => json_value(),
    ];
    let roles = or_any(
        prop::collection::vec(role, 0..4)
            .prop_map(Value::Array)
            .boxed(),
    );
    let meta_key = prop_oneof![
        4 => select(&["plan", "company", "roles", "invited", "invited_by", "invite_source",
            "invited_at", "invite_event", "is_admin", "permissions"][..])
            .prop_map(String::from),
        1 => any::<String>(),
    ];
    let app_metadata = or_any(
        prop::collection::vec((meta_key, json_value()), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()))
            .boxed(),
    );
    let user_metadata = or_any(
        prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()))
            .boxed(),
    );
    let result_url = or_any(
        prop_oneof![
            3 => select(&[
                "https://app.example.com/next",
                "https://other.example.com",
                "HTTPS://APP.EXAMPLE.COM/a?b=c#d",
                "https://app.example.com:443/x",
                "https://app.example.com:8443/x",
                "https://evil.example/x",
                "http://app.example.com/x",
                "http://localhost:3000/",
                "javascript:alert(1)",
                "//app.example.com/x",
                "",
            ][..])
            .prop_map(String::from),
            1 => any::<String>(),
        ]
        .prop_map(Value::from)
        .boxed(),
    );
    let ttl = or_any(
        prop_oneof![
            (0u64..3_000_000).prop_map(Value::from),
            select(&[59u64, 60, 2_592_000, 2_592_001][..]).prop_map(Value::from),
            (-100i64..0).prop_map(Value::from),
            Just(serde_json::json!(600.0)),
            Just(serde_json::json!(600.5)),
            Just(Value::from("600")),
        ]
        .boxed(),
    );
    let field = |s: BoxedStrategy<Value>| prop::option::weighted(0.3, s);
    let extra = prop::option::weighted(
        0.05,
        (
            prop_oneof![select(FIELDS).prop_map(String::from), any::<String>()],
            json_value(),
        ),
    );
    (
        prop::option::weighted(0.97, email),
        (
            field(name.clone()),
            field(name.clone()),
            field(name.clone()),
            field(name),
        ),
        field(roles),
        field(user_metadata),
        field(app_metadata),
        field(result_url),
        field(ttl),
        extra,
    )
        .prop_map(
            |(email, (name, given, family, nick), roles, um, am, result_url, ttl, extra)| {
                let mut obj = Map::new();
                for (key, value) in [
                    ("email", email),
                    ("name", name),
                    ("given_name", given),
                    ("family_name", family),
                    ("nickname", nick),
                    ("roles", roles),
                    ("user_metadata", um),
                    ("app_metadata", am),
                    ("result_url", result_url),
                    ("ticket_ttl_sec", ttl),
                ] {
                    if let Some(v) = value {
                        obj.insert(key.to_string(), v);
                    }
                }
                if let Some((k, v)) = extra {
                    obj.insert(k, v);
                }
                obj
            },
        )
        .boxed()
}

/// Checks everything a successful `parse_invite` promises about `obj`, its input.
fn check_invite_ok(
    obj: &Map<String, Value>,
    input: &invite_core::invite::InviteInput,
    cfg: &Config,
) -> Result<(), TestCaseError> {
    prop_assert!(obj.keys().all(|k| FIELDS.contains(&k.as_str())));

    let raw_email = obj.get("email").and_then(Value::as_str);
    prop_assert_eq!(raw_email.map(normalize), Some(Ok(input.email.clone())));
    prop_assert_eq!(input.email.matches('@').count(), 1);
    prop_assert_eq!(&input.email, &input.email.to_lowercase());

    let mut seen = HashSet::new();
    for (field, value) in &input.profile {
        let max = match field.as_str() {
            "name" | "nickname" => MAX_NAME_CHARS,
            "given_name" | "family_name" => 150,
            other => return Err(TestCaseError::fail(format!("unexpected field {other}"))),
        };
        prop_assert!(seen.insert(field.clone()), "{} twice", field);
        let again = clean_name(value, max);
        prop_assert_eq!(again.as_deref(), Some(value.as_str()));
        prop_assert_eq!(
            obj[field.as_str()].as_str().map(str::trim),
            Some(value.as_str())
        );
    }

    let mut roles = HashSet::new();
    for role in &input.roles {
        prop_assert!(cfg.allowed_roles.contains(role), "{:?}", role);
        prop_assert!(roles.insert(role), "{:?} twice", role);
    }
    if obj.get("roles").is_none_or(Value::is_null) {
        prop_assert_eq!(&input.roles, &cfg.default_roles);
    }

    for key in input.app_metadata.keys() {
        prop_assert!(!RESERVED_APP_METADATA.contains(&key.as_str()), "{:?}", key);
        prop_assert!(cfg.app_metadata_keys.contains(key), "{:?}", key);
        prop_assert!(cfg.role_mode != RoleMode::AppMetadata || key != "roles");
    }

    if let TicketTarget::ResultUrl(u) = &input.ticket_target {
        let url = parse_web_url(host_parse_url, u);
        prop_assert!(url.is_ok(), "{:?}", u);
        let origin = url.unwrap().origin;
        prop_assert!(cfg.result_url_allowlist.contains(&origin), "{:?}", u);
    }
    let (min, max) = TICKET_TTL_RANGE;
    prop_assert!((min..=max).contains(&input.ticket_ttl_sec));
    Ok(())
}

/// `p` with one bit flipped, or one byte added when `p` is empty.
fn near_miss(p: &[u8], (at, bit): (Index, u8)) -> Vec<u8> {
    let mut q = p.to_vec();
    match q.len() {
        0 => q.push(bit),
        n => q[at.index(n)] ^= 1 << (bit % 8),
    }
    q
}

/// A verification that failed on the signature itself (`Stale` means it matched).
fn is_unverified(got: &Result<u64, WebhookError>) -> bool {
    matches!(got, Err(WebhookError::Malformed | WebhookError::NoMatch))
}

/// A `Content-Type` header value (or none).
fn content_type() -> BoxedStrategy<Option<String>> {
    prop::option::weighted(
        0.95,
        prop_oneof![
            4 => select(&[
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=UTF-8",
                "application/json",
                "Application/JSON; charset=utf-8",
                " application/json ;",
                "application/jsonx",
                "text/plain",
                "multipart/form-data; boundary=x",
                "",
            ][..])
            .prop_map(String::from),
            1 => any::<String>(),
        ],
    )
    .boxed()
}

fn request(ctype: Option<&str>, body: Vec<u8>) -> HttpRequest {
    let mut req = HttpRequest::new("POST", "/v1/public/invites");
    if let Some(c) = ctype {
        req = req.header("Content-Type", c);
    }
    req.body = body;
    req
}

/// Our own reading of the media type, to compare with the route's.
fn expected_media_type(ctype: Option<&str>) -> String {
    let c = ctype.unwrap_or("");
    c.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Bidirectional embeddings, overrides, isolates and marks, which `clean_name` drops.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// askama's HTML escaping, for comparing a rendering with its template.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&#38;"),
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn whsec_standard() -> BoxedStrategy<String> {
    prop::collection::vec(any::<u8>(), 24..=64)
        .prop_map(|key| format!("whsec_{}", B64.encode(key)))
        .boxed()
}

/// Whether a URL's host is a loopback host, read from the parsed host (not the string).
fn url_host_is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => a.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// What `check_redirect_target` (and so `THANK_YOU_URL`) may accept.
fn is_safe_redirect(target: &str) -> bool {
    if target.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(rest) = target.strip_prefix('/') {
        return !rest.starts_with('/') && !target.contains('\\');
    }
    match Url::parse(target) {
        Ok(url) => {
            url.scheme() == "https" || (url.scheme() == "http" && url_host_is_loopback(&url))
        }
        Err(_) => false,
    }
}

const URL_PARTS: &[&str] = &[
    "https://",
    "http://",
    "HTTPS://",
    "javascript:",
    "//",
    "/",
    "\\",
    "/\\",
    "\\\\",
    "?",
    "#",
    "@",
    ":",
    ":8080",
    "localhost",
    "LocalHost",
    "127.0.0.1",
    "127.1",
    "127.attacker.example",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "0x7f.1",
    "example.com",
    "www.example.com",
    "thanks",
    " ",
    "\r\n",
    "\t",
    "\u{0}",
    "%0d%0a",
    "é",
    "xn--bcher-kva",
    ".",
];

/// URL-ish strings: fragments, arbitrary text, and targets a configuration might hold.
fn url_like() -> BoxedStrategy<String> {
    prop_oneof![
        4 => fragments(URL_PARTS, 6),
        1 => any::<String>(),
        2 => select(&[
            "/thanks", "/thanks?x=1#y", "/", "https://www.example.com/thanks",
            "http://localhost:8080/t", "http://127.0.0.1/", "http://[::1]:8788",
            "https://127.0.0.1.nip.io/", "//evil.example/x", "/\\evil.example", "/ok\\x",
            "http://127.attacker.example/", "/thanks\r\nSet-Cookie: a=b", " /thanks ",
            "\t/thanks", "https://www.example.com/a b", "https:/\\evil.example",
            "https:evil.example", "http:\\\\localhost\\", "HTTP://LOCALHOST/",
        ][..])
        .prop_map(String::from),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(2000))]

    /// The email is its template with each value put in once, as literal (HTML-escaped) text.
    #[test]
    fn render_inserts_the_name_literally_and_once(
        name in prop::option::weighted(0.9, name_string()),
        product in prop_oneof![3 => Just("Acme".to_string()), 1 => fragments(NAME_PARTS, 4)],
    ) {
        prop_assume!(!name.as_deref().unwrap_or("").contains("LIVE") && !product.contains("LIVE"));
        const NAME: &str = "N4meS3ntinel";
        const PRODUCT: &str = "Pr0ductS3ntinel";
        let template = render(PRODUCT, Some(NAME), TICKET_URL, EXPIRES_AT).unwrap();
        let email = render(&product, name.as_deref(), TICKET_URL, EXPIRES_AT);
        prop_assert!(email.is_ok(), "{:?}", email);
        let email = email.unwrap();
        let shown = name.as_deref().unwrap_or("there");

        prop_assert_eq!(email.text.matches(TICKET_URL).count(), 1, "{}", email.text);
        prop_assert_eq!(email.html.matches("ticket=LIVE").count(), 2, "{}", email.html);
        for marker in ["{{", "{%"] {
            if !shown.contains(marker) && !product.contains(marker) {
                prop_assert!(!email.text.contains(marker), "{}", email.text);
                prop_assert!(!email.html.contains(marker), "{}", email.html);
            }
        }
        // No markup from the values: every `<`, `>` and `"` of the HTML is the template's.
        for c in ['<', '>', '"'] {
            prop_assert_eq!(email.html.matches(c).count(), template.html.matches(c).count());
        }
        if shown.contains("<script") {
            prop_assert!(!email.html.contains("<script"));
        }
        // Exactly the template with the values put in (one pass, no re-expansion).
        prop_assert_eq!(
            &email.text,
            &template.text.replace(PRODUCT, &product).replace(NAME, shown)
        );
        prop_assert_eq!(
            &email.html,
            &template
                .html
                .replace(PRODUCT, &html_escape(&product))
                .replace(NAME, &html_escape(shown))
        );
        prop_assert_eq!(email.subject, format!("Your {product} account is ready"));
    }

    /// `clean_name` output is non-empty, single-spaced, trimmed, clean, within `max`, and stable.
    #[test]
    fn clean_name_output_is_clean_and_stable(raw in name_string(), max in 0usize..=400) {
        let Some(out) = clean_name(&raw, max) else {
            return Ok(());
        };
        prop_assert!(!out.is_empty());
        prop_assert!(out.chars().count() <= max, "{} > {}", out.chars().count(), max);
        prop_assert!(!out.chars().any(char::is_control), "{:?}", out);
        prop_assert!(!out.contains('\r') && !out.contains('\n'));
        prop_assert!(!out.chars().any(|c| c.is_whitespace() && c != ' '), "{:?}", out);
        prop_assert!(!out.chars().any(is_bidi_control), "{:?}", out);
        prop_assert_eq!(out.trim(), out.as_str());
        prop_assert!(!out.contains("  "), "{:?}", out);
        let kept: String = out.chars().filter(|c| *c != ' ').collect();
        let visible: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .filter(|c| !is_bidi_control(*c))
            .collect();
        prop_assert!(visible.starts_with(&kept), "{:?} from {:?}", out, raw);
        prop_assert_eq!(clean_name(&out, max), Some(out.clone()));
    }

    /// A parsed invite honours the configuration; a refused one is a 400/422 error.
    #[test]
    fn parse_invite_honours_the_configuration(
        obj in invite_object(),
        app_meta_mode in any::<bool>(),
    ) {
        let cfg = if app_meta_mode { app_metadata_config() } else { rbac_config() };
        let body = serde_json::to_vec(&Value::Object(obj.clone())).unwrap();
        let has_unknown = obj.keys().any(|k| !FIELDS.contains(&k.as_str()));
        match parse_invite(&body, cfg) {
            Ok(input) => check_invite_ok(&obj, &input, cfg)?,
            Err(e) => {
                prop_assert!(matches!(e.code.status(), 400 | 422), "{:?}", e);
                if has_unknown {
                    prop_assert_eq!(e.code, ErrorCode::UnknownField);
                }
            }
        }
    }

    /// `parse_invite` never panics on any bytes and answers 400 to anything but a JSON object.
    #[test]
    fn parse_invite_survives_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        obj in invite_object(),
        cut in any::<Index>(),
    ) {
        let cfg = rbac_config();
        let body = serde_json::to_vec(&Value::Object(obj)).unwrap();
        let truncated = &body[..cut.index(body.len())];
        for input in [&bytes[..], truncated] {
            let is_object = matches!(
                serde_json::from_slice::<Value>(input),
                Ok(Value::Object(_))
            );
            match parse_invite(input, cfg) {
                Ok(_) => prop_assert!(is_object),
                Err(e) => {
                    prop_assert!(matches!(e.code.status(), 400 | 422), "{:?}", e);
                    if !is_object {
                        prop_assert_eq!(e.code, ErrorCode::InvalidJson);
                    }
                }
            }
        }
    }

    /// `parse_form` never panics; errors are 400/415/422 and no parsed field is blank.
    #[test]
    fn parse_form_survives_arbitrary_bodies(
        ctype in content_type(),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            fragments(&["email", "name", "website", "cf-turnstile-response", "=", "&", "%",
                "%zz", "%E9", "+", "{", "}", "\"", ":", ",", "null", "1", "[]", "a@b.co"], 12)
                .prop_map(String::into_bytes),
        ],
    ) {
        let req = request(ctype.as_deref(), body);
        let media = expected_media_type(ctype.as_deref());
        match parse_form(&req) {
            Ok(form) => {
                prop_assert!(matches!(
                    media.as_str(),
                    "application/x-www-form-urlencoded" | "application/json"
                ));
                for v in [&form.email, &form.name, &form.captcha, &form.honeypot]
                    .into_iter()
                    .flatten()
                {
                    prop_assert!(!v.trim().is_empty());
                }
            }
            Err(e) => {
                let status = e.code.status();
                prop_assert!(matches!(status, 400 | 415 | 422), "{:?}", e);
                prop_assert_ne!(media.as_str(), "application/x-www-form-urlencoded");
                prop_assert_eq!(status == 415, media != "application/json", "{:?}", e);
            }
        }
    }

    /// `parse_form` returns the sent fields unchanged (blank ones as absent), form or JSON.
    #[test]
    fn parse_form_round_trips_fields(
        email in prop::option::of(email_string()),
        name in prop::option::of(name_string()),
        captcha in prop::option::of(any::<String>()),
        honeypot in prop::option::weighted(0.2, any::<String>()),
        extra in prop::collection::vec(("[a-z_-]{1,10}", any::<String>()), 0..3),
        json in any::<bool>(),
    ) {
        let mut fields: Vec<(String, String)> = extra
            .into_iter()
            .filter(|(k, _)| !["email", "name", "website"].contains(&k.as_str()))
            .collect();
        for (key, value) in [
            ("email", &email),
            ("name", &name),
            ("cf-turnstile-response", &captcha),
            ("website", &honeypot),
        ] {
            if let Some(v) = value {
                fields.push((key.to_string(), v.clone()));
            }
        }
        let req = if json {
            let obj: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
            request(Some("application/json"), serde_json::to_vec(&obj).unwrap())
        } else {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&fields)
                .finish();
            request(Some("application/x-www-form-urlencoded"), body.into_bytes())
        };
        let form = parse_form(&req);
        prop_assert!(form.is_ok(), "{:?}", form);
        let form = form.unwrap();
        let present = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        prop_assert_eq!(form.email, present(email));
        prop_assert_eq!(form.name, present(name));
        prop_assert_eq!(form.captcha, present(captcha));
        prop_assert_eq!(form.honeypot, present(honeypot));
    }

    /// `email::normalize` output is the trimmed lowercase input, <= 254 bytes, one '@', stable.
    #[test]
    fn normalize_output_is_canonical(raw in email_string()) {
        if let Ok(out) = normalize(&raw) {
            prop_assert_eq!(&out, &raw.trim().to_lowercase());
            prop_assert_eq!(&out, &out.to_lowercase());
            prop_assert_eq!(out.trim(), out.as_str());
            prop_assert!(out.len() <= MAX_EMAIL_LEN);
            prop_assert_eq!(out.matches('@').count(), 1);
            prop_assert!(out.is_ascii(), "{:?}", out);
            prop_assert_eq!(normalize(&out), Ok(out.clone()));
        }
    }

    /// `is_loopback` holds only for a loopback IP (brackets stripped) or `localhost`.
    #[test]
    fn is_loopback_only_for_loopback_hosts(
        host in prop_oneof![
            any::<String>(),
            "127\\.[0-9a-z.:\\[\\]-]{0,20}",
            "\\[?[0-9a-f:.]{0,24}\\]?",
            "(?i)localhost",
            fragments(URL_PARTS, 3),
        ],
    ) {
        if is_loopback(&host) {
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(&host);
            let ip_loopback = bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            prop_assert!(
                ip_loopback || host.eq_ignore_ascii_case("localhost"),
                "{:?} counted as loopback",
                host
            );
        }
        if host.starts_with("127.") && host.parse::<Ipv4Addr>().is_err() {
            prop_assert!(!is_loopback(&host), "{:?}", host);
        }
    }

    /// `is_loopback` agrees with the standard library on every IP address, bracketed or not.
    #[test]
    fn is_loopback_agrees_on_ip_addresses(
        v4 in prop_oneof![
            any::<Ipv4Addr>(),
            any::<[u8; 3]>().prop_map(|[a, b, c]| Ipv4Addr::new(127, a, b, c)),
        ],
        v6 in any::<Ipv6Addr>(),
    ) {
        prop_assert_eq!(is_loopback(&v4.to_string()), v4.is_loopback());
        prop_assert_eq!(is_loopback(&v6.to_string()), v6.is_loopback());
        prop_assert_eq!(is_loopback(&format!("[{v6}]")), v6.is_loopback());
        prop_assert!(is_loopback("[::1]") && is_loopback("::1"));
    }

    /// `parse_web_url` accepts only https URLs with a host, or http on a loopback host.
    #[test]
    fn parse_web_url_accepts_only_https_or_loopback_http(raw in url_like()) {
        if let Ok(url) = parse_web_url(host_parse_url, &raw) {
            prop_assert!(!url.host.is_empty());
            let parsed = Url::parse(&raw).expect("parse_web_url accepted it");
            prop_assert!(
                url.scheme == "https" || (url.scheme == "http" && url_host_is_loopback(&parsed)),
                "{:?} -> {}",
                raw,
                url.href
            );
        }
    }

    /// `check_redirect_target` accepts only a one-slash local path or an https URL.
    #[test]
    fn redirect_targets_are_local_paths_or_https(raw in url_like()) {
        if check_redirect_target(host_parse_url, &raw).is_ok() {
            prop_assert!(is_safe_redirect(&raw), "{:?} accepted", raw);
        }
    }

    /// A Stripe signature verifies for its payload and secret, and for no other (nor truncated).
    #[test]
    fn stripe_signature_binds_the_payload(
        p in prop::collection::vec(any::<u8>(), 0..128),
        q in prop::collection::vec(any::<u8>(), 0..128),
        secret in "whsec_[A-Za-z0-9]{16,32}",
        other in "whsec_[A-Za-z0-9]{16,32}",
        t in 0u64..4_000_000_000,
        decoy in "[0-9a-f]{64}",
        cut in any::<Index>(),
        flip in any::<(Index, u8)>(),
    ) {
        let secrets = [Secret::new(&other), Secret::new(&secret)];
        let header = sign_for_test::stripe(&p, &secret, t);
        prop_assert_eq!(verify_stripe(&p, &header, &secrets, t, 300), Ok(t));
        let with_decoy = format!("t={t},v1={decoy},{}", header.split_once(',').unwrap().1);
        prop_assert_eq!(verify_stripe(&p, &with_decoy, &secrets, t, 300), Ok(t));
        let truncated = &header[..header.len() - cut.index(64).max(1)];
        prop_assert_eq!(
            verify_stripe(&p, truncated, &secrets, t, 300),
            Err(WebhookError::NoMatch)
        );
        for q in [q, near_miss(&p, flip)] {
            if q != p {
                prop_assert_eq!(
                    verify_stripe(&q, &header, &secrets, t, 300),
                    Err(WebhookError::NoMatch)
                );
            }
        }
        if other != secret {
            prop_assert_eq!(
                verify_stripe(&p, &header, &[Secret::new(&other)], t, 300),
                Err(WebhookError::NoMatch)
            );
        }
    }

    /// A genuine Stripe signature is fresh exactly within the tolerance (at least 1 s), both ways.
    #[test]
    fn stripe_timestamp_window(
        p in prop::collection::vec(any::<u8>(), 0..32),
        t in 0u64..4_000_000_000,
        skew in -1_000i64..=1_000,
        tolerance in 0u64..=600,
    ) {
        let now = t.saturating_add_signed(skew);
        let header = sign_for_test::stripe(&p, STRIPE_SECRET, t);
        let got = verify_stripe(&p, &header, &[Secret::new(STRIPE_SECRET)], now, tolerance);
        if now.abs_diff(t) <= tolerance.max(1) {
            prop_assert_eq!(got, Ok(t));
        } else {
            prop_assert_eq!(got, Err(WebhookError::Stale));
        }
    }

    /// Arbitrary `Stripe-Signature` headers never match a real secret, and never panic.
    #[test]
    fn stripe_arbitrary_headers_never_verify(
        p in prop::collection::vec(any::<u8>(), 0..64),
        header in prop_oneof![
            any::<String>(),
            ("[0-9]{1,12}", prop::collection::vec("[0-9a-fA-F]{0,66}", 1..3))
                .prop_map(|(t, sigs)| format!("t={t},v1={}", sigs.join(",v1="))),
            fragments(&["t=", "v1=", "v0=", ",", " ", "=", "1795729183", "00", "é"], 10),
        ],
        now in any::<u64>(),
        tolerance in any::<u64>(),
    ) {
        // `Stale` would mean the signature matched: only these two are failures to verify.
        let got = verify_stripe(&p, &header, &[Secret::new(STRIPE_SECRET)], now, tolerance);
        prop_assert!(is_unverified(&got), "{:?} gave {:?}", header, got);
        let got = verify_stripe(&p, &header, &[], now, tolerance);
        prop_assert!(is_unverified(&got), "{:?} gave {:?} without secrets", header, got);
    }

    /// A Standard Webhooks signature verifies for its payload and secret, and for no other.
    #[test]
    fn standard_signature_binds_the_payload(
        p in prop::collection::vec(any::<u8>(), 0..128),
        q in prop::collection::vec(any::<u8>(), 0..128),
        secret in whsec_standard(),
        other in whsec_standard(),
        id in "msg_[A-Za-z0-9]{1,24}",
        ts in 0u64..4_000_000_000,
        cut in any::<Index>(),
        flip in any::<(Index, u8)>(),
    ) {
        let secrets = [Secret::new(&other), Secret::new(&secret)];
        let sig = sign_for_test::standard(&id, ts, &p, &secret);
        let ts_str = ts.to_string();
        prop_assert_eq!(verify_standard(&p, &id, &ts_str, &sig, &secrets, ts), Ok(ts));
        let decoys = format!("v1,Zm9v v2,{} {sig} v1a,x", &sig[3..]);
        prop_assert_eq!(verify_standard(&p, &id, &ts_str, &decoys, &secrets, ts), Ok(ts));
        let mac = B64.decode(&sig[3..]).unwrap();
        let truncated = format!("v1,{}", B64.encode(&mac[..cut.index(mac.len())]));
        prop_assert_eq!(
            verify_standard(&p, &id, &ts_str, &truncated, &secrets, ts),
            Err(WebhookError::NoMatch)
        );
        prop_assert_eq!(
            verify_standard(&p, &id, &ts_str, &sig, &secrets, ts + 301),
            Err(WebhookError::Stale)
        );
        for q in [q, near_miss(&p, flip)] {
            if q != p {
                prop_assert_eq!(
                    verify_standard(&q, &id, &ts_str, &sig, &secrets, ts),
                    Err(WebhookError::NoMatch)
                );
            }
        }
        if other != secret {
            prop_assert_eq!(
                verify_standard(&p, &id, &ts_str, &sig, &[Secret::new(&other)], ts),
                Err(WebhookError::NoMatch)
            );
        }
    }

    /// Arbitrary Standard Webhooks headers never match a real secret, and never panic.
    #[test]
    fn standard_arbitrary_headers_never_verify(
        p in prop::collection::vec(any::<u8>(), 0..64),
        id in any::<String>(),
        timestamp in prop_oneof![any::<String>(), "[ ]?[0-9]{1,20}[ ]?"],
        header in prop_oneof![
            any::<String>(),
            prop::collection::vec(
                prop::collection::vec(any::<u8>(), 0..40)
                    .prop_map(|b| format!("v1,{}", B64.encode(b))),
                1..3,
            )
            .prop_map(|v| v.join(" ")),
            fragments(&["v1,", "v1", ",", " ", "=", "+", "/", "AAAA", "\t"], 10),
        ],
        secret in whsec_standard(),
        junk_secret in prop_oneof![any::<String>(), Just(String::new()), Just("whsec_".into())],
        now in any::<u64>(),
    ) {
        let secrets = [Secret::new(&secret), Secret::new(&junk_secret)];
        let got = verify_standard(&p, &id, &timestamp, &header, &secrets, now);
        prop_assert!(is_unverified(&got), "{:?} gave {:?}", header, got);
    }

    /// `client_key` is the IPv4 address or the IPv6 /64: one key per /64, distinct across /64s.
    #[test]
    fn client_key_groups_ipv6_by_slash_64(
        prefix_a in any::<[u16; 4]>(),
        prefix_b in any::<[u16; 4]>(),
        host_a in any::<[u16; 4]>(),
        host_b in any::<[u16; 4]>(),
        v4 in any::<Ipv4Addr>(),
        junk in any::<String>(),
    ) {
        let addr = |p: [u16; 4], h: [u16; 4]| {
            Ipv6Addr::new(p[0], p[1], p[2], p[3], h[0], h[1], h[2], h[3])
        };
        let (a, a2, b) = (addr(prefix_a, host_a), addr(prefix_a, host_b), addr(prefix_b, host_a));
        let key = |ip: &Ipv6Addr| client_key(Some(&ip.to_string()));
        if a.to_ipv4_mapped().is_none() && a2.to_ipv4_mapped().is_none() {
            prop_assert_eq!(key(&a), key(&a2));
            prop_assert!(key(&a).ends_with("::/64"));
            prop_assert_ne!(key(&a), v4.to_string());
            // Another spelling of the same address: full form, upper case, padded.
            let s = a.segments();
            let full = format!(
                "  {:04X}:{:04X}:{:04X}:{:04X}:{:04X}:{:04X}:{:04X}:{:04X} ",
                s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
            );
            prop_assert_eq!(client_key(Some(&full)), key(&a));
            if prefix_a != prefix_b && b.to_ipv4_mapped().is_none() {
                prop_assert_ne!(key(&a), key(&b));
            }
        }
        prop_assert_eq!(client_key(Some(&v4.to_string())), v4.to_string());
        prop_assert_eq!(client_key(Some(&v4.to_ipv6_mapped().to_string())), v4.to_string());
        prop_assert_eq!(client_key(None), "unknown");
        let junk_key = client_key(Some(&junk));
        if junk.trim().parse::<IpAddr>().is_err() {
            prop_assert_eq!(junk_key, "unknown");
        }
    }

    /// `bearer_token` never panics, returns only a trimmed non-empty Bearer token, round-trips.
    #[test]
    fn bearer_token_extracts_the_token(
        header in prop_oneof![
            any::<String>(),
            fragments(&["Bearer", "bearer", "BEARER", "Basic", " ", "  ", "\t", "tok", "é"], 5),
        ],
        token in any::<String>(),
    ) {
        if let Some(t) = bearer_token(Some(&header)) {
            prop_assert!(!t.is_empty());
            prop_assert_eq!(t.trim(), t);
            prop_assert!(header.contains(t));
            let scheme = header.trim_start().get(..7).unwrap_or("");
            prop_assert!(scheme.eq_ignore_ascii_case("bearer "), "{:?}", header);
        }
        let expected = Some(token.trim()).filter(|t| !t.is_empty());
        let header = format!("Bearer {token}");
        prop_assert_eq!(bearer_token(Some(&header)), expected);
    }

    /// `match_api_key` finds the label of exactly the presented key, and nothing else.
    #[test]
    fn match_api_key_finds_only_the_presented_key(
        keys in prop::collection::vec(("[a-z]{1,8}", "[!-~]{16,32}"), 0..4),
        pick in any::<Index>(),
        presented in any::<String>(),
    ) {
        let api_keys: Vec<ApiKey> = keys.iter().map(|(l, k)| ApiKey::new(l.as_str(), k)).collect();
        if !keys.is_empty() {
            let (_, key) = &keys[pick.index(keys.len())];
            let label = keys.iter().rev().find(|(_, k)| k == key).map(|(l, _)| l.as_str());
            prop_assert_eq!(match_api_key(&api_keys, key), label);
        }
        if !keys.iter().any(|(_, k)| *k == presented) {
            prop_assert_eq!(match_api_key(&api_keys, &presented), None);
        }
    }

    /// The body checks never panic and refuse exactly a declared or actual size over the limit.
    #[test]
    fn http_body_checks(
        ctype in content_type(),
        length in prop::option::of(prop_oneof![any::<String>(), "[ ]?[0-9]{1,22}[ ]?"]),
        body_len in 0usize..64,
        max in 0usize..64,
    ) {
        let mut req = request(ctype.as_deref(), vec![b'x'; body_len]);
        if let Some(l) = &length {
            req = req.header("Content-Length", l.as_str());
        }
        let declared = length.as_deref().and_then(|l| l.trim().parse::<u64>().ok());
        let too_large = body_len > max || declared.is_some_and(|n| n > max as u64);
        let checked = check_declared_size(&req, max);
        prop_assert_eq!(checked.is_err(), too_large);
        if let Err(e) = checked {
            prop_assert_eq!(e.code.status(), 413);
        }
        let media = media_type(&req);
        prop_assert_eq!(&media, &expected_media_type(ctype.as_deref()));
        prop_assert_eq!(check_json_type(&req).is_ok(), media == "application/json");
    }

    /// `cors` allows only an exactly listed origin and denies every other foreign one.
    #[test]
    fn cors_allows_only_listed_origins(
        origin in prop::option::weighted(0.9, prop_oneof![
            select(&["https://www.example.com", "http://localhost:8080", "https://WWW.example.com",
                "https://www.example.com/", "https://self.example", "null", "*", ""][..])
                .prop_map(String::from),
            any::<String>(),
            url_like(),
        ]),
        fetch_site in prop::option::of(select(&["same-origin", "cross-site", "none"][..])),
    ) {
        let cfg = rbac_config();
        let mut req = HttpRequest::new("POST", "/v1/public/invites");
        if let Some(o) = &origin {
            req = req.header("Origin", o.as_str());
        }
        if let Some(s) = fetch_site {
            req = req.header("Sec-Fetch-Site", s);
        }
        let self_origin = Some("https://self.example");
        match cors(&req, self_origin, cfg) {
            Cors::Allowed(o) => {
                prop_assert_eq!(Some(&o), origin.as_ref());
                prop_assert!(cfg.public.allowed_origins.contains(&o));
            }
            Cors::SameOrigin => prop_assert!(
                origin.is_none()
                    || origin.as_deref() == self_origin
                    || (origin.as_deref() == Some("null") && fetch_site == Some("same-origin"))
            ),
            Cors::Denied => {
                let o = origin.unwrap();
                prop_assert!(!cfg.public.allowed_origins.contains(&o));
                prop_assert_ne!(Some(o.as_str()), self_origin);
            }
        }
    }

    /// The message page escapes its title and message: no markup comes from the values.
    #[test]
    fn message_page_escapes_values(title in name_string(), message in name_string()) {
        let template = page::message(400, "T", "M").text();
        let body = page::message(400, &title, &message).text();
        for c in ['<', '>', '"'] {
            prop_assert_eq!(body.matches(c).count(), template.matches(c).count(), "{}", body);
        }
    }
}

/// Values for the configuration property: plausible, near-miss and arbitrary.
fn config_overrides() -> BoxedStrategy<Vec<(&'static str, String)>> {
    let secret_text = prop_oneof!["[!-+\\--~]{12,40}", "[!-~]{0,11}", any::<String>()];
    let api_keys = prop::collection::vec(
        (
            prop_oneof![
                4 => "[a-z0-9._-]{1,12}",
                1 => any::<String>(),
                1 => Just("x".repeat(70)),
            ],
            prop_oneof![4 => "[!-+\\--9;-~]{12,40}", 1 => "[a-z]{0,15}", 1 => any::<String>()],
            prop_oneof![8 => Just(":"), 1 => Just(""), 1 => Just(" : ")],
        )
            .prop_map(|(label, key, colon)| format!("{label}{colon}{key}")),
        0..4,
    )
    .prop_map(|entries| entries.join(","));
    let stripe = prop::collection::vec(
        prop_oneof![
            "whsec_[A-Za-z0-9]{16,40}",
            "whsec_[A-Za-z0-9]{0,15}",
            "[!-+\\--~]{12,40}"
        ],
        0..3,
    )
    .prop_map(|v| v.join(","));
    let standard = prop::collection::vec(
        prop_oneof![
            whsec_standard(),
            prop::collection::vec(any::<u8>(), 0..24)
                .prop_map(|k| format!("whsec_{}", B64.encode(k))),
            "whsec_[!-+\\--~]{12,40}",
        ],
        0..3,
    )
    .prop_map(|v| v.join(","));
    let origins = prop::collection::vec(
        prop_oneof![
            3 => select(&["https://www.example.com", "http://localhost:8080", "*",
                "https://www.example.com/", "https://www.example.com/path", "null",
                "HTTPS://WWW.EXAMPLE.COM", "https://xn--bcher-kva.example"][..])
                .prop_map(String::from),
            1 => url_like(),
        ],
        0..3,
    )
    .prop_map(|v| v.join(","));
    let number = prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        "[ ]?-?[0-9]{0,22}[ ]?",
        any::<String>(),
    ];
    let some = |p: f64, s: BoxedStrategy<String>| prop::option::weighted(p, s);
    (
        (
            some(
                0.6,
                ("[ ]{0,2}", url_like(), "[ ]{0,2}")
                    .prop_map(|(a, u, b)| format!("{a}{u}{b}"))
                    .boxed(),
            ),
            some(0.3, url_like()),
            some(0.3, stripe.boxed()),
            some(0.3, standard.boxed()),
            some(0.3, origins.boxed()),
            some(0.4, api_keys.boxed()),
            some(0.3, number.boxed()),
            some(0.3, secret_text.boxed()),
        ),
        (
            some(0.15, url_like()),
            some(0.15, url_like()),
            some(0.15, "[a-z0-9.:/-]{0,20}".boxed()),
            some(
                0.15,
                select(&["auth0", "resend", "smtp", ""][..])
                    .prop_map(String::from)
                    .boxed(),
            ),
        ),
    )
        .prop_map(
            |(
                (thank_you, base, stripe, standard, origins, keys, tolerance, secret),
                (result_url, allowlist, domain, delivery),
            )| {
                [
                    ("THANK_YOU_URL", thank_you),
                    ("AUTH0_BASE_URL", base),
                    ("STRIPE_WEBHOOK_SECRETS", stripe),
                    ("STANDARD_WEBHOOK_SECRETS", standard),
                    ("ALLOWED_ORIGINS", origins),
                    ("INVITE_API_KEYS", keys),
                    ("STRIPE_TOLERANCE_SEC", tolerance),
                    ("AUTH0_CLIENT_SECRET", secret),
                    ("RESULT_URL", result_url),
                    ("RESULT_URL_ALLOWLIST", allowlist),
                    ("AUTH0_DOMAIN", domain),
                    ("EMAIL_DELIVERY", delivery),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect()
            },
        )
        .boxed()
}

/// The secret values (12 characters or more) a configuration holds: the client secret,
/// each API key (or a whole entry that has no label) and each webhook secret.
fn secrets_in(vars: &HashMap<String, String>) -> Vec<String> {
    let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or("");
    let mut out = vec![get("AUTH0_CLIENT_SECRET").trim().to_string()];
    for entry in get("INVITE_API_KEYS").split(',') {
        let key = entry.split_once(':').map_or(entry, |(_, k)| k);
        out.push(key.trim().to_string());
    }
    for var in ["STRIPE_WEBHOOK_SECRETS", "STANDARD_WEBHOOK_SECRETS"] {
        out.extend(get(var).split(',').map(|s| s.trim().to_string()));
    }
    out.retain(|s| s.chars().count() >= 12);
    out
}

proptest! {
    #![proptest_config(cases(1000))]

    /// `Config::from_lookup` never panics or quotes a secret; a valid one has safe URLs.
    #[test]
    fn config_never_leaks_secrets_and_validates_urls(overrides in config_overrides()) {
        let extra: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let vars = vars(&extra);
        match Config::from_lookup(|k| vars.get(k).cloned(), host_parse_url) {
            Err(e) => {
                prop_assert!(!e.problems.is_empty());
                let all = e.problems.join("\n");
                for secret in secrets_in(&vars) {
                    let escaped = format!("{secret:?}");
                    prop_assert!(!all.contains(&secret), "{:?} leaked in {}", secret, all);
                    prop_assert!(
                        !all.contains(&escaped[1..escaped.len() - 1]),
                        "{:?} leaked in {}",
                        secret,
                        all
                    );
                }
            }
            Ok(cfg) => {
                if let Some(target) = &cfg.public.thank_you_url {
                    prop_assert!(is_safe_redirect(target), "THANK_YOU_URL {:?}", target);
                }
                let base = parse_web_url(host_parse_url, &cfg.base_url);
                prop_assert!(base.is_ok(), "{:?}", cfg.base_url);
                prop_assert!(!cfg.base_url.ends_with('/'));
                for o in &cfg.public.allowed_origins {
                    let url = Url::parse(o);
                    prop_assert!(url.is_ok(), "{:?}", o);
                    prop_assert_eq!(&url.unwrap().origin().ascii_serialization(), o);
                }
                for o in &cfg.result_url_allowlist {
                    let url = parse_web_url(host_parse_url, o);
                    prop_assert!(url.is_ok(), "{:?}", o);
                    prop_assert_eq!(&url.unwrap().origin, o);
                }
                prop_assert!((1..=86_400).contains(&cfg.webhooks.stripe_tolerance_sec));
                prop_assert!(!cfg.api_keys.is_empty());
                prop_assert!(match_api_key(&cfg.api_keys, "").is_none());
            }
        }
    }
}

/// The generators reach both outcomes: invites and configurations that pass and that fail.
#[test]
fn generators_exercise_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let invites = invite_object();
    let (mut ok, mut codes) = (0, Vec::new());
    for _ in 0..400 {
        let obj = invites.new_tree(&mut runner).unwrap().current();
        let body = serde_json::to_vec(&Value::Object(obj)).unwrap();
        match parse_invite(&body, rbac_config()) {
            Ok(_) => ok += 1,
            Err(e) => {
                codes.push(e.code);
            }
        }
    }
    assert!(ok >= 40, "only {ok} of 400 generated invites parsed");
    for code in [
        ErrorCode::UnknownField,
        ErrorCode::InvalidEmail,
        ErrorCode::InvalidField,
        ErrorCode::RoleNotAllowed,
        ErrorCode::AppMetadataKeyNotAllowed,
        ErrorCode::ResultUrlNotAllowed,
        ErrorCode::TtlOutOfRange,
    ] {
        assert!(
            codes.contains(&code),
            "no generated invite failed with {code:?}"
        );
    }

    let overrides = config_overrides();
    let mut valid = 0;
    let mut thank_you = 0;
    for _ in 0..400 {
        let o = overrides.new_tree(&mut runner).unwrap().current();
        let extra: Vec<(&str, &str)> = o.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let vars = vars(&extra);
        if let Ok(cfg) = Config::from_lookup(|k| vars.get(k).cloned(), host_parse_url) {
            valid += 1;
            thank_you += usize::from(cfg.public.thank_you_url.is_some());
        }
    }
    assert!(
        valid >= 20,
        "only {valid} of 400 generated configurations were valid"
    );
    assert!(
        thank_you >= 5,
        "only {thank_you} valid configurations had a THANK_YOU_URL"
    );

    let emails = email_string();
    let valid_emails = (0..400)
        .filter(|_| normalize(&emails.new_tree(&mut runner).unwrap().current()).is_ok())
        .count();
    assert!(
        valid_emails >= 100,
        "only {valid_emails} of 400 emails were valid"
    );
}

/// `Secret`'s Debug output never contains the value.
#[test]
fn secret_debug_never_prints_the_value() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for _ in 0..200 {
        let s = "[!-~]{11,40}".new_tree(&mut runner).unwrap().current();
        let shown = format!("{:?}", Secret::new(&s));
        assert!(!shown.contains(&s), "{shown}");
    }
}
