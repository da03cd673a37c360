//! Packing (`Sandbox::pack`) and copying (`Sandbox::copy`) in a worker
//! confined to the source, read-only: round trips through GNU tar, the
//! reproducible preset against GNU tar's own, extended attributes (and file
//! capabilities, as root) and sparse files extracted by GNU tar and by
//! sandtar, and hostile source trees (symlinks and `..` links out of it, a
//! FIFO, a device node, a mount below it, a directory swapped with a
//! symlink while it is packed) from which no byte of anything outside
//! reaches the archive. As root and as `nobody`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{get_xattr, is_root, set_xattr, shape, snapshot, Kind, Scene};
use common::{gnu_tar, gnu_tar_available, pack_all};
use sandtar::{Compression, EntryKind, Error, Options, Outcome, PackOptions, Sandbox, XattrPolicy};

root_and_nobody!(
    round_trip_through_gnu_tar,
    reproducible_is_byte_identical_and_lists_as_gnu_tar,
    compressed_packs_and_copies,
    nothing_from_outside_reaches_the_archive,
    a_swapped_directory_leaks_nothing,
    bad_options_and_sources,
    extended_attributes_round_trip,
    sparse_files_keep_their_holes,
    deep_trees_pack_whole,
    the_deepest_directories_are_reported,
    a_large_zstd_pack_is_several_frames,
);

/// A byte string found in no file of the source, only outside it.
const OUTSIDE: &[u8] = b"outside-the-source-7f3a9c";

/// A source tree with most kinds of entry, names long enough for PAX
/// records, and links that point out of it.
fn make_source(scene: &Scene) -> PathBuf {
    let src = scene.dest.clone();
    let w = |rel: &str, data: &[u8], mode: u32| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    w("a.txt", b"hello\n", 0o644);
    w("empty", b"", 0o600);
    w("bin/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    w("data/big.bin", &vec![7u8; 300_000], 0o644);
    let long_dir = "d".repeat(120);
    w(
        &format!("{long_dir}/{}", "f".repeat(90)),
        b"split name\n",
        0o644,
    );
    w(&format!("deep/{}", "n".repeat(200)), b"pax name\n", 0o644);
    // Deeper than the directories a worker keeps open (24): opened again.
    let nested: Vec<&str> = std::iter::repeat_n("n", 40).collect();
    w(
        &format!("nest/{}/bottom.txt", nested.join("/")),
        b"bottom\n",
        0o644,
    );
    std::fs::hard_link(src.join("a.txt"), src.join("bin/hard.txt")).unwrap();
    symlink("../a.txt", src.join("bin/rel-link")).unwrap();
    symlink("t".repeat(150), src.join("long-target")).unwrap();
    // Links out of the source: recorded as links, never followed.
    std::fs::write(scene.parent().join("outside.txt"), OUTSIDE).unwrap();
    symlink(scene.parent().join("outside.txt"), src.join("abs-out")).unwrap();
    symlink("../outside.txt", src.join("dotdot-out")).unwrap();
    symlink("/etc/passwd", src.join("passwd")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::create_dir(src.join("empty-dir")).unwrap();
    src
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// GNU tar `args` with `archive` on standard input, in `dir`; it must succeed.
fn gnu(args: &[&str], dir: &Path, archive: &[u8]) -> Vec<u8> {
    let (out, ok, stderr) = gnu_tar(args, Some(dir), archive);
    assert!(ok, "GNU tar {args:?}: {stderr}");
    out
}

/// GNU tar's reproducible pack of `src` (`--sparse` too when asked).
fn gnu_reproducible(src: &Path, epoch: i64, sparse: bool) -> Vec<u8> {
    let mtime = format!("--mtime=@{epoch}");
    let mut args = vec![
        "--sort=name",
        &mtime,
        "--clamp-mtime",
        "--owner=0",
        "--group=0",
    ];
    args.extend(["--numeric-owner", "--format=posix", "-cf", "-", "."]);
    if sparse {
        args.insert(0, "--sparse");
    }
    gnu(&args, src, b"")
}

/// `tar -tv` of `archive` (run in `src`), without the top `./` and its
/// prefix on names.
fn gnu_listing(src: &Path, archive: &[u8]) -> Vec<String> {
    let out = gnu(&["-tv", "--numeric-owner", "-f", "-"], src, archive);
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.ends_with(" ./"))
        .map(|l| l.replace(" ./", " "))
        .collect()
}

/// A tree's shape without symlinks' own times (not every tool sets them).
fn comparable(root: &Path) -> BTreeMap<PathBuf, (Kind, u32, (i64, i64))> {
    let mut s = shape(&snapshot(root));
    for value in s.values_mut() {
        if matches!(value.0, Kind::Symlink(_)) {
            value.2 = (0, 0);
        } else {
            value.2 .1 = 0; // whole seconds: ustar records no more
        }
    }
    s.remove(Path::new(""));
    s
}

async fn round_trip_through_gnu_tar(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let src = make_source(&scene);
    scene.snapshot_now();
    let (archive, reports, summary) = pack_all(&sandbox, &src, &PackOptions::default()).await;
    assert!(summary.is_complete(), "{summary:?}");
    assert_eq!(
        (summary.digest.as_ref(), summary.diff_id.as_ref()),
        (None, None)
    );
    assert!(
        reports.iter().all(|r| r.outcome == Outcome::Written),
        "{reports:#?}"
    );
    assert_eq!(summary.written as usize, reports.len());
    assert_eq!(summary.archive_bytes, archive.len() as u64);
    assert!(
        !contains(&archive, OUTSIDE),
        "bytes from outside the source"
    );
    let hard = reports.iter().find(|r| r.path == Path::new("bin/hard.txt"));
    assert!(hard.is_some(), "{reports:#?}");
    if gnu_tar_available() {
        let out = tempfile::tempdir().unwrap();
        gnu(&["-xpf", "-"], out.path(), &archive);
        assert_eq!(comparable(&src), comparable(out.path()));
        let a = std::fs::metadata(out.path().join("a.txt")).unwrap();
        let hard = std::fs::metadata(out.path().join("bin/hard.txt")).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&a),
            std::os::unix::fs::MetadataExt::ino(&hard),
            "the hard link is recorded as one"
        );
    }
    scene.check();
}

