//! Just enough OpenFlow 1.3 to add and delete flows on a bridge through its
//! management socket (`<rundir>/<bridge>.mgmt`, the one `ovs-ofctl` uses).
//!
//! Why our own encoder rather than a crate: we send four message types
//! (hello, flow_mod, barrier, echo reply) with a dozen OXM match fields and
//! one action, and read three (hello, error, barrier reply). The Rust
//! OpenFlow crates are either controllers with their own event loop or
//! self-described work in progress; a ~300-line encoder checked byte by byte
//! in unit tests, and against `ovs-ofctl dump-flows` in the integration
//! tests, is smaller than the adapter to any of them.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use pipework_model::MacAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// OpenFlow 1.3.
pub const VERSION: u8 = 4;

const OFPT_HELLO: u8 = 0;
const OFPT_ERROR: u8 = 1;
const OFPT_ECHO_REQUEST: u8 = 2;
const OFPT_ECHO_REPLY: u8 = 3;
const OFPT_FLOW_MOD: u8 = 14;
const OFPT_BARRIER_REQUEST: u8 = 20;
const OFPT_BARRIER_REPLY: u8 = 21;
const OFPT_MULTIPART_REQUEST: u8 = 18;
const OFPT_MULTIPART_REPLY: u8 = 19;
const OFPMP_FLOW: u16 = 1;
const OFPMPF_REPLY_MORE: u16 = 1;

const OFPFC_ADD: u8 = 0;
const OFPFC_DELETE: u8 = 3;
const OFPTT_ALL: u8 = 0xff;
const OFPP_NORMAL: u32 = 0xffff_fffa;
const OFPP_ANY: u32 = 0xffff_ffff;
const OFPG_ANY: u32 = 0xffff_ffff;
const OFP_NO_BUFFER: u32 = 0xffff_ffff;
const OFPIT_APPLY_ACTIONS: u16 = 4;
const OFPAT_OUTPUT: u16 = 0;
const OFPMT_OXM: u16 = 1;
const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;

const TIMEOUT: Duration = Duration::from_secs(10);

/// OXM field numbers (OpenFlow 1.3 section 7.2.3.7).
mod oxm {
    pub const IN_PORT: u8 = 0;
    pub const ETH_SRC: u8 = 4;
    pub const ETH_TYPE: u8 = 5;
    pub const IP_PROTO: u8 = 10;
    pub const IPV4_SRC: u8 = 11;
    pub const ARP_SPA: u8 = 22;
    pub const ARP_SHA: u8 = 24;
    pub const IPV6_SRC: u8 = 26;
    pub const ICMPV6_TYPE: u8 = 29;
    pub const IPV6_ND_TARGET: u8 = 31;
    pub const IPV6_ND_TLL: u8 = 33;
}

pub const ETH_TYPE_IPV4: u16 = 0x0800;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const IPPROTO_ICMPV6: u8 = 58;

/// A match as a list of OXM TLVs. Prerequisites (an `eth_type` before an
/// address field...) are the caller's to add, in order, as the spec wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    oxm: Vec<u8>,
}

impl Match {
    pub fn new() -> Match {
        Match::default()
    }

    fn field(mut self, field: u8, value: &[u8]) -> Match {
        let header =
            (u32::from(OFPXMC_OPENFLOW_BASIC) << 16) | (u32::from(field) << 9) | value.len() as u32;
        self.oxm.extend_from_slice(&header.to_be_bytes());
        self.oxm.extend_from_slice(value);
        self
    }

