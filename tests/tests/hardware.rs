//! The hardware drivers on this host, whose kernel has no InfiniBand, no
//! SR-IOV, no 802.1Q, no dummy and no bridge VLAN filtering:
//! - our IPoIB and VF requests equal iproute2's for the same commands,
//!   captured with strace at test time;
//! - fixture sysfs trees drive the probe and the pkey and VF checks;
//! - a kernel that lacks a feature gets a clear error and an untouched host;
//! - `--direct-phys` round trips on a stand-in NIC.
//!
//! The same drivers run for real in the VM lane (tests/kernel_*.rs).

use pipework_core::model::{MacAddr, VfLinkState};
use pipework_core::netlink::{LinkChange, NewLink, VfSetting};
use pipework_tests::hw::SysfsFixture;
use pipework_tests::wire::*;
use pipework_tests::*;

fn ifindex(ns: &str, name: &str) -> u32 {
    link(ns, name).unwrap()["ifindex"].as_u64().unwrap() as u32
}

/// iproute2's one `RTM_NEWLINK` for `ip <args>` in the host namespace.
fn ip_newlink(s: &Sandbox, args: &[&str]) -> Vec<u8> {
    let mut cmd = vec!["ip"];
    cmd.extend_from_slice(args);
    let (_, msgs) = trace_newlinks(&s.host, &cmd, &[]);
    assert_eq!(msgs.len(), 1, "ip {args:?} sent {} RTM_NEWLINK", msgs.len());
    normalized(&msgs[0])
}

#[test]
fn ipoib_requests_equal_iproute2s() {
    let s = Sandbox::new("ipoibwire");
    // No IB device can exist here: a veth named ib0 stands in for the parent.
    // The kernel answers "Unknown device type", after the request is sent.
    s.ip_host(&["link", "add", "ib0", "type", "veth", "peer", "name", "ib0p"]);
    let parent = ifindex(&s.host, "ib0");
    for (extra, pkey, connected) in [
        (vec!["pkey", "0x8001"], Some(0x8001), None),
        (
            vec!["pkey", "0x8001", "mode", "connected"],
            Some(0x8001),
            Some(true),
        ),
        (
            vec!["pkey", "0x7fff", "mode", "datagram"],
            Some(0x7fff),
            Some(false),
        ),
        (vec!["pkey", "0xffff"], Some(0xffff), None),
        (vec![], None, None),
    ] {
        let mut args = vec![
            "link", "add", "link", "ib0", "name", "ib0.8001", "type", "ipoib",
        ];
        args.extend_from_slice(&extra);
        let theirs = ip_newlink(&s, &args);
        let ours = normalized(&NewLink::ipoib("ib0.8001", parent, pkey, connected).wire_bytes());
        assert_eq!(ours, theirs, "ip {args:?}");
    }
}

#[test]
fn vf_requests_equal_iproute2s() {
    let s = Sandbox::new("vfwire");
    s.ip_host(&["link", "add", "pf0", "type", "veth", "peer", "name", "pf0p"]);
    let pf = ifindex(&s.host, "pf0");
    let mac = MacAddr([0x02, 0, 0, 0xaa, 0, 0x01]);
    let cases: Vec<(&str, VfSetting)> = vec![
        ("mac 02:00:00:aa:00:01", VfSetting::Mac { mac }),
        (
            "mac 00:00:00:00:00:00",
            VfSetting::Mac {
                mac: MacAddr([0; 6]),
            },
        ),
        ("vlan 10", VfSetting::Vlan { vlan: 10, qos: 0 }),
        ("vlan 4094 qos 7", VfSetting::Vlan { vlan: 4094, qos: 7 }),
        ("vlan 0", VfSetting::Vlan { vlan: 0, qos: 0 }),
        ("spoofchk on", VfSetting::SpoofCheck { on: true }),
        ("spoofchk off", VfSetting::SpoofCheck { on: false }),
        ("trust on", VfSetting::Trust { on: true }),
        ("trust off", VfSetting::Trust { on: false }),
        (
            "state auto",
            VfSetting::LinkState {
                state: VfLinkState::Auto,
            },
        ),
        (
            "state enable",
            VfSetting::LinkState {
                state: VfLinkState::Enable,
            },
        ),
        (
            "state disable",
            VfSetting::LinkState {
                state: VfLinkState::Disable,
            },
        ),
        (
            "min_tx_rate 10 max_tx_rate 100",
            VfSetting::Rate { min: 10, max: 100 },
        ),
        (
            "min_tx_rate 0 max_tx_rate 0",
            VfSetting::Rate { min: 0, max: 0 },
        ),
    ];
    for (vf, (setting, ours)) in cases.into_iter().enumerate() {
        let vf = vf as u32 % 3;
        let vfs = vf.to_string();
        let mut args = vec!["link", "set", "pf0", "vf", &vfs];
        args.extend(setting.split(' '));
        let theirs = ip_newlink(&s, &args);
        let ours = normalized(&LinkChange::vf(pf, vf, &ours).wire_bytes());
        assert_eq!(ours, theirs, "ip {args:?}");
    }
}

