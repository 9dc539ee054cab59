//! The DHCPv4 exchanges of RFC 2131 section 4.4: obtaining a lease
//! (DISCOVER/OFFER/REQUEST/ACK), renewing, rebinding and releasing it, each
//! with retransmission and exponential back-off. The supervisor in
//! [`crate::supervise`] decides when each one runs.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::packet::{self, Kind, Reply4, Request4};
use crate::lease::{Lease, LeaseSpec};
use crate::Drops;
use pipework_base::state::now_secs;
use pipework_sys::dhcp4_socket::Socket4;
use pipework_sys::netns::Netns;

/// How a renewal, a rebind or a request ended.
#[derive(Debug)]
pub enum Outcome {
    Ack(Lease),
    /// The server refused: the lease is gone, start over.
    Nak,
    /// Nobody answered before the deadline.
    Silence,
}

/// A DHCPv4 client for one interface of one guest.
pub struct Client4 {
    sock: Socket4,
    spec: Arc<LeaseSpec>,
    drops: Arc<Drops>,
}

/// Retransmission delays: 1 s doubling to 64 s (RFC 2131 section 4.1 asks
/// for 4 s first; links that just came up lose the first packet often enough
/// that a faster start pays), each with up to ±1/8 random jitter.
fn backoff() -> impl Iterator<Item = Duration> {
    (0..).map(|i: u32| {
        let base = 1000u64 << i.min(6);
        let mut r = [0u8; 2];
        pipework_model::random::fill(&mut r);
        let jitter = u64::from(u16::from_le_bytes(r)) % (base / 4 + 1);
        Duration::from_millis(base - base / 8 + jitter)
    })
}

/// The MTU bound when the guest link's MTU is unknown: Ethernet's.
const DEFAULT_MTU: u32 = 1500;

/// Waits between restarts after a NAK: 1 s doubling to 60 s, each with up
/// to ±1/8 random jitter. RFC 2131 section 4.4.4 asks for exponential
/// back-off on retransmission; a server that NAKs every REQUEST would
/// otherwise get a DISCOVER and a REQUEST many times a second for as long
/// as it keeps refusing.
fn nak_backoff() -> impl Iterator<Item = Duration> {
    (0..).map(|i: u32| {
        let base = (1000u64 << i.min(6)).min(60_000);
        let mut r = [0u8; 2];
        pipework_model::random::fill(&mut r);
        let jitter = u64::from(u16::from_le_bytes(r)) % (base / 4 + 1);
        Duration::from_millis(base - base / 8 + jitter)
    })
}

