//! The OVS driver's journal steps, and the layout older records have them
//! in.

use std::path::PathBuf;

use pipework_base::driver::DriverKind;
use pipework_base::error::Result;
use pipework_base::journal::DriverData;
use serde::{Deserialize, Serialize};

/// The OVS driver's journal steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum OvsStep {
    /// The Port and Interface rows named `port` stamped with `cookie`, and
    /// the bridge if pipework created it and it is left empty. Recorded
    /// before the transaction is sent: if the reply is lost, the undo still
    /// finds the rows by name and cookie (or finds none).
    Port {
        ovsdb: String,
        bridge: String,
        port: String,
        cookie: String,
    },
    /// The port-security flows carrying `cookie`.
    Flows {
        rundir: PathBuf,
        bridge: String,
        cookie: String,
    },
}

/// [`OvsStep`] as records before the typed steps have it: the same fields,
/// tagged `undo` instead of `op`.
#[derive(Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
enum LegacyOvsStep {
    Port {
        ovsdb: String,
        bridge: String,
        port: String,
        cookie: String,
    },
    Flows {
        rundir: PathBuf,
        bridge: String,
        cookie: String,
    },
}

impl From<LegacyOvsStep> for OvsStep {
    fn from(l: LegacyOvsStep) -> OvsStep {
        match l {
            LegacyOvsStep::Port {
                ovsdb,
                bridge,
                port,
                cookie,
            } => OvsStep::Port {
                ovsdb,
                bridge,
                port,
                cookie,
            },
            LegacyOvsStep::Flows {
                rundir,
                bridge,
                cookie,
            } => OvsStep::Flows {
                rundir,
                bridge,
                cookie,
            },
        }
    }
}

pub(super) fn read_step(data: &DriverData) -> Result<OvsStep> {
    data.decode_or_legacy::<OvsStep, LegacyOvsStep>(DriverKind::Ovs)
}
