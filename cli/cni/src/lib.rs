//! pipework as a CNI plugin: the same binary, invoked with `CNI_COMMAND` set.
//!
//! ADD builds the same `AttachRequest` as the command line (so every driver
//! works), with the attachment labelled by network name, container ID and
//! interface; DEL finds it by those labels, whether the namespace still exists
//! or not, and is idempotent; CHECK compares the kernel with `prevResult`;
//! GC drops attachments of this network that the runtime no longer lists;
//! STATUS says whether we can serve ADD. IPAM is the built-in `static`
//! schema or any delegated IPAM plugin from `CNI_PATH`.

mod config;
mod delegate;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::process::ExitCode;

use ipnet::IpNet;
use pipework_core::attach::attach_to;
use pipework_core::detach::{detach_guest, detach_matching};
use pipework_core::error::{Error, ErrorKind};
use pipework_core::guest::{Guest, ResolveOptions};
use pipework_core::model::{
    AddressMode, AttachRequest, DhcpClient, DhcpSpec, GuestRef, HostSelector, IfName, MacSpec,
    StaticAddress, Tag,
};
use pipework_core::netlink::{Netlink, RouteSpec};
use pipework_core::settings::Settings;
use pipework_core::state::{AttachmentRecord, StateDir};
use pipework_drivers::Drivers;

use config::{code, CniError, CniResult, Interface, IpConfig, NetConf, Route};

/// A route from the IPAM result other than the default: destination, gateway.
type ExtraRoute = (IpNet, Option<IpAddr>);

const LABEL_NETWORK: &str = "cni.network";
const LABEL_CONTAINER: &str = "cni.container_id";
const LABEL_IFNAME: &str = "cni.ifname";

/// Entry point when `CNI_COMMAND` is set.
pub fn run(command: &str) -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return fail(CniError::new(
            code::IO,
            format!("cannot read the configuration from stdin: {e}"),
        ));
    }
    if command == "VERSION" {
        return version(&input);
    }
    let conf: NetConf = match serde_json::from_slice(&input) {
        Ok(c) => c,
        Err(e) => {
            return fail(CniError::new(
                code::DECODE,
                format!("cannot decode the network configuration: {e}"),
            ))
        }
    };
    let version = if conf.cni_version.is_empty() {
        "1.1.0".to_string()
    } else {
        conf.cni_version.clone()
    };
    if !config::SUPPORTED_VERSIONS.contains(&version.as_str()) {
        let mut e = CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "CNI version {version} is not supported (supported: {})",
                config::SUPPORTED_VERSIONS.join(", ")
            ),
        );
        e.cni_version = "1.1.0".into();
        return fail(e);
    }
    if let Some(e) = unsupported_field(&conf) {
        return fail(e);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(CniError::new(
                code::FAILED,
                format!("cannot start the async runtime: {e}"),
            ))
        }
    };
    let settings = Settings::from_env();
    let drivers = Drivers::new();
    let res = rt.block_on(async {
        match command {
            "ADD" => add(&conf, &input, &version, &settings, &drivers)
                .await
                .map(Some),
            "DEL" => del(&conf, &input, &settings, &drivers).await.map(|_| None),
            "CHECK" => check(&conf, &input, &settings).await.map(|_| None),
            "GC" => gc(&conf, &input, &settings, &drivers).await.map(|_| None),
            "STATUS" => status(&conf, &input, &settings).await.map(|_| None),
            other => Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_COMMAND '{other}' is not ADD, DEL, CHECK, GC, STATUS or VERSION"),
            )),
        }
    });
    match res {
        Ok(Some(result)) => {
            println!("{}", serde_json::to_string(&result).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(mut e) => {
            e.cni_version = version;
            fail(e)
        }
    }
}

/// A key we do not know is most likely a typo that would silently change
/// the attachment (`"hots": "br0"`): refuse it, naming key and value.
/// Protocol keys the runtime may add are accepted.
fn unsupported_field(conf: &NetConf) -> Option<CniError> {
    let (k, v) = conf.other.iter().find(|(k, v)| {
        !(k.starts_with("cni.dev/")
            // Runtimes should strip it, some pass it through.
            || *k == "capabilities"
            || *k == "args"
            || (*k == "ipMasq" && **v == serde_json::Value::Bool(false)))
    })?;
    Some(CniError::new(
        code::UNSUPPORTED_FIELD,
        format!(
            "unsupported field '{k}': {v} (see the pipework README for the CNI configuration keys)"
        ),
    ))
}

fn fail(e: CniError) -> ExitCode {
    println!("{}", serde_json::to_string(&e).unwrap_or_default());
    eprintln!(
        "pipework (CNI): {}{}",
        e.msg,
        if e.details.is_empty() {
            String::new()
        } else {
            format!(": {}", e.details)
        }
    );
    ExitCode::from(1)
}

fn version(input: &[u8]) -> ExitCode {
    let v: serde_json::Value = serde_json::from_slice(input).unwrap_or_default();
    let asked = v["cniVersion"].as_str().unwrap_or("1.1.0");
    println!(
        "{}",
        serde_json::json!({ "cniVersion": asked, "supportedVersions": config::SUPPORTED_VERSIONS })
    );
    ExitCode::SUCCESS
}

/// The invocation's environment.
struct Env {
    container_id: String,
    netns: Option<String>,
    ifname: IfName,
    args: BTreeMap<String, String>,
}

fn env(need_netns: bool) -> Result<Env, CniError> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut bad = Vec::new();
    let container_id = var("CNI_CONTAINERID").unwrap_or_default();
    if !config::valid_container_id(&container_id) {
        bad.push("CNI_CONTAINERID");
    }
    let netns = var("CNI_NETNS");
    if need_netns && netns.is_none() {
        bad.push("CNI_NETNS");
    }
    let ifname = var("CNI_IFNAME").and_then(|i| i.parse::<IfName>().ok());
    if ifname.is_none() {
        bad.push("CNI_IFNAME");
    }
    let args = config::parse_cni_args(&var("CNI_ARGS").unwrap_or_default());
    if args.is_err() {
        bad.push("CNI_ARGS");
    }
    if !bad.is_empty() {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!(
                "missing or invalid environment variables: {}",
                bad.join(", ")
            ),
        ));
    }
    Ok(Env {
        container_id,
        netns,
        ifname: ifname.expect("checked"),
        args: args.expect("checked"),
    })
}

