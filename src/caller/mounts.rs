//! Mounts below a destination.
//!
//! The worker confines itself to a non-recursive clone of the destination's
//! mount: a filesystem mounted below the destination is not in it, and what
//! that mount hides on the destination's own filesystem (files under the
//! mount point) would be in reach of the archive, to link or replace. Such a
//! destination is refused, as root and as any user alike (in a user namespace
//! the kernel refuses to clone a tree whose submounts are locked).

use std::ffi::OsString;
use std::io::{Read, Seek};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// The first mount point strictly below `dest` (canonical), if any, as seen in
/// this process's mount table.
pub(crate) fn first_mount_below(dest: &Path) -> std::io::Result<Option<PathBuf>> {
    static TABLE: Mutex<Option<MountTable>> = Mutex::new(None);
    let mut table = TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if table.is_none() {
        *table = Some(MountTable::open()?);
    }
    let table = table.as_mut().expect("opened above");
    table.refresh()?;
    Ok(table.points.iter().find(|p| is_below(p, dest)).cloned())
}

/// The mount points of this process's mount namespace, read again only when
/// the kernel says the table changed: `/proc/self/mountinfo`, kept open, polls
/// with `POLLPRI` after any mount or unmount since the last poll. Generating
/// the text costs more than the rest of a tiny job's work in the caller, and
/// mount tables rarely change between jobs.
struct MountTable {
    file: std::fs::File,
    points: Vec<PathBuf>,
    read_once: bool,
}

impl MountTable {
    fn open() -> std::io::Result<MountTable> {
        Ok(MountTable {
            file: std::fs::File::open("/proc/self/mountinfo")?,
            points: Vec::new(),
            read_once: false,
        })
    }

    /// Reads the table again if it changed (the poll clears the change, so
    /// it comes before the read: a change during the read shows next time).
    fn refresh(&mut self) -> std::io::Result<()> {
        let mut fds = [PollFd::new(&self.file, PollFlags::PRI)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero))?;
        let changed = fds[0].revents().intersects(PollFlags::PRI | PollFlags::ERR);
        if changed || !self.read_once {
            let mut text = Vec::new();
            self.file.rewind()?;
            self.file.read_to_end(&mut text)?;
            self.points = mount_points(&text).collect();
            self.read_once = true;
        }
        Ok(())
    }
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

    /// The cached table follows mounts and unmounts made after it was read
    /// (as root, which CI is; an ordinary user cannot mount here).
    #[test]
    fn a_mount_made_after_the_first_check_is_seen() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().canonicalize().unwrap();
        let sub = dest.join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(first_mount_below(&dest).unwrap(), None);
        let flags = rustix::mount::MountFlags::empty();
        rustix::mount::mount("none", &sub, "tmpfs", flags, None).unwrap();
        let seen = first_mount_below(&dest);
        rustix::mount::unmount(&sub, rustix::mount::UnmountFlags::DETACH).unwrap();
        assert_eq!(seen.unwrap(), Some(sub.clone()));
        assert_eq!(first_mount_below(&dest).unwrap(), None);
    }

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
