//! Files written on the worker's writer threads leave the tree and the reports
//! exactly as applying one entry after another does. The same archive is
//! extracted both ways and the results compared: a bounded lead
//! (`Options::max_lead`) keeps every entry on the applying thread, the
//! default hands most files to a writer. The archives start with more files
//! than a job writes itself before it queues any, then put entries that
//! depend on a queued file right behind it: a directory, a file or a
//! symlink of the same name, a hard link to it, names below it, whiteouts,
//! and names that exist in the destination. As root and as `nobody`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::raw::{Header, Tar};
use common::{run, snapshot, Kind, Scene};
use sandtar::{Options, Overwrite, Sandbox};

root_and_nobody!(
    same_as_one_at_a_time,
    same_over_existing_names,
    same_in_a_layer
);

/// Files written first, so that what follows is queued.
fn fill(tar: &mut Tar, from: usize, count: usize) {
    for i in from..from + count {
        tar.file(format!("fill/{i:03}"), format!("filler {i}\n").as_bytes());
    }
}

/// Entries that depend on a file just queued, each group behind a few more
/// files.
fn tangled() -> Vec<u8> {
    let mut tar = Tar::new();
    fill(&mut tar, 0, 40);
    let groups: &[&dyn Fn(&mut Tar)] = &[
        // A directory over a file, then a name below it.
        &|t| {
            t.file("a", b"file a\n")
                .dir("a/", 0o755)
                .file("a/x", b"x\n");
        },
        // A file over a non-empty directory: fails.
        &|t| {
            t.dir("b/", 0o755)
                .file("b/1", b"1\n")
                .file("b", b"over b\n");
        },
        // A file over an empty directory, then a name below that file.
        &|t| {
            t.dir("c/", 0o755)
                .file("c", b"over c\n")
                .file("c/y", b"y\n");
        },
        // One name twice: the last wins.
        &|t| {
            t.file("d", b"first d\n").file("d", b"second d\n");
        },
        // A hard link to a file just queued.
        &|t| {
            t.file("e", b"e\n").hardlink("e-link", "e");
        },
        // A symlink over a file just queued.
        &|t| {
            t.file("f", b"f\n").symlink("f", "fill/000");
        },
        // A link to the first g, then g again: the link keeps the first.
        &|t| {
            t.file("g", b"old g\n")
                .hardlink("h", "g")
                .file("g", b"new g\n");
        },
        // Implied parents, then a file over one of them.
        &|t| {
            t.file("i/j/k", b"deep\n").file("i", b"over i\n");
        },
        // A file over an empty directory that was the last entry's parent
        // (a hard link that failed), then a name below that file.
        &|t| {
            t.dir("k/", 0o755)
                .hardlink("k/h", "no-such-file")
                .file("k", b"over k\n")
                .file("k/y", b"y\n");
        },
        // A symlink over a directory whose only file is still queued: fails.
        &|t| {
            t.dir("n/", 0o755).file("n/x", b"x\n").symlink("n", "fill");
        },
        // A file, then a name below it: fails.
        &|t| {
            t.file("m", b"m\n").file("m/n", b"below a file\n");
        },
        // A file over a symlink to a directory, then a name below it.
        &|t| {
            t.dir("q/", 0o755)
                .symlink("r", "q")
                .file("r", b"over r\n")
                .file("r/s", b"below\n");
        },
        // An empty file, a larger one (written by the applying thread), and
        // a read-only one.
        &|t| {
            t.file("empty", b"")
                .file("big", &vec![7u8; 3 << 20])
                .file_mode("ro", 0o444, b"read-only\n");
        },
        // A directory entry after its contents, with its own mode and time.
        &|t| {
            t.file("late/1", b"1\n")
                .header(&Header::new("late/", b'5', 0).mode(0o750).mtime(7000));
        },
    ];
    for (n, group) in groups.iter().enumerate() {
        group(&mut tar);
        fill(&mut tar, 100 + 10 * n, 5);
    }
    tar.finish()
}

/// A node's kind, mode, owner, link count and (where it is the archive's)
/// time.
type Shape = (Kind, u32, (u32, u32), u64, Option<i64>);

/// What two extractions of one archive must share: each node's kind,
/// contents, mode, owner and link count, and files' and listed directories' times
/// (an implied directory's time is when it was made, and so is a symlink's
/// on the Landlock rung).
fn tree(dest: &Path) -> BTreeMap<PathBuf, Shape> {
    snapshot(dest)
        .into_iter()
        .map(|(path, node)| {
            let listed_dir = path == Path::new("late");
            let time = match node.kind {
                // A symlink's time, unless the archive's, is when it was made.
                Kind::Dir | Kind::Symlink(_) if !listed_dir => None,
                _ => Some(node.mtime.0),
            };
            let nlink = match node.kind {
                Kind::Dir => 0,
                _ => node.nlink,
            };
            let owner = (node.uid, node.gid);
            (path, (node.kind, node.mode, owner, nlink, time))
        })
        .collect()
}

