//! DHCPv4 messages: building our requests, and turning a received frame into
//! a checked reply. Everything from the network is untrusted: any defect is a
//! [`DropReason`], never a panic.
//!
//! Long file: each decoding rule has its unit test next to it; the tests
//! are half of the file.

use std::net::{IpAddr, Ipv4Addr};

use dhcproto::v4::{
    Decodable, Decoder, DhcpOption, Encodable, Encoder, Flags, Message, MessageType, Opcode,
    OptionCode,
};
use ipnet::{IpNet, Ipv4Net};

use super::wire;
use crate::lease::Lease;
use crate::DropReason;
use pipework_model::MacAddr;

pub const SERVER_PORT: u16 = 67;
/// The shortest lease accepted, in seconds.
pub const MIN_LEASE: u32 = 10;
pub const CLIENT_PORT: u16 = 68;

/// The message kinds a client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Discover,
    Request,
    Release,
}

/// One request, everything explicit.
#[derive(Clone, Debug)]
pub struct Request4<'a> {
    pub kind: Kind,
    pub xid: u32,
    pub mac: MacAddr,
    pub client_id: &'a [u8],
    pub hostname: &'a str,
    /// Seconds since the exchange began.
    pub secs: u16,
    /// Our address in RENEWING, REBINDING and RELEASE.
    pub ciaddr: Ipv4Addr,
    /// Option 50, in SELECTING's REQUEST.
    pub requested: Option<Ipv4Addr>,
    /// Option 54, in SELECTING's REQUEST and in RELEASE.
    pub server_id: Option<Ipv4Addr>,
}

/// The options we ask the server for (option 55).
const WANTED: &[OptionCode] = &[
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::DomainName,
    OptionCode::InterfaceMtu,
    OptionCode::BroadcastAddr,
    OptionCode::AddressLeaseTime,
    OptionCode::Renewal,
    OptionCode::Rebinding,
    OptionCode::DomainSearch,
    OptionCode::ClasslessStaticRoute,
];

/// Encodes a request as the UDP payload.
pub fn encode(r: &Request4<'_>) -> Vec<u8> {
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(r.xid, r.ciaddr, zero, zero, zero, &r.mac.0);
    m.set_opcode(Opcode::BootRequest);
    m.set_secs(r.secs);
    if r.ciaddr.is_unspecified() {
        // We cannot receive unicast before we have an address: ask the
        // server to broadcast its answer (RFC 2131 section 4.1).
        m.set_flags(Flags::default().set_broadcast());
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(match r.kind {
        Kind::Discover => MessageType::Discover,
        Kind::Request => MessageType::Request,
        Kind::Release => MessageType::Release,
    }));
    o.insert(DhcpOption::ClientIdentifier(r.client_id.to_vec()));
    if let Some(a) = r.requested {
        o.insert(DhcpOption::RequestedIpAddress(a));
    }
    if let Some(s) = r.server_id {
        o.insert(DhcpOption::ServerIdentifier(s));
    }
    if r.kind != Kind::Release {
        o.insert(DhcpOption::Hostname(r.hostname.to_string()));
        o.insert(DhcpOption::ParameterRequestList(WANTED.to_vec()));
        o.insert(DhcpOption::MaxMessageSize(1500));
    }
    let mut buf = Vec::with_capacity(300);
    // Encoding our own well-formed message into a Vec cannot fail.
    m.encode(&mut Encoder::new(&mut buf))
        .expect("encode a DHCPv4 request");
    buf
}

/// What a server can say to us.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply4 {
    Offer(Lease),
    Ack(Lease),
    Nak { server: Option<Ipv4Addr> },
}

/// What we expect of a reply: the transaction it answers and the most the
/// guest link can carry.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub xid: u32,
    pub mac: MacAddr,
    /// The largest interface MTU (option 26) we apply: the guest link's
    /// MTU as the attach created it (see [`crate::lease::LeaseSpec::link_mtu`]).
    pub max_mtu: u32,
}

/// A usable reply, and how many of its options were ignored (counted, not
/// applied, while the rest of the packet is used).
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded4 {
    pub reply: Reply4,
    pub ignored_options: u32,
}

/// Decodes one frame from the packet socket (IPv4 header onwards) that
/// should answer `want`. `now` stamps the lease.
pub fn decode_frame(frame: &[u8], want: &Expect, now: u64) -> Result<Decoded4, DropReason> {
    decode_payload(udp_payload(frame)?, want, now)
}

