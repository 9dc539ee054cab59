//! CNI mode: pipework run as a CNI plugin (with the reference host-local
//! IPAM, as a cluster would configure it) beside the reference `bridge`
//! plugin with host-local and netavark (Podman's network tool, static
//! address, internal network), rounds interleaved. ADD is the attach; DEL
//! (netavark's teardown) is reported too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{bridge, median, netns_batch, netns_delete_and_settle, stats, time_stdin};

const CNI_PATH: &str = "/usr/lib/cni";
const NETAVARK: &str = "/usr/lib/podman/netavark";

enum Tool {
    Pipework(PathBuf),
    Bridge,
    Netavark,
}

impl Tool {
    fn label(&self) -> &'static str {
        match self {
            Tool::Pipework(_) => "pipework CNI + host-local",
            Tool::Bridge => "CNI bridge + host-local",
            Tool::Netavark => "netavark (static IP)",
        }
    }

    fn available(&self) -> bool {
        match self {
            Tool::Pipework(_) => Path::new(CNI_PATH).join("host-local").exists(),
            Tool::Bridge => Path::new(CNI_PATH).join("bridge").exists(),
            Tool::Netavark => Path::new(NETAVARK).exists(),
        }
    }

    /// One ADD (`del` false) or DEL of container `id` in namespace `ns`.
    fn run(&self, state: &Path, ns: &str, id: &str, del: bool) -> Duration {
        self.run_with(state, ns, id, del, "10.23.0.2")
    }

    /// `ip` is netavark's static address (the CNI plugins take theirs from
    /// host-local).
    fn run_with(&self, state: &Path, ns: &str, id: &str, del: bool, ip: &str) -> Duration {
        let netns = format!("/run/netns/{ns}");
        match self {
            Tool::Netavark => {
                let input = serde_json::json!({
                    "container_id": id,
                    "container_name": ns,
                    "networks": {"nv": {"static_ips": [ip], "interface_name": "eth0"}},
                    "network_info": {"nv": {
                        "dns_enabled": false, "driver": "bridge",
                        "id": "6e6574617661726b62656e6368000000000000000000000000000000000000ff",
                        "internal": true, "ipv6_enabled": false, "name": "nv",
                        "network_interface": "brnv",
                        "subnets": [{"gateway": "10.23.0.1", "subnet": "10.23.0.0/16"}]
                    }}
                });
                time_stdin(
                    Command::new(NETAVARK)
                        .arg("--config")
                        .arg(state.join("netavark"))
                        .args([if del { "teardown" } else { "setup" }, &netns]),
                    &input.to_string(),
                )
            }
            Tool::Pipework(_) | Tool::Bridge => {
                let (plugin, conf) = match self {
                    Tool::Pipework(bin) => (
                        bin.clone(),
                        serde_json::json!({
                            "cniVersion": "1.0.0", "name": "bp", "type": "pipework", "host": "brcnp",
                            "ipam": {"type": "host-local", "subnet": "10.21.0.0/16",
                                     "dataDir": state.join("hl-p")}
                        }),
                    ),
                    _ => (
                        Path::new(CNI_PATH).join("bridge"),
                        serde_json::json!({
                            "cniVersion": "1.0.0", "name": "bb", "type": "bridge", "bridge": "brcnb",
                            "ipam": {"type": "host-local", "subnet": "10.22.0.0/16",
                                     "dataDir": state.join("hl-b")}
                        }),
                    ),
                };
                time_stdin(
                    Command::new(plugin)
                        .env("CNI_COMMAND", if del { "DEL" } else { "ADD" })
                        .env("CNI_CONTAINERID", id)
                        .env("CNI_NETNS", &netns)
                        .env("CNI_IFNAME", "eth0")
                        .env("CNI_PATH", CNI_PATH)
                        .env("PIPEWORK_STATE_DIR", state.join("cni-state")),
                    &conf.to_string(),
                )
            }
        }
    }
}

/// Rounds of ADD then DEL for each tool, each tool in its own namespace and
/// on its own bridge; prints the table.
pub fn run_and_print(pipework: &Path, state: &Path, tag: &str, rounds: usize) {
    let tools: Vec<Tool> = [
        Tool::Pipework(pipework.to_path_buf()),
        Tool::Bridge,
        Tool::Netavark,
    ]
    .into_iter()
    .filter(|t| {
        let ok = t.available();
        if !ok {
            println!("(skipped: {} is not installed)", t.label());
        }
        ok
    })
    .collect();
    // Every ratio is to pipework's ADD: without it there is no table.
    if !matches!(tools.first(), Some(Tool::Pipework(_))) {
        println!("(CNI mode skipped: pipework's CNI route needs host-local)");
        println!();
        return;
    }
    for b in ["brcnp", "brcnb"] {
        bridge(b);
    }
    let mut guests: Vec<String> = (0..tools.len()).map(|j| format!("{tag}-cni{j}")).collect();
    // netavark deletes its bridge with the network's last container, which
    // no busy host sees: a container that stays keeps it.
    let anchor = format!("{tag}-cnianchor");
    guests.push(anchor.clone());
    netns_batch("add", &guests);
    guests.pop();
    let netavark = tools.iter().find(|t| matches!(t, Tool::Netavark));
    if let Some(t) = netavark {
        t.run_with(state, &anchor, "anchor", false, "10.23.0.3");
    }
    let mut add = vec![Vec::new(); tools.len()];
    let mut del = vec![Vec::new(); tools.len()];
    for round in 0..rounds {
        let id = format!("{tag}r{round}");
        for j in 0..tools.len() {
            let which = (round + j) % tools.len();
            add[which].push(tools[which].run(state, &guests[which], &id, false));
        }
        for j in 0..tools.len() {
            let which = (round + j) % tools.len();
            del[which].push(tools[which].run(state, &guests[which], &id, true));
        }
    }
    if let Some(t) = netavark {
        t.run_with(state, &anchor, "anchor", true, "10.23.0.3");
    }
    guests.push(anchor);
    netns_delete_and_settle(&guests);
    println!(
        "## CNI mode, {rounds} rounds of ADD then DEL (each tool its own bridge and namespace)"
    );
    println!();
    println!("| tool | ADD median | p95 | ADD / pipework | DEL median |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let ours = median(&add[0]);
    for (j, t) in tools.iter().enumerate() {
        let (m, p) = stats(&add[j]);
        println!(
            "| {} | {m:.2} ms | {p:.2} ms | {:.2} | {:.2} ms |",
            t.label(),
            m / ours,
            median(&del[j])
        );
    }
    println!();
}
