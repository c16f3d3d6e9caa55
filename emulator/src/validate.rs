//! Payload and query validation with Auth0's (z-schema style) error messages,
//! plus the email syntax check and the database connection password policy.
//!
//! A [`Schema`] lists the allowed properties of a JSON object body, their
//! types and constraints, and the required ones. [`check_payload`] returns the
//! body as a map or the exact message Auth0 would send, for example
//! `Payload validation error: 'Missing required property: connection'.`

use serde_json::{Map, Value};

/// String formats that Auth0's schemas check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Email,
    AbsoluteUri,
    /// `^\+[0-9]{1,15}$`
    E164,
    /// Auth0's `user-id` format: `provider|id` (see [`is_user_id`]).
    UserId,
}

/// The type and constraints of one property.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str {
        min: usize,
        max: Option<usize>,
        format: Option<Format>,
    },
    Bool,
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Object,
    /// An array of strings with at least `min_items` items, each at least
    /// `item_min` characters long.
    StrArray {
        min_items: usize,
        item_min: usize,
    },
    /// An object with string properties `user_id` and `provider` (an identity).
    Identity,
}

/// Shorthand for an unconstrained string.
pub const STR: Ty = Ty::Str {
    min: 0,
    max: None,
    format: None,
};

/// Shorthand for a non-empty string.
pub const NONEMPTY: Ty = Ty::Str {
    min: 1,
    max: None,
    format: None,
};

/// One allowed property.
#[derive(Debug, Clone, Copy)]
pub struct Prop {
    pub name: &'static str,
    pub ty: Ty,
    /// Appended to messages in parentheses, as Auth0 does for some fields.
    pub desc: Option<&'static str>,
}

pub const fn prop(name: &'static str, ty: Ty) -> Prop {
    Prop {
        name,
        ty,
        desc: None,
    }
}

pub const fn prop_d(name: &'static str, ty: Ty, desc: &'static str) -> Prop {
    Prop {
        name,
        ty,
        desc: Some(desc),
    }
}

/// An object schema.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub props: &'static [Prop],
    pub required: &'static [&'static str],
    pub min_props: usize,
}

