//! Embeds docs/openapi.json (served at `GET /openapi.json`) without its indentation: the
//! same JSON, 33 KB less in the wasm's memory image and 1.2 KB less gzipped. The file stays
//! indented for people to read and diff; the flow test `the_served_document_is_docs_openapi_json`
//! holds the two to the same value.

use std::{env, fs, path::Path};

fn main() {
    let source = "../docs/openapi.json";
    println!("cargo:rerun-if-changed={source}");
    let text = fs::read_to_string(source).expect("docs/openapi.json is readable");
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.json");
    fs::write(out, without_indentation(&text)).expect("OUT_DIR is writable");
}

/// `text` without the white space between JSON tokens (inside strings it is kept).
fn without_indentation(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}