/// The UDP payload of an IPv4 datagram to port 68, checked for consistent
/// lengths. Fragments are refused: a DHCP reply fits in one packet.
pub fn udp_payload(frame: &[u8]) -> Result<&[u8], DropReason> {
    let malformed = DropReason::Malformed;
    if frame.len() < 20 || frame[0] >> 4 != 4 {
        return Err(malformed);
    }
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[2], frame[3]]));
    if ihl < 20 || total < ihl + 8 || total > frame.len() {
        return Err(malformed);
    }
    let frag = u16::from_be_bytes([frame[6], frame[7]]);
    if frag & 0x3fff != 0 || frame[9] != 17 {
        return Err(malformed);
    }
    let udp = &frame[ihl..total];
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if dport != CLIENT_PORT {
        return Err(DropReason::Foreign);
    }
    if ulen < 8 || ulen > udp.len() {
        return Err(malformed);
    }
    Ok(&udp[8..ulen])
}

/// Decodes a DHCP payload; see [`decode_frame`].
///
/// What is dropped, and how much of it (RFC 2131, RFC 2132):
/// - the whole packet, as malformed: a wrong magic cookie, an option that
///   overruns its field, an options field without END, an option whose
///   length does not fit its type (see [`wire::check_framing`]);
/// - the whole packet, as invalid: a subnet mask that is not contiguous
///   ones, or is 0.0.0.0 (/0). The mask decides which addresses are on the
///   link and the address's own route; no safe guess replaces a wrong one
///   (a classful guess would turn a /24 into a /8), so the packet is not
///   used at all, and at renewal the lease in force stays as it is;
/// - only the option: an interface MTU below 576 (RFC 1122 section 3.3.3:
///   every host must take 576-byte datagrams; RFC 2132 allows 68, no
///   Ethernet link works there) or above the guest link's own MTU (a larger
///   one would send frames that the peer or bridge drops). The MTU is
///   advice about the link, not part of the lease: the lease is used with
///   the link's MTU left alone, and the option is counted in
///   `ignored_options`.
pub fn decode_payload(payload: &[u8], want: &Expect, now: u64) -> Result<Decoded4, DropReason> {
    wire::check_framing(payload)?;
    // The decoder is third-party code fed hostile input: a panic in it must
    // cost one packet, not the daemon.
    let m = std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(payload)))
        .map_err(|_| DropReason::Malformed)?
        .map_err(|_| DropReason::Malformed)?;
    if m.opcode() != Opcode::BootReply {
        return Err(DropReason::Foreign);
    }
    // `chaddr()` slices by the packet's own `hlen`: check it first (the
    // fuzz test found the panic).
    if m.hlen() != 6 || m.xid() != want.xid || m.chaddr() != &want.mac.0[..] {
        return Err(DropReason::Foreign);
    }
    let opts = m.opts();
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) if usable(*s) => Some(*s),
        Some(_) => return Err(DropReason::Invalid),
        None => None,
    };
    let mut ignored_options = 0;
    let reply = match opts.msg_type() {
        Some(MessageType::Nak) => Reply4::Nak { server },
        Some(MessageType::Offer) => {
            Reply4::Offer(lease_of(&m, server, now, want, &mut ignored_options)?)
        }
        Some(MessageType::Ack) => {
            Reply4::Ack(lease_of(&m, server, now, want, &mut ignored_options)?)
        }
        _ => return Err(DropReason::Invalid),
    };
    Ok(Decoded4 {
        reply,
        ignored_options,
    })
}

/// Whether an address can be a host's: not zero, broadcast, multicast,
/// loopback or class E.
fn usable(a: Ipv4Addr) -> bool {
    !(a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_loopback()
        || a.octets()[0] >= 240)
}

