//! A private world for a host DHCP client run inside a guest: its own mount
//! and UTS namespaces, with overlays on `/etc`, `/run` and `/var/lib` so that
//! whatever the client writes there stays out of the host, and the guest's
//! hostname.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)
}

/// The mounts of the client's private world, prepared before the fork so
/// the child only makes system calls.
pub struct PrivateWorld {
    scratch: CString,
    tmpfs: CString,
    overlays: Vec<(CString, CString, CString, CString)>,
    hostname: CString,
    /// Files written into the private tmpfs once it is mounted (path,
    /// content, mode): there, unlike in a state directory on a `noexec`
    /// `/run`, a script can be executed.
    files: Vec<(CString, Vec<u8>, libc::mode_t)>,
}

impl PrivateWorld {
    /// `scratch` holds the overlays' upper and work directories; `host`
    /// becomes the hostname inside.
    pub fn new(scratch: &Path, host: &str) -> io::Result<PrivateWorld> {
        let scratch = scratch.to_path_buf();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&scratch)?;
        let mut overlays = Vec::new();
        for (i, target) in ["/etc", "/run", "/var/lib"].iter().enumerate() {
            if !Path::new(target).is_dir() {
                continue;
            }
            let up = scratch.join(format!("u{i}"));
            let work = scratch.join(format!("w{i}"));
            let opts = format!(
                "lowerdir={target},upperdir={},workdir={}",
                up.display(),
                work.display()
            );
            overlays.push((
                cstr(Path::new(target))?,
                cstr(&up)?,
                cstr(&work)?,
                CString::new(opts).map_err(io::Error::other)?,
            ));
        }
        Ok(PrivateWorld {
            scratch: cstr(&scratch)?,
            tmpfs: CString::new("mode=0700").expect("no NUL"),
            overlays,
            hostname: CString::new(host).map_err(io::Error::other)?,
            files: Vec::new(),
        })
    }

    /// Adds a file the child finds at `<scratch>/<name>` (mode `mode`); the
    /// path it will have.
    pub fn add_file(
        &mut self,
        name: &str,
        content: &[u8],
        mode: u32,
    ) -> io::Result<std::path::PathBuf> {
        let scratch = Path::new(std::ffi::OsStr::from_bytes(self.scratch.as_bytes()));
        let path = scratch.join(name);
        self.files
            .push((cstr(&path)?, content.to_vec(), mode as libc::mode_t));
        Ok(path)
    }

    /// Runs in the child between fork and exec: system calls only.
    fn enter(&self, netns: RawFd) -> io::Result<()> {
        let ck = |r: libc::c_int| {
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let none = std::ptr::null::<libc::c_char>();
        // SAFETY: each call gets valid NUL-terminated strings or nulls, and
        // only affects this (child) process.
        unsafe {
            ck(libc::setns(netns, libc::CLONE_NEWNET))?;
            ck(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
            ck(libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            ck(libc::mount(
                c"tmpfs".as_ptr(),
                self.scratch.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                self.tmpfs.as_ptr().cast(),
            ))?;
            for (path, content, mode) in &self.files {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                    *mode,
                );
                ck(fd)?;
                let n = libc::write(fd, content.as_ptr().cast(), content.len());
                libc::close(fd);
                if n != content.len() as isize {
                    return Err(io::Error::other("short write of a private file"));
                }
            }
            for (target, up, work, opts) in &self.overlays {
                ck(libc::mkdir(up.as_ptr(), 0o700))?;
                ck(libc::mkdir(work.as_ptr(), 0o700))?;
                ck(libc::mount(
                    c"overlay".as_ptr(),
                    target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    opts.as_ptr().cast(),
                ))?;
            }
            ck(libc::sethostname(
                self.hostname.as_ptr(),
                self.hostname.as_bytes().len(),
            ))?;
        }
        Ok(())
    }

    /// Makes `cmd`'s child start a session of its own, enter `netns` and
    /// this private world before it runs the program.
    pub fn enter_on_exec(self, cmd: &mut Command, netns: RawFd) {
        // SAFETY: the closure makes system calls only (no allocation, no
        // lock): `setsid`, then `enter`'s setns/unshare/mount/mkdir/
        // sethostname on strings prepared before the fork. The namespace fd
        // stays open in the child until exec, since the caller holds it.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                self.enter(netns)
            });
        }
    }
}