/// An IB port as sysfs shows it: `ib0` of type 32 on HCA `mlx5_0`, port 1,
/// member of the default partition and of 0x8001.
fn ib_fixture(s: &Sandbox) -> SysfsFixture {
    s.ip_host(&["link", "add", "ib0", "type", "veth", "peer", "name", "ib0p"]);
    s.ip_host(&["link", "set", "ib0p", "up"]);
    s.ip_host(&["link", "set", "ib0", "up"]);
    let f = SysfsFixture::new("ib");
    f.file("class/net/ib0/type", "32")
        .file("class/net/ib0/dev_port", "0")
        .dir("class/net/ib0/device/infiniband/mlx5_0")
        .file("class/infiniband/mlx5_0/ports/1/pkeys/0", "0xffff")
        .file("class/infiniband/mlx5_0/ports/1/pkeys/1", "0x8001")
        .file("class/infiniband/mlx5_0/ports/1/pkeys/2", "0x0000");
    f
}

#[test]
fn an_ipoib_attach_sends_iproute2s_request_into_the_guest() {
    let mut s = Sandbox::new("ipoibattach");
    let f = ib_fixture(&s);
    let (k, v) = f.env();
    let g = s.guest("g");
    let host_before = s.host_links();
    let guest_before = links(&g);
    let theirs = ip_newlink(
        &s,
        &[
            "link",
            "add",
            "link",
            "ib0",
            "name",
            "x",
            "type",
            "ipoib",
            "pkey",
            "0x8001",
            "mode",
            "connected",
        ],
    );
    let their_attrs = link_attributes(&theirs);
    // @0001 names the same partition as @8001: the full-member bit is set.
    for tag in ["@8001", "@0001", "@0x8001"] {
        let (r, msgs) = s.pipework_traced(
            &["ib0", &g, "10.90.0.2/24", tag, "--ipoib-mode", "connected"],
            &[(k, &v)],
        );
        assert_eq!(r.code, 1, "{tag}: {r:?}");
        assert!(r.stderr.contains("ib_ipoib"), "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        let ours: Vec<&Vec<u8>> = msgs
            .iter()
            .filter(|m| link_attributes(m).iter().any(|(t, _)| *t == 18))
            .collect();
        assert_eq!(ours.len(), 1, "{tag}: one RTM_NEWLINK with IFLA_LINKINFO");
        let attrs = link_attributes(ours[0]);
        let get =
            |a: &[(u16, Vec<u8>)], t: u16| a.iter().find(|(k, _)| *k == t).map(|x| x.1.clone());
        // IFLA_LINKINFO (kind ipoib, pkey, mode) and IFLA_LINK byte for byte.
        assert_eq!(
            get(&attrs, 18),
            get(&their_attrs, 18),
            "{tag}: IFLA_LINKINFO"
        );
        assert_eq!(get(&attrs, 5), get(&their_attrs, 5), "{tag}: IFLA_LINK");
        // Ours is created directly in the guest (IFLA_NET_NS_FD) under a
        // temporary name, then renamed.
        assert!(get(&attrs, 28).is_some(), "{tag}: IFLA_NET_NS_FD");
        assert_eq!(s.host_links(), host_before);
        assert_eq!(links(&g), guest_before);
    }
    assert_eq!(
        s.pipework(&["list", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn a_partition_the_port_is_not_in_is_refused() {
    let mut s = Sandbox::new("ipoibpkey");
    let f = ib_fixture(&s);
    let (k, v) = f.env();
    let g = s.guest("g");
    let host_before = s.host_links();
    let r = s.pipework_env(&["ib0", &g, "10.91.0.2/24", "@8003"], &[(k, &v)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("0x8003 is not in the table of mlx5_0 port 1 (0xffff, 0x8001)"),
        "{}",
        r.stderr
    );
    let r = s.pipework_env(&["ib0", &g, "0/0", "@zz"], &[(k, &v)]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = s.pipework_env(&["ib0", &g, "0/0", "02:00:00:00:00:01@8001"], &[(k, &v)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("takes no MAC"), "{}", r.stderr);
    // The mode is for IPoIB only; without the fixture ib0 is Ethernet.
    let r = s.pipework(&["ib0", &g, "0/0", "--ipoib-mode", "connected"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("InfiniBand"), "{}", r.stderr);
    assert_eq!(s.host_links(), host_before);
    assert!(link(&g, "ib0").is_none());
}

/// A PF `pf0` (a veth) and `pfv1`, the netdev of its VF 1 (a veth too).
fn pf_links(s: &Sandbox) {
    for n in ["pf0", "pfv1"] {
        s.ip_host(&[
            "link",
            "add",
            n,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{n}p"),
        ]);
    }
}

/// The PF's sysfs: 7 VFs supported, `numvfs` enabled; VF 0's netdev is
/// elsewhere (in use), VF 1's is `pfv1`.
fn pf_tree(numvfs: u32) -> SysfsFixture {
    let f = SysfsFixture::new("pf");
    let pf = "devices/pci0000:00/0000:00:02.0";
    let vf1 = "devices/pci0000:00/0000:01:10.2";
    f.file(&format!("{pf}/sriov_totalvfs"), "7")
        .file(&format!("{pf}/sriov_numvfs"), &numvfs.to_string())
        .dir("devices/pci0000:00/0000:01:10.0")
        .dir(&format!("{vf1}/net/pfv1"))
        .link(&format!("{pf}/virtfn0"), "../0000:01:10.0")
        .link(&format!("{pf}/virtfn1"), "../0000:01:10.2")
        .link(&format!("{vf1}/physfn"), "../0000:00:02.0")
        .file("class/net/pf0/type", "1")
        .link("class/net/pf0/device", &format!("../../../{pf}"))
        .file("class/net/pfv1/type", "1")
        .link("class/net/pfv1/device", &format!("../../../{vf1}"));
    f
}

#[test]
fn vf_requests_that_cannot_be_met_change_nothing() {
    let mut s = Sandbox::new("vfrefuse");
    let g = s.guest("g");
    pf_links(&s);
    let host_before = s.host_links();
    let none = pf_tree(0);
    let (k, v) = none.env();
    let r = s.pipework_env(&["pf0", "--vf", "auto", &g, "0/0"], &[(k, &v)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("supports 7 VFs but none is enabled"),
        "{}",
        r.stderr
    );
    let two = pf_tree(2);
    let (k, v) = two.env();
    for (args, code, needle) in [
        (
            vec!["pf0", "--vf", "5"],
            2,
            "pf0 has no VF 5: 2 VFs are enabled (0 to 1)",
        ),
        (
            vec!["pf0", "--vf", "0"],
            2,
            "VF 0 of pf0 is in use: its netdev is not in the host namespace",
        ),
        (vec!["pfv1", "--vf", "0"], 2, "pfv1 is itself an SR-IOV VF"),
        (vec!["pf0", "--vf", "0", "--direct-phys"], 2, "choose one"),
        (
            vec!["veth0x", "--vf", "0"],
            2,
            "no host interface named veth0x",
        ),
        // VF 1 is free, but a veth reports no VF settings: nothing is changed
        // that could not be put back.
        (
            vec!["pf0", "--vf", "auto"],
            1,
            "pf0 does not report the settings of VF 1",
        ),
        (
            vec!["pf0", "--vf", "1", "--vf-vlan-qos", "2"],
            2,
            "give the VLAN as @VID",
        ),
    ] {
        let mut a = args.clone();
        a.extend_from_slice(&[&g, "10.92.0.2/24"]);
        let r = s.pipework_env(&a, &[(k, &v)]);
        assert_eq!(r.code, code, "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(s.host_links(), host_before, "{args:?}");
        assert!(link(&g, "eth1").is_none());
    }
}

/// Features this host's kernel may lack (dummy, 802.1Q, bridge VLAN
/// filtering): either the attach works and detaches cleanly, or it fails
/// with exit code 1 and one line, leaving host and guest as they were.
#[test]
fn missing_kernel_features_fail_cleanly() {
    let mut s = Sandbox::new("kfeatures");
    s.fake_nic("nic0");
    let g = s.guest("g");
    let host_before = s.host_links();
    let guest_before = links(&g);
    for args in [
        vec!["dummy", &g, "10.93.0.2/24"],
        vec!["nic0", &g, "10.93.1.2/24", "@10"],
        vec!["brvf", &g, "10.93.2.2/24", "@10"],
    ] {
        let r = s.pipework(&args);
        if r.code == 0 {
            s.pipework(&["detach", &g]).ok();
        } else {
            assert_eq!(r.code, 1, "{args:?}: {r:?}");
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        }
        assert_eq!(s.host_links(), host_before, "{args:?}");
        assert_eq!(links(&g), guest_before, "{args:?}");
        let vlans = s.state_dir.join("vlans");
        assert!(
            !vlans.exists() || std::fs::read_dir(&vlans).unwrap().count() == 0,
            "{args:?}: VLAN bookkeeping left behind"
        );
    }
}

#[test]
fn direct_phys_round_trip_on_a_stand_in_nic() {
    let mut s = Sandbox::new("dphyshost");
    s.fake_nic("nic0");
    let g = s.guest("g");
    let host_before = s.host_links();
    let mac = link(&s.host, "nic0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_uppercase();
    s.pipework(&[
        "--direct-phys",
        &format!("mac:{mac}"),
        &g,
        "10.94.0.2/24@10.94.0.1",
    ])
    .ok();
    assert!(link(&s.host, "nic0").is_none());
    assert_eq!(link(&g, "eth1").unwrap()["address"], mac.to_lowercase());
    assert!(addresses(&g, "eth1").contains(&"10.94.0.2/24".to_string()));
    s.pipework(&["detach", &g]).ok();
    assert_eq!(s.host_links_settled(&host_before), host_before);
    // Every fault point puts it back, MAC included.
    for p in [
        "link-created",
        "link-configured",
        "routes-added",
        "before-commit",
    ] {
        let r = s.pipework_env(
            &[
                "--direct-phys",
                "nic0",
                &g,
                "10.94.0.2/24@10.94.0.1",
                "02:00:00:94:00:02",
            ],
            &[("PIPEWORK_FAULT", p)],
        );
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert_eq!(s.host_links_settled(&host_before), host_before, "{p}");
    }
    // Two NICs with one MAC: refused as ambiguous.
    s.fake_nic("nic1");
    s.ip_host(&["link", "set", "nic1", "address", &mac]);
    let r = s.pipework(&["--direct-phys", &format!("mac:{mac}"), &g, "0/0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("ambiguous"), "{}", r.stderr);
}

#[test]
fn help_documents_the_hardware_options() {
    let s = Sandbox::new("hwhelp");
    let r = s.pipework(&["--help"]).ok();
    for word in [
        "pipework dummy <guest>",
        "--vf N|auto",
        "--vf-vlan-qos",
        "--spoofchk on|off",
        "--trust on|off",
        "--vf-link-state auto|enable|disable",
        "--max-tx-rate",
        "--min-tx-rate",
        "--ipoib-mode datagram|connected",
        "@PKEY",
        "--direct-phys <if>",
    ] {
        assert!(r.stdout.contains(word), "--help lacks {word}");
    }
}
