//! The address positional: static addresses with optional gateways, `0/0`, or a
//! DHCP mode.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ParseError;

/// IPv4 or IPv6, as selected by `-a 4|6` or implied by an address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Family {
    #[serde(rename = "inet")]
    V4,
    #[serde(rename = "inet6")]
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// `-a` accepts `4`, `6` and the original's `inet`/`inet6`/`ip`/`ip6` spellings.
    pub fn parse_flag(s: &str) -> Result<Family, ParseError> {
        match s {
            "4" | "inet" | "ip" | "ip4" | "ipv4" => Ok(Family::V4),
            "6" | "inet6" | "ip6" | "ipv6" => Ok(Family::V6),
            _ => Err(ParseError::new("address family (-a)", s, "must be 4 or 6")),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// One static address with an optional default gateway.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StaticAddress {
    pub address: IpNet,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gateway: Option<IpAddr>,
}

impl StaticAddress {
    pub fn family(&self) -> Family {
        Family::of(&self.address.addr())
    }

    /// True when the gateway is outside the address's subnet and needs an on-link route.
    pub fn gateway_is_off_link(&self) -> bool {
        self.gateway.is_some_and(|gw| !self.address.contains(&gw))
    }
}

/// Which DHCP client a DHCP form asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DhcpClient {
    /// `dhcp`: pipework's own client.
    Native,
    Udhcpc,
    Dhclient,
    Dhcpcd,
}

/// A DHCP form of the address positional: `dhcp[:opts]`, `dhcp6`,
/// `dhcp,dhcp6`, `udhcpc[-f][:opts]`, `dhclient[-f][:opts]`, `dhcpcd[:opts]`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DhcpSpec {
    pub client: DhcpClient,
    /// `-f`: keep the client running to renew the lease (the native client
    /// always does).
    pub foreground: bool,
    /// Everything after the first `:`, passed to a compatible-mode client.
    pub options: String,
    /// DHCPv4 (`dhcp`, and every compatible mode).
    #[serde(default = "yes")]
    pub v4: bool,
    /// DHCPv6 IA_NA (`dhcp6`, or `-a 6 ... dhcp`): native client only.
    #[serde(default)]
    pub v6: bool,
}

fn yes() -> bool {
    true
}

impl DhcpSpec {
    /// `Ok(None)` when `s` is not a DHCP form at all.
    fn parse(s: &str, family: Option<Family>) -> Result<Option<DhcpSpec>, ParseError> {
        let (head, options) = match s.split_once(':') {
            Some((h, o)) => (h, o.to_string()),
            None => (s, String::new()),
        };
        let mut spec: Option<DhcpSpec> = None;
        let mut statics = false;
        for word in head.split(',') {
            let (name, foreground) = match word.strip_suffix("-f") {
                Some(n) => (n, true),
                None => (word, false),
            };
            let (client, v4, v6) = match name {
                "dhcp" | "dhcp4" => (DhcpClient::Native, true, false),
                "dhcp6" => (DhcpClient::Native, false, true),
                "udhcpc" => (DhcpClient::Udhcpc, true, false),
                "dhclient" => (DhcpClient::Dhclient, true, false),
                "dhcpcd" => (DhcpClient::Dhcpcd, true, false),
                _ => {
                    statics = true;
                    continue;
                }
            };
            match &mut spec {
                None => {
                    spec = Some(DhcpSpec {
                        client,
                        foreground,
                        options: String::new(),
                        v4,
                        v6,
                    })
                }
                Some(sp) if sp.client == DhcpClient::Native && client == DhcpClient::Native => {
                    sp.v4 |= v4;
                    sp.v6 |= v6;
                    sp.foreground |= foreground;
                }
                Some(_) => {
                    return Err(ParseError::new(
                        "address",
                        s,
                        "names two DHCP clients; only dhcp and dhcp6 combine",
                    ))
                }
            }
        }
        let Some(mut spec) = spec else {
            return Ok(None);
        };
        if statics {
            return Err(ParseError::new(
                "address",
                s,
                "mixes static addresses and DHCP; attach them in two commands",
            ));
        }
        spec.options = options;
        if spec.client == DhcpClient::Native {
            if head == "dhcp" && family == Some(Family::V6) {
                (spec.v4, spec.v6) = (false, true);
            }
            for o in spec.options.split_whitespace() {
                // The original's `dhcp:-f` asked its helper to keep renewing,
                // which the native client always does.
                if o != "-f" {
                    return Err(ParseError::new(
                        "DHCP option",
                        o,
                        "is not known to the native client (only -f; use udhcpc:, dhclient: or dhcpcd: to pass options to those)",
                    ));
                }
            }
        } else if family == Some(Family::V6) {
            return Err(ParseError::new(
                "address",
                s,
                "compatible-mode clients are IPv4 only here; use dhcp6",
            ));
        }
        if family == Some(Family::V4) && spec.v6 {
            return Err(ParseError::new(
                "address",
                s,
                "is IPv6 but -a asked for IPv4",
            ));
        }
        Ok(Some(spec))
    }
}

