//! A complete attach request, as the CLI (or a declared attachment) produces it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    AddressMode, Family, HwOptions, IfName, MacAddr, MacSpec, OvsOptions, ParseError, Tag,
};

/// How the host side is named: by interface name or by `mac:<addr>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostSelector {
    Name(IfName),
    Mac(MacAddr),
}

impl FromStr for HostSelector {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("mac:") {
            Some(m) => Ok(HostSelector::Mac(m.parse()?)),
            None => Ok(HostSelector::Name(s.parse().map_err(|e: ParseError| {
                ParseError::new("host interface", s, e.why())
            })?)),
        }
    }
}

/// How the user named the guest. Resolution (to a namespace fd) happens later.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestRef {
    /// A bare name: a named netns, else a Docker/Podman container, else LXC.
    Auto(String),
    Pid(u32),
    /// A netns file: `/proc/<pid>/ns/net`, `/run/netns/<name>`, a bind mount...
    Path(PathBuf),
    /// `netns:<name>`: `/run/netns/<name>`.
    Netns(String),
    /// `docker:<name-or-id>` (also `podman:` and `container:`).
    Container(String),
    /// `lxc:<name>`.
    Lxc(String),
}

impl FromStr for GuestRef {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let nonempty = |kind: &str, v: &str| {
            if v.is_empty() {
                Err(ParseError::new(
                    "guest",
                    s,
                    &format!("{kind} needs a name after it"),
                ))
            } else {
                Ok(v.to_string())
            }
        };
        if s.is_empty() {
            return Err(ParseError::new("guest", s, "is empty"));
        }
        if let Some(p) = s.strip_prefix("pid:") {
            return p
                .parse::<u32>()
                .ok()
                .filter(|p| *p > 0)
                .map(GuestRef::Pid)
                .ok_or_else(|| ParseError::new("guest", s, "pid: needs a process id"));
        }
        if let Some(n) = s.strip_prefix("netns:") {
            let n = nonempty("netns:", n)?;
            if n.contains('/') || n == "." || n == ".." {
                return Err(ParseError::new(
                    "guest",
                    s,
                    "a netns name has no '/' and is not '.' or '..'",
                ));
            }
            return Ok(GuestRef::Netns(n));
        }
        for p in ["docker:", "podman:", "container:"] {
            if let Some(n) = s.strip_prefix(p) {
                return Ok(GuestRef::Container(nonempty(p, n)?));
            }
        }
        if let Some(n) = s.strip_prefix("lxc:") {
            return Ok(GuestRef::Lxc(nonempty("lxc:", n)?));
        }
        if s.starts_with('/') || s.starts_with("./") {
            return Ok(GuestRef::Path(PathBuf::from(s)));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u32>() {
                Ok(p) if p > 0 => Ok(GuestRef::Pid(p)),
                _ => Err(ParseError::new("guest", s, "is not a valid process id")),
            };
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParseError::new("guest", s, "contains whitespace"));
        }
        // A bare name is looked up under /run/netns: `../x` would leave it.
        if s.contains('/') || s == "." || s == ".." {
            return Err(ParseError::new(
                "guest",
                s,
                "a name has no '/' and is not '.' or '..' (a path starts with '/' or './')",
            ));
        }
        Ok(GuestRef::Auto(s.to_string()))
    }
}

impl std::fmt::Display for GuestRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestRef::Auto(n) => f.write_str(n),
            GuestRef::Pid(p) => write!(f, "{p}"),
            GuestRef::Path(p) => write!(f, "{}", p.display()),
            GuestRef::Netns(n) => write!(f, "netns:{n}"),
            GuestRef::Container(n) => write!(f, "container:{n}"),
            GuestRef::Lxc(n) => write!(f, "lxc:{n}"),
        }
    }
}

/// macvlan modes (`--macvlan-mode`). `source` needs a MAC list and is not offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MacvlanMode {
    #[default]
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl FromStr for MacvlanMode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bridge" => Ok(MacvlanMode::Bridge),
            "private" => Ok(MacvlanMode::Private),
            "vepa" => Ok(MacvlanMode::Vepa),
            "passthru" | "passthrough" => Ok(MacvlanMode::Passthru),
            _ => Err(ParseError::new(
                "macvlan mode",
                s,
                "must be bridge, private, vepa or passthru",
            )),
        }
    }
}

/// `--host-route`: a host-side macvlan (the shim) on the parent of a macvlan
/// attachment, so that the host can reach its macvlan guests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostRoute {
    /// The shim takes the last usable address of each of the guest's subnets.
    Auto,
    /// The shim's address and prefix length.
    Address(ipnet::IpNet),
}

impl FromStr for HostRoute {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(HostRoute::Auto);
        }
        let net: ipnet::IpNet = s.parse().map_err(|_| {
            ParseError::new(
                "host route",
                s,
                "expected auto or the shim's <ip>/<prefix>, e.g. 192.168.1.254/24",
            )
        })?;
        let a = net.addr();
        if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
            return Err(ParseError::new(
                "host route",
                s,
                "is not a unicast host address",
            ));
        }
        Ok(HostRoute::Address(net))
    }
}

