//! Hostile archives: path traversal with `..`, absolute names, symlinks and hard
//! links aimed outside, header desynchronisation (CVE-2025-62518), NUL bytes and
//! empty names. Every scenario runs as root and as `nobody`, and checks that the
//! canary tree beside the destination, the temporary directory, `/` and `/tmp`
//! are exactly as they were.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::raw::{Header, Tar};
use common::{assert_absent, assert_dir, assert_file, assert_symlink, run, Scene};
use sandtar::{EntryKind, Error, Options, Outcome, RejectReason, Sandbox};

root_and_nobody!(
    parent_components,
    absolute_names,
    symlink_to_root_then_write,
    symlink_outside_then_write,
    symlink_loops,
    hard_link_targets,
    hard_link_to_host_file,
    pax_size_desync,
    pax_size_zero_desync,
    preexisting_symlinks_to_outside,
    symlink_metadata_stays_on_the_link,
    device_nodes_are_replaced_not_opened,
    pax_path_wins_over_ustar_name,
    nul_in_names,
    empty_names,
    traversal_in_long_names,
    directory_fixups_do_not_follow_symlinks,
);

const REJ_PARENT: Outcome = Outcome::Rejected(RejectReason::ParentComponent);
const BAD_LINK: Outcome = Outcome::Rejected(RejectReason::BadLinkTarget);