async fn reproducible_is_byte_identical_and_lists_as_gnu_tar(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let src = make_source(&scene);
    scene.snapshot_now();
    let epoch = 1_000_000_000;
    let options = PackOptions::reproducible(epoch);
    let (first, _, _) = pack_all(&sandbox, &src, &options).await;
    // Touch every file and directory: times after the epoch are clamped to it.
    for (path, node) in snapshot(&src) {
        if !matches!(node.kind, Kind::Symlink(_) | Kind::Special { .. }) {
            let file = std::fs::File::open(src.join(&path)).unwrap();
            file.set_modified(std::time::SystemTime::now()).unwrap();
        }
    }
    let (second, _, _) = pack_all(&sandbox, &src, &options).await;
    assert_eq!(first, second, "two reproducible packs differ");
    if gnu_tar_available() {
        let theirs = gnu_reproducible(&src, epoch, false);
        let list = |archive: &[u8]| gnu_listing(&src, archive);
        assert_eq!(list(&first), list(&theirs));
    }
    scene.check();
}

async fn compressed_packs_and_copies(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let src = make_source(&scene);
    scene.snapshot_now();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let mut options = PackOptions::default();
        options.compression = compression;
        options.digest = true;
        let (archive, _, summary) = pack_all(&sandbox, &src, &options).await;
        assert_eq!(summary.compression, compression);
        // The digests: of the bytes read (by the caller), and of the tar
        // stream (by the worker): the same for a plain archive.
        let read = format!(
            "sha256:{:x}",
            <sha2::Sha256 as sha2::Digest>::digest(&archive)
        );
        assert_eq!(summary.digest.as_deref(), Some(read.as_str()));
        let diff_id = summary.diff_id.clone().expect("a diff_id");
        assert_eq!(compression == Compression::None, diff_id == read);
        assert!(summary.tar_bytes > 0);
        if compression != Compression::None {
            assert!(summary.archive_bytes < summary.tar_bytes, "{summary:?}");
        }
        assert!(!contains(&archive, OUTSIDE));
        // Copy through two workers into a fresh tree.
        let out = tempfile::tempdir().unwrap();
        let copied = sandbox
            .copy(&src, out.path(), &options, &Options::default())
            .await
            .expect("copy");
        assert!(copied.is_complete(), "{copied:?}");
        let ours = comparable(&src);
        let theirs = comparable(out.path());
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>()
        );
        for (path, (kind, _, _)) in &ours {
            assert_eq!(&theirs[path].0, kind, "{}", path.display());
        }
    }
    // A prefix and a selection.
    let mut options = PackOptions::default();
    options.prefix = Some("top/v1".into());
    options.select.exclude = vec!["*.bin".into(), "deep".into()];
    let (_, reports, summary) = pack_all(&sandbox, &src, &options).await;
    assert_eq!(summary.not_selected, 2, "{reports:#?}");
    let out = tempfile::tempdir().unwrap();
    sandbox
        .copy(&src, out.path(), &options, &Options::default())
        .await
        .unwrap();
    assert!(out.path().join("top/v1/a.txt").is_file());
    assert!(!out.path().join("top/v1/data/big.bin").exists());
    assert!(!out.path().join("top/v1/deep").exists());
    scene.check();
}

