//! Image layers: a base and three layers with whiteouts and opaque directories
//! (in the spirit of Docker's `TestApplyLayer` scenarios), the expected tree after
//! each; hard links into lower layers; symlinks replaced, not followed; a
//! whiteout aimed outside through a lower symlink; digests; id maps; the overlay
//! format. Root and `nobody`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::raw::Tar;
use common::{run, Scene};
use sandtar::{
    EntryKind, Error, Options, Outcome, RejectReason, Sandbox, SkipReason, WhiteoutFormat,
};
use sha2::{Digest, Sha256};

root_and_nobody!(
    whiteout_scenario,
    lower_symlinks,
    malformed_and_ignored,
    overlay_format,
    overlay_metadata_from_the_archive,
    whiteout_names_are_cleaned_first,
    deep_trees_and_repeated_markers,
    long_names_cost_no_more_than_their_bytes
);

/// The tree as sorted lines: `path f:contents`, `path d`, `path l->target`,
/// `path c:maj,min`.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let t = meta.file_type();
            if t.is_dir() {
                out.insert(format!("{rel} d"));
                walk(root, &path, out);
            } else if t.is_symlink() {
                out.insert(format!(
                    "{rel} l->{}",
                    std::fs::read_link(&path).unwrap().display()
                ));
            } else if t.is_char_device() {
                let rdev = meta.rdev();
                out.insert(format!(
                    "{rel} c:{},{}",
                    libc::major(rdev),
                    libc::minor(rdev)
                ));
            } else {
                out.insert(format!(
                    "{rel} f:{}",
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap())
                ));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

async fn apply(sandbox: &Sandbox, layer: &[u8], dest: &Path) -> common::Run {
    let mut options = Options::layer();
    // The same scenario as root and as nobody: owners are not the point here.
    options.preserve_owners = false;
    let run = run(sandbox, layer, dest, &options).await;
    run.summary();
    run
}

async fn whiteout_scenario(sandbox: Sandbox) {
    let scene = Scene::new();
    let d = &scene.dest;
    let base = Tar::new()
        .dir("a/", 0o755)
        .file("a/f1", b"1")
        .file("a/f2", b"2")
        .file(".hidden", b"h")
        .dir("b/", 0o755)
        .file("b/x", b"x")
        .file("c", b"c")
        .dir("d/", 0o755)
        .dir("d/sub/", 0o755)
        .file("d/sub/old", b"old")
        .dir("d/sub/deeper/", 0o755)
        .file("d/sub/deeper/old2", b"old2")
        .dir("e/", 0o755)
        .file("e/keep", b"k")
        .finish();
    apply(&sandbox, &base, d).await;
    assert_eq!(
        tree(d),
        set(&[
            ".hidden f:h",
            "a d",
            "a/f1 f:1",
            "a/f2 f:2",
            "b d",
            "b/x f:x",
            "c f:c",
            "d d",
            "d/sub d",
            "d/sub/deeper d",
            "d/sub/deeper/old2 f:old2",
            "d/sub/old f:old",
            "e d",
            "e/keep f:k",
        ])
    );

    // Layer 1: remove a file, a hidden file and a whole directory; make b opaque
    // with its new content written *before* the marker.
    let layer1 = Tar::new()
        .file(".wh.c", b"")
        .file("a/.wh.f1", b"")
        .file(".wh..hidden", b"")
        .file("b/new", b"new")
        .file("b/.wh..wh..opq", b"")
        .file(".wh.e", b"")
        .finish();
    let run = apply(&sandbox, &layer1, d).await;
    assert_eq!(run.summary().written, 6, "{:#?}", run.reports);
    assert!(run
        .reports
        .iter()
        .filter(|r| r.path.to_string_lossy().contains(".wh."))
        .all(|r| r.kind == EntryKind::Whiteout));
    assert_eq!(
        tree(d),
        set(&[
            "a d",
            "a/f2 f:2",
            "b d",
            "b/new f:new",
            "d d",
            "d/sub d",
            "d/sub/deeper d",
            "d/sub/deeper/old2 f:old2",
            "d/sub/old f:old",
        ])
    );

    // Layer 2: a nested opaque directory (its older subtree goes, what this layer
    // writes below it stays, even in a subdirectory that existed before);
    // metadata of other tools ignored.
    let layer2 = Tar::new()
        .dir("d/", 0o700)
        .file("d/sub/.wh..wh..opq", b"")
        .file("d/sub/deeper/new2", b"new2")
        .file(".wh..wh.plnk", b"")
        .finish();
    let run = apply(&sandbox, &layer2, d).await;
    assert_eq!(
        run.outcome(".wh..wh.plnk"),
        &Outcome::Skipped(SkipReason::WhiteoutMetadata)
    );
    assert_eq!(
        tree(d),
        set(&[
            "a d",
            "a/f2 f:2",
            "b d",
            "b/new f:new",
            "d d",
            "d/sub d",
            "d/sub/deeper d",
            "d/sub/deeper/new2 f:new2"
        ])
    );
    assert_eq!(
        common::mode_of(d.join("d")),
        0o700,
        "a directory over a directory takes the new metadata"
    );

    // Layer 3: a file where a directory was (and the reverse), a hard link to a
    // file of a lower layer, a whiteout of something that never existed.
    let layer3 = Tar::new()
        .file("d", b"now a file")
        .dir("c/", 0o755)
        .file("c/inside", b"i")
        .hardlink("b/link-to-f2", "a/f2")
        .file(".wh.never-existed", b"")
        .finish();
    let run = apply(&sandbox, &layer3, d).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_eq!(
        tree(d),
        set(&[
            "a d",
            "a/f2 f:2",
            "b d",
            "b/link-to-f2 f:2",
            "b/new f:new",
            "c d",
            "c/inside f:i",
            "d f:now a file"
        ])
    );
    assert_eq!(
        std::fs::metadata(d.join("a/f2")).unwrap().ino(),
        std::fs::metadata(d.join("b/link-to-f2")).unwrap().ino()
    );
    scene.check();
}

