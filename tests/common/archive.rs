//! Making archive data: plain archives through the `tar` crate, compressed
//! streams, incompressible contents.

use std::io::Write;
use std::path::Path;

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
