//! A throwaway LXC container: busybox rootfs, no network of its own, private
//! lxcpath so nothing touches /var/lib/lxc (recipe from the shared notes).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::must;

pub struct Lxc {
    dir: PathBuf,
    pub name: String,
}

impl Lxc {
    pub fn start(prefix: &str) -> Lxc {
        let dir = std::env::temp_dir().join(format!("{prefix}-lxc"));
        let name = format!("{prefix}c");
        let rootfs = dir.join(&name).join("rootfs");
        for d in ["bin", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
        for c in ["sleep", "sh"] {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(c));
        }
        std::fs::write(
            dir.join(&name).join("config"),
            format!(
                "lxc.uts.name = {name}\nlxc.rootfs.path = dir:{}\nlxc.net.0.type = empty\n\
                 lxc.apparmor.profile = unconfined\nlxc.init.cmd = /bin/sleep 600\n\
                 lxc.mount.auto = proc:mixed sys:ro\n",
                rootfs.display()
            ),
        )
        .unwrap();
        let l = Lxc { dir, name };
        must(
            Command::new("lxc-start")
                .arg("-P")
                .arg(&l.dir)
                .args(["-n", &l.name, "-d"]),
        );
        l
    }

    pub fn pid(&self) -> u32 {
        for _ in 0..100 {
            let out = must(
                Command::new("lxc-info")
                    .arg("-P")
                    .arg(&self.dir)
                    .args(["-n", &self.name, "-pH"]),
            );
            if let Ok(p) = out.trim().parse() {
                return p;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("lxc container {} has no init pid", self.name);
    }
}

impl Drop for Lxc {
    fn drop(&mut self) {
        let _ = Command::new("lxc-stop")
            .arg("-P")
            .arg(&self.dir)
            .args(["-n", &self.name, "-k"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
