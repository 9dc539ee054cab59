//! DHCPv6 messages: our requests, and checked replies. Untrusted input is a
//! [`DropReason`], never a panic.

use std::net::{IpAddr, Ipv6Addr};

use dhcproto::v6::{
    Decodable, Decoder, DhcpOption, DhcpOptions, Encodable, Encoder, IAAddr, Message, MessageType,
    OptionCode, Status, IANA, ORO,
};
use ipnet::{IpNet, Ipv6Net};

use crate::lease::{Lease, INFINITE};
use crate::v4::packet::{is_domain, MIN_LEASE};
use crate::DropReason;

pub const CLIENT_PORT: u16 = 546;
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Solicit,
    Request,
    Renew,
    Rebind,
    Release,
}

/// One request.
pub struct Request6<'a> {
    pub kind: Kind,
    pub xid: u32,
    pub duid: &'a [u8],
    pub iaid: u32,
    /// Centiseconds since the exchange began.
    pub elapsed: u16,
    /// Request, Renew, Release: whom we talk to.
    pub server_duid: Option<&'a [u8]>,
    /// Request, Renew, Rebind, Release: the address in question.
    pub address: Option<Ipv6Addr>,
}

pub fn encode(r: &Request6<'_>) -> Vec<u8> {
    let mut m = Message::new_with_id(
        match r.kind {
            Kind::Solicit => MessageType::Solicit,
            Kind::Request => MessageType::Request,
            Kind::Renew => MessageType::Renew,
            Kind::Rebind => MessageType::Rebind,
            Kind::Release => MessageType::Release,
        },
        [(r.xid >> 16) as u8, (r.xid >> 8) as u8, r.xid as u8],
    );
    let o = m.opts_mut();
    o.insert(DhcpOption::ClientId(r.duid.to_vec()));
    if let Some(s) = r.server_duid {
        o.insert(DhcpOption::ServerId(s.to_vec()));
    }
    let mut ia_opts = DhcpOptions::new();
    if let Some(a) = r.address {
        ia_opts.insert(DhcpOption::IAAddr(IAAddr {
            addr: a,
            preferred_life: 0,
            valid_life: 0,
            opts: DhcpOptions::new(),
        }));
    }
    o.insert(DhcpOption::IANA(IANA {
        id: r.iaid,
        t1: 0,
        t2: 0,
        opts: ia_opts,
    }));
    o.insert(DhcpOption::ElapsedTime(r.elapsed));
    if r.kind != Kind::Release {
        o.insert(DhcpOption::ORO(ORO {
            opts: vec![OptionCode::DomainNameServers, OptionCode::DomainSearchList],
        }));
    }
    let mut buf = Vec::with_capacity(128);
    m.encode(&mut Encoder::new(&mut buf))
        .expect("encode a DHCPv6 request");
    buf
}

/// A server's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply6 {
    Advertise(Lease),
    Reply(Lease),
    /// A Reply refusing the binding (NoBinding, NotOnLink, NoAddrsAvail...).
    Refused,
}

