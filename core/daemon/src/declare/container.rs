//! A container's declarations, from its environment and labels.
//!
//! dreamcat4's convention (environment variables):
//! - every variable whose name contains `pipework_cmd` (`pipework_cmd`,
//!   `pipework_cmd_eth1`, `apache_pipework_cmd`...) is one attach, run in
//!   the sorted order of the names;
//! - `@CONTAINER_NAME@`, `@CONTAINER_ID@`, `@HOSTNAME@`, `@INSTANCE@` and
//!   `@COMPOSE_PROJECT_NAME@` in the value are replaced by the container's;
//! - `pipework_key`: with a key set on the daemon, only containers whose
//!   `pipework_key` equals it are handled;
//! - `<affixes>pipework_host_route<affixes>` (the name of a command variable
//!   with `pipework_cmd` replaced) adds the host ↔ macvlan shim to that
//!   command, `pipework_host_routes` to all of them.
//!
//! Ours (labels): `io.pipework.attach.<n>=<arguments>`, in the order of `<n>`
//! (numbers numerically, before other names), same macros, and
//! `io.pipework.key` as an alternative to the `pipework_key` variable.
//! Environment declarations come first.

use std::collections::BTreeMap;

use super::{split_args, Declared};
use pipework_base::docker::ContainerInfo;
use pipework_model::HostRoute;

const CMD: &str = "pipework_cmd";
const HOST_ROUTE: &str = "pipework_host_route";
const HOST_ROUTES: &str = "pipework_host_routes";
const KEY_VAR: &str = "pipework_key";
const KEY_LABEL: &str = "io.pipework.key";
const ATTACH_LABEL: &str = "io.pipework.attach.";
const COMPOSE_PROJECT: &str = "com.docker.compose.project";

