//! The log of a command run without `-v` or `PIPEWORK_LOG`: warnings and
//! errors on stderr, in tracing-subscriber's `fmt` layout (no time, no
//! target), and nothing else.
//!
//! Why not `tracing_subscriber::fmt()` itself, as `-v` uses: its span
//! registry allocates a slab for 4096 threads (eight fresh pages, each a
//! page fault) and builds the formatting layers at every start, for a log
//! that is empty in almost every run. This keeps no spans (none is enabled
//! at the warning level) and formats only when there is something to say.
//! The unit tests hold its lines to `fmt`'s.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Where lines go: stderr, or a buffer in the tests.
type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;

pub struct WarnLog {
    ansi: bool,
    sink: Sink,
}

impl WarnLog {
    /// Writes to stderr; `ansi` colours the level as `fmt` does.
    pub fn stderr(ansi: bool) -> WarnLog {
        WarnLog {
            ansi,
            // A log line lost (stderr closed) is only a log line: never a
            // panic half-way through an attach.
            sink: Box::new(|line| {
                let _ = std::io::stderr().write_all(line);
            }),
        }
    }

    #[cfg(test)]
    fn to(sink: Sink) -> WarnLog {
        WarnLog { ansi: false, sink }
    }
}

fn wanted(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::WARN
}

impl Subscriber for WarnLog {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        wanted(meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Only a span at warning level gets here; nothing is kept of it.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let level = *event.metadata().level();
        let (name, colour) = match level {
            Level::ERROR => ("ERROR", 31),
            Level::WARN => (" WARN", 33),
            Level::INFO => (" INFO", 32),
            Level::DEBUG => ("DEBUG", 34),
            Level::TRACE => ("TRACE", 35),
        };
        let mut line = String::new();
        if self.ansi {
            let _ = write!(line, "\x1b[{colour}m{name}\x1b[0m ");
        } else {
            let _ = write!(line, "{name} ");
        }
        let mut fields = Fields {
            line: &mut line,
            ansi: self.ansi,
            first: true,
        };
        event.record(&mut fields);
        line.push('\n');
        (self.sink)(line.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// `fmt`'s default field layout: the message, then `name=value` (Debug),
/// space-separated; the message's control characters escaped; the `log`
/// crate's own metadata fields left out.
struct Fields<'a> {
    line: &'a mut String,
    ansi: bool,
    first: bool,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"))
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        if !std::mem::take(&mut self.first) {
            self.line.push(' ');
        }
        if name == "message" {
            let _ = write!(Escaping(self.line), "{value:?}");
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        if self.ansi {
            let _ = write!(self.line, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m{value:?}");
        } else {
            let _ = write!(self.line, "{name}={value:?}");
        }
    }
}

/// Writes through, with the characters a terminal would act on escaped
/// (as `fmt` does for messages: a name from the network or a container
/// cannot drive the operator's terminal).
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' => {
                    let _ = write!(self.0, "\\x{:02x}", c as u32);
                }
                c if ('\u{80}'..='\u{9f}').contains(&c) => {
                    let _ = write!(self.0, "\\u{{{:x}}}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn events() {
        let name = "pw\x1b[31m1";
        let e = std::io::Error::other("gone");
        tracing::warn!(
            "bridge port {name} is not forwarding yet (state {:?})",
            Some(2)
        );
        tracing::warn!(link = %name, "deleting a link an interrupted attach left");
        tracing::warn!(key = ?"a b", n = 3, "cannot save lease: {e}");
        tracing::error!(r#type = "x", "broken \u{85} line");
        tracing::info!("not shown");
        let _span = tracing::info_span!("attach", guest = "g1").entered();
        tracing::warn!("inside a span");
    }

    #[test]
    fn lines_are_those_of_tracing_subscriber_fmt() {
        let ours = Arc::new(Mutex::new(Vec::<u8>::new()));
        let o = ours.clone();
        tracing::subscriber::with_default(
            WarnLog::to(Box::new(move |l| o.lock().unwrap().extend_from_slice(l))),
            events,
        );
        let theirs = Arc::new(Mutex::new(Vec::<u8>::new()));
        let t = theirs.clone();
        let fmt = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || Capture(t.clone()))
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(fmt, events);
        let ours = String::from_utf8(ours.lock().unwrap().clone()).unwrap();
        let theirs = String::from_utf8(theirs.lock().unwrap().clone()).unwrap();
        assert_eq!(ours.lines().count(), 5, "{ours}");
        assert_eq!(ours, theirs);
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