/// What to configure on the guest interface.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressMode {
    /// `0/0`: the link only, no address.
    None,
    /// One or more static addresses (comma separated on the command line).
    Static(Vec<StaticAddress>),
    Dhcp(DhcpSpec),
}

impl AddressMode {
    /// Parses the address positional. `family` is the `-a` flag when given: every
    /// static address must then be of that family.
    pub fn parse(s: &str, family: Option<Family>) -> Result<AddressMode, ParseError> {
        if s == "0/0" {
            return Ok(AddressMode::None);
        }
        if let Some(d) = DhcpSpec::parse(s, family)? {
            return Ok(AddressMode::Dhcp(d));
        }
        let mut out = Vec::new();
        for part in s.split(',') {
            out.push(parse_static(part, family)?);
        }
        let mut gw_families = Vec::new();
        for a in &out {
            if a.gateway.is_some() {
                if gw_families.contains(&a.family()) {
                    return Err(ParseError::new(
                        "address",
                        s,
                        "gives two gateways for the same address family",
                    ));
                }
                gw_families.push(a.family());
            }
        }
        for (i, a) in out.iter().enumerate() {
            if out[..i]
                .iter()
                .any(|b| b.address.addr() == a.address.addr())
            {
                return Err(ParseError::new(
                    "address",
                    s,
                    "lists the same address twice",
                ));
            }
        }
        Ok(AddressMode::Static(out))
    }

    pub fn statics(&self) -> &[StaticAddress] {
        match self {
            AddressMode::Static(v) => v,
            _ => &[],
        }
    }
}

fn parse_static(s: &str, family: Option<Family>) -> Result<StaticAddress, ParseError> {
    let (addr, gw) = match s.split_once('@') {
        Some((a, g)) => (a, Some(g)),
        None => (s, None),
    };
    if !addr.contains('/') {
        let hint = if addr.parse::<std::net::Ipv6Addr>().is_ok() {
            "/64"
        } else {
            "/24"
        };
        return Err(ParseError::new(
            "address",
            s,
            &format!("needs a prefix length (maybe you meant {addr}{hint}?)"),
        ));
    }
    if let Some(why) = leading_zero(addr) {
        return Err(ParseError::new("address", addr, why));
    }
    let address: IpNet = addr.parse().map_err(|_| {
        ParseError::new(
            "address",
            addr,
            "is not an address with prefix length like 192.168.1.5/24 or 2001:db8::5/64",
        )
    })?;
    let ip = address.addr();
    let fam = Family::of(&ip);
    if let Some(want) = family {
        if want != fam {
            return Err(ParseError::new(
                "address",
                addr,
                &format!("is {fam} but -a asked for {want}"),
            ));
        }
    }
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(ParseError::new(
            "address",
            addr,
            "must be a unicast, non-loopback address",
        ));
    }
    if let Some(why) = reserved_v4(&ip) {
        return Err(ParseError::new("address", addr, why));
    }
    if let IpNet::V4(n) = address {
        if n.prefix_len() < 31 && (n.addr() == n.network() || n.addr() == n.broadcast()) {
            return Err(ParseError::new(
                "address",
                addr,
                "is the network or broadcast address of its subnet",
            ));
        }
    }
    let gateway = match gw {
        None => None,
        Some(g) => {
            if let Some(why) = leading_zero(g) {
                return Err(ParseError::new("gateway", g, why));
            }
            let gip: IpAddr = g
                .parse()
                .map_err(|_| ParseError::new("gateway", g, "is not an IP address"))?;
            if Family::of(&gip) != fam {
                return Err(ParseError::new(
                    "gateway",
                    g,
                    &format!("is not {fam} like its address {addr}"),
                ));
            }
            if gip.is_unspecified() || gip.is_multicast() || gip.is_loopback() {
                return Err(ParseError::new("gateway", g, "must be a unicast address"));
            }
            if let Some(why) = reserved_v4(&gip) {
                return Err(ParseError::new("gateway", g, why));
            }
            if gip == ip {
                return Err(ParseError::new(
                    "gateway",
                    g,
                    "is the interface's own address",
                ));
            }
            if let (IpNet::V4(n), IpAddr::V4(g4)) = (address, gip) {
                if n.prefix_len() < 31 && (g4 == n.broadcast() || g4 == n.network()) {
                    return Err(ParseError::new(
                        "gateway",
                        g,
                        "is the network or broadcast address of the subnet",
                    ));
                }
            }
            Some(gip)
        }
    };
    Ok(StaticAddress { address, gateway })
}

/// IPv4 addresses no interface can have (the kernel takes some of them,
/// and the original took all, with exit 0): the limited broadcast address,
/// the reserved 240.0.0.0/4 and "this network" 0.0.0.0/8.
fn reserved_v4(ip: &IpAddr) -> Option<&'static str> {
    let IpAddr::V4(v4) = ip else {
        return None;
    };
    if v4.is_broadcast() {
        Some("is the limited broadcast address")
    } else if v4.octets()[0] >= 240 {
        Some("is in the reserved range 240.0.0.0/4")
    } else if v4.octets()[0] == 0 {
        Some("is in 0.0.0.0/8 (\"this network\"), not an interface address")
    } else {
        None
    }
}

