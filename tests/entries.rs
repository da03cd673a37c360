//! Every kind of entry, and what is kept of its metadata (modes, times, owners,
//! extended attributes, long names), under the default and the full-fidelity
//! options, as root and as `nobody` (user namespace).

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::raw::{Header, Tar};
use common::{
    assert_absent, assert_dir, assert_file, assert_symlink, egid, euid, mode_of, run, Scene,
};
use sandtar::{EntryKind, Options, Outcome, RejectReason, Sandbox, SkipReason};

root_and_nobody!(
    every_kind,
    devices_full_fidelity,
    safe_modes,
    exact_modes,
    exact_setid_without_owners,
    mtimes,
    owners,
    long_names,
    xattrs,
    directory_xattrs,
    read_only_directory,
    replaces_existing,
    dot_entry,
    overwrite_inside_archive,
    extract_twice,
    fifos_not_allowed,
    non_utf8_names,
    xattrs_the_filesystem_cannot_hold,
    set_group_id_destination,
);

/// A file, a directory, a symlink, a hard link, a FIFO, and device nodes (which
/// the default options skip).
async fn every_kind(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .dir("dir/", 0o755)
        .file_mode("dir/file.txt", 0o644, b"hello world\n")
        .file_mode("empty", 0o600, b"")
        .symlink("dir/link", "file.txt")
        .symlink("dangling", "/no/such/target")
        .hardlink("dir/hard.txt", "dir/file.txt")
        .fifo("pipe", 0o640)
        .device("null", b'3', 1, 3)
        .device("loop", b'4', 7, 0)
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    let summary = run.summary();
    let expected = [
        ("dir/", EntryKind::Directory, 0, Outcome::Written),
        ("dir/file.txt", EntryKind::File, 12, Outcome::Written),
        ("empty", EntryKind::File, 0, Outcome::Written),
        ("dir/link", EntryKind::Symlink, 0, Outcome::Written),
        ("dangling", EntryKind::Symlink, 0, Outcome::Written),
        ("dir/hard.txt", EntryKind::HardLink, 0, Outcome::Written),
        ("pipe", EntryKind::Fifo, 0, Outcome::Written),
        (
            "null",
            EntryKind::CharDevice,
            0,
            Outcome::Skipped(SkipReason::DevicesNotAllowed),
        ),
        (
            "loop",
            EntryKind::BlockDevice,
            0,
            Outcome::Skipped(SkipReason::DevicesNotAllowed),
        ),
    ];
    assert_eq!(run.reports.len(), expected.len(), "{:#?}", run.reports);
    for (report, (path, kind, size, outcome)) in run.reports.iter().zip(expected) {
        assert_eq!(report.path, Path::new(path));
        assert_eq!(report.kind, kind, "{path}");
        assert_eq!(report.size, size, "{path}");
        assert_eq!(report.outcome, outcome, "{path}");
    }
    assert_eq!(
        (summary.entries, summary.written, summary.skipped),
        (9, 7, 2)
    );
    assert_eq!((summary.rejected, summary.failed), (0, 0));
    assert_eq!(summary.bytes_written, 12);
    assert_eq!(summary.compression, sandtar::Compression::None);
    assert_eq!(summary.archive_bytes, archive.len() as u64);
    assert_eq!(summary.tar_bytes, archive.len() as u64);

    let d = &scene.dest;
    assert_dir(d.join("dir"), 0o755);
    assert_file(d.join("dir/file.txt"), b"hello world\n", 0o644);
    assert_file(d.join("empty"), b"", 0o600);
    assert_symlink(d.join("dir/link"), "file.txt");
    assert_eq!(std::fs::read(d.join("dir/link")).unwrap(), b"hello world\n");
    assert_symlink(d.join("dangling"), "/no/such/target");
    let a = std::fs::metadata(d.join("dir/file.txt")).unwrap();
    let b = std::fs::symlink_metadata(d.join("dir/hard.txt")).unwrap();
    assert_eq!(
        (a.dev(), a.ino()),
        (b.dev(), b.ino()),
        "hard link shares the inode"
    );
    assert_eq!(a.nlink(), 2);
    let pipe = std::fs::symlink_metadata(d.join("pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.mode() & 0o7777, 0o640);
    assert_absent(d.join("null"));
    assert_absent(d.join("loop"));
    // Files belong to the extracting user.
    assert_eq!((a.uid(), a.gid()), (euid(), egid()));
    let names: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["dangling", "dir", "empty", "pipe"]);
    scene.check();
}

/// Device nodes with the full-fidelity options: created with the right rdev as
/// root; skipped as not permitted in a user namespace.
async fn devices_full_fidelity(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .device("dev/null", b'3', 1, 3)
        .device("dev/loop7", b'4', 7, 7)
        .device("dev/big", b'3', 300, 70000)
        .file("after.txt", b"still here")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::full_fidelity()).await;
    run.summary();
    let d = &scene.dest;
    if common::privileged(&sandbox) {
        for (name, major, minor, block) in [
            ("dev/null", 1, 3, false),
            ("dev/loop7", 7, 7, true),
            ("dev/big", 300, 70000, false),
        ] {
            assert_eq!(run.outcome(name), &Outcome::Written, "{name}");
            let meta = std::fs::symlink_metadata(d.join(name)).unwrap();
            if block {
                assert!(meta.file_type().is_block_device(), "{name}");
            } else {
                assert!(meta.file_type().is_char_device(), "{name}");
            }
            assert_eq!(meta.rdev(), libc::makedev(major, minor), "{name}");
            assert_eq!(meta.mode() & 0o7777, 0o600, "{name}");
        }
    } else {
        for name in ["dev/null", "dev/loop7", "dev/big"] {
            assert_eq!(
                run.outcome(name),
                &Outcome::Skipped(SkipReason::DevicesNotPermitted),
                "{name}"
            );
            assert_absent(d.join(name));
        }
    }
    assert_eq!(run.outcome("after.txt"), &Outcome::Written);
    assert_file(d.join("after.txt"), b"still here", 0o644);
    scene.check();
}