/// The JSON type name as z-schema reports it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => {
            let whole = n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0);
            if whole {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn on_property(inner: &str, prop: &Prop, path: &str) -> String {
    match prop.desc {
        Some(d) => format!("'{inner}' on property {path} ({d})"),
        None => format!("'{inner}' on property {path}"),
    }
}

fn check_string(s: &str, min: usize, max: Option<usize>, format: Option<Format>) -> Option<String> {
    let len = s.chars().count();
    if len < min {
        return Some(format!("String is too short ({len} chars), minimum {min}"));
    }
    if let Some(max) = max {
        if len > max {
            return Some(format!("String is too long ({len} chars), maximum {max}"));
        }
    }
    match format {
        Some(Format::Email) if !is_valid_email(s) => Some(format!(
            "Object didn't pass validation for format email: {s}"
        )),
        Some(Format::AbsoluteUri) if !is_absolute_uri(s) => Some(format!(
            "Object didn't pass validation for format absolute-uri: {s}"
        )),
        Some(Format::E164) if !is_e164(s) => Some(format!(
            "String does not match pattern ^\\+[0-9]{{1,15}}$: {s}"
        )),
        Some(Format::UserId) if !is_user_id(s) => Some(user_id_format_message(s)),
        _ => None,
    }
}

/// Validates one property value; returns the inner message and property path.
fn check_value(prop: &Prop, v: &Value) -> Option<(String, String)> {
    let found = type_name(v);
    let path = prop.name.to_string();
    let expect = |t: &str| {
        Some((
            format!("Expected type {t} but found type {found}"),
            path.clone(),
        ))
    };
    match prop.ty {
        Ty::Str { min, max, format } => match v.as_str() {
            None => expect("string"),
            Some(s) => check_string(s, min, max, format).map(|m| (m, path.clone())),
        },
        Ty::Bool => {
            if v.is_boolean() {
                None
            } else {
                expect("boolean")
            }
        }
        Ty::Int { min, max } => {
            if found != "integer" {
                return expect("integer");
            }
            let n = v
                .as_i64()
                .or_else(|| v.as_f64().map(|f| f as i64))
                .unwrap_or(0);
            if let Some(min) = min {
                if n < min {
                    return Some((format!("Value {n} is less than minimum {min}"), path));
                }
            }
            if let Some(max) = max {
                if n > max {
                    return Some((format!("Value {n} is greater than maximum {max}"), path));
                }
            }
            None
        }
        Ty::Object => {
            if v.is_object() {
                None
            } else {
                expect("object")
            }
        }
        Ty::StrArray {
            min_items,
            item_min,
        } => {
            let Some(items) = v.as_array() else {
                return expect("array");
            };
            if items.len() < min_items {
                return Some((
                    format!("Array is too short ({}), minimum {min_items}", items.len()),
                    path,
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let ipath = format!("{}[{i}]", prop.name);
                match item.as_str() {
                    None => {
                        return Some((
                            format!("Expected type string but found type {}", type_name(item)),
                            ipath,
                        ))
                    }
                    Some(s) => {
                        if let Some(m) = check_string(s, item_min, None, None) {
                            return Some((m, ipath));
                        }
                    }
                }
            }
            None
        }
        Ty::Identity => {
            let Some(obj) = v.as_object() else {
                return expect("object");
            };
            for key in obj.keys() {
                if key != "user_id" && key != "provider" {
                    return Some((format!("Additional properties not allowed: {key}"), path));
                }
            }
            for key in ["user_id", "provider"] {
                match obj.get(key) {
                    None => {
                        return Some((format!("Missing required property: {key}"), path));
                    }
                    Some(x) if !x.is_string() => {
                        return Some((
                            format!("Expected type string but found type {}", type_name(x)),
                            format!("{}.{key}", prop.name),
                        ));
                    }
                    _ => {}
                }
            }
            None
        }
    }
}

/// Validates a request body against `schema`. On failure returns the full
/// Auth0 message (`Payload validation error: '...'[ on property p].`).
pub fn check_payload<'a>(
    body: &'a Value,
    schema: &Schema,
) -> Result<&'a Map<String, Value>, String> {
    check_object(body, schema).map_err(|m| format!("Payload validation error: {m}."))
}

fn check_object<'a>(body: &'a Value, schema: &Schema) -> Result<&'a Map<String, Value>, String> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "'Expected type object but found type {}'",
            type_name(body)
        ));
    };
    let extra: Vec<&str> = obj
        .keys()
        .filter(|k| !schema.props.iter().any(|p| p.name == k.as_str()))
        .map(|k| k.as_str())
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "'Additional properties not allowed: {}'",
            extra.join(",")
        ));
    }
    if obj.len() < schema.min_props {
        return Err(format!(
            "'Too few properties defined ({}), minimum {}'",
            obj.len(),
            schema.min_props
        ));
    }
    for req in schema.required {
        if !obj.contains_key(*req) {
            return Err(format!("'Missing required property: {req}'"));
        }
    }
    for prop in schema.props {
        if let Some(v) = obj.get(prop.name) {
            if let Some((inner, path)) = check_value(prop, v) {
                return Err(on_property(&inner, prop, &path));
            }
        }
    }
    Ok(obj)
}

/// A query parameter's type.
#[derive(Debug, Clone, Copy)]
pub enum QTy {
    Str,
    Bool,
    Int { min: i64, max: i64 },
}

/// Validates query parameters: only `allowed` names, `required` present, and
/// types as given. Returns the full Auth0 message on failure.
pub fn check_query(
    query: &[(String, String)],
    allowed: &[(&str, QTy)],
    required: &[&str],
) -> Result<(), String> {
    let wrap = |m: String| format!("Query validation error: {m}.");
    let extra: Vec<&str> = query
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !allowed.iter().any(|(a, _)| a == k))
        .collect();
    if !extra.is_empty() {
        return Err(wrap(format!(
            "'Additional properties not allowed: {}'",
            extra.join(",")
        )));
    }
    for r in required {
        if !query.iter().any(|(k, _)| k == r) {
            return Err(wrap(format!("'Missing required property: {r}'")));
        }
    }
    for (k, v) in query {
        let Some((_, ty)) = allowed.iter().find(|(a, _)| a == k) else {
            continue;
        };
        match ty {
            QTy::Str => {}
            QTy::Bool => {
                if v != "true" && v != "false" {
                    return Err(wrap(format!(
                        "'Expected type boolean but found type string' on property {k}"
                    )));
                }
            }
            QTy::Int { min, max } => match v.trim().parse::<i64>() {
                Err(_) => {
                    return Err(wrap(format!(
                        "'Expected type integer but found type string' on property {k}"
                    )))
                }
                Ok(n) if n < *min => {
                    return Err(wrap(format!(
                        "'Value {n} is less than minimum {min}' on property {k}"
                    )))
                }
                Ok(n) if n > *max => {
                    return Err(wrap(format!(
                        "'Value {n} is greater than maximum {max}' on property {k}"
                    )))
                }
                Ok(_) => {}
            },
        }
    }
    Ok(())
}

