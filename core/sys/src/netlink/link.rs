//! Links: reading them, creating them (`RTM_NEWLINK`), changing them
//! (`RTM_SETLINK`) and deleting them.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoBridge, InfoBridgePort, InfoData, InfoKind,
    InfoPortData, InfoVeth, InfoVlan, IpoibMode, LinkAttribute, LinkExtentMask, LinkFlags,
    LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{
    LinkBridge, LinkDummy, LinkIpoib, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth,
    LinkVlan,
};

use super::{Netlink, NlError};
use pipework_model::{MacAddr, MacvlanMode};

/// What we read back about a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: "bridge", "veth", "macvlan", "vlan", "openvswitch"...
    /// `None` for physical NICs.
    pub kind: Option<String>,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    pub perm_mac: Option<MacAddr>,
    /// `IFLA_MASTER`: the bridge (or bond) this link is a port of.
    pub master: Option<u32>,
    /// `IFLA_LINK`: the parent (macvlan, vlan) or peer (veth).
    pub parent: Option<u32>,
    /// Set when `parent` lives in another namespace.
    pub parent_netnsid: Option<i32>,
    /// `IFF_UP`: administratively up.
    pub up: bool,
    /// `IFF_LOWER_UP`: carrier.
    pub carrier: bool,
    /// `ARPHRD_*` (1 Ethernet, 32 InfiniBand, 772 loopback).
    pub arphrd: u16,
    pub alias: Option<String>,
    /// `IFLA_NUM_VF`: VFs currently enabled on an SR-IOV PF.
    pub num_vf: Option<u32>,
    /// 802.1Q id of a `vlan` link.
    pub vlan_id: Option<u16>,
    /// STP state of a bridge port (`BR_STATE_*`: 3 is forwarding).
    pub bridge_port_state: Option<u8>,
    /// A bridge's `vlan_filtering`.
    pub vlan_filtering: Option<bool>,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            kind: None,
            mtu: 0,
            mac: None,
            perm_mac: None,
            master: None,
            parent: None,
            parent_netnsid: None,
            up: m.header.flags.contains(LinkFlags::Up),
            carrier: m.header.flags.contains(LinkFlags::LowerUp),
            arphrd: u16::from(m.header.link_layer_type),
            alias: None,
            num_vf: None,
            vlan_id: None,
            bridge_port_state: None,
            vlan_filtering: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::Address(b) => l.mac = MacAddr::from_slice(b),
                LinkAttribute::PermAddress(b) => l.perm_mac = MacAddr::from_slice(b),
                LinkAttribute::Controller(v) => l.master = Some(*v),
                LinkAttribute::Link(v) => l.parent = Some(*v),
                LinkAttribute::LinkNetNsId(v) => l.parent_netnsid = Some(*v),
                LinkAttribute::IfAlias(s) => l.alias = Some(s.clone()),
                LinkAttribute::NumVf(v) => l.num_vf = Some(*v),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                            LinkInfo::Data(InfoData::Vlan(v)) => {
                                for x in v {
                                    if let InfoVlan::Id(id) = x {
                                        l.vlan_id = Some(*id);
                                    }
                                }
                            }
                            LinkInfo::Data(InfoData::Bridge(v)) => {
                                for x in v {
                                    if let InfoBridge::VlanFiltering(on) = x {
                                        l.vlan_filtering = Some(*on);
                                    }
                                }
                            }
                            LinkInfo::PortData(InfoPortData::BridgePort(v)) => {
                                for x in v {
                                    if let InfoBridgePort::State(st) = x {
                                        l.bridge_port_state = Some(u8::from(*st));
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }

    pub fn is_kind(&self, k: &str) -> bool {
        self.kind.as_deref() == Some(k)
    }
}

/// A link to create (`RTM_NEWLINK` with `NLM_F_CREATE | NLM_F_EXCL`).
///
/// Built with rtnetlink's `LinkMessageBuilder` family (`LinkVeth`,
/// `LinkBridge`, `LinkMacVlan`, `LinkVlan`, `LinkDummy`, `LinkIpoib`, and
/// `LinkUnspec` for the common setters); what we add is the label for error
/// messages, our own request path (extended ack, [`NewLink::wire_bytes`])
/// and the few pieces rtnetlink has no builder for.
#[derive(Clone, Debug)]
pub struct NewLink {
    /// Header and attributes so far, without `IFLA_LINKINFO`.
    msg: LinkMessage,
    /// `IFLA_LINKINFO`, kept apart so that it stays the last attribute
    /// whatever setters come after the constructor (as before, and as
    /// rtnetlink's own `build` places it).
    info: Vec<LinkInfo>,
    what: String,
}

/// A change to an existing link (`RTM_SETLINK`), by index.
#[derive(Clone, Debug)]
pub struct LinkChange {
    msg: LinkMessage,
    what: String,
    /// Sent as `RTM_NEWLINK` without create flags, as iproute2 does for
    /// `ip link set` (the kernel treats both alike).
    newlink: bool,
}

/// rtnetlink's generic builder, as our setters use it.
type Builder = LinkMessageBuilder<LinkUnspec>;

/// A builder holding `msg` as it is: its header, then its attributes in
/// order. `build()` gives `msg` back unchanged (a `LinkUnspec` builder adds
/// no `IFLA_LINKINFO` of its own).
fn builder_of(msg: LinkMessage) -> Builder {
    msg.attributes.into_iter().fold(
        Builder::new().set_header(msg.header),
        Builder::append_extra_attribute,
    )
}

/// Setters shared by [`NewLink`] and [`LinkChange`]: each is the
/// rtnetlink builder method of the same meaning.
macro_rules! link_setters {
    ($t:ty) => {
        impl $t {
            /// Applies rtnetlink builder calls to the message so far.
            fn with(mut self, f: impl FnOnce(Builder) -> Builder) -> Self {
                self.msg = f(builder_of(std::mem::take(&mut self.msg))).build();
                self
            }
            pub fn name(self, name: &str) -> Self {
                self.with(|b| b.name(name))
            }
            pub fn mtu(self, mtu: u32) -> Self {
                self.with(|b| b.mtu(mtu))
            }
            pub fn mac(self, mac: MacAddr) -> Self {
                self.with(|b| b.address(mac.0.to_vec()))
            }
            pub fn up(self) -> Self {
                self.with(Builder::up)
            }
            pub fn down(self) -> Self {
                self.with(Builder::down)
            }
            /// Makes the link a port of `master` (a bridge).
            pub fn master(self, master: u32) -> Self {
                self.with(|b| b.controller(master))
            }
            pub fn nomaster(self) -> Self {
                self.with(Builder::nocontroller)
            }
            /// Moves (or creates) the link in the namespace of `ns`. The fd must
            /// stay open until the request has been sent.
            pub fn netns(self, ns: BorrowedFd<'_>) -> Self {
                self.with(|b| b.setns_by_fd(ns.as_raw_fd()))
            }
            pub fn alias(self, alias: &str) -> Self {
                self.with(|b| b.alias(alias))
            }
            /// Sets the IPv4 `arp_notify` devconf: the kernel then sends a
            /// gratuitous ARP whenever the link comes up or changes MAC.
            ///
            /// Ours: rtnetlink 0.24's builders have no setter for the
            /// per-family `IFLA_AF_SPEC` devconf.
            pub fn arp_notify(self) -> Self {
                let mut conf = InetDevConf::default();
                conf.arp_notify = 1;
                self.attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                    AfSpecInet::DevConfRequest(conf),
                ])]))
            }
            /// Escape hatch for driver-specific attributes (VF settings...).
            pub fn attribute(self, a: LinkAttribute) -> Self {
                self.with(|b| b.append_extra_attribute(a))
            }
        }
    };
}