/// The default options drop setuid/setgid/sticky and group/other write bits.
async fn safe_modes(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .file_mode("suid", 0o4777, b"#!/bin/sh\n")
        .file_mode("sgid", 0o2755, b"x")
        .file_mode("private", 0o600, b"x")
        .file_mode("ro", 0o444, b"x")
        .file_mode("groupw", 0o664, b"x")
        .dir("sticky/", 0o1777)
        .dir("setgid-dir/", 0o2775)
        .dir("private-dir/", 0o700)
        .fifo("pipe", 0o666)
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    assert_file(d.join("suid"), b"#!/bin/sh\n", 0o755);
    assert_file(d.join("sgid"), b"x", 0o755);
    assert_file(d.join("private"), b"x", 0o600);
    assert_file(d.join("ro"), b"x", 0o444);
    assert_file(d.join("groupw"), b"x", 0o644);
    assert_dir(d.join("sticky"), 0o755);
    assert_dir(d.join("setgid-dir"), 0o755);
    assert_dir(d.join("private-dir"), 0o700);
    assert_eq!(mode_of(d.join("pipe")), 0o644);
    scene.check();
}

/// `ModePolicy::Exact` without keeping owners still keeps set-id bits, on empty
/// and non-empty files and on directories.
async fn exact_setid_without_owners(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .file_mode("suid-empty", 0o4755, b"")
        .file_mode("suid", 0o4755, b"#!/bin/sh\n")
        .file_mode("sgid", 0o2755, b"#!/bin/sh\n")
        .dir("sgid-dir/", 0o2755)
        .finish();
    let mut options = Options::default();
    options.mode = sandtar::ModePolicy::Exact;
    let run = run(&sandbox, &archive, &scene.dest, &options).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    assert_file(d.join("suid-empty"), b"", 0o4755);
    assert_dir(d.join("sgid-dir"), 0o2755);
    assert_file(d.join("suid"), b"#!/bin/sh\n", 0o4755);
    assert_file(d.join("sgid"), b"#!/bin/sh\n", 0o2755);
    scene.check();
}

/// The full-fidelity options keep every mode bit.
async fn exact_modes(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .file_mode("suid", 0o4755, b"#!/bin/sh\n")
        .file_mode("world", 0o777, b"x")
        .dir("sticky/", 0o1777)
        .dir("open/", 0o777)
        .file_mode("open/f", 0o666, b"y")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::full_fidelity()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    assert_file(d.join("suid"), b"#!/bin/sh\n", 0o4755);
    assert_file(d.join("world"), b"x", 0o777);
    assert_dir(d.join("sticky"), 0o1777);
    assert_dir(d.join("open"), 0o777);
    assert_file(d.join("open/f"), b"y", 0o666);
    scene.check();
}

fn mtime_of(path: &Path) -> (i64, i64) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.mtime(), m.mtime_nsec())
}