/// A leading zero in an IPv4 octet or in a prefix length (`010.1.2.3`,
/// `/024`): iproute2 reads some of them as octal (`/024` is /20 to `ip`),
/// other tools as decimal, so it is refused rather than guessed.
fn leading_zero(s: &str) -> Option<&'static str> {
    let (ip, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let zero = |n: &str| n.len() > 1 && n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit());
    let octets: Vec<&str> = ip.split('.').collect();
    if octets.len() == 4 && octets.iter().any(|o| zero(o)) {
        return Some(
            "has an octet with a leading zero, which some tools read as octal: write it without",
        );
    }
    if prefix.is_some_and(zero) {
        return Some(
            "has a prefix length with a leading zero, which ip reads as octal: write it without",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(AddressMode::parse("0/0", None).unwrap(), AddressMode::None);
        let a = AddressMode::parse("192.168.1.5/24@192.168.1.1", None).unwrap();
        assert_eq!(a.statics()[0].gateway, Some("192.168.1.1".parse().unwrap()));
        let d = AddressMode::parse("udhcpc-f:-x foo", None).unwrap();
        assert_eq!(
            d,
            AddressMode::Dhcp(DhcpSpec {
                client: DhcpClient::Udhcpc,
                foreground: true,
                options: "-x foo".into(),
                v4: true,
                v6: false,
            })
        );
        let both = AddressMode::parse("dhcp,dhcp6", None).unwrap();
        assert!(matches!(
            both,
            AddressMode::Dhcp(DhcpSpec {
                v4: true,
                v6: true,
                ..
            })
        ));
        let six = AddressMode::parse("dhcp", Some(Family::V6)).unwrap();
        assert!(matches!(
            six,
            AddressMode::Dhcp(DhcpSpec {
                v4: false,
                v6: true,
                ..
            })
        ));
        let f = AddressMode::parse("dhcp:-f", None).unwrap();
        assert!(matches!(
            f,
            AddressMode::Dhcp(DhcpSpec {
                client: DhcpClient::Native,
                ..
            })
        ));
        assert!(matches!(
            AddressMode::parse("dhcp", None).unwrap(),
            AddressMode::Dhcp(DhcpSpec {
                client: DhcpClient::Native,
                ..
            })
        ));
        let ds = AddressMode::parse("10.0.0.2/24@10.0.0.1,fd00::2/64@fd00::1", None).unwrap();
        assert_eq!(ds.statics().len(), 2);
    }

    #[test]
    fn errors() {
        for (s, fam) in [
            ("10.0.0.5", None),
            ("10.0.0.5/33", None),
            ("10.0.0.0/24", None),
            ("10.0.0.255/24", None),
            ("224.0.0.1/24", None),
            ("10.0.0.5/24@", None),
            ("10.0.0.5/24@fd00::1", None),
            ("10.0.0.5/24@10.0.0.5", None),
            ("10.0.0.5/24@10.0.0.255", None),
            ("fd00::5/64", Some(Family::V4)),
            ("10.0.0.5/24", Some(Family::V6)),
            ("10.0.0.5/24@10.0.0.1,10.0.1.5/24@10.0.1.1", None),
            ("10.0.0.5/24,10.0.0.5/16", None),
            ("dhcpx", None),
            ("dhcp:-x foo", None),
            ("dhcp,udhcpc", None),
            ("dhcp,10.0.0.5/24", None),
            ("udhcpc", Some(Family::V6)),
            ("dhcp6", Some(Family::V4)),
            ("255.255.255.255/32", None),
            ("240.0.0.1/24", None),
            ("254.1.2.3/8", None),
            ("0.1.2.3/8", None),
            ("10.0.0.5/24@255.255.255.255", None),
            ("10.0.0.5/24@240.0.0.1", None),
            ("10.0.0.5/8@0.0.0.1", None),
            ("010.062.000.002/24", None),
            ("10.62.0.2/24@10.62.0.01", None),
        ] {
            assert!(AddressMode::parse(s, fam).is_err(), "{s}");
        }
        let e = AddressMode::parse("010.062.000.002/24", None).unwrap_err();
        assert!(e.to_string().contains("leading zero"), "{e}");
        assert!(AddressMode::parse("10.0.0.5/024", None).is_err());
        assert!(AddressMode::parse("fd00::5/064", None).is_err());
        assert!(AddressMode::parse("10.0.0.5/0", None).is_ok());
        assert!(AddressMode::parse("10.100.0.5/24@10.100.0.1", None).is_ok());
        let e = AddressMode::parse("10.0.0.5", None).unwrap_err();
        assert!(e.to_string().contains("10.0.0.5/24"), "{e}");
    }

    #[test]
    fn off_link_gateway() {
        let a = AddressMode::parse("10.0.0.5/32@10.9.9.1", None).unwrap();
        assert!(a.statics()[0].gateway_is_off_link());
    }
}
