//! The zygote: a clean, single-threaded copy of the caller's executable that forks
//! workers.
//!
//! The caller cannot fork workers itself: its process is multi-threaded (a tokio
//! runtime), and a child forked from it may only run async-signal-safe code; it
//! also cannot enter a user namespace (`unshare(CLONE_NEWUSER)` fails with `EINVAL`
//! in a multi-threaded process). So [`Sandbox::new`](crate::Sandbox::new) re-executes
//! the current executable (`/proc/self/exe`) with the `SANDTAR_ZYGOTE` variable set
//! and a `SOCK_SEQPACKET` control socket as standard input. The start-up hook
//! (`sys::startup`) runs from `.init_array`, before `main` and before anything else in that process, sees
//! the variable and becomes the zygote; it never returns to `main`. It asks to be
//! killed when the caller dies (`PR_SET_PDEATHSIG`), as each worker does when it
//! is forked. This works the same in the user's binaries, in examples and in
//! `cargo test` binaries, with no code in their `main`.
//!
//! The zygote picks the strongest rung of the confinement ladder it may use:
//! it first tries the namespace rung in a short-lived child (a user namespace
//! and its id map unless root with `CAP_SYS_ADMIN`, then a mount namespace and
//! a slave mount: a restriction may let `unshare` succeed and refuse the id
//! maps, an AppArmor profile may refuse every mount), and enters it only if
//! that worked; failing that, the Landlock rung. Then it forks a warm worker for each credit the
//! driver sends. Workers are forked with
//! `CLONE_PARENT`: they are children of the caller, who waits for them through the
//! pidfd the zygote passes along.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

use crate::mode::{Rungs, SandboxMode};
use crate::sys;
use crate::wire::{
    decode, encode_message, IdMapping, ZygoteMsg, ZygoteRequest, MAX_CONTROL_MESSAGE,
};

/// The environment variable that turns a process into a zygote (read by the
/// start-up hook in [`sys::startup`]), as a Rust string for `Command::env`. Its
/// value is the caller's pid and the rungs the zygote may use (`PID:nl`, see
/// `Rungs::encode`), and it is the zygote's only variable (with
/// `LD_LIBRARY_PATH` if the caller has one): nothing else of the caller's
/// environment reaches the zygote or its workers.
pub(crate) const MARKER_NAME: &str = "SANDTAR_ZYGOTE";
pub(crate) use sys::startup::ZYGOTE_HOOK;

fn send(control: BorrowedFd<'_>, msg: &ZygoteMsg) -> io::Result<()> {
    sys::send_with_fds(control, &encode_message(msg), &[]).map(drop)
}

/// The zygote's life, called by the start-up hook before `main`: enter the
/// sandbox mode, then fork workers on request until the driver closes the
/// control socket.
pub(crate) fn serve(
    control: BorrowedFd<'static>,
    single: sys::SingleThreaded,
    rungs: Rungs,
) -> i32 {
    prefer_as_oom_victim();
    let mode = match sys::ignore_write_signals()
        .map_err(|e| format!("ignoring SIGPIPE and SIGXFSZ failed: {e}"))
        .and_then(|()| enter_mode(control, &single, rungs))
    {
        Ok(mode) => mode,
        Err(reason) => {
            let _ = send(control, &ZygoteMsg::Fatal(reason));
            return 1;
        }
    };
    if send(control, &ZygoteMsg::Hello(mode)).is_err() {
        return 1;
    }
    // Root over this mount namespace: the caller can clone each job's
    // destination mount, and workers wait for it in an empty root.
    let clones = mode == SandboxMode::Privileged && sys::mounts::may_clone_mounts();
    let mut buf = [0u8; MAX_CONTROL_MESSAGE];
    loop {
        match receive(control, &mut buf) {
            Ok(Some(ZygoteRequest::Spawn(count))) => {
                for _ in 0..count.min(1024) {
                    if spawn_worker(control, mode, clones, &single).is_err() {
                        return 1;
                    }
                }
            }
            Ok(None) => return 0, // the driver is gone
            Ok(Some(ZygoteRequest::MapIds(_))) | Err(_) => return 1,
        }
    }
}

/// Makes the zygote, and the workers it forks (they inherit the value), the
/// first processes the kernel's OOM killer picks: a worker that a hostile
/// archive drives to its memory limits should die before the caller's service.
/// Raising one's own score needs no privilege; best effort (no `/proc`, no
/// change).
fn prefer_as_oom_victim() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
}

/// What stands in the way of a user namespace here, for an error message.
fn blockers() -> String {
    let found = crate::host::Facts::read().user_namespace_blockers();
    match found.is_empty() {
        true => String::new(),
        false => format!(" ({})", found.join("; ")),
    }
}

