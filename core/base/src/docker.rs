//! A small client for the Docker Engine API (also served by Podman), over its
//! unix socket or plain TCP.
//!
//! Why our own and not hyper with a unix connector: pipework needs three
//! GETs (`/containers/<id>/json`, `/containers/json`, the `/events`
//! stream), HTTP/1.1 with `Connection: close`, and the chunked decoding of
//! a body; no TLS, no pooling, no request bodies.
//! hyper 1 for that takes hyper, hyper-util (legacy client), http-body-util
//! and a unix connector (hyperlocal): 13 crates this workspace does not have
//! (hyper, hyper-util, http, http-body, http-body-util, httparse, httpdate,
//! hyperlocal, tower-service, want, try-lock, atomic-waker, hex), compiled
//! into every `pipework` for a path most attaches never take (only a guest
//! named as a container does), and an API that moves between majors. Ours is
//! the request line, the status line, headers up to the blank line, and a
//! chunk decoder: unit-tested below, and run against real Podman by the
//! container and reconciler tests of the suite. Should
//! pipework ever need TLS (`DOCKER_HOST=tcp://` with certificates), that is
//! the moment to switch.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::error::{Error, Result};

/// Where the engine listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl Endpoint {
    /// `DOCKER_HOST` if set, else Docker's socket, else Podman's rootful socket.
    pub fn from_env() -> Result<Endpoint> {
        if let Ok(h) = std::env::var("DOCKER_HOST") {
            if !h.is_empty() {
                return Endpoint::parse(&h);
            }
        }
        for p in ["/var/run/docker.sock", "/run/podman/podman.sock"] {
            if std::path::Path::new(p).exists() {
                return Ok(Endpoint::Unix(p.into()));
            }
        }
        Ok(Endpoint::Unix("/var/run/docker.sock".into()))
    }

    pub fn parse(s: &str) -> Result<Endpoint> {
        if let Some(p) = s.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(p.into()));
        }
        if let Some(a) = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
        {
            return Ok(Endpoint::Tcp(a.trim_end_matches('/').to_string()));
        }
        Err(Error::usage(format!(
            "bad DOCKER_HOST '{s}': expected unix:///path or tcp://host:port"
        )))
    }
}

/// What we read from `/containers/<id>/json`.
#[derive(Clone, Debug, Deserialize)]
pub struct ContainerInfo {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "State")]
    pub state: ContainerState,
    #[serde(rename = "Config", default)]
    pub config: ContainerConfig,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ContainerState {
    #[serde(rename = "Pid", default)]
    pub pid: i64,
    #[serde(rename = "Running", default)]
    pub running: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Hostname", default)]
    pub hostname: String,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

impl ContainerInfo {
    /// The name without Docker's leading slash.
    pub fn short_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }
}

