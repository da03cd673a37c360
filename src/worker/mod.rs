//! The worker: one process per job, forked warm by the zygote.
//!
//! Life of a worker: make `/` a recursive slave (as root, also leave the
//! host's mounts for an empty root: [`confine`]), build the seccomp filter
//! ([`seccomp`]) and start the (unprivileged, idle) decoding thread
//! ([`input`]) (warm set-up), and say `Warm`; wait for the job header and the
//! destination's descriptor; confine itself to the destination ([`confine`]);
//! shed privileges ([`privileges`]); say `Confined`; then run the job
//! ([`job`]): install the filter on both threads, read the input, parse the
//! archive ([`archive`]: bytes -> entries) and apply each entry ([`apply`]:
//! entries -> filesystem), streaming reports ([`reporter`]); send `Done` or
//! `Failed`; exit.

pub(crate) mod apply;
pub(crate) mod archive;
mod confine;
pub(crate) mod input;
pub(crate) mod job;
mod lead;
mod names;
mod pack;
mod privileges;
mod reporter;
mod seccomp;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use crate::mode::{Rung, SandboxMode};
use crate::sys;
use crate::wire::{
    decode as decode_msg, encode_frame, JobHeader, WireError, WorkerMsg, HEADER_MAGIC,
    MAX_HEADER_FRAME,
};

use reporter::Reporter;

/// The worker's whole life; never returns.
///
/// `await_clone`: the caller may clone mounts (root over its mount
/// namespace), so the worker waits in an empty root where it can
/// ([`confine::Root`]).
pub(crate) fn run(start: sys::WorkerStart, mode: SandboxMode, await_clone: bool) -> ! {
    let code = match std::panic::catch_unwind(move || serve(start, mode, await_clone)) {
        Ok(()) => 0,
        Err(_) => 101,
    };
    sys::exit_now(code)
}

fn send(socket: &mut UnixStream, msg: &WorkerMsg) -> io::Result<()> {
    socket.write_all(&encode_frame(msg))
}

fn serve(start: sys::WorkerStart, mode: SandboxMode, await_clone: bool) {
    let mut socket = UnixStream::from(start.socket);
    let ready = match prepare(&mut socket, start.isolated, mode, await_clone) {
        Ok(ready) => ready,
        Err(failure) => {
            // Nothing to say when the driver is gone.
            if let Some(error) = failure {
                let _ = send(&mut socket, &WorkerMsg::Failed(error));
            }
            return;
        }
    };
    let reporter = Rc::new(RefCell::new(Reporter::new(ready.report_socket)));
    let options = ready.header.options;
    let filter = ready.seccomp.for_modes(options.mode);
    let lead = ready.lead;
    let done = match ready.header.pack {
        Some(pack) => job::run_pack(
            &socket,
            &pack,
            mode,
            ready.seccomp.for_packing(),
            ready.decoder,
            ready.output,
        ),
        None => job::run(
            &socket,
            &reporter,
            options,
            mode,
            filter,
            ready.decoder,
            lead,
        ),
    };
    let last = match done {
        Ok(totals) => WorkerMsg::Done(totals),
        Err(error) => WorkerMsg::Failed(error.bounded()),
    };
    // Reports of the entries handled before a failure still reach the caller.
    let _ = reporter.borrow_mut().finish(&last);
}

/// A confined worker with its job, ready to run it.
struct Ready {
    header: JobHeader,
    seccomp: seccomp::Programs,
    /// The decoding thread (without capabilities; for plain input, it
    /// writes files instead: `apply::writers`).
    decoder: input::Decoder,
    /// The job socket again, for the reports.
    report_socket: UnixStream,
    /// How far ahead of the caller the worker may run (`Options::max_lead`).
    lead: Option<lead::Lead>,
    /// Where a packing job writes its archive, if not in `Data` frames.
    output: Option<OwnedFd>,
}

