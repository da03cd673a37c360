//! Shared helpers for the integration tests:
//!
//! * [`raw`]: a byte-level tar writer for hostile archives (the `tar` crate's
//!   `Builder` refuses `..` names and cannot desynchronise headers on purpose);
//! * [`Scene`]: a destination with a canary tree beside it, snapshotted before a
//!   job and checked after it, so that any write outside the destination shows;
//! * [`as_nobody`]: runs one test of this binary again as `nobody`, so that the
//!   user-namespace sandbox is exercised by a test suite that runs as root;
//! * small helpers to run a job and look at what it wrote ([`assert_file`],
//!   [`assert_limit`]...), to make archives ([`gzip`], [`noise`]) and to look at
//!   processes ([`children`], [`open_fds`], [`assert_gone`]...).
//!
//! Every test binary compiles this module (`mod common;`) and uses a part of it.
// Each binary uses only some of the helpers: the rest would warn as dead code.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sandtar::{
    EntryReport, Error, IdMap, IdRange, Options, Outcome, Sandbox, SandboxMode, Summary,
};

mod archive;
mod assert;
mod process;
pub mod raw;

// Re-exported so that tests say `common::assert_file`; like the dead-code
// allowance above, for the binaries that use none of a module's helpers.
#[allow(unused_imports)]
pub use {archive::*, assert::*, process::*};

// ---------------------------------------------------------------------------
// Running jobs
// ---------------------------------------------------------------------------

/// Everything a job said: the reports in order and its final result.
#[derive(Debug)]
pub struct Run {
    pub reports: Vec<EntryReport>,
    pub result: sandtar::Result<Summary>,
}

impl Run {
    /// The summary; panics with the reports if the job failed.
    pub fn summary(&self) -> &Summary {
        match &self.result {
            Ok(s) => s,
            Err(e) => panic!("job failed: {e} ({e:?}); reports: {:#?}", self.reports),
        }
    }

    /// The outcomes, as (path, outcome) pairs in archive order.
    pub fn outcomes(&self) -> Vec<(String, Outcome)> {
        self.reports
            .iter()
            .map(|r| (r.path.to_string_lossy().into_owned(), r.outcome.clone()))
            .collect()
    }

    /// The only report whose path is `path` (as recorded in the archive).
    pub fn report(&self, path: impl AsRef<[u8]>) -> &EntryReport {
        let path = path.as_ref();
        let found: Vec<_> = self
            .reports
            .iter()
            .filter(|r| r.path.as_os_str().as_bytes() == path)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one report for {:?}, reports: {:#?}",
            String::from_utf8_lossy(path),
            self.reports
        );
        found[0]
    }

    /// The outcome of the only report for `path`.
    pub fn outcome(&self, path: impl AsRef<[u8]>) -> &Outcome {
        &self.report(path).outcome
    }

    /// Asserts that the job ended with `MalformedArchive` at `offset` saying
    /// `message`.
    pub fn assert_malformed(&self, offset: u64, message: &str) {
        match &self.result {
            Err(Error::MalformedArchive {
                offset: o,
                message: m,
            }) => {
                assert_eq!((*o, m.as_str()), (offset, message), "MalformedArchive");
            }
            other => panic!(
                "expected MalformedArchive, got {other:?}; {:#?}",
                self.reports
            ),
        }
    }
}

