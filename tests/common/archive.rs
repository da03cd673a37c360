//! Making archive data: plain archives through the `tar` crate, compressed
//! streams, incompressible contents.

use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// A well-formed archive of regular files (GNU headers, mode 0644, mtime 0),
/// written by the `tar` crate, in this order.
pub fn tar_files<N: AsRef<Path>, D: AsRef<[u8]>>(
    files: impl IntoIterator<Item = (N, D)>,
) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let data = data.as_ref();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// `data` compressed with gzip (the default level).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `len` bytes that do not compress (an xorshift generator started from
/// `seed`): a flipped byte lands in real data, and gzip cannot shrink them.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An archive reader that counts how often it was polled and gives nothing:
/// for jobs that must fail before they read a byte.
pub struct WatchedReader(pub Arc<AtomicUsize>);

impl tokio::io::AsyncRead for WatchedReader {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

/// Where the tests look for GNU tar, to compare with it.
pub const GNU_TAR: &str = "/usr/bin/tar";

/// Whether [`GNU_TAR`] is GNU tar; if not, says that the comparison is skipped.
pub fn gnu_tar_available() -> bool {
    let found = Command::new(GNU_TAR)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("GNU tar"))
        .unwrap_or(false);
    if !found {
        println!("NOTE: no GNU tar at {GNU_TAR}: comparison skipped");
    }
    found
}

/// Runs GNU tar with `args` (in `dir`, given first as `-C`, so that it applies
/// to the files of `-c` as to `-x`, if given) and `archive`
/// on its standard input: its standard output, whether it succeeded, and its
/// standard error.
pub fn gnu_tar(args: &[&str], dir: Option<&Path>, archive: &[u8]) -> (Vec<u8>, bool, String) {
    let mut cmd = Command::new(GNU_TAR);
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("running GNU tar");
    let mut stdin = child.stdin.take().unwrap();
    let data = archive.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.stdout,
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
