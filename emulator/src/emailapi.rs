//! A fake transactional email provider shaped like Resend's `POST /emails`:
//! bearer API key, the same payload fields, Resend-style errors
//! (`{statusCode, name, message}`), `Idempotency-Key` support. Accepted
//! messages are recorded in the outbox (`kind: "email"`), never sent.

use serde_json::{json, Map, Value};

use crate::server::{Incoming, Reply};
use crate::state::{State, IDEMPOTENCY_TTL_MS};
use crate::util;
use crate::validate::is_valid_email;

/// Content type of every email API response.
pub const EMAIL_CT: &str = "application/json";

/// Most recipients Resend accepts in `to`.
pub const MAX_RECIPIENTS: usize = 50;

/// Longest `Idempotency-Key` Resend accepts.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

const ADDRESS_FORMAT: &str =
    "The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.";

/// A Resend-style error: `{statusCode, name, message}`.
pub fn error(status: u16, name: &str, message: &str) -> Reply {
    Reply::json_with(
        status,
        &json!({"statusCode": status, "name": name, "message": message}),
        EMAIL_CT,
    )
}

fn invalid(message: &str) -> Reply {
    error(422, "validation_error", message)
}

/// The answer to a request hit by fault injection.
pub fn unavailable() -> Reply {
    error(
        503,
        "service_unavailable",
        "The service is temporarily unavailable.",
    )
}

/// Any method other than POST on `/emails`.
pub fn method_not_allowed() -> Reply {
    error(
        405,
        "method_not_allowed",
        "Method is not allowed for the requested path.",
    )
}

/// The address in `a@b.co` or `Name <a@b.co>`, if it is a valid one.
fn address(recipient: &str) -> Option<&str> {
    let r = recipient.trim();
    let addr = match (r.rfind('<'), r.strip_suffix('>')) {
        (Some(i), Some(inner)) => inner.get(i + 1..)?.trim(),
        _ => r,
    };
    is_valid_email(addr).then_some(addr)
}

/// A present, non-null field.
fn field<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

