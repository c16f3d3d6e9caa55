//! Small self-contained helpers: randomness (via `getrandom`), wall-clock time,
//! RFC 3339 formatting and (partial) date parsing, percent/base64 decoding and an MD5 digest (used
//! only to build Gravatar-style picture URLs the way Auth0 does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static FALLBACK_COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// Fills `buf` with random bytes from the OS. Should the OS source ever fail,
/// falls back to a time-seeded SplitMix64 stream so that the emulator keeps
/// answering (ids only need to be unique, not secret).
pub fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    for chunk in buf.chunks_mut(8) {
        let mut z = FALLBACK_COUNTER
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(nanos);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let bytes = z.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// A uniformly distributed float in `[0, 1)`.
pub fn random_f64() -> f64 {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random string of `n` ASCII letters and digits (unbiased).
pub fn random_alnum(n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        fill_random(&mut buf);
        for &b in buf.iter() {
            // 248 = 62 * 4: reject the top values to avoid modulo bias.
            if b < 248 {
                out.push(ALNUM[(b % 62) as usize] as char);
                if out.len() == n {
                    break;
                }
            }
        }
    }
    out
}

/// `n` random bytes rendered as lowercase hex (`2 * n` characters).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes);
    hex(&bytes)
}

/// A random version 4 UUID, lowercase with dashes (`8-4-4-4-12`).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, like Auth0.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m,
        d,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        millis
    )
}

/// Current time as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    rfc3339_ms(now_ms())
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since the Unix epoch of a proleptic Gregorian date (Howard Hinnant's
/// days-from-civil, the inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `width` ASCII digits at `*i` and advances past them.
fn fixed_digits(b: &[u8], i: &mut usize, width: usize) -> Option<i64> {
    let digits = b.get(*i..*i + width)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *i += width;
    Some(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Parses an ISO 8601 / RFC 3339 date or date-time, which may stop at any
/// field: `2026`, `2026-01`, `2026-01-31`, `2026-01-31T10`, `…T10:30`,
/// `…T10:30:15`, `…T10:30:15.123`, with `Z`, `±HH:MM` or no zone (UTC) after
/// a time. Returns the first and the last epoch millisecond the value covers,
/// so `2026-01-31` spans the whole day: Elasticsearch (behind Auth0's user
/// search) fills the missing fields of a date with their lowest values for a
/// lower bound and their highest for an upper bound, and a plain date term
/// matches the whole day.
pub fn parse_instant_range(s: &str) -> Option<(i64, i64)> {
    let b = s.trim().as_bytes();
    let mut i = 0;
    let year = fixed_digits(b, &mut i, 4)?;
    // Precision reached: 0 year, 1 month, 2 day, 3 hour, 4 minute, 5 second, 6 fraction.
    let mut fields = [year, 1, 1, 0, 0, 0];
    let mut precision = 0;
    let mut frac_ms = 0i64;
    let mut frac_span = 1i64;
    let seps = [b'-', b'-', b'T', b':', b':'];
    let widths = [2, 2, 2, 2, 2];
    while precision < 5 {
        let sep = seps[precision];
        let here = b.get(i).copied();
        let ok = match sep {
            b'T' => matches!(here, Some(b'T' | b't' | b' ')),
            other => here == Some(other),
        };
        if !ok {
            break;
        }
        i += 1;
        precision += 1;
        fields[precision] = fixed_digits(b, &mut i, widths[precision - 1])?;
    }
    if precision == 5 && matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = &b[start..i];
        if digits.is_empty() {
            return None;
        }
        // Milliseconds are the finest unit kept; "…:15.1" covers 100–199 ms.
        let kept = &digits[..digits.len().min(3)];
        let value = kept.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        let scale = 10i64.pow(3 - kept.len() as u32);
        frac_ms = value * scale;
        frac_span = scale;
        precision = 6;
    }
    let mut offset_ms = 0i64;
    if precision >= 3 {
        match b.get(i) {
            Some(b'Z' | b'z') => i += 1,
            Some(sign @ (b'+' | b'-')) => {
                let negative = *sign == b'-';
                i += 1;
                let hh = fixed_digits(b, &mut i, 2)?;
                if b.get(i) == Some(&b':') {
                    i += 1;
                }
                let mm = fixed_digits(b, &mut i, 2)?;
                if hh > 23 || mm > 59 {
                    return None;
                }
                offset_ms = (hh * 60 + mm) * 60_000 * if negative { -1 } else { 1 };
            }
            _ => {}
        }
    }
    if i != b.len() {
        return None;
    }
    let [y, mo, d, h, mi, sec] = fields;
    let month = u32::try_from(mo).ok().filter(|m| (1..=12).contains(m))?;
    let day = u32::try_from(d)
        .ok()
        .filter(|d| (1..=days_in_month(y, month)).contains(d))?;
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let start_day = days_from_civil(y, month, day);
    let start = ((start_day * 86_400 + h * 3600 + mi * 60 + sec) * 1000 + frac_ms) - offset_ms;
    let span = match precision {
        0 => (days_from_civil(y + 1, 1, 1) - start_day) * 86_400_000,
        1 => i64::from(days_in_month(y, month)) * 86_400_000,
        2 => 86_400_000,
        3 => 3_600_000,
        4 => 60_000,
        5 => 1000,
        _ => frac_span,
    };
    Some((start, start + span - 1))
}

/// The epoch millisecond of an RFC 3339 timestamp (the start of a partial
/// date); see [`parse_instant_range`].
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    parse_instant_range(s).map(|(start, _)| start)
}

/// Percent-decodes a URL path segment (`+` is kept literally). Invalid
/// escapes are kept as they are; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{:02X}", b));
        }
    }
    out
}