fn lease_of(
    m: &Message,
    server: Option<Ipv4Addr>,
    now: u64,
    want: &Expect,
    ignored: &mut u32,
) -> Result<Lease, DropReason> {
    let invalid = DropReason::Invalid;
    let opts = m.opts();
    let yiaddr = m.yiaddr();
    let server = server.ok_or(invalid)?;
    if !usable(yiaddr) {
        return Err(invalid);
    }
    let prefix = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => {
            let bits = u32::from(*mask);
            // A mask must be contiguous ones, and not none at all (/0 would
            // put the whole Internet on the link); /31 and /32 are fine.
            if bits == 0 || bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(invalid);
            }
            bits.leading_ones() as u8
        }
        _ => classful(yiaddr),
    };
    let net = Ipv4Net::new(yiaddr, prefix).map_err(|_| invalid)?;
    if prefix < 31 && (yiaddr == net.network() || yiaddr == net.broadcast()) {
        return Err(invalid);
    }
    let lease_secs = match opts.get(OptionCode::AddressLeaseTime) {
        // Shorter than any server offers; it would only make us renew in a
        // tight loop.
        Some(DhcpOption::AddressLeaseTime(t)) if *t >= MIN_LEASE => *t,
        _ => return Err(invalid),
    };
    let t1 = match opts.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(t)) => *t,
        _ => lease_secs / 2,
    };
    let t2 = match opts.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(t)) => *t,
        _ => (u64::from(lease_secs) * 7 / 8) as u32,
    };
    // RFC 2131 section 4.4.5: T1 < T2 < lease; repair nonsense rather
    // than renew at the wrong moment.
    let (t1, t2) = if t1 < t2 && t2 <= lease_secs {
        (t1, t2)
    } else {
        (lease_secs / 2, (u64::from(lease_secs) * 7 / 8) as u32)
    };
    let routers: Vec<IpAddr> = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r
            .iter()
            .copied()
            .filter(|r| usable(*r) && *r != yiaddr)
            .map(IpAddr::V4)
            .collect(),
        _ => Vec::new(),
    };
    let routes: Vec<(IpNet, IpAddr)> = match opts.get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(v)) => v
            .iter()
            .filter(|(dst, gw)| (gw.is_unspecified() || usable(*gw)) && dst.network() == dst.addr())
            .map(|(dst, gw)| (IpNet::V4(*dst), IpAddr::V4(*gw)))
            .collect(),
        _ => Vec::new(),
    };
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(v)) => v
            .iter()
            .copied()
            .filter(|a| usable(*a) || a.is_loopback())
            .map(IpAddr::V4)
            .collect(),
        _ => Vec::new(),
    };
    let mut search: Vec<String> = match opts.get(OptionCode::DomainSearch) {
        Some(DhcpOption::DomainSearch(names)) => names
            .iter()
            .map(|n| n.to_utf8().trim_end_matches('.').to_string())
            .collect(),
        _ => Vec::new(),
    };
    if search.is_empty() {
        if let Some(DhcpOption::DomainName(d)) = opts.get(OptionCode::DomainName) {
            search.push(d.trim_end_matches('.').to_string());
        }
    }
    search.retain(|s| is_domain(s));
    let mtu = match opts.get(OptionCode::InterfaceMtu) {
        // RFC 2132 section 5.1 allows 68, but no Ethernet link works below
        // the 576 every IPv4 host must accept; above the link's own MTU the
        // peer would drop our frames. Either way only the option goes.
        Some(DhcpOption::InterfaceMtu(m)) if *m >= 576 && u32::from(*m) <= want.max_mtu => Some(*m),
        Some(_) => {
            *ignored += 1;
            None
        }
        None => None,
    };
    Ok(Lease {
        address: IpNet::V4(net),
        server: IpAddr::V4(server),
        server_duid: Vec::new(),
        routers,
        routes,
        dns,
        search,
        mtu,
        acquired_at: now,
        lease_secs,
        preferred_secs: lease_secs,
        t1,
        t2,
    })
}

/// A name safe to write into `resolv.conf`: no spaces, no control
/// characters, no comment markers.
pub(crate) fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// The pre-CIDR mask, for servers that send none (RFC 2131 allows it).
fn classful(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// An IPv4 + UDP datagram from `src`:68 to `dst`:67 around `payload`, for the
/// packet socket (the kernel adds the Ethernet header).
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let ulen = 8 + payload.len();
    let total = 20 + ulen;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0x10]); // IPv4, IHL 5; TOS low delay like dhclient
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]); // id, flags, fragment offset
    p.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum below
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&[&p[..20]], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = Vec::with_capacity(ulen);
    udp.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    udp.extend_from_slice(&SERVER_PORT.to_be_bytes());
    udp.extend_from_slice(&(ulen as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(ulen as u16).to_be_bytes());
    let mut c = checksum(&[&pseudo, &udp], 0);
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&udp);
    p
}

