//! Crash safety to the instant: an attach SIGKILLed at a random moment,
//! then `gc`, leaves the host exactly as it was (links, bridges, OVSDB rows
//! and flows, the state directory's files); an attach racing the detach
//! that empties a bridge pipework made never fails; a second attach refuses
//! the options it cannot apply. Witnesses: `ip -j`, `ovs-vsctl`,
//! `ovs-ofctl`, `find`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipework_tests::ovs::{eventually, OvsSwitch};
use pipework_tests::{is_root, links, pipework_bin, Sandbox};

/// A small xorshift: the delays need spread, not cryptography, and the seed
/// is printed so that a failing trial can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("PIPEWORK_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    | 1
            });
        eprintln!("kill test seed {seed} (PIPEWORK_KILL_SEED replays it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in 0..=max_us microseconds.
    fn delay(&mut self, max_us: u64) -> Duration {
        Duration::from_micros(self.next() % (max_us + 1))
    }
}

/// Every file under the state directory, relative, sorted.
fn state_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// Starts `pipework args` in the sandbox's host namespace (`ip netns exec`
/// execs it: the child is pipework itself), kills it after `delay`, and
/// says how it ended.
fn attach_and_kill(s: &Sandbox, args: &[&str], delay: Duration) -> &'static str {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &s.host])
        .arg(pipework_bin())
        .args(args)
        .env("PIPEWORK_STATE_DIR", &s.state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &s.env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn pipework");
    std::thread::sleep(delay);
    let finished = matches!(child.try_wait(), Ok(Some(_)));
    let _ = child.kill();
    let _ = child.wait();
    if finished {
        "finished"
    } else {
        "killed"
    }
}

/// One kind of attach to kill, with what the host must look like after.
struct Case<'a> {
    name: &'a str,
    args: Vec<String>,
}

/// The host as the witnesses see it.
#[derive(Debug, PartialEq)]
struct Host {
    links: Vec<serde_json::Value>,
    guest: Vec<serde_json::Value>,
    ovs: Option<(String, Vec<String>)>,
    files: Vec<String>,
}

impl Host {
    /// What differs, briefly.
    fn diff(&self, other: &Host) -> String {
        fn d<T: std::fmt::Debug + PartialEq>(what: &str, a: &[T], b: &[T]) -> String {
            let gone: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
            let new: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
            if gone.is_empty() && new.is_empty() {
                String::new()
            } else {
                format!("{what}: gone {gone:?}; new {new:?}\n")
            }
        }
        let mut out = d("host links", &self.links, &other.links);
        out += &d("guest links", &self.guest, &other.guest);
        out += &d("state files", &self.files, &other.files);
        if let (Some(a), Some(b)) = (&self.ovs, &other.ovs) {
            let la: Vec<&str> = a.0.lines().collect();
            let lb: Vec<&str> = b.0.lines().collect();
            out += &d("ovs-vsctl show", &la, &lb);
            out += &d("flows", &a.1, &b.1);
        }
        out
    }
}

fn witness(s: &Sandbox, guest: &str, sw: Option<&OvsSwitch>) -> Host {
    Host {
        links: s.host_links(),
        guest: links(guest),
        ovs: sw.map(|sw| (sw.show(), sw.flows("ovsk"))),
        files: state_files(&s.state_dir),
    }
}

