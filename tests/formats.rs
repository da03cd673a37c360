//! Archive formats and their corners: archives made by GNU tar in every format it
//! writes, GNU sparse files (old GNU and PAX 1.0), old-style directories, PAX
//! global headers, unknown type flags, name length limits, many entries.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::raw::{set_checksum, Header, Magic, Tar};
use common::{assert_absent, assert_dir, assert_file, run, Scene};
use sandtar::{EntryKind, Options, Outcome, RejectReason, Sandbox, SkipReason};

root_and_nobody!(
    gnu_tar_interop,
    gnu_sparse_file,
    pax_sparse_file,
    old_style_directory,
    pax_global_headers,
    type_flags,
    name_limits,
    many_entries,
);

/// The three blocks of data of the sparse test file: 10240 bytes, all zero but
/// "MIDDLE" at 4096 and "END" at the very end; stored as two 512-byte chunks.
fn sparse_chunks() -> Vec<u8> {
    let mut c = vec![0u8; 1024];
    c[..6].copy_from_slice(b"MIDDLE");
    c[1021..].copy_from_slice(b"END");
    c
}

fn sparse_expected() -> Vec<u8> {
    let mut f = vec![0u8; 10240];
    f[4096..4102].copy_from_slice(b"MIDDLE");
    f[10237..].copy_from_slice(b"END");
    f
}

/// An old-GNU sparse entry (type `S`, the map in the header), as
/// `tar --format=gnu -S` writes it (checked against GNU tar 1.34).
async fn gnu_sparse_file(sandbox: Sandbox) {
    let scene = Scene::new();
    let mut h = Header::new("sp", b'S', 1024).magic(Magic::Gnu).encode();
    let put = |b: &mut [u8; 512], at: usize, v: u64| {
        b[at..at + 12].copy_from_slice(format!("{v:011o}\0").as_bytes());
    };
    for (i, (offset, len)) in [(4096, 512), (9728, 512), (10240, 0)].iter().enumerate() {
        put(&mut h, 386 + 24 * i, *offset);
        put(&mut h, 398 + 24 * i, *len);
    }
    put(&mut h, 483, 10240); // real size
    set_checksum(&mut h);
    let mut tar = Tar::new();
    tar.header_block(h).data(&sparse_chunks());
    tar.file("after.txt", b"after");
    let archive = tar.finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let report = run.report("sp");
    assert_eq!((report.kind, report.size), (EntryKind::File, 10240));
    assert_file(scene.dest.join("sp"), &sparse_expected(), 0o644);
    assert_file(scene.dest.join("after.txt"), b"after", 0o644);
    scene.check();
}

/// A PAX 1.0 sparse entry, as `tar --format=posix -S` writes it (checked
/// against GNU tar 1.34): the real name and size are in PAX records, the map
/// is at the start of the data.
async fn pax_sparse_file(sandbox: Sandbox) {
    let scene = Scene::new();
    let mut data = b"3\n4096\n512\n9728\n512\n10240\n0\n".to_vec();
    data.resize(512, 0);
    data.extend_from_slice(&sparse_chunks());
    let archive = Tar::new()
        .pax(&[
            (b"GNU.sparse.major", b"1"),
            (b"GNU.sparse.minor", b"0"),
            (b"GNU.sparse.name", b"sp"),
            (b"GNU.sparse.realsize", b"10240"),
        ])
        .entry(Header::new("GNUSparseFile.0/sp", b'0', 0), &data)
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_absent(scene.dest.join("GNUSparseFile.0"));
    assert_file(scene.dest.join("sp"), &sparse_expected(), 0o644);
    scene.check();
}

/// Before POSIX, directories were regular entries whose name ends in `/`.
async fn old_style_directory(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .header(&Header::new("olddir/", 0, 0).mode(0o750).magic(Magic::V7))
        .entry(Header::new("olddir/f", 0, 0).magic(Magic::V7), b"hi")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_dir(scene.dest.join("olddir"), 0o750);
    assert_file(scene.dest.join("olddir/f"), b"hi", 0o644);
    scene.check();
}

