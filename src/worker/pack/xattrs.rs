//! An entry's extended attributes, as `PackOptions::xattrs` allows them:
//! read through the descriptor the walk holds (`flistxattr`, `fgetxattr`;
//! the packing filter allows no call that takes a path), sorted by name so
//! that identical trees give identical archives, bounded in size.

use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::{fgetxattr, flistxattr};
use rustix::io::Errno;

use crate::options::XattrPolicy;

/// Linux's bounds on one attribute list and one value (`XATTR_LIST_MAX`,
/// `XATTR_SIZE_MAX`): the buffers always hold what the kernel returns.
const MAX_LIST: usize = 64 << 10;
const MAX_VALUE: usize = 64 << 10;
/// The most bytes of values one entry records, so that its PAX header stays
/// well below what extraction takes by default (1 MiB:
/// `Limits::max_extension_size`).
const MAX_TOTAL: usize = 256 << 10;

/// One entry's attributes: (name, value) sorted by name, and why an
/// allowed one was left out, if one was (the first reason).
#[derive(Debug, Default)]
pub(super) struct Xattrs {
    pub list: Vec<(Vec<u8>, Vec<u8>)>,
    pub left_out: Option<String>,
}

impl Xattrs {
    fn leave_out(&mut self, why: impl FnOnce() -> String) {
        self.left_out
            .get_or_insert_with(|| format!("packed without an extended attribute: {}", why()));
    }
}

/// Reads the attributes a policy allows; its buffers are kept from entry to
/// entry.
pub(super) struct Reader {
    policy: XattrPolicy,
    names: Vec<u8>,
    value: Vec<u8>,
    /// The most bytes of values per entry ([`MAX_TOTAL`]).
    max_total: usize,
}

impl Reader {
    /// A reader for `policy`; none when it allows nothing (no call made).
    pub(super) fn new(policy: XattrPolicy) -> Option<Self> {
        (policy != XattrPolicy::None).then(|| Reader {
            policy,
            names: vec![0; MAX_LIST],
            value: vec![0; MAX_VALUE],
            max_total: MAX_TOTAL,
        })
    }

    /// The allowed attributes of the file or directory open as `fd`. A
    /// filesystem without attributes has none.
    pub(super) fn read(&mut self, fd: BorrowedFd<'_>) -> Xattrs {
        let mut found = Xattrs::default();
        let listed = match flistxattr(fd, &mut self.names[..]) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return found,
            Err(e) => {
                found.leave_out(|| format!("they cannot be listed ({})", io::Error::from(e)));
                return found;
            }
        };
        let policy = self.policy;
        let mut names: Vec<&[u8]> = self.names[..listed]
            .split(|b| *b == 0)
            .filter(|name| !name.is_empty() && policy.allows(name))
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut total = 0usize;
        for name in names {
            // GNU tar escapes these in a record's key and sandtar reads keys
            // as they are: readers would disagree on the name.
            if name.contains(&b'=') || name.contains(&b'%') {
                found.leave_out(|| "its name holds '=' or '%'".into());
                continue;
            }
            let len = match fgetxattr(fd, name, &mut self.value[..]) {
                Ok(len) => len,
                // Removed since it was listed.
                Err(Errno::NODATA) => continue,
                Err(e) => {
                    found.leave_out(|| format!("it cannot be read ({})", io::Error::from(e)));
                    continue;
                }
            };
            if total + len > self.max_total {
                let max = self.max_total;
                found.leave_out(|| format!("the values exceed {max} bytes"));
                continue;
            }
            total += len;
            found.list.push((name.to_vec(), self.value[..len].to_vec()));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Sets `user.NAME` on `file`, or says the filesystem cannot.
    fn set(file: &std::fs::File, name: &str, value: &[u8]) -> bool {
        rustix::fs::fsetxattr(file, name, value, rustix::fs::XattrFlags::empty()).is_ok()
    }

    #[test]
    fn allowed_attributes_sorted_and_bounded() {
        let file = tempfile::tempfile().unwrap();
        if !set(&file, "user.zz", b"last") {
            println!("NOTE: no user xattrs on the temporary directory's filesystem");
            return;
        }
        assert!(set(&file, "user.aa", b"\0binary\n"));
        assert!(set(&file, "user.overlay.opaque", b"y"));
        assert!(set(&file, "user.a=b", b"x"));
        let mut reader = Reader::new(XattrPolicy::User).unwrap();
        let found = reader.read(file.as_fd());
        let names: Vec<&[u8]> = found.list.iter().map(|(n, _)| &n[..]).collect();
        assert_eq!(names, [&b"user.aa"[..], b"user.zz"]);
        assert_eq!(found.list[0].1, b"\0binary\n");
        let why = found.left_out.expect("the name with '=' is left out");
        assert!(why.contains("'='"), "{why}");
        assert!(Reader::new(XattrPolicy::None).is_none());
    }

    #[test]
    fn values_past_the_total_are_left_out() {
        let file = tempfile::tempfile().unwrap();
        if !set(&file, "user.a", &[1; 600]) {
            println!("NOTE: no user xattrs on the temporary directory's filesystem");
            return;
        }
        assert!(set(&file, "user.b", &[2; 600]));
        assert!(set(&file, "user.c", &[3; 300]));
        let mut reader = Reader::new(XattrPolicy::All).unwrap();
        reader.max_total = 1000;
        let found = reader.read(file.as_fd());
        // The first fits, the second would pass the bound, the third fits.
        let names: Vec<&[u8]> = found.list.iter().map(|(n, _)| &n[..]).collect();
        assert_eq!(names, [&b"user.a"[..], b"user.c"]);
        assert!(found.left_out.unwrap().contains("exceed 1000 bytes"));
    }
}
