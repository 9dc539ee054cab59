//! Keeping one lease: the task the daemon runs per lease. It obtains the
//! lease, applies it, renews at T1, rebinds at T2, starts over on a NAK or
//! expiry, follows an address change, and releases the lease when asked to
//! or when the guest dies. Every change of state is saved before it is acted
//! on further, so a restarted daemon carries on from the file.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::ctx::DaemonCtx;
use crate::watch::GuestWatch;
use pipework_base::driver::UndoContext;
use pipework_base::error::{Context, Error, Result};
use pipework_base::guest::Guest;
use pipework_base::journal::UndoMode;
use pipework_base::state::now_secs;
use pipework_base::undo::Replay;
use pipework_dhcp::lease::{Lease, LeaseSpec, Phase, Proto};
use pipework_dhcp::store::{LeaseFile, LeaseStore};
use pipework_dhcp::v4::{Client4, Outcome};
use pipework_dhcp::v6::Client6;
use pipework_dhcp::{apply, resolv, resolv_share, Drops};
use pipework_sys::netlink::Netlink;

/// What the daemon can ask of a running lease task.
#[derive(Debug)]
pub enum Command {
    /// Give the lease back, undo its configuration, forget it.
    Release(oneshot::Sender<Result<()>>),
    /// Stop keeping it but leave it on disk (the daemon is stopping).
    Stop,
}

/// The first acquisition of a new lease: its deadline, and who waits for it.
pub struct FirstBind {
    pub until: Instant,
    pub reply: oneshot::Sender<Result<Lease>>,
}

enum Client {
    V4(Client4),
    V6(Client6),
}

impl Client {
    async fn obtain(&self, until: Option<Instant>) -> Option<Lease> {
        match self {
            Client::V4(c) => c.obtain(until).await,
            Client::V6(c) => c.obtain(until).await,
        }
    }
    async fn extend(&self, l: &Lease, rebinding: bool, until: Instant) -> Outcome {
        match self {
            Client::V4(c) => c.extend(l, rebinding, until).await,
            Client::V6(c) => c.extend(l, rebinding, until).await,
        }
    }
    async fn release(&self, l: &Lease) {
        match self {
            Client::V4(c) => c.release(l).await,
            Client::V6(c) => c.release(l).await,
        }
    }
}

/// A Unix time as a tokio deadline.
fn deadline(at: u64) -> Instant {
    let now = now_secs();
    let secs = at.saturating_sub(now).min(100 * 365 * 86400);
    Instant::now() + Duration::from_secs(secs)
}

/// One lease being kept.
struct Keeper {
    ctx: Arc<DaemonCtx>,
    file: LeaseFile,
    nl: Netlink,
    client: Client,
    drops: Arc<Drops>,
}

impl Keeper {
    fn spec(&self) -> &LeaseSpec {
        &self.file.spec
    }

    fn save(&mut self) {
        self.file.drops = self.drops.snapshot();
        self.file.updated_at = now_secs();
        if let Err(e) = self.ctx.leases.save(&self.file) {
            warn!(key = %self.file.spec.key, "cannot save lease: {e}");
        }
    }

    /// Undoes what the lease configured.
    async fn unapply(&mut self) {
        let ctx = self.ctx.clone();
        let _shared = ctx.resolv_lock.lock().await;
        self.unapply_locked().await;
    }

    /// [`Self::unapply`], the `resolv.conf` lock held: a `resolv.conf` the
    /// sibling lease still writes gets the sibling's servers alone rather
    /// than the original back.
    async fn unapply_locked(&mut self) {
        let mut journal = std::mem::take(&mut self.file.applied);
        if let Some(target) = self.spec().resolv.clone() {
            if let Some(sib) = resolv_share::sibling(&self.ctx.leases, self.spec()) {
                let (rest, content) =
                    resolv_share::hand_over(journal, &target, &sib, &self.file.spec.ifname);
                journal = rest;
                if let Some(c) = content {
                    if let Err(e) = resolv::write(&target, &c) {
                        warn!(key = %self.file.spec.key, "cannot write {target}: {e}");
                    }
                }
            }
        }
        let ctx = Replay {
            ctx: UndoContext {
                host: &self.ctx.host,
                guest: Some(&self.nl),
                host_ns: &self.ctx.host_ns,
                state: &self.ctx.state,
                settings: &self.ctx.settings,
                mode: UndoMode::Detach,
            },
            drivers: self.ctx.drivers.as_ref(),
            addressing: &pipework_dhcp::undo::DhcpUndo,
        };
        for e in journal.undo_all(&ctx).await {
            warn!(key = %self.file.spec.key, "undoing the lease: {e}");
        }
        // Published before the lock goes: the sibling must not count on
        // this lease's write any more.
        self.save();
    }