/// A route the attach adds in the guest through the new interface, beyond
/// the default routes that the addresses' gateways make: a CNI IPAM result
/// lists such routes. Journaled like every other step, so a failed attach
/// and a detach remove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestRoute {
    /// The prefix reached (host bits are cleared when the route is added).
    pub destination: ipnet::IpNet,
    /// `None`: the destination is on the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

impl std::fmt::Display for GuestRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.gateway {
            Some(g) => write!(f, "{} via {g}", self.destination),
            None => write!(f, "{} on link", self.destination),
        }
    }
}

/// Options that are not part of the original positional grammar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachOptions {
    pub macvlan_mode: MacvlanMode,
    /// Send a gratuitous ARP / unsolicited NA once the link is up.
    pub announce: bool,
    /// Add IPv6 addresses with IFA_F_NODAD instead of waiting for DAD.
    pub skip_dad: bool,
    /// Upper bound for the whole attach, including waiting for the guest to
    /// run and for a DHCP lease.
    pub timeout: Duration,
    /// Open vSwitch port options (trunks, native VLAN, port security).
    #[serde(default)]
    pub ovs: OvsOptions,
    /// `--dns`: write the DHCP lease's name servers into the guest's
    /// `resolv.conf`.
    #[serde(default)]
    pub dns: bool,
    /// `--slaac`: accept router advertisements on the interface and wait for
    /// an autoconfigured IPv6 address.
    #[serde(default)]
    pub slaac: bool,
    /// SR-IOV VF and IPoIB options (`--vf`, `--spoofchk`, `--ipoib-mode`...).
    #[serde(default)]
    pub hw: HwOptions,
    /// `--host-route`: reach this macvlan guest from the host through a shim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_route: Option<HostRoute>,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            macvlan_mode: MacvlanMode::Bridge,
            announce: true,
            skip_dad: false,
            timeout: Duration::from_secs(30),
            ovs: OvsOptions::default(),
            dns: false,
            slaac: false,
            hw: HwOptions::default(),
            host_route: None,
        }
    }
}

/// Everything one attach needs, fully parsed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachRequest {
    pub host: HostSelector,
    /// `--direct-phys`: move the host interface itself into the guest.
    pub direct_phys: bool,
    pub guest: GuestRef,
    /// `-i`; the driver's default (`eth1`, `ib0`) when absent.
    pub guest_ifname: Option<IfName>,
    /// `-l`: the host-side name of the veth.
    pub host_ifname: Option<IfName>,
    /// `-a`
    pub family: Option<Family>,
    pub address: AddressMode,
    pub mac: MacSpec,
    /// `@<tag>`: VLAN id or partition key.
    pub tag: Option<Tag>,
    pub options: AttachOptions,
    /// Who asked, copied into the record: the CNI plugin keeps its network
    /// name and container ID here, the reconciler its declaration.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Routes added through the interface once its addresses are on it
    /// (the command line has no syntax for them; the CNI plugin fills them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<GuestRoute>,
}

impl AttachRequest {
    /// A request with defaults for everything but the three essentials.
    pub fn new(host: HostSelector, guest: GuestRef, address: AddressMode) -> AttachRequest {
        AttachRequest {
            host,
            direct_phys: false,
            guest,
            guest_ifname: None,
            host_ifname: None,
            family: None,
            address,
            mac: MacSpec::Random,
            tag: None,
            options: AttachOptions::default(),
            labels: Default::default(),
            routes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_refs() {
        assert_eq!("123".parse::<GuestRef>().unwrap(), GuestRef::Pid(123));
        assert!("0".parse::<GuestRef>().is_err());
        assert_eq!(
            "/proc/1/ns/net".parse::<GuestRef>().unwrap(),
            GuestRef::Path("/proc/1/ns/net".into())
        );
        assert_eq!(
            "netns:blue".parse::<GuestRef>().unwrap(),
            GuestRef::Netns("blue".into())
        );
        assert_eq!(
            "podman:web".parse::<GuestRef>().unwrap(),
            GuestRef::Container("web".into())
        );
        assert_eq!(
            "web1".parse::<GuestRef>().unwrap(),
            GuestRef::Auto("web1".into())
        );
        assert!("netns:".parse::<GuestRef>().is_err());
        assert!("netns:a/b".parse::<GuestRef>().is_err());
        for bad in ["netns:..", "netns:.", "..", ".", "../x", "a/../b", "x/"] {
            assert!(bad.parse::<GuestRef>().is_err(), "{bad}");
        }
        assert!("pid:x".parse::<GuestRef>().is_err());
    }

    #[test]
    fn host_selector() {
        assert!(matches!(
            "mac:02:00:00:00:00:01".parse::<HostSelector>().unwrap(),
            HostSelector::Mac(_)
        ));
        assert!("mac:zz".parse::<HostSelector>().is_err());
        assert!("waytoolonginterfacename".parse::<HostSelector>().is_err());
    }
}
