//! Sparse files packed sparse, as GNU tar's `--sparse` does in its PAX
//! format 1.0: the data regions are found with `lseek` (`SEEK_DATA`,
//! `SEEK_HOLE`) on the file's descriptor; the map (the number of regions,
//! then each one's offset and size, in decimal, one per line, padded to a
//! block) starts the entry's data, and only the regions follow. The real
//! name and size are PAX records (`GNU.sparse.*`, see `header`).

use std::io::{self, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{seek, SeekFrom, Stat};
use rustix::io::Errno;

use super::header::padding;

/// The most data regions a map records, as many as extraction takes: a
/// file with more is packed whole.
const MAX_REGIONS: usize = crate::worker::archive::sparse::MAX_CHUNKS as usize;

/// The data regions of `file`, whose size is `stat`'s (as listed), ending
/// with an empty one at that size as GNU tar's maps do; `None` when it has
/// no hole (or its filesystem cannot tell, or it changed while probed): it
/// is packed whole. The file is read from its start afterwards.
pub(super) fn regions(file: &OwnedFd, stat: &Stat) -> io::Result<Option<Vec<(u64, u64)>>> {
    let size = stat.st_size as u64;
    // Fewer blocks than its size needs: maybe holes (or compression).
    if (stat.st_blocks as u64).saturating_mul(512) >= size {
        return Ok(None);
    }
    let map = probe(file, size);
    seek(file, SeekFrom::Start(0))?;
    Ok(map)
}

/// The `SEEK_DATA`/`SEEK_HOLE` walk over the first `size` bytes of `file`.
fn probe(file: &OwnedFd, size: u64) -> Option<Vec<(u64, u64)>> {
    let mut map = Vec::new();
    let mut offset = 0;
    while offset < size {
        let data = match seek(file, SeekFrom::Data(offset)) {
            Ok(at) if at < size => at,
            // Only a hole up to the end (or the file grew past it).
            Ok(_) | Err(Errno::NXIO) => break,
            Err(_) => return None,
        };
        let hole = seek(file, SeekFrom::Hole(data)).ok()?.min(size);
        // A file cut short while it is probed: packed whole, which notices.
        // (Room is kept for the last, empty region.)
        if hole <= data || map.len() + 1 >= MAX_REGIONS {
            return None;
        }
        map.push((data, hole - data));
        offset = hole;
    }
    // All data (a filesystem without holes answers so as well).
    if map == [(0, size)] {
        return None;
    }
    map.push((size, 0));
    Some(map)
}

/// The bytes `map` takes at the start of the entry's data, padded.
pub(super) fn map_size(map: &[(u64, u64)]) -> u64 {
    let text = map_text(map);
    text + padding(text) as u64
}

/// The bytes of `map`'s lines, unpadded.
fn map_text(map: &[(u64, u64)]) -> u64 {
    let digits = |n: u64| n.checked_ilog10().map_or(1, |d| u64::from(d) + 1);
    let pairs: u64 = map
        .iter()
        .map(|&(offset, len)| digits(offset) + digits(len) + 2)
        .sum();
    digits(map.len() as u64) + 1 + pairs
}

/// The bytes of data the regions of `map` hold.
pub(super) fn data_size(map: &[(u64, u64)]) -> u64 {
    map.iter().map(|(_, len)| len).sum()
}

/// Writes `map` as the entry's data starts ([`map_size`] bytes).
pub(super) fn write_map(out: &mut impl Write, map: &[(u64, u64)]) -> io::Result<()> {
    let mut text = io::BufWriter::with_capacity(64 << 10, &mut *out);
    writeln!(text, "{}", map.len())?;
    for (offset, len) in map {
        writeln!(text, "{offset}\n{len}")?;
    }
    text.flush()?;
    drop(text);
    out.write_all(&[0u8; 512][..padding(map_text(map))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn stat_of(file: &std::fs::File) -> Stat {
        rustix::fs::fstat(file).unwrap()
    }

    #[test]
    fn the_map_as_gnu_tar_writes_it() {
        let map = [(0, 512), (8192, 1024), (65536, 0)];
        let mut out = Vec::new();
        write_map(&mut out, &map).unwrap();
        assert_eq!(out.len() as u64, map_size(&map));
        assert_eq!(out.len(), 512);
        assert!(out.starts_with(b"3\n0\n512\n8192\n1024\n65536\n0\n\0"));
        assert_eq!(data_size(&map), 1536);
        // Read back by the extraction's reader.
        let (read, taken) = crate::worker::archive::sparse::read_map(&mut &out[..]).unwrap();
        assert_eq!((read, taken), (map.to_vec(), 512));
    }

    #[test]
    fn a_long_map_spans_blocks() {
        let map: Vec<(u64, u64)> = (0..100).map(|i| (i * 1_000_000, 4096)).collect();
        let mut out = Vec::new();
        write_map(&mut out, &map).unwrap();
        assert_eq!(out.len() as u64, map_size(&map));
        assert_eq!(out.len() % 512, 0);
        assert!(out.len() > 512);
    }

    #[test]
    fn holes_found_by_seeking() {
        let file = tempfile::tempfile().unwrap();
        let size = 8 << 20;
        file.set_len(size).unwrap();
        file.write_all_at(&[1; 4096], 1 << 20).unwrap();
        file.write_all_at(&[2; 4096], 4 << 20).unwrap();
        let fd = OwnedFd::from(file.try_clone().unwrap());
        let map = regions(&fd, &stat_of(&file)).unwrap().expect("holes");
        // Filesystems allocate in blocks of their own: each region holds
        // what was written, and the map ends at the size.
        assert_eq!(map.last(), Some(&(size, 0)));
        assert!(map.len() >= 3, "{map:?}");
        assert!(map[0].0 <= 1 << 20 && map[0].0 + map[0].1 >= (1 << 20) + 4096);
        assert!(data_size(&map) < 1 << 20, "{map:?}");
        // The position is back at the start.
        assert_eq!(seek(&fd, SeekFrom::Current(0)).unwrap(), 0);
    }

    #[test]
    fn all_hole_and_no_hole() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(1 << 20).unwrap();
        let fd = OwnedFd::from(file.try_clone().unwrap());
        let map = regions(&fd, &stat_of(&file)).unwrap();
        assert_eq!(map, Some(vec![(1 << 20, 0)]));
        let full = tempfile::tempfile().unwrap();
        full.write_all_at(&[5; 100_000], 0).unwrap();
        let fd = OwnedFd::from(full.try_clone().unwrap());
        assert_eq!(regions(&fd, &stat_of(&full)).unwrap(), None);
        let empty = tempfile::tempfile().unwrap();
        let fd = OwnedFd::from(empty.try_clone().unwrap());
        assert_eq!(regions(&fd, &stat_of(&empty)).unwrap(), None);
    }
}
