//! Open vSwitch attachments against real daemons (userspace datapath),
//! proved with traffic and with `ovs-vsctl` / `ovs-ofctl` as witnesses.
//! pipework itself runs with only `ip` on its PATH.
//!
//! Long file: one test binary per area keeps the suite's link time down
//! (each binary links the whole harness); the tests share the OVS fixture
//! and the helpers at the top.

use std::net::Ipv4Addr;
use std::time::Duration;

use pipework_tests::ovs::{eventually, OvsSwitch, TCP_PORT};
use pipework_tests::rawframe::arp_ask;
use pipework_tests::*;

const NETDEV: &[&str] = &["--datapath-type", "netdev"];

fn args<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

/// The host-side port of a guest's eth1, from its record.
fn port_of(s: &Sandbox, guest: &str) -> String {
    let j = s.pipework(&["inspect", guest]).ok().json();
    j["interfaces"][0]["host_peer"]
        .as_str()
        .unwrap_or_else(|| panic!("{j}"))
        .to_string()
}

/// The veths of the sandbox's host (the hook deletes a bridge, and its tap
/// device with it: compare what pipework makes).
fn veths(s: &Sandbox) -> Vec<serde_json::Value> {
    s.host_links()
        .into_iter()
        .filter(|l| l["kind"] == "veth")
        .collect()
}

fn mac_of(ns: &str, ifname: &str) -> String {
    link(ns, ifname).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn schema_matches_the_live_server_and_the_client_speaks_every_operation() {
    use pipework_drivers::ovs::ovsdb::{op, rows, Ovsdb};
    use pipework_ovsdb_schemas::datum;
    use serde_json::{json, Map};

    let mut s = Sandbox::new("ovsschema");
    let sw = OvsSwitch::start(&mut s);
    let unix: pipework_drivers::ovs::Remote = sw.db().parse().unwrap();
    // TCP: the server listens on the sandbox's loopback, so the client must
    // run there; a thread of our own enters it.
    let host = s.host.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let problems = rt.block_on(async {
        let mut db = Ovsdb::connect(&unix).await.unwrap();
        pipework_ovsdb_schemas::check(&db.get_schema().await.unwrap())
    });
    assert_eq!(problems, Vec::<String>::new());

    let exercise = move |remote: pipework_drivers::ovs::Remote, name: &'static str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut db = Ovsdb::connect(&remote).await.unwrap();
            let mut br = Map::new();
            br.insert("name".into(), name.into());
            let mut ids = std::collections::BTreeMap::new();
            ids.insert("k".to_string(), "v".to_string());
            let mut upd = Map::new();
            upd.insert("external_ids".into(), datum::map(&ids));
            let r = db
                .transact(
                    vec![
                        op::insert("Bridge", br, Some("b")),
                        op::mutate(
                            "Open_vSwitch",
                            vec![],
                            vec![json!(["bridges", "insert", datum::set(vec![datum::named("b")])])],
                        ),
                        op::update("Bridge", vec![op::eq("name", name.into())], upd),
                        op::select("Bridge", vec![op::eq("name", name.into())], &["external_ids"]),
                    ],
                    Duration::ZERO,
                )
                .await
                .unwrap();
            assert_eq!(op::count(&r[1]), 1);
            assert_eq!(op::count(&r[2]), 1);
            assert_eq!(rows(&r[3])[0]["external_ids"], json!(["map", [["k", "v"]]]));
            // A wait that holds at once, then one that times out.
            let ok = op::wait(
                "Bridge",
                vec![op::eq("name", name.into())],
                &["name"],
                true,
                vec![json!({"name": name})],
                Duration::ZERO,
            );
            db.transact(vec![ok], Duration::ZERO).await.unwrap();
            let never = op::wait(
                "Bridge",
                vec![op::eq("name", name.into())],
                &["name"],
                true,
                vec![],
                Duration::from_millis(100),
            );
            let e = db.transact(vec![never], Duration::from_millis(100)).await;
            assert!(
                matches!(&e, Err(pipework_drivers::ovs::ovsdb::OvsdbError::Txn(t)) if t.is_wait_failure()),
                "{e:?}"
            );
            let uuid = datum::as_uuid(&r[0]["uuid"]).unwrap();
            let r = db
                .transact(
                    vec![
                        op::mutate(
                            "Open_vSwitch",
                            vec![],
                            vec![json!(["bridges", "delete", datum::uuid(&uuid)])],
                        ),
                        op::delete("Bridge", vec![op::eq("name", name.into())]),
                    ],
                    Duration::ZERO,
                )
                .await
                .unwrap();
            assert_eq!(op::count(&r[0]), 1);
        });
    };
    exercise(unix, "ovsunix");
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{host}")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        exercise(
            format!("tcp:127.0.0.1:{TCP_PORT}").parse().unwrap(),
            "ovstcp",
        );
    })
    .join()
    .unwrap();
    assert_eq!(sw.vsctl(&["list-br"]).trim(), "");
}