/// What the macros are made of.
#[derive(Clone, Debug)]
pub struct Facts {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub hostname: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

impl Facts {
    pub fn of(info: &ContainerInfo) -> Facts {
        let env = info
            .config
            .env
            .iter()
            .flatten()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Facts {
            id: info.id.clone(),
            name: info.short_name().to_string(),
            hostname: info.config.hostname.clone(),
            env,
            labels: info.config.labels.clone().unwrap_or_default(),
        }
    }
}

/// The container's declarations, or `None` when a key is required and the
/// container does not carry it. Declarations whose macros cannot be
/// expanded are reported as messages, and the others kept.
pub fn declarations(f: &Facts, key: Option<&str>) -> Option<(Vec<Declared>, Vec<String>)> {
    if let Some(k) = key {
        let carried = f.env.get(KEY_VAR).map(String::as_str) == Some(k)
            || f.labels.get(KEY_LABEL).map(String::as_str) == Some(k);
        if !carried {
            return None;
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let all_routes = f.env.get(HOST_ROUTES).and_then(|v| host_route(v));
    // BTreeMap: already in the sorted order of the names.
    for (name, value) in f.env.iter().filter(|(k, _)| k.contains(CMD)) {
        let source = format!("env {name}");
        let text = match expand(value, f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{source}: {e}"));
                continue;
            }
        };
        let args = split_args(&text);
        if args.is_empty() {
            continue;
        }
        let own = f
            .env
            .get(&name.replace(CMD, HOST_ROUTE))
            .and_then(|v| host_route(v));
        out.push(Declared {
            source,
            args,
            host_route: own.or_else(|| all_routes.clone()),
        });
    }
    let mut labelled: Vec<(&str, &String)> = f
        .labels
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(ATTACH_LABEL).map(|n| (n, v)))
        .filter(|(n, _)| !n.is_empty())
        .collect();
    labelled.sort_by(|a, b| label_order(a.0).cmp(&label_order(b.0)));
    for (n, value) in labelled {
        let source = format!("label {ATTACH_LABEL}{n}");
        match expand(value, f) {
            Ok(t) => {
                let args = split_args(&t);
                if !args.is_empty() {
                    out.push(Declared {
                        source,
                        args,
                        host_route: None,
                    });
                }
            }
            Err(e) => errors.push(format!("{source}: {e}")),
        }
    }
    Some((out, errors))
}

/// Numbers first and in numeric order, then other names.
fn label_order(n: &str) -> (u8, u64, &str) {
    match n.parse::<u64>() {
        Ok(v) => (0, v, n),
        Err(_) => (1, 0, n),
    }
}

/// dreamcat4 enables the shim with `true` or any value; we also take the
/// shim's own address there, and the usual words for "no".
fn host_route(v: &str) -> Option<HostRoute> {
    let v = v.trim();
    if v.is_empty() || ["false", "no", "0", "off"].contains(&v.to_ascii_lowercase().as_str()) {
        return None;
    }
    Some(v.parse().unwrap_or(HostRoute::Auto))
}

/// Replaces the macros in one declaration.
pub fn expand(text: &str, f: &Facts) -> std::result::Result<String, String> {
    let mut s = text.to_string();
    let id12: String = f.id.chars().take(12).collect();
    s = s.replace("@CONTAINER_NAME@", &f.name);
    s = s.replace("@CONTAINER_ID@", &id12);
    s = s.replace("@HOSTNAME@", &f.hostname);
    if s.contains("@INSTANCE@") {
        let n = instance(&f.name)
            .ok_or_else(|| format!("@INSTANCE@: the name {} has no numeric component", f.name))?;
        s = s.replace("@INSTANCE@", n);
    }
    if s.contains("@COMPOSE_PROJECT_NAME@") {
        let p = f.labels.get(COMPOSE_PROJECT).ok_or_else(|| {
            format!("@COMPOSE_PROJECT_NAME@: the container has no {COMPOSE_PROJECT} label")
        })?;
        s = s.replace("@COMPOSE_PROJECT_NAME@", p);
    }
    Ok(s)
}

/// The last run of digits in a name: `prod_myapp_1` is instance 1.
fn instance(name: &str) -> Option<&str> {
    let end = name.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = name[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    Some(&name[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(env: &[(&str, &str)], labels: &[(&str, &str)]) -> Facts {
        Facts {
            id: "0123456789abcdef0123".into(),
            name: "prod_myapp_12".into(),
            hostname: "app.example".into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn dreamcat4_variables_in_sorted_order_with_macros() {
        let f = facts(
            &[
                (
                    "pipework_cmd_eth2",
                    "br2 -i eth2 @CONTAINER_NAME@ 10.0.@INSTANCE@.2/24",
                ),
                (
                    "apache_pipework_cmd",
                    "pipework eth0 @CONTAINER_ID@ dhcp # NIC",
                ),
                ("pipework_cmd", "br1 @HOSTNAME@ 0/0"),
                ("PATH", "/bin"),
                ("pipework_cmd_empty", ""),
            ],
            &[],
        );
        let (d, e) = declarations(&f, None).unwrap();
        assert!(e.is_empty(), "{e:?}");
        let got: Vec<(String, String)> = d
            .iter()
            .map(|d| (d.source.clone(), d.args.join(" ")))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "env apache_pipework_cmd".into(),
                    "eth0 0123456789ab dhcp".into()
                ),
                ("env pipework_cmd".into(), "br1 app.example 0/0".into()),
                (
                    "env pipework_cmd_eth2".into(),
                    "br2 -i eth2 prod_myapp_12 10.0.12.2/24".into()
                ),
            ]
        );
    }

    #[test]
    fn the_key_filters() {
        let with = facts(
            &[("pipework_key", "s3cret"), ("pipework_cmd", "br1 x 0/0")],
            &[],
        );
        let without = facts(&[("pipework_cmd", "br1 x 0/0")], &[]);
        let by_label = facts(
            &[("pipework_cmd", "br1 x 0/0")],
            &[("io.pipework.key", "s3cret")],
        );
        assert!(declarations(&with, Some("s3cret")).is_some());
        assert!(declarations(&with, Some("other")).is_none());
        assert!(declarations(&without, Some("s3cret")).is_none());
        assert!(declarations(&by_label, Some("s3cret")).is_some());
        assert_eq!(declarations(&without, None).unwrap().0.len(), 1);
    }

    #[test]
    fn host_routes_pair_with_their_commands() {
        let f = facts(
            &[
                ("apache_pipework_cmd", "eth0 x 10.0.0.2/24"),
                ("apache_pipework_host_route", "true"),
                ("db_pipework_cmd", "eth0 -i eth2 x 10.0.0.3/24"),
                ("db_pipework_host_route", "10.0.0.250/24"),
                ("pipework_cmd", "br1 x 0/0"),
            ],
            &[],
        );
        let (d, _) = declarations(&f, None).unwrap();
        assert_eq!(d[0].host_route, Some(HostRoute::Auto));
        assert_eq!(
            d[1].host_route,
            Some(HostRoute::Address("10.0.0.250/24".parse().unwrap()))
        );
        assert_eq!(d[2].host_route, None);
        let mut all = f.clone();
        all.env.insert("pipework_host_routes".into(), "yes".into());
        all.env
            .insert("db_pipework_host_route".into(), "false".into());
        let (d, _) = declarations(&all, None).unwrap();
        assert!(
            d.iter().all(|d| d.host_route == Some(HostRoute::Auto)),
            "{d:?}"
        );
    }

    #[test]
    fn labels_in_numeric_order_after_the_environment() {
        let f = facts(
            &[("pipework_cmd", "br0 x 0/0")],
            &[
                ("io.pipework.attach.10", "br10 x 0/0"),
                ("io.pipework.attach.2", "br2 x 0/0"),
                ("io.pipework.attach.web", "brw x 0/0"),
                ("io.pipework.attach.", "ignored"),
                ("other", "x"),
            ],
        );
        let (d, _) = declarations(&f, None).unwrap();
        let hosts: Vec<&str> = d.iter().map(|d| d.args[0].as_str()).collect();
        assert_eq!(hosts, vec!["br0", "br2", "br10", "brw"]);
    }

    #[test]
    fn macros_that_cannot_expand_are_reported() {
        let mut f = facts(
            &[
                ("pipework_cmd", "br1 x 10.0.@INSTANCE@.2/24"),
                ("pipework_cmd_b", "br-@COMPOSE_PROJECT_NAME@ x 0/0"),
            ],
            &[],
        );
        f.name = "web".into();
        let (d, e) = declarations(&f, None).unwrap();
        assert!(d.is_empty());
        assert_eq!(e.len(), 2, "{e:?}");
        f.labels.insert(COMPOSE_PROJECT.into(), "shop".into());
        let (d, _) = declarations(&f, None).unwrap();
        assert_eq!(d[0].args[0], "br-shop");
        assert_eq!(instance("prod_myapp_1"), Some("1"));
        assert_eq!(instance("a12b345c"), Some("345"));
        assert_eq!(instance("web"), None);
    }
}