/// PAX global headers (`g`) set times (and ids) for every later entry; an
/// entry's own PAX header overrides them.
async fn pax_global_headers(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .file("before.txt", b"b")
        .pax_global(&[(b"mtime", b"1234567890.5"), (b"comment", b"hello")])
        .file("after.txt", b"a")
        .dir("dir/", 0o755)
        .pax(&[(b"mtime", b"99.25")])
        .file("own.txt", b"o")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    // The global header is not an entry.
    assert_eq!(run.reports.len(), 4);
    let t = |n: &str| {
        let m = std::fs::symlink_metadata(scene.dest.join(n)).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    assert_eq!(t("before.txt"), (1_600_000_000, 0));
    assert_eq!(t("after.txt"), (1_234_567_890, 500_000_000));
    assert_eq!(t("dir"), (1_234_567_890, 500_000_000));
    assert_eq!(t("own.txt"), (99, 250_000_000));
    scene.check();
}

/// Contiguous files are files; volume labels, multi-volume continuations and
/// unknown type flags are skipped (Solaris's `X` extended header is refused
/// instead: see `solaris_extended_header` in breakouts.rs); hard links to
/// directories fail.
async fn type_flags(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .entry(Header::new("contiguous", b'7', 0), b"contiguous")
        .entry(Header::new("v7-regular", 0, 0), b"nul flag")
        .header(&Header::new("label", b'V', 0).magic(Magic::Gnu))
        .entry(Header::new("continued", b'M', 0).magic(Magic::Gnu), b"more")
        .entry(Header::new("vendor", b'Y', 0), b"vendor data")
        .header(&Header::new("unknown", b'Z', 0))
        .dir("adir/", 0o755)
        .hardlink("link-to-dir", "adir")
        .file("after.txt", b"after")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    run.summary();
    assert_eq!(run.outcome("contiguous"), &Outcome::Written);
    assert_eq!(run.outcome("v7-regular"), &Outcome::Written);
    for (name, flag) in [
        ("label", b'V'),
        ("continued", b'M'),
        ("vendor", b'Y'),
        ("unknown", b'Z'),
    ] {
        let r = run.report(name);
        assert_eq!(r.kind, EntryKind::Other(flag), "{name}");
        assert_eq!(
            r.outcome,
            Outcome::Skipped(SkipReason::UnsupportedType(flag)),
            "{name}"
        );
        assert_absent(scene.dest.join(name));
    }
    assert!(matches!(run.outcome("link-to-dir"), Outcome::Failed(_)));
    assert_file(scene.dest.join("contiguous"), b"contiguous", 0o644);
    assert_file(scene.dest.join("v7-regular"), b"nul flag", 0o644);
    assert_file(scene.dest.join("after.txt"), b"after", 0o644);
    scene.check();
}

/// Names at and beyond the kernel's limits.
async fn name_limits(sandbox: Sandbox) {
    let scene = Scene::new();
    // (Not ending in `/`: a regular file named so is a directory to GNU
    // tar, and one with data is refused.)
    let too_long = format!("{}x", "x/".repeat(2100));
    // 201 components: within the default max_path_depth (256).
    let deep = format!("{}leaf.txt", "d/".repeat(200));
    let max_component = "n".repeat(255);
    let huge = "h".repeat(100_000);
    let archive = Tar::new()
        .pax(&[(b"path", too_long.as_bytes())])
        .file("cover", b"x")
        .pax(&[(b"path", huge.as_bytes())])
        .file("cover", b"x")
        .pax(&[(b"path", deep.as_bytes())])
        .file("cover", b"deep")
        .gnu_long_name(&max_component)
        .file("cover", b"255")
        .gnu_long_name("m".repeat(256))
        .file("cover", b"256")
        .file("after.txt", b"after")
        .finish();
    // With the default limits, a name over 4,095 bytes stops the job.
    let limited = Scene::new();
    let stopped = run(&sandbox, &archive, &limited.dest, &Options::default()).await;
    assert!(
        matches!(&stopped.result, Err(sandtar::Error::LimitExceeded { limit, .. }) if *limit == sandtar::Limit::MaxPathLength),
        "{:?}",
        stopped.result
    );
    assert!(stopped.reports.is_empty());
    limited.check();
    // Without that limit, names over PATH_MAX are rejected one by one.
    let mut options = Options::default();
    options.limits.max_path_length = u64::MAX;
    options.limits.max_path_depth = u64::MAX;
    let run = run(&sandbox, &archive, &scene.dest, &options).await;
    run.summary();
    let outcomes: Vec<Outcome> = run.reports.iter().map(|r| r.outcome.clone()).collect();
    assert_eq!(outcomes.len(), 6, "{outcomes:#?}");
    assert_eq!(outcomes[0], Outcome::Rejected(RejectReason::NameTooLong));
    assert_eq!(outcomes[1], Outcome::Rejected(RejectReason::NameTooLong));
    // Reported paths are bounded, whatever the archive says.
    assert!(run.reports[1].path.as_os_str().len() <= 8 * 1024);
    assert_eq!(outcomes[2], Outcome::Written);
    assert_eq!(outcomes[3], Outcome::Written);
    assert!(
        matches!(&outcomes[4], Outcome::Failed(m) if m.contains("too long")),
        "{:?}",
        outcomes[4]
    );
    assert_eq!(outcomes[5], Outcome::Written);
    assert_file(scene.dest.join(&deep), b"deep", 0o644);
    assert_file(scene.dest.join(&max_component), b"255", 0o644);
    assert_file(scene.dest.join("after.txt"), b"after", 0o644);
    assert_absent(scene.dest.join("x"));
    scene.check();
}

/// Ten thousand entries, read as a stream and only finished.
async fn many_entries(sandbox: Sandbox) {
    const N: usize = 10_000;
    let mut tar = Tar::new();
    for i in 0..N {
        let name = format!("d{}/f{i}", i % 50);
        if i % 3 == 0 {
            tar.file(name, format!("{i}").as_bytes());
        } else {
            tar.file(name, b"");
        }
    }
    let archive = tar.finish();
    let scene = Scene::new();
    let mut job = sandbox
        .start(&archive[..], &scene.dest, &Options::default())
        .await
        .unwrap();
    let mut seen = 0;
    while let Some(r) = job.next().await {
        let r = r.unwrap();
        assert_eq!(r.path, Path::new(&format!("d{}/f{seen}", seen % 50)));
        assert_eq!(r.outcome, Outcome::Written);
        seen += 1;
    }
    assert_eq!(seen, N);
    let summary = job.finish().await.unwrap();
    assert_eq!((summary.entries, summary.written), (N as u64, N as u64));
    assert_file(scene.dest.join("d3/f153"), b"153", 0o644);
    assert_file(scene.dest.join("d49/f9999"), b"9999", 0o644);
    assert_eq!(
        std::fs::read_dir(scene.dest.join("d7")).unwrap().count(),
        N / 50
    );
    scene.check();

    let other = Scene::new();
    let summary = sandbox
        .extract(&archive[..], &other.dest, &Options::default())
        .await
        .unwrap();
    assert_eq!(summary.written, N as u64);
    other.check();
}

/// A tree archived by GNU tar in each of its formats (v7, ustar, gnu, posix)
/// comes out as it went in: contents, modes, times, links, long and odd names.
async fn gnu_tar_interop(sandbox: Sandbox) {
    if !common::gnu_tar_available() {
        return;
    }
    let gnu_tar = Path::new(common::GNU_TAR);
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    let write = |rel: &str, data: &[u8], mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let p = s.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("top.txt", b"top\n", 0o644);
    write("bin/run", b"#!/bin/sh\n", 0o755);
    write("private/key", b"secret", 0o600);
    write("emptyfile", b"", 0o644);
    write("big.bin", &vec![0xab; 200_000], 0o644);
    write("names/with space.txt", b"space", 0o644);
    write("names/ünïcödé-名前.txt", b"utf-8", 0o644);
    write("names/new\nline", b"newline", 0o644);
    let long = format!("long/{}/{}", "a".repeat(80), "b".repeat(80));
    write(&long, b"long", 0o644);
    std::os::unix::fs::symlink("../top.txt", s.join("bin/top-link")).unwrap();
    std::fs::hard_link(s.join("top.txt"), s.join("bin/top-hard")).unwrap();
    std::fs::create_dir(s.join("emptydir")).unwrap();
    let source = common::snapshot(s);

    for format in ["v7", "ustar", "gnu", "posix"] {
        let out = Command::new(gnu_tar)
            .arg(format!("--format={format}"))
            .args(["-cf", "-", "-C"])
            .arg(s)
            .arg(".")
            .output()
            .unwrap();
        if !out.status.success() {
            // v7 and ustar cannot hold every name; GNU tar says so and skips it.
            println!(
                "NOTE: GNU tar --format={format}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let scene = Scene::new();
        let run = run(&sandbox, &out.stdout, &scene.dest, &Options::default()).await;
        assert!(run.summary().is_complete(), "{format}: {:#?}", run.reports);
        let got = common::snapshot(&scene.dest);
        let precise = format == "posix";
        for (rel, want) in &source {
            let Some(have) = got.get(rel) else {
                // v7 cannot hold names over 99 bytes: GNU tar skips them.
                assert!(
                    format == "v7" && rel.as_os_str().len() > 90,
                    "{format}: {} missing",
                    rel.display()
                );
                continue;
            };
            assert_eq!(have.kind, want.kind, "{format}: {}", rel.display());
            assert_eq!(have.mode, want.mode, "{format}: {}", rel.display());
            let symlink = matches!(have.kind, common::Kind::Symlink(_));
            if symlink && sandbox.mode().rung() == sandtar::Rung::Landlock {
                // That rung keeps no symlink's time (see SECURITY.md).
            } else if precise {
                assert_eq!(have.mtime, want.mtime, "{format}: {}", rel.display());
            } else {
                assert_eq!(have.mtime.0, want.mtime.0, "{format}: {}", rel.display());
            }
            assert_eq!(have.nlink, want.nlink, "{format}: {}", rel.display());
        }
        scene.check();
    }
}