/// A `from`-like single address.
fn single_address(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Reply> {
    match field(body, key) {
        None => Ok(None),
        Some(Value::String(s)) if address(s).is_some() => Ok(Some(s.trim().to_string())),
        Some(_) => Err(invalid(&format!("Invalid `{key}` field. {ADDRESS_FORMAT}"))),
    }
}

/// A `to`-like field: a string or an array of strings, 1..=50 valid addresses.
fn address_list(body: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, Reply> {
    let items: Vec<&Value> = match field(body, key) {
        None => return Ok(None),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    if items.is_empty() {
        return Ok(None);
    }
    if items.len() > MAX_RECIPIENTS {
        return Err(invalid(&format!(
            "Too many recipients in `{key}` field. The maximum is {MAX_RECIPIENTS}."
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) if address(s).is_some() => out.push(s.trim().to_string()),
            Value::String(_) => {
                return Err(invalid(&format!("Invalid `{key}` field. {ADDRESS_FORMAT}")))
            }
            _ => {
                return Err(invalid(&format!(
                    "Invalid `{key}` field. Expected a string or an array of strings."
                )))
            }
        }
    }
    Ok(Some(out))
}

fn optional_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Reply> {
    match field(body, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(&format!(
            "Invalid `{key}` field. Expected a string."
        ))),
    }
}

/// A validated message.
struct Message {
    from: String,
    to: Vec<String>,
    subject: String,
    html: Option<String>,
    text: Option<String>,
    reply_to: Option<Vec<String>>,
    headers: Option<Value>,
    tags: Option<Value>,
}

fn validate(body: &Map<String, Value>) -> Result<Message, Reply> {
    let from = single_address(body, "from")?.ok_or_else(|| invalid("Missing `from` field."))?;
    let to = address_list(body, "to")?.ok_or_else(|| invalid("Missing `to` field."))?;
    let subject =
        optional_string(body, "subject")?.ok_or_else(|| invalid("Missing `subject` field."))?;
    let html = optional_string(body, "html")?;
    let text = optional_string(body, "text")?;
    let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if !has(&html) && !has(&text) {
        return Err(invalid("Missing `html` or `text` field."));
    }
    let reply_to = address_list(body, "reply_to")?;
    let headers = match field(body, "headers") {
        None => None,
        Some(Value::Object(m)) if m.values().all(Value::is_string) => {
            Some(Value::Object(m.clone()))
        }
        Some(_) => {
            return Err(invalid(
                "Invalid `headers` field. Expected an object with string values.",
            ))
        }
    };
    let tags = match field(body, "tags") {
        None => None,
        Some(Value::Array(items))
            if items.iter().all(|t| {
                t.get("name").is_some_and(Value::is_string)
                    && t.get("value").is_none_or(Value::is_string)
            }) =>
        {
            Some(Value::Array(items.clone()))
        }
        Some(_) => {
            return Err(invalid(
                "Invalid `tags` field. Expected an array of {\"name\", \"value\"} objects with string values.",
            ))
        }
    };
    Ok(Message {
        from,
        to,
        subject,
        html,
        text,
        reply_to,
        headers,
        tags,
    })
}

/// `POST /emails`. Fault injection has already run.
pub fn send(state: &mut State, inc: &Incoming) -> Reply {
    // API key.
    let key = inc
        .authorization
        .as_deref()
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, k)| k.trim())
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return error(
            401,
            "missing_api_key",
            "Missing API key in the authorization header.",
        );
    };
    if key != state.settings.email_api_key {
        return error(403, "invalid_api_key", "API key is invalid");
    }
    if inc.body_too_large {
        return error(413, "payload_too_large", "The request body is too large.");
    }

    // Idempotency-Key header.
    let idem = match inc.idempotency_key.as_deref().map(str::trim) {
        None => None,
        Some(k) if (1..=MAX_IDEMPOTENCY_KEY).contains(&k.len()) => Some(k.to_string()),
        Some(_) => {
            return error(
                400,
                "invalid_idempotency_key",
                "The key must be between 1-256 chars.",
            )
        }
    };

    // Payload.
    let body: Value = match serde_json::from_slice(&inc.body) {
        Ok(v) => v,
        Err(_) => return invalid("Invalid JSON body."),
    };
    let Some(body) = body.as_object() else {
        return invalid("The request body must be a JSON object.");
    };
    let msg = match validate(body) {
        Ok(m) => m,
        Err(r) => return r,
    };

    let now_ms = util::now_ms();
    if let Some(k) = &idem {
        let cutoff = now_ms.saturating_sub(IDEMPOTENCY_TTL_MS);
        state.email_idempotency.retain(|_, (_, at, _)| *at > cutoff);
        if let Some((id, _, first)) = state.email_idempotency.get(k) {
            // Resend: the same key with another payload is refused, and nothing is sent.
            if first.as_object() != Some(body) {
                return error(
                    409,
                    "invalid_idempotent_request",
                    "This idempotency key has already been used on a request that had a different payload. Retrying this request is useless without changing the idempotency key or payload.",
                );
            }
            return Reply::json_with(200, &json!({ "id": id }), EMAIL_CT);
        }
    }

    let id = util::random_uuid();
    let mut entry = Map::new();
    entry.insert("kind".into(), json!("email"));
    entry.insert("id".into(), json!(id));
    entry.insert("to".into(), json!(msg.to));
    entry.insert("from".into(), json!(msg.from));
    entry.insert("subject".into(), json!(msg.subject));
    entry.insert("html".into(), json!(msg.html));
    entry.insert("text".into(), json!(msg.text));
    if let Some(v) = msg.reply_to {
        entry.insert("reply_to".into(), json!(v));
    }
    if let Some(v) = msg.headers {
        entry.insert("headers".into(), v);
    }
    if let Some(v) = msg.tags {
        entry.insert("tags".into(), v);
    }
    if let Some(k) = &idem {
        entry.insert("idempotency_key".into(), json!(k));
        state
            .email_idempotency
            .insert(k.clone(), (id.clone(), now_ms, Value::Object(body.clone())));
    }
    entry.insert("at".into(), json!(util::rfc3339_ms(now_ms)));
    state.outbox.push(Value::Object(entry));
    Reply::json_with(200, &json!({ "id": id }), EMAIL_CT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address("a@b.co"), Some("a@b.co"));
        assert_eq!(address(" Ada <a@b.co> "), Some("a@b.co"));
        assert_eq!(address("Ada <nope>"), None);
        assert_eq!(address("Ada a@b.co>"), None);
        assert_eq!(address(""), None);
    }

    #[test]
    fn validation_messages() {
        let msg = |v: Value| match validate(v.as_object().unwrap_or(&Map::new())) {
            Ok(_) => "ok".to_string(),
            Err(r) => serde_json::from_slice::<Value>(&r.body).unwrap_or_default()["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let base = json!({"from": "a@b.co", "to": "c@d.co", "subject": "s", "text": "t"});
        assert_eq!(msg(base.clone()), "ok");
        assert_eq!(msg(json!({})), "Missing `from` field.");
        assert_eq!(
            msg(json!({"from": "a@b.co", "to": [], "subject": "s", "text": "t"})),
            "Missing `to` field."
        );
        assert_eq!(
            msg(json!({"from": "a@b.co", "to": "c@d.co", "text": "t"})),
            "Missing `subject` field."
        );
        assert_eq!(
            msg(json!({"from": "a@b.co", "to": "c@d.co", "subject": "s"})),
            "Missing `html` or `text` field."
        );
        assert!(
            msg(json!({"from": "x", "to": "c@d.co", "subject": "s", "text": "t"}))
                .starts_with("Invalid `from` field.")
        );
    }
}