/// Receives one request; `None` when the driver closed the socket.
fn receive(control: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<ZygoteRequest>> {
    loop {
        match sys::recv_with_fds(control, buf) {
            Ok((0, _)) => return Ok(None),
            Ok((n, _)) => {
                return decode::<ZygoteRequest>(&buf[..n])
                    .map(Some)
                    .map_err(io::Error::other)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The strongest rung `rungs` allows and this host offers: namespaces, then
/// Landlock. A rung that cannot be had says why, and the error names every
/// rung's reason.
fn enter_mode(
    control: BorrowedFd<'_>,
    single: &sys::SingleThreaded,
    rungs: Rungs,
) -> Result<SandboxMode, String> {
    let mut reasons = Vec::new();
    if rungs.namespaces {
        let facts = crate::host::Facts::read();
        let user = match facts.has_cap_sys_admin() {
            true => None,
            false => Some(rustix::process::getuid().as_raw()),
        };
        let probed = sys::probe_namespaces(single, user);
        match probed {
            Ok(()) => return enter_namespaces(control, single, &facts),
            Err(e) => reasons.push(format!("namespaces: {e}{}", blockers())),
        }
    } else {
        reasons.push("namespaces: not allowed (SandboxBuilder::only_rung)".into());
    }
    match rungs.landlock {
        true => match landlock_mode() {
            Ok(mode) => return Ok(mode),
            Err(e) => reasons.push(format!("Landlock: {e}")),
        },
        false => reasons.push("Landlock: not allowed (SandboxBuilder::minimum_rung)".into()),
    }
    Err(reasons.join("; "))
}

/// The Landlock rung, if the kernel offers Landlock; with `chroot` where the
/// process holds `CAP_SYS_CHROOT` (see [`SandboxMode::Landlock`]).
fn landlock_mode() -> Result<SandboxMode, String> {
    let abi = sys::landlock_abi().map_err(|e| format!("unavailable ({e})"))?;
    Ok(SandboxMode::Landlock {
        uid: rustix::process::geteuid().as_raw(),
        abi,
        chroot: crate::host::Facts::read().has_cap_sys_chroot(),
    })
}

/// Root (with `CAP_SYS_ADMIN`) needs nothing more; anyone else enters a user
/// namespace where they are root. Its id maps are written by the driver
/// (`newuidmap`/`newgidmap`, which must act from outside the namespace), or here:
/// the caller's own uid and gid mapped to 0.
fn enter_namespaces(
    control: BorrowedFd<'_>,
    single: &sys::SingleThreaded,
    facts: &crate::host::Facts,
) -> Result<SandboxMode, String> {
    if facts.has_cap_sys_admin() {
        return Ok(SandboxMode::Privileged);
    }
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    sys::unshare_user_namespace(single)
        .map_err(|e| format!("unshare(CLONE_NEWUSER) failed: {e}{}", blockers()))?;
    send(control, &ZygoteMsg::Unshared).map_err(|e| format!("control socket: {e}"))?;
    let mut buf = [0u8; MAX_CONTROL_MESSAGE];
    match receive(control, &mut buf) {
        Ok(Some(ZygoteRequest::MapIds(IdMapping::Single))) => {}
        Ok(Some(ZygoteRequest::MapIds(IdMapping::Written { uids, gids }))) => {
            // newuidmap wrote the maps: the caller's uid is now 0 in here.
            if rustix::process::getuid().as_raw() != 0 {
                return Err("the subordinate id maps do not map the caller to 0".into());
            }
            return Ok(SandboxMode::SubordinateIds {
                uid,
                gid,
                uids,
                gids,
            });
        }
        Ok(other) => return Err(format!("expected id maps, got {other:?}")),
        Err(e) => return Err(format!("control socket: {e}")),
    }
    let write = |file: &str, text: String| {
        std::fs::write(file, text).map_err(|e| format!("writing {file} failed: {e}{}", blockers()))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1\n"))?;
    Ok(SandboxMode::UserNamespace { uid, gid })
}

/// Forks one warm worker and hands its pidfd and socket to the driver.
fn spawn_worker(
    control: BorrowedFd<'_>,
    mode: SandboxMode,
    clones: bool,
    single: &sys::SingleThreaded,
) -> io::Result<()> {
    let (driver_end, worker_end) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let namespaces = mode.rung() == crate::mode::Rung::Namespaces;
    match sys::clone_worker(single, driver_end, worker_end, namespaces) {
        Ok(sys::Forked::Child(start)) => crate::worker::run(start, mode, clones),
        Ok(sys::Forked::Parent { pid, pidfd, socket }) => {
            let msg = encode_message(&ZygoteMsg::Worker { pid });
            sys::send_with_fds(control, &msg, &[pidfd.as_fd(), socket.as_fd()]).map(drop)
        }
        Err(e) => send(
            control,
            &ZygoteMsg::SpawnFailed(format!("clone3(CLONE_NEWNS | CLONE_NEWPID) failed: {e}")),
        ),
    }
}
