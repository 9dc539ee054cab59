//! The newer subcommands (`detach`, `inspect` and its alias `inspect-all`,
//! `list`, `gc`, `check`, `daemon`, `apply`, `demo`): ordinary clap commands, each turned into a
//! [`Command`] with its values checked.

use std::time::Duration;

use clap::Parser;
use pipework_core::docker::Endpoint;

use crate::command::{Command, InspectFormat};
use crate::usage_error::{usage, UsageError};

#[derive(Parser, Debug)]
#[command(
    name = "pipework",
    no_binary_name = true,
    disable_help_subcommand = true
)]
enum Sub {
    /// Remove what an attach created (all of the guest's interfaces, or one).
    Detach {
        guest: String,
        #[arg(short = 'i', value_name = "IF")]
        ifname: Option<String>,
    },
    /// Print a guest's attachments as JSON, with what is true now.
    Inspect {
        guest: Option<String>,
        /// Every guest pipework has records of, alive or gone.
        #[arg(long)]
        all: bool,
        /// json (the default) or network-wrapper (its field names).
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
    },
    /// List every attachment pipework remembers.
    List,
    /// Clean up after guests that are gone.
    Gc,
    /// Compare every attachment (or one guest's) with the host; exit 1 on any difference.
    Check {
        guest: Option<String>,
        #[arg(long)]
        repair: bool,
    },
    /// Keep DHCP leases and, with --reconcile, declared attachments (one per host).
    Daemon {
        /// Exit after this many seconds with nothing to look after.
        #[arg(long, value_name = "SECS")]
        idle_exit: Option<u64>,
        /// Follow the container engine and keep containers' declared attachments.
        #[arg(long)]
        reconcile: bool,
        /// The engine's API (unix:///path or tcp://host:port); implies --reconcile.
        #[arg(long, value_name = "URL")]
        engine: Option<String>,
        /// Handle only containers whose pipework_key equals this.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Make the attachments a file declares hold (idempotent).
    Apply {
        file: String,
        /// Also detach what an earlier version of this file declared.
        #[arg(long)]
        prune: bool,
    },
    /// Two throwaway namespaces on a new bridge, a ping, their JSON, cleanup.
    Demo,
    /// Show the help.
    Help,
    /// Show the version.
    Version,
}

/// Parses a subcommand's arguments (the subcommand first).
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    // network-wrapper's `inspect-all` is `inspect --all`.
    if args.first().is_some_and(|a| a == "inspect-all") {
        let mut v = vec!["inspect".to_string(), "--all".to_string()];
        v.extend(args[1..].iter().cloned());
        return parse(&v);
    }
    let sub = Sub::try_parse_from(args).map_err(|e| {
        let text = e.render().to_string();
        let line = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("bad arguments")
            .trim_start_matches("error: ")
            .to_string();
        usage(line)
    })?;
    Ok(match sub {
        Sub::Detach { guest, ifname } => Command::Detach {
            guest: guest.parse()?,
            ifname: ifname.map(|i| i.parse()).transpose()?,
        },
        Sub::Inspect { guest, all, format } => {
            let format = match format.as_deref() {
                None | Some("json") => InspectFormat::Json,
                Some("network-wrapper") => InspectFormat::NetworkWrapper,
                Some(f) => {
                    return Err(usage(format!(
                        "inspect --format: unknown format '{f}' (json or network-wrapper)"
                    )))
                }
            };
            let guest = match (guest, all) {
                (Some(g), false) => Some(g.parse()?),
                (None, true) => None,
                (Some(g), true) => {
                    return Err(usage(format!(
                        "inspect: give a guest or --all, not both (got '{g}' and --all)"
                    )))
                }
                (None, false) => {
                    return Err(usage("inspect needs a guest, or --all for every guest"))
                }
            };
            Command::Inspect { guest, format }
        }
        Sub::List => Command::List,
        Sub::Gc => Command::Gc,
        Sub::Check { guest, repair } => Command::Check {
            guest: guest.map(|g| g.parse()).transpose()?,
            repair,
        },
        Sub::Daemon {
            idle_exit,
            reconcile,
            engine,
            key,
        } => {
            let engine = engine
                .map(|e| Endpoint::parse(&e))
                .transpose()
                .map_err(|e| usage(format!("bad --engine: {}", e.message())))?;
            let reconcile = reconcile || engine.is_some();
            if reconcile && idle_exit.is_some() {
                return Err(usage(
                    "--idle-exit does not go with --reconcile: a reconciler waits for containers",
                ));
            }
            if key.is_some() && !reconcile {
                return Err(usage("--key is for --reconcile"));
            }
            if key.as_deref() == Some("") {
                return Err(usage("--key needs a value"));
            }
            Command::Daemon {
                idle_exit: idle_exit.map(Duration::from_secs),
                reconcile,
                engine,
                key,
            }
        }
        Sub::Apply { file, prune } => {
            if file.is_empty() {
                return Err(usage("apply needs a file"));
            }
            Command::Apply {
                file: file.into(),
                prune,
            }
        }
        Sub::Demo => Command::Demo,
        Sub::Help => Command::Help,
        Sub::Version => Command::Version,
    })
}
