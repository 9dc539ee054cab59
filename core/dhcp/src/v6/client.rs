//! The DHCPv6 exchanges for one IA_NA, with RFC 8415 section 15
//! retransmission (doubling from 1 s, capped, with jitter).

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::debug;

use super::packet::{self, Kind, Reply6, Request6, ALL_SERVERS, SERVER_PORT};
use crate::lease::{Lease, LeaseSpec};
use crate::v4::Outcome;
use crate::{DropReason, Drops};
use pipework_base::state::now_secs;
use pipework_sys::netns::Netns;

pub struct Client6 {
    sock: UdpSocket,
    spec: Arc<LeaseSpec>,
    drops: Arc<Drops>,
}

fn backoff(cap: Duration) -> impl Iterator<Item = Duration> {
    (0..).map(move |i: u32| {
        let base = Duration::from_millis(1000u64 << i.min(7)).min(cap);
        let mut r = [0u8; 1];
        pipework_model::random::fill(&mut r);
        // RAND in -0.1..+0.1 of the timeout.
        base.mul_f64(0.9 + f64::from(r[0]) / 255.0 * 0.2)
    })
}

/// DHCPv6 transaction ids are 24 bits.
fn random_xid() -> u32 {
    pipework_model::random::u32() & 0x00ff_ffff
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
    }
}

impl Client6 {
    pub async fn open(ns: &Netns, spec: Arc<LeaseSpec>, drops: Arc<Drops>) -> io::Result<Client6> {
        let ifindex = spec.ifindex;
        let fd = ns
            .run_async(move || pipework_sys::dhcp6_socket::open(ifindex))
            .await??;
        let sock = UdpSocket::from_std(std::net::UdpSocket::from(fd))?;
        Ok(Client6 { sock, spec, drops })
    }

    fn request<'a>(&'a self, kind: Kind, xid: u32, elapsed: u16) -> Request6<'a> {
        Request6 {
            kind,
            xid,
            duid: &self.spec.client_id,
            iaid: self.spec.iaid,
            elapsed,
            server_duid: None,
            address: None,
        }
    }

    async fn exchange<T>(
        &self,
        xid: u32,
        build: impl Fn(u16) -> Vec<u8>,
        accept: impl Fn(Reply6) -> Option<T>,
        schedule: impl Iterator<Item = Duration>,
        until: Option<Instant>,
    ) -> Option<T> {
        let start = Instant::now();
        let dst = SocketAddr::V6(SocketAddrV6::new(
            ALL_SERVERS,
            SERVER_PORT,
            0,
            self.spec.ifindex,
        ));
        let mut buf = vec![0u8; 4096];
        for wait in schedule {
            let cs = (start.elapsed().as_millis() / 10).min(u128::from(u16::MAX)) as u16;
            if let Err(e) = self.sock.send_to(&build(cs), dst).await {
                // Typically the link-local address is still tentative.
                debug!(ifname = %self.spec.ifname, "DHCPv6 send failed: {e}");
            }
            let mut step_end = Instant::now() + wait;
            if let Some(u) = until {
                step_end = step_end.min(u);
            }
            loop {
                let (n, from) =
                    match tokio::time::timeout_at(step_end, self.sock.recv_from(&mut buf)).await {
                        Err(_) => break,
                        Ok(Err(e)) => {
                            debug!(ifname = %self.spec.ifname, "DHCPv6 receive failed: {e}");
                            tokio::time::sleep_until(step_end).await;
                            break;
                        }
                        Ok(Ok(x)) => x,
                    };
                let SocketAddr::V6(from) = from else { continue };
                if from.port() != SERVER_PORT {
                    self.drops.count(DropReason::Foreign);
                    continue;
                }
                match packet::decode(
                    &buf[..n],
                    *from.ip(),
                    xid,
                    &self.spec.client_id,
                    self.spec.iaid,
                    now_secs(),
                ) {
                    Ok(r) => match accept(r) {
                        Some(t) => return Some(t),
                        None => self.drops.count(DropReason::Foreign),
                    },
                    Err(why) => self.drops.count(why),
                }
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return None;
            }
        }
        None
    }

    /// Solicit, then Request what was advertised; over again on refusal.
    pub async fn obtain(&self, until: Option<Instant>) -> Option<Lease> {
        loop {
            let xid = random_xid();
            let adv = self
                .exchange(
                    xid,
                    |cs| packet::encode(&self.request(Kind::Solicit, xid, cs)),
                    |r| match r {
                        Reply6::Advertise(l) => Some(l),
                        _ => None,
                    },
                    backoff(Duration::from_secs(64)),
                    until,
                )
                .await?;
            let xid = random_xid();
            let addr = v6(adv.address.addr());
            let got = self
                .exchange(
                    xid,
                    |cs| {
                        let mut r = self.request(Kind::Request, xid, cs);
                        r.server_duid = Some(&adv.server_duid);
                        r.address = Some(addr);
                        packet::encode(&r)
                    },
                    |r| match r {
                        Reply6::Reply(l) => Some(Some(l)),
                        Reply6::Refused => Some(None),
                        Reply6::Advertise(_) => None,
                    },
                    backoff(Duration::from_secs(30)).take(10),
                    until,
                )
                .await;
            match got {
                Some(Some(l)) => return Some(l),
                _ if until.is_some_and(|u| Instant::now() >= u) => return None,
                _ => debug!(ifname = %self.spec.ifname, "DHCPv6 request refused or unanswered"),
            }
        }
    }

    /// Renew (to the server that granted it) or Rebind (to any) until `until`.
    pub async fn extend(&self, lease: &Lease, rebinding: bool, until: Instant) -> Outcome {
        let xid = random_xid();
        let addr = v6(lease.address.addr());
        self.exchange(
            xid,
            |cs| {
                let kind = if rebinding { Kind::Rebind } else { Kind::Renew };
                let mut r = self.request(kind, xid, cs);
                if !rebinding {
                    r.server_duid = Some(&lease.server_duid);
                }
                r.address = Some(addr);
                packet::encode(&r)
            },
            |r| match r {
                Reply6::Reply(l) => Some(Outcome::Ack(l)),
                Reply6::Refused => Some(Outcome::Nak),
                Reply6::Advertise(_) => None,
            },
            backoff(Duration::from_secs(60)),
            Some(until),
        )
        .await
        .unwrap_or(Outcome::Silence)
    }

    /// Release, waiting briefly for the server's Reply (RFC 8415 section
    /// 18.2.7 allows giving up).
    pub async fn release(&self, lease: &Lease) {
        let xid = random_xid();
        let addr = v6(lease.address.addr());
        let until = Instant::now() + Duration::from_secs(2);
        self.exchange(
            xid,
            |cs| {
                let mut r = self.request(Kind::Release, xid, cs);
                r.server_duid = Some(&lease.server_duid);
                r.address = Some(addr);
                packet::encode(&r)
            },
            |r| match r {
                Reply6::Advertise(_) => None,
                _ => Some(()),
            },
            backoff(Duration::from_secs(1)).take(3),
            Some(until),
        )
        .await;
    }
}
