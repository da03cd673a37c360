//! GNU sparse files in every form GNU tar writes (old GNU, PAX 0.0, 0.1, 1.0),
//! made by GNU tar itself: contents exact, and holes stay holes.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use sandtar::{Error, Limit, Options, Sandbox};

/// A 64 MiB file with three small data regions, the rest holes.
fn make_sparse(path: &Path) -> Vec<u8> {
    use std::io::{Seek, SeekFrom, Write};
    let size = 64u64 << 20;
    let mut f = std::fs::File::create(path).unwrap();
    let mut expected = vec![0u8; size as usize];
    for (i, offset) in [0u64, 20 << 20, (64 << 20) - 8192].into_iter().enumerate() {
        let chunk = vec![b'a' + i as u8; 8192];
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&chunk).unwrap();
        expected[offset as usize..offset as usize + chunk.len()].copy_from_slice(&chunk);
    }
    f.set_len(size).unwrap();
    expected
}

#[tokio::test]
async fn gnu_tar_sparse_forms() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("src");
    std::fs::create_dir(&source).unwrap();
    let expected = make_sparse(&source.join("sparse.img"));
    let sandbox = Sandbox::new().await.unwrap();
    for (label, args) in [
        ("old GNU", vec!["--format=gnu"]),
        ("PAX 0.0", vec!["--format=posix", "--sparse-version=0.0"]),
        ("PAX 0.1", vec!["--format=posix", "--sparse-version=0.1"]),
        ("PAX 1.0", vec!["--format=posix", "--sparse-version=1.0"]),
    ] {
        let archive = work.path().join("a.tar");
        let status = Command::new("tar")
            .args(&args)
            .arg("-S")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&source)
            .arg("sparse.img")
            .status()
            .expect("GNU tar");
        assert!(status.success(), "{label}: tar failed");
        let data = std::fs::read(&archive).unwrap();
        assert!(data.len() < 1 << 20, "{label}: GNU tar stored holes");
        let dest = tempfile::tempdir().unwrap();
        let summary = sandbox
            .extract(&data[..], dest.path(), &Options::default())
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!((summary.entries, summary.written), (1, 1), "{label}");
        let out = dest.path().join("sparse.img");
        let meta = std::fs::metadata(&out).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(meta.len(), expected.len() as u64, "{label}: size");
        assert!(
            std::fs::read(&out).unwrap() == expected,
            "{label}: contents differ"
        );
        // 24 KiB of data: allow filesystem rounding, but nowhere near 64 MiB.
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "{label}: holes were filled ({} blocks)",
            meta.blocks()
        );
        assert_eq!(
            summary.bytes_written,
            expected.len() as u64,
            "{label}: logical size"
        );
        println!("{label}: ok, {} bytes on disk", meta.blocks() * 512);
    }
}

/// A sparse file counts its data, not its holes, toward `max_entry_size` and
/// `max_total_size`; its apparent size has its own limit, `max_sparse_size`.
#[tokio::test]
async fn sparse_files_count_their_data() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("src");
    std::fs::create_dir(&source).unwrap();
    let expected = make_sparse(&source.join("sparse.img"));
    let archive = work.path().join("a.tar");
    let status = Command::new("tar")
        .args(["--format=posix", "-S", "-cf"])
        .arg(&archive)
        .arg("-C")
        .arg(&source)
        .arg("sparse.img")
        .status()
        .expect("GNU tar");
    assert!(status.success());
    let data = std::fs::read(&archive).unwrap();
    let sandbox = Sandbox::new().await.unwrap();
    // 24 KiB of data in 64 MiB: within 1 MiB limits on data.
    let mut options = Options::default();
    options.limits.max_entry_size = 1 << 20;
    options.limits.max_total_size = 1 << 20;
    let dest = tempfile::tempdir().unwrap();
    let summary = sandbox
        .extract(&data[..], dest.path(), &options)
        .await
        .expect("the data is within the limits");
    assert_eq!(summary.written, 1);
    let out = std::fs::read(dest.path().join("sparse.img")).unwrap();
    assert!(out == expected, "contents differ");
    // The apparent size over its own limit.
    options.limits.max_sparse_size = 32 << 20;
    let dest = tempfile::tempdir().unwrap();
    let error = sandbox
        .extract(&data[..], dest.path(), &options)
        .await
        .expect_err("64 MiB apparent > 32 MiB");
    assert!(
        matches!(
            error,
            Error::LimitExceeded {
                limit: Limit::MaxSparseSize,
                value: 33_554_432,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!dest.path().join("sparse.img").exists());
}

/// `max_sparse_size` bounds the sparse files' apparent sizes added up: the
/// parser steps through every hole, so many sparse files of a few bytes each
/// cannot cost unbounded CPU.
#[tokio::test]
async fn apparent_sizes_add_up() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("src");
    std::fs::create_dir(&source).unwrap();
    make_sparse(&source.join("one.img"));
    make_sparse(&source.join("two.img"));
    let archive = work.path().join("a.tar");
    let status = Command::new("tar")
        .args(["--format=gnu", "-S", "-cf"])
        .arg(&archive)
        .arg("-C")
        .arg(&source)
        .args(["one.img", "two.img"])
        .status()
        .expect("GNU tar");
    assert!(status.success());
    let data = std::fs::read(&archive).unwrap();
    let sandbox = Sandbox::new().await.unwrap();
    // Each 64 MiB fits in 100 MiB; both do not.
    let mut options = Options::default();
    options.limits.max_sparse_size = 100 << 20;
    let dest = tempfile::tempdir().unwrap();
    let error = sandbox
        .extract(&data[..], dest.path(), &options)
        .await
        .expect_err("128 MiB of apparent size > 100 MiB");
    assert!(
        matches!(
            &error,
            Error::LimitExceeded { limit: Limit::MaxSparseSize, entry, .. }
                if entry.as_os_str() == "two.img"
        ),
        "{error:?}"
    );
    assert!(dest.path().join("one.img").exists());
}
