//! The compatible modes: `udhcpc`, `dhclient` and `dhcpcd` as the original
//! ran them (the host's binaries inside the guest's network namespace), with
//! the original's defects fixed:
//!
//! - each client runs in a private mount and UTS namespace where `/etc`,
//!   `/run` and `/var/lib` are overlays whose writes land in a private tmpfs:
//!   its scripts can write `resolv.conf`, pidfiles and lease databases all
//!   they like, the host's never change, and the hostname they may set is
//!   their own (it is the guest's name, which the clients then send);
//! - pidfiles and everything else live in `<state>/compat/<netns>-<ifname>`,
//!   one directory per guest *and* interface;
//! - the `-f` forms (and `dhcpcd`, which always stays) keep the client
//!   running after the first lease: it goes to the background on its own
//!   once bound, and renews;
//! - the client is found again by its namespaces (its private mount
//!   namespace and the guest's network namespace), not by a pidfile it may
//!   rewrite or a PID that may be reused, so detach and `gc` end exactly it.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::ident;
use pipework_base::error::{Error, Result};
use pipework_base::guest::{Guest, GuestInfo};
use pipework_base::journal::{Journal, Step};
use pipework_base::settings::Settings;
use pipework_base::state::{OpenHow, StateDir};
use pipework_model::{DhcpClient, DhcpSpec};
use pipework_sys::isolate::PrivateWorld;
use pipework_sys::netns::Netns;

/// What `<dir>/client.json` remembers of a running client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client: DhcpClient,
    pub ifname: String,
    pub guest: GuestInfo,
    /// Inode of the client's private mount namespace.
    pub mntns: u64,
    pub foreground: bool,
    /// The options given after the mode's `:`, so that `check --repair`
    /// starts a dead kept client as the attach did (empty in records
    /// written before this field).
    #[serde(default)]
    pub options: String,
}

fn binary(c: DhcpClient) -> &'static str {
    match c {
        DhcpClient::Udhcpc => "udhcpc",
        DhcpClient::Dhclient => "dhclient",
        DhcpClient::Dhcpcd => "dhcpcd",
        DhcpClient::Native => "pipework",
    }
}

/// Whether the client keeps running after its first lease.
fn stays(spec: &DhcpSpec) -> bool {
    spec.foreground || spec.client == DhcpClient::Dhcpcd
}

/// What udhcpc runs on each lease event (see the script's own comment).
const UDHCPC_SCRIPT: &str = include_str!("udhcpc.script");

fn argv(
    spec: &DhcpSpec,
    dir: &Path,
    ifname: &str,
    host: &str,
    timeout: Duration,
    script: Option<&Path>,
) -> Vec<String> {
    let d = |f: &str| dir.join(f).display().to_string();
    let mut a: Vec<String> = Vec::new();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match spec.client {
        DhcpClient::Udhcpc => {
            let tries = (timeout.as_secs() / 3 + 1).to_string();
            a.extend(s(&[
                "-i",
                ifname,
                "-p",
                &d("udhcpc.pid"),
                "-n",
                "-t",
                &tries,
                "-T",
                "3",
            ]));
            if let Some(sc) = script {
                a.extend(s(&["-s", &sc.display().to_string()]));
            }
            if !spec.options.contains("hostname:") {
                a.extend(s(&["-x", &format!("hostname:{host}")]));
            }
            if !spec.foreground {
                // The original always passed -q, so `udhcpc-f` never renewed.
                a.push("-q".into());
            }
        }
        DhcpClient::Dhclient => {
            a.extend(s(&[
                "-1",
                "-pf",
                &d("dhclient.pid"),
                "-lf",
                &d("dhclient.leases"),
            ]));
        }
        DhcpClient::Dhcpcd => {
            a.extend(s(&[
                "-w",
                "-t",
                &timeout.as_secs().max(1).to_string(),
                "-h",
                host,
            ]));
        }
        DhcpClient::Native => {}
    }
    a.extend(spec.options.split_whitespace().map(String::from));
    if spec.client != DhcpClient::Udhcpc {
        a.push(ifname.to_string());
    }
    a
}

