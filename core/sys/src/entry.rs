//! The program's entry point, in place of std's start-up.
//!
//! std's start-up (`lang_start`) installs a stack-overflow handler (an
//! alternate signal stack, SIGSEGV and SIGBUS handlers), and for the main
//! thread's guard page it asks glibc's `pthread_getattr_np`, which reads and
//! parses `/proc/self/maps` (the kernel prints every mapping, path
//! included). `perf stat -r 300` of `pipework --version` on the development
//! VM: 1.18 and 1.42 ms of task clock with it, 0.69 and 0.74 without (an
//! empty Rust program: 0.83-0.85 against 0.70-0.77), where a whole attach
//! takes 2.5 to 3.5. pipework starts once per command, so it does what the
//! rest of that start-up does itself and skips the handler: a stack
//! overflow still ends the process (the kernel's guard gap), with SIGSEGV
//! instead of std's message.
//!
//! What stays as std would have it: the standard descriptors are open (on
//! `/dev/null` if the caller closed one, so that no socket or state file of
//! ours becomes "standard output"), SIGPIPE is ignored (a closed pipe is
//! an `EPIPE` error, not a silent death half-way through an attach; std's
//! `Command` still gives children the default), a panic that reaches the
//! top exits 101 and buffered standard output is flushed at exit
//! (`std::process::exit`). Arguments and the environment need no start-up:
//! std on glibc reads them from its own `.init_array` entry.

/// Defines the C `main` of the binary that invokes it, running `$run` with
/// [`start`]. The binary says `#![no_main]`.
#[macro_export]
macro_rules! entry_point {
    ($run:path) => {
        #[no_mangle]
        extern "C" fn main(
            _argc: ::std::ffi::c_int,
            _argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            $crate::entry::start($run)
        }
    };
}

/// Prepares the process as described above, runs `run` and exits with its
/// code.
pub fn start(run: fn() -> u8) -> ! {
    open_standard_descriptors();
    // SAFETY: SIG_IGN for SIGPIPE, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let code = std::panic::catch_unwind(run).unwrap_or(101);
    std::process::exit(code.into())
}

/// Opens `/dev/null` on any of descriptors 0, 1 and 2 that is closed (one
/// `poll` tells which; the lowest free descriptor is the one `open` returns,
/// so in order they land where they belong).
fn open_standard_descriptors() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: three initialised pollfd entries, no wait.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: a constant NUL-terminated path.
        let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if got != p.fd {
            // What std does too: running on with a state file or a socket
            // as standard output would be worse than not running.
            std::process::abort();
        }
    }
}
