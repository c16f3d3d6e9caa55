//! The user search query language of `GET /api/v2/users?q=`: a subset of
//! Lucene's query string syntax, parsed by a small recursive-descent parser
//! and evaluated against a user's Management API JSON ([`User::to_json`]).
//!
//! Auth0's search engine v3 is Elasticsearch's `query_string` query, which
//! uses Lucene's *classic* query parser. That parser has no operator
//! precedence: `AND`, `OR`, `NOT`, `+` and `-` mark each clause of a group as
//! required, optional or prohibited, and juxtaposition means `OR` (the
//! default operator). This module copies that clause model rather than
//! inventing a precedence, so `a -b` keeps Lucene's meaning ("a, but not b")
//! and `a OR b AND c` means `+b +c a` as it does in Auth0.
//!
//! Supported (everything else is a 400 `invalid_query_string`):
//!
//! - `field:value`, `field:"quoted value"`: exact match of the whole value
//!   (Auth0 v3 does not tokenize), case-insensitive for the normalized fields
//!   `email`, `name`, `given_name`, `family_name`, `nickname` (and the derived
//!   `email.domain`), case-sensitive for every other field, as Auth0 documents
//! - `field:*` and `_exists_:field`: the field has a value
//! - wildcards `*` and `?` in unquoted values (`name:jo*`); a value that
//!   starts with a wildcard needs 3 literal characters (Auth0's rule)
//! - ranges `field:[a TO b]` (inclusive), `{a TO b}` (exclusive), mixed
//!   `[a TO b}`, `*` as an open end, bare or quoted bounds, and the
//!   `field:>=a` / `>a` / `<=a` / `<a` shorthands
//! - `AND`/`&&`, `OR`/`||`, `NOT`/`!`/`-`, `+`, parentheses, and field groups
//!   `field:(a OR b)`
//!
//! [`User::to_json`]: crate::state::User::to_json

use serde_json::Value;

use crate::util;

/// Deepest parenthesis nesting accepted (keeps the recursion bounded).
const MAX_DEPTH: usize = 32;

/// How a clause takes part in its group (Lucene's `BooleanClause.Occur`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occur {
    Must,
    Should,
    MustNot,
}

/// How a field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string; `ci` for Auth0's case-insensitive normalized fields.
    Text {
        ci: bool,
    },
    Bool,
    Num,
    /// An RFC 3339 timestamp, compared as an instant.
    Date,
    /// A value under `app_metadata` / `user_metadata`, compared by the type
    /// of the stored value (`user` for `user_metadata`, where Auth0 allows
    /// neither ranges nor wildcards).
    Meta {
        user: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    path: String,
    kind: Kind,
}

/// A typed value to compare with.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Text(String),
    Bool(bool),
    Num(f64),
    /// First and last millisecond the written date covers (a plain date
    /// covers its whole day).
    Date(i64, i64),
    /// Metadata: kept as written, typed against each stored value.
    Raw(String),
}

/// One character of a wildcard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    Lit(char),
    /// `*`: any run of characters.
    Star,
    /// `?`: exactly one character.
    One,
}

/// A range bound: the value and whether it is inclusive.
type Bound = Option<(Val, bool)>;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Group(Vec<(Occur, Node)>),
    Exists(Field),
    Term(Field, Val),
    Wildcard(Field, Vec<Pat>),
    Range(Field, Bound, Bound),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query(Node);

impl Query {
    /// Parses `q`. The error is a human-readable reason.
    pub fn parse(q: &str) -> Result<Query, String> {
        let mut p = Parser {
            s: q.chars().collect(),
            pos: 0,
        };
        let node = p.query(None, 0)?;
        p.skip_ws();
        match p.peek() {
            None => Ok(Query(node)),
            Some(')') => Err(p.error("unbalanced ')'")),
            Some(c) => Err(p.error(&format!("unexpected '{c}'"))),
        }
    }

