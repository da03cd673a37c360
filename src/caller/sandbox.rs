//! The caller's side of the process model: the zygote and the pool of warm workers.
//!
//! The pool lives in the kernel: the zygote forks one warm worker per credit the
//! driver sends and queues it on the control socket (pid, pidfd and job socket in
//! one `SOCK_SEQPACKET` message). Taking a worker is receiving one message and
//! sending one credit back, so the zygote refills the pool while the job runs.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncRead;

use crate::caller::child::{reap_in_background, Reap, Worker};
use crate::caller::job::Job;
use crate::caller::subids::{self, SubordinateIds};
use crate::error::{Error, Result};
use crate::mode::SandboxMode;
use crate::options::Options;
use crate::report::Summary;
use crate::sys;
use crate::wire::{
    decode, encode_message, IdMapping, ZygoteMsg, ZygoteRequest, MAX_CONTROL_MESSAGE,
};
use crate::zygote;

/// How long the zygote may take to start and say hello.
const ZYGOTE_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A source of confined workers: start one per process (or per service) and
/// share it; it is cheap to clone.
///
/// ```no_run
/// # async fn demo() -> sandtar::Result<()> {
/// let sandbox = sandtar::Sandbox::new().await?;
/// let archive = tokio::fs::File::open("upload.tar.gz").await.map_err(|e| sandtar::Error::Read(e.into()))?;
/// std::fs::create_dir_all("/srv/unpacked").unwrap();
/// let summary = sandbox.extract(archive, "/srv/unpacked", &sandtar::Options::default()).await?;
/// println!("{} entries, {} written", summary.entries, summary.written);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

/// Configures a [`Sandbox`] before it starts.
#[derive(Clone, Debug)]
pub struct SandboxBuilder {
    warm_workers: u32,
    subordinate_ids: SubordinateIds,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            warm_workers: 2,
            subordinate_ids: SubordinateIds::Never,
        }
    }
}

impl SandboxBuilder {
    /// How many workers to keep forked and set up ahead of demand (default 2,
    /// at least 1). More helps bursts of small jobs; each idle worker costs a
    /// process of about 1 MiB.
    pub fn warm_workers(mut self, count: u32) -> Self {
        self.warm_workers = count.clamp(1, 256);
        self
    }

    /// For an unprivileged caller: whether the workers' user namespace maps the
    /// caller's subordinate ids (`/etc/subuid`, `/etc/subgid`, through
    /// `newuidmap`/`newgidmap`), so that owners from the archive can be kept
    /// without root ([`SandboxMode::SubordinateIds`]). Default:
    /// [`SubordinateIds::Never`]. Ignored as root, who needs no user namespace.
    ///
    /// Files then belong to the caller's subordinate ids on the host: the caller
    /// cannot modify or remove what it does not own without entering such a
    /// namespace again (`podman unshare`, `unshare --map-users=auto`), which is
    /// why this is not the default.
    ///
    /// ```no_run
    /// # async fn demo() -> sandtar::Result<()> {
    /// use sandtar::{Options, Sandbox, SandboxMode, SubordinateIds};
    /// let sandbox = Sandbox::builder()
    ///     .subordinate_ids(SubordinateIds::IfAvailable)
    ///     .build()
    ///     .await?;
    /// let mut options = Options::layer();
    /// options.preserve_owners = sandbox.mode().can_keep_owners();
    /// # Ok(()) }
    /// ```
    pub fn subordinate_ids(mut self, policy: SubordinateIds) -> Self {
        self.subordinate_ids = policy;
        self
    }

    /// Starts the zygote and warms the workers.
    ///
    /// Fails with [`Error::ConfinementUnavailable`] if this process can neither
    /// use its privileges nor enter a user namespace.
    pub async fn build(self) -> Result<Sandbox> {
        let (conn, mode) = ZygoteConn::start(self.warm_workers, self.subordinate_ids).await?;
        let sandbox = Sandbox {
            inner: Arc::new(Inner {
                mode,
                warm_workers: self.warm_workers,
                subordinate_ids: self.subordinate_ids,
                zygote: tokio::sync::Mutex::new(Some(conn)),
                spare: Mutex::new(VecDeque::new()),
            }),
        };
        // Prove that a worker can be set up here, so that a sandbox that cannot
        // confine fails now rather than at its first job.
        let probe = sandbox.inner.warm_worker().await?;
        sandbox
            .inner
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(probe);
        Ok(sandbox)
    }
}

impl Sandbox {
    /// Starts a sandbox with the default settings: the zygote process and two
    /// warm workers.
    pub async fn new() -> Result<Sandbox> {
        SandboxBuilder::default().build().await
    }