fn from_core(e: Error) -> CniError {
    let c = match e.kind() {
        ErrorKind::Usage => code::INVALID_CONFIG,
        ErrorKind::Timeout => code::TRY_AGAIN,
        ErrorKind::Failed => code::FAILED,
    };
    CniError::new(c, e.to_string())
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

/// The IPAM plugin to delegate to, if the configuration names one.
fn delegated(conf: &NetConf) -> Option<&str> {
    match conf.ipam.as_ref().map(|i| i.ipam_type.as_str()) {
        None | Some("") | Some("static") | Some("dhcp") => None,
        Some(t) => Some(t),
    }
}

/// `"ipam": {"type": "dhcp"}` is pipework's own client, supervised by
/// `pipework daemon` (started on demand): no separate daemon to run, unlike
/// the reference `dhcp` plugin. `"v6": true` adds DHCPv6, `"v4": false`
/// leaves DHCPv4 out.
fn native_dhcp(conf: &NetConf) -> Option<DhcpSpec> {
    let ipam = conf.ipam.as_ref().filter(|i| i.ipam_type == "dhcp")?;
    let flag = |k: &str, default: bool| {
        ipam.other
            .get(k)
            .and_then(|v| v.as_bool())
            .unwrap_or(default)
    };
    Some(DhcpSpec {
        client: DhcpClient::Native,
        foreground: false,
        options: String::new(),
        v4: flag("v4", true),
        v6: flag("v6", false),
    })
}

/// Addresses, routes and DNS for the attachment: built-in static IPAM (with
/// `runtimeConfig.ips`, `CNI_ARGS` `IP=` overriding) or a delegated plugin.
async fn addressing(conf: &NetConf, input: &[u8], env: &Env) -> Result<CniResult, CniError> {
    if let Some(p) = delegated(conf) {
        return delegate::exec(p, "ADD", input).map(Option::unwrap_or_default);
    }
    let ipam = conf.ipam.clone().unwrap_or_default();
    let mut ips: Vec<IpConfig> = ipam
        .addresses
        .iter()
        .map(|a| IpConfig {
            version: None,
            address: a.address.clone(),
            gateway: a.gateway.clone(),
            interface: None,
        })
        .collect();
    let overrides: Option<Vec<String>> = conf
        .runtime_config
        .as_ref()
        .and_then(|r| r.ips.clone())
        .or_else(|| {
            env.args
                .get("IP")
                .map(|s| s.split(',').map(String::from).collect())
        });
    if let Some(list) = overrides {
        ips = list
            .into_iter()
            .map(|address| {
                let gateway = ips
                    .iter()
                    .find(|i| same_family(&i.address, &address))
                    .and_then(|i| i.gateway.clone());
                IpConfig {
                    version: None,
                    address,
                    gateway,
                    interface: None,
                }
            })
            .collect();
    }
    Ok(CniResult {
        cni_version: String::new(),
        interfaces: Vec::new(),
        ips,
        routes: ipam.routes.clone(),
        dns: ipam.dns.clone().unwrap_or_default(),
    })
}

fn same_family(a: &str, b: &str) -> bool {
    a.contains(':') == b.contains(':')
}

fn is_default(dst: &str) -> bool {
    dst == "0.0.0.0/0" || dst == "::/0"
}

/// Turns the addressing into static addresses (a default route becomes the
/// gateway of its family's first address, so the core swaps it atomically)
/// and the remaining routes.
fn plan(a: &CniResult) -> Result<(Vec<StaticAddress>, Vec<ExtraRoute>), CniError> {
    let mut statics = Vec::new();
    for ip in &a.ips {
        let address: IpNet = ip
            .address
            .parse()
            .map_err(|_| invalid(format!("bad address '{}'", ip.address)))?;
        statics.push(StaticAddress {
            address,
            gateway: None,
        });
    }
    let mut extra = Vec::new();
    for r in &a.routes {
        let dst: IpNet = r
            .dst
            .parse()
            .map_err(|_| invalid(format!("bad route destination '{}'", r.dst)))?;
        let gw: Option<IpAddr> = match &r.gw {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| invalid(format!("bad route gateway '{g}'")))?,
            ),
            None => a
                .ips
                .iter()
                .find(|i| same_family(&i.address, &r.dst))
                .and_then(|i| i.gateway.as_deref())
                .and_then(|g| g.parse().ok()),
        };
        if is_default(&r.dst) {
            let Some(gw) = gw else {
                return Err(invalid(format!("route {} has no gateway", r.dst)));
            };
            if let Some(s) = statics
                .iter_mut()
                .find(|s| s.address.addr().is_ipv4() == gw.is_ipv4() && s.gateway.is_none())
            {
                s.gateway = Some(gw);
                continue;
            }
        }
        extra.push((dst, gw));
    }
    Ok((statics, extra))
}

