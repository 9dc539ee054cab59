//! pipework as a CNI plugin, driven the way a runtime drives it (environment
//! plus configuration on stdin), with `ip -j` as the witness, and chained
//! with Debian's reference plugins.
//!
//! Long file: one test binary per area keeps the suite's link time down
//! (each binary links the whole harness); the tests share the plugin
//! runner at the top.

use std::io::Write;
use std::process::{Command, Stdio};

use pipework_tests::*;
use serde_json::{json, Value};

struct Cni<'a> {
    s: &'a Sandbox,
    netns: String,
    ifname: String,
    container: String,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", self.stdout, self.stderr))
    }
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{}{}", self.stdout, self.stderr);
        self
    }
}

impl<'a> Cni<'a> {
    fn new(s: &'a Sandbox, guest: &str, ifname: &str, container: &str) -> Cni<'a> {
        Cni {
            s,
            netns: format!("/run/netns/{guest}"),
            ifname: ifname.into(),
            container: container.into(),
        }
    }

    /// Runs a plugin binary (ours by default) as the runtime would.
    fn exec(
        &self,
        plugin: &std::path::Path,
        command: &str,
        conf: &Value,
        env: &[(&str, &str)],
    ) -> Out {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.s.host]).arg(plugin);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &self.container)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_PATH", "/usr/lib/cni")
            .env("PIPEWORK_STATE_DIR", &self.s.state_dir);
        for (k, v) in &self.s.env {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn run(&self, command: &str, conf: &Value) -> Out {
        self.exec(&pipework_bin(), command, conf, &[])
    }
}

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

#[test]
fn add_check_del_on_a_bridge() {
    let mut s = Sandbox::new("cnibridge");
    let g = s.guest("g");
    let before = (s.host_links(), links(&g), routes(&g));
    let conf = json!({
        "cniVersion": "1.1.0", "name": "lan", "type": "pipework", "host": "brcni",
        "ipam": {"type": "static",
                 "addresses": [{"address": "10.5.0.2/24", "gateway": "10.5.0.1"}],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.5.0.254"}],
                 "dns": {"nameservers": ["10.5.0.53"]}}
    });
    let c = Cni::new(&s, &g, "net1", "c0ffee01");
    let r = c.run("ADD", &conf).ok().json();
    assert_eq!(r["cniVersion"], "1.1.0");
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2);
    assert_eq!(ifs[1]["name"], "net1");
    assert_eq!(ifs[1]["sandbox"], c.netns.as_str());
    assert_eq!(link(&g, "net1").unwrap()["address"], ifs[1]["mac"]);
    assert_eq!(
        link(&s.host, ifs[0]["name"].as_str().unwrap()).unwrap()["master"],
        "brcni"
    );
    assert_eq!(
        r["ips"][0],
        json!({"address": "10.5.0.2/24", "gateway": "10.5.0.1", "interface": 1})
    );
    assert_eq!(r["dns"]["nameservers"][0], "10.5.0.53");
    assert_eq!(
        ip_json(&g, &["route", "show", "default"])[0]["gateway"],
        "10.5.0.1"
    );
    assert_eq!(
        ip_json(&g, &["route", "show", "10.9.0.0/16"])[0]["gateway"],
        "10.5.0.254"
    );

    c.run("CHECK", &with_prev(&conf, &r)).ok();
    // A route of prevResult removed behind the plugin's back: CHECK notices.
    ip(&g, &["route", "del", "10.9.0.0/16"]);
    let bad = c.run("CHECK", &with_prev(&conf, &r));
    assert_eq!(bad.json()["code"], 101, "{}", bad.stdout);
    assert!(
        bad.json()["msg"]
            .as_str()
            .unwrap()
            .contains("10.9.0.0/16 via 10.5.0.254"),
        "{}",
        bad.stdout
    );
    ip(&g, &["route", "add", "10.9.0.0/16", "via", "10.5.0.254"]);
    // A MAC changed: said plainly.
    let mac = link(&g, "net1").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    ip(&g, &["link", "set", "net1", "address", "02:00:00:00:aa:bb"]);
    let bad = c.run("CHECK", &with_prev(&conf, &r));
    let msg = bad.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("has MAC 02:00:00:00:aa:bb, expected"), "{msg}");
    assert!(!msg.contains("Some("), "{msg}");
    ip(&g, &["link", "set", "net1", "address", &mac]);
    c.run("CHECK", &with_prev(&conf, &r)).ok();
    // Remove the address behind the plugin's back: CHECK notices.
    ip(&g, &["addr", "del", "10.5.0.2/24", "dev", "net1"]);
    let bad = c.run("CHECK", &with_prev(&conf, &r));
    assert_ne!(bad.code, 0);
    assert_eq!(bad.json()["code"], 101, "{}", bad.stdout);
    assert!(bad.json()["msg"].as_str().unwrap().contains("10.5.0.2/24"));

    let d = c.run("DEL", &with_prev(&conf, &r)).ok();
    assert!(d.stdout.trim().is_empty());
    assert_eq!((s.host_links(), links(&g), routes(&g)), before);
    // DEL is idempotent, with or without prevResult.
    c.run("DEL", &conf).ok();
    c.run("DEL", &with_prev(&conf, &r)).ok();
}

