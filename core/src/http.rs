//! The plain HTTP types the core speaks, the inbound body port, and the body checks every
//! route shares. A leaf module: it imports nothing else from the crate but the error
//! catalogue, so routes can share it without importing each other.
#![allow(async_fn_in_trait)] // Not `Send`: Workers' streams can't be.

use crate::error::ValidationError;

/// An HTTP request as the core sees it, inbound or outbound. `Debug` shows the method, the
/// URL, the header names and the body's length: an outbound request carries the Management
/// token, the client secret or the email API key, and an inbound one an API key.
#[derive(Clone, Default, PartialEq)]
pub struct HttpRequest {
    /// Upper-case method, e.g. `POST`.
    pub method: String,
    /// Absolute URL for outbound requests; path plus query for inbound ones.
    pub url: String,
    /// Header names are compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Raw body bytes (empty when there is none).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl HttpRequest {
    /// Builds a request with no headers and no body.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        HttpRequest {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(self, value: &serde_json::Value) -> Self {
        let mut req = self.header("content-type", "application/json");
        req.body = json_bytes(value);
        req
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// An HTTP response as the core sees it, inbound or outbound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names are compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Raw body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        HttpResponse {
            status,
            headers: vec![(
                "content-type".to_string(),
                "application/json; charset=utf-8".to_string(),
            )],
            body: json_bytes(value),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `value` as JSON bytes, written straight into a `Vec`. `value.to_string()` (its `Display`)
/// goes through `core::fmt`, a dynamic call per piece written: with it, serializing was a fifth
/// of `benches/invite.rs`'s time (the fakes' included) in a native profile, and this made the
/// core's warm invite 6% faster natively (28.7 to 27.0 µs). In workerd the change was within
/// the noise: the core's logic is a small part of a request's CPU there.
pub fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    // Cannot fail: a `Value`'s map keys are strings.
    serde_json::to_vec(value).unwrap_or_default()
}

