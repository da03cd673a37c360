//! The caller's end of the zygote: starting it, its hello (and id maps), the
//! control messages, workers as they arrive, and shutting it down.
//!
//! The control socket is a `SOCK_SEQPACKET` pair: one message per datagram,
//! each worker arriving as one message with its pidfd and job socket attached.
//!
//! The zygote starts clean: an empty environment but for its marker (and
//! `LD_LIBRARY_PATH`, which the dynamic loader may need to start it), `/` as
//! its working directory, and it is forked by a thread that lives as long as
//! the caller's process, so that the SIGKILL it asks for when its parent dies
//! (`PR_SET_PDEATHSIG`, set by the start-up hook) comes only when the caller's
//! process ends.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use tokio::io::unix::AsyncFd;

use crate::caller::child::{reap_in_background, Lineage, Reap, Worker};
use crate::caller::subids::{self, SubordinateIds};
use crate::error::{Error, Result};
use crate::mode::{Rungs, SandboxMode};
use crate::sys;
use crate::wire::{
    decode, encode_message, IdMapping, ZygoteMsg, ZygoteRequest, MAX_CONTROL_MESSAGE,
};
use crate::zygote;

/// How long the zygote may take to start and say hello.
const ZYGOTE_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A worker as it arrives from the zygote.
pub(crate) struct Arrival {
    pub worker: Worker,
    pub socket: OwnedFd,
    /// Position in the zygote's birth order.
    pub seq: u64,
}

/// A running zygote and its control socket.
///
/// The socket is registered with the calling task's runtime for each call
/// only (a duplicate of it, dropped at the end), not once for good: a sandbox
/// outlives the runtime that created it and serves any other (one per
/// `#[tokio::test]`, one per call of a synchronous wrapper).
#[derive(Debug)]
pub(crate) struct ZygoteConn {
    control: Option<OwnedFd>,
    child: Option<Child>,
    /// Workers requested so far (the next requested one's birth number).
    requested: u64,
    /// Workers received so far (the next received one's birth number).
    received: u64,
    /// Shared with every worker it forked: retired when one ends abnormally.
    lineage: Lineage,
}