/// A symlink to a directory in a lower layer is replaced by a directory, not
/// followed; a whiteout that names a path through a lower symlink pointing
/// outside stays inside.
async fn lower_symlinks(sandbox: Sandbox) {
    let scene = Scene::new();
    let d = &scene.dest;
    let canary = scene.canary.to_string_lossy().to_string();
    let base = Tar::new()
        .dir("real/", 0o755)
        .file("real/f", b"f")
        .symlink("dirlink", "real")
        .symlink("out", &canary)
        .symlink("up", "../..")
        .finish();
    apply(&sandbox, &base, d).await;
    let layer = Tar::new()
        .dir("dirlink/", 0o755)
        .file("dirlink/g", b"g")
        .file("out/.wh.file.txt", b"")
        .file("out/.wh..wh..opq", b"")
        .file("up/canary/.wh.secret", b"")
        .finish();
    let run = apply(&sandbox, &layer, d).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    let t = tree(d);
    assert!(
        t.contains("dirlink d") && t.contains("dirlink/g f:g"),
        "{t:?}"
    );
    assert!(
        !t.contains("dirlink/f f:f"),
        "the directory replaced the symlink: {t:?}"
    );
    assert!(
        t.contains("real/f f:f"),
        "the symlink's target was not touched: {t:?}"
    );
    // The canary beside the destination is intact.
    scene.check();
}

