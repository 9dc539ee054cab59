//! The client side of the pipework daemon: its socket, its protocol, and
//! the requests an attach or a detach makes to it (the daemon itself is the
//! `pipework-daemon` crate).

pub mod client;
pub mod proto;

use std::path::PathBuf;

use pipework_base::settings::Settings;

/// The daemon's control socket.
pub fn socket_path(settings: &Settings) -> PathBuf {
    settings.state_dir.join("daemon.sock")
}