impl ZygoteConn {
    /// Re-executes this program as a zygote, waits for its hello and orders
    /// `warm` workers.
    pub(crate) async fn start(
        warm: u32,
        subids: SubordinateIds,
        rungs: Rungs,
    ) -> Result<(ZygoteConn, SandboxMode)> {
        let (control, child) = spawn(rungs).await?;
        let mut conn = ZygoteConn {
            control: Some(control),
            child: Some(child),
            requested: 0,
            received: 0,
            lineage: Lineage::default(),
        };
        let (expired, _cancel) = deadline(ZYGOTE_START_TIMEOUT);
        let mode = tokio::select! {
            mode = conn.hello(subids) => mode?,
            Ok(()) = expired => {
                let timed_out = std::io::ErrorKind::TimedOut.into();
                return Err(Error::zygote("waiting for the zygote", timed_out));
            }
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
        let control = self.register()?;
        loop {
            let message = recv(&control).await.map_err(|e| match e {
                Error::Zygote { .. } => Error::zygote(
                    "waiting for its hello",
                    io::Error::other(
                        "the zygote process exited (its own message, if any, is above)",
                    ),
                ),
                other => other,
            })?;
            match message {
                (ZygoteMsg::Hello(mode), _) => return Ok(mode),
                (ZygoteMsg::Fatal(reason), _) => {
                    return Err(Error::ConfinementUnavailable { reason })
                }
                (ZygoteMsg::Unshared, _) => {
                    let mapping = self.map_ids(subids).await?;
                    send(&control, &ZygoteRequest::MapIds(mapping)).await?;
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

    /// The control socket, registered with the calling task's runtime until
    /// the returned value is dropped.
    fn register(&self) -> Result<AsyncFd<OwnedFd>> {
        let control = self
            .control
            .as_ref()
            .expect("control socket present until drop");
        let interest = tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE;
        control
            .try_clone()
            .and_then(|fd| sys::async_fd(fd, interest))
            .map_err(|e| Error::zygote("registering the control socket", e))
    }

    /// Asks the zygote for `count` more workers.
    pub(crate) async fn request(&mut self, count: u32) -> Result<()> {
        let control = self.register()?;
        self.request_on(&control, count).await
    }

    async fn request_on(&mut self, control: &AsyncFd<OwnedFd>, count: u32) -> Result<()> {
        send(control, &ZygoteRequest::Spawn(count)).await?;
        self.requested += u64::from(count);
        Ok(())
    }

    /// The birth number the next requested worker will have.
    pub(crate) fn next_requested(&self) -> u64 {
        self.requested
    }

    /// How many workers this zygote has handed over so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The zygote's lineage, shared by its workers.
    pub(crate) fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// The zygote's process id (for logs).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Orders a replacement, then receives the next worker the zygote forked.
    /// In that order: a call dropped half way leaves one worker too many
    /// queued (drained with the zygote), never one too few (the zygote's
    /// queue would shrink for good, and a later call wait for nothing).
    pub(crate) async fn take_worker(&mut self) -> Result<Arrival> {
        let control = self.register()?;
        self.request_on(&control, 1).await?;
        let (msg, fds) = recv(&control).await?;
        let (worker, socket) = match worker_of(msg, fds, &self.lineage) {
            Ok(arrived) => arrived,
            // That fork failed; the replacement is ordered already.
            Err(ZygoteMsg::SpawnFailed(reason)) => {
                return Err(Error::ConfinementUnavailable { reason })
            }
            Err(other) => {
                return Err(Error::Protocol(format!(
                    "unexpected message from the zygote: {other:?}"
                )))
            }
        };
        let seq = self.received;
        self.received += 1;
        Ok(Arrival {
            worker,
            socket,
            seq,
        })
    }
}

/// Receives one message (and its descriptors) from the zygote; an error
/// ([`zygote_gone`]) when the zygote has exited.
async fn recv(control: &AsyncFd<OwnedFd>) -> Result<(ZygoteMsg, Vec<OwnedFd>)> {
    let mut buf = [0u8; MAX_CONTROL_MESSAGE];
    loop {
        let mut guard = control
            .readable()
            .await
            .map_err(|e| Error::io("zygote socket", e))?;
        match guard.try_io(|fd| sys::recv_with_fds(fd.get_ref().as_fd(), &mut buf)) {
            Ok(Ok((0, _))) => return Err(zygote_gone()),
            Ok(Ok((n, fds))) => {
                let msg = decode::<ZygoteMsg>(&buf[..n]).map_err(Error::Protocol)?;
                return Ok((msg, fds));
            }
            Ok(Err(e)) => return Err(socket_error(e)),
            Err(_would_block) => continue,
        }
    }
}

/// Sends one request to the zygote.
async fn send(control: &AsyncFd<OwnedFd>, request: &ZygoteRequest) -> Result<()> {
    let msg = encode_message(request);
    loop {
        let mut guard = control
            .writable()
            .await
            .map_err(|e| Error::io("zygote socket", e))?;
        match guard.try_io(|fd| sys::send_with_fds(fd.get_ref().as_fd(), &msg, &[])) {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => return Err(socket_error(e)),
            Err(_would_block) => continue,
        }
    }
}

/// An error on the control socket: [`zygote_gone`] where it says the zygote
/// closed its end (a send to a dead zygote fails with `EPIPE` or, if it died
/// with a request unread, `ECONNRESET`; so may a receive), so that the pool
/// restarts it.
fn socket_error(e: std::io::Error) -> Error {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
    match e.kind() {
        BrokenPipe | ConnectionReset => zygote_gone(),
        _ => Error::io("zygote socket", e),
    }
}

/// The worker a [`ZygoteMsg::Worker`] announces, with its job socket; any other
/// message (or one without exactly its two descriptors) back as it came.
fn worker_of(
    msg: ZygoteMsg,
    mut fds: Vec<OwnedFd>,
    lineage: &Lineage,
) -> Result<(Worker, OwnedFd), ZygoteMsg> {
    match msg {
        ZygoteMsg::Worker { pid } if fds.len() == 2 => {
            let socket = fds.pop().expect("two descriptors");
            let pidfd = fds.pop().expect("two descriptors");
            Ok((Worker::new(pid, pidfd, lineage.clone()), socket))
        }
        other => Err(other),
    }
}

/// Re-executes this program as the zygote, its standard input the far end of
/// a new control socket; returns our end and the child.
async fn spawn(rungs: Rungs) -> Result<(OwnedFd, Child)> {
    // Keep the pre-main hook in every executable that uses a sandbox.
    std::hint::black_box(&zygote::ZYGOTE_HOOK);
    if let Some(loader) = started_through_the_loader() {
        return Err(Error::zygote(
            "re-executing /proc/self/exe",
            io::Error::other(format!(
                "this program was started through the dynamic loader ({loader}), so \
                 /proc/self/exe is the loader, not the program, and cannot become the \
                 zygote: run the program directly"
            )),
        ));
    }
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| Error::zygote("socketpair", e.into()))?;
    rustix::io::ioctl_fionbio(&theirs, false).map_err(|e| Error::zygote("socketpair", e.into()))?;
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0("sandtar-zygote")
        // Nothing of the caller's environment (secrets, tokens) reaches the
        // zygote or its workers. The marker carries our pid: the start-up hook
        // checks that it is still its parent once it asked to die with it.
        .env_clear()
        .env(
            zygote::MARKER_NAME,
            format!("{}:{}", std::process::id(), rungs.encode()),
        )
        .current_dir("/")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // The dynamic loader may need it to find the program's libraries.
    if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
        command.env("LD_LIBRARY_PATH", path);
    }
    let child = spawn_from_lasting_thread(command)
        .await
        .map_err(|e| Error::zygote("re-executing /proc/self/exe", e))?;
    Ok((ours, child))
}

/// Resolves once `after` has passed, without tokio's timer (a sandbox serves
/// runtimes built without one, and restarts its zygote on whichever runtime
/// the call runs): a thread waits, and leaves as soon as the returned sender
/// is dropped.
fn deadline(after: Duration) -> (tokio::sync::oneshot::Receiver<()>, Sender<()>) {
    let (fire, expired) = tokio::sync::oneshot::channel();
    let (cancel, cancelled) = mpsc::channel::<()>();
    let waiter = std::thread::Builder::new()
        .name("sandtar-deadline".into())
        .spawn(move || {
            if cancelled.recv_timeout(after) == Err(mpsc::RecvTimeoutError::Timeout) {
                let _ = fire.send(());
            }
        });
    // Without the thread there is no deadline: the zygote's own death still
    // ends the wait (its socket closes).
    drop(waiter);
    (expired, cancel)
}

/// The dynamic loader's name, when it is what `/proc/self/exe` names (the
/// program was run as `ld-linux-x86-64.so.2 ./program`).
fn started_through_the_loader() -> Option<String> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    let loader =
        name.starts_with("ld-linux") || name.starts_with("ld.so") || name.starts_with("ld-musl");
    loader.then_some(name)
}

/// A command to run on the spawner thread, and where to send its child.
type SpawnRequest = (Command, tokio::sync::oneshot::Sender<io::Result<Child>>);

/// Runs `command` on `sandtar-spawner`, a thread started on first use that
/// lives as long as the process. The zygote asks the kernel for SIGKILL when
/// its parent dies (`PR_SET_PDEATHSIG`), and for the kernel that parent is the
/// *thread* that forked it: forked from a runtime's thread, the zygote would be
/// killed when that runtime shuts down or retires the thread.
async fn spawn_from_lasting_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // If the thread cannot start, `rx` is dropped with it and every
        // request fails below: no zygote is better than one that a thread's
        // end would kill.
        let _ = std::thread::Builder::new()
            .name("sandtar-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            });
        Mutex::new(tx)
    });
    let (reply, child) = tokio::sync::oneshot::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .map_err(|_| io::Error::other("the sandtar-spawner thread could not be started"))?;
    child
        .await
        .map_err(|_| io::Error::other("the sandtar-spawner thread is gone"))?
}