    /// A builder for non-default settings.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// How this sandbox confines its workers.
    pub fn mode(&self) -> SandboxMode {
        self.inner.mode
    }

    /// Extracts the archive read from `reader` into the directory `dest`, and
    /// returns the summary once every entry has been handled.
    ///
    /// Per-entry problems do not make this fail: check [`Summary::rejected`],
    /// [`Summary::failed`] and [`Summary::skipped`], or use [`Sandbox::start`] to
    /// see each entry. Dropping the future stops the worker.
    pub async fn extract<R>(
        &self,
        reader: R,
        dest: impl AsRef<Path>,
        options: &Options,
    ) -> Result<Summary>
    where
        R: AsyncRead + Unpin,
    {
        self.start(reader, dest, options).await?.finish().await
    }

    /// Applies an image layer onto the existing tree `dest`, as Docker's
    /// `ApplyLayer` does: OCI whiteouts are applied (or converted, with
    /// [`WhiteoutFormat::Overlay`](crate::WhiteoutFormat::Overlay)), and the
    /// summary carries the layer's size and `diff_id`. `options` usually comes
    /// from [`Options::layer()`]; whiteouts default to OCI and the digest is always
    /// computed. Set [`Options::expected_diff_id`] to check it.
    ///
    /// ```no_run
    /// # async fn demo(sandbox: sandtar::Sandbox) -> sandtar::Result<()> {
    /// for layer in ["base.tar.gz", "app.tar.zst"] {
    ///     let file = tokio::fs::File::open(layer).await.map_err(|e| sandtar::Error::Read(e.into()))?;
    ///     let summary = sandbox.apply_layer(file, "/var/lib/rootfs", &sandtar::Options::layer()).await?;
    ///     println!("{layer}: {} bytes, {}", summary.layer_size, summary.diff_id.unwrap_or_default());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn apply_layer<R>(
        &self,
        reader: R,
        dest: impl AsRef<Path>,
        options: &Options,
    ) -> Result<Summary>
    where
        R: AsyncRead + Unpin,
    {
        let mut options = options.clone();
        if options.whiteouts.is_none() {
            options.whiteouts = Some(crate::options::WhiteoutFormat::Oci);
        }
        options.digest = true;
        self.extract(reader, dest, &options).await
    }

    /// Starts an extraction and returns the [`Job`]: a stream of per-entry reports,
    /// and [`Job::finish`] for the summary.
    ///
    /// By the time this returns, the worker is confined to `dest` (any problem with
    /// the destination has been reported) and no byte of the archive has been read.
    pub async fn start<R>(
        &self,
        reader: R,
        dest: impl AsRef<Path>,
        options: &Options,
    ) -> Result<Job<R>>
    where
        R: AsyncRead + Unpin,
    {
        crate::caller::job::start(&self.inner, reader, dest.as_ref(), options).await
    }
}

/// A worker as it arrives from the zygote.
pub(crate) struct Arrival {
    pub worker: Worker,
    pub socket: OwnedFd,
    /// Position in the zygote's birth order.
    pub seq: u64,
}

/// A worker that said it is warm, with its socket ready for a job.
pub(crate) struct Warm {
    pub worker: Worker,
    pub socket: tokio::net::UnixStream,
}

#[derive(Debug)]
pub(crate) struct Inner {
    mode: SandboxMode,
    warm_workers: u32,
    subordinate_ids: SubordinateIds,
    /// The zygote; replaced when it dies. Locked while receiving a worker, so
    /// birth numbers stay in order.
    zygote: tokio::sync::Mutex<Option<ZygoteConn>>,
    /// Workers received and known warm, not yet used.
    spare: Mutex<VecDeque<Warm>>,
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warm")
            .field("pid", &self.worker.pid)
            .finish()
    }
}

/// A running zygote and its control socket.
#[derive(Debug)]
struct ZygoteConn {
    control: Option<AsyncFd<OwnedFd>>,
    child: Option<Child>,
    /// Workers requested so far (the next requested one's birth number).
    requested: u64,
    /// Workers received so far (the next received one's birth number).
    received: u64,
}

