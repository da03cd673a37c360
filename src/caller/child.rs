//! Worker processes seen from the caller: pidfds, killing, reaping, and the
//! zygote they came from.
//!
//! Workers are children of the caller's process (the zygote forks them with
//! `CLONE_PARENT`) and are watched and signalled only through pidfds, so a
//! recycled pid can never be hit. Every worker is reaped: by its job, which
//! kills it as soon as the result is in, or by a small background thread
//! (`sandtar-reaper`) that waits for workers whose job ended before their exit
//! did (see `caller::job`) and for workers that were dropped.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions, WaitIdStatus};

/// A worker process owned by the caller.
#[derive(Debug)]
pub(crate) struct Worker {
    pub pid: u32,
    /// `None` once reaped.
    pidfd: Option<OwnedFd>,
    /// The zygote it was forked from.
    pub lineage: Lineage,
}

/// The zygote a worker was forked from, as its job sees it. Every worker of a
/// zygote shares its address-space layout (a fork copies it); a worker that
/// ends abnormally, possibly an exploit probing that layout, retires the
/// zygote, and the pool starts a fresh one (a new exec, a new layout) before
/// the next job. The pool also retires a zygote that served its share of jobs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lineage(Arc<AtomicBool>);

impl Lineage {
    /// Marks the zygote as due for replacement; its workers not yet used are
    /// discarded.
    pub(crate) fn retire(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the zygote is due for replacement.
    pub(crate) fn is_retired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a worker ended, as `waitid` reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// Someone else reaped it (a `waitpid(-1, __WALL)` elsewhere in the
    /// caller's process), so its status is lost.
    Unknown,
}

impl Exit {
    /// How it ended, in words: "exited with status 3", "killed by signal 9 (SIGKILL)".
    pub(crate) fn describe(self) -> String {
        match self {
            Exit::Code(code) => format!("exited with status {code}"),
            Exit::Signal(sig) => format!("killed by signal {sig} ({})", signal_name(sig)),
            Exit::Unknown => "exited (reaped elsewhere; status unavailable)".into(),
        }
    }

    /// How a worker ends when nothing went wrong: status 0 (it exits by
    /// itself after its last message), or SIGKILL, the caller's own once the
    /// result is in (a SIGKILL from elsewhere before the result shows as a job
    /// without a result instead). A status lost to someone else's `waitpid`
    /// counts as clean: the caller cannot tell, and treating it as abnormal
    /// would replace the zygote after every job in such a process.
    pub(crate) fn is_clean(self) -> bool {
        matches!(
            self,
            Exit::Code(0) | Exit::Signal(libc::SIGKILL) | Exit::Unknown
        )
    }
}

fn wait_flags() -> WaitIdOptions {
    // __WALL: a CLONE_PARENT child may carry a non-SIGCHLD exit signal.
    WaitIdOptions::EXITED | WaitIdOptions::from_bits_retain(libc::__WALL as u32)
}

impl Worker {
    pub(crate) fn new(pid: u32, pidfd: OwnedFd, lineage: Lineage) -> Self {
        Worker {
            pid,
            pidfd: Some(pidfd),
            lineage,
        }
    }

    /// Retires this worker's zygote: the worker ended abnormally (`why`;
    /// `exit`: how, if it has been reaped).
    pub(crate) fn ended_abnormally(&self, why: &str, exit: Option<Exit>) {
        retire(self.pid, &self.lineage, why, exit);
    }

    /// Hands the worker, already sent SIGKILL, to the reaper thread, which
    /// retires its zygote if it turns out to have died of something else.
    pub(crate) fn reap_later(&mut self) {
        if let Some(pidfd) = self.pidfd.take() {
            reap_in_background(Reap::Judged {
                pidfd,
                pid: self.pid,
                lineage: self.lineage.clone(),
            });
        }
    }

    /// The pidfd (for polling: it becomes readable when the worker exits).
    pub(crate) fn pidfd(&self) -> Option<&OwnedFd> {
        self.pidfd.as_ref()
    }

