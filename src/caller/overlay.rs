//! The overlay format's opaque markers as real root.
//!
//! overlayfs reads `trusted.overlay.opaque=y` on an upper directory; writing a
//! `trusted.*` attribute needs `CAP_SYS_ADMIN`, which no worker holds. So the
//! worker only makes the directory and reports its `.wh..wh..opq` entry, and
//! the caller sets the mark at the end of the job, on a descriptor it opens
//! below the destination without following any symlink, crossing any mount or
//! leaving the destination (`openat2` with `RESOLVE_BENEATH`,
//! `RESOLVE_NO_SYMLINKS`, `RESOLVE_NO_XDEV`): whatever the worker or a racing
//! process did to the tree, the mark lands on a directory inside it, or nowhere.

use std::fs::File;
use std::os::fd::AsFd;

use rustix::fs::{fsetxattr, openat2, Mode, OFlags, ResolveFlags, XattrFlags};

use crate::error::{Error, Result};
use crate::report::{EntryKind, Outcome};
use crate::wire::{untrusted_path, WireReport};

/// The name of an opaque-directory whiteout.
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";

/// The directories a job's layer made opaque, to be marked at its end.
#[derive(Debug)]
pub(crate) struct OpaqueMarks {
    dest: File,
    dirs: Vec<Vec<u8>>,
}

impl OpaqueMarks {
    /// Marks to set below `dest` (the caller's own descriptor of it).
    pub(crate) fn new(dest: File) -> Self {
        OpaqueMarks {
            dest,
            dirs: Vec::new(),
        }
    }

    /// Notes the directory of an opaque whiteout the worker applied.
    pub(crate) fn note(&mut self, report: &WireReport) {
        if report.kind != EntryKind::Whiteout || report.outcome != Outcome::Written {
            return;
        }
        let path = &report.path;
        let (parent, name) = match path.iter().rposition(|b| *b == b'/') {
            Some(at) => (&path[..at], &path[at + 1..]),
            None => (&b""[..], &path[..]),
        };
        if name == OPAQUE_WHITEOUT {
            self.dirs.push(parent.to_vec());
        }
    }

    /// Sets `trusted.overlay.opaque=y` on every noted directory (once each).
    pub(crate) fn apply(&mut self) -> Result<()> {
        self.dirs.sort_unstable();
        self.dirs.dedup();
        for dir in &self.dirs {
            let failed = |e: rustix::io::Errno| Error::Write {
                entry: untrusted_path(dir.clone()),
                message: format!("marking the directory opaque failed: {e}"),
            };
            let path = if dir.is_empty() { &b"."[..] } else { dir };
            let fd = openat2(
                self.dest.as_fd(),
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
            )
            .map_err(failed)?;
            fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty()).map_err(failed)?;
        }
        Ok(())
    }
}