impl ZygoteConn {
    /// Re-executes this program as a zygote, waits for its hello and orders
    /// `warm` workers.
    async fn start(warm: u32, subids: SubordinateIds) -> Result<(ZygoteConn, SandboxMode)> {
        // Keep the pre-main hook in every executable that uses a sandbox.
        std::hint::black_box(&zygote::ZYGOTE_HOOK);
        let (ours, theirs) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(|e| Error::zygote("socketpair", e.into()))?;
        rustix::io::ioctl_fionbio(&theirs, false)
            .map_err(|e| Error::zygote("socketpair", e.into()))?;
        let child = Command::new("/proc/self/exe")
            .arg0("sandtar-zygote")
            .env(zygote::MARKER_NAME, "1")
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::zygote("re-executing /proc/self/exe", e))?;
        let control = sys::async_fd(
            ours,
            tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE,
        )
        .map_err(|e| Error::zygote("registering the control socket", e))?;
        let mut conn = ZygoteConn {
            control: Some(control),
            child: Some(child),
            requested: 0,
            received: 0,
        };
        let hello = tokio::time::timeout(ZYGOTE_START_TIMEOUT, conn.hello(subids)).await;
        let mode = match hello {
            Err(_) => {
                return Err(Error::zygote(
                    "waiting for the zygote",
                    std::io::ErrorKind::TimedOut.into(),
                ))
            }
            Ok(result) => result?,
        };
        conn.request(warm).await?;
        tracing::debug!(
            zygote_pid = conn.child.as_ref().map(|c| c.id()),
            ?mode,
            warm,
            "zygote started"
        );
        Ok((conn, mode))
    }

    /// Waits for the zygote's hello; first writes the id maps of its user
    /// namespace if it entered one.
    async fn hello(&mut self, subids: SubordinateIds) -> Result<SandboxMode> {
        loop {
            match self.recv().await? {
                (ZygoteMsg::Hello(mode), _) => return Ok(mode),
                (ZygoteMsg::Fatal(reason), _) => {
                    return Err(Error::ConfinementUnavailable { reason })
                }
                (ZygoteMsg::Unshared, _) => {
                    let mapping = self.map_ids(subids).await?;
                    self.send(&ZygoteRequest::MapIds(mapping)).await?;
                }
                (other, _) => {
                    return Err(Error::Protocol(format!(
                        "zygote said {other:?} before hello"
                    )))
                }
            }
        }
    }

    /// Writes the zygote's id maps with the subordinate-id helpers, or leaves
    /// them to the zygote (its own ids only).
    async fn map_ids(&self, subids: SubordinateIds) -> Result<IdMapping> {
        if subids == SubordinateIds::Never {
            return Ok(IdMapping::Single);
        }
        let pid = self
            .child
            .as_ref()
            .map(|c| c.id())
            .ok_or_else(zygote_gone)?;
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let result = tokio::task::spawn_blocking(move || {
            // Missing helpers or ranges are "not available"; a helper that runs
            // and fails is an error either way.
            let plan = subids::plan(uid, gid).map_err(|missing| (false, missing))?;
            plan.write(pid).map_err(|failed| (true, failed))
        })
        .await
        .map_err(|e| Error::zygote("mapping subordinate ids", std::io::Error::other(e)))?;
        match result {
            Ok(mapping) => Ok(mapping),
            Err((false, missing)) if subids == SubordinateIds::IfAvailable => {
                tracing::debug!(%missing, "no subordinate ids; mapping the caller only");
                Ok(IdMapping::Single)
            }
            Err((_, reason)) => Err(Error::ConfinementUnavailable {
                reason: format!("mapping subordinate ids: {reason}"),
            }),
        }
    }

    fn control(&self) -> &AsyncFd<OwnedFd> {
        self.control
            .as_ref()
            .expect("control socket present until drop")
    }

    /// Receives one message (and its descriptors) from the zygote. `None` when
    /// the zygote has exited.
    async fn recv(&self) -> Result<(ZygoteMsg, Vec<OwnedFd>)> {
        let mut buf = [0u8; MAX_CONTROL_MESSAGE];
        loop {
            let mut guard = self
                .control()
                .readable()
                .await
                .map_err(|e| Error::io("zygote socket", e))?;
            match guard.try_io(|fd| sys::recv_with_fds(fd.get_ref().as_fd(), &mut buf)) {
                Ok(Ok((0, _))) => return Err(zygote_gone()),
                Ok(Ok((n, fds))) => {
                    let msg = decode::<ZygoteMsg>(&buf[..n]).map_err(Error::Protocol)?;
                    return Ok((msg, fds));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(zygote_gone())
                }
                Ok(Err(e)) => return Err(Error::io("zygote socket", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Asks the zygote for `count` more workers.
    async fn request(&mut self, count: u32) -> Result<()> {
        self.send(&ZygoteRequest::Spawn(count)).await?;
        self.requested += u64::from(count);
        Ok(())
    }

    /// Sends one request to the zygote.
    async fn send(&self, request: &ZygoteRequest) -> Result<()> {
        let msg = encode_message(request);
        loop {
            let mut guard = self
                .control()
                .writable()
                .await
                .map_err(|e| Error::io("zygote socket", e))?;
            match guard.try_io(|fd| sys::send_with_fds(fd.get_ref().as_fd(), &msg, &[])) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Err(zygote_gone())
                }
                Ok(Err(e)) => return Err(Error::io("zygote socket", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives the next worker the zygote forked, and orders a replacement.
    async fn take_worker(&mut self) -> Result<Arrival> {
        let (msg, mut fds) = self.recv().await?;
        let arrival = match msg {
            ZygoteMsg::Worker { pid } if fds.len() == 2 => {
                let socket = fds.pop().expect("two descriptors");
                let pidfd = fds.pop().expect("two descriptors");
                let seq = self.received;
                self.received += 1;
                Arrival {
                    worker: Worker::new(pid, pidfd),
                    socket,
                    seq,
                }
            }
            ZygoteMsg::SpawnFailed(reason) => {
                self.request(1).await?;
                return Err(Error::ConfinementUnavailable { reason });
            }
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected message from the zygote: {other:?}"
                )))
            }
        };
        self.request(1).await?;
        Ok(arrival)
    }
}

fn zygote_gone() -> Error {
    Error::zygote(
        "receiving a worker",
        std::io::Error::other("the zygote process exited"),
    )
}

impl Inner {
    /// The next worker from the zygote, restarting the zygote once if it died;
    /// with `fresh`, one forked after this call.
    async fn next_arrival(&self, fresh: bool) -> Result<Arrival> {
        let mut guard = self.zygote.lock().await;
        for attempt in 0..2 {
            if guard.is_none() {
                let (conn, mode) =
                    ZygoteConn::start(self.warm_workers, self.subordinate_ids).await?;
                if mode != self.mode {
                    return Err(Error::ConfinementUnavailable {
                        reason: format!(
                            "the restarted zygote runs in {mode:?}, not {:?} as before",
                            self.mode
                        ),
                    });
                }
                *guard = Some(conn);
            }
            let conn = guard.as_mut().expect("just started");
            let result = if fresh {
                // A worker forked after this call: skip (kill) older ones.
                let threshold = conn.requested;
                match conn.request(1).await {
                    Err(e) => Err(e),
                    Ok(()) => loop {
                        match conn.take_worker().await {
                            Ok(a) if a.seq >= threshold => break Ok(a),
                            Ok(_older) => continue,
                            Err(e) => break Err(e),
                        }
                    },
                }
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

    /// A warm worker: a spare one, or the next from the zygote.
    pub(crate) async fn warm_worker(&self) -> Result<Warm> {
        if let Some(w) = self
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
        {
            return Ok(w);
        }
        crate::caller::job::expect_warm(self.next_arrival(false).await?).await
    }

    /// A warm worker forked after this call: its mount namespace is a copy of the
    /// current one (used when an older worker does not see the destination).
    pub(crate) async fn fresh_worker(&self) -> Result<Warm> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).clear();
        crate::caller::job::expect_warm(self.next_arrival(true).await?).await
    }
}

impl Drop for ZygoteConn {
    fn drop(&mut self) {
        // Shut down off the caller's thread: tell the zygote to stop (end of its
        // input), collect every worker it already forked (they are our children),
        // kill and reap them, then reap the zygote.
        let control = self.control.take().map(|c| c.into_inner());
        let zygote = self.child.take();
        reap_in_background(Reap::Task(Box::new(move || {
            if let Some(control) = control {
                let _ = rustix::io::ioctl_fionbio(&control, false);
                let _ = rustix::net::shutdown(&control, rustix::net::Shutdown::Write);
                let _ = rustix::net::sockopt::set_socket_timeout(
                    &control,
                    rustix::net::sockopt::Timeout::Recv,
                    Some(Duration::from_secs(5)),
                );
                let mut buf = [0u8; MAX_CONTROL_MESSAGE];
                while let Ok((n, fds)) = sys::recv_with_fds(control.as_fd(), &mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let (Ok(ZygoteMsg::Worker { pid }), [pidfd, _socket]) =
                        (decode::<ZygoteMsg>(&buf[..n]), &fds[..])
                    {
                        if let Ok(pidfd) = pidfd.try_clone() {
                            drop(Worker::new(pid, pidfd));
                        }
                    }
                }
            }
            if let Some(mut zygote) = zygote {
                let _ = zygote.kill();
                let _ = zygote.wait();
            }
        })));
    }
}
