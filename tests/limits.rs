//! Every limit trips where it should, names itself, its value and the entry, and
//! stops the job (entries before it are written, none after).

mod common;

use std::io::Write;

use common::assert_limit;
use sandtar::{Options, Sandbox};

root_and_nobody!(cpu_time);

fn file_header(name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

fn archive(files: &[(&str, usize)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, size) in files {
        b.append(&file_header(name, *size as u64), &vec![b'x'; *size][..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

async fn run(
    data: Vec<u8>,
    options: &Options,
) -> (tempfile::TempDir, sandtar::Result<sandtar::Summary>) {
    let sandbox = common::new_sandbox().await;
    let dest = tempfile::tempdir().unwrap();
    let result = sandbox.extract(&data[..], dest.path(), options).await;
    (dest, result)
}

#[tokio::test]
async fn max_entries() {
    let mut options = Options::default();
    options.limits.max_entries = 3;
    let data = archive(&[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]);
    let (dest, result) = run(data, &options).await;
    assert_limit(&result, "max_entries", 3, "d");
    for name in ["a", "b", "c"] {
        assert!(
            dest.path().join(name).exists(),
            "{name} written before the limit"
        );
    }
    assert!(!dest.path().join("d").exists() && !dest.path().join("e").exists());
}

#[tokio::test]
async fn max_entry_size_and_total() {
    let mut options = Options::default();
    options.limits.max_entry_size = 1000;
    let (_, result) = run(archive(&[("small", 10), ("big", 1001)]), &options).await;
    assert_limit(&result, "max_entry_size", 1000, "big");

    let mut options = Options::default();
    options.limits.max_total_size = 2500;
    let (dest, result) = run(
        archive(&[("one", 1000), ("two", 1000), ("three", 1000)]),
        &options,
    )
    .await;
    assert_limit(&result, "max_total_size", 2500, "three");
    assert_eq!(std::fs::read(dest.path().join("two")).unwrap().len(), 1000);
}

#[tokio::test]
async fn max_path_length_and_depth() {
    let mut options = Options::default();
    options.limits.max_path_depth = 4;
    let (_, result) = run(archive(&[("a/b/c/d", 1), ("a/b/c/d/e", 1)]), &options).await;
    assert_limit(&result, "max_path_depth", 4, "a/b/c/d/e");

    let mut options = Options::default();
    options.limits.max_path_length = 50;
    let long = "x".repeat(51);
    let (_, result) = run(archive(&[("short", 1), (&long, 1)]), &options).await;
    assert_limit(&result, "max_path_length", 50, &long);
}

#[tokio::test]
async fn max_extension_size() {
    // A PAX header of 2 MiB (one huge comment record) before a small file.
    let records = common::raw::pax_record(b"comment", &vec![b'c'; 2 << 20]);
    let mut b = tar::Builder::new(Vec::new());
    let mut pax = tar::Header::new_ustar();
    pax.set_path("PaxHeader").unwrap();
    pax.set_size(records.len() as u64);
    pax.set_entry_type(tar::EntryType::XHeader);
    pax.set_cksum();
    b.append(&pax, &records[..]).unwrap();
    b.append(&file_header("after-pax", 3), &b"abc"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let (dest, result) = run(data, &Options::default()).await;
    // It trips while the header is read (the worker never holds more than the
    // limit of it), before the entry it describes has a name.
    assert_limit(&result, "max_extension_size", 1 << 20, "");
    assert!(!dest.path().join("after-pax").exists());
}

#[tokio::test]
async fn compression_bombs() {
    // 80 MiB of zeros (past the 64 MiB grace): a few KiB of zstd, and gzip at
    // a ratio of several hundred.
    let size = 80usize << 20;
    let mut tar = Vec::with_capacity(size + 4096);
    {
        let mut b = tar::Builder::new(&mut tar);
        b.append(
            &file_header("zeros", size as u64),
            std::io::repeat(0).take_bytes(size),
        )
        .unwrap();
        b.finish().unwrap();
    }
    let zstd = zstd::stream::encode_all(&tar[..], 3).unwrap();
    let (dest, result) = run(zstd, &Options::default()).await;
    assert_limit(&result, "max_compression_ratio", 1000, "zeros");
    assert!(
        !dest.path().join("zeros").exists()
            || std::fs::metadata(dest.path().join("zeros")).unwrap().len() < size as u64
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let mut options = Options::default();
    options.limits.max_compression_ratio = 100;
    let (_, result) = run(gz, &options).await;
    assert_limit(&result, "max_compression_ratio", 100, "zeros");
}

trait TakeBytes {
    fn take_bytes(self, n: usize) -> std::io::Take<std::io::Repeat>;
}

impl TakeBytes for std::io::Repeat {
    fn take_bytes(self, n: usize) -> std::io::Take<std::io::Repeat> {
        use std::io::Read;
        self.take(n as u64)
    }
}

/// CPU time: a chain of long symlinks (`H` -> `L1/../L1/…`, each `L1` ->
/// `d/../d/…`, ~30,000 path steps per resolution) and then hard links to
/// targets below it in ever new directories, each resolved through the whole
/// chain (~1 ms apiece). No other limit is near; `max_cpu_time` (1 s here)
/// ends the job, named, by the kernel's `RLIMIT_CPU`.
async fn cpu_time(sandbox: Sandbox) {
    let mut tar = common::raw::Tar::new();
    tar.dir("d/", 0o755);
    let l1 = format!("d/{}", "../d/".repeat(818));
    let h = format!("L1{}", "/../L1".repeat(37));
    tar.pax(&[(b"linkpath", l1.as_bytes())]).symlink("L1", "x");
    tar.pax(&[(b"linkpath", h.as_bytes())]).symlink("H", "x");
    for i in 0..200_000 {
        tar.hardlink(format!("x{i}"), format!("H/m{i}/t"));
    }
    let mut options = Options::default();
    options.limits.max_cpu_time = 1;
    let dest = tempfile::tempdir().unwrap();
    let result = sandbox
        .extract(&tar.finish()[..], dest.path(), &options)
        .await;
    match result {
        Err(sandtar::Error::LimitExceeded { limit, value, .. }) => {
            assert_eq!((limit, value), (sandtar::Limit::MaxCpuTime, 1));
        }
        other => panic!("expected max_cpu_time, got {other:?}"),
    }
}