/// Extracts `archive` one entry at a time and with the writer threads, each
/// into a destination made by `prepare`; asserts the same trees and the same
/// reports, in the same order. Returns the reports.
async fn both_ways(
    sandbox: &Sandbox,
    archive: &[u8],
    options: &Options,
    prepare: impl Fn(&Path),
) -> Vec<(String, sandtar::Outcome)> {
    let mut serial = options.clone();
    serial.max_lead = Some(1 << 20);
    let mut results = Vec::new();
    for options in [&serial, options] {
        let scene = Scene::new();
        prepare(&scene.dest);
        let run = run(sandbox, archive, &scene.dest, options).await;
        run.summary();
        results.push((tree(&scene.dest), run.outcomes()));
        scene.check();
    }
    let (one_at_a_time, parallel) = (&results[0], &results[1]);
    assert_eq!(one_at_a_time.1, parallel.1, "the reports");
    assert_eq!(one_at_a_time.0, parallel.0, "the trees");
    results.pop().unwrap().1
}

fn outcome<'a>(reports: &'a [(String, sandtar::Outcome)], path: &str) -> &'a sandtar::Outcome {
    let found: Vec<_> = reports.iter().filter(|(p, _)| p == path).collect();
    &found
        .last()
        .unwrap_or_else(|| panic!("no report for {path}"))
        .1
}

async fn same_as_one_at_a_time(sandbox: Sandbox) {
    let reports = both_ways(&sandbox, &tangled(), &Options::default(), |_| {}).await;
    use sandtar::Outcome::{Failed, Written};
    // What one-at-a-time gives, spelled out.
    assert!(matches!(outcome(&reports, "b"), Failed(m) if m.contains("non-empty")));
    assert!(matches!(outcome(&reports, "c/y"), Failed(_)));
    assert!(matches!(outcome(&reports, "m/n"), Failed(_)));
    assert!(matches!(outcome(&reports, "k/y"), Failed(_)));
    assert!(matches!(outcome(&reports, "n"), Failed(m) if m.contains("non-empty")));
    assert!(matches!(outcome(&reports, "i"), Failed(m) if m.contains("non-empty")));
    for written in [
        "a/x", "c", "k", "d", "e-link", "f", "g", "h", "r", "big", "late/",
    ] {
        assert_eq!(outcome(&reports, written), &Written, "{written}");
    }
}

