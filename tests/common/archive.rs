//! Making archive data: compressed streams and incompressible contents.

use std::io::Write;

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
