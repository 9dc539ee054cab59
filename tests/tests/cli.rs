//! The command line: bad input is refused with one line and exit code 2, the
//! host untouched; the smaller commands work.
//!
//! Long file: one test binary per area keeps the suite's link time down
//! (each binary links the whole harness).

use pipework_tests::*;

#[test]
fn bad_input_exits_2_and_creates_nothing() {
    let mut s = Sandbox::new("badinput");
    let g = s.guest("g");
    s.fake_nic("nic0");
    s.ip_host(&["link", "add", "brx", "type", "bridge"]);
    let host_before = s.host_links();
    let guest_before = (links(&g), routes(&g));
    let via_dotdot = format!("../netns/{g}");
    let long_unix = format!("unix:/{}", "s".repeat(5000));
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["brx"],
        vec!["brx", &g],
        vec!["brx", &g, "10.0.0.5"],
        vec!["brx", &g, "10.0.0.5/33"],
        vec!["brx", &g, "10.0.0.0/24"],
        vec!["brx", &g, "10.0.0.5/24@10.0.1.300"],
        vec!["brx", &g, "10.0.0.5/24@fd00::1"],
        vec!["brx", &g, "10.0.0.5/24", "zz:00:00:00:00:01"],
        vec!["brx", &g, "10.0.0.5/24", "01:00:5e:00:00:01"],
        vec!["brx", &g, "10.0.0.5/24", "@0"],
        vec!["brx", &g, "10.0.0.5/24", "@4095"],
        vec!["brx", &g, "10.0.0.5/24", "02:00:00:00:00:01", "extra"],
        vec!["brx", "-a", "6", &g, "10.0.0.5/24"],
        vec!["brx", "-i", "way-too-long-name", &g, "10.0.0.5/24"],
        vec!["brx", "-l", "bad/name", &g, "10.0.0.5/24"],
        vec!["brx", &g, "10.0.0.5/24", "--bogus"],
        vec!["nosuchif0", &g, "10.0.0.5/24"],
        vec!["mac:02:99:99:99:99:99", &g, "10.0.0.5/24"],
        vec!["brx", "nosuchguest-xyz", "10.0.0.5/24"],
        vec!["brx", "999999999", "10.0.0.5/24"],
        vec!["brx", "/nonexistent/netns", "10.0.0.5/24"],
        vec!["brx", "/proc/self/status", "10.0.0.5/24"],
        vec!["nic0", "-l", "vethx", &g, "10.0.0.5/24"],
        vec!["dummy", &g, "10.0.0.5/24", "@10"],
        vec!["nic0", "--vf", "0", &g, "10.0.0.5/24"],
        vec!["nic0", &g, "10.0.0.5/24", "--spoofchk", "on"],
        vec!["nic0", &g, "10.0.0.5/24", "--ipoib-mode", "connected"],
        vec!["nic0", &g, "10.0.0.5/24", "@8001x"],
        vec!["nic0", &g, "10.0.0.5/24", "--macvlan-mode", "sideways"],
        vec!["lo", &g, "10.0.0.5/24"],
        vec!["brx", &g, "dhcp:-x"],
        vec!["brx", &g, "dhcp,udhcpc"],
        vec!["brx", &g, "10.0.0.5/24", "--dns"],
        vec!["brx", &g, "udhcpc", "--dns"],
        vec!["route", &g, "frobnicate"],
        vec!["route", &g, "add", "10.0.0.0/8", "via", "nowhere"],
        vec!["rule", &g, "add", "from", "10.0.0.0/8", "frob"],
        vec!["detach"],
        vec!["detach", &g],
        vec!["--wait", "--bogus"],
        vec!["--state-dir=", "brx", &g, "10.0.0.5/24"],
        vec!["--state-dir", "", "brx", &g, "10.0.0.5/24"],
        // Addresses no interface can have, and an ambiguous spelling.
        vec!["brx", &g, "255.255.255.255/32"],
        vec!["brx", &g, "240.0.0.1/24"],
        vec!["brx", &g, "0.1.2.3/8"],
        vec!["brx", &g, "10.0.0.5/24@255.255.255.255"],
        vec!["brx", &g, "10.0.0.5/24@240.0.0.1"],
        vec!["brx", &g, "010.062.000.002/24"],
        vec!["brx", &g, "10.0.0.5/024"],
        // Names the kernel refuses, refused before it is asked.
        vec!["brx", "-i", "all", &g, "10.0.0.5/24"],
        vec!["brx", "-i", "default", &g, "10.0.0.5/24"],
        vec!["brx", "-l", "all", &g, "10.0.0.5/24"],
        vec!["route", &g, "add", "10.0.0.0/8", "dev", "a-name-of-16-chr"],
        vec!["--ovsdb", "tcp:[::1:6640", "brx", &g, "10.0.0.5/24"],
        vec!["--ovsdb", &long_unix, "brx", &g, "10.0.0.5/24"],
        vec!["--version", "x"],
        // The host's own namespace is no guest; a bare name stays in /run/netns.
        vec!["brx", "/proc/self/ns/net", "10.0.0.5/24"],
        vec!["brx", &via_dotdot, "10.0.0.5/24"],
    ];
    for args in cases {
        let r = s.pipework(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("pipework: "), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{args:?}");
        assert_eq!(s.host_links(), host_before, "{args:?}");
        assert_eq!((links(&g), routes(&g)), guest_before, "{args:?}");
    }
    // Set but empty is not the default /run/pipework.
    let r = s.pipework_env(&["brx", &g, "10.0.0.5/24"], &[("PIPEWORK_STATE_DIR", "")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("PIPEWORK_STATE_DIR"), "{}", r.stderr);
    assert_eq!((links(&g), routes(&g)), guest_before);
    // A guest pipework never touched: nothing attached, said as JSON.
    let v = s.pipework(&["inspect", &g]).ok().json();
    assert_eq!(v["interfaces"], serde_json::json!([]));
}

#[test]
fn errors_name_guest_interface_and_step() {
    let mut s = Sandbox::new("errctx");
    let g = s.guest("g");
    let r = s.pipework_env(
        &["brctx", "-i", "eth7", &g, "10.0.0.5/24"],
        &[("PIPEWORK_FAULT", "link-up")],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&format!("guest {g}")), "{}", r.stderr);
    assert!(r.stderr.contains("interface eth7"), "{}", r.stderr);
    assert!(
        r.stderr.contains("injected fault at link-up"),
        "{}",
        r.stderr
    );
}