    /// Whether the user (as `User::to_json` renders it) matches.
    pub fn matches(&self, user: &Value) -> bool {
        self.0.matches(user)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conj {
    None,
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    None,
    Required,
    Prohibited,
}

/// Lucene's `QueryParser.addClause` with the default operator OR: `AND`
/// makes the previous clause required too (unless prohibited), `+` and a
/// clause after `AND` are required, `-`/`NOT` are prohibited, and anything
/// else is optional.
fn add_clause(clauses: &mut Vec<(Occur, Node)>, conj: Conj, modifier: Modifier, node: Node) {
    if conj == Conj::And {
        if let Some(last) = clauses.last_mut() {
            if last.0 != Occur::MustNot {
                last.0 = Occur::Must;
            }
        }
    }
    let prohibited = modifier == Modifier::Prohibited;
    let required = modifier == Modifier::Required || (conj == Conj::And && !prohibited);
    let occur = if prohibited {
        Occur::MustNot
    } else if required {
        Occur::Must
    } else {
        Occur::Should
    };
    clauses.push((occur, node));
}

/// A lexed unquoted value: its text (escapes resolved) and its pattern.
struct Token {
    text: String,
    pattern: Vec<Pat>,
    wild: bool,
}

struct Parser {
    s: Vec<char>,
    pos: usize,
}

/// Characters that end an unquoted term (besides whitespace). `*` and `?`
/// are wildcards inside a term; `+`, `-` and `!` are only operators at the
/// start of a clause; `\` escapes the next character.
fn ends_term(c: char) -> bool {
    c.is_whitespace() || "():\"[]{}^~/".contains(c)
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at character {}", self.pos + 1)
    }

    /// The operator keyword (`AND`, `&&`, `OR`, `||`, `NOT`) starting here,
    /// if any, and its length. A keyword must stand alone: `ANDROID` is a term.
    fn keyword(&self) -> Option<(&'static str, usize)> {
        let end = self.s[self.pos..]
            .iter()
            .position(|c| c.is_whitespace() || *c == '(' || *c == ')')
            .map_or(self.s.len(), |n| self.pos + n);
        let word: String = self.s[self.pos..end].iter().collect();
        let kw = match word.as_str() {
            "AND" | "&&" => "AND",
            "OR" | "||" => "OR",
            "NOT" => "NOT",
            _ => return None,
        };
        Some((kw, end - self.pos))
    }

    /// A sequence of clauses up to `)` or the end; `field` is the default
    /// field inside a field group such as `name:(a OR b)`.
    fn query(&mut self, field: Option<&Field>, depth: usize) -> Result<Node, String> {
        let mut clauses: Vec<(Occur, Node)> = Vec::new();
        loop {
            self.skip_ws();
            if matches!(self.peek(), None | Some(')')) {
                break;
            }
            let mut conj = Conj::None;
            if let Some((kw @ ("AND" | "OR"), len)) = self.keyword() {
                if clauses.is_empty() {
                    return Err(self.error(&format!("'{kw}' needs a clause before it")));
                }
                conj = if kw == "AND" { Conj::And } else { Conj::Or };
                self.pos += len;
                self.skip_ws();
            }
            let mut modifier = Modifier::None;
            match self.peek() {
                Some('+') => {
                    self.pos += 1;
                    modifier = Modifier::Required;
                }
                Some('-' | '!') => {
                    self.pos += 1;
                    modifier = Modifier::Prohibited;
                }
                _ => {
                    if let Some(("NOT", len)) = self.keyword() {
                        self.pos += len;
                        modifier = Modifier::Prohibited;
                    }
                }
            }
            self.skip_ws();
            if matches!(self.peek(), None | Some(')')) {
                return Err(self.error("expected a clause"));
            }
            let node = self.clause(field, depth)?;
            add_clause(&mut clauses, conj, modifier, node);
        }
        match clauses.len() {
            0 => Err(self.error("empty query")),
            1 if clauses[0].0 != Occur::MustNot => Ok(clauses.remove(0).1),
            _ => Ok(Node::Group(clauses)),
        }
    }

    /// One clause: a parenthesised group, `_exists_:f`, `field:…`, or (inside
    /// a field group) a bare value.
    fn clause(&mut self, field: Option<&Field>, depth: usize) -> Result<Node, String> {
        match self.peek() {
            Some('(') => return self.group(field, depth),
            Some('"' | '[' | '{') => {
                let Some(f) = field else {
                    return Err(self.error("a value needs a field, as in field:value"));
                };
                return self.value(f, depth);
            }
            _ => {}
        }
        if let Some((kw, _)) = self.keyword() {
            return Err(self.error(&format!("unexpected '{kw}'")));
        }
        let start = self.pos;
        let token = self.token()?;
        if self.peek() == Some(':') {
            if token.wild {
                self.pos = start;
                return Err(self.error("a field name cannot hold wildcards"));
            }
            self.pos += 1;
            self.skip_ws();
            if token.text == "_exists_" {
                let at = self.pos;
                let name = self.token()?;
                return lookup_field(&name.text)
                    .map(Node::Exists)
                    .map_err(|m| format!("{m} at character {}", at + 1));
            }
            let f =
                lookup_field(&token.text).map_err(|m| format!("{m} at character {}", start + 1))?;
            return self.value(&f, depth);
        }
        match field {
            Some(f) => {
                self.pos = start;
                self.value(f, depth)
            }
            None => {
                self.pos = start;
                Err(self.error(&format!(
                    "'{}' has no field: the emulator only supports field:value terms",
                    token.text
                )))
            }
        }
    }

    fn group(&mut self, field: Option<&Field>, depth: usize) -> Result<Node, String> {
        if depth >= MAX_DEPTH {
            return Err(self.error("parentheses nested too deeply"));
        }
        self.pos += 1;
        let node = self.query(field, depth + 1)?;
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err(self.error("missing ')'"));
        }
        self.pos += 1;
        self.no_suffix()?;
        Ok(node)
    }

