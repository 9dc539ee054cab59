//! Where the OVSDB server listens: `unix:<path>` or `tcp:<host>:<port>`, the
//! two forms of `ovs-vsctl --db` that need no TLS.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// An OVSDB server address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl FromStr for Remote {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("bad OVSDB address '{s}': {why}");
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(bad("unix: needs a socket path"));
            }
            return Ok(Remote::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("use tcp:<host>:<port>"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(bad("tcp: needs a host"));
            }
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
            return Ok(Remote::Tcp {
                host: host.to_string(),
                port,
            });
        }
        Err(bad("use unix:<path> or tcp:<host>:<port>"))
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Remote::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            "unix:/run/db.sock".parse::<Remote>().unwrap(),
            Remote::Unix("/run/db.sock".into())
        );
        let t: Remote = "tcp:127.0.0.1:6640".parse().unwrap();
        assert_eq!(t.to_string(), "tcp:127.0.0.1:6640");
        let v6: Remote = "tcp:[::1]:6640".parse().unwrap();
        assert_eq!(
            v6,
            Remote::Tcp {
                host: "::1".into(),
                port: 6640
            }
        );
        assert_eq!(v6.to_string(), "tcp:[::1]:6640");
        for bad in [
            "",
            "unix:",
            "tcp:",
            "tcp:host",
            "tcp::6640",
            "tcp:h:0",
            "tcp:h:x",
            "ssl:h:1",
            "/run/db.sock",
        ] {
            assert!(bad.parse::<Remote>().is_err(), "{bad}");
        }
    }
}