async fn nothing_from_outside_reaches_the_archive(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let src = make_source(&scene);
    scene.snapshot_now();
    std::fs::create_dir(src.join("mnt")).unwrap();
    let mut mounted = false;
    if is_root() && common::privileged(&sandbox) {
        // A filesystem mounted below the source: not packed.
        mounted = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(src.join("mnt"))
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            std::fs::write(src.join("mnt/secret"), OUTSIDE).unwrap();
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }
    let (archive, reports, summary) = pack_all(&sandbox, &src, &PackOptions::default()).await;
    if mounted {
        Command::new("umount")
            .arg(src.join("mnt"))
            .status()
            .unwrap();
    }
    assert!(
        !contains(&archive, OUTSIDE),
        "bytes from outside the source"
    );
    assert!(summary.is_complete(), "{reports:#?}");
    let paths: Vec<String> = reports.iter().map(|r| r.shown_path()).collect();
    assert!(paths.contains(&"mnt".to_string()), "{paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("mnt/")), "{paths:?}");
    if gnu_tar_available() {
        let listing = gnu(&["-tvf", "-"], &src, &archive);
        let listing = String::from_utf8_lossy(&listing);
        assert!(listing.contains("abs-out -> "), "{listing}");
        assert!(listing.contains("passwd -> /etc/passwd"), "{listing}");
        assert!(
            listing.contains("dotdot-out -> ../outside.txt"),
            "{listing}"
        );
        assert!(listing
            .lines()
            .any(|l| l.starts_with('p') && l.ends_with(" pipe")));
        if is_root() && common::privileged(&sandbox) {
            assert!(listing
                .lines()
                .any(|l| l.starts_with('c') && l.ends_with(" null")));
        }
    }
    scene.check();
}

async fn a_swapped_directory_leaks_nothing(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let src = scene.dest.clone();
    let secret = scene.parent().join("secret-dir");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("inside.txt"), OUTSIDE).unwrap();
    scene.snapshot_now();
    std::fs::create_dir(src.join("d")).unwrap();
    std::fs::write(src.join("d/inside.txt"), b"fine\n").unwrap();
    for i in 0..200 {
        std::fs::write(src.join(format!("f{i:03}")), b"filler\n").unwrap();
    }
    // Swap d with a symlink to the secret directory, over and over.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, src, secret) = (stop.clone(), src.clone(), secret.clone());
        std::thread::spawn(move || {
            let (d, aside, link) = (src.join("d"), src.join("d.real"), src.join("d.link"));
            let _ = symlink(&secret, &link);
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::rename(&d, &aside);
                let _ = std::fs::rename(&link, &d);
                let _ = std::fs::rename(&d, &link);
                let _ = std::fs::rename(&aside, &d);
                swaps += 1;
            }
            swaps
        })
    };
    let mut packs = 0;
    for _ in 0..40 {
        let (archive, _, _) = pack_all(&sandbox, &src, &PackOptions::default()).await;
        assert!(
            !contains(&archive, OUTSIDE),
            "a byte from outside the source"
        );
        packs += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    println!("{packs} packs during {swaps} swaps: nothing from outside");
    assert!(swaps > 0);
    scene.check();
}

