//! The binary: `--help`, bad arguments and the exact startup line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_auth0-emulator");

#[test]
fn help_and_bad_args() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("--rate-limit"));
    assert!(text.contains("--fail-rate"));
    assert!(text.contains("--email-api-key"));
    assert!(text.contains("--public-client-ids"));
    assert!(text.contains("--search-lag-ms"));
    assert!(text.contains("/__emulator/tickets"));

    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn startup_line_and_request_log() {
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--domain", "tenant.test"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let rest = line
        .trim_end()
        .strip_prefix("auth0-emulator listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
    let port: u16 = rest.parse().unwrap();
    assert_ne!(port, 0);

    let body = "grant_type=client_credentials&client_id=dev-client-id&client_secret=dev-client-secret&audience=https%3A%2F%2Ftenant.test%2Fapi%2Fv2%2F";
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let token_start = resp.find("\"access_token\":\"").unwrap() + 16;
    let token: String = resp[token_start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();

    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("POST /oauth/token 200"), "{log}");
    assert!(!log.contains(&token), "token leaked into the log");
    assert!(
        !log.contains("dev-client-secret"),
        "secret leaked into the log"
    );
}
