//! The zygote dies (killed from outside): jobs go on, a new zygote is started.
//! Alone in its test binary because it kills every zygote of this process.

mod common;

use std::time::Duration;

use common::zygotes;
use sandtar::{Options, Sandbox};

fn one_file() -> Vec<u8> {
    common::tar_files([("f", b"abc")])
}

#[tokio::test]
async fn a_dead_zygote_is_replaced() {
    let sandbox = Sandbox::new().await.unwrap();
    let before = zygotes();
    assert_eq!(before.len(), 1, "one zygote: {before:?}");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(before[0] as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // Workers it forked before dying are used first, then a new zygote starts.
    for i in 0..8 {
        let dest = tempfile::tempdir().unwrap();
        let summary = tokio::time::timeout(
            Duration::from_secs(10),
            sandbox.extract(&one_file()[..], dest.path(), &Options::default()),
        )
        .await
        .expect("no hang")
        .unwrap_or_else(|e| panic!("job {i} after the zygote died: {e}"));
        assert_eq!(summary.written, 1);
        assert_eq!(std::fs::read(dest.path().join("f")).unwrap(), b"abc");
    }
    let after = zygotes();
    assert_eq!(after.len(), 1, "a new zygote: {after:?}");
    assert_ne!(after, before);
}
