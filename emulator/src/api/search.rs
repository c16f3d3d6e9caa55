//! `GET /api/v2/users`: List or Search Users with search engine v3. The
//! query (`q`) language is [`crate::query`]; this module adds the engine
//! check, paging (only the first 1000 results can be reached, as in Auth0),
//! totals, sorting, the `fields` projection and the indexing lag
//! (`search_lag_ms`) that stands for Auth0's eventually consistent search.

use std::cmp::Ordering;

use serde_json::{json, Value};

use crate::query::Query;
use crate::server::{Incoming, Reply};
use crate::state::{State, User};
use crate::util;
use crate::validate::{check_query, QTy};

use super::common::{
    invalid_query, paging, paging_limit, project, HResult, FIELDS_QUERY, PAGING_QUERY,
};

/// Auth0 lets a search page through this many results, and reports at most
/// this many as `total`.
const MAX_RESULTS: usize = 1000;

/// Auth0 leaves the default order unspecified; newest first, ties by
/// `user_id`, is a stable choice that shows just-created users first.
const DEFAULT_SORT: &str = "created_at:-1";

const LIST_QUERY: [(&str, QTy); 8] = [
    ("q", QTy::Str),
    ("search_engine", QTy::Str),
    PAGING_QUERY[0],
    // Unlike the other lists, a search page holds at least one user.
    ("per_page", QTy::Int { min: 1, max: 100 }),
    PAGING_QUERY[2],
    ("sort", QTy::Str),
    FIELDS_QUERY[0],
    FIELDS_QUERY[1],
];

/// Only v3 is served. Auth0 retired v1 and v2 and answers them with this
/// 400; any other value fails its enum check.
fn check_engine(engine: Option<&str>) -> Result<(), Reply> {
    match engine {
        None | Some("v3") => Ok(()),
        Some(v @ ("v1" | "v2")) => Err(invalid_query(&format!(
            "You are not allowed to use search_engine={v}."
        ))),
        Some(other) => Err(invalid_query(&format!(
            "Query validation error: 'No enum match for: \"{other}\"' on property search_engine (The version of the search engine)."
        ))),
    }
}

/// How a sort field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKind {
    Date,
    Num,
    /// Auth0's normalized fields compare without regard to case.
    TextCi,
    Text,
}

/// A sort key taken from a user's JSON.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Num(f64),
    Text(String),
}

/// A parsed `sort=field:1|-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sort {
    field: &'static str,
    kind: SortKind,
    descending: bool,
}

const SORT_FIELDS: [(&str, SortKind); 11] = [
    ("created_at", SortKind::Date),
    ("updated_at", SortKind::Date),
    ("last_login", SortKind::Date),
    ("logins_count", SortKind::Num),
    ("email", SortKind::TextCi),
    ("name", SortKind::TextCi),
    ("nickname", SortKind::TextCi),
    ("given_name", SortKind::TextCi),
    ("family_name", SortKind::TextCi),
    ("username", SortKind::Text),
    ("user_id", SortKind::Text),
];

impl Sort {
    fn parse(s: &str) -> Result<Sort, Reply> {
        let (field, order) = s.split_once(':').unwrap_or((s, ""));
        let shape_ok = !field.is_empty()
            && field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && (order == "1" || order == "-1");
        if !shape_ok {
            return Err(invalid_query(&format!(
                "Query validation error: 'String does not match pattern ^(([a-zA-Z0-9_\\.]+))\\:(1|-1)$: {s}' on property sort (Field to sort by. Use field:order where order is 1 for ascending and -1 for descending. e.g. created_at:1)."
            )));
        }
        let Some((name, kind)) = SORT_FIELDS.iter().find(|(n, _)| *n == field) else {
            let names: Vec<&str> = SORT_FIELDS.iter().map(|(n, _)| *n).collect();
            return Err(invalid_query(&format!(
                "Cannot sort by '{field}': the emulator sorts by {}.",
                names.join(", ")
            )));
        };
        Ok(Sort {
            field: name,
            kind: *kind,
            descending: order == "-1",
        })
    }

    fn key(&self, user: &Value) -> Option<Key> {
        let v = user.get(self.field)?;
        match self.kind {
            SortKind::Date => v
                .as_str()
                .and_then(util::parse_rfc3339_ms)
                .map(|ms| Key::Num(ms as f64)),
            SortKind::Num => v.as_f64().map(Key::Num),
            SortKind::TextCi => v.as_str().map(|s| Key::Text(s.to_lowercase())),
            SortKind::Text => v.as_str().map(|s| Key::Text(s.to_string())),
        }
    }

