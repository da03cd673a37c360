//! Faults of the destination's filesystem, against the real worker (root: the
//! tests mount small tmpfs filesystems; skipped with a note otherwise).

use std::path::Path;
use std::process::Command;

use sandtar::{Error, Options, Sandbox};

fn mount_tmpfs(at: &Path, options: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(at)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn umount(at: &Path) {
    let _ = Command::new("umount").arg("-l").arg(at).status();
}

fn files(count: usize, size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..count {
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("file{i:02}"), &vec![b'z'; size][..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// The filesystem fills up: a clear error naming the entry; the worker is gone;
/// the next job on the same sandbox works.
#[tokio::test]
async fn filesystem_full() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("NOTE: needs root to mount a tmpfs");
        return;
    }
    // Started before the mount: its warm workers predate it (see the retry
    // with a fresh worker in job.rs).
    let sandbox = Sandbox::new().await.unwrap();
    let base = tempfile::tempdir().unwrap();
    assert!(mount_tmpfs(base.path(), "size=1m"), "mount tmpfs");
    let archive = files(8, 256 * 1024);
    let mut job = sandbox
        .start(&archive[..], base.path(), &Options::default())
        .await
        .unwrap();
    let pid = job.worker_pid();
    let mut written = Vec::new();
    let error = loop {
        match job.next().await {
            Some(Ok(report)) => written.push(report.path),
            Some(Err(e)) => break e,
            None => panic!("the job finished on a full filesystem: {written:?}"),
        }
    };
    match &error {
        Error::Write { entry, message } => {
            assert!(entry.to_str().unwrap().starts_with("file0"), "{entry:?}");
            assert!(message.contains("No space left"), "{message}");
            assert!(
                !written.contains(entry),
                "the failing entry is not reported written"
            );
        }
        other => panic!("expected Error::Write, got {other:?}"),
    }
    assert!(matches!(job.finish().await, Err(Error::Write { .. })));
    // The worker is gone (reaped in the background).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "worker {pid} still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    umount(base.path());
    let dest = tempfile::tempdir().unwrap();
    let summary = sandbox
        .extract(&files(2, 10)[..], dest.path(), &Options::default())
        .await
        .unwrap();
    assert_eq!(summary.written, 2);
}

/// A read-only mount: refused before any byte is read.
#[tokio::test]
async fn read_only_destination() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("NOTE: needs root to mount a tmpfs");
        return;
    }
    let sandbox = Sandbox::new().await.unwrap();
    let base = tempfile::tempdir().unwrap();
    assert!(mount_tmpfs(base.path(), "ro,size=1m"), "mount tmpfs");
    let reader = PanicReader;
    let result = sandbox
        .start(reader, base.path(), &Options::default())
        .await;
    umount(base.path());
    match result {
        Err(Error::Destination { problem, .. }) => {
            assert!(problem.contains("read-only"), "{problem}")
        }
        other => panic!("expected a destination error, got {:?}", other.map(|_| ())),
    }
}

/// A destination mounted after the sandbox started (its warm workers do not see
/// the mount: the job is retried once on a fresh worker, transparently).
#[tokio::test]
async fn destination_mounted_after_start() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("NOTE: needs root to mount a tmpfs");
        return;
    }
    let sandbox = Sandbox::new().await.unwrap();
    let base = tempfile::tempdir().unwrap();
    assert!(mount_tmpfs(base.path(), "size=4m"), "mount tmpfs");
    let summary = sandbox
        .extract(&files(3, 1000)[..], base.path(), &Options::default())
        .await;
    let in_tmpfs = std::fs::read(base.path().join("file01"));
    umount(base.path());
    assert_eq!(summary.unwrap().written, 3);
    assert_eq!(in_tmpfs.unwrap().len(), 1000);
    // Nothing went to the directory under the mount.
    assert!(std::fs::read_dir(base.path()).unwrap().next().is_none());
}

/// Fails the test if the job reads a single byte.
struct PanicReader;

impl tokio::io::AsyncRead for PanicReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        panic!("the archive was read");
    }
}
