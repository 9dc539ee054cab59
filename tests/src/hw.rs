//! Helpers for the kernel-gated tests (`tests/tests/kernel_*.rs`), which run
//! in the VM lane (`tests/vm/run`): the emulated igb NIC is `eth0`, an
//! SR-IOV PF, in the VM's own namespace. A test adopts the devices it needs
//! into its sandbox's host namespace; deleting that namespace (the sandbox's
//! `Drop`) hands physical devices back to the VM's namespace.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{ip_json, must, run, Sandbox};

/// The igb PF's PCI device directory (stable whatever its netdev is called
/// and wherever it is).
pub fn igb_pci() -> PathBuf {
    let dir = std::fs::read_dir("/sys/bus/pci/drivers/igb")
        .expect("the igb driver is loaded (run in the VM lane: tests/vm/run)");
    dir.flatten()
        .map(|e| e.path())
        .find(|p| p.join("sriov_totalvfs").exists())
        .expect("an igb SR-IOV PF")
}

/// Waits until a link of that name is in the current (the VM's) namespace.
pub fn wait_link_here(name: &str) {
    let t = Instant::now();
    while !run(Command::new("ip").args(["link", "show", "dev", name]))
        .status
        .success()
    {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{name} did not come back to the VM's namespace"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Enables `n` VFs on the igb PF (0 disables them) and returns their netdev
/// names, VF 0 first. The PF must be in the VM's namespace.
pub fn set_vfs(n: u32) -> Vec<String> {
    let pci = igb_pci();
    let cur: u32 = std::fs::read_to_string(pci.join("sriov_numvfs"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if cur != n {
        if cur != 0 {
            std::fs::write(pci.join("sriov_numvfs"), "0").unwrap();
        }
        if n != 0 {
            std::fs::write(pci.join("sriov_numvfs"), n.to_string()).unwrap();
        }
    }
    (0..n)
        .map(|i| {
            let net = pci.join(format!("virtfn{i}/net"));
            let t = Instant::now();
            loop {
                if let Some(e) = std::fs::read_dir(&net).ok().and_then(|mut d| d.next()) {
                    break e.unwrap().file_name().to_string_lossy().into_owned();
                }
                assert!(
                    t.elapsed() < Duration::from_secs(15),
                    "VF {i} has no netdev"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .collect()
}

/// The PF's netdev name in the VM's namespace.
pub fn pf_name() -> String {
    let net = igb_pci().join("net");
    let t = Instant::now();
    loop {
        if let Some(e) = std::fs::read_dir(&net).ok().and_then(|mut d| d.next()) {
            return e.unwrap().file_name().to_string_lossy().into_owned();
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the PF did not come back to the VM's namespace"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Sandbox {
    /// Moves a device from the VM's namespace into the sandbox's host (it
    /// goes back when the sandbox is dropped).
    pub fn adopt(&self, name: &str) {
        wait_link_here(name);
        must(Command::new("ip").args(["link", "set", name, "netns", &self.host]));
    }

    /// The VF list of a PF in the sandbox host, as `ip -j -d link` shows it.
    pub fn vfinfo(&self, pf: &str) -> serde_json::Value {
        ip_json(&self.host, &["-d", "link", "show", "dev", pf])[0]["vfinfo_list"].clone()
    }
}

impl Sandbox {
    /// Sets a host link up and waits for its carrier (the igb model
    /// negotiates for a moment), so later snapshots of the links compare.
    pub fn up_with_carrier(&self, name: &str) {
        self.ip_host(&["link", "set", name, "up"]);
        let t = Instant::now();
        loop {
            let l = crate::link(&self.host, name).expect("the link exists");
            let flags = l["flags"].as_array().unwrap();
            // NO-CARRIER lingers beside LOWER_UP until the kernel's link
            // watch has run (up to a second later).
            if flags.iter().any(|f| f == "LOWER_UP") && !flags.iter().any(|f| f == "NO-CARRIER") {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "{name} has no carrier"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A fixture sysfs tree (`PIPEWORK_SYSFS_ROOT`), removed on drop.
pub struct SysfsFixture {
    pub root: PathBuf,
}

impl SysfsFixture {
    pub fn new(label: &str) -> SysfsFixture {
        let root = std::env::temp_dir().join(format!(
            "pw-sysfs-{label}-{}-{}",
            std::process::id(),
            crate::next_seq()
        ));
        std::fs::create_dir_all(&root).unwrap();
        SysfsFixture { root }
    }

    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{content}\n")).unwrap();
        self
    }

    pub fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.root.join(rel)).unwrap();
        self
    }

    pub fn link(&self, rel: &str, target: &str) -> &Self {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }

    pub fn env(&self) -> (&'static str, String) {
        (
            "PIPEWORK_SYSFS_ROOT",
            self.root.to_string_lossy().into_owned(),
        )
    }
}

impl Drop for SysfsFixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
