//! An entry's metadata, as the headers give it (ustar, GNU and PAX, with the
//! PAX global headers seen so far): what the applier needs to know.

use std::io;

use rustix::fs::Timespec;

use crate::options::Parsing;
use crate::report::{Divergence, EntryKind};
use crate::worker::names;

use super::headers::Headers;
use super::pax;
use super::sparse::{PaxSparse, Sparse};

/// Everything the applier needs to know about an entry, decoded from its headers.
pub(crate) struct Meta {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: Option<Timespec>,
    pub link: Option<Vec<u8>>,
    pub device: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of data in the archive.
    pub size: u64,
    /// How the data maps onto a sparse file.
    pub sparse: Option<Sparse>,
    /// How GNU-only readings shaped the entry.
    pub notes: Vec<Divergence>,
}

/// PAX global header records (`g` entries) that apply to every later entry,
/// and how records are read.
pub(super) struct PaxGlobals {
    mtime: Option<Timespec>,
    uid: Option<u64>,
    gid: Option<u64>,
    /// An unparseable time is ignored (GNU tar), not refused.
    lenient: bool,
}

impl PaxGlobals {
    pub(super) fn new(parsing: Parsing) -> Self {
        PaxGlobals {
            mtime: None,
            uid: None,
            gid: None,
            lenient: parsing == Parsing::GnuTar,
        }
    }

