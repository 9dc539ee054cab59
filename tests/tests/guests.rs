//! Every kind of guest reference resolves to the right namespace.

use pipework_tests::podman::Podman;
use pipework_tests::*;

#[test]
fn pid_and_paths_and_named_netns() {
    let mut s = Sandbox::new("guestkinds");
    let p1 = GuestProcess::spawn_unshared();
    let p2 = GuestProcess::spawn_unshared();
    let named = s.guest("named");
    s.pipework(&["brk", &p1.pid().to_string(), "10.70.0.2/24"])
        .ok();
    s.pipework(&["brk", &format!("/proc/{}/ns/net", p2.pid()), "10.70.0.3/24"])
        .ok();
    s.pipework(&["brk", &format!("netns:{named}"), "10.70.0.4/24"])
        .ok();
    let path_guest = s.guest("path");
    s.pipework(&["brk", &format!("/run/netns/{path_guest}"), "10.70.0.5/24"])
        .ok();
    assert!(ip_pid(p1.pid(), &["-br", "addr", "show", "eth1"]).contains("10.70.0.2/24"));
    assert!(ip_pid(p2.pid(), &["-br", "addr", "show", "eth1"]).contains("10.70.0.3/24"));
    assert!(ping(&named, "10.70.0.2"));
    assert!(ping(&path_guest, "10.70.0.3"));
    let list = s.pipework(&["list", "--json"]).ok().json();
    let kinds: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["guest"]["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"process") && kinds.contains(&"netns"),
        "{kinds:?}"
    );
}

#[test]
fn gc_collects_attachments_of_dead_guests() {
    let s = Sandbox::new("gc");
    let mut p = GuestProcess::spawn_unshared();
    s.pipework(&["brgc", &p.pid().to_string(), "10.71.0.2/24"])
        .ok();
    let alive = GuestProcess::spawn_unshared();
    s.pipework(&["brgc", &alive.pid().to_string(), "10.71.0.3/24"])
        .ok();
    p.kill();
    // The veth went with the namespace; the record and the bridge port count
    // must follow.
    let list = s.pipework(&["list"]).ok();
    assert!(list.stdout.contains("(gone)"), "{}", list.stdout);
    let r = s.pipework(&["gc"]).ok();
    assert!(r.stdout.contains("removed eth1"), "{}", r.stdout);
    let list = s.pipework(&["list", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // A dead guest can still be detached by its old reference.
    let mut q = GuestProcess::spawn_unshared();
    let qpid = q.pid().to_string();
    s.pipework(&["brgc", &qpid, "10.71.0.4/24"]).ok();
    q.kill();
    s.pipework(&["detach", &qpid]).ok();
    assert_eq!(
        s.pipework(&["list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_podman_container_by_name() {
    let mut s = Sandbox::new("podman");
    let mut pm = Podman::start(&s.prefix);
    let name = format!("{}-web", s.prefix);
    let id = pm.run(&name);
    s.env.push(("DOCKER_HOST".into(), pm.docker_host()));
    let b = s.guest("b");
    s.pipework(&["brpod", &name, "10.72.0.2/24"]).ok();
    s.pipework(&["brpod", &b, "10.72.0.3/24"]).ok();
    assert!(ping(&b, "10.72.0.2"));
    let pid = pm.pid(&name);
    assert!(ip_pid(pid, &["-br", "addr", "show", "eth1"]).contains("10.72.0.2/24"));
    let v = s.pipework(&["inspect", &name]).ok().json();
    assert_eq!(v["guest"]["kind"], "container");
    assert_eq!(v["guest"]["container_id"], id.as_str());
    assert_eq!(
        link(&s.host, &format!("veth1pl{pid}")).unwrap()["master"],
        "brpod"
    );
    // By ID prefix too, and with the explicit docker: form.
    s.pipework(&[
        "brpod",
        "-i",
        "eth2",
        &format!("docker:{}", &id[..12]),
        "10.72.1.2/24",
    ])
    .ok();
    s.pipework(&["detach", &name]).ok();
    assert!(link(&s.host, &format!("veth1pl{pid}")).is_none());
    pm.remove(&name);
}

#[test]
fn an_lxc_container_by_name() {
    let mut s = Sandbox::new("lxc");
    let c = pipework_tests::lxc::Lxc::start(&s.prefix);
    let pid = c.pid();
    let b = s.guest("b");
    // No Docker API here: the bare name falls through to LXC.
    s.env.push((
        "DOCKER_HOST".into(),
        format!("unix://{}/none.sock", s.state_dir.display()),
    ));
    s.pipework(&["brlxc", &c.name, "10.73.0.2/24"]).ok();
    s.pipework(&[
        "brlxc",
        "-i",
        "eth2",
        &format!("lxc:{}", c.name),
        "10.73.1.2/24",
    ])
    .ok();
    s.pipework(&["brlxc", &b, "10.73.0.3/24"]).ok();
    assert!(ip_pid(pid, &["-br", "addr", "show", "eth1"]).contains("10.73.0.2/24"));
    assert!(ping(&b, "10.73.0.2"));
    let v = s.pipework(&["inspect", &c.name]).ok().json();
    assert_eq!(v["guest"]["kind"], "lxc");
    assert_eq!(v["guest"]["pid"], pid);
    s.pipework(&["detach", &c.name]).ok();
    assert!(link(&s.host, &format!("veth1pl{pid}")).is_none());
}

/// `{garbage` in one record: reported with its path and skipped; `list`,
/// `detach` of another guest and `gc` of a dead one keep working.
#[test]
fn one_corrupt_record_blocks_nothing_else() {
    let mut s = Sandbox::new("corrupt");
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["brcr", &a, "10.72.0.2/24"]).ok();
    s.pipework(&["brcr", &b, "10.72.0.3/24"]).ok();
    let mut dead = GuestProcess::spawn_unshared();
    s.pipework(&["brcr", &dead.pid().to_string(), "10.72.0.4/24"])
        .ok();
    dead.kill();
    // The record of a's eth1, wherever the state keeps it.
    let recs: Vec<std::path::PathBuf> = walk_json(&s.state_dir.join("attachments"));
    assert_eq!(recs.len(), 3, "{recs:?}");
    let a_rec = recs
        .iter()
        .find(|p| std::fs::read_to_string(p).unwrap().contains("10.72.0.2"))
        .expect("a's record")
        .clone();
    std::fs::write(&a_rec, "{garbage").unwrap();
    let list = s.pipework(&["list", "--json"]).ok();
    assert_eq!(list.json().as_array().unwrap().len(), 2, "{}", list.stdout);
    assert!(
        list.stderr.contains(&a_rec.display().to_string()),
        "{}",
        list.stderr
    );
    assert_eq!(list.stderr.lines().count(), 1, "{}", list.stderr);
    let gc = s.pipework(&["gc"]).ok();
    assert!(gc.stdout.contains("removed eth1"), "{}", gc.stdout);
    s.pipework(&["detach", &b]).ok();
    assert!(!ip(&b, &["-j", "addr"]).contains("10.72.0.3"));
    // a's link is still there (its record is unreadable, not gone).
    assert!(ip(&a, &["-j", "addr"]).contains("10.72.0.2"));
}

fn walk_json(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_json(&p));
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out
}