/// Practical email syntax check: `local@domain.tld`, no whitespace, a dotted
/// domain of letter/digit/hyphen labels and an alphabetic TLD of 2+ letters.
pub fn is_valid_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return false;
    }
    let local_ok = local
        .chars()
        .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    if !local_ok {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    for label in &labels {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_alphanumeric() || c == '-')
        {
            return false;
        }
    }
    let tld = labels[labels.len() - 1];
    tld.chars().count() >= 2 && tld.chars().all(|c| c.is_alphabetic())
}

/// An absolute URL with a scheme and (for http/https) a host.
pub fn is_absolute_uri(s: &str) -> bool {
    match url::Url::parse(s) {
        Ok(u) => {
            !matches!(u.scheme(), "http" | "https") || u.host_str().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

/// Auth0's `user-id` format, as far as public evidence shows it: a provider
/// and an id joined by `|` (`auth0|63d17c...`, `google-oauth2|1150...`). Ids
/// without the provider (`nope`, `6560cd0f6caaac5b4692f454`) are refused
/// with "Object didn't pass validation for format user-id: ...".
pub fn is_user_id(s: &str) -> bool {
    matches!(s.split_once('|'), Some((provider, id)) if !provider.is_empty() && !id.is_empty())
}

/// z-schema's message for a value failing the `user-id` format.
pub fn user_id_format_message(s: &str) -> String {
    format!("Object didn't pass validation for format user-id: {s}")
}

/// Metadata field names must not contain `.` or `$` at any depth (Auth0's
/// "Metadata Field Names and Data Types"). Returns the first offending name.
pub fn bad_metadata_key(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) => m.iter().find_map(|(k, v)| {
            if k.contains('.') || k.contains('$') {
                Some(k.as_str())
            } else {
                bad_metadata_key(v)
            }
        }),
        Value::Array(a) => a.iter().find_map(bad_metadata_key),
        _ => None,
    }
}

fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The database connection's password policy (Auth0 "excellent"-like):
/// at least `min_len` characters (10 by default), at least 3 of lowercase / uppercase /
/// digits / special characters, no more than 2 identical characters in a row and, with
/// `block_sequential`, no three sequential letters or digits (`abc`, `CBA`, `789`, `321`,
/// ignoring case: the emulator's reading of the Flexible Password Policy's setting, whose
/// exact rule Auth0 does not publish).
pub fn password_ok(pw: &str, min_len: usize, block_sequential: bool) -> bool {
    if pw.chars().count() < min_len {
        return false;
    }
    let lower = pw.chars().any(|c| c.is_ascii_lowercase());
    let upper = pw.chars().any(|c| c.is_ascii_uppercase());
    let digit = pw.chars().any(|c| c.is_ascii_digit());
    let special = pw.chars().any(|c| c == ' ' || c.is_ascii_punctuation());
    let classes = [lower, upper, digit, special]
        .iter()
        .filter(|b| **b)
        .count();
    if classes < 3 {
        return false;
    }
    let chars: Vec<char> = pw.chars().collect();
    !chars.windows(3).any(|w| {
        (w[0] == w[1] && w[1] == w[2]) || (block_sequential && sequential(w[0], w[1], w[2]))
    })
}

fn sequential(a: char, b: char, c: char) -> bool {
    let [a, b, c] = [a, b, c].map(|x| x.to_ascii_lowercase());
    [a, b, c].iter().all(char::is_ascii_alphanumeric)
        && ((b as u32 == a as u32 + 1 && c as u32 == b as u32 + 1)
            || (a as u32 == b as u32 + 1 && b as u32 == c as u32 + 1))
}

/// Auth0's "Personal Data" password option: whether `pw` contains any of `personal` (see
/// `User::personal_data`), compared without regard to case; empty values are skipped.
pub fn password_has_personal_info(pw: &str, personal: &[&str]) -> bool {
    let pw = pw.to_lowercase();
    personal
        .iter()
        .filter(|v| !v.is_empty())
        .any(|v| pw.contains(&v.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: Schema = Schema {
        props: &[
            prop("connection", NONEMPTY),
            prop(
                "name",
                Ty::Str {
                    min: 0,
                    max: Some(300),
                    format: None,
                },
            ),
            prop_d(
                "email",
                Ty::Str {
                    min: 0,
                    max: None,
                    format: Some(Format::Email),
                },
                "The user's email",
            ),
            prop(
                "roles",
                Ty::StrArray {
                    min_items: 1,
                    item_min: 1,
                },
            ),
            prop(
                "ttl",
                Ty::Int {
                    min: Some(0),
                    max: None,
                },
            ),
        ],
        required: &["connection"],
        min_props: 0,
    };

    fn err(v: Value) -> String {
        match check_payload(&v, &SCHEMA) {
            Ok(_) => String::from("ok"),
            Err(e) => e,
        }
    }

    #[test]
    fn auth0_style_messages() {
        assert_eq!(
            err(json!({"connection":"c","foo":1})),
            "Payload validation error: 'Additional properties not allowed: foo'."
        );
        assert_eq!(
            err(json!({})),
            "Payload validation error: 'Missing required property: connection'."
        );
        assert_eq!(
            err(json!({"connection":"c","name":5})),
            "Payload validation error: 'Expected type string but found type integer' on property name."
        );
        assert_eq!(
            err(json!({"connection":"c","email":"not-an-email"})),
            "Payload validation error: 'Object didn't pass validation for format email: not-an-email' on property email (The user's email)."
        );
        assert_eq!(
            err(json!({"connection":"c","name":"x".repeat(301)})),
            "Payload validation error: 'String is too long (301 chars), maximum 300' on property name."
        );
        assert_eq!(
            err(json!({"connection":"c","roles":[]})),
            "Payload validation error: 'Array is too short (0), minimum 1' on property roles."
        );
        assert_eq!(
            err(json!({"connection":"c","ttl":-1})),
            "Payload validation error: 'Value -1 is less than minimum 0' on property ttl."
        );
        assert_eq!(
            err(json!([1])),
            "Payload validation error: 'Expected type object but found type array'."
        );
        assert_eq!(err(json!({"connection":"c","roles":["a"],"ttl":5})), "ok");
    }

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.com",
            "x_y@ex-ample.org",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "not-an-email",
            "a@b",
            "@b.com",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@-b.com",
            "a.@b.com",
            "a@b.c",
            "a@b.123",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(password_ok("Passwords hide their chuck", 10, false));
        assert!(password_ok("I have a password and its a secret", 10, false));
        assert!(password_ok("Abcdefgh12", 10, false));
        assert!(!password_ok("Abcdefg12", 10, false)); // 9 chars
        assert!(!password_ok("abcdefghij12", 10, false)); // 2 classes
        assert!(!password_ok("Abcccdefg12", 10, false)); // 3 identical in a row
        assert!(password_ok("Abccdefg12!", 10, false));
        assert!(!password_ok("Abccdefg12!", 12, false), "a longer minimum");
        assert!(password_ok("Abccdefg12!", 11, false));
        assert!(
            password_ok("xB3!abc9!qZ", 10, false),
            "sequences pass unless blocked"
        );
        assert!(!password_ok("xB3!abc9!qZ", 10, true), "abc");
        assert!(!password_ok("xB3!CbA9!qZ", 10, true), "CbA");
        assert!(!password_ok("xB3!k321!qZ", 10, true), "321");
        assert!(password_ok("xB3!ab!c9qZ", 10, true), "a symbol breaks it");
        assert!(password_has_personal_info(
            "xxJohn.Doe!1",
            &["", "john.doe"]
        ));
        assert!(
            !password_has_personal_info("xxJohnDoe!1", &["john.doe"]),
            "the local part is taken whole"
        );
        assert!(!password_has_personal_info("Abccdefg12!", &["", "zed"]));
    }

    #[test]
    fn query_checks() {
        let allowed = [
            ("email", QTy::Str),
            ("page", QTy::Int { min: 0, max: 1000 }),
        ];
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(check_query(&q(&[("email", "a")]), &allowed, &["email"]).is_ok());
        assert_eq!(
            check_query(&q(&[]), &allowed, &["email"]),
            Err("Query validation error: 'Missing required property: email'.".into())
        );
        assert!(check_query(&q(&[("email", "a"), ("page", "x")]), &allowed, &[]).is_err());
        assert!(check_query(&q(&[("zzz", "a")]), &allowed, &[]).is_err());
    }
}