/// Extracts `archive` into `dest`, collecting every report.
pub async fn run(sandbox: &Sandbox, archive: &[u8], dest: &Path, options: &Options) -> Run {
    let mut job = match sandbox.start(archive, dest, options).await {
        Ok(job) => job,
        Err(e) => {
            return Run {
                reports: Vec::new(),
                result: Err(e),
            }
        }
    };
    let mut reports = Vec::new();
    while let Some(item) = job.next().await {
        match item {
            Ok(r) => reports.push(r),
            Err(_) => break, // the same error comes from finish()
        }
    }
    let result = job.finish().await;
    if let Ok(summary) = &result {
        assert_eq!(summary.rung, sandbox.mode().rung(), "the summary's rung");
        // A directory whose metadata failed at the end has a second, Failed
        // report after the last entry: it replaces the first one in the counts.
        assert!(
            reports.len() as u64 >= summary.entries,
            "summary and report count disagree: {summary:?} {reports:#?}"
        );
        let entries = summary.entries as usize;
        let mut outcomes: Vec<Outcome> = reports[..entries]
            .iter()
            .map(|r| r.outcome.clone())
            .collect();
        for late in &reports[entries..] {
            assert!(
                matches!(late.outcome, Outcome::Failed(_)),
                "late report {late:?}"
            );
            let first = reports[..entries]
                .iter()
                .rposition(|r| r.path == late.path && r.kind == late.kind)
                .unwrap_or_else(|| panic!("late report for an unknown entry: {late:?}"));
            outcomes[first] = late.outcome.clone();
        }
        let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        assert_eq!(summary.written as usize, count(|o| *o == Outcome::Written));
        assert_eq!(
            summary.rejected as usize,
            count(|o| matches!(o, Outcome::Rejected(_)))
        );
        assert_eq!(
            summary.skipped as usize,
            count(|o| matches!(o, Outcome::Skipped(_)))
        );
        assert_eq!(
            summary.failed as usize,
            count(|o| matches!(o, Outcome::Failed(_)))
        );
    }
    Run { reports, result }
}

/// The rung the suites run on: the strongest (namespaces) unless
/// `SANDTAR_TEST_RUNG=landlock` forces the second rung (`.ci/run` runs the
/// hostile suites both ways).
pub fn landlock_rung() -> bool {
    match std::env::var("SANDTAR_TEST_RUNG").as_deref() {
        Ok("landlock") => true,
        Ok("") | Ok("namespaces") | Err(_) => false,
        Ok(other) => panic!("SANDTAR_TEST_RUNG={other}: expected landlock or namespaces"),
    }
}

/// `Sandbox::new()`, or on the Landlock rung under `SANDTAR_TEST_RUNG=landlock`.
pub async fn new_sandbox() -> Sandbox {
    match landlock_rung() {
        true => landlock_sandbox().await,
        false => Sandbox::new().await.expect("Sandbox::new"),
    }
}

/// Starts a sandbox on the Landlock rung only: with `chroot` as root, without
/// it as an ordinary user (who has no `CAP_SYS_CHROOT`).
async fn landlock_sandbox() -> Sandbox {
    let sandbox = Sandbox::builder()
        .only_rung(sandtar::Rung::Landlock)
        .build()
        .await
        .expect("a sandbox on the Landlock rung");
    match sandbox.mode() {
        SandboxMode::Landlock { uid, chroot, .. } => {
            assert_eq!(uid, euid());
            assert_eq!(
                chroot,
                holds_cap_sys_chroot(),
                "chroot exactly where CAP_SYS_CHROOT is held"
            );
        }
        other => panic!("expected the Landlock rung, got {other:?}"),
    }
    sandbox
}

/// Whether this process's effective capabilities include `CAP_SYS_CHROOT`
/// (root has it unless the bounding set was cut, as `.ci/run` does with
/// `setpriv --bounding-set -sys_chroot` to test the rung without `chroot`).
pub fn holds_cap_sys_chroot() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff in /proc/self/status");
    let bits = u64::from_str_radix(eff.trim(), 16).unwrap();
    bits & (1 << 18) != 0
}

/// Whether `sandbox`'s workers hold no capability at all: an ordinary user on
/// the Landlock rung (no user namespace makes them root anywhere).
pub fn has_no_capabilities(sandbox: &Sandbox) -> bool {
    matches!(sandbox.mode(), SandboxMode::Landlock { uid, .. } if uid != 0)
}

