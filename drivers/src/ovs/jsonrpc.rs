//! JSON-RPC 1.0 over a byte stream, as OVSDB speaks it (RFC 7047 section
//! 4): requests and replies are JSON objects written back to back with no
//! framing, the server may send its own `echo` requests (inactivity probes)
//! and notifications at any time.
//!
//! One request is in flight at a time: pipework does one thing after the
//! other, so a reader task and a pending-reply table would buy nothing.

use std::io;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::remote::Remote;

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf).await,
            Stream::Tcp(s) => s.read(buf).await,
        }
    }
    async fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(b).await,
            Stream::Tcp(s) => s.write_all(b).await,
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum RpcError {
    Io(io::Error),
    /// The peer closed the connection.
    Closed,
    Timeout,
    /// Something that is not JSON-RPC arrived.
    Protocol(String),
    /// The server answered with an `error` member.
    Server(Value),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Io(e) => write!(f, "{e}"),
            RpcError::Closed => f.write_str("the server closed the connection"),
            RpcError::Timeout => f.write_str("no reply in time"),
            RpcError::Protocol(m) => write!(f, "protocol error: {m}"),
            RpcError::Server(e) => write!(f, "server error: {e}"),
        }
    }
}

impl std::error::Error for RpcError {}

/// A connection to a JSON-RPC server.
pub struct Connection {
    stream: Stream,
    buf: Vec<u8>,
    next_id: u64,
}

impl Connection {
    pub async fn connect(remote: &Remote, timeout: Duration) -> io::Result<Connection> {
        let connect = async {
            Ok::<_, io::Error>(match remote {
                Remote::Unix(p) => Stream::Unix(UnixStream::connect(p).await?),
                Remote::Tcp { host, port } => {
                    let s = TcpStream::connect((host.as_str(), *port)).await?;
                    s.set_nodelay(true)?;
                    Stream::Tcp(s)
                }
            })
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))??;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(4096),
            next_id: 1,
        })
    }

    /// Sends one request and returns its `result`.
    pub async fn call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"method": method, "params": params, "id": id});
        tokio::time::timeout(timeout, self.exchange(id, &msg))
            .await
            .map_err(|_| RpcError::Timeout)?
    }

    async fn exchange(&mut self, id: u64, msg: &Value) -> Result<Value, RpcError> {
        let bytes = serde_json::to_vec(msg).map_err(|e| RpcError::Protocol(e.to_string()))?;
        self.stream.write_all(&bytes).await.map_err(RpcError::Io)?;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            while let Some(m) = self.next_message()? {
                if m.get("method").is_some_and(|x| !x.is_null()) {
                    self.answer_request(&m).await?;
                    continue;
                }
                if m["id"] == id {
                    return match m.get("error") {
                        Some(e) if !e.is_null() => Err(RpcError::Server(e.clone())),
                        _ => Ok(m.get("result").cloned().unwrap_or(Value::Null)),
                    };
                }
                // A late reply to a call that timed out earlier.
            }
            let n = self.stream.read(&mut chunk).await.map_err(RpcError::Io)?;
            if n == 0 {
                return Err(RpcError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits for the server's next notification (a `monitor`'s `update`),
    /// answering its echoes meanwhile; its `params`.
    pub async fn notification(&mut self) -> Result<Value, RpcError> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            while let Some(m) = self.next_message()? {
                if m.get("method").is_some_and(|x| !x.is_null()) {
                    if m["id"].is_null() {
                        return Ok(m["params"].clone());
                    }
                    self.answer_request(&m).await?;
                }
            }
            let n = self.stream.read(&mut chunk).await.map_err(RpcError::Io)?;
            if n == 0 {
                return Err(RpcError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The server's own requests: only `echo` expects an answer (RFC 7047
    /// section 4.1.11); notifications (`update`, `locked`...) are dropped.
    async fn answer_request(&mut self, m: &Value) -> Result<(), RpcError> {
        if m["method"] == "echo" && !m["id"].is_null() {
            let reply = json!({"id": m["id"], "result": m["params"], "error": null});
            let b = serde_json::to_vec(&reply).map_err(|e| RpcError::Protocol(e.to_string()))?;
            self.stream.write_all(&b).await.map_err(RpcError::Io)?;
        }
        Ok(())
    }

    /// Takes one complete JSON value off the front of the buffer, if there is one.
    fn next_message(&mut self) -> Result<Option<Value>, RpcError> {
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        match it.next() {
            None => {
                self.buf.clear();
                Ok(None)
            }
            Some(Ok(v)) => {
                let used = it.byte_offset();
                self.buf.drain(..used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(RpcError::Protocol(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake server on a socketpair: answers with split writes, an echo
    /// request in between, and a reply to an older id.
    #[tokio::test]
    async fn replies_split_across_reads_and_server_echoes() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut c = Connection {
            stream: Stream::Unix(a),
            buf: Vec::new(),
            next_id: 7,
        };
        let server = tokio::spawn(async move {
            let mut req = vec![0u8; 4096];
            let n = b.read(&mut req).await.unwrap();
            let v: Value = serde_json::from_slice(&req[..n]).unwrap();
            assert_eq!(v["method"], "get_schema");
            assert_eq!(v["id"], 7);
            b.write_all(br#"{"id":3,"result":"stale","error":null} {"method":"echo","id":"e1","params":[]}"#)
                .await
                .unwrap();
            b.write_all(br#"{"id":7,"res"#).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            b.write_all(br#"ult":{"name":"x"},"error":null}"#)
                .await
                .unwrap();
            let n = b.read(&mut req).await.unwrap();
            let echo: Value = serde_json::from_slice(&req[..n]).unwrap();
            assert_eq!(echo["id"], "e1");
            assert_eq!(echo["result"], json!([]));
        });
        let r = c
            .call(
                "get_schema",
                json!(["Open_vSwitch"]),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(r["name"], "x");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn server_errors_and_closed_connections() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut c = Connection {
            stream: Stream::Unix(a),
            buf: Vec::new(),
            next_id: 1,
        };
        tokio::spawn(async move {
            let mut req = vec![0u8; 4096];
            let _ = b.read(&mut req).await.unwrap();
            b.write_all(br#"{"id":1,"result":null,"error":"unknown database"}"#)
                .await
                .unwrap();
            let _ = b.read(&mut req).await.unwrap();
        });
        let e = c
            .call("get_schema", json!(["nope"]), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, RpcError::Server(_)), "{e}");
        let e = c
            .call("echo", json!([]), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, RpcError::Closed), "{e}");
    }
}