    pub fn in_port(self, port: u32) -> Match {
        self.field(oxm::IN_PORT, &port.to_be_bytes())
    }
    pub fn eth_src(self, mac: MacAddr) -> Match {
        self.field(oxm::ETH_SRC, &mac.0)
    }
    pub fn eth_type(self, t: u16) -> Match {
        self.field(oxm::ETH_TYPE, &t.to_be_bytes())
    }
    pub fn ip_proto(self, p: u8) -> Match {
        self.field(oxm::IP_PROTO, &[p])
    }
    pub fn ipv4_src(self, a: Ipv4Addr) -> Match {
        self.field(oxm::IPV4_SRC, &a.octets())
    }
    pub fn arp_spa(self, a: Ipv4Addr) -> Match {
        self.field(oxm::ARP_SPA, &a.octets())
    }
    pub fn arp_sha(self, mac: MacAddr) -> Match {
        self.field(oxm::ARP_SHA, &mac.0)
    }
    pub fn ipv6_src(self, a: Ipv6Addr) -> Match {
        self.field(oxm::IPV6_SRC, &a.octets())
    }
    pub fn icmpv6_type(self, t: u8) -> Match {
        self.field(oxm::ICMPV6_TYPE, &[t])
    }
    pub fn nd_target(self, a: Ipv6Addr) -> Match {
        self.field(oxm::IPV6_ND_TARGET, &a.octets())
    }
    pub fn nd_tll(self, mac: MacAddr) -> Match {
        self.field(oxm::IPV6_ND_TLL, &mac.0)
    }

    /// `ofp_match`: type, length (without padding), fields, padded to 8.
    fn encode(&self, out: &mut Vec<u8>) {
        let len = 4 + self.oxm.len();
        out.extend_from_slice(&OFPMT_OXM.to_be_bytes());
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&self.oxm);
        out.resize(out.len() + (8 - len % 8) % 8, 0);
    }
}

/// What a flow does with the packets it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand to the bridge's normal L2 switching (`actions=NORMAL`).
    Normal,
    /// No instructions: the packet is dropped.
    Drop,
}

/// A flow to add to table 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub cookie: u64,
    pub priority: u16,
    pub matches: Match,
    pub verdict: Verdict,
}

fn header(out: &mut Vec<u8>, kind: u8, xid: u32) {
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&[0, 0]); // length, set by finish()
    out.extend_from_slice(&xid.to_be_bytes());
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = out.len() as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out
}

#[allow(clippy::too_many_arguments)]
fn flow_mod(
    xid: u32,
    cookie: u64,
    cookie_mask: u64,
    table: u8,
    command: u8,
    priority: u16,
    out_port: u32,
    m: &Match,
    verdict: Option<Verdict>,
) -> Vec<u8> {
    let mut o = Vec::with_capacity(128);
    header(&mut o, OFPT_FLOW_MOD, xid);
    o.extend_from_slice(&cookie.to_be_bytes());
    o.extend_from_slice(&cookie_mask.to_be_bytes());
    o.push(table);
    o.push(command);
    o.extend_from_slice(&0u16.to_be_bytes()); // idle timeout
    o.extend_from_slice(&0u16.to_be_bytes()); // hard timeout
    o.extend_from_slice(&priority.to_be_bytes());
    o.extend_from_slice(&OFP_NO_BUFFER.to_be_bytes());
    o.extend_from_slice(&out_port.to_be_bytes());
    o.extend_from_slice(&OFPG_ANY.to_be_bytes());
    o.extend_from_slice(&0u16.to_be_bytes()); // flags
    o.extend_from_slice(&[0, 0]);
    m.encode(&mut o);
    if verdict == Some(Verdict::Normal) {
        o.extend_from_slice(&OFPIT_APPLY_ACTIONS.to_be_bytes());
        o.extend_from_slice(&24u16.to_be_bytes());
        o.extend_from_slice(&[0; 4]);
        o.extend_from_slice(&OFPAT_OUTPUT.to_be_bytes());
        o.extend_from_slice(&16u16.to_be_bytes());
        o.extend_from_slice(&OFPP_NORMAL.to_be_bytes());
        o.extend_from_slice(&0u16.to_be_bytes()); // max_len: unused for NORMAL
        o.extend_from_slice(&[0; 6]);
    }
    finish(o)
}

/// `OFPFC_ADD` of one flow into table 0.
pub fn add_flow(xid: u32, f: &Flow) -> Vec<u8> {
    flow_mod(
        xid,
        f.cookie,
        0,
        0,
        OFPFC_ADD,
        f.priority,
        OFPP_ANY,
        &f.matches,
        Some(f.verdict),
    )
}

