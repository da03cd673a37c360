//! The system calls that need `unsafe`: the one module of the crate where it is
//! allowed (the crate root denies `unsafe_code` everywhere else).
//!
//! Every `unsafe` block says why it is sound in a `// SAFETY:` comment. Where
//! soundness depends on the caller, the function says so: it is an `unsafe fn`
//! with a `# Safety` section, or it takes a [`SingleThreaded`] proof, which only
//! the zygote's start-up hook and a fork from it can make.
//!
//! By process: [`startup`] (before `main`: becoming the zygote), [`process`]
//! (the zygote forks workers and enters a user namespace; zygote and worker end
//! at once), [`fds`] (the worker's descriptor table), [`mounts`] (the worker's
//! read-only root for listing jobs; the caller's clone of a destination's mount), [`socket`] (descriptors
//! over Unix sockets: all three; tokio registration: the caller), [`users`]
//! (NSS look-ups: the caller).

mod fds;
#[cfg(sandtar_hostile)]
pub(crate) mod hostile;
pub(crate) mod mounts;
pub(crate) mod process;
pub(crate) mod socket;
pub(crate) mod startup;
pub(crate) mod users;

pub(crate) use mounts::clone_for_worker;
pub(crate) use process::{
    clone_worker, exit_now, exit_on_cpu_time_limit, ignore_write_signals, landlock_abi,
    probe_namespaces, unshare_user_namespace, Forked, WorkerStart, EXIT_CPU_TIME,
};
pub(crate) use socket::{async_fd, recv_with_fds, send_with_fds};
pub(crate) use startup::SingleThreaded;
pub(crate) use users::user_entry;