    /// What follows `field:`: a group, a quoted value, a range, a comparison
    /// or an unquoted (possibly wildcard) value.
    fn value(&mut self, f: &Field, depth: usize) -> Result<Node, String> {
        let node = match self.peek() {
            Some('(') => return self.group(Some(f), depth),
            Some('"') => {
                let at = self.pos;
                let text = self.quoted()?;
                term(f, &text).map_err(|m| format!("{m} at character {}", at + 1))?
            }
            Some('[' | '{') => self.range(f)?,
            Some('>' | '<') => self.comparison(f)?,
            None => return Err(self.error("expected a value")),
            Some(c) if ends_term(c) => return Err(self.error(&format!("unexpected '{c}'"))),
            _ => {
                if let Some((kw, _)) = self.keyword() {
                    return Err(self.error(&format!("unexpected '{kw}'")));
                }
                let at = self.pos;
                let token = self.token()?;
                let node = if token.pattern == [Pat::Star] {
                    Ok(Node::Exists(f.clone()))
                } else if token.wild {
                    wildcard(f, token.pattern)
                } else {
                    term(f, &token.text)
                };
                node.map_err(|m| format!("{m} at character {}", at + 1))?
            }
        };
        self.no_suffix()?;
        Ok(node)
    }

    /// Rejects Lucene's boosts, fuzzy and proximity suffixes and regular
    /// expressions, which the emulator does not model.
    fn no_suffix(&self) -> Result<(), String> {
        match self.peek() {
            Some('^') => Err(self.error("boosts (^) are not supported")),
            Some('~') => Err(self.error("fuzzy and proximity searches (~) are not supported")),
            Some('/') => Err(self.error("regular expressions are not supported")),
            Some(':') => {
                Err(self
                    .error("unexpected ':' (quote values that contain ':', such as timestamps)"))
            }
            _ => Ok(()),
        }
    }

    /// An unquoted term: escapes resolved, `*` / `?` recorded as wildcards.
    fn token(&mut self) -> Result<Token, String> {
        let mut t = Token {
            text: String::new(),
            pattern: Vec::new(),
            wild: false,
        };
        while let Some(c) = self.peek() {
            if ends_term(c) && c != '\\' {
                break;
            }
            self.pos += 1;
            match c {
                '\\' => {
                    let Some(escaped) = self.peek() else {
                        return Err(self.error("dangling '\\'"));
                    };
                    self.pos += 1;
                    t.text.push(escaped);
                    t.pattern.push(Pat::Lit(escaped));
                }
                '*' => {
                    t.text.push(c);
                    t.pattern.push(Pat::Star);
                    t.wild = true;
                }
                '?' => {
                    t.text.push(c);
                    t.pattern.push(Pat::One);
                    t.wild = true;
                }
                _ => {
                    t.text.push(c);
                    t.pattern.push(Pat::Lit(c));
                }
            }
        }
        if t.text.is_empty() {
            return Err(match self.peek() {
                Some(c) => self.error(&format!("unexpected '{c}'")),
                None => self.error("expected a term"),
            });
        }
        Ok(t)
    }

    /// A `"…"` string; `\"` and `\\` are escapes. Wildcards are literal.
    fn quoted(&mut self) -> Result<String, String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = open;
                    return Err(self.error("unterminated quote"));
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        None => return Err(self.error("dangling '\\'")),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `[a TO b]`, `{a TO b}` or mixed; `*` is an open end.
    fn range(&mut self, f: &Field) -> Result<Node, String> {
        let open_at = self.pos;
        let lower_inclusive = self.peek() == Some('[');
        self.pos += 1;
        self.skip_ws();
        let lower = self.bound()?;
        self.skip_ws();
        let to_end = self.pos + 2;
        let is_to = self.s.get(self.pos..to_end) == Some(&['T', 'O'][..])
            && self
                .s
                .get(to_end)
                .is_some_and(|c| c.is_whitespace() || *c == ']' || *c == '}');
        if !is_to {
            return Err(self.error("expected 'TO' in range"));
        }
        self.pos = to_end;
        self.skip_ws();
        let upper = self.bound()?;
        self.skip_ws();
        let upper_inclusive = match self.peek() {
            Some(']') => true,
            Some('}') => false,
            _ => return Err(self.error("expected ']' or '}' to close the range")),
        };
        self.pos += 1;
        let at = |m: String| format!("{m} at character {}", open_at + 1);
        range(
            f,
            lower.map(|v| (v, lower_inclusive)),
            upper.map(|v| (v, upper_inclusive)),
        )
        .map_err(at)
    }