    /// Applies a new lease (after undoing the previous one if it differs).
    async fn take(&mut self, lease: Lease) -> Result<()> {
        let same = self
            .file
            .lease
            .as_ref()
            .is_some_and(|old| old.same_config(&lease) && !self.file.applied.is_empty());
        if same {
            apply::refresh(&self.nl, self.spec(), &lease).await?;
        } else {
            if let Some(old) = &self.file.lease {
                info!(key = %self.spec().key, "lease changed from {} to {}", old.address, lease.address);
            }
            let ctx = self.ctx.clone();
            let _shared = ctx.resolv_lock.lock().await;
            self.unapply_locked().await;
            let sibling = resolv_share::sibling(&self.ctx.leases, self.spec());
            // Straight into the file's journal: if this task is cancelled
            // half-way, what was done is still known and undone later.
            let res = apply::apply(
                &self.nl,
                &self.file.spec,
                &lease,
                sibling.as_ref(),
                &mut self.file.applied,
            )
            .await;
            if let Err(e) = res {
                self.unapply_locked().await;
                return Err(e);
            }
            self.file.lease = Some(lease);
            self.file.phase = Phase::Bound;
            self.save();
            return Ok(());
        }
        self.file.lease = Some(lease);
        self.file.phase = Phase::Bound;
        self.save();
        Ok(())
    }

    /// The lease is gone (NAK, expiry): undo it and look for a new one.
    async fn lose(&mut self, why: &str) {
        info!(key = %self.spec().key, "lease lost ({why}): starting over");
        self.unapply().await;
        self.file.lease = None;
        self.file.phase = Phase::Init;
        self.save();
    }

    /// Releases and forgets the lease for good.
    async fn finish(&mut self, release: bool) -> Result<()> {
        if let (true, Some(l)) = (release, self.file.lease.clone()) {
            self.client.release(&l).await;
        }
        self.unapply().await;
        self.ctx.leases.remove(&self.file.spec.key)
    }

    /// One step of the state machine. With `first` (the deadline of the
    /// first acquisition) it reports how that acquisition ended.
    async fn step(&mut self, first: Option<Instant>) -> Option<Result<Lease>> {
        let now = now_secs();
        let phase = match &self.file.lease {
            Some(l) => match Phase::of(l, now) {
                Some(p) => p,
                None => {
                    self.lose("expired").await;
                    return None;
                }
            },
            None => Phase::Init,
        };
        if self.file.phase != phase {
            self.file.phase = phase;
            self.save();
        }
        let Some(l) = self.file.lease.clone() else {
            return self.obtain(first).await;
        };
        match phase {
            Phase::Init => return self.obtain(first).await,
            Phase::Bound => tokio::time::sleep_until(deadline(l.renew_at())).await,
            Phase::Renewing | Phase::Rebinding => {
                let rebinding = phase == Phase::Rebinding;
                let until = deadline(if rebinding {
                    l.expires_at()
                } else {
                    l.rebind_at()
                });
                match self.client.extend(&l, rebinding, until).await {
                    Outcome::Ack(new) => {
                        if let Err(e) = self.take(new).await {
                            warn!(key = %self.spec().key, "cannot apply the renewed lease: {e}");
                            self.lose("could not apply").await;
                        }
                    }
                    Outcome::Nak => self.lose("the server refused to extend it").await,
                    Outcome::Silence => {}
                }
            }
        }
        None
    }

    async fn obtain(&mut self, first: Option<Instant>) -> Option<Result<Lease>> {
        let Some(l) = self.client.obtain(first).await else {
            return first.map(|_| {
                Err(Error::timeout(format!(
                    "no DHCP lease for {} within the timeout",
                    self.spec().ifname
                )))
            });
        };
        match self.take(l.clone()).await {
            Ok(()) if first.is_some() => Some(Ok(l)),
            Ok(()) => {
                info!(key = %self.spec().key, "bound {}", l.summary());
                None
            }
            Err(e) if first.is_some() => Some(Err(e)),
            Err(e) => {
                warn!(key = %self.spec().key, "cannot apply the lease: {e}");
                self.file.lease = None;
                tokio::time::sleep(Duration::from_secs(10)).await;
                None
            }
        }
    }
}