#[test]
fn vlan_10_guests_ping_and_vlan_20_is_isolated() {
    let mut s = Sandbox::new("ovsvlan");
    let sw = OvsSwitch::start(&mut s);
    let a = s.guest("a");
    let b = s.guest("b");
    let c = s.guest("c");
    // The first attach creates the bridge in the same transaction.
    s.pipework(&args(&["ovsv", &a, "10.20.0.2/24", "@10"], NETDEV))
        .ok();
    // Over TCP this time.
    s.pipework(&[
        "--ovsdb",
        &format!("tcp:127.0.0.1:{TCP_PORT}"),
        "ovsv",
        &b,
        "10.20.0.3/24",
        "@10",
    ])
    .ok();
    s.pipework(&["ovsv", &c, "10.20.0.4/24", "@20"]).ok();
    assert_eq!(sw.get("bridge", "ovsv", "datapath_type"), "netdev");
    assert!(ping(&a, "10.20.0.3"));
    assert!(ping(&b, "10.20.0.2"));
    assert!(!ping(&a, "10.20.0.4"), "VLAN 20 must not reach VLAN 10");
    assert!(!ping(&c, "10.20.0.2"));
    let pa = port_of(&s, &a);
    let pc = port_of(&s, &c);
    assert_eq!(sw.get("port", &pa, "tag"), "10");
    assert_eq!(sw.get("port", &pc, "tag"), "20");
    let ids = sw.get("interface", &pa, "external_ids");
    for k in [
        "pipework.interface",
        "pipework.bridge=ovsv",
        "pipework.vlan=\"10\"",
    ] {
        assert!(ids.contains(k), "{k} in {ids}");
    }
    // The guest end has the bridge's MTU.
    assert_eq!(link(&a, "eth1").unwrap()["mtu"], 1500);
    // The gratuitous ARP goes out once the port forwards: B (told to accept
    // gratuitous ARP) learns D's address without ever talking to it.
    must(std::process::Command::new("ip").args([
        "netns",
        "exec",
        &b,
        "sysctl",
        "-qw",
        "net.ipv4.conf.eth1.arp_accept=1",
    ]));
    let d = s.guest("d");
    s.pipework(&["ovsv", &d, "10.20.0.5/24", "@10"]).ok();
    let dmac = mac_of(&d, "eth1");
    assert!(
        eventually(Duration::from_secs(3), || {
            ip_json(&b, &["neigh", "show", "10.20.0.5"])[0]["lladdr"].as_str() == Some(&dmac)
        }),
        "B did not hear D's gratuitous ARP"
    );
    s.pipework(&["detach", &d]).ok();
    // The record knows the port; inspect shows its OpenFlow number.
    let j = s.pipework(&["inspect", &a]).ok().json();
    assert_eq!(j["interfaces"][0]["driver"], "ovs");
    assert!(
        j["interfaces"][0]["details"]["ovs_ofport"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Detaching them all deletes the bridge pipework created.
    for g in [&a, &b, &c] {
        s.pipework(&["detach", g]).ok();
    }
    assert_eq!(sw.vsctl(&["list-br"]).trim(), "");
}

#[test]
fn a_trunk_port_carries_both_vlans_and_native_vlans_work() {
    let mut s = Sandbox::new("ovstrunk");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge("ovst");
    let a = s.guest("a");
    let c = s.guest("c");
    let t = s.guest("t");
    let n = s.guest("n");
    s.pipework(&["ovst", &a, "10.30.0.2/24", "@10"]).ok();
    s.pipework(&["ovst", &c, "10.30.0.4/24", "@20"]).ok();
    s.pipework(&["ovst", &t, "0/0", "--trunk", "10,20"]).ok();
    let pt = port_of(&s, &t);
    assert_eq!(sw.get("port", &pt, "trunks"), "[10, 20]");
    assert_eq!(sw.get("port", &pt, "vlan_mode"), "trunk");
    let tmac: [u8; 6] = [0x02, 0, 0, 0, 0x77, 0x01];
    let me: Ipv4Addr = "10.30.0.100".parse().unwrap();
    let ask = |vlan, target: &str| {
        arp_ask(
            &t,
            "eth1",
            vlan,
            tmac,
            me,
            target.parse().unwrap(),
            Duration::from_secs(3),
        )
    };
    // Tagged 10 reaches A (and the answer comes back tagged 10), tagged 20
    // reaches C; a VLAN's frames never reach the other's guest.
    let ra = ask(Some(10), "10.30.0.2").expect("A answers on VLAN 10");
    assert_eq!(ra.vlan, Some(10));
    assert_eq!(ra.sender_mac.to_vec(), mac_bytes(&mac_of(&a, "eth1")));
    let rc = ask(Some(20), "10.30.0.4").expect("C answers on VLAN 20");
    assert_eq!(rc.vlan, Some(20));
    assert_eq!(ask(Some(20), "10.30.0.2"), None);
    assert_eq!(ask(None, "10.30.0.2"), None, "untagged is not VLAN 10");

    // A native-untagged trunk: its plain IP traffic is in VLAN 10, VLAN 20
    // rides tagged.
    s.pipework(&[
        "ovst",
        &n,
        "10.30.0.5/24",
        "--trunk",
        "20",
        "--native-vlan",
        "10",
    ])
    .ok();
    let pn = port_of(&s, &n);
    assert_eq!(sw.get("port", &pn, "vlan_mode"), "native-untagged");
    assert_eq!(sw.get("port", &pn, "tag"), "10");
    assert!(ping(&n, "10.30.0.2"));
    assert!(!ping(&n, "10.30.0.4"));
    let r = arp_ask(
        &n,
        "eth1",
        Some(20),
        [0x02, 0, 0, 0, 0x77, 0x02],
        me,
        "10.30.0.4".parse().unwrap(),
        Duration::from_secs(3),
    )
    .expect("C answers a tagged frame from the native-VLAN trunk");
    assert_eq!(r.vlan, Some(20));

    // Native-tagged: untagged frames from the guest still land in VLAN 10.
    let nt = s.guest("nt");
    s.pipework(&[
        "ovst",
        &nt,
        "10.30.0.6/24",
        "--native-vlan",
        "10",
        "--native-tagged",
        "--trunk",
        "20",
    ])
    .ok();
    let pnt = port_of(&s, &nt);
    assert_eq!(sw.get("port", &pnt, "vlan_mode"), "native-tagged");
    assert_eq!(
        arp_ask(
            &nt,
            "eth1",
            None,
            [0x02, 0, 0, 0, 0x77, 0x03],
            "10.30.0.106".parse().unwrap(),
            "10.30.0.2".parse().unwrap(),
            Duration::from_secs(3),
        )
        .expect("A answers the untagged native-VLAN frame")
        .vlan,
        Some(10),
        "native-tagged: VLAN 10 comes back tagged"
    );
}

fn mac_bytes(s: &str) -> Vec<u8> {
    s.split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect()
}

#[test]
fn port_security_drops_spoofed_macs_and_addresses() {
    let mut s = Sandbox::new("ovsportsec");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge("ovss");
    let baseline = sw.flows("ovss");
    let a = s.guest("a");
    let b = s.guest("b");
    let m = s.guest("m");
    for (g, ip) in [
        (&a, "10.40.0.2/24,fd40::2/64"),
        (&b, "10.40.0.3/24,fd40::3/64"),
        (&m, "10.40.0.9/24"),
    ] {
        s.pipework(&["ovss", g, ip, "@10", "--port-security"]).ok();
    }
    // IPv6 needs neighbour discovery (and DAD, which attach waited for) to
    // get through the flows.
    assert!(ping(&a, "fd40::3"));
    assert!(ping(&b, "fd40::2"));
    let flows = sw.flows("ovss");
    assert!(flows.len() > baseline.len() + 20, "{flows:#?}");
    assert!(flows.iter().any(|f| f.contains("cookie=0x7077")));
    assert!(ping(&a, "10.40.0.3"));
    assert!(ping(&m, "10.40.0.2"), "an honest guest passes");

    // The malicious guest takes another MAC: nothing of it gets through.
    let mac = mac_of(&m, "eth1");
    ip(&m, &["link", "set", "eth1", "address", "02:00:00:66:66:66"]);
    ip(&m, &["neigh", "flush", "dev", "eth1"]);
    assert!(!ping(&m, "10.40.0.2"), "spoofed MAC must be dropped");
    assert!(ping(&a, "10.40.0.3"), "honest guests keep talking");
    ip(&m, &["link", "set", "eth1", "address", &mac]);
    assert!(ping(&m, "10.40.0.2"), "back to its own MAC");

    // Now another address, with its own MAC.
    ip(&m, &["addr", "flush", "dev", "eth1"]);
    ip(&m, &["addr", "add", "10.40.0.3/24", "dev", "eth1"]);
    ip(&a, &["neigh", "flush", "dev", "eth1"]);
    assert!(!ping(&m, "10.40.0.2"), "spoofed IP must be dropped");
    assert!(ping(&a, "10.40.0.3"), "B keeps its address");
    // A's neighbour entry for B still points at B.
    let neigh = ip_json(&a, &["neigh", "show", "10.40.0.3"]);
    assert_eq!(neigh[0]["lladdr"].as_str().unwrap(), mac_of(&b, "eth1"));

    // A second address on A's port gets through too, from then on.
    let from = |src: &str| {
        run(std::process::Command::new("ip").args([
            "netns",
            "exec",
            &a,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            src,
            "10.40.0.3",
        ]))
        .status
        .success()
    };
    ip(&a, &["addr", "add", "10.40.0.12/24", "dev", "eth1"]);
    assert!(
        !from("10.40.0.12"),
        "not A's address as far as pipework knows"
    );
    ip(&a, &["addr", "del", "10.40.0.12/24", "dev", "eth1"]);
    s.pipework(&["ovss", &a, "10.40.0.12/24"]).ok();
    assert!(from("10.40.0.12") || from("10.40.0.12"));

    // Detach removes exactly this attachment's flows.
    for g in [&a, &b, &m] {
        s.pipework(&["detach", g]).ok();
    }
    assert_eq!(sw.flows("ovss"), baseline);
}

#[test]
fn detach_and_gc_leave_ovs_as_before() {
    let mut s = Sandbox::new("ovsgc");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge("ovsg");
    let show = sw.show();
    let flows = sw.flows("ovsg");
    let host_before = s.host_links();
    let a = s.guest("a");
    let b = s.guest("b");
    let c = s.guest("c");
    s.pipework(&["ovsg", &a, "10.50.0.2/24", "@10", "--port-security"])
        .ok();
    s.pipework(&["ovsg", &b, "10.50.0.3/24", "--port-security"])
        .ok();
    s.pipework(&["ovsg", &c, "10.50.0.4/24", "--trunk", "10,20-30"])
        .ok();
    assert_eq!(sw.ports("ovsg").len(), 3);
    // A detach.
    s.pipework(&["detach", &a]).ok();
    // B's container dies: its record is collected.
    ip_netns_del(&b);
    // C's dies and its record is lost too: only OVSDB knows the port is ours.
    let pc = port_of(&s, &c);
    ip_netns_del(&c);
    std::fs::remove_dir_all(&s.state_dir).unwrap();
    // The kernel destroys a dead namespace (and the veth with it) a moment later.
    assert!(eventually(Duration::from_secs(10), || link(&s.host, &pc).is_none()));
    let r = s.pipework(&["gc"]).ok();
    assert!(r.stdout.contains("OVS port"), "{}", r.stdout);
    assert_eq!(sw.show(), show);
    assert_eq!(sw.flows("ovsg"), flows);
    assert!(eventually(Duration::from_secs(5), || s.host_links() == host_before));
    // Nothing left to collect.
    let r = s.pipework(&["gc"]).ok();
    assert!(!r.stdout.contains("OVS port"), "{}", r.stdout);

    // A row marked by an older pipework, without a cookie, whose device is gone.
    sw.vsctl(&[
        "add-port",
        "ovsg",
        "vold1pl42",
        "--",
        "set",
        "port",
        "vold1pl42",
        "external_ids:pipework.interface=vold1pl42",
        "external_ids:pipework.bridge=ovsg",
    ]);
    let r = s.pipework(&["gc"]).ok();
    assert!(r.stdout.contains("vold1pl42"), "{}", r.stdout);
    assert_eq!(sw.show(), show);

    // Flows whose port row is gone too (removed by hand, record lost).
    let d = s.guest("d");
    s.pipework(&["ovsg", &d, "10.50.0.5/24", "--port-security"])
        .ok();
    let pd = port_of(&s, &d);
    sw.vsctl(&["del-port", "ovsg", &pd]);
    std::fs::remove_dir_all(&s.state_dir).unwrap();
    assert_ne!(sw.flows("ovsg"), flows);
    let r = s.pipework(&["gc"]).ok();
    assert!(r.stdout.contains("OpenFlow flows"), "{}", r.stdout);
    assert_eq!(sw.flows("ovsg"), flows);
}

fn ip_netns_del(ns: &str) {
    must(std::process::Command::new("ip").args(["netns", "del", ns]));
    // Re-created empty so the sandbox's cleanup finds it.
    must(std::process::Command::new("ip").args(["netns", "add", ns]));
}

#[test]
fn fifty_concurrent_attaches_land_on_distinct_ports() {
    let mut s = Sandbox::new("ovsfifty");
    let sw = OvsSwitch::start(&mut s);
    let guests: Vec<String> = (0..50).map(|i| s.guest(&format!("g{i}"))).collect();
    let results: Vec<Run> = std::thread::scope(|sc| {
        let hs: Vec<_> = guests
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let s = &s;
                sc.spawn(move || {
                    s.pipework(&[
                        "ovsrace",
                        g,
                        &format!("10.60.0.{}/24", i + 10),
                        "@10",
                        "--datapath-type",
                        "netdev",
                    ])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert_eq!(r.code, 0, "{r:?}");
    }
    let ports = sw.ports("ovsrace");
    assert_eq!(ports.len(), 50, "{ports:?}");
    let mut ofports: Vec<String> = ports
        .iter()
        .map(|p| sw.get("interface", p, "ofport"))
        .collect();
    ofports.sort();
    ofports.dedup();
    assert_eq!(ofports.len(), 50, "{ofports:?}");
    assert!(ofports.iter().all(|o| o.parse::<i64>().unwrap() > 0));
    assert!(ping(&guests[0], "10.60.0.59"));
    std::thread::scope(|sc| {
        for g in &guests {
            let s = &s;
            sc.spawn(move || s.pipework(&["detach", g]).ok());
        }
    });
    assert_eq!(sw.vsctl(&["list-br"]).trim(), "");
}

#[test]
fn killing_ovsdb_server_mid_attach_leaves_no_veth_and_no_row() {
    let mut s = Sandbox::new("ovskill");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge("ovsk");
    let g = s.guest("g");
    let show = sw.show();
    let host_before = s.host_links();
    let kill = format!("read p < {}; kill -9 $p", sw.ovsdb_pidfile().display());
    // Before the port transaction, and after it was committed.
    for point in ["ovs-bridge-read", "ovs-port-added"] {
        let r = s.pipework_env(
            &["ovsk", &g, "10.70.0.2/24", "@10"],
            &[("PIPEWORK_FAULT_HOOK", &format!("{point}:{kill}"))],
        );
        assert_eq!(r.code, 1, "{point}: {r:?}");
        // A warning per undo that could not reach OVSDB, then the error.
        let last = r.stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("pipework: ") && last.contains("OVSDB"),
            "{point}: {}",
            r.stderr
        );
        assert_eq!(s.host_links(), host_before, "no veth left after {point}");
        assert!(link(&g, "eth1").is_none());
        sw.start_ovsdb();
        // A row committed before the crash is collected by gc (its veth is gone).
        s.pipework(&["gc"]).ok();
        assert_eq!(sw.show(), show, "after {point}");
    }
}

#[test]
fn an_unreachable_ovsdb_is_a_clear_error() {
    let mut s = Sandbox::new("ovsdown");
    let _sw = OvsSwitch::start(&mut s);
    let g = s.guest("g");
    let before = s.host_links();
    for db in ["unix:/nonexistent/db.sock", "tcp:127.0.0.1:1"] {
        let r = s.pipework(&["--ovsdb", db, "ovsx", &g, "10.71.0.2/24", "@10"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("cannot reach OVSDB"), "{}", r.stderr);
        assert!(r.stderr.contains(db), "{}", r.stderr);
        assert_eq!(s.host_links(), before);
    }
    // Other drivers do not care whether OVSDB is there.
    s.pipework(&["--ovsdb", "unix:/nonexistent/db.sock", "br9", &g, "0/0"])
        .ok();
}

#[test]
fn a_bridge_deleted_or_replaced_under_the_attach() {
    let mut s = Sandbox::new("ovsrace2");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge("ovsd");
    let g = s.guest("g");
    let veths_before = veths(&s);
    let vsctl = sw.vsctl_cmd();
    // Deleted between our read and our transaction.
    let r = s.pipework_env(
        &["ovsd", &g, "10.72.0.2/24"],
        &[(
            "PIPEWORK_FAULT_HOOK",
            &format!("ovs-bridge-read:{vsctl} del-br ovsd"),
        )],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("was deleted"), "{}", r.stderr);
    assert_eq!(veths(&s), veths_before);
    assert_eq!(sw.vsctl(&["list-br"]).trim(), "");

    // Replaced by a new row every time: the retries are bounded.
    sw.add_bridge("ovsd");
    let replace = format!(
        "ovs-bridge-read:{vsctl} del-br ovsd -- add-br ovsd -- set bridge ovsd datapath_type=netdev"
    );
    let r = s.pipework_env(
        &["ovsd", &g, "10.72.0.2/24"],
        &[("PIPEWORK_FAULT_HOOK", &replace)],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("gave up after 5"), "{}", r.stderr);
    assert!(sw.ports("ovsd").is_empty());

    // Replaced once: the retry lands.
    let marker = sw.dir.join("replaced-once");
    let once = format!(
        "ovs-bridge-read:[ -e {m} ] || {{ : > {m}; {vsctl} del-br ovsd -- add-br ovsd -- set bridge ovsd datapath_type=netdev; }}",
        m = marker.display()
    );
    s.pipework_env(
        &["ovsd", &g, "10.72.0.2/24"],
        &[("PIPEWORK_FAULT_HOOK", &once)],
    )
    .ok();
    assert!(marker.exists());
    assert_eq!(sw.ports("ovsd").len(), 1);
}

#[test]
fn a_fault_at_every_step_leaves_ovs_as_before() {
    let mut s = Sandbox::new("ovsfault");
    let sw = OvsSwitch::start(&mut s);
    let g = s.guest("g");
    let show = sw.show();
    let host_before = s.host_links();
    for p in [
        "validated",
        "bridge-ready",
        "ovs-bridge-read",
        "ovs-port-added",
        "link-created",
        "link-configured",
        "address-added",
        "link-up",
        "routes-added",
        "ovs-flows-added",
        "announced",
        "before-commit",
    ] {
        let r = s.pipework_env(
            &[
                "ovsf",
                &g,
                "10.73.0.2/24",
                "@10",
                "--port-security",
                "--datapath-type",
                "netdev",
            ],
            &[("PIPEWORK_FAULT", p)],
        );
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert!(
            r.stderr.contains(&format!("injected fault at {p}")),
            "{p}: {}",
            r.stderr
        );
        assert_eq!(sw.show(), show, "OVSDB after a fault at {p}");
        assert!(
            eventually(Duration::from_secs(5), || s.host_links() == host_before),
            "host links after a fault at {p}"
        );
        assert!(link(&g, "eth1").is_none());
    }
    // And with an existing bridge: its flows are as before too.
    sw.add_bridge("ovsf");
    let show = sw.show();
    let flows = sw.flows("ovsf");
    for p in ["ovs-flows-added", "before-commit"] {
        let r = s.pipework_env(
            &["ovsf", &g, "10.73.0.2/24", "@10", "--port-security"],
            &[("PIPEWORK_FAULT", p)],
        );
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert_eq!(sw.show(), show);
        assert_eq!(sw.flows("ovsf"), flows);
    }
}

#[test]
fn bad_ovs_input_exits_2_and_changes_nothing() {
    let mut s = Sandbox::new("ovsbad");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge("ovsb");
    let g = s.guest("g");
    let show = sw.show();
    let before = s.host_links();
    for (a, needle) in [
        (
            vec!["br1", &g, "0/0", "--trunk", "10"],
            "only to Open vSwitch",
        ),
        (
            vec!["ovsb", &g, "0/0", "@10", "--trunk", "20"],
            "access port",
        ),
        (
            vec!["ovsb", &g, "0/0", "--datapath-type", "system"],
            "datapath type netdev",
        ),
        (vec!["ovsb", &g, "0/0", "@5000"], "VLAN"),
        (
            vec!["--ovsdb", "tcp:nohost", "ovsb", &g, "0/0"],
            "OVSDB address",
        ),
        (
            vec!["ovsb", &g, "dhcp", "--port-security"],
            "static addresses",
        ),
    ] {
        let r = s.pipework(&a);
        assert_eq!(r.code, 2, "{a:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{a:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1);
        assert_eq!(s.host_links(), before);
        assert_eq!(sw.show(), show);
    }
    // An existing port of the same name that pipework does not own.
    sw.vsctl(&["add-port", "ovsb", "mine0"]);
    let r = s.pipework(&["ovsb", "-l", "mine0", &g, "0/0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("does not own"), "{}", r.stderr);
    assert_eq!(s.host_links(), before);
    assert_eq!(sw.ports("ovsb"), vec!["mine0".to_string()]);
    assert_eq!(sw.get("port", "mine0", "external_ids"), "{}");
}
