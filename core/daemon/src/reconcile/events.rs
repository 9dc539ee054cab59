//! The container events that matter, from the Engine API's event stream.
//!
//! Docker sends `Type`/`Action`/`Actor.ID` (and the older `status`/`id`);
//! Podman's compatible API sends the same fields. Filtering happens here,
//! not on the server: Podman 4.3's server-side filter on `die` does not work.

use serde::Deserialize;

/// The query of the event stream: container events only.
pub const EVENTS_PATH: &str = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D";

/// Actions after which a container's attachments may have to change.
/// Docker: start, restart, die, stop, destroy. Podman adds `died` and
/// `remove` under its own names in some versions.
const ACTIONS: &[&str] = &[
    "start", "restart", "die", "died", "stop", "destroy", "remove",
];

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "Action", default)]
    action: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "Actor", default)]
    actor: Option<Actor>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: Option<String>,
}

/// The container an event line is about, if it is one we act on.
pub fn relevant(line: &[u8]) -> Option<(String, String)> {
    let e: Event = serde_json::from_slice(line).ok()?;
    if e.kind.as_deref().is_some_and(|k| k != "container") {
        return None;
    }
    let action = e.action.or(e.status)?;
    // `exec_start: sh`, `health_status: healthy`: never ours.
    if !ACTIONS.contains(&action.as_str()) {
        return None;
    }
    let id = e.actor.and_then(|a| a.id).or(e.id)?;
    (!id.is_empty()).then_some((id, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_podman_lines() {
        let docker = br#"{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"0"}},"scope":"local","time":1}"#;
        assert_eq!(relevant(docker), Some(("abc".into(), "die".into())));
        let podman = br#"{"status":"start","id":"def","from":"x","Type":"container","Action":"start","Actor":{"ID":"def","Attributes":{}},"time":2,"timeNano":2}"#;
        assert_eq!(relevant(podman), Some(("def".into(), "start".into())));
        let old = br#"{"status":"destroy","id":"ghi","time":3}"#;
        assert_eq!(relevant(old), Some(("ghi".into(), "destroy".into())));
        for skip in [
            &br#"{"Type":"network","Action":"connect","Actor":{"ID":"n"}}"#[..],
            br#"{"Type":"container","Action":"exec_start: sh","Actor":{"ID":"x"}}"#,
            br#"{"Type":"container","Action":"start","Actor":{"ID":""}}"#,
            b"not json",
        ] {
            assert_eq!(relevant(skip), None);
        }
    }
}
