//! An OVSDB client (RFC 7047): `transact` with the operations pipework
//! needs, and `get_schema`.
//!
//! Why our own, on `tokio` and `serde_json`, rather than a crate: the Rust
//! OVSDB crates we looked at are early work (`ovsdb` 0.0.x generates models
//! at build time from a schema file; `ovsdb-client` 0.0.1 pulls in a whole
//! JSON-RPC framework for ~270 lines of logic). What we need is one request
//! at a time over a unix or TCP socket, a handful of operation builders and
//! result checking: about as much code as the glue to adapt a crate, with no
//! new dependency and nothing between us and the RFC.
//!
//! Waiting for `ofport` and `link_state` uses the protocol's own `wait`
//! operation: the server holds the transaction until the rows match or the
//! timeout passes (section 5.2.6), one round trip that costs the same with
//! ten ports or a thousand, where a plain `monitor` would first ship the
//! whole Interface table.

use std::time::Duration;

use pipework_ovsdb_schemas::DATABASE;
use serde_json::{json, Map, Value};

use super::jsonrpc::{Connection, RpcError};
use super::remote::Remote;

/// How long to wait for a connection and for an ordinary reply.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to OVSDB.
#[derive(Debug)]
pub enum OvsdbError {
    /// No connection could be made.
    Unreachable {
        remote: String,
        source: std::io::Error,
    },
    /// The conversation failed half-way.
    Rpc { remote: String, source: RpcError },
    /// The server ran the transaction and refused it.
    Txn(TxnError),
}

impl std::fmt::Display for OvsdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OvsdbError::Unreachable { remote, source } => {
                write!(f, "cannot reach OVSDB at {remote}: {source}")
            }
            OvsdbError::Rpc { remote, source } => write!(f, "OVSDB at {remote}: {source}"),
            OvsdbError::Txn(t) => write!(f, "{t}"),
        }
    }
}

impl std::error::Error for OvsdbError {}

/// A refused transaction: which operation (or the commit) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnError {
    /// The failing operation's index; `None` when the commit itself failed.
    pub index: Option<usize>,
    /// The failing operation's `op`.
    pub op: String,
    pub error: String,
    pub details: String,
}

impl TxnError {
    /// A `wait` that did not hold: someone changed the rows we relied on.
    pub fn is_wait_failure(&self) -> bool {
        self.op == "wait" && self.error == "timed out"
    }

    /// The commit broke a unique index: another client inserted the same
    /// name first.
    pub fn is_constraint_violation(&self) -> bool {
        self.error == "constraint violation"
    }
}

impl std::fmt::Display for TxnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "OVSDB refused operation {i} ({})", self.op)?,
            None => f.write_str("OVSDB refused the commit")?,
        }
        write!(f, ": {}", self.error)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

/// A connection to an OVSDB server.
pub struct Ovsdb {
    conn: Connection,
    remote: Remote,
}

impl Ovsdb {
    pub async fn connect(remote: &Remote) -> Result<Ovsdb, OvsdbError> {
        let conn = Connection::connect(remote, CALL_TIMEOUT)
            .await
            .map_err(|source| OvsdbError::Unreachable {
                remote: remote.to_string(),
                source,
            })?;
        Ok(Ovsdb {
            conn,
            remote: remote.clone(),
        })
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    async fn call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, OvsdbError> {
        self.conn
            .call(method, params, timeout)
            .await
            .map_err(|source| OvsdbError::Rpc {
                remote: self.remote.to_string(),
                source,
            })
    }

    /// The `Open_vSwitch` schema as the server has it.
    pub async fn get_schema(&mut self) -> Result<Value, OvsdbError> {
        self.call("get_schema", json!([DATABASE]), CALL_TIMEOUT)
            .await
    }

    /// Runs the operations as one transaction; returns one result per
    /// operation. `extra` is added to the reply timeout for `wait`s.
    pub async fn transact(
        &mut self,
        ops: Vec<Value>,
        extra: Duration,
    ) -> Result<Vec<Value>, OvsdbError> {
        let kinds: Vec<String> = ops
            .iter()
            .map(|o| o["op"].as_str().unwrap_or("?").to_string())
            .collect();
        let mut params = vec![Value::from(DATABASE)];
        params.extend(ops);
        let result = self
            .call("transact", Value::Array(params), CALL_TIMEOUT + extra)
            .await?;
        let results = result.as_array().cloned().ok_or_else(|| OvsdbError::Rpc {
            remote: self.remote.to_string(),
            source: RpcError::Protocol(format!("transact result is not an array: {result}")),
        })?;
        // The first failing operation carries the error; RFC 7047 appends one
        // more result for an error found at commit.
        for (i, r) in results.iter().enumerate() {
            if let Some(e) = r.get("error").and_then(Value::as_str) {
                return Err(OvsdbError::Txn(TxnError {
                    index: (i < kinds.len()).then_some(i),
                    op: kinds.get(i).cloned().unwrap_or_else(|| "commit".into()),
                    error: e.to_string(),
                    details: r["details"].as_str().unwrap_or_default().to_string(),
                }));
            }
        }
        if results.len() < kinds.len() {
            return Err(OvsdbError::Rpc {
                remote: self.remote.to_string(),
                source: RpcError::Protocol(format!(
                    "{} results for {} operations",
                    results.len(),
                    kinds.len()
                )),
            });
        }
        Ok(results)
    }

    /// One `select`, as its own transaction.
    pub async fn select(
        &mut self,
        table: &str,
        conditions: Vec<Value>,
        columns: &[&str],
    ) -> Result<Vec<Value>, OvsdbError> {
        let r = self
            .transact(vec![op::select(table, conditions, columns)], Duration::ZERO)
            .await?;
        Ok(rows(&r[0]))
    }
}

/// The rows of a `select` result.
pub fn rows(result: &Value) -> Vec<Value> {
    result["rows"].as_array().cloned().unwrap_or_default()
}

/// The UUID an `insert` result reports.
pub fn inserted_uuid(result: &Value) -> Option<String> {
    pipework_ovsdb_schemas::datum::as_uuid(&result["uuid"])
}

/// The operations of RFC 7047 section 5.2, as JSON.
pub mod op {
    use super::*;

