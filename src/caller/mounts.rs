//! Mounts below a destination.
//!
//! The worker confines itself to a non-recursive clone of the destination's
//! mount: a filesystem mounted below the destination is not in it, and what
//! that mount hides on the destination's own filesystem (files under the
//! mount point) would be in reach of the archive, to link or replace. Such a
//! destination is refused, as root and as any user alike (in a user namespace
//! the kernel refuses to clone a tree whose submounts are locked).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The first mount point strictly below `dest` (canonical), if any, as seen in
/// this process's mount table.
pub(crate) fn first_mount_below(dest: &Path) -> std::io::Result<Option<PathBuf>> {
    let table = std::fs::read("/proc/self/mountinfo")?;
    let below = mount_points(&table).find(|point| is_below(point, dest));
    Ok(below)
}

/// The mount points of a `mountinfo` table (the fifth field, unescaped).
fn mount_points(table: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    table
        .split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .map(|field| PathBuf::from(OsString::from_vec(unescape(field))))
}

/// `\040`-style octal escapes (space, tab, newline, backslash) decoded.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

fn is_below(point: &Path, dest: &Path) -> bool {
    let (point, dest) = (point.as_os_str().as_bytes(), dest.as_os_str().as_bytes());
    let dest = dest.strip_suffix(b"/").unwrap_or(dest);
    point.len() > dest.len() + 1 && point.starts_with(dest) && point[dest.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[u8] = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
        30 22 0:26 / /srv/dest/sub rw - tmpfs tmpfs rw\n\
        31 22 0:27 / /srv/destination rw - tmpfs tmpfs rw\n\
        32 22 0:28 / /srv/with\\040space/inner rw - tmpfs tmpfs rw\n";

    #[test]
    fn mounts_strictly_below_are_found() {
        let below = |dest: &str| mount_points(TABLE).find(|p| is_below(p, Path::new(dest)));
        assert_eq!(below("/srv/dest"), Some(PathBuf::from("/srv/dest/sub")));
        assert_eq!(below("/srv/dest/"), Some(PathBuf::from("/srv/dest/sub")));
        // A sibling sharing the prefix, the mount itself, and above it are not below.
        assert_eq!(below("/srv/dest/sub"), None);
        assert_eq!(below("/srv/destination"), None);
        assert_eq!(
            below("/srv/with space"),
            Some(PathBuf::from("/srv/with space/inner"))
        );
        assert_eq!(below("/srv/other"), None);
    }
}