    /// A range bound: quoted, or a run of characters up to whitespace, `]`
    /// or `}` (so timestamps with `:` work unquoted). `None` for `*`.
    fn bound(&mut self) -> Result<Option<String>, String> {
        if self.peek() == Some('"') {
            return self.quoted().map(Some);
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && c != ']' && c != '}')
        {
            self.pos += 1;
        }
        let text: String = self.s[start..self.pos].iter().collect();
        match text.as_str() {
            "" => Err(self.error("expected a range bound")),
            "*" => Ok(None),
            _ => Ok(Some(text)),
        }
    }

    /// `field:>=v`, `>v`, `<=v`, `<v` (Elasticsearch's shorthand ranges).
    fn comparison(&mut self, f: &Field) -> Result<Node, String> {
        let at = self.pos;
        let greater = self.peek() == Some('>');
        self.pos += 1;
        let inclusive = self.peek() == Some('=');
        if inclusive {
            self.pos += 1;
        }
        let text = match self.peek() {
            Some('"') => self.quoted()?,
            _ => {
                let t = self.token()?;
                if t.wild {
                    return Err(self.error("a comparison value cannot hold wildcards"));
                }
                t.text
            }
        };
        let bound = Some((text, inclusive));
        let (lower, upper) = if greater {
            (bound, None)
        } else {
            (None, bound)
        };
        range(f, lower, upper).map_err(|m| format!("{m} at character {}", at + 1))
    }
}

/// The searchable fields and how each compares. Unknown fields are an error
/// rather than an empty result, so that a typo does not look like "no users".
fn lookup_field(name: &str) -> Result<Field, String> {
    let kind = match name {
        "email" | "name" | "given_name" | "family_name" | "nickname" | "email.domain" => {
            Kind::Text { ci: true }
        }
        "user_id"
        | "username"
        | "phone_number"
        | "last_ip"
        | "identities.connection"
        | "identities.provider"
        | "identities.user_id" => Kind::Text { ci: false },
        "email_verified" | "blocked" | "phone_verified" | "identities.isSocial" => Kind::Bool,
        "logins_count" => Kind::Num,
        "created_at" | "updated_at" | "last_login" => Kind::Date,
        _ => {
            let meta = |prefix: &str| {
                name == prefix
                    || name
                        .strip_prefix(prefix)
                        .and_then(|r| r.strip_prefix('.'))
                        .is_some_and(|r| !r.is_empty() && r.split('.').all(|s| !s.is_empty()))
            };
            if meta("app_metadata") {
                Kind::Meta { user: false }
            } else if meta("user_metadata") {
                Kind::Meta { user: true }
            } else {
                return Err(format!("unsupported field '{name}'"));
            }
        }
    };
    Ok(Field {
        path: name.to_string(),
        kind,
    })
}

/// Types a value written for field `f`.
fn typed(f: &Field, text: &str) -> Result<Val, String> {
    Ok(match f.kind {
        Kind::Text { ci: true } => Val::Text(text.to_lowercase()),
        Kind::Text { ci: false } => Val::Text(text.to_string()),
        Kind::Bool => match text {
            "true" => Val::Bool(true),
            "false" => Val::Bool(false),
            _ => return Err(format!("'{text}' is not a boolean value for {}", f.path)),
        },
        Kind::Num => Val::Num(
            number(text).ok_or_else(|| format!("'{text}' is not a number for {}", f.path))?,
        ),
        Kind::Date => {
            let (a, b) = util::parse_instant_range(text)
                .ok_or_else(|| format!("'{text}' is not a date for {}", f.path))?;
            Val::Date(a, b)
        }
        Kind::Meta { .. } => Val::Raw(text.to_string()),
    })
}

fn number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn term(f: &Field, text: &str) -> Result<Node, String> {
    Ok(Node::Term(f.clone(), typed(f, text)?))
}

