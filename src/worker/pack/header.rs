//! One entry's headers, as a POSIX archive writes them: a ustar header, and
//! before it a PAX extended header with what ustar cannot hold (a long name
//! or link target, a large size, id or time, a sparse file's real name and
//! size, extended attributes).

use std::io::{self, Write};

use crate::report::EntryKind;

/// A tar block.
const BLOCK: usize = 512;
/// The largest value of an 11-digit octal field (size, mtime).
const MAX_OCTAL_11: u64 = 0o777_7777_7777;
/// The largest value of a 7-digit octal field (uid, gid, device numbers).
const MAX_OCTAL_7: u64 = 0o777_7777;

/// What an entry's header records.
pub(super) struct Record {
    /// The name in the archive (a directory's ends with `/`).
    pub name: Vec<u8>,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Bytes of data that follow (files only; a sparse file's map and
    /// data regions).
    pub size: u64,
    /// A symlink's target or a hard link's first name.
    pub link: Option<Vec<u8>>,
    pub device: (u32, u32),
    /// Extended attributes (name, value), sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A sparse file's real size (its data: the map, then the regions).
    pub sparse: Option<u64>,
}

/// Writes the headers of `record` (its data is the caller's to write).
pub(super) fn write(out: &mut impl Write, record: &Record) -> io::Result<()> {
    let mut pax = Vec::new();
    let mut header = tar::Header::new_ustar();
    // A sparse file's real name is a record; its header's fits in ustar.
    let full_name = match record.sparse {
        Some(_) => sparse_name(&record.name),
        None => record.name.clone(),
    };
    let split = split_name(&full_name);
    if split.is_none() {
        pax_record(&mut pax, b"path", &full_name);
    }
    let (prefix, name) = split.unwrap_or((&[][..], cut(&full_name, 100)));
    {
        let ustar = header.as_ustar_mut().expect("a ustar header");
        ustar.name[..name.len()].copy_from_slice(name);
        ustar.prefix[..prefix.len()].copy_from_slice(prefix);
    }
    if let Some(link) = &record.link {
        if link.len() > 100 {
            pax_record(&mut pax, b"linkpath", link);
        }
        header.as_old_mut().linkname[..link.len().min(100)].copy_from_slice(cut(link, 100));
    }
    header.set_entry_type(entry_type(record.kind));
    let uid = numeric(&mut pax, b"uid", record.uid, MAX_OCTAL_7);
    let gid = numeric(&mut pax, b"gid", record.gid, MAX_OCTAL_7);
    let size = numeric(&mut pax, b"size", record.size, MAX_OCTAL_11);
    let mtime = match u64::try_from(record.mtime) {
        Ok(t) => numeric(&mut pax, b"mtime", t, MAX_OCTAL_11),
        Err(_) => {
            pax_record(&mut pax, b"mtime", record.mtime.to_string().as_bytes());
            0
        }
    };
    {
        let fields = header.as_old_mut();
        octal(&mut fields.mode, u64::from(record.mode & 0o7777));
        octal(&mut fields.uid, uid);
        octal(&mut fields.gid, gid);
        octal(&mut fields.size, size);
        octal(&mut fields.mtime, mtime);
    }
    if matches!(record.kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
        let (major, minor) = record.device;
        let major = numeric(&mut pax, b"SCHILY.devmajor", major.into(), MAX_OCTAL_7);
        let minor = numeric(&mut pax, b"SCHILY.devminor", minor.into(), MAX_OCTAL_7);
        header.set_device_major(major as u32)?;
        header.set_device_minor(minor as u32)?;
    }
    if let Some(real_size) = record.sparse {
        sparse_records(&mut pax, &record.name, real_size);
    }
    for (key, value) in &record.xattrs {
        pax_record(&mut pax, &[&b"SCHILY.xattr."[..], key].concat(), value);
    }
    set_checksum(&mut header);
    if !pax.is_empty() {
        write_pax(out, &pax, name, mtime)?;
    }
    out.write_all(header.as_bytes())
}

/// Writes `value` into a header field in octal, right-aligned and
/// zero-padded, a NUL last: what the `tar` crate's setters write, without
/// their `format!` (six of them an entry were ~6% of the time packing
/// 100,000 small files). The callers keep values within the field
/// ([`numeric`]).
fn octal(field: &mut [u8], mut value: u64) {
    let Some((last, digits)) = field.split_last_mut() else {
        return;
    };
    *last = 0;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (value & 7) as u8;
        value >>= 3;
    }
}

