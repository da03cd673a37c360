//! The pool of warm workers: where a job's worker comes from, and the zygote
//! restarted if it died.
//!
//! The pool lives in the kernel: the zygote forks one warm worker per credit the
//! driver sends and queues it on the control socket (pid, pidfd and job socket in
//! one `SOCK_SEQPACKET` message). Taking a worker is receiving one message and
//! sending one credit back, so the zygote refills the pool while the job runs.
//! Workers received and already known warm wait here as spares.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crate::caller::child::Worker;
use crate::caller::subids::SubordinateIds;
use crate::caller::zygote_conn::{zygote_gone, Arrival, ZygoteConn};
use crate::error::{Error, Result};
use crate::mode::SandboxMode;

/// A worker that said it is warm, with its socket ready for a job.
pub(crate) struct Warm {
    pub worker: Worker,
    pub socket: tokio::net::UnixStream,
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
    /// The zygote; replaced when it dies. Locked while receiving a worker, so
    /// birth numbers stay in order.
    zygote: tokio::sync::Mutex<Option<ZygoteConn>>,
    /// Workers received and known warm, not yet used.
    spare: Mutex<VecDeque<Warm>>,
}

impl Pool {
    /// Starts the zygote and orders `warm_workers` workers.
    pub(crate) async fn start(warm_workers: u32, subordinate_ids: SubordinateIds) -> Result<Pool> {
        let (conn, mode) = ZygoteConn::start(warm_workers, subordinate_ids).await?;
        Ok(Pool {
            mode,
            warm_workers,
            subordinate_ids,
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

    /// A spare warm worker, if there is one.
    pub(crate) fn take_spare(&self) -> Option<Warm> {
        self.spares().pop_front()
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

    /// The running zygote, started anew if the last one died; it must confine
    /// as the first one did.
    async fn connected<'a>(
        &self,
        zygote: &'a mut Option<ZygoteConn>,
    ) -> Result<&'a mut ZygoteConn> {
        if zygote.is_none() {
            let (conn, mode) = ZygoteConn::start(self.warm_workers, self.subordinate_ids).await?;
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