/// The directory of a guest interface's client.
pub fn dir_for(settings: &Settings, guest: &GuestInfo, ifname: &str) -> PathBuf {
    settings
        .state_dir
        .join("compat")
        .join(format!("{}-{ifname}", guest.netns))
}

/// Runs the client until it has a lease (or `timeout`), leaving it running
/// when the mode says so. Every outcome is journaled first.
pub fn run(
    spec: &DhcpSpec,
    guest: &Guest,
    ifname: &str,
    settings: &Settings,
    timeout: Duration,
    journal: &mut Journal,
) -> Result<()> {
    run_in(
        spec,
        &guest.info,
        &guest.netns,
        ifname,
        settings,
        timeout,
        journal,
    )
}

fn run_in(
    spec: &DhcpSpec,
    info: &GuestInfo,
    netns: &Netns,
    ifname: &str,
    settings: &Settings,
    timeout: Duration,
    journal: &mut Journal,
) -> Result<()> {
    let dir = dir_for(settings, info, ifname);
    let state = StateDir::open_read(&settings.state_dir);
    let rel = rel_dir(settings, &dir)?;
    if state.dir(&rel, false)?.is_some() {
        stop(settings, &dir).map_err(|e| e.context("cannot end an earlier client"))?;
    }
    let sdir = state
        .dir(&rel, true)?
        .ok_or_else(|| Error::failed(format!("cannot create {}", dir.display())))?;
    journal.record(Step::CompatClient { dir: dir.clone() });
    let host = ident::hostname(&info.name);
    let bin = binary(spec.client);
    let mut private = PrivateWorld::new(&dir.join("private"), &host).map_err(|e| {
        Error::failed("cannot prepare the client's private directories").with_source(e)
    })?;
    // udhcpc runs our script, which gives the address its lease's lifetime
    // (Debian's default script makes it permanent). It lives in the private
    // tmpfs: a state directory on a `noexec` /run could not run it.
    let script = match spec.client {
        DhcpClient::Udhcpc => Some(
            private
                .add_file("udhcpc.script", UDHCPC_SCRIPT.as_bytes(), 0o700)
                .map_err(|e| Error::failed("cannot prepare the udhcpc script").with_source(e))?,
        ),
        _ => None,
    };
    let log = sdir
        .open("client.log", OpenHow::Truncate)?
        .ok_or_else(|| Error::failed("cannot create the client log"))?;
    let netns = netns.as_raw_fd();
    let mut cmd = Command::new(bin);
    cmd.args(argv(spec, &dir, ifname, &host, timeout, script.as_deref()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(Error::from)?)
        .stderr(log);
    private.enter_on_exec(&mut cmd, netns);
    let mut child = cmd.spawn().map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            format!(" (is {bin} installed?)")
        } else {
            String::new()
        };
        Error::failed(format!("cannot start {bin}{hint}")).with_source(e)
    })?;
    let mntns = fs::metadata(format!("/proc/{}/ns/mnt", child.id()))
        .map(|m| m.ino())
        .unwrap_or(0);
    let rec = ClientRecord {
        client: spec.client,
        ifname: ifname.to_string(),
        guest: info.clone(),
        mntns,
        foreground: stays(spec),
        options: spec.options.clone(),
    };
    let json =
        serde_json::to_vec_pretty(&rec).map_err(|e| Error::failed("encode").with_source(e))?;
    sdir.write_atomic("client.json", &json)?;

    // The client stays in the foreground until it has a lease, then either
    // exits (-q) or forks into the background.
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = stop_processes(&rec);
                let _ = child.wait();
                return Err(Error::timeout(format!(
                    "{bin} got no lease for {ifname} within {:.0}s",
                    timeout.as_secs_f64()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(Error::failed(format!("waiting for {bin}")).with_source(e)),
        }
    };
    if !status.success() {
        let _ = stop_processes(&rec);
        let last = sdir
            .read("client.log")
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .and_then(|s| {
                s.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(String::from)
            })
            .unwrap_or_default();
        return Err(Error::failed(format!("{bin} failed ({status}): {last}")));
    }
    if !stays(spec) {
        // dhclient has no "exit once bound": end it the way the original
        // did, without a release, so the address stays for its lease time.
        kill_all(&rec, libc::SIGKILL);
        // Gone before the attach returns: `inspect` right after must not
        // find it still running.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !processes(&rec).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    debug!(%bin, %ifname, "compatible-mode client bound");
    Ok(())
}

/// A compatible-mode client as it is now, for `inspect`: what was started
/// and the PIDs still running (none once a mode that does not keep its
/// client has its lease, or when a kept one died).
pub fn client_status(settings: &Settings, dir: &Path) -> Option<(ClientRecord, Vec<i32>)> {
    let rel = rel_dir(settings, dir).ok()?;
    let b = StateDir::open_read(&settings.state_dir)
        .read_file(&format!("{rel}/client.json"))
        .ok()??;
    let rec: ClientRecord = serde_json::from_slice(&b).ok()?;
    let mut pids = processes(&rec);
    pids.sort_unstable();
    Some((rec, pids))
}

/// The processes of a client: in its private mount namespace and in the
/// guest's network namespace (both, so a recycled inode matches nothing).
fn processes(rec: &ClientRecord) -> Vec<i32> {
    if rec.mntns == 0 {
        return Vec::new();
    }
    process_namespaces()
        .filter(|&(_, mnt, net)| mnt == rec.mntns && net == rec.guest.netns.0)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Every process now, with its mount and network namespaces' inodes (one
/// pass over `/proc`; processes that exit meanwhile are left out).
fn process_namespaces() -> impl Iterator<Item = (i32, u64, u64)> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let ino = |ns: &str| {
                fs::metadata(format!("/proc/{pid}/ns/{ns}"))
                    .map(|m| m.ino())
                    .ok()
            };
            Some((pid, ino("mnt")?, ino("net")?))
        })
}

