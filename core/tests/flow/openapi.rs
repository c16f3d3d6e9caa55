//! `GET /openapi.json`: the OpenAPI 3.1 document, served whatever the configuration.

use crate::support::*;

#[test]
fn the_openapi_document_is_served_even_with_an_invalid_configuration() {
    let svc = Svc::new(&[]);
    let broken = Svc {
        fake: Fake::new(),
        cfg: Config::from_lookup(|_| None, invite_core::http::host_parse_url),
        cache: Rc::new(IsolateCache::default()),
    };
    for svc in [&svc, &broken] {
        let (h, body) = svc.run(HttpRequest::new("GET", "/openapi.json"));
        assert_eq!(h.response.status, 200);
        assert_eq!(body["openapi"], "3.1.0");
        assert!(body["paths"]["/openapi.json"]["get"].is_object(), "{body}");
        assert_eq!(
            h.response.header_value("content-type"),
            Some("application/json")
        );
        assert_eq!(
            h.response.header_value("cache-control"),
            Some("public, max-age=3600")
        );
        assert!(h.response.header_value("x-request-id").is_some());
        assert!(svc.fake.routes().is_empty(), "no upstream call");
    }
    let (h, _) = svc.run(HttpRequest::new("HEAD", "/openapi.json"));
    assert_eq!(h.response.status, 200);
    let (h, body) = svc.run(HttpRequest::new("POST", "/openapi.json"));
    assert_eq!(error_code(&h, &body), (405, "method_not_allowed".into()));
    assert_eq!(h.response.header_value("allow"), Some("GET, HEAD"));
}

#[test]
fn the_served_document_is_docs_openapi_json() {
    let (h, body) = Svc::new(&[]).run(HttpRequest::new("GET", "/openapi.json"));
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .expect("docs/openapi.json");
    let file: Value = serde_json::from_str(&file).expect("docs/openapi.json is JSON");
    assert_eq!(body, file, "the same JSON value");
    // A JSON string can't hold a raw line break, so none means no indentation either.
    assert!(
        !h.response.body.contains(&b'\n'),
        "served without the file's indentation"
    );
}