link_setters!(NewLink);
link_setters!(LinkChange);

impl NewLink {
    /// From one of rtnetlink's builders: its `IFLA_LINKINFO` (kind, data) is
    /// set aside to go last, the rest is the message so far.
    fn from_builder<T>(b: LinkMessageBuilder<T>, what: String) -> NewLink {
        let mut msg = b.build();
        let mut info = Vec::new();
        msg.attributes.retain_mut(|a| match a {
            LinkAttribute::LinkInfo(i) => {
                info.append(i);
                false
            }
            _ => true,
        });
        NewLink { msg, info, what }
    }

    /// A veth pair; `peer` describes the other end (name, netns, MAC, MTU).
    ///
    /// rtnetlink's `LinkVeth::new(name, peer)` gives the peer only a name;
    /// ours carries more, so the peer message goes in with `set_info_data`.
    pub fn veth(name: &str, peer: NewLink) -> NewLink {
        let b = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.into_message())));
        NewLink::from_builder(b, format!("create veth {name}"))
    }

    /// One transmit and one receive queue, asked for at creation.
    ///
    /// Why: a veth made without these gets a queue per possible CPU and then
    /// brings its active count down to one (`veth_init_queues`), and each
    /// end's change waits for an expedited RCU grace period under the
    /// link-change lock (seen in a `sched_switch` trace of an attach: two
    /// sleeps inside the creation's `sendto`). One queue is what the veth
    /// uses by default anyway; the only difference is that `ethtool -L`
    /// cannot add queues to it later.
    pub fn single_queue(self) -> Self {
        self.attribute(LinkAttribute::NumTxQueues(1))
            .attribute(LinkAttribute::NumRxQueues(1))
    }

    /// The peer half of a veth: only attributes, no kind.
    pub fn veth_peer(name: &str) -> NewLink {
        NewLink::from_builder(LinkUnspec::new_with_name(name), String::new())
    }

    /// A bridge, down: `LinkBridge::new` would also set it up, so this is
    /// the builder's plain constructor.
    pub fn bridge(name: &str) -> NewLink {
        NewLink::from_builder(
            LinkMessageBuilder::<LinkBridge>::new(name),
            format!("create bridge {name}"),
        )
    }

    pub fn macvlan(name: &str, parent: u32, mode: MacvlanMode) -> NewLink {
        let mode = match mode {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        };
        NewLink::from_builder(
            LinkMacVlan::new(name, parent, mode),
            format!("create macvlan {name}"),
        )
    }

    pub fn vlan(name: &str, parent: u32, id: u16) -> NewLink {
        NewLink::from_builder(
            LinkVlan::new(name, parent, id),
            format!("create vlan {name}"),
        )
    }

    pub fn dummy(name: &str) -> NewLink {
        NewLink::from_builder(LinkDummy::new(name), format!("create dummy {name}"))
    }

    /// An IPoIB child. Without `pkey` the kernel uses the parent's;
    /// `connected` picks the mode (the kernel's default is datagram).
    ///
    /// Byte for byte the request `ip link add link P name N type ipoib
    /// [pkey K] [mode M]` sends: `IFLA_LINK` first, the kind without a
    /// terminating NUL, no empty data attribute. The kernel
    /// takes either form; being identical lets the tests compare the two.
    /// rtnetlink's `LinkIpoib` builds the pkey and mode; its kind is left
    /// unset and ours put in its place, because netlink-packet-route always
    /// writes a kind with a NUL (`LinkIpoib::new` would also put the name
    /// before `IFLA_LINK`).
    pub fn ipoib(name: &str, parent: u32, pkey: Option<u16>, connected: Option<bool>) -> NewLink {
        let mut b = LinkMessageBuilder::<LinkIpoib>::default()
            .link(parent)
            .name(name);
        if let Some(p) = pkey {
            b = b.pkey(p);
        }
        if let Some(c) = connected {
            b = b.mode(if c {
                IpoibMode::Connected
            } else {
                IpoibMode::Datagram
            });
        }
        let mut l = NewLink::from_builder(b, format!("create ipoib {name}"));
        l.info.insert(
            0,
            LinkInfo::Other(DefaultNla::new(IFLA_INFO_KIND, b"ipoib".to_vec())),
        );
        l
    }

    /// The request as it goes on the wire (sequence number 0), for tests
    /// that compare it with another tool's.
    pub fn wire_bytes(self) -> Vec<u8> {
        super::wire_bytes(
            RouteNetlinkMessage::NewLink(self.into_message()),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// The finished message, as it goes on the wire.
    pub fn into_message(mut self) -> LinkMessage {
        if !self.info.is_empty() {
            self.msg
                .attributes
                .push(LinkAttribute::LinkInfo(std::mem::take(&mut self.info)));
        }
        self.msg
    }
}

/// `IFLA_INFO_KIND`, for the IPoIB kind written as iproute2 writes it.
const IFLA_INFO_KIND: u16 = 1;

impl LinkChange {
    pub fn new(index: u32) -> LinkChange {
        LinkChange::from_builder(
            LinkUnspec::new_with_index(index),
            format!("change link #{index}"),
        )
    }

    /// From one of rtnetlink's builders (which must set the index).
    pub(super) fn from_builder<T>(b: LinkMessageBuilder<T>, what: String) -> LinkChange {
        LinkChange {
            msg: b.build(),
            what,
            newlink: false,
        }
    }

    /// Send as `RTM_NEWLINK` (no create flags) instead of `RTM_SETLINK`.
    pub fn via_newlink(mut self) -> Self {
        self.newlink = true;
        self
    }

    fn into_request(self) -> (RouteNetlinkMessage, String) {
        let msg = if self.newlink {
            RouteNetlinkMessage::NewLink(self.msg)
        } else {
            RouteNetlinkMessage::SetLink(self.msg)
        };
        (msg, self.what)
    }

    /// The request as it goes on the wire (sequence number 0).
    pub fn wire_bytes(self) -> Vec<u8> {
        super::wire_bytes(self.into_request().0, 0)
    }

    /// Names the change for error messages ("rename eth1").
    pub fn describe(mut self, what: impl Into<String>) -> Self {
        self.what = what.into();
        self
    }
}

impl Netlink {
    /// One link by name, or `None` if there is none.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>, NlError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        // Counters are never read from these replies: the kernel need not
        // gather or send them.
        m.attributes.push(LinkAttribute::ExtMask(vec![
            LinkExtentMask::Vf,
            LinkExtentMask::SkipStats,
        ]));
        self.get_one(m, || format!("get link {name}")).await
    }

    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>, NlError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_one(m, || format!("get link #{index}")).await
    }

    async fn get_one(
        &self,
        m: LinkMessage,
        op: impl FnOnce() -> String,
    ) -> Result<Option<Link>, NlError> {
        match self.request(RouteNetlinkMessage::GetLink(m), 0, op).await {
            Ok(v) => Ok(v.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })),
            Err(e) if e.is(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link in the namespace.
    pub async fn links(&self) -> Result<Vec<Link>, NlError> {
        self.dump_links(LinkMessage::default()).await
    }

    /// The ports of a bridge, filtered by the kernel (strict dump checking).
    pub async fn ports_of(&self, master: u32) -> Result<Vec<Link>, NlError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::Controller(master));
        Ok(self
            .dump_links(m)
            .await?
            .into_iter()
            .filter(|l| l.master == Some(master))
            .collect())
    }

    async fn dump_links(&self, m: LinkMessage) -> Result<Vec<Link>, NlError> {
        let v = self
            .request(RouteNetlinkMessage::GetLink(m), NLM_F_DUMP, || {
                "list links".to_string()
            })
            .await?;
        Ok(v.iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Creates a link; fails with EEXIST if the name is taken.
    pub async fn create_link(&self, l: NewLink) -> Result<(), NlError> {
        let what = l.what.clone();
        self.request(
            RouteNetlinkMessage::NewLink(l.into_message()),
            NLM_F_CREATE | NLM_F_EXCL,
            || what,
        )
        .await
        .map(drop)
    }

    /// Like [`Netlink::create_link`], asking the kernel to echo the new
    /// link back (`NLM_F_ECHO`): what a lookup by name would say, without
    /// the request. Kernels before 6.3 ignore the flag for links: `None`
    /// then, and the caller looks the link up. The echo is sent before a
    /// master is set, so it has no `master`.
    pub async fn create_link_echo(&self, l: NewLink) -> Result<Option<Link>, NlError> {
        let what = l.what.clone();
        let replies = self
            .request(
                RouteNetlinkMessage::NewLink(l.into_message()),
                NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
                || what,
            )
            .await?;
        Ok(replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
            _ => None,
        }))
    }

    pub async fn change_link(&self, c: LinkChange) -> Result<(), NlError> {
        let (msg, what) = c.into_request();
        self.request(msg, 0, || what).await.map(drop)
    }

    pub async fn delete_link(&self, index: u32, name: &str) -> Result<(), NlError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(m), 0, || {
            format!("delete link {name}")
        })
        .await
        .map(drop)
    }
}
