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

/// Jobs after the only zygote was killed: workers it forked before dying
/// serve the first ones, then a new zygote starts.
async fn jobs_go_on(sandbox: &Sandbox, dead: u32) {
    for i in 0..8 {
        one_job(sandbox, &format!("job {i} after the zygote died")).await;
    }
    let after = zygotes();
    assert_eq!(after.len(), 1, "a new zygote: {after:?}");
    assert_ne!(after[0], dead);
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
    drop(sandbox);

    // Killed with a request unread (stopped, then a job takes a queued
    // worker and orders its replacement): the next send fails with
    // ECONNRESET, which says the same. CI once failed on it.
    let sandbox = Sandbox::builder().warm_workers(4).build().await.unwrap();
    one_job(&sandbox, "the first job").await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the queue refills
    let zygote = zygotes();
    assert_eq!(zygote.len(), 1, "one zygote: {zygote:?}");
    signal(zygote[0], Signal::STOP);
    while common::process_state(zygote[0]) != Some('T') {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    one_job(&sandbox, "a job while the zygote is stopped").await;
    signal(zygote[0], Signal::KILL);
    jobs_go_on(&sandbox, zygote[0]).await;
}
