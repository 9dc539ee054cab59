//! pipework as a CNI plugin: the CNI spec's verbs (ADD, CHECK, DEL, GC,
//! STATUS, VERSION) over pipework's attach core.
//!
//! What this crate owns: the network configuration and its keys, the
//! `CNI_*` environment, addressing (the built-in `static` IPAM, pipework's
//! own DHCP client, or a delegated IPAM plugin from `CNI_PATH`), the result
//! and error shapes of each spec version, and the labels by which DEL, CHECK
//! and GC find an attachment. ADD builds the same `AttachRequest` as the
//! command line, so every driver works and every change, the IPAM result's
//! routes included, is journaled by the core: undone if the attach fails,
//! and by DEL.
//!
//! What it must not do: parse pipework's command-line grammar (that is the
//! CLI's), print anything (it returns the result or error JSON the spec
//! demands, and the caller prints it), or touch the kernel other than through
//! `pipework-core`.

#![forbid(unsafe_code)]

mod add;
mod addressing;
mod check;
pub mod config;
mod del;
mod delegate;
mod env;
mod request;
mod status;

use pipework_core::driver::DriverSet;
use pipework_core::error::{Error, ErrorKind};
use pipework_core::settings::Settings;

use config::{code, CniError, NetConf};
pub use env::RawEnv;

/// What the plugin answers the runtime.
#[derive(Debug)]
pub struct Reply {
    /// For stdout: the result, the error object, the version object, or
    /// nothing (DEL, CHECK, GC, STATUS succeed silently).
    pub stdout: Option<String>,
    /// For stderr: the error in one line, for whoever reads the runtime's log.
    pub stderr: Option<String>,
    /// The process exit code: 0, or 1 with an error object on stdout.
    pub exit_code: u8,
}

impl Reply {
    fn success(stdout: Option<String>) -> Reply {
        Reply {
            stdout,
            stderr: None,
            exit_code: 0,
        }
    }

    /// The spec's error object on stdout, exit code 1.
    pub fn failure(e: &CniError) -> Reply {
        let detail = if e.details.is_empty() {
            String::new()
        } else {
            format!(": {}", e.details)
        };
        Reply {
            stdout: Some(serde_json::to_string(e).unwrap_or_default()),
            stderr: Some(format!("pipework (CNI): {}{detail}", e.msg)),
            exit_code: 1,
        }
    }
}

/// One invocation: the configuration it carries, how it came, and what
/// pipework needs to serve it.
pub(crate) struct Invocation<'a> {
    pub conf: NetConf,
    /// The configuration as received, for a delegated plugin.
    pub input: &'a [u8],
    /// The spec version of the configuration: the result has this shape.
    pub version: String,
    pub env: &'a RawEnv,
    pub settings: &'a Settings,
    pub drivers: &'a dyn DriverSet,
}

impl Invocation<'_> {
    /// The IPAM plugin to delegate to, if the configuration names one.
    pub fn delegated(&self) -> Option<&str> {
        addressing::delegated(&self.conf)
    }

    /// Runs the delegated IPAM plugin, if any, with `command`.
    pub fn delegate(&self, command: &str) -> Result<Option<config::CniResult>, CniError> {
        match self.delegated() {
            Some(p) => delegate::exec(p, command, self.input, self.env.path.as_deref()),
            None => Ok(None),
        }
    }
}

/// Serves `command` (`CNI_COMMAND`) for the configuration `input` (stdin).
pub async fn run(
    command: &str,
    input: &[u8],
    env: &RawEnv,
    settings: &Settings,
    drivers: &dyn DriverSet,
) -> Reply {
    if command == "VERSION" {
        return Reply::success(Some(version(input)));
    }
    let conf: NetConf = match serde_json::from_slice(input) {
        Ok(c) => c,
        Err(e) => {
            return Reply::failure(&CniError::new(
                code::DECODE,
                format!("cannot decode the network configuration: {e}"),
            ))
        }
    };
    let version = if conf.cni_version.is_empty() {
        "1.1.0".to_string()
    } else {
        conf.cni_version.clone()
    };
    if !config::SUPPORTED_VERSIONS.contains(&version.as_str()) {
        let mut e = CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "CNI version {version} is not supported (supported: {})",
                config::SUPPORTED_VERSIONS.join(", ")
            ),
        );
        e.cni_version = "1.1.0".into();
        return Reply::failure(&e);
    }
    if let Some(e) = unsupported_field(&conf) {
        return Reply::failure(&e);
    }
    let inv = Invocation {
        conf,
        input,
        version,
        env,
        settings,
        drivers,
    };
    let res = match command {
        "ADD" => add::add(&inv).await.map(|r| {
            // Serialising our own result types cannot fail.
            Some(serde_json::to_string(&r).unwrap_or_default())
        }),
        "DEL" => del::del(&inv).await.map(|_| None),
        "CHECK" => check::check(&inv).await.map(|_| None),
        "GC" => del::gc(&inv).await.map(|_| None),
        "STATUS" => status::status(&inv).await.map(|_| None),
        other => Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_COMMAND '{other}' is not ADD, DEL, CHECK, GC, STATUS or VERSION"),
        )),
    };
    match res {
        Ok(out) => Reply::success(out),
        Err(mut e) => {
            e.cni_version = inv.version;
            Reply::failure(&e)
        }
    }
}

/// A key we do not know is most likely a typo that would silently change
/// the attachment (`"hots": "br0"`): refuse it, naming key and value.
/// Protocol keys the runtime may add are accepted.
fn unsupported_field(conf: &NetConf) -> Option<CniError> {
    let (k, v) = conf.other.iter().find(|(k, v)| {
        !(k.starts_with("cni.dev/")
            // Runtimes should strip it, some pass it through.
            || *k == "capabilities"
            || *k == "args"
            || (*k == "ipMasq" && **v == serde_json::Value::Bool(false)))
    })?;
    Some(CniError::new(
        code::UNSUPPORTED_FIELD,
        format!(
            "unsupported field '{k}': {v} (see the pipework README for the CNI configuration keys)"
        ),
    ))
}

/// The VERSION answer.
fn version(input: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(input).unwrap_or_default();
    let asked = v["cniVersion"].as_str().unwrap_or("1.1.0");
    serde_json::json!({ "cniVersion": asked, "supportedVersions": config::SUPPORTED_VERSIONS })
        .to_string()
}

pub(crate) fn from_core(e: Error) -> CniError {
    let c = match e.kind() {
        ErrorKind::Usage => code::INVALID_CONFIG,
        ErrorKind::Timeout => code::TRY_AGAIN,
        ErrorKind::Failed => code::FAILED,
    };
    CniError::new(c, e.to_string())
}

pub(crate) fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}
