//! The pool of warm workers: where a job's worker comes from, and the zygote
//! restarted if it died or replaced when it is due.
//!
//! The pool lives in the kernel: the zygote forks one warm worker per credit the
//! driver sends and queues it on the control socket (pid, pidfd and job socket in
//! one `SOCK_SEQPACKET` message). Taking a worker is receiving one message and
//! sending one credit back, so the zygote refills the pool while the job runs.
//! Workers received and already known warm wait here as spares.
//!
//! Recycling: every worker of a zygote shares the zygote's address-space
//! layout (a fork copies it), so the pool replaces the zygote with a freshly
//! executed one (a new layout) before the next worker is taken when
//!
//! * a worker of it ended abnormally (its job or its start called
//!   [`Lineage::retire`](crate::caller::child::Lineage::retire): it left
//!   without a result, broke the protocol, or died of anything but a clean
//!   exit or the caller's SIGKILL), so that an exploit probing the layout by
//!   crashing workers meets a new one at every try; or
//! * it handed over `jobs_per_zygote` workers (one per job), which bounds what
//!   one layout is exposed to.
//!
//! The retired zygote's workers not yet used are discarded with it (queued
//! ones are killed as the old zygote drains in the background, spares are
//! dropped when next seen); jobs already running finish in theirs.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crate::caller::child::Worker;
use crate::caller::subids::SubordinateIds;
use crate::caller::zygote_conn::{zygote_gone, Arrival, ZygoteConn};
use crate::error::{Error, Result};
use crate::mode::Rungs;
use crate::mode::SandboxMode;

/// A worker that said it is warm, with its socket ready for a job. The
/// socket is not registered with any runtime: a spare may serve a job on
/// another runtime than the one that received it.
pub(crate) struct Warm {
    pub worker: Worker,
    /// Non-blocking.
    pub socket: std::os::unix::net::UnixStream,
    /// The worker waits in an empty root for a clone of its destination's
    /// mount, made by this side ([`crate::sys::clone_for_worker`]).
    pub awaits_clone: bool,
}

/// A worker confined to its job's destination, its socket registered with the
/// job's runtime.
pub(crate) struct Confined {
    pub worker: Worker,
    pub socket: tokio::net::UnixStream,
    /// The caller's end of the lead channel (`Options::max_lead`).
    pub lead: Option<crate::caller::lead::Lead>,
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warm")
            .field("pid", &self.worker.pid)
            .finish()
    }
}

/// The zygote and the spare workers of one sandbox.
#[derive(Debug)]
pub(crate) struct Pool {
    mode: SandboxMode,
    warm_workers: u32,
    subordinate_ids: SubordinateIds,
    /// The rungs the zygote may stand on.
    rungs: Rungs,
    /// Workers one zygote hands over before it is replaced.
    jobs_per_zygote: u64,
    /// The zygote; replaced when it dies. Locked while receiving a worker, so
    /// birth numbers stay in order.
    zygote: tokio::sync::Mutex<Option<ZygoteConn>>,
    /// Workers received and known warm, not yet used.
    spare: Mutex<VecDeque<Warm>>,
}

impl Pool {
    /// Starts the zygote and orders `warm_workers` workers; the zygote is
    /// replaced after `jobs_per_zygote` workers (at least 1).
    pub(crate) async fn start(
        warm_workers: u32,
        subordinate_ids: SubordinateIds,
        rungs: Rungs,
        jobs_per_zygote: u64,
    ) -> Result<Pool> {
        // One fewer at first: `Sandbox::build` takes one at once to prove the
        // sandbox works and keeps it as a spare, and taking it orders its
        // replacement, so `warm_workers` are ready in all (2 when it is 1).
        let first = warm_workers.saturating_sub(1).max(1);
        let (conn, mode) = ZygoteConn::start(first, subordinate_ids, rungs).await?;
        Ok(Pool {
            mode,
            warm_workers,
            subordinate_ids,
            rungs,
            jobs_per_zygote: jobs_per_zygote.max(1),
            zygote: tokio::sync::Mutex::new(Some(conn)),
            spare: Mutex::new(VecDeque::new()),
        })
    }