#[test]
fn help_documents_the_grammar() {
    let s = Sandbox::new("help");
    let r = s.pipework(&["--help"]).ok();
    for word in [
        "--direct-phys",
        "mac:",
        "-i IF",
        "-l NAME",
        "-a 4|6",
        "0/0",
        "dhcp",
        "U:<string>",
        "@<vlan>",
        "route",
        "rule",
        "tc",
        "--wait",
        "detach",
        "inspect",
        "list",
        "gc",
        "demo",
        "--macvlan-mode",
    ] {
        assert!(r.stdout.contains(word), "--help lacks {word}");
    }
}

/// Every DHCP form parses; with no server each fails with exit code 1 at
/// `--timeout`, and leaves no link and no client process behind.
#[test]
fn dhcp_forms_without_a_server_time_out_and_leave_nothing() {
    let mut s = Sandbox::new("dhcpforms");
    s.ip_host(&["link", "add", "brdh", "type", "bridge"]);
    let g = s.guest("g");
    let before = s.host_link_names();
    for form in [
        "dhcp",
        "dhcp:-f",
        "udhcpc",
        "udhcpc-f",
        "dhclient-f:-v",
        "dhcpcd",
    ] {
        let r = s.pipework(&["brdh", &g, form, "--timeout", "2"]);
        assert_eq!(r.code, 1, "{form}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{form}: {}", r.stderr);
        assert_eq!(s.host_link_names(), before, "{form}");
        assert!(link(&g, "eth1").is_none(), "{form}");
        let pids = must(std::process::Command::new("ip").args(["netns", "pids", &g]));
        assert!(pids.trim().is_empty(), "{form}: left {pids}");
    }
}

#[test]
fn u_string_mac_like_the_original() {
    let mut s = Sandbox::new("umac");
    let g = s.guest("g");
    s.pipework(&["bru", &g, "10.90.0.2/24", "U:myhost.foo.com"])
        .ok();
    assert_eq!(link(&g, "eth1").unwrap()["address"], "02:72:6c:cd:9b:8d");
    let h = s.guest("h");
    s.pipework(&["bru", &h, "10.90.0.3/24", "26:2E:71:98:60:8F"])
        .ok();
    assert_eq!(link(&h, "eth1").unwrap()["address"], "26:2e:71:98:60:8f");
    let k = s.guest("k");
    s.pipework(&["bru", &k, "10.90.0.4/24"]).ok();
    let mac = link(&k, "eth1").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "random MAC is local unicast: {mac}");
}

