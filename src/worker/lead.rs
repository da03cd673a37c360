//! The worker's side of a bounded lead ([`Options::max_lead`]): before it
//! applies another entry, the caller must have taken enough reports. The
//! counts come from the caller over a socket of the job's own
//! ([`caller::lead`](crate::caller::lead)).
//!
//! [`Options::max_lead`]: crate::Options::max_lead

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::RecvFlags;

/// Entries between two looks at the socket when the bound is far: keeps the
/// caller's messages in flight few.
const DRAIN_EVERY: u64 = 64;

/// How far the worker may run ahead of the caller.
pub(crate) struct Lead {
    socket: OwnedFd,
    max: u64,
    /// Reports the caller has taken, as far as the worker knows.
    taken: u64,
}

impl Lead {
    pub(crate) fn new(socket: OwnedFd, max: u32) -> Self {
        Lead {
            socket,
            max: u64::from(max.max(1)),
            taken: 0,
        }
    }

    /// After the report of entry `applied` (counted from 1): returns once
    /// the next entry may be applied, calling `flush` first if it has to
    /// wait (the caller can only take what it was sent).
    pub(crate) fn after(&mut self, applied: u64, flush: impl FnOnce()) -> io::Result<()> {
        if applied.is_multiple_of(DRAIN_EVERY) {
            self.read(RecvFlags::DONTWAIT)?;
        }
        if applied.saturating_sub(self.taken) < self.max {
            return Ok(());
        }
        flush();
        while applied.saturating_sub(self.taken) >= self.max {
            self.read(RecvFlags::empty())?;
        }
        Ok(())
    }

    /// Reads the counts waiting (with `DONTWAIT`), or one (blocking). The
    /// caller's end closed: it stopped looking, the bound is lifted.
    fn read(&mut self, flags: RecvFlags) -> io::Result<()> {
        let mut buf = [0u8; 8];
        loop {
            match rustix::net::recv(&self.socket, &mut buf, flags) {
                Ok((8, _)) => self.taken = self.taken.max(u64::from_le_bytes(buf)),
                Ok((0, _)) => {
                    self.taken = u64::MAX;
                    return Ok(());
                }
                Ok(_) => return Err(io::Error::other("a short count on the lead socket")),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            if !flags.contains(RecvFlags::DONTWAIT) {
                return Ok(());
            }
        }
    }
}
