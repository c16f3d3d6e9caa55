//! The `Auth0Gate` Durable Object: one instance per `AUTH0_DOMAIN`, SQLite-backed. It only
//! adapts: it stores the core's [`Ledger`] rows in one SQLite table and runs
//! [`invite_core::gate::handle`] on each call it receives (a JSON `GateCall` in a POST). All
//! the decisions (pacing, statuses, dedupe, cooldowns) are the core's.

use std::cell::{Cell, RefCell};

use invite_core::gate::{self, Ledger};
use serde::Deserialize;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State};

/// Far future, for rows that never expire (the pacer).
const NEVER_MS: f64 = 253_402_300_799_000.0;

/// The gate's storage: `ledger(k, v, grp, expire_at)`, except the pacer's state
/// ([`gate::PACER_KEY`]), which lives in the object's memory. It changes on every
/// reservation, and losing it costs little: an object is evicted only after it has been idle,
/// when Auth0's bucket is full again anyway. A deploy replaces it busy or not, so a pause
/// after a 429 is also kept in storage until it ends (see `gate::pacer`).
pub struct SqlLedger<'a> {
    sql: &'a SqlStorage,
    pacer: &'a RefCell<Option<String>>,
    /// The call's time: reads skip rows expired by then, purged or not.
    now_ms: u64,
    /// When expired rows were last deleted (see `purge`).
    purged_at_ms: &'a Cell<u64>,
    /// The first storage error of this call ([`Ledger::fault`]).
    fault: RefCell<Option<String>>,
}

/// Expired rows are deleted at most this often: reads skip them anyway, and a `DELETE` on
/// every accepted invite was a quarter of its SQL statements.
const PURGE_EVERY_MS: u64 = 60_000;

#[derive(Deserialize)]
struct Row {
    v: String,
}

impl SqlLedger<'_> {
    /// Creates the table and its indexes if they are missing.
    pub fn migrate(sql: &SqlStorage) -> Result<()> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS ledger (k TEXT PRIMARY KEY, v TEXT NOT NULL, grp TEXT NOT NULL DEFAULT '', expire_at REAL NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE INDEX IF NOT EXISTS ledger_grp ON ledger (grp) WHERE grp != ''",
            None,
        )?;
        sql.exec(
            "CREATE INDEX IF NOT EXISTS ledger_expiry ON ledger (expire_at)",
            None,
        )?;
        Ok(())
    }

    fn rows(&self, query: &str, bindings: Vec<worker::SqlStorageValue>) -> Vec<String> {
        match self
            .sql
            .exec(query, bindings)
            .and_then(|c| c.to_array::<Row>())
        {
            Ok(rows) => rows.into_iter().map(|r| r.v).collect(),
            Err(e) => {
                self.failed(query, &e);
                Vec::new()
            }
        }
    }

    fn run(&self, query: &str, bindings: Vec<worker::SqlStorageValue>) {
        if let Err(e) = self.sql.exec(query, bindings) {
            self.failed(query, &e);
        }
    }

    /// Logs a storage error and keeps the first, so that the call answers an error.
    fn failed(&self, what: &str, e: &worker::Error) {
        worker::console_error!("gate: {what}: {e}");
        self.fault.borrow_mut().get_or_insert_with(|| e.to_string());
    }
}

