//! The sysfs facts pipework reads, in one place, under a configurable root
//! (`Settings::sysfs_root`, `PIPEWORK_SYSFS_ROOT`) so tests can point it at a
//! fixture tree.
//!
//! sysfs shows the network devices of the namespace it was mounted in: a VF
//! whose netdev moved into a guest disappears from `virtfn<N>/net/` here,
//! which is how a VF in use is recognised.

use std::path::{Path, PathBuf};

/// A sysfs tree: `/sys`, or a fixture.
#[derive(Clone, Copy, Debug)]
pub struct Sysfs<'a> {
    root: &'a Path,
}

impl<'a> Sysfs<'a> {
    pub fn new(root: &'a Path) -> Sysfs<'a> {
        Sysfs { root }
    }

    /// `class/net/<ifname>`
    pub fn net_dir(&self, ifname: &str) -> PathBuf {
        self.root.join("class/net").join(ifname)
    }

    fn read(&self, p: &Path) -> Option<String> {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn read_num(&self, p: &Path) -> Option<u32> {
        self.read(p).and_then(|s| s.parse().ok())
    }

    /// Whether the interface is in this tree at all.
    pub fn has_interface(&self, ifname: &str) -> bool {
        self.net_dir(ifname).exists()
    }

    /// `class/net/<if>/type`: the `ARPHRD_*` link type.
    pub fn arphrd(&self, ifname: &str) -> Option<u16> {
        self.read(&self.net_dir(ifname).join("type"))
            .and_then(|s| s.parse().ok())
    }

    /// A Linux bridge has a `bridge/` directory.
    pub fn is_bridge(&self, ifname: &str) -> bool {
        self.net_dir(ifname).join("bridge").is_dir()
    }

    /// `device/sriov_totalvfs`: 0 when the device is not an SR-IOV PF.
    pub fn sriov_totalvfs(&self, ifname: &str) -> u32 {
        self.read_num(&self.net_dir(ifname).join("device/sriov_totalvfs"))
            .unwrap_or(0)
    }

    /// `device/sriov_numvfs`: the VFs currently enabled.
    pub fn sriov_numvfs(&self, ifname: &str) -> u32 {
        self.read_num(&self.net_dir(ifname).join("device/sriov_numvfs"))
            .unwrap_or(0)
    }

    /// The PCI address of VF `vf` of a PF (`device/virtfn<vf>` links to it).
    pub fn vf_pci_address(&self, pf: &str, vf: u32) -> Option<String> {
        let l = std::fs::read_link(self.net_dir(pf).join(format!("device/virtfn{vf}"))).ok()?;
        l.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// The netdevs of VF `vf` visible here (`device/virtfn<vf>/net/*`). Empty
    /// when its netdev is in another namespace or it has no network driver.
    pub fn vf_netdevs(&self, pf: &str, vf: u32) -> Vec<String> {
        let dir = self.net_dir(pf).join(format!("device/virtfn{vf}/net"));
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether VF `vf` of the PF exists in sysfs at all.
    pub fn vf_exists(&self, pf: &str, vf: u32) -> bool {
        self.net_dir(pf).join(format!("device/virtfn{vf}")).exists()
    }

    /// The interface is itself a VF (its device has a `physfn` link).
    pub fn is_vf(&self, ifname: &str) -> bool {
        self.net_dir(ifname).join("device/physfn").exists()
    }

    /// The RDMA device behind an IPoIB interface (`device/infiniband/<dev>`).
    pub fn ib_device(&self, ifname: &str) -> Option<String> {
        let rd = std::fs::read_dir(self.net_dir(ifname).join("device/infiniband")).ok()?;
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.into_iter().next()
    }

    /// The HCA port of an IPoIB interface: `dev_port` counts from 0, IB ports
    /// from 1.
    pub fn ib_port(&self, ifname: &str) -> u32 {
        self.read_num(&self.net_dir(ifname).join("dev_port"))
            .unwrap_or(0)
            + 1
    }

    /// The port's partition key table (`class/infiniband/<dev>/ports/<port>/pkeys/<i>`),
    /// without empty (0x0000) entries. `None` when the table is not in sysfs.
    pub fn pkeys(&self, ib_device: &str, port: u32) -> Option<Vec<u16>> {
        let dir = self
            .root
            .join("class/infiniband")
            .join(ib_device)
            .join("ports")
            .join(port.to_string())
            .join("pkeys");
        let rd = std::fs::read_dir(dir).ok()?;
        let mut entries: Vec<(u32, u16)> = rd
            .flatten()
            .filter_map(|e| {
                let idx: u32 = e.file_name().to_str()?.parse().ok()?;
                let s = std::fs::read_to_string(e.path()).ok()?;
                let s = s.trim();
                let v = u16::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()?;
                Some((idx, v))
            })
            .filter(|(_, v)| v & 0x7fff != 0)
            .collect();
        entries.sort();
        Some(entries.into_iter().map(|(_, v)| v).collect())
    }
}

/// Small sysfs trees shaped like the kernel's, for the unit tests of this
/// crate and of the probe (in `pipework-base`); not for production use.
#[doc(hidden)]
pub mod fixture {
    use std::path::{Path, PathBuf};

    pub struct Tree {
        pub root: PathBuf,
    }

    impl Tree {
        pub fn new(label: &str) -> Tree {
            let root = std::env::temp_dir().join(format!(
                "pw-sysfs-{label}-{}-{}",
                std::process::id(),
                pipework_model::random::hex(6)
            ));
            std::fs::create_dir_all(&root).unwrap();
            Tree { root }
        }

        pub fn file(&self, rel: &str, content: &str) -> &Tree {
            let p = self.root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("{content}\n")).unwrap();
            self
        }

        pub fn dir(&self, rel: &str) -> &Tree {
            std::fs::create_dir_all(self.root.join(rel)).unwrap();
            self
        }

        pub fn link(&self, rel: &str, target: &str) -> &Tree {
            let p = self.root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
            self
        }

        pub fn path(&self) -> &Path {
            &self.root
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::Tree;
    use super::*;

    #[test]
    fn reads_an_sriov_pf_and_its_vfs() {
        let t = Tree::new("pf");
        let pci = "devices/pci0000:00/0000:00:02.0";
        t.file(&format!("{pci}/sriov_totalvfs"), "7")
            .file(&format!("{pci}/sriov_numvfs"), "2")
            .dir(&format!("{pci}/0000:00:02.0/net/eth0"))
            .dir("devices/pci0000:00/0000:01:10.0/net/eth1")
            .dir("devices/pci0000:00/0000:01:10.4")
            .link(&format!("{pci}/virtfn0"), "../0000:01:10.0")
            .link(&format!("{pci}/virtfn1"), "../0000:01:10.4")
            .file("class/net/eth0/type", "1")
            .link("class/net/eth0/device", &format!("../../../{pci}"))
            .link(
                "class/net/eth1/device",
                "../../../devices/pci0000:00/0000:01:10.0",
            )
            .link("devices/pci0000:00/0000:01:10.0/physfn", "../0000:00:02.0");
        let s = Sysfs::new(t.path());
        assert_eq!(s.sriov_totalvfs("eth0"), 7);
        assert_eq!(s.sriov_numvfs("eth0"), 2);
        assert_eq!(s.vf_netdevs("eth0", 0), vec!["eth1".to_string()]);
        assert!(
            s.vf_netdevs("eth0", 1).is_empty(),
            "VF 1's netdev is elsewhere"
        );
        assert!(s.vf_exists("eth0", 1) && !s.vf_exists("eth0", 2));
        assert_eq!(s.vf_pci_address("eth0", 1).as_deref(), Some("0000:01:10.4"));
        assert!(s.is_vf("eth1") && !s.is_vf("eth0"));
        assert_eq!(s.sriov_totalvfs("eth1"), 0);
        assert_eq!(s.arphrd("eth0"), Some(1));
        assert_eq!(s.arphrd("nope"), None);
    }

    #[test]
    fn reads_an_ib_port_pkey_table() {
        let t = Tree::new("ib");
        t.file("class/net/ib0/type", "32")
            .file("class/net/ib0/dev_port", "1")
            .dir("class/net/ib0/device/infiniband/mlx5_0")
            .file("class/infiniband/mlx5_0/ports/2/pkeys/0", "0xffff")
            .file("class/infiniband/mlx5_0/ports/2/pkeys/1", "0x8001")
            .file("class/infiniband/mlx5_0/ports/2/pkeys/2", "0x0000")
            .file("class/infiniband/mlx5_0/ports/2/pkeys/10", "0x0002");
        let s = Sysfs::new(t.path());
        assert_eq!(s.arphrd("ib0"), Some(32));
        assert_eq!(s.ib_device("ib0").as_deref(), Some("mlx5_0"));
        assert_eq!(s.ib_port("ib0"), 2);
        assert_eq!(s.pkeys("mlx5_0", 2), Some(vec![0xffff, 0x8001, 0x0002]));
        assert_eq!(s.pkeys("mlx5_0", 1), None);
    }
}
