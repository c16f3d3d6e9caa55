//! Email address normalization and syntax checks (the practical subset of RFC 5321 that
//! Auth0 and mail providers accept).

/// The longest address a mail path can carry.
pub const MAX_EMAIL_LEN: usize = 254;

/// Trims and lowercases an address, then checks its syntax. Returns the normalized
/// address or a reason it is invalid.
///
/// Only ASCII is lower-cased: an address is accepted only as ASCII anyway, and Unicode
/// lower-casing would fold a few look-alikes into it (the Kelvin sign `K` into `k`) instead
/// of refusing them. It also keeps Unicode's case tables out of the bundle.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_ascii_lowercase();
    if email.is_empty() {
        return Err("email is empty");
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err("email is longer than 254 characters");
    }
    let (local, domain) = email.rsplit_once('@').ok_or("email has no @")?;
    if local.is_empty() || local.len() > 64 {
        return Err("email local part must be 1 to 64 characters");
    }
    const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
    {
        return Err("email local part has a character that is not allowed");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("email local part has a misplaced dot");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("email domain must have at least two labels");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("email domain has an empty or overlong label");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err("email domain has an invalid label");
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.len() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
        return Err("email domain has an invalid top-level label");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    fn check(input: &str, expected: Result<&str, ()>) {
        assert_eq!(
            normalize(input).map_err(|_| ()),
            expected.map(String::from),
            "{input}"
        );
    }

    #[test]
    fn accepts_and_lowercases() {
        check("Ada@Example.com", Ok("ada@example.com"));
        check(
            "  ada.lovelace+beta@mail.example.co.uk ",
            Ok("ada.lovelace+beta@mail.example.co.uk"),
        );
        check(
            "o'brien@xn--bcher-kva.example",
            Ok("o'brien@xn--bcher-kva.example"),
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada@-example.com",
            "ada@example..com",
            "ada@example.c",
            "ada@1.2.3.4",
            "ada@exa_mple.com",
            "\u{e9}@example.com",
            // The Kelvin sign lower-cases to an ASCII k; a look-alike is refused, not folded.
            "\u{212a}@example.com",
            "ada@\u{212a}.example.com",
            "ada@exam\nple.com",
        ] {
            check(bad, Err(()));
        }
        // Surrounding whitespace is trimmed.
        check("ada@example.com\n", Ok("ada@example.com"));
        let long_local = format!("{}@example.com", "a".repeat(65));
        check(&long_local, Err(()));
        let long = format!(
            "{}@{}.com",
            "a".repeat(60),
            vec!["b".repeat(60); 4].join(".")
        );
        assert!(long.len() > 254);
        check(&long, Err(()));
    }
}
