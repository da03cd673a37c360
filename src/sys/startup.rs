//! Before `main`: the `.init_array` hook that turns a re-executed copy of the
//! caller's program into the zygote, and the proof that the zygote is
//! single-threaded.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;

use super::socket::is_seqpacket_socket;

/// The environment variable that turns a process into a zygote.
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
    // SAFETY: `.init_array` functions run before `main`, on the process's only
    // thread (sandtar's docs ask other constructors to start none), so nothing
    // reads or writes the environment at the same time; MARKER is NUL-terminated.
    if unsafe { libc::getenv(MARKER.as_ptr()) }.is_null() {
        return;
    }
    // SAFETY: as above.
    unsafe { libc::unsetenv(MARKER.as_ptr()) };
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
    scrub_environment();
    // SAFETY: installing SIG_IGN for SIGPIPE has no preconditions. Writes to a
    // closed socket then return EPIPE; Rust's runtime would have done this in main.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let single = SingleThreaded(PhantomData);
    let code = std::panic::catch_unwind(|| crate::zygote::serve(control, single)).unwrap_or(101);
    super::process::exit_now(code)
}

/// Empties the environment but for `LD_LIBRARY_PATH`. The caller started the
/// zygote with nothing else, but `.init_array` constructors of the program that
/// ran before this hook may have set variables; the workers inherit whatever
/// is left. Sound because the process is single-threaded (before `main`, in
/// the zygote), as `remove_var` requires.
fn scrub_environment() {
    for (name, _) in std::env::vars_os() {
        if name != "LD_LIBRARY_PATH" {
            std::env::remove_var(name);
        }
    }
}