/// Decodes a datagram from `from` that should answer transaction `xid`.
pub fn decode(
    payload: &[u8],
    from: Ipv6Addr,
    xid: u32,
    duid: &[u8],
    iaid: u32,
    now: u64,
) -> Result<Reply6, DropReason> {
    let m = std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(payload)))
        .map_err(|_| DropReason::Malformed)?
        .map_err(|_| DropReason::Malformed)?;
    if m.xid_num() != xid & 0x00ff_ffff {
        return Err(DropReason::Foreign);
    }
    let o = m.opts();
    match o.get(OptionCode::ClientId) {
        Some(DhcpOption::ClientId(c)) if c.as_slice() == duid => {}
        _ => return Err(DropReason::Foreign),
    }
    let server_duid = match o.get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(s)) if !s.is_empty() && s.len() <= 130 => s.clone(),
        _ => return Err(DropReason::Invalid),
    };
    let kind = m.msg_type();
    if !matches!(kind, MessageType::Advertise | MessageType::Reply) {
        return Err(DropReason::Foreign);
    }
    if status_failed(o) {
        return Ok(Reply6::Refused);
    }
    let ia = match o.get(OptionCode::IANA) {
        Some(DhcpOption::IANA(ia)) if ia.id == iaid => ia,
        _ => return Ok(Reply6::Refused),
    };
    if status_failed(&ia.opts) {
        return Ok(Reply6::Refused);
    }
    let Some(DhcpOption::IAAddr(a)) = ia.opts.get(OptionCode::IAAddr) else {
        return Ok(Reply6::Refused);
    };
    if a.valid_life == 0 {
        return Ok(Reply6::Refused);
    }
    if !usable(a.addr) || a.preferred_life > a.valid_life || a.valid_life < MIN_LEASE {
        return Err(DropReason::Invalid);
    }
    let valid = a.valid_life;
    let pref = a.preferred_life;
    // RFC 8415 section 21.4: zero T1/T2 leave the timing to the client;
    // 0.5 and 0.8 of the preferred lifetime are its recommendation.
    let base = if pref == INFINITE {
        valid
    } else {
        pref.max(MIN_LEASE)
    };
    let (mut t1, mut t2) = (ia.t1, ia.t2);
    if t1 == 0 || t2 == 0 || t1 > t2 || t2 > valid {
        t1 = base / 2;
        t2 = (u64::from(base) * 4 / 5) as u32;
    }
    let dns = match o.get(OptionCode::DomainNameServers) {
        Some(DhcpOption::DomainNameServers(v)) => v
            .iter()
            .copied()
            .filter(|a| usable(*a) || a.is_loopback())
            .map(IpAddr::V6)
            .collect(),
        _ => Vec::new(),
    };
    let search = match o.get(OptionCode::DomainSearchList) {
        Some(DhcpOption::DomainSearchList(names)) => names
            .iter()
            .map(|n| n.to_utf8().trim_end_matches('.').to_string())
            .filter(|s| is_domain(s))
            .collect(),
        _ => Vec::new(),
    };
    let lease = Lease {
        address: IpNet::V6(Ipv6Net::new(a.addr, 128).expect("host prefix")),
        server: IpAddr::V6(from),
        server_duid,
        routers: Vec::new(),
        routes: Vec::new(),
        dns,
        search,
        mtu: None,
        acquired_at: now,
        lease_secs: valid,
        preferred_secs: pref,
        t1,
        t2,
    };
    Ok(match kind {
        MessageType::Advertise => Reply6::Advertise(lease),
        _ => Reply6::Reply(lease),
    })
}

fn status_failed(o: &DhcpOptions) -> bool {
    matches!(o.get(OptionCode::StatusCode),
        Some(DhcpOption::StatusCode(s)) if s.status != Status::Success)
}

fn usable(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
        && a.segments()[0] & 0xffc0 != 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1];

    fn reply(kind: MessageType, xid: u32) -> Vec<u8> {
        let mut m = Message::new_with_id(kind, [(xid >> 16) as u8, (xid >> 8) as u8, xid as u8]);
        let o = m.opts_mut();
        o.insert(DhcpOption::ClientId(DUID.to_vec()));
        o.insert(DhcpOption::ServerId(vec![0, 1, 2, 3]));
        let mut ia = DhcpOptions::new();
        ia.insert(DhcpOption::IAAddr(IAAddr {
            addr: "fd00::55".parse().unwrap(),
            preferred_life: 100,
            valid_life: 120,
            opts: DhcpOptions::new(),
        }));
        o.insert(DhcpOption::IANA(IANA {
            id: 9,
            t1: 0,
            t2: 0,
            opts: ia,
        }));
        o.insert(DhcpOption::DomainNameServers(vec!["fd00::1"
            .parse()
            .unwrap()]));
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        b
    }

    #[test]
    fn a_reply_becomes_a_lease() {
        let p = reply(MessageType::Reply, 0x123456);
        let from: Ipv6Addr = "fe80::1".parse().unwrap();
        let Reply6::Reply(l) = decode(&p, from, 0x123456, DUID, 9, 0).unwrap() else {
            panic!()
        };
        assert_eq!(l.address.to_string(), "fd00::55/128");
        assert_eq!((l.t1, l.t2, l.lease_secs), (50, 80, 120));
        assert_eq!(
            decode(&p, from, 0x123457, DUID, 9, 0),
            Err(DropReason::Foreign)
        );
        assert_eq!(decode(&p, from, 0x123456, DUID, 8, 0), Ok(Reply6::Refused));
    }

    #[test]
    fn hostile_input_is_dropped_never_fatal() {
        let good = reply(MessageType::Reply, 5);
        let from: Ipv6Addr = "fe80::1".parse().unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..40_000 {
            let b: Vec<u8> = if i % 2 == 0 {
                (0..(next() % 300)).map(|_| next() as u8).collect()
            } else {
                let mut b = good.clone();
                for _ in 0..(1 + next() % 6) {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                b
            };
            if let Ok(Reply6::Reply(l) | Reply6::Advertise(l)) = decode(&b, from, 5, DUID, 9, 0) {
                assert!(l.t1 <= l.t2 && l.t2 <= l.lease_secs, "{l:?}");
            }
        }
    }
}
