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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncRead;

use crate::child::{reap_in_background, Reap, Worker};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::options::Options;
use crate::protocol::{
    decode, encode_message, SandboxMode, ZygoteMsg, ZygoteRequest, MAX_CONTROL_MESSAGE,
};
use crate::report::Summary;
use crate::sys;
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
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder { warm_workers: 2 }
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

    /// Starts the zygote and warms the workers.
    ///
    /// Fails with [`Error::ConfinementUnavailable`] if this process can neither
    /// use its privileges nor enter a user namespace.
    pub async fn build(self) -> Result<Sandbox> {
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
        let zygote = Command::new("/proc/self/exe")
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
        let mut inner = Inner {
            control: Some(control),
            zygote: Mutex::new(Some(zygote)),
            mode: SandboxMode::Privileged,
            requested: AtomicU64::new(0),
            spare: Mutex::new(VecDeque::new()),
            take_lock: tokio::sync::Mutex::new(()),
            received: AtomicU64::new(0),
        };
        let hello = tokio::time::timeout(ZYGOTE_START_TIMEOUT, inner.recv()).await;
        let mode = match hello {
            Err(_) => {
                return Err(Error::zygote(
                    "waiting for the zygote",
                    std::io::ErrorKind::TimedOut.into(),
                ))
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok((ZygoteMsg::Hello(mode), _))) => mode,
            Ok(Ok((ZygoteMsg::Fatal(reason), _))) => {
                return Err(Error::ConfinementUnavailable { reason })
            }
            Ok(Ok((other, _))) => {
                return Err(Error::Protocol(format!(
                    "zygote said {other:?} before hello"
                )))
            }
        };
        inner.mode = mode;
        inner.request(self.warm_workers).await?;
        let sandbox = Sandbox {
            inner: Arc::new(inner),
        };
        // Prove that a worker can be set up here, so that a sandbox that cannot
        // confine fails now rather than at its first job.
        let probe = sandbox.inner.take_worker().await?;
        let probe = crate::job::expect_warm(probe).await?;
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
        crate::job::start(&self.inner, reader, dest.as_ref(), options).await
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
    control: Option<AsyncFd<OwnedFd>>,
    zygote: Mutex<Option<Child>>,
    mode: SandboxMode,
    /// Workers requested from the zygote so far (the next one's birth number).
    requested: AtomicU64,
    /// Workers received and known warm, not yet used.
    spare: Mutex<VecDeque<Warm>>,
    /// Serialises receiving from the zygote, so birth numbers stay in order.
    take_lock: tokio::sync::Mutex<()>,
    /// Workers received so far (the next one's birth number).
    received: AtomicU64,
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warm")
            .field("pid", &self.worker.pid)
            .finish()
    }
}

impl Inner {
    fn control(&self) -> &AsyncFd<OwnedFd> {
        self.control
            .as_ref()
            .expect("control socket present until drop")
    }

    /// Receives one message (and its descriptors) from the zygote.
    async fn recv(&self) -> Result<(ZygoteMsg, Vec<OwnedFd>)> {
        let mut buf = [0u8; MAX_CONTROL_MESSAGE];
        loop {
            let mut guard = self
                .control()
                .readable()
                .await
                .map_err(|e| Error::io("zygote socket", e))?;
            match guard.try_io(|fd| sys::recv_with_fds(fd.get_ref().as_fd(), &mut buf)) {
                Ok(Ok((0, _))) => {
                    return Err(Error::zygote(
                        "receiving a worker",
                        std::io::Error::other("the zygote process exited"),
                    ))
                }
                Ok(Ok((n, fds))) => {
                    let msg = decode::<ZygoteMsg>(&buf[..n]).map_err(Error::Protocol)?;
                    return Ok((msg, fds));
                }
                Ok(Err(e)) => return Err(Error::io("zygote socket", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Asks the zygote for `count` more workers.
    async fn request(&self, count: u32) -> Result<()> {
        let msg = encode_message(&ZygoteRequest::Spawn(count));
        loop {
            let mut guard = self
                .control()
                .writable()
                .await
                .map_err(|e| Error::io("zygote socket", e))?;
            match guard.try_io(|fd| sys::send_with_fds(fd.get_ref().as_fd(), &msg, &[])) {
                Ok(Ok(_)) => {
                    self.requested
                        .fetch_add(u64::from(count), Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Err(e)) => return Err(Error::io("zygote socket", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives the next worker the zygote forked, and orders a replacement.
    async fn take_worker(&self) -> Result<Arrival> {
        let _turn = self.take_lock.lock().await;
        let (msg, mut fds) = self.recv().await?;
        let arrival = match msg {
            ZygoteMsg::Worker { pid } if fds.len() == 2 => {
                let socket = fds.pop().expect("two descriptors");
                let pidfd = fds.pop().expect("two descriptors");
                let seq = self.received_seq();
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

    fn received_seq(&self) -> u64 {
        self.received.fetch_add(1, Ordering::Relaxed)
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
        crate::job::expect_warm(self.take_worker().await?).await
    }

    /// A warm worker forked after this call: its mount namespace is a copy of the
    /// current one (used when an older worker does not see the destination).
    pub(crate) async fn fresh_worker(&self) -> Result<Warm> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let threshold = self.requested.load(Ordering::Relaxed);
        self.request(1).await?;
        loop {
            let arrival = self.take_worker().await?;
            if arrival.seq >= threshold {
                return crate::job::expect_warm(arrival).await;
            }
            // An older worker: dropping it kills and reaps it.
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Shut down off the caller's thread: tell the zygote to stop (end of its
        // input), collect every worker it already forked (they are our children),
        // kill and reap them, then reap the zygote.
        let control = self.control.take().map(|c| c.into_inner());
        let zygote = self.zygote.lock().ok().and_then(|mut z| z.take());
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).clear();
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