/// Every path in the destination, relative, sorted (the root excluded).
fn listing(dest: &Path) -> Vec<String> {
    common::snapshot(dest)
        .keys()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// `..` components anywhere in a name: the entry is rejected, the rest goes on.
async fn parent_components(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let archive = Tar::new()
        .file("before.txt", b"before")
        .file(format!("../{t}"), b"escaped")
        .file(format!("a/../../{t}"), b"escaped")
        .file(format!("../../../../../../../../tmp/{t}"), b"escaped")
        .file(format!("./../{t}"), b"escaped")
        .file(format!("/../{t}"), b"escaped")
        .file("b/..", b"escaped")
        .dir(format!("../{t}-dir/"), 0o755)
        .dir("..", 0o777)
        .symlink(format!("../{t}-link"), "target")
        .hardlink(format!("../{t}-hard"), "before.txt")
        .fifo(format!("c/../../{t}-fifo"), 0o644)
        .file("after.txt", b"after")
        .finish();
    let dest_mode = common::mode_of(&scene.dest);
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    let summary = run.summary();
    assert_eq!(
        (summary.written, summary.rejected),
        (2, 11),
        "{:#?}",
        run.reports
    );
    let outcomes = run.outcomes();
    assert_eq!(
        outcomes.first().unwrap(),
        &("before.txt".into(), Outcome::Written)
    );
    assert_eq!(
        outcomes.last().unwrap(),
        &("after.txt".into(), Outcome::Written)
    );
    for (path, outcome) in &outcomes[1..outcomes.len() - 1] {
        assert_eq!(outcome, &REJ_PARENT, "{path}");
    }
    // The names are reported as the archive has them.
    assert_eq!(run.reports[1].path, PathBuf::from(format!("../{t}")));
    assert_eq!(run.reports[8].kind, EntryKind::Directory);
    assert_eq!(listing(&scene.dest), ["after.txt", "before.txt"]);
    assert_file(scene.dest.join("before.txt"), b"before", 0o644);
    assert_file(scene.dest.join("after.txt"), b"after", 0o644);
    // The destination kept its own mode: the ".." directory entry did not reach it.
    assert_dir(&scene.dest, dest_mode);
    scene.check();
}

/// Absolute names are written below the destination, like GNU tar does.
async fn absolute_names(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let archive = Tar::new()
        .file(format!("/etc/{t}"), b"etc inside")
        .file(format!("//tmp///{t}"), b"tmp inside")
        .file(format!("/{t}"), b"root inside")
        .dir("/abs-dir/", 0o755)
        .symlink("/abs-dir/passwd", "/etc/passwd")
        .hardlink("/abs-dir/hard", format!("/etc/{t}"))
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_eq!(run.reports[0].path, PathBuf::from(format!("/etc/{t}")));
    let d = &scene.dest;
    assert_file(d.join(format!("etc/{t}")), b"etc inside", 0o644);
    assert_file(d.join(format!("tmp/{t}")), b"tmp inside", 0o644);
    assert_file(d.join(t), b"root inside", 0o644);
    // Symlink targets are stored as they are; they resolve inside when the
    // worker uses them, and are the caller's business afterwards.
    assert_symlink(d.join("abs-dir/passwd"), "/etc/passwd");
    let a = std::fs::metadata(d.join(format!("etc/{t}"))).unwrap();
    let b = std::fs::metadata(d.join("abs-dir/hard")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_absent(format!("/etc/{t}"));
    scene.check();
}

/// A symlink to `/`, `..`, `../..` (or further up) and then a file through it:
/// the file lands at the top of the destination, never outside.
async fn symlink_to_root_then_write(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let targets = ["/", "..", "../..", "../../../../../../../..", ".", "/.."];
    let mut tar = Tar::new();
    for (i, target) in targets.iter().enumerate() {
        tar.symlink(format!("l{i}"), target).file(
            format!("l{i}/{t}-{i}"),
            format!("through {target}").as_bytes(),
        );
    }
    // Nested: a symlink in a subdirectory that climbs far above the root, then
    // a directory and a file below it.
    tar.dir("sub/", 0o755)
        .symlink("sub/up", "../../../../../..")
        .dir(format!("sub/up/{t}-dir/"), 0o755)
        .file(format!("sub/up/{t}-dir/f"), b"nested")
        .symlink("etc-link", "/etc")
        .file(format!("etc-link/{t}"), b"etc through symlink");
    let archive = tar.finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    let d = &scene.dest;
    for (i, target) in targets.iter().enumerate() {
        assert_eq!(run.outcome(format!("l{i}")), &Outcome::Written);
        assert_eq!(
            run.outcome(format!("l{i}/{t}-{i}")),
            &Outcome::Written,
            "through {target}"
        );
        assert_symlink(d.join(format!("l{i}")), target);
        assert_file(
            d.join(format!("{t}-{i}")),
            format!("through {target}").as_bytes(),
            0o644,
        );
    }
    assert_file(d.join(format!("{t}-dir/f")), b"nested", 0o644);
    assert_symlink(d.join("sub/up"), "../../../../../..");
    // `/etc` resolves to the destination's etc, which did not exist: the
    // worker fails that entry (a dangling symlink is not a directory).
    match run.outcome(format!("etc-link/{t}")) {
        Outcome::Written => assert_file(d.join(format!("etc/{t}")), b"etc through symlink", 0o644),
        Outcome::Failed(_) => assert_absent(d.join("etc")),
        other => panic!("etc-link/{t}: {other:?}"),
    }
    assert_absent(format!("/etc/{t}"));
    scene.check();
}

/// A symlink pointing at the canary (relative and absolute), then entries
/// through it: whatever happens stays in the destination.
async fn symlink_outside_then_write(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let canary_abs = scene.canary.to_str().unwrap().to_string();
    let archive = Tar::new()
        .symlink("rel", "../canary")
        .file("rel/file.txt", b"pwned")
        .file(format!("rel/{t}"), b"pwned")
        .symlink("abs", &canary_abs)
        .file("abs/file.txt", b"pwned")
        .dir("abs/sub/", 0o777)
        .symlink("abs-file", format!("{canary_abs}/file.txt"))
        .hardlink("hard-through", "abs/file.txt")
        // Now a "canary" directory inside: the relative symlink resolves to it.
        .dir("canary/", 0o755)
        .file("rel/inside.txt", b"inside")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    run.summary();
    let d = &scene.dest;
    // Inside the worker's root neither target exists: entries below the
    // symlinks cannot be created.
    for name in [
        "rel/file.txt",
        &format!("rel/{t}"),
        "abs/file.txt",
        "abs/sub/",
    ] {
        assert!(
            matches!(run.outcome(name), Outcome::Failed(_)),
            "{name}: {:?}",
            run.outcome(name)
        );
    }
    assert!(matches!(run.outcome("hard-through"), Outcome::Failed(_)));
    assert_eq!(run.outcome("canary/"), &Outcome::Written);
    assert_eq!(run.outcome("rel/inside.txt"), &Outcome::Written);
    assert_file(d.join("canary/inside.txt"), b"inside", 0o644);
    assert_symlink(d.join("rel"), "../canary");
    assert_symlink(d.join("abs"), &canary_abs);
    assert_symlink(d.join("abs-file"), format!("{canary_abs}/file.txt"));
    assert_eq!(
        listing(d),
        ["abs", "abs-file", "canary", "canary/inside.txt", "rel"]
    );
    scene.check();
}

/// Symlink loops make entries fail, not hang.
async fn symlink_loops(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .symlink("self", "self")
        .file("loop1/x", b"x")
        .file("self/y", b"y")
        .dir("loop2/d/", 0o755)
        .file("ok.txt", b"ok")
        .finish();
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        run(&sandbox, &archive, &scene.dest, &Options::default()),
    )
    .await
    .expect("a symlink loop must not hang the job");
    run.summary();
    for name in ["loop1/x", "self/y", "loop2/d/"] {
        assert!(
            matches!(run.outcome(name), Outcome::Failed(_)),
            "{name}: {:?}",
            run.outcome(name)
        );
    }
    assert_eq!(run.outcome("ok.txt"), &Outcome::Written);
    assert_eq!(listing(&scene.dest), ["loop1", "loop2", "ok.txt", "self"]);
    scene.check();
}

/// Hard link targets with `..`, empty or with NUL are rejected; absolute ones
/// resolve inside the destination.
async fn hard_link_targets(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let canary_file = scene.canary.join("file.txt");
    let archive = Tar::new()
        .file("etc/passwd", b"root:x:0:0::/:/bin/false\n")
        .hardlink("h-parent", "../canary/file.txt")
        .hardlink("h-deep", "etc/../../canary/file.txt")
        .hardlink("h-dotdot", "..")
        .hardlink("h-empty", "")
        .pax(&[(b"linkpath", b"etc/passwd\0")])
        .hardlink("h-nul", "etc/passwd")
        .hardlink("h-abs", "/etc/passwd")
        .hardlink("h-canary-abs", canary_file.to_str().unwrap())
        .hardlink("h-missing", format!("no/such/{t}"))
        .hardlink("h-self", "h-self")
        .symlink("s", "/etc")
        .hardlink("h-through-symlink", "s/passwd")
        .symlink("s-out", "../canary/file.txt")
        .hardlink("h-to-symlink", "s-out")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    run.summary();
    for name in ["h-parent", "h-deep", "h-dotdot", "h-empty", "h-nul"] {
        assert_eq!(run.outcome(name), &BAD_LINK, "{name}");
    }
    let d = &scene.dest;
    let inside = std::fs::metadata(d.join("etc/passwd")).unwrap();
    assert_eq!(run.outcome("h-abs"), &Outcome::Written);
    assert_eq!(
        std::fs::metadata(d.join("h-abs")).unwrap().ino(),
        inside.ino()
    );
    assert_eq!(run.outcome("h-through-symlink"), &Outcome::Written);
    assert_eq!(
        std::fs::metadata(d.join("h-through-symlink"))
            .unwrap()
            .ino(),
        inside.ino()
    );
    assert_eq!(std::fs::metadata(d.join("etc/passwd")).unwrap().nlink(), 3);
    for name in ["h-canary-abs", "h-missing", "h-self"] {
        assert!(
            matches!(run.outcome(name), Outcome::Failed(_)),
            "{name}: {:?}",
            run.outcome(name)
        );
        assert_absent(d.join(name));
    }
    // A hard link to a symlink links the symlink itself.
    assert_eq!(run.outcome("h-to-symlink"), &Outcome::Written);
    assert_symlink(d.join("h-to-symlink"), "../canary/file.txt");
    assert_no_inode_of(d, Path::new("/etc/passwd"));
    assert_no_inode_of(d, &canary_file);
    scene.check();
}

/// A hard link to the host's `/etc/passwd` when the destination has none: it
/// fails (or links something inside), and the host file is untouched.
async fn hard_link_to_host_file(sandbox: Sandbox) {
    let scene = Scene::new();
    let passwd = std::fs::metadata("/etc/passwd").unwrap();
    let archive = Tar::new()
        .hardlink("passwd", "/etc/passwd")
        .hardlink("shadow", "etc/shadow")
        .hardlink("deep/passwd", "/etc/passwd")
        .file("after.txt", b"after")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    run.summary();
    for name in ["passwd", "shadow", "deep/passwd"] {
        assert!(
            matches!(run.outcome(name), Outcome::Failed(_)),
            "{name}: {:?}",
            run.outcome(name)
        );
        assert_absent(scene.dest.join(name));
    }
    assert_eq!(run.outcome("after.txt"), &Outcome::Written);
    let after = std::fs::metadata("/etc/passwd").unwrap();
    assert_eq!(after.nlink(), passwd.nlink(), "link count of /etc/passwd");
    assert_eq!(after.ino(), passwd.ino());
    assert_eq!(
        (after.mtime(), after.mode()),
        (passwd.mtime(), passwd.mode())
    );
    assert_no_inode_of(&scene.dest, Path::new("/etc/passwd"));
    scene.check();
}

/// Asserts that nothing in `dir` is the same inode as `file`.
fn assert_no_inode_of(dir: &Path, file: &Path) {
    let target = std::fs::metadata(file).unwrap();
    for rel in common::snapshot(dir).keys() {
        let meta = std::fs::symlink_metadata(dir.join(rel)).unwrap();
        assert!(
            (meta.dev(), meta.ino()) != (target.dev(), target.ino()),
            "{} is a hard link to {}",
            dir.join(rel).display(),
            file.display()
        );
    }
}

/// CVE-2025-62518 ("TARmageddon"): a PAX header says `size=N`, the ustar
/// header that follows says 0, and the N bytes of data hold a complete tar
/// header of their own. A parser that takes the ustar size reads the smuggled
/// header as the next entry; the right reading (PAX wins, as in GNU tar and the
/// `tar` crate) makes the smuggled bytes the outer file's contents.
async fn pax_size_desync(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let smuggled = Tar::new()
        .file("smuggled.txt", b"smuggled contents\n")
        .symlink(format!("smuggled-link-{t}"), "/")
        .bytes();
    assert_eq!(smuggled.len(), 3 * 512);
    let size = smuggled.len().to_string();
    let archive = Tar::new()
        .pax(&[(b"size", size.as_bytes())])
        .header(&Header::new("outer.txt", b'0', 0))
        .raw(&smuggled)
        .file("after.txt", b"after")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_eq!(
        run.outcomes(),
        vec![
            ("outer.txt".into(), Outcome::Written),
            ("after.txt".into(), Outcome::Written)
        ]
    );
    assert_eq!(run.report("outer.txt").size, smuggled.len() as u64);
    assert_eq!(run.summary().bytes_written, smuggled.len() as u64 + 5);
    assert_file(scene.dest.join("outer.txt"), &smuggled, 0o644);
    assert_file(scene.dest.join("after.txt"), b"after", 0o644);
    assert_eq!(listing(&scene.dest), ["after.txt", "outer.txt"]);
    scene.check();
}

/// The reverse desynchronisation: PAX says `size=0`, the ustar header says
/// 1024 and its "data" is a tar header. PAX wins here too, as in GNU tar (which
/// lists `outer.txt` empty, then `smuggled.txt`): what is reported is exactly
/// what is written.
async fn pax_size_zero_desync(sandbox: Sandbox) {
    let scene = Scene::new();
    let smuggled = Tar::new().file("smuggled.txt", b"smug!").bytes();
    let archive = Tar::new()
        .pax(&[(b"size", b"0")])
        .header(&Header::new("outer.txt", b'0', smuggled.len() as u64))
        .raw(&smuggled)
        .file("after.txt", b"a")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_eq!(
        run.outcomes(),
        vec![
            ("outer.txt".into(), Outcome::Written),
            ("smuggled.txt".into(), Outcome::Written),
            ("after.txt".into(), Outcome::Written)
        ]
    );
    assert_eq!(run.report("outer.txt").size, 0);
    assert_file(scene.dest.join("outer.txt"), b"", 0o644);
    assert_file(scene.dest.join("smuggled.txt"), b"smug!", 0o644);
    assert_eq!(
        listing(&scene.dest),
        ["after.txt", "outer.txt", "smuggled.txt"]
    );
    scene.check();
}

/// Symlinks the caller left in the destination, pointing outside, are never
/// followed out: the worker's root holds nothing else.
async fn preexisting_symlinks_to_outside(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let d = scene.dest.clone();
    std::os::unix::fs::symlink(&scene.canary, d.join("abs")).unwrap();
    std::os::unix::fs::symlink("../canary", d.join("rel")).unwrap();
    std::os::unix::fs::symlink(scene.canary.join("file.txt"), d.join("abs-file")).unwrap();
    std::os::unix::fs::symlink("/", d.join("root")).unwrap();
    scene.snapshot_now();
    let t = scene.tag.clone();
    let archive = Tar::new()
        .file("abs/file.txt", b"pwned")
        .file(format!("abs/{t}"), b"pwned")
        .file("rel/sub/deep.txt", b"pwned")
        .dir("rel/sub/", 0o777)
        .hardlink("stolen", "abs/secret")
        .hardlink("stolen2", "abs-file")
        .file(format!("root/{t}"), b"at the top of the destination")
        .finish();
    let run = run(&sandbox, &archive, &d, &Options::default()).await;
    run.summary();
    for name in [
        "abs/file.txt".to_string(),
        format!("abs/{t}"),
        "rel/sub/deep.txt".into(),
        "rel/sub/".into(),
        "stolen".into(),
    ] {
        assert!(
            matches!(run.outcome(&name), Outcome::Failed(_)),
            "{name}: {:?}",
            run.outcome(&name)
        );
    }
    // A hard link to the symlink itself (not to what it points at).
    assert_eq!(run.outcome("stolen2"), &Outcome::Written);
    assert_symlink(d.join("stolen2"), scene.canary.join("file.txt"));
    assert_eq!(run.outcome(format!("root/{t}")), &Outcome::Written);
    assert_file(d.join(&t), b"at the top of the destination", 0o644);
    assert_no_inode_of(&d, &scene.canary.join("secret"));
    assert_no_inode_of(&d, &scene.canary.join("file.txt"));
    scene.check();
}

/// Times and owners given to a symlink entry stay on the link.
async fn symlink_metadata_stays_on_the_link(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .entry(Header::new("t", b'0', 0).mode(0o600).mtime(1000), b"target")
        .header(
            &Header::new("s", b'2', 0)
                .link("t")
                .mtime(5)
                .owner(1234, 5678),
        )
        .header(&Header::new("d/", b'5', 0).mode(0o700).mtime(2000))
        .header(
            &Header::new("ds", b'2', 0)
                .link("d")
                .mtime(6)
                .owner(1234, 5678),
        )
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::full_fidelity()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    let t = std::fs::symlink_metadata(d.join("t")).unwrap();
    let s = std::fs::symlink_metadata(d.join("s")).unwrap();
    assert_eq!((t.mtime(), t.mode() & 0o7777), (1000, 0o600));
    // The Landlock rung changes times and owners through descriptors open for
    // I/O only, which a symlink has not: it keeps its own, never the target's.
    let landlock = sandbox.mode().rung() == sandtar::Rung::Landlock;
    match landlock {
        true => assert!(s.mtime() > 1_700_000_000),
        false => assert_eq!(s.mtime(), 5),
    }
    let dir = std::fs::symlink_metadata(d.join("d")).unwrap();
    assert_eq!((dir.mtime(), dir.mode() & 0o7777), (2000, 0o700));
    let me = (common::euid(), common::egid());
    assert_eq!((t.uid(), t.gid()), me);
    assert_eq!((dir.uid(), dir.gid()), me);
    match (common::privileged(&sandbox), landlock) {
        (true, _) => assert_eq!((s.uid(), s.gid()), (1234, 5678)),
        // The worker's own: root's with chroot, the user's without.
        (false, true) => assert_eq!((s.uid(), s.gid()), me),
        (false, false) => {}
    }
    scene.check();
}

/// A file (or hard link) entry over an existing device node or FIFO replaces
/// it; the node is never opened for writing.
async fn device_nodes_are_replaced_not_opened(sandbox: Sandbox) {
    let scene = Scene::new();
    // The device that holds the temporary directory: writing into it would
    // write onto the disk.
    let dev = std::fs::metadata(scene.parent()).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let archive = Tar::new()
        .device("disk", b'4', major, minor)
        .file("disk", b"a plain file now")
        .fifo("pipe", 0o644)
        .file("pipe", b"not into the pipe")
        .device("disk2", b'4', major, minor)
        .hardlink("disk2-link", "disk2")
        .file("disk2-link", b"x")
        .finish();
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        run(&sandbox, &archive, &scene.dest, &Options::full_fidelity()),
    )
    .await
    .expect("writing into a FIFO would block");
    run.summary();
    let d = &scene.dest;
    assert_file(d.join("disk"), b"a plain file now", 0o644);
    assert_file(d.join("pipe"), b"not into the pipe", 0o644);
    assert_file(d.join("disk2-link"), b"x", 0o644);
    if common::privileged(&sandbox) {
        use std::os::unix::fs::FileTypeExt;
        let node = std::fs::symlink_metadata(d.join("disk2")).unwrap();
        assert!(node.file_type().is_block_device());
        assert_eq!(node.rdev(), libc::makedev(major, minor));
    } else {
        assert_absent(d.join("disk2"));
    }
    scene.check();
}