/// Renewal and rebinding retransmit at half the time left, at least every
/// 60 s in RFC 2131 section 4.4.5; shorter floors keep short test leases
/// alive too.
fn halving(until: Instant) -> impl Iterator<Item = Duration> {
    std::iter::from_fn(move || {
        let left = until.saturating_duration_since(Instant::now());
        Some((left / 2).clamp(Duration::from_secs(2), Duration::from_secs(60)))
    })
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

enum Dest {
    Broadcast(Ipv4Addr),
    Unicast(Ipv4Addr),
}

impl Client4 {
    pub async fn open(
        ns: &Netns,
        spec: Arc<LeaseSpec>,
        drops: Arc<Drops>,
    ) -> std::io::Result<Client4> {
        let sock = Socket4::open(ns, spec.ifindex).await?;
        Ok(Client4 { sock, spec, drops })
    }

    fn request<'a>(&'a self, kind: Kind, xid: u32, secs: u16) -> Request4<'a> {
        Request4 {
            kind,
            xid,
            mac: self.spec.mac,
            client_id: &self.spec.client_id,
            hostname: &self.spec.hostname,
            secs,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: None,
            server_id: None,
        }
    }

    /// Sends `build(secs)` on each step of `schedule` until `accept` takes a
    /// reply or `until` passes.
    async fn exchange<T>(
        &self,
        xid: u32,
        dest: Dest,
        build: impl Fn(u16) -> Vec<u8>,
        accept: impl Fn(Reply4) -> Option<T>,
        schedule: impl Iterator<Item = Duration>,
        until: Option<Instant>,
    ) -> Option<T> {
        let start = Instant::now();
        let mut buf = vec![0u8; 2048];
        for wait in schedule {
            let secs = start.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
            let msg = build(secs);
            let sent = match dest {
                Dest::Broadcast(src) => {
                    self.sock
                        .broadcast(&packet::ipv4_udp(src, std::net::Ipv4Addr::BROADCAST, &msg))
                }
                Dest::Unicast(server) => self.sock.unicast(server, &msg),
            };
            if let Err(e) = sent {
                // A link without carrier, a route gone: try again later.
                debug!(ifname = %self.spec.ifname, "DHCPv4 send failed: {e}");
            }
            let mut step_end = Instant::now() + wait;
            if let Some(u) = until {
                step_end = step_end.min(u);
            }
            loop {
                let got = tokio::time::timeout_at(step_end, self.sock.recv(&mut buf)).await;
                let n = match got {
                    Err(_) => break,
                    Ok(Err(e)) => {
                        warn!(ifname = %self.spec.ifname, "DHCPv4 receive failed: {e}");
                        tokio::time::sleep_until(step_end).await;
                        break;
                    }
                    Ok(Ok(n)) => n,
                };
                let want = packet::Expect {
                    xid,
                    mac: self.spec.mac,
                    max_mtu: self.spec.link_mtu.unwrap_or(DEFAULT_MTU),
                };
                match packet::decode_frame(&buf[..n], &want, now_secs()) {
                    Ok(d) => {
                        if d.ignored_options > 0 {
                            debug!(ifname = %self.spec.ifname, n = d.ignored_options, "DHCPv4 options ignored");
                            self.drops.count_ignored_options(d.ignored_options);
                        }
                        match accept(d.reply) {
                            Some(t) => return Some(t),
                            None => self.drops.count(crate::DropReason::Foreign),
                        }
                    }
                    Err(why) => {
                        debug!(ifname = %self.spec.ifname, ?why, "DHCPv4 packet dropped");
                        self.drops.count(why);
                    }
                }
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return None;
            }
        }
        None
    }

    /// INIT to BOUND: discovers a server and requests what it offers,
    /// starting over after a NAK or silence, until `until` (forever when
    /// `None`).
    pub async fn obtain(&self, until: Option<Instant>) -> Option<Lease> {
        let mut after_nak = nak_backoff();
        loop {
            let xid = pipework_model::random::u32();
            let offer = self
                .exchange(
                    xid,
                    Dest::Broadcast(Ipv4Addr::UNSPECIFIED),
                    |secs| packet::encode(&self.request(Kind::Discover, xid, secs)),
                    |r| match r {
                        Reply4::Offer(l) => Some(l),
                        _ => None,
                    },
                    backoff(),
                    until,
                )
                .await?;
            let (addr, server) = (v4(offer.address.addr()), v4(offer.server));
            debug!(ifname = %self.spec.ifname, %addr, %server, "DHCPv4 offer");
            // SELECTING's REQUEST: broadcast, naming the chosen server so
            // the others withdraw their offers. Four tries, then start over.
            let outcome = self
                .exchange(
                    xid,
                    Dest::Broadcast(Ipv4Addr::UNSPECIFIED),
                    |secs| {
                        let mut r = self.request(Kind::Request, xid, secs);
                        r.requested = Some(addr);
                        r.server_id = Some(server);
                        packet::encode(&r)
                    },
                    |r| match r {
                        Reply4::Ack(l) if l.address.addr() == IpAddr::V4(addr) => {
                            Some(Outcome::Ack(l))
                        }
                        Reply4::Nak { server: s } if s.is_none_or(|s| s == server) => {
                            Some(Outcome::Nak)
                        }
                        _ => None,
                    },
                    backoff().take(4),
                    until,
                )
                .await;
            match outcome {
                Some(Outcome::Ack(l)) => return Some(l),
                _ if until.is_some_and(|u| Instant::now() >= u) => return None,
                Some(Outcome::Nak) => {
                    // Only NAKs back off: silence already cost the four
                    // retransmissions above.
                    let wait = after_nak.next().unwrap_or(Duration::from_secs(60));
                    debug!(ifname = %self.spec.ifname, ?wait, "DHCPv4 request refused: starting over after a pause");
                    let mut at = Instant::now() + wait;
                    if let Some(u) = until {
                        at = at.min(u);
                    }
                    tokio::time::sleep_until(at).await;
                }
                _ => debug!(ifname = %self.spec.ifname, "DHCPv4 request unanswered"),
            }
        }
    }

    /// RENEWING (unicast to the server that granted the lease) or REBINDING
    /// (broadcast to any server) until `until`.
    pub async fn extend(&self, lease: &Lease, rebinding: bool, until: Instant) -> Outcome {
        let xid = pipework_model::random::u32();
        let ours = v4(lease.address.addr());
        let server = v4(lease.server);
        let dest = if rebinding {
            Dest::Broadcast(ours)
        } else {
            Dest::Unicast(server)
        };
        self.exchange(
            xid,
            dest,
            |secs| {
                let mut r = self.request(Kind::Request, xid, secs);
                r.ciaddr = ours;
                packet::encode(&r)
            },
            |r| match r {
                Reply4::Ack(l) => Some(Outcome::Ack(l)),
                Reply4::Nak { .. } => Some(Outcome::Nak),
                Reply4::Offer(_) => None,
            },
            halving(until),
            Some(until),
        )
        .await
        .unwrap_or(Outcome::Silence)
    }

    /// Gives the address back (RFC 2131 section 4.4.6): one unicast
    /// message, which the server does not answer.
    pub async fn release(&self, lease: &Lease) {
        let mut r = self.request(Kind::Release, pipework_model::random::u32(), 0);
        r.ciaddr = v4(lease.address.addr());
        r.server_id = Some(v4(lease.server));
        if let Err(e) = self.sock.unicast(v4(lease.server), &packet::encode(&r)) {
            warn!(ifname = %self.spec.ifname, "DHCPv4 release not sent: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_after_naks_back_off_to_a_cap() {
        let waits: Vec<u64> = nak_backoff()
            .take(12)
            .map(|d| d.as_millis() as u64)
            .collect();
        let bases = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60];
        for (w, b) in waits.iter().zip(bases) {
            let b = b * 1000;
            assert!(*w >= b - b / 8 && *w <= b + b / 8, "{waits:?}");
        }
        // Ten seconds hold four rounds at most.
        let mut t = 0;
        let rounds = 1 + waits
            .iter()
            .take_while(|w| {
                t += **w;
                t < 10_000
            })
            .count();
        assert!(rounds <= 4, "{waits:?}");
    }
}
