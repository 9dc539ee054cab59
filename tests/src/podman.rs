//! A private Podman serving the Docker-compatible API, with a busybox image
//! made locally (no registry is reachable). Recipe from the shared
//! test-environment notes: runc (crun fails on hybrid cgroups), cgroupfs, file
//! events, ulimits the sandbox allows, vfs storage (no mounts to leak).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::must;

pub const IMAGE: &str = "localhost/pipework-busybox";

pub struct Podman {
    dir: PathBuf,
    service: Child,
    pub socket: PathBuf,
    containers: Vec<String>,
}

impl Podman {
    /// Starts the API service; `None` (with a message) when Podman is not
    /// installed, so a developer machine without it skips instead of failing.
    pub fn start(prefix: &str) -> Podman {
        let dir = std::env::temp_dir().join(format!("{prefix}-podman"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
        let hard = must(Command::new("sh").args(["-c", "ulimit -Hn"]))
            .trim()
            .to_string();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={hard}:{hard}\", \"nproc=32768:32768\"]\nnetns = \"none\"\n\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
            ),
        )
        .unwrap();
        let socket = dir.join("podman.sock");
        let mut p = Podman {
            service: Command::new("true").spawn().unwrap(),
            dir,
            socket,
            containers: Vec::new(),
        };
        p.spawn_service();
        p.import_image();
        p.wait_socket();
        p
    }

    fn spawn_service(&mut self) {
        self.service = self
            .podman()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", self.socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service");
    }

    fn wait_socket(&self) {
        for _ in 0..200 {
            if self.socket.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("podman service did not create {}", self.socket.display());
    }

    /// Stops the API service (the engine "restarts"); containers live on.
    pub fn stop_service(&mut self) {
        let _ = self.service.kill();
        let _ = self.service.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts the API service again after [`Podman::stop_service`].
    pub fn start_service(&mut self) {
        self.spawn_service();
        self.wait_socket();
    }

    /// A podman command on this private store.
    pub fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs"]);
        c
    }

    fn import_image(&self) {
        let rootfs = self.dir.join("rootfs");
        std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
        for cmd in ["sh", "sleep", "ip", "cat", "ls"] {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(cmd));
        }
        let tar = self.dir.join("rootfs.tar");
        must(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        );
        must(self.podman().arg("import").arg(&tar).arg(IMAGE));
    }

    /// Starts a container with no network of its own; returns its ID.
    pub fn run(&mut self, name: &str) -> String {
        let id = must(self.podman().args([
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            IMAGE,
            "/bin/sleep",
            "600",
        ]));
        self.containers.push(name.to_string());
        id.trim().to_string()
    }

    /// Removes this container on drop too (one created by hand).
    pub fn track(&mut self, name: &str) {
        self.containers.push(name.to_string());
    }

    pub fn pid(&self, name: &str) -> u32 {
        must(
            self.podman()
                .args(["inspect", "--format", "{{.State.Pid}}", name]),
        )
        .trim()
        .parse()
        .expect("pid")
    }

    pub fn remove(&mut self, name: &str) {
        let _ = self
            .podman()
            .args(["rm", "-f", "-t", "0", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.containers.retain(|c| c != name);
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

fn busybox() -> &'static Path {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return Path::new(p);
        }
    }
    panic!("busybox-static is not installed");
}

impl Drop for Podman {
    fn drop(&mut self) {
        for c in self.containers.clone() {
            self.remove(&c);
        }
        let _ = self.service.kill();
        let _ = self.service.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
