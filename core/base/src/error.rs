//! The error every pipework operation returns: a kind (which decides the exit
//! code), a one-line message, and the context it gathered on the way up (guest,
//! interface, step).

use std::fmt;

use pipework_model::ParseError;
use pipework_sys::netlink::NlError;

/// What went wrong, in the terms the exit code cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: a malformed argument, an unknown interface, a name already
    /// taken. Nothing was changed. Exit code 2.
    Usage,
    /// Something failed while doing the work; whatever was done is undone.
    Failed,
    /// A wait ran out of time.
    Timeout,
}

impl ErrorKind {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage => 2,
            ErrorKind::Failed | ErrorKind::Timeout => 1,
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// Outermost first once complete: `["guest web1", "interface eth1", "step rename"]`.
    context: Vec<String>,
    source: Option<Source>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, message)
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Failed, message)
    }

    pub fn timeout(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Timeout, message)
    }

    pub fn with_source(mut self, source: impl Into<Source>) -> Error {
        self.source = Some(source.into());
        self
    }

    /// Adds an outer layer of context ("guest web1", "step rename").
    pub fn context(mut self, ctx: impl Into<String>) -> Error {
        let ctx = ctx.into();
        if !self.context.contains(&ctx) {
            self.context.insert(0, ctx);
        }
        self
    }

    /// Adds to the message (e.g. a note about an incomplete rollback).
    pub fn append_message(mut self, extra: &str) -> Error {
        self.message.push_str(extra);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Reclassifies, e.g. a missing interface found during validation is a usage error.
    pub fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }

    /// The netlink errno underneath, if this came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|s| s as _);
        while let Some(e) = cur {
            if let Some(nl) = e.downcast_ref::<NlError>() {
                return nl.errno();
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return io.raw_os_error();
            }
            cur = e.source();
        }
        None
    }

    /// The full chain, one cause per line, for `-v`.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|s| s as _);
        while let Some(e) = cur {
            out.push_str("\n  caused by: ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}

impl fmt::Display for Error {
    /// One line: `guest web1, interface eth1, step rename: <message>: <cause>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context.join(", "))?;
        }
        f.write_str(&self.message)?;
        if let Some(src) = &self.source {
            let s = src.to_string();
            if !s.is_empty() && !self.message.contains(&s) {
                write!(f, ": {s}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as _)
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Error {
        Error::usage(e.to_string())
    }
}

impl From<NlError> for Error {
    fn from(e: NlError) -> Error {
        Error::failed(e.op().to_string()).with_source(e)
    }
}

/// Adds context to any result whose error converts into [`Error`].
pub trait Context<T> {
    /// Wraps the error with "step <name>".
    fn step(self, name: &str) -> Result<T>;
    /// Wraps the error with an arbitrary context string.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn step(self, name: &str) -> Result<T> {
        self.map_err(|e| e.into().context(format!("step {name}")))
    }
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::failed("I/O error").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_context() {
        let e = Error::failed("cannot rename eth1")
            .with_source(std::io::Error::from_raw_os_error(libc::EEXIST))
            .context("step rename")
            .context("interface eth1")
            .context("guest web1");
        let s = e.to_string();
        assert!(!s.contains('\n'));
        assert!(s.starts_with("guest web1, interface eth1, step rename: cannot rename eth1: "));
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(e.kind().exit_code(), 1);
        assert_eq!(Error::usage("x").kind().exit_code(), 2);
    }
}
