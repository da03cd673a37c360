//! What happens to what already exists (`Options::overwrite`: replace, keep,
//! refuse, as GNU tar's default, `--skip-old-files` and `--keep-old-files`),
//! and creating a missing destination (`Options::create_destination`). As
//! root and as `nobody`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::raw::{Header, Tar};
use common::{run, Scene};
use sandtar::{Error, Options, Outcome, Overwrite, Sandbox, SkipReason};

root_and_nobody!(replace, keep, refuse, create_destination);

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// The destination before the job (its own mode 0711): `old.txt` (read-only), `was-file` (a file
/// where the archive has a directory), `full/` (a non-empty directory where
/// the archive has a file), `dir/` (mode 0700, an old time, with `mine.txt`).
fn prepare(dest: &Path) {
    // The destination's own mode, unlike the archive's `./` (0755).
    std::fs::set_permissions(dest, PermissionsExt::from_mode(0o711)).unwrap();
    let write = |name: &str, body: &str, mode: u32| {
        std::fs::write(dest.join(name), body).unwrap();
        std::fs::set_permissions(dest.join(name), PermissionsExt::from_mode(mode)).unwrap();
    };
    write("old.txt", "old\n", 0o444);
    write("was-file", "a file\n", 0o644);
    std::fs::create_dir(dest.join("full")).unwrap();
    write("full/inside", "keep me\n", 0o644);
    std::fs::create_dir(dest.join("dir")).unwrap();
    write("dir/mine.txt", "mine\n", 0o644);
    std::fs::set_permissions(dest.join("dir"), PermissionsExt::from_mode(0o700)).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
    std::fs::File::open(dest.join("dir"))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn archive() -> Vec<u8> {
    Tar::new()
        .dir("./", 0o755)
        .file("old.txt", b"new\n")
        .dir("was-file/", 0o755)
        .file("full", b"a file over a directory\n")
        .header(&Header::new("dir/", b'5', 0).mode(0o755).mtime(5000))
        .file("dir/new.txt", b"new in dir\n")
        .file("fresh.txt", b"fresh\n")
        // Listed after its contents: made by this job (as an implied parent),
        // so its entry is not "what exists", whatever the policy.
        .file("later/inner.txt", b"inner\n")
        .header(&Header::new("later/", b'5', 0).mode(0o750).mtime(7000))
        .finish()
}

/// `later/` took the archive's entry: made by this job, not kept.
fn later_is_the_archives(dest: &Path, run: &common::Run) {
    assert_eq!(run.outcome("later/"), &Outcome::Written);
    let later = std::fs::metadata(dest.join("later")).unwrap();
    assert_eq!((later.mode() & 0o7777, later.mtime()), (0o750, 7000));
}

fn read(dest: &Path, name: &str) -> String {
    std::fs::read_to_string(dest.join(name)).unwrap()
}

/// A prepared destination, and the archive extracted into it with `overwrite`.
async fn prepared_run(sandbox: &Sandbox, overwrite: Overwrite) -> (Scene, common::Run) {
    let scene = Scene::new();
    prepare(&scene.dest);
    let mut options = Options::default();
    options.overwrite = overwrite;
    let run = run(sandbox, &archive(), &scene.dest, &options).await;
    (scene, run)
}

/// The default: files and a file in the way of a directory are replaced; a
/// non-empty directory in the way of a file is not (the entry fails); an
/// existing directory takes the archive's metadata.
async fn replace(sandbox: Sandbox) {
    let (scene, run) = prepared_run(&sandbox, Overwrite::Replace).await;
    run.summary();
    assert_eq!(read(&scene.dest, "old.txt"), "new\n");
    assert_eq!(mode_of(&scene.dest), 0o755, "the `./` entry's mode");
    assert!(scene.dest.join("was-file").is_dir());
    assert!(matches!(run.outcome("full"), Outcome::Failed(m) if m.contains("non-empty directory")));
    assert_eq!(read(&scene.dest, "full/inside"), "keep me\n");
    let dir = std::fs::metadata(scene.dest.join("dir")).unwrap();
    assert_eq!((dir.mode() & 0o7777, dir.mtime()), (0o755, 5000));
    assert_eq!(read(&scene.dest, "dir/mine.txt"), "mine\n");
    assert_eq!(read(&scene.dest, "dir/new.txt"), "new in dir\n");
    scene.check();
}

/// `Keep`: nothing that exists changes, not even a directory's metadata;
/// what is new is written, also into existing directories.
async fn keep(sandbox: Sandbox) {
    let (scene, run) = prepared_run(&sandbox, Overwrite::Keep).await;
    let kept = Outcome::Skipped(SkipReason::Exists);
    for name in ["./", "old.txt", "was-file/", "full", "dir/"] {
        assert_eq!(run.outcome(name), &kept, "{name}");
    }
    assert_eq!(read(&scene.dest, "old.txt"), "old\n");
    assert_eq!(read(&scene.dest, "was-file"), "a file\n");
    assert_eq!(read(&scene.dest, "full/inside"), "keep me\n");
    // Its mode stays; its time is not the archive's (writing `new.txt` into
    // it moved it to now, as it would for GNU tar).
    let dir = std::fs::metadata(scene.dest.join("dir")).unwrap();
    assert_eq!(dir.mode() & 0o7777, 0o700);
    assert_ne!(dir.mtime(), 5000);
    assert_eq!(read(&scene.dest, "dir/new.txt"), "new in dir\n");
    assert_eq!(read(&scene.dest, "fresh.txt"), "fresh\n");
    // The `./` entry (0755) was kept out too.
    assert_eq!(mode_of(&scene.dest), 0o711);
    later_is_the_archives(&scene.dest, &run);
    let summary = run.summary();
    assert_eq!((summary.written, summary.skipped), (4, 5));
    scene.check();
}

/// `Refuse`: an entry whose name exists fails and the job goes on; existing
/// directories are kept as with `Keep`.
async fn refuse(sandbox: Sandbox) {
    let (scene, run) = prepared_run(&sandbox, Overwrite::Refuse).await;
    for name in ["old.txt", "was-file/", "full"] {
        assert!(
            matches!(run.outcome(name), Outcome::Failed(m) if m.contains("exists in the destination")),
            "{name}: {:?}",
            run.outcome(name)
        );
    }
    assert_eq!(run.outcome("dir/"), &Outcome::Skipped(SkipReason::Exists));
    assert_eq!(read(&scene.dest, "old.txt"), "old\n");
    assert_eq!(read(&scene.dest, "was-file"), "a file\n");
    assert_eq!(read(&scene.dest, "dir/new.txt"), "new in dir\n");
    assert_eq!(read(&scene.dest, "fresh.txt"), "fresh\n");
    later_is_the_archives(&scene.dest, &run);
    assert!(!run.summary().is_complete());
    scene.check();
}

/// A missing destination (and its parents) is made when asked; otherwise it
/// is an error before the job.
async fn create_destination(sandbox: Sandbox) {
    let scene = Scene::new();
    let missing = scene.dest.join("a/b/c");
    let archive = Tar::new().file("f.txt", b"f\n").finish();
    let refused = sandbox
        .extract(&archive[..], &missing, &Options::default())
        .await;
    assert!(
        matches!(&refused, Err(Error::Destination { problem, .. }) if problem == "does not exist"),
        "{refused:?}"
    );
    let mut options = Options::default();
    options.create_destination = true;
    let run = run(&sandbox, &archive, &missing, &options).await;
    assert!(run.summary().is_complete());
    assert_eq!(read(&missing, "f.txt"), "f\n");
    scene.check();
}

/// A layer replaces what it names: no other policy is taken.
#[tokio::test]
async fn a_layer_takes_no_other_policy() {
    let sandbox = common::new_sandbox().await;
    let scene = Scene::new();
    let mut options = Options::layer();
    options.overwrite = Overwrite::Keep;
    let archive = Tar::new().file("f", b"f").finish();
    let result = sandbox.extract(&archive[..], &scene.dest, &options).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidOption {
                option: "overwrite",
                ..
            })
        ),
        "{result:?}"
    );
    scene.check();
}