/// The header's checksum: the sum of its bytes, the checksum field counted
/// as spaces, in octal (7 digits and a NUL, as the `tar` crate writes it).
fn set_checksum(header: &mut tar::Header) {
    let sum = header.as_bytes().iter().map(|b| u64::from(*b)).sum::<u64>();
    let field = &mut header.as_old_mut().cksum;
    let counted = field.iter().map(|b| u64::from(*b)).sum::<u64>();
    let sum = sum - counted + 8 * u64::from(b' ');
    octal(field, sum);
}

/// The records of GNU tar's sparse format 1.0 (the map is in the data).
fn sparse_records(pax: &mut Vec<u8>, name: &[u8], real_size: u64) {
    pax_record(pax, b"GNU.sparse.major", b"1");
    pax_record(pax, b"GNU.sparse.minor", b"0");
    pax_record(pax, b"GNU.sparse.name", name);
    pax_record(
        pax,
        b"GNU.sparse.realsize",
        real_size.to_string().as_bytes(),
    );
}

/// The header name of a sparse file `name`, as GNU tar makes it
/// (`%d/GNUSparseFile.%p/%f`, cut to the 100 bytes of ustar's name field),
/// with 0 for the process id so that archives are reproducible: readers
/// that know no sparse format extract the map and the regions there, not
/// over `name`.
fn sparse_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|b| *b == b'/') {
        Some(at) => (&trimmed[..at], &trimmed[at + 1..]),
        None => (&b"."[..], trimmed),
    };
    let mut sparse = [dir, b"/GNUSparseFile.0/", base].concat();
    sparse.truncate(100);
    // Cut after a `/`, the name would read as a directory's: no data.
    while sparse.len() > 1 && sparse.ends_with(b"/") {
        sparse.pop();
    }
    sparse
}

/// `value` for a numeric field of at most `max`; a larger one goes to a PAX
/// record `key` as well.
fn numeric(pax: &mut Vec<u8>, key: &[u8], value: u64, max: u64) -> u64 {
    if value > max {
        pax_record(pax, key, value.to_string().as_bytes());
    }
    value.min(max)
}

/// The ustar type flag of `kind`.
fn entry_type(kind: EntryKind) -> tar::EntryType {
    match kind {
        EntryKind::Directory => tar::EntryType::Directory,
        EntryKind::Symlink => tar::EntryType::Symlink,
        EntryKind::HardLink => tar::EntryType::Link,
        EntryKind::Fifo => tar::EntryType::Fifo,
        EntryKind::CharDevice => tar::EntryType::Char,
        EntryKind::BlockDevice => tar::EntryType::Block,
        _ => tar::EntryType::Regular,
    }
}

/// `name` as ustar's prefix and name fields (split at a `/`), if it fits.
fn split_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    // The last `/` that leaves at most 100 bytes after it and 155 before.
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let at = trimmed
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| i)
        .find(|&i| name.len() - i - 1 <= 100)?;
    (at <= 155 && at > 0).then(|| (&name[..at], &name[at + 1..]))
}

/// The first `max` bytes of `bytes`.
fn cut(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

/// Appends one PAX record (`LEN key=value\n`, LEN counting itself).
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A PAX extended header (`x`) holding `records`, named after the entry.
fn write_pax(out: &mut impl Write, records: &[u8], name: &[u8], mtime: u64) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    let base = name
        .rsplit(|b| *b == b'/')
        .find(|c| !c.is_empty())
        .unwrap_or(b"entry");
    let mut pax_name = b"PaxHeaders/".to_vec();
    pax_name.extend_from_slice(cut(base, 100 - pax_name.len()));
    header.as_ustar_mut().expect("a ustar header").name[..pax_name.len()]
        .copy_from_slice(&pax_name);
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(records.len() as u64);
    header.set_cksum();
    out.write_all(header.as_bytes())?;
    out.write_all(records)?;
    out.write_all(&[0u8; BLOCK][..padding(records.len() as u64)])
}

