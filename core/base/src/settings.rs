//! Host-wide settings: where state lives, where sysfs is, how to reach OVSDB.

use std::path::PathBuf;

/// Default state directory: tmpfs, so records vanish with the namespaces they
/// describe when the host reboots.
pub const DEFAULT_STATE_DIR: &str = "/run/pipework";

#[derive(Clone, Debug)]
pub struct Settings {
    /// `--state-dir` / `PIPEWORK_STATE_DIR`.
    pub state_dir: PathBuf,
    /// Root of sysfs, replaceable by a fixture tree in tests (`PIPEWORK_SYSFS_ROOT`).
    pub sysfs_root: PathBuf,
    /// OVSDB server address (`--ovsdb` / `PIPEWORK_OVSDB`), `unix:` or `tcp:`.
    pub ovsdb: String,
    /// Open vSwitch run directory holding `<bridge>.mgmt` (`PIPEWORK_OVS_RUNDIR`).
    pub ovs_rundir: PathBuf,
}

impl Settings {
    /// Defaults, overridden by the environment.
    pub fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Settings {
            state_dir: var("PIPEWORK_STATE_DIR")
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into())
                .into(),
            sysfs_root: var("PIPEWORK_SYSFS_ROOT")
                .unwrap_or_else(|| "/sys".into())
                .into(),
            ovsdb: var("PIPEWORK_OVSDB")
                .unwrap_or_else(|| "unix:/var/run/openvswitch/db.sock".into()),
            ovs_rundir: var("PIPEWORK_OVS_RUNDIR")
                .or_else(|| var("OVS_RUNDIR"))
                .unwrap_or_else(|| "/var/run/openvswitch".into())
                .into(),
        }
    }
}
