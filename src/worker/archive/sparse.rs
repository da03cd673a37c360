//! GNU sparse files, written sparse: holes stay holes.
//!
//! Three encodings reach the applier. Old-GNU (`S` type flag) files carry
//! their map in the header and its extension blocks (`old_gnu_map`); the
//! applier gets the stored chunks, with the map as a `Map`. PAX 0.0 and 0.1 carry the map
//! of data chunks in PAX records
//! (`GNU.sparse.offset`/`numbytes` pairs, or `GNU.sparse.map`), PAX 1.0 at the
//! start of the entry's data (decimal numbers, one per line, padded to 512 bytes);
//! the chunks follow, each written at its offset. The real size and name come from
//! `GNU.sparse.realsize`/`size` and `GNU.sparse.name`.

use std::io::{self, Read};

/// The most chunks a sparse map may list (packing writes no more).
pub(crate) const MAX_CHUNKS: u64 = 1 << 20;

/// How a sparse entry's data maps onto its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// (offset, length) chunks, in order, from the PAX records.
    Map(Vec<(u64, u64)>),
    /// The map is at the start of the data (PAX 1.0).
    MapInData,
}

/// A sparse entry: its layout, real size, and real name (PAX forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sparse {
    pub layout: Layout,
    pub real_size: u64,
    pub name: Option<Vec<u8>>,
}

/// Collects `GNU.sparse.*` PAX records as they are seen.
#[derive(Default)]
pub(crate) struct PaxSparse {
    major: Option<u64>,
    minor: Option<u64>,
    name: Option<Vec<u8>>,
    real_size: Option<u64>,
    map: Option<Vec<u8>>,
    offsets: Vec<u64>,
    lengths: Vec<u64>,
}

fn number(v: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| malformed("invalid number in a GNU sparse record"))
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl PaxSparse {
    /// Takes one PAX record; ignores keys that are not `GNU.sparse.*`.
    pub(crate) fn record(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let Some(key) = key.strip_prefix(b"GNU.sparse.") else {
            return Ok(());
        };
        match key {
            b"major" => self.major = Some(number(value)?),
            b"minor" => self.minor = Some(number(value)?),
            b"name" => self.name = Some(value.to_vec()),
            b"realsize" | b"size" => self.real_size = Some(number(value)?),
            b"map" => self.map = Some(value.to_vec()),
            b"offset" => self.offsets.push(number(value)?),
            b"numbytes" => self.lengths.push(number(value)?),
            _ => {}
        }
        if (self.offsets.len() + self.lengths.len()) as u64 > 2 * MAX_CHUNKS {
            return Err(malformed("too many GNU sparse chunks"));
        }
        Ok(())
    }

    /// The sparse layout the records describe, if any.
    pub(crate) fn finish(self) -> io::Result<Option<Sparse>> {
        let real_size = || {
            self.real_size
                .ok_or_else(|| malformed("GNU sparse file without a size"))
        };
        let layout = if self.major == Some(1) {
            if self.minor != Some(0) {
                return Err(malformed("unsupported GNU sparse format version"));
            }
            Layout::MapInData
        } else if let Some(map) = &self.map {
            let numbers = std::str::from_utf8(map)
                .map_err(|_| malformed("invalid GNU.sparse.map"))?
                .split(',')
                .map(|n| number(n.as_bytes()))
                .collect::<io::Result<Vec<u64>>>()?;
            if numbers.len() % 2 != 0 || numbers.len() as u64 > 2 * MAX_CHUNKS {
                return Err(malformed("invalid GNU.sparse.map"));
            }
            Layout::Map(numbers.chunks(2).map(|c| (c[0], c[1])).collect())
        } else if !self.offsets.is_empty() || !self.lengths.is_empty() {
            if self.offsets.len() != self.lengths.len() {
                return Err(malformed("unpaired GNU.sparse.offset/numbytes records"));
            }
            Layout::Map(
                self.offsets
                    .iter()
                    .copied()
                    .zip(self.lengths.iter().copied())
                    .collect(),
            )
        } else if self.major.is_some() || self.real_size.is_some() || self.name.is_some() {
            return Err(malformed("incomplete GNU sparse records"));
        } else {
            return Ok(None);
        };
        let sparse = Sparse {
            layout,
            real_size: real_size()?,
            name: self.name.clone(),
        };
        if let Layout::Map(map) = &sparse.layout {
            check(map, sparse.real_size)?;
        }
        Ok(Some(sparse))
    }
}

/// Chunks must be in order, not overlap, and end within the real size.
pub(crate) fn check(map: &[(u64, u64)], real_size: u64) -> io::Result<()> {
    let mut end = 0u64;
    for &(offset, length) in map {
        let chunk_end = offset
            .checked_add(length)
            .ok_or_else(|| malformed("GNU sparse chunk overflows"))?;
        if offset < end || chunk_end > real_size {
            return Err(malformed(
                "GNU sparse chunks overlap or exceed the file's size",
            ));
        }
        end = chunk_end;
    }
    Ok(())
}

