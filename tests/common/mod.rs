//! Shared helpers for the integration tests:
//!
//! * [`raw`]: a byte-level tar writer for hostile archives (the `tar` crate's
//!   `Builder` refuses `..` names and cannot desynchronise headers on purpose);
//! * [`Scene`]: a destination with a canary tree beside it, snapshotted before a
//!   job and checked after it, so that any write outside the destination shows;
//! * [`as_nobody`]: runs one test of this binary again as `nobody`, so that the
//!   user-namespace sandbox is exercised by a test suite that runs as root;
//! * small helpers to run a job and look at what it wrote.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sandtar::{EntryReport, Options, Outcome, Sandbox, SandboxMode, Summary};

// ---------------------------------------------------------------------------
// Raw tar writer
// ---------------------------------------------------------------------------

pub mod raw {
    //! Writes tar archives block by block, with nothing checked: names with
    //! `..`, sizes that disagree with the data, PAX records that lie.

    /// The tar block size.
    pub const BLOCK: usize = 512;

    /// Which magic the header carries.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Magic {
        /// POSIX `ustar\0` `00`.
        Ustar,
        /// GNU `ustar  \0`.
        Gnu,
        /// Old v7 tar: no magic at all.
        V7,
    }

    /// One 512-byte header, field by field.
    #[derive(Clone, Debug)]
    pub struct Header {
        pub name: Vec<u8>,
        pub mode: u32,
        pub uid: u64,
        pub gid: u64,
        pub size: u64,
        pub mtime: u64,
        pub typeflag: u8,
        pub linkname: Vec<u8>,
        pub devmajor: u32,
        pub devminor: u32,
        pub prefix: Vec<u8>,
        pub magic: Magic,
    }

    impl Header {
        /// A header with mode 0o644, owner 0:0, mtime 1_600_000_000.
        pub fn new(name: impl AsRef<[u8]>, typeflag: u8, size: u64) -> Self {
            Header {
                name: name.as_ref().to_vec(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                size,
                mtime: 1_600_000_000,
                typeflag,
                linkname: Vec::new(),
                devmajor: 0,
                devminor: 0,
                prefix: Vec::new(),
                magic: Magic::Ustar,
            }
        }

        pub fn mode(mut self, mode: u32) -> Self {
            self.mode = mode;
            self
        }

        pub fn owner(mut self, uid: u64, gid: u64) -> Self {
            self.uid = uid;
            self.gid = gid;
            self
        }

        pub fn mtime(mut self, mtime: u64) -> Self {
            self.mtime = mtime;
            self
        }

        pub fn link(mut self, target: impl AsRef<[u8]>) -> Self {
            self.linkname = target.as_ref().to_vec();
            self
        }

        pub fn device(mut self, major: u32, minor: u32) -> Self {
            self.devmajor = major;
            self.devminor = minor;
            self
        }

        pub fn magic(mut self, magic: Magic) -> Self {
            self.magic = magic;
            self
        }

        /// Encodes the header, checksum included. Panics if a field does not fit.
        pub fn encode(&self) -> [u8; BLOCK] {
            let mut b = [0u8; BLOCK];
            bytes(&mut b[0..100], &self.name, "name");
            octal(&mut b[100..108], u64::from(self.mode));
            octal(&mut b[108..116], self.uid);
            octal(&mut b[116..124], self.gid);
            octal(&mut b[124..136], self.size);
            octal(&mut b[136..148], self.mtime);
            b[156] = self.typeflag;
            bytes(&mut b[157..257], &self.linkname, "linkname");
            match self.magic {
                Magic::Ustar => {
                    b[257..263].copy_from_slice(b"ustar\0");
                    b[263..265].copy_from_slice(b"00");
                }
                Magic::Gnu => b[257..265].copy_from_slice(b"ustar  \0"),
                Magic::V7 => {}
            }
            if self.magic != Magic::V7 {
                bytes(&mut b[265..297], b"root", "uname");
                bytes(&mut b[297..329], b"root", "gname");
                octal(&mut b[329..337], u64::from(self.devmajor));
                octal(&mut b[337..345], u64::from(self.devminor));
                bytes(&mut b[345..500], &self.prefix, "prefix");
            }
            set_checksum(&mut b);
            b
        }
    }

    fn bytes(field: &mut [u8], value: &[u8], what: &str) {
        assert!(
            value.len() <= field.len(),
            "{what} of {} bytes does not fit in {} bytes",
            value.len(),
            field.len()
        );
        field[..value.len()].copy_from_slice(value);
    }

    fn octal(field: &mut [u8], value: u64) {
        let digits = field.len() - 1;
        let text = format!("{value:0digits$o}");
        assert!(
            text.len() <= digits,
            "{value} does not fit in {digits} octal digits"
        );
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    }

    /// Computes and stores the header checksum (the field counted as spaces).
    pub fn set_checksum(block: &mut [u8; BLOCK]) {
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    /// One PAX record: `"<len> <key>=<value>\n"`, where `len` counts itself.
    pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        let mut out = format!("{len} ").into_bytes();
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
        assert_eq!(out.len(), len);
        out
    }

    /// An archive under construction.
    #[derive(Default, Clone)]
    pub struct Tar {
        bytes: Vec<u8>,
    }

    impl Tar {
        pub fn new() -> Self {
            Tar::default()
        }

        /// Appends one header block exactly as given.
        pub fn header(&mut self, h: &Header) -> &mut Self {
            self.bytes.extend_from_slice(&h.encode());
            self
        }

        /// Appends a header block with arbitrary content (checksum fixed up).
        pub fn header_block(&mut self, mut block: [u8; BLOCK]) -> &mut Self {
            set_checksum(&mut block);
            self.bytes.extend_from_slice(&block);
            self
        }

        /// Appends `data` padded with zeros to a whole block.
        pub fn data(&mut self, data: &[u8]) -> &mut Self {
            self.bytes.extend_from_slice(data);
            let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
            self.bytes.resize(self.bytes.len() + pad, 0);
            self
        }

        /// Appends bytes with no padding at all.
        pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
            self.bytes.extend_from_slice(bytes);
            self
        }

        /// Header (its size set to `data.len()`) and data.
        pub fn entry(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
            h.size = data.len() as u64;
            self.header(&h).data(data)
        }

        pub fn file(&mut self, name: impl AsRef<[u8]>, data: &[u8]) -> &mut Self {
            self.entry(Header::new(name, b'0', 0), data)
        }

        pub fn file_mode(&mut self, name: impl AsRef<[u8]>, mode: u32, data: &[u8]) -> &mut Self {
            self.entry(Header::new(name, b'0', 0).mode(mode), data)
        }

        pub fn dir(&mut self, name: impl AsRef<[u8]>, mode: u32) -> &mut Self {
            self.header(&Header::new(name, b'5', 0).mode(mode))
        }

        pub fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
            self.header(&Header::new(name, b'2', 0).mode(0o777).link(target))
        }

        pub fn hardlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
            self.header(&Header::new(name, b'1', 0).link(target))
        }

        pub fn fifo(&mut self, name: impl AsRef<[u8]>, mode: u32) -> &mut Self {
            self.header(&Header::new(name, b'6', 0).mode(mode))
        }

        /// A character (`b'3'`) or block (`b'4'`) device.
        pub fn device(
            &mut self,
            name: impl AsRef<[u8]>,
            typeflag: u8,
            major: u32,
            minor: u32,
        ) -> &mut Self {
            self.header(
                &Header::new(name, typeflag, 0)
                    .mode(0o600)
                    .device(major, minor),
            )
        }

        /// A PAX extended header (`x`) with these records, for the next entry.
        pub fn pax(&mut self, records: &[(&[u8], &[u8])]) -> &mut Self {
            self.pax_typed(b'x', records)
        }

        /// A PAX global header (`g`).
        pub fn pax_global(&mut self, records: &[(&[u8], &[u8])]) -> &mut Self {
            self.pax_typed(b'g', records)
        }

        fn pax_typed(&mut self, typeflag: u8, records: &[(&[u8], &[u8])]) -> &mut Self {
            let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            self.entry(Header::new("PaxHeaders.0/entry", typeflag, 0), &body)
        }

        /// A GNU long name record (`L`) for the next entry.
        pub fn gnu_long_name(&mut self, name: impl AsRef<[u8]>) -> &mut Self {
            self.gnu_long(b'L', name.as_ref())
        }

        /// A GNU long link-name record (`K`) for the next entry.
        pub fn gnu_long_link(&mut self, target: impl AsRef<[u8]>) -> &mut Self {
            self.gnu_long(b'K', target.as_ref())
        }

        fn gnu_long(&mut self, typeflag: u8, value: &[u8]) -> &mut Self {
            let mut data = value.to_vec();
            data.push(0);
            let h = Header::new("././@LongLink", typeflag, 0).magic(Magic::Gnu);
            self.entry(h, &data)
        }

        /// The bytes so far, without end blocks.
        pub fn bytes(&self) -> Vec<u8> {
            self.bytes.clone()
        }

        /// The archive with its two zero end blocks.
        pub fn finish(&self) -> Vec<u8> {
            let mut out = self.bytes.clone();
            out.extend_from_slice(&[0u8; 2 * BLOCK]);
            out
        }
    }
}

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

