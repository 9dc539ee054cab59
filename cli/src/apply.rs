//! `pipework apply <file> [--prune]`: reads and checks the whole file first
//! (a bad line changes nothing), then makes it hold.

use crate::out::{errln, outln};
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
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", file.display())))?;
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
