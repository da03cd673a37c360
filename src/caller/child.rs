//! Worker processes seen from the caller: pidfds, killing, reaping.
//!
//! Workers are children of the caller's process (the zygote forks them with
//! `CLONE_PARENT`) and are watched and signalled only through pidfds, so a
//! recycled pid can never be hit. Every worker is reaped: by the job that saw it
//! exit, or by a small background thread (`sandtar-reaper`) that waits for
//! workers that were killed or dropped.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions, WaitIdStatus};

/// A worker process owned by the caller.
#[derive(Debug)]
pub(crate) struct Worker {
    pub pid: u32,
    /// `None` once reaped.
    pidfd: Option<OwnedFd>,
    /// Set when the worker finished its job and exits by itself.
    pub finished: bool,
}

fn wait_flags() -> WaitIdOptions {
    // __WALL: a CLONE_PARENT child may carry a non-SIGCHLD exit signal.
    WaitIdOptions::EXITED | WaitIdOptions::from_bits_retain(libc::__WALL as u32)
}

impl Worker {
    pub(crate) fn new(pid: u32, pidfd: OwnedFd) -> Self {
        Worker {
            pid,
            pidfd: Some(pidfd),
            finished: false,
        }
    }

    /// The pidfd (for polling: it becomes readable when the worker exits).
    pub(crate) fn pidfd(&self) -> Option<&OwnedFd> {
        self.pidfd.as_ref()
    }

    /// Sends SIGKILL (a no-op if it already exited).
    pub(crate) fn kill(&self) {
        if let Some(fd) = &self.pidfd {
            let _ = pidfd_send_signal(fd, Signal::KILL);
        }
    }

    /// Reaps the worker if it has exited; returns how it ended, in words.
    pub(crate) fn try_reap(&mut self) -> Option<String> {
        let fd = self.pidfd.as_ref()?;
        match waitid(
            WaitId::PidFd(fd.as_fd()),
            wait_flags() | WaitIdOptions::NOHANG,
        ) {
            Ok(Some(status)) => {
                self.pidfd = None;
                Some(describe(&status))
            }
            Ok(None) => None,
            // Someone else reaped it (a `waitpid(-1, __WALL)` in the caller).
            Err(e) => {
                self.pidfd = None;
                Some(format!("exited (status unavailable: {e})"))
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(fd) = self.pidfd.take() {
            if !self.finished {
                let _ = pidfd_send_signal(&fd, Signal::KILL);
            }
            reap_in_background(Reap::Worker(fd));
        }
    }
}

/// Describes an exit status: "exited with status 3", "killed by signal 9 (SIGKILL)".
pub(crate) fn describe(status: &WaitIdStatus) -> String {
    if let Some(sig) = status.terminating_signal() {
        format!("killed by signal {sig} ({})", signal_name(sig))
    } else if let Some(code) = status.exit_status() {
        format!("exited with status {code}")
    } else {
        "ended".into()
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
        Reap::Task(task) => task(),
    }
}
