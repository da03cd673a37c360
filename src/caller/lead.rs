//! The caller's side of a bounded lead ([`Options::max_lead`]): how many
//! reports the caller has taken, told to the worker over a socket of the
//! job's own, so that the worker applies at most `max_lead` entries whose
//! reports the caller has not taken.
//!
//! Each message is the count taken so far (8 bytes, little-endian, one
//! `SOCK_SEQPACKET` message), sent every `max_lead / 2` reports: the worker
//! never waits for a count it could have had, and the messages in flight stay
//! few (the worker reads them at least every 64 entries). `u64::MAX` lifts
//! the bound: the caller stopped looking ([`Job::finish`](crate::Job::finish)).
//!
//! [`Options::max_lead`]: crate::Options::max_lead

use std::os::fd::OwnedFd;

use rustix::net::{socketpair, AddressFamily, SendFlags, SocketFlags, SocketType};

use crate::error::{Error, Result};

/// The count that lifts the bound.
const UNBOUNDED: u64 = u64::MAX;

/// A new lead channel: the caller's end (non-blocking) and the worker's.
pub(crate) fn channel() -> Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("lead socket", e.into()))?;
    rustix::io::ioctl_fionbio(&ours, true).map_err(|e| Error::io("lead socket", e.into()))?;
    Ok((ours, theirs))
}

/// What the caller took and told.
#[derive(Debug)]
pub(crate) struct Lead {
    socket: OwnedFd,
    /// Reports taken between two messages.
    step: u64,
    taken: u64,
    /// The last count the worker was sent.
    sent: u64,
    /// The caller stopped looking: the bound is lifted.
    released: bool,
}

impl Lead {
    /// The caller's `socket` end, for a lead of `max_lead` (at least 1).
    pub(crate) fn new(socket: OwnedFd, max_lead: u32) -> Self {
        Lead {
            socket,
            step: u64::from(max_lead.div_ceil(2)).max(1),
            taken: 0,
            sent: 0,
            released: false,
        }
    }

    /// The caller took one report.
    pub(crate) fn took(&mut self) {
        if self.released {
            // A lifted bound that could not be sent yet.
            if self.sent != UNBOUNDED {
                self.send(UNBOUNDED);
            }
            return;
        }
        self.taken += 1;
        if self.taken - self.sent >= self.step {
            self.send(self.taken);
        }
    }

    /// The caller stops looking: the worker may run to the end.
    pub(crate) fn release(&mut self) {
        self.released = true;
        self.send(UNBOUNDED);
    }

    /// Sends `count` if the socket takes it now; a full socket (the worker
    /// reads it at least every 64 entries) or a gone worker is not an error:
    /// the next count, cumulative, says it all.
    fn send(&mut self, count: u64) {
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        if rustix::net::send(&self.socket, &count.to_le_bytes(), flags).is_ok() {
            self.sent = count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(socket: &OwnedFd) -> Vec<u64> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 8];
        while let Ok((8, _)) = rustix::net::recv(socket, &mut buf, rustix::net::RecvFlags::DONTWAIT)
        {
            seen.push(u64::from_le_bytes(buf));
        }
        seen
    }

    #[test]
    fn counts_every_half_lead_then_unbounded() {
        let (ours, theirs) = channel().unwrap();
        let mut lead = Lead::new(ours, 4);
        for _ in 0..5 {
            lead.took();
        }
        assert_eq!(counts(&theirs), [2, 4]);
        lead.release();
        lead.took();
        assert_eq!(counts(&theirs), [u64::MAX]);
        let (ours, theirs) = channel().unwrap();
        let mut lockstep = Lead::new(ours, 1);
        lockstep.took();
        lockstep.took();
        assert_eq!(counts(&theirs), [1, 2]);
    }
}