async fn bad_options_and_sources(sandbox: Sandbox) {
    let scene = Scene::new();
    let invalid = |result: Result<sandtar::Pack, Error>, option: &str| match result {
        Err(Error::InvalidOption { option: o, .. }) if o == option => {}
        other => panic!("expected an invalid {option}, got {other:?}"),
    };
    let mut options = PackOptions::default();
    options.compression = Compression::Xz;
    invalid(sandbox.pack(&scene.dest, &options).await, "compression");
    let mut options = PackOptions::default();
    options.select.strip_components = 1;
    invalid(sandbox.pack(&scene.dest, &options).await, "select");
    for prefix in ["../up", "/abs", "a/./b", ""] {
        let mut options = PackOptions::default();
        options.prefix = Some(prefix.into());
        invalid(sandbox.pack(&scene.dest, &options).await, "prefix");
    }
    let missing = sandbox
        .pack(scene.dest.join("missing"), &PackOptions::default())
        .await;
    assert!(
        matches!(&missing, Err(Error::Source { problem, .. }) if problem == "does not exist"),
        "{missing:?}"
    );
    std::fs::write(scene.dest.join("file"), b"x").unwrap();
    let file = sandbox
        .pack(scene.dest.join("file"), &PackOptions::default())
        .await;
    assert!(matches!(&file, Err(Error::Source { .. })), "{file:?}");
    scene.check();
}

/// A file capability as the kernel stores it (`vfs_cap_data`, revision 2):
/// `cap_net_bind_service` permitted and effective.
const CAPABILITY: [u8; 20] = [
    1, 0, 0, 2, // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    0, 4, 0, 0, // permitted, low word: bit 10
    0, 0, 0, 0, // inheritable, low word
    0, 0, 0, 0, // permitted, high word
    0, 0, 0, 0, // inheritable, high word
];

/// A binary value: NUL bytes, a newline, bytes that are no UTF-8.
const BINARY: &[u8] = b"\0bin\nary\xff\xfe=\0";

/// The attributes set on the source, by file and name.
fn attributes(capability: bool) -> Vec<(&'static str, &'static str, &'static [u8])> {
    let mut set = vec![
        ("f.txt", "user.zz", &b"last"[..]),
        ("f.txt", "user.mime_type", b"text/plain"),
        ("f.txt", "user.binary", BINARY),
        ("d", "user.dir", b"yes"),
        ("d/inner.txt", "user.big", &[0x5a; 3000][..]),
    ];
    if capability {
        set.push(("bin/ping", "security.capability", &CAPABILITY[..]));
    }
    set
}

/// A tree with extended attributes, and one that must not be recorded
/// (`user.overlay.*`); `false` if the filesystem holds no user attributes.
fn make_xattr_source(src: &Path, capability: bool) -> bool {
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("f.txt"), b"attributes\n").unwrap();
    std::fs::write(src.join("d/inner.txt"), b"inner\n").unwrap();
    std::fs::write(src.join("bin/ping"), b"#!/bin/sh\n").unwrap();
    symlink("f.txt", src.join("link")).unwrap();
    if set_xattr(&src.join("f.txt"), "user.overlay.redirect", b"/elsewhere").is_err() {
        println!("NOTE: no user extended attributes on this filesystem: skipped");
        return false;
    }
    // Set in an order that is not the sorted one (and after the data: a
    // write clears a file capability).
    for (file, name, value) in attributes(capability) {
        set_xattr(&src.join(file), name, value).unwrap();
    }
    true
}

/// Asserts that `root` carries the attributes of [`attributes`] and no
/// `user.overlay.*` one.
fn assert_attributes(root: &Path, capability: bool, who: &str) {
    for (file, name, value) in attributes(capability) {
        let got = get_xattr(&root.join(file), name).unwrap();
        assert_eq!(got.as_deref(), Some(value), "{who}: {file} {name}");
    }
    let overlay = get_xattr(&root.join("f.txt"), "user.overlay.redirect").unwrap();
    assert_eq!(overlay, None, "{who}: user.overlay.* is never recorded");
}