/// The zeros that fill `size` bytes of data to a whole block.
pub(super) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The octal fields and the checksum are the `tar` crate's, byte for
    /// byte, across each field's range.
    #[test]
    fn octal_fields_and_checksum_as_the_tar_crate_writes_them() {
        let values = [
            0,
            1,
            7,
            8,
            0o644,
            0o7777,
            65_534,
            MAX_OCTAL_7,
            1 << 30,
            MAX_OCTAL_11,
        ];
        for value in values {
            let mut ours = tar::Header::new_ustar();
            let mut theirs = tar::Header::new_ustar();
            ours.as_ustar_mut().expect("ustar").name[..4].copy_from_slice(b"name");
            theirs.as_ustar_mut().expect("ustar").name[..4].copy_from_slice(b"name");
            let small = value.min(MAX_OCTAL_7);
            {
                let f = ours.as_old_mut();
                octal(&mut f.mode, small & 0o7777);
                octal(&mut f.uid, small);
                octal(&mut f.gid, small);
                octal(&mut f.size, value);
                octal(&mut f.mtime, value);
            }
            set_checksum(&mut ours);
            theirs.set_mode((small & 0o7777) as u32);
            theirs.set_uid(small);
            theirs.set_gid(small);
            theirs.set_size(value);
            theirs.set_mtime(value);
            theirs.set_cksum();
            assert_eq!(
                ours.as_bytes()[..],
                theirs.as_bytes()[..],
                "value {value:o}"
            );
        }
    }

    #[test]
    fn records_count_their_own_length() {
        let mut out = Vec::new();
        pax_record(&mut out, b"path", b"x");
        assert_eq!(out, b"9 path=x\n");
        let mut out = Vec::new();
        pax_record(&mut out, b"path", &[b'a'; 95]);
        assert_eq!(out.len(), 105);
        assert!(out.starts_with(b"105 path="));
    }

    #[test]
    fn names_split_at_a_slash() {
        let long = [vec![b'd'; 120], b"/".to_vec(), vec![b'f'; 50]].concat();
        let (prefix, name) = split_name(&long).unwrap();
        assert_eq!((prefix.len(), name.len()), (120, 50));
        assert!(split_name(&[b'x'; 101]).is_none());
        assert!(split_name(&[vec![b'd'; 200], b"/f".to_vec()].concat()).is_none());
    }

    #[test]
    fn a_long_name_is_read_back() {
        let name = [vec![b'n'; 300], b".txt".to_vec()].concat();
        let record = Record {
            name: name.clone(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 1 << 30,
            gid: 5,
            mtime: -5,
            size: 3,
            link: None,
            device: (0, 0),
            xattrs: Vec::new(),
            sparse: None,
        };
        let mut out = Vec::new();
        write(&mut out, &record).unwrap();
        out.extend_from_slice(b"abc");
        out.resize(out.len() + padding(3) + 2 * BLOCK, 0);
        let mut archive = tar::Archive::new(&out[..]);
        let mut entries = archive.entries().unwrap();
        let entry = entries.next().unwrap().unwrap();
        assert_eq!(&*entry.path_bytes(), &name[..]);
        assert_eq!(entry.header().uid().unwrap(), 1 << 30);
        assert_eq!(entry.size(), 3);
    }

    #[test]
    fn sparse_names_as_gnu_tar_makes_them() {
        assert_eq!(sparse_name(b"a.img"), b"./GNUSparseFile.0/a.img");
        assert_eq!(sparse_name(b"d/e/a.img"), b"d/e/GNUSparseFile.0/a.img");
        let long = [vec![b'd'; 90], b"/".to_vec(), vec![b'f'; 90]].concat();
        assert_eq!(sparse_name(&long).len(), 100);
        // A directory of 83 bytes: the cut would end with the `/`.
        let cut = [vec![b'd'; 83], b"/f".to_vec()].concat();
        let name = sparse_name(&cut);
        assert_eq!(
            name,
            [vec![b'd'; 83], b"/GNUSparseFile.0".to_vec()].concat()
        );
    }

    #[test]
    fn sparse_and_xattr_records() {
        let record = Record {
            name: b"disk.img".to_vec(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 512,
            link: None,
            device: (0, 0),
            xattrs: vec![(b"user.k".to_vec(), b"v\0\n".to_vec())],
            sparse: Some(1 << 30),
        };
        let mut out = Vec::new();
        write(&mut out, &record).unwrap();
        let records = &out[BLOCK..2 * BLOCK];
        let expected: &[u8] = b"22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n\
            28 GNU.sparse.name=disk.img\n34 GNU.sparse.realsize=1073741824\n\
            27 SCHILY.xattr.user.k=v\0\n\n";
        assert!(
            records.starts_with(expected),
            "{:?}",
            String::from_utf8_lossy(records)
        );
        let ustar = &out[2 * BLOCK..3 * BLOCK];
        assert!(ustar.starts_with(b"./GNUSparseFile.0/disk.img\0"));
        // The size field is the stored size, not the real one.
        assert_eq!(&ustar[124..136], b"00000001000\0");
    }
}
