//! Faults of the destination's filesystem, against the real worker (root: the
//! tests mount small tmpfs filesystems; skipped with a note otherwise).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::WatchedReader;
use sandtar::{Error, Options};

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

/// `count` files `file00`, `file01`... of `size` bytes each.
fn files(count: usize, size: usize) -> Vec<u8> {
    common::tar_files((0..count).map(|i| (format!("file{i:02}"), vec![b'z'; size])))
}

/// The filesystem fills up: a clear error naming the entry; the worker is gone;
/// the next job on the same sandbox works.
#[tokio::test]
async fn filesystem_full() {
    if !common::needs_root("mount a tmpfs") {
        return;
    }
    // Started before the mount: its warm workers predate it (see the retry
    // with a fresh worker in src/caller/start.rs).
    let sandbox = common::new_sandbox().await;
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
    // The entries reported written are there in full; the failing one is gone.
    let mut on_disk: Vec<_> = std::fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut reported: Vec<_> = written
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    reported.sort();
    assert_eq!(on_disk, reported, "only the files reported written remain");
    for name in &reported {
        let len = std::fs::metadata(base.path().join(name)).unwrap().len();
        assert_eq!(len, 256 * 1024, "{name}");
    }
    // The worker is gone (reaped in the background).
    common::assert_gone(pid, "full filesystem").await;
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
    if !common::needs_root("mount a tmpfs") {
        return;
    }
    let sandbox = common::new_sandbox().await;
    let base = tempfile::tempdir().unwrap();
    assert!(mount_tmpfs(base.path(), "ro,size=1m"), "mount tmpfs");
    let polls = Arc::new(AtomicUsize::new(0));
    let result = sandbox
        .start(
            WatchedReader(polls.clone()),
            base.path(),
            &Options::default(),
        )
        .await;
    umount(base.path());
    assert_eq!(polls.load(Ordering::SeqCst), 0, "the archive was read");
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
    if !common::needs_root("mount a tmpfs") {
        return;
    }
    let sandbox = common::new_sandbox().await;
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

/// An archive that ends inside a file: the job fails naming it, the truncated
/// file is removed, and the directories made before still get their modes and
/// times (not the 0700 they are created with).
#[tokio::test]
async fn truncated_archive_leaves_a_consistent_tree() {
    let sandbox = common::new_sandbox().await;
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o751);
    dir.set_mtime(1_234_567_890);
    dir.set_size(0);
    dir.set_cksum();
    builder.append_data(&mut dir, "d/", &b""[..]).unwrap();
    let mut file = tar::Header::new_ustar();
    file.set_mode(0o644);
    file.set_size(3);
    file.set_cksum();
    builder.append_data(&mut file, "d/ok", &b"abc"[..]).unwrap();
    let mut big = tar::Header::new_ustar();
    big.set_mode(0o644);
    big.set_size(100_000);
    big.set_cksum();
    builder
        .append_data(&mut big, "d/cut", &vec![7u8; 100_000][..])
        .unwrap();
    let archive = builder.into_inner().unwrap();
    // Cut 60,000 bytes into d/cut's data.
    let cut = &archive[..512 + 1024 + 512 + 60_000];
    let dest = tempfile::tempdir().unwrap();
    match sandbox.extract(cut, dest.path(), &Options::default()).await {
        Err(Error::MalformedArchive { message, .. }) => {
            assert!(message.contains("d/cut"), "{message}");
            assert!(message.contains("ends inside this file"), "{message}");
        }
        other => panic!("expected MalformedArchive, got {other:?}"),
    }
    let d = dest.path().join("d");
    assert_eq!(std::fs::read(d.join("ok")).unwrap(), b"abc");
    assert!(
        !d.join("cut").exists(),
        "the truncated file is not left behind"
    );
    let meta = std::fs::metadata(&d).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o751);
    assert_eq!(meta.mtime(), 1_234_567_890);
}