/// The error for a zygote that exited.
pub(crate) fn zygote_gone() -> Error {
    Error::zygote(
        "receiving a worker",
        std::io::Error::other("the zygote process exited"),
    )
}

impl Drop for ZygoteConn {
    fn drop(&mut self) {
        // Shut down off the caller's thread: tell the zygote to stop (end of its
        // input), collect every worker it already forked (they are our children),
        // kill and reap them, then reap the zygote.
        let control = self.control.take();
        let zygote = self.child.take();
        reap_in_background(Reap::Task(Box::new(move || {
            if let Some(control) = control {
                drain_workers(control);
            }
            if let Some(mut zygote) = zygote {
                let _ = zygote.kill();
                let _ = zygote.wait();
            }
        })));
    }
}

/// Closes our side of the control socket and kills every worker still queued
/// on it (dropping a [`Worker`] kills and reaps it), until the zygote closes
/// its side or stays silent for 5 seconds.
fn drain_workers(control: OwnedFd) {
    let _ = rustix::io::ioctl_fionbio(&control, false);
    let _ = rustix::net::shutdown(&control, rustix::net::Shutdown::Write);
    let _ = rustix::net::sockopt::set_socket_timeout(
        &control,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(5)),
    );
    let mut buf = [0u8; MAX_CONTROL_MESSAGE];
    loop {
        let (n, fds) = match sys::recv_with_fds(control.as_fd(), &mut buf) {
            Ok(received) => received,
            // A zygote that died with a request unread: reported once,
            // before the workers still queued.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        if let Ok(msg) = decode::<ZygoteMsg>(&buf[..n]) {
            drop(worker_of(msg, fds, &Lineage::default()));
        }
    }
}