/// Modification times from ustar headers and from PAX records (with a
/// fraction), on files, directories and symlinks; and not kept when asked.
async fn mtimes(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .header(
            &Header::new("dir/", b'5', 0)
                .mode(0o755)
                .mtime(1_000_000_000),
        )
        .entry(Header::new("dir/a.txt", b'0', 0).mtime(1_234_567_890), b"a")
        .header(
            &Header::new("dir/link", b'2', 0)
                .link("a.txt")
                .mtime(1_111_111_111),
        )
        .pax(&[(b"mtime", b"1700000000.25")])
        .entry(Header::new("pax.txt", b'0', 0).mtime(5), b"pax")
        .pax(&[(b"mtime", b"1500000000.123456789")])
        .header(&Header::new("paxdir/", b'5', 0).mode(0o755).mtime(5))
        .fifo("pipe", 0o644)
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    assert_eq!(mtime_of(&d.join("dir")), (1_000_000_000, 0));
    assert_eq!(mtime_of(&d.join("dir/a.txt")), (1_234_567_890, 0));
    // The Landlock rung changes times through descriptors open for I/O only,
    // which a symlink has not: it keeps the time it was made.
    match sandbox.mode().rung() {
        sandtar::Rung::Landlock => assert!(mtime_of(&d.join("dir/link")).0 > 1_700_000_000),
        _ => assert_eq!(mtime_of(&d.join("dir/link")), (1_111_111_111, 0)),
    }
    assert_eq!(mtime_of(&d.join("pax.txt")), (1_700_000_000, 250_000_000));
    assert_eq!(mtime_of(&d.join("paxdir")), (1_500_000_000, 123_456_789));
    assert_eq!(mtime_of(&d.join("pipe")), (1_600_000_000, 0));

    // preserve_mtime = false: the time of extraction.
    let other = Scene::new();
    let mut options = Options::default();
    options.preserve_mtime = false;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let run = common::run(&sandbox, &archive, &other.dest, &options).await;
    assert!(run.summary().is_complete());
    for name in ["dir", "dir/a.txt", "pax.txt", "paxdir"] {
        let (secs, _) = mtime_of(&other.dest.join(name));
        assert!(secs >= before - 1, "{name} has an archive time: {secs}");
    }
    scene.check();
    other.check();
}