/// Decodes standard base64 (padding optional). `None` on invalid input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// MD5 digest (RFC 1321). Only used for Gravatar URLs, never for security.
pub fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut a0: u32 = 0x6745_2301;
    let mut b0: u32 = 0xefcd_ab89;
    let mut c0: u32 = 0x98ba_dcfe;
    let mut d0: u32 = 0x1032_5476;

    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());

    for chunk in msg.chunks(64) {
        let mut m = [0u32; 16];
        for (i, w) in m.iter_mut().enumerate() {
            *w = u32::from_le_bytes([
                chunk[i * 4],
                chunk[i * 4 + 1],
                chunk[i * 4 + 2],
                chunk[i * 4 + 3],
            ]);
        }
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a0.to_le_bytes());
    out[4..8].copy_from_slice(&b0.to_le_bytes());
    out[8..12].copy_from_slice(&c0.to_le_bytes());
    out[12..].copy_from_slice(&d0.to_le_bytes());
    out
}

/// The picture URL Auth0 assigns to a database user without one:
/// a Gravatar URL falling back to an initials avatar on Auth0's CDN.
pub fn gravatar_url(email: &str) -> String {
    let hash = hex(&md5(email.trim().to_lowercase().as_bytes()));
    let initials: String = email
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(2)
        .collect::<String>()
        .to_lowercase();
    let initials = if initials.is_empty() {
        "un".to_string()
    } else {
        initials
    };
    let fallback = format!("https://cdn.auth0.com/avatars/{initials}.png");
    format!(
        "https://s.gravatar.com/avatar/{hash}?s=480&r=pg&d={}",
        percent_encode(&fallback)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_known_vectors() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(&md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn gravatar_matches_recording_shape() {
        let url = gravatar_url("chuck@example.com");
        assert!(url.starts_with("https://s.gravatar.com/avatar/"));
        assert!(url.ends_with("?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2Fch.png"));
    }

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_674_673_226_187), "2023-01-25T19:00:26.187Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn instant_ranges() {
        let ms = |s: &str| parse_rfc3339_ms(s);
        assert_eq!(ms("2023-01-25T19:00:26.187Z"), Some(1_674_673_226_187));
        assert_eq!(ms("2023-01-25T20:00:26.187+01:00"), Some(1_674_673_226_187));
        assert_eq!(ms("2023-01-25T18:30:26.187-00:30"), Some(1_674_673_226_187));
        assert_eq!(ms("1970-01-01"), Some(0));
        let day = parse_instant_range("2026-01-31").unwrap();
        assert_eq!(day.1 - day.0, 86_400_000 - 1);
        assert_eq!(rfc3339_ms(day.0 as u64), "2026-01-31T00:00:00.000Z");
        let feb = parse_instant_range("2024-02").unwrap();
        assert_eq!(rfc3339_ms(feb.1 as u64), "2024-02-29T23:59:59.999Z");
        let year = parse_instant_range("2025").unwrap();
        assert_eq!(rfc3339_ms(year.1 as u64), "2025-12-31T23:59:59.999Z");
        let tenth = parse_instant_range("2026-01-01T00:00:00.1Z").unwrap();
        assert_eq!((tenth.0 % 1000, tenth.1 % 1000), (100, 199));
        assert_eq!(
            parse_instant_range("2026-01-01T10:30Z").map(|(a, b)| b - a),
            Some(59_999)
        );
        for bad in [
            "",
            "26-01-01",
            "2026-13-01",
            "2026-02-30",
            "2026-01-01T25:00",
            "2026-01-01Z",
            "2026-01-01T10:00:00.Z",
            "2026-01-01T10:00:00+0",
            "yesterday",
            "2026-01-01T10:00:00Zjunk",
        ] {
            assert_eq!(parse_instant_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("auth0%7Cabc"), "auth0|abc");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("x%41"), "xA");
    }

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("aWQ6c2VjcmV0").as_deref(),
            Some(&b"id:secret"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert!(base64_decode("***").is_none());
    }

    #[test]
    fn uuid_shape() {
        let u = random_uuid();
        let parts: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12]);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, random_uuid());
    }

    #[test]
    fn alnum_length_and_charset() {
        let s = random_alnum(32);
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s, random_alnum(32));
    }
}