/// Warm set-up, then the job header, confinement and shedding. `isolated`: how
/// closing the zygote's descriptors and replacing the standard streams went. An error is the one to send, or
/// `None` when the driver is gone (or never sent a job).
fn prepare(
    socket: &mut UnixStream,
    isolated: Result<(), String>,
    mode: SandboxMode,
    await_clone: bool,
) -> Result<Ready, Option<WireError>> {
    let confinement = |reason: String| Some(WireError::Confinement(reason));
    isolated.map_err(confinement)?;
    let namespaces = mode.rung() == Rung::Namespaces;
    if namespaces {
        confine::prepare().map_err(confinement)?;
    }
    let root = match namespaces && await_clone {
        true => confine::enter_empty_root().map_err(confinement)?,
        false => confine::Root::Host,
    };
    let naming = match namespaces {
        true => seccomp::Naming::Paths,
        false => seccomp::Naming::Descriptors,
    };
    let seccomp = seccomp::build(socket.as_fd(), naming).map_err(confinement)?;
    // The decoding thread, started now so that a job does not wait for a new
    // thread to be scheduled; it drops every privilege at once. On the
    // Landlock rung it starts after confinement instead, to inherit the
    // Landlock domain (a restriction applies to the calling thread only).
    let mut decoder = match namespaces {
        true => Some(input::Decoder::spawn(privileges::shed_thread).map_err(confinement)?),
        false => None,
    };
    let awaits_clone = root == confine::Root::Empty;
    send(socket, &WorkerMsg::Warm { awaits_clone }).map_err(|_| None)?;
    let (header, dest_fd, extra_fd) = match receive_job(socket) {
        Ok(Some(job)) => job,
        Ok(None) => return Err(None), // the sandbox was dropped before a job came
        Err(e) => return Err(Some(WireError::Internal(format!("bad job header: {e}")))),
    };
    rustix::process::umask(rustix::fs::Mode::empty());
    let packing = header.pack.is_some();
    let read_only = header.options.list_only || packing;
    let entered = match (namespaces, root) {
        // The caller's clone is read-only already where it must be.
        (true, confine::Root::Empty) => confine::attach(dest_fd, read_only),
        (true, confine::Root::Host) => confine::enter(&header.dest, dest_fd, read_only),
        (false, _) => confine::enter_landlock(dest_fd, read_only, mode.chroots()),
    };
    entered.map_err(|e| {
        Some(match e {
            confine::ConfineError::Changed => WireError::DestinationChanged,
            confine::ConfineError::Failed(reason) => WireError::Confinement(reason),
        })
    })?;
    let decoder = match decoder.take() {
        Some(decoder) => decoder,
        None => input::Decoder::spawn(privileges::shed_thread).map_err(confinement)?,
    };
    privileges::shed(&header.options, mode.is_privileged(), packing).map_err(confinement)?;
    send(socket, &WorkerMsg::Confined).map_err(|_| None)?;
    let report_socket = socket
        .try_clone()
        .map_err(|e| Some(WireError::Internal(e.to_string())))?;
    let (lead, output) = match (extra_fd, header.options.max_lead) {
        (Some(fd), Some(max)) => (Some(lead::Lead::new(fd, max)), None),
        (output, _) => (None, output),
    };
    Ok(Ready {
        header,
        seccomp,
        decoder,
        report_socket,
        lead,
        output,
    })
}

/// A job: its header, the destination, and its other descriptor: the lead
/// channel if the options bound the lead, or a packing job's output.
type Received = (JobHeader, OwnedFd, Option<OwnedFd>);

/// Reads the job header and the descriptors that come with it: the
/// destination, then the lead channel exactly when `max_lead` is set, or
/// the output of a packing job that writes its archive itself. `None` if
/// the driver closed the socket instead.
fn receive_job(socket: &UnixStream) -> io::Result<Option<Received>> {
    let mut head = [0u8; 8];
    let (n, mut fds) = loop {
        match sys::recv_with_fds(socket.as_fd(), &mut head) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    (&*socket).read_exact(&mut head[n..])?;
    let header = read_header(&head, &mut &*socket)?;
    let expected = header.descriptors();
    if fds.len() != expected || expected > 2 || (header.pack_into && header.pack.is_none()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected the destination's descriptor (and the lead channel's with max_lead, \
             or a packing job's output)",
        ));
    }
    let extra = (expected == 2).then(|| fds.remove(1));
    Ok(Some((header, fds.remove(0), extra)))
}

/// Checks the magic and length in `head`, then reads and decodes the header's
/// payload from `rest` (no more than the announced length).
pub(crate) fn read_header(head: &[u8; 8], rest: &mut dyn Read) -> io::Result<JobHeader> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    if head[..4] != HEADER_MAGIC {
        return Err(invalid("wrong protocol magic or version".into()));
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len > MAX_HEADER_FRAME {
        return Err(invalid("job header too long".into()));
    }
    let mut payload = vec![0u8; len];
    rest.read_exact(&mut payload)?;
    decode_msg(&payload).map_err(invalid)
}
