//! LXC containers by name, found through their cgroup.
//!
//! LXC 4+ puts a container's processes in a cgroup named `lxc.payload.<name>`
//! (older releases: `lxc/<name>`); its init is the process in that cgroup that
//! is PID 1 of its own PID namespace. This works on cgroup v1, v2 and hybrid
//! hosts without the `lxc-*` tools.

use std::fs;

use crate::error::{Error, Result};

pub fn init_pid(name: &str) -> Result<Option<u32>> {
    if name.contains('/') {
        return Err(Error::usage(format!("bad LXC container name '{name}'")));
    }
    let payload = format!("lxc.payload.{name}");
    let legacy = format!("lxc/{name}");
    let dir =
        fs::read_dir("/proc").map_err(|e| Error::failed("cannot list /proc").with_source(e))?;
    let mut found = Vec::new();
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cg) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        let member = cg.lines().any(|l| {
            let path = l.splitn(3, ':').nth(2).unwrap_or("");
            path.split('/').any(|c| c == payload)
                || path.trim_start_matches('/').starts_with(&legacy)
                    && path.trim_start_matches('/')[legacy.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| c == '/')
        });
        if member && is_namespace_init(pid) {
            found.push(pid);
        }
    }
    found.sort_unstable();
    Ok(found.first().copied())
}

/// True if the process is PID 1 in its innermost PID namespace.
fn is_namespace_init(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last())
        == Some("1")
}
