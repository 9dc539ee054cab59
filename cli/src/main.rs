//! The `pipework` binary: parse, run, print. All the work is in the core and
//! the drivers.

mod commands;
mod demo;
mod grammar;
mod grammar_hw;
mod help;

use std::process::ExitCode;

use pipework_core::settings::Settings;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inv = match grammar::parse(&args) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("pipework: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(inv.global.verbose);
    let mut settings = Settings::from_env();
    if let Some(d) = &inv.global.state_dir {
        settings.state_dir = d.clone();
    }
    // One thread: an attach is a short sequence of requests, and a
    // single-threaded runtime starts faster.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pipework: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(commands::run(inv, &settings)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if tracing::enabled!(tracing::Level::DEBUG) {
                eprintln!("pipework: {}", e.chain());
            } else {
                eprintln!("pipework: {e}");
            }
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info,pipework_core=debug,pipework_drivers=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PIPEWORK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose > 0)
        .without_time()
        .init();
}
