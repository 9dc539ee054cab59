//! What `pipework check` finds: one way the host differs from what an
//! attachment record promises, and what a repair made of it.

use serde::Serialize;

/// What became of one difference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Repair {
    /// Only reported: no repair was asked for.
    NotAsked,
    /// Put back as the record says.
    Repaired,
    /// Tried, and the host refused: why.
    Failed(String),
    /// Nothing pipework may do brings it back (the link is gone...): why.
    Impossible(String),
}

impl Repair {
    /// True when the host still differs from the record.
    pub fn remains(&self) -> bool {
        !matches!(self, Repair::Repaired)
    }

    /// What a difference nothing can repair is left as: not asked about
    /// without a repair scope, else impossible, saying why.
    pub fn left(scope: RepairScope, why: &str) -> Repair {
        if scope.host_side() {
            Repair::Impossible(why.to_string())
        } else {
            Repair::NotAsked
        }
    }

    /// The outcome of a repair step.
    pub fn of<E: std::fmt::Display>(r: std::result::Result<(), E>) -> Repair {
        match r {
            Ok(()) => Repair::Repaired,
            Err(e) => Repair::Failed(e.to_string()),
        }
    }
}

/// One difference between a record and the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What differs, a stable word for scripts: `guest`, `link`, `mac`,
    /// `address`, `route`, `host_peer`, `bridge`, `ovs_port`, `ovs_vlan`,
    /// `ovs_flows`, `shim`, `dhcp`, `vf`.
    pub what: &'static str,
    /// The difference in words, naming what is missing or wrong.
    pub detail: String,
    pub repair: Repair,
}

impl Finding {
    pub fn new(what: &'static str, detail: impl Into<String>, repair: Repair) -> Finding {
        Finding {
            what,
            detail: detail.into(),
            repair,
        }
    }
}

/// Whether (and how far) `check` repairs what it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairScope {
    /// Report only.
    None,
    /// What drivers keep on the host side (OVS flows, port tags): what the
    /// daemon heals on its own.
    HostSide,
    /// Everything that can be put back, the guest's addresses and routes too.
    All,
}

impl RepairScope {
    pub fn host_side(self) -> bool {
        self != RepairScope::None
    }
    pub fn guest_side(self) -> bool {
        self == RepairScope::All
    }
}