/// Runs one lease until it is released, its guest dies, or the daemon stops.
#[tracing::instrument(
    name = "lease",
    skip_all,
    fields(
        guest = %guest.name(),
        interface = %file.spec.ifname,
        driver = "dhcp",
        proto = ?file.spec.proto,
        key = %file.spec.key,
    )
)]
pub async fn run(
    ctx: Arc<DaemonCtx>,
    mut file: LeaseFile,
    guest: Guest,
    first: Option<FirstBind>,
    mut commands: mpsc::Receiver<Command>,
    drops: Arc<Drops>,
) {
    let key = file.spec.key.clone();
    let started = async {
        let nl = Netlink::connect_in(&guest.netns, guest.name())
            .await
            .step("open netlink in the guest")?;
        if file.spec.link_mtu.is_none() {
            // A spec saved before the MTU was recorded: the link as it is
            // now is the best bound there is.
            file.spec.link_mtu = nl
                .link_by_index(file.spec.ifindex)
                .await
                .ok()
                .flatten()
                .map(|k| k.mtu);
        }
        let spec = Arc::new(file.spec.clone());
        let client = match spec.proto {
            Proto::V4 => Client::V4(
                Client4::open(&guest.netns, spec, drops.clone())
                    .await
                    .step("open the DHCPv4 sockets")?,
            ),
            Proto::V6 => Client::V6(
                Client6::open(&guest.netns, spec, drops.clone())
                    .await
                    .step("open the DHCPv6 socket")?,
            ),
        };
        Ok::<_, Error>((nl, client))
    }
    .await;
    let (nl, client) = match started {
        Ok(x) => x,
        Err(e) => {
            warn!(%key, "cannot start keeping the lease: {e}");
            if let Some(f) = first {
                let _ = f.reply.send(Err(e));
                let _ = ctx.leases.remove(&key);
            }
            return;
        }
    };
    let mut watch = GuestWatch::new(&guest, &ctx);
    let _counters = CountersWriter::spawn(ctx.leases.clone(), key.clone(), drops.clone());
    let mut k = Keeper {
        ctx: ctx.clone(),
        file,
        nl,
        client,
        drops,
    };
    k.save();
    let mut first_until = first.as_ref().map(|f| f.until);
    let mut reply = first.map(|f| f.reply);
    loop {
        let ev = tokio::select! {
            r = k.step(first_until) => Event::Step(r),
            c = commands.recv() => Event::Command(c),
            _ = watch.gone() => Event::GuestGone,
            _ = hangup(&mut reply) => Event::Hangup,
        };
        match ev {
            Event::Step(None) => {}
            Event::Step(Some(r)) => {
                first_until = None;
                let failed = r.is_err();
                if let Some(tx) = reply.take() {
                    let _ = tx.send(r);
                }
                if failed {
                    // Nothing to keep.
                    let _ = k.finish(false).await;
                    return;
                }
            }
            Event::Command(Some(Command::Release(tx))) => {
                let r = k.finish(true).await;
                info!(%key, "lease released");
                let _ = tx.send(r);
                return;
            }
            Event::Command(Some(Command::Stop) | None) => {
                k.save();
                return;
            }
            Event::GuestGone => {
                // We still hold the namespace (our sockets do), so the
                // release still reaches the server.
                info!(%key, "guest {} is gone: releasing its lease", k.spec().guest.name);
                let _ = k.finish(true).await;
                return;
            }
            Event::Hangup => {
                // Whoever asked went away before the lease was bound.
                let _ = k.finish(true).await;
                return;
            }
        }
    }
}

/// Writes the drop counters beside the lease file once a second while they
/// grow: packets dropped during a renewal change no lease, so nothing else
/// would save them before T2. Stops when dropped (every way out of [`run`]).
struct CountersWriter(tokio::task::JoinHandle<()>);

impl CountersWriter {
    fn spawn(store: LeaseStore, key: String, drops: Arc<Drops>) -> CountersWriter {
        CountersWriter(tokio::spawn(async move {
            let mut last = drops.snapshot();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = drops.snapshot();
                if now != last {
                    if let Err(e) = store.save_drops(&key, &now) {
                        warn!(%key, "cannot save drop counters: {e}");
                    }
                    last = now;
                }
            }
        }))
    }
}

impl Drop for CountersWriter {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Event {
    Step(Option<Result<Lease>>),
    Command(Option<Command>),
    GuestGone,
    Hangup,
}

/// Resolves when the one waiting for the first lease hangs up.
async fn hangup(reply: &mut Option<oneshot::Sender<Result<Lease>>>) {
    match reply {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}