fn kill_all(rec: &ClientRecord, sig: libc::c_int) -> usize {
    let pids = processes(rec);
    for p in &pids {
        // Gone already, or never ours to signal: nothing more to do for it.
        let _ = pipework_sys::process::kill(*p, sig);
    }
    pids.len()
}

/// SIGTERM, a grace period, then SIGKILL.
fn stop_processes(rec: &ClientRecord) -> usize {
    let n = kill_all(rec, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !processes(rec).is_empty() {
        if Instant::now() >= deadline {
            kill_all(rec, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    n
}

/// `compat/<name>` for a client directory of this state directory; refused
/// for any other path (a journal names the directory, and a journal must
/// not make root remove anything else).
fn rel_dir(settings: &Settings, dir: &Path) -> Result<String> {
    let name = dir
        .strip_prefix(settings.state_dir.join("compat"))
        .ok()
        .and_then(|r| {
            let mut c = r.components();
            match (c.next(), c.next()) {
                (Some(std::path::Component::Normal(n)), None) => n.to_str(),
                _ => None,
            }
        })
        .ok_or_else(|| {
            Error::usage(format!(
                "{} is not a DHCP client directory of {}",
                dir.display(),
                settings.state_dir.display()
            ))
        })?;
    Ok(format!("compat/{name}"))
}

/// For `check`: the program name of a client that was meant to stay (the
/// `-f` forms, dhcpcd) and no longer runs; `None` while it runs, or when it
/// was meant to exit once bound.
pub fn dead_kept_client(settings: &Settings, dir: &Path) -> Result<Option<&'static str>> {
    let rel = rel_dir(settings, dir)?;
    let state = StateDir::open_read(&settings.state_dir);
    let Some(b) = state.read_file(&format!("{rel}/client.json"))? else {
        return Ok(None);
    };
    let rec: ClientRecord = serde_json::from_slice(&b)
        .map_err(|e| Error::failed(format!("{rel}/client.json")).with_source(e))?;
    Ok((rec.foreground && processes(&rec).is_empty()).then(|| binary(rec.client)))
}

/// For `check --repair`: starts a kept client that died again, as the
/// attach started it (same program, options and directory), and waits for
/// its lease as the attach did. The record's journal already names the
/// directory, so what this run journals is dropped.
pub fn restart_kept_client(
    settings: &Settings,
    dir: &Path,
    netns: &Netns,
    timeout: Duration,
) -> Result<()> {
    let rel = rel_dir(settings, dir)?;
    let state = StateDir::open_read(&settings.state_dir);
    let b = state
        .read_file(&format!("{rel}/client.json"))?
        .ok_or_else(|| Error::failed(format!("{rel}/client.json is missing")))?;
    let rec: ClientRecord = serde_json::from_slice(&b)
        .map_err(|e| Error::failed(format!("{rel}/client.json")).with_source(e))?;
    let spec = DhcpSpec {
        client: rec.client,
        foreground: rec.foreground,
        options: rec.options.clone(),
        v4: true,
        v6: false,
    };
    let mut scratch = Journal::new();
    run_in(
        &spec,
        &rec.guest,
        netns,
        &rec.ifname,
        settings,
        timeout,
        &mut scratch,
    )
}

/// For the daemon's watch: the directories of kept clients whose guest
/// lives and that no longer run.
pub fn dead_kept_clients(settings: &Settings) -> Vec<PathBuf> {
    let state = StateDir::open_read(&settings.state_dir);
    let Ok(names) = state.list("compat") else {
        return Vec::new();
    };
    let kept: Vec<(String, ClientRecord)> = names
        .into_iter()
        .filter_map(|name| {
            let b = state
                .read_file(&format!("compat/{name}/client.json"))
                .ok()
                .flatten()?;
            let rec = serde_json::from_slice::<ClientRecord>(&b).ok()?;
            rec.foreground.then_some((name, rec))
        })
        .collect();
    if kept.is_empty() {
        return Vec::new();
    }
    // One pass over /proc for all clients (this runs every few seconds).
    let running: std::collections::HashSet<(u64, u64)> = process_namespaces()
        .map(|(_, mnt, net)| (mnt, net))
        .collect();
    kept.into_iter()
        .filter(|(_, rec)| {
            rec.mntns != 0
                && !running.contains(&(rec.mntns, rec.guest.netns.0))
                && pipework_base::guest::guest_alive(&rec.guest)
        })
        .map(|(name, _)| settings.state_dir.join("compat").join(name))
        .collect()
}

/// Ends a client and removes its directory. Idempotent.
pub fn stop(settings: &Settings, dir: &Path) -> Result<()> {
    let rel = rel_dir(settings, dir)?;
    let state = StateDir::open_read(&settings.state_dir);
    if let Some(b) = state.read_file(&format!("{rel}/client.json"))? {
        if let Ok(rec) = serde_json::from_slice::<ClientRecord>(&b) {
            stop_processes(&rec);
        }
    }
    state.remove_tree(&rel)
}

/// For `pipework gc`: ends the clients whose guest is gone. Returns a line
/// per client ended.
pub fn gc(settings: &Settings) -> Vec<String> {
    let state = StateDir::open_read(&settings.state_dir);
    let names = match state.list("compat") {
        Ok(n) => n,
        Err(e) => {
            warn!("gc: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for name in names {
        let dir = settings.state_dir.join("compat").join(&name);
        let Some(rec) = state
            .read_file(&format!("compat/{name}/client.json"))
            .unwrap_or_else(|e| {
                warn!("gc: {e}");
                None
            })
            .and_then(|b| serde_json::from_slice::<ClientRecord>(&b).ok())
        else {
            continue;
        };
        if pipework_base::guest::guest_alive(&rec.guest) {
            continue;
        }
        match stop(settings, &dir) {
            Ok(()) => out.push(format!(
                "{} client of {} {} (guest gone)",
                binary(rec.client),
                rec.guest.name,
                rec.ifname
            )),
            Err(e) => warn!("gc: cannot end the client in {}: {e}", dir.display()),
        }
    }
    out
}
