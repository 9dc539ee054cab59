//! The undo of the steps this crate records, for the journal's replay
//! (see `pipework_base::undo`).

use async_trait::async_trait;

use pipework_base::driver::UndoContext;
use pipework_base::error::{Context, Result};
use pipework_base::journal::Step;
use pipework_base::undo::AddressingUndo;

/// Undoes DHCP leases, compatible-mode clients and `resolv.conf` writes.
pub struct DhcpUndo;

#[async_trait]
impl AddressingUndo for DhcpUndo {
    async fn undo(&self, step: &Step, ctx: &UndoContext<'_>) -> Result<()> {
        match step {
            Step::GuestResolvConfWritten { target, previous } => {
                crate::resolv::restore(target, previous.as_deref())
                    .map_err(|e| {
                        pipework_base::error::Error::failed(format!("cannot restore {target}"))
                            .with_source(e)
                    })
                    .step("undo: restore the guest's resolv.conf")
            }
            Step::DhcpLease { key } => crate::daemon::client::release(ctx.settings, key)
                .await
                .map_err(|e| e.context("step undo: release the DHCP lease")),
            Step::CompatClient { dir } => {
                crate::compat::stop(ctx.settings, dir).step("undo: end the DHCP client")
            }
            _ => Ok(()),
        }
    }
}