/// A filesystem mounted below the destination: the worker's root is a
/// non-recursive clone of the destination's mount, where what the mount hides
/// (here `mnt/secret`, under the mount point) would be in reach of the archive
/// (a hard link to it, made visible as `exposed`). The destination is refused
/// before any worker sees it, and nothing changes on either side of the mount.
/// Root only (it mounts); the check is the caller's and the same in every mode.
#[tokio::test]
async fn mounts_below_the_destination_are_refused() {
    if !common::needs_root("mount") {
        return;
    }
    let sandbox = common::sandbox().await;
    let mut scene = Scene::unsnapshotted();
    let mnt = scene.dest.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::write(mnt.join("secret"), b"hidden under the mount").unwrap();
    let Some(mount) = BindMount::new(&scene.canary, &mnt) else {
        return;
    };
    scene.snapshot_now();
    let archive = Tar::new()
        .hardlink("exposed", "mnt/secret")
        .file("mnt/file.txt", b"pwned")
        .finish();
    let result = sandbox
        .extract(&archive[..], &scene.dest, &Options::default())
        .await;
    match result {
        Err(Error::Destination { problem, .. }) => {
            assert!(problem.contains("mounted below it"), "{problem}")
        }
        other => panic!("expected the destination refused, got {other:?}"),
    }
    scene.check();
    drop(mount);
    assert_absent(scene.dest.join("exposed"));
    assert_absent(mnt.join("file.txt"));
    assert_eq!(
        std::fs::read(mnt.join("secret")).unwrap(),
        b"hidden under the mount"
    );
    scene.check();
}

