//! Open vSwitch on the kernel datapath (`openvswitch.ko`), which this
//! host's kernel lacks: the OVS VLAN test of `tests/ovs.rs`, with
//! `datapath_type=system`.

use pipework_tests::ovs::OvsSwitch;
use pipework_tests::*;

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn kernel_datapath_vlan_10_guests_ping_and_vlan_20_is_isolated() {
    let mut s = Sandbox::new("kovsvlan");
    let sw = OvsSwitch::start(&mut s);
    let (a, b, c) = (s.guest("a"), s.guest("b"), s.guest("c"));
    // The first attach creates the bridge on the kernel datapath.
    s.pipework(&[
        "ovsk",
        &a,
        "10.21.0.2/24",
        "@10",
        "--datapath-type",
        "system",
    ])
    .ok();
    s.pipework(&["ovsk", &b, "10.21.0.3/24", "@10"]).ok();
    s.pipework(&["ovsk", &c, "10.21.0.4/24", "@20"]).ok();
    assert_eq!(sw.get("bridge", "ovsk", "datapath_type"), "system");
    // Witness: the kernel datapath exists and has our ports.
    let dp = must(std::process::Command::new("ip").args([
        "netns",
        "exec",
        &s.host,
        "ovs-appctl",
        &format!("--target={}/vswitchd.ctl", sw.dir.display()),
        "dpctl/show",
    ]));
    assert!(dp.contains("system@ovs-system"), "{dp}");
    assert!(ping(&a, "10.21.0.3"), "same VLAN");
    assert!(ping(&b, "10.21.0.2"), "same VLAN");
    assert!(!ping(&a, "10.21.0.4"), "VLAN 20 must not reach VLAN 10");
    assert!(!ping(&c, "10.21.0.2"));
    for g in [&a, &b, &c] {
        s.pipework(&["detach", g]).ok();
    }
    assert_eq!(sw.vsctl(&["list-br"]).trim(), "");
}
