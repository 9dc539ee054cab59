//! The file of `pipework apply`: the attachments of guests that no engine
//! announces (named namespaces, LXC, processes), one attach per line.
//!
//! ```text
//! # <host interface> [options] <guest> <address> [<mac>][@<vlan>]
//! br0 -i eth1 netns:blue 10.5.0.2/24@10.5.0.1
//! eth0 lxc:web dhcp --host-route auto   # comments run to the end of the line
//! br0 -i eth2 netns:blue \
//!     10.6.0.2/24                        # a trailing backslash continues a line
//! ```
//!
//! Each line is exactly what would follow `pipework` on a command line.
//! Lines naming the same guest and interface add addresses to one
//! interface, as repeated attaches do.

use super::{split_args, Declared};

/// The declarations of a file; `origin` names it in messages and sources.
pub fn parse(text: &str, origin: &str) -> Vec<Declared> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut first_line = 0;
    for (n, line) in text.lines().enumerate() {
        if pending.is_empty() {
            first_line = n + 1;
        }
        let code = strip_comment(line);
        if let Some(head) = code.trim_end().strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(code);
        let args = split_args(&pending);
        pending.clear();
        if !args.is_empty() {
            out.push(Declared {
                source: format!("{origin}:{first_line}"),
                args,
                host_route: None,
            });
        }
    }
    let args = split_args(&pending);
    if !args.is_empty() {
        out.push(Declared {
            source: format!("{origin}:{first_line}"),
            args,
            host_route: None,
        });
    }
    out
}

/// A line without its comment (a `#` at the start of a word).
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_continuations() {
        let d = parse(
            "# header\n\nbr0 netns:a 10.0.0.2/24  # first\nbr0 -i eth2 \\\n  netns:a 10.1.0.2/24\neth0 netns:b U:x#y dhcp",
            "f",
        );
        let got: Vec<(String, String)> = d
            .iter()
            .map(|d| (d.source.clone(), d.args.join(" ")))
            .collect();
        assert_eq!(
            got,
            vec![
                ("f:3".into(), "br0 netns:a 10.0.0.2/24".into()),
                ("f:4".into(), "br0 -i eth2 netns:a 10.1.0.2/24".into()),
                ("f:6".into(), "eth0 netns:b U:x#y dhcp".into()),
            ]
        );
        assert!(parse("   \n# only comments\n", "f").is_empty());
    }
}
