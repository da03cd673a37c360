//! Entry names, lexically: the policy that keeps results predictable (strip
//! leading `/`, refuse `..` components and NUL bytes, see [`normalize`]), and
//! names as the kernel takes them. Shared by the archive's limits (which
//! measure names as they will be used) and the applier.

use std::ffi::OsStr;

use crate::report::RejectReason;

/// `PATH_MAX`: longer names cannot be created in one call.
const PATH_MAX: usize = 4096;

/// Normalises an archive name: drops leading `/`, empty and `.` components;
/// refuses `..` components and NUL bytes. An empty result means the root.
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<u8>, RejectReason> {
    let out = normalize_lexically(raw)?;
    if out.len() >= PATH_MAX {
        return Err(RejectReason::NameTooLong);
    }
    Ok(out)
}

/// [`normalize`] without the `PATH_MAX` check (for the limits, which apply to
/// names of any length).
pub(crate) fn normalize_lexically(raw: &[u8]) -> Result<Vec<u8>, RejectReason> {
    if raw.contains(&0) {
        return Err(RejectReason::NulInName);
    }
    let mut out = Vec::with_capacity(raw.len());
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err(RejectReason::ParentComponent),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// Splits `a/b/c` into (`a/b`, `c`); a name without `/` has an empty parent.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// A name as system calls take it.
pub(crate) fn cpath(bytes: &[u8]) -> &OsStr {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_policy() {
        assert_eq!(normalize(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(normalize(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert_eq!(normalize(b"a/../b"), Err(RejectReason::ParentComponent));
        assert_eq!(normalize(b".."), Err(RejectReason::ParentComponent));
        assert_eq!(normalize(b"a\0b"), Err(RejectReason::NulInName));
        assert_eq!(normalize(b"a..b/..c").unwrap(), b"a..b/..c");
        assert_eq!(normalize(&vec![b'a'; 5000]), Err(RejectReason::NameTooLong));
    }

    #[test]
    fn split_parent() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }
}
