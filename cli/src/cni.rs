//! The CNI entry, when a runtime runs us with `CNI_COMMAND` set: reads the
//! environment and stdin, lets `pipework-cni` serve the command, prints its
//! reply and exits with its code.

use crate::out::{errln, outln};
use std::io::Read;

use pipework_cni::config::{code, CniError};
use pipework_cni::{RawEnv, Reply};
use pipework_core::settings::Settings;
use pipework_drivers::Drivers;

pub fn run(command: &str) -> u8 {
    let var = |k: &str| std::env::var(k).ok();
    let env = RawEnv {
        container_id: var("CNI_CONTAINERID"),
        netns: var("CNI_NETNS"),
        ifname: var("CNI_IFNAME"),
        args: var("CNI_ARGS"),
        path: var("CNI_PATH"),
    };
    let mut input = Vec::new();
    let reply = match std::io::stdin().read_to_end(&mut input) {
        Err(e) => Reply::failure(&CniError::new(
            code::IO,
            format!("cannot read the configuration from stdin: {e}"),
        )),
        Ok(_) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(pipework_cni::run(
                command,
                &input,
                &env,
                &Settings::from_env(),
                &Drivers::new(),
            )),
            Err(e) => Reply::failure(&CniError::new(
                code::FAILED,
                format!("cannot start the async runtime: {e}"),
            )),
        },
    };
    if let Some(out) = &reply.stdout {
        outln!("{out}");
    }
    if let Some(err) = &reply.stderr {
        errln!("{err}");
    }
    reply.exit_code
}