async fn malformed_and_ignored(sandbox: Sandbox) {
    let scene = Scene::new();
    let layer = Tar::new()
        .file(".wh.", b"")
        .file("x/.wh..", b"")
        .file(".wh...", b"")
        .file(".wh..wh..wh.something", b"")
        .file("ok", b"ok")
        .finish();
    let applied = apply(&sandbox, &layer, &scene.dest).await;
    assert_eq!(
        applied.outcome(".wh."),
        &Outcome::Rejected(RejectReason::MalformedWhiteout)
    );
    assert_eq!(
        applied.outcome(".wh..."),
        &Outcome::Rejected(RejectReason::MalformedWhiteout)
    );
    assert_eq!(
        applied.outcome("x/.wh.."),
        &Outcome::Rejected(RejectReason::MalformedWhiteout)
    );
    assert_eq!(
        applied.outcome(".wh..wh..wh.something"),
        &Outcome::Skipped(SkipReason::WhiteoutMetadata)
    );
    assert_eq!(
        tree(&scene.dest),
        set(&["ok f:ok"]),
        "whiteout files are never written"
    );
    // Outside layer mode, `.wh.` names are ordinary files.
    let plain = Scene::new();
    let plain_run = run(
        &sandbox,
        &Tar::new().file(".wh.c", b"x").finish(),
        &plain.dest,
        &Options::default(),
    )
    .await;
    assert_eq!(plain_run.outcome(".wh.c"), &Outcome::Written);
    scene.check();
}

async fn overlay_format(sandbox: Sandbox) {
    let scene = Scene::new();
    let d = &scene.dest;
    let mut options = Options::layer();
    options.preserve_owners = false;
    options.whiteouts = Some(WhiteoutFormat::Overlay);
    let base = Tar::new()
        .dir("dir/", 0o755)
        .file("dir/old", b"o")
        .file("gone", b"g")
        .finish();
    run(&sandbox, &base, d, &options).await.summary();
    let layer = Tar::new()
        .file(".wh.gone", b"")
        .file("dir/.wh..wh..opq", b"")
        .file("dir/new", b"n")
        .finish();
    let run = run(&sandbox, &layer, d, &options).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let t = tree(d);
    assert!(t.contains("gone c:0,0"), "{t:?}");
    // The overlay filesystem hides lower content itself: it stays here.
    assert!(
        t.contains("dir/old f:o") && t.contains("dir/new f:n"),
        "{t:?}"
    );
    let attr = if common::privileged(&sandbox) {
        "trusted.overlay.opaque"
    } else {
        "user.overlay.opaque"
    };
    assert_eq!(
        common::get_xattr(&d.join("dir"), attr).unwrap().as_deref(),
        Some(&b"y"[..])
    );
    scene.check();
}