fn labels_of(conf: &NetConf, env: &Env) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NETWORK.to_string(), conf.name.clone()),
        (LABEL_CONTAINER.to_string(), env.container_id.clone()),
        (LABEL_IFNAME.to_string(), env.ifname.to_string()),
    ])
}

fn is_ours(r: &AttachmentRecord, container_id: &str, ifname: &str) -> bool {
    r.labels.get(LABEL_CONTAINER).map(String::as_str) == Some(container_id)
        && r.labels.get(LABEL_IFNAME).map(String::as_str) == Some(ifname)
}

fn request(
    conf: &NetConf,
    env: &Env,
    statics: Vec<StaticAddress>,
) -> Result<AttachRequest, CniError> {
    let host: HostSelector = match (&conf.host, &conf.host_mac) {
        (Some(h), None) => h.parse().map_err(|e| invalid(format!("host: {e}")))?,
        (None, Some(m)) => format!("mac:{m}")
            .parse()
            .map_err(|e| invalid(format!("hostMac: {e}")))?,
        _ => {
            return Err(invalid(
                "the configuration needs exactly one of 'host' and 'hostMac'",
            ))
        }
    };
    let address = match native_dhcp(conf) {
        Some(d) => AddressMode::Dhcp(d),
        None if statics.is_empty() => AddressMode::None,
        None => AddressMode::Static(statics),
    };
    let mut req = AttachRequest::new(
        host,
        GuestRef::Path(env.netns.clone().unwrap_or_default().into()),
        address,
    );
    req.guest_ifname = Some(env.ifname.clone());
    req.direct_phys = conf.direct_phys;
    let mac = conf
        .runtime_config
        .as_ref()
        .and_then(|r| r.mac.clone())
        .or_else(|| env.args.get("MAC").cloned())
        .or_else(|| conf.mac.clone());
    if let Some(m) = mac {
        req.mac = MacSpec::parse(&m).map_err(|e| invalid(e.to_string()))?;
    }
    req.tag = match (&conf.vlan, &conf.pkey) {
        (Some(v), None) => Some(
            v.to_string()
                .parse::<Tag>()
                .map_err(|e| invalid(e.to_string()))?,
        ),
        (None, Some(p)) => Some(p.parse::<Tag>().map_err(|e| invalid(e.to_string()))?),
        (None, None) => None,
        _ => return Err(invalid("give 'vlan' or 'pkey', not both")),
    };
    if let Some(m) = &conf.mode {
        req.options.macvlan_mode = m
            .parse()
            .map_err(|e: pipework_core::model::ParseError| invalid(e.to_string()))?;
    }
    req.options.announce = conf.announce.unwrap_or(true);
    let bad = |e: pipework_core::model::ParseError| invalid(e.to_string());
    req.options.ovs.trunk = parse_opt(conf.trunk.as_deref())?;
    req.options.ovs.native_vlan = conf
        .native_vlan
        .map(|v| v.to_string().parse())
        .transpose()
        .map_err(bad)?;
    req.options.hw.vf = match &conf.vf {
        None => None,
        Some(serde_json::Value::Number(n)) => Some(n.to_string().parse().map_err(bad)?),
        Some(serde_json::Value::String(v)) => Some(v.parse().map_err(bad)?),
        Some(other) => return Err(invalid(format!("bad vf {other}: a VF index or \"auto\""))),
    };
    req.options.hw.vf_qos = match conf.vf_qos {
        Some(q) if q > 7 => return Err(invalid(format!("bad vfQos {q}: must be 0 to 7"))),
        q => q,
    };
    req.options.hw.spoofchk = conf.spoofchk;
    req.options.hw.trust = conf.trust;
    req.options.hw.link_state = parse_opt(conf.link_state.as_deref())?;
    req.options.hw.max_tx_rate = conf.max_tx_rate;
    req.options.hw.min_tx_rate = conf.min_tx_rate;
    req.options.hw.ipoib_mode = parse_opt(conf.ipoib_mode.as_deref())?;
    req.options.ovs.native_tagged = conf.native_tagged;
    req.options.ovs.port_security = conf.port_security;
    req.options.ovs.datapath_type = parse_opt(conf.datapath_type.as_deref())?;
    req.labels = labels_of(conf, env);
    Ok(req)
}