    /// `[column, "==", value]`
    pub fn eq(column: &str, value: Value) -> Value {
        json!([column, "==", value])
    }

    /// `[column, "includes", value]`: a set or map column contains `value`.
    pub fn includes(column: &str, value: Value) -> Value {
        json!([column, "includes", value])
    }

    /// `insert`, naming the new row `uuid_name` for later operations.
    pub fn insert(table: &str, row: Map<String, Value>, uuid_name: Option<&str>) -> Value {
        let mut o = json!({"op": "insert", "table": table, "row": row});
        if let Some(n) = uuid_name {
            o["uuid-name"] = n.into();
        }
        o
    }

    pub fn update(table: &str, conditions: Vec<Value>, row: Map<String, Value>) -> Value {
        json!({"op": "update", "table": table, "where": conditions, "row": row})
    }

    /// `mutate` with `[column, mutator, value]` mutations.
    pub fn mutate(table: &str, conditions: Vec<Value>, mutations: Vec<Value>) -> Value {
        json!({"op": "mutate", "table": table, "where": conditions, "mutations": mutations})
    }

    pub fn delete(table: &str, conditions: Vec<Value>) -> Value {
        json!({"op": "delete", "table": table, "where": conditions})
    }

    pub fn select(table: &str, conditions: Vec<Value>, columns: &[&str]) -> Value {
        json!({"op": "select", "table": table, "where": conditions, "columns": columns})
    }

    /// `wait` until the rows matching `conditions`, reduced to `columns`, are
    /// (`equal`) or are not exactly `rows`; fails with "timed out" after
    /// `timeout` (zero: a check that must hold now).
    pub fn wait(
        table: &str,
        conditions: Vec<Value>,
        columns: &[&str],
        equal: bool,
        rows: Vec<Value>,
        timeout: Duration,
    ) -> Value {
        json!({
            "op": "wait",
            "table": table,
            "where": conditions,
            "columns": columns,
            "until": if equal { "==" } else { "!=" },
            "rows": rows,
            "timeout": timeout.as_millis() as u64,
        })
    }

    /// `count` of rows an `update`, `mutate` or `delete` touched.
    pub fn count(result: &Value) -> u64 {
        result["count"].as_u64().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_have_the_rfc_shape() {
        let w = op::wait(
            "Bridge",
            vec![op::eq("name", "ovs0".into())],
            &["name"],
            true,
            vec![],
            Duration::ZERO,
        );
        assert_eq!(w["until"], "==");
        assert_eq!(w["timeout"], 0);
        assert_eq!(w["where"], json!([["name", "==", "ovs0"]]));
        let i = op::insert("Port", Map::new(), Some("p"));
        assert_eq!(i["uuid-name"], "p");
        let m = op::mutate(
            "Bridge",
            vec![],
            vec![json!(["ports", "insert", ["set", [["named-uuid", "p"]]]])],
        );
        assert_eq!(m["mutations"][0][1], "insert");
        assert_eq!(op::count(&json!({"count": 2})), 2);
    }

    #[test]
    fn wait_failures_are_recognised() {
        let t = TxnError {
            index: Some(0),
            op: "wait".into(),
            error: "timed out".into(),
            details: String::new(),
        };
        assert!(t.is_wait_failure());
        assert!(t.to_string().contains("operation 0 (wait)"));
    }
}