/// `OFPFC_DELETE` of every flow in every table whose cookie matches
/// `cookie` in the bits of `mask`.
pub fn delete_by_cookie(xid: u32, cookie: u64, mask: u64) -> Vec<u8> {
    flow_mod(
        xid,
        cookie,
        mask,
        OFPTT_ALL,
        OFPFC_DELETE,
        0,
        OFPP_ANY,
        &Match::new(),
        None,
    )
}

/// `OFPMP_FLOW` request for the flows of every table whose cookie matches
/// `cookie` under `mask`.
pub fn flow_stats_request(xid: u32, cookie: u64, mask: u64) -> Vec<u8> {
    let mut o = Vec::with_capacity(64);
    header(&mut o, OFPT_MULTIPART_REQUEST, xid);
    o.extend_from_slice(&OFPMP_FLOW.to_be_bytes());
    o.extend_from_slice(&[0; 6]); // flags, pad
    o.push(OFPTT_ALL);
    o.extend_from_slice(&[0; 3]);
    o.extend_from_slice(&OFPP_ANY.to_be_bytes());
    o.extend_from_slice(&OFPG_ANY.to_be_bytes());
    o.extend_from_slice(&[0; 4]);
    o.extend_from_slice(&cookie.to_be_bytes());
    o.extend_from_slice(&mask.to_be_bytes());
    Match::new().encode(&mut o);
    finish(o)
}

