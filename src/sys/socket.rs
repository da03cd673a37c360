//! Descriptors over Unix sockets (`SCM_RIGHTS`), used by all three processes,
//! and registering a descriptor with tokio (the caller).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

/// Sends `data` with `fds` attached (`SCM_RIGHTS`).
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors",
        ));
    }
    Ok(sendmsg(
        sock,
        &[IoSlice::new(data)],
        &mut cmsg,
        SendFlags::NOSIGNAL,
    )?)
}

/// Receives one message into `buf` with up to two attached descriptors.
/// Returns the byte count (0 at end of stream) and the descriptors.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) || msg.flags.contains(ReturnFlags::TRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated message",
        ));
    }
    Ok((msg.bytes, fds))
}

/// `true` if `fd` is a Unix `SOCK_SEQPACKET` socket (how the zygote recognises its
/// control channel on standard input).
pub(crate) fn is_seqpacket_socket(fd: BorrowedFd<'_>) -> bool {
    matches!(
        rustix::net::sockopt::socket_type(fd),
        Ok(t) if t == rustix::net::SocketType::SEQPACKET
    )
}

/// Registers an owned descriptor with tokio's reactor.
pub(crate) fn async_fd(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` keeps its descriptor open, always the same one, until
    // it is dropped, which the `AsyncFd` does only when it is dropped itself.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into())
}
