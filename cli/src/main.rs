//! The `pipework` binary: parse, run, print. All the work is in the core and
//! the drivers.
//!
//! Owns: the command-line grammar (compatible with the original pipework's),
//! the help text, what is printed and the exit codes. Must not: change the
//! host itself (every change goes through `pipework-core`, the daemon or the
//! CNI crate), or use `unsafe`.

#![forbid(unsafe_code)]
// The C `main` is `pipework_sys::entry_point!`'s (it skips the part of std's
// start-up that cost about half a millisecond of every command; see there).
#![cfg_attr(not(test), no_main)]

mod apply;
mod cni;
mod command;
mod commands;
mod demo;
mod grammar;
mod grammar_hw;
mod help;
mod nw_format;
mod out;
mod subcommands;
#[cfg(test)]
mod unwind_tests;
mod usage_error;
mod warn_log;

use crate::out::errln;

use pipework_core::settings::Settings;

#[cfg(not(test))]
pipework_core::entry_point!(run);

/// The program; returns its exit code.
#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    // Invoked by a container runtime as a CNI plugin.
    if let Some(cmd) = std::env::var("CNI_COMMAND").ok().filter(|c| !c.is_empty()) {
        init_logging(0);
        pipework_core::interrupt::install();
        let code = cni::run(&cmd);
        if let Some(why) = out::lost() {
            errln!("pipework: the CNI result was lost: cannot write to standard output: {why}");
        }
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inv = match grammar::parse(&args) {
        Ok(i) => i,
        Err(e) => {
            errln!("pipework: {e}");
            return 2;
        }
    };
    // The daemon's log is where lease events (bound, renewed, released) go.
    if matches!(inv.command, grammar::Command::Daemon { .. })
        && inv.global.verbose == 0
        && std::env::var_os("PIPEWORK_LOG").is_none()
    {
        // Still one thread: nothing else reads the environment yet.
        std::env::set_var("PIPEWORK_LOG", "info");
    }
    // Unset means the default; set but empty is a mistake, not the default.
    if inv.global.state_dir.is_none()
        && std::env::var_os("PIPEWORK_STATE_DIR").is_some_and(|v| v.is_empty())
    {
        errln!("pipework: PIPEWORK_STATE_DIR is set but empty");
        return 2;
    }
    init_logging(inv.global.verbose);
    pipework_core::interrupt::install();
    let mut settings = Settings::from_env();
    if let Some(d) = &inv.global.state_dir {
        settings.state_dir = d.clone();
    }
    if let Some(o) = &inv.global.ovsdb {
        settings.ovsdb = o.clone();
    }
    // One thread: an attach is a short sequence of requests, and a
    // single-threaded runtime starts faster.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("pipework: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let outcome = rt.block_on(commands::run(inv, &settings));
    if let Some(why) = out::lost() {
        errln!("pipework: the output was lost: cannot write to standard output: {why}");
    }
    match outcome {
        Ok(code) => code,
        Err(e) => {
            if tracing::enabled!(tracing::Level::DEBUG) {
                errln!("pipework: {}", e.chain());
            } else {
                errln!("pipework: {e}");
            }
            e.kind().exit_code() as u8
        }
    }
}

fn init_logging(verbose: u8) {
    let env = std::env::var("PIPEWORK_LOG").ok().filter(|v| !v.is_empty());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if verbose == 0 && env.is_none() {
        // The common case: warnings only (see `warn_log` why not `fmt`).
        let _ =
            tracing_subscriber::util::SubscriberInitExt::try_init(warn_log::WarnLog::stderr(ansi));
        return;
    }
    let level = match verbose {
        0 | 1 => {
            "info,pipework_core=debug,pipework_base=debug,pipework_sys=debug,\
             pipework_dhcp=debug,pipework_daemon=debug,pipework_drivers=debug"
        }
        // Trace shows each step as it is reached, with the time since start.
        _ => {
            "debug,pipework_core=trace,pipework_base=trace,pipework_sys=trace,\
             pipework_dhcp=trace,pipework_daemon=trace,pipework_drivers=trace"
        }
    };
    let filter = tracing_subscriber::EnvFilter::new(env.as_deref().unwrap_or(level));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a write error tracing-subscriber says so with `eprint!`,
        // which panics when stderr is a closed pipe: half an attach,
        // nothing rolled back. A log line lost is only a log line.
        .log_internal_errors(false)
        .with_target(true)
        .with_ansi(ansi);
    if verbose > 1 {
        fmt.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        fmt.without_time().init();
    }
}