/// Starts a sandbox and, if this process is root, checks that it is privileged.
pub async fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new().await.expect("Sandbox::new");
    if is_root() {
        assert_eq!(sandbox.mode(), SandboxMode::Privileged);
    } else {
        assert!(matches!(sandbox.mode(), SandboxMode::UserNamespace { .. }));
    }
    sandbox
}

/// Starts a sandbox and checks that it really is unprivileged (user namespace).
pub async fn unprivileged_sandbox() -> Sandbox {
    let sandbox = Sandbox::new().await.expect("Sandbox::new");
    let uid = unsafe { libc::geteuid() };
    let gid = unsafe { libc::getegid() };
    assert_ne!(uid, 0, "this scenario must run unprivileged");
    assert_eq!(sandbox.mode(), SandboxMode::UserNamespace { uid, gid });
    sandbox
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

pub fn privileged(sandbox: &Sandbox) -> bool {
    sandbox.mode() == SandboxMode::Privileged
}

// ---------------------------------------------------------------------------
// Looking at the result
// ---------------------------------------------------------------------------

/// Permission bits (and special bits) of `path`, not following symlinks.
pub fn mode_of(path: impl AsRef<Path>) -> u32 {
    let path = path.as_ref();
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// Asserts that `path` is a regular file with these contents and mode.
pub fn assert_file(path: impl AsRef<Path>, contents: &[u8], mode: u32) {
    let path = path.as_ref();
    let meta = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} should be a file: {e}", path.display()));
    assert!(
        meta.file_type().is_file(),
        "{} is not a regular file",
        path.display()
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        contents,
        "contents of {}",
        path.display()
    );
    assert_eq!(
        meta.mode() & 0o7777,
        mode,
        "mode of {}: {:o}",
        path.display(),
        meta.mode()
    );
}

/// Asserts that `path` is a directory with this mode.
pub fn assert_dir(path: impl AsRef<Path>, mode: u32) {
    let path = path.as_ref();
    let meta = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} should be a directory: {e}", path.display()));
    assert!(
        meta.file_type().is_dir(),
        "{} is not a directory",
        path.display()
    );
    assert_eq!(
        meta.mode() & 0o7777,
        mode,
        "mode of {}: {:o}",
        path.display(),
        meta.mode()
    );
}

