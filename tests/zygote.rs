//! The zygote dies (killed from outside): jobs go on, a new zygote is started.
//! Alone in its test binary because it kills every zygote of this process.

mod common;

use std::time::Duration;

use common::zygotes;
use rustix::process::{kill_process, Pid, Signal};
use sandtar::{Options, Sandbox};

fn one_file() -> Vec<u8> {
    common::tar_files([("f", b"abc")])
}

/// One job that writes one file, checked; `what` names it if it fails.
async fn one_job(sandbox: &Sandbox, what: &str) {
    let dest = tempfile::tempdir().unwrap();
    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        sandbox.extract(&one_file()[..], dest.path(), &Options::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: hung"))
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(summary.written, 1);
    assert_eq!(std::fs::read(dest.path().join("f")).unwrap(), b"abc");
}

fn signal(pid: u32, signal: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), signal).unwrap();
}

/// Jobs after the only zygote was killed: a new zygote starts (the dead
/// one's queued workers are drained and killed).
async fn jobs_go_on(sandbox: &Sandbox, dead: u32) {
    for i in 0..8 {
        one_job(sandbox, &format!("job {i} after the zygote died")).await;
    }
    let after = zygotes();
    assert_eq!(after.len(), 1, "a new zygote: {after:?}");
    assert_ne!(after[0], dead);
}

/// Live (not zombie) workers of this process: children named like the
/// zygote, in mount namespaces of their own.
fn live_workers() -> usize {
    let own = std::fs::read_link("/proc/self/ns/mnt").ok();
    common::children()
        .into_iter()
        .filter(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            cmdline.starts_with(b"sandtar-zygote\0")
                && common::process_state(pid).is_some_and(|s| s != 'Z')
                && mnt.is_some()
                && mnt != own
        })
        .count()
}

/// Waits until `ok()` holds, up to five seconds; `what` names it if not.
async fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Once a sandbox is dropped, no process of it is left, not even a zombie:
/// the dead zygote's queued workers were drained, killed and reaped.
async fn nothing_left(sandbox: Sandbox) {
    drop(sandbox);
    wait_until("children left after the sandbox was dropped", || {
        common::children().is_empty()
    })
    .await;
}

/// Both cases in one test: each kills every zygote of this process.
#[tokio::test]
async fn a_dead_zygote_is_replaced() {
    // Killed while idle: sending it the next request fails with EPIPE.
    let sandbox = Sandbox::new().await.unwrap();
    let before = zygotes();
    assert_eq!(before.len(), 1, "one zygote: {before:?}");
    signal(before[0], Signal::KILL);
    jobs_go_on(&sandbox, before[0]).await;
    nothing_left(sandbox).await;

    // Killed with a request unread (stopped, then a job takes a queued
    // worker and orders its replacement): the next send fails with
    // ECONNRESET, which says the same. CI once failed on it.
    let sandbox = Sandbox::builder().warm_workers(4).build().await.unwrap();
    let dead = stopped_then_killed(&sandbox).await;
    jobs_go_on(&sandbox, dead).await;
    nothing_left(sandbox).await;

    // The same, and the sandbox dropped at once: draining the dead zygote's
    // socket meets the ECONNRESET first, then the workers still queued.
    let sandbox = Sandbox::builder().warm_workers(4).build().await.unwrap();
    stopped_then_killed(&sandbox).await;
    nothing_left(sandbox).await;
}

/// Stops the zygote, runs a job (which orders a replacement the zygote
/// never reads), kills the zygote; returns its pid.
async fn stopped_then_killed(sandbox: &Sandbox) -> u32 {
    one_job(sandbox, "the first job").await;
    // The zygote's queue refills (`warm_workers` - 1 there, the pool keeps
    // one more; each is handed over right after its fork).
    wait_until("three queued workers", || live_workers() >= 3).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let zygote = zygotes();
    assert_eq!(zygote.len(), 1, "one zygote: {zygote:?}");
    signal(zygote[0], Signal::STOP);
    while common::process_state(zygote[0]) != Some('T') {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    one_job(sandbox, "a job while the zygote is stopped").await;
    signal(zygote[0], Signal::KILL);
    zygote[0]
}