/// An optional string key of the configuration, parsed.
fn parse_opt<T>(v: Option<&str>) -> Result<Option<T>, CniError>
where
    T: std::str::FromStr<Err = pipework_core::model::ParseError>,
{
    v.map(str::parse)
        .transpose()
        .map_err(|e: pipework_core::model::ParseError| invalid(e.to_string()))
}

async fn add(
    conf: &NetConf,
    input: &[u8],
    version: &str,
    settings: &Settings,
    drivers: &Drivers,
) -> Result<CniResult, CniError> {
    let env = env(true)?;
    let mut addressing = addressing(conf, input, &env).await?;
    let res = add_with(conf, &env, &mut addressing, version, settings, drivers).await;
    if res.is_err() {
        // The spec: a delegated plugin that gave us addresses hears DEL when we fail.
        if let Some(p) = delegated(conf) {
            let _ = delegate::exec(p, "DEL", input);
        }
    }
    res
}

async fn add_with(
    conf: &NetConf,
    env: &Env,
    addressing: &mut CniResult,
    version: &str,
    settings: &Settings,
    drivers: &Drivers,
) -> Result<CniResult, CniError> {
    let (statics, extra_routes) = plan(addressing)?;
    let req = request(conf, env, statics)?;
    let netns = env.netns.clone().unwrap_or_default();
    let mut guest = Guest::resolve(&req.guest, &ResolveOptions::default())
        .await
        .map_err(|e| CniError::new(code::UNKNOWN_CONTAINER, e.to_string()))?;
    let short: String = env.container_id.chars().take(12).collect();
    guest.info.name = format!("{}/{short}", conf.name);
    guest.info.container_id = Some(env.container_id.clone());
    let rec = attach_to(&req, &guest, drivers, settings)
        .await
        .map_err(from_core)?;
    if let Err(e) = add_routes(&guest, rec.ifindex, &extra_routes).await {
        let _ = detach_guest(&guest, Some(&env.ifname), drivers, settings).await;
        return Err(from_core(e));
    }
    // `mtu` in interfaces is new in 1.1.0.
    let mtu = (version == "1.1.0").then_some(rec.mtu);
    let mut interfaces = Vec::new();
    if let Some(peer) = &rec.host_peer {
        let host =
            Netlink::connect_here("host").map_err(|e| CniError::new(code::IO, e.to_string()))?;
        let mac = host
            .link_by_name(peer)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.mac)
            .map(|m| m.to_string());
        interfaces.push(Interface {
            name: peer.clone(),
            mac,
            mtu,
            sandbox: None,
        });
    }
    interfaces.push(Interface {
        name: rec.interface.clone(),
        mac: Some(rec.mac.to_string()),
        mtu,
        sandbox: Some(netns),
    });
    let ours = interfaces.len() - 1;
    if native_dhcp(conf).is_some() {
        from_leases(&rec, addressing);
    }
    let old = config::before_1_0(version);
    let ips = addressing
        .ips
        .iter()
        .map(|i| IpConfig {
            version: old.then(|| {
                if i.address.contains(':') {
                    "6".to_string()
                } else {
                    "4".to_string()
                }
            }),
            address: i.address.clone(),
            gateway: i.gateway.clone(),
            interface: Some(ours),
        })
        .collect();
    let dns = if addressing.dns.is_empty() {
        conf.dns.clone().unwrap_or_default()
    } else {
        addressing.dns.clone()
    };
    let mut result = CniResult {
        cni_version: version.to_string(),
        interfaces,
        ips,
        routes: std::mem::take(&mut addressing.routes),
        dns,
    };
    if let Some(prev) = &conf.prev_result {
        result = merge(prev, result)?;
    }
    Ok(result)
}

