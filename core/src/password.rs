//! Throwaway passwords for invited users. Nobody ever types one: the invitee sets their own
//! through the password-change ticket. They only have to be unguessable and pass any password
//! policy an Auth0 connection can have: the legacy "excellent" level (lower, upper, digit and
//! symbol, no more than two identical characters in a row) and the Flexible Password Policy's
//! strictest settings (a minimum length of up to 72, which is also the most a password may
//! be; sequential characters blocked), with the "Personal Data" option on.

use crate::platform::{random_below, Rng};

/// Length of generated passwords: the Flexible Password Policy's largest minimum and its
/// maximum, 72 bytes (bcrypt's). 40 failed a connection whose minimum was set above it.
pub const PASSWORD_LEN: usize = 72;
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const SYMBOLS: &str = "!@#$%^&*()-_=+[]{}:,.?~";
/// Redraws allowed before giving up (a draw fails the policy about one time in ten, most
/// often for a sequence like `abc` or `321`).
const MAX_DRAWS: usize = 64;

/// Draws a password of [`PASSWORD_LEN`] characters, uniformly over an 85-character
/// alphabet (about 256 bits), redrawn until [`meets_policy`] holds and it contains none of
/// `personal` (ignoring ASCII case).
///
/// `personal` is what Auth0's "Personal Data" password option keeps out of a password: the
/// part of the email before the @ (whole) and the name, nickname and the like. With that
/// option on, a random draw held a one-letter local part nearly two times in three, and a
/// two-letter one about one time in fifty, and Auth0 refused the account with 400
/// `PasswordNoUserInfoError` (found when a benchmark's own throwaway passwords failed a
/// policy). A one-character value is left out of the alphabet (both cases), since redrawing
/// against several would take many draws; a longer one is redrawn against.
pub fn generate(rng: &impl Rng, personal: &[&str]) -> Result<String, String> {
    // One draw from the host per 256 bytes instead of one per character: on Workers every
    // draw is a call into JavaScript (`crypto.getRandomValues`).
    let rng = Buffered {
        inner: rng,
        buf: std::cell::RefCell::new((Vec::new(), 0)),
    };
    let rng = &rng;
    let single: Vec<u8> = personal
        .iter()
        .filter_map(|t| match t.as_bytes() {
            [b] => Some(b.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let alphabet: Vec<char> = [LOWER, UPPER, DIGITS, SYMBOLS]
        .concat()
        .chars()
        .filter(|c| !single.contains(&(*c as u8).to_ascii_lowercase()))
        .collect();
    // The longer values, lowered once for every draw's check.
    let longer: Vec<String> = personal
        .iter()
        .filter(|t| t.len() > 1)
        .map(|t| t.to_ascii_lowercase())
        .collect();
    for _ in 0..MAX_DRAWS {
        let mut pw = String::with_capacity(PASSWORD_LEN);
        for _ in 0..PASSWORD_LEN {
            pw.push(alphabet[random_below(rng, alphabet.len() as u32)? as usize]);
        }
        if meets_policy(&pw) && !holds_any(&pw, &longer) {
            return Ok(pw);
        }
    }
    Err("random source produced no policy-compliant password".into())
}

/// Random bytes drawn from `inner` 256 at a time.
struct Buffered<'a, R: Rng> {
    inner: &'a R,
    /// Bytes not handed out yet, and how many of them were.
    buf: std::cell::RefCell<(Vec<u8>, usize)>,
}

impl<R: Rng> Rng for Buffered<'_, R> {
    fn fill(&self, out: &mut [u8]) -> Result<(), String> {
        let mut state = self.buf.borrow_mut();
        for b in out {
            if state.1 >= state.0.len() {
                state.0 = vec![0u8; 256];
                self.inner.fill(&mut state.0)?;
                state.1 = 0;
            }
            *b = state.0[state.1];
            state.1 += 1;
        }
        Ok(())
    }
}

/// Whether `pw` contains any of `lowered` (non-empty, ASCII-lowercased terms), ignoring ASCII
/// case (a password is ASCII, so a term with other characters can't be in it).
fn holds_any(pw: &str, lowered: &[String]) -> bool {
    let pw = pw.to_ascii_lowercase();
    lowered.iter().any(|t| pw.contains(t.as_str()))
}

/// Auth0's strictest settings, minus the dictionary check: at least 10 characters, all four
/// character classes, no character three times in a row, and no three sequential characters
/// (see [`sequential`]).
pub fn meets_policy(pw: &str) -> bool {
    let has = |set: &str| pw.chars().any(|c| set.contains(c));
    let bytes = pw.as_bytes();
    bytes.len() >= 10
        && has(LOWER)
        && has(UPPER)
        && has(DIGITS)
        && has(SYMBOLS)
        && !bytes
            .windows(3)
            .any(|w| (w[0] == w[1] && w[1] == w[2]) || sequential(w))
}

/// Three letters or digits in a row, up or down, ignoring case (`abc`, `CbA`, `789`, `321`):
/// what the Flexible Password Policy's "sequential characters" setting blocks, read broadly
/// (Auth0 does not publish its exact rule).
fn sequential(w: &[u8]) -> bool {
    let [a, b, c] = [w[0], w[1], w[2]].map(|x| x.to_ascii_lowercase());
    [a, b, c].iter().all(u8::is_ascii_alphanumeric)
        && ((b == a.wrapping_add(1) && c == b.wrapping_add(1))
            || (a == b.wrapping_add(1) && b == c.wrapping_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A deterministic xorshift generator standing in for getrandom.
    struct XorShift(Cell<u64>);
    impl Rng for XorShift {
        fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
            for b in buf {
                let mut x = self.0.get();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.0.set(x);
                *b = (x >> 24) as u8;
            }
            Ok(())
        }
    }

    /// A source that always returns the same byte: every draw is "aaaa…".
    struct Stuck;
    impl Rng for Stuck {
        fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
            buf.fill(0);
            Ok(())
        }
    }

    #[test]
    fn policy_holds_over_many_draws() {
        let rng = XorShift(Cell::new(0x9E37_79B9_7F4A_7C15));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5_000 {
            let pw = generate(&rng, &[]).expect("password");
            assert_eq!(pw.chars().count(), PASSWORD_LEN);
            assert!(meets_policy(&pw), "{pw}");
            assert!(seen.insert(pw), "duplicate password");
        }
    }

    #[test]
    fn policy_checks() {
        assert!(meets_policy("aB3!aB3!aB3!"));
        assert!(!meets_policy("aB3!"), "too short");
        assert!(!meets_policy("abcdefgh1234!!"), "no upper");
        assert!(!meets_policy("ABCDEFGH1234!!"), "no lower");
        assert!(!meets_policy("ABCDefgh!!!?"), "no digit");
        assert!(!meets_policy("ABCDefgh1234"), "no symbol");
        assert!(!meets_policy("aB3!aaa3!aB3!"), "three in a row");
        assert!(!meets_policy("xB3!abc9!qZ7"), "abc");
        assert!(!meets_policy("xB3!CbA9!qZ7"), "CbA, ignoring case");
        assert!(!meets_policy("xB3!k789!qZ7"), "789");
        assert!(!meets_policy("xB3!k321!qZ7"), "321");
        assert!(meets_policy("xB3!ab!c9qZ7"), "a symbol breaks a sequence");
        assert!(
            meets_policy("xB3!9ab!qZ7k"),
            "a digit and letters are no sequence"
        );
    }

    #[test]
    fn broken_random_source_is_an_error_not_a_weak_password() {
        assert!(generate(&Stuck, &[]).is_err());
    }

    #[test]
    fn personal_data_is_kept_out_ignoring_case() {
        let rng = XorShift(Cell::new(0x2545_F491_4F6C_DD1D));
        // A one-letter value is out of the alphabet (it was in about two draws in three);
        // none holds `a` or `A`, nor the name's `Q7`, and `!` and `7` alone are out too.
        let mut with_b = 0;
        for _ in 0..500 {
            let pw = generate(&rng, &["a", "", "q7", "!", "7"]).expect("password");
            assert!(meets_policy(&pw), "{pw}");
            assert!(!pw.contains(['a', 'A', '!', '7']), "{pw}");
            assert!(!pw.to_ascii_lowercase().contains("q7"), "{pw}");
            with_b += usize::from(pw.contains(['b', 'B']));
        }
        assert!(with_b > 0, "the other letters are still drawn");
        assert!(holds_any("xxJohn.Doe!1", &["john.doe".into()]));
        assert!(!holds_any("xxJohnDoe!1", &["john.doe".into()]));
    }
}