/// A bind mount, unmounted on drop.
struct BindMount(std::ffi::CString);

impl BindMount {
    fn new(from: &Path, to: &Path) -> Option<BindMount> {
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let (src, dst) = (c(from), c(to));
        // SAFETY: `src` and `dst` are NUL-terminated paths that outlive the
        // call; a bind mount takes no filesystem type and no data (null).
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if r != 0 {
            println!(
                "NOTE: skipping: cannot bind-mount here: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(BindMount(dst))
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a NUL-terminated path that outlives the call.
        unsafe {
            libc::umount2(self.0.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// With a PAX `path`, the ustar name is ignored entirely (even a hostile one),
/// and the PAX name is what the policy sees.
async fn pax_path_wins_over_ustar_name(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let archive = Tar::new()
        .pax(&[(b"path", b"safe.txt")])
        .file(format!("../{t}"), b"safe")
        .pax(&[(b"path", b"dir/safe-link"), (b"linkpath", b"../../x")])
        .symlink(format!("../{t}-link"), "ignored")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    assert_eq!(
        run.outcomes(),
        vec![
            ("safe.txt".into(), Outcome::Written),
            ("dir/safe-link".into(), Outcome::Written)
        ]
    );
    assert_file(scene.dest.join("safe.txt"), b"safe", 0o644);
    assert_symlink(scene.dest.join("dir/safe-link"), "../../x");
    scene.check();
}

/// NUL bytes smuggled into names through PAX records.
async fn nul_in_names(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let nul_name = format!("a\0/../../{t}");
    let archive = Tar::new()
        .pax(&[(b"path", b"evil\0.txt")])
        .file("cover.txt", b"x")
        .pax(&[(b"path", nul_name.as_bytes())])
        .file("cover2.txt", b"x")
        .pax(&[(b"path", b"\0")])
        .dir("cover-dir/", 0o755)
        .pax(&[(b"linkpath", b"target\0/../..")])
        .symlink("nul-symlink", "x")
        .file("ok.txt", b"ok")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    run.summary();
    assert_eq!(run.reports.len(), 5, "{:#?}", run.reports);
    let nul = Outcome::Rejected(RejectReason::NulInName);
    assert_eq!(run.reports[0].path.as_os_str().as_bytes(), b"evil\0.txt");
    assert_eq!(run.reports[0].outcome, nul);
    assert_eq!(
        run.reports[1].path.as_os_str().as_bytes(),
        nul_name.as_bytes()
    );
    assert_eq!(run.reports[1].outcome, nul);
    assert_eq!(run.reports[2].outcome, nul);
    assert_eq!(run.outcome("nul-symlink"), &BAD_LINK);
    assert_eq!(run.outcome("ok.txt"), &Outcome::Written);
    assert_eq!(listing(&scene.dest), ["ok.txt"]);
    scene.check();
}

/// Names that are empty, or only slashes and dots, for anything but a directory.
async fn empty_names(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .file("", b"empty name")
        // Files named with a trailing `/` are directories to GNU tar: no
        // data (with data, the archive is refused: tests/breakouts.rs).
        .file("/", b"")
        .file("./", b"")
        .file("//././/", b"")
        .symlink("", "/")
        .hardlink(".", "ok.txt")
        .fifo("/.", 0o644)
        .pax(&[(b"path", b"")])
        .file("cover.txt", b"pax empty path")
        .file("ok.txt", b"ok")
        .finish();
    let dest_mode = common::mode_of(&scene.dest);
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    run.summary();
    let outcomes = run.outcomes();
    // The empty PAX path replaces the ustar name "cover.txt": rejected too.
    assert_eq!(outcomes.len(), 9, "{outcomes:#?}");
    let empty = Outcome::Rejected(RejectReason::EmptyName);
    for (path, outcome) in &outcomes[..8] {
        assert_eq!(outcome, &empty, "{path:?}");
    }
    assert_eq!(outcomes[7].0, "");
    assert_eq!(outcomes[8], ("ok.txt".into(), Outcome::Written));
    assert_eq!(listing(&scene.dest), ["ok.txt"]);
    assert_dir(&scene.dest, dest_mode);
    scene.check();
}

/// `..` hidden in PAX paths and GNU long names and long link names.
async fn traversal_in_long_names(sandbox: Sandbox) {
    let scene = Scene::new();
    let t = &scene.tag;
    let long_evil = format!("{}/../../{t}", "d".repeat(120));
    let archive = Tar::new()
        .pax(&[(b"path", b"../../x")])
        .file("innocent.txt", b"x")
        .pax(&[(b"path", format!("ok/../../{t}").as_bytes())])
        .file("innocent2.txt", b"x")
        .gnu_long_name(&long_evil)
        .file("innocent3.txt", b"x")
        .gnu_long_name(format!("../{}", "e".repeat(200)))
        .dir("innocent-dir/", 0o755)
        .file("target.txt", b"target")
        .gnu_long_link(format!("{}/../../../{t}", "l".repeat(150)))
        .hardlink("hard", "target.txt")
        .pax(&[(b"linkpath", b"../../../etc/passwd")])
        .hardlink("hard2", "target.txt")
        .finish();
    let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
    run.summary();
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 7, "{outcomes:#?}");
    assert_eq!(outcomes[0], ("../../x".into(), REJ_PARENT));
    assert_eq!(outcomes[1], (format!("ok/../../{t}"), REJ_PARENT));
    assert_eq!(outcomes[2], (long_evil.clone(), REJ_PARENT));
    assert_eq!(outcomes[3].1, REJ_PARENT);
    assert_eq!(outcomes[4], ("target.txt".into(), Outcome::Written));
    assert_eq!(outcomes[5], ("hard".into(), BAD_LINK));
    assert_eq!(outcomes[6], ("hard2".into(), BAD_LINK));
    assert_eq!(listing(&scene.dest), ["target.txt"]);
    scene.check();
}

/// Directory modes and times are applied at the end; a directory replaced by a
/// symlink in between must not pass its mode on to the symlink's target.
async fn directory_fixups_do_not_follow_symlinks(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .dir("target/", 0o700)
        .header(&Header::new("x/", b'5', 0).mode(0o777).mtime(1))
        .symlink("x", "target")
        .header(&Header::new("y/", b'5', 0).mode(0o777).mtime(1))
        .symlink("y", "/")
        .header(&Header::new("z/", b'5', 0).mode(0o777).mtime(1))
        .symlink("z", "../canary")
        .finish();
    let dest_mode = common::mode_of(&scene.dest);
    let run = run(&sandbox, &archive, &scene.dest, &Options::full_fidelity()).await;
    assert!(run.summary().is_complete(), "{:#?}", run.reports);
    let d = &scene.dest;
    assert_dir(d.join("target"), 0o700);
    assert_ne!(std::fs::metadata(d.join("target")).unwrap().mtime(), 1);
    assert_dir(d, dest_mode);
    assert_ne!(std::fs::metadata(d).unwrap().mtime(), 1);
    assert_symlink(d.join("x"), "target");
    assert_symlink(d.join("y"), "/");
    assert_symlink(d.join("z"), "../canary");
    scene.check();
}

/// PAX records other parsers would refuse are refused here too, rather than
/// silently skipped: an unparseable `size` (the tar crate would fall back to the
/// header's size: a parser differential) and a record with a broken length.
#[tokio::test]
async fn invalid_pax_records_are_malformed() {
    let sandbox = common::sandbox().await;
    for records in [
        &[(&b"size"[..], &b"abc"[..])][..],
        &[(&b"size"[..], &b"-1"[..])][..],
        &[(&b"size"[..], &b"99999999999999999999999"[..])][..],
    ] {
        let scene = Scene::new();
        let archive = Tar::new()
            .file("before", b"ok")
            .pax(records)
            .file("victim", b"data")
            .file("after", b"never")
            .finish();
        let run = run(&sandbox, &archive, &scene.dest, &Options::default()).await;
        assert!(
            matches!(run.result, Err(sandtar::Error::MalformedArchive { .. })),
            "{records:?}: {:?}",
            run.result
        );
        assert_eq!(
            run.reports.len(),
            1,
            "only the entry before: {:#?}",
            run.reports
        );
        common::assert_file(scene.dest.join("before"), b"ok", 0o644);
        common::assert_absent(scene.dest.join("victim"));
        common::assert_absent(scene.dest.join("after"));
        scene.check();
    }
}
