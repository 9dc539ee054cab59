//! One rtnetlink socket and its requests: send, then read the replies that
//! carry the request's sequence number up to its acknowledgement (or, for
//! a dump, `NLMSG_DONE`).
//!
//! Our own rather than rtnetlink's `Connection` (netlink-proto), which we
//! used before: that one is a task of its own fed through channels, and
//! every request crossed it twice, with a wake-up and a poll of the
//! runtime each way. The kernel answers rtnetlink requests inside the
//! `sendmsg` call (a dump's next part inside the `recvmsg` that makes
//! room for it), so the replies are there as soon as the request is sent:
//! this reads them at once and waits for readiness only if the socket is
//! empty, which does not happen with the kernel we know (the wait is there
//! for one that would answer later). Three system calls per request
//! instead of six, no task, no channel. Messages are still built and
//! parsed by netlink-packet-route.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_DUMP};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::Socket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::error::NlError;

/// The largest datagram read (as netlink-proto's): a dump part is at most
/// 32 KiB, a link with its VFs described (the SR-IOV driver's lookups) a
/// few hundred bytes per VF. A longer one fails its request with an error
/// saying so, rather than being read cut short.
const RECV_BUFFER: usize = 64 * 1024;

pub(super) struct Conn {
    sock: AsyncFd<Socket>,
    seq: AtomicU32,
    /// One request at a time on the socket (held across the only await
    /// points, the readiness waits), and its receive buffer.
    buf: tokio::sync::Mutex<Vec<u8>>,
}

/// What one request got: the messages before its end, or the kernel's
/// error.
pub(super) enum Replies {
    Done(Vec<RouteNetlinkMessage>),
    Error(netlink_packet_core::ErrorMessage),
}

impl Conn {
    /// Takes a socket opened in the namespace it serves. Needs a tokio
    /// runtime, and is to be used on that runtime only.
    pub(super) fn new(sock: Socket) -> io::Result<Conn> {
        sock.set_non_blocking(true)?;
        // SAFETY: the AsyncFd owns the socket, so its descriptor can be
        // neither closed nor replaced while it is registered.
        let sock = unsafe {
            AsyncFd::register_with_interest(sock, Interest::READABLE | Interest::WRITABLE)
        }?;
        Ok(Conn {
            sock,
            seq: AtomicU32::new(0),
            buf: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    /// Sends `req` (its header's flags already set) and collects its
    /// replies.
    pub(super) async fn request(
        &self,
        mut req: NetlinkMessage<RouteNetlinkMessage>,
    ) -> io::Result<Replies> {
        let mut buf = self.buf.lock().await;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        req.header.sequence_number = seq;
        let dump = req.header.flags & NLM_F_DUMP == NLM_F_DUMP;
        buf.clear();
        buf.resize(req.buffer_len(), 0);
        req.serialize(&mut buf[..]);
        self.send(&buf).await?;
        let mut out = Vec::new();
        loop {
            self.recv(&mut buf).await?;
            let mut at = 0;
            while at + 16 <= buf.len() {
                let len =
                    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
                if len < 16 || at + len > buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("truncated netlink message ({len} bytes at {at})"),
                    ));
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..at + len])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                at += (len + 3) & !3;
                // A reply to an earlier request that was given up (its
                // future dropped) before its end: not ours.
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Ok(Replies::Error(e));
                    }
                    // The acknowledgement ends a request; a dump ends with
                    // NLMSG_DONE.
                    NetlinkPayload::Error(_) if !dump => return Ok(Replies::Done(out)),
                    NetlinkPayload::Done(_) => return Ok(Replies::Done(out)),
                    _ => {}
                }
            }
        }
    }

    async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.get_ref().send(bytes, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.sock.writable().await?.clear_ready();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One datagram into `buf` (replacing its contents).
    async fn recv(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        loop {
            buf.clear();
            buf.reserve(RECV_BUFFER);
            let room = buf.capacity();
            match self.sock.get_ref().recv(buf, libc::MSG_TRUNC) {
                Ok(n) if n > room => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a netlink reply of {n} bytes, longer than {room}"),
                    ))
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.sock.readable().await?.clear_ready();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl NlError {
    /// A failure of the socket itself (not an answer of the kernel's).
    pub(super) fn io(op: String, label: &str, e: io::Error) -> NlError {
        NlError::other(op, label, e.to_string())
    }
}