/// A hostile layer, no payload needed: overlayfs and integrity metadata in
/// PAX xattr records, applied with the most permissive options (full fidelity,
/// overlay format). Only the allow-listed names reach the disk; as root the
/// worker holds no `CAP_SYS_ADMIN`, so the kernel would refuse the rest too.
async fn overlay_metadata_from_the_archive(sandbox: Sandbox) {
    let scene = Scene::new();
    let d = &scene.dest;
    let mut options = Options::layer();
    options.preserve_owners = false;
    options.whiteouts = Some(WhiteoutFormat::Overlay);
    let hostile: [(&[u8], &[u8]); 7] = [
        (b"SCHILY.xattr.trusted.overlay.redirect", b"/etc/shadow"),
        (b"SCHILY.xattr.trusted.overlay.metacopy", b""),
        (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
        (b"SCHILY.xattr.security.ima", b"\x03\x02\x04"),
        (b"SCHILY.xattr.user.overlay.redirect", b"/etc/shadow"),
        (b"SCHILY.xattr.user.overlay.opaque", b"y"),
        (b"SCHILY.xattr.user.kept", b"yes"),
    ];
    let layer = Tar::new()
        .pax(&hostile)
        .file("file", b"f")
        .pax(&hostile)
        .dir("dir/", 0o755)
        .finish();
    let run = run(&sandbox, &layer, d, &options).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    for path in [d.join("file"), d.join("dir")] {
        for (record, _) in &hostile[..6] {
            let name = std::str::from_utf8(&record[b"SCHILY.xattr.".len()..]).unwrap();
            assert_eq!(
                common::get_xattr(&path, name).unwrap(),
                None,
                "{name} on {}",
                path.display()
            );
        }
        assert_eq!(
            common::get_xattr(&path, "user.kept").unwrap().as_deref(),
            Some(&b"yes"[..]),
            "{}",
            path.display()
        );
    }
    scene.check();
}

/// `etc/.wh.passwd/.` is a whiteout of `etc/passwd` once the name is cleaned,
/// as Docker reads it, not a file named `.wh.passwd`; the same for opaque
/// markers.
async fn whiteout_names_are_cleaned_first(sandbox: Sandbox) {
    let scene = Scene::new();
    let d = &scene.dest;
    let mut options = Options::layer();
    options.preserve_owners = false;
    let base = Tar::new()
        .file("etc/passwd", b"p")
        .file("etc/group", b"g")
        .file("var/old", b"o")
        .finish();
    run(&sandbox, &base, d, &options).await.summary();
    let layer = Tar::new()
        .file("etc/.wh.passwd/.", b"")
        .file("./var//.wh..wh..opq/./", b"")
        .finish();
    let run = run(&sandbox, &layer, d, &options).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let t = tree(d);
    assert!(!t.iter().any(|l| l.contains(".wh.")), "{t:?}");
    assert!(!t.iter().any(|l| l.starts_with("etc/passwd")), "{t:?}");
    assert!(t.contains("etc/group f:g"), "{t:?}");
    assert!(!t.iter().any(|l| l.starts_with("var/old")), "{t:?}");
    scene.check();
}

/// A whiteout and an opaque marker over trees 300 levels deep (the worker
/// holds 64 descriptors at most), and 3,000 repeated markers of one directory
/// of 3,000 files (each used to list it again).
async fn deep_trees_and_repeated_markers(sandbox: Sandbox) {
    let scene = Scene::new();
    let d = &scene.dest;
    let mut options = Options::layer();
    options.preserve_owners = false;
    let deep = |top: &str| {
        let mut path = top.to_string();
        for i in 0..300 {
            path.push_str(&format!("/{}", i % 10));
        }
        std::fs::create_dir_all(d.join(&path)).unwrap();
        std::fs::write(d.join(path).join("leaf"), b"l").unwrap();
    };
    deep("gone");
    deep("opaque/old");
    let mut layer = Tar::new();
    layer.file(".wh.gone", b"").file("opaque/.wh..wh..opq", b"");
    for i in 0..3_000 {
        layer.file(format!("big/f{i}"), b"");
    }
    for _ in 0..3_000 {
        layer.file("big/.wh..wh..opq", b"");
    }
    let run = run(&sandbox, &layer.finish(), d, &options).await;
    assert!(run.summary().is_complete(), "{:#?}", run.summary());
    assert!(!d.join("gone").exists());
    assert_eq!(std::fs::read_dir(d.join("opaque")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(d.join("big")).unwrap().count(), 3_000);
    scene.check();
}

/// 2,500 entries of an unknown type (skipped), each a distinct 4 KB name of 251
/// components: a layer remembers its paths and their parents, which once kept
/// every prefix of every name (~1.2 GB, past the worker's memory limit).
async fn long_names_cost_no_more_than_their_bytes(sandbox: Sandbox) {
    let scene = Scene::new();
    let mut options = Options::layer();
    options.preserve_owners = false;
    let mut layer = Tar::new();
    for k in 0..2_500 {
        let name: Vec<String> = (0..251).map(|i| format!("{k:04}{i:011}")).collect();
        let name = name.join("/");
        assert!(name.len() > 4000 && name.len() < 4095);
        layer
            .pax(&[(b"path", name.as_bytes())])
            .entry(common::raw::Header::new("x", b'Y', 0), b"");
    }
    let run = run(&sandbox, &layer.finish(), &scene.dest, &options).await;
    let summary = run.summary();
    assert_eq!((summary.entries, summary.skipped), (2_500, 2_500));
    scene.check();
}

/// As root, the caller sets `trusted.overlay.opaque` itself: through a
/// destination symlink to an outside directory it marks nothing outside.
#[tokio::test]
async fn opaque_marks_stay_inside() {
    if !common::needs_root("set trusted.* attributes") {
        return;
    }
    let sandbox = common::sandbox().await;
    let scene = Scene::unsnapshotted();
    let outside = scene.parent().join("outside-dir");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, scene.dest.join("link")).unwrap();
    let mut options = Options::layer();
    options.whiteouts = Some(WhiteoutFormat::Overlay);
    let layer = Tar::new().file("link/.wh..wh..opq", b"").finish();
    let _ = sandbox.apply_layer(&layer[..], &scene.dest, &options).await;
    assert_eq!(
        common::get_xattr(&outside, "trusted.overlay.opaque").unwrap(),
        None
    );
    assert!(std::fs::symlink_metadata(scene.dest.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[tokio::test]
async fn digests_and_sizes() {
    let sandbox = common::sandbox().await;
    let layer = Tar::new().file("a", b"12345").file("b", b"678").finish();
    let digest = format!("sha256:{:x}", Sha256::digest(&layer));
    let dest = tempfile::tempdir().unwrap();
    let mut options = Options::layer();
    options.expected_diff_id = Some(digest.clone());
    let summary = sandbox
        .apply_layer(&layer[..], dest.path(), &options)
        .await
        .unwrap();
    assert_eq!(summary.diff_id.as_deref(), Some(digest.as_str()));
    assert_eq!(summary.layer_size, 8);
    // Compressed: the digest is of the uncompressed stream.
    let zst = zstd::stream::encode_all(&layer[..], 3).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let summary = sandbox
        .apply_layer(&zst[..], dest.path(), &options)
        .await
        .unwrap();
    assert_eq!(summary.diff_id.as_deref(), Some(digest.as_str()));
    // Wrong digest: an error after the stream, the entries applied.
    let dest = tempfile::tempdir().unwrap();
    options.expected_diff_id = Some(format!("sha256:{}", "0".repeat(64)));
    match sandbox.apply_layer(&layer[..], dest.path(), &options).await {
        Err(Error::DigestMismatch { actual, .. }) => assert_eq!(actual, digest),
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_eq!(std::fs::read(dest.path().join("a")).unwrap(), b"12345");
    // Plain extraction computes no digest unless asked.
    let dest = tempfile::tempdir().unwrap();
    let summary = sandbox
        .extract(&layer[..], dest.path(), &Options::default())
        .await
        .unwrap();
    assert_eq!(summary.diff_id, None);
}

#[tokio::test]
async fn id_mapped_layers() {
    let sandbox = common::sandbox().await;
    if !common::privileged(&sandbox) {
        println!("NOTE: needs root");
        return;
    }
    let mut options = Options::layer();
    options.id_map = common::id_map(0, 200_000, 1000);
    let layer = Tar::new()
        .entry(
            common::raw::Header::new("f", b'0', 1)
                .owner(5, 6)
                .mode(0o644),
            b"x",
        )
        .finish();
    let dest = tempfile::tempdir().unwrap();
    sandbox
        .apply_layer(&layer[..], dest.path(), &options)
        .await
        .unwrap();
    let meta = std::fs::metadata(dest.path().join("f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (200_005, 200_006));
    // Directories a layer leaves implicit belong to the container's root, mapped.
    let nested = Tar::new()
        .entry(
            common::raw::Header::new("p/q/f", b'0', 1)
                .owner(7, 8)
                .mode(0o644),
            b"x",
        )
        .finish();
    sandbox
        .apply_layer(&nested[..], dest.path(), &options)
        .await
        .unwrap();
    for (path, ids) in [
        ("p", (200_000, 200_000)),
        ("p/q", (200_000, 200_000)),
        ("p/q/f", (200_007, 200_008)),
    ] {
        let meta = std::fs::symlink_metadata(dest.path().join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), ids, "{path}");
    }
    let outside = Tar::new()
        .entry(
            common::raw::Header::new("g", b'0', 1)
                .owner(5000, 6)
                .mode(0o644),
            b"x",
        )
        .finish();
    let dest = tempfile::tempdir().unwrap();
    match sandbox
        .apply_layer(&outside[..], dest.path(), &options)
        .await
    {
        Err(Error::UnmappedId { entry, .. }) => assert_eq!(entry, Path::new("g")),
        other => panic!("expected UnmappedId, got {other:?}"),
    }
}