async fn extended_attributes_round_trip(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let src = scene.dest.clone();
    // File capabilities: as root, who may set them.
    let capability = is_root();
    if !make_xattr_source(&src, capability) {
        return;
    }
    scene.snapshot_now();
    // The default records none, as GNU tar without --xattrs.
    let (plain, _, summary) = pack_all(&sandbox, &src, &PackOptions::default()).await;
    assert!(summary.is_complete(), "{summary:?}");
    assert!(!contains(&plain, b"SCHILY.xattr"), "attributes by default");
    let mut options = PackOptions::reproducible(1_000_000_000);
    options.xattrs = XattrPolicy::All;
    let (archive, reports, summary) = pack_all(&sandbox, &src, &options).await;
    assert!(summary.is_complete(), "{reports:#?}");
    assert!(contains(&archive, b"SCHILY.xattr.user.binary="));
    assert!(
        !contains(&archive, b"user.overlay"),
        "user.overlay.* recorded"
    );
    assert_eq!(
        contains(&archive, b"SCHILY.xattr.security.capability="),
        capability
    );
    // Sorted by name, whatever order they were set in.
    let at = |needle: &[u8]| archive.windows(needle.len()).position(|w| w == needle);
    assert!(
        at(b"user.binary=") < at(b"user.mime_type=") && at(b"user.mime_type=") < at(b"user.zz=")
    );
    let (again, _, _) = pack_all(&sandbox, &src, &options).await;
    assert_eq!(archive, again, "two reproducible packs differ");
    // `user.*` only: no capability.
    options.xattrs = XattrPolicy::User;
    let (user_only, _, _) = pack_all(&sandbox, &src, &options).await;
    assert!(contains(&user_only, b"SCHILY.xattr.user.dir="));
    assert!(!contains(&user_only, b"security.capability"));
    // Extracted by sandtar, which applies them all.
    let out = tempfile::tempdir().unwrap();
    let mut extract = Options::default();
    extract.xattrs = XattrPolicy::All;
    let run = common::run(&sandbox, &archive, out.path(), &extract).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_attributes(out.path(), capability, "sandtar");
    // And by GNU tar.
    if gnu_tar_available() {
        let out = tempfile::tempdir().unwrap();
        gnu(
            &["--xattrs", "--xattrs-include=*", "-xf", "-"],
            out.path(),
            &archive,
        );
        assert_attributes(out.path(), capability, "GNU tar");
    }
    scene.check();
}

/// Bytes of `len` at `offset` that are not zero.
fn region(offset: u64, len: usize, seed: u64) -> (u64, Vec<u8>) {
    (offset, common::noise(len, seed))
}

