//! `inspect --format network-wrapper`: network-wrapper's JSON (its
//! `inspect`, modelled on `docker inspect`), so that scripts written for it
//! keep working. Its fields and their shapes: `Container`, and under
//! `NetworkSettings` `HWAddr`, `Bridge`, `IPAddress`, `IPPrefixLen`,
//! `Gateway`, `DNS` (the name servers joined with ", ") and `DHCP_PID`,
//! every value a string ("" when there is none), as it printed them.
//!
//! The values are the live ones from pipework's own `inspect` JSON (what
//! the kernel, the daemon and the client say now), the record's where the
//! guest is gone.

use serde_json::{json, Value};

/// One object per interface of one guest's `inspect` JSON.
pub fn objects(guest: &Value) -> Vec<Value> {
    let name = guest["guest"]["container_name"]
        .as_str()
        .or_else(|| guest["guest"]["name"].as_str())
        .unwrap_or_default();
    let pid = guest["guest"]["pid"].as_u64();
    guest["interfaces"]
        .as_array()
        .map(|ifaces| ifaces.iter().map(|i| object(name, pid, i)).collect())
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default()
}

fn object(container: &str, pid: Option<u64>, i: &Value) -> Value {
    let live = &i["live"];
    let present = live["present"] == true;
    let (addrs, gateways, mac) = if present {
        (
            strings(&live["addresses"]),
            strings(&live["gateways"]),
            text(&live["mac"]),
        )
    } else {
        (
            strings(&i["addresses"]),
            strings(&i["gateways"]),
            text(&i["mac"]),
        )
    };
    // network-wrapper read the first IPv4 address and default route.
    let (ip, len) = addrs
        .iter()
        .find(|a| !a.contains(':'))
        .and_then(|a| a.split_once('/'))
        .map(|(a, l)| (a.to_string(), l.to_string()))
        .unwrap_or_default();
    let gateway = gateways
        .iter()
        .find(|g| !g.contains(':'))
        .cloned()
        .unwrap_or_default();
    let bridge = i["bridge"]
        .as_str()
        .or_else(|| i["host_interface"].as_str())
        .unwrap_or_default();
    let dhcp = &i["dhcp"];
    let dns = dns_servers(dhcp, pid).join(", ");
    json!({
        "Container": container,
        "NetworkSettings": {
            "HWAddr": mac,
            "Bridge": bridge,
            "IPAddress": ip,
            "IPPrefixLen": len,
            "Gateway": gateway,
            "DNS": dns,
            "DHCP_PID": text(&dhcp["pid"]),
        }
    })
}

/// The name servers: those of the native lease, else those of the guest's
/// own `resolv.conf` (what network-wrapper read, inside the container).
fn dns_servers(dhcp: &Value, pid: Option<u64>) -> Vec<String> {
    let from_lease: Vec<String> = dhcp["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| strings(&l["dns"]))
        .collect();
    if !from_lease.is_empty() {
        return from_lease;
    }
    let Some(pid) = pid else {
        return Vec::new();
    };
    std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf"))
        .map(|t| {
            t.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_a_string_and_none_is_empty() {
        let g = json!({
            "guest": { "name": "web1" },
            "interfaces": [{
                "mac": "02:00:00:00:00:01",
                "bridge": "br0",
                "addresses": ["10.0.0.2/24"],
                "gateways": [],
                "live": { "present": false },
            }],
        });
        let o = objects(&g);
        assert_eq!(
            o,
            vec![json!({
                "Container": "web1",
                "NetworkSettings": {
                    "HWAddr": "02:00:00:00:00:01",
                    "Bridge": "br0",
                    "IPAddress": "10.0.0.2",
                    "IPPrefixLen": "24",
                    "Gateway": "",
                    "DNS": "",
                    "DHCP_PID": "",
                }
            })]
        );
    }
}
