//! Files beneath the state directory, opened so that nobody but root can
//! turn them against root.
//!
//! pipework runs as root and its state directory decides what it deletes
//! (journals name links, bridges, directories). So:
//! - the state directory and every directory in it must be owned by the
//!   effective uid and writable by nobody else (no group or other write
//!   bit); anything else is refused with a usage error (exit 2) naming the
//!   path, since nobody else must have been able to plant what is in it;
//! - nothing is followed: every directory is opened from its parent's fd
//!   with `O_NOFOLLOW`, every file with `O_NOFOLLOW` from its directory's fd,
//!   so a symbolic link anywhere beneath the root is refused, never
//!   followed, and no path is resolved twice;
//! - what pipework creates is 0700 (directories) and 0600 (files), set with
//!   `fchmod` after creation so the umask plays no part.
//!
//! The directories above the state directory are not checked: they are the
//! administrator's choice (`/run` by default).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::{Error, Result};

/// The mode of every directory pipework creates in its state.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file pipework creates in its state.
pub const FILE_MODE: u32 = 0o600;

/// How to open a file beneath a [`Dir`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenHow {
    /// Read only; a missing file is `None`.
    Read,
    /// Created if missing, neither truncated nor appended to (lock files).
    Create,
    /// Created if missing, emptied.
    Truncate,
    /// Created if missing, every write at its end (logs).
    Append,
}

/// A directory beneath (or at) the state root, verified and held open.
///
/// Clones share the descriptor (a [`crate::state::StateDir`] keeps the
/// ones it verified on opening); listing never reads through it, so no
/// clone sees another's directory offset.
#[derive(Clone, Debug)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

fn untrusted(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::usage(format!(
        "refusing the state directory: {} {why}",
        path.display()
    ))
}

fn io_failed(what: &str, path: &Path, e: Errno) -> Error {
    Error::failed(format!("cannot {what} {}", path.display())).with_source(std::io::Error::from(e))
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn is_file(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

/// One name inside a directory: no separator, not `.` or `..`, not empty.
fn check_name(dir: &Path, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::usage(format!(
            "{name:?} is not a valid name in {}",
            dir.display()
        )));
    }
    Ok(())
}

/// The parts of a relative path, each checked.
pub fn components(rel: &str) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(s) => {
                let s = s
                    .to_str()
                    .ok_or_else(|| Error::usage(format!("{rel:?} is not a valid state path")))?;
                out.push(s);
            }
            _ => return Err(Error::usage(format!("{rel:?} is not a valid state path"))),
        }
    }
    Ok(out)
}