/// Names that exist in the destination (a file, an empty and a non-empty
/// directory, a symlink out of it), under each overwrite policy.
async fn same_over_existing_names(sandbox: Sandbox) {
    let prepare = |dest: &Path| {
        std::fs::create_dir_all(dest.join("pre/full")).unwrap();
        std::fs::create_dir(dest.join("pre/empty")).unwrap();
        std::fs::write(dest.join("pre/old.txt"), b"old\n").unwrap();
        std::fs::write(dest.join("pre/full/x"), b"x\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dest.join("pre/link")).unwrap();
        for i in 0..60 {
            std::fs::write(dest.join(format!("pre/{i:02}")), b"was\n").unwrap();
        }
        // Times that two destinations share.
        let then = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let mut old: Vec<_> = (0..60).map(|i| format!("pre/{i:02}")).collect();
        old.extend(["pre/full/x".to_string(), "pre/old.txt".to_string()]);
        for name in old {
            let file = std::fs::File::open(dest.join(name)).unwrap();
            file.set_modified(then).unwrap();
        }
    };
    let mut tar = Tar::new();
    fill(&mut tar, 0, 40);
    for name in ["old.txt", "empty", "full", "link"] {
        tar.file(format!("pre/{name}"), b"from the archive\n");
        fill(&mut tar, 200 + name.len() * 10, 3);
    }
    for i in 0..60 {
        tar.file(format!("pre/{i:02}"), b"new\n");
    }
    let archive = tar.finish();
    for overwrite in [Overwrite::Replace, Overwrite::Keep, Overwrite::Refuse] {
        let mut options = Options::default();
        options.overwrite = overwrite;
        let reports = both_ways(&sandbox, &archive, &options, prepare).await;
        let replaced = matches!(outcome(&reports, "pre/link"), sandtar::Outcome::Written);
        assert_eq!(replaced, overwrite == Overwrite::Replace, "{overwrite:?}");
    }
    let passwd = std::fs::read("/etc/passwd").unwrap();
    assert!(
        !passwd.starts_with(b"from the archive"),
        "followed the symlink"
    );
}

/// A layer: whiteouts and opaque directories right after queued files.
async fn same_in_a_layer(sandbox: Sandbox) {
    let prepare = |dest: &Path| {
        std::fs::create_dir_all(dest.join("old/dir")).unwrap();
        std::fs::write(dest.join("old/dir/lower"), b"lower\n").unwrap();
        std::fs::write(dest.join("old/gone"), b"gone\n").unwrap();
    };
    let mut tar = Tar::new();
    fill(&mut tar, 0, 40);
    tar.file("old/dir/upper", b"upper\n")
        .file("old/dir/.wh..wh..opq", b"")
        .file("fill/.wh.003", b"")
        .file("old/.wh.gone", b"")
        .file("fill/003", b"back\n");
    fill(&mut tar, 300, 20);
    tar.file("fill/.wh..wh..opq", b"");
    fill(&mut tar, 400, 5);
    let reports = both_ways(&sandbox, &tar.finish(), &Options::layer(), prepare).await;
    assert_eq!(outcome(&reports, "fill/003"), &sandtar::Outcome::Written);
}

/// A queued file fills the filesystem: the job fails naming the entry that
/// found it full, and what is
/// on disk is exactly what was reported written (files behind it, which
/// would still fit once it is removed, are not written, or reported if the
/// applying thread wrote them before it learnt of the error). Root: mounts a
/// 1 MiB tmpfs.
#[tokio::test]
async fn a_queued_file_that_fills_the_disk_ends_the_job() {
    if !common::needs_root("mount a tmpfs") {
        return;
    }
    let sandbox = common::new_sandbox().await;
    let base = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(base.path())
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs");
    let mut tar = Tar::new();
    fill(&mut tar, 0, 40);
    tar.file("huge", &vec![b'h'; 1000 * 1024]);
    // More than the writer holds: the applying thread writes some itself,
    // maybe while the writer fails.
    fill(&mut tar, 100, 200);
    let archive = tar.finish();
    let mut job = sandbox
        .start(&archive[..], base.path(), &Options::default())
        .await
        .unwrap();
    let mut reported = Vec::new();
    let error = loop {
        match job.next().await {
            Some(Ok(report)) => reported.push(report),
            Some(Err(e)) => break e,
            None => panic!("the job finished on a full filesystem"),
        }
    };
    let _ = job.finish().await;
    let on_disk = snapshot(base.path());
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(base.path())
        .status();
    match &error {
        sandtar::Error::Write { entry, message } => {
            // The file whose write found the disk full: the large one, or
            // one behind it that the applying thread wrote meanwhile.
            let name = entry.to_str().unwrap();
            let behind = |n: &str| n.parse::<u32>().is_ok_and(|n| n >= 100);
            let behind = name.strip_prefix("fill/").is_some_and(behind);
            assert!(name == "huge" || behind, "{name}");
            assert!(message.contains("No space left"), "{message}");
        }
        other => panic!("expected Error::Write, got {other:?}"),
    }
    let written: Vec<PathBuf> = reported
        .iter()
        .filter(|r| r.outcome == sandtar::Outcome::Written)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(written.len(), reported.len(), "{reported:?}");
    assert!(written.iter().all(|p| p.starts_with("fill")), "{written:?}");
    assert!(written.len() >= 40, "the files before it: {written:?}");
    let files: Vec<PathBuf> = on_disk
        .iter()
        .filter(|(_, node)| matches!(node.kind, Kind::File(_)))
        .map(|(path, _)| path.clone())
        .collect();
    assert_eq!(
        files, written,
        "on disk: exactly the files reported written"
    );
}

/// Adds 40 files `{prefix}00`… with `mode` and `mtime`, owned by
/// `uid + i` and `gid`.
fn owned_files(
    tar: &mut Tar,
    prefix: &str,
    mode: u32,
    (uid, gid): (u64, u64),
    mtime: i64,
    body: &[u8],
) {
    for i in 0..40 {
        let header = Header::new(format!("{prefix}{i:02}"), b'0', body.len() as u64)
            .mode(mode)
            .owner(uid + i, gid)
            .mtime(mtime);
        tar.entry(header, body);
    }
}

/// As root, files the writer thread (which holds no capability) may not
/// write come back to the applying thread: a destination owned by another
/// user (creating in it needs `CAP_DAC_OVERRIDE`), owners kept (another
/// owner needs `CAP_CHOWN`), and a file with an extended attribute. The
/// result is that of applying one entry at a time.
#[tokio::test]
async fn what_the_writer_may_not_do_the_applier_does() {
    if !common::needs_root("give the destination to another user") {
        return;
    }
    let sandbox = common::sandbox().await;
    let mut tar = Tar::new();
    owned_files(&mut tar, "top", 0o640, (1000, 2000), 5000, b"top\n");
    // In a directory the job makes (the writer may create there), owned
    // by others.
    owned_files(&mut tar, "sub/f", 0o644, (3000, 3000), 6000, b"sub\n");
    tar.pax(&[(b"SCHILY.xattr.user.note", b"kept")])
        .file("noted", b"with an attribute\n");
    let prepare = |dest: &Path| {
        std::os::unix::fs::chown(dest, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    let mut options = Options::full_fidelity();
    options.overwrite = Overwrite::Replace;
    let reports = both_ways(&sandbox, &tar.finish(), &options, prepare).await;
    assert!(
        reports.iter().all(|(_, o)| *o == sandtar::Outcome::Written),
        "{reports:?}"
    );
}