/// What the native DHCP client obtained, in result form.
fn from_leases(rec: &AttachmentRecord, a: &mut CniResult) {
    let leases = pipework_core::dhcp::lease::leases_of(rec);
    for l in &leases {
        a.ips.push(IpConfig {
            version: None,
            address: l.address.to_string(),
            gateway: l.routers.first().map(|g| g.to_string()),
            interface: None,
        });
        if let Some(g) = l.routers.first() {
            let dst = if g.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            a.routes.push(Route {
                dst: dst.into(),
                gw: Some(g.to_string()),
            });
        }
        for (dst, gw) in &l.routes {
            a.routes.push(Route {
                dst: dst.to_string(),
                gw: (!gw.is_unspecified()).then(|| gw.to_string()),
            });
        }
        a.dns
            .nameservers
            .extend(l.dns.iter().map(|d| d.to_string()));
        a.dns.search.extend(l.search.iter().cloned());
    }
}

/// An interface plugin later in a chain keeps what came before it.
fn merge(prev: &serde_json::Value, ours: CniResult) -> Result<CniResult, CniError> {
    let mut p: CniResult = serde_json::from_value(prev.clone())
        .map_err(|e| CniError::new(code::DECODE, format!("bad prevResult: {e}")))?;
    let offset = p.interfaces.len();
    p.interfaces.extend(ours.interfaces);
    p.ips.extend(ours.ips.into_iter().map(|mut i| {
        i.interface = i.interface.map(|x| x + offset);
        i
    }));
    p.routes.extend(ours.routes);
    if p.dns.is_empty() {
        p.dns = ours.dns;
    }
    p.cni_version = ours.cni_version;
    Ok(p)
}

async fn add_routes(
    guest: &Guest,
    ifindex: u32,
    routes: &[(IpNet, Option<IpAddr>)],
) -> Result<(), Error> {
    if routes.is_empty() {
        return Ok(());
    }
    let nl = Netlink::connect_in(&guest.netns, guest.name()).await?;
    for (dst, gw) in routes {
        let mut r = RouteSpec::new(pipework_core::model::Family::of(&dst.addr()));
        r.destination = Some(dst.trunc());
        r.gateway = *gw;
        r.oif = Some(ifindex);
        if gw.is_none() {
            r.scope = 253;
        }
        match nl.add_route(&r, false).await {
            Ok(()) => {}
            Err(e) if e.is(libc::EEXIST) => {}
            Err(e) => return Err(Error::from(e).context(format!("step route {dst}"))),
        }
    }
    Ok(())
}

