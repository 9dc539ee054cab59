//! Delegated plugins (CNI spec section 4): IPAM plugins other than the
//! built-in `static` run as separate executables found in `CNI_PATH`, with
//! our environment and the complete configuration we received.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::{code, CniError, CniResult};

fn find(plugin: &str, path: &str) -> Result<PathBuf, CniError> {
    if plugin.contains('/') || plugin.is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("bad IPAM plugin type '{plugin}'"),
        ));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("IPAM plugin '{plugin}' not found in CNI_PATH '{path}'"),
            )
        })
}

/// Runs `plugin` (found in `path`, `CNI_PATH`) with `command`; returns its
/// result (ADD) or nothing.
pub fn exec(
    plugin: &str,
    command: &str,
    config: &[u8],
    path: Option<&str>,
) -> Result<Option<CniResult>, CniError> {
    let exe = find(plugin, path.unwrap_or_default())?;
    let mut child = Command::new(&exe)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            CniError::new(
                code::IO,
                format!("cannot run IPAM plugin {}: {e}", exe.display()),
            )
        })?;
    child
        .stdin
        .take()
        .ok_or_else(|| CniError::new(code::IO, format!("no stdin for IPAM plugin {plugin}")))?
        .write_all(config)
        .map_err(|e| {
            CniError::new(
                code::IO,
                format!("cannot write to IPAM plugin {plugin}: {e}"),
            )
        })?;
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::new(code::IO, format!("IPAM plugin {plugin}: {e}")))?;
    if !out.status.success() {
        let mut err: CniError = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .map(|v| CniError {
                cni_version: "1.1.0".into(),
                code: v["code"].as_u64().unwrap_or(u64::from(code::FAILED)) as u32,
                msg: v["msg"]
                    .as_str()
                    .unwrap_or("IPAM plugin failed")
                    .to_string(),
                details: v["details"].as_str().unwrap_or("").to_string(),
            })
            .unwrap_or_else(|| CniError::new(code::FAILED, format!("IPAM plugin {plugin} failed")));
        err.msg = format!("IPAM plugin {plugin}: {}", err.msg);
        return Err(err);
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&out.stdout).map(Some).map_err(|e| {
        CniError::new(
            code::DECODE,
            format!("IPAM plugin {plugin} returned bad JSON: {e}"),
        )
    })
}
