//! `pipework apply <file> [--prune]`: reads and checks the whole file first
//! (a bad line changes nothing), then makes it hold.

use crate::out::{errln, outln};
use std::io::Read;
use std::path::Path;

use pipework_core::error::{Error, Result};
use pipework_core::settings::Settings;
use pipework_daemon::declare::{self, apply::Entry};
use pipework_drivers::Drivers;

pub async fn run(
    file: &Path,
    prune: bool,
    json: bool,
    drivers: &Drivers,
    settings: &Settings,
) -> Result<u8> {
    let text = read_bounded(file)?;
    let abs = std::path::absolute(file)
        .map_err(|e| Error::usage(format!("cannot resolve {}: {e}", file.display())))?;
    let origin = abs.display().to_string();
    let decls = declare::file::parse(&text, &origin);
    let (intents, errors) = declare::plan(&decls, crate::grammar::parse_attach, None, None);
    if let Some(first) = errors.first() {
        let more = match errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(Error::usage(format!("{first}{more}")));
    }
    let entries = declare::apply::apply(&intents, &origin, prune, drivers, settings).await?;
    if json {
        match serde_json::to_string_pretty(&entries) {
            Ok(s) => outln!("{s}"),
            Err(e) => errln!("pipework: cannot encode JSON: {e}"),
        }
    } else {
        for e in &entries {
            outln!("{:<10} {} {}", e.outcome, e.guest, e.interface);
        }
    }
    let failed: Vec<&Entry> = entries.iter().filter(|e| e.error.is_some()).collect();
    for e in &failed {
        errln!(
            "pipework: {} {}: {}",
            e.guest,
            e.interface,
            e.error.as_deref().unwrap_or_default()
        );
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// The largest file `apply` reads: some 200,000 attachment lines, far past
/// any real host, and a bound for `apply /dev/zero` or a wrong file.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The file as text, read through a reader that stops one byte past the
/// limit: a device or a pipe that never ends is refused, not read forever.
fn read_bounded(file: &Path) -> Result<String> {
    let cannot = |e: std::io::Error| Error::usage(format!("cannot read {}: {e}", file.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::usage(format!(
            "{} is larger than {} MiB: not an apply file",
            file.display(),
            MAX_FILE_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::usage(format!(
            "{} is not UTF-8 text (byte {})",
            file.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}
