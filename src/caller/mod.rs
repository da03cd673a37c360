//! The caller's process: the public face ([`Sandbox`](sandbox::Sandbox)), the
//! pool of warm workers and the zygote connection behind it, the start of a job,
//! the job driver (its pump and its frame reader; overlay opaque marks), the
//! worker processes seen
//! from outside, and subordinate ids.
//!
//! Dependencies point one way: `sandbox` → `start` → `job` → `pump`, `frames`;
//! `start` → `pool` → `zygote_conn`. The pool knows nothing of jobs (a job only
//! takes its [`Warm`](pool::Warm) worker from it).

pub(crate) mod child;
pub(crate) mod data_frames;
pub(crate) mod frames;
pub(crate) mod job;
pub(crate) mod lead;
pub(crate) mod mounts;
pub(crate) mod overlay;
pub(crate) mod pack;
pub(crate) mod pool;
pub(crate) mod pump;
pub(crate) mod sandbox;
pub(crate) mod start;
pub(crate) mod subids;
pub(crate) mod zygote_conn;