#[test]
fn macvlan_with_runtime_ips_and_mac() {
    let mut s = Sandbox::new("cnimacvlan");
    s.fake_nic("nic0");
    let g = s.guest("g");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "wan", "type": "pipework", "host": "nic0", "mode": "private",
        "ipam": {"type": "static"},
        "runtimeConfig": {"ips": ["10.6.0.5/24", "fd00:6::5/64"], "mac": "02:00:00:06:00:05"}
    });
    let c = Cni::new(&s, &g, "eth0", "pod-1");
    let r = c.run("ADD", &conf).ok().json();
    assert_eq!(
        r["interfaces"].as_array().unwrap().len(),
        1,
        "macvlan has no host peer"
    );
    let l = link(&g, "eth0").unwrap();
    assert_eq!(l["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(l["linkinfo"]["info_data"]["mode"], "private");
    assert_eq!(l["address"], "02:00:00:06:00:05");
    let a = addresses(&g, "eth0");
    assert!(
        a.contains(&"10.6.0.5/24".into()) && a.contains(&"fd00:6::5/64".into()),
        "{a:?}"
    );
    c.run("DEL", &with_prev(&conf, &r)).ok();
    assert!(link(&g, "eth0").is_none());
}

#[test]
fn old_spec_versions_get_old_result_shapes() {
    let mut s = Sandbox::new("cniold");
    let g = s.guest("g");
    let conf = json!({"cniVersion": "0.4.0", "name": "old", "type": "pipework", "host": "brold",
                      "ipam": {"type": "static", "addresses": [{"address": "10.8.0.2/24"}]}});
    let c = Cni::new(&s, &g, "eth0", "old1");
    let r = c.run("ADD", &conf).ok().json();
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["version"], "4");
    c.run("DEL", &conf).ok();
}

#[test]
fn del_after_the_namespace_is_gone() {
    let mut s = Sandbox::new("cnigone");
    let g = s.guest("g");
    let conf = json!({"cniVersion": "1.1.0", "name": "lan", "type": "pipework", "host": "brgone",
                      "ipam": {"type": "static", "addresses": [{"address": "10.10.0.2/24"}]}});
    let c = Cni::new(&s, &g, "eth0", "gone1");
    c.run("ADD", &conf).ok();
    assert!(link(&s.host, "brgone").is_some());
    must(Command::new("ip").args(["netns", "del", &g]));
    c.run("DEL", &conf).ok();
    assert!(s
        .pipework(&["list", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    assert!(
        link(&s.host, "brgone").is_none(),
        "the bridge pipework made is gone with its last port"
    );
    c.run("DEL", &conf).ok();
}

#[test]
fn delegated_host_local_ipam() {
    let mut s = Sandbox::new("cnihostlocal");
    let g = s.guest("g");
    let data = s.state_dir.join("host-local");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "hl", "type": "pipework", "host": "brhl",
        "ipam": {"type": "host-local", "subnet": "10.11.0.0/24", "dataDir": data,
                 "routes": [{"dst": "0.0.0.0/0"}]}
    });
    let c = Cni::new(&s, &g, "eth0", "hl1");
    let r = c.run("ADD", &conf).ok().json();
    let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(addr.starts_with("10.11.0."), "{r}");
    assert_eq!(addresses(&g, "eth0")[0], addr);
    assert_eq!(
        ip_json(&g, &["route", "show", "default"])[0]["gateway"],
        "10.11.0.1"
    );
    let reserved = data.join("hl").join(addr.split('/').next().unwrap());
    assert!(
        reserved.exists(),
        "host-local reserved {}",
        reserved.display()
    );
    c.run("CHECK", &with_prev(&conf, &r)).ok();
    c.run("DEL", &with_prev(&conf, &r)).ok();
    assert!(!reserved.exists(), "DEL released the address");
}

#[test]
fn chained_with_the_reference_tuning_plugin() {
    let mut s = Sandbox::new("cnichain");
    let g = s.guest("g");
    let ours = json!({"cniVersion": "1.0.0", "name": "chain", "type": "pipework", "host": "brch",
                      "ipam": {"type": "static", "addresses": [{"address": "10.12.0.2/24"}]}});
    let c = Cni::new(&s, &g, "eth0", "chain1");
    let r1 = c.run("ADD", &ours).ok().json();
    let tuning = json!({"cniVersion": "1.0.0", "name": "chain", "type": "tuning", "mtu": 1400,
                        "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}, "prevResult": r1});
    let tuning_bin = std::path::Path::new("/usr/lib/cni/tuning");
    let r2 = c.exec(tuning_bin, "ADD", &tuning, &[]).ok().json();
    assert_eq!(
        r2["interfaces"], r1["interfaces"],
        "tuning passes our result through"
    );
    assert_eq!(link(&g, "eth0").unwrap()["mtu"], 1400);
    // Our CHECK accepts the chain's final result.
    c.run("CHECK", &with_prev(&ours, &r2)).ok();
    // DEL in reverse order.
    c.exec(tuning_bin, "DEL", &with_prev(&tuning, &r2), &[])
        .ok();
    c.run("DEL", &with_prev(&ours, &r2)).ok();
    assert!(link(&g, "eth0").is_none());
    // Our plugin second in a chain keeps what came before it.
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "lo0"}], "ips": [{"address": "10.99.0.1/32", "interface": 0}]});
    let r3 = c.run("ADD", &with_prev(&ours, &prev)).ok().json();
    assert_eq!(r3["interfaces"][0]["name"], "lo0");
    assert_eq!(r3["ips"][1]["interface"], 2);
    c.run("DEL", &ours).ok();
}

