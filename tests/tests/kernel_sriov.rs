//! SR-IOV VFs of the emulated igb PF, and `--direct-phys` of a real NIC.
//! Witnesses: `ip -d link show <pf>` (the VF list as the PF reports it) and
//! the links of every namespace.

use pipework_tests::hw::*;
use pipework_tests::*;

/// The PF and two VF netdevs in the sandbox, the PF up.
fn pf_with_vfs(s: &Sandbox) -> (String, Vec<String>) {
    let pf = pf_name();
    let vfs = set_vfs(2);
    s.adopt(&pf);
    for v in &vfs {
        s.adopt(v);
    }
    s.up_with_carrier(&pf);
    (pf, vfs)
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn two_vfs_into_two_guests_and_back() {
    let mut s = Sandbox::new("vfs");
    let (pf, vfs) = pf_with_vfs(&s);
    let vf_before = s.vfinfo(&pf);
    let host_before = s.host_links();
    let (a, b, c) = (s.guest("a"), s.guest("b"), s.guest("c"));
    s.pipework(&[
        &pf,
        "--vf",
        "0",
        &a,
        "10.76.0.2/24",
        "02:00:00:76:00:02@10",
        "--spoofchk",
        "off",
        "--trust",
        "on",
        "--max-tx-rate",
        "100",
    ])
    .ok();
    s.pipework(&[
        &pf,
        "--vf",
        "auto",
        &b,
        "10.76.0.3/24",
        "02:00:00:76:00:03@20",
        "--vf-vlan-qos",
        "3",
    ])
    .ok();
    let vf = s.vfinfo(&pf);
    assert_eq!(vf[0]["address"], "02:00:00:76:00:02", "{vf}");
    assert_eq!(vf[0]["vlan_list"][0]["vlan"], 10, "{vf}");
    assert_eq!(vf[0]["spoofchk"], false, "{vf}");
    assert_eq!(vf[0]["trust"], true, "{vf}");
    assert_eq!(vf[0]["rate"]["max_tx"], 100, "{vf}");
    assert_eq!(vf[1]["address"], "02:00:00:76:00:03", "{vf}");
    assert_eq!(vf[1]["vlan_list"][0]["vlan"], 20, "{vf}");
    assert_eq!(vf[1]["vlan_list"][0]["qos"], 3, "{vf}");
    // The VF netdevs are in the guests, named eth1, with those MACs, and the
    // name they had kept in their alias.
    let ea = link(&a, "eth1").unwrap();
    assert_eq!(ea["address"], "02:00:00:76:00:02");
    assert_eq!(ea["ifalias"], vfs[0].as_str());
    assert_eq!(link(&b, "eth1").unwrap()["address"], "02:00:00:76:00:03");
    assert!(link(&s.host, &vfs[0]).is_none() && link(&s.host, &vfs[1]).is_none());
    let rec = s.pipework(&["inspect", &a]).ok().json();
    assert_eq!(rec["interfaces"][0]["driver"], "sriov_vf");
    assert_eq!(rec["interfaces"][0]["details"]["vf"], 0);
    // A VF in use is refused, and so is a PF with none free.
    let r = s.pipework(&[&pf, "--vf", "0", &c, "10.76.0.4/24"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!("VF 0 of {pf} is in use")),
        "{}",
        r.stderr
    );
    let r = s.pipework(&[&pf, "--vf", "auto", &c, "10.76.0.4/24"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no free VF"), "{}", r.stderr);
    let r = s.pipework(&[&pf, "--vf", "7", &c, "10.76.0.4/24"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no VF 7"), "{}", r.stderr);
    // Someone changes a VF setting through the PF: `check` says so, and
    // `--repair` sets it again (witness: the PF's VF list).
    assert_eq!(s.pipework(&["check"]).code, 0);
    s.ip_host(&["link", "set", &pf, "vf", "0", "spoofchk", "on"]);
    assert_eq!(s.vfinfo(&pf)[0]["spoofchk"], true);
    let r = s.pipework(&["check", &a]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("VF 0 of") && r.stdout.contains("spoof check"),
        "{r:?}"
    );
    let r = s.pipework(&["check", "--repair", &a]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(": repaired"), "{r:?}");
    assert_eq!(s.vfinfo(&pf)[0]["spoofchk"], false);
    assert_eq!(s.pipework(&["check"]).code, 0);
    // Detach: home under their names, every VF setting as it was.
    s.pipework(&["detach", &a]).ok();
    s.pipework(&["detach", &b]).ok();
    assert_eq!(s.vfinfo(&pf), vf_before);
    assert_eq!(s.host_links(), host_before);
    assert!(link(&s.host, &vfs[0]).unwrap().get("ifalias").is_none());
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn a_failed_vf_attach_restores_the_vf() {
    let mut s = Sandbox::new("vfrb");
    let (pf, _vfs) = pf_with_vfs(&s);
    let g = s.guest("g");
    let vf_before = s.vfinfo(&pf);
    let host_before = s.host_links();
    let guest_before = links(&g);
    let args = [
        pf.as_str(),
        "--vf",
        "auto",
        &g,
        "10.77.0.2/24@10.77.0.1",
        "02:00:00:77:00:02@30",
        "--trust",
        "on",
        "--spoofchk",
        "off",
    ];
    for p in ["bridge-ready", "link-created", "link-up", "before-commit"] {
        let r = s.pipework_env(&args, &[("PIPEWORK_FAULT", p)]);
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert_eq!(s.vfinfo(&pf), vf_before, "{p}");
        assert_eq!(s.host_links(), host_before, "{p}");
        assert_eq!(links(&g), guest_before, "{p}");
    }
    // igb cannot force a VF's link state: a clear error, and nothing changed.
    let r = s.pipework(&[
        &pf,
        "--vf",
        "1",
        &g,
        "0/0",
        "@30",
        "--vf-link-state",
        "enable",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("link state"), "{}", r.stderr);
    assert_eq!(s.vfinfo(&pf), vf_before);
    assert_eq!(s.host_links(), host_before);
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn direct_phys_round_trip_by_mac() {
    let mut s = Sandbox::new("dphys");
    set_vfs(0);
    let pf = pf_name();
    s.adopt(&pf);
    let g = s.guest("g");
    let host_before = s.host_links();
    let mac = link(&s.host, &pf).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_uppercase();
    s.pipework(&["--direct-phys", &format!("mac:{mac}"), &g, "10.78.0.2/24"])
        .ok();
    assert!(link(&s.host, &pf).is_none());
    let e = link(&g, "eth1").unwrap();
    assert_eq!(
        e["address"].as_str().unwrap(),
        mac.to_lowercase(),
        "keeps its MAC"
    );
    assert_eq!(e["ifalias"], pf.as_str());
    assert_eq!(addresses(&g, "eth1"), vec!["10.78.0.2/24".to_string()]);
    s.pipework(&["detach", &g]).ok();
    assert!(link(&g, "eth1").is_none());
    assert_eq!(
        s.host_links(),
        host_before,
        "back under its name, alias cleared"
    );
    // A failure half-way puts it back too.
    let r = s.pipework_env(
        &[
            "--direct-phys",
            &pf,
            &g,
            "10.78.0.2/24",
            "02:00:00:78:00:02",
        ],
        &[("PIPEWORK_FAULT", "before-commit")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(s.host_links(), host_before);
}

/// The guest dies with the NIC inside: the kernel hands the NIC back to the
/// VM's namespace under the guest's name for it; `gc` renames it home. This
/// runs pipework in the VM's own namespace, the one devices return to.
#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn gc_renames_a_nic_its_dead_guest_handed_back() {
    set_vfs(0);
    let pf = pf_name();
    let state = std::env::temp_dir().join("pw-gc-nic-state");
    let pw = |args: &[&str]| {
        let o = run(std::process::Command::new(pipework_bin())
            .args(args)
            .env("PIPEWORK_STATE_DIR", &state));
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    must(std::process::Command::new("ip").args(["netns", "add", "pwgcnic"]));
    pw(&["--direct-phys", &pf, "-i", "lan0", "pwgcnic", "0/0"]);
    must(std::process::Command::new("ip").args(["netns", "del", "pwgcnic"]));
    wait_link_here("lan0");
    pw(&["gc"]);
    wait_link_here(&pf);
    assert!(link_here(&pf)["ifalias"].is_null());
    let _ = std::fs::remove_dir_all(&state);
}

fn link_here(name: &str) -> serde_json::Value {
    let out =
        must(std::process::Command::new("ip").args(["-j", "-d", "link", "show", "dev", name]));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn a_vf_through_the_cni_plugin() {
    let mut s = Sandbox::new("cnivf");
    let (pf, _vfs) = pf_with_vfs(&s);
    let vf_before = s.vfinfo(&pf);
    let host_before = s.host_links();
    let g = s.guest("g");
    let conf = serde_json::json!({
        "cniVersion": "1.1.0", "name": "sriov", "type": "pipework", "host": pf,
        "vf": "auto", "vlan": 40, "vfQos": 2, "spoofchk": false, "mac": "02:00:00:77:00:02",
        "ipam": {"type": "static", "addresses": [{"address": "10.77.0.2/24"}]}
    });
    let r = s.cni("ADD", &g, "net1", "vfpod", &conf).ok().json();
    assert_eq!(r["interfaces"][0]["name"], "net1", "{r}");
    let vf = s.vfinfo(&pf);
    assert_eq!(vf[0]["address"], "02:00:00:77:00:02", "{vf}");
    assert_eq!(vf[0]["vlan_list"][0]["vlan"], 40, "{vf}");
    assert_eq!(vf[0]["vlan_list"][0]["qos"], 2, "{vf}");
    assert_eq!(vf[0]["spoofchk"], false, "{vf}");
    assert_eq!(link(&g, "net1").unwrap()["address"], "02:00:00:77:00:02");
    let mut check = conf.clone();
    check["prevResult"] = r.clone();
    s.cni("CHECK", &g, "net1", "vfpod", &check).ok();
    s.cni("DEL", &g, "net1", "vfpod", &check).ok();
    s.cni("DEL", &g, "net1", "vfpod", &conf).ok();
    assert_eq!(s.vfinfo(&pf), vf_before);
    assert_eq!(s.host_links_settled(&host_before), host_before);
}