#[test]
fn sigkill_at_any_instant_then_gc_leaves_the_host_as_it_was() {
    if !is_root() {
        return;
    }
    let trials: usize = std::env::var("PIPEWORK_KILL_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(300);
    let mut s = Sandbox::new("killgc");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge("ovsk");
    s.fake_nic("nick");
    s.ip_host(&["link", "add", "brk2", "type", "bridge"]);
    s.ip_host(&["link", "set", "brk2", "up"]);
    let g = s.guest("g");
    let cases = [
        Case {
            name: "bridge missing",
            args: vec!["brk1".into(), g.clone(), "10.71.0.2/24".into()],
        },
        Case {
            name: "bridge existing, -l",
            args: vec![
                "brk2".into(),
                "-l".into(),
                "vkill0".into(),
                g.clone(),
                "10.72.0.2/24@10.72.0.1".into(),
            ],
        },
        Case {
            name: "macvlan",
            args: vec!["nick".into(), g.clone(), "10.73.0.2/24".into()],
        },
        Case {
            name: "ovs",
            args: vec![
                "ovsk".into(),
                g.clone(),
                "10.74.0.2/24".into(),
                "@10".into(),
                "--port-security".into(),
            ],
        },
    ];
    // One attach and detach of each case first: an empty bridge that had a
    // port has no carrier, one that never had one does; the witnesses
    // compare the host as trials leave it.
    // How long each takes here bounds its kill delays (at most 25 ms), so
    // that most kills land inside the attach rather than after it.
    let mut spans = Vec::new();
    for case in &cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let t = Instant::now();
        s.pipework(&args).ok();
        spans.push((t.elapsed().as_micros() as u64).clamp(1_000, 25_000));
        s.pipework(&["detach", &g]).ok();
    }
    s.pipework(&["gc"]).ok();
    let before = witness(&s, &g, Some(&sw));
    let mut rng = Rng::new();
    let mut tally = std::collections::BTreeMap::<(&str, &str), usize>::new();
    let mut failures = Vec::new();
    for i in 0..trials {
        let case = &cases[i % cases.len()];
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let delay = rng.delay(spans[i % cases.len()]);
        let how = attach_and_kill(&s, &args, delay);
        *tally.entry((case.name, how)).or_default() += 1;
        // An attach that committed before the kill is done (its record is
        // the truth) and is detached; the rest is gc's to settle.
        s.pipework(&["detach", &g]);
        let r = s.pipework(&["gc"]);
        if r.code != 0 {
            failures.push(format!(
                "trial {i} ({}, {delay:?}): gc failed: {r:?}",
                case.name
            ));
            continue;
        }
        // ovs-vswitchd applies a port's removal a moment after OVSDB does:
        // the links and the switch get a moment to settle, the files none.
        let mut now = witness(&s, &g, Some(&sw));
        let t = Instant::now();
        while (now.links != before.links || now.ovs != before.ovs)
            && t.elapsed() < Duration::from_secs(3)
        {
            std::thread::sleep(Duration::from_millis(50));
            now = witness(&s, &g, Some(&sw));
        }
        if now != before {
            failures.push(format!(
                "trial {i} ({}, killed after {delay:?}, {how}): host differs\n{}gc said: {}{}",
                case.name,
                before.diff(&now),
                r.stdout,
                r.stderr
            ));
            // Start the next trial from a clean host again.
            s.pipework(&["detach", &g]);
            s.pipework(&["gc"]);
        }
    }
    eprintln!("kill tally (case, outcome: trials; delays up to {spans:?} us):");
    for ((case, how), n) in &tally {
        eprintln!("  {case:<20} {how:<8} {n}");
    }
    eprintln!("  inconsistent after gc: {} of {trials}", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn an_attach_racing_the_detach_that_empties_a_bridge_never_fails() {
    if !is_root() {
        return;
    }
    let mut s = Sandbox::new("racebr");
    let a = s.guest("a");
    let b = s.guest("b");
    let iterations: usize = std::env::var("PIPEWORK_RACE_ITERATIONS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(200);
    let host_before = s.host_links();
    let mut failures = Vec::new();
    for i in 0..iterations {
        s.pipework(&["brrace", &a, "10.55.0.1/24"]).ok();
        // The detach of A (which deletes the bridge pipework made) runs
        // while B attaches to it.
        let mut detach = Command::new("ip");
        detach
            .args(["netns", "exec", &s.host])
            .arg(pipework_bin())
            .args(["detach", &a])
            .env("PIPEWORK_STATE_DIR", &s.state_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut detach = detach.spawn().expect("spawn detach");
        let r = s.pipework(&["brrace", &b, "10.55.0.2/24"]);
        let d = detach.wait().expect("detach");
        if r.code != 0 {
            failures.push(format!("iteration {i}: attach failed: {}", r.stderr.trim()));
        }
        if !d.success() {
            failures.push(format!("iteration {i}: detach failed"));
        }
        s.pipework(&["detach", &b]).ok();
    }
    assert!(
        failures.is_empty(),
        "{} of {iterations}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(eventually(Duration::from_secs(3), || s.host_links() == host_before));
}

#[test]
fn a_second_attach_refuses_what_it_cannot_change() {
    if !is_root() {
        return;
    }
    let mut s = Sandbox::new("extendopt");
    s.fake_nic("nice");
    let g = s.guest("g");
    let m = s.guest("m");
    s.pipework(&["brext", &g, "10.60.0.2/24"]).ok();
    s.pipework(&["nice", &m, "10.61.0.2/24"]).ok();
    let host = s.host_links_after_link_watch();
    let guests = (links(&g), links(&m));
    let refused: &[(&[&str], &str)] = &[
        (&["brext", &g, "10.60.0.3/24", "@10"], "@10"),
        (&["brext", "-l", "vother", &g, "10.60.0.3/24"], "-l vother"),
        (
            &["nice", &m, "10.61.0.3/24", "--macvlan-mode", "private"],
            "--macvlan-mode private",
        ),
        (
            &["nice", &m, "10.61.0.3/24", "--host-route", "auto"],
            "--host-route",
        ),
    ];
    for (args, named) in refused {
        let r = s.pipework(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(named),
            "{args:?} must name {named}: {}",
            r.stderr
        );
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
    assert_eq!(s.host_links(), host, "a refused extend changed the host");
    assert_eq!(
        (links(&g), links(&m)),
        guests,
        "a refused extend changed a guest"
    );
    // What a driver does not have is refused on a first attach too.
    let h = s.guest("h");
    let r = s.pipework(&["brext2", &h, "10.62.0.2/24", "--macvlan-mode", "private"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--macvlan-mode private"), "{}", r.stderr);
    assert!(pipework_tests::link(&s.host, "brext2").is_none());
    // The same values again, and a new address, are fine.
    s.pipework(&["nice", &m, "10.61.0.4/24", "--macvlan-mode", "bridge"])
        .ok();
    s.pipework(&["brext", &g, "10.60.0.4/24"]).ok();
    assert!(pipework_tests::addresses(&g, "eth1").contains(&"10.60.0.4/24".to_string()));
    s.pipework(&["detach", &g]).ok();
    s.pipework(&["detach", &m]).ok();
}

/// The veth's host end is journaled before the request, without an index.
/// Killed after the kernel refused the pair because another link had the
/// name (possible only in a race), that step names somebody else's link:
/// `gc` deletes only what the request would have made, a veth whose peer is
/// in another namespace.
#[test]
fn a_write_ahead_step_never_deletes_another_link_of_its_name() {
    if !is_root() {
        return;
    }
    use pipework_tests::{ip, link};
    let mut s = Sandbox::new("crahead");
    let g = s.guest("g");
    ip(
        &s.host,
        &[
            "link", "add", "pwaheadv", "type", "veth", "peer", "name", "pwaheadp",
        ],
    );
    ip(&s.host, &["link", "add", "pwaheadb", "type", "bridge"]);
    ip(
        &s.host,
        &[
            "link", "add", "pwaheadg", "type", "veth", "peer", "name", "eth5", "netns", &g,
        ],
    );
    let steps: Vec<serde_json::Value> = ["pwaheadv", "pwaheadb", "pwaheadg"]
        .iter()
        .map(|n| serde_json::json!({"op": "host_link_created", "name": n, "ifindex": 0}))
        .collect();
    let journal = serde_json::json!({
        "guest": {"name": "gone", "kind": "netns", "reference": {"auto": "gone"}, "netns": 1},
        "interface": "eth9",
        "journal": steps,
    });
    let pending = s.state_dir.join("pending");
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&pending)
        .unwrap();
    std::fs::write(pending.join("1-eth9.json"), format!("{journal}\n")).unwrap();
    s.pipework(&["gc"]).ok();
    assert!(
        link(&s.host, "pwaheadv").is_some(),
        "a host-only veth was deleted"
    );
    assert!(link(&s.host, "pwaheadb").is_some(), "a bridge was deleted");
    assert!(
        link(&s.host, "pwaheadg").is_none(),
        "the pair the step stands for stays"
    );
    assert!(link(&g, "eth5").is_none());
    assert!(!pending.join("1-eth9.json").exists());
}