/// The Internet checksum over several pieces (each even-length but the last).
fn checksum(parts: &[&[u8]], init: u32) -> u16 {
    let mut sum = init;
    for part in parts {
        for c in part.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    fn want(xid: u32) -> Expect {
        Expect {
            xid,
            mac: MAC,
            max_mtu: 1500,
        }
    }

    /// A server's reply, built with the same library a server would use.
    pub(crate) fn reply(kind: MessageType, xid: u32, extra: &[DhcpOption]) -> Vec<u8> {
        let mut m = Message::new_with_id(
            xid,
            Ipv4Addr::UNSPECIFIED,
            "10.9.0.50".parse().unwrap(),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &MAC.0,
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier("10.9.0.1".parse().unwrap()));
        o.insert(DhcpOption::AddressLeaseTime(120));
        o.insert(DhcpOption::SubnetMask("255.255.255.0".parse().unwrap()));
        o.insert(DhcpOption::Router(vec!["10.9.0.1".parse().unwrap()]));
        for x in extra {
            o.insert(x.clone());
        }
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        buf
    }

    #[test]
    fn an_ack_becomes_a_lease() {
        let p = reply(
            MessageType::Ack,
            7,
            &[
                DhcpOption::DomainNameServer(vec!["10.9.0.1".parse().unwrap()]),
                DhcpOption::DomainName("example.test".into()),
                DhcpOption::InterfaceMtu(1400),
            ],
        );
        let Reply4::Ack(l) = decode_payload(&p, &want(7), 1000).map(|d| d.reply).unwrap() else {
            panic!()
        };
        assert_eq!(l.address, "10.9.0.50/24".parse::<IpNet>().unwrap());
        assert_eq!((l.t1, l.t2, l.lease_secs), (60, 105, 120));
        assert_eq!(l.search, vec!["example.test".to_string()]);
        assert_eq!(l.mtu, Some(1400));
        assert_eq!(l.routers, vec!["10.9.0.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn foreign_and_invalid_replies_are_told_apart() {
        let p = reply(MessageType::Offer, 7, &[]);
        assert_eq!(
            decode_payload(&p, &want(8), 0).map(|d| d.reply),
            Err(DropReason::Foreign)
        );
        let bad_mask = reply(
            MessageType::Offer,
            7,
            &[DhcpOption::SubnetMask("255.0.255.0".parse().unwrap())],
        );
        assert_eq!(
            decode_payload(&bad_mask, &want(7), 0).map(|d| d.reply),
            Err(DropReason::Invalid)
        );
        assert_eq!(
            decode_payload(&p[..100], &want(7), 0).map(|d| d.reply),
            Err(DropReason::Malformed)
        );
        let evil_domain = reply(
            MessageType::Ack,
            7,
            &[DhcpOption::DomainName("x\nnameserver 6.6.6.6".into())],
        );
        let Reply4::Ack(l) = decode_payload(&evil_domain, &want(7), 0)
            .map(|d| d.reply)
            .unwrap()
        else {
            panic!()
        };
        assert!(l.search.is_empty());
    }

    #[test]
    fn frames_round_trip_through_our_ip_header() {
        let p = reply(MessageType::Ack, 3, &[]);
        let mut f = ipv4_udp("10.9.0.1".parse().unwrap(), Ipv4Addr::BROADCAST, &p);
        // Our builder writes port 68 as the source; a server's reply has 68
        // as the destination.
        f[20..22].copy_from_slice(&SERVER_PORT.to_be_bytes());
        f[22..24].copy_from_slice(&CLIENT_PORT.to_be_bytes());
        assert!(matches!(
            decode_frame(&f, &want(3), 0).map(|d| d.reply),
            Ok(Reply4::Ack(_))
        ));
        assert_eq!(checksum(&[&f[..20]], 0), 0);
    }

    /// An ACK for `want(7)` with the options field written by hand: the
    /// usual server options, then `tail` (which must bring its own END).
    fn raw(tail: &[u8]) -> Vec<u8> {
        let mut p = reply(MessageType::Ack, 7, &[])[..240].to_vec();
        p.extend_from_slice(&[53, 1, 5, 54, 4, 10, 9, 0, 1, 51, 4, 0, 0, 0, 120]);
        p.extend_from_slice(&[3, 4, 10, 9, 0, 1]);
        p.extend_from_slice(tail);
        p
    }

    fn decoded(p: &[u8]) -> Result<Decoded4, DropReason> {
        decode_payload(p, &want(7), 0)
    }

    fn mask_of(d: Decoded4) -> u8 {
        let Reply4::Ack(l) = d.reply else { panic!() };
        l.address.prefix_len()
    }

    #[test]
    fn hand_written_options_decode() {
        let d = decoded(&raw(&[1, 4, 255, 255, 255, 0, 255])).unwrap();
        assert_eq!(mask_of(d), 24);
        // Padding after END is fine.
        let d = decoded(&raw(&[1, 4, 255, 255, 255, 0, 255, 0, 0, 0])).unwrap();
        assert_eq!(mask_of(d), 24);
    }

    #[test]
    fn a_zero_or_holed_mask_drops_the_packet() {
        for mask in [[0, 0, 0, 0], [255, 0, 255, 0], [255, 255, 255, 1]] {
            let mut tail = vec![1, 4];
            tail.extend_from_slice(&mask);
            tail.push(255);
            assert_eq!(decoded(&raw(&tail)), Err(DropReason::Invalid), "{mask:?}");
        }
        let d = decoded(&raw(&[1, 4, 255, 255, 255, 255, 255])).unwrap();
        assert_eq!(mask_of(d), 32);
    }

    #[test]
    fn an_mtu_out_of_range_is_ignored_not_the_lease() {
        let mtu = |v: u16, max: u32| {
            let mut tail = vec![1, 4, 255, 255, 255, 0, 26, 2];
            tail.extend_from_slice(&v.to_be_bytes());
            tail.push(255);
            let w = Expect {
                max_mtu: max,
                ..want(7)
            };
            let d = decode_payload(&raw(&tail), &w, 0).unwrap();
            let Reply4::Ack(l) = d.reply else { panic!() };
            assert_eq!(l.address.prefix_len(), 24);
            (l.mtu, d.ignored_options)
        };
        assert_eq!(mtu(1400, 1500), (Some(1400), 0));
        assert_eq!(mtu(1500, 1500), (Some(1500), 0));
        assert_eq!(mtu(576, 1500), (Some(576), 0));
        assert_eq!(mtu(65535, 1500), (None, 1));
        assert_eq!(mtu(1500, 1400), (None, 1));
        assert_eq!(mtu(575, 1500), (None, 1));
        assert_eq!(mtu(68, 1500), (None, 1));
    }

    /// Random and mutated input never panics and never yields a lease that
    /// breaks the rules. Bounded so that it runs in the normal suite.
    #[test]
    fn hostile_input_is_dropped_never_fatal() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let good = reply(
            MessageType::Ack,
            7,
            &[
                DhcpOption::DomainNameServer(vec!["10.9.0.1".parse().unwrap()]),
                DhcpOption::ClasslessStaticRoute(vec![(
                    "10.20.0.0/16".parse().unwrap(),
                    "10.9.0.1".parse().unwrap(),
                )]),
            ],
        );
        let frame = ipv4_udp("10.9.0.1".parse().unwrap(), Ipv4Addr::BROADCAST, &good);
        let mut accepted = 0;
        for i in 0..60_000 {
            let mut buf = if i % 3 == 0 {
                let n = (next() % 700) as usize;
                (0..n).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                let mut b = if i % 3 == 1 {
                    good.clone()
                } else {
                    frame.clone()
                };
                for _ in 0..(1 + next() % 8) {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                if next() % 5 == 0 {
                    b.truncate((next() as usize) % b.len());
                }
                b
            };
            if i % 3 == 2 && buf.len() > 24 {
                buf[22..24].copy_from_slice(&CLIENT_PORT.to_be_bytes());
            }
            let r = if i % 3 == 2 {
                decode_frame(&buf, &want(7), 0).map(|d| d.reply)
            } else {
                decode_payload(&buf, &want(7), 0).map(|d| d.reply)
            };
            if let Ok(Reply4::Ack(l) | Reply4::Offer(l)) = r {
                accepted += 1;
                let IpAddr::V4(a) = l.address.addr() else {
                    panic!()
                };
                assert!(usable(a), "{l:?}");
                assert!(l.t1 < l.t2 && l.t2 <= l.lease_secs, "{l:?}");
                assert!(l.search.iter().all(|s| is_domain(s)));
            }
        }
        assert!(accepted > 0, "mutations never left a valid packet");
    }
}
