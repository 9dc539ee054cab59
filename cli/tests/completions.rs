//! The bash and zsh completions (contrib/deb/) are static files: this proves
//! that every option and command `pipework --help` names is in both, so they
//! cannot drift from the help text. It also makes `cargo test` build the
//! `pipework` binary itself (target/debug/pipework), which the integration
//! tests of pipework-tests run: tests/host and the VM lane rely on that.

use std::collections::BTreeSet;
use std::process::Command;

fn help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pipework"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "pipework --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// `-x` and `--long-name` words of the help text (`[--x`, `a|--x` too).
/// Not `-f`: the help names it only as part of a DHCP mode (`udhcpc[-f]`,
/// `dhcp:-f`, "-f (and dhcpcd always) keeps it running"), not an option.
fn options(help: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for word in help.split_whitespace() {
        let word = word.strip_prefix('[').unwrap_or(word);
        for piece in word.split(['|', ',']) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let rest = name.trim_start_matches('-');
            let dashes = name.len() - rest.len();
            if (dashes == 1 || dashes == 2)
                && rest.starts_with(|c: char| c.is_ascii_alphabetic())
                && name != "-f"
            {
                set.insert(name);
            }
        }
    }
    set
}

/// The commands: `pipework WORD` where WORD is a plain lowercase word.
fn commands(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|l| l.trim_start().strip_prefix("pipework "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()))
        .map(str::to_string)
        .collect()
}

fn check(file: &str) {
    let path = format!("{}/../contrib/deb/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let words: BTreeSet<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .collect();
    let help = help();
    let opts = options(&help);
    let cmds = commands(&help);
    assert!(
        opts.len() > 30 && opts.contains("--state-dir") && opts.contains("-i"),
        "{opts:?}"
    );
    assert!(cmds.contains("route") && cmds.contains("demo"), "{cmds:?}");
    let missing: Vec<_> = opts
        .iter()
        .chain(&cmds)
        .filter(|o| !words.contains(o.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{path} lacks {missing:?} (named by pipework --help)"
    );
}

#[test]
fn bash_completion_has_every_option_of_the_help() {
    check("pipework.bash");
}

#[test]
fn zsh_completion_has_every_option_of_the_help() {
    check("_pipework");
}
