//! An ICMP echo from inside a guest's namespace: the witness that an
//! attachment carries traffic (`pipework demo` shows it).
//!
//! The socket is a raw ICMP socket opened on a thread that has entered the
//! namespace ([`Netns::run_async`]); a datagram ICMP socket would need
//! `net.ipv4.ping_group_range`, which a fresh namespace leaves closed.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
    SockType, SockaddrIn,
};
use nix::sys::time::{TimeVal, TimeValLike};

use pipework_base::error::{Context, Error, Result};
use pipework_sys::netns::Netns;

/// A request goes out again if no reply came within this.
const RESEND: Duration = Duration::from_millis(500);
/// How long one `recv` waits before the loop looks at the clock again.
const POLL: Duration = Duration::from_millis(100);
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// Sends ICMP echo requests to `dst` from inside `ns`, one every half
/// second until one is answered or `timeout` passes, and returns that
/// echo's round trip: from just before its send to its reply's arrival.
pub async fn echo(ns: &Netns, dst: Ipv4Addr, timeout: Duration) -> Result<Duration> {
    ns.run_async(move || echo_here(dst, timeout))
        .await
        .step("ping")?
        .map_err(|e| Error::failed(format!("no reply from {dst}")).with_source(e))
}

/// [`echo`] from the calling thread's namespace.
fn echo_here(dst: Ipv4Addr, timeout: Duration) -> std::io::Result<Duration> {
    let sock: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Icmp,
    )?;
    setsockopt(
        &sock,
        sockopt::ReceiveTimeout,
        &TimeVal::milliseconds(POLL.as_millis() as i64),
    )?;
    let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
    // A raw socket sees every ICMP message the namespace receives: the
    // identifier tells our replies from others'.
    let id = (std::process::id() & 0xffff) as u16;
    let start = Instant::now();
    // Send time of each sequence number, taken just before its send: on a
    // veth the reply is often queued before `sendto` even returns.
    let mut sent: Vec<Instant> = Vec::new();
    let mut buf = [0u8; 1500];
    while start.elapsed() < timeout {
        if sent.last().is_none_or(|t| t.elapsed() >= RESEND) {
            let seq = u16::try_from(sent.len()).unwrap_or(u16::MAX);
            let pkt = request(id, seq);
            sent.push(Instant::now());
            sendto(sock.as_raw_fd(), &pkt, &to, MsgFlags::empty())?;
        }
        let n = match recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let arrived = Instant::now();
        if let Some(seq) = reply_seq(&buf[..n], id, dst) {
            if let Some(t) = sent.get(usize::from(seq)) {
                return Ok(arrived.duration_since(*t));
            }
        }
    }
    Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// An echo request (RFC 792) with its checksum.
fn request(id: u16, seq: u16) -> Vec<u8> {
    let mut pkt = vec![ECHO_REQUEST, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"pipework ping");
    let sum = checksum(&pkt);
    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    pkt
}

/// The sequence number of `packet` (an IPv4 datagram as a raw socket
/// delivers it) if it is an echo reply to us from `from`.
fn reply_seq(packet: &[u8], id: u16, from: Ipv4Addr) -> Option<u16> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let src = packet.get(12..16)?;
    let icmp = packet.get(ihl..ihl + 8)?;
    (src == from.octets() && icmp[0] == ECHO_REPLY && icmp[4..6] == id.to_be_bytes())
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// The Internet checksum (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_checks_out() {
        let p = request(0x1234, 7);
        assert_eq!(p[0], ECHO_REQUEST);
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&p), 0);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn only_our_replies_count() {
        let from = Ipv4Addr::new(192, 0, 2, 2);
        let mut ip = vec![0x45u8, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&from.octets());
        ip.extend_from_slice(&[192, 0, 2, 1]);
        let reply = |typ: u8, id: u16| {
            let mut p = ip.clone();
            p.extend_from_slice(&[typ, 0, 0, 0]);
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&3u16.to_be_bytes());
            p
        };
        assert_eq!(reply_seq(&reply(ECHO_REPLY, 9), 9, from), Some(3));
        assert_eq!(reply_seq(&reply(ECHO_REPLY, 8), 9, from), None);
        assert_eq!(reply_seq(&reply(ECHO_REQUEST, 9), 9, from), None);
        assert_eq!(
            reply_seq(&reply(ECHO_REPLY, 9), 9, Ipv4Addr::LOCALHOST),
            None
        );
        assert_eq!(reply_seq(&ip[..10], 9, from), None);
        assert_eq!(reply_seq(&[], 9, from), None);
    }
}