async fn del(
    conf: &NetConf,
    input: &[u8],
    settings: &Settings,
    drivers: &Drivers,
) -> Result<(), CniError> {
    let env = env(false)?;
    let (cid, ifname) = (env.container_id.clone(), env.ifname.to_string());
    // Works with the namespace gone: the host side is found by the labels.
    detach_matching(|r| is_ours(r, &cid, &ifname), drivers, settings)
        .await
        .map_err(from_core)?;
    if let Some(p) = delegated(conf) {
        delegate::exec(p, "DEL", input)?;
    }
    Ok(())
}

async fn check(conf: &NetConf, input: &[u8], settings: &Settings) -> Result<(), CniError> {
    let env = env(true)?;
    let prev: CniResult = match &conf.prev_result {
        Some(p) => serde_json::from_value(p.clone())
            .map_err(|e| CniError::new(code::DECODE, format!("bad prevResult: {e}")))?,
        None => return Err(invalid("CHECK needs prevResult")),
    };
    let state = StateDir::open_read(&settings.state_dir);
    let rec = state
        .all()
        .map_err(from_core)?
        .into_iter()
        .find(|r| is_ours(r, &env.container_id, env.ifname.as_str()))
        .ok_or_else(|| {
            CniError::new(
                code::CHECK_FAILED,
                format!(
                    "no attachment {} for container {}",
                    env.ifname, env.container_id
                ),
            )
        })?;
    let failed = |m: String| CniError::new(code::CHECK_FAILED, m);
    let guest = Guest::resolve(
        &GuestRef::Path(env.netns.clone().unwrap_or_default().into()),
        &ResolveOptions::default(),
    )
    .await
    .map_err(|e| CniError::new(code::UNKNOWN_CONTAINER, e.to_string()))?;
    if guest.info.netns != rec.guest.netns {
        return Err(failed(format!(
            "{} is not the namespace {} was attached to",
            env.netns.unwrap_or_default(),
            env.ifname
        )));
    }
    let nl = Netlink::connect_in(&guest.netns, guest.name())
        .await
        .map_err(|e| CniError::new(code::IO, e.to_string()))?;
    let link = nl
        .link_by_name(env.ifname.as_str())
        .await
        .map_err(|e| from_core(e.into()))?
        .ok_or_else(|| failed(format!("{} is missing from the container", env.ifname)))?;
    let idx = prev
        .interfaces
        .iter()
        .position(|i| i.name == env.ifname.as_str() && i.sandbox.is_some());
    if let Some(i) = idx {
        if let Some(m) = &prev.interfaces[i].mac {
            if link.mac.map(|x| x.to_string()).as_deref() != Some(m.to_lowercase().as_str()) {
                return Err(failed(format!(
                    "{} has MAC {:?}, expected {m}",
                    env.ifname, link.mac
                )));
            }
        }
    }
    let have: Vec<IpNet> = nl
        .addresses(link.index)
        .await
        .map_err(|e| from_core(e.into()))?
        .into_iter()
        .map(|a| a.address)
        .collect();
    for ip in prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none() || ip.interface == idx)
    {
        let want: IpNet = ip
            .address
            .parse()
            .map_err(|_| failed(format!("bad address '{}' in prevResult", ip.address)))?;
        if !have.contains(&want) {
            return Err(failed(format!("{} lacks address {want}", env.ifname)));
        }
    }
    if let Some(peer) = &rec.host_peer {
        let host =
            Netlink::connect_here("host").map_err(|e| CniError::new(code::IO, e.to_string()))?;
        let p = host
            .link_by_name(peer)
            .await
            .map_err(|e| from_core(e.into()))?
            .ok_or_else(|| failed(format!("host veth {peer} is missing")))?;
        if let Some(br) = &rec.bridge {
            // A Linux bridge shows its ports as IFLA_MASTER; OVS ports do not.
            if let Some(b) = host
                .link_by_name(br)
                .await
                .map_err(|e| from_core(e.into()))?
            {
                if b.is_kind("bridge") && p.master != Some(b.index) {
                    return Err(failed(format!(
                        "host veth {peer} is no longer a port of {br}"
                    )));
                }
            } else {
                return Err(failed(format!("bridge {br} is gone")));
            }
        }
    }
    if let Some(p) = delegated(conf) {
        delegate::exec(p, "CHECK", input)?;
    }
    Ok(())
}