/// Starts a sandbox and, if this process is root, checks that it is privileged
/// (on the Landlock rung under `SANDTAR_TEST_RUNG=landlock`).
pub async fn sandbox() -> Sandbox {
    if landlock_rung() {
        return landlock_sandbox().await;
    }
    let sandbox = Sandbox::new().await.expect("Sandbox::new");
    if is_root() {
        assert_eq!(sandbox.mode(), SandboxMode::Privileged);
    } else {
        assert!(matches!(sandbox.mode(), SandboxMode::UserNamespace { .. }));
    }
    sandbox
}

/// The unprivileged sandbox of a `nobody` case: a user namespace, or under
/// `SANDTAR_TEST_RUNG=landlock` the Landlock rung without `chroot`.
pub async fn unprivileged_sandbox_for_rung() -> Sandbox {
    assert!(!is_root(), "this scenario must run unprivileged");
    match landlock_rung() {
        true => landlock_sandbox().await,
        false => unprivileged_sandbox().await,
    }
}

/// Starts a sandbox and checks that it really is unprivileged (user namespace).
pub async fn unprivileged_sandbox() -> Sandbox {
    let sandbox = Sandbox::new().await.expect("Sandbox::new");
    let (uid, gid) = (euid(), egid());
    assert_ne!(uid, 0, "this scenario must run unprivileged");
    assert_eq!(sandbox.mode(), SandboxMode::UserNamespace { uid, gid });
    sandbox
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// This process's effective user id.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// This process's effective group id.
pub fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// Whether this process is root; if not, prints that the test needs root `to`
/// do something (when not empty), and the test then passes doing nothing.
pub fn needs_root(to: &str) -> bool {
    let root = is_root();
    match (root, to) {
        (true, _) => {}
        (false, "") => println!("NOTE: needs root"),
        (false, to) => println!("NOTE: needs root to {to}"),
    }
    root
}

/// An id map with the same single range for users and groups: container ids
/// `container..container + size` are host ids `host..host + size`.
pub fn id_map(container: u32, host: u32, size: u32) -> IdMap {
    let range = IdRange {
        container,
        host,
        size,
    };
    IdMap {
        uids: vec![range],
        gids: vec![range],
    }
}

/// Whether the sandbox may create device nodes and keep any owner: root on
/// the namespace rung.
pub fn privileged(sandbox: &Sandbox) -> bool {
    sandbox.mode() == SandboxMode::Privileged
}

/// The value of extended attribute `name` on `path` (not following symlinks):
/// `Ok(None)` if it is not set, `Err` if the filesystem does not do xattrs.
pub fn get_xattr(path: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: `p` and `n` are NUL-terminated strings that outlive the call, and
    // `buf` is writable for `buf.len()` bytes.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(len as usize);
    Ok(Some(buf))
}

/// Sets an extended attribute (used to probe whether a filesystem supports them).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: `p` and `n` are NUL-terminated strings that outlive the call, and
    // `value` is readable for `value.len()` bytes.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Snapshots and the canary scene
// ---------------------------------------------------------------------------

/// What a node is, with its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(PathBuf),
    /// FIFO, socket or device: the file type bits and rdev.
    Special {
        file_type: u32,
        rdev: u64,
    },
}

/// Everything about one node that a stray write would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub ino: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// A tree, by path relative to its root (the root itself is `""`).
pub type Snapshot = BTreeMap<PathBuf, Node>;

/// Walks `root` without following symlinks.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn walk(root: &Path, rel: &Path, out: &mut Snapshot) {
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path)
        .unwrap_or_else(|e| panic!("snapshot {}: {e}", path.display()));
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        Kind::File(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink(std::fs::read_link(&path).unwrap())
    } else {
        Kind::Special {
            file_type: meta.mode() & libc::S_IFMT,
            rdev: meta.rdev(),
        }
    };
    let is_dir = kind == Kind::Dir;
    out.insert(
        rel.to_path_buf(),
        Node {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            nlink: meta.nlink(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        },
    );
    if is_dir {
        let mut names: Vec<OsString> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            walk(root, &rel.join(name), out);
        }
    }
}

