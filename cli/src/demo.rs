//! `pipework demo`: the main job on built-in defaults, in a private network
//! namespace so nothing on the host is touched. Two throwaway guests are
//! attached to a new bridge, one pings the other, their `inspect` JSON is
//! printed, then everything is detached and the bridge is gone.

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
use pipework_core::settings::Settings;
use pipework_drivers::Drivers;

const BRIDGE: &str = "brdemo0";
const A: &str = "192.0.2.1/24";
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

pub async fn run(settings: &Settings, _drivers: &Drivers) -> Result<()> {
    let settings = settings.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The demo's "host" is a fresh namespace entered by a thread of its own,
    // with its own runtime: every socket it opens lives there.
    std::thread::spawn(move || {
        let r = (|| -> Result<()> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                Error::failed("cannot create the demo namespace")
                    .with_source(std::io::Error::from(e))
            })?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::failed("cannot start a runtime").with_source(e))?;
            rt.block_on(demo(settings))
        })();
        let _ = tx.send(r);
    });
    rx.await
        .map_err(|_| Error::failed("the demo thread died"))?
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
    println!("== a private network namespace stands in for the host; nothing outside it changes");
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
        println!(
            "== pipework {BRIDGE} {} {addr}: {} {} on {BRIDGE} via host veth {} in {:.1} ms",
            g.name(),
            rec.interface,
            rec.mac,
            rec.host_peer.as_deref().unwrap_or("?"),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let rtt = ping(&a.netns, B).await?;
    println!(
        "== ping {B} from demo-a: reply in {:.3} ms",
        rtt.as_secs_f64() * 1000.0
    );
    for g in [&a, &b] {
        println!("== pipework inspect {}", g.name());
        let v = inspect_guest(g, settings).await?;
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    for g in [&a, &b] {
        detach_guest(g, None, &drivers, settings).await?;
        println!("== pipework detach {}", g.name());
    }
    let host = Netlink::connect_here("host").step("open netlink")?;
    if host.link_by_name(BRIDGE).await?.is_some() {
        return Err(Error::failed(format!(
            "{BRIDGE} is still there after the last detach"
        )));
    }
    println!("== {BRIDGE} was created by pipework and is gone with its last port; done");
    Ok(())
}

/// One ICMP echo from inside `ns`, over a raw socket.
async fn ping(ns: &Netns, dst: Ipv4Addr) -> Result<Duration> {
    ns.run_async(move || icmp_echo(dst, Duration::from_secs(3)))
        .await
        .step("ping")?
        .map_err(|e| Error::failed(format!("no reply from {dst}")).with_source(e))
}

fn icmp_echo(dst: Ipv4Addr, timeout: Duration) -> std::io::Result<Duration> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2), checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: new fd, owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: valid option value for SO_RCVTIMEO.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    let id = (std::process::id() & 0xffff) as u16;
    let mut pkt = vec![8u8, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&1u16.to_be_bytes());
    pkt.extend_from_slice(b"pipework demo");
    let sum = checksum(&pkt);
    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    // SAFETY: zeroed sockaddr_in is valid; fields set below.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    let start = Instant::now();
    let mut last_send = None;
    while start.elapsed() < timeout {
        if last_send.is_none_or(|t: Instant| t.elapsed() > Duration::from_millis(500)) {
            // SAFETY: buffer and address valid for their lengths.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    pkt.as_ptr() as *const _,
                    pkt.len(),
                    0,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            last_send = Some(Instant::now());
        }
        let mut buf = [0u8; 1500];
        // SAFETY: buffer valid for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len(), 0) };
        if n <= 0 {
            continue;
        }
        let b = &buf[..n as usize];
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if b.len() >= ihl + 8
            && b[ihl] == 0
            && b[ihl + 4..ihl + 6] == id.to_be_bytes()
            && b[12..16] == dst.octets()
        {
            return Ok(last_send.map(|t| t.elapsed()).unwrap_or_default());
        }
    }
    Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
