//! `pipework apply`: a file of attachments for guests without an engine.

use pipework_tests::*;

/// The test's apply files: in a directory of its own under the target
/// directory (not /tmp), removed when the test ends, passed or not.
struct Files(std::path::PathBuf);

impl Files {
    fn new(s: &Sandbox) -> Files {
        let d =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-apply", s.prefix));
        std::fs::create_dir_all(&d).unwrap();
        Files(d)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(f: &Files, name: &str, text: &str) -> String {
    let p = f.0.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn applying_twice_changes_nothing_and_prune_follows_the_file() {
    let mut s = Sandbox::new("apply");
    let files = Files::new(&s);
    s.fake_nic("nic6");
    let baseline = s.host_link_names();
    let a = s.guest("a");
    let b = s.guest("b");
    let file = write(
        &files,
        "net.conf",
        &format!(
            "# two guests on a bridge, one on macvlan\n\
             brap netns:{a} 10.88.0.2/24\n\
             brap -i eth2 netns:{b} \\\n    10.88.0.3/24   # continued\n\
             brap netns:{a} 10.88.1.2/24\n\
             nic6 -i mv0 netns:{b} 10.89.0.3/24\n"
        ),
    );
    let r = s.pipework(&["apply", &file]).ok();
    assert_eq!(r.stdout.matches("attached").count(), 3, "{}", r.stdout);
    assert!(ping(&a, "10.88.0.3"));
    let addrs = addresses(&a, "eth1");
    assert!(addrs.contains(&"10.88.1.2/24".to_string()), "{addrs:?}");
    let links_a = links(&a);
    let links_b = links(&b);
    let host = s.host_links();

    let r = s.pipework(&["apply", &file]).ok();
    assert_eq!(r.stdout.matches("unchanged").count(), 3, "{}", r.stdout);
    assert_eq!(links(&a), links_a);
    assert_eq!(links(&b), links_b);
    assert_eq!(s.host_links(), host);

    // One line changed, one gone: replaced and, with --prune, detached.
    std::fs::write(
        &file,
        format!("brap netns:{a} 10.88.0.2/24\nbrap -i eth2 netns:{b} 10.88.0.4/24\n"),
    )
    .unwrap();
    let r = s.pipework(&["apply", "--json", &file, "--prune"]).ok();
    let outcomes: Vec<(String, String)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["interface"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("eth1".to_string(), "replaced".to_string()),
            ("eth2".to_string(), "replaced".to_string()),
            ("mv0".to_string(), "pruned".to_string()),
        ]
    );
    // The same MAC as before the change: it follows the guest and interface.
    assert_eq!(
        link(&a, "eth1").unwrap()["address"],
        links_a.iter().find(|l| l["ifname"] == "eth1").unwrap()["address"]
    );
    assert!(ping(&a, "10.88.0.4"));
    assert!(link(&b, "mv0").is_none());

    std::fs::write(&file, "# nothing any more\n").unwrap();
    s.pipework(&["apply", "--prune", &file]).ok();
    assert_eq!(s.host_link_names(), baseline);
    assert!(s
        .pipework(&["list", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_bad_file_changes_nothing() {
    let mut s = Sandbox::new("applybad");
    let files = Files::new(&s);
    let before = s.host_links();
    let a = s.guest("a");
    for (text, needle) in [
        (
            format!("brx netns:{a} 10.87.0.2/24\nbrx netns:{a}\n"),
            ":2: missing the address",
        ),
        (
            format!("brx netns:{a} 10.87.0.2/24 --frob\n"),
            ":1: unknown option",
        ),
        (
            format!("route netns:{a} add default via 10.87.0.1\n"),
            "not an attachment",
        ),
    ] {
        let file = write(&files, "bad.conf", &text);
        let r = s.pipework(&["apply", &file]);
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{text}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    let r = s.pipework(&["apply", "/nonexistent/pipework.conf"]);
    assert_eq!(r.code, 2);
    // A file without end is read up to the limit, then refused.
    let t = std::time::Instant::now();
    let r = s.pipework(&["apply", "/dev/zero"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("larger than 16 MiB"), "{}", r.stderr);
    eprintln!("apply /dev/zero refused in {:?}", t.elapsed());
    let big = write(
        &files,
        "big.conf",
        &"# padding\n".repeat((16 << 20) / 10 + 1),
    );
    let r = s.pipework(&["apply", &big]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("larger than 16 MiB"), "{}", r.stderr);
    assert_eq!(s.host_links(), before);
    assert!(link(&a, "eth1").is_none());

    // A guest that does not exist fails its line only.
    let file = write(
        &files,
        "partly.conf",
        &format!(
            "brx netns:{}-missing 10.87.0.9/24\nbrx netns:{a} 10.87.0.2/24\n",
            s.prefix
        ),
    );
    let r = s.pipework(&["apply", &file]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("failed") && r.stdout.contains("attached"),
        "{}",
        r.stdout
    );
    assert!(link(&a, "eth1").is_some());
}

/// Many guests in one file (an HPC job's start): attached concurrently, the
/// report in file order, a guest's interfaces in the order declared, one
/// bad guest failing only its own line, onto a bridge none of them found.
#[test]
fn many_guests_at_once() {
    let mut s = Sandbox::new("applybulk");
    let files = Files::new(&s);
    let baseline = s.host_link_names();
    let guests: Vec<String> = (0..40).map(|i| s.guest(&format!("g{i}"))).collect();
    let mut text = String::new();
    for (i, g) in guests.iter().enumerate() {
        text.push_str(&format!("brbulk netns:{g} 10.86.0.{}/24\n", i + 2));
        if i % 10 == 0 {
            text.push_str(&format!("brbulk -i eth2 netns:{g} 10.86.1.{}/24\n", i + 2));
        }
        if i == 20 {
            text.push_str(&format!("brbulk netns:{}-missing 10.86.2.2/24\n", s.prefix));
        }
    }
    let file = write(&files, "bulk.conf", &text);
    let r = s.pipework(&["apply", "--json", &file]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let got: Vec<(String, String, String)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["guest"].as_str().unwrap().to_string(),
                e["interface"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut want = Vec::new();
    for (i, g) in guests.iter().enumerate() {
        want.push((
            format!("netns:{g}"),
            "eth1".to_string(),
            "attached".to_string(),
        ));
        if i % 10 == 0 {
            want.push((
                format!("netns:{g}"),
                "eth2".to_string(),
                "attached".to_string(),
            ));
        }
        if i == 20 {
            want.push((
                format!("netns:{}-missing", s.prefix),
                "eth1".to_string(),
                "failed".to_string(),
            ));
        }
    }
    assert_eq!(got, want);
    // The witness: every guest has its addresses, the bridge all the ports,
    // and the guests reach each other.
    for (i, g) in guests.iter().enumerate() {
        let v4 = |ifname: &str| {
            let mut a = addresses(g, ifname);
            a.retain(|a| !a.starts_with("fe80:"));
            a
        };
        assert_eq!(v4("eth1"), vec![format!("10.86.0.{}/24", i + 2)]);
        if i % 10 == 0 {
            assert_eq!(v4("eth2"), vec![format!("10.86.1.{}/24", i + 2)]);
        }
    }
    let ports = s
        .host_links()
        .iter()
        .filter(|l| l["master"] == "brbulk")
        .count();
    assert_eq!(ports, 44);
    assert!(ping(&guests[0], "10.86.0.41"));
    assert!(
        ping(&guests[30], "10.86.1.2"),
        "eth2 of guest 30 to eth2 of guest 0"
    );
    std::fs::write(&file, "").unwrap();
    s.pipework(&["apply", "--prune", &file]).ok();
    let mut left = s.host_link_names();
    left.retain(|n| n != "brbulk");
    assert_eq!(left, baseline);
}

/// An apply of many guests (attached on several threads) killed at any
/// instant: `gc` settles what it left, applying the file again completes
/// every attach exactly once (no guest keeps a leftover or a second link),
/// and pruning takes the host back to where it was.
#[test]
fn a_killed_apply_leaves_what_gc_and_a_second_apply_settle() {
    if !is_root() {
        return;
    }
    let mut s = Sandbox::new("applykill");
    let files = Files::new(&s);
    let baseline = s.host_link_names();
    let guests: Vec<String> = (0..12).map(|i| s.guest(&format!("g{i}"))).collect();
    let text: String = guests
        .iter()
        .enumerate()
        .map(|(i, g)| format!("brakill netns:{g} 10.87.0.{}/24\n", i + 2))
        .collect();
    let file = write(&files, "kill.conf", &text);
    for delay_ms in [4, 8, 12, 16, 20, 25, 30, 40, 60] {
        let mut child = s
            .pipework_command(&[], &["apply", &file])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn pipework apply");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let had = guests.iter().filter(|g| links(g).len() > 1).count();
        eprintln!(
            "killed after {delay_ms} ms: {had} of {} guests had a link",
            guests.len()
        );
        s.pipework(&["gc"]).ok();
        let r = s.pipework(&["apply", &file]);
        assert_eq!(r.code, 0, "killed after {delay_ms} ms: {}", r.stderr);
        for (i, g) in guests.iter().enumerate() {
            let mut names: Vec<String> = links(g)
                .iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .filter(|n| n != "lo")
                .collect();
            names.sort();
            assert_eq!(names, vec!["eth1"], "guest {i}, killed after {delay_ms} ms");
            let mut a = addresses(g, "eth1");
            a.retain(|a| !a.starts_with("fe80:"));
            assert_eq!(a, vec![format!("10.87.0.{}/24", i + 2)], "guest {i}");
        }
        let ports = s
            .host_links()
            .iter()
            .filter(|l| l["master"] == "brakill")
            .count();
        assert_eq!(ports, guests.len(), "killed after {delay_ms} ms");
        // Pruned by the same file, emptied (prune takes what it declared).
        std::fs::write(&file, "").unwrap();
        let r = s.pipework(&["apply", "--prune", &file]);
        std::fs::write(&file, &text).unwrap();
        assert_eq!(r.code, 0, "{}", r.stderr);
        let mut left = s.host_link_names();
        left.retain(|n| n != "brakill");
        assert_eq!(left, baseline, "killed after {delay_ms} ms");
    }
}

/// Bulk attach shares the host side: each worker thread opens one route
/// netlink socket on the host for all the attaches it runs, so an apply of
/// N guests opens N sockets (one in each guest's namespace) plus one per
/// thread, not two per attach. The witness is `strace` of the socket calls.
#[test]
fn apply_opens_one_host_netlink_socket_per_thread_not_per_attach() {
    let mut s = Sandbox::new("applysock");
    let files = Files::new(&s);
    let guests: Vec<String> = (0..16).map(|i| s.guest(&format!("g{i}"))).collect();
    let text: String = guests
        .iter()
        .enumerate()
        .map(|(i, g)| format!("brsock netns:{g} 10.87.0.{}/24\n", i + 2))
        .collect();
    let file = write(&files, "sock.conf", &text);
    let trace = files.0.join("socket.trace");
    let strace: Vec<&std::ffi::OsStr> = ["strace", "-f", "-qq", "-e", "trace=socket", "-o"]
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([trace.as_os_str()])
        .collect();
    let out = run(&mut s.pipework_command(&strace, &["apply", &file]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, g) in guests.iter().enumerate() {
        let mut a = addresses(g, "eth1");
        a.retain(|a| !a.starts_with("fe80:"));
        assert_eq!(a, vec![format!("10.87.0.{}/24", i + 2)], "{g}");
    }
    let calls = std::fs::read_to_string(&trace).unwrap();
    let route_sockets = calls
        .lines()
        .filter(|l| l.contains("AF_NETLINK") && l.contains("NETLINK_ROUTE"))
        .count();
    // One per guest, and one per worker thread: at least one, at most 4
    // (one per CPU).
    assert!(
        (16 + 1..=16 + 4).contains(&route_sockets),
        "{route_sockets} route netlink sockets for 16 attaches:\n{calls}"
    );
    std::fs::write(&file, "").unwrap();
    s.pipework(&["apply", "--prune", &file]).ok();
}