/// The cookies in the body of an `OFPMP_FLOW` reply, and whether more
/// replies follow.
fn flow_stats_cookies(body: &[u8]) -> Result<(Vec<u64>, bool), OfError> {
    let short = || OfError::Protocol("short flow stats reply".into());
    if body.len() < 8 {
        return Err(short());
    }
    let more = u16::from_be_bytes([body[2], body[3]]) & OFPMPF_REPLY_MORE != 0;
    let mut rest = &body[8..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 32 {
            return Err(short());
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len < 32 || len > rest.len() {
            return Err(short());
        }
        out.push(u64::from_be_bytes(
            rest[24..32].try_into().expect("8 bytes"),
        ));
        rest = &rest[len..];
    }
    Ok((out, more))
}

fn bare(kind: u8, xid: u32) -> Vec<u8> {
    let mut o = Vec::with_capacity(8);
    header(&mut o, kind, xid);
    finish(o)
}

/// Why talking to the switch failed.
#[derive(Debug)]
pub enum OfError {
    /// The management socket is not there: the bridge does not exist (any more).
    NoBridge(io::Error),
    Io(io::Error),
    Timeout,
    /// The switch answered with an OpenFlow error.
    Refused {
        kind: u16,
        code: u16,
    },
    Protocol(String),
}

impl std::fmt::Display for OfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfError::NoBridge(e) => write!(f, "no OpenFlow management socket: {e}"),
            OfError::Io(e) => write!(f, "{e}"),
            OfError::Timeout => f.write_str("the switch did not answer in time"),
            OfError::Refused { kind, code } => {
                let what = match kind {
                    0 => " (hello failed: does the bridge allow OpenFlow13?)",
                    1 => " (bad request)",
                    4 => " (bad match)",
                    5 => " (flow_mod failed)",
                    _ => "",
                };
                write!(f, "the switch refused: error type {kind} code {code}{what}")
            }
            OfError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for OfError {}

/// An OpenFlow 1.3 session with one bridge.
pub struct Switch {
    stream: UnixStream,
    xid: u32,
}

impl Switch {
    /// Connects to `<rundir>/<bridge>.mgmt` and exchanges hellos.
    pub async fn connect(socket: &Path) -> Result<Switch, OfError> {
        let stream = match tokio::time::timeout(TIMEOUT, UnixStream::connect(socket)).await {
            Err(_) => return Err(OfError::Timeout),
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(OfError::NoBridge(e))
            }
            Ok(Err(e)) => return Err(OfError::Io(e)),
            Ok(Ok(s)) => s,
        };
        let mut s = Switch { stream, xid: 1 };
        s.send(&bare(OFPT_HELLO, 0)).await?;
        let (kind, _, body) = s.receive().await?;
        match kind {
            // The switch may offer a newer version (with a version bitmap);
            // the lower of the two, 1.3, is what both speak.
            OFPT_HELLO => Ok(s),
            OFPT_ERROR => Err(refusal(&body)),
            k => Err(OfError::Protocol(format!("expected hello, got type {k}"))),
        }
    }

    fn next_xid(&mut self) -> u32 {
        self.xid += 1;
        self.xid
    }

    /// Adds the flows, then waits for a barrier reply: when this returns Ok,
    /// the switch has applied all of them.
    pub async fn add_flows(&mut self, flows: &[Flow]) -> Result<(), OfError> {
        let mut batch = Vec::new();
        for f in flows {
            let xid = self.next_xid();
            batch.extend(add_flow(xid, f));
        }
        self.send_and_sync(batch).await
    }

    /// Deletes every flow whose cookie matches under `mask`, and waits
    /// until that is done.
    pub async fn delete_cookie(&mut self, cookie: u64, mask: u64) -> Result<(), OfError> {
        let xid = self.next_xid();
        self.send_and_sync(delete_by_cookie(xid, cookie, mask))
            .await
    }

    /// The cookies of the flows whose cookie matches `cookie` under `mask`.
    pub async fn flow_cookies(&mut self, cookie: u64, mask: u64) -> Result<Vec<u64>, OfError> {
        let xid = self.next_xid();
        self.send(&flow_stats_request(xid, cookie, mask)).await?;
        let mut out = Vec::new();
        loop {
            let (kind, rxid, body) = self.receive().await?;
            match kind {
                OFPT_ERROR if rxid == xid => return Err(refusal(&body)),
                OFPT_MULTIPART_REPLY if rxid == xid => {
                    let (mut cookies, more) = flow_stats_cookies(&body)?;
                    out.append(&mut cookies);
                    if !more {
                        return Ok(out);
                    }
                }
                OFPT_ECHO_REQUEST => {
                    let mut r = Vec::new();
                    header(&mut r, OFPT_ECHO_REPLY, rxid);
                    r.extend_from_slice(&body);
                    self.send(&finish(r)).await?;
                }
                _ => {}
            }
        }
    }

    /// Returns when the switch closes the connection (ovs-vswitchd
    /// stopped, or the bridge went), answering its echoes until then.
    pub async fn closed(&mut self) {
        loop {
            let mut h = [0u8; 8];
            if self.stream.read_exact(&mut h).await.is_err() {
                return;
            }
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let mut body = vec![0u8; len.saturating_sub(8)];
            if self.stream.read_exact(&mut body).await.is_err() {
                return;
            }
            if h[1] == OFPT_ECHO_REQUEST {
                let mut r = Vec::new();
                header(
                    &mut r,
                    OFPT_ECHO_REPLY,
                    u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                );
                r.extend_from_slice(&body);
                if self.send(&finish(r)).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn send_and_sync(&mut self, mut batch: Vec<u8>) -> Result<(), OfError> {
        let barrier = self.next_xid();
        batch.extend(bare(OFPT_BARRIER_REQUEST, barrier));
        self.send(&batch).await?;
        let mut refused = None;
        loop {
            let (kind, xid, body) = self.receive().await?;
            match kind {
                OFPT_ERROR if refused.is_none() => refused = Some(refusal(&body)),
                OFPT_ECHO_REQUEST => {
                    let mut r = Vec::new();
                    header(&mut r, OFPT_ECHO_REPLY, xid);
                    r.extend_from_slice(&body);
                    self.send(&finish(r)).await?;
                }
                OFPT_BARRIER_REPLY if xid == barrier => break,
                _ => {}
            }
        }
        refused.map_or(Ok(()), Err)
    }

    async fn send(&mut self, b: &[u8]) -> Result<(), OfError> {
        tokio::time::timeout(TIMEOUT, self.stream.write_all(b))
            .await
            .map_err(|_| OfError::Timeout)?
            .map_err(OfError::Io)
    }

    /// One message: type, xid, body.
    async fn receive(&mut self) -> Result<(u8, u32, Vec<u8>), OfError> {
        let read = async {
            let mut h = [0u8; 8];
            self.stream.read_exact(&mut h).await?;
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let mut body = vec![0u8; len.saturating_sub(8)];
            self.stream.read_exact(&mut body).await?;
            Ok::<_, io::Error>((h[1], u32::from_be_bytes([h[4], h[5], h[6], h[7]]), body))
        };
        tokio::time::timeout(TIMEOUT, read)
            .await
            .map_err(|_| OfError::Timeout)?
            .map_err(OfError::Io)
    }
}

fn refusal(body: &[u8]) -> OfError {
    if body.len() < 4 {
        return OfError::Protocol("short error message".into());
    }
    OfError::Refused {
        kind: u16::from_be_bytes([body[0], body[1]]),
        code: u16::from_be_bytes([body[2], body[3]]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oxm_fields_and_padding() {
        let m = Match::new().in_port(3);
        let mut o = Vec::new();
        m.encode(&mut o);
        // type 1, length 12, IN_PORT (0x80000004) = 3, 4 bytes of padding.
        assert_eq!(o, [0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0]);
        let mut o = Vec::new();
        Match::new().eth_type(ETH_TYPE_ARP).encode(&mut o);
        assert_eq!(&o[4..10], &[0x80, 0, 0x0a, 2, 0x08, 0x06]);
        assert_eq!(o.len(), 16);
    }

    #[test]
    fn flow_mod_layout() {
        let f = Flow {
            cookie: 0x7077_0000_0000_0001,
            priority: 36100,
            matches: Match::new().in_port(1),
            verdict: Verdict::Normal,
        };
        let b = add_flow(9, &f);
        assert_eq!(b[0], VERSION);
        assert_eq!(b[1], OFPT_FLOW_MOD);
        assert_eq!(usize::from(u16::from_be_bytes([b[2], b[3]])), b.len());
        assert_eq!(&b[4..8], &9u32.to_be_bytes());
        assert_eq!(&b[8..16], &f.cookie.to_be_bytes());
        assert_eq!(b[25], OFPFC_ADD);
        assert_eq!(&b[30..32], &36100u16.to_be_bytes());
        // 48 fixed + 16 match + 24 instruction.
        assert_eq!(b.len(), 88);
        assert_eq!(&b[64..68], &[0, 4, 0, 24]);
        assert_eq!(&b[72..76], &[0, 0, 0, 16]);
        assert_eq!(&b[76..80], &[0xff, 0xff, 0xff, 0xfa]);
        let d = delete_by_cookie(2, 5, u64::MAX);
        assert_eq!(&d[16..24], &u64::MAX.to_be_bytes());
        assert_eq!(d[24], OFPTT_ALL);
        assert_eq!(d[25], OFPFC_DELETE);
        assert_eq!(d.len(), 56);
        let drop = add_flow(
            1,
            &Flow {
                verdict: Verdict::Drop,
                ..f
            },
        );
        assert_eq!(drop.len(), 64);
    }

    #[test]
    fn flow_stats_layout() {
        let r = flow_stats_request(3, 0x7077 << 48, 0xffff << 48);
        // header, multipart header, flow stats request, empty match.
        assert_eq!(r.len(), 8 + 8 + 32 + 8);
        assert_eq!(r[1], OFPT_MULTIPART_REQUEST);
        assert_eq!(&r[8..10], &OFPMP_FLOW.to_be_bytes());
        assert_eq!(r[16], OFPTT_ALL);
        assert_eq!(&r[32..40], &(0x7077u64 << 48).to_be_bytes());
        // A reply body with two entries of 40 bytes each.
        let mut body = vec![0, 1, 0, 1, 0, 0, 0, 0];
        for c in [5u64, 9] {
            let mut e = vec![0u8; 40];
            e[0..2].copy_from_slice(&40u16.to_be_bytes());
            e[24..32].copy_from_slice(&c.to_be_bytes());
            body.extend(e);
        }
        assert_eq!(flow_stats_cookies(&body).unwrap(), (vec![5, 9], true));
        assert!(flow_stats_cookies(&body[..20]).is_err());
    }
}