async fn gc(
    conf: &NetConf,
    input: &[u8],
    settings: &Settings,
    drivers: &Drivers,
) -> Result<(), CniError> {
    let valid = conf.valid_attachments.as_deref().unwrap_or_default();
    let network = conf.name.clone();
    detach_matching(
        |r| {
            r.labels.get(LABEL_NETWORK) == Some(&network)
                && !valid.iter().any(|v| {
                    r.labels.get(LABEL_CONTAINER) == Some(&v.container_id)
                        && r.labels.get(LABEL_IFNAME) == Some(&v.ifname)
                })
        },
        drivers,
        settings,
    )
    .await
    .map_err(from_core)?;
    if let Some(p) = delegated(conf) {
        delegate::exec(p, "GC", input)?;
    }
    Ok(())
}

async fn status(conf: &NetConf, input: &[u8], settings: &Settings) -> Result<(), CniError> {
    let unavailable = |m: String| CniError::new(code::NOT_AVAILABLE, m);
    StateDir::open(&settings.state_dir).map_err(|e| unavailable(e.to_string()))?;
    Netlink::connect_here("host").map_err(|e| unavailable(format!("no netlink: {e}")))?;
    if conf.host.is_none() && conf.host_mac.is_none() {
        return Err(invalid("the configuration needs 'host' or 'hostMac'"));
    }
    if let Some(p) = delegated(conf) {
        delegate::exec(p, "STATUS", input)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            container_id: "c1".into(),
            netns: Some("/run/netns/x".into()),
            ifname: "net1".parse().unwrap(),
            args: BTreeMap::new(),
        }
    }

    fn conf(v: serde_json::Value) -> NetConf {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_driver_option_reaches_the_request() {
        let c = conf(serde_json::json!({
            "cniVersion": "1.1.0", "name": "n", "type": "pipework", "host": "eth4",
            "vf": "auto", "vfQos": 3, "spoofchk": false, "trust": true, "linkState": "enable",
            "maxTxRate": 100, "minTxRate": 10, "vlan": 40
        }));
        let r = request(&c, &env(), Vec::new()).unwrap();
        assert_eq!(r.options.hw.vf, Some("auto".parse().unwrap()));
        assert_eq!(r.options.hw.vf_qos, Some(3));
        assert_eq!(
            (r.options.hw.spoofchk, r.options.hw.trust),
            (Some(false), Some(true))
        );
        assert_eq!(r.options.hw.max_tx_rate, Some(100));
        assert_eq!(r.tag.unwrap().as_str(), "40");
        let ib = conf(serde_json::json!({
            "cniVersion": "1.1.0", "name": "n", "type": "pipework", "host": "ib0",
            "pkey": "8001", "ipoibMode": "connected"
        }));
        let r = request(&ib, &env(), Vec::new()).unwrap();
        assert_eq!(r.tag.unwrap().as_pkey().unwrap().get(), 0x8001);
        assert_eq!(r.options.hw.ipoib_mode, Some("connected".parse().unwrap()));
        let ovs = conf(serde_json::json!({
            "cniVersion": "1.1.0", "name": "n", "type": "pipework", "host": "ovsbr0",
            "trunk": "10,20-22", "nativeVlan": 10, "portSecurity": true, "datapathType": "netdev"
        }));
        let r = request(&ovs, &env(), Vec::new()).unwrap();
        assert_eq!(r.options.ovs.trunk.unwrap().to_string(), "10,20-22");
        assert!(r.options.ovs.port_security);
        assert_eq!(r.guest_ifname.unwrap().as_str(), "net1");
        assert_eq!(r.labels[LABEL_CONTAINER], "c1");
        for bad in [
            serde_json::json!({"host": "eth4", "vf": true}),
            serde_json::json!({"host": "eth4", "vfQos": 8}),
            serde_json::json!({"host": "eth4", "linkState": "sideways"}),
            serde_json::json!({"host": "ib0", "ipoibMode": "fast"}),
            serde_json::json!({"host": "ovsbr0", "trunk": "10-x"}),
            serde_json::json!({"host": "eth4", "vlan": 10, "pkey": "8001"}),
            serde_json::json!({"host": "eth4", "hostMac": "02:00:00:00:00:01"}),
            serde_json::json!({"host": "eth4", "mac": "01:00:5e:00:00:01"}),
        ] {
            let e = request(&conf(bad.clone()), &env(), Vec::new()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{bad}: {}", e.msg);
        }
    }
}