fn wildcard(f: &Field, pattern: Vec<Pat>) -> Result<Node, String> {
    match f.kind {
        Kind::Text { .. } | Kind::Meta { user: false } => {}
        Kind::Meta { user: true } => {
            return Err("wildcard searches are not available on user_metadata fields".into())
        }
        _ => return Err(format!("wildcard searches are not available on {}", f.path)),
    }
    let literals = pattern.iter().filter(|p| matches!(p, Pat::Lit(_))).count();
    if !matches!(pattern.first(), Some(Pat::Lit(_))) && literals < 3 {
        return Err("a value that starts with a wildcard needs at least 3 other characters".into());
    }
    let pattern = match f.kind {
        Kind::Text { ci: true } => pattern
            .into_iter()
            .flat_map(|p| match p {
                Pat::Lit(c) => c.to_lowercase().map(Pat::Lit).collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect(),
        _ => pattern,
    };
    Ok(Node::Wildcard(f.clone(), pattern))
}

fn range(
    f: &Field,
    lower: Option<(String, bool)>,
    upper: Option<(String, bool)>,
) -> Result<Node, String> {
    match f.kind {
        Kind::Bool => return Err(format!("range searches are not available on {}", f.path)),
        Kind::Meta { user: true } => {
            return Err("range searches are not available on user_metadata fields".into())
        }
        _ => {}
    }
    if lower.is_none() && upper.is_none() {
        return Ok(Node::Exists(f.clone()));
    }
    let bound = |b: Option<(String, bool)>| -> Result<Bound, String> {
        b.map(|(text, inclusive)| typed(f, &text).map(|v| (v, inclusive)))
            .transpose()
    };
    Ok(Node::Range(f.clone(), bound(lower)?, bound(upper)?))
}

/// The indexed values of `path` in `user`: arrays are looked through at
/// every level ("ignore the array level", as Auth0 documents for metadata),
/// and `null`, empty arrays and empty objects are not indexed.
fn values(user: &Value, path: &str) -> Vec<Value> {
    if path == "email.domain" {
        return user
            .get("email")
            .and_then(Value::as_str)
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| vec![Value::String(d.to_string())])
            .unwrap_or_default();
    }
    let segs: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    collect(user, &segs, &mut out);
    out
}

fn collect(v: &Value, segs: &[&str], out: &mut Vec<Value>) {
    match v {
        Value::Null => {}
        Value::Array(items) => items.iter().for_each(|i| collect(i, segs, out)),
        Value::Object(m) => match segs.split_first() {
            Some((head, rest)) => {
                if let Some(child) = m.get(*head) {
                    collect(child, rest, out);
                }
            }
            None if !m.is_empty() => out.push(v.clone()),
            None => {}
        },
        scalar => {
            if segs.is_empty() {
                out.push(scalar.clone());
            }
        }
    }
}

/// Glob match of `pattern` against `text`.
fn glob(pattern: &[Pat], text: &[char]) -> bool {
    // Iterative matcher with backtracking to the last `*`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Pat::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Pat::One) => {
                p += 1;
                t += 1;
            }
            Some(Pat::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|x| *x == Pat::Star)
}

/// Whether a stored value `v` of field kind `kind` equals the query value.
fn equals(kind: Kind, want: &Val, v: &Value) -> bool {
    match (want, v) {
        (Val::Text(w), Value::String(s)) => match kind {
            Kind::Text { ci: true } => s.to_lowercase() == *w,
            _ => s == w,
        },
        (Val::Bool(w), Value::Bool(b)) => w == b,
        (Val::Num(w), Value::Number(n)) => n.as_f64() == Some(*w),
        (Val::Date(a, b), Value::String(s)) => {
            util::parse_rfc3339_ms(s).is_some_and(|t| (*a..=*b).contains(&t))
        }
        (Val::Raw(w), Value::Bool(b)) => w == if *b { "true" } else { "false" },
        (Val::Raw(w), Value::Number(n)) => number(w).is_some_and(|w| n.as_f64() == Some(w)),
        (Val::Raw(w), Value::String(s)) => s == w,
        _ => false,
    }
}

/// Whether a stored value lies between the bounds. A date bound covers a
/// span (a plain date is a whole day): an inclusive lower bound takes its
/// start, an exclusive one its end, and the other way round for the upper
/// bound, which is how Elasticsearch rounds dates in ranges.
fn in_range(kind: Kind, v: &Value, lower: &Bound, upper: &Bound) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let ci = kind == Kind::Text { ci: true };
    let above = |b: &Bound| -> bool {
        let Some((val, inclusive)) = b else {
            return true;
        };
        let ord = match (val, v) {
            (Val::Date(start, end), Value::String(s)) => {
                let Some(t) = util::parse_rfc3339_ms(s) else {
                    return false;
                };
                // ≥ start of the span; > end of the span.
                return if *inclusive { t >= *start } else { t > *end };
            }
            _ => compare(val, v, ci),
        };
        match ord {
            Some(Greater) => true,
            Some(Equal) => *inclusive,
            _ => false,
        }
    };
    let below = |b: &Bound| -> bool {
        let Some((val, inclusive)) = b else {
            return true;
        };
        let ord = match (val, v) {
            (Val::Date(start, end), Value::String(s)) => {
                let Some(t) = util::parse_rfc3339_ms(s) else {
                    return false;
                };
                // ≤ end of the span; < start of the span.
                return if *inclusive { t <= *end } else { t < *start };
            }
            _ => compare(val, v, ci),
        };
        match ord {
            Some(Less) => true,
            Some(Equal) => *inclusive,
            _ => false,
        }
    };
    above(lower) && below(upper)
}