/// `value` as JSON text (see [`json_bytes`]).
pub fn json_text(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The body of an inbound request, read only once a route has decided it needs one and how
/// much it accepts. The Worker shell reads the platform's stream and stops at the limit; tests
/// pass the bytes.
pub trait BodySource {
    /// Reads the whole body if it is at most `limit` bytes; otherwise stops reading (after at
    /// most `limit + 1` bytes, or one chunk past the limit) and answers `TooLarge`.
    async fn read_limited(self, limit: usize) -> Result<Vec<u8>, BodyError>;
}

/// Why a body could not be read.
#[derive(Clone, Debug, PartialEq)]
pub enum BodyError {
    /// Over the route's limit.
    TooLarge,
    /// The client went away or the stream broke.
    Unreadable(String),
}

impl BodySource for Vec<u8> {
    async fn read_limited(self, limit: usize) -> Result<Vec<u8>, BodyError> {
        if self.len() > limit {
            Err(BodyError::TooLarge)
        } else {
            Ok(self)
        }
    }
}

/// Refuses a body whose declared `Content-Length` is over `max`, before reading anything.
pub fn check_declared_size(req: &HttpRequest, max: usize) -> Result<(), ValidationError> {
    let declared = req
        .header_value("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) || req.body.len() > max {
        return Err(ValidationError::too_large(max));
    }
    Ok(())
}

/// The lowercased media type of the request (`application/json` of
/// `Application/JSON; charset=utf-8`).
pub fn media_type(req: &HttpRequest) -> String {
    req.header_value("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Refuses anything but `Content-Type: application/json`.
pub fn check_json_type(req: &HttpRequest) -> Result<(), ValidationError> {
    if media_type(req) != "application/json" {
        return Err(ValidationError::media_type("application/json"));
    }
    Ok(())
}

/// What the service uses of an absolute URL, as the WHATWG URL Standard parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebUrl {
    /// The scheme, lower-case, without the colon: `https`.
    pub scheme: String,
    /// The host, lower-case (IPv6 in brackets); empty when the URL has none (`mailto:`).
    pub host: String,
    /// `scheme://host[:port]`, the default port left out; `null` for schemes without one.
    pub origin: String,
    /// The whole URL, serialized.
    pub href: String,
}

/// A WHATWG URL parser: `None` for anything that is not an absolute URL.
///
/// The Worker passes the runtime's own `URL` (src/glue.js), so the bundle carries no URL
/// parser: the `url` crate, its IP address parsers and what they pulled in were 22.5 KB of the
/// gzipped bundle.
/// Tests and other host code pass [`host_parse_url`], the `url` crate, which implements the
/// same standard. The two differ only on hosts that are not ASCII: the runtime converts them
/// to punycode; the host parser, built without IDNA tables, refuses them.
pub type ParseUrl = fn(&str) -> Option<WebUrl>;

/// [`ParseUrl`] on the host, with the `url` crate.
///
/// The build has no IDNA tables (`idna_adapter` 1.0, see core/Cargo.toml), and without them
/// the `url` crate leaves upper-case ASCII in a host as it is, however it got there
/// (`HTTPS://EXAMPLE.COM`, `https:EXAMPLE.com`, `https://%41.com`), instead of lower-casing
/// it. Lower-casing the parsed host gives what the full tables (and the runtime's `URL`)
/// give for every ASCII host. (The stub also asserts against upper case in debug builds;
/// the workspace's Cargo.toml turns that assertion off.)
pub fn host_parse_url(raw: &str) -> Option<WebUrl> {
    let mut url = url::Url::parse(raw).ok()?;
    let upper = url
        .host_str()
        .filter(|h| h.bytes().any(|b| b.is_ascii_uppercase()));
    if let Some(host) = upper.map(str::to_ascii_lowercase) {
        url.set_host(Some(&host)).ok()?;
    }
    Some(WebUrl {
        scheme: url.scheme().to_string(),
        host: url.host_str().unwrap_or_default().to_string(),
        origin: url.origin().ascii_serialization(),
        href: url.to_string(),
    })
}

/// The cases every [`ParseUrl`] must agree on: the host's tests run it on [`host_parse_url`]
/// and the Worker's wasm32 tests on the runtime's `URL`, so the parser the tests use and the
/// one the Worker uses are held to the same table. Panics on the first disagreement.
#[doc(hidden)]
pub fn check_url_parser(parse: ParseUrl) {
    // (input, Some((scheme, host, origin, href)) or None when it is no absolute URL)
    type Case = (
        &'static str,
        Option<(&'static str, &'static str, &'static str, &'static str)>,
    );
    let cases: &[Case] = &[
        (
            "https://App.EXAMPLE.com/Welcome?X=Y",
            Some((
                "https",
                "app.example.com",
                "https://app.example.com",
                "https://app.example.com/Welcome?X=Y",
            )),
        ),
        (
            "HTTPS://EXAMPLE.COM",
            Some((
                "https",
                "example.com",
                "https://example.com",
                "https://example.com/",
            )),
        ),
        (
            "https:EXAMPLE.com",
            Some((
                "https",
                "example.com",
                "https://example.com",
                "https://example.com/",
            )),
        ),
        (
            "https://%41.com/",
            Some(("https", "a.com", "https://a.com", "https://a.com/")),
        ),
        (
            "http://LOCALHOST:8787/Path#Frag",
            Some((
                "http",
                "localhost",
                "http://localhost:8787",
                "http://localhost:8787/Path#Frag",
            )),
        ),
        (
            "https://app.example.com:443/",
            Some((
                "https",
                "app.example.com",
                "https://app.example.com",
                "https://app.example.com/",
            )),
        ),
        (
            "https://app.example.com:8443",
            Some((
                "https",
                "app.example.com",
                "https://app.example.com:8443",
                "https://app.example.com:8443/",
            )),
        ),
        (
            "http://[::1]:8787/x",
            Some(("http", "[::1]", "http://[::1]:8787", "http://[::1]:8787/x")),
        ),
        (
            "http://127.1/",
            Some(("http", "127.0.0.1", "http://127.0.0.1", "http://127.0.0.1/")),
        ),
        (
            "https://evil.example\\@good.example/",
            Some((
                "https",
                "evil.example",
                "https://evil.example",
                "https://evil.example/@good.example/",
            )),
        ),
        (
            "https://user:pass@good.example/",
            Some((
                "https",
                "good.example",
                "https://good.example",
                "https://user:pass@good.example/",
            )),
        ),
        (
            "https://xn--bcher-kva.example/",
            Some((
                "https",
                "xn--bcher-kva.example",
                "https://xn--bcher-kva.example",
                "https://xn--bcher-kva.example/",
            )),
        ),
        (
            "mailto:someone@example.com",
            Some(("mailto", "", "null", "mailto:someone@example.com")),
        ),
        ("not a url", None),
        ("/relative/path", None),
        ("//host.example/", None),
        ("https://", None),
        ("https://exa mple.com/", None),
        ("", None),
    ];
    for (raw, want) in cases {
        let got = parse(raw);
        let got = got.as_ref().map(|u| {
            (
                u.scheme.as_str(),
                u.host.as_str(),
                u.origin.as_str(),
                u.href.as_str(),
            )
        });
        assert_eq!(got, *want, "{raw:?}");
    }
}

#[cfg(test)]
mod url_tests {
    use super::{check_url_parser, host_parse_url};

    #[test]
    fn the_host_parser_meets_the_shared_table() {
        check_url_parser(host_parse_url);
    }

    #[test]
    fn the_host_parser_refuses_hosts_that_are_not_ascii() {
        // The runtime's URL would give xn--bcher-kva.example; see `ParseUrl`.
        assert_eq!(host_parse_url("https://bücher.example/"), None);
    }
}
