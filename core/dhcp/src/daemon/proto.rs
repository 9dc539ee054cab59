//! The control protocol: one JSON request per line over a Unix stream
//! socket, answered by one JSON line. File descriptors (a guest's netns and
//! pidfd) travel with the request's bytes as `SCM_RIGHTS`, so the daemon
//! holds the very namespace the attach resolved, not a path to it.

use std::io::{self, BufRead, BufReader, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdStream;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::Interest;
use tokio::net::UnixStream;

/// Requests are small; anything bigger is refused.
pub const MAX_REQUEST: usize = 256 * 1024;
/// At most this many fds per request.
pub const MAX_FDS: usize = 4;

/// `{"service":"dhcp","op":"acquire","args":{...}}`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub service: String,
    pub op: String,
    #[serde(default)]
    pub args: Value,
}

/// `{"ok":true,"result":...}` or `{"ok":false,"error":"...","kind":"usage"}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default)]
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `usage`, `failed` or `timeout`: the exit code the CLI should give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Reads one request line and the fds that came with it (daemon side).
pub async fn read_request(stream: &UnixStream) -> io::Result<(Request, Vec<OwnedFd>)> {
    let mut data = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream
            .async_io(Interest::READABLE, || {
                let (n, got) = pipework_sys::fdpass::recv_with_fds::<MAX_FDS>(stream, &mut chunk)?;
                fds.extend(got);
                Ok(n)
            })
            .await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no request"));
        }
        data.extend_from_slice(&chunk[..n]);
        if fds.len() > MAX_FDS || data.len() > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large",
            ));
        }
        if let Some(end) = data.iter().position(|b| *b == b'\n') {
            let req = serde_json::from_slice(&data[..end])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            return Ok((req, fds));
        }
    }
}

/// Writes one response line (daemon side).
pub async fn write_response(stream: &UnixStream, r: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut off = 0;
    while off < line.len() {
        stream.writable().await?;
        match stream.try_write(&line[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends a request with `fds` (client side, blocking).
pub fn send_request(s: &StdStream, req: &Request, fds: &[RawFd]) -> io::Result<()> {
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    let mut off = sendmsg::<()>(
        s.as_raw_fd(),
        &[IoSlice::new(&line)],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    while off < line.len() {
        off += sendmsg::<()>(
            s.as_raw_fd(),
            &[IoSlice::new(&line[off..])],
            &[],
            MsgFlags::empty(),
            None,
        )
        .map_err(io::Error::from)?;
    }
    Ok(())
}

/// Reads the response line (client side, blocking).
pub fn read_response(s: &StdStream) -> io::Result<Response> {
    let mut line = String::new();
    BufReader::new(io::Read::take(s, MAX_REQUEST as u64)).read_line(&mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection without answering",
        ));
    }
    serde_json::from_str(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