#[test]
fn gc_keeps_only_valid_attachments() {
    let mut s = Sandbox::new("cnigc");
    let g1 = s.guest("g1");
    let g2 = s.guest("g2");
    let conf = json!({"cniVersion": "1.1.0", "name": "gcnet", "type": "pipework", "host": "brgc"});
    Cni::new(&s, &g1, "eth0", "keep").run("ADD", &conf).ok();
    Cni::new(&s, &g2, "eth0", "drop").run("ADD", &conf).ok();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    Cni::new(&s, &g1, "eth0", "keep").run("GC", &gc).ok();
    assert!(link(&g1, "eth0").is_some());
    assert!(link(&g2, "eth0").is_none());
    Cni::new(&s, &g1, "eth0", "keep").run("STATUS", &conf).ok();
}

#[test]
fn errors_follow_the_spec() {
    let mut s = Sandbox::new("cnierrors");
    let g = s.guest("g");
    let c = Cni::new(&s, &g, "eth0", "err1");
    let v = c
        .run("VERSION", &json!({"cniVersion": "1.1.0"}))
        .ok()
        .json();
    assert!(v["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("1.1.0")));
    let good = json!({"cniVersion": "1.1.0", "name": "e", "type": "pipework", "host": "brerr"});
    let code = |o: Out| {
        assert_ne!(o.code, 0);
        o.json()["code"].as_u64().unwrap()
    };
    assert_eq!(
        code(c.exec(&pipework_bin(), "ADD", &good, &[("CNI_IFNAME", "")])),
        4
    );
    assert_eq!(
        code(c.exec(
            &pipework_bin(),
            "ADD",
            &good,
            &[("CNI_CONTAINERID", "-bad")]
        )),
        4
    );
    let mut v2 = good.clone();
    v2["cniVersion"] = json!("9.9.9");
    assert_eq!(code(c.run("ADD", &v2)), 1);
    let mut typo = good.clone();
    typo["hots"] = json!("br0");
    let o = c.run("ADD", &typo);
    assert!(o.stdout.contains("hots"));
    assert_eq!(code(o), 2);
    let mut nohost = good.clone();
    nohost.as_object_mut().unwrap().remove("host");
    assert_eq!(code(c.run("ADD", &nohost)), 7);
    assert_eq!(
        code(c.run(
            "ADD",
            &json!({"cniVersion": "1.1.0", "name": "e", "type": "pipework", "host": "nosuchif0"})
        )),
        7
    );
    assert_eq!(code(c.run("FROB", &good)), 4);
    let mut nons = Cni::new(&s, &g, "eth0", "err2");
    nons.netns = "/run/netns/does-not-exist".into();
    assert_eq!(code(nons.run("ADD", &good)), 3);
    // Nothing was left behind by any of them.
    assert!(s
        .pipework(&["list", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    assert!(link(&g, "eth0").is_none());
    // Bad JSON is a decode error.
    let mut child = Command::new("ip")
        .args(["netns", "exec", &s.host])
        .arg(pipework_bin())
        .env("CNI_COMMAND", "ADD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{not json").unwrap();
    let o = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["code"], 6);
}

#[test]
fn native_dhcp_ipam() {
    use pipework_tests::dhcp::{DhcpServer, ServerConfig};
    let mut s = Sandbox::new("cnidhcp");
    let srv = DhcpServer::start(&mut s, "brcd", &ServerConfig::v4("10.13.0"));
    let g = s.guest("g");
    let conf = json!({"cniVersion": "1.1.0", "name": "dyn", "type": "pipework", "host": "brcd",
                      "ipam": {"type": "dhcp"}});
    let c = Cni::new(&s, &g, "eth0", "dhcp1");
    let r = c.run("ADD", &conf).ok().json();
    let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(addr.starts_with("10.13.0.1"), "{r}");
    assert_eq!(r["ips"][0]["gateway"], "10.13.0.1");
    assert_eq!(r["ips"][0]["interface"], 1);
    assert!(
        r["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["dst"] == "0.0.0.0/0"),
        "{r}"
    );
    assert_eq!(
        addresses(&g, "eth0")
            .iter()
            .find(|a| a.contains('.'))
            .unwrap(),
        &addr
    );
    assert!(ping(&g, &srv.addr));
    c.run("CHECK", &with_prev(&conf, &r)).ok();
    c.run("DEL", &with_prev(&conf, &r)).ok();
    // The lease was released: dnsmasq saw it.
    assert!(
        srv.wait_log("DHCPRELEASE", std::time::Duration::from_secs(5)),
        "{}",
        srv.log()
    );
    c.run("DEL", &conf).ok();
}

#[test]
fn open_vswitch_with_a_vlan_tag() {
    use pipework_tests::ovs::OvsSwitch;
    let mut s = Sandbox::new("cniovs");
    let sw = OvsSwitch::start(&mut s);
    let a = s.guest("a");
    let b = s.guest("b");
    let c = s.guest("c");
    let conf = |addr: &str, vlan: u16| {
        json!({"cniVersion": "1.1.0", "name": "ovsnet", "type": "pipework", "host": "ovscni",
               "datapathType": "netdev", "vlan": vlan,
               "ipam": {"type": "static", "addresses": [{"address": addr}]}})
    };
    let (ca, cb, cc) = (
        conf("10.14.0.2/24", 10),
        conf("10.14.0.3/24", 10),
        conf("10.14.0.4/24", 20),
    );
    let ra = Cni::new(&s, &a, "eth0", "ovsa").run("ADD", &ca).ok().json();
    Cni::new(&s, &b, "eth0", "ovsb").run("ADD", &cb).ok();
    Cni::new(&s, &c, "eth0", "ovsc").run("ADD", &cc).ok();
    let port = ra["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(sw.get("Port", &port, "tag"), "10");
    assert!(ping(&a, "10.14.0.3"), "same VLAN");
    assert!(!ping(&a, "10.14.0.4"), "VLAN 20 is isolated");
    Cni::new(&s, &a, "eth0", "ovsa")
        .run("CHECK", &with_prev(&ca, &ra))
        .ok();
    for (g, id, cf) in [(&a, "ovsa", &ca), (&b, "ovsb", &cb), (&c, "ovsc", &cc)] {
        Cni::new(&s, g, "eth0", id).run("DEL", cf).ok();
    }
    // The bridge pipework created went with its last port.
    assert!(!sw.show().contains("ovscni"), "{}", sw.show());
    // A bad trunk list is a configuration error, nothing created.
    let mut bad = conf("10.14.0.5/24", 10);
    bad["trunk"] = json!("10-x");
    let o = Cni::new(&s, &a, "eth0", "ovsd").run("ADD", &bad);
    assert_eq!(o.json()["code"], 7, "{}", o.stdout);
}

/// The text of every file under `dir` (the attachment records among them).
fn state_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(state_files(&p));
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push(t);
        }
    }
    out
}

/// The guest's main-table route to `dst`, as `ip -j route` shows it.
fn route_to(ns: &str, dst: &str) -> Option<Value> {
    ip_json(ns, &["route"])
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["dst"] == dst).cloned())
}

#[test]
fn ipam_routes_are_part_of_the_attachment() {
    let mut s = Sandbox::new("cniroutes");
    let g = s.guest("g");
    let before = (s.host_links(), links(&g), routes(&g));
    let conf = json!({
        "cniVersion": "1.1.0", "name": "rt", "type": "pipework", "host": "brrt",
        "ipam": {"type": "static",
                 "addresses": [{"address": "10.15.0.2/24", "gateway": "10.15.0.1"},
                               {"address": "fd00:15::2/64"}],
                 "routes": [{"dst": "10.16.0.0/16", "gw": "10.15.0.254"},
                            {"dst": "10.17.0.0/16"},
                            {"dst": "fd00:18::/64"}]}
    });
    let c = Cni::new(&s, &g, "net1", "routes1");
    let r = c.run("ADD", &conf).ok().json();
    let via = route_to(&g, "10.16.0.0/16").expect("the IPAM route is in the guest");
    assert_eq!(
        (&via["gateway"], &via["dev"]),
        (&json!("10.15.0.254"), &json!("net1"))
    );
    // No gw: the gateway of its family's address, as the spec says.
    assert_eq!(
        route_to(&g, "10.17.0.0/16").unwrap()["gateway"],
        "10.15.0.1"
    );
    // No gateway at all: straight out of the interface (IPv6 routes have
    // no scope to show).
    let v6 = ip_json(&g, &["-6", "route", "show", "fd00:18::/64"]);
    assert_eq!(
        (&v6[0]["dev"], &v6[0]["gateway"]),
        (&json!("net1"), &Value::Null),
        "{v6}"
    );
    // The attachment's journal holds them, so DEL removes them with the rest.
    let journaled = state_files(&s.state_dir)
        .iter()
        .any(|t| t.contains("guest_route_added") && t.contains("10.16.0.0/16"));
    assert!(
        journaled,
        "no guest_route_added step for 10.16.0.0/16 in the record"
    );
    c.run("CHECK", &with_prev(&conf, &r)).ok();
    c.run("DEL", &with_prev(&conf, &r)).ok();
    assert!(route_to(&g, "10.16.0.0/16").is_none());
    assert_eq!((s.host_links(), links(&g), routes(&g)), before);
}

#[test]
fn a_failed_add_leaves_no_route_behind() {
    let mut s = Sandbox::new("cnirtfail");
    let g = s.guest("g");
    let before = (s.host_links(), links(&g), routes(&g));
    let conf = json!({
        "cniVersion": "1.1.0", "name": "rt", "type": "pipework", "host": "brrtf",
        "ipam": {"type": "static",
                 "addresses": [{"address": "10.19.0.2/24", "gateway": "10.19.0.1"}],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.20.0.0/16", "gw": "10.19.0.254"}]}
    });
    let c = Cni::new(&s, &g, "net1", "rtfail1");
    // The attach fails after the routes' step: the rollback takes them away.
    // A hook at the same point witnesses that the route was there.
    let witness = s.state_dir.join("route-witness");
    for point in ["announced", "before-commit"] {
        let hook = format!(
            "{point}:ip -n {g} -j route show 10.20.0.0/16 > {}",
            witness.display()
        );
        let o = c.exec(
            &pipework_bin(),
            "ADD",
            &conf,
            &[("PIPEWORK_FAULT", point), ("PIPEWORK_FAULT_HOOK", &hook)],
        );
        let seen = std::fs::read_to_string(&witness).unwrap_or_default();
        assert!(
            seen.contains("10.19.0.254"),
            "{point}: route not added: {seen}"
        );
        assert_ne!(o.code, 0, "{point}");
        assert_eq!(o.json()["code"], 100, "{point}: {}", o.stdout);
        assert!(
            o.stdout.contains(&format!("injected fault at {point}")),
            "{}",
            o.stdout
        );
        assert!(route_to(&g, "10.20.0.0/16").is_none(), "{point}");
        assert_eq!((s.host_links(), links(&g), routes(&g)), before, "{point}");
    }
    // A route the kernel refuses (its gateway is on no subnet of the guest)
    // fails the ADD as a whole: no link, address or default route stays.
    let mut bad = conf.clone();
    bad["ipam"]["routes"] =
        json!([{"dst": "0.0.0.0/0"}, {"dst": "10.21.0.0/16", "gw": "192.0.2.9"}]);
    let o = c.run("ADD", &bad);
    assert_ne!(o.code, 0);
    assert!(o.stdout.contains("10.21.0.0/16"), "{}", o.stdout);
    assert_eq!((s.host_links(), links(&g), routes(&g)), before);
    assert!(s
        .pipework(&["list", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    // And with nothing injected, the same configuration attaches.
    c.run("ADD", &conf).ok();
    assert!(route_to(&g, "10.20.0.0/16").is_some());
    c.run("DEL", &conf).ok();
    assert_eq!((s.host_links(), links(&g), routes(&g)), before);
}