impl Ledger for SqlLedger<'_> {
    fn get(&self, key: &str) -> Option<String> {
        if key == gate::PACER_KEY {
            return self.pacer.borrow().clone();
        }
        self.rows(
            "SELECT v FROM ledger WHERE k = ? AND expire_at > ?",
            vec![key.into(), (self.now_ms as f64).into()],
        )
        .into_iter()
        .next()
    }

    fn put(&self, key: &str, value: &str, group: Option<&str>, expire_at_ms: u64) {
        if key == gate::PACER_KEY {
            *self.pacer.borrow_mut() = Some(value.to_string());
            return;
        }
        let expire = (expire_at_ms as f64).min(NEVER_MS);
        self.run(
            "INSERT INTO ledger (k, v, grp, expire_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(k) DO UPDATE SET v = excluded.v, grp = excluded.grp, expire_at = excluded.expire_at",
            vec![
                key.into(),
                value.into(),
                group.unwrap_or("").into(),
                expire.into(),
            ],
        );
    }

    /// One statement: insert, or take over an expired row; `RETURNING` yields a row only
    /// when the key was taken. (Two statements, a read and a write, were half of an accepted
    /// sign-up's SQL.)
    fn claim(&self, key: &str, value: &str, expire_at_ms: u64) -> Option<String> {
        let expire = (expire_at_ms as f64).min(NEVER_MS);
        let taken = self
            .sql
            .exec(
                "INSERT INTO ledger (k, v, grp, expire_at) VALUES (?, ?, '', ?) \
                 ON CONFLICT(k) DO UPDATE SET v = excluded.v, grp = '', expire_at = excluded.expire_at \
                 WHERE ledger.expire_at <= ? RETURNING v",
                vec![
                    key.into(),
                    value.into(),
                    expire.into(),
                    (self.now_ms as f64).into(),
                ],
            )
            .and_then(|c| c.to_array::<Row>());
        match taken {
            Ok(rows) if !rows.is_empty() => None,
            // Held: whose it is (an empty value when it vanished meanwhile, still held).
            Ok(_) => Some(self.get(key).unwrap_or_default()),
            Err(e) => {
                // The call answers an error (`fault`), whatever is returned here.
                self.failed("claim", &e);
                None
            }
        }
    }

    fn group(&self, group: &str) -> Vec<String> {
        if group.is_empty() {
            return Vec::new();
        }
        self.rows(
            "SELECT v FROM ledger WHERE grp = ? AND expire_at > ? ORDER BY rowid",
            vec![group.into(), (self.now_ms as f64).into()],
        )
    }

    /// Read as text into the one row type there is (a second would be a second deserializer),
    /// as a whole number: parsing a float would bring the float parser into the bundle.
    fn expiry(&self, key: &str) -> Option<u64> {
        self.rows(
            "SELECT CAST(CAST(expire_at AS INTEGER) AS TEXT) AS v FROM ledger WHERE k = ? AND expire_at > ?",
            vec![key.into(), (self.now_ms as f64).into()],
        )
        .into_iter()
        .next()
        .and_then(|v| v.parse::<u64>().ok())
    }

    fn fault(&self) -> Option<String> {
        self.fault.borrow().clone()
    }

    fn purge(&self, now_ms: u64) {
        if now_ms.saturating_sub(self.purged_at_ms.get()) < PURGE_EVERY_MS {
            return;
        }
        self.purged_at_ms.set(now_ms);
        self.run(
            "DELETE FROM ledger WHERE expire_at <= ?",
            vec![(now_ms as f64).into()],
        );
    }
}

/// The per-tenant gate.
///
/// `fetch` only: without an argument the macro also exports `alarm`, `connect` and three
/// WebSocket handlers, which the gate never uses (3.4 KB of the gzipped bundle with their
/// glue).
#[durable_object(fetch)]
pub struct Auth0Gate {
    sql: SqlStorage,
    ready: bool,
    pacer: RefCell<Option<String>>,
    purged_at_ms: Cell<u64>,
}

impl DurableObject for Auth0Gate {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        // Never panic here: a panicking constructor leaves callers hanging until workerd
        // cancels them. A failed migration is reported on every call instead.
        let ready = match SqlLedger::migrate(&sql) {
            Ok(()) => true,
            Err(e) => {
                worker::console_error!("gate: migration failed: {e}");
                false
            }
        };
        Auth0Gate {
            sql,
            ready,
            pacer: RefCell::new(None),
            purged_at_ms: Cell::new(0),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let body = req.text().await?;
        match self.run(&body) {
            Ok(json) => Response::ok(json),
            Err(e) => Response::error(e, 400),
        }
    }
}

impl Auth0Gate {
    /// Runs one JSON `GateCall` ([`gate::answer`]). Synchronous: nothing else runs in this
    /// object until it returns, so every call is atomic; an error (a storage error among
    /// them) makes `src/entry.mjs` roll the call's writes back.
    fn run(&self, body: &str) -> std::result::Result<String, String> {
        if !self.ready {
            return Err("gate storage unavailable".into());
        }
        let now_ms = crate::platform::now_ms();
        let ledger = SqlLedger {
            sql: &self.sql,
            pacer: &self.pacer,
            now_ms,
            purged_at_ms: &self.purged_at_ms,
            fault: RefCell::new(None),
        };
        gate::answer(body, now_ms, &ledger)
    }
}

#[wasm_bindgen]
impl Auth0Gate {
    /// The RPC entry (`stub.call(json)`), reached through the `DurableObject` subclass in
    /// `src/entry.mjs`: the same as `fetch` without the HTTP envelope, about a third of
    /// its round trip. Errors come back as `{"reply":"error"}`-less text starting with `!`.
    #[wasm_bindgen(js_name = call)]
    pub fn call_rpc(&self, body: String) -> String {
        match self.run(&body) {
            Ok(json) => json,
            Err(e) => format!("!{e}"),
        }
    }
}
