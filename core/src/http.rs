//! The plain HTTP types the core speaks, the inbound body port, and the body checks every
//! route shares. A leaf module: it imports nothing else from the crate but the error
//! catalogue, so routes can share it without importing each other.
#![allow(async_fn_in_trait)] // Not `Send`: Workers' streams can't be.

use crate::error::ValidationError;

/// An HTTP request as the core sees it, inbound or outbound.
#[derive(Clone, Debug, Default, PartialEq)]
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
        req.body = value.to_string().into_bytes();
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
            body: value.to_string().into_bytes(),
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

/// Parses an absolute URL, its host lower-cased.
///
/// The bundle carries no IDNA tables (`idna_adapter` 1.0, see core/Cargo.toml), and without
/// them the `url` crate leaves upper-case ASCII in a host as it is, however it got there
/// (`HTTPS://EXAMPLE.COM`, `https:EXAMPLE.com`, `https://%41.com`), instead of lower-casing
/// it. Lower-casing the parsed host gives what the full tables would for every ASCII host; a
/// non-ASCII host still fails to parse. (The stub also asserts against upper case in debug
/// builds; the workspace's Cargo.toml turns that assertion off.)
pub fn parse_url(raw: &str) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(raw)?;
    let upper = url
        .host_str()
        .filter(|h| h.bytes().any(|b| b.is_ascii_uppercase()));
    if let Some(host) = upper.map(str::to_ascii_lowercase) {
        url.set_host(Some(&host))?;
    }
    Ok(url)
}

#[cfg(test)]
mod url_tests {
    use super::parse_url;

    #[test]
    fn hosts_are_lower_cased_and_the_rest_kept() {
        let check = |raw: &str, host: Option<&str>, path: &str| {
            let u = parse_url(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(u.host_str(), host, "{raw}");
            assert_eq!(u.path(), path, "{raw}");
        };
        check(
            "https://App.EXAMPLE.com/Welcome?X=Y",
            Some("app.example.com"),
            "/Welcome",
        );
        check("HTTPS://EXAMPLE.COM", Some("example.com"), "/");
        check(
            "http://LOCALHOST:8787/Path#Frag",
            Some("localhost"),
            "/Path",
        );
        check(
            "https://xn--bcher-kva.example/",
            Some("xn--bcher-kva.example"),
            "/",
        );
        assert!(
            parse_url("https://bücher.example/").is_err(),
            "non-ASCII hosts are refused"
        );
        assert!(parse_url("not a url").is_err());
    }
}
