//! Assertions on what a job wrote and how it ended.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sandtar::{Error, Summary};

/// Permission bits (and special bits) of `path`, not following symlinks.
pub fn mode_of(path: impl AsRef<Path>) -> u32 {
    let path = path.as_ref();
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// The metadata of `path` (not following symlinks), asserting that it is a
/// `what` (`is` tells, e.g. `FileType::is_file`).
fn metadata_of(path: &Path, what: &str, is: fn(&std::fs::FileType) -> bool) -> std::fs::Metadata {
    let meta = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} should be a {what}: {e}", path.display()));
    assert!(is(&meta.file_type()), "{} is not a {what}", path.display());
    meta
}

fn assert_mode(path: &Path, meta: &std::fs::Metadata, mode: u32) {
    assert_eq!(
        meta.mode() & 0o7777,
        mode,
        "mode of {}: {:o}",
        path.display(),
        meta.mode()
    );
}

/// Asserts that `path` is a regular file with these contents and mode.
pub fn assert_file(path: impl AsRef<Path>, contents: &[u8], mode: u32) {
    let path = path.as_ref();
    let meta = metadata_of(path, "regular file", std::fs::FileType::is_file);
    assert_eq!(
        std::fs::read(path).unwrap(),
        contents,
        "contents of {}",
        path.display()
    );
    assert_mode(path, &meta, mode);
}

/// Asserts that `path` is a directory with this mode.
pub fn assert_dir(path: impl AsRef<Path>, mode: u32) {
    let path = path.as_ref();
    let meta = metadata_of(path, "directory", std::fs::FileType::is_dir);
    assert_mode(path, &meta, mode);
}

/// Asserts that `path` is a symlink pointing at `target`.
pub fn assert_symlink(path: impl AsRef<Path>, target: impl AsRef<Path>) {
    let path = path.as_ref();
    metadata_of(path, "symlink", std::fs::FileType::is_symlink);
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

/// Asserts that the job ended with `LimitExceeded` naming `limit` (its
/// [`sandtar::Limit::name`]), `value` and the entry `entry` (names travel cut
/// to 8 KiB, like report paths).
pub fn assert_limit(
    result: &sandtar::Result<Summary>,
    limit: &str,
    value: u64,
    entry: impl AsRef<[u8]>,
) {
    let entry = entry.as_ref();
    match result {
        Err(Error::LimitExceeded {
            limit: l,
            value: v,
            entry: e,
        }) => {
            assert_eq!((l.name(), *v), (limit, value), "LimitExceeded");
            let entry = &entry[..entry.len().min(8 * 1024)];
            assert!(
                e.as_os_str().as_bytes() == entry,
                "LimitExceeded entry {:?} ({} bytes), expected {:?} ({} bytes)",
                String::from_utf8_lossy(&e.as_os_str().as_bytes()[..e.as_os_str().len().min(64)]),
                e.as_os_str().len(),
                String::from_utf8_lossy(&entry[..entry.len().min(64)]),
                entry.len()
            );
        }
        other => panic!("expected LimitExceeded({limit}), got {other:?}"),
    }
}

/// Asserts that the job ended with `MalformedArchive` (`what` says which case,
/// for the messages), and returns its offset and message.
pub fn assert_malformed<'a>(what: &str, result: &'a sandtar::Result<Summary>) -> (u64, &'a str) {
    match result {
        Err(Error::MalformedArchive { offset, message }) => {
            println!("{what}: MalformedArchive at {offset}: {message}");
            (*offset, message)
        }
        other => panic!("{what}: expected Error::MalformedArchive, got {other:?}"),
    }
}