/// `U:<string>` gives the MAC the original gives for every string: its own
/// shell line, run by bash over a few hundred generated strings (spaces,
/// tabs, newlines, globs, unicode, backslashes, leading `-n`/`-e`/`-E`), in
/// an empty directory so that no glob matches a file, against
/// [`MacAddr::from_u_string`]; and a few through the binary.
#[test]
fn u_string_mac_is_the_original_shell_line_for_every_string() {
    use pipework_core::model::MacAddr;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("u-strings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let strings = u_strings(400);
    // The original's lines 54-58, verbatim but for the loop.
    let script = r#"for MACADDR in "$@"; do
  case "$MACADDR" in
    U:*)
      macunique="${MACADDR#*:}"
      MACADDR=$(echo $macunique|md5sum|sed 's/^\(..\)\(..\)\(..\)\(..\)\(..\).*$/02:\1:\2:\3:\4:\5/')
     ;;
  esac
  printf '%s\n' "$MACADDR"
done"#;
    let out = must(
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg("bash")
            .args(strings.iter().map(|s| format!("U:{s}")))
            .current_dir(&dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8"),
    );
    let theirs: Vec<&str> = out.lines().collect();
    assert_eq!(theirs.len(), strings.len(), "{out}");
    for (s, want) in strings.iter().zip(&theirs) {
        assert_eq!(MacAddr::from_u_string(s).to_string(), *want, "U:{s:?}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir(&dir).unwrap();

    // End to end: the interface gets it.
    let mut s = Sandbox::new("ustrings");
    let escaped = MacAddr::from_u_string("-e a\\tb *").to_string();
    for (i, (u, mac)) in [
        ("U:x  y", "02:ee:e9:f5:09:dc"),
        ("U:", "02:68:b3:29:da:98"),
        ("U:-e a\\tb *", escaped.as_str()),
    ]
    .into_iter()
    .enumerate()
    {
        let g = s.guest(&format!("g{i}"));
        s.pipework(&["bru", &g, &format!("10.90.1.{}/24", i + 2), u])
            .ok();
        assert_eq!(link(&g, "eth1").unwrap()["address"], mac, "{u:?}");
    }
}

/// `n` strings from a fixed seed: words of letters, digits, glob and echo
/// characters, unicode, separated by runs of spaces, tabs and newlines,
/// often led by echo's options. No `/`: a glob with one could match outside
/// the empty directory.
fn u_strings(n: usize) -> Vec<String> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    const PIECES: &[&str] = &[
        "a",
        "b",
        "x",
        "n",
        "e",
        "E",
        "c",
        "u",
        "U",
        "0",
        "1",
        "7",
        "9",
        "f",
        "F",
        "-",
        "--",
        "*",
        "?",
        "[",
        "]",
        "[ab]",
        "[!a]",
        "{a,b}",
        "~",
        "$HOME",
        "'",
        "\"",
        "\\",
        "\\\\",
        "\\t",
        "\\n",
        "\\c",
        "\\0",
        "\\0101",
        "\\07777",
        "\\x4",
        "\\x41",
        "\\xg",
        "\\u",
        "\\u00e9",
        "\\u20ac",
        "\\ud800",
        "\\U0001F980",
        "\\U110000",
        "\\Uffffffff",
        "\\e",
        "\\q",
        "\\1",
        "\\?",
        "é",
        "日本",
        "🦀",
        "\u{a0}",
        "\r",
        "\u{1}",
        "\u{7f}",
        "#",
        ".",
        "..",
        ".*",
        "@",
        ":",
        "=",
        "!",
        "&",
        ";",
        "|",
        "<",
        ">",
        "(",
        ")",
        "%",
    ];
    const SPACES: &[&str] = &[" ", "  ", "\t", " \t ", "\n", "\t\n  "];
    const OPTIONS: &[&str] = &[
        "-n", "-e", "-E", "-ne", "-en", "-eE", "-Ee", "-nnn", "-", "--", "-x", "-n-",
    ];
    let mut out: Vec<String> = [
        "x  y", "", " ", "\t", "-n", "-e", "-n -e", "-e \\c", "-e a\\cb", "a/b", "../x", "-E \\t",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    while out.len() < n {
        let mut s = String::new();
        if next(3) == 0 {
            s.push_str(SPACES[next(SPACES.len())]);
        }
        for _ in 0..next(3) {
            s.push_str(OPTIONS[next(OPTIONS.len())]);
            s.push_str(SPACES[next(SPACES.len())]);
        }
        for w in 0..1 + next(4) {
            if w > 0 {
                s.push_str(SPACES[next(SPACES.len())]);
            }
            for _ in 0..1 + next(4) {
                s.push_str(PIECES[next(PIECES.len())]);
            }
        }
        if next(4) == 0 {
            s.push_str(SPACES[next(SPACES.len())]);
        }
        out.push(s);
    }
    out
}

#[test]
fn route_rule_and_tc_inside_the_guest() {
    let mut s = Sandbox::new("routerule");
    let g = s.guest("g");
    s.pipework(&["brrt", &g, "10.91.0.2/24"]).ok();
    s.pipework(&["route", &g, "add", "10.92.0.0/16", "via", "10.91.0.1"])
        .ok();
    let r = ip_json(&g, &["route", "show", "10.92.0.0/16"]);
    assert_eq!(r[0]["gateway"], "10.91.0.1");
    s.pipework(&[
        "route",
        &g,
        "add",
        "10.93.0.0/16",
        "dev",
        "eth1",
        "table",
        "100",
    ])
    .ok();
    assert_eq!(
        ip_json(&g, &["route", "show", "table", "100"])[0]["dst"],
        "10.93.0.0/16"
    );
    s.pipework(&[
        "rule",
        &g,
        "add",
        "from",
        "10.91.0.0/24",
        "table",
        "100",
        "priority",
        "1000",
    ])
    .ok();
    let rules = ip_json(&g, &["rule", "show"]);
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["priority"] == 1000 && r["table"] == "100"),
        "{rules}"
    );
    s.pipework(&["rule", &g, "del", "priority", "1000"]).ok();
    s.pipework(&["route", &g, "del", "10.92.0.0/16"]).ok();
    assert!(ip_json(&g, &["route", "show", "10.92.0.0/16"])
        .as_array()
        .unwrap()
        .is_empty());
    s.pipework(&[
        "tc", &g, "qdisc", "add", "dev", "eth1", "root", "tbf", "rate", "1mbit", "burst", "32kbit",
        "latency", "400ms",
    ])
    .ok();
    let q = ip_tc(&g);
    assert!(q.contains("tbf"), "{q}");
    // tc's own exit code comes through.
    assert_ne!(
        s.pipework(&["tc", &g, "qdisc", "add", "dev", "nosuch", "root", "tbf"])
            .code,
        0
    );
}

fn ip_tc(ns: &str) -> String {
    must(
        std::process::Command::new("ip")
            .args(["netns", "exec", ns, "tc", "qdisc", "show", "dev", "eth1"]),
    )
}

#[test]
fn wait_returns_when_ready_and_times_out_otherwise() {
    let mut s = Sandbox::new("wait");
    let g = s.guest("g");
    let bin = pipework_bin();
    let wait = |args: &[&str]| {
        run(std::process::Command::new("ip")
            .args(["netns", "exec", &g])
            .arg(&bin)
            .arg("--wait")
            .args(args))
    };
    // Nothing there yet: times out with exit 1 and says why.
    let o = wait(&["--timeout", "0.3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    // Started before the attach, it returns once the address is usable.
    let waiter = std::thread::spawn({
        let g = g.clone();
        let bin = bin.clone();
        move || {
            run(std::process::Command::new("ip")
                .args(["netns", "exec", &g])
                .arg(&bin)
                .args(["--wait", "--timeout", "20"]))
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.pipework(&["brw", &g, "fd00:95::2/64"]).ok();
    let o = waiter.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The attach was done when it returned: the address there, past DAD.
    let a = ip_json(&g, &["addr", "show", "dev", "eth1"]).to_string();
    assert!(a.contains("fd00:95::2"), "{a}");
    assert!(!a.contains("tentative"), "{a}");
    // The original README's flow: `pipework --wait -i eth2` runs in the
    // guest first, the host attaches with 0/0 after it; it returns once the
    // link is up with carrier, nothing else to wait for.
    let waiter = std::thread::spawn({
        let g = g.clone();
        let bin = bin.clone();
        move || {
            run(std::process::Command::new("ip")
                .args(["netns", "exec", &g])
                .arg(&bin)
                .args(["--wait", "-i", "eth2", "--timeout", "20"]))
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.pipework(&["brw", "-i", "eth2", &g, "0/0"]).ok();
    let o = waiter.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let l = link(&g, "eth2").expect("eth2");
    let flags = l["flags"].to_string();
    assert!(
        flags.contains("\"UP\"") && flags.contains("LOWER_UP"),
        "{l}"
    );
    assert!(
        l.get("ifalias").is_none(),
        "the attaching marker stayed: {l}"
    );
    // Started after: the same. --link-only too; --address waits for an
    // address nobody gives it.
    for args in [&[][..], &["--link-only"]] {
        let o = wait(&[&["-i", "eth2", "--timeout", "5"][..], args].concat());
        assert_eq!(o.status.code(), Some(0), "{args:?}");
    }
    let o = wait(&["-i", "eth2", "--address", "--timeout", "0.5"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has no address yet"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn demo_runs_and_leaves_nothing() {
    let s = Sandbox::new("demo");
    let r = s.pipework(&["demo"]).ok();
    assert!(
        r.stdout.contains("ping 192.0.2.2 from demo-a: reply"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\"driver\": \"linux_bridge\""),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("is gone"), "{}", r.stdout);
}

/// Runs pipework in the sandbox's host with its stdout on `out` (a pipe
/// whose read end is already closed, or `/dev/full`).
fn pipework_to(s: &Sandbox, args: &[&str], out: std::process::Stdio) -> std::process::Output {
    std::process::Command::new("ip")
        .args(["netns", "exec", &s.host])
        .arg(pipework_bin())
        .args(args)
        .env("PIPEWORK_STATE_DIR", &s.state_dir)
        .stdout(out)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("pipework runs")
}

/// A closed pipe (`| head -c1`) and a full disk (`> /dev/full`) on stdout:
/// no panic; one line on stderr saying the output was lost; the exit code
/// still says what happened to the host (0: the attach was made, and it is
/// there).
#[test]
fn a_closed_or_full_stdout_is_one_line_and_the_exit_code_stays_true() {
    let mut s = Sandbox::new("stdout");
    let g = s.guest("g");
    let closed_pipe = || {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        drop(r);
        std::process::Stdio::from(w)
    };
    let full = || std::process::Stdio::from(std::fs::File::create("/dev/full").expect("/dev/full"));
    let check = |o: &std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: {err}");
        assert!(
            lines[0].contains("cannot write to standard output"),
            "{what}: {err}"
        );
    };
    // An attach prints nothing: /dev/full changes nothing for it.
    let silent = |o: &std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{what}: {err}");
        assert!(err.is_empty(), "{what}: {err}");
    };
    check(
        &pipework_to(&s, &["--help"], closed_pipe()),
        "help | closed",
    );
    check(&pipework_to(&s, &["--help"], full()), "help > /dev/full");
    silent(
        &pipework_to(&s, &["brout0", &g, "10.7.0.2/24"], full()),
        "attach > /dev/full",
    );
    // The attach exited 0: its interface is there.
    assert!(ip(&g, &["-j", "addr", "show", "eth1"]).contains("10.7.0.2"));
    check(
        &pipework_to(&s, &["list", "--json"], closed_pipe()),
        "list --json | closed",
    );
    check(
        &pipework_to(&s, &["list", "--json"], full()),
        "list --json > /dev/full",
    );
    // `-vv` logging into a closed stderr (`2>&1 | head -c1`): the log lines
    // are lost, the attach is not (it once panicked half-way, leaving a
    // temporary link and a pending file).
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", &s.host])
        .arg(pipework_bin())
        .args(["-vv", "brout0", "-i", "eth2", &g, "10.7.0.3/24"])
        .env("PIPEWORK_STATE_DIR", &s.state_dir)
        .stdout(std::process::Stdio::null())
        .stderr(closed_pipe())
        .status()
        .expect("pipework runs");
    assert_eq!(o.code(), Some(0), "attach -vv 2> closed");
    assert!(ip(&g, &["-j", "addr", "show", "eth2"]).contains("10.7.0.3"));
    assert!(s.pipework(&["list"]).ok().stdout.contains("eth2"));
}

/// `cli/build.rs` links GCC's unwinder into the binary: no libgcc_s to map
/// at every start (the unwinding itself is tested by the binary's own unit
/// test, linked the same way; a static build has no NEEDED at all). readelf
/// is the witness.
#[test]
fn the_binary_needs_no_shared_unwinder() {
    let out = std::process::Command::new("readelf")
        .arg("-d")
        .arg(pipework_bin())
        .output()
        .expect("readelf runs");
    assert!(
        out.status.success(),
        "readelf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        !needed.iter().any(|l| l.contains("libgcc_s")),
        "{needed:#?}"
    );
}
