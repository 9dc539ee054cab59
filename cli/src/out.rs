//! Standard output and standard error that never panic.
//!
//! `println!` panics when stdout is a closed pipe (`pipework list | head
//! -1`) or a full disk (`> /dev/full`), after the command may already have
//! changed the host. Here a failed write is remembered, later output is
//! dropped, and `main` says once on stderr that the output was lost; the
//! exit code still tells what happened to the host (see README, "Errors and
//! exit codes"). A failed write to stderr is dropped: there is nowhere left
//! to say it.

use std::fmt;
use std::io::{self, Write};
use std::sync::OnceLock;

static LOST: OnceLock<String> = OnceLock::new();

/// Writes to stdout, unless an earlier write failed.
pub fn stdout(args: fmt::Arguments<'_>) {
    if LOST.get().is_some() {
        return;
    }
    let mut o = io::stdout().lock();
    if let Err(e) = o.write_fmt(args).and_then(|()| o.flush()) {
        let _ = LOST.set(e.to_string());
    }
}

/// Writes to stderr; a failure is dropped.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Why stdout could not be written, if it could not.
pub fn lost() -> Option<&'static str> {
    LOST.get().map(String::as_str)
}

/// `println!` that does not panic.
macro_rules! outln {
    () => { $crate::out::stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` that does not panic.
macro_rules! out {
    ($($t:tt)*) => { $crate::out::stdout(format_args!($($t)*)) };
}

/// `eprintln!` that does not panic.
macro_rules! errln {
    ($($t:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($t)*))) };
}

pub(crate) use {errln, out, outln};