/// Asserts that `path` is a symlink pointing at `target`.
pub fn assert_symlink(path: impl AsRef<Path>, target: impl AsRef<Path>) {
    let path = path.as_ref();
    let meta = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} should be a symlink: {e}", path.display()));
    assert!(
        meta.file_type().is_symlink(),
        "{} is not a symlink",
        path.display()
    );
    assert_eq!(std::fs::read_link(path).unwrap(), target.as_ref());
}

/// Asserts that nothing exists at `path` (not even a dangling symlink).
pub fn assert_absent(path: impl AsRef<Path>) {
    let path = path.as_ref();
    assert!(
        std::fs::symlink_metadata(path).is_err(),
        "{} should not exist",
        path.display()
    );
}

/// The value of extended attribute `name` on `path` (not following symlinks):
/// `Ok(None)` if it is not set, `Err` if the filesystem does not do xattrs.
pub fn get_xattr(path: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
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

// ---------------------------------------------------------------------------
// Running a test again as nobody
// ---------------------------------------------------------------------------

/// How long a re-executed test may take.
const CHILD_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs the ignored test `inner` (its full name within this test binary, e.g.
/// `parent_component::nobody_inner`) as the user `nobody`, and asserts that it
/// passed. When this process is not root, it cannot switch users: `direct`
/// (the inner test's function) is called instead, as the current user.
pub fn as_nobody(inner: &str, direct: impl FnOnce()) {
    let group = if group_exists("nogroup") {
        "nogroup"
    } else {
        "nobody"
    };
    as_user("nobody", group, inner, direct)
}

/// Like [`as_nobody`], as `user`:`group`.
pub fn as_user(user: &str, group: &str, inner: &str, direct: impl FnOnce()) {
    if !is_root() {
        direct();
        return;
    }
    // CI clones into a path `nobody` may not traverse: run a copy of this
    // executable from a fresh, world-readable directory in /tmp.
    let dir = tempfile::Builder::new()
        .prefix("sandtar-nobody-")
        .tempdir_in("/tmp")
        .expect("temporary directory in /tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = std::env::current_exe().expect("current_exe");
    let copy = dir.path().join(exe.file_name().unwrap());
    // Copy with cp(1), not std::fs::copy: a file open for writing in this
    // multi-threaded process leaks into children that other test threads fork
    // at that moment, and exec'ing the copy then fails with ETXTBSY.
    let status = Command::new("cp")
        .arg(&exe)
        .arg(&copy)
        .status()
        .expect("running cp");
    assert!(status.success(), "copying the test executable: {status}");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={user}"))
        .arg(format!("--regid={group}"))
        .arg("--clear-groups")
        .arg(&copy);
    run_test_process(cmd, inner, dir.path(), &format!("as {user}:{group}"));
}

/// Runs the ignored test `inner` of this test binary in a process of its own
/// (as the current user), and asserts that it passed. For scenarios that need
/// a process to themselves (counting its children, for example).
pub fn in_own_process(inner: &str) {
    let dir = tempfile::Builder::new()
        .prefix("sandtar-proc-")
        .tempdir()
        .expect("temporary directory");
    let cmd = Command::new(std::env::current_exe().expect("current_exe"));
    run_test_process(cmd, inner, dir.path(), "in its own process");
}

fn run_test_process(mut cmd: Command, inner: &str, dir: &Path, how: &str) {
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let stdout = std::fs::File::create(&stdout_path).unwrap();
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    cmd.env(INNER_MARKER, "1")
        .arg("--exact")
        .arg(inner)
        .arg("--include-ignored")
        .arg("--nocapture")
        .arg("--test-threads=1")
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {inner} {how}: {e}"));
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let show = format!("--- stdout ---\n{out}\n--- stderr ---\n{err}");
    match status {
        None => panic!("{inner} ({how}) timed out after {CHILD_TIMEOUT:?}\n{show}"),
        Some(s) if !s.success() => panic!("{inner} ({how}) failed: {s}\n{show}"),
        Some(_) => {}
    }
    // A wrong name runs zero tests and still exits 0.
    assert!(
        out.contains("test result: ok. 1 passed"),
        "{inner} ({how}) did not run exactly one test\n{show}"
    );
    println!("{inner} ({how}) passed\n{show}");
}

/// Set in the environment of the processes [`as_nobody`] and
/// [`in_own_process`] start.
const INNER_MARKER: &str = "SANDTAR_TEST_INNER";

/// Whether an ignored inner test should do its work: yes when started by
/// [`as_nobody`] / [`in_own_process`], or when this process is not root (then
/// the outer test calls it directly); no when a root user runs the whole suite
/// with `--include-ignored` (it would run privileged, which is not its point).
pub fn inner_should_run() -> bool {
    if std::env::var_os(INNER_MARKER).is_some() || !is_root() {
        true
    } else {
        println!("NOTE: inner test skipped: it runs through its outer test");
        false
    }
}

fn group_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

/// Declares, for each `async fn NAME(sandbox: Sandbox)` scenario, a module
/// `NAME` with three tests:
///
/// * `NAME::as_root`: the scenario with this process's sandbox (privileged when
///   the suite runs as root, as CI does);
/// * `NAME::as_nobody`: re-runs `NAME::nobody_inner` as `nobody`;
/// * `NAME::nobody_inner` (ignored): the scenario with a sandbox that must be
///   in user-namespace mode.
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
                let sandbox = $crate::common::unprivileged_sandbox().await;
                super::$name(sandbox).await;
            }
        }
    )*};
}