    /// Takes the data of one global header. `path` and `linkpath` are ignored
    /// (as in Go's archive/tar; GNU tar renames every later member); `size` is
    /// refused (GNU tar frames every later member with it, the `tar` crate and
    /// Go ignore it).
    pub(super) fn update(&mut self, data: &[u8]) -> Result<(), String> {
        for record in pax::parse(data).map_err(|e| e.to_string())? {
            let value = record.value;
            match record.key {
                b"mtime" => match parse_pax_time(value) {
                    Some(time) => self.mtime = Some(time),
                    None if self.lenient => self.mtime = time_prefix(value).or(self.mtime),
                    None => return Err("invalid PAX mtime record".into()),
                },
                b"uid" => self.uid = Some(pax::decimal(value).ok_or("invalid PAX uid record")?),
                b"gid" => self.gid = Some(pax::decimal(value).ok_or("invalid PAX gid record")?),
                b"size" => return Err("a PAX global header with a size record".into()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The entry's name and link target. A PAX `path` or `linkpath` wins over a
/// GNU long name, as in GNU tar; a long name's trailing NUL is dropped.
pub(super) fn names(headers: &Headers, records: &[pax::Record<'_>]) -> (Vec<u8>, Option<Vec<u8>>) {
    let last = |key: &[u8]| records.iter().rev().find(|r| r.key == key).map(|r| r.value);
    let long = |bytes: &Vec<u8>| match bytes.last() {
        Some(0) => bytes[..bytes.len() - 1].to_vec(),
        _ => bytes.clone(),
    };
    let header = &headers.header;
    let name = match (last(b"path"), &headers.long_name) {
        (Some(path), _) => path.to_vec(),
        (None, Some(bytes)) => long(bytes),
        (None, None) => header.path_bytes().into_owned(),
    };
    let link = match (last(b"linkpath"), &headers.long_link) {
        (Some(link), _) => Some(link.to_vec()),
        (None, Some(bytes)) => Some(long(bytes)),
        (None, None) => header.link_name_bytes().map(|l| l.into_owned()),
    };
    (name, link)
}

/// Cuts the name and link target at their first NUL byte, as GNU tar reads
/// them (C strings); whether anything was cut.
pub(super) fn cut_at_nul(name: &mut Vec<u8>, link: &mut Option<Vec<u8>>) -> bool {
    let mut cut = |bytes: &mut Vec<u8>| match bytes.iter().position(|b| *b == 0) {
        Some(at) => {
            bytes.truncate(at);
            true
        }
        None => false,
    };
    let name_cut = cut(name);
    let link_cut = link.as_mut().is_some_and(&mut cut);
    name_cut || link_cut
}

/// Collects what the applier needs from an entry's header and PAX
/// `records`: `kind` and `link` as the names gave them, `size` its data.
pub(super) fn read_meta(
    header: &tar::Header,
    globals: &PaxGlobals,
    records: &[pax::Record<'_>],
    kind: EntryKind,
    link: Option<Vec<u8>>,
    size: u64,
) -> io::Result<Meta> {
    let mut meta = Meta {
        kind,
        // An empty mode field is mode 0, as GNU tar reads it.
        mode: header.mode().unwrap_or(0),
        uid: globals.uid.or(header.uid().ok()).unwrap_or(0),
        gid: globals.gid.or(header.gid().ok()).unwrap_or(0),
        mtime: globals.mtime.or_else(|| {
            header.mtime().ok().map(|s| Timespec {
                tv_sec: s as i64,
                tv_nsec: 0,
            })
        }),
        link,
        device: device(header, kind),
        xattrs: Vec::new(),
        size,
        sparse: None,
        notes: Vec::new(),
    };
    let pax_sparse = read_records(&mut meta, records, globals.lenient)?;
    // Old-GNU sparse entries get their map in the loop.
    if kind == EntryKind::File && header.entry_type() != tar::EntryType::GNUSparse {
        meta.sparse = pax_sparse.finish()?;
    }
    Ok(meta)
}

/// The entry's kind. Pre-POSIX archives mark directories only by a trailing
/// slash, as GNU tar reads them (but a "file" named `/` does not get to change
/// the root).
pub(super) fn kind_of_named(t: tar::EntryType, name: &[u8]) -> EntryKind {
    let kind = kind_of(t);
    if kind == EntryKind::File
        && matches!(t, tar::EntryType::Regular | tar::EntryType::Continuous)
        && name.ends_with(b"/")
        && names::normalize(name).is_ok_and(|p| !p.is_empty())
    {
        return EntryKind::Directory;
    }
    kind
}

/// Only nodes have device numbers; the `tar` crate formats an error message
/// (with the entry's name) for every empty field it is asked to read.
fn device(header: &tar::Header, kind: EntryKind) -> (u32, u32) {
    match kind {
        EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        ),
        _ => (0, 0),
    }
}

/// Applies an entry's PAX records to `meta`; returns the `GNU.sparse.*` ones.
///
/// Be as strict as GNU tar: a value it would not read makes other tools see
/// something else (the CVE-2025-62518 family). The last record of a key wins,
/// as in GNU tar. `lenient`: an unparseable time is ignored, as GNU tar
/// does (noted).
fn read_records(
    meta: &mut Meta,
    records: &[pax::Record<'_>],
    lenient: bool,
) -> io::Result<PaxSparse> {
    let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut pax_sparse = PaxSparse::default();
    for record in records {
        let value = record.value;
        match record.key {
            // The name was taken from the records already (`names`).
            b"path" | b"linkpath" => {}
            // Unreadable: refused (Go refuses; GNU tar warns and ignores it).
            b"mtime" => match parse_pax_time(value) {
                Some(time) => meta.mtime = Some(time),
                None if lenient => {
                    meta.mtime = time_prefix(value).or(meta.mtime);
                    meta.notes.push(Divergence::BadPaxTime);
                }
                None => return Err(malformed("invalid PAX mtime record")),
            },
            b"uid" => {
                meta.uid = pax::decimal(value).ok_or_else(|| malformed("invalid PAX uid record"))?
            }
            b"gid" => {
                meta.gid = pax::decimal(value).ok_or_else(|| malformed("invalid PAX gid record"))?
            }
            key => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    meta.xattrs.push((name.to_vec(), value.to_vec()));
                } else {
                    pax_sparse.record(key, value)?;
                }
            }
        }
    }
    Ok(pax_sparse)
}

/// GNU tar's reading of an unparseable PAX time: the number it starts with
/// (`999xxx` is 999), if any.
fn time_prefix(v: &[u8]) -> Option<Timespec> {
    let sign = usize::from(v.first() == Some(&b'-'));
    let digits = v[sign..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut end = sign + digits;
    if v.get(end) == Some(&b'.') {
        end += 1 + v[end + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    }
    parse_pax_time(&v[..end])
}

/// Parses a PAX time (`1700000000.25`, possibly negative) into a timespec.
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = int.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    let mut secs = secs;
    if s.starts_with('-') && nanos > 0 {
        // -1.25 is 1.25 s before the epoch: -2 s + 0.75 s.
        secs -= 1;
        nanos = 1_000_000_000 - nanos;
    }
    Some(Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    })
}

/// The kind of entry a type flag stands for.
pub(super) fn kind_of(t: tar::EntryType) -> EntryKind {
    use tar::EntryType::*;
    match t {
        Regular | Continuous | GNUSparse => EntryKind::File,
        Directory => EntryKind::Directory,
        Symlink => EntryKind::Symlink,
        Link => EntryKind::HardLink,
        Fifo => EntryKind::Fifo,
        Char => EntryKind::CharDevice,
        Block => EntryKind::BlockDevice,
        // GNU incremental dumps: a directory (its data is the listing).
        other if other.as_byte() == b'D' => EntryKind::Directory,
        other => EntryKind::Other(other.as_byte()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 250_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(parse_pax_time(b"x").is_none());
        assert!(parse_pax_time(b"1.2x").is_none());
        let t = time_prefix(b"999xxx9324.432432444444").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (999, 0));
        let t = time_prefix(b"-12.5e3").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-13, 500_000_000));
        assert!(time_prefix(b"x12").is_none());
        assert!(time_prefix(b"").is_none());
    }
}
