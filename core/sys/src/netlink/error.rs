//! Netlink errors with the operation, the namespace and the kernel's own words.

use std::fmt;

use netlink_packet_core::ErrorMessage;

/// `NLMSGERR_ATTR_MSG`: the extended-ack text attribute.
const NLMSGERR_ATTR_MSG: u16 = 1;

#[derive(Debug, Clone)]
pub struct NlError {
    op: String,
    ns: String,
    errno: Option<i32>,
    /// The kernel's extended-ack message, e.g. "Nexthop has invalid gateway".
    detail: Option<String>,
}

impl NlError {
    pub fn from_kernel(op: String, ns: &str, e: &ErrorMessage) -> NlError {
        NlError {
            op,
            ns: ns.to_string(),
            errno: Some(e.raw_code().abs()),
            detail: ext_ack_message(&e.header),
        }
    }

    pub fn other(op: String, ns: &str, detail: String) -> NlError {
        NlError {
            op,
            ns: ns.to_string(),
            errno: None,
            detail: Some(detail),
        }
    }

    /// The operation that failed, e.g. "create veth vethpl1234".
    pub fn op(&self) -> &str {
        &self.op
    }

    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    pub fn is(&self, errno: i32) -> bool {
        self.errno == Some(errno)
    }

    /// The object is already gone: what an undo step treats as success.
    pub fn is_gone(&self) -> bool {
        matches!(
            self.errno,
            Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::EADDRNOTAVAIL)
        )
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(n) => write!(f, "{}", std::io::Error::from_raw_os_error(n))?,
            None => f.write_str("netlink request failed")?,
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        write!(f, " [{} in {} namespace]", self.op, self.ns)
    }
}

impl std::error::Error for NlError {}

/// Finds the NLMSGERR_ATTR_MSG string after the echoed request header. With
/// NETLINK_CAP_ACK only the 16-byte header is echoed; without it the whole
/// request is, so both offsets are tried.
fn ext_ack_message(payload: &[u8]) -> Option<String> {
    if payload.len() < 16 {
        return None;
    }
    let full = u32::from_ne_bytes(payload[0..4].try_into().ok()?) as usize;
    for start in [16, (full + 3) & !3] {
        if let Some(m) = find_msg(payload.get(start..)?) {
            return Some(m);
        }
    }
    None
}

fn find_msg(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let v = &tlvs[4..len];
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            let s = std::str::from_utf8(&v[..end]).ok()?;
            if s.is_empty() || !s.chars().all(|c| !c.is_control()) {
                return None;
            }
            return Some(s.to_string());
        }
        tlvs = &tlvs[((len + 3) & !3).min(tlvs.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ext_ack_after_capped_header() {
        let mut p = vec![0u8; 16];
        p[0..4].copy_from_slice(&64u32.to_ne_bytes());
        let msg = b"Invalid gateway\0";
        let len = (4 + msg.len()) as u16;
        p.extend_from_slice(&len.to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(msg);
        assert_eq!(ext_ack_message(&p).as_deref(), Some("Invalid gateway"));
        assert_eq!(ext_ack_message(&p[..16]), None);
    }
}