    /// How the zygote confines its workers.
    pub(crate) fn mode(&self) -> SandboxMode {
        self.mode
    }

    fn spares(&self) -> MutexGuard<'_, VecDeque<Warm>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A spare warm worker, if there is one; spares of a retired zygote are
    /// dropped (killed) on the way.
    pub(crate) fn take_spare(&self) -> Option<Warm> {
        let mut spares = self.spares();
        while let Some(warm) = spares.pop_front() {
            if !warm.worker.lineage.is_retired() {
                return Some(warm);
            }
        }
        None
    }

    /// Keeps a warm worker for the next job.
    pub(crate) fn put_spare(&self, warm: Warm) {
        self.spares().push_back(warm);
    }

    /// Drops (kills) the spare workers: they predate something a job needs.
    pub(crate) fn drop_spares(&self) {
        self.spares().clear();
    }

    /// The next worker from the zygote, restarting the zygote once if it died;
    /// with `fresh`, one forked after this call (its mount namespace is a copy
    /// of the current one).
    pub(crate) async fn next_arrival(&self, fresh: bool) -> Result<Arrival> {
        let mut guard = self.zygote.lock().await;
        self.recycle_if_due(&mut guard);
        for attempt in 0..2 {
            let conn = self.connected(&mut guard).await?;
            let result = if fresh {
                take_fresh_worker(conn).await
            } else {
                conn.take_worker().await
            };
            match result {
                Err(Error::Zygote { .. }) if attempt == 0 => {
                    // The zygote died (or was killed): reap it, start another.
                    tracing::warn!("the sandtar zygote exited; starting a new one");
                    if let Some(dead) = guard.take() {
                        drop(dead);
                    }
                }
                other => return other,
            }
        }
        Err(zygote_gone())
    }

    /// Drops the zygote if it is due for replacement (see the module's
    /// docs); [`Pool::connected`] then starts a fresh one. Dropping it drains
    /// and kills its queued workers and then the zygote, in the background.
    fn recycle_if_due(&self, zygote: &mut Option<ZygoteConn>) {
        let Some(conn) = zygote.as_ref() else {
            return;
        };
        let abnormal = conn.lineage().is_retired();
        if !abnormal && conn.received() < self.jobs_per_zygote {
            return;
        }
        // Its spares go too (`take_spare` drops retired ones).
        conn.lineage().retire();
        tracing::debug!(
            zygote_pid = conn.pid(),
            workers = conn.received(),
            abnormal,
            "replacing the sandtar zygote"
        );
        *zygote = None;
    }

    /// The running zygote, started anew if the last one died; it must confine
    /// as the first one did.
    async fn connected<'a>(
        &self,
        zygote: &'a mut Option<ZygoteConn>,
    ) -> Result<&'a mut ZygoteConn> {
        if zygote.is_none() {
            let (conn, mode) =
                ZygoteConn::start(self.warm_workers, self.subordinate_ids, self.rungs).await?;
            if mode != self.mode {
                return Err(Error::ConfinementUnavailable {
                    reason: format!(
                        "the restarted zygote runs in {mode:?}, not {:?} as before",
                        self.mode
                    ),
                });
            }
            *zygote = Some(conn);
        }
        Ok(zygote.as_mut().expect("just started"))
    }
}

/// A worker forked after this call: orders one, then skips (kills) the older
/// ones queued before it.
async fn take_fresh_worker(conn: &mut ZygoteConn) -> Result<Arrival> {
    let threshold = conn.next_requested();
    conn.request(1).await?;
    loop {
        let arrival = conn.take_worker().await?;
        if arrival.seq >= threshold {
            return Ok(arrival);
        }
    }
}
