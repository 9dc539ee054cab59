//! Closing a packet socket without making this process wait for it.
//!
//! Releasing a packet socket waits for an RCU grace period
//! (`synchronize_net()` in `packet_release`): several milliseconds, more than
//! the rest of an attach. A child process takes over the last reference and
//! exits once we have dropped ours, so that wait happens off our path.
//!
//! The first child of a process shares our memory (`clone(CLONE_VM)`) and
//! runs on a static stack: nothing is copied to start it, and when a
//! short-lived `pipework` exits, tearing down the address space is left to
//! the child, after we are gone. It makes raw system calls only, since it
//! shares our thread's TLS (and so `errno`) while we keep running. Later
//! children, in long-running processes, are plain forks. Either kind closes
//! every other descriptor it inherited (locks, netlink sockets, our stdout)
//! first, and is reaped by whoever inherits it, or by the next call here.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Children not yet reaped.
static CHILDREN: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// Hands the last close of `sock` to a child process.
pub fn close_deferred(sock: OwnedFd) {
    reap();
    let mut p = [0i32; 2];
    // SAFETY: pipe2 with a valid array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return; // dropping `sock` here closes it the slow way
    }
    let (r, w) = (p[0], p[1]);
    let fds = KeptFds {
        sock: sock.as_raw_fd(),
        pipe: r,
    };
    let pid = spawn(fds);
    // Our reference goes first, then the pipe's end tells the child to exit.
    drop(sock);
    // SAFETY: closing fds we own.
    unsafe {
        libc::close(r);
        libc::close(w);
    }
    if pid > 0 {
        if let Ok(mut v) = CHILDREN.lock() {
            v.push(pid);
        }
    }
}

/// Reaps the children that have exited.
fn reap() {
    if let Ok(mut v) = CHILDREN.lock() {
        // SAFETY: waitpid on our own children, non-blocking.
        v.retain(|&pid| unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0);
    }
}

/// The two descriptors a child keeps: the socket and the pipe it waits on.
#[derive(Clone, Copy)]
struct KeptFds {
    sock: i32,
    pipe: i32,
}

impl KeptFds {
    fn pack(self) -> usize {
        ((self.sock as u32 as usize) << 32) | self.pipe as u32 as usize
    }

    fn unpack(v: usize) -> KeptFds {
        KeptFds {
            sock: (v >> 32) as u32 as i32,
            pipe: v as u32 as i32,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn spawn(fds: KeptFds) -> libc::pid_t {
    #[repr(C, align(16))]
    struct Stack([u8; 16 * 1024]);
    static mut STACK: Stack = Stack([0; 16 * 1024]);
    static STACK_TAKEN: AtomicBool = AtomicBool::new(false);

    if STACK_TAKEN.swap(true, Ordering::AcqRel) {
        return fork(fds);
    }
    // SAFETY: the stack is ours alone (claimed above, never given back) and
    // outlives the child, which shares this address space; the child runs
    // `shared_child`, which makes raw system calls only.
    unsafe {
        let top = std::ptr::addr_of_mut!(STACK).cast::<u8>().add(16 * 1024);
        let pid = libc::clone(
            shared_child,
            top.cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            fds.pack() as *mut libc::c_void,
        );
        if pid < 0 {
            return fork(fds);
        }
        pid
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn spawn(fds: KeptFds) -> libc::pid_t {
    fork(fds)
}

#[cfg(target_arch = "x86_64")]
extern "C" fn shared_child(arg: *mut libc::c_void) -> libc::c_int {
    let fds = KeptFds::unpack(arg as usize);
    // SAFETY: raw system calls on descriptors of this child's own table.
    unsafe {
        close_all_but(fds, |first, last| {
            raw::syscall3(libc::SYS_close_range, first as u64, last as u64, 0);
        });
        let mut b = 0u8;
        while raw::syscall3(libc::SYS_read, fds.pipe as u64, &mut b as *mut u8 as u64, 1)
            == -(libc::EINTR as i64)
        {}
    }
    // glibc's clone makes the exit system call with this; the exit closes
    // the socket.
    0
}

fn fork(fds: KeptFds) -> libc::pid_t {
    // SAFETY: the child only makes async-signal-safe calls and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            close_all_but(fds, |first, last| {
                libc::syscall(libc::SYS_close_range, first, last, 0u32);
            });
            let mut b = 0u8;
            while libc::read(fds.pipe, &mut b as *mut u8 as *mut libc::c_void, 1) != 0 {
                if *libc::__errno_location() != libc::EINTR {
                    break;
                }
            }
            libc::_exit(0);
        }
    }
    pid
}

/// Calls `close_range(first, last)` for every range of descriptors but the
/// two kept ones.
fn close_all_but(fds: KeptFds, close_range: impl Fn(u32, u32)) {
    let (lo, hi) = if fds.sock < fds.pipe {
        (fds.sock as u32, fds.pipe as u32)
    } else {
        (fds.pipe as u32, fds.sock as u32)
    };
    if lo > 0 {
        close_range(0, lo - 1);
    }
    if hi > lo + 1 {
        close_range(lo + 1, hi - 1);
    }
    close_range(hi + 1, u32::MAX);
}

#[cfg(target_arch = "x86_64")]
mod raw {
    /// A system call that leaves `errno` alone: returns the kernel's value,
    /// a negative errno on failure.
    pub unsafe fn syscall3(n: libc::c_long, a: u64, b: u64, c: u64) -> i64 {
        let ret: i64;
        // SAFETY: the x86_64 Linux system call convention; the caller
        // vouches for the arguments.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") n => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_fds_round_trip() {
        let f = KeptFds {
            sock: 7,
            pipe: 1023,
        };
        let g = KeptFds::unpack(f.pack());
        assert_eq!((g.sock, g.pipe), (7, 1023));
    }

    #[test]
    fn ranges_skip_exactly_the_kept_fds() {
        let ranges = std::cell::RefCell::new(Vec::new());
        close_all_but(KeptFds { sock: 5, pipe: 3 }, |a, b| {
            ranges.borrow_mut().push((a, b))
        });
        assert_eq!(*ranges.borrow(), vec![(0, 2), (4, 4), (6, u32::MAX)]);
        ranges.borrow_mut().clear();
        close_all_but(KeptFds { sock: 0, pipe: 1 }, |a, b| {
            ranges.borrow_mut().push((a, b))
        });
        assert_eq!(*ranges.borrow(), vec![(2, u32::MAX)]);
    }
}