/// Reads a PAX 1.0 sparse map from the start of `data`. Returns the map and the
/// bytes it took (a multiple of 512).
pub(crate) fn read_map(data: &mut dyn Read) -> io::Result<(Vec<(u64, u64)>, u64)> {
    let mut consumed = 0u64;
    let mut line = Vec::new();
    let mut next = |consumed: &mut u64| -> io::Result<u64> {
        line.clear();
        loop {
            let mut byte = [0u8; 1];
            data.read_exact(&mut byte)
                .map_err(|_| malformed("truncated GNU sparse map"))?;
            *consumed += 1;
            if byte[0] == b'\n' {
                break;
            }
            if line.len() >= 20 {
                return Err(malformed("invalid GNU sparse map"));
            }
            line.push(byte[0]);
        }
        number(&line)
    };
    let count = next(&mut consumed)?;
    if count > MAX_CHUNKS {
        return Err(malformed("too many GNU sparse chunks"));
    }
    let mut map = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let offset = next(&mut consumed)?;
        let length = next(&mut consumed)?;
        map.push((offset, length));
    }
    let padding = (512 - consumed % 512) % 512;
    io::copy(&mut data.take(padding), &mut io::sink())?;
    Ok((map, consumed + padding))
}

/// The chunks of an old-GNU sparse entry (`S`): (offset, length) in the
/// file, from its header and extension `blocks`. The chunks must hold the
/// `stored` bytes of data exactly, in order, ending at `real` bytes (GNU tar
/// too fails on a map that ends sooner: Go's `sparse-formats.tar`).
pub(super) fn old_gnu_map(
    header: &tar::Header,
    blocks: &[[u8; 512]],
    stored: u64,
    real: u64,
) -> Result<Vec<(u64, u64)>, &'static str> {
    const BAD: &str = "invalid old-GNU sparse map";
    let gnu = header.as_gnu().ok_or(BAD)?;
    let mut map = Vec::new();
    let mut add = |entry: &tar::GnuSparseHeader| -> Result<(), &'static str> {
        // As the `tar` crate: an entry whose fields start with NUL is none.
        if !entry.is_empty() {
            map.push((
                entry.offset().map_err(|_| BAD)?,
                entry.length().map_err(|_| BAD)?,
            ));
        }
        Ok(())
    };
    gnu.sparse.iter().try_for_each(&mut add)?;
    for block in blocks {
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.as_mut_bytes().copy_from_slice(block);
        ext.sparse.iter().try_for_each(&mut add)?;
    }
    check(&map, real).map_err(|_| "old-GNU sparse chunks overlap or exceed the file's size")?;
    let data = map
        .iter()
        .try_fold(0u64, |sum, (_, len)| sum.checked_add(*len));
    if data != Some(stored) {
        return Err("mismatch in sparse file chunks and entry size in header");
    }
    let end = map.last().map_or(0, |(offset, len)| offset + len);
    if end != real {
        return Err("mismatch in sparse file chunks and size in header");
    }
    Ok(map)
}

impl Sparse {
    /// GNU tar's size for a sparse file whose map ends before its real size:
    /// the end of its last chunk (it writes a trailing hole as an empty
    /// chunk at the real size). Whether the size changed.
    pub(crate) fn end_at_map(&mut self) -> bool {
        let Layout::Map(map) = &self.layout else {
            return false;
        };
        match map.last().map(|(offset, len)| offset + len) {
            Some(end) if end < self.real_size => {
                self.real_size = end;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_0_1_map() {
        let mut p = PaxSparse::default();
        p.record(b"GNU.sparse.size", b"10240").unwrap();
        p.record(b"GNU.sparse.map", b"0,512,8192,1024").unwrap();
        p.record(b"GNU.sparse.name", b"sp").unwrap();
        let s = p.finish().unwrap().unwrap();
        assert_eq!(s.layout, Layout::Map(vec![(0, 512), (8192, 1024)]));
        assert_eq!((s.real_size, s.name.as_deref()), (10240, Some(&b"sp"[..])));
    }

    #[test]
    fn bad_maps() {
        assert!(check(&[(0, 10), (5, 10)], 100).is_err());
        assert!(check(&[(90, 20)], 100).is_err());
        assert!(check(&[(u64::MAX, 2)], u64::MAX).is_err());
        let mut p = PaxSparse::default();
        p.record(b"GNU.sparse.offset", b"0").unwrap();
        p.record(b"GNU.sparse.size", b"10").unwrap();
        assert!(p.finish().is_err());
        assert!(PaxSparse::default().finish().unwrap().is_none());
    }

    #[test]
    fn pax_1_0_map_in_data() {
        let mut data = b"2\n0\n512\n8192\n1024\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"chunks");
        let mut reader = &data[..];
        let (map, consumed) = read_map(&mut reader).unwrap();
        assert_eq!(map, vec![(0, 512), (8192, 1024)]);
        assert_eq!(consumed, 512);
        assert_eq!(reader, b"chunks");
    }
}
