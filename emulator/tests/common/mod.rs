//! Test helpers: start the emulator in-process on port 0 and talk raw
//! HTTP/1.1 to it over `std::net::TcpStream` (no HTTP client crate).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use auth0_emulator::{start, Handle, Options};
use serde_json::{json, Value};

pub const AUDIENCE: &str = "https://emulator.local/api/v2/";
pub const CONNECTION: &str = "Username-Password-Authentication";
pub const STRONG_PASSWORD: &str = "Correct-Horse-42";

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

pub struct Emu {
    pub handle: Handle,
}

fn test_options() -> Options {
    Options {
        port: 0,
        threads: 4,
        log_requests: false,
        ..Options::default()
    }
}

impl Emu {
    pub fn start() -> Emu {
        Emu::start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut Options)) -> Emu {
        let mut opts = test_options();
        f(&mut opts);
        let handle = start(opts).expect("emulator starts");
        Emu { handle }
    }

    pub fn port(&self) -> u16 {
        self.handle.port()
    }

    /// Sends one request with `Connection: close` and reads the response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port())).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or(&[]);
        if !body.is_empty() || method == "POST" || method == "PATCH" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).expect("write head");
        stream.write_all(body).expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        parse_response(&raw)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        self.request("GET", path, &headers, None)
    }

    pub fn send_json(&self, method: &str, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let body = serde_json::to_vec(body).expect("serialize");
        self.request(method, path, &headers, Some(&body))
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send_json("POST", path, token, body)
    }

    pub fn token_request(&self, body: &Value) -> Resp {
        self.post("/oauth/token", None, body)
    }

    /// A fresh management token with the currently configured scopes.
    pub fn token(&self) -> String {
        let r = self.token_request(&json!({
            "grant_type": "client_credentials",
            "client_id": "dev-client-id",
            "client_secret": "dev-client-secret",
            "audience": AUDIENCE,
        }));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub fn config(&self, body: Value) -> Resp {
        let r = self.post("/__emulator/config", None, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        r
    }

    pub fn stats(&self) -> Value {
        self.get("/__emulator/stats", None).json()
    }

    /// Creates a user and returns its JSON.
    pub fn create_user(&self, token: &str, email: &str) -> Value {
        let r = self.post(
            "/api/v2/users",
            Some(token),
            &json!({"connection": CONNECTION, "email": email, "password": STRONG_PASSWORD}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()
    }

    /// Issues a ticket (`kind` is `password-change` or `email-verification`)
    /// and returns its URL.
    pub fn ticket(&self, token: &str, kind: &str, body: &Value) -> String {
        let r = self.post(&format!("/api/v2/tickets/{kind}"), Some(token), body);
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["ticket"].as_str().expect("ticket").to_string()
    }

    pub fn create_role(&self, token: &str, name: &str) -> Value {
        let r = self.post(
            "/api/v2/roles",
            Some(token),
            &json!({"name": name, "description": format!("{name} role")}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }
}

/// The `ticket=` id of a ticket URL (`https://…/u/…?ticket=<id>#`).
pub fn ticket_id(url: &str) -> String {
    url.split_once("ticket=")
        .map(|(_, rest)| rest.trim_end_matches('#').to_string())
        .unwrap_or_else(|| panic!("no ticket in {url}"))
}

/// Options granting `delete:users` on top of the default scopes (Auth0
/// clients get only the scopes they are granted; the defaults mirror the
/// invite Worker's client, which never deletes).
pub fn with_delete_scope(o: &mut Options) {
    o.scopes.push("delete:users".into());
}

/// Percent-encodes a path segment.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header terminator");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body: String::from_utf8(body).expect("utf-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&data[..pos]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("0").trim(), 16)
            .expect("chunk size");
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}