    /// Sorts users in place. Users without the field come last in either
    /// direction (Elasticsearch's default `missing: _last`), so a sort by
    /// `last_login` puts users who never logged in at the end. Ties, and
    /// users that all lack the field, are ordered by `user_id` ascending.
    fn apply(&self, users: &mut [Value]) {
        let mut keyed: Vec<(Option<Key>, String, Value)> = users
            .iter()
            .map(|u| {
                let id = u["user_id"].as_str().unwrap_or_default().to_string();
                (self.key(u), id, u.clone())
            })
            .collect();
        keyed.sort_by(|(ka, ia, _), (kb, ib, _)| {
            let by_key = match (ka, kb) {
                (Some(a), Some(b)) => {
                    let o = a.partial_cmp(b).unwrap_or(Ordering::Equal);
                    if self.descending {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            by_key.then_with(|| ia.cmp(ib))
        });
        for (slot, (_, _, u)) in users.iter_mut().zip(keyed) {
            *slot = u;
        }
    }
}

/// Whether the search index has caught up with this user: created at least
/// `lag_ms` ago. Only creation lags; updates and deletions show at once.
fn indexed(user: &User, now_ms: i64, lag_ms: u64) -> bool {
    if lag_ms == 0 {
        return true;
    }
    util::parse_rfc3339_ms(&user.created_at)
        .is_none_or(|created| now_ms.saturating_sub(created) >= lag_ms as i64)
}

/// `GET /api/v2/users`.
pub(super) fn list_users(state: &State, inc: &Incoming) -> HResult {
    check_query(&inc.query, &LIST_QUERY, &[]).map_err(|m| invalid_query(&m))?;
    check_engine(inc.query_param("search_engine"))?;
    let (page, per_page, totals) = paging(inc);
    let start = page.saturating_mul(per_page);
    // Checked on the parameters alone, as Auth0 does: a page that reaches
    // past result 1000 is refused however few users match.
    if start.saturating_add(per_page) > MAX_RESULTS {
        return Err(paging_limit());
    }
    let sort = Sort::parse(inc.query_param("sort").unwrap_or(DEFAULT_SORT))?;
    let query = match inc
        .query_param("q")
        .map(str::trim)
        .filter(|q| !q.is_empty())
    {
        None => None,
        Some(q) => Some(
            Query::parse(q).map_err(|m| invalid_query(&format!("Invalid query string: {m}.")))?,
        ),
    };
    let now = util::now_ms() as i64;
    let lag = state.config.search_lag_ms;
    let mut hits: Vec<Value> = state
        .users
        .iter()
        .filter(|u| indexed(u, now, lag))
        .map(User::to_json)
        .filter(|u| query.as_ref().is_none_or(|q| q.matches(u)))
        .collect();
    sort.apply(&mut hits);
    let total = hits.len().min(MAX_RESULTS);
    let users: Vec<Value> = hits
        .into_iter()
        .skip(start)
        .take(per_page)
        .map(|u| project(u, inc))
        .collect();
    let body = if totals {
        json!({
            "start": start,
            "limit": per_page,
            "length": users.len(),
            "users": users,
            "total": total,
        })
    } else {
        Value::Array(users)
    };
    Ok(Reply::mgmt(200, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    fn user(n: usize, created_ms: u64) -> User {
        User {
            user_id: format!("auth0|{n:024x}"),
            local_id: format!("{n:024x}"),
            connection: "Username-Password-Authentication".into(),
            email: Some(format!("user{n}@example.com")),
            email_verified: false,
            username: None,
            phone_number: None,
            phone_verified: None,
            name: None,
            nickname: Some(format!("user{n}")),
            picture: None,
            given_name: None,
            family_name: None,
            user_metadata: None,
            app_metadata: None,
            blocked: None,
            created_at: util::rfc3339_ms(created_ms),
            updated_at: util::rfc3339_ms(created_ms),
            logins_count: 0,
            last_login: None,
            last_ip: None,
            role_ids: Vec::new(),
        }
    }

    fn get(state: &State, query: &str) -> Reply {
        let inc = Incoming {
            method: "GET".into(),
            path: "/api/v2/users".into(),
            query: url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            content_type: String::new(),
            authorization: None,
            idempotency_key: None,
            body: Vec::new(),
            body_too_large: false,
        };
        list_users(state, &inc).unwrap_or_else(|e| e)
    }

    fn json_of(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    }

    #[test]
    fn total_is_capped_at_1000_and_the_last_page_is_reachable() {
        let mut state = State::new(&Options::default());
        for n in 0..1005 {
            state.users.push(user(n, 1_700_000_000_000 + n as u64));
        }
        let r = get(&state, "include_totals=true&per_page=100&page=9");
        assert_eq!(r.status, 200);
        let v = json_of(&r);
        assert_eq!(v["total"], 1000);
        assert_eq!(v["start"], 900);
        assert_eq!(v["limit"], 100);
        assert_eq!(v["length"], 100);
        // Newest first: record 900 of the default order is user 1004 - 900.
        assert_eq!(v["users"][0]["nickname"], "user104");
        assert_eq!(
            get(&state, "include_totals=true&per_page=100&page=10").status,
            400
        );
        let r = get(&state, "include_totals=true&q=nickname:user1004");
        assert_eq!(json_of(&r)["total"], 1);
    }

    #[test]
    fn sort_parsing() {
        let ok = |s: &str| Sort::parse(s).map_err(|r| r.status);
        assert_eq!(
            ok("email:1"),
            Ok(Sort {
                field: "email",
                kind: SortKind::TextCi,
                descending: false
            })
        );
        assert!(ok("logins_count:-1").is_ok_and(|s| s.descending));
        for bad in [
            "email",
            "email:2",
            ":1",
            "email:+1",
            "e mail:1",
            "foo:1",
            "email:1:1",
        ] {
            assert_eq!(ok(bad), Err(400), "{bad}");
        }
    }

    #[test]
    fn missing_values_sort_last_both_ways() {
        let mut users = vec![
            json!({"user_id": "b", "logins_count": 2}),
            json!({"user_id": "a"}),
            json!({"user_id": "c", "logins_count": 5}),
            json!({"user_id": "d", "logins_count": 2}),
        ];
        let ids = |u: &[Value]| -> Vec<String> {
            u.iter()
                .map(|x| x["user_id"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        let asc = Sort::parse("logins_count:1").map_err(|_| ()).unwrap();
        asc.apply(&mut users);
        assert_eq!(ids(&users), ["b", "d", "c", "a"]);
        let desc = Sort::parse("logins_count:-1").map_err(|_| ()).unwrap();
        desc.apply(&mut users);
        assert_eq!(ids(&users), ["c", "b", "d", "a"]);
    }
}
