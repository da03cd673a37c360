//! Before `main`: the `.init_array` hook that turns a re-executed copy of the
//! caller's program into the zygote, and the proof that the zygote is
//! single-threaded.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;

use super::socket::is_seqpacket_socket;
use crate::mode::Rungs;

/// The environment variable that turns a process into a zygote; its value is
/// the pid of the caller that started it.
pub(crate) const MARKER: &CStr = c"SANDTAR_ZYGOTE";

/// Proof that the process has one thread: made only by [`hook`] (before `main`,
/// in a process that never returns to `main` and starts no thread: the zygote)
/// and by the fork of a worker from it. Not `Send`, `Sync` or `Clone`, so it
/// cannot reach another thread; functions that need one thread take it.
pub(crate) struct SingleThreaded(PhantomData<*const ()>);

/// Runs [`hook`] before `main` in every executable that links sandtar.
/// [`Sandbox::new`](crate::Sandbox::new) refers to it so the linker keeps it.
#[used]
#[link_section = ".init_array"]
pub(crate) static ZYGOTE_HOOK: extern "C" fn() = hook;

extern "C" fn hook() {
    let Some((caller, rungs)) = take_marker() else {
        return;
    };
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails if 0 is closed.
    if unsafe { libc::fcntl(0, libc::F_GETFD) } == -1 {
        return;
    }
    // SAFETY: descriptor 0 is open (checked above) and stays open for the
    // process's life: the zygote never closes it and never returns to `main`.
    let control = unsafe { BorrowedFd::borrow_raw(0) };
    // Only a process started by Sandbox::new has its control socket on stdin; a
    // stray variable in someone's environment must not hijack their program.
    if !is_seqpacket_socket(control) {
        return;
    }
    die_with_caller(caller);
    scrub_environment();
    // SAFETY: installing SIG_IGN for SIGPIPE has no preconditions. Writes to a
    // closed socket then return EPIPE; Rust's runtime would have done this in main.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let single = SingleThreaded(PhantomData);
    let code =
        std::panic::catch_unwind(|| crate::zygote::serve(control, single, rungs)).unwrap_or(101);
    super::process::exit_now(code)
}

/// Reads and removes [`MARKER`]: the pid of the caller that started this
/// process as its zygote; `None` if the variable is absent (an ordinary start
/// of the program) or holds no pid.
fn take_marker() -> Option<(i32, Rungs)> {
    // SAFETY: `.init_array` functions run before `main`, on the process's only
    // thread (sandtar's docs ask other constructors to start none), so nothing
    // reads or writes the environment at the same time; MARKER is NUL-terminated.
    let value = unsafe { libc::getenv(MARKER.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string, which stays valid until
    // the environment changes (the unsetenv below, after the last use).
    let value = unsafe { CStr::from_ptr(value) };
    // `PID:RUNGS` (see `Rungs::encode`).
    let parsed = value.to_str().ok().and_then(|v| {
        let (pid, rungs) = v.split_once(':').unwrap_or((v, ""));
        let pid = pid.parse::<i32>().ok().filter(|pid| *pid > 0)?;
        Some((pid, Rungs::decode(rungs)))
    });
    // SAFETY: as for getenv above; MARKER is NUL-terminated.
    unsafe { libc::unsetenv(MARKER.as_ptr()) };
    parsed
}

/// Empties the environment but for `LD_LIBRARY_PATH`. The caller started the
/// zygote with nothing else, but `.init_array` constructors of the program that
/// ran before this hook may have set variables; the workers inherit whatever
/// is left. (`clearenv`, not `remove_var` one by one: that panics on a
/// malformed name, and a panic here aborts the process.)
fn scrub_environment() {
    let keep = std::env::var_os("LD_LIBRARY_PATH");
    // SAFETY: before `main`, in the zygote, on its only thread: nothing reads
    // or writes the environment at the same time.
    unsafe { libc::clearenv() };
    if let Some(path) = keep {
        // The name is valid and the value came from the environment (no NUL).
        std::env::set_var("LD_LIBRARY_PATH", path);
    }
}

/// Asks the kernel for SIGKILL when our parent dies (`PR_SET_PDEATHSIG`: the
/// parent is the caller's thread that forked us, one that lives as long as the
/// caller's process), so that no zygote outlives its caller even if it is
/// stopped or stuck and never reads the end of its control socket. Then checks
/// that the parent is still the caller: had it died before the request, we
/// would have been handed to another process and no signal would ever come.
fn die_with_caller(caller: i32) {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let parent = rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get());
    if parent != Some(caller) {
        super::process::exit_now(1);
    }
}