/// Owners from the archive: kept with full fidelity as root; never by default,
/// and not in a user namespace.
async fn owners(sandbox: Sandbox) {
    let archive = Tar::new()
        .header(&Header::new("dir/", b'5', 0).mode(0o755).owner(1234, 5678))
        .entry(
            Header::new("dir/f.txt", b'0', 0)
                .mode(0o4755)
                .owner(1234, 5678),
            b"owned",
        )
        .header(
            &Header::new("dir/l", b'2', 0)
                .link("f.txt")
                .owner(1234, 5678),
        )
        .pax(&[(b"uid", b"3000000"), (b"gid", b"3000001")])
        .entry(Header::new("pax-owned", b'0', 0).owner(1, 1), b"p")
        .header(&Header::new("pipe", b'6', 0).owner(1234, 5678))
        .finish();
    let owner = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };

    let default = Scene::new();
    let run = run(&sandbox, &archive, &default.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    for name in ["dir", "dir/f.txt", "dir/l", "pax-owned", "pipe"] {
        assert_eq!(owner(&default.dest.join(name)), (euid(), egid()), "{name}");
    }
    assert_eq!(mode_of(default.dest.join("dir/f.txt")), 0o755);
    default.check();

    let full = Scene::new();
    let run = common::run(&sandbox, &archive, &full.dest, &Options::full_fidelity()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &full.dest;
    let landlock = sandbox.mode().rung() == sandtar::Rung::Landlock;
    if common::is_root() {
        for name in ["dir", "dir/f.txt", "dir/l", "pipe"] {
            // The Landlock rung changes owners through descriptors open for
            // I/O only, which a symlink has not: it stays the worker's.
            let kept = match name == "dir/l" && landlock {
                true => (0, 0),
                false => (1234, 5678),
            };
            assert_eq!(owner(&d.join(name)), kept, "{name}");
        }
        assert_eq!(owner(&d.join("pax-owned")), (3_000_000, 3_000_001));
        // chown clears setuid: it must have been put back.
        assert_file(d.join("dir/f.txt"), b"owned", 0o4755);
    } else {
        for name in ["dir", "dir/f.txt", "dir/l", "pax-owned", "pipe"] {
            assert_eq!(owner(&d.join(name)), (euid(), egid()), "{name}");
        }
    }
    full.check();
}

/// GNU long names and long link names, PAX path and linkpath.
async fn long_names(sandbox: Sandbox) {
    let scene = Scene::new();
    let deep = format!("{}/{}/file.txt", "a".repeat(90), "b".repeat(90));
    let long_target = format!("{}/{}", "t".repeat(150), "u".repeat(100));
    let pax_name = format!("pax/{}/{}", "p".repeat(200), "q".repeat(200));
    let pax_hard = format!("{}-hard", "h".repeat(120));
    let archive = Tar::new()
        .gnu_long_name(&deep)
        .entry(Header::new(&deep[..100], b'0', 0), b"gnu long name")
        .gnu_long_link(&long_target)
        .gnu_long_name(format!("{}-symlink", "s".repeat(110)))
        .header(&Header::new("short", b'2', 0).link("ignored"))
        .pax(&[(b"path", pax_name.as_bytes())])
        .entry(Header::new("ustar-name-is-ignored", b'0', 0), b"pax path")
        .pax(&[
            (b"path", pax_hard.as_bytes()),
            (b"linkpath", pax_name.as_bytes()),
        ])
        .header(&Header::new("x", b'1', 0).link("ignored-too"))
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_eq!(run.reports.len(), 4, "{:#?}", run.reports);
    let symlink_name = format!("{}-symlink", "s".repeat(110));
    assert_eq!(run.outcome(&deep), &Outcome::Written);
    assert_eq!(run.outcome(&symlink_name), &Outcome::Written);
    assert_eq!(run.outcome(&pax_name), &Outcome::Written);
    assert_eq!(run.report(&pax_hard).kind, EntryKind::HardLink);
    let d = &scene.dest;
    assert_file(d.join(&deep), b"gnu long name", 0o644);
    assert_symlink(d.join(&symlink_name), &long_target);
    assert_file(d.join(&pax_name), b"pax path", 0o644);
    let a = std::fs::metadata(d.join(&pax_name)).unwrap();
    let b = std::fs::metadata(d.join(&pax_hard)).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_absent(d.join("short"));
    assert_absent(d.join("x"));
    assert_absent(d.join("ustar-name-is-ignored"));
    scene.check();
}

/// `user.*` extended attributes are applied by default, `trusted.*` and
/// `security.*` only with full fidelity (as root).
async fn xattrs(sandbox: Sandbox) {
    let scene = Scene::new();
    let probe = scene.parent().join("probe");
    std::fs::write(&probe, b"").unwrap();
    if let Err(e) = common::set_xattr(&probe, "user.probe", b"1") {
        println!(
            "NOTE: skipping the xattr test: {} does not take user xattrs ({e})",
            probe.display()
        );
        return;
    }
    std::fs::remove_file(&probe).unwrap();
    let mut scene = scene;
    scene.snapshot_now();
    let archive = Tar::new()
        .pax(&[
            (b"SCHILY.xattr.user.mime", b"text/plain"),
            (b"SCHILY.xattr.user.bin", b"\x00\x01\xff"),
            (b"SCHILY.xattr.trusted.secret", b"t"),
            (b"SCHILY.xattr.security.evil", b"s"),
        ])
        .file("tagged.txt", b"data")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let f = scene.dest.join("tagged.txt");
    assert_file(&f, b"data", 0o644);
    assert_eq!(
        common::get_xattr(&f, "user.mime").unwrap().as_deref(),
        Some(&b"text/plain"[..])
    );
    assert_eq!(
        common::get_xattr(&f, "user.bin").unwrap().as_deref(),
        Some(&b"\x00\x01\xff"[..])
    );
    if common::is_root() {
        // Only root can read trusted.* at all.
        assert_eq!(common::get_xattr(&f, "trusted.secret").unwrap(), None);
    }
    assert_eq!(common::get_xattr(&f, "security.evil").unwrap(), None);

    let mut none = Options::default();
    none.xattrs = sandtar::XattrPolicy::None;
    let other = Scene::new();
    let run = common::run(&sandbox, &archive, &other.dest, &none).await;
    assert!(run.summary().is_complete());
    let g = other.dest.join("tagged.txt");
    assert_eq!(common::get_xattr(&g, "user.mime").unwrap(), None);

    let full = Scene::new();
    let run = common::run(&sandbox, &archive, &full.dest, &Options::full_fidelity()).await;
    assert!(run.summary().is_complete());
    let h = full.dest.join("tagged.txt");
    assert_eq!(
        common::get_xattr(&h, "user.mime").unwrap().as_deref(),
        Some(&b"text/plain"[..])
    );
    full.check();
    scene.check();
    other.check();
}

/// A read-only directory still receives its contents, and ends read-only.
async fn read_only_directory(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .dir("ro/", 0o555)
        .file_mode("ro/a.txt", 0o444, b"a")
        .dir("ro/sub/", 0o500)
        .file_mode("ro/sub/b.txt", 0o400, b"b")
        .file_mode("ro/c.txt", 0o644, b"c")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    assert_dir(d.join("ro"), 0o555);
    assert_dir(d.join("ro/sub"), 0o500);
    assert_file(d.join("ro/a.txt"), b"a", 0o444);
    assert_file(d.join("ro/c.txt"), b"c", 0o644);
    assert_file(d.join("ro/sub/b.txt"), b"b", 0o400);
    scene.check();
}

/// What is already in the destination is replaced, never written through: a
/// file hard-linked to a file outside, a symlink pointing outside, an empty
/// directory; a non-empty directory in the way makes the entry fail.
async fn replaces_existing(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let d = scene.dest.clone();
    let outside_file = scene.canary.join("file.txt");
    // A hard link between the destination and the canary.
    std::fs::hard_link(&outside_file, d.join("hardlinked.txt")).unwrap();
    std::fs::write(d.join("plain.txt"), b"old contents that are longer").unwrap();
    std::os::unix::fs::symlink(&outside_file, d.join("abs-link.txt")).unwrap();
    std::os::unix::fs::symlink("../canary/secret", d.join("rel-link.txt")).unwrap();
    std::os::unix::fs::symlink(&scene.canary, d.join("dir-link")).unwrap();
    std::os::unix::fs::symlink(scene.canary.join("sub"), d.join("symlink-over-dir")).unwrap();
    std::fs::create_dir(d.join("empty-dir")).unwrap();
    std::fs::create_dir(d.join("full-dir")).unwrap();
    std::fs::write(d.join("full-dir/keep"), b"keep").unwrap();
    std::fs::write(d.join("was-file"), b"file").unwrap();
    scene.snapshot_now();
    let canary_ino = std::fs::metadata(&outside_file).unwrap().ino();

    let archive = Tar::new()
        .file_mode("hardlinked.txt", 0o600, b"new 1")
        .file("plain.txt", b"new 2")
        .file("abs-link.txt", b"new 3")
        .file("rel-link.txt", b"new 4")
        .symlink("dir-link", "somewhere-inside")
        .dir("symlink-over-dir/", 0o750)
        .file("empty-dir", b"new 5")
        .file("full-dir", b"new 6")
        .dir("was-file/", 0o755)
        .fifo("plain.txt", 0o644)
        .file("plain.txt", b"new 7")
        .finish();
    let run = run(&sandbox, &archive, &d, &Options::default()).await;
    run.summary();
    let outcomes = run.outcomes();
    for (i, (path, outcome)) in outcomes.iter().enumerate() {
        if path == "full-dir" {
            assert!(
                matches!(outcome, Outcome::Failed(m) if m.contains("non-empty directory")),
                "{path}: {outcome:?}"
            );
        } else {
            assert_eq!(outcome, &Outcome::Written, "entry {i} {path}");
        }
    }
    assert_file(d.join("hardlinked.txt"), b"new 1", 0o600);
    assert_ne!(
        std::fs::metadata(d.join("hardlinked.txt")).unwrap().ino(),
        canary_ino
    );
    assert_file(d.join("abs-link.txt"), b"new 3", 0o644);
    assert_file(d.join("rel-link.txt"), b"new 4", 0o644);
    assert_symlink(d.join("dir-link"), "somewhere-inside");
    assert_dir(d.join("symlink-over-dir"), 0o750);
    assert_file(d.join("empty-dir"), b"new 5", 0o644);
    assert_dir(d.join("full-dir"), 0o755);
    assert_file(d.join("full-dir/keep"), b"keep", 0o644);
    assert_dir(d.join("was-file"), 0o755);
    assert_file(d.join("plain.txt"), b"new 7", 0o644);
    // The canary file lost the link from the destination: ignore its link count.
    scene.check_except_links();
    assert_file(&outside_file, b"canary file\n", 0o644);
    assert_eq!(std::fs::metadata(&outside_file).unwrap().nlink(), 1);
}

/// A `./` entry gives the destination itself its mode and time; `./name`
/// entries are written as `name`; `.` alone as a file is rejected, and so is
/// an empty file named `/`.
async fn dot_entry(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .header(&Header::new("./", b'5', 0).mode(0o750).mtime(1_400_000_000))
        .file("./a.txt", b"a")
        .file(".//b/./c.txt", b"c")
        .file(".", b"not a file")
        // A file named `/` is a directory to GNU tar: no data may follow
        // (with data the archive is refused: tests/breakouts.rs).
        .header(&Header::new("/", b'0', 0))
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    run.summary();
    assert_eq!(
        run.outcomes(),
        vec![
            ("./".to_string(), Outcome::Written),
            ("./a.txt".to_string(), Outcome::Written),
            (".//b/./c.txt".to_string(), Outcome::Written),
            (".".to_string(), Outcome::Rejected(RejectReason::EmptyName)),
            ("/".to_string(), Outcome::Rejected(RejectReason::EmptyName)),
        ]
    );
    let d = &scene.dest;
    assert_dir(d, 0o750);
    assert_eq!(mtime_of(d), (1_400_000_000, 0));
    assert_file(d.join("a.txt"), b"a", 0o644);
    assert_file(d.join("b/c.txt"), b"c", 0o644);
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    scene.check();
}

/// A later entry replaces an earlier one of the same name; a file entry over a
/// hard link does not change the other name of the inode.
async fn overwrite_inside_archive(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .file("a.txt", b"original")
        .hardlink("b.txt", "a.txt")
        .file("b.txt", b"replaced")
        .symlink("c", "a.txt")
        .file("c", b"plain now")
        .dir("d/", 0o755)
        .file("d/inner", b"i")
        .symlink("e", "d")
        .file("e/through", b"via symlink")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    assert_file(d.join("a.txt"), b"original", 0o644);
    assert_file(d.join("b.txt"), b"replaced", 0o644);
    assert_eq!(std::fs::metadata(d.join("a.txt")).unwrap().nlink(), 1);
    assert_file(d.join("c"), b"plain now", 0o644);
    assert_symlink(d.join("e"), "d");
    // A symlink to a directory inside the destination may be used as a parent.
    assert_file(d.join("d/through"), b"via symlink", 0o644);
    scene.check();
}

/// The full-fidelity preset applies "every extended attribute (including
/// `security.capability`)" as root.
#[tokio::test]
async fn full_fidelity_applies_security_capability() {
    if !common::needs_root("") {
        return;
    }
    let sandbox = common::sandbox().await;
    let scene = Scene::new();
    // vfs_cap_data revision 2, effective, permitted = CAP_NET_BIND_SERVICE.
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    let archive = Tar::new()
        .pax(&[(b"SCHILY.xattr.security.capability", &cap)])
        .file_mode("capped", 0o755, b"\x7fELF")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::full_fidelity()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let f = scene.dest.join("capped");
    match common::get_xattr(&f, "security.capability") {
        Err(e) => println!("NOTE: no xattrs here ({e})"),
        Ok(v) => assert_eq!(v.as_deref(), Some(&cap[..])),
    }
    // The default options never apply it.
    let other = Scene::new();
    let run = common::run(&sandbox, &archive, &other.dest, &Options::default()).await;
    assert!(run.summary().is_complete());
    let g = other.dest.join("capped");
    assert!(matches!(
        common::get_xattr(&g, "security.capability"),
        Ok(None) | Err(_)
    ));
    scene.check();
    other.check();
}

/// `XattrPolicy::All` applies `user.*` but, by documented policy, drops
/// `trusted.*` (it needs CAP_SYS_ADMIN, which a worker never keeps).
#[tokio::test]
async fn full_fidelity_drops_trusted_xattrs() {
    if !common::needs_root("") {
        return;
    }
    let sandbox = common::sandbox().await;
    let scene = Scene::new();
    let archive = Tar::new()
        .pax(&[
            (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
            (b"SCHILY.xattr.user.u", b"v"),
        ])
        .file("f", b"x")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::full_fidelity()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let f = scene.dest.join("f");
    assert_eq!(
        common::get_xattr(&f, "user.u").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert!(matches!(
        common::get_xattr(&f, "trusted.overlay.opaque"),
        Ok(None) | Err(_)
    ));
    scene.check();
}

/// `user.*` extended attributes on directories are applied like on files.
async fn directory_xattrs(sandbox: Sandbox) {
    let mut scene = Scene::new();
    let probe = scene.parent().join("probe-dir");
    std::fs::create_dir(&probe).unwrap();
    if let Err(e) = common::set_xattr(&probe, "user.probe", b"1") {
        println!("NOTE: skipping: no user xattrs on directories here ({e})");
        return;
    }
    std::fs::remove_dir(&probe).unwrap();
    scene.snapshot_now();
    let archive = Tar::new()
        .pax(&[(b"SCHILY.xattr.user.dir", b"on a directory")])
        .dir("tagged-dir/", 0o755)
        .file("tagged-dir/inside.txt", b"x")
        .pax(&[(b"SCHILY.xattr.user.file", b"on a file")])
        .file("tagged-file", b"y")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    assert_eq!(
        common::get_xattr(&d.join("tagged-file"), "user.file")
            .unwrap()
            .as_deref(),
        Some(&b"on a file"[..])
    );
    assert_eq!(
        common::get_xattr(&d.join("tagged-dir"), "user.dir")
            .unwrap()
            .as_deref(),
        Some(&b"on a directory"[..])
    );
    scene.check();
}

/// Extracting the same archive again over its own result (read-only
/// directories and files included) succeeds and gives the same tree.
async fn extract_twice(sandbox: Sandbox) {
    let scene = Scene::new();
    // Only root can look into what has no permissions at all.
    let closed = if common::is_root() { 0o000 } else { 0o500 };
    let closed_file = if common::is_root() { 0o000 } else { 0o400 };
    let archive = Tar::new()
        .dir("ro/", 0o555)
        .file_mode("ro/f.txt", 0o444, b"read only")
        .dir("closed/", closed)
        .file_mode("closed/g.txt", closed_file, b"no access")
        .symlink("link", "ro/f.txt")
        .hardlink("hard", "ro/f.txt")
        .fifo("pipe", 0o644)
        .finish();
    let first = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(first.summary().is_complete(), "{:#?}", first.reports);
    let tree = common::shape(&common::snapshot(&scene.dest));
    let second = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    // Without any capability (an ordinary user on the Landlock rung) the
    // worker obeys permission bits like any process of that user, as GNU tar
    // does: what lies in the read-only directories cannot be replaced.
    match common::has_no_capabilities(&sandbox) {
        true => {
            let denied = Outcome::Failed("unlink: Permission denied (os error 13)".into());
            for (path, outcome) in second.reports.iter().map(|r| (&r.path, &r.outcome)) {
                let inside = path.starts_with("ro/") || path.starts_with("closed/");
                let in_ro_dir = inside && path.components().count() == 2;
                match in_ro_dir {
                    true => assert_eq!(outcome, &denied, "{path:?}"),
                    false => assert_eq!(outcome, &Outcome::Written, "{path:?}"),
                }
            }
        }
        false => assert!(second.summary().is_complete(), "{:#?}", second.reports),
    }
    let again = common::shape(&common::snapshot(&scene.dest));
    // The destination's own time changes (entries were replaced in it).
    // (And, on the Landlock rung, the symlink's: it keeps the time it was made.)
    let landlock = sandbox.mode().rung() == sandtar::Rung::Landlock;
    let strip =
        |t: &std::collections::BTreeMap<std::path::PathBuf, (common::Kind, u32, (i64, i64))>| {
            let mut t = t.clone();
            t.remove(Path::new(""));
            if landlock {
                t.remove(Path::new("link"));
            }
            t
        };
    assert!(strip(&tree) == strip(&again), "{tree:#?}\n{again:#?}");
    assert_dir(scene.dest.join("ro"), 0o555);
    assert_dir(scene.dest.join("closed"), closed);
    assert_eq!(mode_of(scene.dest.join("ro/f.txt")), 0o444);
    scene.check();
}

/// `allow_fifos = false` skips FIFOs.
async fn fifos_not_allowed(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new().fifo("pipe", 0o644).file("f", b"f").finish();
    let mut options = Options::default();
    options.allow_fifos = false;
    let run = run(&sandbox, &archive, &scene.dest, &options).await;
    run.summary();
    assert_eq!(
        run.outcome("pipe"),
        &Outcome::Skipped(SkipReason::FifosNotAllowed)
    );
    assert_eq!(run.outcome("f"), &Outcome::Written);
    assert_absent(scene.dest.join("pipe"));
    scene.check();
}

/// Directory metadata is applied at the end of the job; when that fails, the
/// directory gets a second, Failed report after the last entry (documented on
/// `EntryReport`), and the summary counts it once, as failed. Root only: an
/// immutable directory (`chattr +i`) makes `fchmod` fail.
#[tokio::test]
async fn directory_metadata_failure_is_not_a_second_entry() {
    if !common::needs_root("") {
        return;
    }
    let sandbox = common::sandbox().await;
    let scene = Scene::new();
    let imm = scene.dest.join("imm");
    std::fs::create_dir(&imm).unwrap();
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&imm)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !chattr("+i") {
        println!("NOTE: skipping: chattr +i does not work here");
        return;
    }
    let archive = Tar::new().dir("imm/", 0o700).file("x", b"x").finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(chattr("-i"));
    let summary = run.summary();
    assert_eq!(summary.entries, 2, "{:#?}", run.reports);
    assert_eq!((summary.written, summary.failed), (1, 1), "{summary:?}");
    assert_eq!(run.reports.len(), 3, "{:#?}", run.reports);
    assert_eq!(run.reports[0].outcome, Outcome::Written);
    assert_eq!(run.reports[2].path, std::path::Path::new("imm/"));
    assert!(
        matches!(run.reports[2].outcome, Outcome::Failed(_)),
        "{:#?}",
        run.reports
    );
    // The failure stays visible.
    assert!(!summary.is_complete(), "{summary:?}");
    scene.check();
}

/// Names are bytes: non-UTF-8 names are written and reported as they are.
async fn non_utf8_names(sandbox: Sandbox) {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let scene = Scene::new();
    let name: &[u8] = b"bin\xff\xfe-\x80.dat";
    let dir: &[u8] = b"d\xe9j\xe0/";
    let mut inside = dir.to_vec();
    inside.extend_from_slice(b"f\\back\\slash");
    let archive = Tar::new()
        .file(name, b"latin-1")
        .dir(dir, 0o755)
        .file(&inside, b"inside")
        .symlink("to-binary", name)
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_eq!(run.reports[0].path.as_os_str().as_bytes(), name);
    assert_eq!(run.reports[2].path.as_os_str().as_bytes(), &inside[..]);
    let d = &scene.dest;
    assert_file(d.join(OsStr::from_bytes(name)), b"latin-1", 0o644);
    assert_file(d.join(OsStr::from_bytes(&inside)), b"inside", 0o644);
    assert_symlink(d.join("to-binary"), OsStr::from_bytes(name));
    scene.check();
}

/// A name padded past the report's length limit (`docs/` + `./` × 4,200 +
/// `evil.sh`, in a PAX record) is reported as the name written, not cut
/// inside the padding.
#[tokio::test]
async fn a_padded_name_is_reported_as_written() {
    let sandbox = common::sandbox().await;
    let scene = common::Scene::new();
    let name = format!("docs/{}evil.sh", "./".repeat(4_200));
    let archive = Tar::new()
        .pax(&[(b"path", name.as_bytes())])
        .entry(Header::new("placeholder", b'0', 0), b"#!/bin/sh\n")
        .finish();
    let run = common::run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert_eq!(
        run.outcome("docs/evil.sh"),
        &Outcome::Written,
        "{:?}",
        run.outcomes()
    );
    assert!(scene.dest.join("docs/evil.sh").is_file());
    scene.check();
}

/// An 8,000-byte `user.*` value (ext4 holds one block: `ENOSPC`), a 70 KB one
/// (`E2BIG`) and a 300-byte name (`ERANGE`), on files and a directory: each
/// entry is reported failed once, for that reason (not as a full disk, which
/// would stop the job), and is on disk complete with its mode and time; the
/// job goes on.
async fn xattrs_the_filesystem_cannot_hold(sandbox: Sandbox) {
    let scene = Scene::new();
    let d = &scene.dest;
    if common::get_xattr(d, "user.probe").is_err() {
        println!("no user xattrs on this filesystem; skipped");
        return;
    }
    let long_name = format!("SCHILY.xattr.user.{}", "n".repeat(300));
    let (big, huge) = (vec![b'v'; 8_000], vec![b'v'; 70_000]);
    let archive = Tar::new()
        .pax(&[
            (b"SCHILY.xattr.user.big", &big),
            (b"SCHILY.xattr.user.ok", b"1"),
        ])
        .entry(
            Header::new("big", b'0', 0).mode(0o640).mtime(1_000_000_000),
            b"data",
        )
        .pax(&[(b"SCHILY.xattr.user.huge", &huge)])
        .entry(Header::new("huge", b'0', 0).mtime(1_000_000_000), b"data")
        .pax(&[(long_name.as_bytes(), b"x")])
        .entry(Header::new("named", b'0', 0).mtime(1_000_000_000), b"data")
        .pax(&[(b"SCHILY.xattr.user.big", &big)])
        .entry(
            Header::new("dir/", b'5', 0)
                .mode(0o750)
                .mtime(1_000_000_000),
            b"",
        )
        .file("after", b"a")
        .finish();
    let run = common::run(&sandbox, &archive, d, &Options::default()).await;
    let summary = run.summary();
    assert_eq!(
        (summary.written, summary.failed),
        (1, 4),
        "{:?}",
        run.outcomes()
    );
    for (name, why) in [
        ("big", "value is too large"),
        ("huge", "value is too large"),
        ("named", "name is too long"),
        ("dir", "value is too large"),
    ] {
        // A directory's metadata comes last: its failure is a correction,
        // the second report for it.
        let outcome = &run
            .reports
            .iter()
            .rev()
            .find(|r| r.path == Path::new(name))
            .unwrap()
            .outcome;
        assert!(
            matches!(outcome, Outcome::Failed(m) if m.starts_with("written without the extended attribute") && m.contains(why)),
            "{name}: {outcome:?}"
        );
        let meta = std::fs::metadata(d.join(name)).unwrap();
        assert_eq!(meta.mtime(), 1_000_000_000, "{name}");
    }
    assert_file(d.join("big"), b"data", 0o640);
    assert_dir(d.join("dir"), 0o750);
    assert_eq!(
        common::get_xattr(&d.join("big"), "user.ok")
            .unwrap()
            .as_deref(),
        Some(&b"1"[..])
    );
    assert_file(d.join("after"), b"a", 0o644);
    scene.check();
}

/// In a set-group-id destination the kernel makes new directories
/// set-group-id: implied parents end as the listed directories do, without
/// the bit (mode 0755 exactly, not 02755).
async fn set_group_id_destination(sandbox: Sandbox) {
    let scene = Scene::new();
    let d = &scene.dest;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o2775)).unwrap();
    assert_eq!(
        mode_of(d) & 0o7777,
        0o2775,
        "the test could not make dest setgid"
    );
    let archive = Tar::new()
        .file("implied/deeper/file", b"f")
        .dir("listed/", 0o755)
        .finish();
    let run = run(&sandbox, &archive, d, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:?}", run.outcomes());
    for dir in ["implied", "implied/deeper", "listed"] {
        assert_dir(d.join(dir), 0o755);
    }
    scene.check();
}
