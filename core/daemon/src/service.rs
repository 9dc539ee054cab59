//! What the daemon runs: services. DHCP lease keeping is one; the container
//! event reconciler (issue 6) is meant to be the next. A service loads its
//! state when the daemon starts, answers the requests addressed to it, says
//! whether it has work (so an on-demand daemon can exit when idle), and stops
//! without losing its state.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;

use async_trait::async_trait;
use serde_json::Value;

use pipework_base::error::Result;

/// Resolves when the client that sent a request hangs up.
pub type Hangup = Pin<Box<dyn Future<Output = ()> + Send>>;

#[async_trait]
pub trait Service: Send + Sync {
    /// The `service` field of the requests it answers.
    fn name(&self) -> &'static str;

    /// Picks up what it kept before the daemon (re)started.
    async fn start(&self) -> Result<()>;

    /// Answers one request. `fds` came with it; `hangup` lets a long request
    /// (waiting for a lease) notice that nobody waits for the answer.
    async fn handle(
        &self,
        op: &str,
        args: Value,
        fds: Vec<OwnedFd>,
        hangup: Hangup,
    ) -> Result<Value>;

    /// True while it has something to look after.
    fn busy(&self) -> bool;

    /// Stops its tasks; what they keep stays on disk for the next start.
    async fn stop(&self);
}