/// The stored value compared with a bound value (value versus bound).
fn compare(bound: &Val, v: &Value, ci: bool) -> Option<std::cmp::Ordering> {
    match (bound, v) {
        (Val::Text(b), Value::String(s)) if ci => Some(s.to_lowercase().as_str().cmp(b.as_str())),
        (Val::Text(b), Value::String(s)) => Some(s.as_str().cmp(b.as_str())),
        (Val::Num(b), Value::Number(n)) => n.as_f64()?.partial_cmp(b),
        // Metadata: numbers numerically (when the bound is a number),
        // strings lexicographically, booleans never.
        (Val::Raw(b), Value::Number(n)) => n.as_f64()?.partial_cmp(&number(b)?),
        (Val::Raw(b), Value::String(s)) => Some(s.as_str().cmp(b.as_str())),
        _ => None,
    }
}

impl Node {
    fn matches(&self, user: &Value) -> bool {
        match self {
            Node::Group(clauses) => {
                let mut required = false;
                let mut optional = false;
                let mut optional_hit = false;
                for (occur, node) in clauses {
                    match occur {
                        Occur::MustNot if node.matches(user) => return false,
                        Occur::MustNot => {}
                        Occur::Must if !node.matches(user) => return false,
                        Occur::Must => required = true,
                        Occur::Should => {
                            optional = true;
                            optional_hit = optional_hit || node.matches(user);
                        }
                    }
                }
                // Optional clauses only decide when nothing is required; a
                // group of prohibited clauses alone matches everything else
                // (Elasticsearch adds a match-all to purely negative queries).
                required || !optional || optional_hit
            }
            Node::Exists(f) => !values(user, &f.path).is_empty(),
            Node::Term(f, want) => values(user, &f.path)
                .iter()
                .any(|v| equals(f.kind, want, v)),
            Node::Wildcard(f, pattern) => values(user, &f.path).iter().any(|v| match v {
                Value::String(s) => {
                    let s = if f.kind == (Kind::Text { ci: true }) {
                        s.to_lowercase()
                    } else {
                        s.clone()
                    };
                    glob(pattern, &s.chars().collect::<Vec<_>>())
                }
                _ => false,
            }),
            Node::Range(f, lower, upper) => values(user, &f.path)
                .iter()
                .any(|v| in_range(f.kind, v, lower, upper)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn users() -> Vec<Value> {
        vec![
            json!({
                "user_id": "auth0|a1", "email": "ada@example.com", "email_verified": true,
                "name": "Ada Lovelace", "nickname": "ada", "given_name": "Ada",
                "family_name": "Lovelace", "username": "Ada_L", "blocked": true,
                "logins_count": 3, "last_login": "2026-02-10T12:00:00.000Z",
                "created_at": "2026-01-01T10:00:00.000Z", "updated_at": "2026-01-05T00:00:00.000Z",
                "identities": [{"connection": "Username-Password-Authentication", "provider": "auth0", "user_id": "a1", "isSocial": false}],
                "app_metadata": {"plan": "gold", "tier": 2, "beta": true, "tags": ["x", "y"],
                                 "org": {"name": "Analytical"}, "seats": [{"n": 1}, {"n": 5}]},
                "user_metadata": {"lang": "en", "empty": [], "nothing": null}
            }),
            json!({
                "user_id": "auth0|b2", "email": "bob@example.org", "email_verified": false,
                "name": "bob@example.org", "nickname": "bob",
                "created_at": "2026-01-02T00:00:00.000Z", "updated_at": "2026-01-02T00:00:00.000Z",
                "identities": [{"connection": "Username-Password-Authentication", "provider": "auth0", "user_id": "b2", "isSocial": false}],
                "blocked": false,
                "app_metadata": {"plan": "Gold", "tier": 10, "beta": false}
            }),
            json!({
                "user_id": "google-oauth2|c3", "email": "cy@example.com", "email_verified": true,
                "name": "Cy Young", "nickname": "cy",
                "created_at": "2025-12-31T23:59:59.999Z", "updated_at": "2026-01-03T00:00:00.000Z",
                "identities": [{"connection": "google-oauth2", "provider": "google-oauth2", "user_id": "c3", "isSocial": true}],
                "logins_count": 1, "last_login": "2026-01-01T00:00:00.000Z",
                "user_metadata": {"lang": "fr"}
            }),
        ]
    }

    /// The nicknames of the users matching `q`.
    fn hits(q: &str) -> Vec<String> {
        let query = Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        users()
            .iter()
            .filter(|u| query.matches(u))
            .map(|u| u["nickname"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn valid_queries() {
        let table: &[(&str, &[&str])] = &[
            // exact terms; normalized fields ignore case, others don't
            ("email:ada@example.com", &["ada"]),
            ("email:\"ADA@Example.com\"", &["ada"]),
            ("name:\"ada lovelace\"", &["ada"]),
            ("name:ada", &[]),
            ("username:Ada_L", &["ada"]),
            ("username:ada_l", &[]),
            ("user_id:\"auth0|a1\"", &["ada"]),
            ("user_id:auth0|a1", &["ada"]),
            ("user_id:auth0\\|b2", &["bob"]),
            ("email.domain:example.com", &["ada", "cy"]),
            ("identities.connection:google-oauth2", &["cy"]),
            ("identities.isSocial:true", &["cy"]),
            // booleans: absent fields match neither value
            ("blocked:true", &["ada"]),
            ("blocked:false", &["bob"]),
            ("email_verified:false", &["bob"]),
            // existence
            ("logins_count:*", &["ada", "cy"]),
            ("_exists_:logins_count", &["ada", "cy"]),
            ("_exists_: last_login", &["ada", "cy"]),
            ("NOT _exists_:logins_count", &["bob"]),
            ("logins_count:[* TO *]", &["ada", "cy"]),
            // wildcards
            ("name:ada*", &["ada"]),
            ("email:*@example.org", &["bob"]),
            ("nickname:b?b", &["bob"]),
            ("email:\"ada*\"", &[]),
            ("user_id:auth0*", &["ada", "bob"]),
            // numbers
            ("logins_count:3", &["ada"]),
            ("logins_count:0", &[]),
            ("logins_count:[1 TO 3]", &["ada", "cy"]),
            ("logins_count:{1 TO 3]", &["ada"]),
            ("logins_count:[1 TO 3}", &["cy"]),
            ("logins_count:[2 TO *]", &["ada"]),
            ("logins_count:>=3", &["ada"]),
            ("logins_count:<3", &["cy"]),
            ("NOT logins_count:[1 TO *]", &["bob"]),
            ("-logins_count:[1 TO *]", &["bob"]),
            // dates: a date covers its whole day; timestamps as instants
            ("created_at:2026-01-01", &["ada"]),
            ("created_at:[2026-01-01 TO *]", &["ada", "bob"]),
            ("created_at:{2026-01-01 TO *]", &["bob"]),
            ("created_at:[* TO 2026-01-01]", &["ada", "cy"]),
            ("created_at:[* TO 2026-01-01}", &["cy"]),
            (
                "created_at:[2026-01-01T10:00:00Z TO 2026-01-02T00:00:00Z]",
                &["ada", "bob"],
            ),
            ("created_at:[\"2026-01-01T10:00:00.001Z\" TO *]", &["bob"]),
            (
                "created_at:[\"2026-01-01T11:00:00+01:00\" TO \"2026-01-01T11:00:00+01:00\"]",
                &["ada"],
            ),
            ("created_at:<2026-01-01", &["cy"]),
            ("last_login:[2026-02-01 TO 2026-02-28]", &["ada"]),
            ("updated_at:\"2026-01-03T00:00:00.000Z\"", &["cy"]),
            // metadata: typed by the stored value, strings case-sensitive
            ("app_metadata.plan:gold", &["ada"]),
            ("app_metadata.plan:Gold", &["bob"]),
            ("app_metadata.tier:2", &["ada"]),
            ("app_metadata.tier:\"10\"", &["bob"]),
            ("app_metadata.tier:[3 TO 20]", &["bob"]),
            ("app_metadata.beta:true", &["ada"]),
            ("app_metadata.beta:false", &["bob"]),
            ("app_metadata.tags:y", &["ada"]),
            ("app_metadata.org.name:Analytical", &["ada"]),
            ("app_metadata.seats.n:5", &["ada"]),
            ("app_metadata.plan:G*", &["bob"]),
            ("_exists_:app_metadata", &["ada", "bob"]),
            ("user_metadata.lang:fr", &["cy"]),
            ("_exists_:user_metadata.empty", &[]),
            ("_exists_:user_metadata.nothing", &[]),
            ("app_metadata.missing:x", &[]),
            // boolean logic: juxtaposition is OR, Lucene's clause model
            ("nickname:ada nickname:bob", &["ada", "bob"]),
            ("nickname:ada OR nickname:bob", &["ada", "bob"]),
            ("nickname:ada || nickname:cy", &["ada", "cy"]),
            ("email_verified:true AND logins_count:1", &["cy"]),
            ("email_verified:true && blocked:true", &["ada"]),
            ("email_verified:true AND NOT blocked:true", &["cy"]),
            // `-` excludes: not "verified OR not blocked" but "verified, not blocked"
            ("email_verified:true -blocked:true", &["cy"]),
            ("+email_verified:true -blocked:true", &["cy"]),
            ("email_verified:true !nickname:cy", &["ada"]),
            ("NOT nickname:ada", &["bob", "cy"]),
            (
                "nickname:ada OR nickname:bob AND email_verified:false",
                &["bob"],
            ),
            (
                "(nickname:ada OR nickname:bob) AND email_verified:false",
                &["bob"],
            ),
            ("nickname:(ada OR cy)", &["ada", "cy"]),
            ("nickname:(ada cy) AND logins_count:1", &["cy"]),
            ("nickname:(NOT ada)", &["bob", "cy"]),
            ("((nickname:ada))", &["ada"]),
            ("  nickname:ada  ", &["ada"]),
            ("NOT (nickname:ada OR nickname:bob)", &["cy"]),
            ("name:ANDROID*", &[]),
        ];
        for (q, want) in table {
            assert_eq!(hits(q), *want, "{q}");
        }
    }

    #[test]
    fn invalid_queries() {
        let table: &[(&str, &str)] = &[
            ("", "empty query at character 1"),
            ("email:", "expected a value"),
            ("email:\"open", "unterminated quote at character 7"),
            ("(email:a", "missing ')'"),
            ("email:a)", "unbalanced ')'"),
            ("()", "empty query"),
            ("AND email:a", "'AND' needs a clause before it"),
            ("email:a AND", "expected a clause"),
            ("email:a OR OR email:b", "unexpected 'OR'"),
            ("NOT", "expected a clause"),
            ("ada", "'ada' has no field"),
            ("\"ada\"", "a value needs a field"),
            ("foo:bar", "unsupported field 'foo'"),
            ("_exists_:foo", "unsupported field 'foo'"),
            ("app_metadata.:x", "unsupported field"),
            ("blocked:yes", "'yes' is not a boolean value for blocked"),
            ("logins_count:many", "'many' is not a number"),
            ("created_at:yesterday", "'yesterday' is not a date"),
            ("created_at:[2026-13-01 TO *]", "'2026-13-01' is not a date"),
            ("created_at:2026-01-01T10:00:00Z", "unexpected ':'"),
            ("logins_count:[1 TO]", "expected a range bound"),
            ("logins_count:[1 2]", "expected 'TO'"),
            ("logins_count:[1 TO 2", "expected ']' or '}'"),
            (
                "blocked:[false TO true]",
                "range searches are not available on blocked",
            ),
            (
                "user_metadata.lang:[a TO z]",
                "not available on user_metadata",
            ),
            ("user_metadata.lang:e*", "not available on user_metadata"),
            (
                "logins_count:1*",
                "wildcard searches are not available on logins_count",
            ),
            ("name:*sa", "at least 3 other characters"),
            ("name:?x", "at least 3 other characters"),
            ("name:ada^2", "boosts"),
            ("name:ada~", "fuzzy"),
            ("name:/ad./", "unexpected '/'"),
            ("na*e:ada", "field name cannot hold wildcards"),
            ("email:a\\", "dangling"),
            ("logins_count:>*", "cannot hold wildcards"),
        ];
        for (q, want) in table {
            match Query::parse(q) {
                Ok(parsed) => panic!("{q} parsed as {parsed:?}"),
                Err(e) => assert!(e.contains(want), "{q}: got {e:?}, want {want:?}"),
            }
        }
        assert!(Query::parse("name:*usa").is_ok());
        let deep = format!("{}email:a{}", "(".repeat(40), ")".repeat(40));
        assert!(Query::parse(&deep)
            .unwrap_err()
            .contains("nested too deeply"));
    }

    #[test]
    fn clause_model_matches_lucene() {
        // `a OR b AND c` is `a +b +c` in Lucene's classic parser.
        let q = Query::parse("nickname:ada OR nickname:bob AND email_verified:false").unwrap();
        let Query(Node::Group(clauses)) = q else {
            panic!("not a group")
        };
        let occurs: Vec<Occur> = clauses.iter().map(|c| c.0).collect();
        assert_eq!(occurs, vec![Occur::Should, Occur::Must, Occur::Must]);
    }

    #[test]
    fn glob_matching() {
        let pat = |s: &str| -> Vec<Pat> {
            s.chars()
                .map(|c| match c {
                    '*' => Pat::Star,
                    '?' => Pat::One,
                    c => Pat::Lit(c),
                })
                .collect()
        };
        let m = |p: &str, t: &str| glob(&pat(p), &t.chars().collect::<Vec<_>>());
        assert!(m("a*", "abc"));
        assert!(m("*c", "abc"));
        assert!(m("a*c*e", "abcde"));
        assert!(m("a?c", "abc"));
        assert!(m("*", ""));
        assert!(!m("a?c", "ac"));
        assert!(!m("a*d", "abc"));
        assert!(m("*a*a*a", "aaaa"));
    }
}