    /// Sends SIGKILL (a no-op if it already exited). Through the pidfd, so a
    /// reaped worker's recycled pid is never hit.
    pub(crate) fn kill(&self) {
        if let Some(fd) = &self.pidfd {
            let _ = pidfd_send_signal(fd, Signal::KILL);
        }
    }

    /// Reaps the worker if it has exited; returns how it ended.
    pub(crate) fn try_reap(&mut self) -> Option<Exit> {
        self.reap(WaitIdOptions::NOHANG)
    }

    /// Waits for the worker to exit and reaps it (blocking the thread: only
    /// for a worker already killed, when its pidfd cannot be polled).
    pub(crate) fn reap_blocking(&mut self) -> Option<Exit> {
        self.reap(WaitIdOptions::empty())
    }

    fn reap(&mut self, extra: WaitIdOptions) -> Option<Exit> {
        let fd = self.pidfd.as_ref()?;
        match waitid(WaitId::PidFd(fd.as_fd()), wait_flags() | extra) {
            Ok(Some(status)) => {
                self.pidfd = None;
                Some(exit_of(&status))
            }
            Ok(None) => None,
            // Someone else reaped it (a `waitpid(-1, __WALL)` in the caller).
            Err(_) => {
                self.pidfd = None;
                Some(Exit::Unknown)
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(fd) = self.pidfd.take() {
            let _ = pidfd_send_signal(&fd, Signal::KILL);
            reap_in_background(Reap::Worker(fd));
        }
    }
}

fn retire(pid: u32, lineage: &Lineage, why: &str, exit: Option<Exit>) {
    let exit = exit.map_or("not reaped yet".into(), Exit::describe);
    tracing::warn!(
        worker_pid = pid,
        exit = %exit,
        "a sandtar worker ended abnormally ({why}); its zygote will be replaced"
    );
    lineage.retire();
}

fn exit_of(status: &WaitIdStatus) -> Exit {
    match (status.terminating_signal(), status.exit_status()) {
        (Some(sig), _) => Exit::Signal(sig),
        (None, Some(code)) => Exit::Code(code),
        (None, None) => Exit::Unknown,
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSYS => "SIGSYS",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGINT => "SIGINT",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGXCPU => "SIGXCPU",
        _ => "signal",
    }
}

/// Work for the reaper thread.
pub(crate) enum Reap {
    /// Wait for a worker through its pidfd.
    Worker(OwnedFd),
    /// Wait for a worker whose job has ended, and retire its zygote if it
    /// died of something else than SIGKILL or a clean exit.
    Judged {
        pidfd: OwnedFd,
        pid: u32,
        lineage: Lineage,
    },
    /// Any other cleanup that may block (shutting a sandbox down).
    Task(Box<dyn FnOnce() + Send>),
}

/// Hands `job` to the reaper thread (started on first use).
pub(crate) fn reap_in_background(job: Reap) {
    static REAPER: OnceLock<Mutex<Sender<Reap>>> = OnceLock::new();
    let sender = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Reap>();
        // If the thread cannot start, `rx` is dropped with it, `send` below
        // fails, and each job runs inline instead.
        let _ = std::thread::Builder::new()
            .name("sandtar-reaper".into())
            .spawn(move || {
                for job in rx {
                    run(job);
                }
            });
        Mutex::new(tx)
    });
    let job = match sender.lock() {
        Ok(tx) => match tx.send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        Err(_) => job,
    };
    run(job);
}

fn run(job: Reap) {
    match job {
        Reap::Worker(fd) => {
            let _ = waitid(WaitId::PidFd(fd.as_fd()), wait_flags());
        }
        Reap::Judged {
            pidfd,
            pid,
            lineage,
        } => {
            if let Ok(Some(status)) = waitid(WaitId::PidFd(pidfd.as_fd()), wait_flags()) {
                let exit = exit_of(&status);
                if !exit.is_clean() {
                    retire(
                        pid,
                        &lineage,
                        "it died on its own after its result",
                        Some(exit),
                    );
                }
            }
        }
        Reap::Task(task) => task(),
    }
}
