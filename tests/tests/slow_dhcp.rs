//! Renewals at the server's own timing, with dnsmasq's shortest lease (two
//! minutes, so T1 comes after one). Slow: these run in the `slow` test group
//! (see `.config/nextest.toml`), which CI runs too.

use std::time::Duration;

use pipework_tests::dhcp::{DhcpServer, ServerConfig};
use pipework_tests::*;

#[test]
fn slow_native_lease_kept_across_a_two_minute_lease_renewal() {
    let mut s = Sandbox::new("slowrenew");
    let srv = DhcpServer::start(&mut s, "brs1", &ServerConfig::v4("10.81.0"));
    let g = s.guest("g");
    s.pipework(&["brs1", &g, "dhcp"]).ok();
    let addr = addresses(&g, "eth1")
        .into_iter()
        .find(|a| a.contains('.'))
        .unwrap();
    let acks = srv.count("DHCPACK");
    // T1 is 60 s; leave room for the retransmission schedule.
    assert!(
        srv.wait_count("DHCPACK", acks + 1, Duration::from_secs(75)),
        "{}",
        srv.log()
    );
    // The renewal was a unicast REQUEST from the bound address.
    assert!(srv.log().contains(&format!(
        "DHCPREQUEST(eth0) {}",
        addr.split('/').next().unwrap()
    )));
    assert!(addresses(&g, "eth1").contains(&addr));
    assert!(ping(&g, &srv.addr));
    let list = s.pipework(&["list"]).ok().stdout;
    assert!(list.contains("bound"), "{list}");
}

#[test]
fn slow_udhcpc_f_renews_on_its_own() {
    let mut s = Sandbox::new("slowudhcpc");
    let srv = DhcpServer::start(&mut s, "brs2", &ServerConfig::v4("10.82.0"));
    let g = s.guest("g");
    s.pipework(&["brs2", &g, "udhcpc-f"]).ok();
    let acks = srv.count("DHCPACK");
    // The original's udhcpc-f exited after the first lease and never did this.
    assert!(
        srv.wait_count("DHCPACK", acks + 1, Duration::from_secs(75)),
        "{}",
        srv.log()
    );
    assert!(ping(&g, &srv.addr));
}

#[test]
fn slow_dhcpv6_lease_renewed() {
    let mut s = Sandbox::new("slowv6");
    let srv = DhcpServer::start(
        &mut s,
        "brs3",
        &ServerConfig {
            v6: Some("fd83"),
            ..ServerConfig::v4("10.83.0")
        },
    );
    let g = s.guest("g");
    s.pipework(&["brs3", "-a", "6", &g, "dhcp"]).ok();
    let addr: Vec<String> = addresses(&g, "eth1")
        .into_iter()
        .filter(|a| a.starts_with("fd83::1"))
        .collect();
    assert_eq!(addr.len(), 1);
    assert!(
        srv.wait_log("DHCPRENEW(eth0)", Duration::from_secs(75)),
        "{}",
        srv.log()
    );
    assert!(srv.wait_count("DHCPREPLY(eth0)", 2, Duration::from_secs(5)));
    assert!(addresses(&g, "eth1").contains(&addr[0]));
    assert!(ping(&g, "fd83::1"));
}
