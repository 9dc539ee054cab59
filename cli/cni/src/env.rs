//! The invocation's environment (`CNI_CONTAINERID`, `CNI_NETNS`,
//! `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`): as the runtime set it, then checked.

use std::collections::BTreeMap;

use pipework_core::model::IfName;

use crate::config::{self, code, CniError};

/// The `CNI_*` variables as the caller read them; unset and empty are alike.
#[derive(Clone, Debug, Default)]
pub struct RawEnv {
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
    /// Where delegated IPAM plugins are found.
    pub path: Option<String>,
}

/// The environment, checked.
pub(crate) struct Env {
    pub container_id: String,
    pub netns: Option<String>,
    pub ifname: IfName,
    pub args: BTreeMap<String, String>,
}

impl Env {
    /// Checks every variable and names all the bad ones at once.
    pub fn parse(raw: &RawEnv, need_netns: bool) -> Result<Env, CniError> {
        let var = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let mut bad = Vec::new();
        let container_id = var(&raw.container_id).unwrap_or_default();
        if !config::valid_container_id(&container_id) {
            bad.push("CNI_CONTAINERID");
        }
        let netns = var(&raw.netns);
        if need_netns && netns.is_none() {
            bad.push("CNI_NETNS");
        }
        let ifname = var(&raw.ifname).and_then(|i| i.parse::<IfName>().ok());
        if ifname.is_none() {
            bad.push("CNI_IFNAME");
        }
        let args = config::parse_cni_args(&var(&raw.args).unwrap_or_default()).ok();
        if args.is_none() {
            bad.push("CNI_ARGS");
        }
        match (ifname, args) {
            (Some(ifname), Some(args)) if bad.is_empty() => Ok(Env {
                container_id,
                netns,
                ifname,
                args,
            }),
            _ => Err(CniError::new(
                code::INVALID_ENV,
                format!(
                    "missing or invalid environment variables: {}",
                    bad.join(", ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_variable_is_named() {
        let raw = RawEnv {
            container_id: Some("-bad".into()),
            netns: Some(String::new()),
            ifname: Some("eth0".into()),
            args: Some("novalue".into()),
            path: None,
        };
        let e = Env::parse(&raw, true)
            .err()
            .map(|e| e.msg)
            .unwrap_or_default();
        assert!(
            e.contains("CNI_CONTAINERID") && e.contains("CNI_NETNS") && e.contains("CNI_ARGS"),
            "{e}"
        );
        assert!(!e.contains("CNI_IFNAME"), "{e}");
        let good = RawEnv {
            container_id: Some("c1".into()),
            ifname: Some("eth0".into()),
            ..RawEnv::default()
        };
        assert!(Env::parse(&good, false).is_ok());
        assert!(Env::parse(&good, true).is_err());
    }
}
