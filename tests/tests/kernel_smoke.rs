//! The VM lane's own check, dummy interfaces, and the probe against the live
//! kinds of a real kernel (igb PF and VF, bridge, dummy).

use pipework_tests::hw::*;
use pipework_tests::*;

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn the_vm_kernel_has_what_the_lane_needs() {
    let mut s = Sandbox::new("smoke");
    s.ip_host(&["link", "add", "d0", "type", "dummy"]);
    s.ip_host(&[
        "link", "add", "link", "d0", "name", "d0.10", "type", "vlan", "id", "10",
    ]);
    let g = s.guest("g");
    assert!(link(&s.host, "d0.10").is_some());
    assert!(link(&g, "lo").is_some());
    assert!(
        std::path::Path::new("/sys/module/openvswitch").exists(),
        "openvswitch.ko is loaded for the OVS kernel-datapath tests"
    );
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn a_dummy_interface_with_an_address() {
    let mut s = Sandbox::new("dummy");
    let g = s.guest("g");
    let host_before = s.host_links();
    s.pipework(&["dummy", &g, "10.75.0.1/24"]).ok();
    let l = link(&g, "eth1").expect("eth1 in the guest");
    assert_eq!(l["linkinfo"]["info_kind"], "dummy");
    assert!(l["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert!(addresses(&g, "eth1").contains(&"10.75.0.1/24".to_string()));
    // A missing dummy* name, another interface, an explicit MAC.
    s.pipework(&[
        "dummy7",
        "-i",
        "svc0",
        &g,
        "10.75.1.1/32",
        "02:00:00:00:75:01",
    ])
    .ok();
    assert_eq!(link(&g, "svc0").unwrap()["address"], "02:00:00:00:75:01");
    assert_eq!(s.host_links(), host_before, "nothing on the host");
    s.pipework(&["detach", &g]).ok();
    assert!(link(&g, "eth1").is_none() && link(&g, "svc0").is_none());
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn a_failed_dummy_attach_leaves_the_guest_as_it_was() {
    let mut s = Sandbox::new("dummyrb");
    let g = s.guest("g");
    let before = (links(&g), routes(&g));
    for p in ["link-created", "address-added", "before-commit"] {
        let r = s.pipework_env(
            &["dummy", &g, "10.75.2.1/24@10.75.2.254"],
            &[("PIPEWORK_FAULT", p)],
        );
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert_eq!((links(&g), routes(&g)), before, "{p}");
    }
}

fn driver_of(r: Run) -> String {
    r.ok().json()["driver"].as_str().unwrap().to_string()
}

/// The probe's decision table against what a real kernel and real sysfs
/// show: an igb PF, its VF, a bridge under a name that says nothing, dummy.
#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn the_probe_on_live_kinds() {
    let pf = pf_name();
    let vfs = set_vfs(1);
    let mut s = Sandbox::new("probe");
    s.adopt(&pf);
    s.adopt(&vfs[0]);
    s.ip_host(&["link", "add", "lan", "type", "bridge"]);
    let g = s.guest("g");
    let j = |args: &[&str]| {
        let mut v = vec!["--json"];
        v.extend_from_slice(args);
        s.pipework(&v)
    };
    assert_eq!(driver_of(j(&[&pf, "-i", "e1", &g, "0/0"])), "macvlan");
    assert_eq!(
        driver_of(j(&[&pf, "--vf", "0", "-i", "e2", &g, "0/0"])),
        "sriov_vf"
    );
    assert_eq!(
        driver_of(j(&["lan", "-i", "e3", &g, "0/0"])),
        "linux_bridge"
    );
    assert_eq!(driver_of(j(&["dummy3", "-i", "e4", &g, "0/0"])), "dummy");
    s.pipework(&["detach", &g, "-i", "e2"]).ok();
    let r = s.pipework(&[&vfs[0], "--vf", "0", &g, "0/0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("itself an SR-IOV VF"), "{}", r.stderr);
    assert_eq!(
        driver_of(j(&["--direct-phys", &vfs[0], "-i", "e5", &g, "0/0"])),
        "phys"
    );
    s.pipework(&["detach", &g]).ok();
}

/// Open vSwitch with the kernel datapath works in the VM: private daemons
/// (as the OVS tests run them), a bridge on the `system` datapath, a port.
/// The OVS driver's kernel-datapath tests build on exactly this.
#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn open_vswitch_runs_on_the_kernel_datapath() {
    let s = Sandbox::new("ovskdp");
    let d = std::env::temp_dir().join(format!("{}-ovs", s.prefix));
    std::fs::create_dir_all(&d).unwrap();
    let p = |f: &str| d.join(f).to_string_lossy().into_owned();
    let db = format!("unix:{}", p("db.sock"));
    let sh = |c: &mut std::process::Command| must(c.env("OVS_RUNDIR", &d).env("OVS_LOGDIR", &d));
    use std::process::Command as C;
    sh(C::new("ovsdb-tool").args([
        "create",
        &p("conf.db"),
        "/usr/share/openvswitch/vswitch.ovsschema",
    ]));
    sh(C::new("ovsdb-server").args([
        &p("conf.db"),
        &format!("--remote=punix:{}", p("db.sock")),
        &format!("--unixctl={}", p("ovsdb.ctl")),
        &format!("--pidfile={}", p("ovsdb.pid")),
        &format!("--log-file={}", p("ovsdb.log")),
        "--detach",
    ]));
    sh(C::new("ovs-vsctl").args([&format!("--db={db}"), "--no-wait", "init"]));
    sh(C::new("ovs-vswitchd").args([
        &db,
        &format!("--pidfile={}", p("vswitchd.pid")),
        &format!("--unixctl={}", p("vswitchd.ctl")),
        &format!("--log-file={}", p("vswitchd.log")),
        "--detach",
    ]));
    s.ip_host(&[
        "link", "add", "ovp0", "type", "veth", "peer", "name", "ovp1",
    ]);
    must(C::new("ip").args(["-n", &s.host, "link", "set", "ovp0", "netns", "1"]));
    sh(C::new("ovs-vsctl").args([
        &format!("--db={db}"),
        "add-br",
        "ovskbr",
        "--",
        "set",
        "bridge",
        "ovskbr",
        "datapath_type=system",
        "--",
        "add-port",
        "ovskbr",
        "ovp0",
        "tag=10",
    ]));
    let dp =
        must(C::new("ovs-appctl").args([&format!("--target={}", p("vswitchd.ctl")), "dpctl/show"]));
    assert!(
        dp.contains("system@ovs-system") && dp.contains("ovp0"),
        "{dp}"
    );
    sh(C::new("ovs-vsctl").args([&format!("--db={db}"), "del-br", "ovskbr"]));
    for pid in ["vswitchd.pid", "ovsdb.pid"] {
        if let Ok(p) = std::fs::read_to_string(d.join(pid)) {
            let _ = C::new("kill").arg(p.trim()).status();
        }
    }
    let _ = C::new("ip").args(["link", "del", "ovp0"]).status();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn a_dummy_through_the_cni_plugin() {
    let mut s = Sandbox::new("cnidummy");
    let g = s.guest("g");
    let conf = serde_json::json!({
        "cniVersion": "1.1.0", "name": "lo2", "type": "pipework", "host": "dummy",
        "ipam": {"type": "static", "addresses": [{"address": "10.98.0.1/32"}]}
    });
    let r = s.cni("ADD", &g, "dummy0", "dpod", &conf).ok().json();
    assert_eq!(r["interfaces"][0]["name"], "dummy0", "{r}");
    assert_eq!(
        link(&g, "dummy0").unwrap()["linkinfo"]["info_kind"],
        "dummy"
    );
    assert_eq!(addresses(&g, "dummy0")[0], "10.98.0.1/32");
    s.cni("DEL", &g, "dummy0", "dpod", &conf).ok();
    assert!(link(&g, "dummy0").is_none());
}
