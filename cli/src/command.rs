//! What a command line asks for, once parsed.

use std::path::PathBuf;
use std::time::Duration;

use pipework_core::docker::Endpoint;
use pipework_core::model::{AttachRequest, GuestRef, IfName};
use pipework_core::routing::{RouteCommand, RuleCommand};
use pipework_core::wait::WaitFor;

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Attach(Box<AttachRequest>),
    Route {
        guest: GuestRef,
        cmd: RouteCommand,
    },
    Rule {
        guest: GuestRef,
        cmd: RuleCommand,
    },
    Tc {
        guest: GuestRef,
        args: Vec<String>,
    },
    Wait {
        ifname: IfName,
        timeout: Option<Duration>,
        wait_for: WaitFor,
    },
    Detach {
        guest: GuestRef,
        ifname: Option<IfName>,
    },
    /// `inspect <guest>`, or every guest (`None`: `--all`, `inspect-all`).
    Inspect {
        guest: Option<GuestRef>,
        format: InspectFormat,
    },
    List,
    Gc,
    Check {
        guest: Option<GuestRef>,
        repair: bool,
    },
    Daemon {
        idle_exit: Option<Duration>,
        /// `--reconcile` (or `--engine`): follow a container engine; the
        /// engine is `DOCKER_HOST`'s (or the usual sockets) when `None`.
        reconcile: bool,
        engine: Option<Endpoint>,
        key: Option<String>,
    },
    Apply {
        file: PathBuf,
        prune: bool,
    },
    Demo,
    Help,
    Version,
}

/// How `inspect` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InspectFormat {
    /// pipework's own JSON.
    #[default]
    Json,
    /// network-wrapper's field names and shapes.
    NetworkWrapper,
}