/// The part of a snapshot that two extractions of the same archive share:
/// kinds, contents, modes and modification times (no inode numbers, no ctimes).
pub fn shape(s: &Snapshot) -> BTreeMap<PathBuf, (Kind, u32, (i64, i64))> {
    s.iter()
        .map(|(p, n)| (p.clone(), (n.kind.clone(), n.mode, n.mtime)))
        .collect()
}

static SCENES: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary directory holding `dest/` (the destination, empty) and
/// `canary/` (a tree that must never change), plus a unique `tag` for names
/// that hostile archives try to create outside.
pub struct Scene {
    pub tmp: tempfile::TempDir,
    pub dest: PathBuf,
    pub canary: PathBuf,
    /// A string unique to this scene; use it in names an archive tries to
    /// create outside the destination, and [`Scene::check`] looks for it in
    /// `/`, `/tmp` and the temporary directory.
    pub tag: String,
    before: Option<Snapshot>,
    parent_before: BTreeSet<OsString>,
}

impl Scene {
    /// Creates the scene and takes the "before" snapshot at once.
    pub fn new() -> Scene {
        let mut scene = Scene::unsnapshotted();
        scene.snapshot_now();
        scene
    }

    /// Creates the scene without the snapshot: prepare the destination (or the
    /// canary), then call [`Scene::snapshot_now`].
    pub fn unsnapshotted() -> Scene {
        let tmp = tempfile::Builder::new()
            .prefix("sandtar-test-")
            .tempdir()
            .expect("temporary directory");
        let dest = tmp.path().join("dest");
        let canary = tmp.path().join("canary");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&canary).unwrap();
        let w = |rel: &str, data: &[u8], mode: u32| {
            let p = canary.join(rel);
            std::fs::write(&p, data).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        w("file.txt", b"canary file\n", 0o644);
        w("secret", b"do not read or change\n", 0o600);
        w("run.sh", b"#!/bin/sh\necho canary\n", 0o755);
        std::fs::create_dir(canary.join("sub")).unwrap();
        w("sub/deep.txt", b"deep canary\n", 0o644);
        std::fs::create_dir(canary.join("empty")).unwrap();
        std::os::unix::fs::symlink("file.txt", canary.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", canary.join("abs-link")).unwrap();
        let n = SCENES.fetch_add(1, Ordering::Relaxed);
        let tag = format!("sandtar-escape-{}-{n}", std::process::id());
        Scene {
            tmp,
            dest,
            canary,
            tag,
            before: None,
            parent_before: BTreeSet::new(),
        }
    }

    /// Takes the "before" snapshot of the canary and of the parent's listing.
    pub fn snapshot_now(&mut self) {
        self.before = Some(snapshot(&self.canary));
        self.parent_before = names_in(self.tmp.path());
    }

    /// The temporary directory that holds `dest` and `canary`.
    pub fn parent(&self) -> &Path {
        self.tmp.path()
    }

    /// Asserts that the canary is exactly as it was, that nothing appeared or
    /// disappeared beside the destination, and that no name carrying the tag
    /// exists in `/`, `/tmp` or the temporary directory.
    pub fn check(&self) {
        self.check_canary(|n| n.clone());
        self.check_surroundings();
    }

    /// Like [`Scene::check`], but ignores link counts and ctimes of the canary
    /// (for a test that deliberately hard-links a canary file into the
    /// destination, where extraction replaces that link).
    pub fn check_except_links(&self) {
        self.check_canary(|n| Node {
            nlink: 0,
            ctime: (0, 0),
            ..n.clone()
        });
        self.check_surroundings();
    }

    fn check_canary(&self, normal: impl Fn(&Node) -> Node) {
        let before = self
            .before
            .as_ref()
            .expect("Scene::snapshot_now was not called");
        let after = snapshot(&self.canary);
        let norm = |s: &Snapshot| -> BTreeMap<PathBuf, Node> {
            s.iter().map(|(p, n)| (p.clone(), normal(n))).collect()
        };
        let (before, after) = (norm(before), norm(&after));
        if before != after {
            let mut diff = String::new();
            for (p, n) in &before {
                match after.get(p) {
                    None => diff += &format!("  removed {}: {n:?}\n", p.display()),
                    Some(m) if m != n => {
                        diff += &format!("  changed {}:\n    {n:?}\n -> {m:?}\n", p.display())
                    }
                    _ => {}
                }
            }
            for (p, m) in &after {
                if !before.contains_key(p) {
                    diff += &format!("  added {}: {m:?}\n", p.display());
                }
            }
            panic!("the canary beside the destination changed:\n{diff}");
        }
    }

    fn check_surroundings(&self) {
        let now = names_in(self.tmp.path());
        assert_eq!(
            now,
            self.parent_before,
            "entries beside the destination changed in {}",
            self.tmp.path().display()
        );
        assert!(self.dest.is_dir(), "the destination itself is gone");
        let mut places = vec![
            PathBuf::from("/"),
            PathBuf::from("/tmp"),
            std::env::temp_dir(),
        ];
        places.extend(self.tmp.path().parent().map(Path::to_path_buf));
        for place in places {
            for name in names_in(&place) {
                assert!(
                    !name
                        .as_bytes()
                        .windows(self.tag.len())
                        .any(|w| w == self.tag.as_bytes()),
                    "{} appeared in {}",
                    name.to_string_lossy(),
                    place.display()
                );
            }
        }
    }
}

impl Default for Scene {
    fn default() -> Self {
        Scene::new()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        // Read-only directories from archives would make the cleanup fail for an
        // unprivileged user: open them up first.
        fn open_up(p: &Path) {
            if let Ok(meta) = std::fs::symlink_metadata(p) {
                if meta.is_dir() {
                    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                    if let Ok(rd) = std::fs::read_dir(p) {
                        for e in rd.flatten() {
                            open_up(&e.path());
                        }
                    }
                }
            }
        }
        open_up(self.tmp.path());
    }
}

fn names_in(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// Declares, for each `async fn NAME(sandbox: Sandbox)` scenario, a module
/// `NAME` with three tests:
///
/// * `NAME::as_root`: the scenario with this process's sandbox (privileged when
///   the suite runs as root, as CI does);
/// * `NAME::as_nobody`: re-runs `NAME::nobody_inner` as `nobody`;
/// * `NAME::nobody_inner` (ignored): the scenario with a sandbox that must be
///   unprivileged (a user namespace, or the Landlock rung without `chroot`).
///
/// `NAME [root: ignore = "..."]` or `NAME [nobody: ignore = "..."]` adds an
/// attribute to one of the two variants (for known bugs).
#[macro_export]
macro_rules! root_and_nobody {
    ($($name:ident $([root: $rattr:meta])? $([nobody: $nattr:meta])?),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            $(#[$rattr])?
            async fn as_root() {
                let sandbox = $crate::common::sandbox().await;
                super::$name(sandbox).await;
            }

            #[test]
            $(#[$nattr])?
            fn as_nobody() {
                let path = module_path!();
                let inner = match path.split_once("::") {
                    Some((_crate, rest)) => format!("{rest}::nobody_inner"),
                    None => "nobody_inner".to_string(),
                };
                $crate::common::as_nobody(&inner, nobody_inner);
            }

            #[tokio::test]
            #[ignore = "run through as_nobody"]
            async fn nobody_inner() {
                if !$crate::common::inner_should_run() {
                    return;
                }
                let sandbox = $crate::common::unprivileged_sandbox_for_rung().await;
                super::$name(sandbox).await;
            }
        }
    )*};
}

/// Packs `src` whole; returns the archive and the reports.
pub async fn pack_all(
    sandbox: &sandtar::Sandbox,
    src: &Path,
    options: &sandtar::PackOptions,
) -> (Vec<u8>, Vec<sandtar::EntryReport>, sandtar::Summary) {
    let mut pack = sandbox.pack(src, options).await.expect("pack");
    let mut archive = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut pack, &mut archive)
        .await
        .expect("reading the archive");
    let reports: Vec<_> = pack.reports().collect();
    let summary = pack.finish().await.expect("summary");
    (archive, reports, summary)
}