impl Dir {
    /// Opens the state root, creating it (and its missing parents) when
    /// `create`; `None` when it does not exist and `create` is false.
    pub fn open_root(path: &Path, create: bool) -> Result<Option<Dir>> {
        if path.as_os_str().is_empty() {
            return Err(Error::usage("the state directory is an empty path"));
        }
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
        let mut created = false;
        let fd = loop {
            match nix::fcntl::open(path, flags, Mode::empty()) {
                Ok(fd) => break fd,
                Err(Errno::ENOENT) if create && !created => {
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        use std::os::unix::fs::DirBuilderExt;
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(DIR_MODE)
                            .create(parent)
                            .map_err(|e| {
                                Error::failed(format!("cannot create {}", parent.display()))
                                    .with_source(e)
                            })?;
                    }
                    match nix::unistd::mkdir(path, Mode::from_bits_truncate(DIR_MODE)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io_failed("create", path, e)),
                    }
                    created = true;
                }
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ELOOP) => return Err(untrusted(path, "is a symbolic link")),
                Err(Errno::ENOTDIR) => return Err(untrusted(path, "is not a directory")),
                Err(e) => return Err(io_failed("open", path, e)),
            }
        };
        let d = Dir {
            fd: Arc::new(fd),
            path: path.to_path_buf(),
        };
        if created {
            d.fix_mode(DIR_MODE)?;
        }
        d.verify()?;
        Ok(Some(d))
    }

    /// A directory taken as given (its path followed as usual, nothing
    /// verified): for [`crate::state::write_atomic`] outside the state.
    pub fn open_unverified(path: &Path) -> Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|e| io_failed("open", path, e))?;
        Ok(Dir {
            fd: Arc::new(fd),
            path: path.to_path_buf(),
        })
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path that names this very directory (`/proc/self/fd/N`), for the
    /// calls that only take a path (`bind`): it cannot be redirected.
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    fn fix_mode(&self, mode: u32) -> Result<()> {
        fchmod(&self.fd, Mode::from_bits_truncate(mode))
            .map_err(|e| io_failed("set the mode of", &self.path, e))
    }

    /// Owned by us, a directory, writable by nobody else.
    fn verify(&self) -> Result<()> {
        let st = fstat(&self.fd).map_err(|e| io_failed("stat", &self.path, e))?;
        if !is_dir(&st) {
            return Err(untrusted(&self.path, "is not a directory"));
        }
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != me {
            return Err(untrusted(
                &self.path,
                format_args!("is owned by uid {}, not {me}", st.st_uid),
            ));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(untrusted(
                &self.path,
                format_args!(
                    "is writable by group or others (mode {:o})",
                    st.st_mode & 0o7777
                ),
            ));
        }
        Ok(())
    }

    /// A directory in this one, verified; created (0700) when `create`.
    pub fn sub(&self, name: &str, create: bool) -> Result<Option<Dir>> {
        check_name(&self.path, name)?;
        let path = self.path.join(name);
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
        let mut created = false;
        let fd = loop {
            match openat(&self.fd, name, flags, Mode::empty()) {
                Ok(fd) => break fd,
                Err(Errno::ENOENT) if create && !created => {
                    match mkdirat(&self.fd, name, Mode::from_bits_truncate(DIR_MODE)) {
                        Ok(()) => created = true,
                        // Someone else made it: it is verified like any other.
                        Err(Errno::EEXIST) => created = true,
                        Err(e) => return Err(io_failed("create", &path, e)),
                    }
                }
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ELOOP) => return Err(untrusted(&path, "is a symbolic link")),
                Err(Errno::ENOTDIR) => {
                    let st = fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
                    let why = match st {
                        Ok(st)
                            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
                                == SFlag::S_IFLNK =>
                        {
                            "is a symbolic link"
                        }
                        _ => "is not a directory",
                    };
                    return Err(untrusted(&path, why));
                }
                Err(e) => return Err(io_failed("open", &path, e)),
            }
        };
        let d = Dir {
            fd: Arc::new(fd),
            path,
        };
        if created {
            // Only a directory we own can be fixed; verify() says the rest.
            let st = fstat(&d.fd).map_err(|e| io_failed("stat", &d.path, e))?;
            if st.st_uid == nix::unistd::geteuid().as_raw() && st.st_mode & 0o7777 != DIR_MODE {
                d.fix_mode(DIR_MODE)?;
            }
        }
        d.verify()?;
        Ok(Some(d))
    }

    /// Walks `rel` (directories separated by `/`) from here.
    pub fn walk(&self, rel: &str, create: bool) -> Result<Option<Dir>> {
        let mut cur: Option<Dir> = None;
        for c in components(rel)? {
            let next = match &cur {
                None => self.sub(c, create)?,
                Some(d) => d.sub(c, create)?,
            };
            match next {
                Some(d) => cur = Some(d),
                None => return Ok(None),
            }
        }
        match cur {
            Some(d) => Ok(Some(d)),
            None => self.reopen().map(Some),
        }
    }

    /// A second handle on the same directory (its own offset for listing).
    fn reopen(&self) -> Result<Dir> {
        Ok(Dir {
            fd: Arc::new(self.reopen_fd()?),
            path: self.path.clone(),
        })
    }

    fn reopen_fd(&self) -> Result<OwnedFd> {
        openat(
            &self.fd,
            ".",
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|e| io_failed("open", &self.path, e))
    }

    /// Opens a file in this directory, never through a symbolic link, and
    /// only if it is a regular file. Files opened for writing are made 0600.
    pub fn open(&self, name: &str, how: OpenHow) -> Result<Option<File>> {
        check_name(&self.path, name)?;
        let path = self.path.join(name);
        let base = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let flags = match how {
            OpenHow::Read => base | OFlag::O_RDONLY,
            OpenHow::Create => base | OFlag::O_WRONLY | OFlag::O_CREAT,
            OpenHow::Truncate => base | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC,
            OpenHow::Append => base | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND,
        };
        // O_NONBLOCK would keep a planted FIFO from hanging us; only root can
        // plant one in a verified directory, and the type check refuses it.
        let fd = match openat(
            &self.fd,
            name,
            flags | OFlag::O_NONBLOCK,
            Mode::from_bits_truncate(FILE_MODE),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if how == OpenHow::Read => return Ok(None),
            Err(Errno::ELOOP) => return Err(untrusted(&path, "is a symbolic link")),
            Err(Errno::EISDIR) => return Err(untrusted(&path, "is a directory")),
            Err(e) => return Err(io_failed("open", &path, e)),
        };
        let st = fstat(&fd).map_err(|e| io_failed("stat", &path, e))?;
        if !is_file(&st) {
            return Err(untrusted(&path, "is not a regular file"));
        }
        // Back to blocking: the callers use ordinary reads and writes.
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags & OFlag::O_APPEND))
            .map_err(|e| io_failed("open", &path, e))?;
        if how != OpenHow::Read
            && st.st_mode & 0o7777 != FILE_MODE
            && st.st_uid == nix::unistd::geteuid().as_raw()
        {
            fchmod(&fd, Mode::from_bits_truncate(FILE_MODE))
                .map_err(|e| io_failed("set the mode of", &path, e))?;
        }
        Ok(Some(File::from(fd)))
    }

    /// The whole content of a file; `None` if there is none.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut f) = self.open(name, OpenHow::Read)? else {
            return Ok(None);
        };
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut b).map_err(|e| {
            Error::failed(format!("cannot read {}", self.path.join(name).display())).with_source(e)
        })?;
        Ok(Some(b))
    }

    /// Replaces `name` with `data` through a temporary file
    /// (`<name without extension>.tmp.<pid>.<random>`) and a rename, both in
    /// this directory: a reader, or a crash, never sees half of it. `gc`
    /// removes the temporary files of writers that died (see
    /// [`parse_temp_name`]).
    pub fn write_atomic(&self, name: &str, data: &[u8]) -> Result<()> {
        check_name(&self.path, name)?;
        let tmp = temp_name(name);
        let path = self.path.join(name);
        let res = (|| -> std::result::Result<(), Errno> {
            let fd = openat(
                &self.fd,
                tmp.as_str(),
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(FILE_MODE),
            )?;
            fchmod(&fd, Mode::from_bits_truncate(FILE_MODE))?;
            let mut f = File::from(fd);
            f.write_all(data)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            renameat(&self.fd, tmp.as_str(), &self.fd, name)
        })();
        if let Err(e) = res {
            let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(io_failed("write", &path, e));
        }
        Ok(())
    }

    /// Removes a file (or a symbolic link: never what it points to); a
    /// missing one is fine.
    pub fn unlink(&self, name: &str) -> Result<()> {
        check_name(&self.path, name)?;
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(io_failed("remove", &self.path.join(name), e)),
        }
    }

    /// Removes an empty directory; a missing or non-empty one is left.
    pub fn rmdir(&self, name: &str) -> Result<()> {
        check_name(&self.path, name)?;
        match unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) | Err(Errno::ENOTEMPTY) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(io_failed("remove", &self.path.join(name), e)),
        }
    }

    /// Removes `name` and everything in it, following no symbolic link
    /// (a link is removed, never what it points to).
    pub fn remove_tree(&self, name: &str) -> Result<()> {
        check_name(&self.path, name)?;
        let st = match fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(io_failed("stat", &self.path.join(name), e)),
        };
        if is_dir(&st) {
            // Not sub(): a directory we remove need not be trusted, only
            // not followed.
            let fd = openat(
                &self.fd,
                name,
                OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
                Mode::empty(),
            )
            .map_err(|e| io_failed("open", &self.path.join(name), e))?;
            let d = Dir {
                fd: Arc::new(fd),
                path: self.path.join(name),
            };
            for (child, _) in d.entries()? {
                d.remove_tree(&child)?;
            }
            match unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(io_failed("remove", &self.path.join(name), e)),
            }
        } else {
            self.unlink(name)
        }
    }

    /// The names in this directory with their `lstat`, `.` and `..` left out.
    pub fn entries(&self) -> Result<Vec<(String, FileStat)>> {
        let mut dir = nix::dir::Dir::from_fd(self.reopen_fd()?)
            .map_err(|e| io_failed("list", &self.path, e))?;
        let mut out = Vec::new();
        for ent in dir.iter() {
            let ent = ent.map_err(|e| io_failed("list", &self.path, e))?;
            let name = OsStr::from_bytes(ent.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let Some(name) = name.to_str() else { continue };
            match fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => out.push((name.to_string(), st)),
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(io_failed("stat", &self.path.join(name), e)),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// `lstat` of a name in this directory; `None` if missing.
    pub fn stat(&self, name: &str) -> Result<Option<FileStat>> {
        check_name(&self.path, name)?;
        match fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(io_failed("stat", &self.path.join(name), e)),
        }
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `x.json` -> `x.tmp.<pid>.<random>` (the name write_atomic writes first).
fn temp_name(name: &str) -> String {
    let stem = match name.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => name,
    };
    format!(
        "{stem}.tmp.{}.{}",
        std::process::id(),
        pipework_model::random::hex(8)
    )
}

/// The writer's pid if `name` is a temporary file of [`Dir::write_atomic`].
pub fn parse_temp_name(name: &str) -> Option<i32> {
    let mut it = name.rsplitn(3, '.');
    let rand = it.next()?;
    let pid = it.next()?;
    let rest = it.next()?;
    if rand.is_empty() || !rand.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if !(rest == "tmp" || rest.ends_with(".tmp")) {
        return None;
    }
    pid.parse::<i32>().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_parse_back() {
        let t = temp_name("eth1.json");
        assert!(t.starts_with("eth1.tmp."), "{t}");
        assert_eq!(parse_temp_name(&t), Some(std::process::id() as i32));
        assert_eq!(
            parse_temp_name(&temp_name("br0")),
            Some(std::process::id() as i32)
        );
        assert_eq!(parse_temp_name("eth1.json"), None);
        assert_eq!(parse_temp_name("guest-123"), None);
        assert_eq!(parse_temp_name("a.tmp.12.xyz"), None);
        assert_eq!(parse_temp_name("a.tmp.x.ab"), None);
    }

    #[test]
    fn names_cannot_escape() {
        assert!(components("../x").is_err());
        assert!(components("/etc").is_err());
        assert_eq!(
            components("attachments/12").unwrap(),
            vec!["attachments", "12"]
        );
        assert!(check_name(Path::new("/s"), "a/b").is_err());
        assert!(check_name(Path::new("/s"), "..").is_err());
    }
}