/// A file of `size` bytes, holes but for `regions`.
fn sparse_file(path: &Path, size: u64, regions: &[(u64, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    file.set_len(size).unwrap();
    for (offset, data) in regions {
        file.write_all_at(data, *offset).unwrap();
    }
}

/// Whether `path` takes fewer blocks than its size (it has holes).
fn is_sparse(path: &Path) -> bool {
    let meta = std::fs::metadata(path).unwrap();
    meta.blocks() * 512 < meta.size()
}

/// A mebibyte.
const MIB: u64 = 1 << 20;

async fn sparse_files_keep_their_holes(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let src = scene.dest.clone();
    // Data at the start, in the middle and at the very end.
    let disk = [
        region(0, 4096, 1),
        region(20 * MIB, 100_000, 2),
        region(64 * MIB - 4096, 4096, 3),
    ];
    sparse_file(&src.join("disk.img"), 64 * MIB, &disk);
    // Nothing but a hole.
    sparse_file(&src.join("holes.img"), 16 * MIB, &[]);
    // Data, then a hole to the end.
    sparse_file(
        &src.join("tail-hole.img"),
        32 * MIB,
        &[region(0, MIB as usize, 4)],
    );
    std::fs::hard_link(src.join("disk.img"), src.join("link-to-disk.img")).unwrap();
    std::fs::write(src.join("plain.txt"), b"not sparse\n").unwrap();
    // A name past ustar's fields: the header's (GNUSparseFile.0) is cut.
    let long = format!("{}/deep.img", "l".repeat(120));
    std::fs::create_dir(src.join("l".repeat(120))).unwrap();
    sparse_file(&src.join(&long), 8 * MIB, &[region(4 * MIB, 4096, 5)]);
    for name in ["disk.img", "holes.img", "tail-hole.img", "plain.txt", &long] {
        let file = std::fs::File::options()
            .write(true)
            .open(src.join(name))
            .unwrap();
        let whole_second = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        file.set_modified(whole_second).unwrap();
    }
    scene.snapshot_now();
    if !is_sparse(&src.join("disk.img")) {
        println!("NOTE: this filesystem makes no holes: skipped");
        return;
    }
    let (archive, reports, summary) = pack_all(&sandbox, &src, &PackOptions::default()).await;
    assert!(summary.is_complete(), "{reports:#?}");
    // 184 MiB of files, about 1.2 MiB of data.
    assert!(archive.len() < 2 * MIB as usize, "{} bytes", archive.len());
    let report = |name: &str| reports.iter().find(|r| r.path == Path::new(name)).unwrap();
    assert_eq!(
        report("disk.img").size,
        64 * MIB,
        "the real size is reported"
    );
    assert_eq!(report("link-to-disk.img").kind, EntryKind::HardLink);
    assert!(contains(&archive, b"GNU.sparse.major=1"));
    assert!(contains(&archive, b"./GNUSparseFile.0/disk.img"));
    // The hard link is a link, not a second copy of the data.
    assert!(!contains(&archive, b"GNU.sparse.name=link-to-disk.img"));
    let (again, _, _) = pack_all(&sandbox, &src, &PackOptions::reproducible(1)).await;
    let (twice, _, _) = pack_all(&sandbox, &src, &PackOptions::reproducible(1)).await;
    assert_eq!(again, twice, "two reproducible packs differ");
    let names = [
        "disk.img",
        "holes.img",
        "tail-hole.img",
        "link-to-disk.img",
        &long,
    ];
    let same_files = |out: &Path, who: &str| {
        for name in names {
            let ours = std::fs::read(src.join(name)).unwrap();
            let theirs = std::fs::read(out.join(name)).unwrap();
            assert!(ours == theirs, "{who}: {name} differs");
            assert!(is_sparse(&out.join(name)), "{who}: {name} has no holes");
        }
        let ino = |name: &str| std::fs::metadata(out.join(name)).unwrap().ino();
        assert_eq!(
            ino("disk.img"),
            ino("link-to-disk.img"),
            "{who}: the hard link"
        );
        assert_eq!(
            std::fs::read(out.join("plain.txt")).unwrap(),
            b"not sparse\n"
        );
    };
    // sandtar's extraction.
    let out = tempfile::tempdir().unwrap();
    let run = common::run(&sandbox, &archive, out.path(), &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    same_files(out.path(), "sandtar");
    if gnu_tar_available() {
        let out = tempfile::tempdir().unwrap();
        gnu(&["-xf", "-"], out.path(), &archive);
        same_files(out.path(), "GNU tar");
        // The source compares equal, holes and all.
        // (GNU tar compares a sparse file's time to the nanosecond, even
        // with its own archives, which record whole seconds without a PAX
        // `mtime`: the sources' times are whole seconds.)
        let (out, ok, stderr) = gnu_tar(&["--compare", "-f", "-"], Some(&src), &archive);
        assert!(ok, "--compare: {} {stderr}", String::from_utf8_lossy(&out));
        // Listed with real names and sizes, as GNU tar lists its own.
        let listing = String::from_utf8(gnu(&["--list", "-v", "-f", "-"], &src, &archive)).unwrap();
        let size_of = |name: &str| {
            let line = listing.lines().find(|l| l.ends_with(&format!(" {name}")));
            let line = line.unwrap_or_else(|| panic!("{name} not listed: {listing}"));
            line.split_whitespace().nth(2).unwrap().to_string()
        };
        assert_eq!(size_of("disk.img"), (64 * MIB).to_string());
        assert_eq!(size_of("holes.img"), (16 * MIB).to_string());
        assert_eq!(size_of("tail-hole.img"), (32 * MIB).to_string());
        assert!(!listing.contains("GNUSparseFile"), "{listing}");
        let theirs = gnu_reproducible(&src, 1, true);
        let list = |archive: &[u8]| gnu_listing(&src, archive);
        assert_eq!(list(&again), list(&theirs));
    }
    scene.check();
}

/// A tree far deeper than the directories a worker keeps open (24) and than
/// its descriptors (64): a file 70 levels down beside a 40-level subtree,
/// and a file after that subtree. Every entry is packed; before, coming back
/// up from the subtree reopened every level and the rest of the directory
/// was lost to `EMFILE`.
async fn deep_trees_pack_whole(sandbox: Sandbox) {
    let scene = Scene::new();
    let src = scene.dest.clone();
    let mut mid = src.clone();
    for _ in 0..70 {
        mid.push("d");
    }
    let mut bottom = mid.join("a-sub");
    for _ in 0..40 {
        bottom.push("s");
    }
    std::fs::create_dir_all(&bottom).unwrap();
    std::fs::write(bottom.join("bottom.txt"), b"bottom\n").unwrap();
    std::fs::write(mid.join("z-after.txt"), b"after\n").unwrap();
    let (archive, reports, summary) = pack_all(&sandbox, &src, &PackOptions::default()).await;
    let failed: Vec<_> = reports
        .iter()
        .filter(|r| r.outcome != Outcome::Written)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // 70 + 1 + 40 directories, two files.
    assert_eq!(summary.written, 113, "{summary:?}");
    let out = tempfile::tempdir().unwrap();
    let run = common::run(&sandbox, &archive, out.path(), &Options::default()).await;
    run.summary();
    let rel = mid.strip_prefix(&src).unwrap();
    assert_eq!(
        std::fs::read(out.path().join(rel).join("z-after.txt")).unwrap(),
        b"after\n"
    );
    scene.check();
}

/// Past 1,024 levels a directory is reported failed and not walked (the
/// walk recurses once per level; the worker's stack ends past about 6,000
/// in a release build, sooner in a debug one): the worker lives, the
/// archive holds the 1,023 levels above, and the job reports the rest.
async fn the_deepest_directories_are_reported(sandbox: Sandbox) {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let scene = Scene::new();
    let mut dir = openat(
        rustix::fs::CWD,
        &scene.dest,
        OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    for _ in 0..1100 {
        mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = openat(&dir, "d", OFlags::DIRECTORY, Mode::empty()).unwrap();
    }
    let (archive, reports, summary) =
        pack_all(&sandbox, &scene.dest, &PackOptions::default()).await;
    assert_eq!(summary.written, 1023, "{summary:?}");
    assert_eq!(summary.failed, 1, "{summary:?}");
    let failed = reports
        .iter()
        .find(|r| r.outcome != Outcome::Written)
        .unwrap();
    assert!(
        matches!(&failed.outcome, Outcome::Failed(m) if m.contains("1024 directories deep")),
        "{:?}",
        failed.outcome
    );
    assert_eq!(failed.path.components().count(), 1024);
    assert!(!archive.is_empty());
    scene.check();
}

/// A zstd archive of more than one frame (the worker cuts one every 8 MiB
/// of tar): the frames follow each other, decode to the very tar stream the
/// plain pack gives, and extract (through sandtar, and GNU tar where it is
/// here) to the same files.
async fn a_large_zstd_pack_is_several_frames(sandbox: Sandbox) {
    let scene = Scene::new();
    let src = scene.dest.join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..3u8 {
        // Compressible, not trivially: noise in a small alphabet.
        let data: Vec<u8> = common::noise(9 << 20, u64::from(i) + 1)
            .into_iter()
            .map(|b| b"acgt"[usize::from(b % 4)])
            .collect();
        std::fs::write(src.join(format!("f{i}")), data).unwrap();
    }
    let mut options = PackOptions::default();
    options.digest = false;
    let (plain, _, _) = pack_all(&sandbox, &src, &options).await;
    options.compression = Compression::Zstd;
    let (archive, _, summary) = pack_all(&sandbox, &src, &options).await;
    assert_eq!(summary.tar_bytes, plain.len() as u64);
    let mut frames = 0;
    let mut rest = &archive[..];
    while !rest.is_empty() {
        let size = zstd::zstd_safe::find_frame_compressed_size(rest).expect("a whole zstd frame");
        rest = &rest[size..];
        frames += 1;
    }
    assert!(frames >= 4, "{frames} frames for {} tar bytes", plain.len());
    assert_eq!(zstd::stream::decode_all(&archive[..]).unwrap(), plain);
    let out = tempfile::tempdir().unwrap();
    let mut extract = Options::default();
    extract.compression = Compression::Zstd;
    let summary = sandbox
        .extract(&archive[..], out.path(), &extract)
        .await
        .expect("extract");
    assert_eq!(summary.written, 3);
    for i in 0..3 {
        let name = format!("f{i}");
        assert_eq!(
            std::fs::read(out.path().join(&name)).unwrap(),
            std::fs::read(src.join(&name)).unwrap()
        );
    }
    if gnu_tar_available() && Command::new("zstd").arg("--version").output().is_ok() {
        let (listing, ok, err) = gnu_tar(&["--zstd", "-tf", "-"], None, &archive);
        assert!(ok, "GNU tar: {err}");
        assert_eq!(String::from_utf8_lossy(&listing).lines().count(), 3);
    }
    scene.check();
}
