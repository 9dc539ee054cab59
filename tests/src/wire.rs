//! Netlink requests as they leave a process, captured with `strace`, so our
//! requests can be compared byte for byte with iproute2's for the same
//! command (the installed iproute2, at test time: nothing hard-coded).

use std::path::Path;
use std::process::Command;

use crate::{run, Run, Sandbox};

/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;

/// Runs `cmd` inside namespace `ns` under strace and returns every netlink
/// message of type `RTM_NEWLINK` it sent, and how the command ended.
pub fn trace_newlinks(ns: &str, cmd: &[&str], env: &[(&str, &str)]) -> (Run, Vec<Vec<u8>>) {
    let out = std::env::temp_dir().join(format!(
        "pw-strace-{}-{}.txt",
        std::process::id(),
        crate::next_seq()
    ));
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        ns,
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=sendmsg,sendto",
    ])
    .args(["-e", "write=all", "-o"])
    .arg(&out)
    .args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = run(&mut c);
    let r = Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    let msgs = parse_dump(&out)
        .into_iter()
        // iproute2 opens with an empty RTM_NEWLINK (a probe of the kernel's
        // strictness): requests have attributes.
        .filter(|m| m.len() > 32 && u16::from_ne_bytes([m[4], m[5]]) == RTM_NEWLINK)
        .collect();
    let _ = std::fs::remove_file(&out);
    (r, msgs)
}

/// The buffers of strace's `-e write=` hex dumps, one per traced call.
fn parse_dump(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for line in text.lines() {
        // " | 00010  00 00 ...  ascii |" (strace -f prefixes a pid).
        let Some(pos) = line.find(" | ") else {
            if let Some(b) = cur.take() {
                out.push(b);
            }
            continue;
        };
        let rest = &line[pos + 3..];
        let Some((offset, body)) = rest.split_once("  ") else {
            continue;
        };
        if offset.len() != 5 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        if offset == "00000" {
            if let Some(b) = cur.take() {
                out.push(b);
            }
        }
        let buf = cur.get_or_insert_with(Vec::new);
        // Hex columns end where the ASCII column starts (two spaces).
        let hex = body.get(..49).unwrap_or(body);
        buf.extend(
            hex.split_whitespace()
                .filter_map(|h| u8::from_str_radix(h, 16).ok()),
        );
    }
    if let Some(b) = cur {
        out.push(b);
    }
    out
}

/// A netlink message with its sequence number and port id zeroed (the only
/// parts two tools legitimately choose differently).
pub fn normalized(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for b in &mut m[8..16] {
        *b = 0;
    }
    m
}

/// The top-level attributes of an `RTM_*LINK` message: (type, whole TLV).
pub fn link_attributes(msg: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = &msg[32.min(msg.len())..];
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            break;
        }
        out.push((kind, rest[..len].to_vec()));
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    out
}

impl Sandbox {
    /// Runs pipework in the host namespace under strace; returns its
    /// `RTM_NEWLINK` requests too.
    pub fn pipework_traced(&self, args: &[&str], env: &[(&str, &str)]) -> (Run, Vec<Vec<u8>>) {
        let bin = crate::pipework_bin();
        let state = self.state_dir.to_string_lossy().into_owned();
        let mut cmd: Vec<&str> = vec![bin.to_str().unwrap()];
        cmd.extend_from_slice(args);
        let mut e: Vec<(&str, &str)> = vec![("PIPEWORK_STATE_DIR", &state)];
        e.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        e.extend_from_slice(env);
        trace_newlinks(&self.host, &cmd, &e)
    }
}