/// Response of a single request.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct DockerClient {
    endpoint: Endpoint,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl DockerClient {
    pub fn new(endpoint: Endpoint) -> DockerClient {
        DockerClient { endpoint }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match &self.endpoint {
            Endpoint::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
            Endpoint::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a).await?),
        })
    }

    /// One GET request, whole body.
    pub async fn get(&self, path: &str) -> Result<Response> {
        let fail = |e: std::io::Error| {
            Error::failed(format!("Docker API at {}: GET {path}", self.endpoint)).with_source(e)
        };
        let s = tokio::time::timeout(Duration::from_secs(10), async {
            let mut s = self.connect().await?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: pipework\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await?;
            let mut r = BufReader::new(s);
            let (status, chunked, len) = read_head(&mut r).await?;
            let body = read_body(&mut r, chunked, len).await?;
            Ok::<_, std::io::Error>(Response { status, body })
        })
        .await
        .map_err(|_| fail(std::io::Error::from(std::io::ErrorKind::TimedOut)))?;
        s.map_err(fail)
    }

    /// Inspects one container; `Ok(None)` when the engine does not know it.
    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>> {
        let r = self
            .get(&format!("/containers/{}/json", encode_path(name)))
            .await?;
        match r.status {
            200 => serde_json::from_slice(&r.body).map(Some).map_err(|e| {
                Error::failed(format!(
                    "Docker API at {}: bad container JSON",
                    self.endpoint
                ))
                .with_source(e)
            }),
            404 => Ok(None),
            s => Err(Error::failed(format!(
                "Docker API at {}: inspecting {name} gave HTTP {s}: {}",
                self.endpoint,
                String::from_utf8_lossy(&r.body).trim()
            ))),
        }
    }

    /// The IDs of the running containers.
    pub async fn running(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Item {
            #[serde(rename = "Id")]
            id: String,
        }
        let r = self.get("/containers/json").await?;
        if r.status != 200 {
            return Err(Error::failed(format!(
                "Docker API at {}: listing containers gave HTTP {}",
                self.endpoint, r.status
            )));
        }
        let items: Vec<Item> = serde_json::from_slice(&r.body).map_err(|e| {
            Error::failed(format!(
                "Docker API at {}: bad container list",
                self.endpoint
            ))
            .with_source(e)
        })?;
        Ok(items.into_iter().map(|i| i.id).collect())
    }

    /// Opens `GET path` and returns a reader positioned at the start of the
    /// body, with chunked decoding done line by line by [`EventStream`].
    pub async fn stream(&self, path: &str) -> Result<EventStream> {
        let fail = |e: std::io::Error| {
            Error::failed(format!("Docker API at {}: GET {path}", self.endpoint)).with_source(e)
        };
        let mut s = self.connect().await.map_err(fail)?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: pipework\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(fail)?;
        let mut r = BufReader::new(s);
        let (status, chunked, _) = read_head(&mut r).await.map_err(fail)?;
        if status != 200 {
            return Err(Error::failed(format!(
                "Docker API at {}: GET {path} gave HTTP {status}",
                self.endpoint
            )));
        }
        Ok(EventStream {
            r,
            chunked,
            pending: Vec::new(),
        })
    }
}

/// A stream of newline-delimited JSON objects (the `/events` endpoint).
pub struct EventStream {
    r: BufReader<Box<dyn Stream>>,
    chunked: bool,
    pending: Vec<u8>,
}

impl EventStream {
    /// The next JSON line, or `None` at the end of the stream.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                let line = line[..line.len() - 1].to_vec();
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                return Ok(Some(line));
            }
            let more = if self.chunked {
                read_chunk(&mut self.r).await?
            } else {
                let mut buf = vec![0u8; 8192];
                let n = self.r.read(&mut buf).await?;
                buf.truncate(n);
                (n > 0).then_some(buf)
            };
            match more {
                Some(b) => self.pending.extend_from_slice(&b),
                None => {
                    if self.pending.iter().any(|b| !b.is_ascii_whitespace()) {
                        return Ok(Some(std::mem::take(&mut self.pending)));
                    }
                    return Ok(None);
                }
            }
        }
    }
}

fn encode_path(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn read_head<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
) -> std::io::Result<(u16, bool, Option<usize>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not an HTTP response"))?;
    let mut chunked = false;
    let mut len = None;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                len = v.parse().ok();
            }
        }
    }
    Ok((status, chunked, len))
}

async fn read_chunk<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let size_text = line.trim().split(';').next().unwrap_or("");
    let size = usize::from_str_radix(size_text, 16)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
    if size == 0 {
        // Trailers end with an empty line.
        line.clear();
        r.read_line(&mut line).await?;
        return Ok(None);
    }
    let mut buf = vec![0u8; size + 2];
    r.read_exact(&mut buf).await?;
    buf.truncate(size);
    Ok(Some(buf))
}

async fn read_body<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    chunked: bool,
    len: Option<usize>,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if chunked {
        while let Some(c) = read_chunk(r).await? {
            body.extend_from_slice(&c);
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body).await?;
    } else {
        r.read_to_end(&mut body).await?;
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let (s, c, l) = read_head(&mut r).await.unwrap();
        assert_eq!((s, c, l), (200, true, None));
        assert_eq!(read_body(&mut r, c, l).await.unwrap(), b"hello world");
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("unix:///run/x.sock").unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
        assert!(Endpoint::parse("ssh://x").is_err());
        assert_eq!(encode_path("a/b c"), "a%2Fb%20c");
    }
}
