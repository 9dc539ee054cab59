//! `pipework demo`: the main job on built-in defaults, in a private network
//! namespace so nothing on the host is touched. Two throwaway guests are
//! attached to a new bridge, one pings the other, their `inspect` JSON is
//! printed, then everything is detached and the bridge is gone.

use crate::out::outln;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use pipework_core::attach::attach_to;
use pipework_core::detach::detach_guest;
use pipework_core::error::{Context, Error, Result};
use pipework_core::guest::Guest;
use pipework_core::inspect::inspect_guest;
use pipework_core::model::{AddressMode, AttachRequest, GuestRef, HostSelector};
use pipework_core::netlink::Netlink;
use pipework_core::netns::Netns;
use pipework_core::ping;
use pipework_core::settings::Settings;
use pipework_drivers::Drivers;

const BRIDGE: &str = "brdemo0";
const A: &str = "192.0.2.1/24";
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

pub async fn run(settings: &Settings, _drivers: &Drivers) -> Result<()> {
    let settings = settings.clone();
    // The demo's "host" is a fresh namespace, entered by a thread of its own
    // with its own runtime: every socket it opens lives there.
    let host = Netns::create_anonymous().step("create the demo namespace")?;
    host.run_async(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::failed("cannot start a runtime").with_source(e))?
            .block_on(demo(settings))
    })
    .await
    .step("enter the demo namespace")?
}

async fn demo(mut settings: Settings) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("pipework-demo-{}", pipework_core::random::hex(8)));
    settings.state_dir = dir.clone();
    let res = steps(&settings).await;
    let _ = std::fs::remove_dir_all(&dir);
    res
}

async fn steps(settings: &Settings) -> Result<()> {
    let drivers = Drivers::new();
    outln!("== a private network namespace stands in for the host; nothing outside it changes");
    let a = Guest::from_netns(
        Netns::create_anonymous().step("create guest namespace")?,
        "demo-a",
    );
    let b = Guest::from_netns(
        Netns::create_anonymous().step("create guest namespace")?,
        "demo-b",
    );
    for (g, addr) in [(&a, A.to_string()), (&b, format!("{B}/24"))] {
        let req = AttachRequest::new(
            HostSelector::Name(BRIDGE.parse()?),
            GuestRef::Auto(g.name().to_string()),
            AddressMode::parse(&addr, None)?,
        );
        let t = Instant::now();
        let rec = attach_to(&req, g, &drivers, settings).await?;
        outln!(
            "== pipework {BRIDGE} {} {addr}: {} {} on {BRIDGE} via host veth {} in {:.1} ms",
            g.name(),
            rec.interface,
            rec.mac,
            rec.host_peer.as_deref().unwrap_or("?"),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let rtt = ping::echo(&a.netns, B, Duration::from_secs(3)).await?;
    outln!(
        "== ping {B} from demo-a: reply in {:.3} ms",
        rtt.as_secs_f64() * 1000.0
    );
    for g in [&a, &b] {
        outln!("== pipework inspect {}", g.name());
        let v = inspect_guest(g, settings).await?;
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    for g in [&a, &b] {
        detach_guest(g, None, &drivers, settings).await?;
        outln!("== pipework detach {}", g.name());
    }
    let host = Netlink::connect_here("host").step("open netlink")?;
    if host.link_by_name(BRIDGE).await?.is_some() {
        return Err(Error::failed(format!(
            "{BRIDGE} is still there after the last detach"
        )));
    }
    outln!("== {BRIDGE} was created by pipework and is gone with its last port; done");
    Ok(())
}
